import { describe, expect, it } from 'vitest';
import { createGcpProvider } from '../../providers/gcp/index.js';
import { fromHex } from '../../providers/common/encoding.js';
import { describeVectors, readVector } from '../helpers/vectors.js';
import { ctx, gotpmEvidence, legacyIntermediateOptions, GOTPM_AT, PB_NO_NONCE, PB_NONCE_9009, vapor, VAPOR_AMD, VAPOR_AMD_AT, VAPOR_TDX, VAPOR_TDX_AT } from './helpers.js';

describeVectors('gcp: real go-tpm-tools attestations (gce-cos-85)', () => {
  for (const [file, nonce] of [[PB_NO_NONCE, ''], [PB_NONCE_9009, '9009']] as const) {
    it(`${file} verifies with nonce "${nonce}" (SHA-256 and SHA-384 banks)`, async () => {
      const p = createGcpProvider(legacyIntermediateOptions());
      const claims = await p.verify('gotpm', gotpmEvidence(readVector(file)), await ctx(fromHex(nonce), GOTPM_AT));
      expect(claims.identity.zone).toBe('us-central1-a');
      expect(claims.identity.account).toBe('google.com:wuale-gcp-testing');
      expect(claims.identity.instanceName?.startsWith('cos-test')).toBe(true);
      expect(Object.keys(claims.tpm!.pcrs).sort()).toEqual(['sha256', 'sha384']);
      expect(claims.tpm!.pcrs.sha256![0]).toBe('0f35c214608d93c7a6e68ae7359b4a8be5a0e99eea9107ece427c4dea4e439cf');
      console.log(JSON.stringify(claims, null, 1).slice(0, 3000));
    });
  }
});

describeVectors('gcp: vaportpm GCP fixtures', () => {
  it('amd', async () => {
    const v = vapor(VAPOR_AMD);
    const p = createGcpProvider();
    const claims = await p.verify('vaportpm-gcp', v, await ctx(fromHex(v.nonce), VAPOR_AMD_AT));
    console.log(JSON.stringify(claims, null, 1));
  });
  it('tdx', async () => {
    const v = vapor(VAPOR_TDX);
    const p = createGcpProvider();
    const claims = await p.verify('vaportpm-gcp', v, await ctx(fromHex(v.nonce), VAPOR_TDX_AT));
    console.log(JSON.stringify(claims.identity, null, 1));
  });
});
describe('x', () => it('noop', () => undefined));

/**
 * The gcp provider on real evidence (test/vectors, INDEX §2a and §2b):
 * - go-tpm-tools gce-cos-85-*.pb (legacy Google root, RSA-2048 AK, three banks, 44-event log)
 *   with the nonces the INDEX gives (empty and 0x9009), SHA-1 reported only when allowed, and the
 *   event log replayed in every bank;
 * - vaportpm test-gcp-*.json (current "EK/AK CA Root", ECC P-256 AK) at their pinned times,
 *   yielding the project, zone and instance id the INDEX lists.
 */
import { describe, expect, it } from 'vitest';
import { createGcpProvider, GCP_FORMATS } from '../../providers/gcp/index.js';
import { fromHex } from '../../providers/common/encoding.js';
import { toBase64, toBase64Url } from '../../providers/common/encoding.js';
import { describeVectors, readVector } from '../helpers/vectors.js';
import { parseAttestationProto } from '../../providers/gcp/parse.js';
import { toGotpmJson } from './pb-encode.js';
import { ctx, legacyIntermediateOptions, GOTPM_AT, PB_NO_NONCE, PB_NONCE_9009, vapor, VAPOR_AMD, VAPOR_AMD_AT, VAPOR_TDX, VAPOR_TDX_AT } from './helpers.js';

const PCR0_SHA256 = '0f35c214608d93c7a6e68ae7359b4a8be5a0e99eea9107ece427c4dea4e439cf';
const PCR0_SHA1 = 'c032c3b51dbb6f96b047421512fd4b4dfde496f3';

describeVectors('gcp: go-tpm-tools attestations from a real GCE VM (gce-cos-85)', () => {
  for (const [file, nonce] of [[PB_NO_NONCE, ''], [PB_NONCE_9009, '9009']] as const) {
    describe(`${file} (nonce "${nonce}")`, () => {
      const pb = readVector(file);
      for (const [alphabet, attestation] of [['standard', toBase64(pb)], ['URL-safe', toBase64Url(pb)]] as const) {
        it(`verifies (SHA-256 + SHA-384 reported, SHA-1 verified but withheld; ${alphabet} base64)`, async () => {
          const p = createGcpProvider(legacyIntermediateOptions());
          const claims = await p.verify('gotpm', { attestation }, await ctx(fromHex(nonce), GOTPM_AT));
          expect(claims.provider).toBe('gcp');
          expect(claims.format).toBe('gotpm');
          expect(claims.platform).toEqual({ tee: 'none', debug: false });
          expect(claims.identity).toMatchObject({
            cloud: 'gcp',
            account: 'google.com:wuale-gcp-testing',
            region: 'us-central1',
            zone: 'us-central1-a',
            instanceName: 'cos-test',
            instanceId: '6797026933021542085',
          });
          expect(claims.identity.extra).toMatchObject({ projectNumber: '117478743145', akCertLineage: 'legacy', akCertRoot: 'google-tpm-ek-root-1', isProduction: 'true' });
          expect(claims.identity.proven).toEqual(expect.arrayContaining(['account', 'zone', 'region', 'instanceId', 'instanceName', 'extra.projectNumber']));
          expect(Object.keys(claims.tpm!.pcrs).sort()).toEqual(['sha256', 'sha384']);
          expect(Object.keys(claims.tpm!.pcrs.sha256!)).toHaveLength(24);
          expect(claims.tpm!.pcrs.sha256![0]).toBe(PCR0_SHA256);
          expect(claims.tpm!.akTrust).toBe('cloud-certified');
          expect(claims.tpm!.akName).toMatch(/^000b[0-9a-f]{64}$/);
          expect(claims.release?.akName).toBe(claims.tpm!.akName);
          expect(claims.boot?.eventLogReplayed).toEqual(['sha256', 'sha384']);
          expect(claims.boot?.secureBoot).toBe(true);
          expect(claims.boot?.cmdline).toMatch(/^\/syslinux\/vmlinuz\.A init=\/usr\/lib\/systemd\/systemd /);
          expect(claims.boot?.bootApps).toHaveLength(3);
        });
      }

      it('with allowSha1 the SHA-1 bank is reported and replayed too', async () => {
        const p = createGcpProvider({ ...legacyIntermediateOptions(), allowSha1: true });
        const claims = await p.verify('gotpm', { attestation: toBase64(pb) }, await ctx(fromHex(nonce), GOTPM_AT));
        expect(Object.keys(claims.tpm!.pcrs).sort()).toEqual(['sha1', 'sha256', 'sha384']);
        expect(claims.tpm!.pcrs.sha1![0]).toBe(PCR0_SHA1);
        expect(claims.boot?.eventLogReplayed).toEqual(['sha1', 'sha256', 'sha384']);
      });

      it('the gotpm-json form of the same parts yields the same claims', async () => {
        const p = createGcpProvider(legacyIntermediateOptions());
        const c = await ctx(fromHex(nonce), GOTPM_AT);
        const a = await p.verify('gotpm', { attestation: toBase64(pb) }, c);
        const b = await p.verify('gotpm-json', toGotpmJson(parseAttestationProto(pb)), c);
        expect({ ...b, format: 'gotpm' }).toEqual(a);
      });
    });
  }

  it('options may also come per call through ctx.options', async () => {
    const p = createGcpProvider();
    const c = await ctx(fromHex('9009'), GOTPM_AT, undefined, { ...legacyIntermediateOptions(), allowSha1: true });
    const claims = await p.verify('gotpm', { attestation: toBase64(readVector(PB_NONCE_9009)) }, c);
    expect(Object.keys(claims.tpm!.pcrs)).toContain('sha1');
  });
});

describeVectors('gcp: vaportpm fixtures (current EK/AK CA, ECC P-256 AK)', () => {
  it('test-gcp-amd-fixture.json verifies at 2026-02-02T08:00Z: project lockboot (232923608972), us-central1-f, instance 3414240648225485836', async () => {
    const v = vapor(VAPOR_AMD);
    const claims = await createGcpProvider().verify('vaportpm-gcp', v, await ctx(fromHex(v.nonce), VAPOR_AMD_AT));
    expect(claims.identity).toMatchObject({
      cloud: 'gcp',
      account: 'lockboot',
      zone: 'us-central1-f',
      region: 'us-central1',
      instanceId: '3414240648225485836',
      instanceName: 'instance-20260202-065609',
    });
    expect(claims.identity.extra).toMatchObject({ projectNumber: '232923608972', akCertLineage: 'current', akCertRoot: 'google-ekak-ca-root' });
    expect(Object.keys(claims.tpm!.pcrs)).toEqual(['sha256']);
    expect(claims.tpm!.pcrs.sha256![0]).toBe(v.pcrs.sha256!['0']);
    expect(claims.boot).toBeUndefined();
  });
  it('test-gcp-tdx-fixture.json verifies at 2026-02-03T08:00Z: us-central1-a, instance 2141209421113254303', async () => {
    const v = vapor(VAPOR_TDX);
    const claims = await createGcpProvider().verify('vaportpm-gcp', v, await ctx(fromHex(v.nonce), VAPOR_TDX_AT));
    expect(claims.identity).toMatchObject({ account: 'lockboot', zone: 'us-central1-a', instanceId: '2141209421113254303', instanceName: 'instance-20260203-023447' });
    // No TD quote is in the fixture: the TEE is not proven, whatever the host was.
    expect(claims.platform.tee).toBe('none');
  });
});

describe('gcp provider surface', () => {
  it('names itself and its formats', () => {
    const p = createGcpProvider();
    expect(p.name).toBe('gcp');
    expect(p.formats).toEqual(GCP_FORMATS);
    expect([...GCP_FORMATS]).toEqual(['gotpm', 'gotpm-json', 'vaportpm-gcp']);
  });
});

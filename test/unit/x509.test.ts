import { describe, expect, it } from 'vitest';
import { describeVectors, loadTestTrust, readVectorText, readVector } from '../helpers/vectors.js';
import { parsePemCertificates, parseCertificate, verifyChain } from '../../providers/common/x509.js';
import { PinIds } from '../../providers/common/pins.js';
import { AttestError } from '../../providers/common/errors.js';

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    if (e instanceof AttestError) return e.code;
    throw e;
  }
  return 'NO_ERROR';
}

describeVectors('X.509 chain validation on real chains', () => {
  it('loads every built-in root from the vectors and checks its pin', async () => {
    const t = await loadTestTrust();
    expect([...t.ids()].sort()).toEqual(Object.values(PinIds).sort());
  });

  it('AMD VCEK → ASK → ARK-Milan (RSA-PSS) validates; wrong root, time or missing ASK fail', async () => {
    const trust = await loadTestTrust();
    const [vcek, ask] = parsePemCertificates(readVectorText('trustee/az-snp-vtpm/vcek.pem'));
    const at = new Date('2024-01-01T00:00:00Z');
    const ok = await verifyChain({ leaf: vcek!, intermediates: [ask!], anchors: trust.anchors([PinIds.AMD_ARK_MILAN]), at });
    expect(ok.anchor.id).toBe(PinIds.AMD_ARK_MILAN);
    expect(ok.path).toHaveLength(3);
    expect(await code(verifyChain({ leaf: vcek!, intermediates: [ask!], anchors: trust.anchors([PinIds.AMD_ARK_GENOA]), at }))).toBe('CHAIN_UNTRUSTED');
    expect(await code(verifyChain({ leaf: vcek!, intermediates: [], anchors: trust.anchors([PinIds.AMD_ARK_MILAN]), at }))).toBe('CHAIN_UNTRUSTED');
    expect(await code(verifyChain({ leaf: vcek!, intermediates: [ask!], anchors: [], at }))).toBe('TRUST_ANCHOR_MISSING');
    expect(await code(verifyChain({ leaf: vcek!, intermediates: [ask!], anchors: trust.anchors([PinIds.AMD_ARK_MILAN]), at: new Date('2031-01-01T00:00:00Z') }))).toBe('CERT_EXPIRED');
    expect(await code(verifyChain({ leaf: vcek!, intermediates: [ask!], anchors: trust.anchors([PinIds.AMD_ARK_MILAN]), at: new Date('2020-01-01T00:00:00Z') }))).toBe('CERT_NOT_YET_VALID');
  });

  it('a forged leaf (one bit flipped in its signature) is rejected', async () => {
    const trust = await loadTestTrust();
    const der = readVector('go-sev-guest/testdata/vcek.testcer');
    const bad = der.slice();
    bad[bad.length - 5]! ^= 1;
    const [ask] = parsePemCertificates(readVectorText('go-sev-guest/trust/ask_ark_milan.pem'));
    const at = new Date('2023-01-01T00:00:00Z');
    const good = await verifyChain({ leaf: parseCertificate(der), intermediates: [ask!], anchors: trust.anchors([PinIds.AMD_ARK_MILAN]), at });
    expect(good.anchor.id).toBe(PinIds.AMD_ARK_MILAN);
    expect(await code(verifyChain({ leaf: parseCertificate(bad), intermediates: [ask!], anchors: trust.anchors([PinIds.AMD_ARK_MILAN]), at }))).toBe('CERT_SIGNATURE_INVALID');
  });

});

describe('X.509 parsing', () => {
  it('rejects garbage with CERT_MALFORMED', () => {
    expect(() => parseCertificate(new Uint8Array([1, 2, 3]))).toThrow(AttestError);
  });
});

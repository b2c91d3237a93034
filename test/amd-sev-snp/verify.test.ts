/**
 * SEV-SNP verification on every real report in test/vectors, then one forged input per
 * check (table rows `{name, mutate, wantCode}`), and a bit-flip sweep over every signed byte.
 */
import { describe, expect, it } from 'vitest';
import { describeVectors, loadTestTrust, readVector } from '../helpers/vectors.js';
import { parseSnpReport, SNP_SIGNED_LENGTH } from '../../providers/amd-sev-snp/parse.js';
import { verifySnpReport, SnpVerifyCache, type SnpVerifyInput } from '../../providers/amd-sev-snp/verify.js';
import { PinIds } from '../../providers/common/pins.js';
import { parseCertificate } from '../../providers/common/x509.js';
import { SNP_SETS, codeOf } from './helpers.js';

describeVectors('SEV-SNP reports from real hardware verify to the pinned ARKs', () => {
  for (const set of SNP_SETS) {
    it(set.name, async () => {
      const trust = await loadTestTrust();
      const report = parseSnpReport(set.report());
      const v = await verifySnpReport({ report, endorsementKey: set.key(), intermediates: set.chain(), trust, at: set.at });
      expect(v.signer).toBe(report.signingKey);
      expect(v.anchorId).toBe(v.product === 'Genoa' ? PinIds.AMD_ARK_GENOA : PinIds.AMD_ARK_MILAN);
    });
  }

  it('decodes the INDEX values (az-snp-vtpm hcl-report.bin, go-sev-guest, genoa)', async () => {
    const trust = await loadTestTrust();
    const azure = SNP_SETS[3];
    const genoa = SNP_SETS[5];
    const a = await verifySnpReport({ report: parseSnpReport(azure!.report()), endorsementKey: azure!.key(), intermediates: azure!.chain(), trust, at: azure!.at });
    expect(a.reportedTcb).toEqual({ bootloader: 3, tee: 0, snp: 8, microcode: 115 });
    expect(Buffer.from(a.report.measurement).toString('hex')).toBe(
      '9ac48fcac8a2d88aeeff8d427ad4f2be0e3917c748a18bdf52cc317e7fe20308b459d5ef1a12e0c22944eb386d17c315',
    );
    expect(a.report.policy.debug).toBe(false);
    const g = parseSnpReport(SNP_SETS[2]!.report());
    expect(g.policy.raw).toBe(0xb0000n);
    expect(g.policy.debug).toBe(true);
    expect(Buffer.from(g.reportData.subarray(0, 6)).toString('hex')).toBe('010203040500');
    const n = await verifySnpReport({ report: parseSnpReport(genoa!.report()), endorsementKey: genoa!.key(), intermediates: genoa!.chain(), trust, at: genoa!.at });
    expect(n.product).toBe('Genoa');
    expect(n.reportedTcb).toEqual({ bootloader: 10, tee: 0, snp: 23, microcode: 84 });
    expect(n.report.cpuid).toEqual({ family: 0x19, model: 0x11, stepping: 1 });
  });
});

describeVectors('SEV-SNP verification rejects every forged input with its own code', () => {
  const base = SNP_SETS[0]!; // trustee/snp test-report, Milan VCEK
  const other = SNP_SETS[2]!; // go-sev-guest: another Milan chip
  interface Row {
    name: string;
    mutate: (i: SnpVerifyInput) => SnpVerifyInput | Promise<SnpVerifyInput>;
    wantCode: string;
  }
  const withReport = (i: SnpVerifyInput, f: (b: Uint8Array) => void): SnpVerifyInput => {
    const b = base.report().slice();
    f(b);
    return { ...i, report: parseSnpReport(b) };
  };
  const rows: Row[] = [
    { name: 'untouched', mutate: (i) => i, wantCode: 'NO_ERROR' },
    { name: 'signature R bit flipped', mutate: (i) => withReport(i, (b) => (b[0x2a0]! ^= 1)), wantCode: 'SNP_SIGNATURE_INVALID' },
    { name: 'measurement byte changed', mutate: (i) => withReport(i, (b) => (b[0x90]! ^= 0x80)), wantCode: 'SNP_SIGNATURE_INVALID' },
    { name: 'reported TCB lowered (snp SPL 8 → 0)', mutate: (i) => withReport(i, (b) => (b[0x186] = 0)), wantCode: 'SNP_VCEK_TCB_MISMATCH' },
    { name: 'reported TCB raised (ucode +1)', mutate: (i) => withReport(i, (b) => (b[0x187]! += 1)), wantCode: 'SNP_VCEK_TCB_MISMATCH' },
    { name: 'VCEK from another chip', mutate: (i) => ({ ...i, endorsementKey: other.key() }), wantCode: 'SNP_VCEK_HWID_MISMATCH' },
    { name: 'chip_id changed', mutate: (i) => withReport(i, (b) => (b[0x1a0]! ^= 1)), wantCode: 'SNP_VCEK_HWID_MISMATCH' },
    {
      name: 'VLEK certificate for a VCEK-signed report',
      mutate: (i) => ({ ...i, endorsementKey: parseCertificate(readVector('trustee/snp/test-vlek.der')) }),
      wantCode: 'SNP_SIGNER_MISMATCH',
    },
    { name: 'signer info says no key', mutate: (i) => withReport(i, (b) => (b[0x48] = 7 << 2)), wantCode: 'SNP_REPORT_UNSIGNED' },
    { name: 'MASK_CHIP_KEY set', mutate: (i) => withReport(i, (b) => (b[0x48] = 2)), wantCode: 'SNP_REPORT_UNSIGNED' },
    { name: 'signer info says VLEK', mutate: (i) => withReport(i, (b) => (b[0x48] = 1 << 2)), wantCode: 'SNP_SIGNER_MISMATCH' },
    { name: 'ARK not pinned (empty trust store)', mutate: async (i) => ({ ...i, trust: await loadTestTrust([]) }), wantCode: 'TRUST_ANCHOR_MISSING' },
    {
      name: 'only the Genoa ARK is pinned for a Milan chip',
      mutate: async (i) => ({ ...i, trust: await loadTestTrust([PinIds.AMD_ARK_GENOA, PinIds.AMD_ARK_TURIN]) }),
      wantCode: 'TRUST_ANCHOR_MISSING',
    },
    { name: 'product configured as Genoa', mutate: (i) => ({ ...i, product: 'Genoa' }), wantCode: 'SNP_PRODUCT_MISMATCH' },
    { name: 'no ASK supplied', mutate: (i) => ({ ...i, intermediates: [] }), wantCode: 'CHAIN_UNTRUSTED' },
    { name: 'ASVK instead of ASK', mutate: (i) => ({ ...i, intermediates: [i.intermediates[2]!] }), wantCode: 'CHAIN_UNTRUSTED' },
    { name: 'VCEK expired at the chosen time (2030-06-01)', mutate: (i) => ({ ...i, at: new Date('2030-06-01T00:00:00Z') }), wantCode: 'CERT_EXPIRED' },
    { name: 'VCEK not yet valid (2022-01-01)', mutate: (i) => ({ ...i, at: new Date('2022-01-01T00:00:00Z') }), wantCode: 'CERT_NOT_YET_VALID' },
    {
      name: 'VCEK byte 42 incremented (upstream trustee case)',
      mutate: (i) => {
        const der = readVector('trustee/snp/test-vcek.der').slice();
        der[42]! += 1;
        return { ...i, endorsementKey: parseCertificate(der) };
      },
      wantCode: 'CERT_SIGNATURE_INVALID',
    },
    {
      name: 'VCEK signature byte flipped',
      mutate: (i) => {
        const der = readVector('trustee/snp/test-vcek.der').slice();
        der[der.length - 3]! ^= 1;
        return { ...i, endorsementKey: parseCertificate(der) };
      },
      wantCode: 'CERT_SIGNATURE_INVALID',
    },
  ];

  for (const row of rows) {
    it(row.name, async () => {
      const trust = await loadTestTrust();
      const input: SnpVerifyInput = { report: parseSnpReport(base.report()), endorsementKey: base.key(), intermediates: base.chain(), trust, at: base.at };
      expect(await codeOf(async () => verifySnpReport(await row.mutate(input)))).toBe(row.wantCode);
    });
  }

  it('a cached chain is not reused outside its validity window', async () => {
    const trust = await loadTestTrust();
    const cache = new SnpVerifyCache();
    const input: SnpVerifyInput = { report: parseSnpReport(base.report()), endorsementKey: base.key(), intermediates: base.chain(), trust, at: base.at, cache };
    expect(await codeOf(() => verifySnpReport(input))).toBe('NO_ERROR');
    expect(await codeOf(() => verifySnpReport({ ...input, at: new Date('2031-01-01T00:00:00Z') }))).toBe('CERT_EXPIRED');
    const empty = await loadTestTrust([]);
    expect(await codeOf(() => verifySnpReport({ ...input, trust: empty }))).toBe('TRUST_ANCHOR_MISSING');
    expect(await codeOf(() => verifySnpReport(input))).toBe('NO_ERROR');
  });
});

describeVectors('bit-flip sweep over every signed byte of a real SNP report', () => {
  it('each of the 0x2A0 × 8 single-bit flips (and every signature byte) is rejected', async () => {
    const trust = await loadTestTrust();
    const set = SNP_SETS[3]!; // the Azure hcl-report.bin report
    const good = set.report();
    const key = set.key();
    const chain = set.chain();
    const cache = new SnpVerifyCache();
    const verify = (b: Uint8Array): Promise<unknown> =>
      verifySnpReport({ report: parseSnpReport(b), endorsementKey: key, intermediates: chain, trust, at: set.at, cache });
    expect(await codeOf(() => verify(good))).toBe('NO_ERROR');
    const accepted: number[] = [];
    const end = 0x2a0 + 144; // signed bytes, then R and S
    for (let i = 0; i < end; i++) {
      for (let bit = 0; bit < 8; bit++) {
        if (i >= SNP_SIGNED_LENGTH && bit > 0) continue; // one flip per signature byte is enough
        const b = good.slice();
        b[i]! ^= 1 << bit;
        if ((await codeOf(() => verify(b))) === 'NO_ERROR') accepted.push(i * 8 + bit);
      }
    }
    expect(accepted).toEqual([]);
  });
});

describe('SnpVerifyCache', () => {
  it('memoizes parsed certificates by content, never a malformed one, and stays bounded', async () => {
    const cache = new SnpVerifyCache(1);
    expect(await codeOf(() => cache.certificate(new Uint8Array([0x30, 0x03, 1, 2, 3])))).toBe('CERT_MALFORMED');
    expect(await codeOf(() => cache.certificate(new Uint8Array([0x30, 0x03, 1, 2, 3])))).toBe('CERT_MALFORMED');
  });
});

describeVectors('SnpVerifyCache on real certificates', () => {
  it('returns the same object for the same DER and evicts beyond its size', async () => {
    const cache = new SnpVerifyCache(1);
    const a = readVector('trustee/snp/test-vcek.der');
    const b = readVector('go-sev-guest/testdata/vcek.testcer');
    const first = await cache.certificate(a);
    expect(await cache.certificate(a.slice())).toBe(first);
    await cache.certificate(b);
    expect(await cache.certificate(a)).not.toBe(first);
  });
});

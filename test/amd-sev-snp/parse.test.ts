/**
 * SEV-SNP report parser: exact size, reserved ranges, version quirks, truncation sweep,
 * trailing bytes and fast-check fuzzing (no untyped exception ever escapes).
 */
import { expect, it } from 'vitest';
import fc from 'fast-check';
import { describeVectors } from '../helpers/vectors.js';
import { parseSnpReport, decodeTcb, productFromCpuid, SNP_REPORT_SIZE } from '../../providers/amd-sev-snp/parse.js';
import { AttestError } from '../../providers/common/errors.js';
import { SNP_SETS, codeOfSync } from './helpers.js';

describeVectors('SEV-SNP report parser', () => {
  const v2 = (): Uint8Array => SNP_SETS[0]!.report();
  const v3 = (): Uint8Array => SNP_SETS[4]!.report();

  it('every prefix is TRUNCATED; a trailing byte is TRAILING_BYTES', () => {
    const good = v3();
    for (let n = 0; n < good.length; n++) expect(codeOfSync(() => parseSnpReport(good.subarray(0, n)))).toBe('TRUNCATED');
    const long = new Uint8Array(good.length + 1);
    long.set(good);
    expect(codeOfSync(() => parseSnpReport(long))).toBe('TRAILING_BYTES');
  });

  const rows: { name: string; base: () => Uint8Array; mutate: (b: Uint8Array) => void; wantCode: string }[] = [
    { name: 'version 1', base: v2, mutate: (b) => (b[0] = 1), wantCode: 'SNP_REPORT_VERSION_UNSUPPORTED' },
    { name: 'version 6', base: v2, mutate: (b) => (b[0] = 6), wantCode: 'SNP_REPORT_VERSION_UNSUPPORTED' },
    { name: 'policy reserved bit 17 cleared', base: v2, mutate: (b) => (b[0x0a]! &= ~0x02), wantCode: 'SNP_POLICY_RESERVED' },
    { name: 'policy bit 26 set', base: v2, mutate: (b) => (b[0x0b]! |= 0x04), wantCode: 'SNP_POLICY_RESERVED' },
    { name: 'policy bit 63 set', base: v2, mutate: (b) => (b[0x0f]! |= 0x80), wantCode: 'SNP_POLICY_RESERVED' },
    { name: 'VMPL 4', base: v2, mutate: (b) => (b[0x30] = 4), wantCode: 'SNP_VMPL_INVALID' },
    { name: 'signature algorithm 2', base: v2, mutate: (b) => (b[0x34] = 2), wantCode: 'SNP_SIGNATURE_ALGO_UNSUPPORTED' },
    { name: 'signer info reserved bit 5', base: v2, mutate: (b) => (b[0x48]! |= 0x20), wantCode: 'RESERVED_NONZERO' },
    { name: 'SIGNING_KEY 2 (reserved)', base: v2, mutate: (b) => (b[0x48] = 2 << 2), wantCode: 'SNP_SIGNING_KEY_INVALID' },
    { name: 'reserved 0x4C', base: v2, mutate: (b) => (b[0x4c] = 1), wantCode: 'RESERVED_NONZERO' },
    { name: 'v2: CPUID bytes must be zero', base: v2, mutate: (b) => (b[0x188] = 0x19), wantCode: 'RESERVED_NONZERO' },
    { name: 'v3: reserved after CPUID', base: v3, mutate: (b) => (b[0x18b] = 1), wantCode: 'RESERVED_NONZERO' },
    { name: 'reserved after CURRENT version', base: v3, mutate: (b) => (b[0x1eb] = 1), wantCode: 'RESERVED_NONZERO' },
    { name: 'reserved after COMMITTED version', base: v3, mutate: (b) => (b[0x1ef] = 1), wantCode: 'RESERVED_NONZERO' },
    { name: 'reserved 0x1F8 (v3: no mitigation vectors)', base: v3, mutate: (b) => (b[0x1f8] = 1), wantCode: 'RESERVED_NONZERO' },
    { name: 'reserved 0x29F', base: v3, mutate: (b) => (b[0x29f] = 1), wantCode: 'RESERVED_NONZERO' },
    { name: 'R above the P-384 scalar', base: v3, mutate: (b) => (b[0x2a0 + 48] = 1), wantCode: 'SNP_SIGNATURE_MALFORMED' },
    { name: 'S above the P-384 scalar', base: v3, mutate: (b) => (b[0x2a0 + 72 + 71] = 1), wantCode: 'SNP_SIGNATURE_MALFORMED' },
    { name: 'signature reserved tail', base: v3, mutate: (b) => (b[SNP_REPORT_SIZE - 1] = 1), wantCode: 'RESERVED_NONZERO' },
    { name: 'version 5 reads the mitigation vectors', base: v3, mutate: (b) => ((b[0] = 5), (b[0x1f8] = 1), (b[0x200] = 2)), wantCode: 'NO_ERROR' },
    { name: 'version 5, reserved 0x208', base: v3, mutate: (b) => ((b[0] = 5), (b[0x208] = 1)), wantCode: 'RESERVED_NONZERO' },
  ];
  for (const row of rows) {
    it(`rejects: ${row.name}`, () => {
      const b = row.base().slice();
      row.mutate(b);
      expect(codeOfSync(() => parseSnpReport(b))).toBe(row.wantCode);
    });
  }

  it('decodes fields, TCB layouts and products', () => {
    const r = parseSnpReport(v3());
    expect(r.version).toBe(3);
    expect(r.cpuid).toEqual({ family: 0x19, model: 0x01, stepping: 1 });
    expect(productFromCpuid(r.cpuid)).toBe('Milan');
    expect(decodeTcb(r.reportedTcb, 'Milan')).toEqual({ bootloader: 4, tee: 0, snp: 24, microcode: 219 });
    expect(r.policy.raw).toBe(0x3001fn);
    expect(r.policy.smt).toBe(true);
    expect(r.policy.debug).toBe(false);
    expect(r.signature.r).toHaveLength(48);
    expect(decodeTcb(0x0700000000030201n, 'Turin')).toEqual({ fmc: 1, bootloader: 2, tee: 3, snp: 0, microcode: 7 });
    expect(productFromCpuid({ family: 0x1a, model: 0x02, stepping: 0 })).toBe('Turin');
    expect(productFromCpuid({ family: 0x19, model: 0xa0, stepping: 0 })).toBe('Genoa');
    expect(productFromCpuid({ family: 0x17, model: 0x31, stepping: 0 })).toBeUndefined();
    const again = v3();
    const parsed = parseSnpReport(again);
    again[0x90]! ^= 0xff;
    expect(parsed.measurement[0]).not.toBe(again[0x90]); // the struct does not alias the input
  });

  it('fuzz: 10,000 inputs (random and mutated real reports) throw only AttestError', () => {
    const real = v3();
    const mutated = fc
      .array(fc.tuple(fc.nat(SNP_REPORT_SIZE - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 })
      .map((edits) => {
        const b = real.slice();
        for (const [i, v] of edits) b[i] = v;
        return b;
      });
    const arb = fc.oneof(fc.uint8Array({ maxLength: 1300 }), fc.uint8Array({ minLength: SNP_REPORT_SIZE, maxLength: SNP_REPORT_SIZE }), mutated);
    fc.assert(
      fc.property(arb, (b) => {
        try {
          parseSnpReport(b);
        } catch (e) {
          if (!(e instanceof AttestError)) throw e;
        }
      }),
      { numRuns: 10_000 },
    );
  });
});

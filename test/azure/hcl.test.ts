/**
 * HCL report parser on all four real HCL reports (three VMs, SNP and TDX, header versions 1
 * and 2): exact offsets, header rows, truncation sweep, trailing bytes, fuzzing; and the
 * evidence decoder's schema rules.
 */
import { expect, it } from 'vitest';
import fc from 'fast-check';
import { createHash } from 'node:crypto';
import { describeVectors, readVector, readVectorJson } from '../helpers/vectors.js';
import { parseHclReport } from '../../providers/azure/hcl.js';
import { decodeAzureEvidence } from '../../providers/azure/evidence.js';
import { AttestError } from '../../providers/common/errors.js';
import { codeOfSync } from '../amd-sev-snp/helpers.js';

const FILES = [
  'trustee/az-snp-vtpm/hcl-report.bin',
  'trustee/az-tdx-vtpm/hcl-report.bin',
  'azure-cvm-tooling/hcl-report-snp.bin',
  'azure-cvm-tooling/hcl-report-tdx.bin',
];
const reportSize = (b: Uint8Array): number => new DataView(b.buffer, b.byteOffset).getUint32(8, true);

describeVectors('HCL report parser', () => {
  for (const f of FILES) {
    it(`parses ${f}; SHA-256(runtime data) is the hardware report's REPORT_DATA (INDEX §1)`, () => {
      const h = parseHclReport(readVector(f));
      const digest = createHash('sha256').update(h.runtimeDataRaw).digest();
      const rd = h.hardware.type === 'snp' ? h.hardware.snp.reportData : h.hardware.tdReport.reportData;
      expect(Buffer.from(rd.subarray(0, 32)).equals(digest)).toBe(true);
      expect(rd.subarray(32).every((x) => x === 0)).toBe(true);
      expect(h.hashType).toBe('sha256');
      expect(h.runtimeData.akPub.kty).toBe('RSA');
      expect(h.hardware.type).toBe(f.includes('tdx') ? 'tdx' : 'snp');
    });
  }

  it('reads version, vm-configuration and user-data', () => {
    const snp = parseHclReport(readVector('azure-cvm-tooling/hcl-report-snp.bin'));
    expect(snp.version).toBe(1);
    expect(snp.runtimeData.vmConfiguration?.['current-time']).toBe(1678652405);
    expect(snp.runtimeData.userData).toBeUndefined();
    const tdx = parseHclReport(readVector('azure-cvm-tooling/hcl-report-tdx.bin'));
    expect(tdx.version).toBe(2);
    expect(tdx.runtimeData.userData).toEqual(new Uint8Array(64));
  });

  it('every prefix shorter than report_size is TRUNCATED; zero padding after it is optional', () => {
    for (const f of [FILES[0]!, FILES[1]!]) {
      const good = readVector(f);
      const end = reportSize(good);
      for (let n = 0; n < end; n++) expect(codeOfSync(() => parseHclReport(good.subarray(0, n)))).toBe('TRUNCATED');
      expect(codeOfSync(() => parseHclReport(good.subarray(0, end)))).toBe('NO_ERROR');
    }
  });

  it('a non-zero trailing byte, or too much padding, is TRAILING_BYTES', () => {
    const good = readVector(FILES[0]!);
    const b = good.slice();
    b[b.length - 1] = 1;
    expect(codeOfSync(() => parseHclReport(b))).toBe('TRAILING_BYTES');
    const long = new Uint8Array(good.length + 10_000);
    long.set(good);
    expect(codeOfSync(() => parseHclReport(long))).toBe('TRAILING_BYTES');
  });

  const rows: { name: string; file?: number; mutate: (b: Uint8Array, dv: DataView) => void; wantCode: string }[] = [
    { name: 'magic', mutate: (b) => (b[0] = 0x49), wantCode: 'HCL_MAGIC_INVALID' },
    { name: 'header version 3', mutate: (_b, dv) => dv.setUint32(4, 3, true), wantCode: 'HCL_HEADER_INVALID' },
    { name: 'report_size off by one', mutate: (_b, dv) => dv.setUint32(8, dv.getUint32(8, true) + 1, true), wantCode: 'HCL_HEADER_INVALID' },
    { name: 'request type 1', mutate: (_b, dv) => dv.setUint32(12, 1, true), wantCode: 'HCL_HEADER_INVALID' },
    { name: 'status non-zero', mutate: (_b, dv) => dv.setUint32(16, 1, true), wantCode: 'HCL_HEADER_INVALID' },
    { name: 'header reserved', mutate: (b) => (b[31] = 1), wantCode: 'RESERVED_NONZERO' },
    { name: 'IGVM data_size off by one', mutate: (_b, dv) => dv.setUint32(1216, dv.getUint32(1216, true) + 1, true), wantCode: 'HCL_HEADER_INVALID' },
    { name: 'IGVM version 2', mutate: (_b, dv) => dv.setUint32(1220, 2, true), wantCode: 'HCL_HEADER_INVALID' },
    { name: 'report type VBS (1)', mutate: (_b, dv) => dv.setUint32(1224, 1, true), wantCode: 'HCL_REPORT_TYPE_UNSUPPORTED' },
    { name: 'report type TDX over an SNP report', mutate: (_b, dv) => dv.setUint32(1224, 4, true), wantCode: 'TDREPORT_INVALID' },
    { name: 'report type SNP over a TDREPORT', file: 1, mutate: (_b, dv) => dv.setUint32(1224, 2, true), wantCode: 'SNP_REPORT_VERSION_UNSUPPORTED' },
    { name: 'hash type 9', mutate: (_b, dv) => dv.setUint32(1228, 9, true), wantCode: 'HCL_HASH_TYPE_UNSUPPORTED' },
    { name: 'variable data size huge', mutate: (_b, dv) => dv.setUint32(1232, 0x10000, true), wantCode: 'LIMIT_EXCEEDED' },
    { name: 'TDREPORT slot padding non-zero', file: 1, mutate: (b) => (b[32 + 1100] = 1), wantCode: 'RESERVED_NONZERO' },
    { name: 'runtime data not JSON', mutate: (b) => (b[1236] = 0x5b), wantCode: 'HCL_RUNTIME_DATA_INVALID' },
    { name: 'runtime data invalid UTF-8', mutate: (b) => (b[1250] = 0xff), wantCode: 'HCL_RUNTIME_DATA_INVALID' },
    { name: 'HCLAkPub renamed', mutate: (b) => (b[1236 + 19] = 0x42), wantCode: 'HCL_AK_MISSING' },
  ];
  for (const row of rows) {
    it(`rejects: ${row.name}`, () => {
      const b = readVector(FILES[row.file ?? 0]!).slice();
      row.mutate(b, new DataView(b.buffer));
      expect(codeOfSync(() => parseHclReport(b))).toBe(row.wantCode);
    });
  }

  it('fuzz: 10,000 inputs (random, mutated and cut real reports) throw only AttestError', () => {
    const real = readVector(FILES[0]!);
    const mutated = fc
      .array(fc.tuple(fc.nat(real.length - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 })
      .map((edits) => {
        const b = real.slice();
        for (const [i, v] of edits) b[i] = v;
        return b;
      });
    // Edits inside the runtime-data JSON exercise the JSON shape checks.
    const json = fc
      .array(fc.tuple(fc.integer({ min: 1236, max: reportSize(real) - 1 }), fc.integer({ min: 0x20, max: 0x7e })), { minLength: 1, maxLength: 4 })
      .map((edits) => {
        const b = real.slice();
        for (const [i, v] of edits) b[i] = v;
        return b;
      });
    const cut = fc.nat(real.length).map((n) => real.slice(0, n));
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 3000 }), mutated, json, cut), (b) => {
        try {
          parseHclReport(b);
        } catch (e) {
          if (!(e instanceof AttestError)) throw e;
        }
      }),
      { numRuns: 10_000 },
    );
  });
});

describeVectors('Azure evidence decoder', () => {
  type Json = Record<string, unknown>;
  const v1 = (): Json => readVectorJson('trustee/az-snp-vtpm/evidence-v1.json');
  it('accepts padded and unpadded base64url, rejects broken padding and standard alphabet', () => {
    const e = v1();
    expect(codeOfSync(() => decodeAzureEvidence('az-snp-vtpm', e))).toBe('NO_ERROR');
    expect(codeOfSync(() => decodeAzureEvidence('az-snp-vtpm', { ...e, hcl_report: String(e.hcl_report).replace(/=+$/, '') }))).toBe('NO_ERROR');
    expect(codeOfSync(() => decodeAzureEvidence('az-snp-vtpm', { ...e, hcl_report: `${String(e.hcl_report)}=` }))).toBe('BAD_ENCODING');
    expect(codeOfSync(() => decodeAzureEvidence('az-snp-vtpm', { ...e, vcek: String(e.vcek).replace(/-/g, '+') }))).toBe('EVIDENCE_INVALID');
  });
  it('rejects wrong shapes with EVIDENCE_INVALID', () => {
    const e = v1();
    for (const bad of [null, 1, 'x', [], { ...e, version: 3 }, { ...e, tpm_quote: { ...(e.tpm_quote as Json), message: 'zz' } }, { ...e, vcek: 5 }]) {
      expect(codeOfSync(() => decodeAzureEvidence('az-snp-vtpm', bad))).toBe('EVIDENCE_INVALID');
    }
    const v0 = readVectorJson<Json>('trustee/az-snp-vtpm/evidence-v0.json');
    expect(codeOfSync(() => decodeAzureEvidence('az-snp-vtpm', { ...v0, report: [256] }))).toBe('EVIDENCE_INVALID');
    expect(codeOfSync(() => decodeAzureEvidence('az-tdx-vtpm', v0))).toBe('EVIDENCE_INVALID');
  });
  it('fuzz: 10,000 JSON values throw only AttestError', () => {
    fc.assert(
      fc.property(fc.oneof(fc.jsonValue(), fc.record({ version: fc.jsonValue(), tpm_quote: fc.jsonValue(), hcl_report: fc.string(), vcek: fc.string() })), (v) => {
        for (const f of ['az-snp-vtpm', 'az-tdx-vtpm'] as const) {
          try {
            decodeAzureEvidence(f, v);
          } catch (e) {
            if (!(e instanceof AttestError)) throw e;
          }
        }
      }),
      { numRuns: 10_000 },
    );
  });
});

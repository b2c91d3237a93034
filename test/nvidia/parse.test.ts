/**
 * The SPDM 1.1 parser (providers/nvidia/parse.ts) on real reports (test/vectors/nvidia,
 * INDEX.md):
 * - NVIDIA attestation-sdk's golden parse of its H100 report (`spdm_parsed_output.json`,
 *   `spdm_req_parsed_output.json`) equals ours field by field, every opaque field and all 64
 *   measurement blocks included, with no field of ours left unchecked;
 * - every real report in the vectors parses (H100 PCIe and SXM, PPCIe, Blackwell) with the
 *   decoded opaque values the INDEX states;
 * - every prefix of a report throws TRUNCATED or another typed code, a trailing byte throws
 *   TRAILING_BYTES (trustee's `hopper_coco_report1.txt` carries one), and a negative table of
 *   hand-made corruptions each throws its own code.
 */
import { describe, expect, it } from 'vitest';
import { toHex } from '../../providers/common/encoding.js';
import { OPAQUE_FIELD_NAMES, parseAttestationReport, signedPart, SPDM } from '../../providers/nvidia/parse.js';
import { describeVectors, readVectorJson, readVectorText } from '../helpers/vectors.js';
import { REPORTS, codeOf, reportBytes } from './fixtures.js';


const hx = (n: number): string => `0x${n.toString(16).padStart(2, '0')}`;

describeVectors('nvidia SPDM parser: golden parse of the attestation-sdk H100 report', () => {
  const dir = 'nvidia/attestation-sdk/nv-attestation-sdk-cpp/unit-tests/testdata';
  const report = parseAttestationReport(reportBytes(readVectorText(`${dir}/hopperAttestationReport.txt`)));

  it('request: every field of spdm_req_parsed_output.json', () => {
    const golden = readVectorJson<Record<string, string>>(`${dir}/spdm_req_parsed_output.json`);
    const ours: Record<string, string> = {
      SPDMVersion: hx(report.request.version),
      RequestResponseCode: hx(report.request.code),
      Param1: hx(report.request.param1),
      Param2: hx(report.request.param2),
      Nonce: `0x${toHex(report.request.nonce)}`,
      SlotIDParam: hx(report.request.slotIdParam),
    };
    expect(Object.keys(golden).sort()).toEqual(Object.keys(ours).sort());
    for (const k of Object.keys(golden)) expect({ k, v: ours[k] }).toEqual({ k, v: golden[k] });
  });

  it('response: header, record, nonce, opaque fields and signature equal spdm_parsed_output.json', () => {
    interface Golden {
      SPDMVersion: string;
      RequestResponseCode: string;
      Param1: string;
      Param2: string;
      NumberOfBlocks: number;
      MeasurementRecordLength: number;
      Nonce: string;
      OpaqueLength: number;
      Signature: string;
      MeasurementRecord: {
        NumberOfBlocks: number;
        MeasurementBlocks: Record<string, { DMTFSpecMeasurementValueType: number; DMTFSpecMeasurementValueSize: number; DMTFSpecMeasurementValue: string }>;
      };
      OpaqueData: { OpaqueDataField: Record<string, string | number[]> };
    }
    const g = readVectorJson<Golden>(`${dir}/spdm_parsed_output.json`);
    const r = report.response;
    expect(hx(r.version)).toBe(g.SPDMVersion);
    expect(hx(r.code)).toBe(g.RequestResponseCode);
    expect(hx(r.param1)).toBe(g.Param1);
    expect(hx(r.param2)).toBe(g.Param2);
    expect(r.numberOfBlocks).toBe(g.NumberOfBlocks);
    expect(r.measurementRecordLength).toBe(g.MeasurementRecordLength);
    expect(`0x${toHex(r.nonce)}`).toBe(g.Nonce);
    expect(r.opaqueLength).toBe(g.OpaqueLength);
    expect(`0x${toHex(r.signature)}`).toBe(g.Signature);
    // Measurement blocks: the same set of indices, each value/type/size equal.
    expect(g.MeasurementRecord.NumberOfBlocks).toBe(r.blocks.length);
    expect(Object.keys(g.MeasurementRecord.MeasurementBlocks).map(Number).sort((a, b) => a - b)).toEqual(r.blocks.map((b) => b.index));
    for (const b of r.blocks) {
      const gb = g.MeasurementRecord.MeasurementBlocks[String(b.index)]!;
      expect({ i: b.index, t: b.valueType, s: b.value.length, v: `0x${toHex(b.value)}` }).toEqual({
        i: b.index,
        t: gb.DMTFSpecMeasurementValueType,
        s: gb.DMTFSpecMeasurementValueSize,
        v: gb.DMTFSpecMeasurementValue,
      });
    }
    // Opaque fields: the same set of names, each value equal (MSRSCNT as a list of u32).
    const ours: Record<string, string | number[]> = {};
    for (const f of r.opaque) {
      const name = `OPAQUE_FIELD_ID_${OPAQUE_FIELD_NAMES.get(f.id)}`;
      ours[name] = name === 'OPAQUE_FIELD_ID_MSRSCNT' ? [...report.info.measurementCounts!] : `0x${toHex(f.value)}`;
    }
    const golden = g.OpaqueData.OpaqueDataField;
    // The golden file was written by an SDK version that did not print fields 34 and 36 yet
    // (its printer predates them); they are in the signed bytes, so ours has them: exactly those
    // two, with the values NVIDIA's newer SDK reports for this GPU (opaque v1, SPT mode).
    const extra = Object.keys(ours).filter((k) => !(k in golden));
    expect(extra.sort()).toEqual(['OPAQUE_FIELD_ID_FEATURE_FLAG', 'OPAQUE_FIELD_ID_OPAQUE_DATA_VERSION']);
    expect([ours.OPAQUE_FIELD_ID_OPAQUE_DATA_VERSION, ours.OPAQUE_FIELD_ID_FEATURE_FLAG]).toEqual(['0x0100', '0x0000']);
    for (const k of Object.keys(golden)) expect({ k, v: ours[k] }).toEqual({ k, v: golden[k] });
  });

  it('decoded opaque values are what NVIDIA prints for this report', () => {
    expect(report.info).toMatchObject({
      driverVersion: '580.159.03',
      vbiosVersion: '96.00.74.00.20',
      project: '1010',
      projectSku: '0205',
      chipSku: '862',
      boardId: 'a1040000',
      nvdec0: 'disabled',
      protectedPcie: 'disabled',
      opaqueDataVersion: 1,
      featureFlag: 'spt',
    });
    expect(toHex(report.info.fwid!)).toBe('f1ae7d0093a3f5689cced58045c9744f94eb2aa4ddca88135197fb41a7be45576c2881cf920e2cbcc090b1cb921f7b2d');
  });
});

describeVectors('nvidia SPDM parser: every real report', () => {
  for (const v of REPORTS) {
    it(`${v.name}: parses, ${v.blocks} blocks, driver ${v.driver}, VBIOS ${v.vbios}`, () => {
      const r = parseAttestationReport(v.bytes());
      expect(r.response.blocks).toHaveLength(v.blocks);
      expect(r.info.driverVersion).toBe(v.driver);
      expect(r.info.vbiosVersion).toBe(v.vbios);
      expect(`${r.info.project}/${r.info.projectSku}/${r.info.chipSku}`).toBe(v.sku);
      expect(toHex(r.request.nonce)).toBe(v.nonce);
      expect(r.info.fwid === undefined).toBe(!v.fwid);
      if (v.ppcie) expect([r.info.protectedPcie, r.info.featureFlag]).toEqual(['enabled', 'ppcie']);
    });
  }

  it('the nvtrust 550.90.07 sample decodes as INDEX.md says (VBIOS 96.00.9F.00.01, FWID f5c384ae…)', () => {
    const r = parseAttestationReport(reportBytes(readVectorText('nvidia/nvtrust/local_gpu_verifier/samples/hopperAttestationReport.txt')));
    expect(r.info.vbiosVersion).toBe('96.00.9F.00.01');
    expect(r.info.boardId).toBe('b1030000');
    expect(toHex(r.info.fwid!)).toBe('f5c384aebb579217a2c66b17ed0f28e6a9b8d639041acd7b4721cec004f7275494ba94bb5cdfdb3055ee051762b1f75d');
    expect(r.info.measurementCounts).toHaveLength(64);
    expect(r.info.opaqueDataVersion).toBeUndefined();
  });

  it("trustee's hopper_coco_report1.txt carries one byte after the signature: TRAILING_BYTES", () => {
    const bytes = reportBytes(readVectorText('nvidia/trustee/test_data/nvidia/hopper_coco_report1.txt'));
    expect(codeOf(() => parseAttestationReport(bytes))).toBe('TRAILING_BYTES');
    expect(codeOf(() => parseAttestationReport(bytes.subarray(0, bytes.length - 1)))).toBe('ACCEPTED');
  });
});

describeVectors('nvidia SPDM parser: truncation, trailing bytes and corruption', () => {
  const base = REPORTS[0]!.bytes();

  it('every prefix throws a typed error (TRUNCATED unless a length field was cut into something else)', () => {
    const codes = new Map<string, number>();
    for (let n = 0; n < base.length; n++) {
      const code = codeOf(() => parseAttestationReport(base.subarray(0, n)));
      expect({ n, code }).not.toEqual({ n, code: 'ACCEPTED' });
      codes.set(code, (codes.get(code) ?? 0) + 1);
    }
    // Removing bytes only ever shortens: nothing but TRUNCATED is possible.
    expect([...codes.keys()]).toEqual(['TRUNCATED']);
  });

  it('one trailing byte: TRAILING_BYTES', () => {
    const m = new Uint8Array(base.length + 1);
    m.set(base);
    expect(codeOf(() => parseAttestationReport(m))).toBe('TRAILING_BYTES');
  });

  it('signedPart splits off exactly the last 96 bytes', () => {
    const { signed, signature } = signedPart(base);
    expect(signed.length + signature.length).toBe(base.length);
    expect(signature.length).toBe(SPDM.SIGNATURE_LENGTH);
    expect(toHex(signature)).toBe(toHex(parseAttestationReport(base).response.signature));
  });

  // Offsets in the pre-v2.3.0 report: request 0..36, response header at 37, record at 45,
  // first block 45..99, nonce at 45+3520, opaque length at 45+3520+32.
  const RESP = 37;
  const REC = RESP + 8;
  const OPQ = REC + 3520 + 32;
  const set = (i: number, v: number) => (m: Uint8Array) => {
    m[i] = v;
  };
  const rows: Array<{ name: string; mutate: (m: Uint8Array) => void; wantCode: string }> = [
    { name: 'request SPDMVersion 0x12', mutate: set(0, 0x12), wantCode: 'NVIDIA_SPDM_MALFORMED' },
    { name: 'request code CHALLENGE', mutate: set(1, 0x83), wantCode: 'NVIDIA_SPDM_MALFORMED' },
    { name: 'request without signature', mutate: set(2, 0x00), wantCode: 'NVIDIA_SPDM_MALFORMED' },
    { name: 'request for one index', mutate: set(3, 0x01), wantCode: 'NVIDIA_SPDM_MALFORMED' },
    { name: 'request slot 1', mutate: set(36, 0x01), wantCode: 'NVIDIA_SPDM_MALFORMED' },
    { name: 'request reserved slot bits', mutate: set(36, 0x10), wantCode: 'RESERVED_NONZERO' },
    { name: 'response code ERROR', mutate: set(RESP + 1, 0x7f), wantCode: 'NVIDIA_SPDM_MALFORMED' },
    { name: 'response reserved Param2', mutate: set(RESP + 3, 0x01), wantCode: 'RESERVED_NONZERO' },
    { name: 'zero blocks', mutate: set(RESP + 4, 0), wantCode: 'NVIDIA_SPDM_MALFORMED' },
    { name: 'one block more than the record holds', mutate: set(RESP + 4, 65), wantCode: 'TRUNCATED' },
    { name: 'one block fewer than the record holds', mutate: set(RESP + 4, 63), wantCode: 'TRAILING_BYTES' },
    { name: 'record length beyond the cap', mutate: set(RESP + 7, 0x01), wantCode: 'LIMIT_EXCEEDED' },
    { name: 'block index out of order', mutate: set(REC + 55, 1), wantCode: 'NVIDIA_SPDM_MALFORMED' },
    { name: 'non-DMTF block', mutate: set(REC + 1, 0x02), wantCode: 'NVIDIA_SPDM_MALFORMED' },
    { name: 'raw bit stream block', mutate: set(REC + 4, 0x81), wantCode: 'NVIDIA_SPDM_MALFORMED' },
    { name: 'block size lies', mutate: set(REC + 2, 52), wantCode: 'TRAILING_BYTES' },
    { name: 'opaque length longer than the report', mutate: set(OPQ + 1, 0x7f), wantCode: 'LIMIT_EXCEEDED' },
    { name: 'opaque length one short', mutate: (m) => void (m[OPQ] = (m[OPQ] as number) - 1), wantCode: 'TRUNCATED' },
    { name: 'unknown opaque field id', mutate: set(OPQ + 2, 0x3f), wantCode: 'NVIDIA_OPAQUE_MALFORMED' },
    { name: 'duplicate opaque field', mutate: set(OPQ + 14, 0x06), wantCode: 'NVIDIA_OPAQUE_MALFORMED' },
    { name: 'NVDAOD-headed opaque layout', mutate: (m) => m.set([0x4e, 0x56, 0x44, 0x41, 0x4f, 0x44], OPQ + 2), wantCode: 'NVIDIA_OPAQUE_UNSUPPORTED' },
  ];
  for (const row of rows) {
    it(`${row.name} → ${row.wantCode}`, () => {
      const m = base.slice();
      row.mutate(m);
      expect(codeOf(() => parseAttestationReport(m))).toBe(row.wantCode);
    });
  }
});

describe('nvidia SPDM parser: limits without vectors', () => {
  it('a report above 64 KiB is LIMIT_EXCEEDED before anything is read', () => {
    expect(codeOf(() => parseAttestationReport(new Uint8Array(SPDM.MAX_REPORT_BYTES + 1)))).toBe('LIMIT_EXCEEDED');
  });
  it('an empty report is TRUNCATED', () => {
    expect(codeOf(() => parseAttestationReport(new Uint8Array(0)))).toBe('TRUNCATED');
  });
});

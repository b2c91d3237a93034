/**
 * @module providers/azure/hcl
 *
 * The Azure Confidential VM "HCL report" → readonly struct. Structure only: no crypto, no
 * clock, no policy. The paravisor (HCL, Host Compatibility Layer, running inside the TEE at
 * VMPL 0 / as the TD) writes this report into vTPM NV index 0x01400001: it asks the hardware
 * for a report whose REPORT_DATA is the hash of a JSON "runtime data" document carrying the
 * vTPM's attestation key (`HCLAkPub`), and stores both together.
 *
 * Layout (little-endian; Microsoft's IGVM attestation request structures as used by the
 * paravisor, `IGVM_REQUEST_DATA`; cross-checked on every Azure sample in test/vectors):
 *
 * | offset | size | field                         | accepted                               |
 * |--------|------|-------------------------------|----------------------------------------|
 * | 0      | 4    | signature                     | "HCLA"                                 |
 * | 4      | 4    | version                       | 1 or 2                                 |
 * | 8      | 4    | report_size                   | = 32 + 1184 + data_size, ≤ input length |
 * | 12     | 4    | request_type                  | 2 (attestation report)                 |
 * | 16     | 4    | status                        | 0                                      |
 * | 20     | 12   | reserved                      | MBZ                                    |
 * | 32     | 1184 | hardware report               | SNP ATTESTATION_REPORT (1184), or TDX TDREPORT (1024) + 160 MBZ |
 * | 1216   | 4    | data_size                     | = 20 + variable_data_size              |
 * | 1220   | 4    | version                       | 1                                      |
 * | 1224   | 4    | report_type                   | 2 = SNP, 4 = TDX (1 = VBS: refused)    |
 * | 1228   | 4    | report_data_hash_type         | 1 = SHA-256, 2 = SHA-384, 3 = SHA-512  |
 * | 1232   | 4    | variable_data_size            | ≤ 8 KiB                                |
 * | 1236   | n    | variable data (runtime data)  | UTF-8 JSON                             |
 * | …      |      | zero padding to the NV size   | MBZ                                    |
 *
 * Runtime data JSON: `{"keys": [JWK…], "vm-configuration": {…}, "user-data": "<hex>"}`. The
 * parser checks its shape (an object, at most 8 keys, exactly one `kid: "HCLAkPub"`,
 * `user-data` hex of at most 64 bytes) and keeps the raw bytes: the binding is the hash of those
 * exact bytes (verify.ts), and nothing in the JSON is believed before that check.
 *
 * TDREPORT (Intel TDX Module ABI, "TDREPORT_STRUCT"): REPORTMACSTRUCT (256: REPORTTYPE 4 with
 * type 0x81, reserved 12, CPUSVN 16, TEE_TCB_INFO_HASH 48, TEE_INFO_HASH 48, REPORTDATA 64 at
 * offset 128, reserved 32, MAC 32), TEE_TCB_INFO 239, reserved 17, TDINFO 512. Its MAC can only
 * be checked on the platform, so only REPORTDATA is read (and compared with the signed quote).
 */
import { ByteReader } from '../common/bytes.js';
import { malformed, CommonCodes } from '../common/errors.js';
import { fromHex, fromUtf8 } from '../common/encoding.js';
import type { HashName } from '../common/digest.js';
import { parseSnpReport, type SnpReport } from '../amd-sev-snp/parse.js';

export const HclCodes = {
  HCL_MAGIC_INVALID: 'HCL_MAGIC_INVALID',
  HCL_HEADER_INVALID: 'HCL_HEADER_INVALID',
  HCL_REPORT_TYPE_UNSUPPORTED: 'HCL_REPORT_TYPE_UNSUPPORTED',
  HCL_HASH_TYPE_UNSUPPORTED: 'HCL_HASH_TYPE_UNSUPPORTED',
  HCL_RUNTIME_DATA_INVALID: 'HCL_RUNTIME_DATA_INVALID',
  HCL_AK_MISSING: 'HCL_AK_MISSING',
  TDREPORT_INVALID: 'TDREPORT_INVALID',
} as const;

const HEADER_SIZE = 32;
const HW_REPORT_SIZE = 1184;
const IGVM_HEADER_SIZE = 20;
const VAR_DATA_OFFSET = HEADER_SIZE + HW_REPORT_SIZE + IGVM_HEADER_SIZE;
const MAX_VAR_DATA = 8 * 1024;
const MAX_PADDING = 8 * 1024;
const MAX_KEYS = 8;
const TDREPORT_SIZE = 1024;

export interface TdReport {
  readonly reportData: Uint8Array;
}

/** A JWK as found in the runtime data (shape-checked only; the TPM core validates the key). */
export type RuntimeJwk = Readonly<Record<string, unknown>> & { readonly kid: string; readonly kty: string };

export interface RuntimeData {
  readonly keys: readonly RuntimeJwk[];
  readonly akPub: RuntimeJwk;
  /** `vm-configuration` as given (flat string/number/boolean members only). */
  readonly vmConfiguration: Readonly<Record<string, string | number | boolean>> | undefined;
  /** `user-data` decoded from hex, when present. */
  readonly userData: Uint8Array | undefined;
}

export type HclHardwareReport = { readonly type: 'snp'; readonly snp: SnpReport } | { readonly type: 'tdx'; readonly tdReport: TdReport };

export interface HclReport {
  readonly version: number;
  readonly hardware: HclHardwareReport;
  readonly hashType: HashName;
  /** The exact runtime-data bytes whose hash the hardware report carries. */
  readonly runtimeDataRaw: Uint8Array;
  readonly runtimeData: RuntimeData;
}

function parseTdReport(slot: ByteReader): TdReport {
  const start = slot.offset;
  const r = slot.sub(TDREPORT_SIZE, 'TDREPORT');
  const type = r.u8('REPORTTYPE.type');
  if (type !== 0x81) throw malformed(HclCodes.TDREPORT_INVALID, `TDREPORT type 0x${type.toString(16)} is not TDX (0x81)`, { offset: start });
  r.skip(127, 'REPORTMACSTRUCT before REPORTDATA (not interpreted: MAC-protected, checkable on the platform only)');
  const reportData = r.bytes(64, 'REPORTDATA');
  r.skip(TDREPORT_SIZE - 192, 'rest of TDREPORT (TDINFO etc.; the signed TD quote is authoritative)');
  r.end('TDREPORT');
  slot.expectZero(HW_REPORT_SIZE - TDREPORT_SIZE, 'TDREPORT slot padding');
  return Object.freeze({ reportData });
}

const HEX_RE = /^(?:[0-9a-fA-F]{2})*$/;

function parseRuntimeData(raw: Uint8Array, offset: number): RuntimeData {
  const bad = (msg: string, cause?: unknown): never => {
    throw malformed(HclCodes.HCL_RUNTIME_DATA_INVALID, `HCL runtime data: ${msg}`, { offset, ...(cause ? { cause } : {}) });
  };
  let doc: unknown;
  try {
    doc = JSON.parse(fromUtf8(raw, 'HCL runtime data'));
  } catch (cause) {
    return bad('not valid UTF-8 JSON', cause);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) return bad('not a JSON object');
  const d = doc as Record<string, unknown>;
  const keys = d.keys;
  if (!Array.isArray(keys) || keys.length === 0 || keys.length > MAX_KEYS) return bad(`"keys" must be an array of 1..${MAX_KEYS} JWKs`);
  const jwks: RuntimeJwk[] = [];
  for (const k of keys) {
    if (typeof k !== 'object' || k === null || Array.isArray(k)) return bad('a key is not a JSON object');
    const j = k as Record<string, unknown>;
    if (typeof j.kid !== 'string' || typeof j.kty !== 'string') return bad('a key lacks "kid" or "kty"');
    jwks.push(Object.freeze({ ...j }) as RuntimeJwk);
  }
  const aks = jwks.filter((k) => k.kid === 'HCLAkPub');
  if (aks.length !== 1) {
    throw malformed(HclCodes.HCL_AK_MISSING, `HCL runtime data has ${aks.length} "HCLAkPub" keys, exactly one expected`, { offset });
  }
  let vmConfiguration: RuntimeData['vmConfiguration'];
  const vc = d['vm-configuration'];
  if (vc !== undefined) {
    if (typeof vc !== 'object' || vc === null || Array.isArray(vc)) return bad('"vm-configuration" is not an object');
    const out: Record<string, string | number | boolean> = {};
    for (const [k, v] of Object.entries(vc)) {
      if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') out[k] = v;
      else return bad(`"vm-configuration.${k}" is not a scalar`);
    }
    vmConfiguration = Object.freeze(out);
  }
  let userData: Uint8Array | undefined;
  const ud = d['user-data'];
  if (ud !== undefined) {
    if (typeof ud !== 'string' || ud.length > 128 || !HEX_RE.test(ud)) return bad('"user-data" is not hex of at most 64 bytes');
    userData = fromHex(ud, 'user-data');
  }
  return Object.freeze({ keys: Object.freeze(jwks), akPub: aks[0]!, vmConfiguration, userData });
}

const HASH_TYPES: Record<number, HashName> = { 1: 'sha256', 2: 'sha384', 3: 'sha512' };

/** Parses an HCL report (as read from vTPM NV index 0x01400001, zero padding allowed). */
export function parseHclReport(bytes: Uint8Array): HclReport {
  const r = new ByteReader(bytes);
  const magic = r.bytes(4, 'HCL signature');
  if (magic[0] !== 0x48 || magic[1] !== 0x43 || magic[2] !== 0x4c || magic[3] !== 0x41) {
    throw malformed(HclCodes.HCL_MAGIC_INVALID, 'HCL report does not start with "HCLA"', { offset: 0 });
  }
  const version = r.u32le('HCL version');
  if (version !== 1 && version !== 2) throw malformed(HclCodes.HCL_HEADER_INVALID, `HCL report version ${version} is not 1 or 2`, { offset: 4 });
  const reportSize = r.u32le('HCL report_size');
  const requestType = r.u32le('HCL request_type');
  if (requestType !== 2) throw malformed(HclCodes.HCL_HEADER_INVALID, `HCL request type ${requestType} is not 2 (attestation report)`, { offset: 12 });
  const status = r.u32le('HCL status');
  if (status !== 0) throw malformed(HclCodes.HCL_HEADER_INVALID, `HCL status ${status} is not 0`, { offset: 16 });
  r.expectZero(12, 'HCL header reserved');

  const slot = r.sub(HW_REPORT_SIZE, 'hardware report');
  // The IGVM request header says which report the slot holds; read it first.
  const dataSize = r.u32le('IGVM data_size');
  const igvmVersion = r.u32le('IGVM version');
  if (igvmVersion !== 1) throw malformed(HclCodes.HCL_HEADER_INVALID, `IGVM request version ${igvmVersion} is not 1`, { offset: r.offset - 4 });
  const reportType = r.u32le('IGVM report_type');
  const hashTypeId = r.u32le('IGVM report_data_hash_type');
  const varSize = r.u32le('IGVM variable_data_size');
  if (varSize > MAX_VAR_DATA) throw malformed(CommonCodes.LIMIT_EXCEEDED, `HCL runtime data size ${varSize} exceeds ${MAX_VAR_DATA}`, { offset: r.offset - 4 });
  if (dataSize !== IGVM_HEADER_SIZE + varSize) {
    throw malformed(HclCodes.HCL_HEADER_INVALID, `IGVM data_size ${dataSize} ≠ 20 + variable_data_size ${varSize}`, { offset: HEADER_SIZE + HW_REPORT_SIZE });
  }
  if (reportSize !== HEADER_SIZE + HW_REPORT_SIZE + dataSize) {
    throw malformed(HclCodes.HCL_HEADER_INVALID, `HCL report_size ${reportSize} ≠ 32 + 1184 + data_size ${dataSize}`, { offset: 8 });
  }
  const hashType = HASH_TYPES[hashTypeId];
  if (!hashType) throw malformed(HclCodes.HCL_HASH_TYPE_UNSUPPORTED, `IGVM hash type ${hashTypeId} is not SHA-256/384/512`, { offset: HEADER_SIZE + HW_REPORT_SIZE + 12 });
  let hardware: HclHardwareReport;
  if (reportType === 2) hardware = Object.freeze({ type: 'snp', snp: parseSnpReport(slot.bytes(HW_REPORT_SIZE, 'SNP report')) });
  else if (reportType === 4) hardware = Object.freeze({ type: 'tdx', tdReport: parseTdReport(slot) });
  else throw malformed(HclCodes.HCL_REPORT_TYPE_UNSUPPORTED, `IGVM report type ${reportType} is not SNP (2) or TDX (4)`, { offset: HEADER_SIZE + HW_REPORT_SIZE + 8 });
  slot.end('hardware report slot');

  const runtimeDataRaw = r.bytes(varSize, 'HCL runtime data');
  if (r.remaining > MAX_PADDING) throw malformed(CommonCodes.TRAILING_BYTES, `${r.remaining} bytes after the HCL report`, { offset: r.offset });
  const pad = r.rest();
  const nz = pad.findIndex((b) => b !== 0);
  if (nz >= 0) throw malformed(CommonCodes.TRAILING_BYTES, 'non-zero byte after the HCL report', { offset: reportSize + nz });
  const runtimeData = parseRuntimeData(runtimeDataRaw, VAR_DATA_OFFSET);
  return Object.freeze({ version, hardware, hashType, runtimeDataRaw, runtimeData });
}

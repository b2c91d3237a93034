/**
 * @module providers/nvidia/parse
 *
 * Bytes → readonly structs for an NVIDIA Hopper/Blackwell attestation report: the SPDM 1.1
 * GET_MEASUREMENTS request followed by the MEASUREMENTS response, exactly as the GPU's GSP
 * produced them (no crypto, no clock, no policy here; `verify.ts` checks the signature *before*
 * `parseAttestationReport` is called, over `signedPart`'s bytes).
 *
 * Layout, DMTF DSP0274 1.1, clause "GET_MEASUREMENTS request and MEASUREMENTS response messages"
 * (§10.11 in the 1.1.x editions; table numbers differ between errata, so the clause title is the
 * reference), with its "Measurement block" and "DMTF measurement specification format" tables;
 * multi-byte integers little endian (Conventions, "Byte ordering"):
 * ```
 * GET_MEASUREMENTS request (37 bytes: signature requested, so Nonce and SlotIDParam present)
 *   0  SPDMVersion           1   0x11
 *   1  RequestResponseCode   1   0xE0 (GET_MEASUREMENTS)
 *   2  Param1                1   attributes: bit 0 = signature requested (required here); other bits reserved in 1.1
 *   3  Param2                1   measurement operation: 0xFF = all measurement blocks (required here)
 *   4  Nonce                32   the verifier's challenge
 *  36  SlotIDParam           1   bits 3:0 certificate slot (0 here), bits 7:4 reserved
 *
 * MEASUREMENTS response
 *   0  SPDMVersion           1   0x11
 *   1  RequestResponseCode   1   0x60 (MEASUREMENTS)
 *   2  Param1                1   reserved when Param2 of the request was not 0
 *   3  Param2                1   reserved in 1.1
 *   4  NumberOfBlocks        1
 *   5  MeasurementRecordLength 3 (24-bit)
 *   8  MeasurementRecord     L   NumberOfBlocks measurement blocks, back to back
 * 8+L  Nonce                32   the responder's nonce
 *40+L  OpaqueLength          2
 *42+L  OpaqueData            O   NVIDIA's TLVs (below)
 * 42+L+O Signature          96   ECDSA P-384 r ‖ s (the size of the negotiated BaseAsymAlgo)
 *
 * Measurement block ("Measurement block format")
 *   0  Index                 1   1-based
 *   1  MeasurementSpecification 1 bit 0 = DMTF (the only one defined)
 *   2  MeasurementSize       2   = 3 + DMTFSpecMeasurementValueSize
 *   4  Measurement           … DMTF measurement ("DMTF measurement specification format"):
 *        DMTFSpecMeasurementValueType 1 (bit 7 = raw bit stream, bits 6:0 type),
 *        DMTFSpecMeasurementValueSize 2, DMTFSpecMeasurementValue
 * ```
 * NVIDIA's profile of it, enforced here: every block is a DMTF *digest* (bit 7 clear) of 48
 * bytes (SHA-384, the hash paired with P-384), indices strictly increasing; reserved fields zero.
 *
 * OpaqueData (NVIDIA, not DMTF): a list of TLVs `{u16 DataType, u16 DataSize, Data}`, little
 * endian, with the field ids of NVIDIA's open-source verifiers (nvtrust `OpaqueData`,
 * attestation-sdk `GpuOpaqueDataType`): 3 DRIVER_VERSION (ASCII, NUL padded), 6 VBIOS_VERSION
 * (8 bytes), 11 NVDEC0_STATUS (0xAA enabled / 0x55 disabled), 12 MSRSCNT (u32 counts),
 * 14 BOARD_ID, 15 CHIP_SKU, 16 CHIP_SKU_MOD, 17 PROJECT, 18 PROJECT_SKU, 19 PROJECT_SKU_MOD
 * (ASCII), 20 FWID (48 bytes), 21 PROTECTED_PCIE_STATUS (0xAA / 0x55), 22 SWITCH_PDI (8-byte
 * PDIs), 34 OPAQUE_DATA_VERSION and 36 FEATURE_FLAG (little-endian integers; 0 SPT, 1 MPT,
 * 2 PPCIE), and the rest kept as raw bytes. Unknown or duplicate ids are refused, as is the newer
 * `NVDAOD`-headed layout and any OPAQUE_DATA_VERSION above 1: this parser reads what it knows.
 */
import { ByteReader } from '../common/bytes.js';
import { CommonCodes, malformed } from '../common/errors.js';
import { toHex } from '../common/encoding.js';
import { NvidiaCodes } from './codes.js';

/** Sizes and caps. The caps are an order of magnitude above anything NVIDIA emits. */
export const SPDM = Object.freeze({
  VERSION_1_1: 0x11,
  GET_MEASUREMENTS: 0xe0,
  MEASUREMENTS: 0x60,
  REQUEST_LENGTH: 37,
  NONCE_LENGTH: 32,
  /** ECDSA P-384 r ‖ s. */
  SIGNATURE_LENGTH: 96,
  /** SHA-384 digests. */
  DIGEST_LENGTH: 48,
  /** DMTF measurement specification (MeasurementSpecification bit 0). */
  DMTF_SPECIFICATION: 0x01,
  MAX_REPORT_BYTES: 64 * 1024,
  MAX_RECORD_LENGTH: 32 * 1024,
  MAX_OPAQUE_LENGTH: 8 * 1024,
  MAX_OPAQUE_FIELDS: 64,
  MAX_OPAQUE_FIELD_BYTES: 2048,
});

/** NVIDIA's opaque-data field ids (nvtrust `OpaqueData.OPAQUE_DATA_TYPES`, attestation-sdk `GpuOpaqueDataType`). */
export const OPAQUE_FIELD = Object.freeze({
  CERT_ISSUER_NAME: 1,
  CERT_AUTHORITY_KEY_IDENTIFIER: 2,
  DRIVER_VERSION: 3,
  GPU_INFO: 4,
  SKU: 5,
  VBIOS_VERSION: 6,
  MANUFACTURER_ID: 7,
  TAMPER_DETECTION: 8,
  SMC: 9,
  VPR: 10,
  NVDEC0_STATUS: 11,
  MSRSCNT: 12,
  CPRINFO: 13,
  BOARD_ID: 14,
  CHIP_SKU: 15,
  CHIP_SKU_MOD: 16,
  PROJECT: 17,
  PROJECT_SKU: 18,
  PROJECT_SKU_MOD: 19,
  FWID: 20,
  PROTECTED_PCIE_STATUS: 21,
  SWITCH_PDI: 22,
  FLOORSWEPT_PORTS: 23,
  POSITION_ID: 24,
  LOCK_SWITCH_STATUS: 25,
  GPU_LINK_CONN: 32,
  SYS_ENABLE_STATUS: 33,
  OPAQUE_DATA_VERSION: 34,
  CHIP_INFO: 35,
  FEATURE_FLAG: 36,
});

/** Field id → name (`OPAQUE_FIELD_ID_<name>` in NVIDIA's tools). */
export const OPAQUE_FIELD_NAMES: ReadonlyMap<number, string> = new Map(Object.entries(OPAQUE_FIELD).map(([k, v]) => [v, k]));

/** Status bytes NVIDIA uses for on/off fields (NVDEC0, protected PCIe). */
export const STATUS_ENABLED = 0xaa;
export const STATUS_DISABLED = 0x55;

/** Highest OPAQUE_DATA_VERSION whose layout this parser knows. */
export const MAX_OPAQUE_DATA_VERSION = 1;

export interface SpdmMeasurementsRequest {
  readonly version: number;
  readonly code: number;
  readonly param1: number;
  readonly param2: number;
  readonly nonce: Uint8Array;
  readonly slotIdParam: number;
}

export interface MeasurementBlock {
  /** 1-based SPDM index. */
  readonly index: number;
  readonly specification: number;
  readonly valueType: number;
  readonly value: Uint8Array;
}

export interface OpaqueField {
  readonly id: number;
  readonly value: Uint8Array;
}

export interface SpdmMeasurementsResponse {
  readonly version: number;
  readonly code: number;
  readonly param1: number;
  readonly param2: number;
  readonly numberOfBlocks: number;
  readonly measurementRecordLength: number;
  readonly blocks: readonly MeasurementBlock[];
  readonly nonce: Uint8Array;
  readonly opaqueLength: number;
  /** The TLVs in their order on the wire. */
  readonly opaque: readonly OpaqueField[];
  readonly signature: Uint8Array;
}

export type FeatureFlag = 'spt' | 'mpt' | 'ppcie';

/** The opaque fields this verifier interprets, decoded and checked. */
export interface GpuOpaqueInfo {
  readonly driverVersion: string;
  /** NVIDIA's dotted form, upper case, e.g. `96.00.9F.00.01`. */
  readonly vbiosVersion: string;
  readonly project: string;
  readonly projectSku: string;
  readonly projectSkuMod: string | undefined;
  readonly chipSku: string;
  readonly chipSkuMod: string | undefined;
  /** Hex. */
  readonly boardId: string | undefined;
  /** 48 bytes; absent on reports of drivers before the FWID field existed. */
  readonly fwid: Uint8Array | undefined;
  readonly nvdec0: 'enabled' | 'disabled';
  readonly protectedPcie: 'enabled' | 'disabled' | undefined;
  readonly opaqueDataVersion: number | undefined;
  readonly featureFlag: FeatureFlag | undefined;
  readonly measurementCounts: readonly number[] | undefined;
  readonly switchPdis: readonly Uint8Array[] | undefined;
}

export interface AttestationReport {
  readonly request: SpdmMeasurementsRequest;
  readonly response: SpdmMeasurementsResponse;
  readonly info: GpuOpaqueInfo;
}

const bad = (m: string, offset?: number): never => {
  throw malformed(NvidiaCodes.SPDM_MALFORMED, `SPDM: ${m}`, offset === undefined ? {} : { offset });
};
const badOpaque = (m: string, offset?: number): never => {
  throw malformed(NvidiaCodes.OPAQUE_MALFORMED, `SPDM opaque data: ${m}`, offset === undefined ? {} : { offset });
};

/**
 * Splits a report into the signed bytes (request ‖ response up to the signature: the SPDM 1.1
 * L1/L2 transcript of a single GET_MEASUREMENTS exchange) and the 96-byte signature, without
 * decoding any of it. The signature size is fixed by the algorithm this verifier pins
 * (ECDSA P-384), never read from the evidence.
 */
export function signedPart(report: Uint8Array): { signed: Uint8Array; signature: Uint8Array } {
  if (report.byteLength > SPDM.MAX_REPORT_BYTES) {
    throw malformed(CommonCodes.LIMIT_EXCEEDED, `attestation report of ${report.byteLength} bytes exceeds ${SPDM.MAX_REPORT_BYTES}`);
  }
  // The smallest report: request, an 8-byte response header, nonce, opaque length, signature.
  const min = SPDM.REQUEST_LENGTH + 8 + SPDM.NONCE_LENGTH + 2 + SPDM.SIGNATURE_LENGTH;
  if (report.byteLength < min) {
    throw malformed(CommonCodes.TRUNCATED, `truncated: an attestation report needs at least ${min} bytes, got ${report.byteLength}`, {
      offset: report.byteLength,
    });
  }
  const cut = report.byteLength - SPDM.SIGNATURE_LENGTH;
  return { signed: report.subarray(0, cut), signature: report.subarray(cut) };
}

function parseRequest(r: ByteReader): SpdmMeasurementsRequest {
  const at = r.offset;
  const version = r.u8('request SPDMVersion');
  if (version !== SPDM.VERSION_1_1) bad(`request SPDMVersion 0x${version.toString(16)} is not 0x11`, at);
  const code = r.u8('request RequestResponseCode');
  if (code !== SPDM.GET_MEASUREMENTS) bad(`request code 0x${code.toString(16)} is not GET_MEASUREMENTS (0xE0)`, at + 1);
  const param1 = r.u8('request Param1');
  // Bit 0: signature requested. The other bits are reserved in 1.1 (bit 1 is RawBitStreamRequested from 1.2).
  if (param1 !== 0x01) bad(`request Param1 0x${param1.toString(16)} is not 0x01 (signature requested, nothing else)`, at + 2);
  const param2 = r.u8('request Param2');
  if (param2 !== 0xff) bad(`request Param2 0x${param2.toString(16)} is not 0xFF (all measurements)`, at + 3);
  const nonce = r.bytes(SPDM.NONCE_LENGTH, 'request Nonce');
  const slotAt = r.offset;
  const slotIdParam = r.u8('request SlotIDParam');
  if ((slotIdParam & 0xf0) !== 0) {
    throw malformed(CommonCodes.RESERVED_NONZERO, `SPDM request SlotIDParam bits 7:4 are reserved, got 0x${slotIdParam.toString(16)}`, { offset: slotAt });
  }
  if (slotIdParam !== 0) bad(`request SlotIDParam selects slot ${slotIdParam}; NVIDIA GPUs attest with slot 0`, slotAt);
  r.end('GET_MEASUREMENTS request');
  return Object.freeze({ version, code, param1, param2, nonce, slotIdParam });
}

function parseBlock(r: ByteReader, previous: number): MeasurementBlock {
  const at = r.offset;
  const index = r.u8('measurement block Index');
  if (index <= previous || index === 0 || index > 0xef) bad(`measurement block index ${index} is out of order or out of range`, at);
  const specification = r.u8('MeasurementSpecification');
  if (specification !== SPDM.DMTF_SPECIFICATION) bad(`block ${index}: MeasurementSpecification 0x${specification.toString(16)} is not DMTF (0x01)`, at + 1);
  const size = r.u16le('MeasurementSize');
  const m = r.sub(size, `measurement block ${index}`);
  const valueType = m.u8('DMTFSpecMeasurementValueType');
  if ((valueType & 0x80) !== 0) bad(`block ${index}: a raw bit stream where a digest is expected`, at + 4);
  const valueSize = m.u16le('DMTFSpecMeasurementValueSize');
  if (valueSize !== SPDM.DIGEST_LENGTH) bad(`block ${index}: digest of ${valueSize} bytes, expected ${SPDM.DIGEST_LENGTH} (SHA-384)`, at + 5);
  const value = m.bytes(valueSize, 'DMTFSpecMeasurementValue');
  m.end(`measurement block ${index}`);
  return Object.freeze({ index, specification, valueType, value });
}

function parseOpaqueFields(r: ByteReader): OpaqueField[] {
  const out: OpaqueField[] = [];
  const seen = new Set<number>();
  while (r.remaining > 0) {
    const at = r.offset;
    if (out.length >= SPDM.MAX_OPAQUE_FIELDS) {
      throw malformed(CommonCodes.LIMIT_EXCEEDED, `SPDM opaque data: more than ${SPDM.MAX_OPAQUE_FIELDS} fields`, { offset: at });
    }
    const id = r.u16le('opaque DataType');
    const size = r.u16le('opaque DataSize');
    if (!OPAQUE_FIELD_NAMES.has(id)) badOpaque(`unknown field id ${id}`, at);
    if (seen.has(id)) badOpaque(`field ${OPAQUE_FIELD_NAMES.get(id)} appears twice`, at);
    if (size > SPDM.MAX_OPAQUE_FIELD_BYTES) {
      throw malformed(CommonCodes.LIMIT_EXCEEDED, `SPDM opaque data: field ${OPAQUE_FIELD_NAMES.get(id)} of ${size} bytes`, { offset: at });
    }
    seen.add(id);
    out.push(Object.freeze({ id, value: r.bytes(size, `opaque field ${OPAQUE_FIELD_NAMES.get(id)}`) }));
  }
  return out;
}

/** The `NVDAOD` magic of NVIDIA's newer headed opaque layout (attestation-sdk `OPAQUE_DATA_MAGIC`). */
const NVDAOD = [0x4e, 0x56, 0x44, 0x41, 0x4f, 0x44];

function parseResponse(r: ByteReader): SpdmMeasurementsResponse {
  const at = r.offset;
  const version = r.u8('response SPDMVersion');
  if (version !== SPDM.VERSION_1_1) bad(`response SPDMVersion 0x${version.toString(16)} is not 0x11`, at);
  const code = r.u8('response RequestResponseCode');
  if (code !== SPDM.MEASUREMENTS) bad(`response code 0x${code.toString(16)} is not MEASUREMENTS (0x60)`, at + 1);
  const param1 = r.u8('response Param1');
  const param2 = r.u8('response Param2');
  if (param1 !== 0 || param2 !== 0) {
    throw malformed(CommonCodes.RESERVED_NONZERO, `SPDM response Param1/Param2 are reserved here, got 0x${param1.toString(16)}/0x${param2.toString(16)}`, { offset: at + 2 });
  }
  const numberOfBlocks = r.u8('NumberOfBlocks');
  if (numberOfBlocks === 0) bad('the response carries no measurement block', at + 4);
  const lenBytes = r.bytes(3, 'MeasurementRecordLength');
  const measurementRecordLength = (lenBytes[0] as number) | ((lenBytes[1] as number) << 8) | ((lenBytes[2] as number) << 16);
  if (measurementRecordLength > SPDM.MAX_RECORD_LENGTH) {
    throw malformed(CommonCodes.LIMIT_EXCEEDED, `SPDM MeasurementRecordLength ${measurementRecordLength} exceeds ${SPDM.MAX_RECORD_LENGTH}`, { offset: at + 5 });
  }
  const record = r.sub(measurementRecordLength, 'MeasurementRecord');
  const blocks: MeasurementBlock[] = [];
  let previous = 0;
  for (let i = 0; i < numberOfBlocks; i++) {
    const b = parseBlock(record, previous);
    previous = b.index;
    blocks.push(b);
  }
  record.end('MeasurementRecord (NumberOfBlocks blocks)');
  const nonce = r.bytes(SPDM.NONCE_LENGTH, 'response Nonce');
  const opaqueAt = r.offset;
  const opaqueLength = r.u16le('OpaqueLength');
  if (opaqueLength > SPDM.MAX_OPAQUE_LENGTH) {
    throw malformed(CommonCodes.LIMIT_EXCEEDED, `SPDM OpaqueLength ${opaqueLength} exceeds ${SPDM.MAX_OPAQUE_LENGTH}`, { offset: opaqueAt });
  }
  const opaqueBytes = r.bytes(opaqueLength, 'OpaqueData');
  if (opaqueBytes.length >= NVDAOD.length && NVDAOD.every((b, i) => opaqueBytes[i] === b)) {
    throw malformed(NvidiaCodes.OPAQUE_UNSUPPORTED, 'SPDM opaque data uses the NVDAOD-headed layout, which this verifier does not read', { offset: opaqueAt + 2 });
  }
  const opaque = parseOpaqueFields(new ByteReader(opaqueBytes, opaqueAt + 2));
  const signature = r.bytes(SPDM.SIGNATURE_LENGTH, 'Signature');
  r.end('MEASUREMENTS response');
  return Object.freeze({
    version,
    code,
    param1,
    param2,
    numberOfBlocks,
    measurementRecordLength,
    blocks: Object.freeze(blocks),
    nonce,
    opaqueLength,
    opaque: Object.freeze(opaque),
    signature,
  });
}

const ASCII_RE = /^[\x20-\x7e]*$/;

/** ASCII text followed by NUL padding (no NUL inside the text). */
function asciiField(v: Uint8Array, name: string, re: RegExp): string {
  let end = v.length;
  while (end > 0 && v[end - 1] === 0) end--;
  let s = '';
  for (let i = 0; i < end; i++) s += String.fromCharCode(v[i] as number);
  if (!ASCII_RE.test(s) || !re.test(s)) badOpaque(`${name} "${s.replace(/[^\x20-\x7e]/g, '?')}" is not of the expected form`);
  return s;
}

/** A little-endian unsigned integer of 1..8 bytes (values above 2^53 are refused). */
function leUint(v: Uint8Array, name: string): number {
  if (v.length < 1 || v.length > 8) badOpaque(`${name} has ${v.length} bytes, expected 1..8`);
  let n = 0;
  for (let i = v.length - 1; i >= 0; i--) n = n * 256 + (v[i] as number);
  if (!Number.isSafeInteger(n)) badOpaque(`${name} is out of range`);
  return n;
}

function status(v: Uint8Array, name: string): 'enabled' | 'disabled' {
  if (v.length !== 1 || (v[0] !== STATUS_ENABLED && v[0] !== STATUS_DISABLED)) {
    badOpaque(`${name} must be one byte 0xAA (enabled) or 0x55 (disabled), got ${toHex(v)}`);
  }
  return v[0] === STATUS_ENABLED ? 'enabled' : 'disabled';
}

/**
 * NVIDIA's VBIOS version from its 8 raw bytes: bytes 3,2,1,0 then byte 4, each as two hex
 * digits, dotted and upper case (`00 9f 00 96 01 …` → `96.00.9F.00.01`), the form NVIDIA's
 * verifiers print and build VBIOS RIM ids from.
 */
export function formatVbiosVersion(raw: Uint8Array): string {
  if (raw.length !== 8) badOpaque(`VBIOS_VERSION has ${raw.length} bytes, expected 8`);
  return [raw[3], raw[2], raw[1], raw[0], raw[4]].map((b) => (b as number).toString(16).padStart(2, '0')).join('.').toUpperCase();
}

const FEATURE_FLAGS: readonly FeatureFlag[] = ['spt', 'mpt', 'ppcie'];

function decodeOpaque(fields: readonly OpaqueField[]): GpuOpaqueInfo {
  const get = (id: number): Uint8Array | undefined => fields.find((f) => f.id === id)?.value;
  const need = (id: number): Uint8Array => {
    const v = get(id);
    if (!v) return badOpaque(`required field ${OPAQUE_FIELD_NAMES.get(id)} is absent`);
    return v;
  };
  const opaqueDataVersion = get(OPAQUE_FIELD.OPAQUE_DATA_VERSION) && leUint(get(OPAQUE_FIELD.OPAQUE_DATA_VERSION)!, 'OPAQUE_DATA_VERSION');
  if (opaqueDataVersion !== undefined && opaqueDataVersion > MAX_OPAQUE_DATA_VERSION) {
    throw malformed(NvidiaCodes.OPAQUE_UNSUPPORTED, `SPDM opaque data version ${opaqueDataVersion} is newer than ${MAX_OPAQUE_DATA_VERSION}`);
  }
  const fwid = get(OPAQUE_FIELD.FWID);
  if (fwid && fwid.length !== SPDM.DIGEST_LENGTH) badOpaque(`FWID has ${fwid.length} bytes, expected ${SPDM.DIGEST_LENGTH}`);
  const counts = get(OPAQUE_FIELD.MSRSCNT);
  let measurementCounts: number[] | undefined;
  if (counts) {
    if (counts.length % 4 !== 0) badOpaque(`MSRSCNT of ${counts.length} bytes is not a list of u32`);
    const r = new ByteReader(counts);
    measurementCounts = [];
    while (r.remaining > 0) measurementCounts.push(r.u32le('MSRSCNT'));
  }
  const pdis = get(OPAQUE_FIELD.SWITCH_PDI);
  let switchPdis: Uint8Array[] | undefined;
  if (pdis) {
    if (pdis.length % 8 !== 0) badOpaque(`SWITCH_PDI of ${pdis.length} bytes is not a list of 8-byte PDIs`);
    switchPdis = [];
    for (let i = 0; i < pdis.length; i += 8) switchPdis.push(pdis.slice(i, i + 8));
  }
  const flag = get(OPAQUE_FIELD.FEATURE_FLAG);
  let featureFlag: FeatureFlag | undefined;
  if (flag) {
    const n = leUint(flag, 'FEATURE_FLAG');
    featureFlag = FEATURE_FLAGS[n];
    if (!featureFlag) badOpaque(`FEATURE_FLAG ${n} is not 0 (SPT), 1 (MPT) or 2 (PPCIE)`);
  }
  const optionalAscii = (id: number, re: RegExp): string | undefined => {
    const v = get(id);
    return v ? asciiField(v, OPAQUE_FIELD_NAMES.get(id) as string, re) : undefined;
  };
  const boardId = get(OPAQUE_FIELD.BOARD_ID);
  const ppcie = get(OPAQUE_FIELD.PROTECTED_PCIE_STATUS);
  return Object.freeze({
    // Versions and SKUs end up in RIM ids (and so in URLs): only these characters are accepted.
    driverVersion: asciiField(need(OPAQUE_FIELD.DRIVER_VERSION), 'DRIVER_VERSION', /^\d{1,4}(?:\.\d{1,4}){1,3}$/),
    vbiosVersion: formatVbiosVersion(need(OPAQUE_FIELD.VBIOS_VERSION)),
    project: asciiField(need(OPAQUE_FIELD.PROJECT), 'PROJECT', /^[A-Z0-9]{1,8}$/),
    projectSku: asciiField(need(OPAQUE_FIELD.PROJECT_SKU), 'PROJECT_SKU', /^[A-Z0-9]{1,8}$/),
    projectSkuMod: optionalAscii(OPAQUE_FIELD.PROJECT_SKU_MOD, /^[A-Z0-9]{0,8}$/),
    chipSku: asciiField(need(OPAQUE_FIELD.CHIP_SKU), 'CHIP_SKU', /^[A-Z0-9]{1,8}$/),
    chipSkuMod: optionalAscii(OPAQUE_FIELD.CHIP_SKU_MOD, /^[A-Z0-9]{0,8}$/),
    boardId: boardId ? toHex(boardId) : undefined,
    fwid,
    nvdec0: status(need(OPAQUE_FIELD.NVDEC0_STATUS), 'NVDEC0_STATUS'),
    protectedPcie: ppcie ? status(ppcie, 'PROTECTED_PCIE_STATUS') : undefined,
    opaqueDataVersion,
    featureFlag,
    measurementCounts: measurementCounts && Object.freeze(measurementCounts),
    switchPdis: switchPdis && Object.freeze(switchPdis),
  });
}

/**
 * Parses a whole attestation report: request (37 bytes), response, opaque fields, signature,
 * and requires every byte consumed. Call it only on a report whose signature verified.
 */
export function parseAttestationReport(report: Uint8Array): AttestationReport {
  signedPart(report); // size caps and the minimum length, before any field is read
  const r = new ByteReader(report);
  const request = parseRequest(r.sub(SPDM.REQUEST_LENGTH, 'GET_MEASUREMENTS request'));
  const response = parseResponse(r);
  r.end('attestation report');
  return Object.freeze({ request, response, info: decodeOpaque(response.opaque) });
}

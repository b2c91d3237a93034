/**
 * @module providers/intel-tdx/parse
 *
 * Intel TDX Quote version 4 → readonly struct. Structure only: no crypto, no clock, no policy.
 *
 * Layout: "Intel TDX DCAP Quote Generation Library and Quote Verification Library" API
 * reference, Appendix A.3 "Version 4 Quote Format (TDX-ECDSA, SGX-ECDSA)". All integers are
 * little-endian.
 *
 * Quote = Header (48) ‖ TD Quote Body (584) ‖ u32 signature data length ‖ signature data.
 *
 * Header (A.3.1):
 * | offset | size | field               | accepted                              |
 * |--------|------|---------------------|---------------------------------------|
 * | 0      | 2    | version             | 4                                     |
 * | 2      | 2    | attestation key type| 2 = ECDSA-256-with-P-256              |
 * | 4      | 4    | TEE type            | 0x81 = TDX                            |
 * | 8      | 2+2  | reserved            | MBZ                                   |
 * | 12     | 16   | QE vendor ID        | Intel 939a7233-f79c-4ca9-940a-0db3957f0607 |
 * | 28     | 20   | user data           |                                       |
 *
 * TD Quote Body (A.3.2, "TD REPORT" body, 584 bytes): TEE_TCB_SVN 16, MRSEAM 48,
 * MRSIGNERSEAM 48, SEAMATTRIBUTES 8, TDATTRIBUTES 8, XFAM 8, MRTD 48, MRCONFIGID 48,
 * MROWNER 48, MROWNERCONFIG 48, RTMR0..3 4×48, REPORTDATA 64.
 *
 * Quote Signature Data (A.3.8): ECDSA signature (r‖s, 64) over Header ‖ Body with the
 * attestation key; attestation public key (x‖y, 64); Certification Data (A.3.9): type u16,
 * size u32, data. Type 6 = "QE Report Certification Data" (A.3.11): QE report (SGX REPORT
 * body, 384, A.3.10), QE report signature (r‖s, 64, by the PCK key), QE authentication data
 * (u16 size + bytes), and nested Certification Data whose type must be 5 = PCK certificate
 * chain (PEM: PCK leaf, PCK Platform/Processor CA, root).
 *
 * Quote-generation services hand out a fixed-size buffer, so real quotes end in zero padding
 * after the signature data (70 bytes in the Azure sample, 3065 in the GCP one). Padding must
 * be all zero and at most MAX_PADDING bytes; any other trailing byte is TRAILING_BYTES.
 */
import { ByteReader } from '../common/bytes.js';
import { malformed, CommonCodes } from '../common/errors.js';
import { toHex } from '../common/encoding.js';

export const TdxParseCodes = {
  TDX_QUOTE_VERSION_UNSUPPORTED: 'TDX_QUOTE_VERSION_UNSUPPORTED',
  TDX_ATT_KEY_TYPE_UNSUPPORTED: 'TDX_ATT_KEY_TYPE_UNSUPPORTED',
  TDX_TEE_TYPE_UNSUPPORTED: 'TDX_TEE_TYPE_UNSUPPORTED',
  TDX_QE_VENDOR_UNKNOWN: 'TDX_QE_VENDOR_UNKNOWN',
  TDX_CERT_DATA_UNSUPPORTED: 'TDX_CERT_DATA_UNSUPPORTED',
} as const;

export const TDX_HEADER_SIZE = 48;
export const TDX_BODY_SIZE = 584;
export const TDX_QE_REPORT_SIZE = 384;
/** Intel's QE vendor ID (A.3.1). */
export const INTEL_QE_VENDOR_ID = '939a7233f79c4ca9940a0db3957f0607';
const MAX_PADDING = 16 * 1024;
const MAX_CERT_DATA = 16 * 1024;
const MAX_SIG_DATA = 24 * 1024;

export interface TdQuoteBody {
  readonly teeTcbSvn: Uint8Array;
  readonly mrSeam: Uint8Array;
  readonly mrSignerSeam: Uint8Array;
  readonly seamAttributes: Uint8Array;
  readonly tdAttributes: Uint8Array;
  readonly xfam: Uint8Array;
  readonly mrTd: Uint8Array;
  readonly mrConfigId: Uint8Array;
  readonly mrOwner: Uint8Array;
  readonly mrOwnerConfig: Uint8Array;
  readonly rtmrs: readonly [Uint8Array, Uint8Array, Uint8Array, Uint8Array];
  readonly reportData: Uint8Array;
}

/** SGX REPORT body of the Quoting Enclave (A.3.10). */
export interface QeReport {
  readonly cpuSvn: Uint8Array;
  readonly miscSelect: number;
  readonly attributes: Uint8Array;
  readonly mrEnclave: Uint8Array;
  readonly mrSigner: Uint8Array;
  readonly isvProdId: number;
  readonly isvSvn: number;
  readonly reportData: Uint8Array;
}

export interface TdQuote {
  readonly version: number;
  readonly qeVendorId: string;
  readonly userData: Uint8Array;
  readonly body: TdQuoteBody;
  /** Header ‖ body: what the quote signature covers (a copy). */
  readonly signed: Uint8Array;
  /** r‖s, big-endian (the IEEE P1363 form WebCrypto verifies). */
  readonly signature: Uint8Array;
  /** x‖y of the P-256 attestation key. */
  readonly attestationKey: Uint8Array;
  readonly qeReport: QeReport;
  /** The raw 384 QE report bytes the PCK signature covers. */
  readonly qeReportRaw: Uint8Array;
  readonly qeReportSignature: Uint8Array;
  readonly qeAuthData: Uint8Array;
  /** The PCK certificate chain, PEM text (certificates are parsed by verify). */
  readonly pckChainPem: string;
}

function parseBody(r: ByteReader): TdQuoteBody {
  return Object.freeze({
    teeTcbSvn: r.bytes(16, 'TEE_TCB_SVN'),
    mrSeam: r.bytes(48, 'MRSEAM'),
    mrSignerSeam: r.bytes(48, 'MRSIGNERSEAM'),
    seamAttributes: r.bytes(8, 'SEAMATTRIBUTES'),
    tdAttributes: r.bytes(8, 'TDATTRIBUTES'),
    xfam: r.bytes(8, 'XFAM'),
    mrTd: r.bytes(48, 'MRTD'),
    mrConfigId: r.bytes(48, 'MRCONFIGID'),
    mrOwner: r.bytes(48, 'MROWNER'),
    mrOwnerConfig: r.bytes(48, 'MROWNERCONFIG'),
    rtmrs: Object.freeze([r.bytes(48, 'RTMR0'), r.bytes(48, 'RTMR1'), r.bytes(48, 'RTMR2'), r.bytes(48, 'RTMR3')]) as TdQuoteBody['rtmrs'],
    reportData: r.bytes(64, 'REPORTDATA'),
  });
}

/** Parses one 384-byte SGX REPORT body (A.3.10); reserved ranges MBZ. */
export function parseQeReport(r: ByteReader): QeReport {
  const cpuSvn = r.bytes(16, 'QE CPUSVN');
  const miscSelect = r.u32le('QE MISCSELECT');
  r.expectZero(28, 'QE reserved1');
  const attributes = r.bytes(16, 'QE ATTRIBUTES');
  const mrEnclave = r.bytes(32, 'QE MRENCLAVE');
  r.expectZero(32, 'QE reserved2');
  const mrSigner = r.bytes(32, 'QE MRSIGNER');
  r.expectZero(96, 'QE reserved3');
  const isvProdId = r.u16le('QE ISVPRODID');
  const isvSvn = r.u16le('QE ISVSVN');
  r.expectZero(60, 'QE reserved4');
  const reportData = r.bytes(64, 'QE REPORTDATA');
  return Object.freeze({ cpuSvn, miscSelect, attributes, mrEnclave, mrSigner, isvProdId, isvSvn, reportData });
}

/** Parses a TDX Quote v4 with QE-report certification data (type 6 → type 5 PEM chain). */
export function parseTdQuote(bytes: Uint8Array): TdQuote {
  const r = new ByteReader(bytes);
  const version = r.u16le('version');
  if (version !== 4) throw malformed(TdxParseCodes.TDX_QUOTE_VERSION_UNSUPPORTED, `TDX quote version ${version} is not 4`, { offset: 0 });
  const akType = r.u16le('attestation key type');
  if (akType !== 2) throw malformed(TdxParseCodes.TDX_ATT_KEY_TYPE_UNSUPPORTED, `attestation key type ${akType} is not ECDSA P-256 (2)`, { offset: 2 });
  const teeType = r.u32le('TEE type');
  if (teeType !== 0x81) throw malformed(TdxParseCodes.TDX_TEE_TYPE_UNSUPPORTED, `TEE type 0x${teeType.toString(16)} is not TDX (0x81)`, { offset: 4 });
  r.expectZero(4, 'header reserved');
  const qeVendorId = toHex(r.bytes(16, 'QE vendor ID'));
  if (qeVendorId !== INTEL_QE_VENDOR_ID) throw malformed(TdxParseCodes.TDX_QE_VENDOR_UNKNOWN, `QE vendor ${qeVendorId} is not Intel's`, { offset: 12 });
  const userData = r.bytes(20, 'user data');
  const body = parseBody(r.sub(TDX_BODY_SIZE, 'TD quote body'));
  const signed = bytes.slice(0, TDX_HEADER_SIZE + TDX_BODY_SIZE);

  const sigLen = r.u32le('signature data length');
  if (sigLen > MAX_SIG_DATA) throw malformed(CommonCodes.LIMIT_EXCEEDED, `signature data length ${sigLen} exceeds ${MAX_SIG_DATA}`, { offset: r.offset - 4 });
  const s = r.sub(sigLen, 'quote signature data');
  const signature = s.bytes(64, 'quote signature');
  const attestationKey = s.bytes(64, 'attestation key');
  const certType = s.u16le('certification data type');
  if (certType !== 6) throw malformed(TdxParseCodes.TDX_CERT_DATA_UNSUPPORTED, `certification data type ${certType} is not 6 (QE report)`, { offset: s.offset - 2 });
  const certSize = s.u32le('certification data size');
  if (certSize > MAX_CERT_DATA) throw malformed(CommonCodes.LIMIT_EXCEEDED, `certification data size ${certSize} exceeds ${MAX_CERT_DATA}`, { offset: s.offset - 4 });
  const c = s.sub(certSize, 'QE report certification data');
  s.end('quote signature data');
  const qeReportReader = c.sub(TDX_QE_REPORT_SIZE, 'QE report');
  const qeReportStart = qeReportReader.offset;
  const qeReport = parseQeReport(qeReportReader);
  qeReportReader.end('QE report');
  const qeReportRaw = bytes.slice(qeReportStart, qeReportStart + TDX_QE_REPORT_SIZE);
  const qeReportSignature = c.bytes(64, 'QE report signature');
  const qeAuthData = c.bytes(c.u16le('QE authentication data size'), 'QE authentication data');
  const innerType = c.u16le('PCK certification data type');
  if (innerType !== 5) throw malformed(TdxParseCodes.TDX_CERT_DATA_UNSUPPORTED, `PCK certification data type ${innerType} is not 5 (PEM chain)`, { offset: c.offset - 2 });
  const innerSize = c.u32le('PCK certification data size');
  if (innerSize > MAX_CERT_DATA) throw malformed(CommonCodes.LIMIT_EXCEEDED, `PCK chain size ${innerSize} exceeds ${MAX_CERT_DATA}`, { offset: c.offset - 4 });
  const pem = c.bytes(innerSize, 'PCK certificate chain');
  c.end('QE report certification data');

  // Zero padding after the structure (see module doc), capped.
  if (r.remaining > MAX_PADDING) throw malformed(CommonCodes.TRAILING_BYTES, `${r.remaining} bytes after the TDX quote`, { offset: r.offset });
  const pad = r.offset;
  for (let i = pad; i < bytes.byteLength; i++) {
    if (bytes[i] !== 0) throw malformed(CommonCodes.TRAILING_BYTES, `non-zero byte after the TDX quote at offset ${i}`, { offset: i });
  }
  // PEM text: ASCII, with the NUL terminator some quote generators append.
  let end = pem.length;
  while (end > 0 && pem[end - 1] === 0) end--;
  let pckChainPem = '';
  for (let i = 0; i < end; i++) {
    const ch = pem[i]!;
    if (ch > 0x7e || (ch < 0x20 && ch !== 0x0a && ch !== 0x0d)) {
      throw malformed(CommonCodes.BAD_ENCODING, 'PCK certificate chain is not PEM text', { offset: i });
    }
    pckChainPem += String.fromCharCode(ch);
  }
  return Object.freeze({
    version,
    qeVendorId,
    userData,
    body,
    signed,
    signature,
    attestationKey,
    qeReport,
    qeReportRaw,
    qeReportSignature,
    qeAuthData,
    pckChainPem,
  });
}

/** TDATTRIBUTES bit 0: TUD.DEBUG (Intel TDX Module ABI spec, "TDATTRIBUTES"). */
export function tdDebug(body: TdQuoteBody): boolean {
  return (body.tdAttributes[0]! & 1) === 1;
}

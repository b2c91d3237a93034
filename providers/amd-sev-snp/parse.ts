/**
 * @module providers/amd-sev-snp/parse
 *
 * SEV-SNP ATTESTATION_REPORT → readonly struct. Structure only: no crypto, no clock, no policy.
 *
 * Layout: AMD "SEV Secure Nested Paging Firmware ABI Specification" (pub. 56860), §7.3
 * "Attestation", Table "ATTESTATION_REPORT Structure" (1184 = 0x4A0 bytes, little-endian):
 *
 * | offset | size | field                                   | notes                                   |
 * |--------|------|-----------------------------------------|-----------------------------------------|
 * | 0x000  | 4    | VERSION                                 | 2, 3, 4, 5 accepted                     |
 * | 0x004  | 4    | GUEST_SVN                               |                                         |
 * | 0x008  | 8    | POLICY                                  | Table "Guest Policy Structure"          |
 * | 0x010  | 16   | FAMILY_ID                               |                                         |
 * | 0x020  | 16   | IMAGE_ID                                |                                         |
 * | 0x030  | 4    | VMPL                                    | 0..3                                    |
 * | 0x034  | 4    | SIGNATURE_ALGO                          | 1 = ECDSA P-384 with SHA-384            |
 * | 0x038  | 8    | CURRENT_TCB (TCB_VERSION)               |                                         |
 * | 0x040  | 8    | PLATFORM_INFO                           |                                         |
 * | 0x048  | 4    | AUTHOR_KEY_EN(0) MASK_CHIP_KEY(1) SIGNING_KEY(4:2) | bits 31:5 MBZ                |
 * | 0x04C  | 4    | reserved                                | MBZ                                     |
 * | 0x050  | 64   | REPORT_DATA                             | guest-supplied                          |
 * | 0x090  | 48   | MEASUREMENT                             | launch digest                           |
 * | 0x0C0  | 32   | HOST_DATA                               |                                         |
 * | 0x0E0  | 48   | ID_KEY_DIGEST                           |                                         |
 * | 0x110  | 48   | AUTHOR_KEY_DIGEST                       |                                         |
 * | 0x140  | 32   | REPORT_ID                               |                                         |
 * | 0x160  | 32   | REPORT_ID_MA                            |                                         |
 * | 0x180  | 8    | REPORTED_TCB                            |                                         |
 * | 0x188  | 1+1+1| CPUID_FAM_ID, CPUID_MOD_ID, CPUID_STEP  | version ≥ 3; MBZ in version 2           |
 * | 0x18B  | 21   | reserved                                | MBZ                                     |
 * | 0x1A0  | 64   | CHIP_ID                                 | zero when MASK_CHIP_KEY                 |
 * | 0x1E0  | 8    | COMMITTED_TCB                           |                                         |
 * | 0x1E8  | 4    | CURRENT_BUILD, _MINOR, _MAJOR, reserved | last byte MBZ                           |
 * | 0x1EC  | 4    | COMMITTED_BUILD, _MINOR, _MAJOR, rsvd   | last byte MBZ                           |
 * | 0x1F0  | 8    | LAUNCH_TCB                              |                                         |
 * | 0x1F8  | 8+8  | LAUNCH_MIT_VECTOR, CURRENT_MIT_VECTOR   | version ≥ 5; MBZ before                 |
 * | 0x208  | 152  | reserved                                | MBZ                                     |
 * | 0x2A0  | 512  | SIGNATURE: R (72, LE), S (72, LE), rsvd | Table "ECDSA P-384 with SHA-384 Signature" |
 *
 * The signature covers bytes [0, 0x2A0). R and S are little-endian 72-byte fields holding
 * 48-byte P-384 scalars: the top 24 bytes of each must be zero, and the 368 bytes after S too.
 *
 * TCB_VERSION (Table "TCB_VERSION Structure") has two layouts: Milan/Genoa
 * `[bl, tee, rsvd×4, snp, ucode]`, Turin `[fmc, bl, tee, snp, rsvd×3, ucode]`. Which applies depends on
 * the product, which a version-2 report does not state, so TCBs are kept raw here and decoded
 * with `decodeTcb(raw, product)` once the product is known (report CPUID or VCEK).
 */
import { SNP_LAYOUT, type SnpField } from './layout.js';
import { ByteReader } from '../common/bytes.js';
import { malformed, CommonCodes } from '../common/errors.js';

export const SNP_REPORT_SIZE = 0x4a0;
/** The signature covers bytes [0, SNP_SIGNED_LENGTH). */
export const SNP_SIGNED_LENGTH = 0x2a0;
export const SNP_MIN_VERSION = 2;
export const SNP_MAX_VERSION = 5;
/** SIGNATURE_ALGO 1: ECDSA P-384 with SHA-384 (ABI spec, Table "Signature Algorithm Encodings"). */
export const SNP_SIG_ALGO_ECDSA_P384_SHA384 = 1;

export const SnpParseCodes = {
  SNP_REPORT_VERSION_UNSUPPORTED: 'SNP_REPORT_VERSION_UNSUPPORTED',
  SNP_SIGNATURE_ALGO_UNSUPPORTED: 'SNP_SIGNATURE_ALGO_UNSUPPORTED',
  SNP_POLICY_RESERVED: 'SNP_POLICY_RESERVED',
  SNP_VMPL_INVALID: 'SNP_VMPL_INVALID',
  SNP_SIGNING_KEY_INVALID: 'SNP_SIGNING_KEY_INVALID',
  SNP_SIGNATURE_MALFORMED: 'SNP_SIGNATURE_MALFORMED',
} as const;

export type SnpProduct = 'Milan' | 'Genoa' | 'Turin';
export const SNP_PRODUCTS: readonly SnpProduct[] = ['Milan', 'Genoa', 'Turin'];

/** Guest policy (ABI spec, Table "Guest Policy Structure"). */
export interface SnpPolicy {
  readonly raw: bigint;
  readonly abiMinor: number;
  readonly abiMajor: number;
  /** Bit 16: SMT allowed. */
  readonly smt: boolean;
  /** Bit 18: association with a migration agent allowed. */
  readonly migrateMa: boolean;
  /** Bit 19: debugging allowed (the hypervisor can read and write guest memory). */
  readonly debug: boolean;
  /** Bit 20: guest may run on a single socket only. */
  readonly singleSocket: boolean;
  readonly cxlAllow: boolean;
  readonly memAes256Xts: boolean;
  readonly raplDis: boolean;
  readonly ciphertextHiding: boolean;
  readonly pageSwapDisable: boolean;
}

export type SnpSigningKey = 'vcek' | 'vlek' | 'none';

export interface SnpVersionTriple {
  readonly build: number;
  readonly minor: number;
  readonly major: number;
}

export interface SnpReport {
  readonly version: number;
  readonly guestSvn: number;
  readonly policy: SnpPolicy;
  readonly familyId: Uint8Array;
  readonly imageId: Uint8Array;
  readonly vmpl: number;
  readonly signatureAlgo: number;
  readonly currentTcb: bigint;
  readonly platformInfo: bigint;
  readonly authorKeyEn: boolean;
  readonly maskChipKey: boolean;
  readonly signingKey: SnpSigningKey;
  readonly reportData: Uint8Array;
  readonly measurement: Uint8Array;
  readonly hostData: Uint8Array;
  readonly idKeyDigest: Uint8Array;
  readonly authorKeyDigest: Uint8Array;
  readonly reportId: Uint8Array;
  readonly reportIdMa: Uint8Array;
  readonly reportedTcb: bigint;
  /** Version ≥ 3 only. */
  readonly cpuid: { readonly family: number; readonly model: number; readonly stepping: number } | undefined;
  readonly chipId: Uint8Array;
  readonly committedTcb: bigint;
  readonly currentVersion: SnpVersionTriple;
  readonly committedVersion: SnpVersionTriple;
  readonly launchTcb: bigint;
  /** Version ≥ 5 only. */
  readonly launchMitVector: bigint | undefined;
  readonly currentMitVector: bigint | undefined;
  /** ECDSA P-384 signature as big-endian 48-byte r and s (converted from the report's LE). */
  readonly signature: { readonly r: Uint8Array; readonly s: Uint8Array };
  /** Bytes [0, 0x2A0): what the signature covers (a copy). */
  readonly signed: Uint8Array;
}

/** Policy bits 26..63 are reserved MBZ; bit 17 is reserved and must be one. */
const POLICY_MBZ_MASK = ~((1n << 26n) - 1n) & 0xffffffffffffffffn;

function decodePolicy(raw: bigint, offset: number): SnpPolicy {
  if (((raw >> 17n) & 1n) !== 1n) {
    throw malformed(SnpParseCodes.SNP_POLICY_RESERVED, 'SNP guest policy bit 17 (reserved, must be one) is zero', { offset });
  }
  if ((raw & POLICY_MBZ_MASK) !== 0n) {
    throw malformed(SnpParseCodes.SNP_POLICY_RESERVED, `SNP guest policy sets reserved bits (0x${raw.toString(16)})`, { offset });
  }
  const bit = (n: bigint): boolean => ((raw >> n) & 1n) === 1n;
  return Object.freeze({
    raw,
    abiMinor: Number(raw & 0xffn),
    abiMajor: Number((raw >> 8n) & 0xffn),
    smt: bit(16n),
    migrateMa: bit(18n),
    debug: bit(19n),
    singleSocket: bit(20n),
    cxlAllow: bit(21n),
    memAes256Xts: bit(22n),
    raplDis: bit(23n),
    ciphertextHiding: bit(24n),
    pageSwapDisable: bit(25n),
  });
}

/**
 * The parser reads sequentially; this ties each read to the one layout table (layout.ts): a
 * field read anywhere but at its offset is a bug here, not bad input.
 */
function at(r: ByteReader, f: SnpField): void {
  if (r.offset !== SNP_LAYOUT[f].off) throw new Error(`SNP parser out of step with the layout at ${f}: offset ${r.offset}, table ${SNP_LAYOUT[f].off}`);
}

/** A little-endian 72-byte scalar field → 48-byte big-endian P-384 scalar (top 24 bytes MBZ). */
function leScalar(r: ByteReader, what: string): Uint8Array {
  const start = r.offset;
  const le = r.bytes(72, what);
  for (let i = 48; i < 72; i++) {
    if (le[i] !== 0) {
      throw malformed(SnpParseCodes.SNP_SIGNATURE_MALFORMED, `${what}: bytes above the P-384 scalar must be zero`, { offset: start + i });
    }
  }
  return le.subarray(0, 48).reverse();
}

function versionTriple(r: ByteReader, what: string): SnpVersionTriple {
  const build = r.u8(`${what}.build`);
  const minor = r.u8(`${what}.minor`);
  const major = r.u8(`${what}.major`);
  r.expectZero(1, `${what}.reserved`);
  return Object.freeze({ build, minor, major });
}

/** Parses exactly one 1184-byte ATTESTATION_REPORT. */
export function parseSnpReport(bytes: Uint8Array): SnpReport {
  // Exact size first (TRUNCATED / TRAILING_BYTES, the shared codes), then field by field.
  if (bytes.byteLength < SNP_REPORT_SIZE) {
    throw malformed(CommonCodes.TRUNCATED, `SNP report is ${bytes.byteLength} bytes, needs ${SNP_REPORT_SIZE}`, { offset: bytes.byteLength });
  }
  if (bytes.byteLength > SNP_REPORT_SIZE) {
    throw malformed(CommonCodes.TRAILING_BYTES, `SNP report is ${bytes.byteLength} bytes, exactly ${SNP_REPORT_SIZE} expected`, { offset: SNP_REPORT_SIZE });
  }
  const r = new ByteReader(bytes);
  at(r, 'VERSION');
  const version = r.u32le('VERSION');
  if (version < SNP_MIN_VERSION || version > SNP_MAX_VERSION) {
    throw malformed(SnpParseCodes.SNP_REPORT_VERSION_UNSUPPORTED, `SNP report version ${version} is not supported (${SNP_MIN_VERSION}..${SNP_MAX_VERSION})`, { offset: 0 });
  }
  at(r, 'GUEST_SVN');
  const guestSvn = r.u32le('GUEST_SVN');
  at(r, 'POLICY');
  const policy = decodePolicy(r.u64le('POLICY'), SNP_LAYOUT.POLICY.off);
  at(r, 'FAMILY_ID');
  const familyId = r.bytes(16, 'FAMILY_ID');
  at(r, 'IMAGE_ID');
  const imageId = r.bytes(16, 'IMAGE_ID');
  at(r, 'VMPL');
  const vmpl = r.u32le('VMPL');
  if (vmpl > 3) throw malformed(SnpParseCodes.SNP_VMPL_INVALID, `VMPL ${vmpl} is not 0..3`, { offset: 0x30 });
  at(r, 'SIGNATURE_ALGO');
  const signatureAlgo = r.u32le('SIGNATURE_ALGO');
  if (signatureAlgo !== SNP_SIG_ALGO_ECDSA_P384_SHA384) {
    throw malformed(SnpParseCodes.SNP_SIGNATURE_ALGO_UNSUPPORTED, `SNP signature algorithm ${signatureAlgo} is not ECDSA P-384 SHA-384`, { offset: 0x34 });
  }
  at(r, 'CURRENT_TCB');
  const currentTcb = r.u64le('CURRENT_TCB');
  at(r, 'PLATFORM_INFO');
  const platformInfo = r.u64le('PLATFORM_INFO');
  at(r, 'SIGNER_INFO');
  const flags = r.u32le('signer info');
  if (flags >>> 5 !== 0) throw malformed(CommonCodes.RESERVED_NONZERO, 'signer info bits 31:5 must be zero', { offset: 0x48 });
  const keySel = (flags >>> 2) & 7;
  let signingKey: SnpSigningKey;
  if (keySel === 0) signingKey = 'vcek';
  else if (keySel === 1) signingKey = 'vlek';
  else if (keySel === 7) signingKey = 'none';
  else throw malformed(SnpParseCodes.SNP_SIGNING_KEY_INVALID, `SIGNING_KEY ${keySel} is reserved`, { offset: 0x48 });
  at(r, 'RESERVED_04C');
  r.expectZero(4, 'reserved 0x4C');
  at(r, 'REPORT_DATA');
  const reportData = r.bytes(64, 'REPORT_DATA');
  at(r, 'MEASUREMENT');
  const measurement = r.bytes(48, 'MEASUREMENT');
  at(r, 'HOST_DATA');
  const hostData = r.bytes(32, 'HOST_DATA');
  at(r, 'ID_KEY_DIGEST');
  const idKeyDigest = r.bytes(48, 'ID_KEY_DIGEST');
  at(r, 'AUTHOR_KEY_DIGEST');
  const authorKeyDigest = r.bytes(48, 'AUTHOR_KEY_DIGEST');
  at(r, 'REPORT_ID');
  const reportId = r.bytes(32, 'REPORT_ID');
  at(r, 'REPORT_ID_MA');
  const reportIdMa = r.bytes(32, 'REPORT_ID_MA');
  at(r, 'REPORTED_TCB');
  const reportedTcb = r.u64le('REPORTED_TCB');
  let cpuid: SnpReport['cpuid'];
  if (version >= 3) {
    at(r, 'CPUID_FAM_ID');
    cpuid = Object.freeze({ family: r.u8('CPUID_FAM_ID'), model: r.u8('CPUID_MOD_ID'), stepping: r.u8('CPUID_STEP') });
    at(r, 'RESERVED_18B');
    r.expectZero(21, 'reserved 0x18B');
  } else {
    at(r, 'CPUID_FAM_ID');
    r.expectZero(24, 'reserved 0x188');
  }
  at(r, 'CHIP_ID');
  const chipId = r.bytes(64, 'CHIP_ID');
  at(r, 'COMMITTED_TCB');
  const committedTcb = r.u64le('COMMITTED_TCB');
  at(r, 'CURRENT_BUILD');
  const currentVersion = versionTriple(r, 'CURRENT');
  at(r, 'COMMITTED_BUILD');
  const committedVersion = versionTriple(r, 'COMMITTED');
  at(r, 'LAUNCH_TCB');
  const launchTcb = r.u64le('LAUNCH_TCB');
  let launchMitVector: bigint | undefined;
  let currentMitVector: bigint | undefined;
  if (version >= 5) {
    at(r, 'LAUNCH_MIT_VECTOR');
    launchMitVector = r.u64le('LAUNCH_MIT_VECTOR');
    currentMitVector = r.u64le('CURRENT_MIT_VECTOR');
    at(r, 'RESERVED_208');
    r.expectZero(SNP_LAYOUT.RESERVED_208.len, 'reserved 0x208');
  } else {
    at(r, 'LAUNCH_MIT_VECTOR');
    r.expectZero(SNP_LAYOUT.SIGNATURE_R.off - SNP_LAYOUT.LAUNCH_MIT_VECTOR.off, 'reserved 0x1F8');
  }
  at(r, 'SIGNATURE_R');
  const sigR = leScalar(r, 'SIGNATURE.R');
  at(r, 'SIGNATURE_S');
  const sigS = leScalar(r, 'SIGNATURE.S');
  at(r, 'RESERVED_SIGNATURE');
  r.expectZero(SNP_LAYOUT.RESERVED_SIGNATURE.len, 'SIGNATURE reserved');
  r.end('SNP attestation report');
  return Object.freeze({
    version,
    guestSvn,
    policy,
    familyId,
    imageId,
    vmpl,
    signatureAlgo,
    currentTcb,
    platformInfo,
    authorKeyEn: (flags & 1) === 1,
    maskChipKey: (flags & 2) === 2,
    signingKey,
    reportData,
    measurement,
    hostData,
    idKeyDigest,
    authorKeyDigest,
    reportId,
    reportIdMa,
    reportedTcb,
    cpuid,
    chipId,
    committedTcb,
    currentVersion,
    committedVersion,
    launchTcb,
    launchMitVector,
    currentMitVector,
    signature: Object.freeze({ r: sigR, s: sigS }),
    signed: bytes.slice(0, SNP_SIGNED_LENGTH),
  });
}

/** A decoded TCB_VERSION. `fmc` exists on Turin only. */
export interface SnpTcb {
  readonly bootloader: number;
  readonly tee: number;
  readonly snp: number;
  readonly microcode: number;
  readonly fmc?: number;
}

/** Decodes a raw TCB_VERSION for `product` (ABI spec, Table "TCB_VERSION Structure"). */
export function decodeTcb(raw: bigint, product: SnpProduct): SnpTcb {
  const b = (i: number): number => Number((raw >> BigInt(8 * i)) & 0xffn);
  if (product === 'Turin') {
    return Object.freeze({ fmc: b(0), bootloader: b(1), tee: b(2), snp: b(3), microcode: b(7) });
  }
  return Object.freeze({ bootloader: b(0), tee: b(1), snp: b(6), microcode: b(7) });
}

/**
 * The product from CPUID_FAM_ID / CPUID_MOD_ID (report version ≥ 3): family 19h models 0xh
 * Milan, 1xh and Axh Genoa; family 1Ah models 0xh–1xh Turin. Undefined when unknown.
 */
export function productFromCpuid(cpuid: SnpReport['cpuid']): SnpProduct | undefined {
  if (!cpuid) return undefined;
  const hi = cpuid.model >> 4;
  if (cpuid.family === 0x19) {
    if (hi === 0x0) return 'Milan';
    if (hi === 0x1 || hi === 0xa) return 'Genoa';
  }
  if (cpuid.family === 0x1a && (hi === 0x0 || hi === 0x1)) return 'Turin';
  return undefined;
}

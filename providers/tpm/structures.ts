/**
 * @module providers/tpm/structures
 *
 * Parsers for the TPM 2.0 structures an attestation verifier reads, from
 * "TCG TPM 2.0 Library, Part 2: Structures" (rev. 1.59; section numbers below are that
 * revision's). Parse only: no signature checks, no policy. Hashing is limited to the Name
 * computation (Part 1 §16 "Names"), which is a pure function of the bytes.
 *
 * Why these rules:
 * - Every read goes through the one bounds-checked `ByteReader`; a lying size prefix throws
 *   `TRUNCATED`, never short data. Every top-level parser calls `end()` (trailing bytes →
 *   `TRAILING_BYTES`) and nested sized structures (TPM2B_PUBLIC) use `sub()` so the inner
 *   parser proves it consumed exactly its size.
 * - Union selectors are checked against the algorithms this module understands; anything else is
 *   `TPM_ALG_UNSUPPORTED` (a verifier must not guess the layout of an unknown union member).
 * - Lists are capped (TPML_PCR_SELECTION count ≤ 16, sizeofSelect ≤ 8) and TPM2B sizes are capped
 *   at the union sizes of Part 2 (`LIMIT_EXCEEDED`).
 * - Reserved TPMA_OBJECT bits must be zero (Part 2 §8.3.2, `RESERVED_NONZERO`).
 * - Parsed structs are frozen copies: they never alias the caller's buffer.
 */
import { ByteReader, concat, u16be } from '../common/bytes.js';
import { malformed, rejected, CommonCodes } from '../common/errors.js';
import { digest, type HashName } from '../common/digest.js';
import { TpmCodes } from './codes.js';

// ---------------------------------------------------------------------------------------------
// Constants (Part 2 §6)
// ---------------------------------------------------------------------------------------------

/** TPM_ALG_ID values used here (Part 2 §6.3, Table 9). */
export const TPM_ALG = {
  RSA: 0x0001,
  SHA1: 0x0004,
  HMAC: 0x0005,
  AES: 0x0006,
  KEYEDHASH: 0x0008,
  XOR: 0x000a,
  SHA256: 0x000b,
  SHA384: 0x000c,
  SHA512: 0x000d,
  NULL: 0x0010,
  RSASSA: 0x0014,
  RSAES: 0x0015,
  RSAPSS: 0x0016,
  OAEP: 0x0017,
  ECDSA: 0x0018,
  ECDH: 0x0019,
  ECDAA: 0x001a,
  ECSCHNORR: 0x001c,
  KDF1_SP800_56A: 0x0020,
  KDF2: 0x0021,
  KDF1_SP800_108: 0x0022,
  ECC: 0x0023,
  SYMCIPHER: 0x0025,
  CFB: 0x0043,
} as const;

/** TPM_ECC_CURVE values (Part 2 §6.4, Table 10). */
export const TPM_ECC = { NIST_P256: 0x0003, NIST_P384: 0x0004 } as const;

/** TPM_ST values for attestation structures (Part 2 §6.9, Table 19). */
export const TPM_ST = {
  ATTEST_NV: 0x8014,
  ATTEST_COMMAND_AUDIT: 0x8015,
  ATTEST_SESSION_AUDIT: 0x8016,
  ATTEST_CERTIFY: 0x8017,
  ATTEST_QUOTE: 0x8018,
  ATTEST_TIME: 0x8019,
  ATTEST_CREATION: 0x801a,
} as const;

/** TPM_GENERATED_VALUE (Part 2 §6.2): "\xffTCG", the first word of every TPMS_ATTEST. */
export const TPM_GENERATED_VALUE = 0xff544347;

/** Hash algorithms this module maps to WebCrypto. */
export type TpmHash = Extract<HashName, 'sha1' | 'sha256' | 'sha384' | 'sha512'>;

const HASH_BY_ALG: ReadonlyMap<number, TpmHash> = new Map([
  [TPM_ALG.SHA1, 'sha1'],
  [TPM_ALG.SHA256, 'sha256'],
  [TPM_ALG.SHA384, 'sha384'],
  [TPM_ALG.SHA512, 'sha512'],
]);
const ALG_BY_HASH: Readonly<Record<TpmHash, number>> = {
  sha1: TPM_ALG.SHA1,
  sha256: TPM_ALG.SHA256,
  sha384: TPM_ALG.SHA384,
  sha512: TPM_ALG.SHA512,
};

/** The hash named by a TPM_ALG_ID, or TPM_ALG_UNSUPPORTED. */
export function hashFromAlg(alg: number, what = 'hash algorithm'): TpmHash {
  const h = HASH_BY_ALG.get(alg);
  if (!h) throw malformed(TpmCodes.TPM_ALG_UNSUPPORTED, `${what} 0x${alg.toString(16).padStart(4, '0')} is not a supported hash`);
  return h;
}
export function algFromHash(h: TpmHash): number {
  return ALG_BY_HASH[h];
}

const hex4 = (n: number): string => `0x${n.toString(16).padStart(4, '0')}`;

/** Largest digest (SHA-512) and largest RSA modulus we accept (4096 bits). */
const MAX_DIGEST = 64;
const MAX_RSA_BYTES = 512;
const MAX_ECC_COORD = 48; // P-384
/** TPM2B_NAME: nameAlg + digest (Part 2 §10.5.3); a handle is 4 bytes. */
const MAX_NAME = 2 + MAX_DIGEST;
/** TPM2B_DATA (Part 2 §10.4.3): sizeof(TPMT_HA). */
const MAX_DATA = 2 + MAX_DIGEST;
/** Caps for TPML_PCR_SELECTION (Part 2 §10.9.7: count ≤ HASH_COUNT; sizeofSelect ≥ PCR_SELECT_MIN). */
export const MAX_PCR_SELECTIONS = 16;
export const MAX_SIZEOF_SELECT = 8;

// ---------------------------------------------------------------------------------------------
// TPMA_OBJECT (Part 2 §8.3)
// ---------------------------------------------------------------------------------------------

export const TPMA_OBJECT = {
  fixedTPM: 1 << 1,
  stClear: 1 << 2,
  fixedParent: 1 << 4,
  sensitiveDataOrigin: 1 << 5,
  userWithAuth: 1 << 6,
  adminWithPolicy: 1 << 7,
  noDA: 1 << 10,
  encryptedDuplication: 1 << 11,
  restricted: 1 << 16,
  decrypt: 1 << 17,
  sign: 1 << 18,
  x509sign: 1 << 19,
} as const;
/** Bits 0, 3, 8-9, 12-15, 20-31 are reserved (Part 2 §8.3.2, Table 31). */
const TPMA_OBJECT_RESERVED = 0xfff0f309;

export interface ObjectAttributes {
  readonly raw: number;
  readonly fixedTPM: boolean;
  readonly stClear: boolean;
  readonly fixedParent: boolean;
  readonly sensitiveDataOrigin: boolean;
  readonly userWithAuth: boolean;
  readonly adminWithPolicy: boolean;
  readonly noDA: boolean;
  readonly encryptedDuplication: boolean;
  readonly restricted: boolean;
  readonly decrypt: boolean;
  readonly sign: boolean;
  readonly x509sign: boolean;
}

export function decodeObjectAttributes(raw: number): ObjectAttributes {
  const has = (b: number): boolean => (raw & b) !== 0;
  return Object.freeze({
    raw: raw >>> 0,
    fixedTPM: has(TPMA_OBJECT.fixedTPM),
    stClear: has(TPMA_OBJECT.stClear),
    fixedParent: has(TPMA_OBJECT.fixedParent),
    sensitiveDataOrigin: has(TPMA_OBJECT.sensitiveDataOrigin),
    userWithAuth: has(TPMA_OBJECT.userWithAuth),
    adminWithPolicy: has(TPMA_OBJECT.adminWithPolicy),
    noDA: has(TPMA_OBJECT.noDA),
    encryptedDuplication: has(TPMA_OBJECT.encryptedDuplication),
    restricted: has(TPMA_OBJECT.restricted),
    decrypt: has(TPMA_OBJECT.decrypt),
    sign: has(TPMA_OBJECT.sign),
    x509sign: has(TPMA_OBJECT.x509sign),
  });
}

// ---------------------------------------------------------------------------------------------
// TPMT_PUBLIC (Part 2 §12.2.4) and its parameters
// ---------------------------------------------------------------------------------------------

/** TPMT_SYM_DEF_OBJECT (Part 2 §11.1.7): NULL, or AES-{128,192,256}-CFB. */
export type SymDefObject =
  | { readonly algorithm: 'null' }
  | { readonly algorithm: 'aes'; readonly keyBits: 128 | 192 | 256; readonly mode: 'cfb' };

export type SignScheme = 'rsassa' | 'rsapss' | 'ecdsa';

/** The scheme of a key (Part 2 §11.2.3.5 TPMT_RSA_SCHEME, §11.2.5.6 TPMT_ECC_SCHEME). */
export type KeyScheme =
  | { readonly scheme: 'null' }
  | { readonly scheme: SignScheme | 'oaep' | 'ecdh'; readonly hash: TpmHash }
  | { readonly scheme: 'rsaes' };

/** TPMT_KDF_SCHEME (Part 2 §11.2.3.3). */
export type KdfScheme = { readonly scheme: 'null' } | { readonly scheme: 'kdf1-sp800-56a' | 'kdf2' | 'kdf1-sp800-108'; readonly hash: TpmHash };

export interface RsaParms {
  readonly type: 'rsa';
  readonly symmetric: SymDefObject;
  readonly scheme: KeyScheme;
  readonly keyBits: 2048 | 3072 | 4096;
  /** The public exponent; 0 on the wire means 65537 (Part 2 §12.2.3.5) and is normalized here. */
  readonly exponent: number;
}

export interface EccParms {
  readonly type: 'ecc';
  readonly symmetric: SymDefObject;
  readonly scheme: KeyScheme;
  readonly curve: 'P-256' | 'P-384';
  readonly kdf: KdfScheme;
}

export interface TpmtPublic {
  readonly type: 'rsa' | 'ecc';
  readonly nameAlg: TpmHash;
  readonly objectAttributes: ObjectAttributes;
  readonly authPolicy: Uint8Array;
  readonly parameters: RsaParms | EccParms;
  /** RSA: the modulus (exactly keyBits/8 bytes). */
  readonly rsaModulus?: Uint8Array;
  /** ECC: the point coordinates (exactly the curve's coordinate size). */
  readonly eccPoint?: { readonly x: Uint8Array; readonly y: Uint8Array };
  /** The exact TPMT_PUBLIC bytes parsed (the input of the Name computation). */
  readonly raw: Uint8Array;
}

export function curveSize(curve: 'P-256' | 'P-384'): number {
  return curve === 'P-256' ? 32 : 48;
}

function readSymDefObject(r: ByteReader): SymDefObject {
  const alg = r.u16('TPMT_SYM_DEF_OBJECT.algorithm');
  if (alg === TPM_ALG.NULL) return { algorithm: 'null' };
  if (alg !== TPM_ALG.AES) throw malformed(TpmCodes.TPM_ALG_UNSUPPORTED, `symmetric algorithm ${hex4(alg)} is not supported`, { offset: r.offset - 2 });
  const keyBits = r.u16('TPMT_SYM_DEF_OBJECT.keyBits');
  if (keyBits !== 128 && keyBits !== 192 && keyBits !== 256) {
    throw malformed(TpmCodes.TPM_STRUCTURE_INVALID, `AES key size ${keyBits} is invalid`, { offset: r.offset - 2 });
  }
  const mode = r.u16('TPMT_SYM_DEF_OBJECT.mode');
  if (mode !== TPM_ALG.CFB) throw malformed(TpmCodes.TPM_ALG_UNSUPPORTED, `symmetric mode ${hex4(mode)} is not CFB (Part 2 §12.2.3.5: CFB for objects)`, { offset: r.offset - 2 });
  return { algorithm: 'aes', keyBits, mode: 'cfb' };
}

function readRsaScheme(r: ByteReader): KeyScheme {
  const s = r.u16('TPMT_RSA_SCHEME.scheme');
  switch (s) {
    case TPM_ALG.NULL:
      return { scheme: 'null' };
    case TPM_ALG.RSAES:
      return { scheme: 'rsaes' }; // TPMS_ENC_SCHEME_RSAES is empty (Part 2 §11.2.2.2)
    case TPM_ALG.RSASSA:
      return { scheme: 'rsassa', hash: hashFromAlg(r.u16('TPMS_SIG_SCHEME_RSASSA.hashAlg')) };
    case TPM_ALG.RSAPSS:
      return { scheme: 'rsapss', hash: hashFromAlg(r.u16('TPMS_SIG_SCHEME_RSAPSS.hashAlg')) };
    case TPM_ALG.OAEP:
      return { scheme: 'oaep', hash: hashFromAlg(r.u16('TPMS_ENC_SCHEME_OAEP.hashAlg')) };
    default:
      throw malformed(TpmCodes.TPM_ALG_UNSUPPORTED, `RSA scheme ${hex4(s)} is not supported`, { offset: r.offset - 2 });
  }
}

function readEccScheme(r: ByteReader): KeyScheme {
  const s = r.u16('TPMT_ECC_SCHEME.scheme');
  switch (s) {
    case TPM_ALG.NULL:
      return { scheme: 'null' };
    case TPM_ALG.ECDSA:
      return { scheme: 'ecdsa', hash: hashFromAlg(r.u16('TPMS_SIG_SCHEME_ECDSA.hashAlg')) };
    case TPM_ALG.ECDH:
      return { scheme: 'ecdh', hash: hashFromAlg(r.u16('TPMS_KEY_SCHEME_ECDH.hashAlg')) };
    default:
      throw malformed(TpmCodes.TPM_ALG_UNSUPPORTED, `ECC scheme ${hex4(s)} is not supported`, { offset: r.offset - 2 });
  }
}

function readKdf(r: ByteReader): KdfScheme {
  const s = r.u16('TPMT_KDF_SCHEME.scheme');
  const name =
    s === TPM_ALG.KDF1_SP800_56A ? 'kdf1-sp800-56a' : s === TPM_ALG.KDF2 ? 'kdf2' : s === TPM_ALG.KDF1_SP800_108 ? 'kdf1-sp800-108' : undefined;
  if (s === TPM_ALG.NULL) return { scheme: 'null' };
  if (!name) throw malformed(TpmCodes.TPM_ALG_UNSUPPORTED, `KDF scheme ${hex4(s)} is not supported`, { offset: r.offset - 2 });
  return { scheme: name, hash: hashFromAlg(r.u16('TPMT_KDF_SCHEME.hashAlg')) };
}

function readTpmtPublicFrom(r: ByteReader, start: number, buf: Uint8Array): TpmtPublic {
  const typeAlg = r.u16('TPMT_PUBLIC.type');
  if (typeAlg !== TPM_ALG.RSA && typeAlg !== TPM_ALG.ECC) {
    throw malformed(TpmCodes.TPM_ALG_UNSUPPORTED, `TPMT_PUBLIC.type ${hex4(typeAlg)} is not RSA or ECC`, { offset: r.offset - 2 });
  }
  const nameAlgRaw = r.u16('TPMT_PUBLIC.nameAlg');
  const nameAlg = hashFromAlg(nameAlgRaw, 'TPMT_PUBLIC.nameAlg');
  const attrOffset = r.offset;
  const attrRaw = r.u32('TPMT_PUBLIC.objectAttributes');
  if ((attrRaw & TPMA_OBJECT_RESERVED) !== 0) {
    throw malformed(CommonCodes.RESERVED_NONZERO, `reserved TPMA_OBJECT bits set: 0x${(attrRaw >>> 0).toString(16)}`, { offset: attrOffset });
  }
  const authPolicy = r.tpm2b('TPMT_PUBLIC.authPolicy', MAX_DIGEST);
  let parameters: RsaParms | EccParms;
  let rsaModulus: Uint8Array | undefined;
  let eccPoint: { x: Uint8Array; y: Uint8Array } | undefined;
  if (typeAlg === TPM_ALG.RSA) {
    // TPMS_RSA_PARMS (Part 2 §12.2.3.5)
    const symmetric = readSymDefObject(r);
    const scheme = readRsaScheme(r);
    const kbOffset = r.offset;
    const keyBits = r.u16('TPMS_RSA_PARMS.keyBits');
    if (keyBits !== 2048 && keyBits !== 3072 && keyBits !== 4096) {
      throw malformed(TpmCodes.TPM_ALG_UNSUPPORTED, `RSA key size ${keyBits} is not 2048, 3072 or 4096`, { offset: kbOffset });
    }
    const exponentWire = r.u32('TPMS_RSA_PARMS.exponent');
    const exponent = exponentWire === 0 ? 65537 : exponentWire;
    if (exponent < 3 || exponent % 2 === 0) {
      throw malformed(TpmCodes.TPM_STRUCTURE_INVALID, `RSA exponent ${exponent} is invalid`, { offset: kbOffset + 2 });
    }
    parameters = Object.freeze({ type: 'rsa', symmetric, scheme, keyBits, exponent });
    // TPM2B_PUBLIC_KEY_RSA (Part 2 §11.2.4.5)
    const nOffset = r.offset;
    rsaModulus = r.tpm2b('TPMU_PUBLIC_ID.rsa', MAX_RSA_BYTES);
    if (rsaModulus.byteLength !== keyBits / 8) {
      throw malformed(TpmCodes.TPM_STRUCTURE_INVALID, `RSA modulus is ${rsaModulus.byteLength} bytes, keyBits says ${keyBits / 8}`, { offset: nOffset });
    }
    if (((rsaModulus[0] as number) & 0x80) === 0) {
      throw malformed(TpmCodes.TPM_STRUCTURE_INVALID, `RSA modulus is shorter than ${keyBits} bits`, { offset: nOffset + 2 });
    }
  } else {
    // TPMS_ECC_PARMS (Part 2 §12.2.3.6)
    const symmetric = readSymDefObject(r);
    const scheme = readEccScheme(r);
    const cOffset = r.offset;
    const curveId = r.u16('TPMS_ECC_PARMS.curveID');
    const curve = curveId === TPM_ECC.NIST_P256 ? 'P-256' : curveId === TPM_ECC.NIST_P384 ? 'P-384' : undefined;
    if (!curve) throw malformed(TpmCodes.TPM_ALG_UNSUPPORTED, `ECC curve ${hex4(curveId)} is not P-256 or P-384`, { offset: cOffset });
    const kdf = readKdf(r);
    parameters = Object.freeze({ type: 'ecc', symmetric, scheme, curve, kdf });
    // TPMS_ECC_POINT (Part 2 §11.2.5.2): coordinates are fixed-size for the curve.
    const size = curveSize(curve);
    const xOff = r.offset;
    const x = r.tpm2b('TPMS_ECC_POINT.x', MAX_ECC_COORD);
    const y = r.tpm2b('TPMS_ECC_POINT.y', MAX_ECC_COORD);
    if (x.byteLength !== size || y.byteLength !== size) {
      throw malformed(TpmCodes.TPM_STRUCTURE_INVALID, `ECC point coordinates must be ${size} bytes for ${curve}`, { offset: xOff });
    }
    eccPoint = Object.freeze({ x, y });
  }
  const raw = buf.slice(start, r.position);
  return Object.freeze({
    type: typeAlg === TPM_ALG.RSA ? 'rsa' : 'ecc',
    nameAlg,
    objectAttributes: decodeObjectAttributes(attrRaw),
    authPolicy,
    parameters,
    ...(rsaModulus ? { rsaModulus } : {}),
    ...(eccPoint ? { eccPoint } : {}),
    raw,
  });
}

/** Parses a TPMT_PUBLIC that must span all of `bytes` (Part 2 §12.2.4). */
export function parseTpmtPublic(bytes: Uint8Array): TpmtPublic {
  const r = new ByteReader(bytes);
  const pub = readTpmtPublicFrom(r, 0, bytes);
  r.end('TPMT_PUBLIC');
  return pub;
}

/** Parses a TPM2B_PUBLIC (Part 2 §12.2.5): u16 size, then exactly that many bytes of TPMT_PUBLIC. */
export function parseTpm2bPublic(bytes: Uint8Array): TpmtPublic {
  const r = new ByteReader(bytes);
  const size = r.u16('TPM2B_PUBLIC.size');
  if (size === 0) throw malformed(TpmCodes.TPM_STRUCTURE_INVALID, 'TPM2B_PUBLIC is empty');
  const inner = r.sub(size, 'TPM2B_PUBLIC.publicArea');
  const body = bytes.subarray(2, 2 + size);
  const pub = readTpmtPublicFrom(inner, 0, body);
  inner.end('TPM2B_PUBLIC.publicArea');
  r.end('TPM2B_PUBLIC');
  return pub;
}

/** Serializes a TPMT_PUBLIC as TPM2B_PUBLIC (size prefix + the exact parsed bytes). */
export function toTpm2bPublic(pub: TpmtPublic): Uint8Array {
  return concat(u16be(pub.raw.byteLength), pub.raw);
}

/**
 * The TPM Name of an object (Part 1 §16): nameAlg (u16) ‖ H_nameAlg(TPMT_PUBLIC).
 * Accepts the raw TPMT_PUBLIC bytes (which are parsed, so garbage has no Name) or a parsed one.
 */
export async function computeName(pub: Uint8Array | TpmtPublic): Promise<Uint8Array> {
  const p = pub instanceof Uint8Array ? parseTpmtPublic(pub) : pub;
  return concat(u16be(algFromHash(p.nameAlg)), await digest(p.nameAlg, p.raw));
}

// ---------------------------------------------------------------------------------------------
// TPML_PCR_SELECTION (Part 2 §10.9.7, §10.6.2 TPMS_PCR_SELECTION)
// ---------------------------------------------------------------------------------------------

export interface PcrSelection {
  readonly hash: TpmHash;
  /** Selected PCR indices in increasing order (the order the TPM hashes them). */
  readonly pcrs: readonly number[];
  readonly sizeofSelect: number;
}

function readPcrSelectionList(r: ByteReader): readonly PcrSelection[] {
  const cOff = r.offset;
  const count = r.u32('TPML_PCR_SELECTION.count');
  if (count > MAX_PCR_SELECTIONS) {
    throw malformed(CommonCodes.LIMIT_EXCEEDED, `TPML_PCR_SELECTION.count ${count} exceeds ${MAX_PCR_SELECTIONS}`, { offset: cOff });
  }
  const out: PcrSelection[] = [];
  for (let i = 0; i < count; i++) {
    const hash = hashFromAlg(r.u16('TPMS_PCR_SELECTION.hash'), 'TPMS_PCR_SELECTION.hash');
    const sOff = r.offset;
    const sizeofSelect = r.u8('TPMS_PCR_SELECTION.sizeofSelect');
    if (sizeofSelect > MAX_SIZEOF_SELECT) {
      throw malformed(CommonCodes.LIMIT_EXCEEDED, `sizeofSelect ${sizeofSelect} exceeds ${MAX_SIZEOF_SELECT}`, { offset: sOff });
    }
    const bitmap = r.bytes(sizeofSelect, 'TPMS_PCR_SELECTION.pcrSelect');
    const pcrs: number[] = [];
    // Part 2 §10.6.1: octet n, bit b selects PCR 8n+b.
    for (let byte = 0; byte < sizeofSelect; byte++) {
      for (let bit = 0; bit < 8; bit++) if (((bitmap[byte] as number) >> bit) & 1) pcrs.push(byte * 8 + bit);
    }
    out.push(Object.freeze({ hash, pcrs: Object.freeze(pcrs), sizeofSelect }));
  }
  return Object.freeze(out);
}

/** Parses a standalone TPML_PCR_SELECTION. */
export function parsePcrSelectionList(bytes: Uint8Array): readonly PcrSelection[] {
  const r = new ByteReader(bytes);
  const l = readPcrSelectionList(r);
  r.end('TPML_PCR_SELECTION');
  return l;
}

/** Encodes a TPML_PCR_SELECTION (sizeofSelect 3 = 24 PCRs unless a higher PCR is selected). */
export function encodePcrSelectionList(sel: readonly { hash: TpmHash; pcrs: readonly number[] }[]): Uint8Array {
  const parts: Uint8Array[] = [new Uint8Array([0, 0, 0, sel.length])];
  for (const s of sel) {
    const size = Math.max(3, ...s.pcrs.map((p) => Math.floor(p / 8) + 1));
    const bm = new Uint8Array(size);
    for (const p of s.pcrs) bm[p >> 3] = (bm[p >> 3] as number) | (1 << (p & 7));
    parts.push(u16be(algFromHash(s.hash)), new Uint8Array([size]), bm);
  }
  return concat(...parts);
}

// ---------------------------------------------------------------------------------------------
// TPMS_ATTEST (Part 2 §10.12.12)
// ---------------------------------------------------------------------------------------------

/** TPMS_CLOCK_INFO (Part 2 §10.11.1). */
export interface ClockInfo {
  readonly clock: bigint;
  readonly resetCount: number;
  readonly restartCount: number;
  readonly safe: boolean;
}

/** TPMS_QUOTE_INFO (Part 2 §10.12.4). */
export interface QuoteInfo {
  readonly pcrSelect: readonly PcrSelection[];
  readonly pcrDigest: Uint8Array;
}

/** TPMS_CERTIFY_INFO (Part 2 §10.12.3). */
export interface CertifyInfo {
  readonly name: Uint8Array;
  readonly qualifiedName: Uint8Array;
}

interface AttestCommon {
  readonly magic: number;
  readonly qualifiedSigner: Uint8Array;
  readonly extraData: Uint8Array;
  readonly clockInfo: ClockInfo;
  readonly firmwareVersion: bigint;
}
export type TpmsAttest =
  | (AttestCommon & { readonly type: 'quote'; readonly quote: QuoteInfo })
  | (AttestCommon & { readonly type: 'certify'; readonly certify: CertifyInfo });

/**
 * Parses a TPMS_ATTEST of type TPM_ST_ATTEST_QUOTE or TPM_ST_ATTEST_CERTIFY.
 *
 * - magic must be TPM_GENERATED_VALUE (`QUOTE_MAGIC_INVALID`): the TPM only signs such
 *   structures itself, which is what stops a restricted key signing a forged attestation;
 * - other TPM_ST values are `QUOTE_TYPE_INVALID` (this verifier reads no other attestations);
 * - TPMI_YES_NO `safe` must be 0 or 1 (Part 2 §9.2).
 *
 * Call this only on bytes whose signature has already been verified.
 */
export function parseAttest(bytes: Uint8Array): TpmsAttest {
  const r = new ByteReader(bytes);
  const magic = r.u32('TPMS_ATTEST.magic');
  if (magic !== TPM_GENERATED_VALUE) {
    throw rejected(TpmCodes.QUOTE_MAGIC_INVALID, `TPMS_ATTEST.magic 0x${magic.toString(16)} is not TPM_GENERATED_VALUE`, { offset: 0 });
  }
  const type = r.u16('TPMS_ATTEST.type');
  if (type !== TPM_ST.ATTEST_QUOTE && type !== TPM_ST.ATTEST_CERTIFY) {
    throw rejected(TpmCodes.QUOTE_TYPE_INVALID, `TPMS_ATTEST.type ${hex4(type)} is not a quote or certify`, { offset: 4 });
  }
  const qualifiedSigner = r.tpm2b('TPMS_ATTEST.qualifiedSigner', MAX_NAME);
  const extraData = r.tpm2b('TPMS_ATTEST.extraData', MAX_DATA);
  const clock = r.u64('TPMS_CLOCK_INFO.clock');
  const resetCount = r.u32('TPMS_CLOCK_INFO.resetCount');
  const restartCount = r.u32('TPMS_CLOCK_INFO.restartCount');
  const sOff = r.offset;
  const safe = r.u8('TPMS_CLOCK_INFO.safe');
  if (safe > 1) throw malformed(TpmCodes.TPM_STRUCTURE_INVALID, `TPMS_CLOCK_INFO.safe ${safe} is not a TPMI_YES_NO`, { offset: sOff });
  const firmwareVersion = r.u64('TPMS_ATTEST.firmwareVersion');
  const common: AttestCommon = {
    magic,
    qualifiedSigner,
    extraData,
    clockInfo: Object.freeze({ clock, resetCount, restartCount, safe: safe === 1 }),
    firmwareVersion,
  };
  let out: TpmsAttest;
  if (type === TPM_ST.ATTEST_QUOTE) {
    const pcrSelect = readPcrSelectionList(r);
    const pcrDigest = r.tpm2b('TPMS_QUOTE_INFO.pcrDigest', MAX_DIGEST);
    out = { ...common, type: 'quote', quote: Object.freeze({ pcrSelect, pcrDigest }) };
  } else {
    const name = r.tpm2b('TPMS_CERTIFY_INFO.name', MAX_NAME);
    const qualifiedName = r.tpm2b('TPMS_CERTIFY_INFO.qualifiedName', MAX_NAME);
    out = { ...common, type: 'certify', certify: Object.freeze({ name, qualifiedName }) };
  }
  r.end('TPMS_ATTEST');
  return Object.freeze(out);
}

// ---------------------------------------------------------------------------------------------
// TPMT_SIGNATURE (Part 2 §11.3.4)
// ---------------------------------------------------------------------------------------------

export type TpmtSignature =
  | { readonly sigAlg: 'rsassa' | 'rsapss'; readonly hash: TpmHash; readonly sig: Uint8Array }
  | { readonly sigAlg: 'ecdsa'; readonly hash: TpmHash; readonly r: Uint8Array; readonly s: Uint8Array };

/**
 * Parses a TPMT_SIGNATURE: RSASSA / RSAPSS (TPMS_SIGNATURE_RSA §11.3.1: hash, TPM2B sig) or
 * ECDSA (TPMS_SIGNATURE_ECC §11.3.2: hash, TPM2B r, TPM2B s). Other schemes, including
 * TPM_ALG_NULL (an unsigned quote), are `TPM_ALG_UNSUPPORTED`.
 */
export function parseTpmtSignature(bytes: Uint8Array): TpmtSignature {
  const r = new ByteReader(bytes);
  const alg = r.u16('TPMT_SIGNATURE.sigAlg');
  let out: TpmtSignature;
  if (alg === TPM_ALG.RSASSA || alg === TPM_ALG.RSAPSS) {
    const hash = hashFromAlg(r.u16('TPMS_SIGNATURE_RSA.hash'));
    const sig = r.tpm2b('TPMS_SIGNATURE_RSA.sig', MAX_RSA_BYTES);
    out = { sigAlg: alg === TPM_ALG.RSASSA ? 'rsassa' : 'rsapss', hash, sig };
  } else if (alg === TPM_ALG.ECDSA) {
    const hash = hashFromAlg(r.u16('TPMS_SIGNATURE_ECC.hash'));
    const rr = r.tpm2b('TPMS_SIGNATURE_ECC.signatureR', MAX_ECC_COORD);
    const s = r.tpm2b('TPMS_SIGNATURE_ECC.signatureS', MAX_ECC_COORD);
    out = { sigAlg: 'ecdsa', hash, r: rr, s };
  } else {
    throw malformed(TpmCodes.TPM_ALG_UNSUPPORTED, `signature algorithm ${hex4(alg)} is not RSASSA, RSAPSS or ECDSA`, { offset: 0 });
  }
  r.end('TPMT_SIGNATURE');
  return Object.freeze(out);
}

/**
 * ECDSA r, s (big-endian integers of any length ≤ the curve size) → WebCrypto's IEEE P1363
 * form r‖s, each left-padded to `size`. A value longer than `size` after stripping leading zeros
 * cannot be a valid signature component and is `TPM_STRUCTURE_INVALID`.
 */
export function ecdsaToP1363(r: Uint8Array, s: Uint8Array, size: number): Uint8Array {
  const pad = (v: Uint8Array, what: string): Uint8Array => {
    let i = 0;
    while (i < v.byteLength && v[i] === 0) i++;
    const t = v.subarray(i);
    if (t.byteLength > size) throw malformed(TpmCodes.TPM_STRUCTURE_INVALID, `ECDSA ${what} is longer than ${size} bytes`);
    const out = new Uint8Array(size);
    out.set(t, size - t.byteLength);
    return out;
  };
  return concat(pad(r, 'r'), pad(s, 's'));
}

/**
 * Strict DER `ECDSA-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER }` (SEC 1 §C.8 / RFC 3279
 * §2.2.3) → P1363 r‖s. Non-minimal lengths, negative or non-minimally encoded integers and
 * trailing bytes are rejected (`TPM_STRUCTURE_INVALID` / `TRAILING_BYTES`).
 */
export function ecdsaDerToP1363(der: Uint8Array, size: number): Uint8Array {
  const r = new ByteReader(der);
  const bad = (m: string): never => {
    throw malformed(TpmCodes.TPM_STRUCTURE_INVALID, `DER ECDSA signature: ${m}`);
  };
  const len = (): number => {
    const l = r.u8('DER length');
    if (l < 0x80) return l;
    if (l !== 0x81) bad('length form not supported');
    const v = r.u8('DER length');
    if (v < 0x80) bad('non-minimal length');
    return v;
  };
  if (r.u8('DER tag') !== 0x30) bad('not a SEQUENCE');
  const seq = r.sub(len(), 'ECDSA-Sig-Value');
  r.end('ECDSA-Sig-Value');
  const int = (what: string): Uint8Array => {
    if (seq.u8('DER tag') !== 0x02) bad(`${what} is not an INTEGER`);
    const l = seq.u8('DER length');
    if (l === 0 || l >= 0x80) bad(`${what} has a bad length`);
    const v = seq.bytes(l, what);
    if (((v[0] as number) & 0x80) !== 0) bad(`${what} is negative`);
    if (l > 1 && v[0] === 0 && ((v[1] as number) & 0x80) === 0) bad(`${what} is not minimally encoded`);
    return v;
  };
  const rr = int('r');
  const s = int('s');
  seq.end('ECDSA-Sig-Value');
  return ecdsaToP1363(rr, s, size);
}

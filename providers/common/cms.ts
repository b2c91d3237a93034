/**
 * @module providers/common/cms
 *
 * The one PKCS#7 / CMS SignedData pipeline (RFC 2315 §9, RFC 5652 §5), for the documents cloud
 * metadata services sign: the EC2 instance identity document (providers/aws/identity.ts) and
 * the Azure IMDS attested document (providers/azure/imds.ts). Both are SignedData with attached
 * id-data content, one IssuerAndSerialNumber signer and an RSA PKCS#1 v1.5 signature, with or
 * without signed attributes.
 *
 * ```
 * ContentInfo ::= SEQUENCE { contentType OID (id-signedData), content [0] EXPLICIT SignedData }
 * SignedData  ::= SEQUENCE { version INTEGER (1), digestAlgorithms SET OF AlgorithmIdentifier,
 *                            encapContentInfo SEQUENCE { eContentType OID, eContent [0] EXPLICIT OCTET STRING },
 *                            certificates [0] IMPLICIT SET OF Certificate OPTIONAL,
 *                            crls [1] IMPLICIT … OPTIONAL (refused), signerInfos SET OF SignerInfo (exactly one) }
 * SignerInfo  ::= SEQUENCE { version INTEGER (1), sid IssuerAndSerialNumber,
 *                            digestAlgorithm AlgorithmIdentifier, signedAttrs [0] IMPLICIT SET OF Attribute OPTIONAL,
 *                            signatureAlgorithm AlgorithmIdentifier, signature OCTET STRING,
 *                            unsignedAttrs [1] IMPLICIT SET OF Attribute OPTIONAL (read, never used) }
 * ```
 *
 * `parseSignedData`: bytes → readonly struct, through providers/common/der.ts (DER only: BER's
 * indefinite lengths and constructed strings are refused, so the signed attributes are hashed
 * exactly as received), every structure consuming its bytes exactly, counts and sizes capped.
 * Shape violations are PKCS7_MALFORMED, or the caller's code (`code`); TRUNCATED,
 * TRAILING_BYTES and LIMIT_EXCEEDED keep their common codes. No crypto, no trust.
 *
 * `findSigner`: the candidate certificate the SignerInfo names (issuer Name bytes and serial).
 * Which candidates are acceptable (pinned keys, or a chain to a pinned root) is the caller's
 * decision, made before it calls `verifySignerInfo`.
 *
 * `verifySignerInfo`, each failure with the caller's code:
 * - digest SHA-256/384/512 (SHA-1 refused), listed in digestAlgorithms; signature algorithm
 *   rsaEncryption or sha{256,384,512}WithRSAEncryption with that same digest; an RSA key of at
 *   least 2048 bits → `algorithm`;
 * - with signed attributes (RFC 5652 §5.3, §5.4, §11): exactly one content-type value, equal to
 *   eContentType, and exactly one message-digest value, equal (constant time) to the digest of
 *   the content → `digestMismatch`; the signature then covers the attributes re-encoded with the
 *   SET OF tag (0x31) in place of [0]; without them it covers the content;
 * - the signature verifies (WebCrypto semantics, providers/common/sig.ts) → `signatureInvalid`.
 */
import { concat } from './bytes.js';
import { CommonCodes, malformed, rejected, type CodeOfKind } from './errors.js';
import { digest, webHashName, type HashName } from './digest.js';
import { timingSafeEqual } from './ct.js';
import { certDer, importPublicKey, X509Codes, type Certificate } from './x509.js';
import { verifySignature } from './sig.js';
import {
  algorithmNoParams,
  certificateFields,
  children,
  ctx,
  decodeOne,
  derAs,
  encodeOid,
  explicit,
  integerBytes,
  octetString,
  oid,
  smallInt,
  TAG,
  want,
  type Tlv,
} from './der.js';

export const CmsCodes = {
  /** Not DER, or not the SignedData shape above. */
  PKCS7_MALFORMED: 'PKCS7_MALFORMED',
} as const;

export const CMS_OID = Object.freeze({
  signedData: '1.2.840.113549.1.7.2',
  data: '1.2.840.113549.1.7.1',
  contentType: '1.2.840.113549.1.9.3',
  messageDigest: '1.2.840.113549.1.9.4',
  sha256: '2.16.840.1.101.3.4.2.1',
  sha384: '2.16.840.1.101.3.4.2.2',
  sha512: '2.16.840.1.101.3.4.2.3',
  rsaEncryption: '1.2.840.113549.1.1.1',
  sha256WithRSA: '1.2.840.113549.1.1.11',
  sha384WithRSA: '1.2.840.113549.1.1.12',
  sha512WithRSA: '1.2.840.113549.1.1.13',
});

const DIGESTS: Readonly<Record<string, HashName>> = Object.freeze({
  [CMS_OID.sha256]: 'sha256',
  [CMS_OID.sha384]: 'sha384',
  [CMS_OID.sha512]: 'sha512',
});
const RSA_WITH: Readonly<Record<string, HashName>> = Object.freeze({
  [CMS_OID.sha256WithRSA]: 'sha256',
  [CMS_OID.sha384WithRSA]: 'sha384',
  [CMS_OID.sha512WithRSA]: 'sha512',
});
const MIN_RSA_BITS = 2048;

/** Caps; the documents read here are a few KiB. */
export interface CmsLimits {
  readonly bytes: number;
  readonly content: number;
  readonly certificates: number;
  readonly digestAlgorithms: number;
  readonly attributes: number;
  readonly attributeValues: number;
}
export const CMS_LIMITS: CmsLimits = Object.freeze({ bytes: 16 * 1024, content: 8 * 1024, certificates: 4, digestAlgorithms: 4, attributes: 16, attributeValues: 4 });

export interface Attribute {
  readonly type: string;
  readonly values: readonly Tlv[];
}

export interface SignerInfo {
  readonly version: number;
  /** The issuer Name TLV of IssuerAndSerialNumber, compared byte-wise with a certificate's. */
  readonly issuer: Uint8Array;
  /** The serial number INTEGER contents, as encoded (minimal). */
  readonly serial: Uint8Array;
  readonly digestAlgorithm: string;
  /** The signed attributes: the DER the signature covers (SET OF tag) and the parsed list. */
  readonly signedAttrs?: { readonly der: Uint8Array; readonly attributes: readonly Attribute[] };
  readonly signatureAlgorithm: string;
  readonly signature: Uint8Array;
}

export interface SignedData {
  readonly version: number;
  readonly digestAlgorithms: readonly string[];
  readonly contentType: string;
  /** The attached content. */
  readonly content: Uint8Array;
  /** Certificates carried in the message (DER): parsed by nobody here, trusted by nobody. */
  readonly certificates: readonly Uint8Array[];
  readonly signer: SignerInfo;
}

export interface ParseOptions {
  /** The code for shape violations (default PKCS7_MALFORMED). */
  readonly code?: CodeOfKind<'malformed'>;
  readonly limits?: Partial<CmsLimits>;
}

/** Parses a DER ContentInfo holding SignedData with attached content and one v1 signer. */
export function parseSignedData(der: Uint8Array, o: ParseOptions = {}): SignedData {
  const code = o.code ?? CmsCodes.PKCS7_MALFORMED;
  const limits: CmsLimits = { ...CMS_LIMITS, ...o.limits };
  if (der.byteLength > limits.bytes) throw malformed(CommonCodes.LIMIT_EXCEEDED, `PKCS#7 of ${der.byteLength} bytes exceeds the ${limits.bytes}-byte cap`);
  return derAs(code, () => readContentInfo(der, limits, (m, offset) => malformed(code, `PKCS#7: ${m}`, offset === undefined ? {} : { offset })));
}

type Bad = (m: string, offset?: number) => Error;

function setOf<X>(t: Tlv | undefined, max: number, what: string, item: (t: Tlv) => X): X[] {
  return children(want(t, TAG.SET, what), what, max).map(item);
}

function readContentInfo(der: Uint8Array, limits: CmsLimits, bad: Bad): SignedData {
  const ci = children(want(decodeOne(der, 'ContentInfo'), TAG.SEQUENCE, 'ContentInfo'), 'ContentInfo');
  if (ci.length !== 2) throw bad('ContentInfo is not SEQUENCE { contentType, [0] content }');
  if (oid(ci[0], 'ContentInfo.contentType') !== CMS_OID.signedData) throw bad('ContentInfo is not signedData', ci[0]?.offset);
  const sd = children(want(explicit(ci[1], 0, 'ContentInfo.content'), TAG.SEQUENCE, 'SignedData'), 'SignedData');
  let i = 0;
  const version = smallInt(sd[i++], 'SignedData.version');
  // RFC 5652 §5.1: version 1 exactly when the content is id-data, signers are v1 and no attribute certificates.
  if (version !== 1) throw bad(`SignedData version ${version} is not 1`);
  const digestAlgorithms = setOf(sd[i++], limits.digestAlgorithms, 'digestAlgorithms', (t) => algorithmNoParams(t, 'digestAlgorithm'));
  const eci = children(want(sd[i++], TAG.SEQUENCE, 'encapContentInfo'), 'encapContentInfo');
  const contentType = oid(eci[0], 'eContentType');
  if (eci.length === 1) throw bad('the content is detached; the document must be attached');
  if (eci.length !== 2) throw bad('encapContentInfo has more than two members');
  const content = octetString(explicit(eci[1], 0, 'eContent'), 'eContent');
  if (content.byteLength > limits.content) throw malformed(CommonCodes.LIMIT_EXCEEDED, `PKCS#7 content of ${content.byteLength} bytes exceeds the cap`);
  let certificates: Uint8Array[] = [];
  if (sd[i]?.tag === ctx(0)) {
    certificates = children(sd[i++], 'certificates', limits.certificates).map((c) => want(c, TAG.SEQUENCE, 'Certificate').raw);
  }
  if (sd[i]?.tag === ctx(1)) throw bad('CRLs are not expected here', sd[i]?.offset);
  const signers = setOf(sd[i++], 1, 'signerInfos', (t) => readSignerInfo(t, limits, bad));
  if (i !== sd.length) throw bad('unexpected member after signerInfos', sd[i]?.offset);
  if (signers.length !== 1) throw bad('exactly one signer is required');
  return Object.freeze({
    version,
    digestAlgorithms: Object.freeze(digestAlgorithms),
    contentType,
    content,
    certificates: Object.freeze(certificates),
    signer: signers[0] as SignerInfo,
  });
}

/** `Attribute ::= SEQUENCE { attrType OID, attrValues SET SIZE (1..MAX) OF ANY }`, no type twice. */
function attributes(t: Tlv, limits: CmsLimits, what: string, bad: Bad): Attribute[] {
  const list = children(t, what, limits.attributes).map((a) => {
    const parts = children(want(a, TAG.SEQUENCE, 'Attribute'), 'Attribute');
    if (parts.length !== 2) throw bad('Attribute is not SEQUENCE { type, values }', a.offset);
    const type = oid(parts[0], 'Attribute.type');
    const values = setOf(parts[1], limits.attributeValues, 'Attribute.values', (v) => v);
    if (values.length === 0) throw bad(`attribute ${type} has no value`, a.offset);
    return Object.freeze({ type, values: Object.freeze(values) });
  });
  if (new Set(list.map((a) => a.type)).size !== list.length) throw bad(`an attribute type appears twice in the ${what}`, t.offset);
  return list;
}

function readSignerInfo(t: Tlv, limits: CmsLimits, bad: Bad): SignerInfo {
  const si = children(want(t, TAG.SEQUENCE, 'SignerInfo'), 'SignerInfo');
  let i = 0;
  const version = smallInt(si[i++], 'SignerInfo.version');
  if (version !== 1) throw bad(`SignerInfo version ${version}: only IssuerAndSerialNumber signers (v1) are supported`);
  const sid = children(want(si[i++], TAG.SEQUENCE, 'IssuerAndSerialNumber'), 'IssuerAndSerialNumber');
  if (sid.length !== 2) throw bad('IssuerAndSerialNumber is not SEQUENCE { issuer, serialNumber }');
  const issuer = want(sid[0], TAG.SEQUENCE, 'issuer Name').raw;
  const serial = integerBytes(sid[1], 'serialNumber');
  if (serial.byteLength > 32) throw bad('serialNumber is longer than 32 octets', sid[1]?.offset);
  const digestAlgorithm = algorithmNoParams(si[i++], 'SignerInfo.digestAlgorithm');
  let signedAttrs: SignerInfo['signedAttrs'];
  if (si[i]?.tag === ctx(0)) {
    const a = si[i++] as Tlv;
    const list = attributes(a, limits, 'signed attributes', bad);
    // RFC 5652 §5.4: the signature covers the DER of SET OF Attribute, i.e. tag 0x31, not [0].
    signedAttrs = Object.freeze({ der: concat(Uint8Array.of(TAG.SET), a.raw.subarray(1)), attributes: Object.freeze(list) });
  }
  const signatureAlgorithm = algorithmNoParams(si[i++], 'SignerInfo.signatureAlgorithm');
  const signature = octetString(si[i++], 'SignerInfo.signature');
  // Unsigned attributes are outside the signature: structure-checked, never used.
  if (si[i]?.tag === ctx(1)) attributes(si[i++] as Tlv, limits, 'unsigned attributes', bad);
  if (i !== si.length) throw bad('unexpected SignerInfo member', si[i]?.offset);
  const out: { -readonly [K in keyof SignerInfo]: SignerInfo[K] } = { version, issuer, serial, digestAlgorithm, signatureAlgorithm, signature };
  if (signedAttrs) out.signedAttrs = signedAttrs;
  return Object.freeze(out);
}

/** The candidate the SignerInfo names by issuer Name bytes and serial number, if any. */
export function findSigner(sd: SignedData, candidates: readonly Certificate[]): Certificate | undefined {
  return candidates.find((c) => {
    const f = derAs(X509Codes.CERT_MALFORMED, () => certificateFields(certDer(c)));
    // Both serials are minimal INTEGER encodings, so equal numbers have equal bytes.
    return timingSafeEqual(f.issuer, sd.signer.issuer) && timingSafeEqual(f.serial, sd.signer.serial);
  });
}

/** The caller's codes for the verification failures (see the module header). */
export interface CmsVerifyCodes {
  readonly algorithm: CodeOfKind<'rejected'>;
  readonly digestMismatch: CodeOfKind<'rejected'>;
  readonly signatureInvalid: CodeOfKind<'rejected'>;
}

/** The one value of a signed attribute; `digestMismatch` when absent or multi-valued. */
function single(sd: SignedData, type: string, codes: CmsVerifyCodes, what: string): Tlv {
  const a = sd.signer.signedAttrs?.attributes.find((x) => x.type === type);
  if (!a || a.values.length !== 1) throw rejected(codes.digestMismatch, `${what}: signed attribute ${type} is missing or not single-valued`);
  return a.values[0] as Tlv;
}

/**
 * Verifies the SignerInfo's signature over `sd.content` with `signer`'s key (see the module
 * header). The caller has already decided that `signer` may sign this document.
 */
export async function verifySignerInfo(sd: SignedData, signer: Certificate, codes: CmsVerifyCodes, what: string): Promise<void> {
  const s = sd.signer;
  const hash = DIGESTS[s.digestAlgorithm];
  if (!hash) throw rejected(codes.algorithm, `${what}: digest ${s.digestAlgorithm} is not allowed (SHA-256/384/512 only)`);
  if (!sd.digestAlgorithms.includes(s.digestAlgorithm)) throw rejected(codes.algorithm, `${what}: the signer's digest is not listed in digestAlgorithms`);
  if (!(s.signatureAlgorithm === CMS_OID.rsaEncryption || RSA_WITH[s.signatureAlgorithm] === hash)) {
    throw rejected(codes.algorithm, `${what}: signature algorithm ${s.signatureAlgorithm} is not RSA PKCS#1 v1.5 with ${hash}`);
  }
  const keyAlg = signer.publicKey.algorithm.name;
  if (keyAlg !== 'RSASSA-PKCS1-v1_5' && keyAlg !== 'RSA-PSS' && keyAlg !== 'RSA-OAEP') {
    throw rejected(codes.algorithm, `${what}: the signer certificate does not hold an RSA key`);
  }
  let signed = sd.content;
  if (s.signedAttrs) {
    const ct = single(sd, CMS_OID.contentType, codes, what);
    const md = single(sd, CMS_OID.messageDigest, codes, what);
    // Compared as bytes with the canonical encoding of the (minimally parsed) eContentType.
    if (!timingSafeEqual(ct.raw, encodeOid(sd.contentType))) throw rejected(codes.digestMismatch, `${what}: the signed content-type is not the eContentType`);
    const want = await digest(hash, sd.content);
    if (md.tag !== TAG.OCTET_STRING || !timingSafeEqual(md.value, want)) {
      throw rejected(codes.digestMismatch, `${what}: the signed message-digest does not match the content`);
    }
    signed = s.signedAttrs.der;
  }
  const key = await importPublicKey(signer, { name: 'RSASSA-PKCS1-v1_5', hash: webHashName(hash) } as RsaHashedImportParams);
  const bits = (key.algorithm as KeyAlgorithm & { modulusLength?: number }).modulusLength ?? 0;
  if (bits < MIN_RSA_BITS) throw rejected(codes.algorithm, `${what}: an RSA key of ${bits} bits is too small`);
  let ok: boolean;
  try {
    ok = await verifySignature('RSASSA-PKCS1-v1_5', key, s.signature, signed);
  } catch {
    ok = false;
  }
  if (!ok) throw rejected(codes.signatureInvalid, `${what}: the signature does not verify with the signer certificate`);
}

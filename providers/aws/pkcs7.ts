/**
 * @module providers/aws/pkcs7
 *
 * A minimal, strict DER reader and a parser for the one PKCS#7 / CMS shape the EC2 instance
 * identity document comes in: SignedData with attached `id-data` content and one signer
 * (RFC 2315 §9, RFC 5652 §5). Bytes → readonly struct; no crypto here (`identity.ts` verifies).
 *
 * ```
 * ContentInfo ::= SEQUENCE { contentType OID (1.2.840.113549.1.7.2), content [0] EXPLICIT SignedData }
 * SignedData  ::= SEQUENCE { version INTEGER, digestAlgorithms SET OF AlgorithmIdentifier,
 *                            encapContentInfo SEQUENCE { eContentType OID, eContent [0] EXPLICIT OCTET STRING },
 *                            certificates [0] IMPLICIT SET OF Certificate OPTIONAL,
 *                            crls [1] IMPLICIT … OPTIONAL, signerInfos SET OF SignerInfo }
 * SignerInfo  ::= SEQUENCE { version INTEGER, sid IssuerAndSerialNumber | [0] SubjectKeyIdentifier,
 *                            digestAlgorithm AlgorithmIdentifier, signedAttrs [0] IMPLICIT SET OF Attribute OPTIONAL,
 *                            signatureAlgorithm AlgorithmIdentifier, signature OCTET STRING,
 *                            unsignedAttrs [1] IMPLICIT … OPTIONAL }
 * ```
 * DER only (X.690 §10): definite, minimally encoded lengths; single-byte tags; primitive OCTET
 * STRINGs; every structure consumes its bytes exactly (`TRAILING_BYTES` otherwise). BER forms
 * (indefinite lengths, constructed strings) are rejected: a verifier that accepted them would
 * have to canonicalise before hashing signed attributes. Counts are capped.
 */
import { ByteReader, concat } from '../common/bytes.js';
import { malformed, CommonCodes } from '../common/errors.js';

export const Pkcs7Codes = {
  /** Not DER, or not the SignedData shape above. */
  PKCS7_MALFORMED: 'PKCS7_MALFORMED',
} as const;

const bad = (m: string, offset?: number): never => {
  throw malformed(Pkcs7Codes.PKCS7_MALFORMED, `PKCS#7: ${m}`, offset === undefined ? {} : { offset });
};

export interface Tlv {
  /** The identifier octet (class, constructed bit and tag number < 31). */
  readonly tag: number;
  readonly value: Uint8Array;
  /** The whole encoding (identifier, length and value), as received. */
  readonly raw: Uint8Array;
  /** Absolute offset of the identifier octet. */
  readonly offset: number;
}

/** Reads one DER TLV (X.690 §8.1, §10.1). */
export function readTlv(r: ByteReader, what = 'DER element'): Tlv {
  const offset = r.offset;
  const tag = r.u8(`${what} tag`);
  if ((tag & 0x1f) === 0x1f) bad(`${what}: multi-byte tags are not used here`, offset);
  const l0 = r.u8(`${what} length`);
  let len: number;
  let head: Uint8Array;
  if (l0 < 0x80) {
    len = l0;
    head = Uint8Array.of(tag, l0);
  } else if (l0 === 0x80) {
    return bad(`${what}: indefinite length (BER) is not DER`, offset);
  } else {
    const n = l0 & 0x7f;
    if (n > 3) bad(`${what}: length of ${n} bytes is beyond the cap`, offset);
    const lb = r.bytes(n, `${what} length`);
    if (lb[0] === 0) bad(`${what}: length has a leading zero (not DER)`, offset);
    len = 0;
    for (const b of lb) len = len * 256 + b;
    if (len < 0x80) bad(`${what}: long-form length for a short value (not DER)`, offset);
    head = concat(Uint8Array.of(tag, l0), lb);
  }
  const value = r.bytes(len, what);
  return Object.freeze({ tag, value, raw: concat(head, value), offset });
}

function expectTlv(r: ByteReader, tag: number, what: string): Tlv {
  const t = readTlv(r, what);
  if (t.tag !== tag) bad(`${what}: expected tag 0x${tag.toString(16)}, got 0x${t.tag.toString(16)}`, t.offset);
  return t;
}

/** A reader over a constructed element's contents, with absolute offsets. */
function inner(t: Tlv): ByteReader {
  return new ByteReader(t.value, t.offset + (t.raw.byteLength - t.value.byteLength));
}

const T = { INTEGER: 0x02, OCTET_STRING: 0x04, NULL: 0x05, OID: 0x06, SEQUENCE: 0x30, SET: 0x31, CTX0: 0xa0, CTX1: 0xa1 } as const;

/** Dotted-decimal OID (X.690 §8.19), minimal sub-identifiers. */
export function decodeOid(v: Uint8Array): string {
  if (v.byteLength === 0 || v.byteLength > 64) return bad('OID length out of range');
  const arcs: number[] = [];
  let acc = 0;
  let started = false;
  for (const b of v) {
    if (!started && b === 0x80) bad('OID sub-identifier is not minimal');
    started = true;
    acc = acc * 128 + (b & 0x7f);
    if (acc > Number.MAX_SAFE_INTEGER / 128) bad('OID arc too large');
    if ((b & 0x80) === 0) {
      arcs.push(acc);
      acc = 0;
      started = false;
    }
  }
  if (started) bad('OID ends inside a sub-identifier');
  const first = arcs.shift() as number;
  const head = first < 40 ? [0, first] : first < 80 ? [1, first - 40] : [2, first - 80];
  return [...head, ...arcs].join('.');
}

function readOid(r: ByteReader, what: string): string {
  return decodeOid(expectTlv(r, T.OID, what).value);
}

/** AlgorithmIdentifier: OID with absent or NULL parameters (RFC 5754 §2, RFC 8017 App. A.2.4). */
function readAlgorithm(r: ByteReader, what: string): string {
  const seq = inner(expectTlv(r, T.SEQUENCE, what));
  const oid = readOid(seq, `${what} OID`);
  if (seq.remaining > 0) {
    const p = readTlv(seq, `${what} parameters`);
    if (p.tag !== T.NULL || p.value.byteLength !== 0) bad(`${what}: parameters must be absent or NULL`, p.offset);
  }
  seq.end(what);
  return oid;
}

function readSetOf<X>(t: Tlv, max: number, what: string, item: (r: ByteReader) => X): X[] {
  const r = inner(t);
  const out: X[] = [];
  while (r.remaining > 0) {
    if (out.length >= max) throw malformed(CommonCodes.LIMIT_EXCEEDED, `PKCS#7: more than ${max} ${what}`);
    out.push(item(r));
  }
  return out;
}

export const OID = {
  signedData: '1.2.840.113549.1.7.2',
  data: '1.2.840.113549.1.7.1',
  contentType: '1.2.840.113549.1.9.3',
  messageDigest: '1.2.840.113549.1.9.4',
  sha256: '2.16.840.1.101.3.4.2.1',
  sha384: '2.16.840.1.101.3.4.2.2',
  sha512: '2.16.840.1.101.3.4.2.3',
  sha1: '1.3.14.3.2.26',
  rsaEncryption: '1.2.840.113549.1.1.1',
  sha256WithRSA: '1.2.840.113549.1.1.11',
  sha384WithRSA: '1.2.840.113549.1.1.12',
  sha512WithRSA: '1.2.840.113549.1.1.13',
  dsaWithSha1: '1.2.840.10040.4.3',
} as const;

export interface Attribute {
  readonly type: string;
  readonly values: readonly Tlv[];
}

export interface SignerInfo {
  readonly version: number;
  /** Raw DER of the issuer Name (IssuerAndSerialNumber), compared byte-wise with the certificate's. */
  readonly issuer: Uint8Array;
  /** Serial number INTEGER contents (two's complement, as encoded). */
  readonly serial: Uint8Array;
  readonly digestAlgorithm: string;
  /** The signed attributes: the raw `[0]` element (re-tagged as SET for hashing) and parsed. */
  readonly signedAttrs?: { readonly raw: Uint8Array; readonly attributes: readonly Attribute[] };
  readonly signatureAlgorithm: string;
  readonly signature: Uint8Array;
}

export interface SignedData {
  readonly version: number;
  readonly digestAlgorithms: readonly string[];
  readonly contentType: string;
  /** The attached content (the identity document JSON). */
  readonly content: Uint8Array;
  /** Certificates carried in the message: parsed by nobody, trusted by nobody. */
  readonly certificates: readonly Uint8Array[];
  readonly signer: SignerInfo;
}

function readSmallInt(r: ByteReader, what: string): number {
  const t = expectTlv(r, T.INTEGER, what);
  if (t.value.byteLength !== 1 || (t.value[0] as number) > 5) bad(`${what} is not a small version number`, t.offset);
  return t.value[0] as number;
}

function readSignerInfo(r: ByteReader): SignerInfo {
  const ps = peekable(expectTlv(r, T.SEQUENCE, 'SignerInfo'));
  const s = ps.r;
  const version = readSmallInt(s, 'SignerInfo.version');
  if (version !== 1) bad(`SignerInfo version ${version}: only IssuerAndSerialNumber signers (v1) are supported`);
  const sid = inner(expectTlv(s, T.SEQUENCE, 'IssuerAndSerialNumber'));
  const issuer = expectTlv(sid, T.SEQUENCE, 'issuer Name').raw;
  const serialT = expectTlv(sid, T.INTEGER, 'serialNumber');
  if (serialT.value.byteLength === 0 || serialT.value.byteLength > 20) bad('serialNumber length out of range', serialT.offset);
  sid.end('IssuerAndSerialNumber');
  const digestAlgorithm = readAlgorithm(s, 'SignerInfo.digestAlgorithm');
  let signedAttrs: SignerInfo['signedAttrs'];
  if (peek(ps) === T.CTX0) {
    const t = readTlv(s, 'signedAttrs');
    const attributes = readSetOf(t, 16, 'signed attributes', (ar) => {
      const a = inner(expectTlv(ar, T.SEQUENCE, 'Attribute'));
      const type = readOid(a, 'Attribute.type');
      const vs = readSetOf(expectTlv(a, T.SET, 'Attribute.values'), 4, 'attribute values', (vr) => readTlv(vr, 'AttributeValue'));
      a.end('Attribute');
      return Object.freeze({ type, values: Object.freeze(vs) });
    });
    const types = new Set(attributes.map((a) => a.type));
    if (types.size !== attributes.length) bad('a signed attribute type appears twice');
    signedAttrs = Object.freeze({ raw: t.raw, attributes: Object.freeze(attributes) });
  }
  const signatureAlgorithm = readAlgorithm(s, 'SignerInfo.signatureAlgorithm');
  const sig = expectTlv(s, T.OCTET_STRING, 'SignerInfo.signature');
  if (s.remaining > 0) bad('unsigned attributes are not supported');
  s.end('SignerInfo');
  const out: { -readonly [K in keyof SignerInfo]: SignerInfo[K] } = {
    version,
    issuer,
    serial: serialT.value,
    digestAlgorithm,
    signatureAlgorithm,
    signature: sig.value,
  };
  if (signedAttrs) out.signedAttrs = signedAttrs;
  return Object.freeze(out);
}

/** A reader over a constructed element that can also look at its next identifier octet. */
interface Peekable {
  readonly r: ByteReader;
  readonly buf: Uint8Array;
}
function peekable(t: Tlv): Peekable {
  return { r: inner(t), buf: t.value };
}
function peek(p: Peekable): number {
  return p.r.remaining > 0 ? (p.buf[p.r.position] as number) : -1;
}

/** Caps for the identity document message. */
export const PKCS7_LIMITS = Object.freeze({ bytes: 16 * 1024, content: 8 * 1024, certificates: 4, digestAlgorithms: 4 });

/** Parses a DER PKCS#7 / CMS ContentInfo holding SignedData with attached id-data content. */
export function parseSignedData(der: Uint8Array): SignedData {
  if (der.byteLength > PKCS7_LIMITS.bytes) throw malformed(CommonCodes.LIMIT_EXCEEDED, `PKCS#7 of ${der.byteLength} bytes exceeds the cap`);
  const top = new ByteReader(der);
  const ci = inner(expectTlv(top, T.SEQUENCE, 'ContentInfo'));
  top.end('ContentInfo');
  if (readOid(ci, 'ContentInfo.contentType') !== OID.signedData) bad('ContentInfo is not signedData');
  const explicit = inner(expectTlv(ci, T.CTX0, 'ContentInfo.content'));
  ci.end('ContentInfo');
  const sdT = expectTlv(explicit, T.SEQUENCE, 'SignedData');
  explicit.end('ContentInfo.content');
  const psd = peekable(sdT);
  const sd = psd.r;
  const version = readSmallInt(sd, 'SignedData.version');
  // RFC 5652 §5.1: version 1 exactly when id-data content, v1 signers and no attribute certificates.
  if (version !== 1) bad(`SignedData version ${version} is not 1`);
  const digestAlgorithms = readSetOf(expectTlv(sd, T.SET, 'digestAlgorithms'), PKCS7_LIMITS.digestAlgorithms, 'digest algorithms', (r) =>
    readAlgorithm(r, 'digestAlgorithm'),
  );
  const eci = inner(expectTlv(sd, T.SEQUENCE, 'encapContentInfo'));
  const contentType = readOid(eci, 'eContentType');
  if (eci.remaining === 0) bad('the content is detached; the identity document must be attached');
  const ec = inner(expectTlv(eci, T.CTX0, 'eContent'));
  const octets = expectTlv(ec, T.OCTET_STRING, 'eContent OCTET STRING');
  ec.end('eContent');
  eci.end('encapContentInfo');
  if (octets.value.byteLength > PKCS7_LIMITS.content) throw malformed(CommonCodes.LIMIT_EXCEEDED, 'PKCS#7 content exceeds the cap');
  let certificates: Uint8Array[] = [];
  if (peek(psd) === T.CTX0) {
    certificates = readSetOf(readTlv(sd, 'certificates'), PKCS7_LIMITS.certificates, 'certificates', (r) => expectTlv(r, T.SEQUENCE, 'Certificate').raw);
  }
  if (peek(psd) === T.CTX1) bad('CRLs are not expected here');
  const signers = readSetOf(expectTlv(sd, T.SET, 'signerInfos'), 1, 'signers', readSignerInfo);
  sd.end('SignedData');
  if (signers.length !== 1) bad('exactly one signer is required');
  return Object.freeze({
    version,
    digestAlgorithms: Object.freeze(digestAlgorithms),
    contentType,
    content: octets.value,
    certificates: Object.freeze(certificates),
    signer: signers[0] as SignerInfo,
  });
}

/**
 * @module providers/common/der
 *
 * The one DER (ITU-T X.690 §8, §10) reader every provider uses for the ASN.1 that @peculiar/x509
 * leaves opaque or that is not a certificate at all (PKCS#7/CMS, OCSP, certificate extensions),
 * on top of the shared bounds-checked `ByteReader`.
 *
 * Reading rules, each enforced where a TLV is read, so no caller can forget one:
 * - identifier: one octet (tag numbers < 31; every structure read here uses only those);
 * - length: definite only (0x80, BER's indefinite form, is refused), short form below 128, long
 *   form minimal (no leading zero octet, never for a length below 128: X.690 §10.1), at most
 *   3 length octets (a bigger length is LIMIT_EXCEEDED; nothing read here comes near 16 MiB);
 * - contents: read through the `ByteReader`, so a length beyond the input is TRUNCATED at its
 *   absolute offset, and `decodeOne` / `ByteReader.end` make trailing bytes TRAILING_BYTES;
 * - values: INTEGER minimal two's complement (§8.3.2), BOOLEAN exactly 0x00/0xFF (§11.1), OID
 *   sub-identifiers minimal (§8.19.2), BIT STRING with no unused bits where keys and signatures
 *   are read, GeneralizedTime in the §11.7 form (UTC `Z`, no trailing fractional zeros); string
 *   and OCTET STRING types are primitive only (a constructed encoding has another tag and fails
 *   the tag check).
 *
 * Every structural violation throws DER_MALFORMED (kind malformed). A provider whose tests pin a
 * code of its own maps it with `derAs(code, f)`; TRUNCATED, TRAILING_BYTES and LIMIT_EXCEEDED
 * keep their common codes everywhere.
 *
 * A `Tlv` holds copies (never views of the input): `raw` is the element exactly as received
 * (identifier, length, contents) for byte-wise comparisons and signatures over it, `value` its
 * contents.
 *
 * Writing (`encodeTlv`, `encodeOid`) builds minimal DER, for requests (OCSP) and tests.
 *
 * `certificateFields` reads the parts of an X.509 certificate (RFC 5280 §4.1) the providers need
 * beyond the X.509 library (exact issuer/subject bytes, serial, signed bytes, extension values),
 * with strict framing: without it, bytes the signature does not cover could change unnoticed.
 */
import { ByteReader, concat } from './bytes.js';
import { AttestError, malformed, CommonCodes, type CodeOfKind } from './errors.js';
import { fromUtf8 } from './encoding.js';

export const DerCodes = {
  /** Not DER, or not the ASN.1 shape the caller reads (the message says which element). */
  DER_MALFORMED: 'DER_MALFORMED',
} as const;

/** Universal tags used by the callers (X.690 §8.1.2.2, constructed bit included for SEQUENCE/SET). */
export const TAG = Object.freeze({
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  ENUMERATED: 0x0a,
  UTF8_STRING: 0x0c,
  GENERALIZED_TIME: 0x18,
  SEQUENCE: 0x30,
  SET: 0x31,
});

/** Context-specific tag `[n]`: constructed (EXPLICIT, or IMPLICIT over a constructed type) or primitive. */
export const ctx = (n: number): number => 0xa0 | n;
export const ctxPrimitive = (n: number): number => 0x80 | n;

/** At most this many length octets (lengths up to 16 MiB − 1). */
const MAX_LENGTH_OCTETS = 3;
/** At most this many children in one constructed value. */
const MAX_CHILDREN = 512;
/** At most this many contents octets in an OBJECT IDENTIFIER. */
const MAX_OID_BYTES = 64;

function bad(what: string, m: string, offset?: number): never {
  throw malformed(DerCodes.DER_MALFORMED, `${what}: ${m}`, offset === undefined ? {} : { offset });
}

export interface Tlv {
  /** The identifier octet (class, constructed bit, tag number < 31). */
  readonly tag: number;
  /** The contents octets. */
  readonly value: Uint8Array;
  /** Identifier, length and contents exactly as received. */
  readonly raw: Uint8Array;
  /** Absolute offset of the identifier octet. */
  readonly offset: number;
  /** Absolute offset of the first contents octet. */
  readonly valueOffset: number;
}

/** Reads one TLV from `r` (X.690 §8.1.2 identifier, §8.1.3 and §10.1 definite minimal length). */
export function readTlv(r: ByteReader, what: string): Tlv {
  const offset = r.offset;
  const tag = r.u8(`${what} tag`);
  if ((tag & 0x1f) === 0x1f) bad(what, 'multi-byte tags are not supported', offset);
  const l0 = r.u8(`${what} length`);
  let len = l0;
  let head: Uint8Array = Uint8Array.of(tag, l0);
  if (l0 === 0x80) bad(what, 'indefinite length (BER) is not DER', offset);
  if (l0 > 0x80) {
    const n = l0 & 0x7f;
    if (n > MAX_LENGTH_OCTETS) {
      throw malformed(CommonCodes.LIMIT_EXCEEDED, `${what}: a ${n}-octet length exceeds the ${MAX_LENGTH_OCTETS}-octet cap`, { offset });
    }
    const lb = r.bytes(n, `${what} length`);
    if (lb[0] === 0) bad(what, 'length with a leading zero octet (not DER)', offset);
    len = 0;
    for (const b of lb) len = len * 256 + b;
    if (len < 0x80) bad(what, 'long-form length below 128 (not DER)', offset);
    head = concat(head, lb);
  }
  const valueOffset = r.offset;
  const raw = concat(head, r.bytes(len, what));
  return Object.freeze({ tag, value: raw.subarray(head.length), raw, offset, valueOffset });
}

/** Exactly one TLV spanning all of `bytes` (TRAILING_BYTES otherwise). */
export function decodeOne(bytes: Uint8Array, what: string, base = 0): Tlv {
  const r = new ByteReader(bytes, base);
  const t = readTlv(r, what);
  r.end(what);
  return t;
}

/** Requires `t` to be present and to carry `tag`. */
export function want(t: Tlv | undefined, tag: number, what: string): Tlv {
  if (!t) return bad(what, 'missing');
  if (t.tag !== tag) bad(what, `expected tag 0x${tag.toString(16)}, got 0x${t.tag.toString(16)}`, t.offset);
  return t;
}

/** A reader over a constructed value's contents, with absolute offsets (end() proves it consumed). */
export function contents(t: Tlv, what: string): ByteReader {
  if ((t.tag & 0x20) === 0) bad(what, 'is not a constructed value', t.offset);
  return new ByteReader(t.value, t.valueOffset);
}

/** The complete list of a constructed value's children (they consume it exactly). */
export function children(t: Tlv | undefined, what: string, max = MAX_CHILDREN): Tlv[] {
  if (!t) return bad(what, 'missing');
  const r = contents(t, what);
  const out: Tlv[] = [];
  while (r.remaining > 0) {
    if (out.length >= max) throw malformed(CommonCodes.LIMIT_EXCEEDED, `${what}: more than ${max} elements`, { offset: r.offset });
    out.push(readTlv(r, `${what}[${out.length}]`));
  }
  return out;
}

/** `[n] EXPLICIT T`: the one element inside the context tag. */
export function explicit(t: Tlv | undefined, n: number, what: string): Tlv {
  const r = contents(want(t, ctx(n), what), what);
  const inner = readTlv(r, what);
  r.end(what);
  return inner;
}

/** Dotted form of an OBJECT IDENTIFIER (X.690 §8.19), minimal sub-identifiers only. */
export function oid(t: Tlv | undefined, what: string): string {
  const o = want(t, TAG.OID, what);
  const v = o.value;
  if (v.length === 0 || v.length > MAX_OID_BYTES) bad(what, `an OID of ${v.length} octets`, o.offset);
  const arcs: number[] = [];
  let acc = 0;
  let inArc = false;
  for (const b of v) {
    if (!inArc && b === 0x80) bad(what, 'non-minimal OID sub-identifier', o.offset);
    acc = acc * 128 + (b & 0x7f);
    if (acc > Number.MAX_SAFE_INTEGER / 256) bad(what, 'OID arc too large', o.offset);
    inArc = (b & 0x80) !== 0;
    if (!inArc) {
      arcs.push(acc);
      acc = 0;
    }
  }
  if (inArc) bad(what, 'OID ends inside a sub-identifier', o.offset);
  const first = arcs[0] as number;
  const head = first < 40 ? [0, first] : first < 80 ? [1, first - 40] : [2, first - 80];
  return [...head, ...arcs.slice(1)].join('.');
}

/** INTEGER / ENUMERATED contents (X.690 §8.3, §8.4): non-empty, minimal two's complement. */
function minimalInteger(t: Tlv, what: string): Uint8Array {
  const v = t.value;
  if (v.length === 0) bad(what, 'empty INTEGER', t.offset);
  if (v.length > 1 && ((v[0] === 0 && ((v[1] as number) & 0x80) === 0) || (v[0] === 0xff && ((v[1] as number) & 0x80) !== 0))) {
    bad(what, 'INTEGER is not minimally encoded', t.offset);
  }
  return v;
}

/** An INTEGER's contents as encoded (two's complement, a 0x00 sign octet kept). */
export function integerBytes(t: Tlv | undefined, what: string): Uint8Array {
  return minimalInteger(want(t, TAG.INTEGER, what), what);
}

/** A non-negative INTEGER of at most 64 bits. */
export function unsignedInteger(t: Tlv | undefined, what: string): bigint {
  const i = want(t, TAG.INTEGER, what);
  const v = minimalInteger(i, what);
  if (((v[0] as number) & 0x80) !== 0) bad(what, 'negative INTEGER', i.offset);
  if (v.length > 9 || (v.length === 9 && v[0] !== 0)) bad(what, 'INTEGER exceeds 64 bits', i.offset);
  let n = 0n;
  for (const b of v) n = (n << 8n) | BigInt(b);
  return n;
}

/** A non-negative INTEGER (or, with `tag`, ENUMERATED) below 2^31, as a number. */
export function smallInt(t: Tlv | undefined, what: string, tag: number = TAG.INTEGER): number {
  const i = want(t, tag, what);
  const v = minimalInteger(i, what);
  if (v.length > 4 || ((v[0] as number) & 0x80) !== 0) bad(what, 'value out of range', i.offset);
  let n = 0;
  for (const b of v) n = n * 256 + b;
  return n;
}

/** BOOLEAN: one octet, 0x00 or 0xFF (X.690 §11.1). */
export function boolean(t: Tlv | undefined, what: string): boolean {
  const b = want(t, TAG.BOOLEAN, what);
  if (b.value.length !== 1 || (b.value[0] !== 0 && b.value[0] !== 0xff)) bad(what, 'BOOLEAN must be one octet 00 or FF', b.offset);
  return b.value[0] === 0xff;
}

/** A primitive OCTET STRING's contents. */
export function octetString(t: Tlv | undefined, what: string): Uint8Array {
  return want(t, TAG.OCTET_STRING, what).value;
}

/** A BIT STRING with no unused bits (keys, signatures), without its unused-bits octet. */
export function bitStringBytes(t: Tlv | undefined, what: string): Uint8Array {
  const b = want(t, TAG.BIT_STRING, what);
  if (b.value.length < 1 || b.value[0] !== 0) bad(what, 'BIT STRING with unused bits', b.offset);
  return b.value.subarray(1);
}

/** A primitive UTF8String (invalid UTF-8 is BAD_ENCODING). */
export function utf8String(t: Tlv | undefined, what: string): string {
  return fromUtf8(want(t, TAG.UTF8_STRING, what).value, what);
}

const GT_RE = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(?:\.(\d{0,8}[1-9]))?Z$/;

/** GeneralizedTime (X.690 §11.7: UTC `Z`, seconds present, no trailing fractional zeros). */
export function generalizedTime(t: Tlv | undefined, what: string): Date {
  const g = want(t, TAG.GENERALIZED_TIME, what);
  let s = '';
  for (const b of g.value) {
    if (b < 0x20 || b > 0x7e) bad(what, 'GeneralizedTime is not printable', g.offset);
    s += String.fromCharCode(b);
  }
  const m = GT_RE.exec(s);
  if (!m) return bad(what, `GeneralizedTime "${s}" is not YYYYMMDDHHMMSS[.f]Z`, g.offset);
  const [y, mo, d, h, mi, se] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  const ms = m[7] ? Math.floor(Number(`0.${m[7]}`) * 1000) : 0;
  const date = new Date(Date.UTC(y, mo - 1, d, h, mi, se, ms));
  if (date.getUTCFullYear() !== y || date.getUTCMonth() !== mo - 1 || date.getUTCDate() !== d || h > 23 || mi > 59 || se > 59) {
    bad(what, `GeneralizedTime "${s}" is not a valid date`, g.offset);
  }
  return date;
}

export interface AlgorithmIdentifier {
  readonly oid: string;
  /** The parameters element, when present. */
  readonly parameters: Tlv | undefined;
}

/** `AlgorithmIdentifier ::= SEQUENCE { algorithm OID, parameters ANY OPTIONAL }` (RFC 5280 §4.1.1.2). */
export function algorithmIdentifier(t: Tlv | undefined, what: string): AlgorithmIdentifier {
  const a = want(t, TAG.SEQUENCE, what);
  const parts = children(a, what);
  if (parts.length < 1 || parts.length > 2) bad(what, 'AlgorithmIdentifier is not SEQUENCE { OID, parameters OPTIONAL }', a.offset);
  return Object.freeze({ oid: oid(parts[0], `${what}.algorithm`), parameters: parts[1] });
}

/** An AlgorithmIdentifier whose parameters are absent or NULL (hash and RSA PKCS#1 v1.5 algorithms). */
export function algorithmNoParams(t: Tlv | undefined, what: string): string {
  const a = algorithmIdentifier(t, what);
  const p = a.parameters;
  if (p && (p.tag !== TAG.NULL || p.value.length !== 0)) bad(what, 'parameters must be absent or NULL', p.offset);
  return a.oid;
}

/**
 * Runs a parse whose DER errors belong to a provider code: DER_MALFORMED becomes `code` (message,
 * offset and cause kept); every other error, TRUNCATED and TRAILING_BYTES included, passes as is.
 */
export function derAs<T>(code: CodeOfKind<'malformed'>, f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof AttestError && e.code === DerCodes.DER_MALFORMED) {
      throw malformed(code, e.message, { cause: e, ...(e.offset === undefined ? {} : { offset: e.offset }) });
    }
    throw e;
  }
}

// --- writing -----------------------------------------------------------------------------

function lengthOctets(n: number): Uint8Array {
  if (n < 0x80) return Uint8Array.of(n);
  const out: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) out.unshift(v & 0xff);
  return Uint8Array.from([0x80 | out.length, ...out]);
}

/** One DER TLV with a minimal length over the concatenated `parts`. */
export function encodeTlv(tag: number, ...parts: readonly Uint8Array[]): Uint8Array {
  const value = concat(...parts);
  return concat(Uint8Array.of(tag), lengthOctets(value.length), value);
}

/** The OBJECT IDENTIFIER TLV of a dotted OID (X.690 §8.19). */
export function encodeOid(dotted: string): Uint8Array {
  const arcs = dotted.split('.').map(Number);
  const [a, b] = arcs as [number, number];
  const out: number[] = [];
  for (const s of [a * 40 + b, ...arcs.slice(2)]) {
    const chunk: number[] = [s & 0x7f];
    for (let v = Math.floor(s / 128); v > 0; v = Math.floor(v / 128)) chunk.unshift(0x80 | (v & 0x7f));
    out.push(...chunk);
  }
  return encodeTlv(TAG.OID, Uint8Array.from(out));
}

// --- certificates ------------------------------------------------------------------------

/** The parts of an X.509 certificate (RFC 5280 §4.1) read beside the X.509 library. */
export interface CertificateFields {
  /** The TBSCertificate TLV as received: the bytes the issuer signed. */
  readonly tbs: Uint8Array;
  /** The signatureValue BIT STRING contents (no unused-bits octet). */
  readonly signature: Uint8Array;
  /** serialNumber INTEGER contents, as encoded (a 0x00 sign octet kept). */
  readonly serial: Uint8Array;
  /** The issuer Name TLV. */
  readonly issuer: Uint8Array;
  /** The subject Name TLV. */
  readonly subject: Uint8Array;
  /** The subjectPublicKey BIT STRING contents (no unused-bits octet). */
  readonly subjectPublicKey: Uint8Array;
  /** extnValue OCTET STRING contents by extnID. */
  readonly extensions: ReadonlyMap<string, Uint8Array>;
}

/**
 * Reads `Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue BIT STRING }`
 * and `TBSCertificate ::= SEQUENCE { [0] EXPLICIT version OPTIONAL, serialNumber, signature,
 * issuer, validity, subject, subjectPublicKeyInfo, [1] issuerUID OPTIONAL, [2] subjectUID
 * OPTIONAL, [3] EXPLICIT extensions OPTIONAL }`, strictly:
 * - the Certificate spans `der` exactly, with DER lengths throughout;
 * - signatureAlgorithm is byte-identical to tbsCertificate.signature (§4.1.1.2 "MUST contain the
 *   same algorithm identifier"), and signatureValue has no unused bits;
 * - the optional TBSCertificate members appear at most once, in order, and nothing else follows
 *   (an empty extensions list, which RFC 5280 forbids but @peculiar/x509 writes, is accepted);
 * - `Extension ::= SEQUENCE { extnID, critical BOOLEAN DEFAULT FALSE, extnValue OCTET STRING }`,
 *   no extnID twice (§4.2). An explicitly encoded critical FALSE is accepted: it is inside the
 *   signed bytes, and some issuers write it.
 */
export function certificateFields(der: Uint8Array, what = 'certificate'): CertificateFields {
  const cert = children(want(decodeOne(der, what), TAG.SEQUENCE, what), what, 3);
  if (cert.length !== 3) bad(what, 'Certificate is not SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue }');
  const [tbsT, outerAlg] = cert as [Tlv, Tlv, Tlv];
  const signature = bitStringBytes(cert[2], `${what} signatureValue`);
  const tbs = children(want(tbsT, TAG.SEQUENCE, `${what} tbsCertificate`), `${what} tbsCertificate`, 10);
  let i = 0;
  if (tbs[0]?.tag === ctx(0)) smallInt(explicit(tbs[i++], 0, `${what} version`), `${what} version`);
  const serial = integerBytes(tbs[i++], `${what} serialNumber`);
  const innerAlg = want(tbs[i++], TAG.SEQUENCE, `${what} tbsCertificate.signature`);
  algorithmIdentifier(want(outerAlg, TAG.SEQUENCE, `${what} signatureAlgorithm`), `${what} signatureAlgorithm`);
  if (outerAlg.raw.length !== innerAlg.raw.length || outerAlg.raw.some((b, k) => b !== innerAlg.raw[k])) {
    bad(what, 'signatureAlgorithm differs from tbsCertificate.signature', outerAlg.offset);
  }
  const issuer = want(tbs[i++], TAG.SEQUENCE, `${what} issuer`);
  want(tbs[i++], TAG.SEQUENCE, `${what} validity`);
  const subject = want(tbs[i++], TAG.SEQUENCE, `${what} subject`);
  const spki = children(want(tbs[i++], TAG.SEQUENCE, `${what} subjectPublicKeyInfo`), `${what} subjectPublicKeyInfo`);
  if (spki.length !== 2) bad(what, 'subjectPublicKeyInfo is not SEQUENCE { algorithm, subjectPublicKey }');
  algorithmIdentifier(spki[0], `${what} subjectPublicKeyInfo.algorithm`);
  const subjectPublicKey = bitStringBytes(spki[1], `${what} subjectPublicKey`);
  if (tbs[i]?.tag === ctxPrimitive(1)) i++;
  if (tbs[i]?.tag === ctxPrimitive(2)) i++;
  const extensions = new Map<string, Uint8Array>();
  if (tbs[i]?.tag === ctx(3)) {
    const list = children(want(explicit(tbs[i++], 3, `${what} extensions`), TAG.SEQUENCE, `${what} extensions`), `${what} extensions`);
    for (const e of list) {
      const parts = children(want(e, TAG.SEQUENCE, `${what} extension`), `${what} extension`);
      if (parts.length < 2 || parts.length > 3) bad(what, 'Extension is not SEQUENCE { extnID, critical OPTIONAL, extnValue }', e.offset);
      const id = oid(parts[0], `${what} extnID`);
      if (parts.length === 3) boolean(parts[1], `${what} extension ${id} critical`);
      if (extensions.has(id)) bad(what, `extension ${id} appears twice`, e.offset);
      extensions.set(id, octetString(parts[parts.length - 1], `${what} extension ${id} extnValue`));
    }
  }
  if (i !== tbs.length) bad(what, `unexpected TBSCertificate member 0x${(tbs[i] as Tlv).tag.toString(16)}`, (tbs[i] as Tlv).offset);
  return Object.freeze({ tbs: tbsT.raw, signature, serial, issuer: issuer.raw, subject: subject.raw, subjectPublicKey, extensions });
}

/**
 * @module providers/nvidia/der
 *
 * The little DER this verifier needs beyond @peculiar/x509: the DICE FWID extensions of the GPU
 * leaf, the certificate fields an OCSP CertID is built from, and OCSP requests and responses.
 *
 * Reading (X.690 §8.1, §10): single-byte tags only, definite lengths in minimal form (at most
 * 3 length bytes), every TLV read through the project's bounds-checked `ByteReader` (TRUNCATED
 * when a length lies). A constructed value is split into its complete list of children
 * (`children`), which must consume it exactly (TRAILING_BYTES otherwise), so callers match
 * children by position and tag instead of peeking. BER forms (indefinite or non-minimal
 * lengths) are refused: whatever is hashed or signed here has exactly one encoding.
 *
 * Writing: `tlv(tag, …parts)` with minimal lengths, used only to build OCSP requests.
 */
import { ByteReader, concat } from '../common/bytes.js';
import { malformed, type CodeOfKind } from '../common/errors.js';

export interface Tlv {
  /** The identifier octet (class, constructed bit, tag number < 31). */
  readonly tag: number;
  readonly value: Uint8Array;
  /** Identifier, length and value exactly as received. */
  readonly raw: Uint8Array;
  /** Absolute offset of the identifier octet. */
  readonly offset: number;
}

/** Universal tags used here (X.690 §8.1.2.2); context tags are written `0xa0 | n` / `0x80 | n`. */
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

/** Caps: no structure read here is anywhere near these. */
const MAX_CHILDREN = 512;

function fail(code: CodeOfKind<'malformed'>, what: string, m: string, offset?: number): never {
  throw malformed(code, `${what}: ${m}`, offset === undefined ? {} : { offset });
}

/** Reads one TLV from `r` (X.690 §8.1.2 identifier, §8.1.3 / §10.1 definite minimal length). */
export function readTlv(r: ByteReader, code: CodeOfKind<'malformed'>, what: string): Tlv {
  const offset = r.offset;
  const tag = r.u8(`${what} tag`);
  if ((tag & 0x1f) === 0x1f) fail(code, what, 'multi-byte tags are not used here', offset);
  const l0 = r.u8(`${what} length`);
  let len: number;
  let head: Uint8Array;
  if (l0 < 0x80) {
    len = l0;
    head = Uint8Array.of(tag, l0);
  } else if (l0 === 0x80) {
    return fail(code, what, 'indefinite length (BER) is not DER', offset);
  } else {
    const n = l0 & 0x7f;
    if (n > 3) fail(code, what, `a ${n}-byte length is beyond the cap`, offset);
    const lb = r.bytes(n, `${what} length`);
    if (lb[0] === 0) fail(code, what, 'length with a leading zero byte (not DER)', offset);
    len = 0;
    for (const b of lb) len = len * 256 + b;
    if (len < 0x80) fail(code, what, 'long-form length for a short value (not DER)', offset);
    head = concat(Uint8Array.of(tag, l0), lb);
  }
  const value = r.bytes(len, what);
  return Object.freeze({ tag, value, raw: concat(head, value), offset });
}

/** Decodes exactly one TLV spanning all of `bytes`. */
export function decodeOne(bytes: Uint8Array, code: CodeOfKind<'malformed'>, what: string, base = 0): Tlv {
  const r = new ByteReader(bytes, base);
  const t = readTlv(r, code, what);
  r.end(what);
  return t;
}

/** Requires `t` to carry `tag`. */
export function want(t: Tlv | undefined, tag: number, code: CodeOfKind<'malformed'>, what: string): Tlv {
  if (!t) return fail(code, what, 'missing');
  if (t.tag !== tag) fail(code, what, `expected tag 0x${tag.toString(16)}, got 0x${t.tag.toString(16)}`, t.offset);
  return t;
}

/** The children of a constructed TLV, consuming its value exactly. */
export function children(t: Tlv, code: CodeOfKind<'malformed'>, what: string): Tlv[] {
  if ((t.tag & 0x20) === 0) fail(code, what, 'is not a constructed value', t.offset);
  const base = t.offset + (t.raw.length - t.value.length);
  const r = new ByteReader(t.value, base);
  const out: Tlv[] = [];
  while (r.remaining > 0) {
    if (out.length >= MAX_CHILDREN) fail(code, what, `more than ${MAX_CHILDREN} elements`, r.offset);
    out.push(readTlv(r, code, `${what}[${out.length}]`));
  }
  return out;
}

/** Dotted form of an OBJECT IDENTIFIER value (X.690 §8.19), minimal sub-identifiers only. */
export function oidOf(t: Tlv, code: CodeOfKind<'malformed'>, what: string): string {
  want(t, TAG.OID, code, what);
  const v = t.value;
  if (v.length === 0 || v.length > 64) fail(code, what, 'bad OID length', t.offset);
  const arcs: number[] = [];
  let acc = 0;
  let started = false;
  for (let i = 0; i < v.length; i++) {
    const b = v[i] as number;
    if (!started && b === 0x80) fail(code, what, 'non-minimal OID sub-identifier', t.offset);
    started = true;
    acc = acc * 128 + (b & 0x7f);
    if (acc > Number.MAX_SAFE_INTEGER / 256) fail(code, what, 'OID arc too large', t.offset);
    if ((b & 0x80) === 0) {
      arcs.push(acc);
      acc = 0;
      started = false;
    }
  }
  if (started) fail(code, what, 'truncated OID sub-identifier', t.offset);
  const first = arcs.shift() as number;
  const head = first < 40 ? [0, first] : first < 80 ? [1, first - 40] : [2, first - 80];
  return [...head, ...arcs].join('.');
}

/** A non-negative INTEGER value's magnitude bytes as encoded (X.690 §8.3: minimal two's complement). */
export function integerBytes(t: Tlv, code: CodeOfKind<'malformed'>, what: string): Uint8Array {
  want(t, TAG.INTEGER, code, what);
  const v = t.value;
  if (v.length === 0) fail(code, what, 'empty INTEGER', t.offset);
  if (v.length > 1 && ((v[0] === 0 && ((v[1] as number) & 0x80) === 0) || (v[0] === 0xff && ((v[1] as number) & 0x80) !== 0))) {
    fail(code, what, 'INTEGER is not minimally encoded', t.offset);
  }
  return v;
}

/** A small non-negative INTEGER or ENUMERATED as a number. */
export function smallInt(t: Tlv, tag: number, code: CodeOfKind<'malformed'>, what: string): number {
  want(t, tag, code, what);
  const v = tag === TAG.INTEGER ? integerBytes(t, code, what) : t.value;
  if (v.length === 0 || v.length > 4 || ((v[0] as number) & 0x80) !== 0) fail(code, what, 'value out of range', t.offset);
  let n = 0;
  for (const b of v) n = n * 256 + b;
  return n;
}

const GT_RE = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(?:\.(\d{0,8}[1-9]))?Z$/;

/** GeneralizedTime (X.690 §11.7: UTC `Z`, no trailing fractional zeros) as a Date. */
export function generalizedTime(t: Tlv, code: CodeOfKind<'malformed'>, what: string): Date {
  want(t, TAG.GENERALIZED_TIME, code, what);
  let s = '';
  for (const b of t.value) {
    if (b < 0x20 || b > 0x7e) fail(code, what, 'GeneralizedTime is not printable', t.offset);
    s += String.fromCharCode(b);
  }
  const m = GT_RE.exec(s);
  if (!m) return fail(code, what, `GeneralizedTime "${s}" is not YYYYMMDDHHMMSS[.f]Z`, t.offset);
  const [y, mo, d, h, mi, se] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  const ms = m[7] ? Math.floor(Number(`0.${m[7]}`) * 1000) : 0;
  const date = new Date(Date.UTC(y, mo - 1, d, h, mi, se, ms));
  if (date.getUTCMonth() !== mo - 1 || date.getUTCDate() !== d || h > 23 || mi > 59 || se > 59) {
    fail(code, what, `GeneralizedTime "${s}" is not a valid date`, t.offset);
  }
  return date;
}

/** A BIT STRING's bytes when it has no unused bits (keys, signatures). */
export function bitStringBytes(t: Tlv, code: CodeOfKind<'malformed'>, what: string): Uint8Array {
  want(t, TAG.BIT_STRING, code, what);
  if (t.value.length < 1 || t.value[0] !== 0) fail(code, what, 'BIT STRING with unused bits', t.offset);
  return t.value.subarray(1);
}

// --- writing -----------------------------------------------------------------------------

function lengthBytes(n: number): Uint8Array {
  if (n < 0x80) return Uint8Array.of(n);
  const out: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) out.unshift(v & 0xff);
  return Uint8Array.from([0x80 | out.length, ...out]);
}

/** One DER TLV with a minimal length. */
export function tlv(tag: number, ...parts: readonly Uint8Array[]): Uint8Array {
  const value = concat(...parts);
  return concat(Uint8Array.of(tag), lengthBytes(value.length), value);
}

/** OBJECT IDENTIFIER encoding of a dotted OID (X.690 §8.19). */
export function encodeOid(dotted: string): Uint8Array {
  const arcs = dotted.split('.').map(Number);
  const [a, b] = arcs as [number, number];
  const subs = [a * 40 + b, ...arcs.slice(2)];
  const out: number[] = [];
  for (const s of subs) {
    const chunk: number[] = [s & 0x7f];
    for (let v = Math.floor(s / 128); v > 0; v = Math.floor(v / 128)) chunk.unshift(0x80 | (v & 0x7f));
    out.push(...chunk);
  }
  return tlv(TAG.OID, Uint8Array.from(out));
}

// --- certificates ------------------------------------------------------------------------

/** The fields of an X.509 certificate (RFC 5280 §4.1) that OCSP and the DICE checks need. */
export interface CertFields {
  /** serialNumber INTEGER contents (as encoded). */
  readonly serial: Uint8Array;
  /** The issuer Name, DER. */
  readonly issuerName: Uint8Array;
  /** The subject Name, DER. */
  readonly subjectName: Uint8Array;
  /** The subjectPublicKey BIT STRING contents (no unused-bits octet), for OCSP issuerKeyHash. */
  readonly subjectPublicKey: Uint8Array;
  /** Extensions by OID: extnValue OCTET STRING contents. */
  readonly extensions: ReadonlyMap<string, Uint8Array>;
}

/**
 * Reads `Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue }` and its
 * `TBSCertificate ::= SEQUENCE { [0] version, serialNumber, signature, issuer, validity, subject,
 * subjectPublicKeyInfo, [1] issuerUID, [2] subjectUID, [3] extensions }` (RFC 5280 §4.1).
 * Only the certificate @peculiar/x509 already parsed is fed here: this re-reading picks fields
 * out, it does not decide whether the certificate is well formed.
 */
export function certFields(der: Uint8Array, code: CodeOfKind<'malformed'>, what: string): CertFields {
  const cert = children(want(decodeOne(der, code, what), TAG.SEQUENCE, code, what), code, what);
  if (cert.length !== 3) fail(code, what, 'Certificate is not a SEQUENCE of three');
  const tbs = children(want(cert[0], TAG.SEQUENCE, code, `${what} tbsCertificate`), code, `${what} tbsCertificate`);
  let i = 0;
  if (tbs[0]?.tag === 0xa0) i++;
  const serial = integerBytes(tbs[i++] as Tlv, code, `${what} serialNumber`);
  want(tbs[i++], TAG.SEQUENCE, code, `${what} signature`);
  const issuer = want(tbs[i++], TAG.SEQUENCE, code, `${what} issuer`);
  want(tbs[i++], TAG.SEQUENCE, code, `${what} validity`);
  const subject = want(tbs[i++], TAG.SEQUENCE, code, `${what} subject`);
  const spki = children(want(tbs[i++], TAG.SEQUENCE, code, `${what} subjectPublicKeyInfo`), code, `${what} subjectPublicKeyInfo`);
  if (spki.length !== 2) fail(code, what, 'subjectPublicKeyInfo is not a SEQUENCE of two');
  const subjectPublicKey = bitStringBytes(spki[1] as Tlv, code, `${what} subjectPublicKey`);
  const extensions = new Map<string, Uint8Array>();
  for (; i < tbs.length; i++) {
    const t = tbs[i] as Tlv;
    if (t.tag === 0x81 || t.tag === 0x82) continue;
    if (t.tag !== 0xa3) fail(code, what, `unexpected TBSCertificate element 0x${t.tag.toString(16)}`, t.offset);
    const exts = children(want(children(t, code, `${what} extensions`)[0], TAG.SEQUENCE, code, `${what} extensions`), code, `${what} extensions`);
    for (const e of exts) {
      const parts = children(want(e, TAG.SEQUENCE, code, `${what} extension`), code, `${what} extension`);
      const oid = oidOf(parts[0] as Tlv, code, `${what} extnID`);
      const value = want(parts[parts.length - 1], TAG.OCTET_STRING, code, `${what} extnValue`).value;
      if (extensions.has(oid)) fail(code, what, `extension ${oid} appears twice`);
      extensions.set(oid, value);
    }
  }
  return Object.freeze({ serial, issuerName: issuer.raw, subjectName: subject.raw, subjectPublicKey, extensions });
}

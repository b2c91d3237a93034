/**
 * @module providers/gcp/der
 *
 * The few strict DER (ITU-T X.690 §8, §10) readers this provider needs for certificate
 * extensions the X.509 library leaves opaque (GCE instance info, the TPM SAN directoryName),
 * on top of the shared `ByteReader`:
 * - single-byte tags only (every tag used here is < 31);
 * - definite lengths, short form below 128, long form minimal (no leading zero octets, §10.1);
 * - INTEGER minimal (§8.3.2), BOOLEAN exactly 0x00 / 0xFF (§11.1), OIDs with minimal arcs.
 * Truncation anywhere surfaces as the reader's TRUNCATED; every other violation as DER_MALFORMED.
 */
import { ByteReader } from '../common/bytes.js';
import { malformed } from '../common/errors.js';
import { fromUtf8 } from '../common/encoding.js';

export const DerCodes = { DER_MALFORMED: 'DER_MALFORMED' } as const;

const bad = (msg: string, offset: number) => malformed(DerCodes.DER_MALFORMED, msg, { offset });

export interface Tlv {
  readonly tag: number;
  readonly body: ByteReader;
  readonly offset: number;
}

/** One TLV; `body` reads exactly its contents. */
export function tlv(r: ByteReader, what: string): Tlv {
  const offset = r.offset;
  const tag = r.u8(`${what} tag`);
  if ((tag & 0x1f) === 0x1f) throw bad(`${what}: multi-byte tags are not used here`, offset);
  const first = r.u8(`${what} length`);
  let len: number;
  if (first < 0x80) {
    len = first;
  } else {
    const n = first & 0x7f;
    if (n === 0) throw bad(`${what}: indefinite length is not DER`, offset);
    if (n > 3) throw bad(`${what}: a length of ${n} octets is too large here`, offset);
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + r.u8(`${what} length`);
    if (len < 0x80 || len < 256 ** (n - 1)) throw bad(`${what}: non-minimal length encoding`, offset);
  }
  return { tag, body: r.sub(len, what), offset };
}

export function expectTag(t: Tlv, tag: number, what: string): void {
  if (t.tag !== tag) throw bad(`${what}: expected tag 0x${tag.toString(16)}, got 0x${t.tag.toString(16)}`, t.offset);
}

export function utf8String(r: ByteReader, what: string): string {
  const t = tlv(r, what);
  expectTag(t, 0x0c, what);
  return fromUtf8(t.body.rest(), what);
}

/** A non-negative INTEGER of at most 64 bits. */
export function unsignedInteger(r: ByteReader, what: string): bigint {
  const t = tlv(r, what);
  expectTag(t, 0x02, what);
  const b = t.body.rest();
  if (b.length === 0) throw bad(`${what}: empty INTEGER`, t.offset);
  if (b.length > 1 && ((b[0] === 0 && (b[1]! & 0x80) === 0) || (b[0] === 0xff && (b[1]! & 0x80) !== 0))) {
    throw bad(`${what}: non-minimal INTEGER`, t.offset);
  }
  if (b[0]! & 0x80) throw bad(`${what}: negative INTEGER`, t.offset);
  if (b.length > 9 || (b.length === 9 && b[0] !== 0)) throw bad(`${what}: INTEGER exceeds 64 bits`, t.offset);
  let v = 0n;
  for (const x of b) v = (v << 8n) | BigInt(x);
  return v;
}

export function boolean(r: ByteReader, what: string): boolean {
  const t = tlv(r, what);
  expectTag(t, 0x01, what);
  const b = t.body.rest();
  if (b.length !== 1 || (b[0] !== 0 && b[0] !== 0xff)) throw bad(`${what}: BOOLEAN must be one octet 00 or FF`, t.offset);
  return b[0] === 0xff;
}

/** An OBJECT IDENTIFIER in dotted form (X.690 §8.19). */
export function oid(r: ByteReader, what: string): string {
  const t = tlv(r, what);
  expectTag(t, 0x06, what);
  const b = t.body.rest();
  if (b.length === 0 || b.length > 64) throw bad(`${what}: bad OID length`, t.offset);
  const arcs: number[] = [];
  let v = 0;
  let started = false;
  for (const x of b) {
    if (!started && x === 0x80) throw bad(`${what}: non-minimal OID arc`, t.offset);
    started = (x & 0x80) !== 0;
    v = v * 128 + (x & 0x7f);
    if (v > Number.MAX_SAFE_INTEGER / 256) throw bad(`${what}: OID arc too large`, t.offset);
    if ((x & 0x80) === 0) {
      arcs.push(v);
      v = 0;
    }
  }
  if (started) throw bad(`${what}: OID ends inside an arc`, t.offset);
  const first = arcs[0]!;
  const head = first < 40 ? [0, first] : first < 80 ? [1, first - 40] : [2, first - 80];
  return [...head, ...arcs.slice(1)].join('.');
}

/**
 * Strict framing of an X.509 Certificate (RFC 5280 §4.1), on top of the X.509 library's parse,
 * whose ASN.1 reader tolerates bytes the signature does not cover:
 * - `Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue }` spans the
 *   input exactly, with DER lengths throughout the outer structure;
 * - the outer signatureAlgorithm is byte-identical to tbsCertificate.signature (§4.1.1.2: "MUST
 *   contain the same algorithm identifier");
 * - signatureValue is a BIT STRING with zero unused bits.
 * Without these, unsigned bytes of a valid certificate could be changed and still verify.
 */
export function checkCertificateFraming(der: Uint8Array): void {
  const r = new ByteReader(der); // base 0: reader offsets index `der`
  const cert = tlv(r, 'Certificate');
  expectTag(cert, 0x30, 'Certificate');
  r.end('Certificate');
  const tbs = tlv(cert.body, 'tbsCertificate');
  expectTag(tbs, 0x30, 'tbsCertificate');
  const outerStart = cert.body.offset;
  const sigAlg = tlv(cert.body, 'signatureAlgorithm');
  expectTag(sigAlg, 0x30, 'signatureAlgorithm');
  const outerEnd = cert.body.offset;
  const sig = tlv(cert.body, 'signatureValue');
  expectTag(sig, 0x03, 'signatureValue');
  cert.body.end('Certificate');
  if (sig.body.u8('unused bits') !== 0) throw bad('signatureValue has unused bits', sig.offset);
  // tbsCertificate: [0] version OPTIONAL, serialNumber, signature AlgorithmIdentifier, …
  const t = tbs.body;
  let first = tlv(t, 'tbsCertificate element');
  if (first.tag === 0xa0) first = tlv(t, 'serialNumber');
  expectTag(first, 0x02, 'serialNumber');
  const innerStart = t.offset;
  expectTag(tlv(t, 'tbsCertificate.signature'), 0x30, 'tbsCertificate.signature');
  const innerEnd = t.offset;
  const outer = der.subarray(outerStart, outerEnd);
  const inner = der.subarray(innerStart, innerEnd);
  if (outer.length !== inner.length || outer.some((b, i) => b !== inner[i])) {
    throw bad('signatureAlgorithm differs from tbsCertificate.signature', sigAlg.offset);
  }
}

/**
 * @module providers/tpm/keys
 *
 * One normalized form for an attestation key however the evidence carries it — a TPMT_PUBLIC
 * (tpm2-tools, go-tpm-tools), an RSA JWK (Azure's `HCLAkPub`), an SPKI DER (PEM files) or an
 * uncompressed SEC1 EC point (NitroTPM `public_key`, vaportpm `ak_pubkeys`) — and the two
 * things every caller needs from it:
 *
 * - a canonical SPKI DER built here (RFC 5480 for EC, RFC 8017 Appendix A.1 / RFC 3279 for RSA),
 *   so `akSha256` = SHA-256(SPKI) is the same value whichever form the key arrived in and equals
 *   `openssl pkey -pubin -outform DER | sha256sum`;
 * - a WebCrypto verification key for the signature scheme actually used.
 *
 * Allowed keys: RSA 2048/3072/4096 bits, ECC P-256/P-384. Anything else is `AK_INVALID`.
 */
import { concat } from '../common/bytes.js';
import { malformed, rejected, AttestError } from '../common/errors.js';
import { fromBase64Url, toBase64Url } from '../common/encoding.js';
import { sha256 } from '../common/digest.js';
import { timingSafeEqual } from '../common/ct.js';
import { BoundedMemo } from '../common/memo.js';
import { TpmCodes } from './codes.js';
import { curveSize, type SignScheme, type TpmHash, type TpmtPublic } from './structures.js';

export type NormalizedKey =
  | { readonly kty: 'RSA'; readonly n: Uint8Array; readonly e: Uint8Array }
  | { readonly kty: 'EC'; readonly crv: 'P-256' | 'P-384'; readonly x: Uint8Array; readonly y: Uint8Array };

const bad = (m: string, cause?: unknown): AttestError => malformed(TpmCodes.AK_INVALID, m, cause === undefined ? {} : { cause });

function stripZeros(b: Uint8Array): Uint8Array {
  let i = 0;
  while (i < b.byteLength - 1 && b[i] === 0) i++;
  return b.subarray(i);
}

function checkRsa(n: Uint8Array, e: Uint8Array): NormalizedKey {
  const nn = stripZeros(n);
  if (![256, 384, 512].includes(nn.byteLength) || ((nn[0] as number) & 0x80) === 0) {
    throw bad(`RSA modulus of ${nn.byteLength * 8} bits is not 2048, 3072 or 4096`);
  }
  const ee = stripZeros(e);
  if (ee.byteLength > 4 || ((ee[ee.byteLength - 1] as number) & 1) === 0 || (ee.byteLength === 1 && (ee[0] as number) < 3)) {
    throw bad('RSA exponent is invalid');
  }
  return Object.freeze({ kty: 'RSA', n: nn.slice(), e: ee.slice() });
}

function checkEc(crv: string, x: Uint8Array, y: Uint8Array): NormalizedKey {
  if (crv !== 'P-256' && crv !== 'P-384') throw bad(`EC curve ${crv} is not P-256 or P-384`);
  const size = curveSize(crv);
  if (x.byteLength !== size || y.byteLength !== size) throw bad(`EC coordinates must be ${size} bytes for ${crv}`);
  return Object.freeze({ kty: 'EC', crv, x: x.slice(), y: y.slice() });
}

/** From a parsed TPMT_PUBLIC. */
export function keyFromTpmtPublic(p: TpmtPublic): NormalizedKey {
  if (p.parameters.type === 'rsa') {
    const e = p.parameters.exponent;
    return checkRsa(p.rsaModulus!, new Uint8Array([(e >>> 24) & 0xff, (e >>> 16) & 0xff, (e >>> 8) & 0xff, e & 0xff]));
  }
  return checkEc(p.parameters.curve, p.eccPoint!.x, p.eccPoint!.y);
}

/** From a public JWK (RFC 7517/7518): RSA `n`,`e` or EC `crv`,`x`,`y`; private members refused. */
export function keyFromJwk(jwk: unknown): NormalizedKey {
  if (typeof jwk !== 'object' || jwk === null || Array.isArray(jwk)) throw bad('JWK is not an object');
  const j = jwk as Record<string, unknown>;
  if ('d' in j) throw bad('JWK contains private key material');
  const str = (k: string): Uint8Array => {
    const v = j[k];
    if (typeof v !== 'string' || v.length === 0) throw bad(`JWK member ${k} is missing`);
    try {
      return fromBase64Url(v, `JWK ${k}`);
    } catch (cause) {
      throw bad(`JWK member ${k} is not base64url`, cause);
    }
  };
  if (j.kty === 'RSA') return checkRsa(str('n'), str('e'));
  if (j.kty === 'EC') return checkEc(String(j.crv), str('x'), str('y'));
  throw bad(`JWK kty ${String(j.kty)} is not RSA or EC`);
}

/** From an uncompressed SEC1 point 0x04 ‖ X ‖ Y (SEC 1 §2.3.3). */
export function keyFromEcPoint(point: Uint8Array, crv: 'P-256' | 'P-384'): NormalizedKey {
  const size = curveSize(crv);
  if (point.byteLength !== 1 + 2 * size || point[0] !== 0x04) throw bad(`EC point is not an uncompressed ${crv} point`);
  return checkEc(crv, point.subarray(1, 1 + size), point.subarray(1 + size));
}

/**
 * From an SPKI DER. The key is imported by WebCrypto (which validates the DER and, for EC, the
 * point), exported as JWK, and re-encoded canonically; the input must equal the canonical
 * encoding byte for byte, so one key has one digest.
 */
export async function keyFromSpki(der: Uint8Array): Promise<NormalizedKey> {
  // A pure function of the bytes: memoised per process (bounded), keyed by the DER itself.
  const memoKey = toBase64Url(der);
  const hit = SPKI_KEYS.get(memoKey);
  if (hit) return hit;
  const key = await keyFromSpkiUncached(der);
  SPKI_KEYS.set(memoKey, key);
  return key;
}
const SPKI_KEYS = new BoundedMemo<NormalizedKey>(1024);

async function keyFromSpkiUncached(der: Uint8Array): Promise<NormalizedKey> {
  const attempts: (RsaHashedImportParams | EcKeyImportParams)[] = [
    { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' },
    { name: 'ECDSA', namedCurve: 'P-256' },
    { name: 'ECDSA', namedCurve: 'P-384' },
  ];
  for (const alg of attempts) {
    let jwk: JsonWebKey;
    try {
      const k = await crypto.subtle.importKey('spki', der as Uint8Array<ArrayBuffer>, alg, true, ['verify']);
      jwk = await crypto.subtle.exportKey('jwk', k);
    } catch {
      continue; // not this key type; the next attempt (or the final error) decides
    }
    const key = keyFromJwk({ kty: jwk.kty, n: jwk.n, e: jwk.e, crv: jwk.crv, x: jwk.x, y: jwk.y });
    if (!timingSafeEqual(spkiDer(key), der)) throw bad('SPKI is not canonically encoded');
    return key;
  }
  throw bad('SPKI is not an RSA or P-256/P-384 public key');
}

// --- DER encoding of SubjectPublicKeyInfo -------------------------------------------------

function derLen(n: number): Uint8Array {
  if (n < 0x80) return new Uint8Array([n]);
  if (n < 0x100) return new Uint8Array([0x81, n]);
  return new Uint8Array([0x82, n >> 8, n & 0xff]);
}
function tlv(tag: number, body: Uint8Array): Uint8Array {
  return concat(new Uint8Array([tag]), derLen(body.byteLength), body);
}
function derUint(v: Uint8Array): Uint8Array {
  const s = stripZeros(v);
  return tlv(0x02, ((s[0] as number) & 0x80) !== 0 ? concat(new Uint8Array([0]), s) : s);
}
const OID_RSA = new Uint8Array([0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01]);
const DER_NULL = new Uint8Array([0x05, 0x00]);
const OID_EC = new Uint8Array([0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01]);
const OID_P256 = new Uint8Array([0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07]);
const OID_P384 = new Uint8Array([0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22]);

/** Canonical SubjectPublicKeyInfo DER of a key. */
export function spkiDer(k: NormalizedKey): Uint8Array {
  if (k.kty === 'RSA') {
    const rsaPub = tlv(0x30, concat(derUint(k.n), derUint(k.e)));
    return tlv(0x30, concat(tlv(0x30, concat(OID_RSA, DER_NULL)), tlv(0x03, concat(new Uint8Array([0]), rsaPub))));
  }
  const algId = tlv(0x30, concat(OID_EC, k.crv === 'P-256' ? OID_P256 : OID_P384));
  return tlv(0x30, concat(algId, tlv(0x03, concat(new Uint8Array([0, 4]), k.x, k.y))));
}

/** SHA-256 of the canonical SPKI DER: the AK digest policies pin. */
export async function keySha256(k: NormalizedKey): Promise<Uint8Array> {
  return sha256(spkiDer(k));
}

export function keyToJwk(k: NormalizedKey): JsonWebKey {
  return k.kty === 'RSA'
    ? { kty: 'RSA', n: toBase64Url(k.n), e: toBase64Url(k.e) }
    : { kty: 'EC', crv: k.crv, x: toBase64Url(k.x), y: toBase64Url(k.y) };
}

const WEB_HASH: Record<TpmHash, string> = { sha1: 'SHA-1', sha256: 'SHA-256', sha384: 'SHA-384', sha512: 'SHA-512' };

/** WebCrypto verification parameters for a TPM signature scheme. */
export function verifyParams(scheme: SignScheme, hash: TpmHash, k: NormalizedKey): {
  importAlg: RsaHashedImportParams | EcKeyImportParams;
  verifyAlg: Algorithm | RsaPssParams | EcdsaParams;
} {
  const h = WEB_HASH[hash];
  if (scheme === 'ecdsa') {
    if (k.kty !== 'EC') throw rejected(TpmCodes.SIGNATURE_SCHEME_MISMATCH, 'ECDSA signature with a non-EC key');
    return { importAlg: { name: 'ECDSA', namedCurve: k.crv }, verifyAlg: { name: 'ECDSA', hash: h } as EcdsaParams };
  }
  if (k.kty !== 'RSA') throw rejected(TpmCodes.SIGNATURE_SCHEME_MISMATCH, `${scheme} signature with a non-RSA key`);
  if (scheme === 'rsassa') return { importAlg: { name: 'RSASSA-PKCS1-v1_5', hash: h }, verifyAlg: { name: 'RSASSA-PKCS1-v1_5' } };
  // TPM RSAPSS signatures use the largest salt the modulus allows when signing (Part 1 §B.7 notes
  // TPMs may use a salt equal to the digest size; the reference implementation uses
  // min(hLen, emLen - hLen - 2) = hLen for ≥ 2048-bit keys). WebCrypto needs the exact salt.
  const hLen = { sha1: 20, sha256: 32, sha384: 48, sha512: 64 }[hash];
  return { importAlg: { name: 'RSA-PSS', hash: h }, verifyAlg: { name: 'RSA-PSS', saltLength: hLen } as RsaPssParams };
}

const VERIFY_KEYS = new BoundedMemo<CryptoKey>(1024);
const bytesKey = (b: Uint8Array): string => String.fromCharCode.apply(null, b as unknown as number[]);

/** Imports the key into WebCrypto for one scheme. */
export async function importVerifyKey(k: NormalizedKey, scheme: SignScheme, hash: TpmHash): Promise<{ key: CryptoKey; verifyAlg: Algorithm }> {
  const { importAlg, verifyAlg } = verifyParams(scheme, hash, k);
  // Imported keys are memoised per process (bounded), keyed by scheme, hash and the key itself.
  // (Bytes as char codes: cheaper than base64 on every request; the key is a pure function of them.)
  const memoKey = k.kty === 'RSA' ? `${scheme}/${hash}/RSA/${bytesKey(k.n)}/${bytesKey(k.e)}` : `${scheme}/${hash}/${k.crv}/${bytesKey(k.x)}/${bytesKey(k.y)}`;
  const hit = VERIFY_KEYS.get(memoKey);
  if (hit) return { key: hit, verifyAlg };
  try {
    // EC keys go in as a raw SEC1 point: WebCrypto validates the point either way, and on Node
    // the raw import costs about half of a JWK import (bench/tpm-quote.bench.mjs). Extractable:
    // it is a public key, and common/sig.ts verifies synchronously only with extractable keys.
    const key =
      k.kty === 'EC'
        ? await crypto.subtle.importKey('raw', concat(new Uint8Array([4]), k.x, k.y) as Uint8Array<ArrayBuffer>, importAlg, true, ['verify'])
        : await crypto.subtle.importKey('jwk', keyToJwk(k), importAlg, true, ['verify']);
    VERIFY_KEYS.set(memoKey, key);
    return { key, verifyAlg };
  } catch (cause) {
    throw bad('the AK cannot be imported for verification', cause);
  }
}

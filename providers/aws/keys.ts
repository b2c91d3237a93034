/**
 * @module providers/aws/keys
 *
 * The document's `public_key`: the key the Nitro hypervisor certifies for the node. Two forms
 * occur:
 * - a SEC1 uncompressed EC point (`04 ‖ X ‖ Y`, SEC 1 v2 §2.3.3): 65 bytes for P-256 (the
 *   NitroTPM attestation key, as in the vaportpm fixture) or 97 bytes for P-384;
 * - a DER SubjectPublicKeyInfo (RFC 5280 §4.1.2.7): AWS KMS's Recipient parameter requires an
 *   RSA key here (`nitro-tpm-attest --public-key`), EC SPKIs are accepted too.
 *
 * Either way the key is imported through WebCrypto, which rejects points off the curve and
 * malformed SPKIs, and is returned with its SPKI encoding (what `claims.release.platformKeySpki`
 * and `claims.tpm.akSha256` are computed from).
 */
import { rejected } from '../common/errors.js';
import { concat } from '../common/bytes.js';
import { BoundedMemo } from '../common/memo.js';

export const KeyCodes = {
  /** `public_key` is neither a valid EC point nor a valid SPKI. */
  PUBLIC_KEY_INVALID: 'PUBLIC_KEY_INVALID',
} as const;

export type PlatformKeyKind = 'ec-p256' | 'ec-p384' | 'rsa';

export interface PlatformKey {
  readonly kind: PlatformKeyKind;
  /** DER SubjectPublicKeyInfo. */
  readonly spki: Uint8Array;
  /** SEC1 uncompressed point for EC keys. */
  readonly point?: Uint8Array;
}

/** SPKI prefixes for id-ecPublicKey with the named curve (RFC 5480 §2), before the point. */
const SPKI_P256_PREFIX = Uint8Array.from([
  0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03,
  0x01, 0x07, 0x03, 0x42, 0x00,
]);
const SPKI_P384_PREFIX = Uint8Array.from([
  0x30, 0x76, 0x30, 0x10, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22, 0x03,
  0x62, 0x00,
]);

async function canImport(format: 'raw' | 'spki', data: Uint8Array, alg: EcKeyImportParams | RsaHashedImportParams): Promise<CryptoKey | undefined> {
  try {
    const usages: KeyUsage[] = alg.name === 'RSA-OAEP' ? ['encrypt'] : ['verify'];
    return await crypto.subtle.importKey(format, data as Uint8Array<ArrayBuffer>, alg, true, usages);
  } catch {
    return undefined;
  }
}

async function canonicalSpki(k: CryptoKey): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.exportKey('spki', k));
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && a.every((x, i) => x === b[i]);
}

async function fromEcSpki(spki: Uint8Array): Promise<PlatformKey | undefined> {
  for (const [curve, kind, len] of [
    ['P-256', 'ec-p256', 65],
    ['P-384', 'ec-p384', 97],
  ] as const) {
    const k = await canImport('spki', spki, { name: 'ECDSA', namedCurve: curve });
    if (k) {
      const point = new Uint8Array(await crypto.subtle.exportKey('raw', k));
      if (point.byteLength !== len) return undefined;
      // The SPKI must be exactly the canonical (uncompressed, named-curve) encoding.
      if (!sameBytes(await canonicalSpki(k), spki)) return undefined;
      return { kind, spki, point };
    }
  }
  return undefined;
}

/**
 * The kind of each key that passed `parsePlatformKey`, by its exact bytes (at most 97 bytes for
 * EC points, an RSA SPKI a few hundred): validity of given key bytes is a pure fact, and
 * importing a key costs more than the rest of the document's checks. A hit rebuilds the result
 * from the caller's bytes, so nothing cached is handed out. Failures are not kept. Bounded (LRU).
 */
const VALID_KEYS = new BoundedMemo<PlatformKeyKind>(1024);
const MEMO_MAX_KEY_BYTES = 2048;

function latin1(b: Uint8Array): string {
  let s = '';
  for (let i = 0; i < b.byteLength; i += 0x1000) s += String.fromCharCode(...b.subarray(i, i + 0x1000));
  return s;
}

/** What `parseUncached` returns for bytes already found to be a key of `kind`. */
function rebuild(kind: PlatformKeyKind, bytes: Uint8Array): PlatformKey {
  if (kind === 'rsa') return Object.freeze({ kind, spki: bytes });
  const len = kind === 'ec-p256' ? 65 : 97;
  if (bytes[0] === 0x04) return Object.freeze({ kind, spki: concat(kind === 'ec-p256' ? SPKI_P256_PREFIX : SPKI_P384_PREFIX, bytes), point: bytes });
  // A canonical named-curve SPKI ends with the uncompressed point.
  return Object.freeze({ kind, spki: bytes, point: bytes.slice(bytes.byteLength - len) });
}

/** Parses and validates the document's `public_key`. */
export async function parsePlatformKey(bytes: Uint8Array): Promise<PlatformKey> {
  if (bytes.byteLength > MEMO_MAX_KEY_BYTES) return parseUncached(bytes);
  const k = latin1(bytes);
  const hit = VALID_KEYS.get(k);
  if (hit) return rebuild(hit, bytes);
  const key = await parseUncached(bytes);
  VALID_KEYS.set(k, key.kind);
  return key;
}

async function parseUncached(bytes: Uint8Array): Promise<PlatformKey> {
  if (bytes.byteLength === 65 && bytes[0] === 0x04) {
    if (await canImport('raw', bytes, { name: 'ECDSA', namedCurve: 'P-256' })) {
      return Object.freeze({ kind: 'ec-p256', spki: concat(SPKI_P256_PREFIX, bytes), point: bytes });
    }
  } else if (bytes.byteLength === 97 && bytes[0] === 0x04) {
    if (await canImport('raw', bytes, { name: 'ECDSA', namedCurve: 'P-384' })) {
      return Object.freeze({ kind: 'ec-p384', spki: concat(SPKI_P384_PREFIX, bytes), point: bytes });
    }
  } else if (bytes[0] === 0x30) {
    const ec = await fromEcSpki(bytes);
    if (ec) return Object.freeze(ec);
    const rsa = await canImport('spki', bytes, { name: 'RSA-OAEP', hash: 'SHA-256' });
    // Re-export and compare: the SPKI must be exactly the canonical DER of the key it holds.
    if (rsa && sameBytes(await canonicalSpki(rsa), bytes)) return Object.freeze({ kind: 'rsa', spki: bytes });
  }
  throw rejected(KeyCodes.PUBLIC_KEY_INVALID, 'public_key is neither a valid SEC1 EC point nor a valid SubjectPublicKeyInfo');
}

/**
 * @module providers/aws/cose
 *
 * Strict COSE_Sign1 (RFC 9052) for AWS Nitro attestation documents, ES384 only.
 *
 * Wire shape (RFC 9052 §4.2):
 * ```
 * COSE_Sign1 = [ protected: bstr .cbor header_map / bstr .size 0,
 *                unprotected: header_map,
 *                payload: bstr / nil,
 *                signature: bstr ]
 * ```
 * optionally wrapped in tag 18. AWS emits it untagged (`84 44 a1 01 38 22 …`).
 *
 * `parseCoseSign1` (no crypto) checks:
 * - one CBOR item, untagged or tag 18 (no other tag), an array of exactly 4 (strict CBOR rules
 *   from `cbor.ts`: minimal lengths, no indefinite lengths, no floats, no trailing bytes);
 * - `protected` is a byte string that decodes to exactly `{1: -35}` (alg ES384, RFC 9053 §2.1):
 *   no other parameter, no duplicate label, no `crit`; the signer's algorithm is never taken from
 *   the unprotected bucket;
 * - `unprotected` is an empty map (Nitro never sends unprotected parameters, so anything there
 *   is unexplained data);
 * - `payload` is present (no detached payloads) and non-empty;
 * - `signature` is exactly 96 bytes: r ‖ s, 48 bytes each (RFC 9053 §2.1, ECDSA with P-384).
 *
 * `verifyCoseSign1` checks the ES384 signature over `Sig_structure = ["Signature1",
 * body_protected, external_aad = h'', payload]` (RFC 9052 §4.4), built from the *raw* protected
 * and payload bytes as received — never from a re-encoding of decoded values — so what is
 * verified is exactly what the signer signed. It runs before anything in the payload is
 * interpreted (the caller only pulls the signing certificate out of the payload first).
 */
import { malformed, rejected } from '../common/errors.js';
import { concat } from '../common/bytes.js';
import { utf8 } from '../common/encoding.js';
import { verifySignature } from '../common/sig.js';
import { decodeCbor, isBytes, isCborArray, isCborMap, isTagged, type CborValue } from './cbor.js';

export const CoseCodes = {
  /** The COSE_Sign1 structure is not an array of four with the right member types. */
  COSE_MALFORMED: 'COSE_MALFORMED',
  /** The protected header does not say exactly ES384. */
  COSE_ALG_UNSUPPORTED: 'COSE_ALG_UNSUPPORTED',
  /** A header bucket carries parameters it must not. */
  COSE_HEADER_INVALID: 'COSE_HEADER_INVALID',
  /** The ES384 signature does not verify with the signing certificate's key. */
  COSE_SIGNATURE_INVALID: 'COSE_SIGNATURE_INVALID',
} as const;

/** COSE algorithm identifier for ECDSA w/ SHA-384 (RFC 9053 §2.1, IANA COSE Algorithms). */
export const COSE_ALG_ES384 = -35;
/** COSE header label `alg` (RFC 9052 §3.1). */
const LABEL_ALG = 1;
/** CBOR tag for COSE_Sign1 (RFC 9052 §2). */
export const COSE_SIGN1_TAG = 18;
/** P-384 signature: r ‖ s, 48 bytes each. */
export const ES384_SIGNATURE_LENGTH = 96;
/** Nitro documents are a few KiB; this bounds the whole COSE message. */
export const MAX_COSE_BYTES = 64 * 1024;

export interface CoseSign1 {
  readonly tagged: boolean;
  /** The protected header's bstr content, exactly as received (signed). */
  readonly protectedBytes: Uint8Array;
  readonly alg: typeof COSE_ALG_ES384;
  /** The payload bstr content, exactly as received (signed). */
  readonly payload: Uint8Array;
  /** r ‖ s, 96 bytes. */
  readonly signature: Uint8Array;
}

function parseProtected(bytes: Uint8Array): typeof COSE_ALG_ES384 {
  if (bytes.byteLength === 0) throw rejected(CoseCodes.COSE_ALG_UNSUPPORTED, 'COSE protected header is empty: no algorithm is signed');
  const hdr = decodeCbor(bytes, { what: 'COSE protected header', maxBytes: 256, maxDepth: 2, maxLength: 8 });
  if (!isCborMap(hdr)) throw malformed(CoseCodes.COSE_MALFORMED, 'COSE protected header is not a map');
  if (hdr.size !== 1 || !hdr.has(LABEL_ALG)) {
    throw rejected(CoseCodes.COSE_HEADER_INVALID, 'COSE protected header must hold exactly the alg parameter');
  }
  if (hdr.get(LABEL_ALG) !== COSE_ALG_ES384) {
    throw rejected(CoseCodes.COSE_ALG_UNSUPPORTED, `COSE alg ${String(hdr.get(LABEL_ALG))} is not ES384 (-35)`);
  }
  return COSE_ALG_ES384;
}

/** Parses a COSE_Sign1 message (no crypto). */
export function parseCoseSign1(bytes: Uint8Array): CoseSign1 {
  let item: CborValue = decodeCbor(bytes, {
    what: 'COSE_Sign1',
    allowTopLevelTag: COSE_SIGN1_TAG,
    maxBytes: MAX_COSE_BYTES,
    maxDepth: 2,
    maxLength: 16,
  });
  let tagged = false;
  if (isTagged(item)) {
    tagged = true;
    item = item.value;
  }
  if (!isCborArray(item) || item.length !== 4) throw malformed(CoseCodes.COSE_MALFORMED, 'COSE_Sign1 must be an array of 4');
  const [prot, unprot, payload, signature] = item;
  if (!isBytes(prot)) throw malformed(CoseCodes.COSE_MALFORMED, 'COSE_Sign1 protected header is not a byte string');
  if (!isCborMap(unprot)) throw malformed(CoseCodes.COSE_MALFORMED, 'COSE_Sign1 unprotected header is not a map');
  if (payload === null) throw malformed(CoseCodes.COSE_MALFORMED, 'COSE_Sign1 payload is detached (nil)');
  if (!isBytes(payload) || payload.byteLength === 0) throw malformed(CoseCodes.COSE_MALFORMED, 'COSE_Sign1 payload is not a non-empty byte string');
  if (!isBytes(signature)) throw malformed(CoseCodes.COSE_MALFORMED, 'COSE_Sign1 signature is not a byte string');
  const alg = parseProtected(prot);
  if (unprot.size !== 0) throw rejected(CoseCodes.COSE_HEADER_INVALID, 'COSE_Sign1 unprotected header must be empty');
  if (signature.byteLength !== ES384_SIGNATURE_LENGTH) {
    throw malformed(CoseCodes.COSE_MALFORMED, `ES384 signature must be ${ES384_SIGNATURE_LENGTH} bytes, got ${signature.byteLength}`);
  }
  return Object.freeze({ tagged, protectedBytes: prot, alg, payload, signature });
}

/** CBOR head for a byte string of length n (RFC 8949 §3, shortest form). */
function bstrHead(n: number): Uint8Array {
  if (n < 24) return Uint8Array.of(0x40 | n);
  if (n < 0x100) return Uint8Array.of(0x58, n);
  if (n < 0x10000) return Uint8Array.of(0x59, n >>> 8, n & 0xff);
  return Uint8Array.of(0x5a, (n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff);
}

const SIGNATURE1 = utf8('Signature1');

/**
 * `Sig_structure` for COSE_Sign1 with empty external AAD (RFC 9052 §4.4):
 * `[ "Signature1", body_protected: bstr, external_aad: bstr, payload: bstr ]`.
 */
export function sigStructure(protectedBytes: Uint8Array, payload: Uint8Array): Uint8Array {
  return concat(
    Uint8Array.of(0x84),
    Uint8Array.of(0x60 | SIGNATURE1.byteLength),
    SIGNATURE1,
    bstrHead(protectedBytes.byteLength),
    protectedBytes,
    Uint8Array.of(0x40),
    bstrHead(payload.byteLength),
    payload,
  );
}

/**
 * Verifies the ES384 signature of `cose` with `key` (an ECDSA P-384 public key).
 * Throws COSE_SIGNATURE_INVALID when it does not verify.
 */
export async function verifyCoseSign1(cose: CoseSign1, key: CryptoKey): Promise<void> {
  const alg = key.algorithm as KeyAlgorithm & { namedCurve?: string };
  if (alg.name !== 'ECDSA' || alg.namedCurve !== 'P-384') {
    throw rejected(CoseCodes.COSE_ALG_UNSUPPORTED, 'the COSE signing key is not an ECDSA P-384 key');
  }
  const tbs = sigStructure(cose.protectedBytes, cose.payload);
  let ok: boolean;
  try {
    ok = await verifySignature({ name: 'ECDSA', hash: 'SHA-384' }, key, cose.signature, tbs);
  } catch (cause) {
    throw rejected(CoseCodes.COSE_SIGNATURE_INVALID, 'COSE signature could not be checked', { cause });
  }
  if (!ok) throw rejected(CoseCodes.COSE_SIGNATURE_INVALID, 'COSE ES384 signature does not verify with the signing certificate');
}

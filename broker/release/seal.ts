/**
 * @module broker/release/seal
 *
 * Sealing the release to the node's ephemeral key (protocol.md §2, §3).
 *
 * The node sent a public JWK `K` and put `binding = SHA-256(nonce ‖ thumbprint(K))` into its
 * evidence (RFC 7638 SHA-256 thumbprint, raw 32 bytes). The provider verified the evidence
 * against that binding; here we re-derive it from `K` and the challenge nonce and compare in
 * constant time, so the key we encrypt to is provably the key the attested machine chose —
 * never a key an attacker substituted in the envelope.
 *
 * The release is a compact JWE (RFC 7516) made with jose:
 * - EC P-256 → `alg: ECDH-ES+A256KW` (RFC 7518 §4.6), `enc: A256GCM`;
 * - RSA ≥ 2048 bits → `alg: RSA-OAEP-256` (RFC 7518 §4.3), `enc: A256GCM`;
 * - `enc: A128CBC-HS256` instead when the request's `sealEnc` asks for it.
 * The protected header carries `kid` = the thumbprint and `cty`; the payload carries the
 * challenge nonce, so the node can reject a response replayed from another attempt (whose key
 * it no longer holds anyway) and any bit flipped in transit fails the GCM tag.
 *
 * Checks on the ephemeral key (EPHEMERAL_KEY_INVALID): only `kty` EC/P-256 or RSA; no private
 * members (`d`, `p`, `q`, …); RSA modulus 2048..8192 bits and e = 65537; P-256 point on the
 * curve (importJWK fails otherwise).
 */
import { CompactEncrypt, calculateJwkThumbprint, importJWK, type JWK } from 'jose';
import { bindingOf } from '../../providers/common/binding.js';
import { fromBase64Url, utf8 } from '../../providers/common/encoding.js';
import { timingSafeEqual } from '../../providers/common/ct.js';
import { malformed, rejected, AttestError } from '../../providers/common/errors.js';

export const SealCodes = {
  EPHEMERAL_KEY_INVALID: 'EPHEMERAL_KEY_INVALID',
  BINDING_KEY_MISMATCH: 'BINDING_KEY_MISMATCH',
  BINDING_MISSING: 'BINDING_MISSING',
} as const;

export const RELEASE_CTY = 'application/attest-broker.release+json';

const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'];

export interface SealKey {
  alg: 'ECDH-ES+A256KW' | 'RSA-OAEP-256';
  jwk: JWK;
  /** RFC 7638 SHA-256 thumbprint, base64url. */
  thumbprint: string;
}

/** Validates the node's public JWK and picks the key-management algorithm. */
export async function checkEphemeralKey(k: unknown): Promise<SealKey> {
  const bad = (why: string): AttestError => malformed(SealCodes.EPHEMERAL_KEY_INVALID, `ephemeral key: ${why}`);
  if (typeof k !== 'object' || k === null || Array.isArray(k)) throw bad('not a JWK object');
  const j = k as Record<string, unknown>;
  for (const m of PRIVATE_MEMBERS) if (m in j) throw bad(`private member ${m} present`);
  let alg: SealKey['alg'];
  let jwk: JWK;
  if (j.kty === 'EC') {
    if (j.crv !== 'P-256' || typeof j.x !== 'string' || typeof j.y !== 'string') throw bad('EC keys must be P-256 with x and y');
    if (fromBase64Url(j.x, 'x').byteLength !== 32 || fromBase64Url(j.y, 'y').byteLength !== 32) throw bad('P-256 coordinates must be 32 bytes');
    alg = 'ECDH-ES+A256KW';
    jwk = { kty: 'EC', crv: 'P-256', x: j.x, y: j.y };
  } else if (j.kty === 'RSA') {
    if (typeof j.n !== 'string' || typeof j.e !== 'string') throw bad('RSA keys need n and e');
    const n = fromBase64Url(j.n, 'n');
    if (n[0] === 0) throw bad('RSA modulus has a leading zero byte');
    const bits = n.byteLength * 8 - Math.clz32(n[0]!) + 24;
    if (bits < 2048 || bits > 8192) throw bad(`RSA modulus of ${bits} bits (2048..8192 accepted)`);
    if (j.e !== 'AQAB') throw bad('RSA exponent must be 65537');
    alg = 'RSA-OAEP-256';
    jwk = { kty: 'RSA', n: j.n, e: j.e };
  } else {
    throw bad('kty must be EC or RSA');
  }
  try {
    await importJWK(jwk, alg);
  } catch (cause) {
    throw malformed(SealCodes.EPHEMERAL_KEY_INVALID, 'ephemeral key does not import', { cause });
  }
  return { alg, jwk, thumbprint: await calculateJwkThumbprint(jwk, 'sha256') };
}

/** binding = SHA-256(nonce ‖ thumbprint) (protocol §2). */
export async function bindingFor(nonce: Uint8Array, thumbprintB64u: string): Promise<Uint8Array> {
  return bindingOf(nonce, fromBase64Url(thumbprintB64u, 'thumbprint'));
}

/** Throws BINDING_KEY_MISMATCH unless `binding` was made from `nonce` and this key. */
export async function verifyKeyBinding(key: SealKey, nonceB64u: string | undefined, bindingB64u: string | undefined): Promise<void> {
  if (nonceB64u === undefined || bindingB64u === undefined) {
    throw new AttestError(SealCodes.BINDING_MISSING, 'release needs the challenge nonce and verified binding to seal to an ephemeral key');
  }
  const want = await bindingFor(fromBase64Url(nonceB64u, 'nonce'), key.thumbprint);
  if (!timingSafeEqual(want, fromBase64Url(bindingB64u, 'binding'))) {
    throw rejected(SealCodes.BINDING_KEY_MISMATCH, 'the ephemeral key is not the one bound into the evidence');
  }
}

/**
 * Compact JWE of `payload` to `key`. `enc` is A256GCM unless the node asked for A128CBC-HS256
 * (RFC 7518 §5.2.3: AES-CBC + HMAC-SHA-256, authenticated like GCM), which the openssl command
 * line can open where it cannot open GCM — the shell client's choice (docs/join.md).
 */
export async function sealRelease(payload: unknown, key: SealKey, enc: 'A256GCM' | 'A128CBC-HS256' = 'A256GCM'): Promise<string> {
  const pub = await importJWK(key.jwk, key.alg);
  return new CompactEncrypt(utf8(JSON.stringify(payload)))
    .setProtectedHeader({ alg: key.alg, enc, cty: RELEASE_CTY, kid: key.thumbprint })
    .encrypt(pub);
}

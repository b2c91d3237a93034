/**
 * @module deploy/node/client/binding
 *
 * The ephemeral key and the binding of protocol §2:
 *
 *   binding = SHA-256(nonce ‖ JWK-thumbprint(K))
 *
 * where the thumbprint is the RFC 7638 SHA-256 thumbprint (§3: the required members of an EC
 * key — `crv`, `kty`, `x`, `y` — in lexicographic order, no whitespace) as 32 raw bytes.
 *
 * K is a P-256 ECDH key made with WebCrypto for this one join; its private half is created
 * non-extractable and never leaves this process. The broker seals the release to K with
 * ECDH-ES+A256KW / A256GCM, so whoever watches (or relays) the traffic learns nothing usable.
 */
import { calculateJwkThumbprint } from 'jose';
import { bindingOf } from '../../../providers/common/binding.js';
import { fromBase64Url } from '../../../providers/common/encoding.js';
import { JoinCodes, joinError } from './codes.js';

export interface EphemeralKey {
  /** Public JWK as sent in `ephemeralKey` (only kty, crv, x, y). */
  readonly publicJwk: { kty: 'EC'; crv: 'P-256'; x: string; y: string };
  /** Non-extractable private key, for opening the JWE release. */
  readonly privateKey: CryptoKey;
  /** RFC 7638 SHA-256 thumbprint, raw 32 bytes. */
  readonly thumbprint: Uint8Array;
}

export async function createEphemeralKey(): Promise<EphemeralKey> {
  const pair = (await crypto.subtle.generateKey({ name: 'ECDH', namedCurve: 'P-256' }, false, ['deriveBits'])) as CryptoKeyPair;
  const jwk = await crypto.subtle.exportKey('jwk', pair.publicKey);
  if (jwk.kty !== 'EC' || jwk.crv !== 'P-256' || typeof jwk.x !== 'string' || typeof jwk.y !== 'string') {
    throw new Error('WebCrypto exported an unexpected P-256 public JWK');
  }
  const publicJwk = { kty: 'EC', crv: 'P-256', x: jwk.x, y: jwk.y } as const;
  const thumbprint = fromBase64Url(await calculateJwkThumbprint(publicJwk, 'sha256'), 'thumbprint');
  return { publicJwk, privateKey: pair.privateKey, thumbprint };
}

/** Protocol §2. Without a key the binding is the nonce itself. */
export async function computeBinding(nonce: Uint8Array, key?: Pick<EphemeralKey, 'thumbprint'>): Promise<Uint8Array> {
  if (nonce.length !== 32) throw joinError(JoinCodes.BAD_RESPONSE, `challenge nonce must be 32 bytes, got ${nonce.length}`);
  return bindingOf(nonce, key?.thumbprint);
}

/**
 * @module broker/binding
 *
 * The binding the node puts into its evidence (protocol.md §2):
 * - without an ephemeral key: binding = nonce (32 bytes), so stock tools work unchanged;
 * - with an ephemeral key K: binding = SHA-256(nonce ‖ JWK-thumbprint(K)), the RFC 7638 SHA-256
 *   thumbprint as raw 32 bytes. The release is then sealed to K, so nobody who sees the traffic
 *   (or replays the evidence with their own key) can open it.
 */
import { calculateJwkThumbprint, type JWK } from 'jose';
import { bindingOf } from '../providers/common/binding.js';
import { fromBase64Url } from '../providers/common/encoding.js';

export async function jwkThumbprint(jwk: JWK): Promise<Uint8Array> {
  return fromBase64Url(await calculateJwkThumbprint(jwk, 'sha256'), 'JWK thumbprint');
}

export async function computeBinding(nonce: Uint8Array, ephemeralKey?: JWK): Promise<Uint8Array> {
  return bindingOf(nonce, ephemeralKey ? await jwkThumbprint(ephemeralKey) : undefined);
}

/**
 * @module providers/common/binding
 *
 * The one definition of the binding (protocol.md §2), used by the broker (verification), release
 * (sealing re-checks it) and the join client (what it puts into its evidence):
 * - without an ephemeral key: binding = nonce (so stock tools work unchanged);
 * - with an ephemeral key K: binding = SHA-256(nonce ‖ thumbprint(K)), where the thumbprint is
 *   the RFC 7638 SHA-256 JWK thumbprint as 32 raw bytes.
 */
import { concat } from './bytes.js';
import { sha256 } from './digest.js';

export async function bindingOf(nonce: Uint8Array, thumbprint?: Uint8Array): Promise<Uint8Array> {
  return thumbprint === undefined ? nonce.slice() : sha256(concat(nonce, thumbprint));
}

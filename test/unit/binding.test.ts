/**
 * One binding (protocol §2) for the broker, release and the join client: each computes it through
 * providers/common/binding.ts, and all equal an independent node:crypto computation of
 * SHA-256(nonce ‖ RFC 7638 thumbprint) — or the nonce itself without a key.
 */
import { createHash, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { computeBinding as brokerBinding } from '../../broker/binding.js';
import { bindingFor } from '../../broker/release/seal.js';
import { computeBinding as clientBinding, createEphemeralKey } from '../../deploy/node/client/binding.js';

describe('the binding, computed once', () => {
  it('broker, release and client agree with SHA-256(nonce ‖ thumbprint) by hand', async () => {
    for (let i = 0; i < 8; i++) {
      const nonce = new Uint8Array(randomBytes(32));
      const k = await createEphemeralKey();
      const { crv, kty, x, y } = k.publicJwk;
      const thumb = createHash('sha256').update(JSON.stringify({ crv, kty, x, y })).digest();
      const want = createHash('sha256').update(Buffer.concat([nonce, thumb])).digest();
      expect(Buffer.from(await brokerBinding(nonce, k.publicJwk)).equals(want)).toBe(true);
      expect(Buffer.from(await clientBinding(nonce, k)).equals(want)).toBe(true);
      expect(Buffer.from(await bindingFor(nonce, thumb.toString('base64url'))).equals(want)).toBe(true);
    }
  });

  it('without a key the binding is the nonce, a copy', async () => {
    const nonce = new Uint8Array(randomBytes(32));
    const b = await brokerBinding(nonce);
    expect(Buffer.from(b).equals(Buffer.from(nonce))).toBe(true);
    b[0] = b[0]! ^ 1;
    expect(b[0]).not.toBe(nonce[0]);
    expect(Buffer.from(await clientBinding(nonce)).equals(Buffer.from(nonce))).toBe(true);
  });
});

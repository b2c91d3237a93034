/**
 * @module providers/common/ct
 *
 * Constant-time comparison for nonces, bindings, digests and tokens.
 *
 * The running time depends only on the length, never on where the inputs differ. Lengths are
 * not secret here (a nonce is 32 bytes, a digest is its algorithm's size), so unequal lengths
 * return false immediately.
 */
export function timingSafeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  let diff = 0;
  for (let i = 0; i < a.byteLength; i++) diff |= (a[i] as number) ^ (b[i] as number);
  return diff === 0;
}

/** Constant-time comparison of two strings of equal length (e.g. token secrets). */
export function timingSafeEqualString(a: string, b: string): boolean {
  const te = new TextEncoder();
  return timingSafeEqual(te.encode(a), te.encode(b));
}

/** toBase64Url (table-driven) against node:buffer's base64url, at every tail length and across chunk boundaries. */
import { describe, expect, it } from 'vitest';
import { fromBase64Url, toBase64Url } from '../../providers/common/encoding.js';

describe('toBase64Url', () => {
  it('matches Buffer base64url for lengths 0..100 and around the 24 KiB chunk size', () => {
    const lengths = [...Array.from({ length: 101 }, (_, i) => i), 3 * 8192 - 1, 3 * 8192, 3 * 8192 + 1, 3 * 8192 * 2 + 2, 100_000];
    for (const n of lengths) {
      const b = new Uint8Array(n).map(() => Math.floor(Math.random() * 256));
      const s = toBase64Url(b);
      expect(s).toBe(Buffer.from(b).toString('base64url'));
      expect(fromBase64Url(s)).toEqual(b);
    }
  });
  it('every byte value in every position', () => {
    for (let off = 0; off < 3; off++) {
      const b = new Uint8Array(256 + off).map((_, i) => (i - off) & 255);
      expect(toBase64Url(b)).toBe(Buffer.from(b).toString('base64url'));
    }
  });
});

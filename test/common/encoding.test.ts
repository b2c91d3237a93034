/**
 * The base64 decoders (providers/common/encoding.ts, with their atob fast path) against the regex + atob
 * implementation they replaced, kept here verbatim as the reference: same bytes for every input
 * both accept, and the same refusals (and messages) for every input either rejects.
 */
import { describe, expect, it } from 'vitest';
import { fromBase64Any, fromBase64Url, toBase64, toBase64Url } from '../../providers/common/encoding.js';

const B64URL_RE = /^[A-Za-z0-9_-]*$/;
const B64STD_RE = /^[A-Za-z0-9+/]*={0,2}$/;
const B64_VALUE = new Int8Array(128).fill(-1);
for (let i = 0; i < 64; i++) B64_VALUE['ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'.charCodeAt(i)] = i;
const fail = (m: string): never => {
  throw new Error(m);
};
function refCore(std: string, what: string): Uint8Array {
  let end = std.length;
  while (end > 0 && std.charCodeAt(end - 1) === 0x3d) end--;
  const rem = end % 4;
  if (rem === 1) fail(`${what} has an impossible base64 length`);
  if (end !== std.length && std.length !== end + ((4 - rem) % 4)) fail(`${what} has wrong base64 padding`);
  if (rem !== 0) {
    const last = B64_VALUE[std.charCodeAt(end - 1)] ?? -1;
    if (last < 0 || (last & (rem === 2 ? 0x0f : 0x03)) !== 0) fail(`${what} is not canonical base64`);
  }
  const bin = atob(end === std.length ? std : std.slice(0, end));
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}
function refUrl(s: string, what = 'base64url'): Uint8Array {
  if (!B64URL_RE.test(s)) fail(`${what} is not base64url (unpadded)`);
  return refCore(s.replace(/-/g, '+').replace(/_/g, '/'), what);
}
function refAny(s: string, what = 'base64'): Uint8Array {
  if (B64URL_RE.test(s)) return refUrl(s, what);
  if (B64STD_RE.test(s) && (s.length % 4 === 0 || !s.includes('='))) return refCore(s, what);
  return fail(`${what} is not valid base64`);
}

function outcome(f: () => Uint8Array): string {
  try {
    return `ok ${Buffer.from(f()).toString('hex')}`;
  } catch (e) {
    const err = e as Error & { code?: string };
    return `${err.code ?? 'BAD_ENCODING'} ${err.message}`;
  }
}

// Deterministic PRNG (xorshift32) so failures reproduce.
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}
const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_= \t\n\f\r\v.\u00e9\u{1F600}';
const SPECIAL = [...ALPHABET.slice(62)];
const ALL = [...ALPHABET];

describe('base64 decoders agree with the regex + atob reference', () => {
  it('on short strings over the whole alphabet and its neighbours', () => {
    const r = rng(17);
    for (let n = 0; n < 10000; n++) {
      const len = Math.floor(r() * 10);
      let s = '';
      // Mostly base64 characters, sometimes one of the special ones.
      for (let i = 0; i < len; i++) s += r() < 0.8 ? ALPHABET[Math.floor(r() * 62)] : SPECIAL[Math.floor(r() * SPECIAL.length)];
      expect(outcome(() => fromBase64Any(s, 'x')), JSON.stringify(s)).toBe(outcome(() => refAny(s, 'x')));
      expect(outcome(() => fromBase64Url(s, 'x')), JSON.stringify(s)).toBe(outcome(() => refUrl(s, 'x')));
    }
  });

  it('on encodings of random bytes and their single-character mutations', () => {
    const r = rng(99);
    for (let n = 0; n < 1000; n++) {
      const b = new Uint8Array(Math.floor(r() * 64));
      for (let i = 0; i < b.length; i++) b[i] = Math.floor(r() * 256);
      for (const enc of [toBase64(b), toBase64Url(b), toBase64(b).replace(/=+$/, '')]) {
        expect(fromBase64Any(enc)).toEqual(b);
        const at = Math.floor(r() * (enc.length + 1));
        const c = ALL[Math.floor(r() * ALL.length)]!;
        for (const m of [enc.slice(0, at) + c + enc.slice(at + 1), enc.slice(0, at) + c + enc.slice(at), enc.slice(0, at) + enc.slice(at + 1)]) {
          expect(outcome(() => fromBase64Any(m)), JSON.stringify(m)).toBe(outcome(() => refAny(m)));
          expect(outcome(() => fromBase64Url(m)), JSON.stringify(m)).toBe(outcome(() => refUrl(m)));
        }
      }
    }
  });

  it('across the native copy threshold (256 decoded bytes) and Node\'s 4 KiB Buffer pool: the same bytes, in a plain Uint8Array that owns its memory', () => {
    const r = rng(7);
    const seen: Uint8Array[] = [];
    for (const len of [0, 1, 190, 191, 192, 193, 255, 256, 257, 300, 2047, 2048, 4095, 4096, 4097, 8191, 20000]) {
      const b = new Uint8Array(len).map(() => Math.floor(r() * 256));
      for (const got of [fromBase64Any(toBase64(b)), fromBase64Url(toBase64Url(b)), fromBase64Any(toBase64Url(b))]) {
        expect(got).toEqual(b);
        expect(got.constructor).toBe(Uint8Array);
        expect(got.byteOffset).toBe(0);
        expect(got.buffer.byteLength).toBe(len);
        seen.push(got);
      }
    }
    // Owning its memory: each result filled with its own value keeps it after all others are filled.
    for (const [i, x] of seen.entries()) x.fill(i & 0xff);
    for (const [i, x] of seen.entries()) expect(x.every((v) => v === (i & 0xff))).toBe(true);
  });

  it('on large inputs (the gotpm attestation size)', () => {
    const b = new Uint8Array(40000).map((_, i) => (i * 7919) & 0xff);
    expect(fromBase64Any(toBase64(b))).toEqual(b);
    expect(fromBase64Url(toBase64Url(b))).toEqual(b);
    expect(toBase64(b)).toBe(Buffer.from(b).toString('base64'));
  });
});

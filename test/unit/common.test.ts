import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { ByteReader } from '../../providers/common/bytes.js';
import { AttestError } from '../../providers/common/errors.js';
import { fromBase64Any, fromBase64Url, fromHex, toBase64, toBase64Url, toHex } from '../../providers/common/encoding.js';
import { timingSafeEqual } from '../../providers/common/ct.js';
import { canonicalJson } from '../../providers/common/canonical.js';

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    if (e instanceof AttestError) return e.code;
    throw e;
  }
  return 'NO_ERROR';
}

describe('ByteReader', () => {
  it('reads big- and little-endian integers and TPM2B', () => {
    const r = new ByteReader(new Uint8Array([0, 1, 2, 0, 0, 0, 2, 0xaa, 0xbb, 1, 0]));
    expect(r.u16()).toBe(1);
    expect(r.u8()).toBe(2);
    expect(r.u32()).toBe(2);
    expect(Array.from(r.bytes(2))).toEqual([0xaa, 0xbb]);
    expect(r.u16le()).toBe(1);
    r.end();
  });
  it('throws TRUNCATED with the absolute offset when a length prefix lies', () => {
    const r = new ByteReader(new Uint8Array([0, 9, 1, 2]), 100);
    try {
      r.tpm2b();
      expect.unreachable();
    } catch (e) {
      expect((e as AttestError).code).toBe('TRUNCATED');
      expect((e as AttestError).offset).toBe(102);
      expect((e as AttestError).kind).toBe('malformed');
    }
  });
  it('rejects trailing bytes and non-zero reserved ranges', () => {
    expect(code(() => new ByteReader(new Uint8Array([1])).end())).toBe('TRAILING_BYTES');
    expect(code(() => new ByteReader(new Uint8Array([0, 1])).expectZero(2))).toBe('RESERVED_NONZERO');
  });
  it('sub() confines a nested parser to its slice', () => {
    const r = new ByteReader(new Uint8Array([1, 2, 3, 4]));
    const s = r.sub(2);
    expect(s.offset).toBe(0);
    s.u16();
    expect(code(() => s.u8())).toBe('TRUNCATED');
    expect(r.u16()).toBe(0x0304);
  });
  it('returns copies, never views of the input', () => {
    const buf = new Uint8Array([1, 2]);
    const got = new ByteReader(buf).bytes(2);
    got[0] = 9;
    expect(buf[0]).toBe(1);
  });
  it('never throws anything but AttestError on random input (fuzz)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), fc.array(fc.integer({ min: 0, max: 5 }), { maxLength: 20 }), (buf, ops) => {
        const r = new ByteReader(buf);
        try {
          for (const op of ops) [() => r.u8(), () => r.u16(), () => r.u32le(), () => r.u64(), () => r.tpm2b(), () => r.end()][op]!();
        } catch (e) {
          if (!(e instanceof AttestError)) throw e;
        }
      }),
      { numRuns: 2000 },
    );
  });
});

describe('encoding', () => {
  it.each([
    ['hex odd length', () => fromHex('abc')],
    ['hex non-hex', () => fromHex('zz')],
    ['b64url with padding', () => fromBase64Url('AA==')],
    ['b64url with +', () => fromBase64Url('a+b')],
    ['b64url impossible length', () => fromBase64Url('A')],
    ['b64url non-canonical pad bits', () => fromBase64Url('AB')],
    ['b64 mixed alphabets', () => fromBase64Any('a+b_')],
    ['b64 whitespace', () => fromBase64Any('AA AA')],
  ])('%s → BAD_ENCODING', (_n, fn) => {
    expect(code(fn)).toBe('BAD_ENCODING');
  });
  it('round-trips', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 100 }), (b) => {
        expect(toHex(fromHex(toHex(b)))).toBe(toHex(b));
        expect(toHex(fromBase64Url(toBase64Url(b)))).toBe(toHex(b));
        expect(toHex(fromBase64Any(Buffer.from(b).toString('base64')))).toBe(toHex(b));
      }),
    );
  });
});

describe('toBase64 / toBase64Url', () => {
  it('equal Buffer base64 / base64url for every length and byte', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 300 }), (b) => {
        expect(toBase64(b)).toBe(Buffer.from(b).toString('base64'));
        expect(toBase64Url(b)).toBe(Buffer.from(b).toString('base64url'));
      }),
      { numRuns: 500 },
    );
    const big = Uint8Array.from({ length: 70_000 }, (_, i) => (i * 7919) & 0xff);
    expect(toBase64(big)).toBe(Buffer.from(big).toString('base64'));
    expect(toBase64Url(big.subarray(1))).toBe(Buffer.from(big.subarray(1)).toString('base64url'));
  });
});

describe('canonical base64 without re-encoding', () => {
  // Oracle: a string is canonical iff Node's encoder gives it back for the bytes it decodes to.
  const canonical = (s: string): boolean => {
    const stripped = s.replace(/=+$/, '');
    if (stripped.length % 4 === 1) return false;
    const padded = stripped.length % 4 === 0 ? s === stripped : s === stripped || s === stripped + '='.repeat(4 - (stripped.length % 4));
    return padded && Buffer.from(stripped, 'base64').toString('base64').replace(/=+$/, '') === stripped;
  };
  const ok = (f: () => unknown): boolean => {
    try {
      f();
      return true;
    } catch (e) {
      expect(code(() => { throw e; })).toBe('BAD_ENCODING');
      return false;
    }
  };
  it('accepts exactly the strings the encoder produces (every pad-bit pattern, every padding)', () => {
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...alphabet), { maxLength: 11 }), fc.integer({ min: 0, max: 3 }), (chars, pads) => {
        const s = chars.join('') + '='.repeat(pads);
        if (!/^[A-Za-z0-9+/]*={0,2}$/.test(s) || (s.includes('=') && s.length % 4 !== 0)) return;
        expect(ok(() => fromBase64Any(s))).toBe(canonical(s));
        if (ok(() => fromBase64Any(s))) expect(Buffer.from(fromBase64Any(s)).toString('base64').replace(/=+$/, '')).toBe(s.replace(/=+$/, ''));
      }),
      { numRuns: 5000 },
    );
    for (const last of alphabet) {
      expect(ok(() => fromBase64Url(`AA${last === '+' ? '-' : last === '/' ? '_' : last}`))).toBe(canonical(`AA${last}`));
      expect(ok(() => fromBase64Url(`A${last === '+' ? '-' : last === '/' ? '_' : last}`))).toBe(canonical(`A${last}`));
    }
  });
});

describe('timingSafeEqual', () => {
  it('compares equal-length inputs fully and rejects different lengths', () => {
    expect(timingSafeEqual(new Uint8Array([1, 2]), new Uint8Array([1, 2]))).toBe(true);
    expect(timingSafeEqual(new Uint8Array([1, 2]), new Uint8Array([1, 3]))).toBe(false);
    expect(timingSafeEqual(new Uint8Array([1]), new Uint8Array([1, 2]))).toBe(false);
  });
});

describe('canonicalJson', () => {
  it('sorts keys recursively and drops undefined', () => {
    expect(canonicalJson({ b: 1, a: [{ d: 2, c: undefined, e: 'x' }] })).toBe('{"a":[{"d":2,"e":"x"}],"b":1}');
  });
});

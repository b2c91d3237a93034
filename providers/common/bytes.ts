/**
 * @module providers/common/bytes
 *
 * The one bounds-checked reader every parser of untrusted bytes goes through.
 *
 * - Every read checks what remains first and throws `TRUNCATED` (with the absolute offset)
 *   instead of returning short data; a lying length prefix can never make a parser read
 *   past its structure or silently truncate.
 * - `end()` rejects trailing bytes; `expectZero(n)` checks reserved ranges.
 * - `sub(n)` hands a nested structure its own reader over exactly `n` bytes, so the nested
 *   parser's `end()` proves it consumed its whole slice; offsets stay absolute for messages.
 * - Slices returned by `bytes()` are copies: a parsed struct never aliases (or lets a caller
 *   mutate) the input buffer. `view()` returns a view instead, for a parser that copied its
 *   input once and hands out views of that private copy (the event log: hundreds of digests).
 */
import { malformed, CommonCodes } from './errors.js';

export class ByteReader {
  readonly #buf: Uint8Array;
  readonly #view: DataView;
  readonly #base: number;
  #pos = 0;

  /**
   * @param buf the bytes to read (not copied; never mutated)
   * @param base absolute offset of `buf[0]` in the outermost structure, for error messages
   */
  constructor(buf: Uint8Array, base = 0) {
    this.#buf = buf;
    this.#view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    this.#base = base;
  }

  /** Absolute offset of the next byte to be read. */
  get offset(): number {
    return this.#base + this.#pos;
  }
  /** Offset relative to the start of this reader. */
  get position(): number {
    return this.#pos;
  }
  get remaining(): number {
    return this.#buf.byteLength - this.#pos;
  }
  get length(): number {
    return this.#buf.byteLength;
  }

  #need(n: number, what: string): number {
    if (!Number.isInteger(n) || n < 0) {
      throw malformed(CommonCodes.LIMIT_EXCEEDED, `invalid length ${n} for ${what}`, { offset: this.offset });
    }
    if (n > this.remaining) {
      throw malformed(
        CommonCodes.TRUNCATED,
        `truncated: ${what} needs ${n} bytes at offset ${this.offset}, ${this.remaining} left`,
        { offset: this.offset },
      );
    }
    const at = this.#pos;
    this.#pos += n;
    return at;
  }

  u8(what = 'u8'): number {
    return this.#view.getUint8(this.#need(1, what));
  }
  u16(what = 'u16'): number {
    return this.#view.getUint16(this.#need(2, what), false);
  }
  u32(what = 'u32'): number {
    return this.#view.getUint32(this.#need(4, what), false);
  }
  u64(what = 'u64'): bigint {
    return this.#view.getBigUint64(this.#need(8, what), false);
  }
  u16le(what = 'u16le'): number {
    return this.#view.getUint16(this.#need(2, what), true);
  }
  u32le(what = 'u32le'): number {
    return this.#view.getUint32(this.#need(4, what), true);
  }
  u64le(what = 'u64le'): bigint {
    return this.#view.getBigUint64(this.#need(8, what), true);
  }

  /** A copy of the next `n` bytes. */
  bytes(n: number, what = 'bytes'): Uint8Array {
    const at = this.#need(n, what);
    return this.#buf.slice(at, at + n);
  }

  /**
   * The next `n` bytes as a view into this reader's buffer (no copy), with the same bounds
   * check as `bytes`. Only for a parser that reads its own private copy of the input (so what
   * it returns still never aliases the caller's buffer); say so at the call site.
   */
  view(n: number, what = 'bytes'): Uint8Array {
    const at = this.#need(n, what);
    return this.#buf.subarray(at, at + n);
  }

  /** Everything that is left (a copy). */
  rest(): Uint8Array {
    return this.bytes(this.remaining, 'rest');
  }

  /**
   * TPM2B: a big-endian u16 size followed by that many bytes.
   * @param max optional cap on the size (LIMIT_EXCEEDED beyond it)
   */
  tpm2b(what = 'TPM2B', max?: number): Uint8Array {
    const size = this.u16(`${what}.size`);
    if (max !== undefined && size > max) {
      throw malformed(CommonCodes.LIMIT_EXCEEDED, `${what} size ${size} exceeds ${max}`, { offset: this.offset - 2 });
    }
    return this.bytes(size, what);
  }

  /** A nested reader over exactly the next `n` bytes. */
  sub(n: number, what = 'sub-structure'): ByteReader {
    const at = this.#need(n, what);
    return new ByteReader(this.#buf.subarray(at, at + n), this.#base + at);
  }

  /** Requires the next `n` bytes to be zero (reserved / MBZ ranges). */
  expectZero(n: number, what = 'reserved'): void {
    const start = this.offset;
    const at = this.#need(n, what);
    for (let i = 0; i < n; i++) {
      if (this.#buf[at + i] !== 0) {
        throw malformed(CommonCodes.RESERVED_NONZERO, `${what} at offset ${start + i} must be zero`, {
          offset: start + i,
        });
      }
    }
  }

  /** Skips `n` bytes that are deliberately not interpreted (say why at the call site). */
  skip(n: number, what = 'skipped'): void {
    this.#need(n, what);
  }

  /** Requires the input to be fully consumed. */
  end(what = 'structure'): void {
    if (this.remaining !== 0) {
      throw malformed(CommonCodes.TRAILING_BYTES, `${this.remaining} trailing bytes after ${what}`, {
        offset: this.offset,
      });
    }
  }
}

/** Concatenates byte arrays. */
export function concat(...parts: readonly Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.byteLength;
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}

/** Big-endian encoders for building structures (e.g. TPM2B, MakeCredential). */
export function u16be(n: number): Uint8Array {
  const b = new Uint8Array(2);
  new DataView(b.buffer).setUint16(0, n, false);
  return b;
}
export function u32be(n: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n, false);
  return b;
}

/**
 * A minimal protobuf *encoder* for tests only: builds messages field by field so tests can craft
 * duplicates, unknown fields, odd wire types and re-encode real attestations after a mutation.
 */
import { concat } from '../../providers/common/bytes.js';

export function varint(v: bigint | number): Uint8Array {
  let x = BigInt(v);
  const out: number[] = [];
  do {
    let b = Number(x & 0x7fn);
    x >>= 7n;
    if (x !== 0n) b |= 0x80;
    out.push(b);
  } while (x !== 0n);
  return new Uint8Array(out);
}
export const tag = (field: number, wt: number): Uint8Array => varint((BigInt(field) << 3n) | BigInt(wt));
export const len = (field: number, payload: Uint8Array): Uint8Array => concat(tag(field, 2), varint(payload.byteLength), payload);
export const vint = (field: number, v: bigint | number): Uint8Array => concat(tag(field, 0), varint(v));
export const str = (field: number, s: string): Uint8Array => len(field, new TextEncoder().encode(s));
export const msg = (...parts: Uint8Array[]): Uint8Array => concat(...parts);

/** Splits a message into its top-level fields (raw bytes of each, tag included), for surgery. */
export function topLevelFields(b: Uint8Array): { field: number; wt: number; start: number; bodyStart: number; end: number }[] {
  const out: { field: number; wt: number; start: number; bodyStart: number; end: number }[] = [];
  let i = 0;
  const rv = (): bigint => {
    let r = 0n;
    let s = 0n;
    for (;;) {
      const c = b[i++]!;
      r |= BigInt(c & 0x7f) << s;
      s += 7n;
      if (c < 0x80) return r;
    }
  };
  while (i < b.length) {
    const start = i;
    const t = rv();
    const field = Number(t >> 3n);
    const wt = Number(t & 7n);
    if (wt !== 2) throw new Error('test splitter handles LEN only');
    const l = Number(rv());
    out.push({ field, wt, start, bodyStart: i, end: i + l });
    i += l;
  }
  return out;
}

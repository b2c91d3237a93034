/**
 * @module providers/gcp/protobuf
 *
 * A small, strict reader for the protocol-buffers binary wire format
 * (https://protobuf.dev/programming-guides/encoding/), on top of the shared bounds-checked
 * `ByteReader`. It decodes exactly the messages a schema describes; there is no code generation
 * and no reflection, so nothing here can be steered by the input into building types or code.
 *
 * Why hand-written: the go-tpm-tools `attest.Attestation` message needs five wire features
 * (varint, LEN, field numbers, unknown-field skipping, maps as repeated entries). A general
 * protobuf runtime would add a dependency wrapped in one module, generated code or `eval`-style
 * schema compilation (protobufjs builds decoders with `new Function`, which Workers forbid), and
 * a much larger surface for what is ~250 lines of bounds-checked reading. See docs/gcp.md.
 *
 * Wire rules, as the encoding guide specifies them, and where this reader is stricter:
 * - Tag = varint `(field_number << 3) | wire_type`; it must fit 32 bits; field number 0 is invalid
 *   (PROTOBUF_FIELD_NUMBER). Field numbers above 2^29-1 are impossible in a 32-bit tag.
 * - Wire types 0 (VARINT), 1 (I64), 2 (LEN), 5 (I32) are read or skipped. 3/4 (SGROUP/EGROUP,
 *   deprecated groups, never emitted by proto3) and 6/7 (undefined) are rejected
 *   (PROTOBUF_WIRE_TYPE).
 * - Varints: at most 10 bytes, and the 10th byte may only carry the 64th bit
 *   (PROTOBUF_VARINT_OVERFLOW). Stricter than the guide: an over-long (non-minimal) varint such
 *   as `80 00` is rejected (PROTOBUF_VARINT_NONCANONICAL); every conforming encoder writes the
 *   minimal form, and refusing the others removes a malleability (two byte strings, one message).
 * - LEN: the length is checked against what remains (TRUNCATED) and against the field's cap
 *   (LIMIT_EXCEEDED) before any byte is copied.
 * - Unknown fields (numbers the schema does not list) are skipped by their wire type, as proto3
 *   requires; their numbers are reported so a caller can log them.
 * - A known field arriving with the wrong wire type is rejected (PROTOBUF_WIRE_TYPE_MISMATCH).
 *   (Some runtimes treat it as an unknown field; a verifier should not silently drop a field it
 *   knows.) Packed encoding is not used by any schema here.
 * - Duplicates of a non-repeated field follow the spec: scalars and bytes/string take the last
 *   value ("last one wins"); embedded messages are merged, which is implemented exactly as the spec
 *   defines merging: by decoding the concatenation of all occurrences. Repeated fields append. Map
 *   entries with a repeated key keep the last value. In a `oneof`, the member seen last wins.
 * - Scalars are range-checked instead of truncated: a uint32 field holding a larger varint, or an
 *   enum outside int32's non-negative range, is rejected (PROTOBUF_VALUE_RANGE), so two encodings
 *   can never alias to one value.
 * - The counts of repeated fields and map entries are capped (LIMIT_EXCEEDED).
 */
import { ByteReader, concat } from '../common/bytes.js';
import { malformed, CommonCodes } from '../common/errors.js';
import { fromUtf8 } from '../common/encoding.js';

export const ProtoCodes = {
  PROTOBUF_VARINT_OVERFLOW: 'PROTOBUF_VARINT_OVERFLOW',
  PROTOBUF_VARINT_NONCANONICAL: 'PROTOBUF_VARINT_NONCANONICAL',
  PROTOBUF_WIRE_TYPE: 'PROTOBUF_WIRE_TYPE',
  PROTOBUF_WIRE_TYPE_MISMATCH: 'PROTOBUF_WIRE_TYPE_MISMATCH',
  PROTOBUF_FIELD_NUMBER: 'PROTOBUF_FIELD_NUMBER',
  PROTOBUF_VALUE_RANGE: 'PROTOBUF_VALUE_RANGE',
} as const;

export const WireType = { VARINT: 0, I64: 1, LEN: 2, I32: 5 } as const;
export type WireType = (typeof WireType)[keyof typeof WireType];

export interface Tag {
  readonly field: number;
  readonly wireType: WireType;
  /** Absolute offset of the tag's first byte. */
  readonly offset: number;
}

const MAX_U64 = (1n << 64n) - 1n;

/** Low-level reader: tags, varints, length-delimited payloads and skipping. */
export class ProtoReader {
  readonly #r: ByteReader;
  readonly #views: boolean;

  /**
   * @param views LEN payloads come back as views of the reader's buffer instead of copies; only
   *   for a caller that owns that buffer (a private copy of the input), see `decodeMessage`.
   */
  constructor(r: ByteReader, views = false) {
    this.#r = r;
    this.#views = views;
  }

  get done(): boolean {
    return this.#r.remaining === 0;
  }
  get offset(): number {
    return this.#r.offset;
  }

  /** A base-128 varint as an unsigned 64-bit bigint (see the module rules). */
  varint(what = 'varint'): bigint {
    return this.#varintFrom(this.#r.offset, 0n, 0, what);
  }

  /**
   * Continues a varint whose first `i` bytes (value `value`) were read from `start`, in bigint.
   * Every rule of the module comment is checked here or in the number fast path below.
   */
  #varintFrom(start: number, value: bigint, i: number, what: string): bigint {
    for (; i < 10; i++) {
      const b = this.#r.u8(what);
      if (i === 9 && b > 1) {
        throw malformed(ProtoCodes.PROTOBUF_VARINT_OVERFLOW, `${what} at offset ${start} overflows 64 bits`, { offset: start });
      }
      value |= BigInt(b & 0x7f) << BigInt(7 * i);
      if ((b & 0x80) === 0) {
        if (b === 0 && i > 0) {
          throw malformed(ProtoCodes.PROTOBUF_VARINT_NONCANONICAL, `${what} at offset ${start} is not minimally encoded`, {
            offset: start,
          });
        }
        return value;
      }
    }
    throw malformed(ProtoCodes.PROTOBUF_VARINT_OVERFLOW, `${what} at offset ${start} is longer than 10 bytes`, { offset: start });
  }

  /**
   * A varint that must fit `max` (inclusive, at most 2^53 - 1), returned as a number. Tags,
   * lengths, keys and enums are short: their first 7 bytes (49 bits) are read as numbers, and
   * only a longer varint continues in bigint (`#varintFrom`), with the same checks and errors.
   */
  varintUpTo(max: number, what: string): number {
    const start = this.#r.offset;
    let v = 0;
    for (let i = 0; i < 7; i++) {
      const b = this.#r.u8(what);
      v += (b & 0x7f) * 2 ** (7 * i);
      if ((b & 0x80) === 0) {
        if (b === 0 && i > 0) {
          throw malformed(ProtoCodes.PROTOBUF_VARINT_NONCANONICAL, `${what} at offset ${start} is not minimally encoded`, {
            offset: start,
          });
        }
        if (v > max) {
          throw malformed(ProtoCodes.PROTOBUF_VALUE_RANGE, `${what} at offset ${start} is ${v}, above ${max}`, { offset: start });
        }
        return v;
      }
    }
    const big = this.#varintFrom(start, BigInt(v), 7, what);
    if (big > BigInt(max)) {
      throw malformed(ProtoCodes.PROTOBUF_VALUE_RANGE, `${what} at offset ${start} is ${big}, above ${max}`, { offset: start });
    }
    return Number(big);
  }

  /** The next tag, or `undefined` at the end of the message. */
  tag(): Tag | undefined {
    if (this.done) return undefined;
    const offset = this.#r.offset;
    const raw = this.varintUpTo(0xffff_ffff, 'field tag');
    const field = Math.floor(raw / 8);
    const wt = raw & 7;
    if (field === 0) throw malformed(ProtoCodes.PROTOBUF_FIELD_NUMBER, `field number 0 at offset ${offset}`, { offset });
    if (wt !== 0 && wt !== 1 && wt !== 2 && wt !== 5) {
      throw malformed(ProtoCodes.PROTOBUF_WIRE_TYPE, `wire type ${wt} (field ${field}) at offset ${offset} is not supported`, { offset });
    }
    return { field, wireType: wt, offset };
  }

  /** A LEN payload (a copy, or a view with `views`), at most `max` bytes. */
  lengthDelimited(max: number, what: string): Uint8Array {
    const at = this.#r.offset;
    const len = this.varintUpTo(Number.MAX_SAFE_INTEGER, `${what} length`);
    if (len > max) {
      throw malformed(CommonCodes.LIMIT_EXCEEDED, `${what} is ${len} bytes, above the cap of ${max}`, { offset: at });
    }
    return this.#views ? this.#r.view(len, what) : this.#r.bytes(len, what);
  }

  /**
   * A LEN payload of at most `max` bytes as a nested reader over exactly those bytes (no copy;
   * offsets stay absolute), for embedded messages decoded in place.
   */
  nested(max: number, what: string): ProtoReader {
    const at = this.#r.offset;
    const len = this.varintUpTo(Number.MAX_SAFE_INTEGER, `${what} length`);
    if (len > max) {
      throw malformed(CommonCodes.LIMIT_EXCEEDED, `${what} is ${len} bytes, above the cap of ${max}`, { offset: at });
    }
    return new ProtoReader(this.#r.sub(len, what), this.#views);
  }

  /** Skips one field's value by wire type (unknown fields, proto3 rules). */
  skip(t: Tag): void {
    switch (t.wireType) {
      case WireType.VARINT:
        this.varint(`unknown field ${t.field}`);
        return;
      case WireType.I64:
        this.#r.skip(8, `unknown field ${t.field} (I64)`);
        return;
      case WireType.I32:
        this.#r.skip(4, `unknown field ${t.field} (I32)`);
        return;
      case WireType.LEN: {
        const len = this.varintUpTo(Number.MAX_SAFE_INTEGER, `unknown field ${t.field} length`);
        this.#r.skip(len, `unknown field ${t.field}`);
        return;
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Schema-driven decoding

/** Field kinds the schemas in this provider use. */
export type FieldSpec =
  | { readonly kind: 'bytes'; readonly max: number; readonly repeated?: { readonly maxCount: number } }
  | { readonly kind: 'string'; readonly max: number }
  | { readonly kind: 'uint64' }
  | { readonly kind: 'uint32' }
  | { readonly kind: 'enum' }
  | {
      readonly kind: 'message';
      /** Cap on one occurrence (and, for singular fields, on the merged total). */
      readonly max: number;
      readonly repeated?: { readonly maxCount: number };
      readonly oneof?: string;
    }
  | { readonly kind: 'map-uint32-bytes'; readonly maxEntries: number; readonly maxValue: number };

export type Schema = Readonly<Record<number, { readonly name: string; readonly spec: FieldSpec }>>;

export type FieldValue = Uint8Array | string | bigint | number | readonly Uint8Array[] | ReadonlyMap<number, Uint8Array>;

export interface Decoded {
  /** Present fields by name. Messages are raw (merged) bytes for the caller to decode further. */
  readonly fields: ReadonlyMap<string, FieldValue>;
  /** Unknown field numbers that were skipped, in order of appearance. */
  readonly unknown: readonly number[];
}

function wantWire(spec: FieldSpec): WireType {
  switch (spec.kind) {
    case 'uint64':
    case 'uint32':
    case 'enum':
      return WireType.VARINT;
    default:
      return WireType.LEN;
  }
}

/** Decodes one map<uint32, bytes> entry (itself a message: key = 1, value = 2). */
function decodeMapEntry(p: ProtoReader, maxValue: number, what: string): [number, Uint8Array] {
  let key = 0;
  let value: Uint8Array = new Uint8Array(0);
  for (let t = p.tag(); t; t = p.tag()) {
    if (t.field === 1) {
      if (t.wireType !== WireType.VARINT) throw mismatch(t, `${what} key`);
      key = p.varintUpTo(0xffff_ffff, `${what} key`);
    } else if (t.field === 2) {
      if (t.wireType !== WireType.LEN) throw mismatch(t, `${what} value`);
      value = p.lengthDelimited(maxValue, `${what} value`);
    } else {
      p.skip(t);
    }
  }
  return [key, value];
}

function mismatch(t: Tag, what: string) {
  return malformed(ProtoCodes.PROTOBUF_WIRE_TYPE_MISMATCH, `${what} (field ${t.field}) has wire type ${t.wireType}`, {
    offset: t.offset,
  });
}

/**
 * Decodes a message of `schema` from `bytes`. `base` is the absolute offset of `bytes[0]`, for
 * error messages. Singular message fields come back as the concatenation of their occurrences
 * (the spec's merge), repeated message fields as a list of payloads.
 *
 * Bytes fields are copies of `bytes`, unless `views`: then they are views into it, for a caller
 * that decodes its own private copy of the input (one copy instead of one per field, so the
 * decoded message still never aliases the buffer the input arrived in).
 */
export function decodeMessage(bytes: Uint8Array, schema: Schema, what: string, base = 0, views = false): Decoded {
  const p = new ProtoReader(new ByteReader(bytes, base), views);
  const fields = new Map<string, FieldValue>();
  const chunks = new Map<string, Uint8Array[]>();
  const oneofs = new Map<string, string>();
  const unknown: number[] = [];
  for (let t = p.tag(); t; t = p.tag()) {
    const f = schema[t.field];
    if (!f) {
      p.skip(t);
      if (unknown.length < 64) unknown.push(t.field);
      continue;
    }
    const { name, spec } = f;
    const label = `${what}.${name}`;
    if (t.wireType !== wantWire(spec)) throw mismatch(t, label);
    switch (spec.kind) {
      case 'uint64':
        fields.set(name, p.varint(label));
        break;
      case 'uint32':
        fields.set(name, p.varintUpTo(0xffff_ffff, label));
        break;
      case 'enum':
        // Enums are int32 on the wire; the schemas here only define small non-negative values.
        fields.set(name, p.varintUpTo(0x7fff_ffff, label));
        break;
      case 'string':
        fields.set(name, fromUtf8(p.lengthDelimited(spec.max, label), label));
        break;
      case 'bytes': {
        const v = p.lengthDelimited(spec.max, label);
        if (spec.repeated) {
          const list = (fields.get(name) as Uint8Array[] | undefined) ?? [];
          if (list.length >= spec.repeated.maxCount) {
            throw malformed(CommonCodes.LIMIT_EXCEEDED, `${label}: more than ${spec.repeated.maxCount} entries`, { offset: t.offset });
          }
          list.push(v);
          fields.set(name, list);
        } else {
          fields.set(name, v);
        }
        break;
      }
      case 'message': {
        const v = p.lengthDelimited(spec.max, label);
        const list = chunks.get(name) ?? [];
        if (spec.repeated && list.length >= spec.repeated.maxCount) {
          throw malformed(CommonCodes.LIMIT_EXCEEDED, `${label}: more than ${spec.repeated.maxCount} entries`, { offset: t.offset });
        }
        if (spec.oneof) {
          // Setting one member of a oneof clears the others.
          const prev = oneofs.get(spec.oneof);
          if (prev !== undefined && prev !== name) chunks.delete(prev);
          oneofs.set(spec.oneof, name);
        }
        list.push(v);
        chunks.set(name, list);
        break;
      }
      case 'map-uint32-bytes': {
        const entry = p.nested(spec.maxValue + 16, `${label} entry`);
        const m = (fields.get(name) as Map<number, Uint8Array> | undefined) ?? new Map<number, Uint8Array>();
        const [k, v] = decodeMapEntry(entry, spec.maxValue, label);
        if (!m.has(k) && m.size >= spec.maxEntries) {
          throw malformed(CommonCodes.LIMIT_EXCEEDED, `${label}: more than ${spec.maxEntries} entries`, { offset: t.offset });
        }
        m.set(k, v);
        fields.set(name, m);
        break;
      }
    }
  }
  for (const [name, list] of chunks) {
    const entry = Object.values(schema).find((f) => f.name === name);
    const spec = entry?.spec;
    if (spec?.kind === 'message' && spec.repeated) {
      fields.set(name, list);
    } else {
      const merged = list.length === 1 ? (list[0] as Uint8Array) : concat(...list);
      if (spec?.kind === 'message' && merged.byteLength > spec.max) {
        throw malformed(CommonCodes.LIMIT_EXCEEDED, `${what}.${name}: merged occurrences exceed ${spec.max} bytes`);
      }
      fields.set(name, merged);
    }
  }
  return { fields, unknown };
}

/** Typed accessors with proto3 defaults for absent fields. */
export function getBytes(d: Decoded, name: string): Uint8Array {
  const v = d.fields.get(name);
  return v instanceof Uint8Array ? v : new Uint8Array(0);
}
export function getBytesList(d: Decoded, name: string): readonly Uint8Array[] {
  const v = d.fields.get(name);
  return Array.isArray(v) ? (v as readonly Uint8Array[]) : [];
}
export function getString(d: Decoded, name: string): string {
  const v = d.fields.get(name);
  return typeof v === 'string' ? v : '';
}
export function getU64(d: Decoded, name: string): bigint {
  const v = d.fields.get(name);
  return typeof v === 'bigint' ? v : 0n;
}
export function getNumber(d: Decoded, name: string): number {
  const v = d.fields.get(name);
  return typeof v === 'number' ? v : 0;
}
export function getMap(d: Decoded, name: string): ReadonlyMap<number, Uint8Array> {
  const v = d.fields.get(name);
  return v instanceof Map ? (v as ReadonlyMap<number, Uint8Array>) : new Map();
}
export function has(d: Decoded, name: string): boolean {
  return d.fields.has(name);
}

export { MAX_U64 };

/**
 * The strict protobuf wire reader (providers/gcp/protobuf.ts) and the Attestation decoder:
 * wire rules, proto3 semantics for unknown and duplicate fields, caps, a truncation sweep over a
 * real attestation and fast-check fuzzing (≥ 10,000 inputs per property).
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { ByteReader, concat } from '../../providers/common/bytes.js';
import { AttestError } from '../../providers/common/errors.js';
import { ProtoReader, decodeMessage, getBytes, getMap, getString, type Schema } from '../../providers/gcp/protobuf.js';
import { parseAttestationProto, parseGotpmEvidence } from '../../providers/gcp/parse.js';
import { toBase64, toBase64Url } from '../../providers/common/encoding.js';
import { describeVectors, readVector } from '../helpers/vectors.js';
import { len, msg, str, tag, varint, vint, topLevelFields } from './pb-encode.js';
import { PB_NONCE_9009 } from './helpers.js';

function code(f: () => unknown): string {
  try {
    f();
    return 'OK';
  } catch (e) {
    if (e instanceof AttestError) return e.code;
    throw e;
  }
}
const reader = (...b: number[]) => new ProtoReader(new ByteReader(new Uint8Array(b)));

describe('protobuf varints', () => {
  const table: { name: string; bytes: number[]; want: bigint | string }[] = [
    { name: 'zero', bytes: [0x00], want: 0n },
    { name: 'one byte max', bytes: [0x7f], want: 127n },
    { name: '300', bytes: [0xac, 0x02], want: 300n },
    { name: 'u64 max', bytes: [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01], want: (1n << 64n) - 1n },
    { name: '10th byte carries more than bit 64', bytes: [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02], want: 'PROTOBUF_VARINT_OVERFLOW' },
    { name: 'eleven bytes', bytes: [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x81, 0x00], want: 'PROTOBUF_VARINT_OVERFLOW' },
    { name: 'over-long zero', bytes: [0x80, 0x00], want: 'PROTOBUF_VARINT_NONCANONICAL' },
    { name: 'over-long one', bytes: [0x81, 0x80, 0x00], want: 'PROTOBUF_VARINT_NONCANONICAL' },
    { name: 'cut inside', bytes: [0xac], want: 'TRUNCATED' },
    { name: 'empty', bytes: [], want: 'TRUNCATED' },
  ];
  for (const t of table) {
    it(t.name, () => {
      if (typeof t.want === 'bigint') expect(reader(...t.bytes).varint()).toBe(t.want);
      else expect(code(() => reader(...t.bytes).varint())).toBe(t.want);
    });
  }
  it('round-trips every u64 (fast-check, 10,000 runs)', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), (v) => {
        const r = new ProtoReader(new ByteReader(varint(v)));
        expect(r.varint()).toBe(v);
        expect(r.done).toBe(true);
      }),
      { numRuns: 10_000 },
    );
  });
});

describe('protobuf tags and wire types', () => {
  const table: { name: string; bytes: number[]; want: string }[] = [
    { name: 'field number 0', bytes: [0x02, 0x00], want: 'PROTOBUF_FIELD_NUMBER' },
    { name: 'wire type 3 (SGROUP)', bytes: [0x0b], want: 'PROTOBUF_WIRE_TYPE' },
    { name: 'wire type 4 (EGROUP)', bytes: [0x0c], want: 'PROTOBUF_WIRE_TYPE' },
    { name: 'wire type 6', bytes: [0x0e], want: 'PROTOBUF_WIRE_TYPE' },
    { name: 'wire type 7', bytes: [0x0f], want: 'PROTOBUF_WIRE_TYPE' },
    { name: 'tag above 32 bits', bytes: [0x80, 0x80, 0x80, 0x80, 0x10], want: 'PROTOBUF_VALUE_RANGE' },
  ];
  for (const t of table) it(t.name, () => expect(code(() => reader(...t.bytes).tag())).toBe(t.want));
  it('largest field number (2^29-1) is read', () => {
    const t = new ProtoReader(new ByteReader(tag(2 ** 29 - 1, 0))).tag();
    expect(t?.field).toBe(2 ** 29 - 1);
  });
});

const SCHEMA: Schema = {
  1: { name: 'b', spec: { kind: 'bytes', max: 8 } },
  2: { name: 's', spec: { kind: 'string', max: 16 } },
  3: { name: 'u32', spec: { kind: 'uint32' } },
  4: { name: 'u64', spec: { kind: 'uint64' } },
  5: { name: 'e', spec: { kind: 'enum' } },
  6: { name: 'm', spec: { kind: 'message', max: 64 } },
  7: { name: 'rm', spec: { kind: 'message', max: 64, repeated: { maxCount: 2 } } },
  8: { name: 'map', spec: { kind: 'map-uint32-bytes', maxEntries: 2, maxValue: 4 } },
  9: { name: 'o1', spec: { kind: 'message', max: 64, oneof: 'o' } },
  10: { name: 'o2', spec: { kind: 'message', max: 64, oneof: 'o' } },
  11: { name: 'rb', spec: { kind: 'bytes', max: 4, repeated: { maxCount: 2 } } },
};
const INNER: Schema = { 1: { name: 'x', spec: { kind: 'string', max: 16 } }, 2: { name: 'y', spec: { kind: 'string', max: 16 } } };
const dec = (b: Uint8Array) => decodeMessage(b, SCHEMA, 'm');

describe('protobuf message semantics (proto3)', () => {
  it('unknown fields of every wire type are skipped and reported', () => {
    const b = msg(
      vint(100, 5),
      concat(tag(101, 1), new Uint8Array(8)),
      concat(tag(102, 5), new Uint8Array(4)),
      len(103, new Uint8Array([1, 2, 3])),
      str(2, 'kept'),
    );
    const d = dec(b);
    expect(getString(d, 's')).toBe('kept');
    expect(d.unknown).toEqual([100, 101, 102, 103]);
  });
  it('an unknown LEN field whose length runs past the end is TRUNCATED', () => {
    expect(code(() => dec(concat(tag(50, 2), varint(10), new Uint8Array(3))))).toBe('TRUNCATED');
  });
  it('a singular scalar / bytes field seen twice keeps the last value', () => {
    const d = dec(msg(len(1, new Uint8Array([1])), vint(3, 7), len(1, new Uint8Array([2])), vint(3, 9)));
    expect(getBytes(d, 'b')).toEqual(new Uint8Array([2]));
    expect(d.fields.get('u32')).toBe(9);
  });
  it('a singular message seen twice is merged (decoding the concatenation), inner fields last-wins', () => {
    const d = dec(msg(len(6, msg(str(1, 'a'), str(2, 'b'))), len(6, msg(str(2, 'c')))));
    const inner = decodeMessage(getBytes(d, 'm'), INNER, 'inner');
    expect(getString(inner, 'x')).toBe('a');
    expect(getString(inner, 'y')).toBe('c');
  });
  it('repeated fields append, and their count is capped', () => {
    const d = dec(msg(len(7, str(1, 'a')), len(7, str(1, 'b'))));
    expect(d.fields.get('rm')).toHaveLength(2);
    expect(code(() => dec(msg(len(7, str(1, 'a')), len(7, str(1, 'b')), len(7, str(1, 'c')))))).toBe('LIMIT_EXCEEDED');
    expect(code(() => dec(msg(len(11, new Uint8Array(1)), len(11, new Uint8Array(1)), len(11, new Uint8Array(1)))))).toBe('LIMIT_EXCEEDED');
  });
  it('map entries: a repeated key keeps the last value; entry count capped; missing value is empty', () => {
    const entry = (k: number, v?: number[]) => len(8, msg(vint(1, k), ...(v ? [len(2, new Uint8Array(v))] : [])));
    const d = dec(msg(entry(1, [1]), entry(1, [2]), entry(2)));
    expect(getMap(d, 'map').get(1)).toEqual(new Uint8Array([2]));
    expect(getMap(d, 'map').get(2)).toEqual(new Uint8Array(0));
    expect(code(() => dec(msg(entry(1, [1]), entry(2, [1]), entry(3, [1]))))).toBe('LIMIT_EXCEEDED');
    expect(code(() => dec(msg(entry(1, [1, 2, 3, 4, 5]))))).toBe('LIMIT_EXCEEDED');
  });
  it('oneof: the member seen last wins and clears the other', () => {
    const d = dec(msg(len(9, str(1, 'a')), len(10, str(1, 'b'))));
    expect(d.fields.has('o1')).toBe(false);
    expect(d.fields.has('o2')).toBe(true);
    const d2 = dec(msg(len(10, str(1, 'b')), len(9, str(1, 'a'))));
    expect(d2.fields.has('o2')).toBe(false);
  });
  const table: { name: string; bytes: Uint8Array; want: string }[] = [
    { name: 'known field with the wrong wire type', bytes: vint(1, 5), want: 'PROTOBUF_WIRE_TYPE_MISMATCH' },
    { name: 'LEN above the field cap', bytes: len(1, new Uint8Array(9)), want: 'LIMIT_EXCEEDED' },
    { name: 'LEN past the end', bytes: concat(tag(1, 2), varint(5), new Uint8Array(2)), want: 'TRUNCATED' },
    { name: 'uint32 above 2^32-1', bytes: vint(3, 2n ** 32n), want: 'PROTOBUF_VALUE_RANGE' },
    { name: 'negative enum (int32 sign-extended)', bytes: vint(5, (1n << 64n) - 1n), want: 'PROTOBUF_VALUE_RANGE' },
    { name: 'string not UTF-8', bytes: len(2, new Uint8Array([0xff])), want: 'BAD_ENCODING' },
    { name: 'merged message above its cap', bytes: msg(len(6, new Uint8Array(40).fill(8)), len(6, new Uint8Array(40).fill(8))), want: 'LIMIT_EXCEEDED' },
    { name: 'map key with wrong wire type', bytes: len(8, len(1, new Uint8Array(1))), want: 'PROTOBUF_WIRE_TYPE_MISMATCH' },
  ];
  for (const t of table) it(t.name, () => expect(code(() => dec(t.bytes))).toBe(t.want));
});

describe('protobuf fuzzing (no untyped exception)', () => {
  const typedOrOk = (f: () => unknown) => {
    try {
      f();
    } catch (e) {
      if (!(e instanceof AttestError)) throw e;
    }
  };
  it('random bytes through the Attestation decoder (10,000 runs)', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 256 }), (b) => typedOrOk(() => parseAttestationProto(b))), { numRuns: 10_000 });
  });
  it('random well-framed field sequences through the Attestation decoder (10,000 runs)', () => {
    const field = fc.oneof(
      fc.record({ f: fc.integer({ min: 1, max: 12 }), p: fc.uint8Array({ maxLength: 48 }) }).map(({ f, p }) => len(f, p)),
      fc.record({ f: fc.integer({ min: 1, max: 12 }), v: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }) }).map(({ f, v }) => vint(f, v)),
      fc.record({ f: fc.integer({ min: 1, max: 3 }), q: fc.array(fc.uint8Array({ maxLength: 16 }), { maxLength: 3 }) }).map(({ f, q }) =>
        len(2, concat(...q.map((x, i) => len(((f + i) % 3) + 1, x)))),
      ),
    );
    fc.assert(fc.property(fc.array(field, { maxLength: 8 }), (fs) => typedOrOk(() => parseAttestationProto(concat(...fs)))), { numRuns: 10_000 });
  });
  it('random base64 text through the gotpm envelope (10,000 runs)', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 64 }), (s) => typedOrOk(() => parseGotpmEvidence({ attestation: s }))),
      { numRuns: 10_000 },
    );
  });
});

describeVectors('Attestation decoder on a real attestation', () => {
  const pb = readVector(PB_NONCE_9009);

  it('decodes the parts the INDEX describes', () => {
    const a = parseAttestationProto(pb);
    expect(a.akPub.byteLength).toBe(280);
    expect(a.quotes.map((q) => q.pcrs.hash)).toEqual([4, 11, 12]);
    expect(a.quotes.every((q) => q.pcrs.values.size === 24)).toBe(true);
    expect(a.eventLog.byteLength).toBe(23970);
    expect(a.akCert.byteLength).toBe(1340);
    expect(a.intermediateCerts).toHaveLength(0);
    expect(a.instanceInfo).toBeUndefined();
    expect(a.tee).toBeUndefined();
    expect(a.unknownFields).toEqual([]);
  });

  it('standard and URL-safe base64 decode to the same attestation; mixed alphabets are refused', () => {
    const std = toBase64(pb);
    const url = toBase64Url(pb);
    expect(parseGotpmEvidence({ attestation: std }).akCert).toEqual(parseGotpmEvidence({ attestation: url }).akCert);
    const i = std.indexOf('+');
    const j = std.indexOf('/') >= 0 ? std.indexOf('/') : -1;
    expect(i >= 0 || j >= 0).toBe(true);
    const mixed = std.replace('+', '-');
    if (mixed.includes('/')) expect(code(() => parseGotpmEvidence({ attestation: mixed }))).toBe('BAD_ENCODING');
    expect(code(() => parseGotpmEvidence({ attestation: std, extra: 1 }))).toBe('EVIDENCE_SCHEMA');
    expect(code(() => parseGotpmEvidence({}))).toBe('EVIDENCE_SCHEMA');
  });

  it('truncation sweep: every prefix is TRUNCATED, or ends exactly on a top-level field boundary', () => {
    const boundaries = new Set(topLevelFields(pb).map((f) => f.end));
    boundaries.add(0);
    let atBoundary = 0;
    for (let n = 0; n < pb.length; n++) {
      const c = code(() => parseAttestationProto(pb.subarray(0, n)));
      if (boundaries.has(n)) {
        expect(c, `prefix ${n}`).toBe('OK');
        atBoundary++;
      } else {
        expect(c, `prefix ${n}`).toBe('TRUNCATED');
      }
    }
    // Protobuf has no outer framing: a cut at a field boundary is a shorter valid message. The
    // provider rejects those (no AK certificate) — see negative.test.ts.
    expect(atBoundary).toBe(6);
  });

  it('trailing garbage after the last field is refused (it cannot frame as a field)', () => {
    expect(code(() => parseAttestationProto(concat(pb, new Uint8Array([0]))))).toBe('PROTOBUF_FIELD_NUMBER');
    expect(code(() => parseAttestationProto(concat(pb, new Uint8Array([0x0a]))))).toBe('TRUNCATED');
  });
});

describe('parsed attestation does not alias the input', () => {
  it('every bytes field survives the caller overwriting its buffer, and equals a copying decode', () => {
    const pb = readVector(PB_NONCE_9009).slice();
    const a = parseAttestationProto(pb);
    const snapshot = JSON.stringify(a, (_k, v: unknown) => (v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v instanceof Map ? [...v] : typeof v === 'bigint' ? String(v) : v));
    // The same fields, decoded with copies (views = false), for the top level.
    const copied = decodeMessage(readVector(PB_NONCE_9009), { 3: { name: 'event_log', spec: { kind: 'bytes', max: 1 << 20 } }, 6: { name: 'ak_cert', spec: { kind: 'bytes', max: 16384 } } }, 'a');
    expect(a.eventLog).toEqual(getBytes(copied, 'event_log'));
    expect(a.akCert).toEqual(getBytes(copied, 'ak_cert'));
    pb.fill(0xa5);
    expect(JSON.stringify(a, (_k, v: unknown) => (v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v instanceof Map ? [...v] : typeof v === 'bigint' ? String(v) : v))).toBe(snapshot);
    for (const b of [a.akPub, a.eventLog, a.akCert, ...a.quotes.flatMap((q) => [q.quote, q.rawSig, ...q.pcrs.values.values()])]) {
      expect(b.buffer).not.toBe(pb.buffer);
    }
  });
});

/**
 * The strict CBOR wrapper and the COSE_Sign1 parser: rule table, truncation and trailing-byte
 * sweeps (the bit-flip sweep through the whole provider is in bitflip.test.ts), and fast-check
 * fuzzing (≥10,000 inputs per parser) that may only ever produce typed errors.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { encode as cborEncode } from 'cborg';
import { decodeCbor, type CborDecodeOptions } from '../../providers/aws/cbor.js';
import { parseCoseSign1, sigStructure } from '../../providers/aws/cose.js';
import { decodeDocumentPayload, parseAttestationDocument, signingMaterial } from '../../providers/aws/parse.js';
import { createAwsProvider } from '../../providers/aws/index.js';
import { AttestError } from '../../providers/common/errors.js';
import { fromHex, toHex } from '../../providers/common/encoding.js';
import { concat } from '../../providers/common/bytes.js';
import { describeVectors } from '../helpers/vectors.js';
import { FIXTURE_TIME, ctxAt, evidenceFor, fixtureDocument } from './fixtures.js';

function codeOfSync(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    if (e instanceof AttestError) return e.code;
    throw e;
  }
  return 'ACCEPTED';
}

describe('strict CBOR decoding rules', () => {
  type Row = { name: string; hex: string; opts?: CborDecodeOptions; wantCode: string };
  const rows: Row[] = [
    { name: 'empty input', hex: '', wantCode: 'TRUNCATED' },
    { name: 'integer not minimally encoded (1 as 0x1801)', hex: '1801', wantCode: 'CBOR_MALFORMED' },
    { name: 'length not minimally encoded (bstr len 1 as 0x5801)', hex: '580100', wantCode: 'CBOR_MALFORMED' },
    { name: 'indefinite array', hex: '9f01ff', wantCode: 'CBOR_MALFORMED' },
    { name: 'indefinite map without the option', hex: 'bf6161 01ff'.replace(/ /g, ''), wantCode: 'CBOR_MALFORMED' },
    { name: 'nested indefinite map', hex: 'bf6161bfff ff'.replace(/ /g, ''), opts: { allowIndefiniteTopLevelMap: true }, wantCode: 'CBOR_MALFORMED' },
    { name: 'indefinite map inside an array', hex: '81bfff', opts: { allowIndefiniteTopLevelMap: true }, wantCode: 'CBOR_MALFORMED' },
    { name: 'break in a value position', hex: 'bf6161ffff', opts: { allowIndefiniteTopLevelMap: true }, wantCode: 'CBOR_MALFORMED' },
    { name: 'break outside any container', hex: 'ff', wantCode: 'CBOR_MALFORMED' },
    { name: 'indefinite map never closed', hex: 'bf616101', opts: { allowIndefiniteTopLevelMap: true }, wantCode: 'TRUNCATED' },
    { name: 'indefinite byte string', hex: '5f4101ff', wantCode: 'CBOR_MALFORMED' },
    { name: 'indefinite text string', hex: '7f6161ff', wantCode: 'CBOR_MALFORMED' },
    { name: 'duplicate map key', hex: 'a2616101616102', wantCode: 'CBOR_MALFORMED' },
    { name: 'duplicate integer key', hex: 'a201010102', wantCode: 'CBOR_MALFORMED' },
    { name: 'duplicate key in indefinite map', hex: 'bf616101616102ff', opts: { allowIndefiniteTopLevelMap: true }, wantCode: 'CBOR_MALFORMED' },
    { name: 'half float', hex: 'f93c00', wantCode: 'CBOR_MALFORMED' },
    { name: 'double float', hex: 'fb3ff0000000000000', wantCode: 'CBOR_MALFORMED' },
    { name: 'undefined', hex: 'f7', wantCode: 'CBOR_MALFORMED' },
    { name: 'simple value 16', hex: 'f0', wantCode: 'CBOR_MALFORMED' },
    { name: 'tag without permission', hex: 'd24101', wantCode: 'CBOR_MALFORMED' },
    { name: 'allowed tag not at the top', hex: '81d24101', opts: { allowTopLevelTag: 18 }, wantCode: 'CBOR_MALFORMED' },
    { name: 'allowed tag twice', hex: 'd2d24101', opts: { allowTopLevelTag: 18 }, wantCode: 'CBOR_MALFORMED' },
    { name: 'tag with nothing after it', hex: 'd2', opts: { allowTopLevelTag: 18 }, wantCode: 'TRUNCATED' },
    { name: 'invalid UTF-8 in a text string', hex: '62c328', wantCode: 'CBOR_MALFORMED' },
    { name: 'lone surrogate in a text string', hex: '63eda080', wantCode: 'CBOR_MALFORMED' },
    { name: 'integer beyond 2^53', hex: '1b0020000000000000', wantCode: 'CBOR_MALFORMED' },
    { name: 'two top-level items', hex: '0101', wantCode: 'TRAILING_BYTES' },
    { name: 'bstr longer than the input', hex: '5903e800', wantCode: 'TRUNCATED' },
    { name: 'array declares more items than present', hex: '830102', wantCode: 'TRUNCATED' },
    { name: 'array longer than the cap', hex: '9a00010000', wantCode: 'LIMIT_EXCEEDED' },
    { name: 'nesting deeper than the cap', hex: '81'.repeat(9) + '00', wantCode: 'LIMIT_EXCEEDED' },
    { name: 'input over the byte cap', hex: '41' + '00', opts: { maxBytes: 1 }, wantCode: 'LIMIT_EXCEEDED' },
    { name: 'too many items', hex: '8a' + '00'.repeat(10), opts: { maxItems: 5 }, wantCode: 'LIMIT_EXCEEDED' },
    { name: 'reserved additional info 28', hex: '1c', wantCode: 'CBOR_MALFORMED' },
  ];
  it.each(rows)('rejects $name → $wantCode', ({ hex, opts, wantCode }) => {
    expect(codeOfSync(() => decodeCbor(fromHex(hex), opts))).toBe(wantCode);
  });

  it('accepts exactly the allowed leniencies', () => {
    const m = decodeCbor(fromHex('bf616101616202ff'), { allowIndefiniteTopLevelMap: true });
    expect(m).toEqual(new Map([['a', 1], ['b', 2]]));
    expect(decodeCbor(fromHex('bfff'), { allowIndefiniteTopLevelMap: true })).toEqual(new Map());
    expect(decodeCbor(fromHex('d24101'), { allowTopLevelTag: 18 })).toEqual({ tag: 18, value: Uint8Array.of(1) });
    expect(decodeCbor(fromHex('a20102036162'))).toEqual(new Map<unknown, unknown>([[1, 2], [3, 'b']]));
    expect(decodeCbor(fromHex('60'))).toBe('');
    expect(decodeCbor(fromHex('40'))).toEqual(new Uint8Array(0));
    expect(decodeCbor(fromHex('3822'))).toBe(-35);
  });
});

describe('COSE_Sign1 Sig_structure', () => {
  it('encodes ["Signature1", protected, h\'\', payload] with shortest bstr heads', () => {
    expect(toHex(sigStructure(fromHex('a1013822'), fromHex('01')))).toBe('846a5369676e61747572653144a101382240' + '4101');
    const big = new Uint8Array(300);
    expect(toHex(sigStructure(new Uint8Array(0), big).subarray(0, 17))).toBe('846a5369676e6174757265314040590' + '12c'.padStart(3, '0'));
    expect(cborEncode(['Signature1', fromHex('a1013822'), new Uint8Array(0), big])).toEqual(sigStructure(fromHex('a1013822'), big));
  });
});

describeVectors('sweeps over the real NitroTPM document', () => {
  const doc = fixtureDocument();

  it('truncation sweep: every prefix of the COSE message is TRUNCATED', () => {
    for (let n = 0; n < doc.length; n++) {
      const code = codeOfSync(() => parseCoseSign1(doc.subarray(0, n)));
      if (code !== 'TRUNCATED') throw new Error(`prefix ${n}: ${code}`);
    }
  });

  it('truncation sweep: every prefix of the payload is TRUNCATED', () => {
    const payload = parseCoseSign1(doc).payload;
    for (let n = 0; n < payload.length; n++) {
      const code = codeOfSync(() => decodeDocumentPayload(payload.subarray(0, n)));
      if (code !== 'TRUNCATED') throw new Error(`prefix ${n}: ${code}`);
    }
  });

  it('trailing bytes after the COSE message or the payload are rejected', () => {
    expect(codeOfSync(() => parseCoseSign1(concat(doc, Uint8Array.of(0))))).toBe('TRAILING_BYTES');
    const payload = parseCoseSign1(doc).payload;
    expect(codeOfSync(() => decodeDocumentPayload(concat(payload, Uint8Array.of(0xf6))))).toBe('TRAILING_BYTES');
  });
});

/** Runs a parser; only AttestError may escape. */
function typedOnly(f: () => unknown): void {
  try {
    f();
  } catch (e) {
    if (!(e instanceof AttestError)) throw e;
  }
}

const cborish = fc.array(
  fc.oneof(
    fc.constantFrom(0xbf, 0xff, 0x9f, 0x5f, 0x7f, 0xa1, 0xa2, 0x81, 0x82, 0x84, 0xd2, 0xd8, 0xf4, 0xf6, 0xf7, 0xf9, 0xfb, 0x18, 0x19, 0x1a, 0x1b, 0x38, 0x58, 0x59, 0x78, 0x40, 0x60, 0x44, 0x01),
    fc.integer({ min: 0, max: 255 }),
  ),
  { maxLength: 256 },
).map((a) => Uint8Array.from(a));

describe('fuzzing the CBOR / COSE path (typed errors only)', () => {
  it('decodeCbor on random and CBOR-shaped bytes (12,000 inputs)', () => {
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 256 }), cborish), (b) => {
        typedOnly(() => decodeCbor(b));
        typedOnly(() => decodeCbor(b, { allowIndefiniteTopLevelMap: true, allowTopLevelTag: 18 }));
      }),
      { numRuns: 12_000 },
    );
  });

  it('decodeCbor on encodings of arbitrary values (10,000 inputs)', () => {
    const value = fc.letrec((tie) => ({
      v: fc.oneof(
        { depthSize: 'small' },
        fc.integer(),
        fc.string(),
        fc.uint8Array({ maxLength: 40 }),
        fc.boolean(),
        fc.constant(null),
        fc.array(tie('v'), { maxLength: 5 }),
        fc.dictionary(fc.string({ maxLength: 6 }), tie('v'), { maxKeys: 5 }),
      ),
    })).v;
    fc.assert(
      fc.property(value, (v) => {
        const bytes = cborEncode(v as never);
        let out: unknown;
        try {
          out = decodeCbor(bytes);
        } catch (e) {
          if (!(e instanceof AttestError)) throw e;
          return; // caps (depth/length) may reject; that is a typed error
        }
        expect(out).toBeDefined();
      }),
      { numRuns: 10_000 },
    );
  });

  it('parseCoseSign1 on random bytes and on COSE-prefixed random tails (12,000 inputs)', () => {
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 300 }), cborish.map((t) => concat(fromHex('8444a1013822a0'), t))), (b) => {
        typedOnly(() => parseCoseSign1(b));
      }),
      { numRuns: 12_000 },
    );
  });
});

describeVectors('fuzzing mutations of the real document (typed errors only)', () => {
  const doc = fixtureDocument();
  const edits = fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 }), fc.constantFrom('set', 'insert', 'delete')), { minLength: 1, maxLength: 4 });
  const applyEdits = (base: Uint8Array, es: Array<[number, number, string]>): Uint8Array => {
    let b = base;
    for (const [p, v, op] of es) {
      const i = p % (b.length + 1);
      if (op === 'set' && i < b.length) {
        b = b.slice();
        b[i] = v;
      } else if (op === 'insert') b = concat(b.subarray(0, i), Uint8Array.of(v), b.subarray(i));
      else if (b.length > 0) b = concat(b.subarray(0, i), b.subarray(i + 1));
    }
    return b;
  };

  it('COSE → payload → document shape on mutated documents (10,000 inputs)', () => {
    fc.assert(
      fc.property(edits, (es) => {
        const m = applyEdits(doc, es);
        typedOnly(() => {
          const cose = parseCoseSign1(m);
          const map = decodeDocumentPayload(cose.payload);
          signingMaterial(map);
          parseAttestationDocument(map);
        });
      }),
      { numRuns: 10_000 },
    );
  });

  it('the whole provider on mutated documents never accepts one (300 inputs)', async () => {
    const provider = createAwsProvider();
    const ctx = await ctxAt(FIXTURE_TIME);
    await fc.assert(
      fc.asyncProperty(edits, async (es) => {
        const m = applyEdits(doc, es);
        if (m.length === doc.length && m.every((x, i) => x === doc[i])) return;
        try {
          await provider.verify('nitrotpm', evidenceFor(m), ctx);
        } catch (e) {
          if (e instanceof AttestError) return;
          throw e;
        }
        throw new Error('a mutated document was accepted');
      }),
      { numRuns: 300 },
    );
  });
});

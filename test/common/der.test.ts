/**
 * providers/common/der.ts: the one DER reader. Each rule of the module header has a positive case
 * and a negative one with its code; certificate framing is checked on certificates built here
 * byte by byte (the reader does not verify signatures, so none are needed).
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { ByteReader, concat } from '../../providers/common/bytes.js';
import { AttestError } from '../../providers/common/errors.js';
import {
  algorithmNoParams,
  bitStringBytes,
  boolean,
  certificateFields,
  children,
  contents,
  ctx,
  decodeOne,
  derAs,
  encodeOid,
  encodeTlv as tlv,
  explicit,
  generalizedTime,
  integerBytes,
  octetString,
  oid,
  readTlv,
  smallInt,
  TAG,
  unsignedInteger,
  utf8String,
  want,
  type Tlv,
} from '../../providers/common/der.js';
import { toHex, utf8 } from '../../providers/common/encoding.js';
import { codeOfSync as code } from '../amd-sev-snp/helpers.js';

const b = (...x: number[]): Uint8Array => Uint8Array.from(x);
const one = (...x: number[]): Tlv => decodeOne(b(...x), 'test');

describe('DER TLV framing', () => {
  it('reads short and long form lengths with raw bytes, contents and absolute offsets', () => {
    const t = decodeOne(b(0x04, 0x02, 0xaa, 0xbb), 'short', 100);
    expect(t).toMatchObject({ tag: 0x04, offset: 100, valueOffset: 102 });
    expect(toHex(t.value)).toBe('aabb');
    expect(toHex(t.raw)).toBe('0402aabb');
    const long = tlv(0x04, new Uint8Array(200).fill(7));
    expect(toHex(long.subarray(0, 3))).toBe('0481c8');
    const lt = decodeOne(long, 'long');
    expect(lt.value.length).toBe(200);
    expect(lt.valueOffset).toBe(3);
    expect(toHex(lt.raw)).toBe(toHex(long));
    const big = tlv(0x04, new Uint8Array(300));
    expect(toHex(big.subarray(0, 4))).toBe('0482012c');
    expect(decodeOne(big, 'two-octet length').value.length).toBe(300);
  });

  it('copies: a Tlv never aliases the input', () => {
    const input = b(0x04, 0x01, 0x11);
    const t = decodeOne(input, 'copy');
    input[2] = 0x22;
    expect(t.value[0]).toBe(0x11);
  });

  const rows: { name: string; bytes: Uint8Array; wantCode: string }[] = [
    { name: 'empty input', bytes: b(), wantCode: 'TRUNCATED' },
    { name: 'identifier without a length', bytes: b(0x30), wantCode: 'TRUNCATED' },
    { name: 'contents shorter than the length', bytes: b(0x04, 0x05, 1, 2), wantCode: 'TRUNCATED' },
    { name: 'long-form length octets cut short', bytes: b(0x04, 0x82, 0x01), wantCode: 'TRUNCATED' },
    { name: 'a 3-octet length beyond the input', bytes: b(0x04, 0x83, 0xff, 0xff, 0xff, 0), wantCode: 'TRUNCATED' },
    { name: 'indefinite length (BER)', bytes: b(0x30, 0x80, 0x05, 0x00, 0x00, 0x00), wantCode: 'DER_MALFORMED' },
    { name: 'long form for a length below 128', bytes: b(0x04, 0x81, 0x01, 0xaa), wantCode: 'DER_MALFORMED' },
    { name: 'length with a leading zero octet', bytes: concat(b(0x04, 0x82, 0x00, 0x80), new Uint8Array(128)), wantCode: 'DER_MALFORMED' },
    { name: 'a 4-octet length (oversized)', bytes: b(0x04, 0x84, 0x01, 0x00, 0x00, 0x00), wantCode: 'LIMIT_EXCEEDED' },
    { name: 'reserved length octet 0xff', bytes: b(0x04, 0xff), wantCode: 'LIMIT_EXCEEDED' },
    { name: 'multi-byte tag', bytes: b(0x1f, 0x81, 0x00, 0x00), wantCode: 'DER_MALFORMED' },
    { name: 'trailing byte after the element', bytes: b(0x05, 0x00, 0x00), wantCode: 'TRAILING_BYTES' },
  ];
  for (const r of rows) it(`rejects ${r.name} → ${r.wantCode}`, () => expect(code(() => decodeOne(r.bytes, 'test'))).toBe(r.wantCode));

  it('truncation sweep: every proper prefix of a nested structure is TRUNCATED', () => {
    const der = tlv(TAG.SEQUENCE, tlv(TAG.INTEGER, b(5)), tlv(TAG.OCTET_STRING, new Uint8Array(150).fill(1)), tlv(ctx(0), tlv(TAG.BOOLEAN, b(0xff))));
    expect(code(() => decodeOne(der, 'whole'))).toBe('NO_ERROR');
    for (let n = 0; n < der.length; n++) expect(code(() => decodeOne(der.subarray(0, n), 'prefix')), `prefix ${n}`).toBe('TRUNCATED');
  });

  it('wrong tag and missing elements are DER_MALFORMED, with the offset', () => {
    const r = new ByteReader(b(0x02, 0x01, 0x05), 40);
    try {
      want(readTlv(r, 'thing'), TAG.SEQUENCE, 'thing');
      expect.unreachable();
    } catch (e) {
      expect((e as AttestError).code).toBe('DER_MALFORMED');
      expect((e as AttestError).offset).toBe(40);
    }
    expect(code(() => want(undefined, TAG.SEQUENCE, 'absent'))).toBe('DER_MALFORMED');
  });

  it('children consume a constructed value exactly; contents() keeps absolute offsets', () => {
    const seq = decodeOne(tlv(TAG.SEQUENCE, tlv(TAG.NULL), tlv(TAG.INTEGER, b(1))), 'seq');
    expect(children(seq, 'seq').map((c) => c.tag)).toEqual([TAG.NULL, TAG.INTEGER]);
    expect(children(seq, 'seq')[1]?.offset).toBe(4);
    const r = contents(seq, 'seq');
    expect(readTlv(r, 'first').tag).toBe(TAG.NULL);
    expect(r.offset).toBe(4);
    expect(code(() => children(one(0x04, 0x00), 'primitive'))).toBe('DER_MALFORMED');
    expect(code(() => children(decodeOne(tlv(TAG.SEQUENCE, b(0x05)), 'x'), 'x'))).toBe('TRUNCATED');
    expect(code(() => children(decodeOne(tlv(TAG.SEQUENCE, tlv(TAG.NULL), tlv(TAG.NULL)), 'x'), 'x', 1))).toBe('LIMIT_EXCEEDED');
  });

  it('[n] EXPLICIT holds exactly one element of the right context tag', () => {
    expect(explicit(decodeOne(tlv(ctx(2), tlv(TAG.NULL)), 'x'), 2, 'x').tag).toBe(TAG.NULL);
    expect(code(() => explicit(decodeOne(tlv(ctx(1), tlv(TAG.NULL)), 'x'), 2, 'x'))).toBe('DER_MALFORMED');
    expect(code(() => explicit(decodeOne(tlv(ctx(2), tlv(TAG.NULL), tlv(TAG.NULL)), 'x'), 2, 'x'))).toBe('TRAILING_BYTES');
    expect(code(() => explicit(decodeOne(tlv(ctx(2)), 'x'), 2, 'x'))).toBe('TRUNCATED');
  });
});

describe('DER values', () => {
  it('OBJECT IDENTIFIER: decodes what encodeOid writes; refuses non-minimal and unfinished arcs', () => {
    for (const o of ['1.2.840.113549.1.7.2', '2.16.840.1.101.3.4.2.1', '2.999.3', '0.39', '1.3.6.1.4.1.11129.2.1.21']) {
      expect(oid(decodeOne(encodeOid(o), 'oid'), 'oid')).toBe(o);
    }
    expect(toHex(encodeOid('1.2.840.113549.1.7.2'))).toBe('06092a864886f70d010702');
    expect(code(() => oid(one(0x06, 0x00), 'empty'))).toBe('DER_MALFORMED');
    expect(code(() => oid(one(0x06, 0x02, 0x80, 0x01), 'leading 0x80'))).toBe('DER_MALFORMED');
    expect(code(() => oid(one(0x06, 0x02, 0x2a, 0x86), 'unfinished'))).toBe('DER_MALFORMED');
    expect(code(() => oid(one(0x06, 0x09, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f), 'huge arc'))).toBe('DER_MALFORMED');
    expect(code(() => oid(one(0x04, 0x01, 0x2a), 'wrong tag'))).toBe('DER_MALFORMED');
  });

  it('INTEGER: minimal two\'s complement; unsigned ≤ 64 bits; small ints and ENUMERATED', () => {
    expect(toHex(integerBytes(one(0x02, 0x02, 0x00, 0x80), 'i'))).toBe('0080');
    expect(unsignedInteger(one(0x02, 0x09, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff), 'u')).toBe(2n ** 64n - 1n);
    expect(smallInt(one(0x02, 0x01, 0x03), 's')).toBe(3);
    expect(smallInt(one(0x0a, 0x01, 0x06), 'e', TAG.ENUMERATED)).toBe(6);
    expect(code(() => integerBytes(one(0x02, 0x00), 'empty'))).toBe('DER_MALFORMED');
    expect(code(() => integerBytes(one(0x02, 0x02, 0x00, 0x01), 'leading 00'))).toBe('DER_MALFORMED');
    expect(code(() => integerBytes(one(0x02, 0x02, 0xff, 0x80), 'leading ff'))).toBe('DER_MALFORMED');
    expect(code(() => unsignedInteger(one(0x02, 0x01, 0xff), 'negative'))).toBe('DER_MALFORMED');
    expect(code(() => unsignedInteger(one(0x02, 0x09, 0x01, 0, 0, 0, 0, 0, 0, 0, 0), '65 bits'))).toBe('DER_MALFORMED');
    expect(code(() => smallInt(one(0x02, 0x05, 0x01, 0, 0, 0, 0), '33 bits'))).toBe('DER_MALFORMED');
    expect(code(() => smallInt(one(0x0a, 0x02, 0x00, 0x01), 'non-minimal ENUMERATED', TAG.ENUMERATED))).toBe('DER_MALFORMED');
    expect(code(() => smallInt(one(0x0a, 0x01, 0x01), 'ENUMERATED where INTEGER is wanted'))).toBe('DER_MALFORMED');
  });

  it('BOOLEAN is exactly 00 or FF', () => {
    expect(boolean(one(0x01, 0x01, 0xff), 'b')).toBe(true);
    expect(boolean(one(0x01, 0x01, 0x00), 'b')).toBe(false);
    expect(code(() => boolean(one(0x01, 0x01, 0x01), 'b'))).toBe('DER_MALFORMED');
    expect(code(() => boolean(one(0x01, 0x02, 0xff, 0xff), 'b'))).toBe('DER_MALFORMED');
  });

  it('OCTET STRING and UTF8String are primitive only; BIT STRING without unused bits', () => {
    expect(toHex(octetString(one(0x04, 0x01, 0x09), 'o'))).toBe('09');
    expect(code(() => octetString(decodeOne(tlv(0x24, tlv(TAG.OCTET_STRING, b(9))), 'constructed'), 'o'))).toBe('DER_MALFORMED');
    expect(utf8String(decodeOne(tlv(TAG.UTF8_STRING, utf8('zoné')), 'u'), 'u')).toBe('zoné');
    expect(code(() => utf8String(one(0x0c, 0x01, 0xff), 'bad utf-8'))).toBe('BAD_ENCODING');
    expect(code(() => utf8String(one(0x13, 0x01, 0x41), 'PrintableString'))).toBe('DER_MALFORMED');
    expect(toHex(bitStringBytes(one(0x03, 0x02, 0x00, 0xab), 'bits'))).toBe('ab');
    expect(code(() => bitStringBytes(one(0x03, 0x02, 0x01, 0xab), 'unused bits'))).toBe('DER_MALFORMED');
    expect(code(() => bitStringBytes(one(0x03, 0x00), 'empty'))).toBe('DER_MALFORMED');
  });

  it('GeneralizedTime in the DER form only', () => {
    const gt = (s: string): Tlv => decodeOne(tlv(TAG.GENERALIZED_TIME, utf8(s)), 'gt');
    expect(generalizedTime(gt('20260203100500Z'), 't').toISOString()).toBe('2026-02-03T10:05:00.000Z');
    expect(generalizedTime(gt('20260203100500.25Z'), 't').toISOString()).toBe('2026-02-03T10:05:00.250Z');
    for (const bad of ['20260203100500', '20260203100500+0100', '20260203100500.50Z', '202602031005Z', '20260230100500Z', '20260203240000Z']) {
      expect(code(() => generalizedTime(gt(bad), 't')), bad).toBe('DER_MALFORMED');
    }
  });

  it('AlgorithmIdentifier parameters absent or NULL', () => {
    const alg = (...p: Uint8Array[]): Tlv => decodeOne(tlv(TAG.SEQUENCE, encodeOid('2.16.840.1.101.3.4.2.1'), ...p), 'alg');
    expect(algorithmNoParams(alg(), 'a')).toBe('2.16.840.1.101.3.4.2.1');
    expect(algorithmNoParams(alg(tlv(TAG.NULL)), 'a')).toBe('2.16.840.1.101.3.4.2.1');
    expect(code(() => algorithmNoParams(alg(tlv(TAG.INTEGER, b(0))), 'a'))).toBe('DER_MALFORMED');
    expect(code(() => algorithmNoParams(alg(tlv(TAG.NULL), tlv(TAG.NULL)), 'a'))).toBe('DER_MALFORMED');
  });

  it('derAs maps DER_MALFORMED to the caller\'s code and leaves the common codes alone', () => {
    expect(code(() => derAs('INSTANCE_INFO_MALFORMED', () => decodeOne(b(0x30, 0x80), 'x')))).toBe('INSTANCE_INFO_MALFORMED');
    expect(code(() => derAs('INSTANCE_INFO_MALFORMED', () => decodeOne(b(0x30, 0x05), 'x')))).toBe('TRUNCATED');
    expect(code(() => derAs('INSTANCE_INFO_MALFORMED', () => decodeOne(b(0x05, 0x00, 0x00), 'x')))).toBe('TRAILING_BYTES');
  });

  it('fast-check: arbitrary bytes walked recursively give typed errors only', () => {
    const walk = (t: Tlv, depth: number): void => {
      if (depth > 8 || (t.tag & 0x20) === 0) return;
      for (const c of children(t, 'walk')) walk(c, depth + 1);
    };
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        try {
          walk(decodeOne(bytes, 'fuzz'), 0);
        } catch (e) {
          if (!(e instanceof AttestError)) throw e;
        }
      }),
      { numRuns: 5_000 },
    );
  });
});

describe('certificateFields', () => {
  const name = (cn: string): Uint8Array => tlv(TAG.SEQUENCE, tlv(TAG.SET, tlv(TAG.SEQUENCE, encodeOid('2.5.4.3'), tlv(TAG.UTF8_STRING, utf8(cn)))));
  const ecdsaSha256 = tlv(TAG.SEQUENCE, encodeOid('1.2.840.10045.4.3.2'));
  const ext = (id: string, value: Uint8Array, critical?: Uint8Array): Uint8Array => tlv(TAG.SEQUENCE, encodeOid(id), ...(critical ? [critical] : []), tlv(TAG.OCTET_STRING, value));
  interface Spec {
    outerAlg?: Uint8Array;
    exts?: Uint8Array[] | null;
    after?: Uint8Array[];
    sigUnused?: number;
  }
  const cert = (s: Spec = {}): Uint8Array => {
    const exts = s.exts === null ? [] : [tlv(ctx(3), tlv(TAG.SEQUENCE, ...(s.exts ?? [ext('2.5.29.19', tlv(TAG.SEQUENCE), tlv(TAG.BOOLEAN, b(0xff))), ext('2.23.133.5.4.1', b(1, 2, 3))])))];
    const tbs = tlv(
      TAG.SEQUENCE,
      tlv(ctx(0), tlv(TAG.INTEGER, b(2))),
      tlv(TAG.INTEGER, b(0x00, 0x9a, 0x01)),
      ecdsaSha256,
      name('Issuer CA'),
      tlv(TAG.SEQUENCE, tlv(0x17, utf8('260101000000Z')), tlv(0x17, utf8('360101000000Z'))),
      name('Leaf'),
      tlv(TAG.SEQUENCE, tlv(TAG.SEQUENCE, encodeOid('1.2.840.10045.2.1'), encodeOid('1.2.840.10045.3.1.7')), tlv(TAG.BIT_STRING, b(0, 4, 1, 2))),
      ...exts,
      ...(s.after ?? []),
    );
    return tlv(TAG.SEQUENCE, tbs, s.outerAlg ?? ecdsaSha256, tlv(TAG.BIT_STRING, b(s.sigUnused ?? 0, 0x30, 0x00)));
  };

  it('returns the signed bytes, serial, names, key and extension values', () => {
    const der = cert();
    const f = certificateFields(der);
    expect(toHex(f.serial)).toBe('009a01');
    expect(toHex(f.issuer)).toBe(toHex(name('Issuer CA')));
    expect(toHex(f.subject)).toBe(toHex(name('Leaf')));
    expect(toHex(f.subjectPublicKey)).toBe('040102');
    expect(toHex(f.signature)).toBe('3000');
    expect(toHex(f.tbs)).toBe(toHex(decodeOne(der, 'c').value.subarray(0, f.tbs.length)));
    expect([...f.extensions.keys()]).toEqual(['2.5.29.19', '2.23.133.5.4.1']);
    expect(toHex(f.extensions.get('2.23.133.5.4.1')!)).toBe('010203');
    expect(certificateFields(cert({ exts: null })).extensions.size).toBe(0);
    // An explicit critical FALSE (a DER default some issuers still write) is signed, so accepted.
    expect(certificateFields(cert({ exts: [ext('2.5.29.15', b(3, 2, 7, 0x80), tlv(TAG.BOOLEAN, b(0)))] })).extensions.size).toBe(1);
  });

  const rows: { name: string; der: () => Uint8Array; wantCode: string }[] = [
    { name: 'outer signatureAlgorithm differs from the signed one', der: () => cert({ outerAlg: tlv(TAG.SEQUENCE, encodeOid('1.2.840.10045.4.3.3')) }), wantCode: 'DER_MALFORMED' },
    { name: 'signature with unused bits', der: () => cert({ sigUnused: 1 }), wantCode: 'DER_MALFORMED' },
    { name: 'critical that is not a DER BOOLEAN', der: () => cert({ exts: [ext('2.5.29.15', b(3, 2, 7, 0x80), tlv(TAG.BOOLEAN, b(1)))] }), wantCode: 'DER_MALFORMED' },
    { name: 'an extension without extnValue', der: () => cert({ exts: [tlv(TAG.SEQUENCE, encodeOid('2.5.29.15'))] }), wantCode: 'DER_MALFORMED' },
    { name: 'an extension twice', der: () => cert({ exts: [ext('2.5.29.15', b(1)), ext('2.5.29.15', b(1))] }), wantCode: 'DER_MALFORMED' },
    { name: 'a member after the extensions', der: () => cert({ after: [tlv(TAG.NULL)] }), wantCode: 'DER_MALFORMED' },
    { name: 'trailing byte after the certificate', der: () => concat(cert(), b(0)), wantCode: 'TRAILING_BYTES' },
  ];
  for (const r of rows) it(`rejects ${r.name} → ${r.wantCode}`, () => expect(code(() => certificateFields(r.der()))).toBe(r.wantCode));

  it('truncation sweep: every proper prefix is TRUNCATED', () => {
    const der = cert();
    for (let n = 0; n < der.length; n++) expect(code(() => certificateFields(der.subarray(0, n))), `prefix ${n}`).toBe('TRUNCATED');
  });
});

/**
 * Parser hardening for providers/tpm/structures.ts:
 * - round trips of every supported shape (RSA 2048/3072/4096, ECC P-256/P-384, AES/NULL
 *   symmetric, each scheme), Names equal to nameAlg ‖ H(TPMT_PUBLIC);
 * - a truncation sweep (every proper prefix of every structure → TRUNCATED) and a trailing-byte
 *   test (→ TRAILING_BYTES);
 * - negative rows {name, mutate, wantCode} for selectors, sizes, reserved bits and caps;
 * - fast-check: ≥ 10,000 inputs per parser (random bytes and mutated valid structures), every
 *   failure an AttestError with a code, never an untyped exception.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { createHash, randomBytes } from 'node:crypto';
import {
  computeName,
  ecdsaDerToP1363,
  ecdsaToP1363,
  encodePcrSelectionList,
  parseAttest,
  parsePcrSelectionList,
  parseTpm2bPublic,
  parseTpmtPublic,
  parseTpmtSignature,
  TPM_ST,
} from '../../providers/tpm/structures.js';
import { parseTpmEvidence } from '../../providers/tpm/provider.js';
import { AttestError } from '../../providers/common/errors.js';
import { concat, u16be } from '../../providers/common/bytes.js';
import { toBase64Url } from '../../providers/common/encoding.js';
import { attest, eccPublic, ecdsaSignature, EK_ATTRS, rsaPublic, rsaSignature, tpm2bPublic } from './build.js';

const rnd = (n: number): Uint8Array => new Uint8Array(randomBytes(n));
const modulus = (bytes: number): Uint8Array => {
  const n = rnd(bytes);
  n[0] = (n[0] as number) | 0x80;
  return n;
};

function codeOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    if (e instanceof AttestError) return e.code;
    throw e;
  }
  return 'OK';
}

const RSA2048 = rsaPublic(modulus(256));
const SAMPLES = {
  'TPMT_PUBLIC rsa2048 rsassa': RSA2048,
  'TPMT_PUBLIC rsa3072 rsapss sha384': rsaPublic(modulus(384), { scheme: { scheme: 'rsapss', hash: 'sha384' } }),
  'TPMT_PUBLIC rsa4096 EK aes256': rsaPublic(modulus(512), { attrs: EK_ATTRS, scheme: { scheme: 'null' }, aesBits: 256, authPolicy: rnd(32) }),
  'TPMT_PUBLIC ecc p256': eccPublic('P-256', rnd(32), rnd(32)),
  'TPMT_PUBLIC ecc p384 sha384 name': eccPublic('P-384', rnd(48), rnd(48), { nameAlg: 'sha384' }),
};
const QUOTE = attest({ extraData: rnd(32), selection: [{ hash: 'sha1', pcrs: [0, 1] }, { hash: 'sha256', pcrs: [7, 23] }], pcrDigest: rnd(32) });
const CERTIFY = attest({ type: TPM_ST.ATTEST_CERTIFY, extraData: rnd(16), attested: concat(u16be(34), rnd(34), u16be(34), rnd(34)) });
const SIG_RSA = rsaSignature('rsassa', 'sha256', rnd(256));
const SIG_ECC = ecdsaSignature('sha256', rnd(32), rnd(32));
const SEL = encodePcrSelectionList([{ hash: 'sha256', pcrs: [0, 1, 2, 3, 4, 5, 6, 7] }, { hash: 'sha384', pcrs: [23] }]);

type Parser = (b: Uint8Array) => unknown;
const PARSERS: { name: string; parse: Parser; valid: Uint8Array[] }[] = [
  { name: 'parseTpmtPublic', parse: parseTpmtPublic, valid: Object.values(SAMPLES) },
  { name: 'parseTpm2bPublic', parse: parseTpm2bPublic, valid: Object.values(SAMPLES).map(tpm2bPublic) },
  { name: 'parseAttest', parse: parseAttest, valid: [QUOTE, CERTIFY] },
  { name: 'parseTpmtSignature', parse: parseTpmtSignature, valid: [SIG_RSA, SIG_ECC] },
  { name: 'parsePcrSelectionList', parse: parsePcrSelectionList, valid: [SEL] },
];

describe('TPM structures: shapes and Names', () => {
  it('parses every supported TPMT_PUBLIC shape and keeps the exact bytes', async () => {
    for (const [name, b] of Object.entries(SAMPLES)) {
      const p = parseTpmtPublic(b);
      expect(p.raw, name).toEqual(b);
      expect(parseTpm2bPublic(tpm2bPublic(b)).raw, name).toEqual(b);
      const h = p.nameAlg === 'sha384' ? 'sha384' : 'sha256';
      const want = concat(u16be(h === 'sha384' ? 0x000c : 0x000b), createHash(h).update(b).digest());
      expect(await computeName(b), name).toEqual(want);
      expect(await computeName(p), name).toEqual(want);
    }
    const ek = parseTpmtPublic(SAMPLES['TPMT_PUBLIC rsa4096 EK aes256']);
    expect(ek.parameters.symmetric).toEqual({ algorithm: 'aes', keyBits: 256, mode: 'cfb' });
    expect(ek.objectAttributes.decrypt && ek.objectAttributes.restricted && !ek.objectAttributes.sign).toBe(true);
    expect(ek.parameters.type === 'rsa' && ek.parameters.exponent).toBe(65537);
  });

  it('parses quote and certify attestations and the PCR selection order', () => {
    const q = parseAttest(QUOTE);
    expect(q.type).toBe('quote');
    if (q.type !== 'quote') return;
    expect(q.quote.pcrSelect.map((s) => [s.hash, s.pcrs])).toEqual([
      ['sha1', [0, 1]],
      ['sha256', [7, 23]],
    ]);
    expect(q.clockInfo).toEqual({ clock: 123456n, resetCount: 1, restartCount: 0, safe: true });
    expect(q.firmwareVersion).toBe(0x2016051100162800n);
    const c = parseAttest(CERTIFY);
    expect(c.type === 'certify' && c.certify.name.length).toBe(34);
    expect(parsePcrSelectionList(SEL).map((s) => s.pcrs)).toEqual([[0, 1, 2, 3, 4, 5, 6, 7], [23]]);
  });

  it('ECDSA conversions: TPM r,s and DER to P1363', () => {
    const r = rnd(32);
    const s = rnd(32);
    r[0] = 0;
    expect(ecdsaToP1363(r.subarray(1), s, 32)).toEqual(concat(r, s));
    expect(codeOf(() => ecdsaToP1363(rnd(33).fill(1), s, 32))).toBe('TPM_STRUCTURE_INVALID');
    const int = (v: Uint8Array): Uint8Array => {
      let i = 0;
      while (i < v.length - 1 && v[i] === 0) i++;
      const t = v.subarray(i);
      const body = ((t[0] as number) & 0x80) !== 0 ? concat(new Uint8Array([0]), t) : t;
      return concat(new Uint8Array([2, body.length]), body);
    };
    const der = (a: Uint8Array, b: Uint8Array): Uint8Array => {
      const body = concat(int(a), int(b));
      return concat(new Uint8Array([0x30, body.length]), body);
    };
    const rs = rnd(32);
    rs[0] = 0xff;
    expect(ecdsaDerToP1363(der(rs, s), 32)).toEqual(concat(rs, s));
    const rows: { name: string; bytes: Uint8Array; want: string }[] = [
      { name: 'not a sequence', bytes: concat(new Uint8Array([0x31]), der(rs, s).subarray(1)), want: 'TPM_STRUCTURE_INVALID' },
      { name: 'trailing', bytes: concat(der(rs, s), new Uint8Array([0])), want: 'TRAILING_BYTES' },
      { name: 'negative r', bytes: concat(new Uint8Array([0x30, 6, 2, 1, 0x80, 2, 1, 1])), want: 'TPM_STRUCTURE_INVALID' },
      { name: 'non-minimal r', bytes: concat(new Uint8Array([0x30, 7, 2, 2, 0, 1, 2, 1, 1])), want: 'TPM_STRUCTURE_INVALID' },
      { name: 'long-form short length', bytes: concat(new Uint8Array([0x30, 0x81, 6, 2, 1, 1, 2, 1, 1])), want: 'TPM_STRUCTURE_INVALID' },
      { name: 'r too long', bytes: der(rnd(33).fill(1), s), want: 'TPM_STRUCTURE_INVALID' },
      { name: 'cut', bytes: der(rs, s).subarray(0, 20), want: 'TRUNCATED' },
    ];
    for (const r0 of rows) expect(codeOf(() => ecdsaDerToP1363(r0.bytes, 32)), r0.name).toBe(r0.want);
  });
});

describe('TPM structures: truncation, trailing bytes, negative rows', () => {
  it('every proper prefix of every structure is TRUNCATED', () => {
    for (const p of PARSERS) {
      for (const v of p.valid) {
        for (let n = 0; n < v.length; n++) expect(codeOf(() => p.parse(v.subarray(0, n))), `${p.name} prefix ${n}/${v.length}`).toBe('TRUNCATED');
      }
    }
  });

  it('a trailing byte is TRAILING_BYTES', () => {
    for (const p of PARSERS) for (const v of p.valid) expect(codeOf(() => p.parse(concat(v, new Uint8Array([0])))), p.name).toBe('TRAILING_BYTES');
    // Inside TPM2B_PUBLIC, a size larger than the TPMT_PUBLIC is caught by the inner end().
    const inner = concat(RSA2048, new Uint8Array([0]));
    expect(codeOf(() => parseTpm2bPublic(concat(u16be(inner.length), inner)))).toBe('TRAILING_BYTES');
  });

  const set = (b: Uint8Array, at: number, bytes: number[]): Uint8Array => {
    const c = b.slice();
    c.set(bytes, at);
    return c;
  };
  // RSA TPMT_PUBLIC offsets (Part 2 §12.2.4): type 0, nameAlg 2, attrs 4, authPolicy size 8,
  // symmetric 10, scheme 12 (+hash 14), keyBits 16, exponent 18, unique size 22, modulus 24.
  const rows: { name: string; mutate: () => Uint8Array; parse: Parser; wantCode: string }[] = [
    { name: 'type KEYEDHASH', mutate: () => set(RSA2048, 0, [0, 8]), parse: parseTpmtPublic, wantCode: 'TPM_ALG_UNSUPPORTED' },
    { name: 'nameAlg SM3', mutate: () => set(RSA2048, 2, [0, 0x12]), parse: parseTpmtPublic, wantCode: 'TPM_ALG_UNSUPPORTED' },
    { name: 'nameAlg NULL', mutate: () => set(RSA2048, 2, [0, 0x10]), parse: parseTpmtPublic, wantCode: 'TPM_ALG_UNSUPPORTED' },
    { name: 'reserved attribute bit 0', mutate: () => set(RSA2048, 7, [(RSA2048[7] as number) | 1]), parse: parseTpmtPublic, wantCode: 'RESERVED_NONZERO' },
    { name: 'reserved attribute bit 31', mutate: () => set(RSA2048, 4, [0x80]), parse: parseTpmtPublic, wantCode: 'RESERVED_NONZERO' },
    { name: 'authPolicy longer than a digest', mutate: () => set(RSA2048, 8, [0, 65]), parse: parseTpmtPublic, wantCode: 'LIMIT_EXCEEDED' },
    { name: 'symmetric camellia', mutate: () => set(RSA2048, 10, [0, 0x26]), parse: parseTpmtPublic, wantCode: 'TPM_ALG_UNSUPPORTED' },
    { name: 'scheme ECDAA on RSA', mutate: () => set(RSA2048, 12, [0, 0x1a]), parse: parseTpmtPublic, wantCode: 'TPM_ALG_UNSUPPORTED' },
    { name: 'scheme hash NULL', mutate: () => set(RSA2048, 14, [0, 0x10]), parse: parseTpmtPublic, wantCode: 'TPM_ALG_UNSUPPORTED' },
    { name: 'keyBits 1024', mutate: () => set(RSA2048, 16, [4, 0]), parse: parseTpmtPublic, wantCode: 'TPM_ALG_UNSUPPORTED' },
    { name: 'keyBits 3072 with a 2048-bit modulus', mutate: () => set(RSA2048, 16, [0x0c, 0]), parse: parseTpmtPublic, wantCode: 'TPM_STRUCTURE_INVALID' },
    { name: 'even exponent', mutate: () => set(RSA2048, 18, [0, 1, 0, 0]), parse: parseTpmtPublic, wantCode: 'TPM_STRUCTURE_INVALID' },
    { name: 'modulus top bit clear', mutate: () => set(RSA2048, 24, [0x7f]), parse: parseTpmtPublic, wantCode: 'TPM_STRUCTURE_INVALID' },
    { name: 'modulus size above 512', mutate: () => set(RSA2048, 22, [2, 1]), parse: parseTpmtPublic, wantCode: 'LIMIT_EXCEEDED' },
    { name: 'ECC curve P-521', mutate: () => set(SAMPLES['TPMT_PUBLIC ecc p256'], 16, [0, 5]), parse: parseTpmtPublic, wantCode: 'TPM_ALG_UNSUPPORTED' },
    { name: 'ECC coordinate of 31 bytes', mutate: () => eccPublic('P-256', rnd(31), rnd(32)), parse: parseTpmtPublic, wantCode: 'TPM_STRUCTURE_INVALID' },
    { name: 'empty TPM2B_PUBLIC', mutate: () => new Uint8Array([0, 0]), parse: parseTpm2bPublic, wantCode: 'TPM_STRUCTURE_INVALID' },
    { name: 'attest magic', mutate: () => set(QUOTE, 0, [0, 0, 0, 0]), parse: parseAttest, wantCode: 'QUOTE_MAGIC_INVALID' },
    { name: 'attest type TIME', mutate: () => set(QUOTE, 4, [0x80, 0x19]), parse: parseAttest, wantCode: 'QUOTE_TYPE_INVALID' },
    { name: 'attest extraData above 66', mutate: () => attest({ extraData: rnd(67) }), parse: parseAttest, wantCode: 'LIMIT_EXCEEDED' },
    { name: 'attest safe = 2', mutate: () => attest({ extraData: rnd(4), safe: 2 }), parse: parseAttest, wantCode: 'TPM_STRUCTURE_INVALID' },
    { name: 'selection count 17', mutate: () => set(SEL, 0, [0, 0, 0, 17]), parse: parsePcrSelectionList, wantCode: 'LIMIT_EXCEEDED' },
    { name: 'selection count 2^32-1', mutate: () => set(SEL, 0, [0xff, 0xff, 0xff, 0xff]), parse: parsePcrSelectionList, wantCode: 'LIMIT_EXCEEDED' },
    { name: 'sizeofSelect 9', mutate: () => set(SEL, 6, [9]), parse: parsePcrSelectionList, wantCode: 'LIMIT_EXCEEDED' },
    { name: 'selection hash SM3', mutate: () => set(SEL, 4, [0, 0x12]), parse: parsePcrSelectionList, wantCode: 'TPM_ALG_UNSUPPORTED' },
    { name: 'signature HMAC', mutate: () => set(SIG_RSA, 0, [0, 5]), parse: parseTpmtSignature, wantCode: 'TPM_ALG_UNSUPPORTED' },
    { name: 'signature NULL', mutate: () => new Uint8Array([0, 0x10]), parse: parseTpmtSignature, wantCode: 'TPM_ALG_UNSUPPORTED' },
    { name: 'signature hash unknown', mutate: () => set(SIG_ECC, 2, [0, 0x99]), parse: parseTpmtSignature, wantCode: 'TPM_ALG_UNSUPPORTED' },
    { name: 'ECDSA r above 48', mutate: () => ecdsaSignature('sha256', rnd(49), rnd(32)), parse: parseTpmtSignature, wantCode: 'LIMIT_EXCEEDED' },
  ];
  it.each(rows)('$name → $wantCode', ({ mutate, parse, wantCode }) => {
    expect(codeOf(() => parse(mutate()))).toBe(wantCode);
  });
});

describe('TPM structures: fast-check (≥ 10,000 inputs per parser, typed errors only)', () => {
  const typed = <T,>(parse: (x: T) => unknown) => (b: T): boolean => {
    try {
      parse(b);
    } catch (e) {
      if (!(e instanceof AttestError) || !/^[A-Z][A-Z0-9_]*$/.test(e.code)) throw e;
    }
    return true;
  };
  for (const p of [...PARSERS, { name: 'ecdsaDerToP1363', parse: (b: Uint8Array) => ecdsaDerToP1363(b, 32), valid: [new Uint8Array([0x30, 6, 2, 1, 1, 2, 1, 1])] }]) {
    it(`${p.name}: random bytes`, () => {
      fc.assert(fc.property(fc.uint8Array({ maxLength: 700 }), typed(p.parse)), { numRuns: 6000 });
    });
    it(`${p.name}: mutated valid structures`, () => {
      const mutated = fc
        .tuple(fc.constantFrom(...p.valid), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }), fc.nat(), fc.boolean())
        .map(([v, edits, cut, doCut]) => {
          const c = v.slice();
          for (const [at, val] of edits) c[at % c.length] = val;
          return doCut ? c.subarray(0, cut % (c.length + 1)) : c;
        });
      fc.assert(fc.property(mutated, typed(p.parse)), { numRuns: 5000 });
    });
  }
  it('parseTpmEvidence: arbitrary JSON values', () => {
    const ev = fc.oneof(
      fc.jsonValue(),
      fc.record({ ak_public: fc.string(), quote: fc.record({ message: fc.string(), signature: fc.string() }), pcrs: fc.dictionary(fc.constantFrom('sha1', 'sha256', 'sha384', 'x'), fc.dictionary(fc.string(), fc.string())) }, { requiredKeys: [] }),
      fc.constant({ ak_public: toBase64Url(RSA2048), quote: { message: toBase64Url(QUOTE), signature: toBase64Url(SIG_RSA) }, pcrs: {} }),
    );
    fc.assert(fc.property(ev, typed<unknown>(parseTpmEvidence)), { numRuns: 10000 });
  });
});

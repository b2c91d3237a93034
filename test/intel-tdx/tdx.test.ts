/**
 * TDX Quote v4: both real quotes in the vectors verify to the pinned Intel SGX Root CA; each
 * check rejects a forged input with its own code; bit-flip sweep over every signed byte;
 * truncation sweep, trailing bytes and fuzzing for the parser; validation options.
 */
import { expect, it } from 'vitest';
import fc from 'fast-check';
import { describeVectors, loadTestTrust, readVector } from '../helpers/vectors.js';
import { parseTdQuote, tdDebug, TDX_HEADER_SIZE, TDX_BODY_SIZE } from '../../providers/intel-tdx/parse.js';
import { verifyTdQuote, TdxVerifyCache, type TdxVerifyInput } from '../../providers/intel-tdx/verify.js';
import { strictTdxOptions, validateTdQuote, type TdxValidateOptions } from '../../providers/intel-tdx/validate.js';
import { PinIds } from '../../providers/common/pins.js';
import { verifyTdxAttestation } from '../../providers/intel-tdx/index.js';
import { AttestError } from '../../providers/common/errors.js';
import { codeOf, codeOfSync } from '../amd-sev-snp/helpers.js';

const AT = new Date('2025-01-01T00:00:00Z');
const azure = (): Uint8Array => readVector('trustee/az-tdx-vtpm/td-quote.bin');
const cos = (): Uint8Array => readVector('go-tdx-guest/ccel/cos-113-tdx-quote.dat');
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

describeVectors('TDX quotes from real hardware verify to the pinned Intel SGX Root CA', () => {
  it('Azure TDX CVM quote (INDEX 1b values)', async () => {
    const q = parseTdQuote(azure());
    const v = await verifyTdQuote({ quote: q, trust: await loadTestTrust(), at: AT });
    expect(v.anchorId).toBe(PinIds.INTEL_SGX_ROOT);
    expect(v.pckIssuer).toBe('Intel SGX PCK Platform CA');
    expect(v.fmspc).toBe('00806f050000');
    expect(hex(q.body.mrTd)).toBe('024a32b070383331181619fa387cb4d55d1e38879f989933055ccad5bc2db795d1737b66205949d15469dc8c1ba7ab7b');
    expect(hex(q.body.mrSeam)).toBe('360304d34a16aace0a18e09ad2d07d2b9fd3c174378e5bf108388079827f89ff62acc5f8c473dd40706324834e202946');
    expect(hex(q.body.teeTcbSvn)).toBe('02010600000000000000000000000000');
    expect(hex(q.body.xfam)).toBe('e718060000000000');
    expect(q.body.rtmrs.every((r) => r.every((x) => x === 0))).toBe(true);
    expect(tdDebug(q.body)).toBe(false);
    expect(codeOfSync(() => validateTdQuote(v, strictTdxOptions()))).toBe('NO_ERROR');
  });

  it('verifyTdxAttestation: one call, strict validation', async () => {
    const v = await verifyTdxAttestation({ quote: cos(), trust: await loadTestTrust(), at: AT, validate: strictTdxOptions({ mrTd: { expect: ['dae67181d3d65e073ad8f95b7907d5e927bfe9761c9ff3e9b89734a45d8954dba41394c7717cb2735396c1d04231f94a'] } }) });
    expect(v.fmspc).toBe('00806f050000');
    expect(await codeOf(async () => verifyTdxAttestation({ quote: cos(), trust: await loadTestTrust(), at: AT, validate: strictTdxOptions({ tcbStatus: {} }) }))).toBe('TDX_COLLATERAL_MISSING');
  });

  it('GCP COS 113 TDX quote (INDEX 2c values)', async () => {
    const q = parseTdQuote(cos());
    const v = await verifyTdQuote({ quote: q, trust: await loadTestTrust(), at: AT });
    expect(v.fmspc).toBe('00806f050000');
    expect(hex(q.body.mrTd)).toBe('dae67181d3d65e073ad8f95b7907d5e927bfe9761c9ff3e9b89734a45d8954dba41394c7717cb2735396c1d04231f94a');
    expect(hex(q.body.rtmrs[0])).toBe('3fa2f61f395b7f5feefb4ec2df61297f109ad8abcd6410c1b7df60f21f37b19297fc35e544039c7e1edece752afd17f6');
    expect(hex(q.body.tdAttributes)).toBe('0000001000000000');
    expect(q.body.reportData).toEqual(readVector('go-tdx-guest/ccel/nonce.dat'));
  });
});

describeVectors('TDX verification rejects every forged input with its own code', () => {
  interface Row {
    name: string;
    mutate: (b: Uint8Array) => void;
    input?: (i: TdxVerifyInput) => Promise<TdxVerifyInput> | TdxVerifyInput;
    wantCode: string;
  }
  const pemAt = (b: Uint8Array): number => Buffer.from(b).indexOf('-----BEGIN CERTIFICATE-----');
  const sigData = TDX_HEADER_SIZE + TDX_BODY_SIZE + 4;
  const qeReportAt = sigData + 128 + 6;
  const rows: Row[] = [
    { name: 'untouched', mutate: () => {}, wantCode: 'NO_ERROR' },
    { name: 'MRTD byte changed', mutate: (b) => (b[TDX_HEADER_SIZE + 16 + 48 * 2 + 24]! ^= 1), wantCode: 'TDX_QUOTE_SIGNATURE_INVALID' },
    { name: 'report data byte changed', mutate: (b) => (b[TDX_HEADER_SIZE + TDX_BODY_SIZE - 1]! ^= 1), wantCode: 'TDX_QUOTE_SIGNATURE_INVALID' },
    { name: 'quote signature bit flipped', mutate: (b) => (b[sigData]! ^= 1), wantCode: 'TDX_QUOTE_SIGNATURE_INVALID' },
    { name: 'attestation key changed (QE no longer vouches for it)', mutate: (b) => (b[sigData + 64]! ^= 1), wantCode: 'TDX_QE_REPORT_DATA_MISMATCH' },
    { name: 'QE auth data changed', mutate: (b) => (b[qeReportAt + 384 + 64 + 2]! ^= 1), wantCode: 'TDX_QE_REPORT_DATA_MISMATCH' },
    { name: 'QE report byte changed', mutate: (b) => (b[qeReportAt]! ^= 1), wantCode: 'TDX_QE_REPORT_SIGNATURE_INVALID' },
    { name: 'QE MRSIGNER not Intel\'s', mutate: (b) => (b[qeReportAt + 128]! ^= 1), wantCode: 'TDX_QE_IDENTITY_UNKNOWN' },
    { name: 'QE ISVPRODID 1 (the SGX QE, not the TD QE)', mutate: (b) => (b[qeReportAt + 256] = 1), wantCode: 'TDX_QE_IDENTITY_UNKNOWN' },
    { name: 'QE is a debug enclave', mutate: (b) => (b[qeReportAt + 48]! |= 0x02), wantCode: 'TDX_QE_DEBUG' },
    { name: 'QE report signature changed', mutate: (b) => (b[qeReportAt + 384]! ^= 1), wantCode: 'TDX_QE_REPORT_SIGNATURE_INVALID' },
    { name: 'PCK certificate body changed', mutate: (b) => (b[pemAt(b) + 400] = b[pemAt(b) + 400] === 0x41 ? 0x42 : 0x41), wantCode: 'CERT_SIGNATURE_INVALID' },
    { name: 'Intel root not pinned', mutate: () => {}, input: async (i) => ({ ...i, trust: await loadTestTrust([PinIds.AMD_ARK_MILAN]) }), wantCode: 'TRUST_ANCHOR_MISSING' },
    { name: 'PCK expired at the chosen time (2031)', mutate: () => {}, input: (i) => ({ ...i, at: new Date('2031-01-01T00:00:00Z') }), wantCode: 'CERT_EXPIRED' },
    { name: 'PCK not yet valid (2023-01-01)', mutate: () => {}, input: (i) => ({ ...i, at: new Date('2023-01-01T00:00:00Z') }), wantCode: 'CERT_NOT_YET_VALID' },
    { name: 'version 3', mutate: (b) => (b[0] = 3), wantCode: 'TDX_QUOTE_VERSION_UNSUPPORTED' },
    { name: 'attestation key type 3 (P-384)', mutate: (b) => (b[2] = 3), wantCode: 'TDX_ATT_KEY_TYPE_UNSUPPORTED' },
    { name: 'TEE type SGX', mutate: (b) => (b[4] = 0), wantCode: 'TDX_TEE_TYPE_UNSUPPORTED' },
    { name: 'header reserved', mutate: (b) => (b[8] = 1), wantCode: 'RESERVED_NONZERO' },
    { name: 'QE vendor', mutate: (b) => (b[12]! ^= 1), wantCode: 'TDX_QE_VENDOR_UNKNOWN' },
    { name: 'certification data type 5 at the top level', mutate: (b) => (b[sigData + 128] = 5), wantCode: 'TDX_CERT_DATA_UNSUPPORTED' },
    { name: 'QE report reserved range', mutate: (b) => (b[qeReportAt + 20] = 1), wantCode: 'RESERVED_NONZERO' },
    { name: 'signature data length lies (+1)', mutate: (b) => (b[TDX_HEADER_SIZE + TDX_BODY_SIZE]! += 1), wantCode: 'TRAILING_BYTES' },
    { name: 'non-zero byte in the padding', mutate: (b) => (b[b.length - 1] = 1), wantCode: 'TRAILING_BYTES' },
  ];
  for (const row of rows) {
    it(row.name, async () => {
      const b = azure().slice();
      row.mutate(b);
      const c = await codeOf(async () => {
        const i: TdxVerifyInput = { quote: parseTdQuote(b), trust: await loadTestTrust(), at: AT };
        return verifyTdQuote(row.input ? await row.input(i) : i);
      });
      expect(c).toBe(row.wantCode);
    });
  }

  it('a memoized PCK chain is re-validated outside its window or without the pinned root', async () => {
    const cache = new TdxVerifyCache();
    const quote = parseTdQuote(azure());
    const trust = await loadTestTrust();
    expect(await codeOf(() => verifyTdQuote({ quote, trust, at: AT, cache }))).toBe('NO_ERROR');
    expect(await codeOf(() => verifyTdQuote({ quote, trust, at: new Date('2031-01-01T00:00:00Z'), cache }))).toBe('CERT_EXPIRED');
    const none = await loadTestTrust([]);
    expect(await codeOf(() => verifyTdQuote({ quote, trust: none, at: AT, cache }))).toBe('TRUST_ANCHOR_MISSING');
  });

  it('bit-flip sweep: every bit of header ‖ body and every signature byte is rejected', async () => {
    const trust = await loadTestTrust();
    const good = azure();
    // The PCK chain (not touched by these flips) is validated once and memoized.
    const cache = new TdxVerifyCache();
    expect(await codeOf(async () => verifyTdQuote({ quote: parseTdQuote(good), trust, at: AT, cache }))).toBe('NO_ERROR');
    const accepted: number[] = [];
    for (let i = 0; i < TDX_HEADER_SIZE + TDX_BODY_SIZE + 4 + 64; i++) {
      for (let bit = 0; bit < 8; bit++) {
        if (i >= TDX_HEADER_SIZE + TDX_BODY_SIZE && bit > 0) continue;
        const b = good.slice();
        b[i]! ^= 1 << bit;
        if ((await codeOf(async () => verifyTdQuote({ quote: parseTdQuote(b), trust, at: AT, cache }))) === 'NO_ERROR') accepted.push(i * 8 + bit);
      }
    }
    expect(accepted).toEqual([]);
  });
});

describeVectors('TDX quote parser', () => {
  it('every prefix shorter than the structure is TRUNCATED; zero padding is optional', () => {
    const good = azure();
    const sigLen = new DataView(good.buffer, good.byteOffset).getUint32(TDX_HEADER_SIZE + TDX_BODY_SIZE, true);
    const structEnd = TDX_HEADER_SIZE + TDX_BODY_SIZE + 4 + sigLen;
    for (let n = 0; n < structEnd; n++) expect(codeOfSync(() => parseTdQuote(good.subarray(0, n)))).toBe('TRUNCATED');
    expect(codeOfSync(() => parseTdQuote(good.subarray(0, structEnd)))).toBe('NO_ERROR');
    const long = new Uint8Array(good.length + 1);
    long.set(good);
    long[good.length] = 7;
    expect(codeOfSync(() => parseTdQuote(long))).toBe('TRAILING_BYTES');
    expect(codeOfSync(() => parseTdQuote(new Uint8Array([...good, ...new Uint8Array(20_000)])))).toBe('TRAILING_BYTES');
  });

  it('fuzz: 10,000 inputs (random and mutated real quotes) throw only AttestError', () => {
    const real = azure();
    const mutated = fc
      .array(fc.tuple(fc.nat(real.length - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 })
      .map((edits) => {
        const b = real.slice();
        for (const [i, v] of edits) b[i] = v;
        return b;
      });
    const cut = fc.nat(real.length).map((n) => real.slice(0, n));
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 2000 }), mutated, cut), (b) => {
        try {
          parseTdQuote(b);
        } catch (e) {
          if (!(e instanceof AttestError)) throw e;
        }
      }),
      { numRuns: 10_000 },
    );
  });
});

describeVectors('TDX validation', () => {
  const MRTD = '024a32b070383331181619fa387cb4d55d1e38879f989933055ccad5bc2db795d1737b66205949d15469dc8c1ba7ab7b';
  const rows: { name: string; opts: Partial<TdxValidateOptions>; debug?: boolean; wantCode: string }[] = [
    { name: 'expected MRTD', opts: { mrTd: { expect: [MRTD] } }, wantCode: 'NO_ERROR' },
    { name: 'other MRTD', opts: { mrTd: { expect: ['00'.repeat(48)] } }, wantCode: 'TDX_MRTD_MISMATCH' },
    { name: 'RTMRs zero as expected', opts: { rtmrs: { expect: ['00'.repeat(48), 'any', 'any', '00'.repeat(48)] } }, wantCode: 'NO_ERROR' },
    { name: 'RTMR1 other', opts: { rtmrs: { expect: ['any', '11'.repeat(48), 'any', 'any'] } }, wantCode: 'TDX_RTMR_MISMATCH' },
    { name: 'other MRSEAM', opts: { mrSeam: { expect: ['00'.repeat(48)] } }, wantCode: 'TDX_MRSEAM_MISMATCH' },
    { name: 'other XFAM', opts: { xfam: { expect: '0000000000000000' } }, wantCode: 'TDX_XFAM_MISMATCH' },
    { name: 'other TD attributes', opts: { tdAttributes: { expect: '0000001000000000' } }, wantCode: 'TDX_ATTRIBUTES_MISMATCH' },
    { name: 'TEE TCB SVN met', opts: { minimumTeeTcbSvn: { expect: '02010600000000000000000000000000' } }, wantCode: 'NO_ERROR' },
    { name: 'TEE TCB SVN too low', opts: { minimumTeeTcbSvn: { expect: '02010700000000000000000000000000' } }, wantCode: 'TDX_TCB_SVN_TOO_LOW' },
    { name: 'other report data', opts: { reportData: { expect: new Uint8Array(64) } }, wantCode: 'TDX_REPORT_DATA_MISMATCH' },
    { name: 'TCB status on, no collateral', opts: { tcbStatus: {} }, wantCode: 'TDX_COLLATERAL_MISSING' },
    { name: 'TCB status on, collateral (not implemented: fail closed)', opts: { tcbStatus: { collateral: { tcbInfo: '{}' } } }, wantCode: 'TDX_TCB_EVALUATION_UNSUPPORTED' },
    { name: 'debug TD under the strict default', opts: {}, debug: true, wantCode: 'TDX_DEBUG' },
    { name: 'debug TD allowed', opts: { debug: 'allow' }, debug: true, wantCode: 'NO_ERROR' },
  ];
  for (const row of rows) {
    it(row.name, async () => {
      const v = await verifyTdQuote({ quote: parseTdQuote(azure()), trust: await loadTestTrust(), at: AT });
      const tdAttributes = v.quote.body.tdAttributes.slice();
      if (row.debug) tdAttributes[0] = 1;
      const subject = row.debug ? { ...v, quote: { ...v.quote, body: { ...v.quote.body, tdAttributes } } } : v;
      expect(codeOfSync(() => validateTdQuote(subject, strictTdxOptions(row.opts)))).toBe(row.wantCode);
    });
  }
});

/**
 * verifyQuote, every check shown failing with its code. A software AK (WebCrypto) signs
 * structures a TPM would never sign (bad magic, certify type, wrong pcrDigest), so the checks
 * that run after the signature are reached; the AK is then given as a JWK (cloud form) or as a
 * TPMT_PUBLIC with AK attributes. Also: a bit-flip sweep over every signed byte, each AK input
 * form (TPMT_PUBLIC, TPM2B_PUBLIC, JWK, SPKI, SEC1 point), raw and DER signatures, and a
 * fast-check run of verifyQuote over mutated inputs (typed errors only).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { randomBytes } from 'node:crypto';
import { verifyQuote, type VerifyQuoteInput } from '../../providers/tpm/quote.js';
import { keyFromJwk, spkiDer } from '../../providers/tpm/keys.js';
import { AttestError } from '../../providers/common/errors.js';
import { concat, u16be } from '../../providers/common/bytes.js';
import { fromBase64Url, toHex } from '../../providers/common/encoding.js';
import { TPM_ST, TPMA_OBJECT } from '../../providers/tpm/structures.js';
import { AK_ATTRS, attest, pcrDigest, rsaPublic, softwareAk, tpm2bPublic, type SoftwareAk } from './build.js';

const rnd = (n: number): Uint8Array => new Uint8Array(randomBytes(n));

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    if (!(e instanceof AttestError)) throw e;
    return e.code;
  }
  return 'ACCEPTED';
}

interface Case {
  ak: SoftwareAk;
  nonce: Uint8Array;
  pcrs: { sha256: Record<number, string>; sha1: Record<number, string> };
  values: Uint8Array[];
}

async function makeCase(ak: SoftwareAk): Promise<Case> {
  const s256 = [rnd(32), rnd(32), rnd(32)];
  const s1 = [rnd(20)];
  return {
    ak,
    nonce: rnd(32),
    pcrs: { sha256: { 0: toHex(s256[0]!), 7: toHex(s256[1]!), 11: toHex(s256[2]!) }, sha1: { 4: toHex(s1[0]!) } },
    values: [...s256, ...s1],
  };
}

/** A signed quote over `c` (selection sha256:0,7,11 then sha1:4), with field overrides. */
async function signed(c: Case, over: Partial<Parameters<typeof attest>[0]> = {}): Promise<{ message: Uint8Array; signature: Uint8Array }> {
  const message = attest({
    extraData: c.nonce,
    selection: [
      { hash: 'sha256', pcrs: [0, 7, 11] },
      { hash: 'sha1', pcrs: [4] },
    ],
    pcrDigest: await pcrDigest(c.ak.hash, c.values),
    ...over,
  });
  return { message, signature: await c.ak.sign(message) };
}

function input(c: Case, q: { message: Uint8Array; signature: Uint8Array }, over: Partial<VerifyQuoteInput> = {}): VerifyQuoteInput {
  return { message: q.message, signature: q.signature, ak: { tpmtPublic: c.ak.tpmtPublic }, binding: c.nonce, pcrs: c.pcrs, pcrBanks: ['sha1', 'sha256', 'sha384'], ...over };
}

describe('verifyQuote: each check with its code', () => {
  let cases: Record<SoftwareAk['kind'], Case>;
  beforeAll(async () => {
    cases = {
      rsa: await makeCase(await softwareAk('rsa')),
      rsapss: await makeCase(await softwareAk('rsapss')),
      p256: await makeCase(await softwareAk('p256')),
      p384: await makeCase(await softwareAk('p384')),
    };
  });

  it('accepts every AK kind in every input form', async () => {
    for (const c of Object.values(cases)) {
      const q = await signed(c);
      const v = await verifyQuote(input(c, q));
      expect(v.pcrs).toEqual(c.pcrs);
      // The same values as bytes, for byte consumers (event-log replay) without a hex round trip.
      for (const [bank, vals] of Object.entries(c.pcrs)) {
        const got = v.pcrBytes[bank as keyof typeof v.pcrBytes]!;
        expect(Object.keys(got)).toEqual(Object.keys(vals));
        for (const [i, hex] of Object.entries(vals)) expect(Buffer.from(got[Number(i)]!).toString('hex')).toBe(hex);
      }
      const key = keyFromJwk(c.ak.jwk);
      const raw = { scheme: c.ak.kind === 'rsa' ? 'rsassa' : c.ak.kind === 'rsapss' ? 'rsapss' : 'ecdsa', hash: c.ak.hash, bytes: await c.ak.signRaw(q.message) } as const;
      const forms: VerifyQuoteInput['ak'][] = [{ tpm2bPublic: tpm2bPublic(c.ak.tpmtPublic) }, { jwk: c.ak.jwk }, { spki: spkiDer(key) }];
      if (key.kty === 'EC') forms.push({ ecPoint: concat(new Uint8Array([4]), key.x, key.y), curve: key.crv });
      for (const ak of forms) {
        const w = await verifyQuote(input(c, q, { ak }));
        expect(w.akSha256, c.ak.kind).toBe(v.akSha256);
        expect(await code(verifyQuote(input(c, { message: q.message, signature: raw.bytes } as never, { ak, signature: raw }))), c.ak.kind).toBe('ACCEPTED');
      }
      expect(v.akName).toBeDefined();
    }
  });

  it('an ECDSA signature in ASN.1 DER (vaportpm form) verifies; broken DER does not', async () => {
    const c = cases.p256;
    const q = await signed(c);
    const p1363 = await c.ak.signRaw(q.message);
    const int = (v: Uint8Array): Uint8Array => {
      let i = 0;
      while (i < v.length - 1 && v[i] === 0) i++;
      const t = v.subarray(i);
      const b = ((t[0] as number) & 0x80) !== 0 ? concat(new Uint8Array([0]), t) : t;
      return concat(new Uint8Array([2, b.length]), b);
    };
    const body = concat(int(p1363.subarray(0, 32)), int(p1363.subarray(32)));
    const der = concat(new Uint8Array([0x30, body.length]), body);
    const sig = { scheme: 'ecdsa', hash: 'sha256', bytes: der, encoding: 'der' } as const;
    expect(await code(verifyQuote(input(c, q, { ak: { jwk: c.ak.jwk }, signature: sig })))).toBe('ACCEPTED');
    expect(await code(verifyQuote(input(c, q, { ak: { jwk: c.ak.jwk }, signature: { ...sig, bytes: der.subarray(1) } })))).toBe('TPM_STRUCTURE_INVALID');
    expect(await code(verifyQuote(input(c, q, { ak: { jwk: c.ak.jwk }, signature: { ...sig, encoding: 'p1363' } })))).toBe('TPM_STRUCTURE_INVALID');
  });

  type Row = { name: string; kind?: SoftwareAk['kind']; make: (c: Case) => Promise<VerifyQuoteInput>; wantCode: string };
  const rows: Row[] = [];
  const jwkInput = async (c: Case, over: Parameters<typeof signed>[1]): Promise<VerifyQuoteInput> => input(c, await signed(c, over), { ak: { jwk: c.ak.jwk } });
  rows.push(
    { name: 'magic', make: (c) => jwkInput(c, { magic: 0xff544348 }), wantCode: 'QUOTE_MAGIC_INVALID' },
    { name: 'type certify', make: (c) => jwkInput(c, { type: TPM_ST.ATTEST_CERTIFY, attested: concat(u16be(2), rnd(2), u16be(2), rnd(2)) }), wantCode: 'QUOTE_TYPE_INVALID' },
    { name: 'type session audit', make: (c) => jwkInput(c, { type: TPM_ST.ATTEST_SESSION_AUDIT }), wantCode: 'QUOTE_TYPE_INVALID' },
    { name: 'extraData differs', make: (c) => jwkInput(c, { extraData: rnd(32) }), wantCode: 'NONCE_MISMATCH' },
    { name: 'extraData is a prefix of the binding', make: async (c) => jwkInput(c, { extraData: c.nonce.subarray(0, 31) }), wantCode: 'NONCE_MISMATCH' },
    { name: 'empty extraData', make: (c) => jwkInput(c, { extraData: new Uint8Array(0) }), wantCode: 'NONCE_MISMATCH' },
    { name: 'pcrDigest differs', make: (c) => jwkInput(c, { pcrDigest: rnd(32) }), wantCode: 'PCR_DIGEST_MISMATCH' },
    { name: 'pcrDigest with the bank hash (SHA-1) instead of the scheme hash', make: async (c) => jwkInput(c, { pcrDigest: await pcrDigest('sha1', c.values) }), wantCode: 'PCR_DIGEST_MISMATCH' },
    { name: 'bank selected twice', make: (c) => jwkInput(c, { selection: [{ hash: 'sha256', pcrs: [0, 7, 11] }, { hash: 'sha256', pcrs: [0] }] }), wantCode: 'PCR_SELECTION_MISMATCH' },
    { name: 'SHA-512 bank', make: (c) => jwkInput(c, { selection: [{ hash: 'sha512', pcrs: [0] }] }), wantCode: 'ALGORITHM_NOT_ALLOWED' },
    { name: 'trailing byte after a signed TPMS_ATTEST', make: async (c) => {
      const m = concat((await signed(c)).message, new Uint8Array([0]));
      return input(c, { message: m, signature: await c.ak.sign(m) }, { ak: { jwk: c.ak.jwk } });
    }, wantCode: 'TRAILING_BYTES' },
    { name: 'signed garbage shorter than a header', make: async (c) => {
      const m = new Uint8Array([0xff, 0x54]);
      return input(c, { message: m, signature: await c.ak.sign(m) }, { ak: { jwk: c.ak.jwk } });
    }, wantCode: 'TRUNCATED' },
    { name: 'SHA-1 bank not allowed by default', make: async (c) => ({ ...input(c, await signed(c)), pcrBanks: undefined }), wantCode: 'ALGORITHM_NOT_ALLOWED' },
    { name: 'signature hash not allowed', make: async (c) => ({ ...input(c, await signed(c)), signatureHashes: ['sha512'] }), wantCode: 'ALGORITHM_NOT_ALLOWED' },
    { name: 'AK without restricted', kind: 'p256', make: async (c) => {
      const ak = await softwareAk('p256', { attrs: AK_ATTRS & ~TPMA_OBJECT.restricted });
      const cc = { ...c, ak };
      return input(cc, await signed(cc));
    }, wantCode: 'AK_ATTRIBUTES_INVALID' },
    { name: 'AK that also decrypts', kind: 'p256', make: async (c) => {
      const ak = await softwareAk('p256', { attrs: AK_ATTRS | TPMA_OBJECT.decrypt });
      const cc = { ...c, ak };
      return input(cc, await signed(cc));
    }, wantCode: 'AK_ATTRIBUTES_INVALID' },
    { name: 'AK without fixedTPM', kind: 'rsa', make: async (c) => {
      const ak = await softwareAk('rsa', { attrs: AK_ATTRS & ~TPMA_OBJECT.fixedTPM });
      const cc = { ...c, ak };
      return input(cc, await signed(cc));
    }, wantCode: 'AK_ATTRIBUTES_INVALID' },
    { name: 'AK with a NULL scheme', kind: 'p256', make: async (c) => {
      const ak = await softwareAk('p256', { scheme: { scheme: 'null' } });
      const cc = { ...c, ak };
      return input(cc, await signed(cc));
    }, wantCode: 'AK_ATTRIBUTES_INVALID' },
    { name: 'AK scheme ECDSA-SHA384, signature SHA-256', kind: 'p256', make: async (c) => {
      const ak = await softwareAk('p256', { scheme: { scheme: 'ecdsa', hash: 'sha384' } });
      const cc = { ...c, ak };
      return input(cc, await signed(cc));
    }, wantCode: 'SIGNATURE_SCHEME_MISMATCH' },
    { name: 'RSA signature one byte short', kind: 'rsa', make: async (c) => {
      const q = await signed(c);
      return input(c, q, { ak: { jwk: c.ak.jwk }, signature: { scheme: 'rsassa', hash: 'sha256', bytes: (await c.ak.signRaw(q.message)).subarray(1) } });
    }, wantCode: 'QUOTE_SIGNATURE_INVALID' },
    { name: 'RSASSA signature presented as PSS (JWK AK)', kind: 'rsa', make: async (c) => {
      const q = await signed(c);
      return input(c, q, { ak: { jwk: c.ak.jwk }, signature: { scheme: 'rsapss', hash: 'sha256', bytes: await c.ak.signRaw(q.message) } });
    }, wantCode: 'QUOTE_SIGNATURE_INVALID' },
    { name: 'ECDSA signature for an RSA AK', kind: 'rsa', make: async (c) => input(c, await signed(c), { signature: { scheme: 'ecdsa', hash: 'sha256', bytes: rnd(64) } }), wantCode: 'SIGNATURE_SCHEME_MISMATCH' },
    { name: 'JWK with private key', kind: 'p256', make: async (c) => input(c, await signed(c), { ak: { jwk: { ...c.ak.jwk, d: 'AAAA' } } }), wantCode: 'AK_INVALID' },
    { name: 'JWK oct', make: async (c) => input(c, await signed(c), { ak: { jwk: { kty: 'oct', k: 'AAAA' } } }), wantCode: 'AK_INVALID' },
    { name: 'JWK P-521', kind: 'p256', make: async (c) => input(c, await signed(c), { ak: { jwk: { ...c.ak.jwk, crv: 'P-521' } } }), wantCode: 'AK_INVALID' },
    { name: 'RSA-1024 JWK', kind: 'rsa', make: async (c) => input(c, await signed(c), { ak: { jwk: { ...c.ak.jwk, n: (c.ak.jwk.n as string).slice(0, 171) } } }), wantCode: 'AK_INVALID' },
    { name: 'EC point not on the curve', kind: 'p256', make: async (c) => {
      const k = keyFromJwk(c.ak.jwk);
      if (k.kty !== 'EC') throw new Error('x');
      const y = k.y.slice();
      y[31] = (y[31] as number) ^ 1;
      return input(c, await signed(c), { ak: { ecPoint: concat(new Uint8Array([4]), k.x, y), curve: 'P-256' } });
    }, wantCode: 'AK_INVALID' },
    { name: 'compressed EC point', kind: 'p256', make: async (c) => input(c, await signed(c), { ak: { ecPoint: concat(new Uint8Array([2]), rnd(32)), curve: 'P-256' } }), wantCode: 'AK_INVALID' },
    { name: 'SPKI that is not canonical (trailing byte)', make: async (c) => input(c, await signed(c), { ak: { spki: concat(spkiDer(keyFromJwk(c.ak.jwk)), new Uint8Array([0])) } }), wantCode: 'AK_INVALID' },
    { name: 'AK is an RSA TPMT_PUBLIC of another key', kind: 'rsa', make: async (c) => {
      const n = fromBase64Url((await softwareAk('rsa')).jwk.n as string);
      return input(c, await signed(c), { ak: { tpmtPublic: rsaPublic(n) } });
    }, wantCode: 'QUOTE_SIGNATURE_INVALID' },
  );

  it.each(rows)('$name → $wantCode', async ({ kind, make, wantCode }) => {
    const kinds = kind ? [kind] : (['rsa', 'p256', 'p384', 'rsapss'] as const);
    for (const k of kinds) expect(await code(verifyQuote(await make(cases[k]))), k).toBe(wantCode);
  });

  it('bit-flip sweep: every bit of the signed TPMS_ATTEST → QUOTE_SIGNATURE_INVALID', async () => {
    for (const k of ['p256', 'rsa'] as const) {
      const c = cases[k];
      const q = await signed(c);
      for (let bit = 0; bit < q.message.length * 8; bit++) {
        const m = q.message.slice();
        m[bit >> 3] = (m[bit >> 3] as number) ^ (1 << (bit & 7));
        expect(await code(verifyQuote(input(c, { message: m, signature: q.signature }))), `${k} bit ${bit}`).toBe('QUOTE_SIGNATURE_INVALID');
      }
    }
  });

  it('fast-check: mutated quotes, signatures, AKs and PCRs never produce an untyped error or a false accept', async () => {
    const c = cases.p256;
    const q = await signed(c);
    const good = input(c, q);
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom('message', 'signature', 'ak'),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 3 }),
        fc.nat(),
        async (field, edits, cut) => {
          const src = field === 'message' ? q.message : field === 'signature' ? q.signature : c.ak.tpmtPublic;
          const b = src.slice();
          for (const [at, v] of edits) b[at % b.length] = v;
          const m = cut % 5 === 0 ? b.subarray(0, cut % (b.length + 1)) : b;
          const changed = m.length !== src.length || m.some((x, i) => x !== src[i]);
          const i: VerifyQuoteInput = field === 'message' ? { ...good, message: m } : field === 'signature' ? { ...good, signature: m } : { ...good, ak: { tpmtPublic: m } };
          const got = await code(verifyQuote(i));
          // Changing the AK's unsigned fields (authPolicy contents) leaves the key, so only
          // message and signature edits must always be rejected.
          if (changed && field !== 'ak') return got !== 'ACCEPTED';
          return true;
        },
      ),
      { numRuns: 3000 },
    );
  });
});

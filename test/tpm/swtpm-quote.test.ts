/**
 * verifyQuote against a real TPM (swtpm) with tpm2-tools as producer and tpm2_checkquote as
 * oracle:
 * - every pool quote (RSA-2048 RSASSA and RSA-PSS, RSA-3072, ECDSA P-256/P-384, SHA-1 AK;
 *   sha1/sha256/sha384 banks;
 *   several selections) that tpm2_checkquote accepts, we accept (PSS: checkquote 5.4 cannot
 *   verify it, so those are ours only);
 * - a differential test: ≥ 500 seeded random mutations (message bytes, signature bytes, PCR
 *   values, nonce, AK swapped for another, AK key bytes) where our verdict equals
 *   tpm2_checkquote's on every one, and each of our rejections carries the code the mutation
 *   class calls for (replay a failure with TPM_DIFF_SEED=<seed>);
 * - the allow-lists: SHA-1 signature hash / SHA-1 bank refused by default;
 * - PCR selection strictness (missing, extra, wrong bank), AK attribute checks on real keys.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeSwtpm, startSwtpm, type Swtpm } from '../helpers/swtpm.js';
import { buildPool, createAks, type PoolAk, type PoolQuote } from './pool.js';
import { verifyQuote, type VerifyQuoteInput } from '../../providers/tpm/quote.js';
import { parseAttest, parseTpm2bPublic } from '../../providers/tpm/structures.js';
import { concat } from '../../providers/common/bytes.js';
import { fromHex, toHex } from '../../providers/common/encoding.js';
import type { AttestError } from '../../providers/common/errors.js';
import type { PcrBank } from '../../providers/common/types.js';

const ALL_HASHES = ['sha1', 'sha256', 'sha384', 'sha512'] as const;
const ALL_BANKS = ['sha1', 'sha256', 'sha384'] as const;

function inputOf(q: PoolQuote, over: Partial<VerifyQuoteInput> = {}): VerifyQuoteInput {
  return {
    message: q.message,
    signature: q.signature,
    ak: { tpm2bPublic: q.ak.tpm2bPublic },
    binding: q.nonce,
    pcrs: q.pcrs,
    signatureHashes: ALL_HASHES,
    pcrBanks: ALL_BANKS,
    ...over,
  };
}

async function ours(i: VerifyQuoteInput): Promise<string> {
  try {
    await verifyQuote(i);
    return 'ACCEPTED';
  } catch (e) {
    if (!(e as AttestError).code) throw e;
    return (e as AttestError).code;
  }
}

/** Seeded PRNG (mulberry32) so a failing mutation can be replayed with TPM_DIFF_SEED. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describeSwtpm('TPM quotes from swtpm', () => {
  let tpm: Swtpm;
  let aks: PoolAk[];
  let pool: PoolQuote[];

  beforeAll(async () => {
    tpm = await startSwtpm();
    ({ aks, quotes: pool } = await buildPool(tpm));
  }, 60_000);
  afterAll(async () => {
    await tpm?.stop();
  });

  /** Runs tpm2_checkquote on (possibly mutated) inputs; true when it accepts. */
  let n = 0;
  async function checkquote(q: PoolQuote, m: { message?: Uint8Array; signature?: Uint8Array; values?: Uint8Array; nonce?: Uint8Array; akPath?: string }): Promise<boolean> {
    const k = n++;
    const msg = tpm.write(`d${k}.msg`, m.message ?? q.message);
    const sig = tpm.write(`d${k}.sig`, m.signature ?? q.signature);
    const vals = tpm.write(`d${k}.pcr`, m.values ?? q.pcrsOut);
    const r = await tpm.tpm2Status('tpm2_checkquote', [
      '-u', m.akPath ?? q.ak.pubPath, '-m', msg, '-s', sig, '-f', vals,
      '-g', q.ak.spec.hash, '-q', toHex(m.nonce ?? q.nonce),
    ]);
    if (process.env.TPM_DEBUG && r.code !== 0) console.log(k, r.stderr);
    return r.code === 0;
  }

  /**
   * tpm2_checkquote 5.4 mis-reads raw PCR value files with 8 or more values, so the oracle gets
   * tpm2-tools' own serialized file (from tpm2_quote -o) with the values patched in place. Layout
   * (x86-64 C structs, little-endian): TPML_PCR_SELECTION (4 + 16 × 8 = 132 bytes), u32 number of
   * TPML_DIGEST lists, then lists of (u32 count + 8 × (u16 size + 64-byte buffer)) = 532 bytes,
   * holding the values 8 per list in selection order.
   */
  function serializedPcrs(q: PoolQuote, pcrs: PoolQuote['pcrs']): Uint8Array {
    const a = parseAttest(q.message);
    if (a.type !== 'quote') throw new Error('not a quote');
    const out = q.pcrsOut.slice();
    let k = 0;
    for (const s of a.quote.pcrSelect) {
      for (const i of s.pcrs) {
        const v = fromHex((pcrs[s.hash as PcrBank] as Record<number, string>)[i] as string);
        const at = 132 + 4 + Math.floor(k / 8) * 532 + 4 + (k % 8) * 66;
        if (new DataView(out.buffer).getUint16(at, true) !== v.length) throw new Error('unexpected tpm2-tools PCR file layout');
        out.set(v, at + 2);
        k++;
      }
    }
    return out;
  }

  it('every pool quote that tpm2_checkquote accepts, we accept (and RSA-PSS, which it cannot check)', async () => {
    expect(pool.length).toBe(36);
    for (const q of pool) {
      const v = await verifyQuote(inputOf(q));
      expect(v.signature).toEqual({ scheme: q.ak.spec.scheme, hash: q.ak.spec.hash });
      expect(v.pcrs).toEqual(q.pcrs);
      expect(v.akName).toMatch(/^000b[0-9a-f]{64}$/);
      expect(serializedPcrs(q, q.pcrs)).toEqual(q.pcrsOut); // the oracle file layout is understood
      if (q.ak.spec.scheme !== 'rsapss') expect(await checkquote(q, {}), `${q.ak.spec.id} ${q.selection}`).toBe(true);
    }
  });

  it('SHA-1 is refused unless the caller lists it (signature hash and PCR bank)', async () => {
    const sha1Ak = pool.find((q) => q.ak.spec.hash === 'sha1' && q.selection.startsWith('sha256:0,1'))!;
    expect(await ours(inputOf(sha1Ak, { signatureHashes: undefined, pcrBanks: undefined }))).toBe('ALGORITHM_NOT_ALLOWED');
    expect(await ours(inputOf(sha1Ak, { signatureHashes: ['sha1', 'sha256'], pcrBanks: undefined }))).toBe('ACCEPTED');
    const sha1Bank = pool.find((q) => q.ak.spec.hash === 'sha256' && q.ak.spec.scheme === 'rsassa' && q.selection === 'sha1:0,7')!;
    expect(await ours(inputOf(sha1Bank, { signatureHashes: undefined, pcrBanks: undefined }))).toBe('ALGORITHM_NOT_ALLOWED');
    expect(await ours(inputOf(sha1Bank, { signatureHashes: undefined, pcrBanks: ['sha1', 'sha256'] }))).toBe('ACCEPTED');
    const sha384 = pool.find((q) => q.ak.spec.id === 'ecc256-ecdsa-sha256' && q.selection.startsWith('sha384'))!;
    expect(await ours(inputOf(sha384, { pcrBanks: ['sha256'] }))).toBe('ALGORITHM_NOT_ALLOWED');
  });

  it('PCR values must cover exactly the selection', async () => {
    const q = pool.find((x) => x.ak.spec.id === 'ecc256-ecdsa-sha256' && x.selection === 'sha1:0,1+sha256:7,11+sha384:4')!;
    const cases: { name: string; pcrs: VerifyQuoteInput['pcrs']; want: string }[] = [
      { name: 'missing PCR', pcrs: { ...q.pcrs, sha256: { 7: q.pcrs.sha256![7]! } }, want: 'PCR_SELECTION_MISMATCH' },
      { name: 'extra PCR in a selected bank', pcrs: { ...q.pcrs, sha256: { ...q.pcrs.sha256, 8: '00'.repeat(32) } }, want: 'PCR_SELECTION_MISMATCH' },
      { name: 'extra unselected bank', pcrs: { sha1: q.pcrs.sha1, sha256: q.pcrs.sha256, sha384: { ...q.pcrs.sha384, 5: '00'.repeat(48) } }, want: 'PCR_SELECTION_MISMATCH' },
      { name: 'missing bank', pcrs: { sha1: q.pcrs.sha1, sha256: q.pcrs.sha256 }, want: 'PCR_SELECTION_MISMATCH' },
      { name: 'non-canonical index', pcrs: { ...q.pcrs, sha256: { ...q.pcrs.sha256, '07': q.pcrs.sha256![7]! } }, want: 'PCR_SELECTION_MISMATCH' },
      { name: 'short value', pcrs: { ...q.pcrs, sha256: { ...q.pcrs.sha256, 7: '00' } }, want: 'PCR_VALUE_INVALID' },
      { name: 'not hex', pcrs: { ...q.pcrs, sha256: { ...q.pcrs.sha256, 7: 'zz'.repeat(32) } }, want: 'PCR_VALUE_INVALID' },
      { name: 'swapped values', pcrs: { ...q.pcrs, sha256: { 7: q.pcrs.sha256![11]!, 11: q.pcrs.sha256![7]! } }, want: 'PCR_DIGEST_MISMATCH' },
    ];
    for (const c of cases) expect(await ours(inputOf(q, { pcrs: c.pcrs })), c.name).toBe(c.want);
  });

  it('AK given as TPMT_PUBLIC must be a restricted, fixed, TPM-generated signing key with the signature scheme', async () => {
    const q = pool.find((x) => x.ak.spec.id === 'rsa2048-rsassa-sha256')!;
    // A real unrestricted signing key, made by the TPM: its quote-shaped signatures prove nothing.
    const [loose] = await createAks(tpm, []).then(async () => {
      await tpm.tpm2('tpm2_create', ['-C', 'prim.ctx', '-G', 'rsa2048:rsassa-sha256:null', '-a', 'fixedtpm|fixedparent|sensitivedataorigin|userwithauth|sign', '-u', 'loose.pub', '-r', 'loose.priv', '-Q']);
      await tpm.flush();
      return [tpm.read('loose.pub')];
    });
    expect(await ours(inputOf(q, { ak: { tpm2bPublic: loose! } }))).toBe('AK_ATTRIBUTES_INVALID');
    // Same key bits, attributes edited: each required bit matters.
    const pub = parseTpm2bPublic(q.ak.tpm2bPublic);
    for (const bit of [1, 4, 5, 16, 18]) {
      const t = q.ak.tpm2bPublic.slice();
      const at = 2 + 4; // TPM2B size, type, nameAlg → objectAttributes (big-endian u32)
      const v = new DataView(t.buffer).getUint32(at) & ~(1 << bit);
      new DataView(t.buffer).setUint32(at, v);
      expect(await ours(inputOf(q, { ak: { tpm2bPublic: t } })), `bit ${bit}`).toBe('AK_ATTRIBUTES_INVALID');
    }
    expect(pub.objectAttributes.restricted).toBe(true);
    // The same quote with the AK as a bare SPKI / JWK skips the attribute check but still verifies.
    const key = (await verifyQuote(inputOf(q))).akKey;
    const { keyToJwk, spkiDer } = await import('../../providers/tpm/keys.js');
    const sig = await import('../../providers/tpm/structures.js').then((s) => s.parseTpmtSignature(q.signature));
    const raw = { scheme: 'rsassa' as const, hash: 'sha256' as const, bytes: (sig as { sig: Uint8Array }).sig };
    expect(await ours(inputOf(q, { ak: { jwk: keyToJwk(key) }, signature: raw }))).toBe('ACCEPTED');
    expect(await ours(inputOf(q, { ak: { spki: spkiDer(key) } }))).toBe('ACCEPTED');
    // A signature with a different scheme than the AK's.
    expect(await ours(inputOf(q, { signature: { ...raw, scheme: 'rsapss' } }))).toBe('SIGNATURE_SCHEME_MISMATCH');
    expect(await ours(inputOf(q, { signature: { ...raw, hash: 'sha384' } }))).toBe('SIGNATURE_SCHEME_MISMATCH');
  });

  it('differential: ≥ 500 random mutations, our verdict equals tpm2_checkquote on every one, with the right codes', async () => {
    const seed = Number(process.env.TPM_DIFF_SEED ?? 20261127);
    const rnd = prng(seed);
    const pick = <T>(a: readonly T[]): T => a[Math.floor(rnd() * a.length)] as T;
    const candidates = pool.filter((q) => q.ak.spec.scheme !== 'rsapss');
    const others = aks.filter((a) => a.spec.scheme !== 'rsapss');
    const flip = (b: Uint8Array, at: number): Uint8Array => {
      const c = b.slice();
      c[at] = (c[at] as number) ^ (1 + Math.floor(rnd() * 255));
      return c;
    };
    type Row = { q: PoolQuote; kind: string; input: VerifyQuoteInput; oracle: Parameters<typeof checkquote>[1]; want: readonly string[] };
    const SIG_STRUCT = ['TPM_ALG_UNSUPPORTED', 'TRUNCATED', 'TRAILING_BYTES', 'LIMIT_EXCEEDED', 'SIGNATURE_SCHEME_MISMATCH', 'ALGORITHM_NOT_ALLOWED', 'QUOTE_SIGNATURE_INVALID', 'TPM_STRUCTURE_INVALID'];
    const rows: Row[] = [];
    const N = 600;
    for (let i = 0; i < N; i++) {
      const q = pick(candidates);
      const kind = pick(['message', 'message', 'signature', 'signature', 'pcr', 'nonce', 'ak', 'akkey', 'none', 'truncate', 'append'] as const);
      if (kind === 'message') {
        const m = flip(q.message, Math.floor(rnd() * q.message.length));
        rows.push({ q, kind, input: inputOf(q, { message: m }), oracle: { message: m }, want: ['QUOTE_SIGNATURE_INVALID'] });
      } else if (kind === 'truncate' || kind === 'append') {
        const m = kind === 'truncate' ? q.message.slice(0, Math.floor(rnd() * q.message.length)) : concat(q.message, new Uint8Array([Math.floor(rnd() * 256)]));
        rows.push({ q, kind, input: inputOf(q, { message: m }), oracle: { message: m }, want: ['QUOTE_SIGNATURE_INVALID'] });
      } else if (kind === 'signature') {
        const at = Math.floor(rnd() * q.signature.length);
        const s = flip(q.signature, at);
        // Header bytes (sigAlg, hash, TPM2B sizes) are structure; the rest are signature values.
        const ecc = q.ak.spec.scheme === 'ecdsa';
        const rLen = ecc ? new DataView(q.signature.buffer, q.signature.byteOffset).getUint16(4) : 0;
        const structural = at < 6 || (ecc && (at === 6 + rLen || at === 7 + rLen));
        rows.push({ q, kind, input: inputOf(q, { signature: s }), oracle: { signature: s }, want: structural ? SIG_STRUCT : ['QUOTE_SIGNATURE_INVALID'] });
      } else if (kind === 'pcr') {
        const banks = Object.keys(q.pcrs) as PcrBank[];
        const bank = pick(banks);
        const idxs = Object.keys(q.pcrs[bank]!).map(Number);
        const idx = pick(idxs);
        const v = fromHex(q.pcrs[bank]![idx]!);
        const mutated = { ...q.pcrs, [bank]: { ...q.pcrs[bank], [idx]: toHex(flip(v, Math.floor(rnd() * v.length))) } };
        rows.push({ q, kind, input: inputOf(q, { pcrs: mutated }), oracle: { values: serializedPcrs(q, mutated) }, want: ['PCR_DIGEST_MISMATCH'] });
      } else if (kind === 'nonce') {
        const nonce = rnd() < 0.5 ? flip(q.nonce, Math.floor(rnd() * q.nonce.length)) : concat(q.nonce, new Uint8Array([1]));
        rows.push({ q, kind, input: inputOf(q, { binding: nonce }), oracle: { nonce }, want: ['NONCE_MISMATCH'] });
      } else if (kind === 'ak') {
        const other = pick(others.filter((a) => a !== q.ak));
        const sameScheme = other.spec.scheme === q.ak.spec.scheme && other.spec.hash === q.ak.spec.hash;
        rows.push({
          q,
          kind,
          input: inputOf(q, { ak: { tpm2bPublic: other.tpm2bPublic } }),
          oracle: { akPath: other.pubPath },
          want: sameScheme ? ['QUOTE_SIGNATURE_INVALID'] : ['SIGNATURE_SCHEME_MISMATCH'],
        });
      } else if (kind === 'akkey') {
        // Flip a byte of the AK's key material (RSA modulus, or an ECC coordinate), never of a
        // size field; tpm2_checkquote reads the same mutated TPM2B_PUBLIC file.
        const b = q.ak.tpm2bPublic;
        const ecc = q.ak.spec.scheme === 'ecdsa';
        const size = ecc ? (q.ak.spec.hash === 'sha384' ? 48 : 32) : parseTpm2bPublic(b).rsaModulus!.length;
        const at = ecc && rnd() < 0.5 ? b.length - 2 * size - 2 + Math.floor(rnd() * size) : b.length - size + Math.floor(rnd() * size);
        const akBytes = flip(b, at);
        const akPath = tpm.write(`akm${i}.pub`, akBytes);
        rows.push({
          q,
          kind,
          input: inputOf(q, { ak: { tpm2bPublic: akBytes } }),
          oracle: { akPath },
          // Off-curve point → AK_INVALID; RSA modulus losing its top bit → TPM_STRUCTURE_INVALID.
          want: ['QUOTE_SIGNATURE_INVALID', 'AK_INVALID', 'TPM_STRUCTURE_INVALID'],
        });
      } else {
        rows.push({ q, kind, input: inputOf(q), oracle: {}, want: ['ACCEPTED'] });
      }
    }
    // Run the oracle a few at a time (2-core machine; each run is a short-lived process).
    const results: { kind: string; ours: string; oracle: boolean; want: readonly string[] }[] = [];
    for (let i = 0; i < rows.length; i += 3) {
      const batch = rows.slice(i, i + 3);
      const got = await Promise.all(
        batch.map(async (r) => ({ kind: r.kind, ours: await ours(r.input), oracle: await checkquote(r.q, r.oracle), want: r.want })),
      );
      results.push(...got);
    }
    expect(results.length).toBeGreaterThanOrEqual(500);
    const disagreements = results.filter((r) => (r.ours === 'ACCEPTED') !== r.oracle);
    expect(disagreements, `seed ${seed}`).toEqual([]);
    const wrongCode = results.filter((r) => !r.want.includes(r.ours));
    expect(wrongCode, `seed ${seed}`).toEqual([]);
    const kinds = new Set(results.map((r) => r.kind));
    expect(kinds.size).toBe(9);
  }, 60_000);
});

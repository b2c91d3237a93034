/**
 * Quote verification throughput: `verifyQuote` (AK as TPMT_PUBLIC: parse, attribute checks,
 * key import, signature, TPMS_ATTEST parse, nonce, pcrDigest over 24 SHA-256 PCRs, AK digest and
 * Name) against the raw cost of the one WebCrypto `verify` it contains, same key, message and
 * signature, one at a time on one core. Run with `node bench/tpm-quote.bench.mjs`.
 */
import { verifyQuote, type VerifyQuoteInput } from '../providers/tpm/quote.js';
import { parseTpmtSignature } from '../providers/tpm/structures.js';
import { attest, pcrDigest, softwareAk } from '../test/tpm/build.js';

function stats(samples: number[]): { opsPerSec: number; p50: number; p99: number } {
  const s = [...samples].sort((a, b) => a - b);
  const total = samples.reduce((a, b) => a + b, 0);
  return { opsPerSec: (samples.length / total) * 1000, p50: s[Math.floor(s.length * 0.5)] as number, p99: s[Math.floor(s.length * 0.99)] as number };
}

/** Times `a` and `b` interleaved, so both see the same machine load (the host is shared). */
async function timePair(n: number, a: () => Promise<unknown>, b: () => Promise<unknown>): Promise<[number[], number[]]> {
  for (let i = 0; i < Math.min(200, n); i++) {
    await a();
    await b();
  }
  const ta: number[] = [];
  const tb: number[] = [];
  for (let i = 0; i < n; i++) {
    let t = performance.now();
    await a();
    ta.push(performance.now() - t);
    t = performance.now();
    await b();
    tb.push(performance.now() - t);
  }
  return [ta, tb];
}

export async function run(n: number): Promise<void> {
  const rows: Record<string, unknown>[] = [];
  for (const kind of ['rsa', 'p256'] as const) {
    const ak = await softwareAk(kind);
    const nonce = crypto.getRandomValues(new Uint8Array(32));
    const values = Array.from({ length: 24 }, () => crypto.getRandomValues(new Uint8Array(32)));
    const message = attest({ extraData: nonce, selection: [{ hash: 'sha256', pcrs: values.map((_, i) => i) }], pcrDigest: await pcrDigest(ak.hash, values) });
    const signature = await ak.sign(message);
    const input: VerifyQuoteInput = {
      message,
      signature,
      ak: { tpmtPublic: ak.tpmtPublic },
      binding: nonce,
      pcrs: { sha256: Object.fromEntries(values.map((v, i) => [i, v])) },
    };
    await verifyQuote(input); // sanity: it verifies
    // Raw WebCrypto: the same verification with a key imported once.
    const alg = kind === 'rsa' ? { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' } : { name: 'ECDSA', namedCurve: 'P-256' };
    const key = await crypto.subtle.importKey('jwk', ak.jwk, alg, false, ['verify']);
    const sig = parseTpmtSignature(signature);
    const rawSig = (sig.sigAlg === 'ecdsa' ? new Uint8Array([...sig.r, ...sig.s]) : sig.sig) as Uint8Array<ArrayBuffer>;
    const verifyAlg = kind === 'rsa' ? { name: 'RSASSA-PKCS1-v1_5' } : { name: 'ECDSA', hash: 'SHA-256' };
    if (!(await crypto.subtle.verify(verifyAlg, key, rawSig, message as Uint8Array<ArrayBuffer>))) throw new Error('raw verify failed');
    const [ta, tb] = await timePair(
      n,
      () => verifyQuote(input),
      () => crypto.subtle.verify(verifyAlg, key, rawSig, message as Uint8Array<ArrayBuffer>),
    );
    const ours = stats(ta);
    const raw = stats(tb);
    rows.push({
      ak: kind === 'rsa' ? 'RSA-2048 RSASSA-SHA256' : 'ECC P-256 ECDSA-SHA256',
      'verifyQuote ops/s': Math.round(ours.opsPerSec),
      'p50 ms': ours.p50.toFixed(3),
      'p99 ms': ours.p99.toFixed(3),
      'raw verify ops/s': Math.round(raw.opsPerSec),
      'raw p50 ms': raw.p50.toFixed(3),
      'ratio (mean)': (raw.opsPerSec / ours.opsPerSec).toFixed(2),
      'ratio (p50)': (ours.p50 / raw.p50).toFixed(2),
    });
  }
  console.table(rows);
}

/**
 * NitroTPM verification throughput vs the raw cost of one P-384 ECDSA verification.
 *
 * Run: `node bench/aws.mjs` (bundles this file with esbuild, then runs it on Node).
 * Reads the real vaportpm NitroTPM fixture from test/vectors (or ATTEST_VECTORS).
 *
 * Cases, each run sequentially (latency of one verification; ops/s = 1 / mean):
 * - raw P-384: `crypto.subtle.verify` ECDSA P-384/SHA-384 over the real Sig_structure, key imported once;
 * - nitrotpm, chain cache warm: the whole provider path (base64, strict CBOR/COSE, leaf parse,
 *   COSE verify, leaf-signature check against the cached intermediate path, claims);
 * - nitrotpm, no cache: the same with full path validation every time (4 more P-384 verifications);
 * - nitrotpm + TPM quote, cache warm: adds the P-256 quote verification and PCR cross-check.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { cpus } from 'node:os';
import { createAwsProvider } from '../providers/aws/index.js';
import { parseCoseSign1, sigStructure } from '../providers/aws/cose.js';
import { decodeDocumentPayload, signingMaterial } from '../providers/aws/parse.js';
import { fromHex, toBase64, toBase64Url } from '../providers/common/encoding.js';
import { parseCertificate, importPublicKey } from '../providers/common/x509.js';
import { anchorFromBytes, createTrustStore } from '../providers/common/trust.js';
import { BUILTIN_PINS, PinIds } from '../providers/common/pins.js';
import type { VerifyContext } from '../providers/common/types.js';

const VECTORS = process.env.ATTEST_VECTORS ?? resolve(process.cwd(), 'test/vectors');
const fixture = JSON.parse(readFileSync(`${VECTORS}/vaportpm/test-nitro-fixture.json`, 'utf8'));
const doc = fromHex(fixture.attestation.nitro.document);
const pin = BUILTIN_PINS.find((p) => p.id === PinIds.AWS_NITRO_ROOT_G1)!;

async function measure(name: string, n: number, f: () => Promise<unknown>): Promise<{ name: string; opsPerSec: number; p50: number; p99: number; mean: number }> {
  for (let i = 0; i < Math.min(200, n / 10); i++) await f();
  const t: number[] = [];
  for (let i = 0; i < n; i++) {
    const s = process.hrtime.bigint();
    await f();
    t.push(Number(process.hrtime.bigint() - s) / 1e6);
  }
  t.sort((a, b) => a - b);
  const mean = t.reduce((a, b) => a + b, 0) / n;
  return { name, opsPerSec: 1000 / mean, p50: t[Math.floor(n * 0.5)]!, p99: t[Math.floor(n * 0.99)]!, mean };
}

/**
 * Interleaved: rounds of `per` operations of each case in turn, so every case sees the same load
 * on a shared host; returns the mean latency per case over all rounds.
 */
async function interleaved(cases: ReadonlyArray<[string, () => Promise<unknown>]>, rounds: number, per: number): Promise<Map<string, number>> {
  const total = new Map<string, number>(cases.map(([n]) => [n, 0]));
  for (let r = 0; r < rounds; r++) {
    for (const [name, f] of cases) {
      const s = process.hrtime.bigint();
      for (let i = 0; i < per; i++) await f();
      total.set(name, total.get(name)! + Number(process.hrtime.bigint() - s) / 1e6);
    }
  }
  return new Map([...total].map(([n, t]) => [n, t / (rounds * per)]));
}

/** Throughput with `conc` verifications in flight (WebCrypto runs on the libuv thread pool). */
async function throughput(name: string, n: number, conc: number, f: () => Promise<unknown>): Promise<{ name: string; opsPerSec: number }> {
  let left = n;
  const worker = async (): Promise<void> => {
    while (left-- > 0) await f();
  };
  const s = process.hrtime.bigint();
  await Promise.all(Array.from({ length: conc }, worker));
  return { name, opsPerSec: n / (Number(process.hrtime.bigint() - s) / 1e9) };
}

async function main(): Promise<void> {
  const anchor = await anchorFromBytes(pin, new Uint8Array(readFileSync(`${VECTORS}/vaportpm/certs/aws-nitro-root.pem`)));
  const ctx: VerifyContext = {
    binding: fromHex(fixture.nonce),
    now: new Date('2026-02-03T11:00:00Z'),
    fetch: globalThis.fetch,
    trust: createTrustStore([anchor]),
    options: {},
  };
  const evidence = { document: toBase64(doc) };
  const quote = {
    message: toBase64Url(fromHex(fixture.attestation.tpm.ecc_p256.attest_data)),
    signature: toBase64Url(fromHex(fixture.attestation.tpm.ecc_p256.signature)),
    pcrs: { sha384: fixture.pcrs.sha384 },
  };

  const cose = parseCoseSign1(doc);
  const leaf = parseCertificate(signingMaterial(decodeDocumentPayload(cose.payload)).certificate);
  const key = await importPublicKey(leaf, { name: 'ECDSA', namedCurve: 'P-384' });
  const tbs = sigStructure(cose.protectedBytes, cose.payload) as Uint8Array<ArrayBuffer>;
  const sig = cose.signature as Uint8Array<ArrayBuffer>;

  const cached = createAwsProvider();
  const uncached = createAwsProvider({ chainCacheSize: 0 });
  const N = Number(process.env.BENCH_N ?? 2000);
  const results = [
    await measure('raw P-384 ECDSA verify (WebCrypto)', N, async () => {
      if (!(await crypto.subtle.verify({ name: 'ECDSA', hash: 'SHA-384' }, key, sig, tbs))) throw new Error('bad');
    }),
    await measure('nitrotpm document, chain cache warm', N, () => cached.verify('nitrotpm', evidence, ctx)),
    await measure('nitrotpm document, no chain cache', Math.max(200, N / 4), () => uncached.verify('nitrotpm', evidence, ctx)),
    await measure('nitrotpm document + TPM quote, cache warm', N, () => cached.verify('nitrotpm', { ...evidence, quote }, ctx)),
  ];
  const raw = results[0]!.mean;
  console.log(`machine: ${cpus().length} × ${cpus()[0]?.model ?? '?'}; node ${process.version}`);
  console.log('case | ops/s | p50 ms | p99 ms | × raw P-384');
  for (const r of results) {
    console.log(`${r.name} | ${r.opsPerSec.toFixed(0)} | ${r.p50.toFixed(3)} | ${r.p99.toFixed(3)} | ${(r.mean / raw).toFixed(2)}`);
  }
  const rawF = async (): Promise<void> => {
    if (!(await crypto.subtle.verify({ name: 'ECDSA', hash: 'SHA-384' }, key, sig, tbs))) throw new Error('bad');
  };
  const inter = await interleaved(
    [
      ['raw P-384 verify', rawF],
      ['nitrotpm document, cache warm', () => cached.verify('nitrotpm', evidence, ctx)],
      ['nitrotpm document + quote, cache warm', () => cached.verify('nitrotpm', { ...evidence, quote }, ctx)],
      ['nitrotpm document, no cache', () => uncached.verify('nitrotpm', evidence, ctx)],
    ],
    Number(process.env.BENCH_ROUNDS ?? 20),
    50,
  );
  const rawMean = inter.get('raw P-384 verify')!;
  console.log('\ninterleaved (same load for every case) | mean ms | ops/s | × raw P-384');
  for (const [n, m] of inter) console.log(`${n} | ${m.toFixed(3)} | ${(1000 / m).toFixed(0)} | ${(m / rawMean).toFixed(2)}`);

  const C = Number(process.env.BENCH_CONCURRENCY ?? 16);
  const rawT = await throughput('raw P-384 ECDSA verify', N, C, () => crypto.subtle.verify({ name: 'ECDSA', hash: 'SHA-384' }, key, sig, tbs));
  const docT = await throughput('nitrotpm document, cache warm', N, C, () => cached.verify('nitrotpm', evidence, ctx));
  const quoteT = await throughput('nitrotpm document + quote, cache warm', N, C, () => cached.verify('nitrotpm', { ...evidence, quote }, ctx));
  console.log(`\nthroughput with ${C} in flight | ops/s | × raw P-384 cost`);
  for (const r of [rawT, docT, quoteT]) console.log(`${r.name} | ${r.opsPerSec.toFixed(0)} | ${(rawT.opsPerSec / r.opsPerSec).toFixed(2)}`);
  console.log(`chain cache: ${cached.chainCache.hits} hits, ${cached.chainCache.misses} misses`);
}

await main();

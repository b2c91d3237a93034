#!/usr/bin/env node
// SEV-SNP verification throughput: `node bench/snp.mjs [--iterations 2000]`
// Bundles bench/snp-entry.ts with esbuild (dependencies external) into .cache/bench, runs it on
// the real Azure SEV-SNP evidence in test/vectors (or $ATTEST_VECTORS), and prints ops/s,
// p50/p99 latency and the ratio of each path to the raw WebCrypto P-384 verify.
import { build } from 'esbuild';
import { mkdirSync } from 'node:fs';
import { cpus } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const arg = (n, d) => {
  const i = process.argv.indexOf(`--${n}`);
  return i > 0 ? process.argv[i + 1] : d;
};
const iterations = Number(arg('iterations', '2000'));
const root = resolve(import.meta.dirname, '..');
// Inside the checkout (.cache/ is git-ignored) so the bundle resolves node_modules.
mkdirSync(join(root, '.cache/bench'), { recursive: true });
const out = join(root, '.cache/bench/snp-entry.mjs');
await build({
  entryPoints: [join(root, 'bench/snp-entry.ts')],
  outfile: out,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20.19',
  packages: 'external',
  logLevel: 'warning',
});
const m = await import(pathToFileURL(out).href);
const results = await m.run(m.defaultVectors(root), iterations);
const raw = results[0].opsPerSec;
console.log(`node ${process.version}, ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${iterations} iterations (sequential)`);
console.log('path'.padEnd(52), 'ops/s'.padStart(8), 'p50 µs'.padStart(8), 'p99 µs'.padStart(8), 'raw/ops'.padStart(8));
for (const r of results) {
  console.log(r.name.padEnd(52), String(r.opsPerSec).padStart(8), String(r.p50us).padStart(8), String(r.p99us).padStart(8), (raw / r.opsPerSec).toFixed(2).padStart(8));
}

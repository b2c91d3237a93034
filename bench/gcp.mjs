#!/usr/bin/env node
// GCP path verification throughput: `node bench/gcp.mjs [--iterations 500]`
// Bundles bench/gcp-entry.ts with esbuild (dependencies external) into .cache/bench, runs it on
// the real GCE evidence in test/vectors (or $ATTEST_VECTORS), and prints ops/s, p50/p99
// latency and each path's cost relative to one raw WebCrypto RSA-2048 verify and to the raw
// crypto floor of a gotpm attestation (5 RSA verifies).
import { build } from 'esbuild';
import { mkdirSync } from 'node:fs';
import { cpus } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const arg = (n, d) => {
  const i = process.argv.indexOf(`--${n}`);
  return i > 0 ? process.argv[i + 1] : d;
};
const iterations = Number(arg('iterations', '500'));
const root = resolve(import.meta.dirname, '..');
mkdirSync(join(root, '.cache/bench'), { recursive: true });
const out = join(root, '.cache/bench/gcp-entry.mjs');
await build({
  entryPoints: [join(root, 'bench/gcp-entry.ts')],
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
const one = results[0].opsPerSec;
const floor = results[1].opsPerSec;
console.log(`node ${process.version}, ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${iterations} iterations (sequential)`);
console.log('path'.padEnd(52), 'ops/s'.padStart(8), 'p50 µs'.padStart(8), 'p99 µs'.padStart(8), '×1 RSA'.padStart(8), '×floor'.padStart(8));
for (const r of results) {
  console.log(
    r.name.padEnd(52),
    String(r.opsPerSec).padStart(8),
    String(r.p50us).padStart(8),
    String(r.p99us).padStart(8),
    (one / r.opsPerSec).toFixed(1).padStart(8),
    (floor / r.opsPerSec).toFixed(1).padStart(8),
  );
}

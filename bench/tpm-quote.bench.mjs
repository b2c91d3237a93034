#!/usr/bin/env node
// TPM quote verifications per second (RSA-2048 and P-256) and the ratio to raw WebCrypto verify.
// `node bench/tpm-quote.bench.mjs [--n 3000]` — bundles bench/tpm-quote.ts with esbuild into a
// temporary directory and runs it on this machine (one core, sequential).
import { build } from 'esbuild';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir, cpus } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const i = process.argv.indexOf('--n');
const n = i > 0 ? Number(process.argv[i + 1]) : 3000;
const root = resolve(import.meta.dirname, '..');
const dir = mkdtempSync(join(tmpdir(), 'bench-tpm-'));
try {
  const out = join(dir, 'tpm-quote.mjs');
  await build({ entryPoints: [join(root, 'bench/tpm-quote.ts')], bundle: true, platform: 'node', format: 'esm', outfile: out, logLevel: 'warning' });
  const { run } = await import(pathToFileURL(out).href);
  console.log(`node ${process.version}, ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, n=${n}`);
  await run(n);
} finally {
  rmSync(dir, { recursive: true, force: true });
}

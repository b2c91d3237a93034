#!/usr/bin/env node
// Sealed releases per second in-process (memory store, local KMS, no Kubernetes) and the ratio
// to the raw WebCrypto work of one sealed release. `node bench/release.bench.mjs [--n 2000]`.
import { build } from 'esbuild';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir, cpus } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const i = process.argv.indexOf('--n');
const n = i > 0 ? Number(process.argv[i + 1]) : 2000;
const root = resolve(import.meta.dirname, '..');
const dir = mkdtempSync(join(tmpdir(), 'bench-release-'));
try {
  const out = join(dir, 'release.mjs');
  await build({ entryPoints: [join(root, 'bench/release.ts')], bundle: true, platform: 'node', format: 'esm', outfile: out, logLevel: 'warning',
    // CommonJS dependencies (yaml) require Node built-ins: give the ESM bundle a require.
    banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" } });
  const { run } = await import(pathToFileURL(out).href);
  console.log(`node ${process.version}, ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, n=${n}`);
  await run(n);
} finally {
  rmSync(dir, { recursive: true, force: true });
}

// Bundles bench/aws-nitrotpm.bench.ts with esbuild (dependencies external) and runs it.
// Usage: node bench/aws.mjs   (BENCH_N=<iterations>, ATTEST_VECTORS=<dir> optional)
import { build } from 'esbuild';
import { mkdtempSync, rmSync } from 'node:fs';

import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const dir = mkdtempSync(join(process.cwd(), '.cache-bench-'));
try {
  const outfile = join(dir, 'aws-nitrotpm.bench.mjs');
  await build({ entryPoints: ['bench/aws-nitrotpm.bench.ts'], outfile, bundle: true, platform: 'node', format: 'esm', target: 'node20.19', packages: 'external', logLevel: 'warning' });
  await import(pathToFileURL(outfile).href);
} finally {
  rmSync(dir, { recursive: true, force: true });
}

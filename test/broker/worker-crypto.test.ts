/**
 * applyWorkerCryptoMode, in a real node:cluster: a worker of a cluster with a worker per core
 * verifies P-384 synchronously (the thread pool would only compete with the other workers); a
 * worker of a smaller cluster, and a process outside any cluster, keep the default. The broker's
 * runtime and the bench's cluster role both call it, so the bench measures what the runtime runs.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import { build } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '../..');
// Inside the checkout (git-ignored .cache/), so the bundle resolves the packages it leaves external.
mkdirSync(join(ROOT, '.cache'), { recursive: true });
const dir = mkdtempSync(join(ROOT, '.cache', 'worker-crypto-'));
const bundle = join(dir, 'probe.mjs');

// Primary: forks one worker with the index the broker's runPrimary gives it. Worker (and a lone
// process): applies the mode for `workers` and prints whether the slow curves went synchronous.
const PROBE = `
import cluster from 'node:cluster';
import { applyWorkerCryptoMode } from ${JSON.stringify(join(ROOT, 'broker/cluster.node.ts'))};
import { parseConfig } from ${JSON.stringify(join(ROOT, 'broker/config/schema.ts'))};
import { setSlowCurvesSync } from ${JSON.stringify(join(ROOT, 'providers/common/sig.ts'))};
const workers = Number(process.env.PROBE_WORKERS);
if (process.env.PROBE_FORK === '1' && cluster.isPrimary) {
  cluster.fork({ ATTEST_BROKER_WORKER_INDEX: '0' }).on('exit', (code) => process.exit(code ?? 1));
} else {
  setSlowCurvesSync(false);
  const switched = applyWorkerCryptoMode(parseConfig({ listen: { workers }, store: { url: 'redis://127.0.0.1:6379' } }));
  console.log(JSON.stringify({ worker: cluster.isWorker, switched, sync: setSlowCurvesSync(false) }));
  process.exit(0); // a worker's IPC channel would keep it alive (stdout to a pipe is synchronous on Linux)
}
`;

const probe = (workers: number, fork: boolean) =>
  JSON.parse(execFileSync(process.execPath, [bundle], { env: { ...process.env, PROBE_WORKERS: String(workers), PROBE_FORK: fork ? '1' : '0' }, encoding: 'utf8', timeout: 30_000 }).trim()) as { worker: boolean; switched: boolean; sync: boolean };

const cores = availableParallelism();

describe('applyWorkerCryptoMode', () => {
  beforeAll(async () => {
    writeFileSync(join(dir, 'probe.ts'), PROBE);
    await build({ entryPoints: [join(dir, 'probe.ts')], bundle: true, platform: 'node', format: 'esm', outfile: bundle, packages: 'external', absWorkingDir: ROOT, logLevel: 'silent' });
  });

  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('a worker of a cluster with a worker per core: P-384 goes synchronous', () => {
    expect(probe(cores, true)).toEqual({ worker: true, switched: true, sync: true });
  });

  it('outside a cluster nothing changes, whatever the worker count', () => {
    expect(probe(cores, false)).toEqual({ worker: false, switched: false, sync: false });
  });

  it.skipIf(cores < 2)('a worker of a cluster with fewer workers than cores keeps the thread pool', () => {
    expect(probe(cores - 1, true)).toEqual({ worker: true, switched: false, sync: false });
  });
});

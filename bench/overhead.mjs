#!/usr/bin/env node
// The broker's own cost per attest, apart from the provider and the socket:
// `node bench/overhead.mjs [--paths tpm,azure] [--n 20000] [--vectors DIR]`.
// Bundles bench/attest-paths-entry.ts and runs its `overhead` role pinned to CPU 0 (when taskset
// exists): `app.fetch` on a Request, sequentially, for an empty Hono handler reading the same
// body, the broker with the path's provider replaced by one answering that provider's claims
// ("glue": envelope, challenge store, binding, evidence hash, policy, release stand-in, metrics,
// logs), the broker with the real provider, and the provider alone. Median of 3 rounds, µs per
// request. A second table takes apart what "broker real" costs beyond glue + provider (the
// provider's time inside the broker, on fresh evidence, the signature floor hot and right after a
// request, GC pauses per request). Add `--cpu-prof DIR` to profile the run.
import { build } from 'esbuild';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';

const arg = (n, d) => {
  const i = process.argv.indexOf(`--${n}`);
  return i > 0 ? process.argv[i + 1] : d;
};
const root = resolve(import.meta.dirname, '..');
const vectors = resolve(arg('vectors', process.env.ATTEST_VECTORS ?? join(root, 'test/vectors')));
const cacheDir = join(root, '.cache/bench');
mkdirSync(cacheDir, { recursive: true });
const bundle = join(cacheDir, 'attest-paths-entry.mjs');
await build({ entryPoints: [join(root, 'bench/attest-paths-entry.ts')], outfile: bundle, bundle: true, platform: 'node', format: 'esm', target: 'node20.19', packages: 'external', sourcemap: 'inline', logLevel: 'warning' });
const prof = arg('cpu-prof');
const node = [process.execPath, ...(prof ? ['--cpu-prof', `--cpu-prof-dir=${resolve(prof)}`] : []), bundle, 'overhead'];
const pin = availableParallelism() >= 2 && existsSync('/usr/bin/taskset');
const [cmd, ...args] = pin ? ['taskset', '-c', '0', ...node] : node;
const load = () => execFileSync('cat', ['/proc/loadavg']).toString().trim().split(' ').slice(0, 3).join(' ');
const load0 = load();
const r = spawnSync(cmd, args, { env: { ...process.env, ATTEST_VECTORS: vectors, BENCH_OVERHEAD_PATHS: arg('paths', 'tpm,azure'), BENCH_OVERHEAD_N: arg('n', '20000') }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
if (r.status !== 0) process.exit(r.status ?? 1);
const out = JSON.parse(r.stdout.trim().split('\n').pop());
console.log(`node ${process.version}, ${pin ? 'pinned to CPU 0' : 'unpinned'}, load average ${load0} → ${load()}; µs per request (median of 3 rounds), in process, sequential`);
console.log(['path', 'empty Hono', 'broker glue', 'glue − empty', 'provider', 'broker real'].map((h, i) => (i ? h.padStart(13) : h.padEnd(6))).join(''));
const r1 = (v) => Math.round(v * 10) / 10;
for (const [path, x] of Object.entries(out)) {
  console.log([path.padEnd(6), ...[x.empty_hono_us, x.broker_glue_us, r1(x.broker_glue_us - x.empty_hono_us), x.provider_us, x.broker_real_us].map((v) => String(v).padStart(13))].join(''));
}
// Why "broker real" exceeds glue + provider: the provider's own time inside it, the provider on
// freshly parsed evidence, the signature floor hot and right after a request, and GC pauses.
console.log('\nbroker real − (glue + provider), taken apart (µs per request, medians):');
console.log(['path', 'real − sum', 'glue fresh cl.', 'prov. in broker', 'prov. fresh ev.', 'floor hot', 'floor after req', 'GC e/g/r/p'].map((h, i) => (i ? h.padStart(16) : h.padEnd(6))).join(''));
for (const [path, x] of Object.entries(out)) {
  const gc = [x.gc_empty_us, x.gc_glue_us, x.gc_real_us, x.gc_provider_us].join(' / ');
  console.log([path.padEnd(6), ...[r1(x.broker_real_us - x.broker_glue_us - x.provider_us), x.broker_glue_fresh_us, x.provider_in_broker_us, x.provider_fresh_us, x.floor_hot_us, x.floor_after_request_us].map((v) => String(v).padStart(16)), `   ${gc}`].join(''));
}

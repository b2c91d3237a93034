#!/usr/bin/env node
// Attestation paths against their floors (issue 17):
//   node bench/attest-paths.mjs [--rounds 3] [--paths tpm,gcp,azure,aws] [--json OUT]
//                               [--skip-burst] [--skip-workers] [--skip-rss] [--vectors DIR]
//
// Single core, per evidence path, interleaved rounds: the server child (bench/attest-paths-entry.ts,
// bundled into .cache/bench/) is pinned to CPU 0, this driver and its autocannon load to CPU 1.
// Each round measures, per path:
//   crypto floor  the fewest node:crypto signature verifications the path needs, synchronous
//   empty Hono    an empty Hono POST handler on @hono/node-server reading the same body, over HTTP
//   provider      the broker's own provider on the vector (4 concurrent calls)
//   broker HTTP   createBroker (MemoryStore, real policy engine on a captured policy, release
//                 stand-in) behind the broker's listen(), POST /v1/attest, challenges seeded
// everything per CPU-second of the pinned server process (process.cpuUsage), and
//   floor = min(crypto floor, empty Hono), ratio_http = broker HTTP / floor (median over rounds).
// Then, on all cores: 5,000 azure verifications in process (cold, then warm); the same 5,000 as
// HTTP attests to the broker run as `listen.workers: 2` on a private redis-server (cold workers,
// then warm), both against 5,000 × the single-core floor ÷ cores; and the RSS of a real
// `attest-broker serve` (memory store) holding 100,000 challenges from POST /v1/challenge.
//
// Every rate limit is off (limit 0) in the broker under test: one load generator replays one
// node's evidence from one address, which the default limits (600 attests/min per address,
// 10 per 10 min per attested identity) would refuse. This measures verification throughput; the
// limits are a deployment setting. A benchmark, not a test: it prints figures and ratios.
import autocannon from 'autocannon';
import { build } from 'esbuild';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { freePort } from './lib.mjs';
import { coreScaling } from './cores.mjs';

// ── options ──
const argv = process.argv.slice(2);
const value = (name, dflt) => {
  const i = argv.indexOf(`--${name}`);
  if (i < 0) return dflt;
  if (i + 1 >= argv.length) throw new Error(`--${name} needs a value`);
  return argv[i + 1];
};
const flag = (name) => argv.includes(`--${name}`);
const ALL_PATHS = ['tpm', 'gcp', 'azure', 'aws'];
const root = resolve(import.meta.dirname, '..');
const opts = {
  rounds: Number(value('rounds', '3')),
  paths: value('paths', ALL_PATHS.join(',')).split(',').map((s) => s.trim()).filter(Boolean),
  json: value('json', null),
  vectors: resolve(value('vectors', process.env.ATTEST_VECTORS ?? join(root, 'test/vectors'))),
  skipBurst: flag('skip-burst'),
  skipWorkers: flag('skip-workers') || flag('skip-burst'),
  skipRss: flag('skip-rss'),
  burstN: Number(process.env.BENCH_BURST ?? 5000),
  challenges: Number(process.env.BENCH_CHALLENGES ?? 100_000),
};
if (!Number.isInteger(opts.rounds) || opts.rounds < 1) throw new Error('--rounds must be a whole number ≥ 1');
for (const p of opts.paths) if (!ALL_PATHS.includes(p)) throw new Error(`--paths: unknown path "${p}" (known: ${ALL_PATHS.join(', ')})`);

const LIMITS_NOTE =
  'rate limits off in the broker under test (attest/identity/challenge limit 0): one load generator replays one node from one address; this measures verification throughput, the limits are a deployment setting';
const say = (...a) => process.stderr.write(`${a.join(' ')}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const round = (x, d = 0) => Number(x.toFixed(d));
const allCpus = `0-${cpus().length - 1}`;
const canPin = availableParallelism() >= 2 && existsSync('/usr/bin/taskset');

const machine = () => ({
  cpus: cpus().length,
  model: cpus()[0]?.model?.trim(),
  mhz: cpus()[0]?.speed,
  node: process.version,
  platform: `${process.platform}/${process.arch}`,
  date: new Date().toISOString(),
});
const load = () => loadavg().map((x) => round(x, 2));

// ── children ──
const children = new Set();
process.on('exit', () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

/** Starts the bundled entry in `role` as an IPC child on `cpuList`; resolves once it is ready. */
function child(bundle, role, { cpuList, env = {}, readyTimeoutMs = 180_000 } = {}) {
  const node = [process.execPath, bundle, role];
  const [cmd, ...args] = canPin ? ['taskset', '-c', cpuList ?? allCpus, ...node] : node;
  const proc = spawn(cmd, args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], env: { ...process.env, ATTEST_VECTORS: opts.vectors, ...env } });
  children.add(proc);
  const waiting = new Map();
  let seq = 0;
  let readyResolve, readyReject;
  const ready = new Promise((res, rej) => {
    readyResolve = res;
    readyReject = rej;
  });
  const timer = setTimeout(() => readyReject(new Error(`${role}: not ready within ${readyTimeoutMs / 1000} s`)), readyTimeoutMs);
  proc.on('message', (m) => {
    if (m.fatal) {
      const e = new Error(`${role}: ${m.fatal}`);
      readyReject(e);
      for (const w of waiting.values()) w.reject(e);
      return;
    }
    if (m.id !== undefined && waiting.has(m.id)) {
      const w = waiting.get(m.id);
      waiting.delete(m.id);
      if (m.error) w.reject(new Error(`${role}: ${m.error}`));
      else w.resolve(m);
      return;
    }
    if (m.ready) {
      clearTimeout(timer);
      readyResolve(m);
    }
  });
  const exited = new Promise((r) => proc.on('exit', (code, signal) => {
    children.delete(proc);
    clearTimeout(timer);
    const e = new Error(`${role} exited (code ${code}, signal ${signal})`);
    readyReject(e);
    for (const w of waiting.values()) w.reject(e);
    r(code);
  }));
  const call = (msg) =>
    new Promise((res, rej) => {
      const id = seq++;
      waiting.set(id, { resolve: res, reject: rej });
      proc.send({ ...msg, id });
    });
  const stop = async () => {
    if (proc.exitCode === null && proc.signalCode === null) await call({ cmd: 'exit' }).catch(() => undefined);
    await Promise.race([exited, sleep(15_000)]);
  };
  return { proc, ready, call, exited, stop };
}

/** autocannon: POSTs `body` (string) or `next()` bodies; a fixed `amount` or a `duration` in seconds. */
/**
 * CPU seconds (user + system) used so far by process `root` and its descendants (the cluster's
 * primary and workers), from /proc: what the broker itself spent, apart from the load generator
 * and redis that share the cores. null where /proc is missing.
 */
function treeCpuSeconds(root) {
  if (!existsSync('/proc/self/stat')) return null;
  const rows = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    let t;
    try {
      t = readFileSync(`/proc/${d}/stat`, 'utf8');
    } catch {
      continue; // exited meanwhile
    }
    const f = t.slice(t.lastIndexOf(')') + 2).split(' '); // fields from 3 (state) on
    rows.push({ pid: Number(d), ppid: Number(f[1]), ticks: Number(f[11]) + Number(f[12]) });
  }
  const tree = new Set([root]);
  for (let grew = true; grew; ) {
    grew = false;
    for (const r of rows) {
      if (!tree.has(r.pid) && tree.has(r.ppid)) {
        tree.add(r.pid);
        grew = true;
      }
    }
  }
  return rows.filter((r) => tree.has(r.pid)).reduce((a, r) => a + r.ticks, 0) / 100; // USER_HZ
}

async function hammer({ url, connections, duration, amount, body, next }) {
  const common = { url, connections, ...(amount ? { amount } : { duration }) };
  const headers = { 'content-type': 'application/json' };
  const r = await autocannon(
    typeof body === 'string'
      ? { ...common, method: 'POST', headers, body }
      : { ...common, requests: [{ method: 'POST', headers, setupRequest: (q) => ({ ...q, body: next() }) }] },
  );
  const secs = (new Date(r.finish).getTime() - new Date(r.start).getTime()) / 1000;
  return { secs, ok: r['2xx'], rps: r['2xx'] / secs, non2xx: r.non2xx, errors: r.errors + r.timeouts, p50: r.latency.p50, p99: r.latency.p99 };
}

const ids = (tag) => {
  let i = 0;
  return () => `${tag}${String(i++).padStart(12, '0')}`;
};

// ── bundle ──
const cacheDir = join(root, '.cache/bench');
mkdirSync(cacheDir, { recursive: true });
const bundle = join(cacheDir, 'attest-paths-entry.mjs');
await build({
  entryPoints: [join(root, 'bench/attest-paths-entry.ts')],
  outfile: bundle,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20.19',
  packages: 'external',
  sourcemap: 'inline',
  logLevel: 'warning',
});

const result = { machine: machine(), loadavg_start: load(), pinning: canPin ? 'server cpu0, driver + autocannon cpu1' : 'unpinned (taskset or a second CPU missing)', rate_limits: LIMITS_NOTE, rounds: opts.rounds, paths: {} };
say(`attest-paths: ${result.machine.cpus} × ${result.machine.model}, node ${process.version}, load ${result.loadavg_start.join(' ')}`);
say(`note: ${LIMITS_NOTE}`);

// ── single core, interleaved rounds ──
if (canPin) execFileSync('taskset', ['-a', '-p', '-c', '1', String(process.pid)], { stdio: 'ignore' });
const S = child(bundle, 'server', { cpuList: '0' });
const info = await S.ready;
say(`server ready on cpu0: broker ${info.brokerUrl}, empty Hono ${info.emptyUrl}; sanity ${JSON.stringify(info.sanity)}`);

const CONNS = 16;
const FLOOR_MS = 700;
const PROVIDER_MS = 1200;
const HTTP_S = 2;
let runNo = 0;

/** Runs `f` (a load run) and adds the server's CPU share and rate per server CPU-second. */
async function perServerCpu(f) {
  const a = (await S.call({ cmd: 'cpu' })).us;
  const r = await f();
  const b = (await S.call({ cmd: 'cpu' })).us;
  r.cpuBusy = (b - a) / 1e6 / r.secs;
  r.perCpuSec = r.rps / r.cpuBusy;
  return r;
}
async function brokerRun(path, seconds, expectedRate) {
  const tag = `run${runNo++}-${path}-`;
  const count = Math.ceil(expectedRate * seconds * 2) + 2000;
  await S.call({ cmd: 'seed', path, tag, count });
  const next = ids(tag);
  const b = info.bodies[path];
  const r = await perServerCpu(() => hammer({ url: `${info.brokerUrl}/v1/attest`, connections: CONNS, duration: seconds, next: () => b.prefix + next() + b.suffix }));
  r.seeded = count;
  return r;
}
async function emptyRun(path, seconds) {
  // The same body bytes (an id as long as the broker run's), one fixed string: the load
  // generator spends as little as it can per request.
  const b = info.bodies[path];
  const id = 'hono-'.padEnd(`run${runNo}-${path}-`.length + 12, '0');
  return perServerCpu(() => hammer({ url: `${info.emptyUrl}/v1/attest`, connections: CONNS, duration: seconds, body: b.prefix + id + b.suffix }));
}

const rows = Object.fromEntries(opts.paths.map((p) => [p, { crypto: [], cryptoWall: [], provider: [], providerWall: [], hono: [], honoWall: [], http: [], httpWall: [], honoBusy: [], httpBusy: [], p50: [], p99: [], non2xx: 0, errors: 0 }]));
say('warm-up round …');
for (const p of opts.paths) {
  await S.call({ cmd: 'floor', path: p, ms: 200 });
  const pr = await S.call({ cmd: 'provider', path: p, ms: 400 });
  await emptyRun(p, 1);
  await brokerRun(p, 1, pr.opsPerSec);
}
for (let r = 1; r <= opts.rounds; r++) {
  for (const p of opts.paths) {
    const f = await S.call({ cmd: 'floor', path: p, ms: FLOOR_MS });
    const pr = await S.call({ cmd: 'provider', path: p, ms: PROVIDER_MS, concurrency: 4 });
    const h = await emptyRun(p, HTTP_S);
    const x = await brokerRun(p, HTTP_S, Math.min(pr.opsPerSec, h.rps));
    const row = rows[p];
    row.crypto.push(f.opsPerCpuSec);
    row.cryptoWall.push(f.opsPerSec);
    row.provider.push(pr.opsPerCpuSec);
    row.providerWall.push(pr.opsPerSec);
    row.hono.push(h.perCpuSec);
    row.honoWall.push(h.rps);
    row.http.push(x.perCpuSec);
    row.httpWall.push(x.rps);
    row.honoBusy.push(h.cpuBusy);
    row.httpBusy.push(x.cpuBusy);
    row.p50.push(x.p50);
    row.p99.push(x.p99);
    row.non2xx += x.non2xx + h.non2xx;
    row.errors += x.errors + h.errors;
    say(
      `round ${r} ${p.padEnd(5)} per server CPU-s: crypto floor ${f.opsPerCpuSec.toFixed(0)}, provider ${pr.opsPerCpuSec.toFixed(0)}, empty Hono ${h.perCpuSec.toFixed(0)}, broker HTTP ${x.perCpuSec.toFixed(0)}` +
        ` (server busy ${(h.cpuBusy * 100).toFixed(0)}% / ${(x.cpuBusy * 100).toFixed(0)}%, p50 ${x.p50} ms, non-2xx ${x.non2xx + h.non2xx}, errors ${x.errors + h.errors})`,
    );
  }
}
await S.stop();

for (const p of opts.paths) {
  const row = rows[p];
  const perRound = row.crypto.map((c, i) => {
    const floor = Math.min(c, row.hono[i]);
    const floorWall = Math.min(row.cryptoWall[i], row.honoWall[i]);
    return { floor, http: row.http[i] / floor, httpWall: row.httpWall[i] / floorWall, provider: row.provider[i] / c };
  });
  result.paths[p] = {
    per_cpu_s: {
      crypto_floor: Math.round(median(row.crypto)),
      empty_hono: Math.round(median(row.hono)),
      floor: Math.round(median(perRound.map((x) => x.floor))),
      provider: Math.round(median(row.provider)),
      broker_http: Math.round(median(row.http)),
    },
    floor_is: median(row.crypto) <= median(row.hono) ? 'crypto' : 'empty-hono',
    ratio_http: round(median(perRound.map((x) => x.http)), 3),
    ratio_http_per_round: perRound.map((x) => round(x.http, 3)),
    ratio_provider_vs_crypto: round(median(perRound.map((x) => x.provider)), 3),
    wall_per_s: {
      crypto_floor: Math.round(median(row.cryptoWall)),
      empty_hono: Math.round(median(row.honoWall)),
      provider: Math.round(median(row.providerWall)),
      broker_http: Math.round(median(row.httpWall)),
    },
    ratio_http_wall: round(median(perRound.map((x) => x.httpWall)), 3),
    server_cpu_busy: { empty_hono: round(median(row.honoBusy), 2), broker_http: round(median(row.httpBusy), 2) },
    http_latency_ms: { p50: median(row.p50), p99: median(row.p99) },
    non2xx: row.non2xx,
    errors: row.errors,
  };
}

// ── all cores from here on ──
if (canPin) execFileSync('taskset', ['-a', '-p', '-c', allCpus, String(process.pid)], { stdio: 'ignore' });

// The azure crypto floor (µs per attest) as the bursts judge it: the fastest single-core sample
// of this run (the rounds' median, and each timing the burst and cluster children take). A
// sample taken while the host slowed a core would otherwise enlarge the floor and flatter the
// ratio (CPU 0 ran at ~60 % of its speed for minutes in one run); the fastest is what the
// machine can do.
const azureFloorSamplesUs = result.paths.azure ? [1e6 / result.paths.azure.per_cpu_s.crypto_floor] : [];
const bestAzureFloorUs = (...more) => {
  azureFloorSamplesUs.push(...more);
  return Math.min(...azureFloorSamplesUs);
};

if (!opts.skipBurst) {
  say(`azure burst: ${opts.burstN} verifications in one process, all cores …`);
  const B = child(bundle, 'burst', { env: { BENCH_BURST: String(opts.burstN) } });
  const b = await B.ready;
  await B.exited;
  const floorMs = (us) => (b.n * us) / b.cores / 1000;
  const coldFloor = floorMs(bestAzureFloorUs(...b.floorUs));
  const warmFloor = coldFloor;
  result.burst = {
    n: b.n,
    cores: b.cores,
    azure_floor_us: b.floorUs.map((x) => round(x, 1)),
    cold_ms: Math.round(b.coldMs),
    cold_floor_ms: Math.round(coldFloor),
    ratio_cold: round(b.coldMs / coldFloor, 2),
    warm_ms: Math.round(b.warmMs),
    warm_floor_ms: Math.round(warmFloor),
    ratio_warm: round(b.warmMs / warmFloor, 2),
  };
  say(`burst: ${JSON.stringify(result.burst)}`);
}

/** A private redis-server on a free loopback port (never the system instance), no persistence. */
async function startRedis() {
  const bin = process.env.REDIS_SERVER ?? '/usr/bin/redis-server';
  if (!existsSync(bin)) return null;
  const port = await freePort();
  const proc = spawn(bin, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'yes'], { stdio: 'ignore' });
  children.add(proc);
  proc.on('exit', () => children.delete(proc));
  const ping = () =>
    new Promise((res) => {
      const s = connect(port, '127.0.0.1');
      s.setTimeout(200);
      s.on('connect', () => s.write('PING\r\n'));
      s.on('data', (d) => {
        s.destroy();
        res(d.toString().startsWith('+PONG'));
      });
      s.on('error', () => res(false));
      s.on('timeout', () => {
        s.destroy();
        res(false);
      });
    });
  for (let i = 0; i < 100 && !(await ping()); i++) await sleep(50);
  return {
    url: `redis://127.0.0.1:${port}`,
    stop: () =>
      new Promise((res) => {
        if (proc.exitCode !== null || proc.signalCode !== null) return res();
        proc.once('exit', () => res());
        proc.kill('SIGTERM');
      }),
  };
}

if (!opts.skipWorkers) {
  const redis = await startRedis();
  if (!redis) {
    say('listen.workers burst skipped: no redis-server (set REDIS_SERVER)');
    result.workers_burst = { skipped: 'no redis-server' };
  } else {
    try {
      const port = await freePort();
      say(`listen.workers: 2 burst: ${opts.burstN} attests (azure) per phase, challenges pre-seeded in ${redis.url} …`);
      const C = child(bundle, 'cluster', { env: { BENCH_BURST: String(opts.burstN), BENCH_PORT: String(port), BENCH_REDIS_URL: redis.url, BENCH_WORKERS: '2' } });
      const c = await C.ready;
      const phase = async (tag) => {
        const next = ids(tag);
        const cpu0 = treeCpuSeconds(C.proc.pid);
        const r = await hammer({ url: `${c.url}/v1/attest`, connections: 64, amount: c.n, next: () => c.body.prefix + next() + c.body.suffix });
        return { ...r, brokerCpuS: cpu0 === null ? null : treeCpuSeconds(C.proc.pid) - cpu0 };
      };
      const cold = await phase('cold-');
      const warm = await phase('warm-');
      const after = (await C.call({ cmd: 'floor', ms: 1000 })).floorUs;
      await C.stop();
      // The per-attest floor: the lower of azure's two single-core rates (crypto floor, empty
      // Hono from the rounds above, when azure was measured) — in practice the crypto floor,
      // the fastest sample of the run (bestAzureFloorUs).
      const cryptoUs = bestAzureFloorUs(c.floorUs, after);
      const honoUs = result.paths.azure ? 1e6 / result.paths.azure.per_cpu_s.empty_hono : 0;
      const perAttestUs = Math.max(cryptoUs, honoUs);
      const floorMs = (c.n * perAttestUs) / c.cores / 1000;
      const row = (r) => ({
        ms: Math.round(r.secs * 1000),
        per_s: Math.round(r.rps),
        ok: r.ok,
        non2xx: r.non2xx,
        errors: r.errors,
        p50_ms: r.p50,
        p99_ms: r.p99,
        ratio: round((r.secs * 1000) / floorMs, 2),
        // The broker processes' own CPU (primary + workers): per attest, and how many cores they had.
        broker_cpu_ms_per_attest: r.brokerCpuS === null ? null : round((r.brokerCpuS * 1000) / r.ok, 3),
        broker_cores_busy: r.brokerCpuS === null ? null : round(r.brokerCpuS / r.secs, 2),
      });
      result.workers_burst = {
        workers: c.workers,
        store: 'redis (private redis-server)',
        n: c.n,
        cores: c.cores,
        connections: 64,
        azure_floor_us: [round(c.floorUs, 1), round(after, 1)],
        floor_is: perAttestUs === cryptoUs ? 'crypto' : 'empty-hono',
        floor_ms: Math.round(floorMs),
        cold: row(cold),
        warm: row(warm),
      };
      say(`listen.workers burst: ${JSON.stringify(result.workers_burst)}`);

      // One core to two: the same run with one worker pinned to CPU 0 (the load generator keeps
      // the other core to itself here, and shares both cores in the two-worker run above, so the
      // factor is if anything understated). Issue 17 asks for ×1.8.
      say(`listen.workers: 1 on CPU 0, the same ${opts.burstN} attests per phase (one core to two) …`);
      const port1 = await freePort();
      const C1 = child(bundle, 'cluster', { cpuList: '0', env: { BENCH_BURST: String(opts.burstN), BENCH_PORT: String(port1), BENCH_REDIS_URL: redis.url, BENCH_WORKERS: '1' } });
      const c1 = await C1.ready;
      const phase1 = async (tag) => {
        const next = ids(tag);
        const cpu0 = treeCpuSeconds(C1.proc.pid);
        const r = await hammer({ url: `${c1.url}/v1/attest`, connections: 64, amount: c1.n, next: () => c1.body.prefix + next() + c1.body.suffix });
        return { ...r, brokerCpuS: cpu0 === null ? null : treeCpuSeconds(C1.proc.pid) - cpu0 };
      };
      const cold1 = await phase1('cold-');
      const warm1 = await phase1('warm-');
      await C1.stop();
      result.workers_scaling = {
        one_core: { workers: 1, cold: row(cold1), warm: row(warm1) },
        two_cores_warm_per_s: Math.round(warm.rps),
        one_core_warm_per_s: Math.round(warm1.rps),
        factor: round(warm.rps / warm1.rps, 2),
        note: 'warm attests/s with listen.workers: 2 on both cores ÷ listen.workers: 1 pinned to CPU 0; the load generator shares the cores in the first, has CPU 1 in the second',
      };
      // What the two cores give on the floor's own work, in this run: the ceiling for the factor.
      say('the cores themselves: the azure floor’s verifications on CPU 0, CPU 1, then both at once …');
      const hw = await coreScaling({ rounds: 3, seconds: 2 });
      if (hw) result.workers_scaling.cores = { factor: hw.factor, factor_per_round: hw.factor_per_round, solo_cpu0_per_s: hw.solo_cpu0, solo_cpu1_per_s: hw.solo_cpu1, both_per_s: hw.both };
      say(`one core to two: ${JSON.stringify(result.workers_scaling)}`);
    } finally {
      await redis.stop();
    }
  }
}

if (!opts.skipRss) {
  say(`rss: ${opts.challenges.toLocaleString('en')} × POST /v1/challenge to a real \`attest-broker serve\` (memory store, challengesPerAddress limit 0) …`);
  execFileSync(process.execPath, [join(root, 'scripts/build.mjs')], { stdio: 'inherit' });
  const rssOf = (pid) => {
    const s = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (k) => Number(new RegExp(`${k}:\\s+(\\d+) kB`).exec(s)[1]);
    return { rss: kb('VmRSS') / 1024, hwm: kb('VmHWM') / 1024 };
  };
  const bare = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 5000)']);
  await sleep(800);
  const bareMb = rssOf(bare.pid).rss;
  bare.kill();
  const dir = mkdtempSync(join(tmpdir(), 'bench-attest-paths-'));
  mkdirSync(join(dir, 'trust'));
  const port = await freePort();
  writeFileSync(
    join(dir, 'broker.yaml'),
    [
      `listen: {host: 127.0.0.1, port: ${port}}`,
      'store: {url: "memory://"}',
      'log: {level: warn}',
      `trust: {dir: ${join(dir, 'trust')}}`,
      'challenge: {ttlSeconds: 3600}',
      `limits: {challengesPerAddress: {limit: 0, windowSeconds: 60}, maxLiveChallenges: ${Math.max(250_000, opts.challenges * 2)}}`,
      '',
    ].join('\n'),
  );
  const serveProc = spawn(process.execPath, [join(root, 'bin/attest-broker.js'), 'serve', '--config', join(dir, 'broker.yaml')], { stdio: ['ignore', 'ignore', 'pipe'] });
  children.add(serveProc);
  let serveErr = '';
  serveProc.stderr.on('data', (d) => (serveErr += d));
  const serveExited = new Promise((r) => serveProc.on('exit', r));
  try {
    let up = false;
    for (let i = 0; i < 150 && !up; i++) {
      up = await fetch(`http://127.0.0.1:${port}/healthz`).then((r) => r.ok, () => false);
      if (!up) await sleep(100);
    }
    if (!up) throw new Error(`attest-broker serve did not start: ${serveErr.slice(-800)}`);
    await sleep(500);
    const idle = rssOf(serveProc.pid);
    const r = await hammer({ url: `http://127.0.0.1:${port}/v1/challenge`, connections: 32, amount: opts.challenges, body: '{}' });
    await sleep(1500);
    const live = rssOf(serveProc.pid);
    result.rss = {
      challenges_201: r.ok,
      non2xx: r.non2xx,
      errors: r.errors,
      issue_per_s: Math.round(r.rps),
      bare_node_mb: round(bareMb, 1),
      idle_mb: round(idle.rss, 1),
      live_mb: round(live.rss, 1),
      hwm_mb: round(live.hwm, 1),
      bytes_per_challenge: r.ok ? Math.round(((live.rss - idle.rss) * 1048576) / r.ok) : null,
    };
    say(`rss: ${JSON.stringify(result.rss)}`);
  } finally {
    serveProc.kill('SIGTERM');
    await Promise.race([serveExited, sleep(12_000)]);
    rmSync(dir, { recursive: true, force: true });
  }
}

result.loadavg_end = load();

// ── report ──
const num = (x) => (typeof x === 'number' ? x.toLocaleString('en') : String(x));
const cols = ['path', 'crypto floor/s', 'empty Hono/s', 'floor/s', 'provider/s', 'broker HTTP/s', 'HTTP ÷ floor', 'per round', 'server busy', 'p50/p99 ms', 'non-2xx'];
const table = [cols];
for (const [p, r] of Object.entries(result.paths)) {
  table.push([
    p,
    num(r.per_cpu_s.crypto_floor),
    num(r.per_cpu_s.empty_hono),
    `${num(r.per_cpu_s.floor)} (${r.floor_is})`,
    num(r.per_cpu_s.provider),
    num(r.per_cpu_s.broker_http),
    r.ratio_http.toFixed(3),
    r.ratio_http_per_round.join(' '),
    `${Math.round(r.server_cpu_busy.broker_http * 100)}%`,
    `${r.http_latency_ms.p50}/${r.http_latency_ms.p99}`,
    String(r.non2xx + r.errors),
  ]);
}
const widths = cols.map((_, i) => Math.max(...table.map((row) => row[i].length)));
const lines = [
  `attest-broker attest paths — ${result.machine.cpus} × ${result.machine.model}, node ${result.machine.node}, ${result.machine.date}`,
  `load average start ${result.loadavg_start.join(' ')}, end ${result.loadavg_end.join(' ')}; ${result.pinning}; ${opts.rounds} round(s)`,
  `note: ${LIMITS_NOTE}`,
  'per CPU-second of the pinned server process; floor = min(crypto floor, empty Hono); HTTP ÷ floor = median over rounds',
  '',
  ...table.map((row) => row.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ')),
];
if (result.burst) {
  const b = result.burst;
  lines.push('', `azure burst, ${b.n} verifications in process on ${b.cores} cores: cold ${num(b.cold_ms)} ms (${b.ratio_cold}× floor ${num(b.cold_floor_ms)} ms), warm ${num(b.warm_ms)} ms (${b.ratio_warm}× floor ${num(b.warm_floor_ms)} ms); floor = n × the fastest single-core crypto floor of the run ÷ cores`);
}
if (result.workers_burst?.cold) {
  const w = result.workers_burst;
  const one = (name, r) => `${name} ${num(r.ms)} ms (${r.ratio}× floor, ${num(r.per_s)}/s, ${r.ok} ok, non-2xx ${r.non2xx}, errors ${r.errors}, p99 ${r.p99_ms} ms)`;
  lines.push(`azure HTTP burst, listen.workers: ${w.workers} on Redis, ${w.n} attests over ${w.connections} connections: ${one('cold', w.cold)}, ${one('warm', w.warm)}; floor ${num(w.floor_ms)} ms = n × the fastest single-core floor of the run ÷ ${w.cores} cores`);
}
if (result.workers_scaling) {
  const x = result.workers_scaling;
  lines.push(`one core to two (azure over HTTP, warm): listen.workers: 1 on CPU 0 ${num(x.one_core_warm_per_s)}/s, listen.workers: 2 on both ${num(x.two_cores_warm_per_s)}/s: ×${x.factor} (the load generator shares the cores in the second run)`);
  const w2 = result.workers_burst?.warm;
  const w1 = x.one_core.warm;
  if (w1.broker_cpu_ms_per_attest !== null && w2?.broker_cpu_ms_per_attest != null) {
    lines.push(`  broker CPU per attest (primary + workers): ${w1.broker_cpu_ms_per_attest} ms with one worker (${w1.broker_cores_busy} cores busy), ${w2.broker_cpu_ms_per_attest} ms with two (${w2.broker_cores_busy} cores busy)`);
  }
  if (x.cores) lines.push(`  the cores themselves (P-384 + RSA-2048 verify in two processes at once ÷ CPU 0 alone): ×${x.cores.factor} (rounds ${x.cores.factor_per_round.join(', ')})`);
}
if (result.rss) {
  const r = result.rss;
  lines.push(`serve with ${num(r.challenges_201)} live challenges (non-2xx ${r.non2xx}): RSS ${r.live_mb} MB (idle ${r.idle_mb} MB, peak ${r.hwm_mb} MB, bare node ${r.bare_node_mb} MB; ${num(r.bytes_per_challenge)} B per challenge)`);
}
console.log(lines.join('\n'));
if (opts.json) writeFileSync(opts.json, `${JSON.stringify(result, null, 2)}\n`);
process.exit(0);

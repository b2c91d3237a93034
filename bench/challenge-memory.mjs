#!/usr/bin/env node
// Memory of live challenges: `node bench/challenge-memory.mjs [--n 100000] [--store memory|redis|both]`
// Starts the real broker (`serve`, dist bundle) with per-address limits off on a free port (and,
// for Redis, a private redis-server on a free port), issues N challenges over keep-alive
// connections without consuming any, and reports:
// - the broker's RSS idle and with N live challenges (and bytes per challenge),
// - for Redis, its used_memory growth per challenge (INFO memory), keys expiring on their own,
// - the memory store alone: retained heap bytes per live challenge after a full GC
//   (`node --expose-gc`, the store bundled from broker/store/memory.ts), the ≤ 300 B budget;
// - the floor: a bare Node process's RSS in the same run.
// A benchmark, not a test: it prints numbers; docs/benchmarks.md records them.
import { spawn, execFileSync } from 'node:child_process';
import { connect } from 'node:net';
import { Agent, request } from 'node:http';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir, loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { freePort } from './lib.mjs';

const arg = (n, d) => {
  const i = process.argv.indexOf(`--${n}`);
  return i > 0 ? process.argv[i + 1] : d;
};
const N = Number(arg('n', '100000'));
const which = arg('store', 'both');
const root = resolve(import.meta.dirname, '..');

const rssMb = (pid) => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) / 1024;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function redisCmd(port, ...args) {
  return new Promise((resolveP, reject) => {
    const s = connect(port, '127.0.0.1');
    let out = '';
    s.on('data', (d) => {
      out += d.toString();
      if (/\r\n$/.test(out) && (!out.startsWith('$') || out.split('\r\n').length > 2)) {
        s.end();
        resolveP(out);
      }
    });
    s.on('error', reject);
    s.write(`*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`);
  });
}

async function challenges(port, n, conns = 32) {
  const agent = new Agent({ keepAlive: true, maxSockets: conns });
  let sent = 0;
  let ok = 0;
  const one = () =>
    new Promise((res) => {
      const req = request({ host: '127.0.0.1', port, path: '/v1/challenge', method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': '2' } }, (r) => {
        if (r.statusCode === 201) ok++;
        r.resume();
        r.on('end', res);
      });
      req.on('error', res);
      req.end('{}');
    });
  const t0 = performance.now();
  await Promise.all(Array.from({ length: conns }, async () => {
    while (sent < n) {
      sent++;
      await one();
    }
  }));
  agent.destroy();
  return { ok, seconds: (performance.now() - t0) / 1000 };
}

async function run(storeKind) {
  const children = [];
  let storeUrl = 'memory://';
  let redisPort;
  if (storeKind === 'redis') {
    redisPort = await freePort();
    children.push(spawn('redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' }));
    storeUrl = `redis://127.0.0.1:${redisPort}`;
    await sleep(300);
  }
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'bench-mem-'));
  const off = '{limit: 0, windowSeconds: 60}';
  writeFileSync(
    join(dir, 'c.yaml'),
    `listen: {host: 127.0.0.1, port: ${port}}\nstore: {url: "${storeUrl}"}\nlog: {level: warn}\ntrust: {dir: ${dir}}\nchallenge: {ttlSeconds: 3600}\nlimits: {challengesPerAddress: ${off}, maxLiveChallenges: ${Math.max(N * 2, 1000)}}\n`,
  );
  const broker = spawn(process.execPath, [join(root, 'bin/attest-broker.js'), 'serve', '--config', join(dir, 'c.yaml')], { stdio: ['ignore', 'ignore', 'inherit'] });
  children.push(broker);
  try {
    for (let i = 0; i < 100; i++) {
      try {
        if ((await fetch(`http://127.0.0.1:${port}/healthz`)).ok) break;
      } catch {
        /* not up yet */
      }
      await sleep(100);
    }
    await sleep(500);
    const idle = rssMb(broker.pid);
    const redisBefore = redisPort ? Number(/used_memory:(\d+)/.exec(await redisCmd(redisPort, 'INFO', 'memory'))[1]) : 0;
    process.stderr.write(`${storeKind}: issuing ${N.toLocaleString('en')} challenges …\n`);
    const r = await challenges(port, N);
    await sleep(2000);
    const live = rssMb(broker.pid);
    const out = {
      store: storeKind,
      challenges: r.ok,
      seconds: Number(r.seconds.toFixed(1)),
      rssIdleMb: Number(idle.toFixed(1)),
      rssLiveMb: Number(live.toFixed(1)),
      brokerBytesPerChallenge: Math.round(((live - idle) * 1048576) / r.ok),
    };
    if (redisPort) {
      const after = Number(/used_memory:(\d+)/.exec(await redisCmd(redisPort, 'INFO', 'memory'))[1]);
      out.redisBytesPerChallenge = Math.round((after - redisBefore) / r.ok);
      const ttl = await redisCmd(redisPort, 'PTTL', (await redisCmd(redisPort, 'RANDOMKEY')).split('\r\n')[1]);
      out.redisKeyTtlMs = Number(ttl.slice(1));
    }
    return out;
  } finally {
    for (const c of children) c.kill('SIGTERM');
  }
}

/** Retained heap per challenge in the memory store itself (no HTTP, no GC slack). */
async function storeOnly() {
  const dir = mkdtempSync(join(tmpdir(), 'bench-store-'));
  const { build } = await import('esbuild');
  await build({ entryPoints: [join(root, 'broker/store/memory.ts')], bundle: true, format: 'esm', platform: 'node', outfile: join(dir, 'memory.mjs'), logLevel: 'error' });
  writeFileSync(
    join(dir, 'run.mjs'),
    `const { MemoryStore } = await import(${JSON.stringify(join(dir, 'memory.mjs'))});
const s = new MemoryStore({ maxChallenges: ${N * 2} });
const b64 = (n) => Buffer.from(crypto.getRandomValues(new Uint8Array(n))).toString('base64url');
gc(); gc();
const before = process.memoryUsage().heapUsed;
const now = Date.now();
for (let i = 0; i < ${N}; i++) await s.putChallenge(b64(16), { nonce: b64(32), issuedAt: new Date(now).toISOString(), expiresAt: new Date(now + 120000).toISOString(), cluster: 'prod' }, 120_000);
gc(); gc();
const after = process.memoryUsage().heapUsed;
// (the store is used after the measurement, so it is live during it)
console.log(JSON.stringify({ bytesPerChallenge: Math.round((after - before) / ${N}), stillThere: (await s.consumeChallenge('none')) === null }));
`,
  );
  return JSON.parse(execFileSync(process.execPath, ['--expose-gc', join(dir, 'run.mjs')], { encoding: 'utf8' }));
}

execFileSync(process.execPath, [join(root, 'scripts/build.mjs')], { stdio: 'inherit' });
const bare = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 3000)']);
await sleep(800);
const floor = rssMb(bare.pid);
bare.kill();
const results = [];
for (const s of which === 'both' ? ['memory', 'redis'] : [which]) results.push(await run(s));
const memoryStore = await storeOnly();
console.log(JSON.stringify({ n: N, node: process.version, loadavg: loadavg().map((x) => Number(x.toFixed(2))), bareNodeRssMb: Number(floor.toFixed(1)), memoryStore, results }, null, 2));

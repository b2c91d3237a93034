#!/usr/bin/env node
// Challenge issuance throughput: `node bench/challenge.mjs [--store memory|redis] [--duration 10] [--connections 50]`
// Starts the broker (dist bundle, `serve`) on a free port with the chosen store — Redis is a
// private redis-server on a free port — and drives POST /v1/challenge with autocannon.
// Reports requests/s and latency p50/p99, plus the raw cost of what a challenge needs
// (32 + 16 random bytes and a store write) measured in-process for the ratio.
import autocannon from 'autocannon';
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir, cpus } from 'node:os';
import { join, resolve } from 'node:path';
import { freePort } from './lib.mjs';

const arg = (n, d) => {
  const i = process.argv.indexOf(`--${n}`);
  return i > 0 ? process.argv[i + 1] : d;
};
const storeKind = arg('store', 'memory');
const duration = Number(arg('duration', '10'));
const connections = Number(arg('connections', '50'));
const root = resolve(import.meta.dirname, '..');


execFileSync(process.execPath, [join(root, 'scripts/build.mjs')], { stdio: 'inherit' });
const children = [];
let storeUrl = 'memory://';
if (storeKind === 'redis') {
  const rp = await freePort();
  children.push(spawn('redis-server', ['--port', String(rp), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' }));
  storeUrl = `redis://127.0.0.1:${rp}`;
  await new Promise((r) => setTimeout(r, 300));
}
const port = await freePort();
const dir = mkdtempSync(join(tmpdir(), 'bench-'));
writeFileSync(join(dir, 'c.yaml'), `listen: {host: 127.0.0.1, port: ${port}}\nstore: {url: "${storeUrl}"}\nlog: {level: warn}\ntrust: {dir: ${dir}}\n`);
const broker = spawn(process.execPath, [join(root, 'bin/attest-broker.js'), 'serve', '--config', join(dir, 'c.yaml')], { stdio: ['ignore', 'ignore', 'inherit'] });
children.push(broker);
const cleanup = () => children.forEach((c) => c.kill('SIGTERM'));
process.on('exit', cleanup);
for (let i = 0; i < 100; i++) {
  try {
    if ((await fetch(`http://127.0.0.1:${port}/healthz`)).ok) break;
  } catch {
    // not up yet
  }
  await new Promise((r) => setTimeout(r, 100));
}

process.stderr.write(`benchmarking POST /v1/challenge, store=${storeKind}, ${connections} connections, ${duration}s …\n`);
const result = await autocannon({
  url: `http://127.0.0.1:${port}/v1/challenge`,
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: '{}',
  connections,
  duration,
});

// Raw cost of a challenge's crypto (48 random bytes) on this machine, for the ratio.
const n = 200_000;
let t = performance.now();
for (let i = 0; i < n; i++) crypto.getRandomValues(new Uint8Array(48));
const rawPerSec = n / ((performance.now() - t) / 1000);

const out = {
  store: storeKind,
  connections,
  durationSeconds: duration,
  requestsPerSec: Math.round(result.requests.average),
  latencyMs: { p50: result.latency.p50, p99: result.latency.p99, max: result.latency.max },
  non2xx: result.non2xx,
  errors: result.errors,
  rawRandomPerSec: Math.round(rawPerSec),
  ratioToRaw: +(result.requests.average / rawPerSec).toFixed(5),
  machine: { cpus: cpus().length, model: cpus()[0]?.model, node: process.version },
};
console.log(JSON.stringify(out, null, 2));
cleanup();
process.exit(0);

// What this machine's cores give when they work at once:
//   node bench/cores.mjs [--rounds 3] [--seconds 3] [--json OUT]
//
// Issue 17 asks the broker for ×1.8 going from one core to two, and for a 5,000-join burst within
// 1.5× of 5,000 × floor ÷ cores. Both assume two cores do twice one core's work. This measures
// whether they do, on the work the azure floor consists of: node:crypto verifications (one
// ECDSA P-384/SHA-384 over an SNP-report-sized message and one RSA-2048 PKCS#1 v1.5 verify per
// attest, as the floor counts them), in one process pinned to CPU 0, then one pinned to CPU 1,
// then one on each at the same moment. The factor = verifications/s of the pair ÷ the solo
// CPU 0 rate; 2.0 would be two independent cores. Virtual CPUs that are hyperthreads of one
// physical core, or that the host overcommits, give less, and no program can do better on them.
// A benchmark, not a test: it prints figures.
import { spawn } from 'node:child_process';
import { availableParallelism, loadavg } from 'node:os';
import { existsSync, writeFileSync } from 'node:fs';

const argv = process.argv.slice(2);
const arg = (name, dflt) => {
  const i = argv.indexOf(`--${name}`);
  return i < 0 ? dflt : argv[i + 1];
};

/** The child: verify for `seconds`, print the count per second. */
const WORKER = `
const crypto = require('node:crypto');
const ec = crypto.generateKeyPairSync('ec', { namedCurve: 'P-384' });
const rsa = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const report = Buffer.alloc(0x2a0, 7), quote = Buffer.alloc(145, 9);
const ecSig = crypto.sign('sha384', report, { key: ec.privateKey, dsaEncoding: 'ieee-p1363' });
const rsaSig = crypto.sign('sha256', quote, rsa.privateKey);
const ecKey = { key: ec.publicKey, dsaEncoding: 'ieee-p1363' };
const one = () => crypto.verify('sha384', report, ecKey, ecSig) && crypto.verify('sha256', quote, rsa.publicKey, rsaSig);
for (let i = 0; i < 50; i++) if (!one()) throw new Error('did not verify');
process.send('ready');
process.once('message', () => {
  const ms = Number(process.env.SECONDS) * 1000;
  const t0 = performance.now();
  let n = 0;
  while (performance.now() - t0 < ms) { one(); n++; }
  process.send(n / ((performance.now() - t0) / 1000));
});
`;

function worker(cpu, seconds) {
  const p = spawn('taskset', ['-c', String(cpu), process.execPath, '-e', WORKER], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], env: { ...process.env, SECONDS: String(seconds) } });
  const ready = new Promise((r, j) => {
    p.once('message', r);
    p.once('exit', (c) => j(new Error(`cpu ${cpu}: exited ${c}`)));
  });
  const result = new Promise((r) => p.on('message', (m) => typeof m === 'number' && r(m)));
  return { ready, run: () => (p.send('go'), result.finally(() => p.kill())) };
}

/** Solo rates on each CPU, then both at the same moment; each worker is ready before any starts. */
async function round(seconds) {
  const solo = [];
  for (const cpu of [0, 1]) {
    const w = worker(cpu, seconds);
    await w.ready;
    solo.push(await w.run());
  }
  const pair = [worker(0, seconds), worker(1, seconds)];
  await Promise.all(pair.map((w) => w.ready));
  const both = await Promise.all(pair.map((w) => w.run()));
  return { solo, both, factor: (both[0] + both[1]) / solo[0] };
}

/** Median factor over `rounds`; null where two CPUs or taskset are missing. */
export async function coreScaling({ rounds = 3, seconds = 3 } = {}) {
  if (availableParallelism() < 2 || !existsSync('/usr/bin/taskset')) return null;
  const rows = [];
  for (let i = 0; i < rounds; i++) rows.push(await round(seconds));
  const sorted = rows.map((r) => r.factor).sort((a, b) => a - b);
  const r2 = (x) => Math.round(x * 100) / 100;
  return {
    work: 'node:crypto P-384/SHA-384 + RSA-2048 verify (the azure floor), per second',
    solo_cpu0: rows.map((r) => Math.round(r.solo[0])),
    solo_cpu1: rows.map((r) => Math.round(r.solo[1])),
    both: rows.map((r) => r.both.map(Math.round)),
    factor_per_round: rows.map((r) => r2(r.factor)),
    factor: r2(sorted[sorted.length >> 1]),
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const rounds = Number(arg('rounds', '3'));
  const seconds = Number(arg('seconds', '3'));
  const before = loadavg().map((x) => x.toFixed(2));
  const r = await coreScaling({ rounds, seconds });
  if (!r) {
    console.log('cores: needs two CPUs and taskset');
    process.exit(0);
  }
  const out = { date: new Date().toISOString(), node: process.version, loadavg_start: before, loadavg_end: loadavg().map((x) => x.toFixed(2)), ...r };
  console.log(`${r.work}: CPU 0 alone ${r.solo_cpu0.join(' / ')}, CPU 1 alone ${r.solo_cpu1.join(' / ')}, both at once ${r.both.map((b) => b.join(' + ')).join(' / ')}`);
  console.log(`two cores ÷ one: ×${r.factor} (rounds ${r.factor_per_round.join(', ')}); load ${out.loadavg_start.join(' ')} → ${out.loadavg_end.join(' ')}`);
  const json = arg('json');
  if (json) writeFileSync(json, JSON.stringify(out, null, 2));
}

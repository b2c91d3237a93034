// What an HTTP handler pays per request (in the kernel and around it) for being slow:
//   node bench/handler-speed.mjs [--spins 0,100,300,1000] [--seconds 5] [--connections 32]
//
// The harness issue 17 is judged by compares the broker with an empty Hono handler, both behind
// @hono/node-server on one pinned core and driven by autocannon on the other. The empty handler
// answers ~30,000 requests a second; the broker a few hundred to a few thousand. This measures
// what that difference in speed alone costs, with nothing else changed: the same empty Hono POST
// handler (reads the body, answers {"ok":true}) that first busy-waits `spin` µs, in a server
// process pinned to CPU 0, autocannon pinned to CPU 1 (pins only when taskset exists and there
// are two cores). Per request: the server's CPU (user + system) and its system (kernel) part,
// from process.cpuUsage around a 5 s run after a 2 s warm-up; "CPU − spin" is the rest (the spin
// is wall time, so a core the host slows shows there too). A benchmark, not a test: it prints.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';

const argv = process.argv.slice(2);
const arg = (name, dflt) => {
  const i = argv.indexOf(`--${name}`);
  return i < 0 ? dflt : argv[i + 1];
};

if (argv[0] === '--server') {
  const { serve } = await import('@hono/node-server');
  const { Hono } = await import('hono');
  const spinMs = Number(argv[1]) / 1000;
  const app = new Hono();
  app.post('/v1/attest', async (c) => {
    await c.req.text();
    // Reads the clock every 1,024 turns of integer work: a clock read per turn would allocate
    // and add collector time that is not the handler's.
    const end = performance.now() + spinMs;
    let x = 0;
    do {
      for (let i = 0; i < 1024; i++) x = (x * 31 + i) | 0;
    } while (performance.now() < end);
    return c.json({ ok: x !== 0.5 });
  });
  serve({ fetch: app.fetch, hostname: '127.0.0.1', port: 0 }, (info) => process.send({ port: info.port }));
  process.on('message', (m) => {
    if (m === 'cpu') process.send({ cpu: process.cpuUsage() });
  });
} else {
  const spins = arg('spins', '0,100,300,1000').split(',').map(Number);
  const seconds = Number(arg('seconds', '5'));
  const connections = Number(arg('connections', '32'));
  const pin = availableParallelism() >= 2 && existsSync('/usr/bin/taskset');
  if (pin) execFileSync('taskset', ['-p', '-c', '1', String(process.pid)], { stdio: 'ignore' }); // the load generator's core
  const body = 'x'.repeat(2790); // the tpm path's body size in the harness
  const load0 = loadavg()[0].toFixed(2);
  console.log(`node ${process.version}, ${pin ? 'server on CPU 0, autocannon on CPU 1' : 'unpinned'}, ${connections} connections, ${seconds} s per spin`);
  console.log(['spin µs', 'requests/s', 'CPU µs/req', 'CPU − spin', 'system µs/req'].map((h) => h.padStart(16)).join(''));
  for (const spin of spins) {
    const self = fileURLToPath(import.meta.url);
    const cmd = pin ? ['taskset', '-c', '0', process.execPath, self, '--server', String(spin)] : [process.execPath, self, '--server', String(spin)];
    const child = spawn(cmd[0], cmd.slice(1), { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const exited = new Promise((_, reject) => child.once('exit', (code) => reject(new Error(`the server for spin ${spin} exited (${code}) before answering`))));
    exited.catch(() => {}); // raced below; unobserved once the run is over
    const next = () => Promise.race([new Promise((r) => child.once('message', r)), exited]);
    const { port } = await next();
    const cpu = async () => {
      const m = next();
      child.send('cpu');
      return (await m).cpu;
    };
    const opts = { url: `http://127.0.0.1:${port}/v1/attest`, method: 'POST', body, connections };
    await autocannon({ ...opts, duration: 2 });
    const c0 = await cpu();
    const r = await autocannon({ ...opts, duration: seconds });
    const c1 = await cpu();
    child.kill();
    const n = r.requests.total;
    const system = (c1.system - c0.system) / n;
    const total = (c1.user - c0.user) / n + system;
    console.log([spin, Math.round(n / seconds), total.toFixed(1), (total - spin).toFixed(1), system.toFixed(1)].map((v) => String(v).padStart(16)).join(''));
  }
  console.log(`load average ${load0} → ${loadavg()[0].toFixed(2)}`);
}

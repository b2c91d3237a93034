/**
 * `listen.workers: 2`: the real `attest-broker serve` as a primary and two worker processes on a
 * real Redis. Shows: a challenge issued by one process is consumed at another (fresh connections
 * are spread over the workers) and used once only; `/metrics` from any worker counts every
 * worker's requests; a worker that dies is started again; SIGTERM stops every process; and
 * the memory store with more than one worker is refused at start.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/ports.js';
import { startRedis, type RedisServer } from '../helpers/redis.js';
import { runCli } from '../helpers/cli.js';
import { rawRequest, serveChild, writeConfig } from './serve-helpers.js';

const childrenOf = (pid: number): number[] => {
  try {
    return execFileSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' }).trim().split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
};
const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};
async function until<T>(f: () => T | Promise<T>, ok: (v: T) => boolean, ms = 20_000): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const v = await f();
    if (ok(v)) return v;
    if (Date.now() - t0 > ms) throw new Error(`timed out; last value ${JSON.stringify(v)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
const counter = (text: string, name: string): number => Number(new RegExp(`^${name} (\\d+)`, 'm').exec(text)?.[1] ?? NaN);

describe('serve with listen.workers: 2', () => {
  let redis: RedisServer;
  let broker: Awaited<ReturnType<typeof serveChild>>;
  let url: string;
  const lines: string[] = [];
  /** The worker whose access-log line carries this request id. */
  const servedBy = (requestId: string): number | undefined => {
    for (const l of lines) {
      if (!l.includes(requestId)) continue;
      const o = JSON.parse(l) as { msg?: string; requestId?: string; worker?: number };
      if (o.msg === 'request' && o.requestId === requestId) return o.worker;
    }
    return undefined;
  };
  beforeAll(async () => {
    redis = await startRedis();
    const dir = mkdtempSync(join(tmpdir(), 'ab-cluster-'));
    mkdirSync(join(dir, 'trust'));
    const port = await freePort();
    url = `http://127.0.0.1:${port}`;
    const file = writeConfig(
      {
        listen: { host: '127.0.0.1', port, workers: 2 },
        store: { url: redis.url, keyPrefix: `cluster-${port}:` },
        trust: { dir: join(dir, 'trust') },
        providers: { tpm: { enabled: true } },
        log: { level: 'warn' },
      },
      dir,
    );
    broker = await serveChild(file, url, undefined, { logLevel: 'info', onLine: (l) => lines.push(l) });
    await until(() => childrenOf(broker.proc.pid!).length, (n) => n === 2);
    // Both workers serving (each says so when its listener is up).
    await until(() => lines.filter((l) => l.includes('attest-broker listening on')).length, (n) => n >= 2);
  }, 60_000);
  afterAll(async () => {
    await broker?.stop();
    await redis?.stop();
  });

  const fresh = { headers: { connection: 'close' } };

  it('a challenge from one process is consumed at another, once', async () => {
    const crossed: number[] = [];
    for (let i = 0; i < 12; i++) {
      const rid = `cluster-test-${i}`;
      const ch = await rawRequest(`${url}/v1/challenge`, { headers: { ...fresh.headers, 'x-request-id': `${rid}-c` }, body: '{}' });
      expect(ch.status).toBe(201);
      const { challengeId } = JSON.parse(ch.body) as { challengeId: string };
      // Evidence the TPM provider refuses after it has consumed the challenge: the code shows the
      // challenge was found (by whichever process took this connection).
      const body = JSON.stringify({ challengeId, provider: 'tpm', format: 'tpm', evidence: { ak_public: 'AAAA', quote: { message: 'AA', signature: 'AA' }, pcrs: {} } });
      const first = await rawRequest(`${url}/v1/attest`, { headers: { ...fresh.headers, 'x-request-id': `${rid}-a` }, body });
      expect(JSON.parse(first.body).code).not.toBe('CHALLENGE_UNKNOWN');
      const again = await rawRequest(`${url}/v1/attest`, { ...fresh, body });
      expect(JSON.parse(again.body).code).toBe('CHALLENGE_UNKNOWN');
      await until(() => [servedBy(`${rid}-c`), servedBy(`${rid}-a`)], (w) => w.every((x) => x !== undefined), 5000);
      if (servedBy(`${rid}-c`) !== servedBy(`${rid}-a`)) crossed.push(i);
    }
    // The kernel spreads fresh connections over both workers: over 12 rounds at least one
    // challenge was issued by one process and consumed (once) by the other, as the access logs show.
    expect(crossed.length).toBeGreaterThan(0);
  });

  it('/metrics from any worker counts every worker', async () => {
    const before = counter((await rawRequest(`${url}/metrics`, fresh)).body, 'attest_broker_challenges_total');
    for (let i = 0; i < 10; i++) expect((await rawRequest(`${url}/v1/challenge`, { ...fresh, body: '{}' })).status).toBe(201);
    // Fresh connections land on both workers; each answer is the sum over the cluster.
    for (let i = 0; i < 4; i++) {
      const m = (await rawRequest(`${url}/metrics`, fresh)).body;
      expect(counter(m, 'attest_broker_challenges_total')).toBe(before + 10);
      // Values every worker holds alike are taken once, not summed (metrics.node.ts aggregators).
      expect(m).toMatch(/^attest_broker_build_info\{version="[^"]+",runtime="node"\} 1$/m);
      expect(m).toMatch(/^attest_broker_policy_reloads_total\{result="failure"\} 0$/m);
    }
  });

  it('a worker that dies is started again, and the broker keeps serving', async () => {
    const [victim] = childrenOf(broker.proc.pid!);
    process.kill(victim!, 'SIGKILL');
    const now = await until(() => childrenOf(broker.proc.pid!), (c) => c.length === 2 && !c.includes(victim!));
    expect(now).toHaveLength(2);
    expect((await rawRequest(`${url}/healthz`, fresh)).status).toBe(200);
  });

  it('SIGTERM stops the primary and every worker', async () => {
    const kids = childrenOf(broker.proc.pid!);
    expect(kids).toHaveLength(2);
    const exited = new Promise<number | null>((r) => broker.proc.once('exit', (code) => r(code)));
    broker.proc.kill('SIGTERM');
    expect(await exited).toBe(0);
    await until(() => kids.filter(alive).length, (n) => n === 0, 5000);
  }, 20_000);
});

describe('listen.workers: a worker that cannot start', () => {
  it('stops the broker with a failure after a crash loop, so a supervisor sees one', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ab-cluster-loop-'));
    mkdirSync(join(dir, 'trust'));
    const port = await freePort();
    // The primary only checks the worker count; each worker then refuses to start (gcp enabled
    // without its pinned roots), five times within seconds of starting.
    const file = writeConfig(
      { listen: { host: '127.0.0.1', port, workers: 2 }, store: { url: 'redis://127.0.0.1:1' }, trust: { dir: join(dir, 'trust') }, providers: { gcp: { enabled: true } } },
      dir,
    );
    const r = runCli(['serve', '--config', file]);
    expect(r.code).toBe(1);
    expect(r.stdout + r.stderr).toMatch(/exited 5 times within 10 s of starting: stopping the broker/);
  }, 60_000);
});

describe('listen.workers with the memory store', () => {
  it('is refused at start, saying what to set', async () => {
    const port = await freePort();
    const file = writeConfig({ listen: { host: '127.0.0.1', port, workers: 2 }, store: { url: 'memory://' } });
    const r = runCli(['serve', '--config', file]);
    expect(r.code).not.toBe(0);
    expect(r.stderr + r.stdout).toMatch(/listen\.workers: 2 .*needs a shared store.*redis:\/\//);
  });
});

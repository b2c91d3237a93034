/**
 * @module test/broker/wrangler-dev
 *
 * The Worker build as an operator runs it locally: `wrangler dev --local` (workerd, offline) on a
 * free loopback port, from the repository root with the checked-in `wrangler.toml`. Proves the
 * Worker entry point bundles and boots, answers `/healthz`, and serves protocol §1
 * (`POST /v1/challenge` → 201 with a 32-byte nonce) through the Durable Object store.
 *
 * State goes to a temp dir (`--persist-to`), the inspector gets its own free port, and the whole
 * process group is killed in afterAll. Skips with a message when wrangler is absent or the server
 * does not answer within 60 s (e.g. workerd cannot run on this machine).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/ports.js';

const ROOT = resolve(import.meta.dirname, '../..');
const WRANGLER = join(ROOT, 'node_modules/wrangler/bin/wrangler.js');

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('wrangler dev --local', () => {
  let proc: ChildProcess | undefined;
  let base = '';
  let up = false;
  let output = '';
  let dir = '';

  beforeAll(async () => {
    const port = await freePort();
    const inspector = await freePort();
    dir = mkdtempSync(join(tmpdir(), 'attest-wrangler-'));
    base = `http://127.0.0.1:${port}`;
    proc = spawn(
      process.execPath,
      [WRANGLER, 'dev', '--local', '--port', String(port), '--ip', '127.0.0.1', '--inspector-port', String(inspector), '--persist-to', dir, '--show-interactive-dev-session=false'],
      {
        cwd: ROOT,
        detached: true, // own process group: workerd children die with it
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, WRANGLER_SEND_METRICS: 'false', CI: '1', NO_COLOR: '1' },
      },
    );
    proc.stdout?.on('data', (d) => (output += d));
    proc.stderr?.on('data', (d) => (output += d));
    const end = Date.now() + 60_000;
    while (Date.now() < end && proc.exitCode === null) {
      const ok = await fetch(`${base}/healthz`, { signal: AbortSignal.timeout(2000) }).then(
        (r) => r.status === 200,
        () => false,
      );
      if (ok) {
        up = true;
        break;
      }
      await sleep(250);
    }
    if (!up) console.warn(`wrangler-dev: no /healthz 200 within 60 s. Output:\n${output.slice(-2000)}`);
  }, 70_000);

  afterAll(async () => {
    if (proc?.pid !== undefined && proc.exitCode === null) {
      const exited = new Promise<void>((r) => proc!.once('exit', () => r()));
      try {
        process.kill(-proc.pid, 'SIGTERM');
      } catch {
        /* already gone */
      }
      await Promise.race([exited, sleep(5000)]);
      try {
        process.kill(-proc.pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('answers /healthz and issues a challenge with a 32-byte nonce', async () => {
    expect(up, 'wrangler dev --local did not come up').toBe(true);
    const h = await fetch(`${base}/healthz`);
    expect(h.status).toBe(200);
    const r = await fetch(`${base}/v1/challenge`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    expect(r.status).toBe(201);
    expect(r.headers.get('cache-control')).toBe('no-store');
    const body = (await r.json()) as { challengeId: string; nonce: string; expiresAt: string };
    expect(body.nonce).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(Buffer.from(body.nonce, 'base64url')).toHaveLength(32);
    expect(body.challengeId).toMatch(/^[A-Za-z0-9_-]{16,}$/);
    expect(Number.isNaN(Date.parse(body.expiresAt))).toBe(false);
    // Two challenges never share a nonce.
    const r2 = (await (await fetch(`${base}/v1/challenge`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })).json()) as { nonce: string };
    expect(r2.nonce).not.toBe(body.nonce);
  });
});

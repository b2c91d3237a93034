/**
 * @module test/broker/wrangler-dev
 *
 * The Worker build as an operator runs it locally: `wrangler dev --local` (workerd, offline) on a
 * free loopback port, from the repository root with the checked-in `wrangler.toml`. Proves the
 * Worker entry point bundles and boots, answers `/healthz`, and serves protocol §1
 * (`POST /v1/challenge` → 201 with a 32-byte nonce) through the Durable Object store.
 *
 * The same running Worker (ADMIN_TOKEN and PROVIDERS=aws given with `--var`) is the target of
 * `attest-broker worker load` (broker/commands/worker.node.ts), the real CLI against the real
 * admin API: /readyz 503 before, refusals echo the Worker's code (wrong token, a root that
 * matches no pin), a load makes /readyz 200, and a second run changes nothing.
 *
 * State goes to a temp dir (`--persist-to`), the inspector gets its own free port, and the whole
 * process group is killed in afterAll. Skips with a message when wrangler is absent or the server
 * does not answer within 60 s (e.g. workerd cannot run on this machine).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/ports.js';
import { runCli, spawnCli } from '../helpers/cli.js';
import { readVector, rootVectorFile, vectorPath } from '../helpers/vectors.js';
import { makeTestPki } from '../servers/tls.js';
import { createServer as createHttpsServer } from 'node:https';
import { request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PinIds } from '../../providers/common/pins.js';

const ROOT = resolve(import.meta.dirname, '../..');
const WRANGLER = join(ROOT, 'node_modules/wrangler/bin/wrangler.js');

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** The Worker's ADMIN_TOKEN for this run (never expected in any output). */
const TOKEN = randomBytes(24).toString('base64url');
const POLICY = join(ROOT, 'deploy/policies/aws.yaml');

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
      [WRANGLER, 'dev', '--local', '--port', String(port), '--ip', '127.0.0.1', '--inspector-port', String(inspector), '--persist-to', dir, '--show-interactive-dev-session=false', '--var', `ADMIN_TOKEN:${TOKEN}`, '--var', 'PROVIDERS:aws', '--var', 'CONFIG_REFRESH_SECONDS:1'],
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

  describe('attest-broker worker load against it', () => {
    let trust = '';
    let tokenFile = '';
    // Asynchronously: a blocked event loop (spawnSync) misses the Worker closing an idle
    // keep-alive socket, and the next fetch() would reuse the dead socket.
    const load = async (args: string[], env: Record<string, string> = {}) => {
      const r = await runCliAsync(['worker', 'load', '--url', base, ...args], env);
      expect(`${r.stdout}${r.stderr}`).not.toContain(TOKEN);
      return r;
    };
    beforeAll(() => {
      trust = join(dir, 'trust');
      mkdirSync(trust);
      writeFileSync(join(trust, `${PinIds.AWS_NITRO_ROOT_G1}.pem`), readFileSync(vectorPath(rootVectorFile(PinIds.AWS_NITRO_ROOT_G1))));
      // What trust fetch also writes: not a root, so not sent.
      writeFileSync(join(trust, 'google-tpm-ek-intermediate-2.intermediates.pem'), pem(readVector('go-tpm-tools/ca-certs/tpm_ek_intermediate_2.crt')));
      tokenFile = join(dir, 'admin-token');
      writeFileSync(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
    });

    it('/readyz is 503 before anything is loaded, naming the missing roots and policy', async () => {
      expect(up, 'wrangler dev --local did not come up').toBe(true);
      const r = await fetch(`${base}/readyz`);
      expect(r.status).toBe(503);
      const p = (await r.json()) as { code: string; detail: string };
      expect(p.code).toBe('NOT_READY');
      expect(p.detail).toMatch(/provider aws has none of its pinned roots/);
      expect(p.detail).toMatch(/no join policy loaded/);
    });

    it('a wrong token is refused with ADMIN_UNAUTHENTICATED (exit 1) and nothing is stored', async () => {
      const r = await load(['--trust-dir', trust, '--policy', POLICY], { ATTEST_BROKER_ADMIN_TOKEN: 'x'.repeat(40) });
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/the Worker refused: 401 ADMIN_UNAUTHENTICATED/);
      expect(r.stderr).toMatch(/not the Worker's ADMIN_TOKEN/);
      expect((await fetch(`${base}/readyz`)).status).toBe(503);
    });

    it('a root file holding a certificate that matches no pin is refused with ADMIN_ROOT_NOT_PINNED, naming the file', async () => {
      const bad = join(dir, 'bad-trust');
      mkdirSync(bad);
      const der = readVector('go-tpm-tools/ca-certs/tpm_ek_intermediate_2.crt');
      writeFileSync(join(bad, `${PinIds.GOOGLE_TPM_EK_ROOT_1}.pem`), pem(der));
      const r = await load(['--token-file', tokenFile, '--trust-dir', bad, '--wait', '0']);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/the Worker refused: 400 ADMIN_ROOT_NOT_PINNED/);
      expect(r.stderr).toContain(createHash('sha256').update(der).digest('hex'));
      expect(r.stderr).toContain(join(bad, `${PinIds.GOOGLE_TPM_EK_ROOT_1}.pem`));
      expect((await fetch(`${base}/readyz`)).status).toBe(503);
    });

    it('loads the roots and the policy (progress per upload), prints what the Worker holds, and /readyz turns 200', async () => {
      const r = await load(['--token-file', tokenFile, '--trust-dir', trust, '--policy', POLICY, '--require-ready']);
      expect(r.stderr, r.stderr).toMatch(/trust: uploading 1 roots from .*: aws-nitro-root-g1/);
      expect(r.stderr).toMatch(/trust: stored \(version \d+\): aws-nitro-root-g1/);
      expect(r.stderr).toMatch(/policy: uploading .*aws\.yaml/);
      expect(r.stderr).toMatch(/policy: stored/);
      expect(r.code, r.stderr).toBe(0);
      const held = JSON.parse(r.stdout) as { version: number; roots: string[]; policySha256: string; ready: boolean };
      expect(held).toMatchObject({ roots: [PinIds.AWS_NITRO_ROOT_G1], ready: true, policySha256: createHash('sha256').update(readFileSync(POLICY)).digest('hex') });
      expect((await fetch(`${base}/readyz`)).status).toBe(200);

      // Twice is fine: nothing is uploaded again, the version stays.
      const again = await load(['--trust-dir', trust, '--policy', POLICY], { ATTEST_BROKER_ADMIN_TOKEN: TOKEN });
      expect(again.code, again.stderr).toBe(0);
      expect(again.stderr).toMatch(/trust: unchanged/);
      expect(again.stderr).toMatch(/policy: unchanged/);
      expect((JSON.parse(again.stdout) as { version: number }).version).toBe(held.version);
    });

    it('a policy the Worker cannot compile is refused with ADMIN_POLICY_INVALID and the loaded one stays', async () => {
      const broken = join(dir, 'broken.yaml');
      writeFileSync(broken, 'apiVersion: attest-broker/v1\nkind: JoinPolicy\nclusters: 3\n');
      const r = await load(['--token-file', tokenFile, '--policy', broken, '--wait', '0']);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/the Worker refused: 400 ADMIN_POLICY_INVALID/);
      expect((await fetch(`${base}/readyz`)).status).toBe(200);
    });

    it('over https: --ca-file trusts a private CA; without it the certificate is refused (WORKER_ADMIN_UNREACHABLE)', async () => {
      // TLS in front of the same Worker, with a test CA no system trusts.
      const pki = makeTestPki();
      const proxy = createHttpsServer({ cert: pki.certPem, key: pki.keyPem }, (req, res) => {
        const up = httpRequest(new URL(req.url!, base), { method: req.method, headers: { ...req.headers, host: new URL(base).host } }, (r) => {
          res.writeHead(r.statusCode ?? 502, r.headers);
          r.pipe(res);
        });
        up.on('error', () => res.writeHead(502).end());
        req.pipe(up);
      });
      await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', () => r()));
      const url = `https://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
      try {
        const args = ['worker', 'load', '--url', url, '--trust-dir', trust, '--policy', POLICY, '--wait', '0'];
        const untrusted = await runCliAsync(args, { ATTEST_BROKER_ADMIN_TOKEN: TOKEN });
        expect(untrusted.code).toBe(1);
        expect(untrusted.stderr).toMatch(/WORKER_ADMIN_UNREACHABLE: GET https:\/\/127\.0\.0\.1:\d+\/v1\/admin\/config: .*(self-signed|unable to verify|local issuer)/i);
        const trusted = await runCliAsync([...args, '--ca-file', pki.caFile], { ATTEST_BROKER_ADMIN_TOKEN: TOKEN });
        expect(trusted.code, trusted.stderr).toBe(0);
        expect(trusted.stderr).toMatch(/trust: unchanged/);
        expect(JSON.parse(trusted.stdout)).toMatchObject({ ready: true, roots: [PinIds.AWS_NITRO_ROOT_G1] });
        expect(`${trusted.stdout}${trusted.stderr}`).not.toContain(TOKEN);
      } finally {
        proxy.close();
        rmSync(pki.dir, { recursive: true, force: true });
      }
    });
  });
});

describe('attest-broker worker load: refused before anything is sent (exit 2)', () => {
  it.each([
    [['--url', 'http://broker.example', '--policy', POLICY], { ATTEST_BROKER_ADMIN_TOKEN: TOKEN }, /must be https:\/\//],
    [['--url', 'https://broker.example', '--policy', POLICY], {}, /no admin token: give --token-file FILE or set ATTEST_BROKER_ADMIN_TOKEN/],
    [['--url', 'https://broker.example', '--policy', POLICY], { ATTEST_BROKER_ADMIN_TOKEN: 'short' }, /32 to 4096 visible ASCII/],
    [['--url', 'https://broker.example'], { ATTEST_BROKER_ADMIN_TOKEN: TOKEN }, /nothing to load/],
    [['--url', 'https://broker.example', '--trust-dir', '/nonexistent'], { ATTEST_BROKER_ADMIN_TOKEN: TOKEN }, /--trust-dir \/nonexistent does not exist/],
  ])('%j', (args, env, re) => {
    const r = runCli(['worker', 'load', ...args], env as Record<string, string>);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(re);
    expect(r.stderr).not.toContain(TOKEN);
  });

  it('an address where no Worker answers is WORKER_ADMIN_UNREACHABLE (exit 1)', async () => {
    const port = await freePort();
    const r = runCli(['worker', 'load', '--url', `http://127.0.0.1:${port}`, '--policy', POLICY], { ATTEST_BROKER_ADMIN_TOKEN: TOKEN });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/WORKER_ADMIN_UNREACHABLE: GET http:\/\/127\.0\.0\.1:\d+\/v1\/admin\/config: .*ECONNREFUSED/);
  });
});

/** The CLI run without blocking this process (the TLS proxy above lives in it). */
function runCliAsync(args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawnCli(args, env);
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

function pem(der: Uint8Array): string {
  return `-----BEGIN CERTIFICATE-----\n${Buffer.from(der).toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '')}\n-----END CERTIFICATE-----\n`;
}

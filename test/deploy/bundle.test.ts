/**
 * The single-file client (scripts/bundle-client.mjs → attest-join.mjs, every dependency
 * inlined) runs on plain node: --help, usage errors (exit 2), a full join against the HTTPS
 * test broker and swtpm (exit 0, kubeconfig 0600), and a wrong pin (exit 1, stable code on
 * stdout). The SEA binary is built by the same script; building it needs postject and ~15 s,
 * so it is exercised only when ATTEST_TEST_SEA=1.
 */
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSwtpm, type Swtpm } from './swtpm.js';
import { makeTls, startTestBroker, type TestBroker, type TlsMaterial } from './test-broker.js';

const run = promisify(execFile);
const out = mkdtempSync(join(tmpdir(), 'bundle-'));
const bundle = join(out, 'attest-join.mjs');

async function runBundle(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(process.execPath, [bundle, ...args], { env, timeout: 60_000 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const x = e as { code: number; stdout: string; stderr: string };
    return { code: x.code, stdout: x.stdout, stderr: x.stderr };
  }
}

describe('bundled client (dist/attest-join.mjs)', () => {
  beforeAll(() => {
    execFileSync(process.execPath, ['scripts/bundle-client.mjs', '--no-sea', '--outdir', out], { stdio: 'pipe' });
  });
  afterAll(() => rmSync(out, { recursive: true, force: true }));

  it('runs --help with no node_modules beside it', async () => {
    const r = await runBundle(['--help']);
    expect(r.code).toBe(0);
    for (const flag of ['--broker', '--ca-pin', '--cluster', '--platform', '--out', '--disk-key-out', '--deadline']) expect(r.stdout).toContain(flag);
  });

  it('exits 2 on usage errors', async () => {
    expect((await runBundle([])).code).toBe(2);
    expect((await runBundle(['--broker', 'https://x', '--ca-pin', 'sha256:00', '--cluster', 'c', '--deadline', 'soon'])).code).toBe(2);
    const r = await runBundle(['--broker', 'https://127.0.0.1:1', '--ca-pin', 'nope', '--cluster', 'c', '--platform', 'generic']);
    expect(r.code).toBe(2);
    expect(JSON.parse(r.stdout.trim())).toMatchObject({ ok: false, code: 'JOIN_USAGE' });
    // ATTEST_GCP_TEE takes auto or none only (as the shell client): checked before any network.
    const t = await runBundle(['--broker', 'https://127.0.0.1:1', '--ca-pin', `sha256:${'0'.repeat(64)}`, '--cluster', 'c', '--platform', 'gcp'], { ...process.env, ATTEST_GCP_TEE: 'maybe' });
    expect(t.code).toBe(2);
    expect(JSON.parse(t.stdout.trim())).toMatchObject({ ok: false, code: 'JOIN_USAGE' });
  });

  describe('end to end with swtpm', () => {
    let tpm: Swtpm;
    let tls: TlsMaterial;
    let b: TestBroker;
    beforeAll(async () => {
      tpm = await startSwtpm({ ekCert: true });
      tls = makeTls('bundle');
      b = await startTestBroker({ tls, toolsEnv: tpm.env, requireActivation: true });
    });
    afterAll(async () => {
      await b?.close();
      await tpm?.stop();
    });

    it('joins (with credential activation) and writes the kubeconfig 0600', async () => {
      const kc = join(out, 'kubelet', 'bootstrap-kubeconfig');
      const r = await runBundle(['--broker', b.url, '--ca-pin', tls.pin, '--cluster', 'c1', '--platform', 'generic', '--out', kc, '--event-log', '/nonexistent', '--deadline', '60s'], tpm.env);
      expect(r.code, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout.trim())).toMatchObject({ ok: true, nodeName: 'node-test-1', kubeconfigPath: kc });
      expect(statSync(kc).mode & 0o777).toBe(0o600);
      expect(readFileSync(kc, 'utf8')).toContain(b.issuedTokens.at(-1)!);
      expect(b.counters).toMatchObject({ challenge: 2, attest: 2, activate: 1 });
    });

    it('exits 1 with JOIN_TLS_PIN_MISMATCH on a wrong pin', async () => {
      const r = await runBundle(['--broker', b.url, '--ca-pin', `sha256:${'1'.repeat(64)}`, '--cluster', 'c1', '--platform', 'generic', '--out', join(out, 'x'), '--deadline', '20s'], tpm.env);
      expect(r.code).toBe(1);
      expect(JSON.parse(r.stdout.trim())).toMatchObject({ ok: false, code: 'JOIN_TLS_PIN_MISMATCH' });
      expect(r.stderr).toMatch(/JOIN_TLS_PIN_MISMATCH/);
      expect(existsSync(join(out, 'x'))).toBe(false);
    });
  });

  (process.env.ATTEST_TEST_SEA === '1' ? it : it.skip)('builds the single executable and it runs --help (ATTEST_TEST_SEA=1)', () => {
    execFileSync(process.execPath, ['scripts/bundle-client.mjs', '--outdir', out], { stdio: 'pipe', timeout: 120_000 });
    const help = execFileSync(join(out, 'attest-join'), ['--help'], { encoding: 'utf8' });
    expect(help).toContain('--ca-pin');
  });
});

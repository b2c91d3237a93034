/**
 * deploy/node/attest-join.sh (POSIX sh, run by dash) against the HTTPS test broker and swtpm:
 * unsealed release over pinned TLS, credential activation, refusal codes, retry of a 503, file
 * mode. shellcheck runs when installed (Debian package `shellcheck`).
 */
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, statSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSwtpm, type Swtpm } from './swtpm.js';
import { makeTls, startTestBroker, type TestBroker, type TestBrokerOptions, type TlsMaterial } from './test-broker.js';

const run = promisify(execFile);
const SCRIPT = 'deploy/node/attest-join.sh';

it('shellcheck accepts attest-join.sh (POSIX sh)', () => {
  execFileSync('shellcheck', ['--shell=sh', '--severity=style', SCRIPT], { encoding: 'utf8' });
});

describe('attest-join.sh (dash + tpm2-tools + curl + openssl)', () => {
  let tpm: Swtpm;
  let tls: TlsMaterial;
  const brokers: TestBroker[] = [];
  const broker = async (o: Partial<TestBrokerOptions> = {}): Promise<TestBroker> => {
    const b = await startTestBroker({ tls, toolsEnv: tpm.env, ...o });
    brokers.push(b);
    return b;
  };
  const sh = async (b: TestBroker, extra: string[] = [], pin = tls.pin): Promise<{ code: number; stderr: string; out: string }> => {
    const out = join(mkdtempSync(join(tmpdir(), 'sh-join-')), 'kubelet', 'bootstrap-kubeconfig');
    try {
      const r = await run('/bin/sh', [SCRIPT, '--broker', b.url, '--ca-pin', pin, '--cluster', 'c1', '--out', out, '--deadline', '60', '--event-log', '/nonexistent', ...extra], {
        env: tpm.env,
        timeout: 90_000,
      });
      return { code: 0, stderr: r.stderr, out };
    } catch (e) {
      const x = e as { code: number; stderr: string };
      return { code: x.code, stderr: x.stderr, out };
    }
  };

  beforeAll(async () => {
    tpm = await startSwtpm({ ekCert: true });
    tls = makeTls('shell');
  });
  afterAll(async () => {
    await Promise.all(brokers.map((b) => b.close()));
    await tpm?.stop();
  });

  it('joins with credential activation and writes the kubeconfig 0600', async () => {
    const b = await broker({ requireActivation: true });
    const r = await sh(b);
    expect(r.code, r.stderr).toBe(0);
    expect(statSync(r.out).mode & 0o777).toBe(0o600);
    expect(readFileSync(r.out, 'utf8')).toContain(b.issuedTokens[0]!);
    expect(readFileSync(r.out, 'utf8')).toContain('current-context: c\n'); // JSON escapes decoded
    expect(b.counters).toEqual({ challenge: 2, attest: 2, activate: 1 });
    // The test broker verified the quote (tpm2_checkquote) and the EK certificate.
    expect(b.last?.evidence.ek_certificate).toBeTypeOf('string');
  });

  it('retries a 503 on the challenge', async () => {
    const b = await broker();
    b.faults.push({ kind: 'status', path: '/v1/challenge', status: 503, code: 'STORE_UNAVAILABLE', retryAfter: '1' });
    const r = await sh(b);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/retrying/);
  });

  it('refuses a wrong pin (exit 1, JOIN_TLS_PIN_MISMATCH) and sends nothing', async () => {
    const b = await broker();
    const r = await sh(b, [], `sha256:${'2'.repeat(64)}`);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('JOIN_TLS_PIN_MISMATCH');
    expect(b.counters.challenge).toBe(0);
    expect(existsSync(r.out)).toBe(false);
  });

  it('reports a policy refusal with the broker code and writes nothing', async () => {
    const b = await broker({ policyRefusal: 'POLICY_PCR_MISMATCH' });
    const r = await sh(b);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('JOIN_REJECTED');
    expect(r.stderr).toContain('POLICY_PCR_MISMATCH');
    expect(existsSync(r.out)).toBe(false);
  });

  it('refuses a release that answers another challenge', async () => {
    const b = await broker({ wrongNonce: true });
    const r = await sh(b);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('JOIN_RELEASE_INVALID');
    expect(existsSync(r.out)).toBe(false);
  });

  it('exits 2 on usage errors', async () => {
    const b = await broker();
    expect((await sh(b, [], 'sha256:abc')).code).toBe(2);
    const r = await run('/bin/sh', [SCRIPT]).catch((e: { code: number }) => e);
    expect((r as { code: number }).code).toBe(2);
  });
});

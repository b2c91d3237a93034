/**
 * deploy/node/attest-join.sh (POSIX sh, run by dash) against the HTTPS test broker and swtpm:
 * release sealed to the TPM (opened with tpm2_activatecredential + openssl; tampered or sealed to
 * another AK refused) and unsealed release over pinned TLS, credential activation, refusal codes, retry of a 503, file
 * mode. shellcheck runs when installed (Debian package `shellcheck`).
 *
 * The bootstrap-path outputs (--kubelet-config-out, --kubeadm-config-out, --node-name-out) are
 * checked against the TypeScript client: the same release must give the same bytes. kubeadm is
 * not packaged for Debian, so `kubeadm config validate` cannot be the oracle here; the YAML is
 * parsed and every field checked instead.
 */
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, statSync, existsSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { AttestError } from '../../providers/common/errors.js';
import { JoinCodes, exitStatusFor } from '../../deploy/node/client/codes.js';
import { join as nodeJoin, type JoinOptions } from '../../deploy/node/client/join.node.js';
import { createToolRunner } from '../../deploy/node/client/tpm.node.js';
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

  it('opens a release sealed to its TPM (tpm2_makecredential + JWE dir/A128CBC-HS256) with tpm2_activatecredential and openssl', async () => {
    const b = await broker({ tpmSeal: 'good' });
    const r = await sh(b);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('release sealed to this TPM opened');
    expect(readFileSync(r.out, 'utf8')).toContain(b.issuedTokens[0]!);
  });

  it.each([
    ['tampered', 'tag does not verify'],
    ['other-ak', 'the sealed release: this TPM cannot open it'],
  ] as const)('refuses a TPM-sealed release that is %s: exit 1, nothing written', async (kind, msg) => {
    const b = await broker({ tpmSeal: kind });
    const r = await sh(b);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('JOIN_RELEASE_INVALID');
    expect(r.stderr).toContain(msg);
    expect(existsSync(r.out)).toBe(false);
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

describe('bootstrap-path outputs: attest-join.sh and the TypeScript client write the same files', () => {
  let tpm: Swtpm;
  let tls: TlsMaterial;
  const brokers: TestBroker[] = [];
  const broker = async (o: Partial<TestBrokerOptions> = {}): Promise<TestBroker> => {
    const b = await startTestBroker({ tls, toolsEnv: tpm.env, ...o });
    brokers.push(b);
    return b;
  };
  beforeAll(async () => {
    tpm = await startSwtpm({ ekCert: true });
    tls = makeTls('bootpaths');
  });
  afterAll(async () => {
    await Promise.all(brokers.map((b) => b.close()));
    await tpm?.stop();
    if (tls) rmSync(tls.dir, { recursive: true, force: true });
  });

  interface Paths {
    out: string;
    kubeletConfig: string;
    kubeadmConfig: string;
    nodeName: string;
  }
  const layout = (root: string): Paths => ({
    out: join(root, 'var', 'lib', 'kubelet', 'bootstrap-kubeconfig'),
    kubeletConfig: join(root, 'etc', 'kubernetes', 'kubelet.conf.d', '50-attest-broker.conf'),
    kubeadmConfig: join(root, 'run', 'attest-join', 'kubeadm-join.yaml'),
    nodeName: join(root, 'var', 'lib', 'attest-join', 'node-name'),
  });
  const flags = (p: Partial<Paths>): string[] => [
    ...(p.out ? ['--out', p.out] : []),
    ...(p.kubeletConfig ? ['--kubelet-config-out', p.kubeletConfig] : []),
    ...(p.kubeadmConfig ? ['--kubeadm-config-out', p.kubeadmConfig] : []),
    ...(p.nodeName ? ['--node-name-out', p.nodeName] : []),
  ];
  const runSh = async (b: TestBroker, p: Partial<Paths>): Promise<{ code: number; stderr: string }> => {
    try {
      const r = await run('/bin/sh', [SCRIPT, '--broker', b.url, '--ca-pin', tls.pin, '--cluster', 'c1', '--deadline', '60', '--event-log', '/nonexistent', ...flags(p)], {
        env: tpm.env,
        timeout: 90_000,
      });
      return { code: 0, stderr: r.stderr };
    } catch (e) {
      const x = e as { code: number; stderr: string };
      return { code: x.code, stderr: x.stderr };
    }
  };
  /** The TypeScript client (sealed release); the error code and its exit status on failure. */
  const runTs = async (b: TestBroker, p: Partial<Paths> & { out: string }): Promise<{ code: number; joinCode?: string }> => {
    const o: JoinOptions = {
      broker: b.url,
      caPin: tls.pin,
      cluster: 'c1',
      platform: 'generic',
      out: p.out,
      deadlineMs: 60_000,
      tools: createToolRunner(tpm.env),
      eventLogPath: '/nonexistent',
      log: () => undefined,
      ...(p.kubeletConfig ? { kubeletConfigOut: p.kubeletConfig } : {}),
      ...(p.kubeadmConfig ? { kubeadmConfigOut: p.kubeadmConfig } : {}),
      ...(p.nodeName ? { nodeNameOut: p.nodeName } : {}),
    };
    try {
      await nodeJoin(o);
      return { code: 0 };
    } catch (e) {
      return { code: exitStatusFor(e), ...(e instanceof AttestError ? { joinCode: e.code } : {}) };
    }
  };
  const snapshot = (p: Paths): Record<keyof Paths, { text: string; mode: number; mtimeNs: bigint }> => {
    const one = (f: string): { text: string; mode: number; mtimeNs: bigint } => {
      const st = statSync(f, { bigint: true });
      return { text: readFileSync(f, 'utf8'), mode: Number(st.mode) & 0o777, mtimeNs: st.mtimeNs };
    };
    return { out: one(p.out), kubeletConfig: one(p.kubeletConfig), kubeadmConfig: one(p.kubeadmConfig), nodeName: one(p.nodeName) };
  };
  const noTempFiles = (p: Paths): void => {
    for (const f of Object.values(p)) expect(readdirSync(dirname(f)).filter((n) => n.startsWith('.'))).toEqual([]);
  };

  const TOKEN = 'k7q2xw.0123456789abcdef';
  const HASHES = [`sha256:${'a1'.repeat(32)}`, `sha256:${'0f'.repeat(32)}`];

  it('same release → byte-identical files, all 0600, the kubeconfig written last; every field checked', async () => {
    const b = await broker({ fixedToken: TOKEN, releaseOverrides: { nodeName: 'worker-7.prod.example', caCertHashes: HASHES, apiServer: 'https://api.prod.example:6443' } });
    const root = mkdtempSync(join(tmpdir(), 'bootpaths-'));
    const p = layout(root);

    expect(await runTs(b, p)).toEqual({ code: 0 });
    const ts = snapshot(p);
    noTempFiles(p);
    rmSync(join(root, 'var'), { recursive: true });
    rmSync(join(root, 'etc'), { recursive: true });
    rmSync(join(root, 'run'), { recursive: true });

    const r = await runSh(b, p);
    expect(r.code, r.stderr).toBe(0);
    const shell = snapshot(p);
    noTempFiles(p);

    for (const k of ['out', 'kubeletConfig', 'kubeadmConfig', 'nodeName'] as const) {
      expect(shell[k].text, k).toBe(ts[k].text);
      expect(ts[k].mode, k).toBe(0o600);
      expect(shell[k].mode, k).toBe(0o600);
    }
    // Written last (same or later timestamp than each of the others, in both clients).
    for (const s of [ts, shell]) {
      for (const k of ['kubeletConfig', 'kubeadmConfig', 'nodeName'] as const) expect(s.out.mtimeNs >= s[k].mtimeNs, k).toBe(true);
    }

    expect(shell.nodeName.text).toBe('worker-7.prod.example\n');

    expect(parseYaml(shell.kubeletConfig.text)).toEqual({
      apiVersion: 'kubelet.config.k8s.io/v1beta1',
      kind: 'KubeletConfiguration',
      rotateCertificates: true,
      serverTLSBootstrap: true,
    });

    const kubeadm = shell.kubeadmConfig.text;
    expect(parseYaml(kubeadm)).toEqual({
      apiVersion: 'kubeadm.k8s.io/v1beta4',
      kind: 'JoinConfiguration',
      discovery: { file: { kubeConfigPath: p.out }, tlsBootstrapToken: TOKEN },
      nodeRegistration: { name: 'worker-7.prod.example', kubeletExtraArgs: [{ name: 'config-dir', value: dirname(p.kubeletConfig) }] },
    });
    // No token discovery (the broker's tokens cannot sign cluster-info); the hashes and the API
    // server are recorded for operators as comments, one hash a line.
    expect(kubeadm).not.toMatch(/bootstrapToken:|caCertHashes:|apiServerEndpoint:/);
    expect(kubeadm).toContain('# API server (from the release): https://api.prod.example:6443\n');
    for (const h of HASHES) expect(kubeadm).toContain(`\n#   ${h}\n`);
    expect(shell.out.text).toContain(TOKEN);
  });

  it('without --kubelet-config-out the kubeadm configuration has no kubeletExtraArgs; without caCertHashes it says so', async () => {
    const b = await broker({ fixedToken: TOKEN, releaseOverrides: { caCertHashes: undefined } });
    const root = mkdtempSync(join(tmpdir(), 'bootpaths-'));
    const p = { out: join(root, 'kubelet', 'bootstrap-kubeconfig'), kubeadmConfig: join(root, 'kubeadm.yaml') };
    expect(await runTs(b, p)).toEqual({ code: 0 });
    const ts = readFileSync(p.kubeadmConfig, 'utf8');
    rmSync(p.kubeadmConfig);
    rmSync(p.out);
    const r = await runSh(b, p);
    expect(r.code, r.stderr).toBe(0);
    const shell = readFileSync(p.kubeadmConfig, 'utf8');
    expect(shell).toBe(ts);
    expect(parseYaml(shell)).toEqual({
      apiVersion: 'kubeadm.k8s.io/v1beta4',
      kind: 'JoinConfiguration',
      discovery: { file: { kubeConfigPath: p.out }, tlsBootstrapToken: TOKEN },
      nodeRegistration: { name: 'node-test-1' },
    });
    expect(shell).toContain('#   (none: the API server certificate is publicly trusted)\n');
  });

  it('an unwritable kubeadm output: exit 1 JOIN_WRITE_FAILED, and the kubeconfig is not written', async () => {
    const b = await broker();
    for (const client of ['ts', 'sh'] as const) {
      const root = mkdtempSync(join(tmpdir(), 'bootpaths-'));
      writeFileSync(join(root, 'not-a-dir'), '');
      const p = { ...layout(root), kubeadmConfig: join(root, 'not-a-dir', 'kubeadm-join.yaml') };
      if (client === 'ts') {
        expect(await runTs(b, p)).toEqual({ code: 1, joinCode: JoinCodes.WRITE_FAILED });
      } else {
        const r = await runSh(b, p);
        expect(r.code).toBe(1);
        expect(r.stderr).toContain(`JOIN_WRITE_FAILED: cannot write ${p.kubeadmConfig}`);
      }
      expect(existsSync(p.out), client).toBe(false);
      // What comes before it in the order was written; nothing after it.
      expect(existsSync(p.nodeName), client).toBe(true);
      expect(existsSync(p.kubeletConfig), client).toBe(true);
    }
  });

  it.each([
    ['a node name that is not a DNS-1123 subdomain', { nodeName: 'Worker_7' }],
    ['a node name carrying YAML', { nodeName: 'w7"\n  name: "evil' }],
    ['a node name with a trailing newline', { nodeName: 'w7\n' }],
    ['a token with a trailing newline', { bootstrapToken: `${TOKEN}\n` }],
    ['an http API server', { apiServer: 'http://api.prod.example:6443' }],
    ['an API server carrying YAML', { apiServer: 'https://api.prod.example:6443/"\nkind: Pod' }],
    ['a malformed CA hash', { caCertHashes: [`sha256:${'a'.repeat(64)}x`] }],
  ])('refuses %s in both clients (exit 1, JOIN_RELEASE_INVALID) and writes nothing', async (_what, overrides) => {
    const b = await broker({ fixedToken: TOKEN, releaseOverrides: overrides });
    for (const client of ['ts', 'sh'] as const) {
      const root = mkdtempSync(join(tmpdir(), 'bootpaths-'));
      const p = layout(root);
      if (client === 'ts') {
        expect(await runTs(b, p)).toEqual({ code: 1, joinCode: JoinCodes.RELEASE_INVALID });
      } else {
        const r = await runSh(b, p);
        expect(r.code).toBe(1);
        expect(r.stderr).toContain('JOIN_RELEASE_INVALID');
      }
      for (const f of Object.values(p)) expect(existsSync(f), `${client} ${f}`).toBe(false);
    }
  });

  it.each([
    ['a kubelet drop-in not named *.conf', (p: Paths) => ({ ...p, kubeletConfig: p.kubeletConfig.replace(/\.conf$/, '.yaml') })],
    ['a relative --out with --kubeadm-config-out', (p: Paths) => ({ ...p, out: 'bootstrap-kubeconfig' })],
    ['an --out with a space with --kubeadm-config-out', (p: Paths) => ({ ...p, out: `${dirname(p.out)}/boot strap` })],
    ['a drop-in directory with a quote with --kubeadm-config-out', (p: Paths) => ({ ...p, kubeletConfig: `${dirname(p.kubeletConfig)}"x/50.conf` })],
  ])('refuses %s as a usage error (exit 2) before contacting the broker', async (_what, change) => {
    const b = await broker();
    const p = change(layout(mkdtempSync(join(tmpdir(), 'bootpaths-'))));
    expect(await runTs(b, p)).toEqual({ code: 2, joinCode: JoinCodes.USAGE });
    expect((await runSh(b, p)).code).toBe(2);
    expect(b.counters.challenge).toBe(0);
  });
});

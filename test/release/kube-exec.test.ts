/**
 * Kubeconfig exec credential plugins (broker/release/kube-exec.node.ts) through the real client
 * (kubeconfigAccess → kubeClientFor → KubeClient) against the local TLS API server
 * (test/servers/kube-apiserver.ts). The plugin is a small node script that prints an
 * ExecCredential according to a state file the test writes, and records every run (its
 * KUBERNETES_EXEC_INFO and environment) so the test counts runs and checks the input.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml, stringify } from 'yaml';
import { kubeClientFor, kubeconfigAccess, type KubeconfigOptions } from '../../broker/release/kube.node.js';
import { parseExecConfig, parseExecCredential, redactedSummary } from '../../broker/release/kube-exec.node.js';
import { makeTestPki, type TestPki } from '../servers/tls.js';
import { startKubeServer, type KubeTestServer } from '../servers/kube-apiserver.js';
import { captureLogger, fixedClock } from './helpers.js';

const V1 = 'client.authentication.k8s.io/v1';
const V1BETA1 = 'client.authentication.k8s.io/v1beta1';
const noSleep = async (): Promise<void> => undefined;

const PLUGIN = `
import { appendFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
const dir = process.argv[2];
const st = JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8'));
let n = 0;
try { n = readFileSync(join(dir, 'runs.jsonl'), 'utf8').split('\\n').filter(Boolean).length; } catch {}
appendFileSync(join(dir, 'runs.jsonl'), JSON.stringify({ info: process.env.KUBERNETES_EXEC_INFO ?? null, base: process.env.ATTEST_BASE ?? null, override: process.env.ATTEST_OVERRIDE ?? null, extra: process.env.PLUGIN_EXTRA ?? null, argv: process.argv.slice(3) }) + '\\n');
const pick = (a) => a[Math.min(n, a.length - 1)];
const status = {};
if (st.tokens) status.token = pick(st.tokens);
if (st.cert) { status.clientCertificateData = st.cert; status.clientKeyData = st.key; }
if (st.expirations) status.expirationTimestamp = pick(st.expirations);
const out = JSON.stringify({ apiVersion: st.apiVersion, kind: 'ExecCredential', spec: {}, status });
setTimeout(() => {
  if (st.mode === 'exit') { process.stderr.write(st.stderr ?? ''); process.exit(1); }
  if (st.mode === 'garbage') { process.stdout.write('Please visit https://login.example/device and enter the code'); return; }
  if (st.mode === 'big') { process.stdout.write('{' + ' '.repeat(2 * 1024 * 1024)); return; }
  if (st.mode === 'hang') { setInterval(() => {}, 1000); return; }
  process.stdout.write(out);
}, st.delayMs ?? 0);
`;

let pki: TestPki;
let srv: KubeTestServer;
let dir: string;
let goodToken: string;

interface PluginState {
  apiVersion?: string;
  tokens?: string[];
  expirations?: string[];
  cert?: string;
  key?: string;
  mode?: 'ok' | 'exit' | 'garbage' | 'big' | 'hang';
  stderr?: string;
  delayMs?: number;
}

function setPlugin(st: PluginState): void {
  writeFileSync(join(dir, 'state.json'), JSON.stringify({ apiVersion: V1, ...st }));
  rmSync(join(dir, 'runs.jsonl'), { force: true });
}

function runs(): Array<{ info: string | null; base: string | null; override: string | null; extra: string | null; argv: string[] }> {
  const f = join(dir, 'runs.jsonl');
  if (!existsSync(f)) return [];
  return readFileSync(f, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as ReturnType<typeof runs>[number]);
}

function writeKubeconfig(exec: Record<string, unknown> | undefined, extra: { user?: Record<string, unknown>; cluster?: Record<string, unknown> } = {}): string {
  const f = join(dir, `kubeconfig-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(
    f,
    stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 't', cluster: { server: srv.url, 'certificate-authority-data': Buffer.from(pki.caPem).toString('base64'), ...extra.cluster } }],
      users: [{ name: 'broker', user: { ...(exec ? { exec } : {}), ...extra.user } }],
      contexts: [{ name: 't', context: { cluster: 't', user: 'broker' } }],
      'current-context': 't',
    }),
  );
  return f;
}

const execBlock = (over: Record<string, unknown> = {}): Record<string, unknown> => ({
  apiVersion: V1,
  command: process.execPath,
  args: [join(dir, 'plugin.mjs'), dir, '--cluster', 'prod'],
  env: [
    { name: 'PLUGIN_EXTRA', value: 'from-kubeconfig' },
    { name: 'ATTEST_OVERRIDE', value: 'kubeconfig' },
  ],
  interactiveMode: 'Never',
  ...over,
});

const baseEnv = { PATH: process.env.PATH ?? '', ATTEST_BASE: 'base', ATTEST_OVERRIDE: 'broker' };

function client(exec: Record<string, unknown> = execBlock(), o: KubeconfigOptions = {}) {
  const access = kubeconfigAccess(writeKubeconfig(exec), undefined, { baseEnv, ...o });
  return kubeClientFor(access, { sleep: noSleep, attempts: 2 });
}

const userOf = (since: number): Array<string | undefined> => srv.requests.slice(since).map((r) => r.user);

beforeAll(async () => {
  pki = makeTestPki();
  srv = await startKubeServer(pki);
  dir = mkdtempSync(join(pki.dir, 'exec-'));
  writeFileSync(join(dir, 'plugin.mjs'), PLUGIN);
  goodToken = srv.addToken({ username: 'system:serviceaccount:attest-broker:exec-broker', groups: ['system:masters'] });
});
afterAll(async () => {
  await srv?.close();
});
beforeEach(() => setPlugin({ tokens: [goodToken] }));

describe('exec credential plugin through the real Kubernetes client', () => {
  it('the API server sees the plugin token; the plugin gets KUBERNETES_EXEC_INFO per the spec, env merged over the broker environment, its args', async () => {
    const kube = client(execBlock({ provideClusterInfo: true }));
    const before = srv.requests.length;
    expect(await kube.getSecret('kube-system', 'bootstrap-token-nonexi')).toBeNull();
    await kube.ready();
    expect(userOf(before)).toEqual(['system:serviceaccount:attest-broker:exec-broker', 'system:serviceaccount:attest-broker:exec-broker']);
    const r = runs();
    expect(r).toHaveLength(1); // cached: no expiry, so it lasts until a 401
    expect(JSON.parse(r[0]!.info!)).toEqual({
      apiVersion: V1,
      kind: 'ExecCredential',
      spec: { interactive: false, cluster: { server: srv.url, 'certificate-authority-data': Buffer.from(pki.caPem).toString('base64') } },
    });
    expect(r[0]).toMatchObject({ base: 'base', override: 'kubeconfig', extra: 'from-kubeconfig', argv: ['--cluster', 'prod'] });
  });

  it('without provideClusterInfo spec.cluster is absent; v1beta1 works too and a cluster exec extension is passed as config', async () => {
    setPlugin({ apiVersion: V1BETA1, tokens: [goodToken] });
    let kube = client(execBlock({ apiVersion: V1BETA1, interactiveMode: undefined }));
    await kube.ready();
    expect(JSON.parse(runs()[0]!.info!)).toEqual({ apiVersion: V1BETA1, kind: 'ExecCredential', spec: { interactive: false } });
    setPlugin({ tokens: [goodToken] });
    const f = writeKubeconfig(execBlock({ provideClusterInfo: true }), { cluster: { extensions: [{ name: 'client.authentication.k8s.io/exec', extension: { audience: 'attest' } }] } });
    kube = kubeClientFor(kubeconfigAccess(f, undefined, { baseEnv }), { sleep: noSleep });
    await kube.ready();
    expect(JSON.parse(runs()[0]!.info!).spec.cluster.config).toEqual({ audience: 'attest' });
  });

  it('a credential is renewed before its expirationTimestamp (injected clock)', async () => {
    const clock = fixedClock('2026-12-01T10:00:00Z');
    const second = srv.addToken({ username: 'exec-second', groups: ['system:masters'] });
    setPlugin({ tokens: [goodToken, second], expirations: ['2026-12-01T10:10:00Z', '2026-12-01T11:00:00+00:00'] });
    const kube = client(execBlock(), { now: () => clock.now() });
    const before = srv.requests.length;
    await kube.ready();
    clock.set(new Date('2026-12-01T10:05:00Z'));
    await kube.ready(); // still valid
    expect(runs()).toHaveLength(1);
    clock.set(new Date('2026-12-01T10:09:30Z')); // within the 60 s renewal window
    await kube.ready();
    expect(runs()).toHaveLength(2);
    expect(userOf(before)).toEqual(['system:serviceaccount:attest-broker:exec-broker', 'system:serviceaccount:attest-broker:exec-broker', 'exec-second']);
  });

  it('a 401 renews the credential once and retries the request; a second 401 is KUBE_FORBIDDEN', async () => {
    setPlugin({ tokens: ['stale-token-not-known-to-the-server', goodToken] });
    const kube = client();
    const before = srv.requests.length;
    expect(await kube.getSecret('kube-system', 'bootstrap-token-nonexi')).toBeNull();
    expect(srv.requests.slice(before).map((r) => r.status)).toEqual([401, 404]);
    expect(runs()).toHaveLength(2);

    setPlugin({ tokens: ['stale-1', 'stale-2', goodToken] });
    const k2 = client();
    const b2 = srv.requests.length;
    await expect(k2.getSecret('kube-system', 'x')).rejects.toMatchObject({ code: 'KUBE_FORBIDDEN', kind: 'config' });
    expect(srv.requests.slice(b2).map((r) => r.status)).toEqual([401, 401]);
    expect(runs()).toHaveLength(2);
  });

  it('the approver\'s CSR watch also renews once on a 401', async () => {
    setPlugin({ tokens: ['stale-watch-token', goodToken] });
    const kube = client();
    const before = srv.requests.length;
    const ac = new AbortController();
    expect(await kube.watchCsrs('', ac.signal, async () => undefined, 1)).toBe('ended');
    expect(srv.requests.slice(before).map((r) => r.status)).toEqual([401, 200]);
    expect(runs()).toHaveLength(2);
  });

  it('concurrent requests run the plugin once (single flight), also on a shared 401', async () => {
    setPlugin({ tokens: [goodToken], delayMs: 300 });
    const kube = client();
    await Promise.all(Array.from({ length: 8 }, () => kube.ready()));
    expect(runs()).toHaveLength(1);

    setPlugin({ tokens: ['stale-token', goodToken], delayMs: 100 });
    const k2 = client();
    await Promise.all(Array.from({ length: 6 }, () => k2.ready()));
    expect(runs()).toHaveLength(2);
  });

  it('a client certificate from the plugin is presented over TLS', async () => {
    const cdir = mkdtempSync(join(dir, 'cert-'));
    const o = { cwd: cdir, stdio: ['ignore', 'ignore', 'pipe'] as ['ignore', 'ignore', 'pipe'] };
    execFileSync('openssl', ['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'c.key', '-out', 'c.csr', '-subj', '/O=system:masters/CN=exec-cert-user'], o);
    writeFileSync(join(cdir, 'ext.cnf'), 'extendedKeyUsage=clientAuth\n');
    execFileSync('openssl', ['x509', '-req', '-in', 'c.csr', '-CA', join(pki.dir, 'ca.crt'), '-CAkey', join(pki.dir, 'ca.key'), '-CAcreateserial', '-out', 'c.crt', '-days', '1', '-extfile', 'ext.cnf'], o);
    setPlugin({ cert: readFileSync(join(cdir, 'c.crt'), 'utf8'), key: readFileSync(join(cdir, 'c.key'), 'utf8') });
    const kube = client();
    const before = srv.requests.length;
    await kube.ready();
    expect(userOf(before)).toEqual(['exec-cert-user']);
  });
});

describe('exec plugin failures are typed, bounded and redacted', () => {
  it('exit 1 → KUBE_EXEC_FAILED naming the plugin, with a redacted stderr summary; nothing secret in the logs', async () => {
    const secretish = 'AKIAIOSFODNN7EXAMPLE0123456789abcdefXYZ';
    setPlugin({ mode: 'exit', stderr: `error: token=${secretish}\nAn error occurred (ExpiredToken): Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.sig\n` });
    const logger = captureLogger();
    const kube = client(execBlock(), { logger });
    const err = await kube.ready().then(
      () => null,
      (e: unknown) => e as { code: string; kind: string; message: string },
    );
    expect(err).toMatchObject({ code: 'KUBE_EXEC_FAILED', kind: 'unavailable' });
    expect(err!.message).toMatch(/^the exec plugin `node` exited 1: /);
    expect(err!.message).toContain('ExpiredToken');
    expect(err!.message).not.toContain(secretish);
    expect(err!.message).not.toContain('eyJhbGci');
    const logs = logger.lines.join('\n');
    expect(logs).toContain('KUBE_EXEC_FAILED');
    expect(logs).not.toContain(secretish);
    expect(logs).not.toContain('eyJhbGci');
  });

  it('a failure is answered again for a few seconds without running the plugin (injected clock), then retried', async () => {
    const clock = fixedClock('2026-12-01T10:00:00Z');
    setPlugin({ mode: 'exit', stderr: 'boom' });
    const kube = client(execBlock(), { now: () => clock.now() });
    await expect(kube.ready()).rejects.toMatchObject({ code: 'KUBE_EXEC_FAILED' });
    await expect(kube.ready()).rejects.toMatchObject({ code: 'KUBE_EXEC_FAILED' });
    expect(runs()).toHaveLength(1);
    clock.set(new Date('2026-12-01T10:00:06Z'));
    writeFileSync(join(dir, 'state.json'), JSON.stringify({ apiVersion: V1, tokens: [goodToken] }));
    await kube.ready();
    expect(runs()).toHaveLength(2);
  });

  it('garbage on stdout → KUBE_EXEC_OUTPUT_INVALID (the output is not quoted)', async () => {
    setPlugin({ mode: 'garbage' });
    const err = await client().ready().catch((e: unknown) => e as { code: string; message: string });
    expect(err).toMatchObject({ code: 'KUBE_EXEC_OUTPUT_INVALID', kind: 'config' });
    expect(err!.message).not.toContain('login.example');
  });

  it('too much on stdout → KUBE_EXEC_OUTPUT_TOO_LARGE', async () => {
    setPlugin({ mode: 'big' });
    await expect(client(execBlock(), { maxOutputBytes: 64 * 1024 }).ready()).rejects.toMatchObject({ code: 'KUBE_EXEC_OUTPUT_TOO_LARGE' });
  });

  it('a plugin that hangs past the timeout → KUBE_EXEC_TIMEOUT', async () => {
    setPlugin({ mode: 'hang' });
    const t0 = Date.now();
    await expect(client(execBlock(), { timeoutMs: 400 }).ready()).rejects.toMatchObject({ code: 'KUBE_EXEC_TIMEOUT', kind: 'unavailable' });
    expect(Date.now() - t0).toBeLessThan(5_000);
  });

  it('a command that does not exist → KUBE_EXEC_NOT_FOUND with the install hint; a relative path is relative to the kubeconfig', async () => {
    const err = await client(execBlock({ command: 'attest-no-such-plugin', installHint: 'install it with: apt install attest-plugin' }))
      .ready()
      .catch((e: unknown) => e as { code: string; message: string });
    expect(err).toMatchObject({ code: 'KUBE_EXEC_NOT_FOUND', kind: 'config' });
    expect(err!.message).toContain('apt install attest-plugin');
    writeFileSync(join(dir, 'plugin.sh'), `#!/bin/sh\nexec "${process.execPath}" "$@"\n`, { mode: 0o755 });
    await client(execBlock({ command: './plugin.sh' })).ready();
    expect(runs()).toHaveLength(1);
  });

  it('the token never reaches the logs of a successful run either', async () => {
    const logger = captureLogger();
    await client(execBlock(), { logger }).ready();
    expect(logger.lines.join('\n')).toContain('kubernetes exec credential obtained');
    expect(logger.lines.join('\n')).not.toContain(goodToken);
  });
});

describe('kubeconfig exec validation at load time', () => {
  const load = (exec: Record<string, unknown> | undefined, extra = {}) => () => kubeconfigAccess(writeKubeconfig(exec, extra));

  it('refuses interactiveMode Always, v1 without interactiveMode, unknown apiVersions, a missing command', () => {
    expect(load(execBlock({ interactiveMode: 'Always' }))).toThrow(expect.objectContaining({ code: 'KUBE_CONFIG_INVALID', message: expect.stringMatching(/interactiveMode Always/) }));
    expect(load(execBlock({ interactiveMode: undefined }))).toThrow(/interactiveMode must be set/);
    expect(load(execBlock({ apiVersion: 'client.authentication.k8s.io/v1alpha1' }))).toThrow(/apiVersion must be one of/);
    expect(load(execBlock({ command: undefined }))).toThrow(/exec.command is required/);
    expect(load(execBlock(), { user: { token: 'x' } })).toThrow(/only one way/);
  });

  it('refuses auth-provider with a pointer at exec plugins', () => {
    expect(load(undefined, { user: { 'auth-provider': { name: 'gcp' } } })).toThrow(expect.objectContaining({ code: 'KUBE_CONFIG_INVALID', message: expect.stringMatching(/auth-provider gcp is not supported.*exec credential plugin.*gke-gcloud-auth-plugin/) }));
  });
});

describe('docs/deploy.md', () => {
  it('its EKS, GKE and AKS exec examples pass the load-time checks', () => {
    const doc = readFileSync(join(import.meta.dirname, '../../docs/deploy.md'), 'utf8');
    const section = doc.slice(doc.indexOf('### The broker outside the cluster'), doc.indexOf('## Terraform'));
    const blocks = [...section.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]!);
    const execs = blocks.map((b) => {
      const y = parseYaml(b.startsWith('    ') ? b.replace(/^ {4}/gm, '') : b) as Record<string, unknown>;
      return (y.users as Array<{ user: { exec: unknown } }> | undefined)?.[0]?.user.exec ?? y.exec;
    });
    expect(execs).toHaveLength(3);
    expect(execs.map((e) => parseExecConfig(e, 'docs', '/').commandName)).toEqual(['aws', 'gke-gcloud-auth-plugin', 'kubelogin']);
  });
});

describe('ExecCredential parsing is strict', () => {
  const ok = { apiVersion: V1, kind: 'ExecCredential', status: { token: 't0k', expirationTimestamp: '2026-12-01T10:00:00.5Z' } };
  const parse = (v: unknown) => () => parseExecCredential(JSON.stringify(v), V1, 'p');
  it('accepts a token with an RFC 3339 expiry and refuses the rest', () => {
    expect(parse(ok)()).toEqual({ token: 't0k', expiresAt: Date.parse('2026-12-01T10:00:00.5Z') });
    expect(parse({ ...ok, apiVersion: V1BETA1 })).toThrow(/apiVersion/);
    expect(parse({ ...ok, kind: 'Other' })).toThrow(/kind/);
    expect(parse({ ...ok, status: { token: 't', expirationTimestamp: '2026-12-01 10:00' } })).toThrow(/RFC 3339/);
    expect(parse({ ...ok, status: { token: 't', expirationTimestamp: 1764583200 } })).toThrow(/not a string/);
    expect(parse({ ...ok, status: { clientCertificateData: '-----BEGIN CERTIFICATE-----' } })).toThrow(/both or neither/);
    expect(parse({ ...ok, status: {} })).toThrow(/neither status.token/);
    expect(parse({ ...ok, status: { token: 'a\r\nb' } })).toThrow(/header/);
    expect(parse({ ...ok, status: { token: 't', tokne: 'x' } })).toThrow(/unknown status field/);
    expect(() => parseExecCredential('', V1, 'p')).toThrow(expect.objectContaining({ code: 'KUBE_EXEC_OUTPUT_INVALID' }));
  });

  it('redaction keeps the gist and drops secrets', () => {
    const s = redactedSummary('-----BEGIN PRIVATE KEY-----\nMIGH\n-----END PRIVATE KEY-----\nfailed: "secret": "hunter2hunter2" at /usr/local/bin/aws-iam-authenticator', ['hunter2']);
    expect(s).not.toContain('MIGH');
    expect(s).not.toContain('hunter2');
    expect(s).toContain('/usr/local/bin/aws-iam-authenticator');
    expect(redactedSummary('x'.repeat(1000)).length).toBeLessThanOrEqual(301);
  });
});

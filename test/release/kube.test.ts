/**
 * The Kubernetes client against the local TLS API server (test/servers/kube-apiserver.ts):
 * status handling (201/409/403/404/5xx), retries only where safe, resourceVersion
 * preconditions, CA pinning, the issuer's lost-201 recovery and sweep, and `kubectl` (Debian
 * kubernetes-client) reading the Secret we wrote and authenticating with the bootstrap
 * kubeconfig we hand to nodes.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { KubeClient } from '../../broker/release/kube.js';
import { caFetch, kubeClientFor, kubeconfigAccess } from '../../broker/release/kube.node.js';
import { TokenIssuer } from '../../broker/release/issuer.js';
import { bootstrapKubeconfig, bootstrapSecret, generateToken } from '../../broker/release/token.js';
import { makeTestPki, type TestPki } from '../servers/tls.js';
import { startKubeServer, type KubeTestServer } from '../servers/kube-apiserver.js';
import { captureLogger, fixedClock, memoryStore } from './helpers.js';

const KUBECTL = '/usr/bin/kubectl';
// kubectl must run asynchronously: the API server under test lives in this process.
const run = promisify(execFile);
const noSleep = async (): Promise<void> => undefined;

let pki: TestPki;
let srv: KubeTestServer;
let kube: KubeClient;
let kubeconfigFile: string;

beforeAll(async () => {
  pki = makeTestPki();
  srv = await startKubeServer(pki);
  kubeconfigFile = join(pki.dir, 'admin.kubeconfig');
  writeFileSync(
    kubeconfigFile,
    stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 't', cluster: { server: srv.url, 'certificate-authority-data': Buffer.from(pki.caPem).toString('base64') } }],
      users: [{ name: 'broker', user: { token: srv.adminToken } }],
      contexts: [{ name: 't', context: { cluster: 't', user: 'broker' } }],
      'current-context': 't',
    }),
  );
  kube = kubeClientFor(kubeconfigAccess(kubeconfigFile), { sleep: noSleep });
});
afterAll(async () => {
  await srv?.close();
});

function newSecret() {
  const token = generateToken();
  return { token, secret: bootstrapSecret({ token, expiresAt: new Date(Date.now() + 600_000), extraGroups: [], description: 'test' }) };
}

describe('KubeClient over TLS with the cluster CA', () => {
  it('creates (201), sees an existing name (409), reads, deletes with resourceVersion, then 404', async () => {
    const { token, secret } = newSecret();
    expect(await kube.createSecret(secret)).toBe('created');
    expect(await kube.createSecret(secret)).toBe('exists');
    const got = await kube.getSecret('kube-system', `bootstrap-token-${token.id}`);
    expect(got?.data).toEqual(secret.data);
    expect(got?.metadata.resourceVersion).toMatch(/^\d+$/);
    await expect(kube.deleteSecret('kube-system', `bootstrap-token-${token.id}`, '1')).rejects.toMatchObject({ code: 'KUBE_CONFLICT' });
    expect(await kube.deleteSecret('kube-system', `bootstrap-token-${token.id}`, got!.metadata.resourceVersion)).toBe(true);
    expect(await kube.deleteSecret('kube-system', `bootstrap-token-${token.id}`)).toBe(false);
    expect(await kube.getSecret('kube-system', `bootstrap-token-${token.id}`)).toBeNull();
  });

  it('403 is a config fault and is not retried', async () => {
    srv.forbid = true;
    const before = srv.requests.length;
    try {
      await expect(kube.createSecret(newSecret().secret)).rejects.toMatchObject({ code: 'KUBE_FORBIDDEN', kind: 'config' });
      expect(srv.requests.length - before).toBe(1);
    } finally {
      srv.forbid = false;
    }
  });

  it('5xx is retried and then succeeds', async () => {
    srv.failNext(2, 503);
    const { secret } = newSecret();
    expect(await kube.createSecret(secret)).toBe('created');
  });

  it('a persistent 5xx becomes KUBE_UNAVAILABLE (kind unavailable) after the attempts', async () => {
    srv.failNext(100, 500);
    const before = srv.requests.length;
    await expect(kube.getSecret('kube-system', 'bootstrap-token-zzzzzz')).rejects.toMatchObject({ code: 'KUBE_UNAVAILABLE', kind: 'unavailable' });
    expect(srv.requests.length - before).toBe(4);
    srv.failNext(0, 0);
  });

  it('a hung API server times out into KUBE_UNAVAILABLE instead of hanging the release', async () => {
    srv.hangNext(2);
    const c = kubeClientFor(kubeconfigAccess(kubeconfigFile), { sleep: noSleep, attempts: 2, timeoutMs: 300 });
    await expect(c.getSecret('kube-system', 'bootstrap-token-zzzzzz')).rejects.toMatchObject({ code: 'KUBE_UNAVAILABLE' });
  });

  it('refuses a server whose certificate is not from the pinned CA', async () => {
    const other = makeTestPki('another-ca');
    const c = new KubeClient({ server: srv.url, token: () => srv.adminToken, fetch: caFetch({ ca: other.caPem }), sleep: noSleep, attempts: 1 });
    await expect(c.getSecret('kube-system', 'x')).rejects.toMatchObject({ code: 'KUBE_UNAVAILABLE' });
  });
});

describe('TokenIssuer against the API server', () => {
  const base = { instanceKey: 'k', instanceId: 'i-1', provider: 'aws', cloud: 'aws', nodeName: 'n1', cluster: 'prod', requestId: 'r1' };

  it('recovers from a lost 201 (POST applied, response lost): the retry sees 409 and proves the Secret is ours', async () => {
    const clock = fixedClock(new Date().toISOString());
    const issuer = new TokenIssuer({ store: memoryStore(clock), clock, logger: captureLogger(), kube });
    srv.failNext(1, 500, true);
    const issued = await issuer.issue({ ttlSeconds: 600, extraGroups: [], description: 'd', state: base });
    const s = srv.secrets.get(`kube-system/bootstrap-token-${issued.token.id}`);
    expect(Buffer.from(s!.data['token-secret']!, 'base64').toString()).toBe(issued.token.secret);
  });

  it('a 409 for somebody else\'s token id makes the issuer pick another id', async () => {
    const clock = fixedClock(new Date().toISOString());
    const taken = newSecret();
    await kube.createSecret(taken.secret);
    const fresh = generateToken();
    const queue = [{ ...taken.token, secret: 'zzzzzzzzzzzzzzzz', value: `${taken.token.id}.zzzzzzzzzzzzzzzz` }, fresh];
    const issuer = new TokenIssuer({ store: memoryStore(clock), clock, logger: captureLogger(), kube, generate: () => queue.shift()! });
    const issued = await issuer.issue({ ttlSeconds: 600, extraGroups: [], description: 'd', state: base });
    expect(issued.token.id).toBe(fresh.id);
    // the other Secret is untouched
    expect(Buffer.from(srv.secrets.get(`kube-system/bootstrap-token-${taken.token.id}`)!.data['token-secret']!, 'base64').toString()).toBe(taken.token.secret);
  });

  it('sweep deletes our expired and used tokens, keeps live ones and never touches kubeadm\'s', async () => {
    const clock = fixedClock(new Date().toISOString());
    const store = memoryStore(clock);
    const issuer = new TokenIssuer({ store, clock, logger: captureLogger(), kube });
    const kubeadm = newSecret(); // kubeadm's default group, not attest-broker's: not ours
    kubeadm.secret.data['auth-extra-groups'] = Buffer.from('system:bootstrappers:kubeadm:default-node-token').toString('base64');
    kubeadm.secret.data.expiration = Buffer.from('2000-01-01T00:00:00Z').toString('base64');
    await kube.createSecret(kubeadm.secret);
    const live = await issuer.issue({ ttlSeconds: 600, extraGroups: [], description: 'd', state: base });
    const used = await issuer.issue({ ttlSeconds: 600, extraGroups: [], description: 'd', state: base });
    const short = await issuer.issue({ ttlSeconds: 60, extraGroups: [], description: 'd', state: base });
    await issuer.state(used.token.id).then((s) => store.set(`release:token:${used.token.id}`, JSON.stringify({ ...s, used: clock.now().toISOString() })));
    clock.set(new Date(clock.now().getTime() + 120_000));
    const r = await issuer.sweep();
    // (tokens issued by the earlier tests' issuers have no state in this store: deleted too)
    expect(r.deleted).toEqual(expect.arrayContaining([used.token.id, short.token.id]));
    expect(r.deleted).not.toContain(live.token.id);
    expect(r.deleted).not.toContain(kubeadm.token.id);
    expect(srv.secrets.has(`kube-system/bootstrap-token-${live.token.id}`)).toBe(true);
    expect(srv.secrets.has(`kube-system/bootstrap-token-${kubeadm.token.id}`)).toBe(true);
    await issuer.consume(live.token.id);
    expect(srv.secrets.has(`kube-system/bootstrap-token-${live.token.id}`)).toBe(false);
    expect((await issuer.state(live.token.id))?.used).toBeDefined();
  });
});

describe('kubectl (Debian kubernetes-client) against the test API server', () => {
  it('reads the Secret the broker created, byte for byte', async () => {
    const { token, secret } = newSecret();
    await kube.createSecret(secret);
    const { stdout } = await run(KUBECTL, ['--kubeconfig', kubeconfigFile, 'get', 'secret', '-n', 'kube-system', `bootstrap-token-${token.id}`, '-o', 'json'], {
      env: { PATH: process.env.PATH ?? '', HOME: pki.dir },
      timeout: 30_000,
    });
    const obj = JSON.parse(stdout) as typeof secret;
    expect(obj.type).toBe('bootstrap.kubernetes.io/token');
    expect(obj.metadata.name).toBe(`bootstrap-token-${token.id}`);
    expect(obj.data).toEqual(secret.data);
  });

  it('authenticates with the bootstrap kubeconfig handed to nodes', async () => {
    const { token, secret } = newSecret();
    await kube.createSecret(secret);
    const f = join(pki.dir, 'bootstrap.kubeconfig');
    writeFileSync(f, bootstrapKubeconfig({ server: srv.url, caPem: pki.caPem, token: token.value }));
    const { stdout } = await run(KUBECTL, ['--kubeconfig', f, 'get', '--raw', '/version'], { env: { PATH: process.env.PATH ?? '', HOME: pki.dir }, timeout: 30_000 });
    expect(JSON.parse(stdout).gitVersion).toBe('v1.32.4-attest-test');
    // and a wrong secret is refused by the bootstrap authenticator
    writeFileSync(f, bootstrapKubeconfig({ server: srv.url, caPem: pki.caPem, token: `${token.id}.aaaaaaaaaaaaaaaa` }));
    await expect(run(KUBECTL, ['--kubeconfig', f, 'get', '--raw', '/version'], { env: { PATH: process.env.PATH ?? '', HOME: pki.dir }, timeout: 30_000 })).rejects.toThrow(/Unauthorized|401/);
  });
});

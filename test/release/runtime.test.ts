/**
 * Building release from configuration (broker/release/runtime.node.ts): secret mode against the
 * TLS Kubernetes test server with a local KEK file and a file audit log; dev mode; bad configs.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { buildReleaseRuntime } from '../../broker/release/runtime.node.js';
import { verifyAuditChain, type AuditRecord } from '../../broker/release/audit.js';
import type { ReleaseObject } from '../../broker/contracts.js';
import { makeTestPki, type TestPki } from '../servers/tls.js';
import { startKubeServer, type KubeTestServer } from '../servers/kube-apiserver.js';
import { captureLogger, claimsFor, decisionFor, memoryStore } from './helpers.js';

let pki: TestPki;
let srv: KubeTestServer;
beforeAll(async () => {
  pki = makeTestPki();
  srv = await startKubeServer(pki);
});
afterAll(async () => {
  await srv?.close();
});

describe('release runtime from configuration', () => {
  it('secret mode: kubeconfig access, local KEK file, file audit log', async () => {
    const kubeconfig = join(pki.dir, 'broker.kubeconfig');
    writeFileSync(
      kubeconfig,
      stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 't', cluster: { server: srv.url, 'certificate-authority': 'ca.crt' } }],
        users: [{ name: 'b', user: { token: srv.adminToken } }],
        contexts: [{ name: 't', context: { cluster: 't', user: 'b' } }],
        'current-context': 't',
      }),
    );
    const kek = join(pki.dir, 'kek');
    writeFileSync(kek, randomBytes(32), { mode: 0o600 });
    const auditFile = join(pki.dir, 'audit.jsonl');
    const store = memoryStore();
    const rt = await buildReleaseRuntime(
      { mode: 'secret', clusters: { prod: { apiServer: 'https://api.prod:6443', kube: { kubeconfig } } }, kms: { kind: 'local', kekFile: kek }, audit: { file: auditFile } },
      store,
      captureLogger(),
    );
    const rel = (await rt.release.release({ claims: claimsFor('i-rt'), decision: decisionFor({}, { allowUnsealed: true }), want: ['bootstrap-token', 'disk-key'], requestId: 'r' })) as ReleaseObject;
    expect(srv.secrets.has(`kube-system/bootstrap-token-${rel.bootstrapToken!.slice(0, 6)}`)).toBe(true);
    expect(rel.kubeconfig).toContain(Buffer.from(pki.caPem).toString('base64'));
    const records = readFileSync(auditFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as AuditRecord);
    await expect(verifyAuditChain(records, { head: JSON.parse((await store.get('audit:head'))!) })).resolves.toMatchObject({ count: 1 });
    await rt.sweep();
    await rt.close();
  });

  it('dev mode works with no further configuration (webhook mode, throwaway KEK, no webhook until a caller is configured)', async () => {
    const logger = captureLogger();
    const rt = await buildReleaseRuntime({ mode: 'dev' }, memoryStore(), logger);
    const rel = (await rt.release.release({ claims: claimsFor('i-dev'), decision: decisionFor({ cluster: 'default' }, { allowUnsealed: true }), want: ['bootstrap-token', 'disk-key'], requestId: 'r' })) as ReleaseObject;
    expect(rel.caCertHashes).toEqual([]);
    expect(rel.kubeconfig).not.toContain('certificate-authority-data');
    expect(rt.tokenReview).toBeUndefined();
    expect(logger.lines.some((l) => l.includes('random in-memory KEK'))).toBe(true);
    const token = randomBytes(32).toString('hex');
    const tokenFile = join(pki.dir, 'dev-webhook-token');
    writeFileSync(tokenFile, token + '\n', { mode: 0o600 });
    const store = memoryStore();
    const rt2 = await buildReleaseRuntime({ mode: 'dev', tokenReview: { callers: { default: { bearerTokenFile: tokenFile } } } }, store, logger);
    const rel2 = (await rt2.release.release({ claims: claimsFor('i-dev2'), decision: decisionFor({ cluster: 'default' }, { allowUnsealed: true }), want: ['bootstrap-token'], requestId: 'r' })) as ReleaseObject;
    const res = await rt2.tokenReview!(
      new Request('http://b/v1/tokenreview', {
        method: 'POST',
        headers: { authorization: `Bearer ${token}` },
        body: JSON.stringify({ apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token: rel2.bootstrapToken } }),
      }),
      {},
    );
    expect(((await res.json()) as { status: { authenticated: boolean } }).status.authenticated).toBe(true);
  });

  it.each([
    { name: 'unknown key', cfg: { mode: 'secret', clusterz: {} } },
    { name: 'secret mode without Kubernetes access', cfg: { mode: 'secret', clusters: { prod: { apiServer: 'https://a:6443' } } } },
    { name: 'no cluster', cfg: { mode: 'webhook' } },
    { name: 'webhook mode without an authenticated caller', cfg: { mode: 'webhook', clusters: { prod: { apiServer: 'https://a:6443' } } } },
    { name: 'webhook caller for an unknown cluster', cfg: { mode: 'webhook', clusters: { prod: { apiServer: 'https://a:6443' } }, tokenReview: { callers: { qa: { bearerTokenSha256: ['a'.repeat(64)] } } } } },
    { name: 'client-certificate caller without a client CA', cfg: { mode: 'webhook', clusters: { prod: { apiServer: 'https://a:6443' } }, tokenReview: { callers: { prod: { clientCertificateCommonNames: ['kube-apiserver'] } } } } },
    { name: 'TokenReview callers in secret mode', cfg: { mode: 'secret', clusters: { prod: { apiServer: 'https://a:6443', kube: { inCluster: false, kubeconfig: '/nonexistent' } } }, tokenReview: { callers: { prod: { bearerTokenSha256: ['a'.repeat(64)] } } } } },
    { name: 'unknown KMS kind', cfg: { mode: 'webhook', clusters: { prod: { apiServer: 'https://a:6443' } }, kms: { kind: 'vault' } } },
  ])('refuses a bad configuration: $name', async ({ cfg }) => {
    await expect(buildReleaseRuntime(cfg, memoryStore(), captureLogger())).rejects.toMatchObject({ code: 'CONFIG_INVALID', kind: 'config' });
  });
});

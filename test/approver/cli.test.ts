/**
 * The approver as operators run it: inside `serve` (`release.approver.enabled`), and as
 * `attest-broker approve` — its own process, sharing the broker's Redis — against the test
 * Kubernetes API server with only the shipped RBAC. Each takes the Lease, decides a CSR that
 * shows up, and gives the Lease back when stopped.
 */
import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import '../../broker/builtins.node.js';
import { serveInProcess, writeConfig } from '../broker/serve-helpers.js';
import { runCli, spawnCli, ensureBuilt } from '../helpers/cli.js';
import { startRedis, type RedisServer } from '../helpers/redis.js';
import { startKubeServer, type KubeTestServer } from '../servers/kube-apiserver.js';
import { makeTestPki, type TestPki } from '../servers/tls.js';
import { APPROVER_SA, CLIENT_USAGES, makeCsr, postCsr, rbacFrom, until, writeKubeconfig } from './helpers.js';

let pki: TestPki;
let kube: KubeTestServer;
let redis: RedisServer;
let dir: string;
let kubeconfig: string;

const LEASE = 'attest-broker/attest-broker-approver';

function config(o: { store: string; audit: string; enabled: boolean; identity: string }): unknown {
  return {
    listen: { host: '127.0.0.1', port: 0 },
    store: { url: o.store, keyPrefix: 'cli-approver:' },
    policy: { file: join(process.cwd(), 'deploy/policies/dev.yaml') },
    providers: { tpm: { enabled: true } },
    release: {
      mode: 'secret',
      clusters: { prod: { apiServer: kube.url, caFile: pki.caFile, kube: { kubeconfig } } },
      audit: { file: o.audit },
      approver: { enabled: o.enabled, identity: o.identity, leaderElection: { leaseDurationSeconds: 4, renewDeadlineSeconds: 3, retryPeriodSeconds: 1 } },
    },
    log: { level: 'warn' },
  };
}

const auditLines = (f: string): Array<Record<string, unknown>> =>
  existsSync(f) ? readFileSync(f, 'utf8').trim().split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { entry: Record<string, unknown> }).entry) : [];

/** A CSR nobody may approve here (a kubelet CSR by an admin, not a node or a broker token). */
async function strayCsr(): Promise<string> {
  const p = await postCsr(kube.url, pki.caPem, { token: kube.adminToken }, makeCsr({ subject: '/O=system:nodes/CN=system:node:stray' }).csrPem, 'kubernetes.io/kube-apiserver-client-kubelet', CLIENT_USAGES);
  expect(p.status).toBe(201);
  return p.name;
}

beforeAll(async () => {
  ensureBuilt();
  pki = makeTestPki();
  dir = mkdtempSync(join(tmpdir(), 'ab-approver-cli-'));
  kube = await startKubeServer(pki);
  kube.loadRbac(rbacFrom('deploy/kubernetes/base/rbac.yaml'));
  kubeconfig = writeKubeconfig(dir, 'sa.kubeconfig', kube.url, pki.caPem, { token: kube.addToken(APPROVER_SA) });
  redis = await startRedis();
}, 60_000);

afterAll(async () => {
  await kube?.close();
  await redis?.stop();
  for (const p of [dir, pki?.dir]) if (p) rmSync(p, { recursive: true, force: true });
});

describe('attest-broker serve with release.approver.enabled', () => {
  it('runs the approver in-process: takes the Lease, audits what it leaves alone, releases the Lease on close', async () => {
    const audit = join(dir, 'serve-audit.jsonl');
    const served = await serveInProcess(writeConfig(config({ store: 'memory://', audit, enabled: true, identity: 'serve-1' }), mkdtempSync(join(dir, 'serve-'))));
    try {
      expect(served.approver).toBeDefined();
      await until(() => kube.leases.get(LEASE)?.spec.holderIdentity, (h) => h === 'serve-1', 20_000, 'the Lease');
      const name = await strayCsr();
      await until(() => auditLines(audit).filter((e) => e.csr === name), (x) => x.length === 1, 20_000, 'the audit record');
      expect(auditLines(audit).find((e) => e.csr === name)).toMatchObject({ type: 'csr', decision: 'ignore', reason: 'NotBrokerRequester', cluster: 'prod' });
    } finally {
      await served.close();
    }
    expect(kube.leases.get(LEASE)?.spec.holderIdentity).toBe('');
  });

  it('refuses to start an approver for two cluster names on one API server', async () => {
    const cfg = config({ store: 'memory://', audit: join(dir, 'x.jsonl'), enabled: true, identity: 'x' }) as { release: { clusters: Record<string, unknown> } };
    cfg.release.clusters.other = cfg.release.clusters.prod;
    await expect(serveInProcess(writeConfig(cfg, mkdtempSync(join(dir, 'dup-'))))).rejects.toMatchObject({ code: 'CONFIG_INVALID' });
  });
});

describe('attest-broker approve', () => {
  it('refuses the memory store (it must share the broker’s state) with exit 2 and what to do', () => {
    const r = runCli(['approve', '--config', writeConfig(config({ store: 'memory://', audit: join(dir, 'm.jsonl'), enabled: false, identity: 'm' }), mkdtempSync(join(dir, 'mem-')))]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/redis/);
  });

  it('as its own process on Redis: leads, decides, and hands the Lease back on SIGTERM', async () => {
    const audit = join(dir, 'approve-audit.jsonl');
    const file = writeConfig(config({ store: `redis://127.0.0.1:${redis.port}`, audit, enabled: false, identity: 'approve-1' }), mkdtempSync(join(dir, 'own-')));
    const proc = spawnCli(['approve', '--config', file]);
    let err = '';
    proc.stderr!.on('data', (c: Buffer) => (err += c.toString()));
    const exited = new Promise<number | null>((r) => proc.once('exit', (c) => r(c)));
    try {
      await until(() => kube.leases.get(LEASE)?.spec.holderIdentity, (h) => h === 'approve-1', 30_000, `the Lease (stderr: ${err})`);
      const name = await strayCsr();
      await until(() => auditLines(audit).filter((e) => e.csr === name), (x) => x.length === 1, 20_000, 'the audit record');
    } finally {
      proc.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
    expect(kube.leases.get(LEASE)?.spec.holderIdentity).toBe('');
  }, 60_000);
});

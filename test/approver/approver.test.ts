/**
 * The CSR approver against the test Kubernetes API server (test/servers/kube-apiserver.ts:
 * CSR create/list/watch, the approval subresource with the CertificateApproval signer check,
 * a signer, Leases, bootstrap-token and client-certificate authentication, RBAC). The approver
 * runs with a service-account token whose only rights are the shipped
 * deploy/kubernetes/base/rbac.yaml, so every call it makes is proven allowed by what we ship;
 * kubelet-like clients post real openssl-made CSRs with bootstrap tokens and node certificates.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CsrApprover } from '../../broker/approver/controller.js';
import { LeaderElector } from '../../broker/approver/lease.js';
import { NodeRecords } from '../../broker/approver/nodes.js';
import { DEFAULT_KEY_TYPES } from '../../broker/approver/csr.js';
import { decide, type Csr, type DecideContext } from '../../broker/approver/decide.js';
import { systemClock } from '../../broker/contracts.js';
import { createConsoleLogger } from '../../broker/observability/console-logger.js';
import { HashChainAudit, verifyAuditChain, type AuditRecord } from '../../broker/release/audit.js';
import { TokenIssuer, type TokenState } from '../../broker/release/issuer.js';
import { KubeClient } from '../../broker/release/kube.js';
import { caFetch } from '../../broker/release/kube.node.js';
import { MemoryStore } from '../../broker/store/memory.js';
import type { Claims } from '../../providers/common/types.js';
import { startKubeServer, type KubeTestServer } from '../servers/kube-apiserver.js';
import { makeTestPki, type TestPki } from '../servers/tls.js';
import { APPROVER_SA, CLIENT_USAGES, SERVING_USAGES, kubeCall, makeCsr, postCsr, rbacFrom, until, writeKubeconfig, type Credential } from './helpers.js';

const run = promisify(execFile);
const CLIENT = 'kubernetes.io/kube-apiserver-client-kubelet';
const SERVING = 'kubernetes.io/kubelet-serving';
const CLUSTER = 'c1';
const logger = createConsoleLogger('error', {}, () => undefined);

let pki: TestPki;
let srv: KubeTestServer;
let saToken: string;
let dir: string;
const store = new MemoryStore();
const records: AuditRecord[] = [];
const audit = new HashChainAudit({ store, clock: systemClock, write: async (r) => void records.push(r) });
const nodes = new NodeRecords(store, systemClock);
const admitted = new Set<string>();
let issuer: TokenIssuer;
const stops: AbortController[] = [];

/** AWS-like claims with a proven private IP (what the identity document proves). */
function claims(instanceId: string): Claims {
  return {
    provider: 'aws',
    format: 'nitrotpm',
    platform: { tee: 'nitro', debug: false },
    identity: { cloud: 'aws', instanceId, region: 'eu-west-1', account: '123456789012', extra: { privateIp: '10.0.0.7' }, proven: ['instanceId', 'region', 'account', 'extra.privateIp'] },
    evidenceSha256: '00',
  } as unknown as Claims;
}

function approver(o: Partial<ConstructorParameters<typeof CsrApprover>[0]> = {}): CsrApprover {
  return new CsrApprover({
    cluster: CLUSTER,
    kube: kubeAs(saToken),
    issuer,
    nodes,
    clock: systemClock,
    logger,
    audit,
    keyTypes: DEFAULT_KEY_TYPES,
    foreignBootstrapTokens: 'ignore',
    serving: { dnsNames: ['{node}.nodes.example.test'], ipCidrs: ['192.168.50.0/24'] },
    stillAdmitted: async (r) => (admitted.has(r.nodeName) ? null : `the join policy in force no longer admits ${r.nodeName}`),
    retireTokenAfterSeconds: 2,
    ...o,
  });
}

const kubeAs = (token: string): KubeClient => new KubeClient({ server: srv.url, token: () => token, fetch: caFetch({ ca: pki.caPem }), sleep: async () => undefined });

async function issue(nodeName: string, cluster = CLUSTER): Promise<string> {
  const t = await issuer.issue({
    ttlSeconds: 600,
    extraGroups: [],
    description: 'test',
    state: { instanceKey: `ik-${nodeName}`, instanceId: `i-${nodeName}`, provider: 'aws', cloud: 'aws', nodeName, cluster, requestId: 'r' },
  });
  await nodes.put({ cluster, nodeName, instanceKey: `ik-${nodeName}`, provider: 'aws', cloud: 'aws', instanceId: `i-${nodeName}`, requestId: 'r', policyHash: 'h', claims: claims(`i-${nodeName}`) });
  admitted.add(nodeName);
  return t.token.value;
}

const conditions = (name: string) => srv.csrs.get(name)?.status.conditions ?? [];
// The approver audits a decision right after writing it to the API server: wait for both, so a
// loaded machine does not read the audit between the two.
const decidedCsr = (name: string) =>
  until(() => conditions(name), (c) => c.length > 0, 15_000, `a decision on ${name}`).then(async (c) => {
    await until(() => records.filter((r) => r.entry.csr === name && r.entry.type === 'csr').length, (n) => n > 0, 15_000, `the audit record of ${name}`);
    return c[0]!;
  });
const auditOf = (name: string) => records.filter((r) => r.entry.csr === name && r.entry.type === 'csr').map((r) => r.entry);

/** A node gets its client certificate the way a kubelet does; returns the credential. */
async function joinNode(nodeName: string): Promise<{ cred: Credential; csr: string; token: string }> {
  const token = await issue(nodeName);
  const { csrPem, keyPem } = makeCsr({ subject: `/O=system:nodes/CN=system:node:${nodeName}` });
  const p = await postCsr(srv.url, pki.caPem, { token }, csrPem, CLIENT, CLIENT_USAGES);
  expect(p.status).toBe(201);
  const csr = await until(() => kubeCall(srv.url, pki.caPem, { token }, 'GET', `/apis/certificates.k8s.io/v1/certificatesigningrequests/${p.name}`), (r) => !!(r.json.status as { certificate?: string })?.certificate, 15_000, 'the signed certificate');
  const cert = Buffer.from((csr.json.status as { certificate: string }).certificate, 'base64').toString('utf8');
  return { cred: { cert, key: keyPem }, csr: p.name, token };
}

beforeAll(async () => {
  pki = makeTestPki();
  dir = mkdtempSync(join(tmpdir(), 'ab-approver-'));
  srv = await startKubeServer(pki);
  srv.loadRbac(rbacFrom('deploy/kubernetes/base/rbac.yaml'));
  // kubeadm's own token group, bound as `kubeadm init` binds it (kubeadm:kubelet-bootstrap).
  srv.loadRbac([
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name: 'kubeadm:kubelet-bootstrap' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'system:node-bootstrapper' },
      subjects: [{ kind: 'Group', name: 'system:bootstrappers:kubeadm:default-node-token' }],
    },
  ]);
  saToken = srv.addToken(APPROVER_SA);
  // The broker writes tokens with the same shipped RBAC.
  issuer = new TokenIssuer({ store, clock: systemClock, logger, kube: kubeAs(saToken) });
  const ac = new AbortController();
  stops.push(ac);
  void approver().run(ac.signal);
}, 60_000);

afterAll(async () => {
  for (const s of stops) s.abort();
  await srv?.close();
  for (const p of [dir, pki?.dir]) if (p) rmSync(p, { recursive: true, force: true });
});

describe('first client certificate: only for the attested name, then the token is spent', () => {
  it('approves the node’s own name; the certificate authenticates as system:node:<name>; the token stops authenticating', async () => {
    const { cred, csr, token } = await joinNode('node-a');
    expect(conditions(csr)[0]).toMatchObject({ type: 'Approved', status: 'True', reason: 'AttestedNodeClient' });
    expect(srv.approvals.filter((a) => a.name === csr)).toEqual([{ name: csr, type: 'Approved', user: APPROVER_SA.username }]);
    const who = await kubeCall(srv.url, pki.caPem, cred, 'POST', '/apis/authentication.k8s.io/v1/selfsubjectreviews', { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' });
    expect(who.json.status).toMatchObject({ userInfo: { username: 'system:node:node-a', groups: expect.arrayContaining(['system:nodes', 'system:authenticated']) } });
    // Retired once the certificate is out (retireTokenAfterSeconds: 2): the Secret is deleted.
    await until(() => kubeCall(srv.url, pki.caPem, { token }, 'GET', '/version'), (r) => r.status === 401, 15_000, 'the token to stop authenticating');
    const id = token.slice(0, 6);
    expect(srv.secrets.has(`kube-system/bootstrap-token-${id}`)).toBe(false);
    expect((await issuer.state(id))?.used).toBeTruthy();
    expect(auditOf(csr)).toEqual([expect.objectContaining({ type: 'csr', decision: 'approve', reason: 'AttestedNodeClient', nodeName: 'node-a', tokenId: id, requester: `system:bootstrap:${id}`, written: true })]);
    expect(records.some((r) => r.entry.type === 'token-retired' && r.entry.tokenId === id && r.entry.csr === csr)).toBe(true);
    expect((await verifyAuditChain(records)).count).toBe(records.length);
  });

  it('a second client CSR with the same (spent) token is denied, while the token still authenticates', async () => {
    const token = await issue('node-b');
    const first = makeCsr({ subject: '/O=system:nodes/CN=system:node:node-b' });
    const p1 = await postCsr(srv.url, pki.caPem, { token }, first.csrPem, CLIENT, CLIENT_USAGES);
    expect((await decidedCsr(p1.name)).type).toBe('Approved');
    const second = makeCsr({ subject: '/O=system:nodes/CN=system:node:node-b' });
    const p2 = await postCsr(srv.url, pki.caPem, { token }, second.csrPem, CLIENT, CLIENT_USAGES);
    expect(p2.status).toBe(201);
    expect(await decidedCsr(p2.name)).toMatchObject({ type: 'Denied', reason: 'TokenSpent' });
    expect(auditOf(p2.name)).toEqual([expect.objectContaining({ decision: 'deny', reason: 'TokenSpent', tokenId: token.slice(0, 6) })]);
  });

  const refusals: Array<[string, (n: string) => Parameters<typeof makeCsr>[0], string[] | undefined, string]> = [
    ['another node’s name', () => ({ subject: '/O=system:nodes/CN=system:node:some-other-node' }), undefined, 'NodeNameMismatch'],
    ['a wrong organisation', (n) => ({ subject: `/O=system:masters/CN=system:node:${n}` }), undefined, 'SubjectInvalid'],
    ['an extra subject attribute', (n) => ({ subject: `/O=system:nodes/OU=x/CN=system:node:${n}` }), undefined, 'SubjectInvalid'],
    ['subject alternative names', (n) => ({ subject: `/O=system:nodes/CN=system:node:${n}`, dns: [n] }), undefined, 'SubjectAltNamesNotAllowed'],
    ['a CA usage', (n) => ({ subject: `/O=system:nodes/CN=system:node:${n}` }), ['digital signature', 'client auth', 'cert sign'], 'UsagesInvalid'],
    ['server usage on the client signer', (n) => ({ subject: `/O=system:nodes/CN=system:node:${n}` }), ['digital signature', 'server auth'], 'UsagesInvalid'],
    ['an RSA-1024 key', (n) => ({ subject: `/O=system:nodes/CN=system:node:${n}`, key: 'rsa1024' }), undefined, 'KeyTypeNotAllowed'],
    ['a basicConstraints CA extension', (n) => ({ subject: `/O=system:nodes/CN=system:node:${n}`, extraExt: ['basicConstraints=critical,CA:TRUE'] }), undefined, 'ExtensionsNotAllowed'],
  ];
  it.each(refusals)('denies a token holder’s CSR with %s (%s)', async (_what, spec, usages, reason) => {
    const name = `node-r${Math.random().toString(36).slice(2, 8)}`;
    const token = await issue(name);
    const { csrPem } = makeCsr(spec(name));
    const p = await postCsr(srv.url, pki.caPem, { token }, csrPem, CLIENT, usages ?? CLIENT_USAGES);
    expect(p.status).toBe(201);
    const c = await decidedCsr(p.name);
    expect(c).toMatchObject({ type: 'Denied', status: 'True', reason });
    expect(c.message).toBeTruthy();
    expect(srv.csrs.get(p.name)?.status.certificate).toBeUndefined();
    expect(auditOf(p.name)).toEqual([expect.objectContaining({ type: 'csr', decision: 'deny', reason, tokenId: token.slice(0, 6), nodeName: name })]);
    // A denial does not spend the token: the node may still ask correctly.
    const ok = makeCsr({ subject: `/O=system:nodes/CN=system:node:${name}` });
    const p2 = await postCsr(srv.url, pki.caPem, { token }, ok.csrPem, CLIENT, CLIENT_USAGES);
    expect((await decidedCsr(p2.name)).reason).toBe('AttestedNodeClient');
  });

  /** A bootstrap-token Secret the broker did not issue (written by an admin). */
  async function foreignToken(groups: string): Promise<string> {
    const id = Math.random().toString(36).slice(2, 8).padEnd(6, 'x');
    const secret = 'abcdefghij012345';
    const enc = (s: string) => Buffer.from(s).toString('base64');
    const r = await kubeCall(srv.url, pki.caPem, { token: srv.adminToken }, 'POST', '/api/v1/namespaces/kube-system/secrets', {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: `bootstrap-token-${id}`, namespace: 'kube-system' },
      type: 'bootstrap.kubernetes.io/token',
      data: { 'token-id': enc(id), 'token-secret': enc(secret), 'usage-bootstrap-authentication': enc('true'), 'auth-extra-groups': enc(groups), expiration: enc(new Date(Date.now() + 3_600_000).toISOString().replace(/\.\d+Z$/, 'Z')) },
    });
    expect(r.status).toBe(201);
    return `${id}.${secret}`;
  }

  it('denies a CSR from a token that claims the broker’s group but was not issued by it', async () => {
    const token = await foreignToken('system:bootstrappers:attest-broker');
    const { csrPem } = makeCsr({ subject: '/O=system:nodes/CN=system:node:node-a' });
    const p = await postCsr(srv.url, pki.caPem, { token }, csrPem, CLIENT, CLIENT_USAGES);
    expect(await decidedCsr(p.name)).toMatchObject({ type: 'Denied', reason: 'TokenUnknown' });
    expect(auditOf(p.name)).toEqual([expect.objectContaining({ decision: 'deny', reason: 'TokenUnknown' })]);
  });

  it('leaves kubeadm’s own tokens alone (audited), or denies them with foreignBootstrapTokens: deny', async () => {
    const token = await foreignToken('system:bootstrappers:kubeadm:default-node-token');
    const { csrPem } = makeCsr({ subject: '/O=system:nodes/CN=system:node:cp-1' });
    const p = await postCsr(srv.url, pki.caPem, { token }, csrPem, CLIENT, CLIENT_USAGES);
    expect(p.status).toBe(201);
    await until(() => auditOf(p.name), (a) => a.length > 0, 15_000, 'the audit of a left-alone CSR');
    expect(auditOf(p.name)).toEqual([expect.objectContaining({ decision: 'ignore', reason: 'ForeignBootstrapToken' })]);
    expect(conditions(p.name)).toEqual([]);
    // An approver told to deny foreign tokens (a cluster that admits attested nodes only).
    const strict = approver({ foreignBootstrapTokens: 'deny' });
    await strict.handle(srv.csrs.get(p.name)! as unknown as Csr);
    expect(conditions(p.name)[0]).toMatchObject({ type: 'Denied', reason: 'ForeignBootstrapToken' });
  });

  it('denies a token issued for another cluster', async () => {
    const token = await issue('node-x', 'other-cluster');
    const { csrPem } = makeCsr({ subject: '/O=system:nodes/CN=system:node:node-x' });
    const p = await postCsr(srv.url, pki.caPem, { token }, csrPem, CLIENT, CLIENT_USAGES);
    expect(await decidedCsr(p.name)).toMatchObject({ type: 'Denied', reason: 'TokenOtherCluster' });
  });
});

describe('serving certificates and renewals: only what the evidence proved, only while still admitted', () => {
  let node: Credential;
  beforeAll(async () => {
    node = (await joinNode('node-s')).cred;
  });

  it('approves a serving CSR whose every SAN is proven (name, identity-document IP, EC2 private DNS) or allow-listed', async () => {
    for (const sans of [
      { dns: ['node-s', 'ip-10-0-0-7.eu-west-1.compute.internal'], ips: ['10.0.0.7'] },
      { dns: ['node-s.nodes.example.test'], ips: ['192.168.50.4'] },
    ]) {
      const { csrPem } = makeCsr({ subject: '/O=system:nodes/CN=system:node:node-s', ...sans });
      const p = await postCsr(srv.url, pki.caPem, node, csrPem, SERVING, SERVING_USAGES);
      expect(p.status).toBe(201);
      expect(await decidedCsr(p.name)).toMatchObject({ type: 'Approved', reason: 'AttestedNodeServing' });
      const crt = await until(() => srv.csrs.get(p.name)?.status.certificate, (c) => !!c, 15_000, 'the serving certificate');
      const pem = Buffer.from(crt!, 'base64').toString('utf8');
      const f = join(dir, `${p.name}.pem`);
      writeFileSync(f, pem);
      const { stdout } = await run('openssl', ['x509', '-in', f, '-noout', '-ext', 'subjectAltName,extendedKeyUsage']);
      expect(stdout).toContain('TLS Web Server Authentication');
      for (const ip of sans.ips) expect(stdout).toContain(`IP Address:${ip}`);
    }
  });

  const serving: Array<[string, Parameters<typeof makeCsr>[0], string[] | undefined, string]> = [
    ['an address the evidence did not prove', { subject: '/O=system:nodes/CN=system:node:node-s', dns: ['node-s'], ips: ['10.9.9.9'] }, undefined, 'AddressNotProven'],
    ['a DNS name the evidence did not prove', { subject: '/O=system:nodes/CN=system:node:node-s', dns: ['kubernetes.default.svc'] }, undefined, 'AddressNotProven'],
    ['an e-mail SAN', { subject: '/O=system:nodes/CN=system:node:node-s', dns: ['node-s'], emails: ['a@b.c'] }, undefined, 'SubjectAltNamesNotAllowed'],
    ['no SAN at all', { subject: '/O=system:nodes/CN=system:node:node-s' }, undefined, 'SubjectAltNamesNotAllowed'],
    ['another node’s name', { subject: '/O=system:nodes/CN=system:node:node-a', dns: ['node-a'] }, undefined, 'NodeNameMismatch'],
    ['client usage on the serving signer', { subject: '/O=system:nodes/CN=system:node:node-s', dns: ['node-s'] }, ['digital signature', 'client auth'], 'UsagesInvalid'],
  ];
  it.each(serving)('denies a serving CSR with %s (%s)', async (_w, spec, usages, reason) => {
    const { csrPem } = makeCsr(spec);
    const p = await postCsr(srv.url, pki.caPem, node, csrPem, SERVING, usages ?? SERVING_USAGES);
    expect(await decidedCsr(p.name)).toMatchObject({ type: 'Denied', reason });
    expect(auditOf(p.name)).toEqual([expect.objectContaining({ decision: 'deny', reason, nodeName: 'node-s', kind: 'serving', requester: 'system:node:node-s' })]);
  });

  it('renews a node’s client certificate while the policy still admits it, and denies it once it does not', async () => {
    const a = makeCsr({ subject: '/O=system:nodes/CN=system:node:node-s' });
    const p = await postCsr(srv.url, pki.caPem, node, a.csrPem, CLIENT, CLIENT_USAGES);
    expect(await decidedCsr(p.name)).toMatchObject({ type: 'Approved', reason: 'AttestedNodeRenewal' });
    admitted.delete('node-s');
    const b = makeCsr({ subject: '/O=system:nodes/CN=system:node:node-s' });
    const q = await postCsr(srv.url, pki.caPem, node, b.csrPem, CLIENT, CLIENT_USAGES);
    const c = await decidedCsr(q.name);
    expect(c).toMatchObject({ type: 'Denied', reason: 'NodeNoLongerAdmitted' });
    expect(c.message).toContain('no longer admits');
    admitted.add('node-s');
  });

  it('leaves other signers and other requesters alone', async () => {
    const { csrPem } = makeCsr({ subject: '/CN=alice' });
    const p = await postCsr(srv.url, pki.caPem, { token: srv.adminToken }, csrPem, 'kubernetes.io/kube-apiserver-client', CLIENT_USAGES);
    await until(() => auditOf(p.name), (a) => a.length > 0, 15_000, 'an ignore record');
    expect(auditOf(p.name)).toEqual([expect.objectContaining({ decision: 'ignore', reason: 'NotKubeletSigner' })]);
    const q = await postCsr(srv.url, pki.caPem, { token: srv.adminToken }, makeCsr({ subject: '/O=system:nodes/CN=system:node:node-s' }).csrPem, CLIENT, CLIENT_USAGES);
    await until(() => auditOf(q.name), (a) => a.length > 0, 15_000, 'an ignore record');
    expect(auditOf(q.name)).toEqual([expect.objectContaining({ decision: 'ignore', reason: 'NotBrokerRequester' })]);
    expect(conditions(p.name)).toEqual([]);
    expect(conditions(q.name)).toEqual([]);
  });
});

describe('exactly once: replicas, Lease and duplicate events', () => {
  it('two approvers racing on duplicate events approve a CSR once (one approval write, one audit record)', async () => {
    const token = await issue('node-dup');
    const { csrPem } = makeCsr({ subject: '/O=system:nodes/CN=system:node:node-dup' });
    srv.signing = false; // keep the object still while the racers work
    try {
      const p = await postCsr(srv.url, pki.caPem, { token }, csrPem, CLIENT, CLIENT_USAGES);
      const snapshot = structuredClone(srv.csrs.get(p.name)!) as unknown as Csr;
      const a = approver();
      const b = approver();
      await Promise.all(Array.from({ length: 12 }, (_, i) => (i % 2 ? a : b).handle(structuredClone(snapshot))));
      await decidedCsr(p.name);
      await new Promise((r) => setTimeout(r, 300)); // let the always-on approver see it too
      expect(srv.approvals.filter((x) => x.name === p.name)).toHaveLength(1);
      expect(conditions(p.name)).toHaveLength(1);
      expect(auditOf(p.name).filter((e) => e.decision === 'approve')).toHaveLength(1);
    } finally {
      srv.signing = true;
    }
  });

  it('with a Lease, exactly one of two replicas acts; when it stops the other takes over', async () => {
    // A cluster of its own, so the always-on approver above does not act on these CSRs.
    const cluster = 'leased';
    stops[0]!.abort(); // the always-on approver of the tests above is not part of this pair
    const mk = (id: string) => {
      const kube = kubeAs(saToken);
      const el = new LeaderElector({ kube, namespace: 'attest-broker', name: 'attest-broker-approver', identity: id, leaseDurationSeconds: 3, renewDeadlineSeconds: 2, retryPeriodSeconds: 0.5, clock: systemClock, logger });
      const ap = approver({ cluster, kube });
      const ac = new AbortController();
      stops.push(ac);
      const done = el.run(ac.signal, (s) => ap.run(s));
      return { el, ac, done, id };
    };
    const r1 = mk('replica-1');
    const r2 = mk('replica-2');
    const leader = await until(() => [r1, r2].filter((r) => r.el.leading), (l) => l.length === 1, 15_000, 'one leader');
    const [lead] = leader;
    const other = lead === r1 ? r2 : r1;
    expect(srv.leases.get('attest-broker/attest-broker-approver')?.spec.holderIdentity).toBe(lead!.id);
    // Over several renew periods there is still exactly one leader.
    for (let i = 0; i < 6; i++) {
      await new Promise((r) => setTimeout(r, 250));
      expect([r1, r2].filter((r) => r.el.leading)).toHaveLength(1);
    }
    const token = await issue('node-lease', cluster);
    const p = await postCsr(srv.url, pki.caPem, { token }, makeCsr({ subject: '/O=system:nodes/CN=system:node:node-lease' }).csrPem, CLIENT, CLIENT_USAGES);
    expect(await decidedCsr(p.name)).toMatchObject({ type: 'Approved', reason: 'AttestedNodeClient' });
    expect(srv.approvals.filter((x) => x.name === p.name)).toHaveLength(1);
    // The leader stops (gives the Lease up); the other replica takes over and acts.
    lead!.ac.abort();
    await lead!.done;
    await until(() => other.el.leading, (l) => l, 15_000, 'the other replica to lead');
    expect(srv.leases.get('attest-broker/attest-broker-approver')?.spec.holderIdentity).toBe(other.id);
    const token2 = await issue('node-lease2', cluster);
    const q = await postCsr(srv.url, pki.caPem, { token: token2 }, makeCsr({ subject: '/O=system:nodes/CN=system:node:node-lease2' }).csrPem, CLIENT, CLIENT_USAGES);
    expect(await decidedCsr(q.name)).toMatchObject({ type: 'Approved' });
    expect(srv.approvals.filter((x) => x.name === q.name)).toHaveLength(1);
    other.ac.abort();
    await other.done;
  }, 60_000);
});

describe('leadership lost', () => {
  it('a leader whose Lease another holder took stops acting within one retry period', async () => {
    const kube = kubeAs(saToken);
    const el = new LeaderElector({ kube, namespace: 'attest-broker', name: 'attest-broker-approver', identity: 'victim', leaseDurationSeconds: 3, renewDeadlineSeconds: 2, retryPeriodSeconds: 0.3, clock: systemClock, logger });
    const ac = new AbortController();
    stops.push(ac);
    let leadSignal: AbortSignal | undefined;
    const done = el.run(ac.signal, async (s) => {
      leadSignal = s;
      await new Promise<void>((r) => s.addEventListener('abort', () => r(), { once: true }));
    });
    await until(() => el.leading, (l) => l, 10_000, 'leadership');
    // Someone else writes the Lease (as a replica with a skewed view, or an operator, would).
    const cur = srv.leases.get('attest-broker/attest-broker-approver')!;
    const put = await kubeCall(srv.url, pki.caPem, { token: srv.adminToken }, 'PUT', '/apis/coordination.k8s.io/v1/namespaces/attest-broker/leases/attest-broker-approver', {
      ...cur,
      spec: { ...cur.spec, holderIdentity: 'intruder', renewTime: new Date().toISOString().replace('Z', '000Z') },
    });
    expect(put.status).toBe(200);
    await until(() => leadSignal?.aborted, (a) => a === true, 5_000, 'the leader to step down');
    expect(srv.leases.get('attest-broker/attest-broker-approver')?.spec.holderIdentity).toBe('intruder');
    ac.abort();
    await done;
  });
});

describe('decisions the API server never lets through (checked on the decision function itself)', () => {
  const state = (o: Partial<TokenState> = {}): TokenState => ({
    tokenId: 'abcdef',
    secretSha256: '',
    instanceKey: 'ik',
    instanceId: 'i',
    provider: 'tpm',
    cloud: 'none',
    nodeName: 'node-u',
    cluster: CLUSTER,
    groups: ['system:bootstrappers:attest-broker'],
    issuedAt: new Date().toISOString(),
    expiresAt: new Date(Date.now() + 600_000).toISOString(),
    requestId: 'r',
    mode: 'secret',
    ...o,
  });
  const ctx = (o: Partial<DecideContext> = {}): DecideContext => ({
    cluster: CLUSTER,
    now: new Date(),
    keyTypes: DEFAULT_KEY_TYPES,
    foreignBootstrapTokens: 'ignore',
    serving: {},
    tokenState: async () => state(),
    nodeRecord: async () => null,
    stillAdmitted: async () => null,
    ...o,
  });
  const csr = (request: string, o: Partial<Csr['spec']> = {}, extra: Partial<Csr> = {}): Csr => ({
    metadata: { name: 'x', creationTimestamp: new Date().toISOString() },
    spec: { request, signerName: CLIENT, usages: CLIENT_USAGES, username: 'system:bootstrap:abcdef', groups: ['system:bootstrappers', 'system:bootstrappers:attest-broker'], ...o },
    ...extra,
  });
  const good = () => Buffer.from(makeCsr({ subject: '/O=system:nodes/CN=system:node:node-u' }).csrPem).toString('base64');

  it('approves the well-formed request (the baseline the mutations below break)', async () => {
    expect(await decide(csr(good()), ctx())).toMatchObject({ action: 'approve', reason: 'AttestedNodeClient' });
  });
  it('denies a request that is not PEM PKCS#10, or two of them', async () => {
    expect(await decide(csr(Buffer.from('hello').toString('base64')), ctx())).toMatchObject({ action: 'deny', reason: 'RequestInvalid' });
    const two = Buffer.from(Buffer.from(good(), 'base64').toString() + Buffer.from(good(), 'base64').toString()).toString('base64');
    expect(await decide(csr(two), ctx())).toMatchObject({ action: 'deny', reason: 'RequestInvalid' });
  });
  it('denies a request whose self-signature does not verify (one signature byte flipped)', async () => {
    const pem = Buffer.from(good(), 'base64').toString();
    const der = Buffer.from(pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
    der.writeUInt8(der[der.length - 5]! ^ 0x01, der.length - 5);
    const bad = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`;
    expect(await decide(csr(Buffer.from(bad).toString('base64')), ctx())).toMatchObject({ action: 'deny', reason: 'SignatureInvalid' });
  });
  it('denies a CSR made after its token expired, and leaves decided CSRs, other signers and unknown nodes alone', async () => {
    expect(await decide(csr(good()), ctx({ tokenState: async () => state({ expiresAt: new Date(Date.now() - 1000).toISOString() }) }))).toMatchObject({ action: 'deny', reason: 'TokenExpired' });
    expect(await decide(csr(good(), {}, { status: { conditions: [{ type: 'Denied', status: 'True' }] } }), ctx())).toMatchObject({ action: 'ignore', reason: 'AlreadyDecided' });
    expect(await decide(csr(good(), { signerName: 'example.com/x' }), ctx())).toMatchObject({ action: 'ignore', reason: 'NotKubeletSigner' });
    expect(await decide(csr(good(), { username: 'system:node:node-u', groups: ['system:nodes'] }), ctx())).toMatchObject({ action: 'ignore', reason: 'NodeNotAttested' });
    // A requester that calls itself a node without the system:nodes group is not a node.
    expect(await decide(csr(good(), { username: 'system:node:node-u', groups: [] }), ctx())).toMatchObject({ action: 'ignore', reason: 'NotBrokerRequester' });
  });
  it('accepts only the configured key types', async () => {
    const p384 = Buffer.from(makeCsr({ subject: '/O=system:nodes/CN=system:node:node-u', key: 'ec384' }).csrPem).toString('base64');
    expect(await decide(csr(p384), ctx())).toMatchObject({ action: 'approve' });
    expect(await decide(csr(p384), ctx({ keyTypes: ['ecdsa-p256'] }))).toMatchObject({ action: 'deny', reason: 'KeyTypeNotAllowed' });
  });
});

describe('the shipped RBAC, as `kubectl auth can-i` sees it', () => {
  let admin: string;
  beforeAll(() => {
    admin = writeKubeconfig(dir, 'admin.kubeconfig', srv.url, pki.caPem, { token: srv.adminToken });
  });
  const canI = async (as: string[], ...args: string[]): Promise<string> => {
    const r = await run('kubectl', ['--kubeconfig', admin, 'auth', 'can-i', ...args, ...as], { timeout: 30_000 }).catch((e: { stdout?: string; stderr?: string }) => ({ stdout: e.stdout ?? '', stderr: e.stderr ?? '' }));
    return r.stdout.trim() || `stderr: ${r.stderr}`;
  };
  const token = ['--as=system:bootstrap:abcdef', '--as-group=system:bootstrappers', '--as-group=system:bootstrappers:attest-broker'];
  const sa = ['--as=system:serviceaccount:attest-broker:attest-broker', '--as-group=system:serviceaccounts'];

  it('a broker token may do what TLS bootstrap needs (create and read its CSR)', async () => {
    expect(await canI(token, 'create', 'certificatesigningrequests.certificates.k8s.io')).toBe('yes');
    expect(await canI(token, 'get', 'certificatesigningrequests.certificates.k8s.io')).toBe('yes');
    expect(await canI(token, 'watch', 'certificatesigningrequests.certificates.k8s.io')).toBe('yes');
  });
  it('and nothing of auto-approval (nodeclient, selfnodeclient), nor approval itself, nor Secrets', async () => {
    expect(await canI(token, 'create', 'certificatesigningrequests.certificates.k8s.io', '--subresource=nodeclient')).toBe('no');
    expect(await canI(token, 'create', 'certificatesigningrequests.certificates.k8s.io', '--subresource=selfnodeclient')).toBe('no');
    expect(await canI(token, 'update', 'certificatesigningrequests.certificates.k8s.io', '--subresource=approval')).toBe('no');
    expect(await canI(token, 'get', 'secrets', '-n', 'kube-system')).toBe('no');
  });
  it('the approver may watch CSRs, write approvals and approve for the two kubelet signers only', async () => {
    expect(await canI(sa, 'watch', 'certificatesigningrequests.certificates.k8s.io')).toBe('yes');
    expect(await canI(sa, 'update', 'certificatesigningrequests.certificates.k8s.io', '--subresource=approval')).toBe('yes');
    // `signers` is not a discoverable resource (kubectl would send it without its group), so the
    // CertificateApproval check is asked of the server's RBAC authorizer directly.
    const approve = (name: string) => srv.authorize({ username: APPROVER_SA.username, groups: [...APPROVER_SA.groups, 'system:authenticated'] }, { verb: 'approve', apiGroup: 'certificates.k8s.io', resource: 'signers', name });
    expect(approve('kubernetes.io/kube-apiserver-client-kubelet')).toBe(true);
    expect(approve('kubernetes.io/kubelet-serving')).toBe(true);
    expect(approve('kubernetes.io/kube-apiserver-client')).toBe(false);
    expect(approve('kubernetes.io/*')).toBe(false);
    expect(await canI(sa, 'update', 'certificatesigningrequests.certificates.k8s.io', '--subresource=status')).toBe('no');
    expect(await canI(sa, 'delete', 'certificatesigningrequests.certificates.k8s.io')).toBe('no');
    expect(await canI(sa, 'update', 'leases.coordination.k8s.io/attest-broker-approver', '-n', 'attest-broker')).toBe('yes');
    expect(await canI(sa, 'update', 'leases.coordination.k8s.io/kube-controller-manager', '-n', 'kube-system')).toBe('no');
    expect(await canI(sa, 'create', 'secrets', '-n', 'kube-system')).toBe('yes');
    expect(await canI(sa, 'list', 'secrets', '-n', 'kube-system')).toBe('no');
  });
});

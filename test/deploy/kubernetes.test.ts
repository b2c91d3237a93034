/**
 * The broker's deployment files.
 * - `kubectl kustomize` renders base and overlays/redis;
 * - `kubectl create --dry-run=client` accepts every rendered object. kubectl needs API
 *   discovery even for a client-side dry run, and there is no API server here, so a small local
 *   server answers the discovery endpoints (/version, /api, /apis, /api/v1, /apis/<g>/<v>) for
 *   the built-in kinds the manifests use, following the Kubernetes API discovery format
 *   (APIVersions / APIGroupList / APIResourceList). OpenAPI schema validation needs a real
 *   server (--validate=false here), so a schema-light check of our own follows: types, label
 *   selectors, probes, security context, RBAC scope.
 * - The container health check script is run against a local HTTPS server (the Dockerfile and
 *   the image's contents: container-bundle.test.ts; API schemas: kubernetes-schema.test.ts).
 */
import { execFile, execFileSync } from 'node:child_process';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { makeTls } from './test-broker.js';
import { loadConfig } from '../../broker/runtime.node.js';
import { loadPolicyFile } from '../../broker/policy/watch.node.js';
import { ReleaseConfigSchema } from '../../broker/release/runtime.node.js';

const run = promisify(execFile);
const HAVE_KUBECTL = (() => {
  try {
    execFileSync('kubectl', ['version', '--client'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();
if (!HAVE_KUBECTL) console.warn('kubectl not installed: manifest rendering checks skipped');

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- rendered YAML, asserted field by field below
type Loose = any;
type Obj = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string> }; spec?: Record<string, unknown>; [k: string]: unknown };

const render = (dir: string): Obj[] =>
  parseAllDocuments(execFileSync('kubectl', ['kustomize', dir], { encoding: 'utf8' })).map((d) => d.toJSON() as Obj);

/** Built-in kinds the manifests use, as a v1.30+ API server lists them. */
const DISCOVERY: Record<string, Array<[string, string, boolean]>> = {
  v1: [['namespaces', 'Namespace', false], ['serviceaccounts', 'ServiceAccount', true], ['configmaps', 'ConfigMap', true], ['services', 'Service', true], ['secrets', 'Secret', true]],
  'apps/v1': [['deployments', 'Deployment', true]],
  'policy/v1': [['poddisruptionbudgets', 'PodDisruptionBudget', true]],
  'rbac.authorization.k8s.io/v1': [['roles', 'Role', true], ['rolebindings', 'RoleBinding', true], ['clusterroles', 'ClusterRole', false], ['clusterrolebindings', 'ClusterRoleBinding', false]],
  'admissionregistration.k8s.io/v1': [['validatingadmissionpolicies', 'ValidatingAdmissionPolicy', false], ['validatingadmissionpolicybindings', 'ValidatingAdmissionPolicyBinding', false]],
  'networking.k8s.io/v1': [['networkpolicies', 'NetworkPolicy', true], ['ingresses', 'Ingress', true]],
  'monitoring.coreos.com/v1': [['servicemonitors', 'ServiceMonitor', true]],
};

function discoveryServer(): Server {
  return createHttpServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    const send = (o: unknown): void => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(o));
    };
    const list = (gv: string): unknown => ({
      kind: 'APIResourceList',
      apiVersion: 'v1',
      groupVersion: gv,
      resources: (DISCOVERY[gv] ?? []).map(([name, kind, namespaced]) => ({ name, singularName: kind.toLowerCase(), namespaced, kind, verbs: ['create', 'get', 'list', 'delete'] })),
    });
    if (path === '/version') return send({ major: '1', minor: '32', gitVersion: 'v1.32.0' });
    if (path === '/api') return send({ kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [] });
    if (path === '/api/v1') return send(list('v1'));
    if (path === '/apis') {
      const groups = Object.keys(DISCOVERY)
        .filter((gv) => gv.includes('/'))
        .map((gv) => {
          const [name, version] = gv.split('/') as [string, string];
          return { name, versions: [{ groupVersion: gv, version }], preferredVersion: { groupVersion: gv, version } };
        });
      return send({ kind: 'APIGroupList', apiVersion: 'v1', groups });
    }
    const m = /^\/apis\/(.+)$/.exec(path);
    if (m && DISCOVERY[m[1]!]) return send(list(m[1]!));
    res.writeHead(404).end();
  });
}

describe('deploy/kubernetes', () => {
  let server: Server;
  let url: string;
  let home: string;
  beforeAll(async () => {
    server = discoveryServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    home = mkdtempSync(join(tmpdir(), 'kube-home-'));
  });
  afterAll(() => {
    server?.close();
    rmSync(home, { recursive: true, force: true });
  });

  for (const dir of ['deploy/kubernetes/base', 'deploy/kubernetes/overlays/redis']) {
    it(`${dir}: kubectl create --dry-run=client accepts every rendered object`, async () => {
      const rendered = execFileSync('kubectl', ['kustomize', dir], { encoding: 'utf8' });
      const child = run('kubectl', ['--server', url, 'create', '--dry-run=client', '--validate=false', '-f', '-', '-o', 'name'], { env: { ...process.env, HOME: home, KUBECONFIG: join(home, 'none') } });
      child.child.stdin!.end(rendered);
      const { stdout } = await child;
      const names = stdout.trim().split('\n');
      expect(names.length).toBe(parseAllDocuments(rendered).length);
    });
  }

  it('base: broker Deployment is non-root, read-only, probed on /healthz and /readyz', () => {
    const objs = render('deploy/kubernetes/base');
    const kinds = objs.map((o) => o.kind).sort();
    expect(kinds).toEqual([
      'ClusterRole', 'ClusterRoleBinding', 'ClusterRoleBinding', 'ConfigMap', 'Deployment', 'Ingress', 'Namespace', 'NetworkPolicy', 'PodDisruptionBudget',
      'Role', 'Role', 'RoleBinding', 'RoleBinding', 'Service', 'Service', 'ServiceAccount', 'ValidatingAdmissionPolicy', 'ValidatingAdmissionPolicyBinding',
    ]);
    const dep = objs.find((o) => o.kind === 'Deployment')! as unknown as {
      spec: { replicas: number; selector: { matchLabels: Record<string, string> }; template: { metadata: { labels: Record<string, string> }; spec: Loose } };
    };
    expect(dep.spec.replicas).toBe(1); // memory store: one process
    const pod = dep.spec.template.spec;
    for (const [k, v] of Object.entries(dep.spec.selector.matchLabels)) expect(dep.spec.template.metadata.labels[k]).toBe(v);
    expect(pod.serviceAccountName).toBe('attest-broker');
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 65532, seccompProfile: { type: 'RuntimeDefault' } });
    const c = pod.containers[0];
    expect(c.securityContext).toEqual({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, privileged: false, capabilities: { drop: ['ALL'] } });
    expect(c.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'http', scheme: 'HTTP' });
    expect(c.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'http', scheme: 'HTTP' });
    expect(c.startupProbe.httpGet.path).toBe('/healthz');
    expect(c.ports).toEqual([
      { name: 'http', containerPort: 8080, protocol: 'TCP' },
      { name: 'metrics', containerPort: 9090, protocol: 'TCP' },
    ]);
    // The trust roots come from the init container, checked against the compiled-in pins.
    expect(pod.initContainers[0].args).toEqual(['trust', 'fetch', '--dir', '/var/lib/attest-broker/trust']);
    expect(pod.initContainers[0].securityContext.readOnlyRootFilesystem).toBe(true);
    // TLS for the nodes is the Ingress's, with the Secret holding leaf + CA.
    const ing = objs.find((o) => o.kind === 'Ingress')!;
    expect((ing.spec!.tls as Array<{ secretName: string }>)[0]!.secretName).toBe('attest-broker-tls');
    const paths = (ing.spec!.rules as Loose[])[0].http.paths.map((p: { path: string }) => p.path);
    expect(paths).toEqual(['/v1/challenge', '/v1/attest', '/healthz']); // /metrics stays inside
    // Every volume the container mounts exists; the ConfigMap is the generated (hashed) one.
    const vols = new Map(pod.volumes.map((v: { name: string }) => [v.name, v]));
    for (const m of [...c.volumeMounts, ...pod.initContainers[0].volumeMounts]) expect(vols.has(m.name)).toBe(true);
    const cm = objs.find((o) => o.kind === 'ConfigMap')!;
    expect((vols.get('config') as { configMap: { name: string } }).configMap.name).toBe(cm.metadata.name);
    expect(Object.keys(cm.data as object).sort()).toEqual(['config.yaml', 'policy.yaml']);
    // Service and PDB select the broker pods.
    for (const o of objs.filter((x) => x.kind === 'Service' || x.kind === 'PodDisruptionBudget')) {
      const sel = (o.spec!.selector as { matchLabels?: Record<string, string> }).matchLabels ?? (o.spec!.selector as Record<string, string>);
      for (const [k, v] of Object.entries(sel)) expect(dep.spec.template.metadata.labels[k]).toBe(v);
    }
  });

  it('base: RBAC is exactly: bootstrap-token Secrets in kube-system, the CSR approver, its Lease, and TLS bootstrap for the token group', () => {
    const objs = render('deploy/kubernetes/base');
    const byName = (kind: string, name: string) => objs.find((o) => o.kind === kind && o.metadata.name === name) as Loose;
    const roles = objs.filter((o) => o.kind === 'Role' || o.kind === 'ClusterRole').map((o) => `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`).sort();
    expect(roles).toEqual(['ClusterRole//attest-broker:csr-approver', 'Role/attest-broker/attest-broker-approver-lease', 'Role/kube-system/attest-broker-bootstrap-tokens']);
    expect(byName('Role', 'attest-broker-bootstrap-tokens').rules).toEqual([{ apiGroups: [''], resources: ['secrets'], verbs: ['create', 'get', 'delete'] }]);
    expect(byName('ClusterRole', 'attest-broker:csr-approver').rules).toEqual([
      { apiGroups: ['certificates.k8s.io'], resources: ['certificatesigningrequests'], verbs: ['get', 'list', 'watch'] },
      { apiGroups: ['certificates.k8s.io'], resources: ['certificatesigningrequests/approval'], verbs: ['update'] },
      { apiGroups: ['certificates.k8s.io'], resources: ['signers'], resourceNames: ['kubernetes.io/kube-apiserver-client-kubelet', 'kubernetes.io/kubelet-serving'], verbs: ['approve'] },
    ]);
    expect(byName('Role', 'attest-broker-approver-lease').rules).toEqual([
      { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['create'] },
      { apiGroups: ['coordination.k8s.io'], resources: ['leases'], resourceNames: ['attest-broker-approver'], verbs: ['get', 'update'] },
    ]);
    const sa = [{ kind: 'ServiceAccount', name: 'attest-broker', namespace: 'attest-broker' }];
    for (const b of objs.filter((o) => o.kind === 'RoleBinding' || (o.kind === 'ClusterRoleBinding' && o.metadata.name === 'attest-broker:csr-approver'))) expect((b as Loose).subjects).toEqual(sa);
    // The token group gets TLS bootstrap (create/read its CSR) and nothing of auto-approval.
    const boot = objs.filter((o) => (o as Loose).subjects?.some((s: { name: string }) => s.name === 'system:bootstrappers:attest-broker')) as Loose[];
    expect(boot.map((b) => `${b.kind}:${b.roleRef.name}`)).toEqual(['ClusterRoleBinding:system:node-bootstrapper']);
    expect(JSON.stringify(objs)).not.toMatch(/certificatesigningrequests:(self)?nodeclient/);
    const vap = objs.find((o) => o.kind === 'ValidatingAdmissionPolicy')!;
    expect(vap.metadata.namespace).toBeUndefined();
    expect(JSON.stringify(vap.spec)).toContain('system:serviceaccount:attest-broker:attest-broker');
  });

  it('components/kubeadm: the reads kubeadm join makes, for the broker’s token group, and no auto-approval', () => {
    const objs = parseAllDocuments(readFileSync('deploy/kubernetes/components/kubeadm/rbac.yaml', 'utf8')).map((d) => d.toJSON() as Loose);
    expect(objs.map((o) => `${o.kind}:${o.metadata.namespace ?? ''}:${o.roleRef.name}`)).toEqual([
      'RoleBinding:kube-system:kubeadm:nodes-kubeadm-config',
      'RoleBinding:kube-system:kubeadm:kubelet-config',
      'ClusterRoleBinding::kubeadm:get-nodes',
    ]);
    for (const o of objs) expect(o.subjects).toEqual([{ apiGroup: 'rbac.authorization.k8s.io', kind: 'Group', name: 'system:bootstrappers:attest-broker' }]);
  });

  it('overlays/redis: three replicas, a PDB that keeps two, Redis reachable only from the broker', () => {
    const objs = render('deploy/kubernetes/overlays/redis');
    const dep = objs.find((o) => o.kind === 'Deployment' && o.metadata.name === 'attest-broker')! as unknown as { spec: { replicas: number; template: { spec: Loose } } };
    expect(dep.spec.replicas).toBe(3);
    const env = dep.spec.template.spec.containers[0].env as Array<{ name: string; value?: string }>;
    // The password reaches the store URL through the environment, never through the ConfigMap.
    expect(env.map((e) => e.name).slice(0, 2)).toEqual(['REDIS_PASSWORD', 'ATTEST_BROKER_STORE_URL']);
    expect(env[1]!.value).toBe('redis://:$(REDIS_PASSWORD)@attest-broker-redis:6379/0');
    const cm = objs.find((o) => o.kind === 'ConfigMap')!;
    expect((cm.data as Record<string, string>)['config.yaml']).toMatch(/url: redis:\/\/attest-broker-redis:6379\/0/);
    expect((cm.data as Record<string, string>)['config.yaml']).not.toMatch(/:\/\/[^/@\s]*@/); // no credentials in a URL
    expect(objs.find((o) => o.kind === 'PodDisruptionBudget')!.spec).toMatchObject({ maxUnavailable: 1 });
    expect(objs.some((o) => o.kind === 'NetworkPolicy' && o.metadata.name === 'attest-broker-redis')).toBe(true);
    const redis = objs.find((o) => o.kind === 'Deployment' && o.metadata.name === 'attest-broker-redis')! as unknown as { spec: { template: { spec: Loose } } };
    expect(redis.spec.template.spec.containers[0].securityContext.readOnlyRootFilesystem).toBe(true);
  });

  it('base: the NetworkPolicy admits the join port from the ingress controller and node subnets, metrics from monitoring only; egress DNS, HTTPS/API, metadata', () => {
    const objs = render('deploy/kubernetes/base');
    const np = objs.find((o) => o.kind === 'NetworkPolicy' && o.metadata.name === 'attest-broker')! as Loose;
    const dep = objs.find((o) => o.kind === 'Deployment')! as Loose;
    // It selects exactly the broker pods.
    expect(np.spec.podSelector.matchLabels).toEqual(dep.spec.selector.matchLabels);
    expect(np.spec.policyTypes).toEqual(['Ingress', 'Egress']);
    // Named ports that the container really has.
    const portNames = new Set(dep.spec.template.spec.containers[0].ports.map((p: { name: string }) => p.name));
    for (const r of np.spec.ingress) for (const p of r.ports) expect(portNames.has(p.port)).toBe(true);
    const byPort = (port: string) => np.spec.ingress.filter((r: Loose) => r.ports.some((p: { port: string }) => p.port === port));
    const [metrics] = byPort('metrics');
    expect(byPort('metrics')).toHaveLength(1);
    expect(metrics.ports).toEqual([{ port: 'metrics', protocol: 'TCP' }]); // nothing else rides on this rule
    expect(metrics.from).toEqual([{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } }]);
    const [join] = byPort('http');
    expect(join.from).toEqual([{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'ingress-nginx' } } }, { ipBlock: { cidr: '10.0.0.0/16' } }]);
    // Egress: DNS to kube-dns only; 443/6443 (API, KMS, collateral); the metadata service on 80.
    const eg = np.spec.egress as Loose[];
    expect(eg).toHaveLength(3);
    expect(eg[0].to).toEqual([{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'kube-system' } }, podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } } }]);
    expect(eg[0].ports).toEqual([{ port: 53, protocol: 'UDP' }, { port: 53, protocol: 'TCP' }]);
    expect(eg[1].ports).toEqual([{ port: 443, protocol: 'TCP' }, { port: 6443, protocol: 'TCP' }]);
    expect(eg[1].to[0].ipBlock).toEqual({ cidr: '0.0.0.0/0', except: ['169.254.0.0/16'] }); // link-local only through the rule below
    expect(eg[2]).toEqual({ to: [{ ipBlock: { cidr: '169.254.169.254/32' } }], ports: [{ port: 80, protocol: 'TCP' }] });
    // The Ingress's Service never carries the metrics port; a Service of its own does.
    const svc = (name: string) => objs.find((o) => o.kind === 'Service' && o.metadata.name === name)! as Loose;
    expect(svc('attest-broker').spec.ports.map((p: { targetPort: string }) => p.targetPort)).toEqual(['http']);
    expect(svc('attest-broker-metrics').spec.ports).toEqual([{ name: 'metrics', port: 9090, targetPort: 'metrics', protocol: 'TCP' }]);
  });

  it('overlays/redis: the broker may reach Redis on 6379 (its own egress rule)', () => {
    const objs = render('deploy/kubernetes/overlays/redis');
    const np = objs.find((o) => o.kind === 'NetworkPolicy' && o.metadata.name === 'attest-broker-to-redis')! as Loose;
    expect(np.spec.podSelector.matchLabels).toEqual({ 'app.kubernetes.io/name': 'attest-broker', 'app.kubernetes.io/component': 'broker' });
    expect(np.spec.policyTypes).toEqual(['Egress']);
    expect(np.spec.egress).toEqual([{ to: [{ podSelector: { matchLabels: { 'app.kubernetes.io/name': 'attest-broker', 'app.kubernetes.io/component': 'redis' } } }], ports: [{ port: 6379, protocol: 'TCP' }] }]);
  });

  it('components/servicemonitor: scrapes the metrics Service by its port name, in the broker namespace', () => {
    const sm = parseAllDocuments(readFileSync('deploy/kubernetes/components/servicemonitor/servicemonitor.yaml', 'utf8'))[0]!.toJSON() as Loose;
    const svc = render('deploy/kubernetes/base').find((o) => o.kind === 'Service' && o.metadata.name === 'attest-broker-metrics')! as Loose;
    expect(sm.apiVersion).toBe('monitoring.coreos.com/v1');
    for (const [k, v] of Object.entries(sm.spec.selector.matchLabels as Record<string, string>)) expect(svc.metadata.labels[k]).toBe(v);
    expect(sm.spec.namespaceSelector.matchNames).toEqual([svc.metadata.namespace]);
    expect(sm.spec.endpoints).toEqual([{ port: 'metrics', path: '/metrics', scheme: 'http', interval: '30s', scrapeTimeout: '10s' }]);
    expect(svc.spec.ports.map((p: { name: string }) => p.name)).toContain('metrics');
  });

  // The ConfigMap is what the broker starts from: its config and policy must pass the broker's
  // own loaders, and release must name every cluster the policy admits nodes to.
  for (const dir of ['deploy/kubernetes/base', 'deploy/kubernetes/overlays/redis']) {
    it(`${dir}: the ConfigMap's config.yaml and policy.yaml load as the broker loads them`, async () => {
      const cm = render(dir).find((o) => o.kind === 'ConfigMap')!.data as Record<string, string>;
      const tmp = mkdtempSync(join(tmpdir(), 'kube-cm-'));
      try {
        writeFileSync(join(tmp, 'config.yaml'), cm['config.yaml']!);
        writeFileSync(join(tmp, 'policy.yaml'), cm['policy.yaml']!);
        const cfg = await loadConfig({ file: join(tmp, 'config.yaml'), env: {} });
        expect(cfg.policy.file).toBe('/etc/attest-broker/policy.yaml');
        // /metrics on its own port: the container's `metrics` port, the one the NetworkPolicy guards.
        expect(cfg.metrics.listen).toEqual({ host: '0.0.0.0', port: 9090 });
        expect(cfg.listen.port).toBe(8080);
        const policy = await loadPolicyFile(join(tmp, 'policy.yaml'), new Date());
        const release = ReleaseConfigSchema.parse(cfg.release);
        expect(release.mode).toBe('secret');
        expect(Object.keys(release.clusters).sort()).toEqual(Object.keys(policy.doc.clusters).sort());
        for (const c of Object.values(release.clusters)) expect(c.kube?.inCluster).toBe(true);
      } finally {
        rmSync(tmp, { recursive: true, force: true });
      }
    });
  }
});

describe('deploy/container', () => {
  // The Dockerfile itself: container-bundle.test.ts.
  it('healthcheck.mjs exits 0 on 200 and 1 otherwise', async () => {
    const tls = makeTls('health');
    let status = 200;
    const s = createHttpsServer({ cert: tls.leafPem, key: tls.leafKeyPem }, (req, res) => {
      res.writeHead(req.url === '/healthz' ? status : 404).end();
    });
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    const env = { ...process.env, ATTEST_HEALTH_URL: `https://127.0.0.1:${(s.address() as { port: number }).port}/healthz` };
    const code = async (): Promise<number> =>
      run(process.execPath, ['deploy/container/healthcheck.mjs'], { env }).then(
        () => 0,
        (e: { code: number }) => e.code,
      );
    expect(await code()).toBe(0);
    status = 503;
    expect(await code()).toBe(1);
    s.close();
    env.ATTEST_HEALTH_URL = 'https://127.0.0.1:1/healthz';
    expect(await code()).toBe(1);
    rmSync(tls.dir, { recursive: true, force: true });
  });
});

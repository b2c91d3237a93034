/**
 * A small Kubernetes API server for tests, speaking the real wire protocol over TLS to real
 * clients (the broker's KubeClient, `kubectl`): Secrets, CertificateSigningRequests with their
 * `approval` subresource and a signer, Leases, discovery, SelfSubjectAccessReview and
 * SelfSubjectReview, with the authenticators and the RBAC authorizer of kube-apiserver.
 *
 * API references followed (kubernetes.io/docs):
 * - Secret v1, CertificateSigningRequest v1, Lease v1, SelfSubjectAccessReview v1,
 *   SelfSubjectReview v1 (reference/kubernetes-api/…): create → 201 (name taken → 409
 *   AlreadyExists; `metadata.generateName` → a random suffix), get → 200/404 NotFound, update with
 *   a stale `metadata.resourceVersion` → 409 Conflict, delete with `preconditions.resourceVersion`.
 * - Status kind and reasons: reference/kubernetes-api/common-definitions/status/.
 * - API concepts (reference/using-api/api-concepts/): resourceVersion, list, and watch —
 *   `?watch=true&resourceVersion=N` streams newline-delimited `{type, object}` events after N;
 *   a resourceVersion older than the retained history answers 410 Gone; `timeoutSeconds` ends
 *   the stream; discovery at `/api`, `/apis`, `/apis/<group>/<version>`.
 * - Certificate signing requests (reference/access-authn-authz/certificate-signing-requests/):
 *   the server sets `spec.username`, `uid`, `groups` and `extra` from the authenticated requester,
 *   whatever the client sent; `spec.request` must be a PEM PKCS#10 request with a valid signature;
 *   the `approval` subresource takes Approved/Denied conditions (status "True", not both, never
 *   removed once set) and needs, besides `update` on `certificatesigningrequests/approval`, the
 *   `approve` verb on `signers` named the CSR's signerName (or `<domain>/*`) — the
 *   CertificateApproval admission plugin; the built-in kubelet signers of kube-controller-manager
 *   then sign approved requests with the cluster CA (here: `openssl x509 -req`, copying the SANs,
 *   with the usages as key usages).
 * - Authenticating (reference/access-authn-authz/authentication/): bearer tokens (a static admin
 *   token in group system:masters, and service-account-style tokens registered by the test),
 *   bootstrap tokens (reference/access-authn-authz/bootstrap-tokens/: `<id>.<secret>` matching a
 *   `bootstrap-token-<id>` Secret of type bootstrap.kubernetes.io/token in kube-system with
 *   usage-bootstrap-authentication "true" and an unexpired `expiration` → user
 *   `system:bootstrap:<id>`, groups `system:bootstrappers` plus `auth-extra-groups`), X.509 client
 *   certificates signed by the cluster CA (CN → user, O → groups). Every authenticated user also
 *   gets `system:authenticated`. Impersonation (`Impersonate-User`/`-Group`) for users allowed to
 *   `impersonate`.
 * - RBAC (reference/access-authn-authz/rbac/): Roles, ClusterRoles, RoleBindings and
 *   ClusterRoleBindings loaded by the test (e.g. from deploy/kubernetes), plus the defaults the
 *   real server creates that matter here (system:discovery, system:basic-user,
 *   system:node-bootstrapper, the nodeclient/selfnodeclient auto-approval roles and the two
 *   kubelet signer approver roles), and the Node authorizer's CSR rights for group system:nodes.
 *
 * Fault injection: `forbid` (403 on Secrets), `failNext(n, status)` (n responses with that status
 * — with `afterWrite` the POST is applied before the failure, like a lost 201), `hangNext(n)`.
 */
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { randomBytes, randomUUID, timingSafeEqual, X509Certificate } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

interface Meta {
  name: string;
  namespace?: string;
  uid: string;
  resourceVersion: string;
  creationTimestamp: string;
  generateName?: string;
}

interface StoredSecret {
  apiVersion: 'v1';
  kind: 'Secret';
  metadata: Meta & { namespace: string };
  type: string;
  data: Record<string, string>;
}

export interface StoredCsr {
  apiVersion: 'certificates.k8s.io/v1';
  kind: 'CertificateSigningRequest';
  metadata: Meta;
  spec: { request: string; signerName: string; usages?: string[]; expirationSeconds?: number; username: string; uid: string; groups: string[]; extra?: Record<string, string[]> };
  status: { conditions?: Array<{ type: string; status: string; reason?: string; message?: string; lastUpdateTime?: string; lastTransitionTime?: string }>; certificate?: string };
}

interface StoredLease {
  apiVersion: 'coordination.k8s.io/v1';
  kind: 'Lease';
  metadata: Meta & { namespace: string };
  spec: Record<string, unknown>;
}

export interface UserInfo {
  username: string;
  uid?: string;
  groups: string[];
}

export interface PolicyRule {
  apiGroups?: string[];
  resources?: string[];
  verbs: string[];
  resourceNames?: string[];
  nonResourceURLs?: string[];
}

export interface RbacObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
  rules?: PolicyRule[];
  roleRef?: { apiGroup: string; kind: string; name: string };
  subjects?: Array<{ kind: string; name: string; namespace?: string; apiGroup?: string }>;
}

export interface AccessAttributes {
  verb: string;
  apiGroup?: string;
  resource?: string;
  subresource?: string;
  name?: string;
  namespace?: string;
  path?: string;
}

export interface KubeTestServer {
  url: string;
  port: number;
  adminToken: string;
  /** PEM of the CA that signs kubelet certificates and verifies client certificates. */
  clusterCaPem: string;
  secrets: Map<string, StoredSecret>;
  csrs: Map<string, StoredCsr>;
  leases: Map<string, StoredLease>;
  requests: Array<{ method: string; path: string; status: number; user?: string; /** W3C trace context the caller sent, when it sent one. */ traceparent?: string }>;
  /** Successful writes to CSR approval subresources, in order. */
  approvals: Array<{ name: string; type: string; user: string }>;
  forbid: boolean;
  /** Sign approved kubelet CSRs (kube-controller-manager's signer); default true. */
  signing: boolean;
  failNext(n: number, status: number, afterWrite?: boolean): void;
  /** The next n requests get no answer at all (a hung API server). */
  hangNext(n: number): void;
  /** The clock the bootstrap authenticator checks `expiration` against. */
  now: () => Date;
  /** A bearer token for `user` (a service account: username system:serviceaccount:<ns>:<name>). */
  addToken(user: UserInfo): string;
  /** Adds RBAC objects (Role, ClusterRole, RoleBinding, ClusterRoleBinding); others are ignored. */
  loadRbac(objects: readonly RbacObject[]): void;
  /** The RBAC decision for `user` (what SelfSubjectAccessReview answers). */
  authorize(user: UserInfo, a: AccessAttributes): boolean;
  close(): Promise<void>;
}

function status(res: ServerResponse, code: number, reason: string, message: string): void {
  res.writeHead(code, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code }));
}

function json(res: ServerResponse, code: number, body: unknown): void {
  res.writeHead(code, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/**
 * Protobuf wire reading for the one request body kubectl sends as protobuf here
 * (SelfSubjectAccessReview; "Kubernetes Protobuf encoding": the 4-byte magic `k8s\0`, then
 * `runtime.Unknown{typeMeta=1, raw=2, contentEncoding=3, contentType=4}` whose `raw` is the
 * object; field numbers from k8s.io/api/authorization/v1/generated.proto).
 */
function pbFields(b: Buffer): Map<number, Buffer[]> {
  const out = new Map<number, Buffer[]>();
  let i = 0;
  const varint = (): number => {
    let v = 0;
    let shift = 0;
    for (;;) {
      const c = b[i++]!;
      v += (c & 0x7f) * 2 ** shift;
      if (c < 0x80) return v;
      shift += 7;
    }
  };
  while (i < b.length) {
    const key = varint();
    const wt = key & 7;
    const f = Math.floor(key / 8);
    if (wt === 0) varint();
    else if (wt === 2) {
      const n = varint();
      out.set(f, [...(out.get(f) ?? []), b.subarray(i, i + n)]);
      i += n;
    } else if (wt === 1) i += 8;
    else if (wt === 5) i += 4;
    else throw new Error(`protobuf wire type ${wt}`);
  }
  return out;
}

function ssarFromProtobuf(body: Buffer): { spec: Record<string, Record<string, string>> } {
  if (body.subarray(0, 4).toString('latin1') !== 'k8s\0') throw new Error('not a Kubernetes protobuf envelope');
  const raw = pbFields(body.subarray(4)).get(2)?.[0] ?? Buffer.alloc(0);
  const spec = pbFields(raw).get(2)?.[0] ?? Buffer.alloc(0);
  const sf = pbFields(spec);
  const strs = (m: Buffer | undefined, names: Record<number, string>): Record<string, string> => {
    const o: Record<string, string> = {};
    if (!m) return o;
    for (const [f, v] of pbFields(m)) if (names[f]) o[names[f]!] = v[0]!.toString('utf8');
    return o;
  };
  const ra = sf.get(1)?.[0];
  const na = sf.get(2)?.[0];
  return {
    spec: {
      ...(ra ? { resourceAttributes: strs(ra, { 1: 'namespace', 2: 'verb', 3: 'group', 4: 'version', 5: 'resource', 6: 'subresource', 7: 'name' }) } : {}),
      ...(na ? { nonResourceAttributes: strs(na, { 1: 'path', 2: 'verb' }) } : {}),
    },
  };
}

const nowIso = (): string => new Date().toISOString().replace(/\.\d+Z$/, 'Z');

/** Default cluster roles and bindings of kube-apiserver's RBAC bootstrap policy that matter here. */
function defaultRbac(): RbacObject[] {
  const cr = (name: string, rules: PolicyRule[]): RbacObject => ({ apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', metadata: { name }, rules });
  const crb = (name: string, role: string, groups: string[]): RbacObject => ({
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'ClusterRoleBinding',
    metadata: { name },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: role },
    subjects: groups.map((g) => ({ kind: 'Group', apiGroup: 'rbac.authorization.k8s.io', name: g })),
  });
  const csr = 'certificates.k8s.io';
  return [
    cr('cluster-admin', [{ apiGroups: ['*'], resources: ['*'], verbs: ['*'] }, { nonResourceURLs: ['*'], verbs: ['*'] }]),
    crb('cluster-admin', 'cluster-admin', ['system:masters']),
    cr('system:discovery', [{ nonResourceURLs: ['/api', '/api/*', '/apis', '/apis/*', '/healthz', '/livez', '/readyz', '/version', '/version/'], verbs: ['get'] }]),
    crb('system:discovery', 'system:discovery', ['system:authenticated']),
    cr('system:basic-user', [
      { apiGroups: ['authorization.k8s.io'], resources: ['selfsubjectaccessreviews', 'selfsubjectrulesreviews'], verbs: ['create'] },
      { apiGroups: ['authentication.k8s.io'], resources: ['selfsubjectreviews'], verbs: ['create'] },
    ]),
    crb('system:basic-user', 'system:basic-user', ['system:authenticated']),
    cr('system:node-bootstrapper', [{ apiGroups: [csr], resources: ['certificatesigningrequests'], verbs: ['create', 'get', 'list', 'watch'] }]),
    cr('system:certificates.k8s.io:certificatesigningrequests:nodeclient', [{ apiGroups: [csr], resources: ['certificatesigningrequests/nodeclient'], verbs: ['create'] }]),
    cr('system:certificates.k8s.io:certificatesigningrequests:selfnodeclient', [{ apiGroups: [csr], resources: ['certificatesigningrequests/selfnodeclient'], verbs: ['create'] }]),
    cr('system:certificates.k8s.io:kube-apiserver-client-kubelet-approver', [{ apiGroups: [csr], resources: ['signers'], resourceNames: ['kubernetes.io/kube-apiserver-client-kubelet'], verbs: ['approve'] }]),
    cr('system:certificates.k8s.io:kubelet-serving-approver', [{ apiGroups: [csr], resources: ['signers'], resourceNames: ['kubernetes.io/kubelet-serving'], verbs: ['approve'] }]),
  ];
}

/** The Node authorizer's CSR rights (plugin/pkg/auth/authorizer/node: nodes may create and read CSRs). */
const NODE_RULES: PolicyRule[] = [{ apiGroups: ['certificates.k8s.io'], resources: ['certificatesigningrequests'], verbs: ['create', 'get', 'list', 'watch'] }];

function ruleMatches(r: PolicyRule, a: AccessAttributes): boolean {
  if (!r.verbs.includes('*') && !r.verbs.includes(a.verb)) return false;
  if (a.path !== undefined) {
    return (r.nonResourceURLs ?? []).some((u) => u === '*' || u === a.path || (u.endsWith('*') && a.path!.startsWith(u.slice(0, -1))));
  }
  if (!(r.apiGroups ?? []).some((g) => g === '*' || g === (a.apiGroup ?? ''))) return false;
  const res = a.subresource ? `${a.resource}/${a.subresource}` : a.resource;
  if (!(r.resources ?? []).some((x) => x === '*' || x === res || (a.subresource && x === `*/${a.subresource}`))) return false;
  if (r.resourceNames?.length) return a.name !== undefined && r.resourceNames.includes(a.name);
  return true;
}

export async function startKubeServer(tls: { certPem: string; keyPem: string; caPem?: string; dir?: string }): Promise<KubeTestServer> {
  const secrets = new Map<string, StoredSecret>();
  const csrs = new Map<string, StoredCsr>();
  const leases = new Map<string, StoredLease>();
  const requests: KubeTestServer['requests'] = [];
  const approvals: KubeTestServer['approvals'] = [];
  const tokens = new Map<string, UserInfo>();
  const rbac: RbacObject[] = defaultRbac();
  let rv = 1000;
  let fail: { n: number; status: number; afterWrite: boolean } = { n: 0, status: 0, afterWrite: false };
  let hang = 0;
  const adminToken = 'admin-' + randomUUID();
  tokens.set(adminToken, { username: 'kubernetes-admin', groups: ['system:masters'] });

  // The cluster CA: the test PKI's CA when its key is at hand (one CA for serving and clients),
  // otherwise a fresh one.
  const caDir = tls.dir && existsSync(join(tls.dir, 'ca.key')) && tls.caPem ? tls.dir : mkdtempSync(join(tmpdir(), 'ab-kube-ca-'));
  if (!existsSync(join(caDir, 'ca.key'))) {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=kubernetes', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], { cwd: caDir, stdio: ['ignore', 'ignore', 'pipe'] });
  }
  const clusterCaPem = readFileSync(join(caDir, 'ca.crt'), 'utf8');
  const clusterCa = new X509Certificate(clusterCaPem);

  const self: Partial<KubeTestServer> = { secrets, csrs, leases, requests, approvals, adminToken, clusterCaPem, forbid: false, signing: true, now: () => new Date() };

  const b64 = (s: string | undefined): string => (s === undefined ? '' : Buffer.from(s, 'base64').toString('utf8'));
  const eq = (a: string, b: string): boolean => a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b));

  function authorize(user: UserInfo, a: AccessAttributes): boolean {
    if (user.groups.includes('system:nodes') && a.path === undefined && NODE_RULES.some((r) => ruleMatches(r, a))) return true;
    const subjectIs = (s: { kind: string; name: string; namespace?: string }): boolean =>
      (s.kind === 'User' && s.name === user.username) ||
      (s.kind === 'Group' && user.groups.includes(s.name)) ||
      (s.kind === 'ServiceAccount' && user.username === `system:serviceaccount:${s.namespace}:${s.name}`);
    for (const b of rbac) {
      if (b.kind !== 'ClusterRoleBinding' && b.kind !== 'RoleBinding') continue;
      if (!(b.subjects ?? []).some(subjectIs)) continue;
      if (b.kind === 'RoleBinding' && (a.path !== undefined || a.namespace !== b.metadata.namespace)) continue;
      const role = rbac.find((r) => r.kind === b.roleRef!.kind && r.metadata.name === b.roleRef!.name && (r.kind === 'ClusterRole' || r.metadata.namespace === b.metadata.namespace));
      if (role && (role.rules ?? []).some((r) => ruleMatches(r, a))) return true;
    }
    return false;
  }

  /** Who is calling (after impersonation), or null. */
  function authenticate(req: IncomingMessage): UserInfo | null {
    let user: UserInfo | null = null;
    const m = /^Bearer (.+)$/.exec(req.headers.authorization ?? '');
    if (m) {
      const tok = m[1]!;
      for (const [t, u] of tokens) if (eq(tok, t)) user = u;
      const bt = /^([a-z0-9]{6})\.([a-z0-9]{16})$/.exec(tok);
      if (!user && bt) {
        const s = secrets.get(`kube-system/bootstrap-token-${bt[1]}`);
        if (!s || s.type !== 'bootstrap.kubernetes.io/token') return null;
        if (b64(s.data['usage-bootstrap-authentication']) !== 'true') return null;
        if (!eq(b64(s.data['token-secret']), bt[2]!)) return null;
        const exp = s.data.expiration ? Date.parse(b64(s.data.expiration)) : Infinity;
        if (!(exp > self.now!().getTime())) return null;
        const extra = b64(s.data['auth-extra-groups']).split(',').filter(Boolean);
        user = { username: `system:bootstrap:${bt[1]}`, groups: ['system:bootstrappers', ...extra] };
      }
      if (!user) return null;
    } else {
      const sock = req.socket as TLSSocket;
      const peer = sock.getPeerX509Certificate?.();
      if (peer && sock.authorized && peer.checkIssued(clusterCa) && peer.verify(clusterCa.publicKey)) {
        const subj = peer.subject.split('\n');
        const cn = subj.find((l) => l.startsWith('CN='))?.slice(3);
        if (cn) user = { username: cn, groups: subj.filter((l) => l.startsWith('O=')).map((l) => l.slice(2)) };
      }
      if (!user) return null;
    }
    user = { ...user, groups: [...new Set([...user.groups, 'system:authenticated'])] };
    const asUser = req.headers['impersonate-user'];
    if (typeof asUser === 'string') {
      if (!authorize(user, { verb: 'impersonate', apiGroup: '', resource: 'users', name: asUser })) return null;
      const g = req.headers['impersonate-group'];
      const groups = Array.isArray(g) ? g : typeof g === 'string' ? g.split(',').map((x) => x.trim()) : [];
      user = { username: asUser, groups: [...new Set([...groups, 'system:authenticated'])] };
    }
    return user;
  }

  // ── watch support for CSRs ──
  const history: Array<{ rv: number; type: string; object: StoredCsr }> = [];
  const watchers = new Set<(e: { type: string; object: StoredCsr }) => void>();
  function emit(type: string, obj: StoredCsr): void {
    const e = { rv: Number(obj.metadata.resourceVersion), type, object: structuredClone(obj) };
    history.push(e);
    if (history.length > 500) history.shift();
    for (const w of watchers) w(e);
  }

  function signCsr(c: StoredCsr): void {
    if (!self.signing) return;
    if (c.spec.signerName !== 'kubernetes.io/kube-apiserver-client-kubelet' && c.spec.signerName !== 'kubernetes.io/kubelet-serving') return;
    const dir = mkdtempSync(join(tmpdir(), 'ab-kube-sign-'));
    try {
      writeFileSync(join(dir, 'req.pem'), Buffer.from(c.spec.request, 'base64'));
      const ku = (c.spec.usages ?? []).filter((u) => u === 'digital signature' || u === 'key encipherment').map((u) => (u === 'digital signature' ? 'digitalSignature' : 'keyEncipherment'));
      const eku = (c.spec.usages ?? []).filter((u) => u === 'client auth' || u === 'server auth').map((u) => (u === 'client auth' ? 'clientAuth' : 'serverAuth'));
      writeFileSync(join(dir, 'ext.cnf'), [`basicConstraints=critical,CA:FALSE`, ku.length ? `keyUsage=critical,${ku.join(',')}` : '', eku.length ? `extendedKeyUsage=${eku.join(',')}` : ''].filter(Boolean).join('\n') + '\n');
      execFileSync('openssl', ['x509', '-req', '-in', 'req.pem', '-CA', join(caDir, 'ca.crt'), '-CAkey', join(caDir, 'ca.key'), '-set_serial', '0x' + randomBytes(12).toString('hex'), '-days', '1', '-extfile', 'ext.cnf', '-copy_extensions', 'copy', '-out', 'cert.pem'], { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
      c.status.certificate = readFileSync(join(dir, 'cert.pem')).toString('base64');
      c.metadata.resourceVersion = String(++rv);
      emit('MODIFIED', c);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  const GROUPS: Record<string, { version: string; resources: Array<{ name: string; kind: string; namespaced: boolean; verbs: string[]; shortNames?: string[]; singularName?: string }> }> = {
    'certificates.k8s.io': {
      version: 'v1',
      resources: [
        { name: 'certificatesigningrequests', kind: 'CertificateSigningRequest', namespaced: false, verbs: ['create', 'delete', 'get', 'list', 'watch'], shortNames: ['csr'], singularName: 'certificatesigningrequest' },
        { name: 'certificatesigningrequests/approval', kind: 'CertificateSigningRequest', namespaced: false, verbs: ['get', 'update'] },
        { name: 'certificatesigningrequests/status', kind: 'CertificateSigningRequest', namespaced: false, verbs: ['get', 'update'] },
      ],
    },
    'coordination.k8s.io': { version: 'v1', resources: [{ name: 'leases', kind: 'Lease', namespaced: true, verbs: ['create', 'get', 'update'] }] },
    'authorization.k8s.io': { version: 'v1', resources: [{ name: 'selfsubjectaccessreviews', kind: 'SelfSubjectAccessReview', namespaced: false, verbs: ['create'] }] },
    'authentication.k8s.io': { version: 'v1', resources: [{ name: 'selfsubjectreviews', kind: 'SelfSubjectReview', namespaced: false, verbs: ['create'] }] },
    'rbac.authorization.k8s.io': {
      version: 'v1',
      resources: [
        { name: 'clusterroles', kind: 'ClusterRole', namespaced: false, verbs: ['get', 'list'] },
        { name: 'clusterrolebindings', kind: 'ClusterRoleBinding', namespaced: false, verbs: ['get', 'list'] },
        { name: 'roles', kind: 'Role', namespaced: true, verbs: ['get', 'list'] },
        { name: 'rolebindings', kind: 'RoleBinding', namespaced: true, verbs: ['get', 'list'] },
      ],
    },
  };

  function meta(name: string, namespace?: string): Meta {
    return { name, ...(namespace ? { namespace } : {}), uid: randomUUID(), resourceVersion: String(++rv), creationTimestamp: nowIso() };
  }

  async function handle(req: IncomingMessage, res: ServerResponse, url: URL, method: string, path: string, rawBody: Buffer): Promise<void> {
    const protobuf = (req.headers['content-type'] ?? '').startsWith('application/vnd.kubernetes.protobuf');
    const body = protobuf ? '' : rawBody.toString('utf8');
    if (hang > 0) {
      hang--;
      return; // never answer
    }
    const who = authenticate(req);
    if (!who) return status(res, 401, 'Unauthorized', 'Unauthorized');
    (res as ServerResponse & { user?: string }).user = who.username;
    if (fail.n > 0 && !fail.afterWrite) {
      fail.n--;
      return status(res, fail.status, 'InternalError', 'injected failure');
    }
    const forbidden = (a: AccessAttributes): void => {
      const what = a.path ?? `${a.resource}${a.subresource ? '/' + a.subresource : ''}${a.apiGroup ? '.' + a.apiGroup : ''}`;
      status(res, 403, 'Forbidden', `${a.resource ?? 'path'} "${a.name ?? what}" is forbidden: User "${who.username}" cannot ${a.verb} resource "${what}"${a.namespace ? ` in the namespace "${a.namespace}"` : ''}`);
    };
    const can = (a: AccessAttributes): boolean => {
      if (authorize(who, a)) return true;
      forbidden(a);
      return false;
    };

    // ── discovery and version (non-resource URLs) ──
    if (method === 'GET' && (path === '/version' || path === '/api' || path === '/apis' || path === '/api/v1' || path.startsWith('/apis/') && path.split('/').length === 4)) {
      if (!can({ verb: 'get', path })) return;
      if (path === '/version') return json(res, 200, { major: '1', minor: '32', gitVersion: 'v1.32.4-attest-test', platform: 'linux/amd64' });
      if (path === '/api') return json(res, 200, { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: req.headers.host ?? '' }] });
      if (path === '/apis') {
        return json(res, 200, {
          kind: 'APIGroupList',
          apiVersion: 'v1',
          groups: Object.entries(GROUPS).map(([name, g]) => ({ name, versions: [{ groupVersion: `${name}/${g.version}`, version: g.version }], preferredVersion: { groupVersion: `${name}/${g.version}`, version: g.version } })),
        });
      }
      if (path === '/api/v1') {
        return json(res, 200, { kind: 'APIResourceList', groupVersion: 'v1', resources: [{ name: 'secrets', singularName: 'secret', namespaced: true, kind: 'Secret', verbs: ['create', 'delete', 'get', 'list'], storageVersionHash: 'S6u1pOWzb84=' }] });
      }
      const [, , group, version] = path.split('/');
      const g = GROUPS[group!];
      if (!g || g.version !== version) return status(res, 404, 'NotFound', 'the server could not find the requested resource');
      return json(res, 200, { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: `${group}/${version}`, resources: g.resources.map((r) => ({ singularName: '', ...r })) });
    }

    // ── SelfSubjectAccessReview / SelfSubjectReview ──
    if (method === 'POST' && path === '/apis/authorization.k8s.io/v1/selfsubjectaccessreviews') {
      if (!can({ verb: 'create', apiGroup: 'authorization.k8s.io', resource: 'selfsubjectaccessreviews' })) return;
      const r = (protobuf ? ssarFromProtobuf(rawBody) : JSON.parse(body)) as { spec?: { resourceAttributes?: { namespace?: string; verb?: string; group?: string; resource?: string; subresource?: string; name?: string }; nonResourceAttributes?: { path?: string; verb?: string } } };
      const ra = r.spec?.resourceAttributes;
      const na = r.spec?.nonResourceAttributes;
      const allowed = ra
        ? authorize(who, { verb: ra.verb ?? '', apiGroup: ra.group ?? '', resource: ra.resource ?? '', ...(ra.subresource ? { subresource: ra.subresource } : {}), ...(ra.name ? { name: ra.name } : {}), ...(ra.namespace ? { namespace: ra.namespace } : {}) })
        : authorize(who, { verb: na?.verb ?? '', path: na?.path ?? '' });
      return json(res, 201, { kind: 'SelfSubjectAccessReview', apiVersion: 'authorization.k8s.io/v1', metadata: {}, spec: r.spec ?? {}, status: { allowed, ...(allowed ? { reason: 'RBAC: allowed' } : {}) } });
    }
    if (method === 'POST' && path === '/apis/authentication.k8s.io/v1/selfsubjectreviews') {
      if (!can({ verb: 'create', apiGroup: 'authentication.k8s.io', resource: 'selfsubjectreviews' })) return;
      return json(res, 201, { kind: 'SelfSubjectReview', apiVersion: 'authentication.k8s.io/v1', metadata: { creationTimestamp: null }, status: { userInfo: { username: who.username, groups: who.groups } } });
    }

    // ── CertificateSigningRequests ──
    const cm = /^\/apis\/certificates\.k8s\.io\/v1\/certificatesigningrequests(?:\/([a-z0-9.-]+)(?:\/(approval|status))?)?$/.exec(path);
    if (cm) {
      const name = cm[1];
      const sub = cm[2];
      const attrs = (verb: string, subresource?: string): AccessAttributes => ({ verb, apiGroup: 'certificates.k8s.io', resource: 'certificatesigningrequests', ...(subresource ? { subresource } : {}), ...(name ? { name } : {}) });
      if (method === 'POST' && !name) {
        if (!can(attrs('create'))) return;
        const obj = JSON.parse(body) as { apiVersion?: string; kind?: string; metadata?: { name?: string; generateName?: string }; spec?: StoredCsr['spec'] };
        if (obj.kind !== 'CertificateSigningRequest' || !obj.spec) return status(res, 400, 'BadRequest', 'not a CertificateSigningRequest');
        const n = obj.metadata?.name || (obj.metadata?.generateName ? obj.metadata.generateName + randomBytes(3).toString('hex').slice(0, 5) : '');
        if (!n) return status(res, 422, 'Invalid', 'metadata.name or generateName is required');
        if (csrs.has(n)) return status(res, 409, 'AlreadyExists', `certificatesigningrequests.certificates.k8s.io "${n}" already exists`);
        // Validation as the real server: the request must be a PEM CSR with a valid signature.
        const dir = mkdtempSync(join(tmpdir(), 'ab-kube-csr-'));
        try {
          writeFileSync(join(dir, 'req.pem'), Buffer.from(obj.spec.request ?? '', 'base64'));
          execFileSync('openssl', ['req', '-in', 'req.pem', '-verify', '-noout'], { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
        } catch {
          return status(res, 422, 'Invalid', 'CertificateSigningRequest.certificates.k8s.io is invalid: spec.request: Invalid value: []byte{...}: PEM block type must be CERTIFICATE REQUEST');
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
        if (!/^[a-z0-9.-]+\/[a-zA-Z0-9.-]+$/.test(obj.spec.signerName ?? '')) return status(res, 422, 'Invalid', 'spec.signerName: Invalid value');
        const stored: StoredCsr = {
          apiVersion: 'certificates.k8s.io/v1',
          kind: 'CertificateSigningRequest',
          metadata: meta(n),
          spec: {
            request: obj.spec.request,
            signerName: obj.spec.signerName,
            ...(obj.spec.usages ? { usages: obj.spec.usages } : {}),
            ...(obj.spec.expirationSeconds ? { expirationSeconds: obj.spec.expirationSeconds } : {}),
            // Set from the authenticated requester, whatever the client sent.
            username: who.username,
            uid: who.uid ?? '',
            groups: who.groups,
          },
          status: {},
        };
        csrs.set(n, stored);
        emit('ADDED', stored);
        return json(res, 201, stored);
      }
      if (method === 'GET' && !name) {
        const watch = url.searchParams.get('watch') === 'true' || url.searchParams.get('watch') === '1';
        if (!can(attrs(watch ? 'watch' : 'list'))) return;
        if (!watch) return json(res, 200, { kind: 'CertificateSigningRequestList', apiVersion: 'certificates.k8s.io/v1', metadata: { resourceVersion: String(rv) }, items: [...csrs.values()] });
        const from = Number(url.searchParams.get('resourceVersion') ?? '0');
        if (from && history.length && from < history[0]!.rv - 1) return status(res, 410, 'Expired', `too old resource version: ${from} (${history[0]!.rv})`);
        res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
        const send = (e: { type: string; object: StoredCsr }): void => {
          res.write(JSON.stringify({ type: e.type, object: e.object }) + '\n');
        };
        if (from) {
          for (const e of history) if (e.rv > from) send(e);
        } else {
          for (const c of csrs.values()) send({ type: 'ADDED', object: c });
        }
        watchers.add(send);
        const timeout = Math.min(Number(url.searchParams.get('timeoutSeconds') ?? '1800'), 1800) * 1000;
        const t = setTimeout(() => res.end(), timeout);
        const done = (): void => {
          clearTimeout(t);
          watchers.delete(send);
        };
        res.on('close', done);
        req.socket.on('close', done);
        return;
      }
      const c = name ? csrs.get(name) : undefined;
      if (method === 'GET' && name && !sub) {
        if (!can(attrs('get'))) return;
        if (!c) return status(res, 404, 'NotFound', `certificatesigningrequests.certificates.k8s.io "${name}" not found`);
        return json(res, 200, c);
      }
      if (method === 'PUT' && name && sub === 'approval') {
        if (!can(attrs('update', 'approval'))) return;
        if (!c) return status(res, 404, 'NotFound', `certificatesigningrequests.certificates.k8s.io "${name}" not found`);
        const obj = JSON.parse(body) as StoredCsr;
        if (obj.metadata?.resourceVersion && obj.metadata.resourceVersion !== c.metadata.resourceVersion) {
          return status(res, 409, 'Conflict', `Operation cannot be fulfilled on certificatesigningrequests.certificates.k8s.io "${name}": the object has been modified; please apply your changes to the latest version and try again`);
        }
        const conds = obj.status?.conditions ?? [];
        const types = conds.map((x) => x.type);
        if (new Set(types).size !== types.length) return status(res, 422, 'Invalid', 'status.conditions: Duplicate value');
        if (types.includes('Approved') && types.includes('Denied')) return status(res, 422, 'Invalid', 'status.conditions: Approved and Denied conditions are mutually exclusive');
        for (const x of conds) if ((x.type === 'Approved' || x.type === 'Denied') && x.status !== 'True') return status(res, 422, 'Invalid', 'status.conditions: status must be True');
        for (const old of c.status.conditions ?? []) if (!conds.some((x) => x.type === old.type)) return status(res, 422, 'Invalid', `status.conditions: ${old.type} condition may not be removed`);
        const adds = conds.filter((x) => !(c.status.conditions ?? []).some((o) => o.type === x.type));
        // CertificateApproval admission: `approve` on signers/<signerName> (or <domain>/*).
        if (adds.length) {
          const domain = c.spec.signerName.split('/')[0];
          const signerOk = [c.spec.signerName, `${domain}/*`].some((n) => authorize(who, { verb: 'approve', apiGroup: 'certificates.k8s.io', resource: 'signers', name: n }));
          if (!signerOk) return status(res, 403, 'Forbidden', `user not permitted to approve requests with signerName "${c.spec.signerName}"`);
        }
        c.status.conditions = conds.map((x) => ({ ...x, lastTransitionTime: x.lastTransitionTime ?? nowIso(), lastUpdateTime: x.lastUpdateTime ?? nowIso() }));
        c.metadata.resourceVersion = String(++rv);
        for (const a of adds) approvals.push({ name: c.metadata.name, type: a.type, user: who.username });
        emit('MODIFIED', c);
        const out = structuredClone(c);
        if (adds.some((a) => a.type === 'Approved')) setImmediate(() => signCsr(c));
        return json(res, 200, out);
      }
      return status(res, 405, 'MethodNotAllowed', 'method not allowed');
    }

    // ── Leases ──
    const lm = /^\/apis\/coordination\.k8s\.io\/v1\/namespaces\/([a-z0-9-]+)\/leases(?:\/([a-z0-9.-]+))?$/.exec(path);
    if (lm) {
      const ns = lm[1]!;
      const name = lm[2];
      const attrs = (verb: string): AccessAttributes => ({ verb, apiGroup: 'coordination.k8s.io', resource: 'leases', namespace: ns, ...(name ? { name } : {}) });
      if (method === 'POST' && !name) {
        if (!can(attrs('create'))) return;
        const obj = JSON.parse(body) as StoredLease;
        const k = `${ns}/${obj.metadata.name}`;
        if (leases.has(k)) return status(res, 409, 'AlreadyExists', `leases.coordination.k8s.io "${obj.metadata.name}" already exists`);
        const stored: StoredLease = { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { ...meta(obj.metadata.name, ns), namespace: ns }, spec: obj.spec ?? {} };
        leases.set(k, stored);
        return json(res, 201, stored);
      }
      const l = name ? leases.get(`${ns}/${name}`) : undefined;
      if (method === 'GET' && name) {
        if (!can(attrs('get'))) return;
        if (!l) return status(res, 404, 'NotFound', `leases.coordination.k8s.io "${name}" not found`);
        return json(res, 200, l);
      }
      if (method === 'PUT' && name) {
        if (!can(attrs('update'))) return;
        if (!l) return status(res, 404, 'NotFound', `leases.coordination.k8s.io "${name}" not found`);
        const obj = JSON.parse(body) as StoredLease;
        if (obj.metadata?.resourceVersion !== l.metadata.resourceVersion) {
          return status(res, 409, 'Conflict', `Operation cannot be fulfilled on leases.coordination.k8s.io "${name}": the object has been modified; please apply your changes to the latest version and try again`);
        }
        l.spec = obj.spec ?? {};
        l.metadata.resourceVersion = String(++rv);
        return json(res, 200, l);
      }
      return status(res, 405, 'MethodNotAllowed', 'method not allowed');
    }

    // ── Secrets ──
    const m = /^\/api\/v1\/namespaces\/([a-z0-9-]+)\/secrets(?:\/([a-z0-9.-]+))?$/.exec(path);
    if (!m) return status(res, 404, 'NotFound', 'the server could not find the requested resource');
    if (self.forbid) return status(res, 403, 'Forbidden', 'secrets is forbidden');
    const ns = m[1]!;
    const name = m[2];
    const key = `${ns}/${name}`;
    const sattrs = (verb: string): AccessAttributes => ({ verb, apiGroup: '', resource: 'secrets', namespace: ns, ...(name ? { name } : {}) });
    const failAfter = (): boolean => {
      if (fail.n > 0 && fail.afterWrite) {
        fail.n--;
        status(res, fail.status, 'InternalError', 'injected failure after write');
        return true;
      }
      return false;
    };
    if (method === 'POST' && !name) {
      if (!can(sattrs('create'))) return;
      const obj = JSON.parse(body) as StoredSecret;
      if (obj.kind !== 'Secret' || obj.apiVersion !== 'v1' || !obj.metadata?.name) return status(res, 400, 'BadRequest', 'not a Secret');
      if (obj.metadata.namespace && obj.metadata.namespace !== ns) return status(res, 400, 'BadRequest', 'namespace mismatch');
      const k = `${ns}/${obj.metadata.name}`;
      if (secrets.has(k)) return status(res, 409, 'AlreadyExists', `secrets "${obj.metadata.name}" already exists`);
      const stored: StoredSecret = { apiVersion: 'v1', kind: 'Secret', metadata: { ...meta(obj.metadata.name, ns), namespace: ns }, type: obj.type ?? 'Opaque', data: obj.data ?? {} };
      secrets.set(k, stored);
      if (failAfter()) return;
      return json(res, 201, stored);
    }
    if (method === 'GET' && !name) {
      if (!can(sattrs('list'))) return;
      const sel = url.searchParams.get('fieldSelector');
      const type = sel?.startsWith('type=') ? sel.slice(5) : undefined;
      const items = [...secrets.values()].filter((s) => s.metadata.namespace === ns && (!type || s.type === type));
      return json(res, 200, { kind: 'SecretList', apiVersion: 'v1', metadata: { resourceVersion: String(rv) }, items });
    }
    if (method === 'GET' && name) {
      if (!can(sattrs('get'))) return;
      const s = secrets.get(key);
      if (!s) return status(res, 404, 'NotFound', `secrets "${name}" not found`);
      return json(res, 200, s);
    }
    if (method === 'DELETE' && name) {
      if (!can(sattrs('delete'))) return;
      const s = secrets.get(key);
      if (!s) return status(res, 404, 'NotFound', `secrets "${name}" not found`);
      const opts = body ? (JSON.parse(body) as { preconditions?: { resourceVersion?: string } }) : {};
      const want = opts.preconditions?.resourceVersion;
      if (want !== undefined && want !== s.metadata.resourceVersion) return status(res, 409, 'Conflict', 'Precondition failed: ResourceVersion mismatch');
      secrets.delete(key);
      if (failAfter()) return;
      return json(res, 200, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', details: { name, kind: 'secrets', uid: s.metadata.uid } });
    }
    return status(res, 405, 'MethodNotAllowed', 'method not allowed');
  }

  const server: Server = createServer({ cert: tls.certPem, key: tls.keyPem, ca: clusterCaPem, requestCert: true, rejectUnauthorized: false }, (req, res) => {
    const url = new URL(req.url ?? '/', 'https://x');
    const method = req.method ?? 'GET';
    const path = url.pathname.replace(/\/+$/, '') || '/';
    const origWriteHead = res.writeHead.bind(res);
    res.writeHead = ((code: number, ...rest: unknown[]) => {
      const tp = req.headers.traceparent;
      requests.push({
        method,
        path,
        status: code,
        ...((res as ServerResponse & { user?: string }).user ? { user: (res as ServerResponse & { user?: string }).user } : {}),
        ...(typeof tp === 'string' ? { traceparent: tp } : {}),
      });
      return (origWriteHead as (...a: unknown[]) => ServerResponse)(code, ...rest);
    }) as typeof res.writeHead;
    void readBody(req)
      .then((body) => handle(req, res, url, method, path, body))
      .catch((e: unknown) => {
        if (!res.headersSent) status(res, 500, 'InternalError', String(e));
      });
  });
  const sockets = new Set<Socket>();
  server.on('secureConnection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  Object.assign(self, {
    url: `https://127.0.0.1:${port}`,
    port,
    failNext(n: number, st: number, afterWrite = false) {
      fail = { n, status: st, afterWrite };
    },
    hangNext(n: number) {
      hang = n;
    },
    addToken(user: UserInfo): string {
      const t = 'sa-' + randomBytes(24).toString('hex');
      tokens.set(t, user);
      return t;
    },
    loadRbac(objects: readonly RbacObject[]) {
      for (const o of objects) if (['Role', 'ClusterRole', 'RoleBinding', 'ClusterRoleBinding'].includes(o.kind)) rbac.push(o);
    },
    authorize,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.closeAllConnections();
        server.close(() => r());
      }),
  });
  return self as KubeTestServer;
}

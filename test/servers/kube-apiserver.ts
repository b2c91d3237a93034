/**
 * A small Kubernetes API server for tests: the Secrets API of core/v1 over TLS, enough
 * discovery for `kubectl get secret … -o json`, and the bootstrap-token authenticator.
 *
 * API references followed:
 * - Secret v1 core: https://kubernetes.io/docs/reference/kubernetes-api/config-and-storage-resources/secret-v1/
 *   (create → 201, name taken → 409 reason AlreadyExists; get → 200/404 NotFound; delete with
 *   `preconditions.resourceVersion` → 409 Conflict on mismatch; list with `fieldSelector=type=`);
 * - Status kind and reasons: https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/status/
 * - API concepts (resourceVersion, discovery `/api`, `/apis`, `/api/v1`):
 *   https://kubernetes.io/docs/reference/using-api/api-concepts/
 * - Bootstrap token authentication (Authorization: Bearer <id>.<secret> → user
 *   `system:bootstrap:<id>` when a matching unexpired Secret with
 *   usage-bootstrap-authentication=true exists):
 *   https://kubernetes.io/docs/reference/access-authn-authz/bootstrap-tokens/
 *
 * Fault injection: `forbid` (403 on Secrets), `failNext(n, status)` (n responses with that status
 * — with `afterWrite` the POST is applied before the failure, like a lost 201).
 */
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID, timingSafeEqual } from 'node:crypto';

interface StoredSecret {
  apiVersion: 'v1';
  kind: 'Secret';
  metadata: { name: string; namespace: string; uid: string; resourceVersion: string; creationTimestamp: string };
  type: string;
  data: Record<string, string>;
}

export interface KubeTestServer {
  url: string;
  port: number;
  adminToken: string;
  secrets: Map<string, StoredSecret>;
  requests: Array<{ method: string; path: string; status: number }>;
  forbid: boolean;
  failNext(n: number, status: number, afterWrite?: boolean): void;
  /** The next n requests get no answer at all (a hung API server). */
  hangNext(n: number): void;
  /** The clock the bootstrap authenticator checks `expiration` against. */
  now: () => Date;
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

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

export async function startKubeServer(tls: { certPem: string; keyPem: string }): Promise<KubeTestServer> {
  const secrets = new Map<string, StoredSecret>();
  const requests: KubeTestServer['requests'] = [];
  let rv = 1000;
  let fail: { n: number; status: number; afterWrite: boolean } = { n: 0, status: 0, afterWrite: false };
  let hang = 0;
  const adminToken = 'admin-' + randomUUID();
  const self: Partial<KubeTestServer> = { secrets, requests, adminToken, forbid: false, now: () => new Date() };

  const b64 = (s: string | undefined): string => (s === undefined ? '' : Buffer.from(s, 'base64').toString('utf8'));
  const eq = (a: string, b: string): boolean => a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b));

  /** Who is calling: 'admin', 'bootstrap:<id>' or null. */
  function authenticate(req: IncomingMessage): string | null {
    const h = req.headers.authorization ?? '';
    const m = /^Bearer (.+)$/.exec(h);
    if (!m) return null;
    const tok = m[1]!;
    if (eq(tok, adminToken)) return 'admin';
    const bt = /^([a-z0-9]{6})\.([a-z0-9]{16})$/.exec(tok);
    if (!bt) return null;
    const s = secrets.get(`kube-system/bootstrap-token-${bt[1]}`);
    if (!s || s.type !== 'bootstrap.kubernetes.io/token') return null;
    if (b64(s.data['usage-bootstrap-authentication']) !== 'true') return null;
    if (!eq(b64(s.data['token-secret']), bt[2]!)) return null;
    const exp = s.data.expiration ? Date.parse(b64(s.data.expiration)) : Infinity;
    if (!(exp > self.now!().getTime())) return null;
    return `bootstrap:${bt[1]}`;
  }

  const server: Server = createServer({ cert: tls.certPem, key: tls.keyPem }, (req, res) => {
    void (async () => {
      const url = new URL(req.url ?? '/', 'https://x');
      const method = req.method ?? 'GET';
      const path = url.pathname;
      const origWriteHead = res.writeHead.bind(res);
      res.writeHead = ((code: number, ...rest: unknown[]) => {
        requests.push({ method, path, status: code });
        return (origWriteHead as (...a: unknown[]) => ServerResponse)(code, ...rest);
      }) as typeof res.writeHead;
      const body = await readBody(req);
      if (hang > 0) {
        hang--;
        return; // never answer
      }
      const who = authenticate(req);
      if (!who) return status(res, 401, 'Unauthorized', 'Unauthorized');
      if (fail.n > 0 && !fail.afterWrite) {
        fail.n--;
        return status(res, fail.status, 'InternalError', 'injected failure');
      }
      if (path === '/version') return json(res, 200, { major: '1', minor: '32', gitVersion: 'v1.32.4-attest-test', platform: 'linux/amd64' });
      if (who !== 'admin') return status(res, 403, 'Forbidden', `User "system:bootstrap:${who.slice(10)}" cannot ${method} ${path}`);
      if (path === '/api') {
        return json(res, 200, { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: req.headers.host ?? '' }] });
      }
      if (path === '/apis') return json(res, 200, { kind: 'APIGroupList', apiVersion: 'v1', groups: [] });
      if (path === '/api/v1') {
        return json(res, 200, {
          kind: 'APIResourceList',
          groupVersion: 'v1',
          resources: [{ name: 'secrets', singularName: 'secret', namespaced: true, kind: 'Secret', verbs: ['create', 'delete', 'get', 'list'], storageVersionHash: 'S6u1pOWzb84=' }],
        });
      }
      const m = /^\/api\/v1\/namespaces\/([a-z0-9-]+)\/secrets(?:\/([a-z0-9.-]+))?$/.exec(path);
      if (!m) return status(res, 404, 'NotFound', 'the server could not find the requested resource');
      if (self.forbid) return status(res, 403, 'Forbidden', 'secrets is forbidden');
      const ns = m[1]!;
      const name = m[2];
      const key = `${ns}/${name}`;
      const failAfter = (): boolean => {
        if (fail.n > 0 && fail.afterWrite) {
          fail.n--;
          status(res, fail.status, 'InternalError', 'injected failure after write');
          return true;
        }
        return false;
      };
      if (method === 'POST' && !name) {
        const obj = JSON.parse(body) as StoredSecret;
        if (obj.kind !== 'Secret' || obj.apiVersion !== 'v1' || !obj.metadata?.name) return status(res, 400, 'BadRequest', 'not a Secret');
        if (obj.metadata.namespace && obj.metadata.namespace !== ns) return status(res, 400, 'BadRequest', 'namespace mismatch');
        const k = `${ns}/${obj.metadata.name}`;
        if (secrets.has(k)) return status(res, 409, 'AlreadyExists', `secrets "${obj.metadata.name}" already exists`);
        const stored: StoredSecret = {
          apiVersion: 'v1',
          kind: 'Secret',
          metadata: { name: obj.metadata.name, namespace: ns, uid: randomUUID(), resourceVersion: String(++rv), creationTimestamp: new Date().toISOString().replace(/\.\d+Z$/, 'Z') },
          type: obj.type ?? 'Opaque',
          data: obj.data ?? {},
        };
        secrets.set(k, stored);
        if (failAfter()) return;
        return json(res, 201, stored);
      }
      if (method === 'GET' && !name) {
        const sel = url.searchParams.get('fieldSelector');
        const type = sel?.startsWith('type=') ? sel.slice(5) : undefined;
        const items = [...secrets.values()].filter((s) => s.metadata.namespace === ns && (!type || s.type === type));
        return json(res, 200, { kind: 'SecretList', apiVersion: 'v1', metadata: { resourceVersion: String(rv) }, items });
      }
      if (method === 'GET' && name) {
        const s = secrets.get(key);
        if (!s) return status(res, 404, 'NotFound', `secrets "${name}" not found`);
        return json(res, 200, s);
      }
      if (method === 'DELETE' && name) {
        const s = secrets.get(key);
        if (!s) return status(res, 404, 'NotFound', `secrets "${name}" not found`);
        const opts = body ? (JSON.parse(body) as { preconditions?: { resourceVersion?: string } }) : {};
        const want = opts.preconditions?.resourceVersion;
        if (want !== undefined && want !== s.metadata.resourceVersion) {
          return status(res, 409, 'Conflict', 'Precondition failed: ResourceVersion mismatch');
        }
        secrets.delete(key);
        if (failAfter()) return;
        return json(res, 200, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', details: { name, kind: 'secrets', uid: s.metadata.uid } });
      }
      return status(res, 405, 'MethodNotAllowed', 'method not allowed');
    })().catch((e: unknown) => {
      if (!res.headersSent) status(res, 500, 'InternalError', String(e));
    });
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
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  });
  return self as KubeTestServer;
}

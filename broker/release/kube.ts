/**
 * @module broker/release/kube
 *
 * The few Kubernetes API calls release needs, over plain `fetch` (Workers and Node alike; on Node
 * `kube.node.ts` supplies a fetch that trusts the cluster's private CA).
 *
 * API reference followed: Kubernetes API, "Secret v1 core"
 * (https://kubernetes.io/docs/reference/kubernetes-api/config-and-storage-resources/secret-v1/):
 * `POST /api/v1/namespaces/{ns}/secrets` (201 Created / 409 AlreadyExists),
 * `GET …/secrets/{name}` (200 / 404), `DELETE …/secrets/{name}` with `preconditions.resourceVersion`
 * (200 / 404 / 409 Conflict), `GET …/secrets?fieldSelector=type=…` (list). Errors are `Status`
 * objects with `reason` (AlreadyExists, Forbidden, NotFound, Conflict).
 *
 * Retry policy (only where safe):
 * - GET, LIST, DELETE are idempotent: retried on network errors, 429 and 5xx.
 * - POST create of a named Secret: retried too, because a retry after a lost 201 answers 409
 *   AlreadyExists and the caller then GETs the object and proves (constant-time compare of the
 *   token secret) that it is its own. A 409 for an object that is not ours is surfaced as
 *   KUBE_CONFLICT so the caller picks a new token id.
 * - 401/403 are never retried (RBAC or credentials are wrong: KUBE_FORBIDDEN, a config fault),
 *   except that with renewable credentials (`onUnauthorized`, an exec plugin's) a 401 renews them
 *   once and the request is sent once more — a 401 means the server did not act on it.
 * - After the last attempt: KUBE_UNAVAILABLE (kind 'unavailable', HTTP 503 to the node).
 */
import { AttestError, configError, unavailable, rejected } from '../../providers/common/errors.js';
import type { KubeSecret } from './token.js';
import type { Csr } from '../approver/decide.js';

export const KubeCodes = {
  KUBE_UNAVAILABLE: 'KUBE_UNAVAILABLE',
  KUBE_FORBIDDEN: 'KUBE_FORBIDDEN',
  KUBE_CONFLICT: 'KUBE_CONFLICT',
  KUBE_BAD_RESPONSE: 'KUBE_BAD_RESPONSE',
} as const;

export interface KubeClientOptions {
  /** API server URL as the broker reaches it, e.g. https://kubernetes.default.svc. */
  server: string;
  /** Bearer token for each request (re-read by the caller, e.g. a rotating service-account token); none when it gives undefined. */
  token?: () => Promise<string | undefined> | string | undefined;
  /**
   * Renewable credentials (kubeconfig exec plugins): called on a 401 with the token that was
   * sent; the request is then retried once. Not set: a 401 is final (KUBE_FORBIDDEN).
   */
  onUnauthorized?: (sentToken: string | undefined) => Promise<void>;
  /** fetch that trusts the cluster CA (Node: kube.node.ts); defaults to global fetch. */
  fetch?: typeof fetch;
  /** Attempts for retryable calls (default 4). */
  attempts?: number;
  /** Backoff sleep, injected so tests need no timers (default: 100 ms · 2^attempt). */
  sleep?: (ms: number) => Promise<void>;
  /** Per-request timeout (default 10 s): a hung API server must not hang a release. */
  timeoutMs?: number;
}

const MAX_BODY = 4 * 1024 * 1024;

export class KubeClient {
  readonly #o: Required<Pick<KubeClientOptions, 'server' | 'attempts'>> & KubeClientOptions;
  readonly #fetch: typeof fetch;
  readonly #sleep: (ms: number) => Promise<void>;

  constructor(o: KubeClientOptions) {
    const u = new URL(o.server);
    if (u.protocol !== 'https:' && u.protocol !== 'http:') throw configError('KUBE_CONFIG_INVALID', 'Kubernetes server must be an http(s) URL');
    this.#o = { ...o, server: o.server.replace(/\/+$/, ''), attempts: o.attempts ?? 4 };
    this.#fetch = o.fetch ?? ((input, init) => fetch(input, init));
    this.#sleep = o.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms)));
  }

  async #call(method: string, path: string, body: unknown, retry: boolean): Promise<{ status: number; json: unknown }> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    let last: unknown;
    let renewed = false;
    for (let attempt = 0; attempt < this.#o.attempts; attempt++) {
      if (attempt > 0) await this.#sleep(100 * 2 ** (attempt - 1));
      try {
        const sent = await this.#authorize(headers);
        const res = await this.#fetch(this.#o.server + path, {
          method,
          headers,
          body: body === undefined ? undefined : JSON.stringify(body),
          redirect: 'error',
          signal: AbortSignal.timeout(this.#o.timeoutMs ?? 10_000),
        });
        const text = await res.text();
        if (text.length > MAX_BODY) throw unavailable(KubeCodes.KUBE_BAD_RESPONSE, 'Kubernetes response too large');
        let json: unknown = undefined;
        if (text.length > 0) {
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
        }
        if (res.status === 401 && this.#o.onUnauthorized && !renewed) {
          renewed = true;
          await this.#o.onUnauthorized(sent);
          attempt--; // the renewal's retry is not one of the attempts
          continue;
        }
        if (res.status === 401 || res.status === 403) {
          throw configError(KubeCodes.KUBE_FORBIDDEN, `Kubernetes API ${method} ${path}: HTTP ${res.status} (${res.status === 401 ? "the API server does not accept the broker's credentials" : "check the broker's RBAC"})`);
        }
        if ((res.status >= 500 || res.status === 429) && retry) {
          last = unavailable(KubeCodes.KUBE_UNAVAILABLE, `Kubernetes API ${method} ${path}: HTTP ${res.status}`, { retryAfter: 5 });
          continue;
        }
        if (res.status >= 500 || res.status === 429) {
          throw unavailable(KubeCodes.KUBE_UNAVAILABLE, `Kubernetes API ${method} ${path}: HTTP ${res.status}`, { retryAfter: 5 });
        }
        return { status: res.status, json };
      } catch (e) {
        if (e instanceof AttestError && e.code !== KubeCodes.KUBE_UNAVAILABLE) throw e;
        last = e;
        if (!retry) break;
      }
    }
    if (last instanceof AttestError) throw last;
    throw unavailable(KubeCodes.KUBE_UNAVAILABLE, `Kubernetes API ${method} ${path}: unreachable`, { cause: last, retryAfter: 5 });
  }

  /** Sets the bearer header (or removes it when there is no token); returns the token sent. */
  async #authorize(headers: Record<string, string>): Promise<string | undefined> {
    const t = this.#o.token ? await this.#o.token() : undefined;
    if (t) headers.authorization = `Bearer ${t}`;
    else delete headers.authorization;
    return t || undefined;
  }

  static #secretPath(ns: string, name?: string): string {
    return `/api/v1/namespaces/${encodeURIComponent(ns)}/secrets${name === undefined ? '' : '/' + encodeURIComponent(name)}`;
  }

  /**
   * Creates `secret`. Returns 'created', or 'exists' when an object of that name is already
   * there (the caller decides whether it is its own, see module doc).
   */
  async createSecret(secret: KubeSecret): Promise<'created' | 'exists'> {
    const { status, json } = await this.#call('POST', KubeClient.#secretPath(secret.metadata.namespace), secret, true);
    if (status === 201 || status === 200) return 'created';
    if (status === 409) return 'exists';
    throw unavailable(KubeCodes.KUBE_BAD_RESPONSE, `create Secret: unexpected HTTP ${status} ${reason(json)}`);
  }

  async getSecret(ns: string, name: string): Promise<KubeSecret | null> {
    const { status, json } = await this.#call('GET', KubeClient.#secretPath(ns, name), undefined, true);
    if (status === 404) return null;
    if (status === 200 && isSecret(json)) return json;
    throw unavailable(KubeCodes.KUBE_BAD_RESPONSE, `get Secret: unexpected HTTP ${status} ${reason(json)}`);
  }

  /**
   * Deletes a Secret; with `resourceVersion`, only that exact version (a precondition, so a Secret
   * replaced meanwhile is not deleted). true when deleted, false when already gone.
   */
  async deleteSecret(ns: string, name: string, resourceVersion?: string): Promise<boolean> {
    const body = resourceVersion ? { apiVersion: 'v1', kind: 'DeleteOptions', preconditions: { resourceVersion } } : undefined;
    const { status, json } = await this.#call('DELETE', KubeClient.#secretPath(ns, name), body, true);
    if (status === 200 || status === 202) return true;
    if (status === 404) return false;
    if (status === 409) throw rejected(KubeCodes.KUBE_CONFLICT, 'Secret changed since it was read; not deleted');
    throw unavailable(KubeCodes.KUBE_BAD_RESPONSE, `delete Secret: unexpected HTTP ${status} ${reason(json)}`);
  }

  /** Secrets of one type in a namespace (one page of up to `limit`, continuing until done). */
  async listSecrets(ns: string, type: string, limit = 500): Promise<KubeSecret[]> {
    const out: KubeSecret[] = [];
    let cont: string | undefined;
    for (let page = 0; page < 100; page++) {
      const q = new URLSearchParams({ fieldSelector: `type=${type}`, limit: String(limit) });
      if (cont) q.set('continue', cont);
      const { status, json } = await this.#call('GET', `${KubeClient.#secretPath(ns)}?${q}`, undefined, true);
      if (status !== 200 || typeof json !== 'object' || json === null || !Array.isArray((json as { items?: unknown }).items)) {
        throw unavailable(KubeCodes.KUBE_BAD_RESPONSE, `list Secrets: unexpected HTTP ${status}`);
      }
      for (const it of (json as { items: unknown[] }).items) if (isSecret(it)) out.push(it);
      cont = (json as { metadata?: { continue?: string } }).metadata?.continue || undefined;
      if (!cont) return out;
    }
    return out;
  }

  // ── certificates.k8s.io/v1 CertificateSigningRequests (API reference "CertificateSigningRequest v1":
  // list/watch the collection, read one, PUT the `approval` subresource with the whole object,
  // whose metadata.resourceVersion makes the update optimistic: a stale copy answers 409 Conflict) ──

  static readonly CSR_PATH = '/apis/certificates.k8s.io/v1/certificatesigningrequests';

  async listCsrs(): Promise<{ items: Csr[]; resourceVersion: string }> {
    const items: Csr[] = [];
    let cont: string | undefined;
    for (let page = 0; page < 1000; page++) {
      const q = new URLSearchParams({ limit: '500' });
      if (cont) q.set('continue', cont);
      const { status, json } = await this.#call('GET', `${KubeClient.CSR_PATH}?${q}`, undefined, true);
      const list = json as { items?: unknown; metadata?: { resourceVersion?: string; continue?: string } } | undefined;
      if (status !== 200 || !list || !Array.isArray(list.items)) throw unavailable(KubeCodes.KUBE_BAD_RESPONSE, `list CSRs: unexpected HTTP ${status} ${reason(json)}`);
      for (const it of list.items) if (isCsr(it)) items.push(it);
      cont = list.metadata?.continue || undefined;
      if (!cont) return { items, resourceVersion: list.metadata?.resourceVersion ?? '' };
    }
    throw unavailable(KubeCodes.KUBE_BAD_RESPONSE, 'list CSRs: too many pages');
  }

  async getCsr(name: string): Promise<Csr | null> {
    const { status, json } = await this.#call('GET', `${KubeClient.CSR_PATH}/${encodeURIComponent(name)}`, undefined, true);
    if (status === 404) return null;
    if (status === 200 && isCsr(json)) return json;
    throw unavailable(KubeCodes.KUBE_BAD_RESPONSE, `get CSR: unexpected HTTP ${status} ${reason(json)}`);
  }

  /**
   * PUT …/{name}/approval with `csr` (carrying the resourceVersion it was read at and the new
   * condition). 'updated', 'conflict' (changed since read: re-read and decide again) or 'gone'.
   */
  async updateCsrApproval(csr: Csr): Promise<{ outcome: 'updated'; csr: Csr } | { outcome: 'conflict' | 'gone' }> {
    const { status, json } = await this.#call('PUT', `${KubeClient.CSR_PATH}/${encodeURIComponent(csr.metadata.name)}/approval`, csr, false);
    if (status === 200 && isCsr(json)) return { outcome: 'updated', csr: json };
    if (status === 409) return { outcome: 'conflict' };
    if (status === 404) return { outcome: 'gone' };
    throw unavailable(KubeCodes.KUBE_BAD_RESPONSE, `update CSR approval: unexpected HTTP ${status} ${reason(json)}`);
  }

  /**
   * Watches CSRs from `resourceVersion` ("Efficient detection of changes", API concepts: a stream
   * of newline-delimited `{type, object}` events; ADDED/MODIFIED/DELETED/BOOKMARK/ERROR). Calls
   * `onEvent` for each, in order, and returns when the server ends the stream (timeoutSeconds) or
   * `signal` aborts. Returns 'gone' when the resourceVersion is too old (HTTP 410 or an ERROR
   * event with code 410): the caller lists again. One event is at most 4 MiB.
   */
  async watchCsrs(resourceVersion: string, signal: AbortSignal, onEvent: (type: string, csr: Csr) => Promise<void>, timeoutSeconds = 300): Promise<'ended' | 'gone'> {
    const q = new URLSearchParams({ watch: 'true', allowWatchBookmarks: 'true', timeoutSeconds: String(timeoutSeconds) });
    if (resourceVersion) q.set('resourceVersion', resourceVersion);
    const headers: Record<string, string> = { accept: 'application/json' };
    let res: Response;
    for (let renewed = false; ; renewed = true) {
      const sent = await this.#authorize(headers);
      try {
        res = await this.#fetch(`${this.#o.server}${KubeClient.CSR_PATH}?${q}`, { method: 'GET', headers, redirect: 'error', signal });
      } catch (cause) {
        if (signal.aborted) return 'ended';
        throw unavailable(KubeCodes.KUBE_UNAVAILABLE, 'watch CSRs: unreachable', { cause, retryAfter: 5 });
      }
      if (res.status !== 401 || !this.#o.onUnauthorized || renewed) break;
      await res.body?.cancel();
      await this.#o.onUnauthorized(sent);
    }
    if (res.status === 410) {
      await res.body?.cancel();
      return 'gone';
    }
    if (res.status === 401 || res.status === 403) {
      await res.body?.cancel();
      throw configError(KubeCodes.KUBE_FORBIDDEN, `watch CSRs: HTTP ${res.status} (check the approver's RBAC)`);
    }
    if (res.status !== 200 || !res.body) {
      await res.body?.cancel();
      throw unavailable(KubeCodes.KUBE_UNAVAILABLE, `watch CSRs: HTTP ${res.status}`, { retryAfter: 5 });
    }
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = '';
    try {
      for (;;) {
        let chunk: ReadableStreamReadResult<string>;
        try {
          chunk = await reader.read();
        } catch (cause) {
          if (signal.aborted) return 'ended';
          throw unavailable(KubeCodes.KUBE_UNAVAILABLE, 'watch CSRs: stream broken', { cause, retryAfter: 1 });
        }
        if (chunk.done) return 'ended';
        buf += chunk.value;
        if (buf.length > MAX_BODY) throw unavailable(KubeCodes.KUBE_BAD_RESPONSE, 'watch CSRs: event larger than 4 MiB');
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl).trim();
          buf = buf.slice(nl + 1);
          if (!line) continue;
          let ev: { type?: unknown; object?: unknown };
          try {
            ev = JSON.parse(line) as { type?: unknown; object?: unknown };
          } catch (cause) {
            throw unavailable(KubeCodes.KUBE_BAD_RESPONSE, 'watch CSRs: an event is not JSON', { cause });
          }
          if (ev.type === 'ERROR') {
            if ((ev.object as { code?: unknown } | undefined)?.code === 410) return 'gone';
            throw unavailable(KubeCodes.KUBE_UNAVAILABLE, `watch CSRs: ERROR event ${reason(ev.object)}`, { retryAfter: 1 });
          }
          if (typeof ev.type === 'string' && (ev.type === 'BOOKMARK' || isCsr(ev.object))) await onEvent(ev.type, ev.object as Csr);
        }
      }
    } finally {
      await reader.cancel().catch(() => undefined);
    }
  }

  // ── coordination.k8s.io/v1 Lease (API reference "Lease v1"; leader election as client-go's
  // leaderelection does it: get, create when absent, update with resourceVersion) ──

  static #leasePath(ns: string, name?: string): string {
    return `/apis/coordination.k8s.io/v1/namespaces/${encodeURIComponent(ns)}/leases${name === undefined ? '' : '/' + encodeURIComponent(name)}`;
  }

  async getLease(ns: string, name: string): Promise<KubeLease | null> {
    const { status, json } = await this.#call('GET', KubeClient.#leasePath(ns, name), undefined, true);
    if (status === 404) return null;
    if (status === 200 && typeof json === 'object' && json !== null) return json as KubeLease;
    throw unavailable(KubeCodes.KUBE_BAD_RESPONSE, `get Lease: unexpected HTTP ${status} ${reason(json)}`);
  }

  /** Creates (no resourceVersion) or updates (with it) a Lease; null when someone else changed it first. */
  async writeLease(lease: KubeLease): Promise<KubeLease | null> {
    const ns = lease.metadata.namespace;
    const create = !lease.metadata.resourceVersion;
    const { status, json } = create
      ? await this.#call('POST', KubeClient.#leasePath(ns), lease, false)
      : await this.#call('PUT', KubeClient.#leasePath(ns, lease.metadata.name), lease, false);
    if ((status === 200 || status === 201) && typeof json === 'object' && json !== null) return json as KubeLease;
    if (status === 409) return null;
    throw unavailable(KubeCodes.KUBE_BAD_RESPONSE, `${create ? 'create' : 'update'} Lease: unexpected HTTP ${status} ${reason(json)}`);
  }

  /** Readiness: the API answers /version (any authenticated 200). */
  async ready(): Promise<void> {
    const { status } = await this.#call('GET', '/version', undefined, false);
    if (status !== 200) throw unavailable(KubeCodes.KUBE_UNAVAILABLE, `Kubernetes /version: HTTP ${status}`);
  }
}

function reason(json: unknown): string {
  if (typeof json === 'object' && json !== null && typeof (json as { reason?: unknown }).reason === 'string') {
    return (json as { reason: string }).reason;
  }
  return '';
}

export interface KubeLease {
  apiVersion: 'coordination.k8s.io/v1';
  kind: 'Lease';
  metadata: { name: string; namespace: string; resourceVersion?: string };
  spec: { holderIdentity?: string; leaseDurationSeconds?: number; acquireTime?: string; renewTime?: string; leaseTransitions?: number };
}

function isCsr(v: unknown): v is Csr {
  if (typeof v !== 'object' || v === null) return false;
  const o = v as { metadata?: { name?: unknown }; spec?: { request?: unknown; signerName?: unknown } };
  return typeof o.metadata?.name === 'string' && typeof o.spec?.request === 'string' && typeof o.spec.signerName === 'string';
}

function isSecret(v: unknown): v is KubeSecret {
  if (typeof v !== 'object' || v === null) return false;
  const o = v as Record<string, unknown>;
  const md = o.metadata as Record<string, unknown> | undefined;
  return typeof md === 'object' && md !== null && typeof md.name === 'string' && (o.data === undefined || (typeof o.data === 'object' && o.data !== null));
}

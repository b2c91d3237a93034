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
 * - 401/403 are never retried (RBAC or credentials are wrong: KUBE_FORBIDDEN, a config fault).
 * - After the last attempt: KUBE_UNAVAILABLE (kind 'unavailable', HTTP 503 to the node).
 */
import { AttestError, configError, unavailable, rejected } from '../../providers/common/errors.js';
import type { KubeSecret } from './token.js';

export const KubeCodes = {
  KUBE_UNAVAILABLE: 'KUBE_UNAVAILABLE',
  KUBE_FORBIDDEN: 'KUBE_FORBIDDEN',
  KUBE_CONFLICT: 'KUBE_CONFLICT',
  KUBE_BAD_RESPONSE: 'KUBE_BAD_RESPONSE',
} as const;

export interface KubeClientOptions {
  /** API server URL as the broker reaches it, e.g. https://kubernetes.default.svc. */
  server: string;
  /** Bearer token for each request (re-read by the caller, e.g. a rotating service-account token). */
  token?: () => Promise<string> | string;
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
    for (let attempt = 0; attempt < this.#o.attempts; attempt++) {
      if (attempt > 0) await this.#sleep(100 * 2 ** (attempt - 1));
      try {
        if (this.#o.token) headers.authorization = `Bearer ${await this.#o.token()}`;
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
        if (res.status === 401 || res.status === 403) {
          throw configError(KubeCodes.KUBE_FORBIDDEN, `Kubernetes API ${method} ${path}: HTTP ${res.status} (check the broker's RBAC)`);
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

function isSecret(v: unknown): v is KubeSecret {
  if (typeof v !== 'object' || v === null) return false;
  const o = v as Record<string, unknown>;
  const md = o.metadata as Record<string, unknown> | undefined;
  return typeof md === 'object' && md !== null && typeof md.name === 'string' && (o.data === undefined || (typeof o.data === 'object' && o.data !== null));
}

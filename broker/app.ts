/**
 * @module broker/app
 *
 * `createBroker(deps)`: the Hono app, with every dependency injected (store, providers, trust,
 * clock, network, policy, release, logger, metrics), so the same app runs under
 * `broker/node.ts` (@hono/node-server) and `broker/worker.ts` (Cloudflare Workers).
 *
 * One request, one straight path (architecture.md):
 *   POST /v1/challenge → random challenge id + 32-byte nonce into the store (TTL)
 *   POST /v1/attest    → body cap → JSON → envelope schema → provider lookup → consume the
 *                        challenge (atomic, single use) → binding → provider.verify → claims
 *                        → policy → release (sealed to the node's key) → 200 {release}
 * Errors are thrown as AttestError and turned into problem+json in exactly one place
 * (`app.onError` → `toProblem`).
 */
import { Hono, type Context, type MiddlewareHandler } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { z } from 'zod';
import { AttestError, isAttestError, malformed } from '../providers/common/errors.js';
import { toBase64, toBase64Url } from '../providers/common/encoding.js';
import type { Provider, TrustStore } from '../providers/common/types.js';
import type { AuditSink, Clock, Logger, Metrics, Peer, PolicyEngine, ReleaseService, StateStore } from './contracts.js';
import { systemClock } from './contracts.js';
import { toProblem } from './http/problem.js';
import { ChallengeRequest, parseAttestRequest } from './http/envelope.js';
import { clientKey, parseCidr } from './http/address.js';
import { RateLimiter, type RateLimits } from './http/ratelimit.js';
import { ProviderRegistry } from './registry.js';
import { attest, type AttestDeps } from './attest.js';
import { parseTraceparent } from './observability/trace.js';
import { StatusCode, type Span, type Tracer } from './observability/tracing.js';
import { matchedRoutes } from 'hono/route';

export const Codes = {
  CHALLENGE_UNKNOWN: 'CHALLENGE_UNKNOWN',
  CHALLENGE_EXPIRED: 'CHALLENGE_EXPIRED',
  CHALLENGE_PROVIDER_MISMATCH: 'CHALLENGE_PROVIDER_MISMATCH',
  BODY_NOT_JSON: 'BODY_NOT_JSON',
  BODY_TOO_LARGE: 'BODY_TOO_LARGE',
  UNSUPPORTED_MEDIA_TYPE: 'UNSUPPORTED_MEDIA_TYPE',
  SCHEMA_INVALID: 'SCHEMA_INVALID',
  NOT_FOUND: 'NOT_FOUND',
  POLICY_UNAVAILABLE: 'POLICY_UNAVAILABLE',
  POLICY_DENIED: 'POLICY_DENIED',
  RELEASE_UNAVAILABLE: 'RELEASE_UNAVAILABLE',
  RATE_LIMITED: 'RATE_LIMITED',
  NOT_READY: 'NOT_READY',
} as const;

export interface BrokerOptions {
  /** Challenge lifetime (protocol default 120 s). */
  challengeTtlSeconds?: number;
  /** Request body cap (protocol default 1 MiB). */
  bodyLimitBytes?: number;
  /** Provider options by provider name (validated by each provider). */
  providerOptions?: Readonly<Record<string, Readonly<Record<string, unknown>>>>;
  /** Abuse limits (defaults: DEFAULT_RATE_LIMITS), counted in the store across replicas. */
  rateLimits?: Partial<RateLimits>;
  /** Proxies whose X-Forwarded-For is believed (CIDR or address); none by default. */
  trustedProxies?: readonly string[];
  /** Serve `GET /metrics` on this app (default true; false when a metrics listener serves it: createMetricsApp). */
  metricsRoute?: boolean;
}

/** `POST /v1/tokenreview`: the API server that asks is authenticated by the handler (peer). */
export type TokenReviewHandler = (req: Request, peer: Peer) => Promise<Response>;

export interface BrokerDeps {
  store: StateStore;
  providers: ProviderRegistry | readonly Provider[];
  trust: TrustStore;
  logger: Logger;
  clock?: Clock;
  /** Network for vendor collateral (AMD KDS…), injected. */
  fetch?: typeof fetch;
  metrics?: Metrics;
  policy?: PolicyEngine;
  release?: ReleaseService;
  audit?: AuditSink;
  options?: BrokerOptions;
  /**
   * Kubernetes TokenReview webhook (authentication.k8s.io/v1) for clusters where the broker must
   * not write Secrets; mounted on this app only when given (the Node runtime can serve it on a
   * listener of its own instead: createWebhookApp).
   */
  tokenReview?: TokenReviewHandler;
  /**
   * Who is on the other end of the connection, from the runtime (Node: the socket and its
   * verified client certificate; Workers: CF-Connecting-IP). Absent for in-process requests.
   */
  peer?: (c: Context) => Peer;
  /** Verifiers of device evidence attached to attest requests (`devices`), by kind. */
  devices?: AttestDeps['devices'];
  /**
   * Node clients served at `GET /v1/client/<name>` (bytes and SHA-256 computed once at start).
   * Absent: every name answers 404.
   */
  clients?: ReadonlyMap<string, ClientFile>;
  /** Extra readiness checks (e.g. policy loaded), each throws when not ready. */
  readiness?: readonly (() => Promise<void>)[];
  /**
   * OpenTelemetry tracing (observability/tracing.ts): a SERVER span per request, and the
   * broker's own span id in the log lines. Absent (the default): no spans, no cost.
   */
  tracer?: Tracer;
}

/** A node client the broker serves (deploy/node): its bytes, their SHA-256, its media type. */
export interface ClientFile {
  body: Uint8Array;
  sha256: Uint8Array;
  contentType: string;
}

/**
 * `logFields`: what every log line of the request carries (requestId, and traceId/spanId when a
 * valid W3C traceparent came in). Spread into each line rather than bound into a child logger:
 * a pino child serializes its bindings when created, and most requests log one line.
 */
type Env = { Variables: { requestId: string; logFields: LogFields; span?: Span } };

interface LogFields {
  requestId: string;
  traceId?: string;
  /** The caller's span (tracing off) or the broker's own SERVER span (tracing on). */
  spanId?: string;
  /** Tracing on: the caller's span, parent of the broker's. */
  parentSpanId?: string;
}

const REQUEST_ID_RE = /^[A-Za-z0-9._-]{1,64}$/;

/**
 * Request ids: unique, not secret — a random per-process prefix and a counter (no CSPRNG call
 * per request). The prefix is drawn on first use: Workers forbid randomness at global scope.
 */
let idPrefix: string | undefined;
let idCounter = 0;
const nextRequestId = (): string => {
  idPrefix ??= toBase64Url(crypto.getRandomValues(new Uint8Array(6)));
  return `${idPrefix}${(idCounter = (idCounter + 1) % 0x7fffffff).toString(36)}`;
};

/**
 * Caps a request body at `max` bytes before anything reads it. With a Content-Length (what
 * every client of this protocol sends, and what Node's parser then holds the body to) the check
 * is a header comparison, so a refused body is never read or buffered; a body without one
 * (chunked) is counted while it streams (hono's bodyLimit).
 */
function bodyCap(max: number, code: 'BODY_TOO_LARGE' = 'BODY_TOO_LARGE'): MiddlewareHandler<Env> {
  const tooLarge = (): never => {
    throw new AttestError(code, `the request body exceeds ${max} bytes`);
  };
  const streaming = bodyLimit({ maxSize: max, onError: tooLarge });
  return async (c, next) => {
    const cl = c.req.header('content-length');
    if (cl === undefined) return streaming(c, next);
    if (!/^\d{1,12}$/.test(cl)) tooLarge();
    if (Number(cl) > max) {
      // Read and discard a body of moderate size (streamed, never held) so the client, still
      // sending, gets to read the 413 instead of a reset; past the bound just close.
      if (Number(cl) <= DRAIN_LIMIT) await drain(c.req.raw.body);
      tooLarge();
    }
    await next();
  };
}

/** Bodies up to this size are read and dropped before a 413; larger ones are cut off. */
const DRAIN_LIMIT = 16 * 1024 * 1024;

async function drain(body: ReadableStream<Uint8Array> | null): Promise<void> {
  if (!body) return;
  const r = body.getReader();
  try {
    while (!(await r.read()).done);
  } catch {
    // the client went away: nothing to answer
  }
}

function randomBytes(n: number): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(n));
}

async function readJson(c: Context<Env>): Promise<unknown> {
  const ct = c.req.header('content-type') ?? '';
  if (!/^application\/(?:[a-z0-9.+-]+\+)?json\s*(?:;|$)/i.test(ct)) {
    throw new AttestError(Codes.UNSUPPORTED_MEDIA_TYPE, 'send the body as application/json');
  }
  let text: string;
  try {
    text = await c.req.text();
  } catch (cause) {
    // The client stopped sending (or the server's request timeout cut it off): its fault, not ours.
    throw new AttestError('BODY_INCOMPLETE', 'the request body ended before its declared length', { cause });
  }
  if (text.length === 0) return {};
  try {
    return JSON.parse(text) as unknown;
  } catch (cause) {
    throw malformed(Codes.BODY_NOT_JSON, 'the request body is not valid JSON', { cause });
  }
}

function parseWith<T>(schema: Pick<z.ZodType<T>, 'safeParse'> | ((body: unknown) => z.ZodSafeParseResult<T>), body: unknown): T {
  const r = typeof schema === 'function' ? schema(body) : schema.safeParse(body);
  if (r.success) return r.data;
  const issues = r.error.issues.slice(0, 10).map((i) => ({ path: i.path.join('.'), message: i.message }));
  const first = issues[0];
  throw malformed(Codes.SCHEMA_INVALID, first ? `${first.path || 'body'}: ${first.message}` : 'invalid request body', {
    detail: { issues },
  });
}

const noPeer = (): Peer => ({});

/** Request id, access log, error mapping and 404: the same for every app this module builds. */
/** The route template a request was routed to (`/v1/client/:name`), '' when none matched. */
function routeOf(c: Context<Env>): string {
  const routes = matchedRoutes(c);
  // Middleware (`use`) registers as ALL; the last route of a method is the handler.
  for (let i = routes.length - 1; i >= 0; i--) if (routes[i]!.method !== 'ALL') return routes[i]!.path;
  return '';
}

/**
 * A log line: the request's fields, then `extra`. Not `{ ...fields, k: v }`: on Node 20 (V8 11.3)
 * an object spread followed by more properties allocates outside the young generation, so every
 * request's log line, even one below the log level, became old-space garbage: about half of what
 * 100k challenge requests left in the old generation (a 30-50 MB RSS swing until the next full GC).
 */
const logLine = (fields: LogFields | undefined, extra: Record<string, unknown>): Record<string, unknown> => Object.assign({}, fields, extra);

const PROBE_PATHS = new Set(['/healthz', '/readyz', '/metrics']);

/** The request's SERVER span around `next` (tracing on): attributes per the HTTP semantic conventions. */
async function tracedRequest(c: Context<Env>, next: () => Promise<void>, tracer: Tracer, logger: Logger, requestId: string): Promise<void> {
  const trace = parseTraceparent(c.req.header('traceparent'));
  const method = c.req.method;
  // Probes and scrapes start no recorded trace of their own (kubelet and Prometheus would fill
  // the trace store); with a sampled traceparent they are recorded like any request.
  const probe = method === 'GET' && PROBE_PATHS.has(c.req.path);
  const span = tracer.startServer(method, trace, !probe);
  span.attributes['http.request.method'] = method;
  span.attributes['url.path'] = c.req.path;
  span.attributes['attest_broker.request_id'] = requestId;
  const fields: LogFields = trace
    ? { requestId, traceId: span.traceId, spanId: span.spanId, parentSpanId: trace.spanId }
    : { requestId, traceId: span.traceId, spanId: span.spanId };
  c.set('requestId', requestId);
  c.set('logFields', fields);
  c.set('span', span);
  const t0 = performance.now();
  try {
    await tracer.run(span, next);
  } finally {
    const route = routeOf(c);
    if (route) {
      span.name = `${method} ${route}`;
      span.attributes['http.route'] = route;
    }
    const status = c.res.status;
    span.attributes['http.response.status_code'] = status;
    if (status >= 500) {
      span.status = StatusCode.ERROR;
      span.attributes['error.type'] ??= String(status);
      span.statusMessage ??= String(span.attributes['error.type']);
    }
    tracer.end(span);
  }
  c.header('x-request-id', requestId);
  logger.info(logLine(fields, { method, path: c.req.path, status: c.res.status, ms: Math.round((performance.now() - t0) * 10) / 10 }), 'request');
}

function baseApp(deps: Pick<BrokerDeps, 'logger' | 'tracer'>): Hono<Env> {
  const app = new Hono<Env>();
  const tracer = deps.tracer;
  // Request id + access log (never bodies, never headers that may hold secrets).
  app.use('*', async (c, next) => {
    const given = c.req.header('x-request-id');
    const requestId = given && REQUEST_ID_RE.test(given) ? given : nextRequestId();
    if (tracer) return tracedRequest(c, next, tracer, deps.logger, requestId);
    const trace = parseTraceparent(c.req.header('traceparent'));
    const fields: LogFields = trace ? { requestId, traceId: trace.traceId, spanId: trace.spanId } : { requestId };
    c.set('requestId', requestId);
    c.set('logFields', fields);
    const t0 = performance.now();
    await next();
    // Set on the response's own headers: `c.header()` after the handler re-creates the response
    // from its body stream, which turns @hono/node-server's direct write of a string body into
    // a stream copy (a few % of every request).
    try {
      c.res.headers.set('x-request-id', requestId);
    } catch {
      c.header('x-request-id', requestId); // immutable headers (a fetched response)
    }
    deps.logger.info(
      logLine(fields, { method: c.req.method, path: c.req.path, status: c.res.status, ms: Math.round((performance.now() - t0) * 10) / 10 }),
      'request',
    );
  });

  app.onError((err, c) => {
    const requestId = c.get('requestId');
    const fields = c.get('logFields');
    const log = deps.logger;
    const span = c.get('span');
    if (span) {
      const code = isAttestError(err) ? err.code : 'INTERNAL';
      span.attributes['error.type'] = code;
      span.attributes['attest_broker.error.code'] = code;
      span.statusMessage = code;
    }
    if (isAttestError(err)) {
      const lvl = err.kind === 'internal' || err.kind === 'config' || (err.kind === 'unavailable' && err.code !== 'STORE_FULL') ? 'error' : 'info';
      log[lvl](logLine(fields, { code: err.code, kind: err.kind, err: err.message, cause: err.cause instanceof Error ? err.cause.message : undefined }), 'request failed');
    } else {
      log.error(logLine(fields, { err: err instanceof Error ? { message: err.message, stack: err.stack } : String(err) }), 'unhandled error');
    }
    const { problem, headers } = toProblem(err, requestId);
    // A body we stopped reading cannot be skipped reliably: say the connection ends, so a
    // keep-alive client sees this answer instead of a reset on its next request.
    if (isAttestError(err) && err.kind === 'too-large') headers.connection = 'close';
    return c.json(problem, problem.status as 400, headers);
  });

  app.notFound((c) => {
    const span = c.get('span');
    if (span) span.attributes['error.type'] = span.attributes['attest_broker.error.code'] = Codes.NOT_FOUND;
    const { problem, headers } = toProblem(new AttestError(Codes.NOT_FOUND, `no route for ${c.req.method} ${c.req.path}`), c.get('requestId'));
    return c.json(problem, 404, headers);
  });
  return app;
}

/** Mounts `POST /v1/tokenreview` with its own small body cap (a TokenReview is a few hundred bytes). */
function mountTokenReview(app: Hono<Env>, handler: TokenReviewHandler, peer: (c: Context) => Peer): void {
  // A TokenReview is a few hundred bytes.
  app.use('/v1/tokenreview', bodyCap(64 * 1024));
  app.post('/v1/tokenreview', (c) => handler(c.req.raw, peer(c)));
}

/**
 * The TokenReview webhook alone, for a listener of its own (never exposed with the public join
 * endpoints): `POST /v1/tokenreview` and `GET /healthz`.
 */
export function createWebhookApp(deps: { logger: Logger; tokenReview: TokenReviewHandler; peer?: (c: Context) => Peer; tracer?: Tracer }): Hono<Env> {
  const app = baseApp(deps);
  mountTokenReview(app, deps.tokenReview, deps.peer ?? noPeer);
  app.get('/healthz', (c) => c.json({ status: 'ok' }));
  return app;
}

/**
 * `GET /metrics` (Prometheus text) from `metrics.render`; 404 when this runtime has none.
 * Scrapes that arrive while a render is running share it, so a flood of `/metrics` requests
 * costs one render at a time (in a cluster, one collection over every worker).
 */
function mountMetrics(app: Hono<Env>, metrics: Metrics | undefined): void {
  type Rendered = Awaited<ReturnType<NonNullable<Metrics['render']>>>;
  let inFlight: Promise<Rendered> | undefined;
  const render = (): Promise<Rendered> | undefined => {
    if (!metrics?.render) return undefined;
    inFlight ??= metrics.render().finally(() => (inFlight = undefined));
    return inFlight;
  };
  app.get('/metrics', async (c) => {
    const m = await render();
    if (!m) throw new AttestError(Codes.NOT_FOUND, 'metrics are not enabled on this runtime');
    return c.body(m.body, 200, { 'content-type': m.contentType });
  });
}

/**
 * The metrics alone, for a listener of its own (`metrics.listen`): `GET /metrics` and
 * `GET /healthz`, never the join endpoints.
 */
export function createMetricsApp(deps: { logger: Logger; metrics: Metrics }): Hono<Env> {
  const app = baseApp(deps);
  mountMetrics(app, deps.metrics);
  app.get('/healthz', (c) => c.json({ status: 'ok' }));
  return app;
}

export function createBroker(deps: BrokerDeps): Hono<Env> {
  const clock = deps.clock ?? systemClock;
  const net = deps.fetch ?? ((...a: Parameters<typeof fetch>) => fetch(...a));
  const registry = deps.providers instanceof ProviderRegistry ? deps.providers : new ProviderRegistry(deps.providers);
  const ttlMs = (deps.options?.challengeTtlSeconds ?? 120) * 1000;
  const limit = deps.options?.bodyLimitBytes ?? 1024 * 1024;
  const peer = deps.peer ?? noPeer;
  const proxies = (deps.options?.trustedProxies ?? []).map(parseCidr);
  const limiter = new RateLimiter(deps.store, clock, deps.options?.rateLimits);
  const addressOf = (c: Context<Env>): string => clientKey(peer(c).address, c.req.header('x-forwarded-for'), proxies);
  const attestDeps: AttestDeps = {
    store: deps.store,
    registry,
    trust: deps.trust,
    clock,
    fetch: net,
    limiter,
    ...(deps.policy ? { policy: deps.policy } : {}),
    ...(deps.release ? { release: deps.release } : {}),
    ...(deps.audit ? { audit: deps.audit } : {}),
    ...(deps.metrics ? { metrics: deps.metrics } : {}),
    ...(deps.devices ? { devices: deps.devices } : {}),
    providerOptions: deps.options?.providerOptions ?? {},
  };
  const app = baseApp(deps);

  // A challenge request is a few hundred bytes; evidence up to the configured cap.
  app.use('/v1/challenge', bodyCap(4096));
  app.use('/v1/attest', bodyCap(limit));

  // ── protocol §1: challenge ──
  app.post('/v1/challenge', async (c) => {
    await limiter.hit('challenge', addressOf(c));
    const req = parseWith(ChallengeRequest, await readJson(c));
    const id = toBase64Url(randomBytes(16));
    const now = clock.now();
    const expiresAt = new Date(now.getTime() + ttlMs).toISOString();
    const nonce = toBase64Url(randomBytes(32));
    await deps.store.putChallenge(
      id,
      {
        nonce,
        issuedAt: now.toISOString(),
        expiresAt,
        ...(req.provider ? { provider: req.provider as Provider['name'] } : {}),
        ...(req.cluster ? { cluster: req.cluster } : {}),
      },
      ttlMs,
    );
    deps.metrics?.challengeIssued();
    return c.json({ challengeId: id, nonce, expiresAt }, 201, { 'cache-control': 'no-store' });
  });

  // ── protocol §3: attest ──
  app.post('/v1/attest', async (c) => {
    const t0 = performance.now();
    let provider = 'unknown';
    try {
      await limiter.hit('attest', addressOf(c));
      const req = parseWith(parseAttestRequest, await readJson(c));
      provider = req.provider;
      const { traceId, spanId } = c.get('logFields');
      const release = await attest(attestDeps, req, c.get('requestId'), traceId && spanId ? { traceId, spanId } : undefined);
      deps.metrics?.attestOutcome('OK', provider, (performance.now() - t0) / 1000);
      return c.json({ release }, 200, { 'cache-control': 'no-store' });
    } catch (e) {
      deps.metrics?.attestOutcome(isAttestError(e) ? e.code : 'INTERNAL', provider, (performance.now() - t0) / 1000);
      throw e;
    }
  });

  // ── protocol §5: TokenReview webhook (optional) ──
  if (deps.tokenReview) mountTokenReview(app, deps.tokenReview, peer);

  // ── protocol §5: operations ──
  app.get('/healthz', (c) => c.json({ status: 'ok' }));

  // ── the node clients (protocol §7): public files, rate-limited like a challenge ──
  app.get('/v1/client/:name', async (c) => {
    await limiter.hit('challenge', addressOf(c));
    const f = deps.clients?.get(c.req.param('name'));
    if (!f) throw new AttestError('NOT_FOUND', 'no such client');
    return c.body(f.body as Uint8Array<ArrayBuffer>, 200, {
      'content-type': f.contentType,
      // RFC 9530: the digest of the representation, so the node can check what it received.
      'repr-digest': `sha-256=:${toBase64(f.sha256)}:`,
      'cache-control': 'no-cache',
      'x-content-type-options': 'nosniff',
    });
  });

  app.get('/readyz', async (c) => {
    const failures: string[] = [];
    // A broker that can verify nothing cannot admit anyone: not ready (enable a provider).
    if (registry.formats().length === 0) failures.push('no provider enabled');
    try {
      await deps.store.ping();
    } catch {
      failures.push('store');
    }
    for (const check of deps.readiness ?? []) {
      try {
        await check();
      } catch (e) {
        failures.push(e instanceof Error ? e.message : 'check failed');
      }
    }
    if (deps.release?.ready) {
      try {
        await deps.release.ready();
      } catch {
        failures.push('release');
      }
    }
    if (failures.length) {
      throw new AttestError(Codes.NOT_READY, `not ready: ${failures.join(', ')}`, { retryAfter: 5 });
    }
    return c.json({ status: 'ready', store: deps.store.kind, formats: registry.formats() });
  });

  if (deps.options?.metricsRoute !== false) mountMetrics(app, deps.metrics);

  return app;
}

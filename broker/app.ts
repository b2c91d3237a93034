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
import { Hono, type Context } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { z } from 'zod';
import { AttestError, isAttestError, malformed } from '../providers/common/errors.js';
import { fromBase64Url, toBase64Url } from '../providers/common/encoding.js';
import type { Provider, TrustStore } from '../providers/common/types.js';
import type { AuditSink, Clock, Logger, Metrics, PolicyEngine, ReleaseService, StateStore } from './contracts.js';
import { systemClock } from './contracts.js';
import { toProblem } from './http/problem.js';
import { AttestRequest, ChallengeRequest } from './http/envelope.js';
import { ProviderRegistry } from './registry.js';
import { computeBinding } from './binding.js';
import { verifyEvidence } from './verify.js';

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
  NOT_READY: 'NOT_READY',
} as const;

export interface BrokerOptions {
  /** Challenge lifetime (protocol default 120 s). */
  challengeTtlSeconds?: number;
  /** Request body cap (protocol default 1 MiB). */
  bodyLimitBytes?: number;
  /** Provider options by provider name (validated by each provider). */
  providerOptions?: Readonly<Record<string, Readonly<Record<string, unknown>>>>;
}

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
   * Kubernetes TokenReview webhook (`POST /v1/tokenreview`, authentication.k8s.io/v1) for
   * clusters where the broker must not write Secrets; mounted only when given.
   */
  tokenReview?: (req: Request) => Promise<Response>;
  /** Extra readiness checks (e.g. policy loaded), each throws when not ready. */
  readiness?: readonly (() => Promise<void>)[];
}

type Env = { Variables: { requestId: string; log: Logger } };

const REQUEST_ID_RE = /^[A-Za-z0-9._-]{1,64}$/;

function randomBytes(n: number): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(n));
}

async function readJson(c: Context<Env>): Promise<unknown> {
  const ct = c.req.header('content-type') ?? '';
  if (!/^application\/(?:[a-z0-9.+-]+\+)?json\s*(?:;|$)/i.test(ct)) {
    throw new AttestError(Codes.UNSUPPORTED_MEDIA_TYPE, 'send the body as application/json');
  }
  const text = await c.req.text();
  if (text.length === 0) return {};
  try {
    return JSON.parse(text) as unknown;
  } catch (cause) {
    throw malformed(Codes.BODY_NOT_JSON, 'the request body is not valid JSON', { cause });
  }
}

function parseWith<T>(schema: z.ZodType<T>, body: unknown): T {
  const r = schema.safeParse(body);
  if (r.success) return r.data;
  const issues = r.error.issues.slice(0, 10).map((i) => ({ path: i.path.join('.'), message: i.message }));
  const first = issues[0];
  throw malformed(Codes.SCHEMA_INVALID, first ? `${first.path || 'body'}: ${first.message}` : 'invalid request body', {
    detail: { issues },
  });
}

export function createBroker(deps: BrokerDeps): Hono<Env> {
  const clock = deps.clock ?? systemClock;
  const net = deps.fetch ?? ((...a: Parameters<typeof fetch>) => fetch(...a));
  const registry = deps.providers instanceof ProviderRegistry ? deps.providers : new ProviderRegistry(deps.providers);
  const ttlMs = (deps.options?.challengeTtlSeconds ?? 120) * 1000;
  const limit = deps.options?.bodyLimitBytes ?? 1024 * 1024;
  const app = new Hono<Env>();

  // Request id + access log (never bodies, never headers that may hold secrets).
  app.use('*', async (c, next) => {
    const given = c.req.header('x-request-id');
    const requestId = given && REQUEST_ID_RE.test(given) ? given : toBase64Url(randomBytes(12));
    const log = deps.logger.child({ requestId });
    c.set('requestId', requestId);
    c.set('log', log);
    const t0 = performance.now();
    await next();
    c.header('x-request-id', requestId);
    log.info(
      { method: c.req.method, path: c.req.path, status: c.res.status, ms: Math.round((performance.now() - t0) * 10) / 10 },
      'request',
    );
  });

  app.use(
    '/v1/*',
    bodyLimit({
      maxSize: limit,
      onError: () => {
        throw new AttestError(Codes.BODY_TOO_LARGE, `the request body exceeds ${limit} bytes`);
      },
    }),
  );

  app.onError((err, c) => {
    const requestId = c.get('requestId');
    const log = c.get('log') ?? deps.logger;
    if (isAttestError(err)) {
      const lvl = err.kind === 'internal' || err.kind === 'config' || err.kind === 'unavailable' ? 'error' : 'info';
      log[lvl]({ code: err.code, kind: err.kind, err: err.message, cause: err.cause instanceof Error ? err.cause.message : undefined }, 'request failed');
    } else {
      log.error({ err: err instanceof Error ? { message: err.message, stack: err.stack } : String(err) }, 'unhandled error');
    }
    const { problem, headers } = toProblem(err, requestId);
    return c.json(problem, problem.status as 400, headers);
  });

  app.notFound((c) => {
    const { problem, headers } = toProblem(
      new AttestError(Codes.NOT_FOUND, `no route for ${c.req.method} ${c.req.path}`),
      c.get('requestId'),
    );
    return c.json(problem, 404, headers);
  });

  // ── protocol §1: challenge ──
  app.post('/v1/challenge', async (c) => {
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
      const req = parseWith(AttestRequest, await readJson(c));
      provider = req.provider;
      // Resolve before consuming: asking for a format this broker lacks must not burn a challenge.
      registry.resolve(req.provider, req.format);
      const rec = await deps.store.consumeChallenge(req.challengeId);
      if (!rec) {
        throw new AttestError(Codes.CHALLENGE_UNKNOWN, 'the challenge does not exist, was already used, or expired; request a new one');
      }
      // The record comes back from a shared store: check its shape rather than trust a cast.
      if (typeof rec.nonce !== 'string' || !/^[A-Za-z0-9_-]{43}$/.test(rec.nonce) || Number.isNaN(Date.parse(rec.expiresAt))) {
        throw new AttestError('CHALLENGE_RECORD_CORRUPT', 'the stored challenge record is malformed');
      }
      const now = clock.now();
      if (now.getTime() > Date.parse(rec.expiresAt)) {
        throw new AttestError(Codes.CHALLENGE_EXPIRED, 'the challenge expired; request a new one');
      }
      if (rec.provider && rec.provider !== req.provider) {
        throw malformed(Codes.CHALLENGE_PROVIDER_MISMATCH, `the challenge was issued for provider ${rec.provider}`);
      }
      const nonce = fromBase64Url(rec.nonce, 'nonce');
      const binding = await computeBinding(nonce, req.ephemeralKey);
      const claims = await verifyEvidence(registry, {
        provider: req.provider,
        format: req.format,
        evidence: req.evidence,
        binding,
        now,
        trust: deps.trust,
        fetch: net,
        providerOptions: deps.options?.providerOptions ?? {},
      });
      if (!deps.policy) {
        throw new AttestError(Codes.POLICY_UNAVAILABLE, 'no join policy is loaded, so no node is admitted; configure policy.file');
      }
      const decision = await deps.policy.evaluate(claims, rec.cluster);
      for (const r of decision.rules) if (r.outcome === 'warn') deps.metrics?.policyWarn?.(r.rule, r.code ?? 'WARN');
      if (!decision.allow) {
        await deps.audit?.record({ kind: 'deny', requestId: c.get('requestId'), claims, decision });
        throw new AttestError(decision.denyCode ?? Codes.POLICY_DENIED, "the node does not satisfy this cluster's join policy");
      }
      if (!deps.release) {
        throw new AttestError(Codes.RELEASE_UNAVAILABLE, 'release is not configured on this broker');
      }
      const release = await deps.release.release({
        claims,
        decision,
        want: req.want,
        ...(req.ephemeralKey ? { ephemeralKey: req.ephemeralKey as JsonWebKey } : {}),
        ...(req.diskKey ? { diskKey: req.diskKey } : {}),
        requestId: c.get('requestId'),
        // Release re-checks the binding before sealing to the ephemeral key.
        nonce: rec.nonce,
        binding: toBase64Url(binding),
      });
      deps.metrics?.attestOutcome('OK', provider, (performance.now() - t0) / 1000);
      return c.json({ release }, 200, { 'cache-control': 'no-store' });
    } catch (e) {
      deps.metrics?.attestOutcome(isAttestError(e) ? e.code : 'INTERNAL', provider, (performance.now() - t0) / 1000);
      throw e;
    }
  });

  // ── protocol §5: TokenReview webhook (optional) ──
  if (deps.tokenReview) {
    const handler = deps.tokenReview;
    app.post('/v1/tokenreview', (c) => handler(c.req.raw));
  }

  // ── protocol §5: operations ──
  app.get('/healthz', (c) => c.json({ status: 'ok' }));

  app.get('/readyz', async (c) => {
    const failures: string[] = [];
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

  app.get('/metrics', async (c) => {
    const m = await deps.metrics?.render?.();
    if (!m) throw new AttestError(Codes.NOT_FOUND, 'metrics are not enabled on this runtime');
    return c.body(m.body, 200, { 'content-type': m.contentType });
  });

  return app;
}

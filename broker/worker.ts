/**
 * @module broker/worker
 *
 * The Cloudflare Workers entry: the same `createBroker` app, with the Durable Object store,
 * JSON console logs and per-isolate metrics.
 *
 * Configuration comes from the Worker's bindings (wrangler.toml `[vars]` and secrets):
 * - `STATE` — Durable Object namespace of `StateStoreObject` (required);
 * - `PROVIDERS` — comma-separated enabled providers (e.g. "gcp,aws");
 * - `PROVIDER_OPTIONS` — optional JSON object of provider options by provider name (as under
 *   `providers.<name>.options` of the Node configuration, e.g. `{"tpm":{"pinnedAkSha256":[…]}}`);
 * - `ADMIN_TOKEN` (secret, ≥ 32 characters) — enables `PUT /v1/admin/trust` and
 *   `PUT /v1/admin/policy` (./worker-admin.ts), which store the pinned roots and the join policy
 *   in the Durable Object (./worker-config.ts). What is stored there wins over the bindings;
 * - `TRUST_ROOTS_PEM`, `POLICY_YAML` — fallback for small setups (a binding holds ≤ 5 KiB: too
 *   small for the AMD roots). Each root is checked against its built-in pin; one matching no pin
 *   is ignored here (the admin call refuses it);
 * - `CONFIG_REFRESH_SECONDS` — how often an isolate checks the stored version (default 5);
 * - release (./release/runtime.worker.ts): `RELEASE_*` (`RELEASE_TPM_SEAL` included), `TOKENREVIEW_*`, `KMS_*`, `AWS_*`, `GCP_*`, `AZURE_*`;
 * - `CHALLENGE_TTL_SECONDS`, `BODY_LIMIT_BYTES`, `LOG_LEVEL`;
 * - tracing (as `tracing:` on Node, docs/operations.md "Tracing"): `OTEL_EXPORTER_OTLP_ENDPOINT`
 *   (on when set), `OTEL_SERVICE_NAME`, `TRACING_SAMPLE_RATIO`, `TRACING_HEADERS` (secret; a JSON
 *   object of headers sent with each export). The context is workerd's AsyncLocalStorage
 *   (`nodejs_compat`); spans are exported after each request in `ctx.waitUntil` (no timer).
 *
 * Each isolate builds the app once per stored configuration version (checked at most every
 * CONFIG_REFRESH_SECONDS, and at once after an admin write in this isolate). An enabled provider
 * whose pinned roots are not loaded is left out and `/readyz` says so (503), as it does without
 * a policy; `/healthz` and the admin endpoints keep answering, so roots can be loaded. Any other
 * configuration problem answers every request but the admin ones with a 500 problem naming the
 * fix (and logs it), instead of serving with checks silently off.
 */
import type { Hono } from 'hono';
import { createBroker } from './app.js';
import { DurableObjectStore, StateStoreObject } from './store/durable-object.worker.js';
import { createConsoleLogger, type LogLevel } from './observability/console-logger.js';
import { createSimpleMetrics } from './observability/metrics.js';
import { tracerFromSettings, type Tracer } from './observability/tracing.js';
import { asyncContextStorage } from './observability/tracing-context.worker.js';
import { parseConfig, ConfigProblem } from './config/schema.js';
import { buildProviders, REQUIRED_PINS } from './providers.js';
import { BUILTIN_PINS } from '../providers/common/pins.js';
import { createTrustStore } from '../providers/common/trust.js';
import { fingerprint, parsePemCertificates, anchorFromPin, type TrustAnchor } from '../providers/common/x509.js';
import { systemClock, type Logger, type StateStore } from './contracts.js';
import { WORKER_HOOKS } from './worker-hooks.js';
import { ADMIN_PREFIX, handleAdmin } from './worker-admin.js';
import { configVersion, readConfig } from './worker-config.js';
import { buildWorkerRelease, type WorkerReleaseEnv } from './release/runtime.worker.js';
import './builtins.js';
import pkg from '../package.json' with { type: 'json' };

export { StateStoreObject };

/**
 * Every binding the Worker reads, spelled out (deployment tooling such as the Terraform
 * broker-cloudflare module mirrors this list); the release ones are WorkerReleaseEnv's.
 */
export interface Env {
  STATE: DurableObjectNamespace<StateStoreObject>;
  PROVIDERS?: string;
  PROVIDER_OPTIONS?: string;
  ADMIN_TOKEN?: string;
  TRUST_ROOTS_PEM?: string;
  POLICY_YAML?: string;
  CONFIG_REFRESH_SECONDS?: string;
  CHALLENGE_TTL_SECONDS?: string;
  BODY_LIMIT_BYTES?: string;
  LOG_LEVEL?: string;
  RELEASE_CLUSTER?: string;
  RELEASE_API_SERVER?: string;
  RELEASE_CA_PEM?: string;
  RELEASE_ISSUANCE_WINDOW_SECONDS?: string;
  RELEASE_TPM_SEAL?: string;
  TOKENREVIEW_BEARER_TOKEN?: string;
  TOKENREVIEW_BEARER_SHA256?: string;
  TOKENREVIEW_AUDIENCES?: string;
  TOKENREVIEW_MAX_REVIEWS?: string;
  KMS_KIND?: string;
  KMS_LOCAL_KEK?: string;
  AWS_KMS_KEY_ID?: string;
  AWS_REGION?: string;
  AWS_ACCESS_KEY_ID?: string;
  AWS_SECRET_ACCESS_KEY?: string;
  AWS_SESSION_TOKEN?: string;
  AWS_KMS_ENDPOINT?: string;
  GCP_KMS_KEY_NAME?: string;
  GCP_SERVICE_ACCOUNT_JSON?: string;
  GCP_KMS_ENDPOINT?: string;
  AZURE_KEYVAULT_URL?: string;
  AZURE_KEY_NAME?: string;
  AZURE_KEY_VERSION?: string;
  AZURE_TENANT_ID?: string;
  AZURE_CLIENT_ID?: string;
  AZURE_CLIENT_SECRET?: string;
  AZURE_AUTHORITY_HOST?: string;
  OTEL_EXPORTER_OTLP_ENDPOINT?: string;
  OTEL_SERVICE_NAME?: string;
  TRACING_SAMPLE_RATIO?: string;
  TRACING_HEADERS?: string;
}

/** Compile-time check that Env lists every release binding (Pick fails on a missing key). */
export type ReleaseBindings = Pick<Env, keyof WorkerReleaseEnv>;

async function trustFrom(pem: string | undefined, what: string): Promise<TrustAnchor[]> {
  if (!pem || !pem.trim()) return [];
  const byFp = new Map(BUILTIN_PINS.map((p) => [p.sha256, p]));
  const out: TrustAnchor[] = [];
  for (const c of parsePemCertificates(pem, what, 64)) {
    const pin = byFp.get(await fingerprint(c));
    if (pin) out.push(await anchorFromPin(pin, c));
  }
  return out;
}

function providerOptions(raw: string | undefined): Record<string, Record<string, unknown>> {
  if (!raw || !raw.trim()) return {};
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch {
    throw new ConfigProblem(['PROVIDER_OPTIONS: not JSON; give an object of options by provider name']);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ConfigProblem(['PROVIDER_OPTIONS: must be a JSON object by provider name']);
  return v as Record<string, Record<string, unknown>>;
}

function tracingHeaders(raw: string | undefined): unknown {
  if (!raw || !raw.trim()) return {};
  try {
    return JSON.parse(raw);
  } catch {
    throw new ConfigProblem(['TRACING_HEADERS: not JSON; give an object of header names to values']);
  }
}

/** The `tracing:` section from the bindings, validated by the same schema as on Node. */
function tracingFrom(env: Env): Record<string, unknown> {
  const endpoint = env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim();
  if (!endpoint) return {};
  const ratio = env.TRACING_SAMPLE_RATIO?.trim();
  return {
    otlpEndpoint: endpoint,
    ...(env.OTEL_SERVICE_NAME?.trim() ? { serviceName: env.OTEL_SERVICE_NAME.trim() } : {}),
    ...(ratio ? { sampleRatio: Number(ratio) } : {}),
    headers: tracingHeaders(env.TRACING_HEADERS),
  };
}

const logLevel = (env: Env): LogLevel => (env.LOG_LEVEL as LogLevel | undefined) ?? 'info';

interface Built {
  app: Hono;
  version: number;
  tracer?: Tracer;
}

async function build(env: Env, store: StateStore, logger: Logger): Promise<Built> {
  // The version first: a write racing with this build is then seen by the next check.
  const version = await configVersion(store);
  const stored = version > 0 ? await readConfig(store) : null;
  const enabled = (env.PROVIDERS ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  const options = providerOptions(env.PROVIDER_OPTIONS);
  const trustPem = stored?.trustPem ?? env.TRUST_ROOTS_PEM;
  const trust = createTrustStore(await trustFrom(trustPem, stored?.trustPem ? 'stored trust roots' : 'TRUST_ROOTS_PEM'));

  // An enabled cloud provider without its roots is left out (and /readyz says so) instead of
  // failing the whole Worker: the roots may still be on their way through PUT /v1/admin/trust.
  const notReady: string[] = [];
  const usable = enabled.filter((p) => {
    const groups = REQUIRED_PINS[p as keyof typeof REQUIRED_PINS];
    const missing = (groups ?? []).filter((g) => trust.anchors(g).length === 0);
    if (missing.length) notReady.push(`provider ${p} has none of its pinned roots (${missing.map((g) => g.join('|')).join('; ')}); PUT /v1/admin/trust`);
    return missing.length === 0;
  });
  const cfg = parseConfig({
    providers: Object.fromEntries(usable.map((p) => [p, { enabled: true, ...(options[p] ? { options: options[p] } : {}) }])),
    challenge: env.CHALLENGE_TTL_SECONDS ? { ttlSeconds: Number(env.CHALLENGE_TTL_SECONDS) } : {},
    limits: env.BODY_LIMIT_BYTES ? { bodyBytes: Number(env.BODY_LIMIT_BYTES) } : {},
    trust: { dir: '(Durable Object / TRUST_ROOTS_PEM)' },
    tracing: tracingFrom(env),
  });
  const metrics = createSimpleMetrics({ version: pkg.version, runtime: 'workers' });
  const t = cfg.tracing;
  // No export timer on Workers: the fetch handler flushes after each request (ctx.waitUntil).
  const tracer = tracerFromSettings(t, {
    serviceVersion: pkg.version,
    logger,
    storage: asyncContextStorage(),
    intervalMs: 0,
    ...(metrics.spansDropped ? { onDropped: metrics.spansDropped.bind(metrics) } : {}),
  });
  metrics.trustRoots?.(trust.anchors(trust.ids()).map((a) => ({ id: a.id, notAfter: a.cert.notAfter })));
  const providers = buildProviders(cfg, trust, { store });

  const policyYaml = stored?.policyYaml ?? env.POLICY_YAML;
  const policy = policyYaml && WORKER_HOOKS.policyFromText ? await WORKER_HOOKS.policyFromText(policyYaml) : undefined;
  if (!policy) notReady.push('no join policy loaded; PUT /v1/admin/policy');
  const rel = await buildWorkerRelease(env, store, logger, tracer ? { tracer } : {});

  const app = createBroker({
    store,
    providers,
    trust,
    logger,
    metrics,
    // Cloudflare's edge sets CF-Connecting-IP; a client cannot forge it there.
    peer: (c) => {
      const address = c.req.header('cf-connecting-ip');
      return address ? { address } : {};
    },
    ...(policy ? { policy } : {}),
    ...(tracer ? { tracer } : {}),
    ...(rel ? { release: rel.release, audit: rel.audit, ...(rel.tokenReview ? { tokenReview: rel.tokenReview } : {}) } : {}),
    readiness: notReady.map((why) => async () => {
      throw new Error(why);
    }),
    options: { challengeTtlSeconds: cfg.challenge.ttlSeconds, bodyLimitBytes: cfg.limits.bodyBytes },
  }) as unknown as Hono;
  // The endpoint's origin only: never the headers (they may hold an API key).
  const tracing = t.otlpEndpoint ? new URL(t.otlpEndpoint).origin : false;
  logger.info({ version, providers: usable, notReady, roots: trust.ids(), policy: Boolean(policy), release: Boolean(rel), tracing }, 'worker configuration loaded');
  return { app, version, ...(tracer ? { tracer } : {}) };
}

/**
 * Sends the spans queued so far, this request's included: the first flush may be another
 * request's export in flight (one at a time), the second then sends what is left. Failures are
 * counted and logged by the exporter; nothing here throws.
 */
function exportSpans(tracer: Tracer): Promise<void> {
  return tracer.exporter
    .flush()
    .then(() => tracer.exporter.flush())
    .catch(() => undefined);
}

interface Isolate {
  store: DurableObjectStore;
  logger: Logger;
  built?: Promise<Built>;
  checkedAt: number;
}

/**
 * Per isolate, per set of bindings (tests run one isolate with several): the bindings' string
 * values are the key, so a changed secret after a deploy is a new entry, never a stale app.
 */
const isolates = new Map<string, Isolate>();

function isolateFor(env: Env): Isolate {
  const key = JSON.stringify(Object.entries(env).filter(([, v]) => typeof v === 'string').sort(([a], [b]) => a.localeCompare(b)));
  let s = isolates.get(key);
  if (!s) {
    if (isolates.size >= 8) isolates.delete(isolates.keys().next().value as string);
    s = {
      store: new DurableObjectStore(env.STATE),
      logger: createConsoleLogger(logLevel(env), { service: 'attest-broker', runtime: 'workers' }),
      checkedAt: 0,
    };
    isolates.set(key, s);
  }
  return s;
}

async function appFor(env: Env, s: Isolate): Promise<Built> {
  const refreshMs = Number(env.CONFIG_REFRESH_SECONDS ?? '5') * 1000;
  const now = systemClock.now().getTime();
  if (s.built && now - s.checkedAt >= refreshMs) {
    s.checkedAt = now;
    try {
      const [current, built] = await Promise.all([configVersion(s.store), s.built]);
      if (current !== built.version) s.built = undefined;
    } catch (e) {
      // The store is down or the last build failed: keep what we have; the next check retries.
      s.logger.warn({ err: e instanceof Error ? e.message : String(e) }, 'configuration version check failed');
      const ok = await (s.built ?? Promise.reject(new Error('no build'))).then(() => true, () => false);
      if (!ok) s.built = undefined;
    }
  }
  if (!s.built) {
    s.checkedAt = now;
    const p = build(env, s.store, s.logger);
    s.built = p;
    p.catch(() => {
      if (s.built === p) s.built = undefined;
    });
  }
  return s.built;
}

export default {
  async fetch(req: Request, env: Env, ctx: ExecutionContext): Promise<Response> {
    const s = isolateFor(env);
    if (new URL(req.url).pathname.startsWith(ADMIN_PREFIX)) {
      return handleAdmin(req, req.headers.get('cf-connecting-ip') ?? '', {
        store: s.store,
        clock: systemClock,
        logger: s.logger,
        adminToken: env.ADMIN_TOKEN,
        compilePolicy: async (yaml) => {
          if (!WORKER_HOOKS.policyFromText) throw new Error('this build has no policy engine');
          return WORKER_HOOKS.policyFromText(yaml);
        },
        changed: () => {
          s.built = undefined;
        },
      });
    }
    try {
      const built = await appFor(env, s);
      const res = await built.app.fetch(req, env, ctx);
      if (built.tracer) ctx.waitUntil(exportSpans(built.tracer));
      return res;
    } catch (e) {
      const detail = e instanceof ConfigProblem ? e.message : 'the broker failed to start; see its logs';
      console.log(JSON.stringify({ level: 'error', msg: 'startup failed', err: e instanceof Error ? e.message : String(e) }));
      return new Response(JSON.stringify({ type: 'about:blank', title: 'Broker misconfigured', status: 500, detail, code: 'CONFIG_INVALID' }), {
        status: 500,
        headers: { 'content-type': 'application/problem+json' },
      });
    }
  },
} satisfies ExportedHandler<Env>;

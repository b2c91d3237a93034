/**
 * @module broker/worker
 *
 * The Cloudflare Workers entry: the same `createBroker` app, with the Durable Object store,
 * JSON console logs and per-isolate metrics.
 *
 * Configuration comes from the Worker's bindings (wrangler.toml `[vars]` and secrets):
 * - `STATE` — Durable Object namespace of `StateStoreObject` (required);
 * - `PROVIDERS` — comma-separated enabled providers (e.g. "gcp,aws");
 * - `TRUST_ROOTS_PEM` — the pinned roots as concatenated PEM (each is checked against its
 *   built-in pin; a certificate matching no pin is ignored, a provider without roots refuses);
 * - `POLICY_YAML` — the join policy document;
 * - `CHALLENGE_TTL_SECONDS`, `BODY_LIMIT_BYTES`, `LOG_LEVEL`.
 * A configuration problem answers every request with a 500 problem naming the fix (and logs it),
 * instead of serving with checks silently off.
 */
import type { Hono } from 'hono';
import { createBroker } from './app.js';
import { DurableObjectStore, StateStoreObject } from './store/durable-object.worker.js';
import { createConsoleLogger, type LogLevel } from './observability/console-logger.js';
import { createSimpleMetrics } from './observability/metrics.js';
import { parseConfig, ConfigProblem } from './config/schema.js';
import { buildProviders } from './providers.js';
import { BUILTIN_PINS } from '../providers/common/pins.js';
import { createTrustStore } from '../providers/common/trust.js';
import { fingerprint, parsePemCertificates, anchorFromPin, type TrustAnchor } from '../providers/common/x509.js';
import { WORKER_HOOKS } from './worker-hooks.js';
import './builtins.js';
import pkg from '../package.json' with { type: 'json' };

export { StateStoreObject };

export interface Env {
  STATE: DurableObjectNamespace<StateStoreObject>;
  PROVIDERS?: string;
  TRUST_ROOTS_PEM?: string;
  POLICY_YAML?: string;
  CHALLENGE_TTL_SECONDS?: string;
  BODY_LIMIT_BYTES?: string;
  LOG_LEVEL?: string;
}

async function trustFrom(pem: string | undefined): Promise<TrustAnchor[]> {
  if (!pem || !pem.trim()) return [];
  const byFp = new Map(BUILTIN_PINS.map((p) => [p.sha256, p]));
  const out: TrustAnchor[] = [];
  for (const c of parsePemCertificates(pem, 'TRUST_ROOTS_PEM', 64)) {
    const pin = byFp.get(await fingerprint(c));
    if (pin) out.push(await anchorFromPin(pin, c));
  }
  return out;
}

async function build(env: Env): Promise<Hono> {
  const logger = createConsoleLogger((env.LOG_LEVEL as LogLevel | undefined) ?? 'info', { service: 'attest-broker', runtime: 'workers' });
  const enabled = (env.PROVIDERS ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  const cfg = parseConfig({
    providers: Object.fromEntries(enabled.map((p) => [p, { enabled: true }])),
    challenge: env.CHALLENGE_TTL_SECONDS ? { ttlSeconds: Number(env.CHALLENGE_TTL_SECONDS) } : {},
    limits: env.BODY_LIMIT_BYTES ? { bodyBytes: Number(env.BODY_LIMIT_BYTES) } : {},
    trust: { dir: '(TRUST_ROOTS_PEM binding)' },
  });
  const trust = createTrustStore(await trustFrom(env.TRUST_ROOTS_PEM));
  const metrics = createSimpleMetrics({ version: pkg.version, runtime: 'workers' });
  metrics.trustRoots?.(trust.anchors(trust.ids()).map((a) => ({ id: a.id, notAfter: a.cert.notAfter })));
  const store = new DurableObjectStore(env.STATE);
  const providers = buildProviders(cfg, trust, { store });
  const policy = env.POLICY_YAML && WORKER_HOOKS.policyFromText ? await WORKER_HOOKS.policyFromText(env.POLICY_YAML) : undefined;
  const release = WORKER_HOOKS.buildRelease ? await WORKER_HOOKS.buildRelease(env as unknown as Record<string, unknown>, store, logger) : undefined;
  return createBroker({
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
    ...(release ? { release } : {}),
    options: { challengeTtlSeconds: cfg.challenge.ttlSeconds, bodyLimitBytes: cfg.limits.bodyBytes },
  }) as unknown as Hono;
}

let app: Promise<Hono> | undefined;

export default {
  async fetch(req: Request, env: Env, ctx: ExecutionContext): Promise<Response> {
    app ??= build(env).catch((e: unknown) => {
      app = undefined;
      throw e;
    });
    try {
      return await (await app).fetch(req, env, ctx);
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

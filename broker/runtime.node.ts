/**
 * @module broker/runtime.node
 *
 * Turns a configuration (file + environment, or the embedded dev defaults) into the injected
 * dependencies of `createBroker`: store, trust, providers, logger, metrics, policy, release.
 * Node-only: it reads files and opens sockets.
 */
import { readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import type { BrokerDeps, ClientFile, TokenReviewHandler } from './app.js';
import type { AuditSink, Logger, Metrics, PolicyEngine, ReleaseService, StateStore } from './contracts.js';
import { applyEnv, ConfigProblem, parseConfig, type BrokerConfig } from './config/schema.js';
import { MemoryStore } from './store/memory.js';
import { RedisStore } from './store/redis.node.js';
import { loadTrustIntermediates, loadTrustStore } from './trust/store.node.js';
import { buildDevices, buildProviders } from './providers.js';
import { createPinoLogger } from './observability/pino.node.js';
import { createPromMetrics } from './observability/metrics.node.js';
import { applyWorkerCryptoMode, clusterMetrics, workerIndex } from './cluster.node.js';
import { resolveDeviceFiles } from './devices.node.js';
import { countFailures, STORE_OPS } from './observability/instrument.js';
import { tracerFromSettings, type Tracer } from './observability/tracing.js';
import { asyncContextStorage } from './observability/tracing-context.node.js';
import pkg from '../package.json' with { type: 'json' };

/** The package root (works from source and from the dist bundle). */
export const PACKAGE_ROOT = (() => {
  let d = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(resolve(d, 'package.json')) && dirname(d) !== d) d = dirname(d);
  return d;
})();

export const DEV_POLICY = resolve(PACKAGE_ROOT, 'deploy/policies/dev.yaml');

/** Embedded defaults for `serve --dev`: memory store, local-only listener, swtpm/bare-metal provider. */
export function devDefaults(): Record<string, unknown> {
  return {
    listen: { host: '127.0.0.1', port: 8080 },
    store: { url: 'memory://' },
    trust: { dir: resolve(PACKAGE_ROOT, '.cache/trust') },
    providers: { tpm: { enabled: true, options: {} } },
    policy: existsSync(DEV_POLICY) ? { file: DEV_POLICY } : {},
    release: { mode: 'dev' },
  };
}

function deepMerge(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...a };
  for (const [k, v] of Object.entries(b)) {
    const cur = out[k];
    out[k] =
      v && typeof v === 'object' && !Array.isArray(v) && cur && typeof cur === 'object' && !Array.isArray(cur)
        ? deepMerge(cur as Record<string, unknown>, v as Record<string, unknown>)
        : v;
  }
  return out;
}

export async function loadConfig(o: { file?: string; dev?: boolean; env?: NodeJS.ProcessEnv }): Promise<BrokerConfig> {
  let raw: Record<string, unknown> = o.dev ? devDefaults() : {};
  if (o.file) {
    let text: string;
    try {
      text = await readFile(o.file, 'utf8');
    } catch (e) {
      throw new ConfigProblem([`cannot read the config file ${o.file}: ${(e as Error).message}`]);
    }
    let parsed: unknown;
    try {
      parsed = parseYaml(text, { strict: true, uniqueKeys: true });
    } catch (e) {
      throw new ConfigProblem([`${o.file} is not valid YAML/JSON: ${(e as Error).message}`]);
    }
    if (parsed !== null && (typeof parsed !== 'object' || Array.isArray(parsed))) {
      throw new ConfigProblem([`${o.file}: the top level must be a mapping`]);
    }
    raw = deepMerge(raw, (parsed ?? {}) as Record<string, unknown>);
  }
  return parseConfig(applyEnv(raw, o.env ?? process.env));
}

/** Hooks filled in by the policy and release modules of this build. */
export const RUNTIME_HOOKS: {
  loadPolicy?: (cfg: BrokerConfig, logger: Logger, o?: { metrics?: Metrics }) => Promise<{ engine: PolicyEngine; close(): Promise<void> }>;
  buildRelease?: (
    cfg: BrokerConfig,
    store: StateStore,
    logger: Logger,
    o?: { metrics?: Metrics; tracer?: Tracer },
  ) => Promise<
    | {
        release: ReleaseService;
        audit?: AuditSink;
        tokenReview?: TokenReviewHandler;
        /** The webhook's own listener (else it is mounted on the main listener). */
        tokenReviewListen?: WebhookListen;
        /** Starts the CSR approver (undefined when no cluster has Kubernetes access). */
        startApprover?: (policy: PolicyEngine | undefined) => ApproverHandle | undefined;
        /** `release.approver.enabled`: `serve` runs the approver in-process. */
        approverInProcess?: boolean;
        close(): Promise<void>;
      }
    | undefined
  >;
} = {};

export interface WebhookListen {
  host: string;
  port: number;
  tls?: { certFile: string; keyFile: string; clientCaFile?: string };
}

export interface Runtime {
  /** Dependencies of the main app (join endpoints, and the webhook when it has no listener of its own). */
  deps: BrokerDeps;
  /** The webhook on a listener of its own, when configured. */
  webhook?: { handler: TokenReviewHandler; listen: WebhookListen };
  config: BrokerConfig;
  /** Starts the CSR approver with this runtime's policy (undefined when it has nothing to watch). */
  startApprover(): ApproverHandle | undefined;
  /** `release.approver.enabled`: `serve` starts the approver itself. */
  approverInProcess: boolean;
  close(): Promise<void>;
}

export interface ApproverHandle {
  leading(): Record<string, boolean>;
  stop(): Promise<void>;
}

/** The node clients the broker serves at GET /v1/client/<name> (docs/join.md, "Boot-time install"). */
export const CLIENT_FILES: Readonly<Record<string, string>> = {
  'attest-join.sh': 'text/x-shellscript; charset=utf-8',
  'attest-join.mjs': 'text/javascript; charset=utf-8',
};

/** Reads the client files present in `dir` (and their SHA-256) once, at start. */
export async function loadClients(dir: string, logger: Logger): Promise<Map<string, ClientFile>> {
  const out = new Map<string, ClientFile>();
  for (const [name, contentType] of Object.entries(CLIENT_FILES)) {
    const body = await readFile(resolve(dir, name)).catch(() => undefined);
    if (!body) continue;
    out.set(name, { body: new Uint8Array(body), sha256: new Uint8Array(createHash('sha256').update(body).digest()), contentType });
  }
  if (out.size === 0) logger.warn({ dir }, 'no node clients found: GET /v1/client/* answers 404 (run `npm run build`, or set clients.dir)');
  else logger.info({ clients: [...out].map(([n, f]) => `${n} sha256:${Buffer.from(f.sha256).toString('hex')}`) }, 'serving node clients');
  return out;
}

/** The tracer of `tracing:` (undefined while no OTLP endpoint is configured: tracing off). */
export function buildTracer(cfg: BrokerConfig, logger: Logger, metrics?: Metrics): Tracer | undefined {
  const t = cfg.tracing;
  const tracer = tracerFromSettings(t, {
    serviceVersion: pkg.version,
    logger,
    storage: asyncContextStorage(),
    ...(metrics?.spansDropped ? { onDropped: metrics.spansDropped.bind(metrics) } : {}),
  });
  // The endpoint's origin only: never the headers (they may hold an API key).
  if (tracer) logger.info({ component: 'tracing', endpoint: new URL(t.otlpEndpoint!).origin, serviceName: t.serviceName, sampleRatio: t.sampleRatio }, 'tracing on: spans exported over OTLP/HTTP');
  return tracer;
}

export async function buildRuntime(cfg: BrokerConfig, o: { logger?: Logger } = {}): Promise<Runtime> {
  const base = o.logger ?? createPinoLogger(cfg.log.level);
  // In a cluster every line says which worker wrote it.
  const index = workerIndex();
  const logger = index !== undefined ? base.child({ worker: index }) : base;
  applyWorkerCryptoMode(cfg);
  const metrics = createPromMetrics({ version: pkg.version, runtime: 'node' });
  const trust = await loadTrustStore(cfg.trust);
  metrics.trustRoots?.(trust.anchors(trust.ids()).map((a) => ({ id: a.id, notAfter: a.cert.notAfter })));
  // Failed store calls are counted (attest_broker_store_errors_total) by operation and code.
  const store: StateStore = countFailures(
    cfg.store.url.startsWith('memory://')
      ? new MemoryStore({ maxChallenges: cfg.limits.maxLiveChallenges })
      : new RedisStore({ url: cfg.store.url, keyPrefix: cfg.store.keyPrefix }),
    'store',
    STORE_OPS,
    metrics,
  );
  const tracer = buildTracer(cfg, logger, metrics);
  const intermediates = await loadTrustIntermediates(cfg.trust);
  const providers = buildProviders(cfg, trust, { store, intermediates });
  // Device verifiers (GPUs): enabled ones need their pinned roots too.
  // A RIM directory (devices.nvidia.options.rims.dir) is read here, once: the verifier reads no files.
  const devices = buildDevices(resolveDeviceFiles(cfg), trust, { fetch: (...a: Parameters<typeof fetch>) => fetch(...a) });
  // Closed last (closers run in reverse): the spans of everything shutting down are sent.
  const closers: (() => Promise<void>)[] = [...(tracer ? [() => tracer.exporter.shutdown()] : []), () => store.close()];
  let policy: PolicyEngine | undefined;
  if (cfg.policy.file) {
    if (!RUNTIME_HOOKS.loadPolicy) throw new ConfigProblem(['policy.file: this build has no policy engine']);
    const p = await RUNTIME_HOOKS.loadPolicy(cfg, logger, { metrics });
    policy = p.engine;
    closers.push(() => p.close());
  } else {
    logger.warn({}, 'no policy.file configured: every attest will be refused (POLICY_UNAVAILABLE)');
  }
  const rel = RUNTIME_HOOKS.buildRelease ? await RUNTIME_HOOKS.buildRelease(cfg, store, logger, { metrics, ...(tracer ? { tracer } : {}) }) : undefined;
  const clients = cfg.clients.enabled ? await loadClients(cfg.clients.dir ?? resolve(PACKAGE_ROOT, 'dist/clients'), logger) : undefined;
  if (rel) closers.push(() => rel.close());
  const release = rel?.release;
  const deps: BrokerDeps = {
    store,
    providers,
    trust,
    logger,
    // In a cluster (listen.workers > 1) /metrics on any worker renders every worker's series.
    metrics: workerIndex() !== undefined ? clusterMetrics(metrics) : metrics,
    ...(policy ? { policy } : {}),
    ...(release ? { release } : {}),
    ...(rel?.audit ? { audit: rel.audit } : {}),
    ...(clients ? { clients } : {}),
    ...(devices ? { devices } : {}),
    ...(tracer ? { tracer } : {}),
    ...(rel?.tokenReview && !rel.tokenReviewListen ? { tokenReview: rel.tokenReview } : {}),
    options: {
      challengeTtlSeconds: cfg.challenge.ttlSeconds,
      bodyLimitBytes: cfg.limits.bodyBytes,
      trustedProxies: cfg.listen.trustedProxies,
      rateLimits: { challenge: cfg.limits.challengesPerAddress, attest: cfg.limits.attestsPerAddress, identity: cfg.limits.attestsPerIdentity },
      // No per-request provider options: `providers.<p>.options` configured each provider once, at
      // its factory (buildProviders). Passing them again as ctx.options would have them checked
      // against the providers' per-call schemas, which differ (Azure, AWS).
    },
  };
  return {
    deps,
    ...(rel?.tokenReview && rel.tokenReviewListen ? { webhook: { handler: rel.tokenReview, listen: rel.tokenReviewListen } } : {}),
    config: cfg,
    startApprover: () => rel?.startApprover?.(policy),
    // One approver per broker, not per process: in a cluster only worker 0 runs it.
    approverInProcess: (rel?.approverInProcess ?? false) && (workerIndex() ?? 0) === 0,
    async close() {
      for (const c of closers.reverse()) await c().catch(() => {});
    },
  };
}

/**
 * @module broker/config/schema
 *
 * The broker's configuration: one YAML/JSON file plus environment overrides, validated at
 * start-up. Objects are strict (an unknown key is a typo until proven otherwise, and a typo in
 * a security setting must not silently fall back to a default). Messages name the path and say
 * what to write instead.
 */
import { z } from 'zod';
import { BUILTIN_PINS } from '../../providers/common/pins.js';
import { DEVICES, PROVIDERS } from '../../providers/catalog.js';
import type { DeviceDescriptor, ProviderDescriptor } from '../../providers/descriptor.js';
import { parseCidr } from '../http/address.js';
import { DEFAULT_RATE_LIMITS } from '../http/ratelimit.js';

function isCidr(s: string): boolean {
  try {
    parseCidr(s);
    return true;
  } catch {
    return false;
  }
}

const RateLimitSchema = z
  .object({ limit: z.number().int().min(0).max(1_000_000), windowSeconds: z.number().int().min(1).max(86_400) })
  .strict();

const ProviderToggle = z
  .object({
    enabled: z.boolean().default(false),
    /** Provider-specific options, validated by the provider's descriptor schema at start-up. */
    options: z.record(z.string(), z.unknown()).default({}),
  })
  .strict();

type Toggles<N extends string> = z.ZodPrefault<z.ZodObject<{ [K in N]: z.ZodPrefault<typeof ProviderToggle> }, z.core.$strict>>;

/** `{<name>: {enabled, options}}` for every descriptor of the list, strict (an unknown provider is a typo). */
function togglesOf<N extends string>(list: readonly { readonly name: N }[]): Toggles<N> {
  const shape = Object.fromEntries(list.map((d) => [d.name, ProviderToggle.prefault({})]));
  return z.object(shape).strict().prefault({}) as unknown as Toggles<N>;
}

export const ConfigSchema = z
  .object({
    apiVersion: z.literal('attest-broker/v1').default('attest-broker/v1'),
    listen: z
      .object({
        host: z.string().min(1).default('0.0.0.0'),
        port: z.number().int().min(0).max(65535).default(8080),
        /** Serve HTTPS directly (else plain HTTP behind a TLS-terminating proxy or ingress). */
        tls: z.object({ certFile: z.string().min(1), keyFile: z.string().min(1) }).strict().optional(),
        /**
         * Proxies whose X-Forwarded-For is believed (CIDRs or addresses), e.g. the ingress
         * controller's pod range. Empty (default): the TCP peer is the client.
         */
        trustedProxies: z
          .array(z.string().refine(isCidr, 'must be an IP address or CIDR range such as 10.0.0.0/8'))
          .max(64)
          .default([]),
        /**
         * Processes serving this listener (Node cluster; `auto` = one per CPU). More than one needs
         * a shared store (Redis): a challenge issued by one process is consumed by another.
         */
        workers: z
          .union([
            z.number().int().min(1).max(64),
            z.literal('auto'),
            z.string().regex(/^\d+$/, 'must be a whole number or auto').transform(Number).pipe(z.number().int().min(1).max(64)),
          ])
          .default(1),
      })
      .strict()
      .prefault({}),
    challenge: z.object({ ttlSeconds: z.number().int().min(10).max(3600).default(120) }).strict().prefault({}),
    limits: z
      .object({
        bodyBytes: z.number().int().min(1024).max(16 * 1024 * 1024).default(1024 * 1024),
        /** Live challenges the memory store holds at most (beyond: 503 STORE_FULL). */
        maxLiveChallenges: z.number().int().min(100).max(10_000_000).default(250_000),
        /** Requests per window per client address / per attested identity (0 = off). */
        challengesPerAddress: RateLimitSchema.prefault({ limit: DEFAULT_RATE_LIMITS.challenge.limit, windowSeconds: DEFAULT_RATE_LIMITS.challenge.windowSeconds }),
        attestsPerAddress: RateLimitSchema.prefault({ limit: DEFAULT_RATE_LIMITS.attest.limit, windowSeconds: DEFAULT_RATE_LIMITS.attest.windowSeconds }),
        attestsPerIdentity: RateLimitSchema.prefault({ limit: DEFAULT_RATE_LIMITS.identity.limit, windowSeconds: DEFAULT_RATE_LIMITS.identity.windowSeconds }),
        /** Node HTTP server limits (seconds): whole headers, whole request, idle keep-alive. */
        headersTimeoutSeconds: z.number().int().min(1).max(300).default(10),
        requestTimeoutSeconds: z.number().int().min(1).max(600).default(30),
        keepAliveTimeoutSeconds: z.number().int().min(1).max(600).default(5),
        /** Open connections at most, in all and per client address. */
        maxConnections: z.number().int().min(1).max(1_000_000).default(10_000),
        maxConnectionsPerAddress: z.number().int().min(1).max(100_000).default(64),
      })
      .strict()
      .prefault({}),
    store: z
      .object({
        /** `memory://`, `redis://…`, `rediss://…`, `redis+sentinel://…`, `redis+cluster://…` */
        url: z
          .string()
          .regex(/^(memory:\/\/|rediss?:\/\/|redis\+sentinel:\/\/|redis\+cluster:\/\/)/, 'must start with memory://, redis://, rediss://, redis+sentinel:// or redis+cluster://')
          .default('memory://'),
        keyPrefix: z.string().max(64).default('attest-broker:'),
      })
      .strict()
      .prefault({}),
    trust: z
      .object({
        /** Directory written by `attest-broker trust fetch|import` (one `<pin-id>.pem` per root). */
        dir: z.string().default('/var/lib/attest-broker/trust'),
        /** Operator roots beyond the built-in pins (e.g. TPM vendors' EK roots), each pinned. */
        anchors: z
          .array(
            z
              .object({
                id: z
                  .string()
                  .regex(/^[a-z0-9][a-z0-9-]{1,62}$/)
                  .refine((id) => !BUILTIN_PINS.some((p) => p.id === id), 'is the id of a built-in pinned root; operator anchors need their own id (a built-in root cannot be replaced)'),
                file: z.string().min(1),
                sha256: z.string().regex(/^[0-9a-f]{64}$/, 'must be the lower-case hex SHA-256 of the DER certificate'),
                source: z.string().min(1).default('operator'),
              })
              .strict(),
          )
          .max(256)
          .refine((a) => new Set(a.map((x) => x.id)).size === a.length, 'anchor ids must be unique')
          .default([]),
      })
      .strict()
      .prefault({}),
    /** `providers.<name>` for every provider in providers/catalog.ts (docs/providers.md). */
    providers: togglesOf(PROVIDERS),
    /**
     * Verifiers of device evidence nodes attach to their attest request (GPUs: docs/nvidia.md),
     * one per device descriptor in providers/catalog.ts.
     * Disabled: such evidence is refused (DEVICE_UNSUPPORTED), never ignored.
     */
    devices: togglesOf(DEVICES),
    policy: z
      .object({
        /** The join policy file (docs/policy.md). Without one, no node is admitted. */
        file: z.string().optional(),
        /** Reload the policy when the file changes (keeps the old one if the new one is invalid). */
        watch: z.boolean().default(true),
      })
      .strict()
      .prefault({}),
    /**
     * The node clients served at `GET /v1/client/<name>` (attest-join.sh, attest-join.mjs), so a
     * node fetches its client over the pinned TLS connection at boot (deploy/cloud-init). `dir`
     * defaults to the package's dist/clients (written by the build).
     */
    clients: z.object({ enabled: z.boolean().default(true), dir: z.string().optional() }).strict().prefault({}),
    /** Release settings (Kubernetes API, KMS); validated by the release module. */
    release: z.record(z.string(), z.unknown()).default({}),
    log: z.object({ level: z.enum(['debug', 'info', 'warn', 'error']).default('info') }).strict().prefault({}),
    /**
     * Prometheus metrics (docs/operations.md). With `listen`, `GET /metrics` is served on a
     * listener of its own and no longer on the main one, so a NetworkPolicy can admit only the
     * monitoring namespace to it. Without: `/metrics` on the main listener.
     */
    metrics: z
      .object({
        listen: z.object({ host: z.string().min(1).default('0.0.0.0'), port: z.number().int().min(0).max(65535) }).strict().optional(),
      })
      .strict()
      .prefault({}),
    /**
     * OpenTelemetry tracing (docs/operations.md "Tracing"): spans exported over OTLP/HTTP (JSON)
     * to `otlpEndpoint` (the base URL; `/v1/traces` is appended). Off while it is unset.
     * `headers` (e.g. a vendor's API key) are sent with each export and never logged.
     */
    tracing: z
      .object({
        otlpEndpoint: z
          .string()
          .url()
          .refine((u) => /^https?:$/.test(new URL(u).protocol), 'must be an http(s) URL, e.g. http://otel-collector.observability:4318')
          .refine((u) => !new URL(u).username && !new URL(u).password, 'must not carry credentials; put them in tracing.headers')
          .optional(),
        serviceName: z.string().min(1).max(256).default('attest-broker'),
        /** Fraction of new traces recorded (a caller's sampled flag decides for its own traces). */
        sampleRatio: z.number().min(0).max(1).default(1),
        headers: z
          .record(
            z.string().regex(/^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,128}$/, 'must be an HTTP header name'),
            // eslint-disable-next-line no-control-regex
            z.string().max(8192).regex(/^[^\x00-\x08\x0a-\x1f\x7f]*$/, 'must be a header value (no line breaks or control characters)'),
          )
          .refine((h) => Object.keys(h).length <= 32, 'at most 32 headers')
          .refine((h) => !Object.keys(h).some((k) => k.toLowerCase() === 'content-type'), 'content-type is set by the exporter')
          .default({}),
        /** Ended spans held for export at most; when full the oldest are dropped (counted). */
        maxQueueSpans: z.number().int().min(16).max(100_000).default(2048),
        exportIntervalSeconds: z.number().int().min(1).max(300).default(5),
      })
      .strict()
      .prefault({}),
  })
  .strict();

export type BrokerConfig = z.infer<typeof ConfigSchema>;

/**
 * The configuration schema for another provider catalog (tests: a provider added by its
 * descriptor alone): `ConfigSchema` with `providers.<name>` / `devices.<name>` from those lists.
 */
export function configSchemaFor<P extends string, D extends string>(providers: readonly ProviderDescriptor<P>[], devices: readonly DeviceDescriptor<D>[]) {
  return ConfigSchema.extend({ providers: togglesOf(providers), devices: togglesOf(devices) }).strict();
}

/** Environment overrides (documented in README): variable → config path. */
export const ENV_OVERRIDES: Readonly<Record<string, { path: readonly string[]; type: 'string' | 'int' | 'bool' }>> = {
  ATTEST_BROKER_HOST: { path: ['listen', 'host'], type: 'string' },
  ATTEST_BROKER_PORT: { path: ['listen', 'port'], type: 'int' },
  ATTEST_BROKER_STORE_URL: { path: ['store', 'url'], type: 'string' },
  ATTEST_BROKER_TRUST_DIR: { path: ['trust', 'dir'], type: 'string' },
  ATTEST_BROKER_POLICY_FILE: { path: ['policy', 'file'], type: 'string' },
  ATTEST_BROKER_LOG_LEVEL: { path: ['log', 'level'], type: 'string' },
  ATTEST_BROKER_CHALLENGE_TTL: { path: ['challenge', 'ttlSeconds'], type: 'int' },
  ATTEST_BROKER_BODY_LIMIT: { path: ['limits', 'bodyBytes'], type: 'int' },
  ATTEST_BROKER_WORKERS: { path: ['listen', 'workers'], type: 'string' },
  // The OpenTelemetry SDKs' own variables (https://opentelemetry.io/docs/specs/otel/protocol/exporter/).
  OTEL_EXPORTER_OTLP_ENDPOINT: { path: ['tracing', 'otlpEndpoint'], type: 'string' },
  OTEL_SERVICE_NAME: { path: ['tracing', 'serviceName'], type: 'string' },
};

/** Applies environment overrides to a raw (unvalidated) config object, returning a new object. */
export function applyEnv(raw: Record<string, unknown>, env: Readonly<Record<string, string | undefined>>): Record<string, unknown> {
  const out = structuredClone(raw);
  for (const [name, spec] of Object.entries(ENV_OVERRIDES)) {
    const v = env[name];
    if (v === undefined || v === '') continue;
    let val: unknown = v;
    if (spec.type === 'int') {
      if (!/^\d+$/.test(v)) throw new ConfigProblem([`${name}=${v}: must be a whole number`]);
      val = Number(v);
    } else if (spec.type === 'bool') val = v === 'true' || v === '1';
    let o = out as Record<string, unknown>;
    for (const k of spec.path.slice(0, -1)) {
      if (typeof o[k] !== 'object' || o[k] === null) o[k] = {};
      o = o[k] as Record<string, unknown>;
    }
    o[spec.path[spec.path.length - 1] as string] = val;
  }
  return out;
}

/** A configuration that must not start, with one line per problem telling the operator what to fix. */
export class ConfigProblem extends Error {
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super(`invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigProblem';
    this.problems = problems;
  }
}

export function parseConfig(raw: unknown, schema: z.ZodType<BrokerConfig, unknown> = ConfigSchema): BrokerConfig {
  const r = schema.safeParse(raw ?? {});
  if (r.success) return r.data;
  throw new ConfigProblem(
    r.error.issues.map((i) => {
      const path = i.path.join('.') || '(top level)';
      if (i.code === 'unrecognized_keys') return `${path}: unknown key(s) ${i.keys.map((k) => `"${k}"`).join(', ')} — check the spelling against docs/configuration.md`;
      return `${path}: ${i.message}`;
    }),
  );
}

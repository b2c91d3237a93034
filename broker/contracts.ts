/**
 * @module broker/contracts
 *
 * The interfaces between the broker's boxes (architecture.md): store, policy, release, keys,
 * logger, metrics, clock. `createBroker(deps)` receives implementations of these, so the same
 * app runs on Node (memory/Redis, pino, prom-client) and on Workers (Durable Object, console).
 *
 * Evolving these: add optional fields only; a required field added here breaks every
 * implementation at once.
 */
import type { Claims, ProviderName } from '../providers/common/types.js';
import type { Code, CodeOfKind } from '../providers/common/codes.js';

// ───────────────────────────── clock ─────────────────────────────

export interface Clock {
  now(): Date;
}
export const systemClock: Clock = { now: () => new Date() };

// ───────────────────────────── peer ─────────────────────────────

/** The other end of an HTTP connection, as the runtime knows it. */
export interface Peer {
  /** Remote address of the connection (Node: TCP peer; Workers: CF-Connecting-IP). */
  address?: string;
  /**
   * The client certificate, present only when the TLS layer verified it against the configured
   * client CA (mutual TLS on the TokenReview listener).
   */
  clientCertificate?: { subject: string; sha256: string };
}

// ───────────────────────────── state store ─────────────────────────────

export interface ChallengeRecord {
  /** 32 random bytes, base64url. */
  nonce: string;
  /** RFC 3339. */
  issuedAt: string;
  expiresAt: string;
  provider?: ProviderName;
  cluster?: string;
}

/**
 * Shared state: challenges plus small keyed records for release (issuance windows, issued
 * tokens for CSR approval, audit chain head, rate-limit counters). Implementations: memory
 * (default), Redis (ioredis; standalone, Sentinel, Cluster), Durable Object (Workers).
 *
 * Every method either succeeds or throws an AttestError of kind 'unavailable'
 * (code STORE_UNAVAILABLE): a store outage must never look like "not found".
 */
export interface StateStore {
  readonly kind: 'memory' | 'redis' | 'durable-object';
  /**
   * Stores a new challenge that expires after `ttlMs`. Challenges have their own bounded space:
   * when it is full this throws STORE_FULL (kind 'unavailable', with Retry-After), and a full
   * challenge space never blocks release state.
   */
  putChallenge(id: string, record: ChallengeRecord, ttlMs: number): Promise<void>;
  /**
   * Atomically returns and deletes the challenge: of any number of concurrent callers, across
   * replicas, exactly one gets the record; the others (and any caller after expiry) get null.
   */
  consumeChallenge(id: string): Promise<ChallengeRecord | null>;
  get(key: string): Promise<string | null>;
  set(key: string, value: string, ttlMs?: number): Promise<void>;
  /** Sets only if absent (atomic); true when this call set it. */
  setIfAbsent(key: string, value: string, ttlMs?: number): Promise<boolean>;
  /** Atomically replaces `expected` (null = absent) with `value`; true on success. */
  compareAndSet(key: string, expected: string | null, value: string, ttlMs?: number): Promise<boolean>;
  delete(key: string): Promise<void>;
  /**
   * Atomically increments the counter `key` and returns its new value. A counter created by this
   * call expires `ttlMs` later (a fixed window; rate limits use it). Counters live apart from the
   * keys of get/set (same name, different value spaces).
   */
  incr(key: string, ttlMs: number): Promise<number>;
  /** Throws STORE_UNAVAILABLE when the store cannot be reached (used by /readyz). */
  ping(): Promise<void>;
  close(): Promise<void>;
}

// ───────────────────────────── policy ─────────────────────────────

export type RuleOutcome = 'pass' | 'fail' | 'warn' | 'skip';

export interface RuleResult {
  /** Rule path in the policy file, e.g. 'boot.pcrs.sha256.7' or 'identity.gcp.projects'. */
  rule: string;
  outcome: RuleOutcome;
  /** Stable machine code, e.g. POLICY_PCR_MISMATCH (for fail and warn). */
  code?: CodeOfKind<'policy'>;
  /** Full reason, for the audit log only (never returned to the node). */
  reason?: string;
  mode: 'enforce' | 'warn';
}

export interface Decision {
  allow: boolean;
  /** Node name derived from the verified identity (DNS-1123), never from the node. */
  nodeName: string;
  cluster: string;
  /** Name of the image (reference-value set) that matched, if any. */
  image?: string;
  /** SHA-256 of the policy document that decided, and its declared version. */
  policyHash: string;
  policyVersion?: string;
  rules: RuleResult[];
  /** Coarse denial code returned to the node (e.g. POLICY_DENIED); full reasons stay in rules. */
  denyCode?: Code;
  /** The cluster's policy says a refused node may learn which rules failed (`explain: true`). */
  explain?: boolean;
  release: {
    tokenTtlSeconds: number;
    extraGroups: string[];
    /** Whether release may go out unsealed (no ephemeral key) — off unless policy says so. */
    allowUnsealed: boolean;
    diskKey: boolean;
    /** One live token per instance across all clusters (default), or one per cluster. */
    tokensPerInstance?: 'one' | 'one-per-cluster';
  };
}

export interface PolicyEngine {
  /** Evaluates claims for a cluster (default cluster when undefined). Never throws for a deny. */
  evaluate(claims: Claims, cluster?: string): Promise<Decision>;
  /** Hash and version of the policy currently in force. */
  current(): { hash: string; version?: string };
}

// ───────────────────────────── release ─────────────────────────────

export type Want = 'bootstrap-token' | 'disk-key';

export interface ReleaseRequest {
  claims: Claims;
  decision: Decision;
  want: readonly Want[];
  /** The node's ephemeral public JWK bound into the binding (release is sealed to it). */
  ephemeralKey?: JsonWebKey;
  /** JWE `enc` of the release sealed to `ephemeralKey` (default A256GCM). */
  sealEnc?: 'A256GCM' | 'A128CBC-HS256';
  diskKey?: { wrapped: string };
  requestId: string;
  /** The W3C trace of the request (traceparent), for log lines only. */
  trace?: { traceId: string; spanId: string };
  /**
   * The challenge nonce (b64url) and the binding (b64url) the evidence was verified against.
   * Required whenever `ephemeralKey` is set: release re-derives SHA-256(nonce ‖ thumbprint) and
   * refuses to seal to a key that is not the bound one (protocol §2).
   */
  nonce?: string;
  binding?: string;
}

/** The release object of protocol §3 (before sealing). */
export interface ReleaseObject {
  nodeName: string;
  expiresAt: string;
  bootstrapToken?: string;
  kubeconfig?: string;
  apiServer?: string;
  caCertHashes?: string[];
  diskKey?: { key: string; wrapped: string };
  /**
   * NitroTPM with KMS `Recipient`: the data key encrypted by AWS KMS to the attested TPM's RSA
   * key (CMS EnvelopedData, b64url); the broker never sees the plaintext.
   */
  diskKeyForRecipient?: { ciphertextForRecipient: string; wrapped: string };
  /** The challenge nonce (b64url), so the node can reject a response to another attempt. */
  nonce?: string;
}

export interface ReleaseService {
  /** Issues what the decision allows; returns a compact JWE (sealed) or the object (unsealed). */
  release(req: ReleaseRequest): Promise<string | ReleaseObject>;
  /** Readiness of downstream services (Kubernetes API, KMS). */
  ready?(): Promise<void>;
}

/** KMS adapters (AWS KMS, Cloud KMS, Key Vault, local) behind one interface. */
export interface KeyService {
  readonly kind: 'aws-kms' | 'gcp-kms' | 'azure-keyvault' | 'local';
  /** Wraps `key` under `context` (identity-binding encryption context / AAD). */
  wrap(key: Uint8Array, context: Readonly<Record<string, string>>): Promise<Uint8Array>;
  /** Unwraps; throws (kind 'rejected') when `context` differs from the one used to wrap. */
  unwrap(wrapped: Uint8Array, context: Readonly<Record<string, string>>): Promise<Uint8Array>;
}

// ───────────────────────────── logging & metrics ─────────────────────────────

/** Structured logger (pino on Node, JSON console lines on Workers). Never pass secrets. */
export interface Logger {
  debug(obj: Record<string, unknown>, msg?: string): void;
  info(obj: Record<string, unknown>, msg?: string): void;
  warn(obj: Record<string, unknown>, msg?: string): void;
  error(obj: Record<string, unknown>, msg?: string): void;
  child(bindings: Record<string, unknown>): Logger;
}

/** Dependencies whose failures are counted by operation and error code (observability/metrics.ts). */
export type ErrorFamily = 'release' | 'kms' | 'kubernetes' | 'store';

export interface Metrics {
  challengeIssued(): void;
  attestOutcome(code: string, provider: string, seconds: number): void;
  policyWarn?(rule: string, code: string): void;
  /**
   * A failed call of a dependency: `operation` from the fixed list of its family
   * (observability/metrics.ts ERROR_OPERATIONS), `code` the AttestError code (anything else
   * counts as INTERNAL). Label values outside the bounded sets are folded, never added.
   */
  dependencyError?(family: ErrorFamily, operation: string, code: string): void;
  /** A policy reload attempt that replaced the policy (true) or kept the previous one (false). */
  policyReload?(ok: boolean): void;
  /** Expiry (notAfter) of each loaded trust root, by anchor id; replaces what was set before. */
  trustRoots?(roots: ReadonlyArray<{ id: string; notAfter: Date }>): void;
  /** Expiry (notAfter) of a certificate the broker serves or pins, by a fixed name. */
  certificateExpiry?(name: string, notAfter: Date): void;
  /** Trace spans dropped before export (tracing on): queue full, or their export failed. */
  spansDropped?(reason: 'queue_full' | 'export_failed', n: number): void;
  /** Prometheus text exposition, or undefined when this runtime has no registry. */
  render?(): Promise<{ contentType: string; body: string }>;
}

/** Audit sink: one record per decision, hash-chained (release issue builds the chain). */
export interface AuditSink {
  record(entry: Record<string, unknown>): Promise<void>;
}

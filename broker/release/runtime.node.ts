/**
 * @module broker/release/runtime.node
 *
 * Builds release from the `release:` section of the broker configuration on Node: Kubernetes
 * access (in-cluster service account or a kubeconfig), the KMS adapter with its official SDK
 * or credential, the hash-chained audit sink, the TokenReview handler and the token sweep.
 * The lead wires `buildReleaseRuntime` into `RUNTIME_HOOKS.buildRelease` (broker/runtime.node.ts).
 *
 * ```yaml
 * release:
 *   mode: secret            # secret (write bootstrap-token Secrets) | webhook (TokenReview only) | dev
 *   issuanceWindowSeconds: 600
 *   clusters:
 *     prod:
 *       apiServer: https://10.0.0.1:6443     # as nodes reach it
 *       caFile: /etc/attest-broker/prod-ca.crt  # default: the in-cluster / kubeconfig CA
 *       kube: { inCluster: true }            # or { kubeconfig: /path, context: name }
 *   kms:
 *     kind: aws-kms                          # local | aws-kms | gcp-kms | azure-keyvault
 *     keyId: arn:aws:kms:eu-west-1:111122223333:key/…
 *     region: eu-west-1
 *   audit: { file: /var/log/attest-broker/audit.jsonl }  # default: log lines (msg "audit")
 *   sweepIntervalSeconds: 60
 * ```
 * `dev` (serve --dev): webhook mode, an in-memory random KEK (disk keys die with the process),
 * one catch-all cluster at https://127.0.0.1:6443 with no CA pin — never for production.
 */
import { appendFile, readFile } from 'node:fs/promises';
import { z } from 'zod';
import type { AuditSink, Clock, Logger, Metrics, PolicyEngine, ReleaseService, StateStore } from '../contracts.js';
import { countFailures, KMS_OPS, KUBE_OPS } from '../observability/instrument.js';
import { traceCalls, type Tracer } from '../observability/tracing.js';
import { systemClock } from '../contracts.js';
import { configError } from '../../providers/common/errors.js';
import type { KeyServiceLike } from '../../providers/common/keyservice.js';
import { LocalKeyService } from '../../providers/local/kms.js';
import { AwsKmsKeyService } from '../../providers/aws/kms.js';
import { GcpKmsKeyService } from '../../providers/gcp/kms.js';
import { AzureKeyVaultKeyService } from '../../providers/azure/keyvault.js';
import { HashChainAudit } from './audit.js';
import { BrokerReleaseService, type ClusterTarget } from './service.js';
import { inClusterAccess, kubeClientFor, kubeconfigAccess, type ClusterAccess } from './kube.node.js';
import { loadLocalKek } from './local-kek.node.js';
import { cloudKmsSdk } from './kms-sdk.node.js';
import { tokenReviewHandler, type TokenReviewCaller } from './tokenreview.js';
import type { TokenReviewHandler } from '../app.js';
import { sha256 } from '../../providers/common/digest.js';
import { hostname } from 'node:os';
import { parseCidr } from '../http/address.js';
import { toHex } from '../../providers/common/encoding.js';
import type { KubeClient } from './kube.js';
import { CsrApprover } from '../approver/controller.js';
import { LeaderElector } from '../approver/lease.js';
import { NodeRecords, DEFAULT_RENEWAL_WINDOW_DAYS, type NodeRecord } from '../approver/nodes.js';
import { KEY_TYPES, DEFAULT_KEY_TYPES } from '../approver/csr.js';
import { fromHex, utf8 } from '../../providers/common/encoding.js';

const ClusterSchema = z
  .object({
    apiServer: z.string().url(),
    caFile: z.string().optional(),
    kube: z
      .object({ inCluster: z.boolean().default(false), kubeconfig: z.string().optional(), context: z.string().optional() })
      .strict()
      .optional(),
  })
  .strict();

const KmsSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('local'), kekFile: z.string().optional(), kekEnv: z.string().optional() }).strict(),
  z.object({ kind: z.literal('aws-kms'), keyId: z.string().min(1), region: z.string().min(1), endpoint: z.string().url().optional() }).strict(),
  z.object({ kind: z.literal('gcp-kms'), keyName: z.string().min(1), transport: z.enum(['grpc', 'rest']).default('grpc') }).strict(),
  z
    .object({
      kind: z.literal('azure-keyvault'),
      vaultUrl: z.string().url(),
      keyName: z.string().min(1),
      keyVersion: z.string().min(1),
      credential: z.enum(['default', 'managed-identity', 'workload-identity']).default('default'),
      clientId: z.string().optional(),
    })
    .strict(),
]);

const ClusterName = z.string().regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, 'must be a cluster name of release.clusters');

/**
 * The TokenReview webhook (webhook mode). Only the API servers listed under `callers` get an
 * answer, each only about its own cluster's tokens: by bearer credential (the `token` of the API
 * server's webhook kubeconfig; give the file holding it, or its SHA-256) and/or by the common
 * name of a client certificate that `listen.tls.clientCaFile` verified.
 */
const TokenReviewSchema = z
  .object({
    /** A listener of its own (recommended), so the webhook is never exposed with the join endpoints. */
    listen: z
      .object({
        host: z.string().min(1).default('0.0.0.0'),
        port: z.number().int().min(0).max(65535),
        tls: z.object({ certFile: z.string().min(1), keyFile: z.string().min(1), clientCaFile: z.string().min(1).optional() }).strict().optional(),
      })
      .strict()
      .optional(),
    callers: z
      .record(
        ClusterName,
        z
          .object({
            bearerTokenFile: z.string().min(1).optional(),
            bearerTokenSha256: z.array(z.string().regex(/^[0-9a-f]{64}$/, 'must be the lower-case hex SHA-256 of the token')).max(8).optional(),
            clientCertificateCommonNames: z.array(z.string().min(1).max(256)).max(8).optional(),
          })
          .strict()
          .refine((c) => c.bearerTokenFile || c.bearerTokenSha256?.length || c.clientCertificateCommonNames?.length, 'give bearerTokenFile, bearerTokenSha256 or clientCertificateCommonNames'),
      )
      .default({}),
    audiences: z.array(z.string()).max(16).default([]),
    /** Successful reviews per token at most (TLS bootstrap needs a handful). */
    maxReviewsPerToken: z.number().int().min(1).max(1000).default(16),
  })
  .strict();

const CIDR = z.string().refine((c) => {
  try {
    parseCidr(c);
    return true;
  } catch {
    return false;
  }
}, 'must be a CIDR such as 10.0.0.0/16');

/**
 * The CSR approver (docs/approver.md). It acts for every cluster of `release.clusters` that has
 * Kubernetes access (`kube`), with one Lease per cluster when leader election is on.
 */
const ApproverSchema = z
  .object({
    /** Run the approver inside `serve` (otherwise run `attest-broker approve` beside it). */
    enabled: z.boolean().default(false),
    leaderElection: z
      .object({
        enabled: z.boolean().default(true),
        namespace: z.string().regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/).default('attest-broker'),
        name: z.string().regex(/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/).default('attest-broker-approver'),
        leaseDurationSeconds: z.number().int().min(2).max(300).default(15),
        renewDeadlineSeconds: z.number().int().min(1).max(299).default(10),
        retryPeriodSeconds: z.number().int().min(1).max(60).default(2),
      })
      .strict()
      .refine((l) => l.retryPeriodSeconds < l.renewDeadlineSeconds && l.renewDeadlineSeconds < l.leaseDurationSeconds, 'need retryPeriodSeconds < renewDeadlineSeconds < leaseDurationSeconds')
      .prefault({}),
    /** This replica's name in the Lease (default: host name + random suffix). */
    identity: z.string().min(1).max(128).optional(),
    keyTypes: z.array(z.enum(KEY_TYPES)).min(1).default([...DEFAULT_KEY_TYPES]),
    /** CSRs by bootstrap tokens this broker did not issue (kubeadm's, …): leave them alone, or deny them. */
    foreignBootstrapTokens: z.enum(['ignore', 'deny']).default('ignore'),
    /** How long after its last attestation a node's certificates are still renewed (and its record kept). */
    renewalWindowDays: z.number().int().min(1).max(3650).default(DEFAULT_RENEWAL_WINDOW_DAYS),
    /** Seconds a bootstrap token keeps authenticating after its certificate was issued (the kubelet fetches it). */
    retireTokenAfterSeconds: z.number().int().min(0).max(600).default(30),
    /** Extra names and ranges a cluster's nodes may put in serving certificates, beyond what evidence proves. */
    serving: z
      .record(
        ClusterName,
        z.object({ dnsNames: z.array(z.string().min(1).max(253)).max(64).default([]), ipCidrs: z.array(CIDR).max(64).default([]) }).strict(),
      )
      .default({}),
  })
  .strict();

export const ReleaseConfigSchema = z
  .object({
    mode: z.enum(['secret', 'webhook', 'dev']).default('secret'),
    issuanceWindowSeconds: z.number().int().min(10).max(86_400).optional(),
    nitroRecipient: z.boolean().default(true),
    tpmSeal: z.enum(['off', 'when-available', 'require']).default('off'),
    clusters: z.record(z.string().regex(/^(\*|[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)$/), ClusterSchema).default({}),
    kms: KmsSchema.optional(),
    audit: z.object({ file: z.string().optional() }).strict().prefault({}),
    /**
     * Periodic deletion of this broker's used/expired tokens. Off by default: it needs `list` on
     * kube-system Secrets, which the shipped Role does not grant (listing would let the broker
     * read every kube-system Secret), and kube-controller-manager's tokencleaner already deletes
     * expired bootstrap tokens (kubeadm enables it). Turn on only where tokencleaner is off, and
     * grant `list` then.
     */
    sweep: z.boolean().default(false),
    sweepIntervalSeconds: z.number().int().min(10).max(86_400).default(60),
    tokenReview: TokenReviewSchema.prefault({}),
    approver: ApproverSchema.prefault({}),
  })
  .strict();
export type ReleaseConfig = z.infer<typeof ReleaseConfigSchema>;

export interface ReleaseRuntime {
  release: ReleaseService;
  service: BrokerReleaseService;
  /** The hash-chained audit sink (use it for deny records too, so there is one chain). */
  audit: AuditSink;
  /** `POST /v1/tokenreview` handler (webhook mode with callers configured); it authenticates the API server. */
  tokenReview?: TokenReviewHandler;
  /** Where the webhook listens when it has a listener of its own. */
  tokenReviewListen?: NonNullable<ReleaseConfig['tokenReview']['listen']>;
  /** Records of admitted nodes (the approver's source for renewals and serving certificates). */
  nodes: NodeRecords;
  /**
   * Starts the CSR approver for every cluster with Kubernetes access (undefined when none has
   * any); `policy` decides renewals (the policy in force must still admit the node).
   */
  startApprover(policy: PolicyEngine | undefined): ApproverHandle | undefined;
  /** `approver.enabled`: run it inside `serve`. */
  approverEnabled: boolean;
  /** Runs one sweep of used/expired tokens in every cluster with Kubernetes access. */
  sweep(): Promise<void>;
  close(): Promise<void>;
}

async function keyServiceFrom(k: ReleaseConfig['kms'], mode: ReleaseConfig['mode'], logger: Logger, tracer?: Tracer): Promise<KeyServiceLike | undefined> {
  if (!k) {
    if (mode !== 'dev') return undefined;
    logger.warn({}, 'release dev mode: disk keys are wrapped under a random in-memory KEK and cannot be unwrapped after a restart');
    return LocalKeyService.create({ kek: crypto.getRandomValues(new Uint8Array(32)) });
  }
  switch (k.kind) {
    case 'local':
      return LocalKeyService.create({ kek: loadLocalKek({ file: k.kekFile, env: k.kekEnv }) });
    case 'aws-kms': {
      // Loaded only when configured: the SDK is a large import a broker without AWS KMS never needs.
      const { KMSClient } = await import('@aws-sdk/client-kms');
      const client = new KMSClient({
        region: k.region,
        ...(k.endpoint ? { endpoint: k.endpoint } : {}),
        // Bounded waits: a hung KMS must become KMS_UNAVAILABLE, not a hung release.
        requestHandler: { requestTimeout: 10_000, connectionTimeout: 3_000 },
      });
      if (tracer) injectTraceparent(client, tracer);
      return new AwsKmsKeyService({ keyId: k.keyId, client });
    }
    case 'gcp-kms': {
      const { KeyManagementServiceClient } = await import('@google-cloud/kms');
      return new GcpKmsKeyService({ keyName: k.keyName, transport: cloudKmsSdk(new KeyManagementServiceClient(k.transport === 'rest' ? { fallback: true } : {}), { timeout: 10_000 }) });
    }
    case 'azure-keyvault': {
      const id = await import('@azure/identity');
      const credential =
        k.credential === 'managed-identity'
          ? new id.ManagedIdentityCredential(k.clientId ? { clientId: k.clientId } : {})
          : k.credential === 'workload-identity'
            ? new id.WorkloadIdentityCredential(k.clientId ? { clientId: k.clientId } : {})
            : new id.DefaultAzureCredential();
      return new AzureKeyVaultKeyService({ vaultUrl: k.vaultUrl, keyName: k.keyName, keyVersion: k.keyVersion, credential });
    }
  }
}

/**
 * Tracing: the AWS SDK's requests carry `traceparent` naming the active CLIENT span (a build-step
 * middleware, so the header is added before SigV4 signs the request). The Cloud KMS (gRPC) and
 * Key Vault SDKs get spans around their calls but no traceparent.
 */
function injectTraceparent(client: { middlewareStack: { add(mw: unknown, o: { step: 'build'; name: string }): void } }, tracer: Tracer): void {
  client.middlewareStack.add(
    (next: (a: { request: unknown }) => Promise<unknown>) => async (args: { request: unknown }) => {
      const span = tracer.active();
      const req = args.request as { headers?: Record<string, string> } | undefined;
      if (span && req && typeof req.headers === 'object') req.headers.traceparent = span.traceparent();
      return next(args);
    },
    { step: 'build', name: 'attestBrokerTraceparent' },
  );
}

export async function buildReleaseRuntime(raw: unknown, store: StateStore, logger: Logger, o: { clock?: Clock; metrics?: Metrics; tracer?: Tracer } = {}): Promise<ReleaseRuntime> {
  const parsed = ReleaseConfigSchema.safeParse(raw ?? {});
  if (!parsed.success) {
    throw configError('CONFIG_INVALID', `release: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(top)'}: ${i.message}`).join('; ')}`);
  }
  const cfg = parsed.data;
  if (cfg.mode === 'secret' && (Object.keys(cfg.tokenReview.callers).length || cfg.tokenReview.listen)) {
    throw configError('CONFIG_INVALID', 'release.tokenReview: only webhook mode serves TokenReviews (secret mode writes bootstrap-token Secrets the API server checks itself)');
  }
  const clock = o.clock ?? systemClock;
  const log = logger.child({ component: 'release' });
  // Failed Kubernetes calls are counted (attest_broker_kubernetes_errors_total) by operation.
  // With tracing, each call is a CLIENT span and its requests carry traceparent.
  const kubeFor = (access: ClusterAccess): KubeClient =>
    countFailures(
      traceCalls(kubeClientFor(access, o.tracer ? { tracer: o.tracer } : {}), o.tracer, 'kubernetes', KUBE_OPS, { 'server.address': new URL(access.server).hostname }),
      'kubernetes',
      KUBE_OPS,
      o.metrics,
    );

  const clusters: Record<string, ClusterTarget> = {};
  const approverKube: Array<{ cluster: string; server: string; kube: KubeClient }> = [];
  if (cfg.mode === 'dev' && Object.keys(cfg.clusters).length === 0) {
    clusters['*'] = { apiServer: 'https://127.0.0.1:6443' };
  }
  for (const [name, c] of Object.entries(cfg.clusters)) {
    let access: ClusterAccess | undefined;
    if (c.kube?.inCluster) access = inClusterAccess();
    else if (c.kube?.kubeconfig) access = kubeconfigAccess(c.kube.kubeconfig, c.kube.context, { logger: log.child({ cluster: name }) });
    if (cfg.mode === 'secret' && !access) throw configError('CONFIG_INVALID', `release.clusters.${name}.kube: secret mode needs inCluster or a kubeconfig`);
    const caPem = c.caFile ? await readFile(c.caFile, 'utf8') : access?.caPem;
    // The approver watches CSRs with the same access (any mode); '*' names no cluster to approve for.
    if (access && name !== '*') approverKube.push({ cluster: name, server: access.server, kube: kubeFor(access) });
    clusters[name] = {
      apiServer: c.apiServer,
      ...(caPem ? { caPem } : {}),
      ...(cfg.mode === 'secret' && access ? { kube: kubeFor(access) } : {}),
    };
  }
  if (Object.keys(clusters).length === 0) throw configError('CONFIG_INVALID', 'release.clusters: configure at least one cluster');

  const write = cfg.audit.file
    ? async (r: unknown) => appendFile(cfg.audit.file!, JSON.stringify(r) + '\n', { mode: 0o600 })
    : async (r: unknown) => log.info({ audit: r }, 'audit');
  const audit = new HashChainAudit({ store, clock, write });
  const rawKeys = await keyServiceFrom(cfg.kms, cfg.mode, log, o.tracer);
  const keys = rawKeys && countFailures(traceCalls(rawKeys, o.tracer, 'kms', KMS_OPS, { 'attest_broker.kms.kind': rawKeys.kind }), 'kms', KMS_OPS, o.metrics);
  const nodes = new NodeRecords(store, clock, cfg.approver.renewalWindowDays);
  const service = new BrokerReleaseService({
    nodes,
    store,
    clock,
    logger: log,
    audit,
    clusters,
    ...(keys ? { keys } : {}),
    ...(cfg.issuanceWindowSeconds ? { issuanceWindowSeconds: cfg.issuanceWindowSeconds } : {}),
    nitroRecipient: cfg.nitroRecipient,
    tpmSeal: cfg.tpmSeal,
    ...(o.metrics ? { metrics: o.metrics } : {}),
  });
  const names = Object.keys(clusters);
  const sweep = async (): Promise<void> => {
    for (const n of names) {
      if (!clusters[n]!.kube) continue;
      try {
        const r = await service.issuer(n).sweep();
        if (r.deleted.length) log.info({ cluster: n, deleted: r.deleted.length, kept: r.kept }, 'swept bootstrap tokens');
      } catch (e) {
        log.warn({ cluster: n, code: (e as { code?: string }).code ?? 'UNKNOWN' }, 'token sweep failed; will retry');
      }
    }
  };
  const timer = cfg.sweep && names.some((n) => clusters[n]!.kube) ? setInterval(() => void sweep(), cfg.sweepIntervalSeconds * 1000) : undefined;
  timer?.unref();
  const tokenReview = await tokenReviewFrom(cfg, service, store, clock, log, audit);
  return {
    release: service,
    service,
    audit,
    ...(tokenReview ? { tokenReview } : {}),
    ...(tokenReview && cfg.tokenReview.listen ? { tokenReviewListen: cfg.tokenReview.listen } : {}),
    nodes,
    approverEnabled: cfg.approver.enabled,
    startApprover: (policy) => startApprover(cfg.approver, approverKube, service, nodes, audit, clock, logger, policy),
    sweep,
    async close() {
      if (timer) clearInterval(timer);
    },
  };
}

export interface ApproverHandle {
  /** Per cluster: is this replica acting (leading, or leader election off)? */
  leading(): Record<string, boolean>;
  stop(): Promise<void>;
}

/** Why a renewal or serving CSR of `r` is refused now, by the policy in force (null: still admitted). */
export async function stillAdmittedBy(policy: PolicyEngine | undefined, r: NodeRecord): Promise<string | null> {
  if (!policy) return 'no join policy is loaded, so no node is admitted';
  const d = await policy.evaluate(r.claims, r.cluster);
  if (!d.allow) {
    const failed = d.rules.filter((x) => x.outcome === 'fail').map((x) => x.code ?? x.rule);
    return `the join policy in force no longer admits this node (${failed.join(', ') || d.denyCode || 'denied'}); re-attest it`;
  }
  if (d.nodeName !== r.nodeName) return `the join policy in force names this node ${d.nodeName}, not ${r.nodeName}`;
  return null;
}

function startApprover(
  a: ReleaseConfig['approver'],
  targets: Array<{ cluster: string; server: string; kube: KubeClient }>,
  service: BrokerReleaseService,
  nodes: NodeRecords,
  audit: AuditSink,
  clock: Clock,
  logger: Logger,
  policy: PolicyEngine | undefined,
): ApproverHandle | undefined {
  if (targets.length === 0) return undefined;
  // One approver per API server: two cluster names reaching the same server would each see the
  // other's tokens (and deny them as another cluster's).
  const seen = new Map<string, string>();
  for (const t of targets) {
    const key = t.server.replace(/\/+$/, '').toLowerCase();
    const other = seen.get(key);
    if (other) throw configError('CONFIG_INVALID', `release.clusters.${other} and .${t.cluster} reach the same API server (${t.server}); the approver needs one cluster entry per API server`);
    seen.set(key, t.cluster);
  }
  const stop = new AbortController();
  const identity = a.identity ?? `${hostname()}_${toHex(crypto.getRandomValues(new Uint8Array(4)))}`;
  const leading: Record<string, boolean> = {};
  const runs: Promise<void>[] = [];
  for (const { cluster, kube } of targets) {
    const log = logger.child({ component: 'approver', cluster });
    const approver = new CsrApprover({
      cluster,
      kube,
      issuer: service.issuer(cluster),
      nodes,
      clock,
      logger: log,
      audit,
      keyTypes: a.keyTypes,
      foreignBootstrapTokens: a.foreignBootstrapTokens,
      serving: a.serving[cluster] ?? {},
      stillAdmitted: (r) => stillAdmittedBy(policy, r),
      retireTokenAfterSeconds: a.retireTokenAfterSeconds,
    });
    const le = a.leaderElection;
    if (!le.enabled) {
      leading[cluster] = true;
      runs.push(approver.run(stop.signal));
      continue;
    }
    leading[cluster] = false;
    const elector = new LeaderElector({ kube, namespace: le.namespace, name: le.name, identity, leaseDurationSeconds: le.leaseDurationSeconds, renewDeadlineSeconds: le.renewDeadlineSeconds, retryPeriodSeconds: le.retryPeriodSeconds, clock, logger: log });
    runs.push(
      elector.run(stop.signal, async (s) => {
        leading[cluster] = true;
        try {
          await approver.run(s);
        } finally {
          leading[cluster] = false;
        }
      }),
    );
  }
  logger.info({ clusters: targets.map((t) => t.cluster), identity, leaderElection: a.leaderElection.enabled }, 'CSR approver started');
  return {
    leading: () => ({ ...leading }),
    async stop() {
      stop.abort();
      await Promise.allSettled(runs);
    },
  };
}

async function tokenReviewFrom(
  cfg: ReleaseConfig,
  service: BrokerReleaseService,
  store: StateStore,
  clock: Clock,
  logger: Logger,
  audit: AuditSink,
): Promise<TokenReviewHandler | undefined> {
  const tr = cfg.tokenReview;
  const names = Object.keys(tr.callers);
  if (cfg.mode === 'secret') return undefined;
  if (names.length === 0) {
    if (cfg.mode === 'webhook') {
      throw configError(
        'CONFIG_INVALID',
        'release.tokenReview.callers: webhook mode needs at least one API server credential per cluster (bearerTokenFile or clientCertificateCommonNames); an unauthenticated webhook is never served',
      );
    }
    return undefined; // dev without callers: no webhook at all
  }
  const callers: TokenReviewCaller[] = [];
  for (const [cluster, c] of Object.entries(tr.callers)) {
    if (!cfg.clusters[cluster] && !cfg.clusters['*'] && !(cfg.mode === 'dev' && Object.keys(cfg.clusters).length === 0)) {
      throw configError('CONFIG_INVALID', `release.tokenReview.callers.${cluster}: no such cluster under release.clusters`);
    }
    if (c.clientCertificateCommonNames?.length && !tr.listen?.tls?.clientCaFile) {
      throw configError('CONFIG_INVALID', `release.tokenReview.callers.${cluster}: client certificates need release.tokenReview.listen.tls.clientCaFile`);
    }
    const digests = (c.bearerTokenSha256 ?? []).map((h) => fromHex(h));
    if (c.bearerTokenFile) {
      const token = (await readFile(c.bearerTokenFile, 'utf8')).trim();
      if (token.length < 32) throw configError('CONFIG_INVALID', `release.tokenReview.callers.${cluster}.bearerTokenFile: use at least 32 random characters`);
      digests.push(await sha256(utf8(token)));
    }
    callers.push({ cluster, bearerSha256: digests, ...(c.clientCertificateCommonNames ? { clientCertSubjects: c.clientCertificateCommonNames } : {}) });
  }
  return tokenReviewHandler({
    state: (id) => service.issuer(callers[0]!.cluster).state(id),
    store,
    clock,
    logger,
    audit,
    callers,
    audiences: tr.audiences,
    maxReviews: tr.maxReviewsPerToken,
  });
}

/** Adapter for `RUNTIME_HOOKS.buildRelease(cfg, store, logger)`. */
export async function buildRelease(cfg: { release: unknown }, store: StateStore, logger: Logger): Promise<ReleaseService> {
  return (await buildReleaseRuntime(cfg.release, store, logger)).release;
}

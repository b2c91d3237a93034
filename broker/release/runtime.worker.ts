/**
 * @module broker/release/runtime.worker
 *
 * Release on Cloudflare Workers, from the Worker's bindings (Web APIs only): the same
 * `BrokerReleaseService` as on Node in webhook mode — bootstrap tokens live only as SHA-256
 * digests in the Durable Object store and the broker answers the cluster's TokenReview webhook
 * itself (`POST /v1/tokenreview`); no Kubernetes Secret is written — with disk keys through a
 * KMS REST API and the hash-chained audit written as JSON log lines.
 *
 * Bindings (vars; secrets marked *):
 * - `RELEASE_CLUSTER` — the cluster name the policy decides for (`defaultCluster` / `clusters.<name>`);
 *   release is off when `RELEASE_API_SERVER` is unset (attest then answers RELEASE_UNAVAILABLE);
 * - `RELEASE_API_SERVER` — https URL of the API server as nodes reach it (into the kubeconfig);
 * - `RELEASE_CA_PEM` — the cluster CA (PEM; pinned in the kubeconfig and caCertHashes);
 * - `RELEASE_ISSUANCE_WINDOW_SECONDS` — one token per instance per window (default: the token
 *   TTL, which the policy's `release.tokenTtlSeconds` sets per cluster);
 * - `RELEASE_TPM_SEAL` — `off` (default), `when-available` or `require`: as `release.tpmSeal` on
 *   Node, the release is also sealed with TPM2_MakeCredential to the node's EK and AK Name
 *   (./tpmseal.ts) when the evidence carries both (a `tpm` node trusted through its EK
 *   certificate); `require` refuses a `tpm` node without them (TPM_SEAL_UNAVAILABLE);
 * - `TOKENREVIEW_BEARER_TOKEN`* (≥ 32 characters) and/or `TOKENREVIEW_BEARER_SHA256` (comma-
 *   separated hex digests) — the credential the API server's webhook kubeconfig presents
 *   (required: an unauthenticated webhook is never served); `TOKENREVIEW_AUDIENCES`,
 *   `TOKENREVIEW_MAX_REVIEWS`;
 * - `KMS_KIND` — `none` (default: `want: disk-key` is refused), `local`, `aws-kms`, `gcp-kms`,
 *   `azure-keyvault`:
 *   - local: `KMS_LOCAL_KEK`* (base64 of 32 bytes);
 *   - aws-kms (./aws-kms-rest.ts, SigV4): `AWS_KMS_KEY_ID`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`,
 *     `AWS_SECRET_ACCESS_KEY`*, `AWS_SESSION_TOKEN`*, `AWS_KMS_ENDPOINT`;
 *   - gcp-kms (providers/gcp/kms.ts REST + service-account JWT grant): `GCP_KMS_KEY_NAME`,
 *     `GCP_SERVICE_ACCOUNT_JSON`* (`client_email`, `private_key`, `token_uri`), `GCP_KMS_ENDPOINT`;
 *   - azure-keyvault (providers/azure/keyvault.ts REST + client-credentials grant):
 *     `AZURE_KEYVAULT_URL`, `AZURE_KEY_NAME`, `AZURE_KEY_VERSION`, `AZURE_TENANT_ID`,
 *     `AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET`*, `AZURE_AUTHORITY_HOST`.
 *
 * Not on Workers: secret mode (writing bootstrap-token Secrets) and the CSR approver (so a token
 * is not retired when its certificate is issued; it authenticates at most TOKENREVIEW_MAX_REVIEWS
 * times until it expires).
 */
import type { AuditSink, Logger, ReleaseService, StateStore } from '../contracts.js';
import { systemClock } from '../contracts.js';
import type { TokenReviewHandler } from '../app.js';
import { ConfigProblem } from '../config/schema.js';
import type { KeyServiceLike } from '../../providers/common/keyservice.js';
import { LocalKeyService } from '../../providers/local/kms.js';
import { AwsKmsKeyService } from '../../providers/aws/kms.js';
import { GcpKmsKeyService, cloudKmsRest, serviceAccountTokenSource } from '../../providers/gcp/kms.js';
import { AzureKeyVaultKeyService, clientSecretTokenSource } from '../../providers/azure/keyvault.js';
import { sha256 } from '../../providers/common/digest.js';
import { fromBase64Any, fromHex, utf8 } from '../../providers/common/encoding.js';
import { HashChainAudit } from './audit.js';
import { BrokerReleaseService } from './service.js';
import { tokenReviewHandler } from './tokenreview.js';
import { awsKmsRest } from './aws-kms-rest.js';
import { traceCalls, type Tracer } from '../observability/tracing.js';
import { KMS_OPS } from '../observability/instrument.js';

export interface WorkerReleaseEnv {
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
}

export interface WorkerRelease {
  release: ReleaseService;
  audit: AuditSink;
  tokenReview: TokenReviewHandler;
}

const CLUSTER_RE = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const TPM_SEAL = ['off', 'when-available', 'require'] as const;
type TpmSeal = (typeof TPM_SEAL)[number];

function need(env: WorkerReleaseEnv, names: readonly (keyof WorkerReleaseEnv)[], why: string, problems: string[]): boolean {
  const missing = names.filter((n) => !env[n]?.trim());
  if (missing.length) problems.push(`${why}: set ${missing.join(', ')}`);
  return missing.length === 0;
}

async function keyService(env: WorkerReleaseEnv, problems: string[]): Promise<KeyServiceLike | undefined> {
  const kind = (env.KMS_KIND ?? 'none').trim();
  const now = () => systemClock.now();
  switch (kind) {
    case 'none':
    case '':
      return undefined;
    case 'local': {
      if (!need(env, ['KMS_LOCAL_KEK'], 'KMS_KIND=local', problems)) return undefined;
      const kek = fromBase64Any(env.KMS_LOCAL_KEK!.trim(), 'KMS_LOCAL_KEK');
      if (kek.length !== 32) {
        problems.push('KMS_LOCAL_KEK: must be base64 of 32 random bytes');
        return undefined;
      }
      return LocalKeyService.create({ kek });
    }
    case 'aws-kms': {
      if (!need(env, ['AWS_KMS_KEY_ID', 'AWS_REGION', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY'], 'KMS_KIND=aws-kms', problems)) return undefined;
      const client = awsKmsRest({
        region: env.AWS_REGION!.trim(),
        credentials: {
          accessKeyId: env.AWS_ACCESS_KEY_ID!.trim(),
          secretAccessKey: env.AWS_SECRET_ACCESS_KEY!.trim(),
          ...(env.AWS_SESSION_TOKEN ? { sessionToken: env.AWS_SESSION_TOKEN.trim() } : {}),
        },
        ...(env.AWS_KMS_ENDPOINT ? { endpoint: env.AWS_KMS_ENDPOINT.trim() } : {}),
        now,
      });
      return new AwsKmsKeyService({ keyId: env.AWS_KMS_KEY_ID!.trim(), client });
    }
    case 'gcp-kms': {
      if (!need(env, ['GCP_KMS_KEY_NAME', 'GCP_SERVICE_ACCOUNT_JSON'], 'KMS_KIND=gcp-kms', problems)) return undefined;
      let sa: { client_email?: unknown; private_key?: unknown; token_uri?: unknown };
      try {
        sa = JSON.parse(env.GCP_SERVICE_ACCOUNT_JSON!) as typeof sa;
      } catch {
        problems.push('GCP_SERVICE_ACCOUNT_JSON: not JSON (give the service-account key file)');
        return undefined;
      }
      if (typeof sa.client_email !== 'string' || typeof sa.private_key !== 'string') {
        problems.push('GCP_SERVICE_ACCOUNT_JSON: needs client_email and private_key');
        return undefined;
      }
      const accessToken = serviceAccountTokenSource({
        clientEmail: sa.client_email,
        privateKeyPem: sa.private_key,
        ...(typeof sa.token_uri === 'string' ? { tokenUri: sa.token_uri } : {}),
        now,
      });
      return new GcpKmsKeyService({
        keyName: env.GCP_KMS_KEY_NAME!.trim(),
        transport: cloudKmsRest({ accessToken, ...(env.GCP_KMS_ENDPOINT ? { endpoint: env.GCP_KMS_ENDPOINT.trim() } : {}) }),
      });
    }
    case 'azure-keyvault': {
      const names = ['AZURE_KEYVAULT_URL', 'AZURE_KEY_NAME', 'AZURE_KEY_VERSION', 'AZURE_TENANT_ID', 'AZURE_CLIENT_ID', 'AZURE_CLIENT_SECRET'] as const;
      if (!need(env, names, 'KMS_KIND=azure-keyvault', problems)) return undefined;
      const credential = clientSecretTokenSource({
        tenantId: env.AZURE_TENANT_ID!.trim(),
        clientId: env.AZURE_CLIENT_ID!.trim(),
        clientSecret: env.AZURE_CLIENT_SECRET!.trim(),
        ...(env.AZURE_AUTHORITY_HOST ? { authorityHost: env.AZURE_AUTHORITY_HOST.trim() } : {}),
        now,
      });
      return new AzureKeyVaultKeyService({
        vaultUrl: env.AZURE_KEYVAULT_URL!.trim(),
        keyName: env.AZURE_KEY_NAME!.trim(),
        keyVersion: env.AZURE_KEY_VERSION!.trim(),
        credential,
      });
    }
    default:
      problems.push(`KMS_KIND: ${kind} is not one of none, local, aws-kms, gcp-kms, azure-keyvault`);
      return undefined;
  }
}

/**
 * Release from the bindings, or undefined when `RELEASE_API_SERVER` is unset. Throws
 * ConfigProblem (every problem at once) when release is configured but incompletely. With a
 * tracer, each KMS call made by a request is a CLIENT span (as on Node).
 */
export async function buildWorkerRelease(env: WorkerReleaseEnv, store: StateStore, logger: Logger, o: { tracer?: Tracer } = {}): Promise<WorkerRelease | undefined> {
  if (!env.RELEASE_API_SERVER?.trim()) return undefined;
  const problems: string[] = [];
  const cluster = (env.RELEASE_CLUSTER ?? '').trim();
  if (!CLUSTER_RE.test(cluster)) problems.push('RELEASE_CLUSTER: set the cluster name the policy decides for (DNS-1123 label)');
  let apiServer = '';
  try {
    const u = new URL(env.RELEASE_API_SERVER.trim());
    if (u.protocol !== 'https:') throw new Error('not https');
    apiServer = u.toString().replace(/\/$/, '');
  } catch {
    problems.push('RELEASE_API_SERVER: must be the https URL of the API server as nodes reach it');
  }
  const caPem = env.RELEASE_CA_PEM?.trim() ? env.RELEASE_CA_PEM : undefined;
  const windowS = env.RELEASE_ISSUANCE_WINDOW_SECONDS ? Number(env.RELEASE_ISSUANCE_WINDOW_SECONDS) : undefined;
  if (windowS !== undefined && (!Number.isInteger(windowS) || windowS < 10 || windowS > 86_400)) problems.push('RELEASE_ISSUANCE_WINDOW_SECONDS: 10..86400');
  const tpmSeal = (env.RELEASE_TPM_SEAL ?? '').trim() || 'off';
  if (!(TPM_SEAL as readonly string[]).includes(tpmSeal)) problems.push(`RELEASE_TPM_SEAL: one of ${TPM_SEAL.join(', ')}`);

  const digests: Uint8Array[] = [];
  for (const h of (env.TOKENREVIEW_BEARER_SHA256 ?? '').split(',').map((s) => s.trim()).filter(Boolean)) {
    if (!/^[0-9a-f]{64}$/.test(h)) problems.push('TOKENREVIEW_BEARER_SHA256: comma-separated lower-case hex SHA-256 digests');
    else digests.push(fromHex(h));
  }
  const bearer = env.TOKENREVIEW_BEARER_TOKEN?.trim();
  if (bearer !== undefined && bearer !== '') {
    if (bearer.length < 32) problems.push('TOKENREVIEW_BEARER_TOKEN: use at least 32 random characters');
    else digests.push(await sha256(utf8(bearer)));
  }
  if (digests.length === 0) {
    problems.push('TOKENREVIEW_BEARER_TOKEN or TOKENREVIEW_BEARER_SHA256: webhook mode needs the API server credential; an unauthenticated webhook is never served');
  }
  const maxReviews = env.TOKENREVIEW_MAX_REVIEWS ? Number(env.TOKENREVIEW_MAX_REVIEWS) : 16;
  if (!Number.isInteger(maxReviews) || maxReviews < 1 || maxReviews > 1000) problems.push('TOKENREVIEW_MAX_REVIEWS: 1..1000');
  const rawKeys = await keyService(env, problems);
  if (problems.length) throw new ConfigProblem(problems);
  const keys = rawKeys && traceCalls(rawKeys, o.tracer, 'kms', KMS_OPS, { 'attest_broker.kms.kind': rawKeys.kind });

  const log = logger.child({ component: 'release' });
  const clock = systemClock;
  const audit = new HashChainAudit({ store, clock, write: async (r) => log.info({ audit: r }, 'audit') });
  const service = new BrokerReleaseService({
    store,
    clock,
    logger: log,
    audit,
    clusters: { [cluster]: { apiServer, ...(caPem ? { caPem } : {}) } },
    ...(keys ? { keys } : {}),
    ...(windowS ? { issuanceWindowSeconds: windowS } : {}),
    tpmSeal: tpmSeal as TpmSeal,
  });
  const tokenReview = tokenReviewHandler({
    state: (id) => service.issuer(cluster).state(id),
    store,
    clock,
    logger: log,
    audit,
    callers: [{ cluster, bearerSha256: digests }],
    audiences: (env.TOKENREVIEW_AUDIENCES ?? '').split(',').map((s) => s.trim()).filter(Boolean),
    maxReviews,
  });
  return { release: service, audit, tokenReview };
}

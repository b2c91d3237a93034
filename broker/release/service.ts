/**
 * @module broker/release/service
 *
 * `ReleaseService`: after verification and policy, release exactly what the Decision allows and
 * nothing more, sealed to the node.
 *
 * Order of a release (each step fails closed, and a failure undoes the steps before it):
 * 1. Preconditions: `decision.allow`; every `want` permitted (`disk-key` needs
 *    `decision.release.diskKey`); an ephemeral key whose thumbprint is bound into the verified
 *    binding (seal.ts), or `decision.release.allowUnsealed`; nodeName is a DNS-1123 subdomain
 *    (it comes from the Decision only, never from the request).
 * 2. Issuance window (bootstrap-token only): `StateStore.setIfAbsent(window key)` — of any number
 *    of concurrent requests for one attested instance, across replicas, one wins; the others get
 *    ISSUANCE_CONFLICT (HTTP 409) until the window closes. We do not hand out the same token
 *    again: that would need the token secret kept in the store (docs/release.md).
 * 3. Disk key (KMS) first, because it is the step most likely to be unavailable and has no side
 *    effect to undo; then the bootstrap token (Kubernetes Secret + per-token state).
 * 4. Seal: compact JWE to the ephemeral key (optionally TPM2_MakeCredential around it), or the
 *    plain object where policy allows.
 * 5. Audit record (hash-chained; no secrets). No record, no release.
 * On any failure after step 2 the Secret and token state are deleted and the window claim is
 * released, so the node may retry at once after an outage (a KMS outage → 503, nothing released).
 */
import type { AuditSink, Clock, Decision, Logger, Metrics, ReleaseObject, ReleaseRequest, ReleaseService, StateStore, Want } from '../contracts.js';
import type { Claims } from '../../providers/common/types.js';
import type { KeyServiceLike } from '../../providers/common/keyservice.js';
import { AttestError, configError, malformed } from '../../providers/common/errors.js';
import { canonicalJson } from '../../providers/common/canonical.js';
import { sha256 } from '../../providers/common/digest.js';
import { fromBase64Url, toBase64Url, toHex, utf8 } from '../../providers/common/encoding.js';
import { TokenIssuer } from './issuer.js';
import { bootstrapKubeconfig, caCertHashes, rfc3339 } from './token.js';
import { checkEphemeralKey, sealRelease, verifyKeyBinding, type SealKey } from './seal.js';
import type { KubeClient } from './kube.js';
import { sealToTpm } from './tpmseal.js';
import type { NodeRecords } from '../approver/nodes.js';

export const ReleaseCodes = {
  RELEASE_NOT_ALLOWED: 'RELEASE_NOT_ALLOWED',
  RELEASE_UNSEALED_FORBIDDEN: 'RELEASE_UNSEALED_FORBIDDEN',
  RELEASE_WANT_INVALID: 'RELEASE_WANT_INVALID',
  DISK_KEY_NOT_ALLOWED: 'DISK_KEY_NOT_ALLOWED',
  DISK_KEY_UNAVAILABLE: 'DISK_KEY_UNAVAILABLE',
  DISK_KEY_IDENTITY_UNPROVEN: 'DISK_KEY_IDENTITY_UNPROVEN',
  DISK_KEY_WRAPPED_INVALID: 'DISK_KEY_WRAPPED_INVALID',
  ISSUANCE_CONFLICT: 'ISSUANCE_CONFLICT',
  NODE_NAME_INVALID: 'NODE_NAME_INVALID',
  RELEASE_CLUSTER_UNKNOWN: 'RELEASE_CLUSTER_UNKNOWN',
  RELEASE_CLUSTER_CA_INVALID: 'RELEASE_CLUSTER_CA_INVALID',
  TOKEN_TTL_INVALID: 'TOKEN_TTL_INVALID',
  TPM_SEAL_UNAVAILABLE: 'TPM_SEAL_UNAVAILABLE',
} as const;

/** Where a cluster's nodes join: what goes into their bootstrap kubeconfig. */
export interface ClusterTarget {
  /** API server URL as nodes reach it. */
  apiServer: string;
  /**
   * Cluster CA certificate(s), PEM: put into the bootstrap kubeconfig and pinned by
   * `caCertHashes`. Absent only for API servers with publicly trusted certificates (or `dev`):
   * the kubelet then verifies the server against its system roots — never skips verification.
   */
  caPem?: string;
  /** Client the broker uses to write bootstrap-token Secrets; absent → webhook mode. */
  kube?: KubeClient;
}

export interface ReleaseOptions {
  store: StateStore;
  clock: Clock;
  logger: Logger;
  audit: AuditSink;
  /** Release targets by cluster name; `'*'` (if present) serves any other cluster name. */
  clusters: Readonly<Record<string, ClusterTarget>>;
  /** KMS for disk keys; absent → `want: disk-key` is refused (DISK_KEY_UNAVAILABLE). */
  keys?: KeyServiceLike;
  /** One issuance per attested instance per this many seconds (default: the token TTL). */
  issuanceWindowSeconds?: number;
  /** Use KMS `Recipient` for NitroTPM evidence with an RSA public_key (default true). */
  nitroRecipient?: boolean;
  /**
   * Seal the release additionally with TPM2_MakeCredential to the node's EK and AK Name
   * (tpmseal.ts) for evidence that carries both: 'off' (default), 'when-available', or 'require'
   * (a `tpm`-provider node without EK public and AK Name is then refused, TPM_SEAL_UNAVAILABLE).
   */
  tpmSeal?: 'off' | 'when-available' | 'require';
  /**
   * Where admitted nodes are remembered for the CSR approver (serving SANs, renewals). Written
   * with every bootstrap token; absent → the approver approves first client certificates only.
   */
  nodes?: NodeRecords;
  /** Failed releases are counted by step and code (attest_broker_release_errors_total). */
  metrics?: Metrics;
}

/** The step a release failed in (label `operation` of attest_broker_release_errors_total). */
type ReleaseStep = 'check' | 'issuance_window' | 'disk_key' | 'bootstrap_token' | 'seal' | 'audit';

const DNS1123_SUBDOMAIN = /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const MAX_WRAPPED_B64 = 8192;
const WANTS: readonly Want[] = ['bootstrap-token', 'disk-key'];

/** A stable, bounded key for "this attested instance" (the window and the audit use it). */
export async function instanceKey(claims: Claims): Promise<string> {
  const id = { provider: claims.provider, cloud: claims.identity.cloud, account: claims.identity.account ?? '', instanceId: claims.identity.instanceId };
  return toHex(await sha256(utf8(canonicalJson(id))));
}

/** The identity a disk key is bound to (KMS encryption context / AAD). */
export function diskKeyContext(claims: Claims, decision: Decision): Record<string, string> {
  const c: Record<string, string> = {
    'attest-broker:purpose': 'disk-key',
    'attest-broker:cluster': decision.cluster,
    'attest-broker:provider': claims.provider,
    'attest-broker:cloud': claims.identity.cloud,
    'attest-broker:instance': claims.identity.instanceId,
  };
  if (claims.identity.account) c['attest-broker:account'] = claims.identity.account;
  return c;
}

/** Value of a window key whose claim was given back by a failed release. */
const RELEASED = 'released';
/**
 * The issuance window of an instance: across all clusters by default (a node that passes a lax
 * cluster's policy must not hold a second live token for a strict one), per cluster only where
 * that cluster's policy says `tokensPerInstance: one-per-cluster`.
 */
export const windowKey = (ik: string, cluster?: string): string => (cluster === undefined ? `release:window:${ik}` : `release:window:${cluster}:${ik}`);

/** Seconds until a window claimed at `claim.at` closes (the full window when unknown). */
function windowLeftSeconds(claim: string | null, windowS: number, now: Date): number {
  let at = NaN;
  try {
    at = Date.parse((JSON.parse(claim ?? 'null') as { at?: string } | null)?.at ?? '');
  } catch {
    // a value this broker did not write: fall back to the whole window
  }
  if (!Number.isFinite(at)) return windowS;
  return Math.max(1, Math.min(windowS, Math.ceil((at + windowS * 1000 - now.getTime()) / 1000)));
}

export class BrokerReleaseService implements ReleaseService {
  readonly #o: ReleaseOptions;
  readonly #issuers = new Map<string, TokenIssuer>();
  readonly #caHashes = new Map<string, Promise<string[]>>();

  constructor(o: ReleaseOptions) {
    this.#o = o;
    for (const [name, t] of Object.entries(o.clusters)) {
      this.#issuers.set(name, new TokenIssuer({ store: o.store, clock: o.clock, logger: o.logger, kube: t.kube }));
    }
  }

  issuer(cluster: string): TokenIssuer {
    const i = this.#issuers.get(cluster) ?? this.#issuers.get('*');
    if (!i) throw configError(ReleaseCodes.RELEASE_CLUSTER_UNKNOWN, `no release target for cluster ${cluster}`);
    return i;
  }

  /** kubeadm-style CA pins of a cluster, computed once; a bad CA is the operator's fault. */
  #caCertHashes(cluster: string, caPem: string): Promise<string[]> {
    let p = this.#caHashes.get(cluster);
    if (!p) {
      p = caCertHashes(caPem).catch((cause: unknown) => {
        this.#caHashes.delete(cluster);
        throw configError(ReleaseCodes.RELEASE_CLUSTER_CA_INVALID, `cluster ${cluster}: the configured CA is not PEM certificates`, { cause });
      });
      this.#caHashes.set(cluster, p);
    }
    return p;
  }

  async ready(): Promise<void> {
    await this.#o.store.ping();
    for (const t of Object.values(this.#o.clusters)) if (t.kube) await t.kube.ready();
  }

  async release(req: ReleaseRequest): Promise<string | ReleaseObject> {
    if (!this.#o.metrics?.dependencyError) return this.#release(req, { step: 'check' });
    const at: { step: ReleaseStep } = { step: 'check' };
    try {
      return await this.#release(req, at);
    } catch (e) {
      this.#o.metrics.dependencyError('release', at.step, e instanceof AttestError ? e.code : 'INTERNAL');
      throw e;
    }
  }

  async #release(req: ReleaseRequest, at: { step: ReleaseStep }): Promise<string | ReleaseObject> {
    const { claims, decision } = req;
    const log = this.#o.logger.child({ requestId: req.requestId, ...req.trace, instanceId: claims.identity.instanceId, cluster: decision.cluster });

    // ── 1. preconditions ──
    if (!decision.allow) throw new AttestError(ReleaseCodes.RELEASE_NOT_ALLOWED, 'policy did not allow this node');
    const want = new Set<Want>();
    for (const w of req.want) {
      if (!WANTS.includes(w)) throw malformed(ReleaseCodes.RELEASE_WANT_INVALID, 'unknown want');
      want.add(w);
    }
    if (want.size === 0) throw malformed(ReleaseCodes.RELEASE_WANT_INVALID, 'want is empty');
    if (want.has('disk-key')) {
      if (!decision.release.diskKey) throw new AttestError(ReleaseCodes.DISK_KEY_NOT_ALLOWED, 'policy does not release a disk key to this node');
      if (!this.#o.keys) throw configError(ReleaseCodes.DISK_KEY_UNAVAILABLE, 'no KMS configured for disk keys');
      if (!claims.identity.proven.includes('instanceId')) {
        throw new AttestError(ReleaseCodes.DISK_KEY_IDENTITY_UNPROVEN, 'a disk key needs an instance id proven by signed evidence');
      }
    }
    if (req.diskKey && !want.has('disk-key')) throw malformed(ReleaseCodes.RELEASE_WANT_INVALID, 'diskKey sent without want disk-key');
    let seal: SealKey | undefined;
    if (req.ephemeralKey !== undefined) {
      seal = await checkEphemeralKey(req.ephemeralKey);
      await verifyKeyBinding(seal, req.nonce, req.binding);
    }
    const tpmSeal = this.#o.tpmSeal ?? 'off';
    const ekPublic = claims.release?.ekPublic;
    const akName = claims.release?.akName ?? claims.tpm?.akName;
    const sealTpm = tpmSeal !== 'off' && ekPublic !== undefined && akName !== undefined;
    if (tpmSeal === 'require' && claims.provider === 'tpm' && !sealTpm) {
      throw new AttestError(ReleaseCodes.TPM_SEAL_UNAVAILABLE, 'release must be sealed to the TPM but the evidence has no EK public or AK name');
    }
    // Sealed to the ephemeral key, or to the TPM, or policy explicitly allows plain release.
    if (!seal && !sealTpm && !decision.release.allowUnsealed) {
      throw new AttestError(ReleaseCodes.RELEASE_UNSEALED_FORBIDDEN, 'an ephemeral key is required: policy forbids unsealed release');
    }
    if (!DNS1123_SUBDOMAIN.test(decision.nodeName)) throw configError(ReleaseCodes.NODE_NAME_INVALID, 'policy derived an invalid node name');
    const ttl = decision.release.tokenTtlSeconds || 600;
    if (!Number.isInteger(ttl) || ttl < 60 || ttl > 86_400) throw configError(ReleaseCodes.TOKEN_TTL_INVALID, 'token TTL must be 60..86400 s');
    const target = this.#o.clusters[decision.cluster] ?? this.#o.clusters['*'];
    if (!target) throw configError(ReleaseCodes.RELEASE_CLUSTER_UNKNOWN, `no release target for cluster ${decision.cluster}`);
    let wrappedIn: Uint8Array | undefined;
    if (req.diskKey) {
      if (typeof req.diskKey.wrapped !== 'string' || req.diskKey.wrapped.length === 0 || req.diskKey.wrapped.length > MAX_WRAPPED_B64) {
        throw malformed(ReleaseCodes.DISK_KEY_WRAPPED_INVALID, 'diskKey.wrapped must be base64url, at most 8 KiB');
      }
      wrappedIn = fromBase64Url(req.diskKey.wrapped, 'diskKey.wrapped');
    }

    const ik = await instanceKey(claims);
    const now = this.#o.clock.now();
    const undo: Array<() => Promise<void>> = [];
    try {
      // ── 2. one issuance per instance per window ──
      if (want.has('bootstrap-token')) {
        at.step = 'issuance_window';
        const windowS = this.#o.issuanceWindowSeconds ?? ttl;
        const wk = windowKey(ik, decision.release.tokensPerInstance === 'one-per-cluster' ? decision.cluster : undefined);
        // Unique per attempt, so giving a claim back can only ever give back our own.
        const claim = JSON.stringify({ requestId: req.requestId, at: now.toISOString(), n: toBase64Url(crypto.getRandomValues(new Uint8Array(12))) });
        // A window released by a failed attempt holds RELEASED: taking it over is a CAS, so the
        // claim stays atomic (no delete that could race with another replica's claim).
        const won =
          (await this.#o.store.setIfAbsent(wk, claim, windowS * 1000)) || (await this.#o.store.compareAndSet(wk, RELEASED, claim, windowS * 1000));
        if (!won) {
          // Say when the window actually closes (not its full length): a node whose deadline ends
          // sooner fails fast instead of waiting for a retry it can never reach.
          const left = windowLeftSeconds(await this.#o.store.get(wk), windowS, now);
          throw new AttestError(ReleaseCodes.ISSUANCE_CONFLICT, `a bootstrap token was already issued to this instance; a new one can be issued in ${left} s`, {
            retryAfter: left,
          });
        }
        // On failure, release our own claim only (compare-and-set, never a blind delete).
        undo.push(async () => {
          await this.#o.store.compareAndSet(wk, claim, RELEASED, windowS * 1000);
        });
      }

      const out: ReleaseObject = { nodeName: decision.nodeName, expiresAt: rfc3339(new Date(now.getTime() + ttl * 1000)) };
      if (req.nonce !== undefined) out.nonce = req.nonce;
      let diskKeyOp: 'generated' | 'unwrapped' | 'recipient-generated' | 'recipient-unwrapped' | undefined;

      // ── 3a. disk key ──
      if (want.has('disk-key')) {
        at.step = 'disk_key';
        const keys = this.#o.keys!;
        const ctx = diskKeyContext(claims, decision);
        const doc = claims.release?.nitroDocument;
        const useRecipient = (this.#o.nitroRecipient ?? true) && doc !== undefined && claims.release?.platformKeySpki !== undefined;
        if (useRecipient && keys.generateForRecipient && keys.unwrapForRecipient) {
          const att = fromBase64Url(doc, 'nitroDocument');
          if (wrappedIn) {
            const cfr = await keys.unwrapForRecipient(wrappedIn, ctx, att);
            out.diskKeyForRecipient = { ciphertextForRecipient: toBase64Url(cfr), wrapped: req.diskKey!.wrapped };
            diskKeyOp = 'recipient-unwrapped';
          } else {
            const r = await keys.generateForRecipient(ctx, att);
            out.diskKeyForRecipient = { ciphertextForRecipient: toBase64Url(r.ciphertextForRecipient), wrapped: toBase64Url(r.wrapped) };
            diskKeyOp = 'recipient-generated';
          }
        } else if (wrappedIn) {
          const key = await keys.unwrap(wrappedIn, ctx);
          out.diskKey = { key: toBase64Url(key), wrapped: req.diskKey!.wrapped };
          key.fill(0);
          diskKeyOp = 'unwrapped';
        } else {
          const key = crypto.getRandomValues(new Uint8Array(32));
          const wrapped = await keys.wrap(key, ctx);
          out.diskKey = { key: toBase64Url(key), wrapped: toBase64Url(wrapped) };
          key.fill(0);
          diskKeyOp = 'generated';
        }
      }

      // ── 3b. bootstrap token ──
      let tokenId: string | undefined;
      if (want.has('bootstrap-token')) {
        at.step = 'bootstrap_token';
        const issued = await this.issuer(decision.cluster).issue({
          ttlSeconds: ttl,
          extraGroups: decision.release.extraGroups,
          description: `attest-broker: ${claims.provider} instance ${claims.identity.instanceId} as node ${decision.nodeName} (request ${req.requestId})`,
          state: {
            instanceKey: ik,
            instanceId: claims.identity.instanceId,
            provider: claims.provider,
            cloud: claims.identity.cloud,
            ...(claims.identity.account ? { account: claims.identity.account } : {}),
            nodeName: decision.nodeName,
            cluster: decision.cluster,
            requestId: req.requestId,
          },
        });
        undo.push(issued.rollback);
        tokenId = issued.token.id;
        out.expiresAt = rfc3339(issued.expiresAt);
        out.bootstrapToken = issued.token.value;
        out.apiServer = target.apiServer;
        out.caCertHashes = target.caPem ? await this.#caCertHashes(decision.cluster, target.caPem) : [];
        out.kubeconfig = bootstrapKubeconfig({ server: target.apiServer, caPem: target.caPem, token: issued.token.value, clusterName: decision.cluster });
        // What the approver needs later (serving-certificate SANs, renewals); a re-attestation
        // refreshes it. Not undone on failure: the node did attest and pass policy.
        await this.#o.nodes?.put({
          cluster: decision.cluster,
          nodeName: decision.nodeName,
          instanceKey: ik,
          provider: claims.provider,
          cloud: claims.identity.cloud,
          ...(claims.identity.account ? { account: claims.identity.account } : {}),
          instanceId: claims.identity.instanceId,
          requestId: req.requestId,
          policyHash: decision.policyHash,
          claims,
        });
      }

      // ── 4. seal (before the audit record, so a record always means a release went out) ──
      at.step = 'seal';
      let result: string | ReleaseObject = seal ? await sealRelease(out, seal, req.sealEnc) : out;
      if (sealTpm) result = await sealToTpm(typeof result === 'string' ? result : JSON.stringify(result), typeof result === 'string', ekPublic!, akName!);

      // ── 5. audit ──
      at.step = 'audit';
      await this.#o.audit.record({
        type: 'release',
        requestId: req.requestId,
        cluster: decision.cluster,
        provider: claims.provider,
        instanceId: claims.identity.instanceId,
        instanceKey: ik,
        nodeName: decision.nodeName,
        evidenceSha256: claims.evidenceSha256,
        policyHash: decision.policyHash,
        policyVersion: decision.policyVersion,
        image: decision.image,
        tokenId,
        tokenExpiresAt: tokenId ? out.expiresAt : undefined,
        diskKeyOp,
        sealed: seal ? seal.alg : 'none',
        sealedTo: seal?.thumbprint,
        tpmSealed: sealTpm || undefined,
      });

      log.info({ tokenId, nodeName: decision.nodeName, diskKeyOp, sealed: seal ? seal.alg : 'none' }, 'released');
      return result;
    } catch (e) {
      for (const u of undo.reverse()) await u().catch(() => undefined);
      log.warn({ code: e instanceof AttestError ? e.code : 'INTERNAL' }, 'release failed; nothing released');
      throw e;
    }
  }
}

/**
 * @module broker/release/issuer
 *
 * The life of a bootstrap token: issue (Secret in kube-system, or store-only in webhook mode),
 * per-token state for the CSR approver, consume-once, and the sweep that deletes used and
 * expired tokens.
 *
 * Per-token state (store key `release:token:<id>`, TTL = token TTL + grace) is what the future
 * CSR approver reads (roadmap.md: approve `system:node:<name>` only for the name bound to the
 * attested instance that received the token):
 * `{tokenId, secretSha256, instanceKey, instanceId, provider, cloud, account?, nodeName, cluster,
 *   groups, issuedAt, expiresAt, requestId, mode, used?}`.
 * Only the SHA-256 of the token secret is stored (for the TokenReview webhook); 16 characters of
 * [a-z0-9] are ≈ 82.7 bits, far beyond brute force of a single SHA-256, and the plaintext never
 * touches the store: a store dump yields no usable token.
 *
 * Kubernetes' own token cleaner (kube-controller-manager `tokencleaner`) also deletes expired
 * bootstrap Secrets when enabled; the sweep here does not depend on it.
 */
import type { Clock, Logger, StateStore } from '../contracts.js';
import { sha256 } from '../../providers/common/digest.js';
import { fromBase64, toHex, utf8 } from './util.js';
import { timingSafeEqualString } from '../../providers/common/ct.js';
import { AttestError, unavailable } from '../../providers/common/errors.js';
import { KubeClient } from './kube.js';
import {
  DEFAULT_GROUP,
  SECRET_TYPE,
  TOKEN_NAMESPACE,
  TOKEN_ID_RE,
  authGroups,
  bootstrapSecret,
  generateToken,
  rfc3339,
  secretName,
  type BootstrapToken,
  type KubeSecret,
} from './token.js';

export const IssuerCodes = {
  TOKEN_ID_EXHAUSTED: 'TOKEN_ID_EXHAUSTED',
} as const;

export interface TokenState {
  tokenId: string;
  secretSha256: string;
  instanceKey: string;
  instanceId: string;
  provider: string;
  cloud: string;
  account?: string;
  nodeName: string;
  cluster: string;
  groups: string[];
  issuedAt: string;
  expiresAt: string;
  requestId: string;
  mode: 'secret' | 'webhook';
  /**
   * The kubelet client CSR this token was spent on (set atomically by the CSR approver before it
   * approves, so no second CSR can be approved with the same token). The token still
   * authenticates until `used`: the kubelet fetches its signed certificate with it.
   */
  csr?: { name: string; at: string };
  /** When the token was retired (Secret deleted / TokenReview refuses it from then on). */
  used?: string;
}

export const tokenStateKey = (id: string): string => `release:token:${id}`;
/** Token state outlives the token a little, so the sweep and the approver still see it. */
export const STATE_GRACE_MS = 10 * 60_000;

export async function secretDigest(secret: string): Promise<string> {
  return toHex(await sha256(utf8(secret)));
}

export interface IssueInput {
  ttlSeconds: number;
  extraGroups: readonly string[];
  description: string;
  state: Omit<TokenState, 'tokenId' | 'secretSha256' | 'groups' | 'issuedAt' | 'expiresAt' | 'mode'>;
}

export interface Issued {
  token: BootstrapToken;
  expiresAt: Date;
  /** Undo everything `issue` did (used when a later release step fails). */
  rollback(): Promise<void>;
}

export interface IssuerOptions {
  store: StateStore;
  clock: Clock;
  logger: Logger;
  /** Absent in webhook mode: tokens then live only in the store and TokenReview checks them. */
  kube?: KubeClient;
  /** Token generator (tests inject collisions); default: CSPRNG. */
  generate?: () => BootstrapToken;
}

export class TokenIssuer {
  readonly #o: IssuerOptions;
  constructor(o: IssuerOptions) {
    this.#o = o;
  }

  get mode(): 'secret' | 'webhook' {
    return this.#o.kube ? 'secret' : 'webhook';
  }

  async issue(input: IssueInput): Promise<Issued> {
    const now = this.#o.clock.now();
    const expiresAt = new Date(Math.floor(now.getTime() / 1000) * 1000 + input.ttlSeconds * 1000);
    const groups = authGroups(input.extraGroups);
    const gen = this.#o.generate ?? generateToken;
    for (let attempt = 0; attempt < 4; attempt++) {
      const token = gen();
      const state: TokenState = {
        ...input.state,
        tokenId: token.id,
        secretSha256: await secretDigest(token.secret),
        groups,
        issuedAt: now.toISOString(),
        expiresAt: expiresAt.toISOString(),
        mode: this.mode,
      };
      const ttlMs = input.ttlSeconds * 1000 + STATE_GRACE_MS;
      // The token id is the key: a colliding id (36^6 ids) is detected here, before Kubernetes.
      if (!(await this.#o.store.setIfAbsent(tokenStateKey(token.id), JSON.stringify(state), ttlMs))) continue;
      const dropState = (): Promise<void> => this.#o.store.delete(tokenStateKey(token.id));
      if (!this.#o.kube) {
        return { token, expiresAt, rollback: dropState };
      }
      const kube = this.#o.kube;
      const secret = bootstrapSecret({ token, expiresAt, extraGroups: input.extraGroups, description: input.description });
      let outcome: 'created' | 'exists';
      try {
        outcome = await kube.createSecret(secret);
        if (outcome === 'exists' && !(await this.#isOurs(token))) {
          await dropState();
          continue; // someone else's token with this id: pick another id
        }
      } catch (e) {
        await dropState().catch(() => undefined);
        throw e;
      }
      const rollback = async (): Promise<void> => {
        await kube.deleteSecret(TOKEN_NAMESPACE, secretName(token.id)).catch((cause: unknown) => {
          this.#o.logger.error({ tokenId: token.id, code: cause instanceof AttestError ? cause.code : 'UNKNOWN' }, 'rollback: bootstrap token Secret not deleted; the sweep will retry');
        });
        await dropState().catch(() => undefined);
      };
      return { token, expiresAt, rollback };
    }
    throw unavailable(IssuerCodes.TOKEN_ID_EXHAUSTED, 'no free bootstrap token id after 4 attempts');
  }

  /** After a 409 on create: is the existing Secret the one we just sent (a retried POST)? */
  async #isOurs(token: BootstrapToken): Promise<boolean> {
    const s = await this.#o.kube!.getSecret(TOKEN_NAMESPACE, secretName(token.id));
    const got = s?.data?.['token-secret'];
    if (!got) return false;
    return timingSafeEqualString(fromBase64(got), token.secret);
  }

  async state(tokenId: string): Promise<TokenState | null> {
    if (!TOKEN_ID_RE.test(tokenId)) return null;
    const raw = await this.#o.store.get(tokenStateKey(tokenId));
    return raw === null ? null : (JSON.parse(raw) as TokenState);
  }

  /**
   * Binds the token to one kubelet client CSR, atomically (compare-and-set on the state record):
   * 'bound' for the first CSR, 'already' when it is bound to this same CSR (a retried approval),
   * 'taken' when another CSR has it or the token is retired or unknown.
   */
  async bindCsr(tokenId: string, csrName: string): Promise<'bound' | 'already' | 'taken'> {
    if (!TOKEN_ID_RE.test(tokenId)) return 'taken';
    for (let attempt = 0; attempt < 8; attempt++) {
      const raw = await this.#o.store.get(tokenStateKey(tokenId));
      if (raw === null) return 'taken';
      const st = JSON.parse(raw) as TokenState;
      if (st.csr?.name === csrName && !st.used) return 'already';
      if (st.used || st.csr) return 'taken';
      st.csr = { name: csrName, at: this.#o.clock.now().toISOString() };
      const left = Math.max(1, new Date(st.expiresAt).getTime() - this.#o.clock.now().getTime() + STATE_GRACE_MS);
      if (await this.#o.store.compareAndSet(tokenStateKey(tokenId), raw, JSON.stringify(st), left)) return 'bound';
    }
    return 'taken';
  }

  /**
   * Marks a token used (called by the CSR approver once the node's client CSR is approved, or
   * by the operator) and deletes its Secret at once: a bootstrap token is single use.
   */
  async consume(tokenId: string): Promise<void> {
    const st = await this.state(tokenId);
    if (st && !st.used) {
      st.used = this.#o.clock.now().toISOString();
      const left = Math.max(1, new Date(st.expiresAt).getTime() - this.#o.clock.now().getTime() + STATE_GRACE_MS);
      await this.#o.store.set(tokenStateKey(tokenId), JSON.stringify(st), left);
    }
    if (this.#o.kube) await this.#o.kube.deleteSecret(TOKEN_NAMESPACE, secretName(tokenId));
  }

  /**
   * Deletes this broker's bootstrap-token Secrets (those whose auth-extra-groups include
   * DEFAULT_GROUP) that are expired, used, or unknown to the store (state gone means the token
   * is past its TTL + grace or the store was reset; either way no approver could vouch for it).
   * Each delete carries the resourceVersion read, so a Secret replaced meanwhile survives.
   */
  async sweep(): Promise<{ deleted: string[]; kept: number }> {
    if (!this.#o.kube) return { deleted: [], kept: 0 };
    const now = this.#o.clock.now().getTime();
    const deleted: string[] = [];
    let kept = 0;
    for (const s of await this.#o.kube.listSecrets(TOKEN_NAMESPACE, SECRET_TYPE)) {
      const d = s.data ?? {};
      const groups = d['auth-extra-groups'] ? fromBase64(d['auth-extra-groups']).split(',') : [];
      if (!groups.includes(DEFAULT_GROUP)) continue; // not ours: leave kubeadm's tokens alone
      const id = d['token-id'] ? fromBase64(d['token-id']) : '';
      const exp = d.expiration ? Date.parse(fromBase64(d.expiration)) : NaN;
      const st = await this.state(id);
      const expired = !Number.isFinite(exp) || exp <= now;
      if (expired || !st || st.used) {
        try {
          if (await this.#o.kube.deleteSecret(TOKEN_NAMESPACE, s.metadata.name, s.metadata.resourceVersion)) deleted.push(id);
        } catch (e) {
          if (!(e instanceof AttestError) || e.code !== 'KUBE_CONFLICT') throw e;
        }
      } else {
        kept++;
      }
    }
    return { deleted, kept };
  }
}

export { rfc3339 };
export type { KubeSecret };

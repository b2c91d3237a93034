/**
 * @module broker/approver/controller
 *
 * The CSR approver of one cluster: list, then watch CertificateSigningRequests; decide each
 * (decide.ts); write the decision to the `approval` subresource; audit it; retire a bootstrap
 * token once its node holds a client certificate.
 *
 * Exactly once, whatever the event stream does (duplicate, reordered or replayed events, a
 * second replica during a leadership hand-over):
 * - events for one CSR are handled one at a time (a per-name queue);
 * - a CSR with an Approved/Denied/Failed condition is never touched again;
 * - before approving a client CSR the token is bound to that CSR by compare-and-set on the
 *   shared store (`TokenIssuer.bindCsr`): only one CSR per token can ever be approved, by any
 *   replica;
 * - the approval is written with the resourceVersion it was decided on, so a concurrent writer
 *   makes ours fail with 409 (re-read, and the CSR is then already decided).
 *
 * The token stays valid after approval for `retireTokenAfterSeconds` once the signed certificate
 * appears: the kubelet fetches its certificate with the bootstrap token. Then the token is retired
 * (`TokenIssuer.consume`: Secret deleted / TokenReview refuses it). Tokens whose certificate never
 * comes expire with their short TTL.
 */
import type { AuditSink, Clock, Logger } from '../contracts.js';
import type { KubeClient } from '../release/kube.js';
import type { TokenIssuer } from '../release/issuer.js';
import { AttestError } from '../../providers/common/errors.js';
import { decide, decided, type Csr, type DecideContext, type Verdict, CLIENT_SIGNER, BOOTSTRAP_PREFIX } from './decide.js';
import type { NodeRecords, NodeRecord } from './nodes.js';
import type { KeyType } from './csr.js';
import type { ServingAllowList } from './decide.js';

export interface CsrApproverOptions {
  cluster: string;
  kube: KubeClient;
  issuer: TokenIssuer;
  nodes: NodeRecords;
  clock: Clock;
  logger: Logger;
  audit: AuditSink;
  keyTypes: readonly KeyType[];
  foreignBootstrapTokens: 'ignore' | 'deny';
  serving: ServingAllowList;
  /** Re-attestation hook: null when the node is still admitted, else why not. */
  stillAdmitted(r: NodeRecord): Promise<string | null>;
  /** Seconds the token keeps authenticating after its certificate is issued (default 30). */
  retireTokenAfterSeconds?: number;
  /** Backoff after a failed list/watch (ms, default 1000, doubling to 30 s). */
  backoffMs?: number;
  /** Re-list at least this often (s, default 300) even if the watch is healthy. */
  resyncSeconds?: number;
  /** Called after each CSR was handled (tests and metrics). */
  onHandled?: (csr: Csr, outcome: HandledOutcome) => void;
}

export type HandledOutcome = { verdict: Verdict; written: boolean } | { retired: string };

const MAX_REMEMBERED = 10_000;

export class CsrApprover {
  readonly #o: CsrApproverOptions;
  readonly #queues = new Map<string, Promise<void>>();
  /** CSR uids whose "left alone" verdict was audited (bounded; insertion order = age). */
  readonly #ignored = new Map<string, true>();
  readonly #retiring = new Map<string, ReturnType<typeof setTimeout> | 'done'>();
  #stopped = false;

  constructor(o: CsrApproverOptions) {
    this.#o = o;
  }

  #ctx(): DecideContext {
    const o = this.#o;
    return {
      cluster: o.cluster,
      now: o.clock.now(),
      keyTypes: o.keyTypes,
      foreignBootstrapTokens: o.foreignBootstrapTokens,
      serving: o.serving,
      tokenState: (id) => o.issuer.state(id),
      nodeRecord: (name) => o.nodes.get(o.cluster, name),
      stillAdmitted: (r) => o.stillAdmitted(r),
    };
  }

  /** List and watch until `signal` aborts (the leader's signal). */
  async run(signal: AbortSignal): Promise<void> {
    const o = this.#o;
    let backoff = o.backoffMs ?? 1000;
    signal.addEventListener('abort', () => this.#stopRetirements(), { once: true });
    while (!signal.aborted) {
      try {
        const { items, resourceVersion } = await o.kube.listCsrs();
        for (const csr of items) await this.handle(csr);
        backoff = o.backoffMs ?? 1000;
        let rv = resourceVersion;
        const resyncAt = o.clock.now().getTime() + (o.resyncSeconds ?? 300) * 1000;
        while (!signal.aborted && o.clock.now().getTime() < resyncAt) {
          const r = await o.kube.watchCsrs(
            rv,
            signal,
            async (type, csr) => {
              if (csr.metadata?.resourceVersion) rv = csr.metadata.resourceVersion;
              if (type === 'ADDED' || type === 'MODIFIED') await this.handle(csr);
            },
            Math.max(1, Math.min(300, o.resyncSeconds ?? 300)),
          );
          if (r === 'gone') break; // too old: list again
        }
      } catch (e) {
        if (signal.aborted) break;
        o.logger.warn({ cluster: o.cluster, code: e instanceof AttestError ? e.code : 'UNKNOWN', retryInMs: backoff }, 'CSR list/watch failed; retrying');
        await new Promise((r) => setTimeout(r, backoff));
        backoff = Math.min(backoff * 2, 30_000);
      }
    }
    await Promise.allSettled([...this.#queues.values()]);
  }

  stop(): void {
    this.#stopped = true;
    this.#stopRetirements();
  }

  #stopRetirements(): void {
    for (const t of this.#retiring.values()) if (t !== 'done') clearTimeout(t);
  }

  /** Handles one CSR observation; observations of the same CSR run one after another. */
  handle(csr: Csr): Promise<void> {
    const name = csr.metadata.name;
    const prev = this.#queues.get(name) ?? Promise.resolve();
    const next = prev.then(() => this.#handle(csr)).catch((e: unknown) => {
      this.#o.logger.warn({ cluster: this.#o.cluster, csr: name, code: e instanceof AttestError ? e.code : 'UNKNOWN', err: (e as Error).message }, 'CSR not handled; the next event or resync retries');
    });
    this.#queues.set(name, next);
    void next.finally(() => {
      if (this.#queues.get(name) === next) this.#queues.delete(name);
    });
    return next;
  }

  async #handle(first: Csr): Promise<void> {
    const o = this.#o;
    let csr: Csr | null = first;
    for (let attempt = 0; csr && attempt < 4; attempt++) {
      const state = decided(csr);
      if (state) {
        if (state === 'Approved' && csr.status?.certificate) await this.#maybeRetire(csr);
        return;
      }
      const verdict = await decide(csr, this.#ctx());
      if (verdict.action === 'ignore') {
        const uid = csr.metadata.uid ?? csr.metadata.name;
        if (!this.#ignored.has(uid)) {
          this.#ignored.set(uid, true);
          if (this.#ignored.size > MAX_REMEMBERED) this.#ignored.delete(this.#ignored.keys().next().value as string);
          await this.#audit(csr, verdict, false);
        }
        o.onHandled?.(csr, { verdict, written: false });
        return;
      }
      if (verdict.action === 'approve' && verdict.kind === 'client' && verdict.tokenId) {
        const b = await o.issuer.bindCsr(verdict.tokenId, csr.metadata.name);
        if (b === 'taken') continue; // the token changed meanwhile: decide again (TokenSpent)
      }
      const now = o.clock.now().toISOString().replace(/\.\d{3}Z$/, 'Z');
      const update: Csr = {
        ...csr,
        status: {
          ...(csr.status ?? {}),
          conditions: [
            ...(csr.status?.conditions ?? []),
            { type: verdict.action === 'approve' ? 'Approved' : 'Denied', status: 'True', reason: verdict.reason, message: verdict.message.slice(0, 1024), lastUpdateTime: now },
          ],
        },
      };
      const r = await o.kube.updateCsrApproval(update);
      if (r.outcome !== 'updated') {
        if (r.outcome === 'gone') return;
        csr = await o.kube.getCsr(csr.metadata.name); // changed meanwhile: re-read, decide again
        continue;
      }
      const written = r.csr;
      o.logger.info({ cluster: o.cluster, csr: csr.metadata.name, decision: verdict.action, reason: verdict.reason, nodeName: verdict.nodeName, tokenId: verdict.tokenId }, `CSR ${verdict.action === 'approve' ? 'approved' : 'denied'}`);
      await this.#audit(csr, verdict, true);
      o.onHandled?.(written, { verdict, written: true });
      if (written.status?.certificate) await this.#maybeRetire(written);
      return;
    }
  }

  async #audit(csr: Csr, v: Verdict, written: boolean): Promise<void> {
    try {
      await this.#o.audit.record({
        type: 'csr',
        cluster: this.#o.cluster,
        csr: csr.metadata.name,
        csrUid: csr.metadata.uid,
        signer: csr.spec.signerName,
        requester: csr.spec.username,
        decision: v.action,
        reason: v.reason,
        message: v.message,
        ...(v.action !== 'ignore' ? { nodeName: v.nodeName, tokenId: v.tokenId, kind: v.kind, written } : {}),
      });
    } catch (e) {
      // The decision is already in the API; a missing record is a gap in the chain an operator sees.
      this.#o.logger.error({ cluster: this.#o.cluster, csr: csr.metadata.name, code: e instanceof AttestError ? e.code : 'UNKNOWN' }, 'CSR decision not audited');
    }
  }

  /** A broker token's client certificate is out: retire the token after the grace period. */
  async #maybeRetire(csr: Csr): Promise<void> {
    const o = this.#o;
    const user = csr.spec.username ?? '';
    if (csr.spec.signerName !== CLIENT_SIGNER || !user.startsWith(BOOTSTRAP_PREFIX)) return;
    const id = user.slice(BOOTSTRAP_PREFIX.length);
    if (this.#retiring.has(id) || this.#stopped) return;
    const st = await o.issuer.state(id);
    if (!st || st.used || st.csr?.name !== csr.metadata.name) return;
    const retire = async (): Promise<void> => {
      this.#retiring.set(id, 'done');
      try {
        await o.issuer.consume(id);
        await o.audit.record({ type: 'token-retired', cluster: o.cluster, tokenId: id, csr: csr.metadata.name, nodeName: st.nodeName });
        o.logger.info({ cluster: o.cluster, tokenId: id, csr: csr.metadata.name }, 'bootstrap token retired: the node has its client certificate');
        o.onHandled?.(csr, { retired: id });
        // The state now says used, which stops any further retirement: forget the entry, so the
        // map holds only retirements still pending.
        this.#retiring.delete(id);
      } catch (e) {
        this.#retiring.delete(id); // the next observation retries
        o.logger.warn({ cluster: o.cluster, tokenId: id, code: e instanceof AttestError ? e.code : 'UNKNOWN' }, 'bootstrap token not retired yet; will retry');
      }
    };
    // Counted from when the certificate was first seen here (a slow signer must not eat the
    // kubelet's time to fetch it).
    const wait = (o.retireTokenAfterSeconds ?? 30) * 1000;
    if (wait === 0) return retire();
    const t = setTimeout(() => void retire(), wait);
    (t as { unref?: () => void }).unref?.();
    this.#retiring.set(id, t);
  }
}

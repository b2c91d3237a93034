/**
 * @module broker/approver/lease
 *
 * Leader election over a `coordination.k8s.io/v1` Lease, the way client-go's leaderelection
 * package does it (Kubernetes docs, "Leases" → "Leader election"):
 * - a candidate reads the Lease; absent → creates it holding it; held by itself → renews
 *   (`renewTime`); held by another → takes it over only when the holder has not renewed for
 *   `leaseDurationSeconds`, measured on the candidate's own clock from when it last *observed* the
 *   record change (so clock skew between replicas does not matter);
 * - every write carries the resourceVersion it read, so of two candidates racing for an expired
 *   Lease exactly one update succeeds (409 Conflict for the other);
 * - the leader steps down when it could not renew for `renewDeadlineSeconds` (< duration), before
 *   anyone else may take over; on a clean stop it gives the Lease up (holder cleared) so a
 *   successor need not wait.
 * While leading, `lead(signal)` runs; `signal` aborts when leadership ends.
 */
import type { Clock, Logger } from '../contracts.js';
import type { KubeClient, KubeLease } from '../release/kube.js';

export interface LeaderElectionOptions {
  kube: KubeClient;
  namespace: string;
  name: string;
  identity: string;
  leaseDurationSeconds: number;
  renewDeadlineSeconds: number;
  retryPeriodSeconds: number;
  clock: Clock;
  logger: Logger;
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
}

const micro = (d: Date): string => d.toISOString().replace(/Z$/, '000Z');

function defaultSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

export class LeaderElector {
  readonly #o: LeaderElectionOptions;
  readonly #sleep: (ms: number, signal: AbortSignal) => Promise<void>;
  #observed = '';
  #observedAt = 0;
  #leading = false;

  constructor(o: LeaderElectionOptions) {
    if (!(o.renewDeadlineSeconds < o.leaseDurationSeconds) || !(o.retryPeriodSeconds < o.renewDeadlineSeconds)) {
      throw new Error('leader election needs retryPeriod < renewDeadline < leaseDuration');
    }
    this.#o = o;
    this.#sleep = o.sleep ?? defaultSleep;
  }

  get leading(): boolean {
    return this.#leading;
  }

  /** One attempt to acquire or renew; true when this candidate holds the Lease afterwards. */
  async tryAcquireOrRenew(): Promise<boolean> {
    const o = this.#o;
    const now = o.clock.now();
    const cur = await o.kube.getLease(o.namespace, o.name);
    const mine = (l: KubeLease): KubeLease => ({
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { name: o.name, namespace: o.namespace, ...(l.metadata.resourceVersion ? { resourceVersion: l.metadata.resourceVersion } : {}) },
      spec: {
        holderIdentity: o.identity,
        leaseDurationSeconds: o.leaseDurationSeconds,
        acquireTime: l.spec.holderIdentity === o.identity && l.spec.acquireTime ? l.spec.acquireTime : micro(now),
        renewTime: micro(now),
        leaseTransitions: (l.spec.leaseTransitions ?? 0) + (l.spec.holderIdentity && l.spec.holderIdentity !== o.identity ? 1 : 0),
      },
    });
    if (!cur) {
      const got = await o.kube.writeLease(mine({ apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: o.name, namespace: o.namespace }, spec: {} }));
      this.#note(got);
      return got?.spec.holderIdentity === o.identity;
    }
    this.#note(cur);
    const holder = cur.spec.holderIdentity ?? '';
    if (holder && holder !== o.identity) {
      const dur = (cur.spec.leaseDurationSeconds ?? o.leaseDurationSeconds) * 1000;
      if (this.#observedAt + dur > now.getTime()) return false; // the holder is alive (as far as we have seen)
    }
    const got = await o.kube.writeLease(mine(cur));
    this.#note(got);
    return got?.spec.holderIdentity === o.identity;
  }

  #note(l: KubeLease | null): void {
    if (!l) return;
    const rec = `${l.spec.holderIdentity ?? ''}|${l.spec.renewTime ?? ''}|${l.metadata.resourceVersion ?? ''}`;
    if (rec !== this.#observed) {
      this.#observed = rec;
      this.#observedAt = this.#o.clock.now().getTime();
    }
  }

  /** Gives the Lease up if held (holder cleared, duration 1 s), so a successor takes over at once. */
  async release(): Promise<void> {
    const o = this.#o;
    const cur = await o.kube.getLease(o.namespace, o.name);
    if (!cur || cur.spec.holderIdentity !== o.identity) return;
    await o.kube.writeLease({ ...cur, spec: { ...cur.spec, holderIdentity: '', leaseDurationSeconds: 1, renewTime: micro(o.clock.now()) } });
  }

  /**
   * Campaigns until `signal` aborts; while this candidate leads, `lead` runs with a signal that
   * aborts when leadership is lost or on stop.
   */
  async run(signal: AbortSignal, lead: (leaderSignal: AbortSignal) => Promise<void>): Promise<void> {
    const o = this.#o;
    const retry = o.retryPeriodSeconds * 1000;
    while (!signal.aborted) {
      let ok = false;
      try {
        ok = await this.tryAcquireOrRenew();
      } catch (e) {
        o.logger.warn({ code: (e as { code?: string }).code ?? 'UNKNOWN', lease: `${o.namespace}/${o.name}` }, 'leader election: Lease not reachable; retrying');
      }
      if (!ok) {
        await this.#sleep(retry, signal);
        continue;
      }
      this.#leading = true;
      o.logger.info({ lease: `${o.namespace}/${o.name}`, identity: o.identity }, 'leader election: leading');
      const leader = new AbortController();
      const onStop = (): void => leader.abort();
      signal.addEventListener('abort', onStop, { once: true });
      const work = lead(leader.signal).catch((e: unknown) => {
        o.logger.error({ code: (e as { code?: string }).code ?? 'UNKNOWN', err: (e as Error).message }, 'approver stopped with an error');
      });
      let lastRenew = o.clock.now().getTime();
      while (!leader.signal.aborted) {
        await this.#sleep(retry, leader.signal);
        if (leader.signal.aborted) break;
        const renewed = await this.tryAcquireOrRenew().catch(() => false);
        if (renewed) lastRenew = o.clock.now().getTime();
        else if (o.clock.now().getTime() - lastRenew >= o.renewDeadlineSeconds * 1000 || (await this.#heldByOther())) {
          // Another candidate holds the Lease, or it could not be renewed within the deadline:
          // stop acting before a successor may start.
          o.logger.warn({ lease: `${o.namespace}/${o.name}` }, 'leader election: leadership lost; stopping the approver');
          leader.abort();
        }
      }
      signal.removeEventListener('abort', onStop);
      await work;
      this.#leading = false;
      if (signal.aborted) {
        await this.release().catch(() => undefined);
        return;
      }
    }
  }

  async #heldByOther(): Promise<boolean> {
    try {
      const cur = await this.#o.kube.getLease(this.#o.namespace, this.#o.name);
      return !!cur && !!cur.spec.holderIdentity && cur.spec.holderIdentity !== this.#o.identity;
    } catch {
      return false;
    }
  }
}

/**
 * @module broker/http/ratelimit
 *
 * Abuse limits that hold across replicas: fixed-window counters in the shared store
 * (`StateStore.incr`: memory, Redis, Durable Object), so N replicas behind a load balancer
 * enforce one limit, not N.
 *
 * - `challenge` and `attest` are counted per client address (see ./address.ts) before any work;
 * - `identity` counts verified attests per attested instance (after verification, before policy
 *   and release), so one genuine-but-misbehaving node cannot hammer release or the audit log from
 *   many addresses.
 * Over the limit: 429 RATE_LIMITED with `Retry-After` = seconds to the end of the window. One
 * store round trip per check, O(1) work; the counter key carries the window index, so it expires
 * by itself (memory: swept with its space; Redis: PEXPIRE; Durable Object: alarm).
 */
import { AttestError } from '../../providers/common/errors.js';
import type { Clock, StateStore } from '../contracts.js';

export interface RateLimit {
  /** Requests allowed per window; 0 turns the limit off. */
  limit: number;
  windowSeconds: number;
}

export type RateBucket = 'challenge' | 'attest' | 'identity';

export type RateLimits = Readonly<Record<RateBucket, RateLimit>>;

/**
 * Defaults sized for a node pool joining through one NAT address (hundreds of nodes a minute)
 * while keeping a single flooding client to a few live challenges per second.
 */
export const DEFAULT_RATE_LIMITS: RateLimits = {
  challenge: { limit: 600, windowSeconds: 60 },
  attest: { limit: 600, windowSeconds: 60 },
  identity: { limit: 10, windowSeconds: 600 },
};

export class RateLimiter {
  readonly #store: StateStore;
  readonly #clock: Clock;
  readonly #limits: RateLimits;

  constructor(store: StateStore, clock: Clock, limits: Partial<RateLimits> = {}) {
    this.#store = store;
    this.#clock = clock;
    this.#limits = { ...DEFAULT_RATE_LIMITS, ...limits };
  }

  /** Counts one request of `subject` in `bucket`; throws RATE_LIMITED past the limit. */
  async hit(bucket: RateBucket, subject: string): Promise<void> {
    const { limit, windowSeconds } = this.#limits[bucket];
    if (limit <= 0) return;
    const windowMs = windowSeconds * 1000;
    const now = this.#clock.now().getTime();
    const index = Math.floor(now / windowMs);
    const endsIn = (index + 1) * windowMs - now;
    const n = await this.#store.incr(`${bucket}:${subject}:${index}`, endsIn + 1000);
    if (n > limit) {
      const retryAfter = Math.max(1, Math.ceil(endsIn / 1000));
      throw new AttestError('RATE_LIMITED', `too many requests; retry after ${retryAfter} s`, { retryAfter });
    }
  }
}

/**
 * @module broker/store/errors
 *
 * A store that cannot be reached must surface as a 503 problem, never as "challenge unknown"
 * (which would make an outage look like a client error) and never as a crash. A store that is
 * full (its cap for challenges or counters reached, or Redis out of memory) is a 503 with
 * Retry-After too: a flood must never turn into 500s.
 */
import { unavailable, type AttestError } from '../../providers/common/errors.js';

export const STORE_UNAVAILABLE = 'STORE_UNAVAILABLE';

export function storeUnavailable(cause: unknown, op: string): AttestError {
  return unavailable(STORE_UNAVAILABLE, `the state store is unreachable (${op}); check the store URL and that the store is up`, {
    cause,
    retryAfter: 5,
  });
}

export function storeFull(space: string, retryAfter: number, cause?: unknown): AttestError {
  return unavailable('STORE_FULL', `the broker's ${space} store is full; retry after ${retryAfter} s`, {
    retryAfter,
    ...(cause === undefined ? {} : { cause }),
  });
}

/**
 * @module broker/store/errors
 *
 * A store that cannot be reached must surface as a 503 problem, never as "challenge unknown"
 * (which would make an outage look like a client error) and never as a crash.
 */
import { unavailable, type AttestError } from '../../providers/common/errors.js';

export const STORE_UNAVAILABLE = 'STORE_UNAVAILABLE';

export function storeUnavailable(cause: unknown, op: string): AttestError {
  return unavailable(STORE_UNAVAILABLE, `the state store is unreachable (${op}); check the store URL and that the store is up`, {
    cause,
    retryAfter: 5,
  });
}

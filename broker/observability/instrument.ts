/**
 * @module broker/observability/instrument
 *
 * Counts the failures of a dependency's calls (state store, KMS adapter, Kubernetes client)
 * without touching the dependency's code: each listed method of the instance is replaced by one
 * that forwards the call and, when the returned promise rejects (or the call throws), counts
 * `Metrics.dependencyError(family, operation, code)` and rethrows the same error. A call that
 * succeeds costs one extra promise reaction; nothing is allocated per call beyond that (the
 * rejection handler is made once per method).
 */
import { isAttestError } from '../../providers/common/errors.js';
import type { ErrorFamily, Metrics } from '../contracts.js';

/** The error code a failure is counted under: the AttestError code, else INTERNAL. */
export const errorCode = (e: unknown): string => (isAttestError(e) ? e.code : 'INTERNAL');

/**
 * Instruments `target` in place (its own properties shadow the prototype's methods, and the
 * originals run with `this` = target, so classes with private fields keep working) and returns
 * it. `ops` maps method names to operation labels (metrics.ts ERROR_OPERATIONS).
 */
export function countFailures<T extends object>(target: T, family: ErrorFamily, ops: Partial<Record<keyof T & string, string>>, metrics: Metrics | undefined): T {
  const record = metrics?.dependencyError?.bind(metrics);
  if (!record) return target;
  const t = target as Record<string, unknown>;
  for (const [method, op] of Object.entries(ops) as Array<[string, string]>) {
    const orig = t[method];
    if (typeof orig !== 'function') continue;
    const onRejected = (e: unknown): never => {
      // A call cancelled by its caller (shutdown, a stopped watch) is not a failure.
      if ((e as { name?: unknown } | null)?.name !== 'AbortError') record(family, op, errorCode(e));
      throw e;
    };
    t[method] = function instrumented(...args: unknown[]): unknown {
      let r: unknown;
      try {
        r = (orig as (...a: unknown[]) => unknown).apply(target, args);
      } catch (e) {
        onRejected(e);
      }
      return r instanceof Promise ? r.then(undefined, onRejected) : r;
    };
  }
  return target;
}

/** StateStore methods → operation labels. */
export const STORE_OPS = {
  putChallenge: 'put_challenge',
  consumeChallenge: 'consume_challenge',
  get: 'get',
  set: 'set',
  setIfAbsent: 'set_if_absent',
  compareAndSet: 'compare_and_set',
  delete: 'delete',
  incr: 'incr',
  ping: 'ping',
} as const;

/** KeyService methods → operation labels. */
export const KMS_OPS = {
  wrap: 'wrap',
  unwrap: 'unwrap',
  generateForRecipient: 'generate_for_recipient',
  unwrapForRecipient: 'unwrap_for_recipient',
} as const;

/** KubeClient methods → operation labels. */
export const KUBE_OPS = {
  createSecret: 'create_secret',
  getSecret: 'get_secret',
  deleteSecret: 'delete_secret',
  listSecrets: 'list_secrets',
  listCsrs: 'list_csrs',
  getCsr: 'get_csr',
  updateCsrApproval: 'update_csr_approval',
  watchCsrs: 'watch_csrs',
  getLease: 'get_lease',
  writeLease: 'write_lease',
  ready: 'ready',
} as const;

/**
 * @module broker/policy/engine
 *
 * The `PolicyEngine` the broker calls (broker/contracts.ts): holds the policy in force, evaluates
 * claims with the injected clock, and reports `warn` outcomes to `Metrics.policyWarn` so an
 * operator can watch a new rule before it enforces.
 *
 * `replace()` swaps the policy atomically (a decision uses exactly one policy, whose hash it
 * records); it is what hot reload (`watch.node.ts`) and `SIGHUP`-style reloads call with an
 * already-validated `LoadedPolicy`, so an invalid file can never replace a valid policy.
 */
import type { Clock, Decision, Metrics, PolicyEngine } from '../contracts.js';
import type { Claims } from '../../providers/common/types.js';
import { evaluatePolicy } from './evaluate.js';
import type { LoadedPolicy } from './load.js';

export interface PolicyEngineDeps {
  clock: Clock;
  metrics?: Metrics;
}

export interface ReloadablePolicyEngine extends PolicyEngine {
  /** Puts a validated policy in force; returns the one it replaced. */
  replace(next: LoadedPolicy): LoadedPolicy;
  /** The full policy in force (for `policy check`-style introspection and tests). */
  policy(): LoadedPolicy;
}

export function createPolicyEngine(initial: LoadedPolicy, deps: PolicyEngineDeps): ReloadablePolicyEngine {
  let inForce = initial;
  return {
    evaluate(claims: Claims, cluster?: string): Promise<Decision> {
      const decision = evaluatePolicy(inForce, claims, cluster, deps.clock.now());
      if (deps.metrics?.policyWarn) {
        for (const r of decision.rules) if (r.outcome === 'warn') deps.metrics.policyWarn(r.rule, r.code ?? 'POLICY_WARN');
      }
      return Promise.resolve(decision);
    },
    current() {
      return { hash: inForce.hash, version: inForce.version };
    },
    replace(next: LoadedPolicy): LoadedPolicy {
      const prev = inForce;
      inForce = next;
      return prev;
    },
    policy() {
      return inForce;
    },
  };
}

/**
 * @module broker/worker-hooks
 *
 * Hooks the policy and release modules fill in for the Workers entry (Web APIs only).
 */
import type { Logger, PolicyEngine, ReleaseService, StateStore } from './contracts.js';

export const WORKER_HOOKS: {
  policyFromText?: (yaml: string) => Promise<PolicyEngine>;
  buildRelease?: (env: Record<string, unknown>, store: StateStore, logger: Logger) => Promise<ReleaseService>;
} = {};

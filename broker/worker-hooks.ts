/**
 * @module broker/worker-hooks
 *
 * Hooks the policy module fills in for the Workers entry (Web APIs only). Release on Workers is
 * built by the entry itself (broker/release/runtime.worker.ts).
 */
import type { PolicyEngine } from './contracts.js';

export const WORKER_HOOKS: {
  policyFromText?: (yaml: string) => Promise<PolicyEngine>;
} = {};

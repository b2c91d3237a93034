/**
 * @module broker/builtins
 *
 * Registers what this build contains besides its providers — the policy engine on Workers —
 * with the runtime (imported for its side effects by both entries). The providers are not
 * registered here or anywhere: the broker derives them from the list in providers/catalog.ts.
 * Web APIs only: the Node-only parts register themselves from `builtins.node.ts`.
 */
import { WORKER_HOOKS } from './worker-hooks.js';
import { createPolicyEngine, loadPolicyText } from './policy/index.js';
import { systemClock } from './contracts.js';

/** Pending TPM credential activations in the shared store (now with the tpm descriptor). */
export { activationStore } from '../providers/tpm/descriptor.js';

// ── policy on Workers: the document comes from the POLICY_YAML binding ──
WORKER_HOOKS.policyFromText = async (text) => createPolicyEngine(await loadPolicyText(text, systemClock.now()), { clock: systemClock });

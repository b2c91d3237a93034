/**
 * @module broker/policy
 *
 * Public surface of the join policy (Web APIs only; the file loader and hot reload are in
 * `watch.node.ts`, the CLI in `broker/commands/policy.node.ts`). See docs/policy.md.
 *
 * Typical wiring:
 * ```ts
 * const engine = createPolicyEngine(await loadPolicyFile(path, clock.now()), { clock, metrics });
 * const watcher = watchPolicyFile({ path, engine, clock, logger });      // Node only
 * const decision = await engine.evaluate(claims, cluster);
 * ```
 * On Workers, load the policy text from configuration with `loadPolicyText`.
 */
export { API_VERSION, policySchema, clusterSchema, policySchemaFor, type PolicyDocument, type ClusterPolicy, type ImagePolicy } from './schema.js';
export type { Catalog } from './catalog.js';
export { checkPolicyText, loadPolicyText, formatIssue, MAX_POLICY_BYTES, type LoadedPolicy, type CheckResult } from './load.js';
export type { PolicyIssue } from './semantic.js';
export { evaluatePolicy, DENY_CODE, isDns1123Subdomain, globMatch } from './evaluate.js';
export { createPolicyEngine, type ReloadablePolicyEngine, type PolicyEngineDeps } from './engine.js';
export { capturePolicy, capturePolicyDocument, claimsFromJson, type CaptureOptions } from './capture.js';
export { policyJsonSchema, policyJsonSchemaText, POLICY_SCHEMA_ID } from './json-schema.js';

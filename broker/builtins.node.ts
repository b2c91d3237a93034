/**
 * @module broker/builtins.node
 *
 * Node-only registrations: the policy file loader with hot reload, and (once configured) the
 * release service with the official KMS SDKs and the Kubernetes API client.
 */
import './builtins.js';
import { RUNTIME_HOOKS } from './runtime.node.js';
import { createPolicyEngine } from './policy/index.js';
import { loadPolicyFile, watchPolicyFile, type ReloadResult } from './policy/watch.node.js';
import { ConfigProblem } from './config/schema.js';
import { isAttestError } from '../providers/common/errors.js';
import { systemClock } from './contracts.js';
import { buildReleaseRuntime } from './release/runtime.node.js';

RUNTIME_HOOKS.loadPolicy = async (cfg, logger, o) => {
  const file = cfg.policy.file as string;
  let loaded;
  try {
    loaded = await loadPolicyFile(file, systemClock.now());
  } catch (e) {
    throw new ConfigProblem([`policy.file ${file}: ${isAttestError(e) ? e.message : String(e)}; check it with 'attest-broker policy check ${file}'`]);
  }
  for (const w of loaded.warnings ?? []) logger.warn({ component: 'policy', warning: w }, 'policy warning');
  // Warn outcomes are counted by the app (one place for every engine), so no metrics here.
  const engine = createPolicyEngine(loaded, { clock: systemClock });
  logger.info({ component: 'policy', file, hash: loaded.hash }, 'policy loaded');
  // Reloads are counted (attest_broker_policy_reloads_total); an unchanged file is not a reload.
  const onReload = (r: ReloadResult): void => {
    if (r.status !== 'unchanged') o?.metrics?.policyReload?.(r.status === 'reloaded');
  };
  const watcher = cfg.policy.watch ? watchPolicyFile({ path: file, engine, clock: systemClock, logger, onReload }) : undefined;
  return {
    engine,
    async close() {
      await watcher?.close();
    },
  };
};

RUNTIME_HOOKS.buildRelease = async (cfg, store, logger, o) => {
  if (Object.keys(cfg.release).length === 0) {
    logger.warn({}, 'no release: section configured: nodes that pass policy get RELEASE_UNAVAILABLE (configure release.clusters, docs/release.md)');
    return undefined;
  }
  let rt;
  try {
    rt = await buildReleaseRuntime(cfg.release, store, logger, { ...(o?.metrics ? { metrics: o.metrics } : {}), ...(o?.tracer ? { tracer: o.tracer } : {}) });
  } catch (e) {
    throw new ConfigProblem([isAttestError(e) ? e.message : String(e)]);
  }
  return {
    release: rt.release,
    audit: rt.audit,
    // TokenReview only in webhook (and dev) mode, and only with authenticated callers configured.
    ...(rt.tokenReview ? { tokenReview: rt.tokenReview } : {}),
    ...(rt.tokenReviewListen ? { tokenReviewListen: rt.tokenReviewListen } : {}),
    startApprover: (policy) => rt.startApprover(policy),
    approverInProcess: rt.approverEnabled,
    close: () => rt.close(),
  };
};

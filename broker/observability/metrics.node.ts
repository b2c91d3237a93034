/**
 * @module broker/observability/metrics.node
 *
 * Prometheus metrics on Node through prom-client: the families of `metrics.ts`, plus Node's
 * default metrics under their standard names (`process_*`, `nodejs_*`, no prefix), so stock
 * dashboards and alerts for Node processes work unchanged.
 *
 * Labelled children are bound once (`.labels(...)`) and cached in nested maps (`Children`), so
 * recording an attest outcome is two map lookups and an increment: prom-client never hashes a
 * label object on the request path.
 */
import { Registry, Counter, Gauge, Histogram, collectDefaultMetrics } from 'prom-client';
import type { ErrorFamily, Metrics } from '../contracts.js';
import {
  CERTIFICATE_NAMES,
  Children,
  ERROR_FAMILY_SPEC,
  FAMILIES,
  LATENCY_BUCKETS,
  MAX_ROOTS,
  operationLabel,
  type FamilySpec,
  type MetricsOptions,
} from './metrics.js';

type CounterChild = ReturnType<Counter['labels']>;

/** prom-client default metrics that are gauges despite their `_total` suffix (dropped). */
export const DEFAULT_GAUGES_NAMED_TOTAL = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'] as const;

export function createPromMetrics(opts: MetricsOptions & { defaultMetrics?: boolean } = {}): Metrics & { registry: Registry } {
  const registry = new Registry();
  if (opts.defaultMetrics !== false) {
    collectDefaultMetrics({ register: registry });
    // prom-client also exports these three totals as *gauges* named `_total`, which Prometheus
    // naming forbids (a `_total` is a counter); the per-type `nodejs_active_{handles,requests,
    // resources}` gauges hold the same numbers (sum them).
    for (const n of DEFAULT_GAUGES_NAMED_TOTAL) registry.removeSingleMetric(n);
  }
  // `aggregator`: how prom-client's AggregatorRegistry merges the workers of a cluster
  // (listen.workers > 1, broker/cluster.node.ts). Counters of events add up; values every worker
  // holds alike (the build, expiry times) are taken once; policy reloads happen in every worker
  // watching the same file, so the largest count is the file's.
  type Aggregator = 'sum' | 'first' | 'max';
  const counter = (f: FamilySpec, aggregator: Aggregator = 'sum'): Counter =>
    new Counter({ name: f.name, help: f.help, labelNames: [...f.labelNames], registers: [registry], aggregator });
  const gauge = (f: FamilySpec, aggregator: Aggregator): Gauge => new Gauge({ name: f.name, help: f.help, labelNames: [...f.labelNames], registers: [registry], aggregator });

  gauge(FAMILIES.buildInfo, 'first')
    .labels(opts.version ?? 'unknown', opts.runtime ?? 'node')
    .set(1);
  const challenges = counter(FAMILIES.challenges);
  const attestsC = counter(FAMILIES.attests);
  const attests = new Children<CounterChild>((p, c) => attestsC.labels(p, c));
  const warnsC = counter(FAMILIES.policyWarns);
  const warns = new Children<CounterChild>((r, c) => warnsC.labels(r, c));
  const latency = new Histogram({ name: FAMILIES.latency.name, help: FAMILIES.latency.help, buckets: LATENCY_BUCKETS, registers: [registry] });
  const errors = {} as Record<ErrorFamily, Children<CounterChild>>;
  for (const f of Object.keys(ERROR_FAMILY_SPEC) as ErrorFamily[]) {
    const c = counter(ERROR_FAMILY_SPEC[f]);
    errors[f] = new Children<CounterChild>((op, code) => c.labels(op, code));
  }
  const reloads = counter(FAMILIES.policyReloads, 'max');
  // Both outcomes exist from the start (0), so `increase(...[1h]) > 0` alerts see the first failure.
  const reloadOk = reloads.labels('success');
  const reloadFail = reloads.labels('failure');
  reloadOk.inc(0);
  reloadFail.inc(0);
  const roots = gauge(FAMILIES.trustRootExpiry, 'first');
  const certs = gauge(FAMILIES.certificateExpiry, 'first');
  const droppedC = counter(FAMILIES.spansDropped);
  // Both reasons exist from the start (0), like the policy reloads.
  const dropped = { queue_full: droppedC.labels('queue_full'), export_failed: droppedC.labels('export_failed') };
  dropped.queue_full.inc(0);
  dropped.export_failed.inc(0);

  return {
    registry,
    challengeIssued: () => challenges.inc(),
    attestOutcome(code, provider, seconds) {
      attests.get(provider, code).inc();
      latency.observe(seconds);
    },
    policyWarn: (rule, code) => warns.get(rule, code).inc(),
    dependencyError(family, operation, code) {
      errors[family]?.get(operationLabel(family, operation), code).inc();
    },
    policyReload: (ok) => (ok ? reloadOk : reloadFail).inc(),
    trustRoots(list) {
      roots.reset();
      for (const r of list.slice(0, MAX_ROOTS)) roots.labels(r.id).set(Math.floor(r.notAfter.getTime() / 1000));
    },
    certificateExpiry(name, notAfter) {
      if ((CERTIFICATE_NAMES as readonly string[]).includes(name)) certs.labels(name).set(Math.floor(notAfter.getTime() / 1000));
    },
    spansDropped: (reason, n) => dropped[reason].inc(n),
    async render() {
      return { contentType: registry.contentType, body: await registry.metrics() };
    },
  };
}

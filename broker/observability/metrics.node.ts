/**
 * @module broker/observability/metrics.node
 *
 * Prometheus metrics on Node through prom-client: the same names as the Workers renderer, plus
 * prom-client's default process metrics.
 */
import { Registry, Counter, Histogram, collectDefaultMetrics } from 'prom-client';
import type { Metrics } from '../contracts.js';
import { LATENCY_BUCKETS, METRIC_NAMES } from './metrics.js';

export function createPromMetrics(opts: { defaultMetrics?: boolean } = {}): Metrics & { registry: Registry } {
  const registry = new Registry();
  if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: registry, prefix: 'attest_broker_' });
  const challenges = new Counter({ name: METRIC_NAMES.challenges, help: 'Challenges issued.', registers: [registry] });
  const attests = new Counter({
    name: METRIC_NAMES.attests,
    help: 'Attest requests by provider and outcome code.',
    labelNames: ['provider', 'code'],
    registers: [registry],
  });
  const warns = new Counter({
    name: METRIC_NAMES.policyWarns,
    help: 'Policy rules in warn mode that would have denied.',
    labelNames: ['rule', 'code'],
    registers: [registry],
  });
  const latency = new Histogram({ name: METRIC_NAMES.latency, help: 'Attest latency.', buckets: LATENCY_BUCKETS, registers: [registry] });
  return {
    registry,
    challengeIssued: () => challenges.inc(),
    attestOutcome(code, provider, seconds) {
      attests.inc({ provider, code });
      latency.observe(seconds);
    },
    policyWarn: (rule, code) => warns.inc({ rule, code }),
    async render() {
      return { contentType: registry.contentType, body: await registry.metrics() };
    },
  };
}

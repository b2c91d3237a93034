/**
 * @module broker/observability/metrics
 *
 * A dependency-free `Metrics` that renders Prometheus text: used on Workers (per isolate —
 * aggregate across isolates with Workers Analytics, or scrape the Node deployment) and in tests.
 * Node uses prom-client (`metrics.node.ts`) with the same metric names.
 */
import type { Metrics } from '../contracts.js';

export const METRIC_NAMES = {
  challenges: 'attest_broker_challenges_total',
  attests: 'attest_broker_attest_total',
  latency: 'attest_broker_attest_duration_seconds',
  policyWarns: 'attest_broker_policy_warn_total',
} as const;

export const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

const esc = (s: string): string => s.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');

export function createSimpleMetrics(): Metrics {
  let challenges = 0;
  const attests = new Map<string, number>();
  const warns = new Map<string, number>();
  const buckets = new Array<number>(LATENCY_BUCKETS.length).fill(0);
  let count = 0;
  let sum = 0;
  return {
    challengeIssued: () => void challenges++,
    attestOutcome(code, provider, seconds) {
      const k = `provider="${esc(provider)}",code="${esc(code)}"`;
      attests.set(k, (attests.get(k) ?? 0) + 1);
      count++;
      sum += seconds;
      LATENCY_BUCKETS.forEach((b, i) => {
        if (seconds <= b) buckets[i]!++;
      });
    },
    policyWarn(rule, code) {
      const k = `rule="${esc(rule)}",code="${esc(code)}"`;
      warns.set(k, (warns.get(k) ?? 0) + 1);
    },
    async render() {
      const l: string[] = [];
      l.push(`# HELP ${METRIC_NAMES.challenges} Challenges issued.`, `# TYPE ${METRIC_NAMES.challenges} counter`, `${METRIC_NAMES.challenges} ${challenges}`);
      l.push(`# HELP ${METRIC_NAMES.attests} Attest requests by provider and outcome code.`, `# TYPE ${METRIC_NAMES.attests} counter`);
      for (const [k, v] of attests) l.push(`${METRIC_NAMES.attests}{${k}} ${v}`);
      l.push(`# HELP ${METRIC_NAMES.policyWarns} Policy rules in warn mode that would have denied.`, `# TYPE ${METRIC_NAMES.policyWarns} counter`);
      for (const [k, v] of warns) l.push(`${METRIC_NAMES.policyWarns}{${k}} ${v}`);
      l.push(`# HELP ${METRIC_NAMES.latency} Attest latency.`, `# TYPE ${METRIC_NAMES.latency} histogram`);
      LATENCY_BUCKETS.forEach((b, i) => l.push(`${METRIC_NAMES.latency}_bucket{le="${b}"} ${buckets[i]}`));
      l.push(`${METRIC_NAMES.latency}_bucket{le="+Inf"} ${count}`, `${METRIC_NAMES.latency}_sum ${sum}`, `${METRIC_NAMES.latency}_count ${count}`);
      return { contentType: 'text/plain; version=0.0.4; charset=utf-8', body: l.join('\n') + '\n' };
    },
  };
}

/**
 * @module broker/observability/metrics
 *
 * The broker's metric families (names, help, label sets), shared by both runtimes, and a
 * dependency-free `Metrics` that renders Prometheus text: used on Workers (per isolate —
 * aggregate across isolates with Workers Analytics, or scrape the Node deployment) and in tests.
 * Node uses prom-client (`metrics.node.ts`) with the same families, plus Node's default
 * `process_*` / `nodejs_*` metrics.
 *
 * Label values are bounded: providers come from the request schema's enum, operations from the
 * fixed lists below, codes are AttestError codes (UPPER_SNAKE constants of this code base;
 * anything else counts as INTERNAL) and at most MAX_CODES series per operation are kept (codes
 * beyond count as OTHER). Recording on the request path builds no label strings: children
 * are looked up in nested maps and created once.
 */
import type { ErrorFamily, Metrics } from '../contracts.js';

export const METRIC_NAMES = {
  challenges: 'attest_broker_challenges_total',
  attests: 'attest_broker_attest_total',
  latency: 'attest_broker_attest_duration_seconds',
  policyWarns: 'attest_broker_policy_warn_total',
  buildInfo: 'attest_broker_build_info',
  releaseErrors: 'attest_broker_release_errors_total',
  kmsErrors: 'attest_broker_kms_errors_total',
  kubernetesErrors: 'attest_broker_kubernetes_errors_total',
  storeErrors: 'attest_broker_store_errors_total',
  policyReloads: 'attest_broker_policy_reloads_total',
  trustRootExpiry: 'attest_broker_trust_root_expiry_timestamp_seconds',
  certificateExpiry: 'attest_broker_certificate_expiry_timestamp_seconds',
  spansDropped: 'attest_broker_trace_spans_dropped_total',
} as const;

export const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** The operations counted per dependency (label `operation`); anything else is `other`. */
export const ERROR_OPERATIONS: Readonly<Record<ErrorFamily, readonly string[]>> = {
  release: ['check', 'issuance_window', 'disk_key', 'bootstrap_token', 'seal', 'audit'],
  kms: ['wrap', 'unwrap', 'generate_for_recipient', 'unwrap_for_recipient'],
  kubernetes: [
    'create_secret',
    'get_secret',
    'delete_secret',
    'list_secrets',
    'list_csrs',
    'get_csr',
    'update_csr_approval',
    'watch_csrs',
    'get_lease',
    'write_lease',
    'ready',
  ],
  store: ['put_challenge', 'consume_challenge', 'get', 'set', 'set_if_absent', 'compare_and_set', 'delete', 'incr', 'ping'],
};

/** Certificates whose expiry is exported (label `certificate`). */
export const CERTIFICATE_NAMES = ['listen', 'token_review_listen'] as const;

/** Series per (provider | operation | rule) at most: further codes count as OTHER. */
export const MAX_CODES = 64;
/** Trust roots exported at most (built-in pins plus operator anchors are far fewer). */
export const MAX_ROOTS = 512;

const CODE_RE = /^[A-Z][A-Z0-9_]{0,63}$/;
/** An AttestError code as a label value; anything that is not one is INTERNAL. */
export const codeLabel = (code: string): string => (CODE_RE.test(code) ? code : 'INTERNAL');

export interface FamilySpec {
  name: string;
  help: string;
  type: 'counter' | 'gauge' | 'histogram';
  labelNames: readonly string[];
}

export const FAMILIES = {
  buildInfo: { name: METRIC_NAMES.buildInfo, help: 'Build of the running broker (value 1).', type: 'gauge', labelNames: ['version', 'runtime'] },
  challenges: { name: METRIC_NAMES.challenges, help: 'Challenges issued.', type: 'counter', labelNames: [] },
  attests: { name: METRIC_NAMES.attests, help: 'Attest requests by provider and outcome code.', type: 'counter', labelNames: ['provider', 'code'] },
  latency: { name: METRIC_NAMES.latency, help: 'Attest latency.', type: 'histogram', labelNames: [] },
  policyWarns: { name: METRIC_NAMES.policyWarns, help: 'Policy rules in warn mode that would have denied.', type: 'counter', labelNames: ['rule', 'code'] },
  releaseErrors: {
    name: METRIC_NAMES.releaseErrors,
    help: 'Releases that failed (nothing released), by the step that failed and error code.',
    type: 'counter',
    labelNames: ['operation', 'code'],
  },
  kmsErrors: { name: METRIC_NAMES.kmsErrors, help: 'Failed KMS calls by operation and error code.', type: 'counter', labelNames: ['operation', 'code'] },
  kubernetesErrors: {
    name: METRIC_NAMES.kubernetesErrors,
    help: 'Failed Kubernetes API calls (after retries) by operation and error code.',
    type: 'counter',
    labelNames: ['operation', 'code'],
  },
  storeErrors: { name: METRIC_NAMES.storeErrors, help: 'Failed state store calls by operation and error code.', type: 'counter', labelNames: ['operation', 'code'] },
  policyReloads: {
    name: METRIC_NAMES.policyReloads,
    help: 'Policy reloads: success replaced the policy in force, failure kept the previous one.',
    type: 'counter',
    labelNames: ['result'],
  },
  trustRootExpiry: {
    name: METRIC_NAMES.trustRootExpiry,
    help: 'Expiry (notAfter) of each loaded trust root, Unix seconds.',
    type: 'gauge',
    labelNames: ['root'],
  },
  certificateExpiry: {
    name: METRIC_NAMES.certificateExpiry,
    help: 'Expiry (notAfter) of certificates the broker serves, Unix seconds.',
    type: 'gauge',
    labelNames: ['certificate'],
  },
  spansDropped: {
    name: METRIC_NAMES.spansDropped,
    help: 'Trace spans not exported: the export queue was full (oldest dropped) or their OTLP export failed.',
    type: 'counter',
    labelNames: ['reason'],
  },
} as const satisfies Record<string, FamilySpec>;

export const ERROR_FAMILY_SPEC: Readonly<Record<ErrorFamily, FamilySpec>> = {
  release: FAMILIES.releaseErrors,
  kms: FAMILIES.kmsErrors,
  kubernetes: FAMILIES.kubernetesErrors,
  store: FAMILIES.storeErrors,
};

/**
 * Children of a two-label family, created once per (a, b) and then found with two map lookups
 * (no key string is built). At most `max` children per `a`: past `max - 1` distinct `b`, further
 * values of `b` are counted as `overflow`.
 */
export class Children<C> {
  readonly #m = new Map<string, Map<string, C>>();
  constructor(
    private readonly make: (a: string, b: string) => C,
    private readonly max = MAX_CODES,
    private readonly overflow = 'OTHER',
    /** Maps `b` to its label value; run only when `b` is not found (the hit path runs no code). */
    private readonly normalize: (b: string) => string = codeLabel,
  ) {}
  get(a: string, b: string): C {
    let inner = this.#m.get(a);
    if (!inner) this.#m.set(a, (inner = new Map()));
    let c = inner.get(b);
    if (c === undefined) {
      b = this.normalize(b);
      // Room for max - 1 distinct values and the overflow series.
      if (!inner.has(b) && inner.size - (inner.has(this.overflow) ? 1 : 0) >= this.max - 1) b = this.overflow;
      c = inner.get(b);
      if (c === undefined) inner.set(b, (c = this.make(a, b)));
    }
    return c;
  }
}

/** The operation label of a family: one of its fixed list, else `other`. */
export const operationLabel = (family: ErrorFamily, op: string): string => (ERROR_OPERATIONS[family].includes(op) ? op : 'other');

// ── the dependency-free renderer ──

const esc = (s: string): string => s.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
const fmt = (v: number): string => (Number.isFinite(v) ? String(v) : v > 0 ? '+Inf' : v < 0 ? '-Inf' : 'NaN');

interface Series {
  /** `{a="x",b="y"}` or '' — built once, when the child is created. */
  readonly labels: string;
  value: number;
}

class Family {
  readonly series: Series[] = [];
  constructor(readonly spec: FamilySpec) {}
  child(values: readonly string[]): Series {
    const labels = values.length ? `{${this.spec.labelNames.map((n, i) => `${n}="${esc(values[i] ?? '')}"`).join(',')}}` : '';
    const s: Series = { labels, value: 0 };
    this.series.push(s);
    return s;
  }
  lines(out: string[]): void {
    out.push(`# HELP ${this.spec.name} ${this.spec.help}`, `# TYPE ${this.spec.name} ${this.spec.type}`);
    for (const s of this.series) out.push(`${this.spec.name}${s.labels} ${fmt(s.value)}`);
  }
}

export interface MetricsOptions {
  /** The broker's version (package.json) for attest_broker_build_info. */
  version?: string;
  /** Runtime label of attest_broker_build_info. */
  runtime?: string;
}

export function createSimpleMetrics(o: MetricsOptions = {}): Metrics {
  const fam = <K extends keyof typeof FAMILIES>(k: K): Family => new Family(FAMILIES[k]);
  const buildInfo = fam('buildInfo');
  buildInfo.child([o.version ?? 'unknown', o.runtime ?? 'workers']).value = 1;
  const challengesFam = fam('challenges');
  const challenges = challengesFam.child([]);
  const attestsFam = fam('attests');
  const attests = new Children((p, c) => attestsFam.child([p, c]));
  const warnsFam = fam('policyWarns');
  const warns = new Children((r, c) => warnsFam.child([r, c]));
  const errFams = {} as Record<ErrorFamily, { fam: Family; children: Children<Series> }>;
  for (const f of Object.keys(ERROR_FAMILY_SPEC) as ErrorFamily[]) {
    const family = new Family(ERROR_FAMILY_SPEC[f]);
    errFams[f] = { fam: family, children: new Children((op, c) => family.child([op, c])) };
  }
  const reloadsFam = fam('policyReloads');
  const reloadOk = reloadsFam.child(['success']);
  const reloadFail = reloadsFam.child(['failure']);
  const rootsFam = fam('trustRootExpiry');
  const certsFam = fam('certificateExpiry');
  const certs = new Map<string, Series>();
  const droppedFam = fam('spansDropped');
  const dropped = { queue_full: droppedFam.child(['queue_full']), export_failed: droppedFam.child(['export_failed']) };
  const buckets = new Array<number>(LATENCY_BUCKETS.length).fill(0);
  let count = 0;
  let sum = 0;
  return {
    challengeIssued: () => void challenges.value++,
    attestOutcome(code, provider, seconds) {
      attests.get(provider, code).value++;
      count++;
      sum += seconds;
      for (let i = 0; i < LATENCY_BUCKETS.length; i++) if (seconds <= LATENCY_BUCKETS[i]!) buckets[i]!++;
    },
    policyWarn(rule, code) {
      warns.get(rule, code).value++;
    },
    dependencyError(family, operation, code) {
      const f = errFams[family];
      if (f) f.children.get(operationLabel(family, operation), code).value++;
    },
    policyReload(ok) {
      (ok ? reloadOk : reloadFail).value++;
    },
    trustRoots(roots) {
      rootsFam.series.length = 0;
      for (const r of roots.slice(0, MAX_ROOTS)) rootsFam.child([r.id]).value = Math.floor(r.notAfter.getTime() / 1000);
    },
    certificateExpiry(name, notAfter) {
      if (!(CERTIFICATE_NAMES as readonly string[]).includes(name)) return;
      let s = certs.get(name);
      if (!s) certs.set(name, (s = certsFam.child([name])));
      s.value = Math.floor(notAfter.getTime() / 1000);
    },
    spansDropped(reason, n) {
      dropped[reason].value += n;
    },
    async render() {
      const l: string[] = [];
      buildInfo.lines(l);
      challengesFam.lines(l);
      attestsFam.lines(l);
      warnsFam.lines(l);
      const lat = FAMILIES.latency.name;
      l.push(`# HELP ${lat} ${FAMILIES.latency.help}`, `# TYPE ${lat} histogram`);
      LATENCY_BUCKETS.forEach((b, i) => l.push(`${lat}_bucket{le="${b}"} ${buckets[i]}`));
      l.push(`${lat}_bucket{le="+Inf"} ${count}`, `${lat}_sum ${sum}`, `${lat}_count ${count}`);
      for (const f of Object.values(errFams)) f.fam.lines(l);
      reloadsFam.lines(l);
      rootsFam.lines(l);
      certsFam.lines(l);
      droppedFam.lines(l);
      return { contentType: 'text/plain; version=0.0.4; charset=utf-8', body: l.join('\n') + '\n' };
    },
  };
}

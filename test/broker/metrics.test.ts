/**
 * Prometheus metrics (docs/operations.md, "Metrics").
 * - The real server (`serve`'s own path: config file → buildRuntime → startServers) with
 *   `metrics.listen`: `/metrics` is scraped from its own listener (and is gone from the main
 *   one), and the exposition is checked with promtool-style rules written here: snake_case
 *   names, HELP and TYPE for every family, counters end in `_total` and gauges do not, base
 *   units (`_seconds`/`_bytes`, no ms/kb), `_info` gauges are 1, no `attest_broker_` prefix on
 *   Node's default metrics (`process_*`, `nodejs_*`), every sample belongs to a declared family,
 *   no duplicate series.
 * - The new series carry what happened: build info, the trust root's and the served
 *   certificate's notAfter, policy reloads (a broken file, then a good one, through the file
 *   watcher), store errors (a full memory store).
 * - Release, KMS and Kubernetes errors through the instrumented objects, by operation and code.
 * - Both runtimes' renderers expose the same families (Workers' dependency-free one too).
 */
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createHash, X509Certificate } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rawRequest, serveInProcess, writeConfig } from './serve-helpers.js';
import { makeTls, type TlsMaterial } from '../deploy/test-broker.js';
import type { Served } from '../../broker/commands/serve.node.js';
import { createSimpleMetrics, METRIC_NAMES } from '../../broker/observability/metrics.js';
import { createPromMetrics } from '../../broker/observability/metrics.node.js';
import { countFailures, KMS_OPS, KUBE_OPS, STORE_OPS } from '../../broker/observability/instrument.js';
import { BrokerReleaseService } from '../../broker/release/service.js';
import { HashChainAudit } from '../../broker/release/audit.js';
import { KubeClient } from '../../broker/release/kube.js';
import { LocalKeyService } from '../../providers/local/kms.js';
import { MemoryStore } from '../../broker/store/memory.js';
import type { Metrics } from '../../broker/contracts.js';
import pkg from '../../package.json' with { type: 'json' };
import { captureLogger, claimsFor, decisionFor, fixedClock } from '../release/helpers.js';

interface Family {
  help?: string;
  type?: string;
  samples: Array<{ name: string; labels: Record<string, string>; value: number }>;
}

/** Parses Prometheus text format 0.0.4 into families (HELP/TYPE and their samples). */
function parseExposition(text: string): Map<string, Family> {
  const fams = new Map<string, Family>();
  const fam = (n: string): Family => {
    let f = fams.get(n);
    if (!f) fams.set(n, (f = { samples: [] }));
    return f;
  };
  let current: string | undefined;
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const meta = /^# (HELP|TYPE) ([^ ]+) (.*)$/.exec(line);
    if (meta) {
      const f = fam(meta[2]!);
      if (meta[1] === 'HELP') {
        expect(f.help, `duplicate HELP for ${meta[2]}`).toBeUndefined();
        f.help = meta[3];
      } else {
        expect(f.type, `duplicate TYPE for ${meta[2]}`).toBeUndefined();
        f.type = meta[3];
      }
      current = meta[2];
      continue;
    }
    expect(line.startsWith('#'), `stray comment: ${line}`).toBe(false);
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: \d+)?$/.exec(line);
    expect(m, `unparsable sample line: ${line}`).not.toBeNull();
    const [, name, rawLabels, value] = m!;
    const labels: Record<string, string> = {};
    for (const l of (rawLabels ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    // A sample belongs to the family declared just before it (histogram/summary suffixes aside).
    expect(current, `sample before any TYPE: ${line}`).toBeDefined();
    const base = name!.replace(/_(bucket|sum|count)$/, '');
    expect([current, `${current}_total`].includes(name!) || base === current, `${name} outside its family ${current}`).toBe(true);
    fam(current!).samples.push({ name: name!, labels, value: Number(value) });
  }
  return fams;
}

/** promtool-style naming and metadata rules over a whole exposition; returns the problems found. */
function lint(fams: Map<string, Family>): string[] {
  const problems: string[] = [];
  const seen = new Set<string>();
  for (const [name, f] of fams) {
    if (!/^[a-z][a-z0-9_]*$/.test(name)) problems.push(`${name}: not snake_case`);
    if (!f.help) problems.push(`${name}: no HELP`);
    if (!f.type) problems.push(`${name}: no TYPE`);
    if (f.type === 'counter' && !name.endsWith('_total')) problems.push(`${name}: counter without _total`);
    if (f.type !== 'counter' && name.endsWith('_total')) problems.push(`${name}: ${f.type} ending in _total`);
    // Base units only (promtool: "use base unit" — seconds and bytes, not ms/kb/…).
    if (/_(milliseconds|microseconds|nanoseconds|minutes|hours|days|ms|us|kilobytes|megabytes|gigabytes|kb|mb|gb|percent)(_|$)/.test(name)) problems.push(`${name}: not in base units`);
    if (/time|duration|latency|age|expiry|uptime/.test(name) && !/_seconds(_total)?$/.test(name) && !name.endsWith('_info') && f.type !== 'counter') {
      problems.push(`${name}: a time without the _seconds unit`);
    }
    if (name.endsWith('_info')) {
      if (f.type !== 'gauge') problems.push(`${name}: _info must be a gauge`);
      for (const s of f.samples) if (s.value !== 1) problems.push(`${name}: _info sample is ${s.value}, not 1`);
    }
    if (/^attest_broker_(process|nodejs)_/.test(name)) problems.push(`${name}: Node default metric under the app prefix`);
    if (!/^(attest_broker|process|nodejs)_/.test(name)) problems.push(`${name}: outside the app prefix and Node's default families`);
    for (const s of f.samples) {
      const key = `${s.name}{${Object.entries(s.labels).sort().map(([k, v]) => `${k}=${v}`).join(',')}}`;
      if (seen.has(key)) problems.push(`${key}: duplicate series`);
      seen.add(key);
      for (const k of Object.keys(s.labels)) if (!/^[a-z][a-z0-9_]*$/.test(k)) problems.push(`${s.name}: label ${k} not snake_case`);
    }
  }
  return problems;
}

const NEW_FAMILIES = [
  METRIC_NAMES.buildInfo,
  METRIC_NAMES.releaseErrors,
  METRIC_NAMES.kmsErrors,
  METRIC_NAMES.kubernetesErrors,
  METRIC_NAMES.storeErrors,
  METRIC_NAMES.policyReloads,
  METRIC_NAMES.trustRootExpiry,
  METRIC_NAMES.certificateExpiry,
  METRIC_NAMES.spansDropped,
];
const KEPT_FAMILIES = [METRIC_NAMES.challenges, METRIC_NAMES.attests, METRIC_NAMES.latency, METRIC_NAMES.policyWarns];

const sample = (fams: Map<string, Family>, name: string, labels: Record<string, string> = {}): number | undefined => {
  const f = fams.get(name);
  return f?.samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
};

describe('/metrics on the real server', () => {
  let dir: string;
  let tls: TlsMaterial;
  let served: Served & { logs: string[] };
  let policyFile: string;
  const scrape = async (): Promise<{ status: number; type: string; fams: Map<string, Family>; body: string }> => {
    const r = await rawRequest(`${served.metrics!.url}/metrics`);
    return { status: r.status, type: String(r.headers['content-type']), body: r.body, fams: r.status === 200 ? parseExposition(r.body) : new Map() };
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ab-metrics-'));
    tls = makeTls('metrics');
    writeFileSync(join(dir, 'leaf.crt'), tls.leafPem);
    writeFileSync(join(dir, 'leaf.key'), tls.leafKeyPem);
    writeFileSync(join(dir, 'root.pem'), tls.caPem);
    policyFile = join(dir, 'policy', 'policy.yaml');
    mkdirSync(join(dir, 'policy'));
    copyFileSync('deploy/policies/dev.yaml', policyFile);
    const der = new X509Certificate(tls.caPem).raw;
    const off = { limit: 0, windowSeconds: 60 };
    served = await serveInProcess(
      writeConfig(
        {
          listen: { host: '127.0.0.1', port: 0, tls: { certFile: join(dir, 'leaf.crt'), keyFile: join(dir, 'leaf.key') } },
          metrics: { listen: { host: '127.0.0.1', port: 0 } },
          store: { url: 'memory://' },
          limits: { maxLiveChallenges: 100, challengesPerAddress: off, attestsPerAddress: off, attestsPerIdentity: off },
          trust: { dir: join(dir, 'trust'), anchors: [{ id: 'test-root', file: join(dir, 'root.pem'), sha256: createHash('sha256').update(der).digest('hex') }] },
          providers: { tpm: { enabled: true } },
          policy: { file: policyFile, watch: true },
          clients: { enabled: false },
        },
        dir,
      ),
    );
  });
  afterAll(async () => {
    await served?.close();
    rmSync(dir, { recursive: true, force: true });
    rmSync(tls.dir, { recursive: true, force: true });
  });

  it('is served on the metrics listener only; the exposition passes the naming rules and has every family', async () => {
    const s = await scrape();
    expect(s.status).toBe(200);
    expect(s.type).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(lint(s.fams)).toEqual([]);
    for (const name of [...NEW_FAMILIES, ...KEPT_FAMILIES]) expect(s.fams.get(name), name).toBeDefined();
    // Node's default metrics under their standard names.
    for (const name of ['process_cpu_user_seconds_total', 'process_resident_memory_bytes', 'process_start_time_seconds', 'nodejs_heap_size_used_bytes', 'nodejs_eventloop_lag_seconds', 'nodejs_version_info']) {
      expect(s.fams.has(name), name).toBe(true);
    }
    expect(s.body).not.toMatch(/^attest_broker_(process|nodejs)_/m);
    // The main listener no longer answers /metrics; the metrics listener serves nothing else.
    const ca = { ca: tls.caPem };
    expect((await rawRequest(`${served.main.url}/metrics`, { tls: ca })).status).toBe(404);
    expect((await rawRequest(`${served.main.url}/healthz`, { tls: ca })).status).toBe(200);
    expect((await rawRequest(`${served.metrics!.url}/v1/challenge`, { body: '{}' })).status).toBe(404);
    expect((await rawRequest(`${served.metrics!.url}/healthz`)).status).toBe(200);
  });

  it('build info, trust root and served-certificate expiry carry the real values', async () => {
    const { fams } = await scrape();
    expect(sample(fams, METRIC_NAMES.buildInfo, { version: pkg.version, runtime: 'node' })).toBe(1);
    const root = new X509Certificate(tls.caPem);
    expect(sample(fams, METRIC_NAMES.trustRootExpiry, { root: 'test-root' })).toBe(Math.floor(new Date(root.validTo).getTime() / 1000));
    const leaf = new X509Certificate(tls.leafPem);
    expect(sample(fams, METRIC_NAMES.certificateExpiry, { certificate: 'listen' })).toBe(Math.floor(new Date(leaf.validTo).getTime() / 1000));
  });

  it('a full store is counted as a store error by operation and code', async () => {
    const ca = { ca: tls.caPem };
    const codes: number[] = [];
    for (let i = 0; i < 105; i++) codes.push((await rawRequest(`${served.main.url}/v1/challenge`, { body: '{}', tls: ca })).status);
    expect(codes.filter((c) => c === 503).length).toBeGreaterThan(0);
    const { fams } = await scrape();
    expect(sample(fams, METRIC_NAMES.storeErrors, { operation: 'put_challenge', code: 'STORE_FULL' })).toBe(codes.filter((c) => c === 503).length);
    expect(sample(fams, METRIC_NAMES.challenges)).toBe(codes.filter((c) => c === 201).length);
  });

  it('policy reloads through the file watcher: a broken file is a failure, a good one a success', async () => {
    const before = await scrape();
    expect(sample(before.fams, METRIC_NAMES.policyReloads, { result: 'success' })).toBe(0);
    expect(sample(before.fams, METRIC_NAMES.policyReloads, { result: 'failure' })).toBe(0);
    const waitFor = async (result: string, n: number): Promise<void> => {
      for (let i = 0; i < 100; i++) {
        if (sample((await scrape()).fams, METRIC_NAMES.policyReloads, { result }) === n) return;
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error(`policy reload ${result} never reached ${n}`);
    };
    writeFileSync(policyFile, 'apiVersion: attest-broker/v1\nkind: JoinPolicy\nclusters: 7\n');
    await waitFor('failure', 1);
    writeFileSync(policyFile, readFileSync('deploy/policies/dev.yaml', 'utf8') + '\n# edited\n');
    await waitFor('success', 1);
  });
});

describe('dependency errors by operation and code', () => {
  const scrapeOf = async (m: Metrics): Promise<Map<string, Family>> => parseExposition((await m.render!()).body);

  for (const [name, make] of [
    ['prom-client (Node)', () => createPromMetrics({ defaultMetrics: false, version: '9.9.9' })],
    ['dependency-free (Workers)', () => createSimpleMetrics({ version: '9.9.9' })],
  ] as const) {
    it(`${name}: release, KMS, Kubernetes and store failures are counted; label values stay bounded`, async () => {
      const metrics: Metrics = make();
      const clock = fixedClock();
      const store = countFailures(new MemoryStore({ clock }), 'store', STORE_OPS, metrics);
      const keys = countFailures(await LocalKeyService.create({ kek: crypto.getRandomValues(new Uint8Array(32)) }), 'kms', KMS_OPS, metrics);
      // An API server that refuses everything (RBAC): KUBE_FORBIDDEN, never retried.
      const kube = countFailures(
        new KubeClient({ server: 'https://api.test:6443', fetch: async () => new Response('{}', { status: 403 }), sleep: async () => undefined }),
        'kubernetes',
        KUBE_OPS,
        metrics,
      );
      const svc = new BrokerReleaseService({
        store,
        clock,
        logger: captureLogger(),
        audit: new HashChainAudit({ store, clock, write: async () => undefined }),
        keys,
        clusters: { prod: { apiServer: 'https://api.prod.example:6443', kube } },
        metrics,
      });
      const base = { claims: claimsFor(), requestId: 'r1' };
      // 1. refused before anything happens (policy did not allow): step `check`.
      await expect(svc.release({ ...base, decision: decisionFor({ allow: false }), want: ['bootstrap-token'] })).rejects.toMatchObject({ code: 'RELEASE_NOT_ALLOWED' });
      // 2. a wrapped disk key that is not ours: the KMS unwrap fails, in step `disk_key`.
      await expect(
        svc.release({ ...base, decision: decisionFor({}, { allowUnsealed: true }), want: ['disk-key'], diskKey: { wrapped: 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' } }),
      ).rejects.toMatchObject({ kind: expect.any(String) });
      // 3. the API server refuses the Secret: step `bootstrap_token`, Kubernetes create_secret.
      await expect(svc.release({ ...base, requestId: 'r3', decision: decisionFor({}, { allowUnsealed: true }), want: ['bootstrap-token'] })).rejects.toMatchObject({
        code: 'KUBE_FORBIDDEN',
      });
      // 4. a store failure by operation, and folding of unbounded values.
      metrics.dependencyError!('store', 'ping', 'STORE_UNAVAILABLE');
      metrics.dependencyError!('store', 'no-such-op', 'not a code');
      for (let i = 0; i < 200; i++) metrics.dependencyError!('kms', 'wrap', `CODE_${i}`);

      const fams = await scrapeOf(metrics);
      expect(lint(fams)).toEqual([]);
      expect(sample(fams, METRIC_NAMES.buildInfo, { version: '9.9.9' })).toBe(1);
      expect(sample(fams, METRIC_NAMES.releaseErrors, { operation: 'check', code: 'RELEASE_NOT_ALLOWED' })).toBe(1);
      const kmsSeries = fams.get(METRIC_NAMES.kmsErrors)!.samples;
      const unwrap = kmsSeries.filter((s) => s.labels.operation === 'unwrap');
      expect(unwrap).toHaveLength(1);
      expect(unwrap[0]!.value).toBe(1);
      expect(sample(fams, METRIC_NAMES.releaseErrors, { operation: 'disk_key', code: unwrap[0]!.labels.code! })).toBe(1);
      expect(sample(fams, METRIC_NAMES.releaseErrors, { operation: 'bootstrap_token', code: 'KUBE_FORBIDDEN' })).toBe(1);
      expect(sample(fams, METRIC_NAMES.kubernetesErrors, { operation: 'create_secret', code: 'KUBE_FORBIDDEN' })).toBe(1);
      expect(sample(fams, METRIC_NAMES.storeErrors, { operation: 'ping', code: 'STORE_UNAVAILABLE' })).toBe(1);
      expect(sample(fams, METRIC_NAMES.storeErrors, { operation: 'other', code: 'INTERNAL' })).toBe(1);
      // At most 64 codes per operation; the rest are OTHER.
      const wrap = kmsSeries.filter((s) => s.labels.operation === 'wrap');
      expect(wrap).toHaveLength(64);
      expect(wrap.find((s) => s.labels.code === 'OTHER')!.value).toBe(200 - 63);
    });
  }

  it('both renderers declare the same families with the same types', async () => {
    const a = await scrapeOf(createPromMetrics({ defaultMetrics: false }));
    const b = await scrapeOf(createSimpleMetrics());
    const types = (f: Map<string, Family>) => Object.fromEntries([...f].map(([n, x]) => [n, x.type]));
    expect(types(b)).toEqual(types(a));
  });
});

describe('/metrics under a flood of scrapes', () => {
  it('concurrent scrapes share one render, and each gets the whole exposition', async () => {
    const { createMetricsApp } = await import('../../broker/app.js');
    const inner = createPromMetrics({ version: pkg.version, runtime: 'node' });
    let renders = 0;
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    const metrics: Metrics = {
      ...inner,
      async render() {
        renders++;
        await gate;
        return inner.render!();
      },
    };
    const log = captureLogger();
    const app = createMetricsApp({ logger: log, metrics });
    const all = Promise.all(Array.from({ length: 50 }, () => app.request('/metrics')));
    await new Promise((r) => setTimeout(r, 20));
    open();
    const answers = await all;
    expect(renders).toBe(1);
    for (const a of answers) {
      expect(a.status).toBe(200);
      expect(await a.text()).toMatch(/^attest_broker_build_info\{/m);
    }
    // The next scrape renders again (nothing is cached past the shared render).
    expect((await app.request('/metrics')).status).toBe(200);
    expect(renders).toBe(2);
  });
});

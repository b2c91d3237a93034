/**
 * OpenTelemetry tracing (docs/operations.md, "Tracing"; broker/observability/tracing.ts): a local
 * OTLP/HTTP collector that checks every export request strictly against the OTLP JSON encoding
 * receives the spans of a real broker — createBroker with the release runtime against the TLS
 * Kubernetes test server and the AWS KMS test server (official SDK), and the `serve` path from a
 * configuration file. Checked: the server span's parent is the incoming traceparent's span, the
 * KMS and Kubernetes CLIENT spans are its children and are named by the traceparent those servers
 * received, ids are valid, failures set status ERROR with the broker's code, log lines carry the
 * broker's span id, nothing is exported (or sent downstream) when tracing is off, a dead
 * collector neither fails nor slows requests (bounded queue, drops counted), headers never logged.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { createBroker } from '../../broker/app.js';
import type { Decision, PolicyEngine } from '../../broker/contracts.js';
import { MemoryStore } from '../../broker/store/memory.js';
import { createConsoleLogger } from '../../broker/observability/console-logger.js';
import { createSimpleMetrics } from '../../broker/observability/metrics.js';
import { OtlpHttpExporter, Tracer } from '../../broker/observability/tracing.js';
import { asyncContextStorage } from '../../broker/observability/tracing-context.node.js';
import { buildReleaseRuntime } from '../../broker/release/runtime.node.js';
import { applyEnv, parseConfig } from '../../broker/config/schema.js';
import { buildTracer } from '../../broker/runtime.node.js';
import { createTrustStore } from '../../providers/common/trust.js';
import type { Provider } from '../../providers/common/types.js';
import { fromBase64Url, toHex } from '../../providers/common/encoding.js';
import { bindingEchoProvider, TEST_FORMAT } from '../helpers/test-provider.js';
import { NO_LIMITS } from '../helpers/broker.js';
import { makeTestPki, type TestPki } from '../servers/tls.js';
import { startKubeServer, type KubeTestServer } from '../servers/kube-apiserver.js';
import { startAwsKmsServer, type AwsKmsTestServer } from '../servers/aws-kms.js';
import { rawRequest, serveInProcess, writeConfig } from './serve-helpers.js';
import { HEX16, HEX32, startCollector, type Collector, type OtlpSpan } from '../servers/otlp-collector.js';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const CALLER_SPAN = '00f067aa0ba902b7';
const TRACEPARENT = `00-${TRACE}-${CALLER_SPAN}-01`;
// ───────────────────────────── a real broker with release ─────────────────────────────

/** The binding-echo test provider, with the instance id proven (a disk key needs that). */
const provenProvider: Provider = {
  ...bindingEchoProvider,
  async verify(format, evidence, ctx) {
    const c = await bindingEchoProvider.verify(format, evidence, ctx);
    return { ...c, identity: { ...c.identity, proven: ['instanceId'] } };
  },
};

const diskKeyPolicy: PolicyEngine = {
  async evaluate(claims): Promise<Decision> {
    return {
      allow: true,
      nodeName: claims.identity.instanceId,
      cluster: 'prod',
      policyHash: '0'.repeat(64),
      rules: [],
      release: { tokenTtlSeconds: 600, extraGroups: [], allowUnsealed: true, diskKey: true },
    };
  },
  current: () => ({ hash: '0'.repeat(64) }),
};

let pki: TestPki;
let kube: KubeTestServer;
let kms: AwsKmsTestServer;
let collector: Collector;
let kubeconfig: string;
const savedEnv = { id: process.env.AWS_ACCESS_KEY_ID, secret: process.env.AWS_SECRET_ACCESS_KEY };

beforeAll(async () => {
  pki = makeTestPki();
  [kube, kms, collector] = await Promise.all([startKubeServer(pki), startAwsKmsServer(), startCollector()]);
  kubeconfig = join(pki.dir, 'broker.kubeconfig');
  writeFileSync(
    kubeconfig,
    stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 't', cluster: { server: kube.url, 'certificate-authority': 'ca.crt' } }],
      users: [{ name: 'b', user: { token: kube.adminToken } }],
      contexts: [{ name: 't', context: { cluster: 't', user: 'b' } }],
      'current-context': 't',
    }),
  );
  // The AWS SDK's default credential chain reads these first.
  process.env.AWS_ACCESS_KEY_ID = kms.accessKeyId;
  process.env.AWS_SECRET_ACCESS_KEY = kms.secretAccessKey;
});
afterAll(async () => {
  process.env.AWS_ACCESS_KEY_ID = savedEnv.id;
  process.env.AWS_SECRET_ACCESS_KEY = savedEnv.secret;
  if (savedEnv.id === undefined) delete process.env.AWS_ACCESS_KEY_ID;
  if (savedEnv.secret === undefined) delete process.env.AWS_SECRET_ACCESS_KEY;
  await Promise.all([kube?.close(), kms?.close(), collector?.close()]);
});
afterEach(() => {
  collector.mode = 'up';
  collector.spans.length = 0;
  collector.requests.length = 0;
  kube.forbid = false;
  kms.mode = 'up';
});

async function brokerWith(o: { tracer?: Tracer }) {
  const lines: string[] = [];
  const logger = createConsoleLogger('debug', {}, (l) => lines.push(l));
  const store = new MemoryStore();
  const rt = await buildReleaseRuntime(
    { mode: 'secret', clusters: { prod: { apiServer: 'https://api.prod:6443', kube: { kubeconfig } } }, kms: { kind: 'aws-kms', keyId: kms.keyArn, region: kms.region, endpoint: kms.url } },
    store,
    logger,
    o.tracer ? { tracer: o.tracer } : {},
  );
  const app = createBroker({
    store,
    providers: [provenProvider],
    trust: createTrustStore([]),
    logger,
    policy: diskKeyPolicy,
    release: rt.release,
    ...(o.tracer ? { tracer: o.tracer } : {}),
    options: { rateLimits: NO_LIMITS },
  });
  const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
    app.request(path, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
  const attest = async (headers: Record<string, string>) => {
    const ch = (await (await post('/v1/challenge', {})).json()) as { challengeId: string; nonce: string };
    return post('/v1/attest', { challengeId: ch.challengeId, provider: 'tpm', format: TEST_FORMAT, evidence: { binding: toHex(fromBase64Url(ch.nonce)) }, want: ['bootstrap-token', 'disk-key'] }, headers);
  };
  const logs = () => lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  return { app, post, attest, logs, lines };
}

function tracerTo(c: Collector, o: Partial<ConstructorParameters<typeof OtlpHttpExporter>[0]> = {}, sampleRatio?: number) {
  const lines: string[] = [];
  const exporter = new OtlpHttpExporter({ endpoint: c.url, serviceName: 'attest-broker-test', logger: createConsoleLogger('debug', {}, (l) => lines.push(l)), ...o });
  return { tracer: new Tracer({ exporter, storage: asyncContextStorage(), ...(sampleRatio !== undefined ? { sampleRatio } : {}) }), exporter, exporterLogs: lines };
}

describe('spans of a real broker, exported over OTLP/HTTP JSON', () => {
  it('server span under the caller’s span; KMS and Kubernetes CLIENT spans are its children and name themselves in the traceparent sent; the log line carries the broker’s span', async () => {
    const { tracer, exporter } = tracerTo(collector);
    const b = await brokerWith({ tracer });
    const kubeBefore = kube.requests.length;
    const kmsBefore = kms.calls.length;
    const r = await b.attest({ traceparent: TRACEPARENT, 'x-request-id': 'req-ok' });
    expect(r.status, await r.clone().text()).toBe(200);
    await exporter.shutdown();
    expect(collector.problems).toEqual([]);
    expect(collector.requests.every((q) => q.path === '/v1/traces' && q.headers['content-type'] === 'application/json')).toBe(true);

    const server = collector.spans.find((s) => s.name === 'POST /v1/attest')!;
    expect(server).toMatchObject({
      traceId: TRACE,
      parentSpanId: CALLER_SPAN,
      kind: 2,
      attributes: { 'http.request.method': 'POST', 'http.route': '/v1/attest', 'url.path': '/v1/attest', 'http.response.status_code': 200 },
      resource: { 'service.name': 'attest-broker-test' },
      scope: 'attest-broker',
    });
    expect(server.status.code ?? 0).toBe(0);
    expect(server.spanId).not.toBe(CALLER_SPAN);

    // The challenge had no traceparent: a new trace, no parent.
    const challenge = collector.spans.find((s) => s.name === 'POST /v1/challenge')!;
    expect(challenge.parentSpanId).toBeUndefined();
    expect(challenge.traceId).not.toBe(TRACE);

    const clients = collector.spans.filter((s) => s.kind === 3);
    expect(clients.map((s) => s.name).sort()).toEqual(['kms wrap', 'kubernetes create_secret']);
    for (const c of clients) {
      expect(c).toMatchObject({ traceId: TRACE, parentSpanId: server.spanId });
      expect(c.start >= server.start && c.end <= server.end).toBe(true);
    }
    const kubeSpan = clients.find((s) => s.name === 'kubernetes create_secret')!;
    const kmsSpan = clients.find((s) => s.name === 'kms wrap')!;
    expect(kubeSpan.attributes).toMatchObject({ 'server.address': '127.0.0.1', 'attest_broker.operation': 'create_secret' });
    expect(kmsSpan.attributes).toMatchObject({ 'attest_broker.kms.kind': 'aws-kms', 'attest_broker.operation': 'wrap' });

    // What the downstream servers received names the CLIENT span (and nothing else of ours).
    const kubeReqs = kube.requests.slice(kubeBefore);
    expect(kubeReqs.map((q) => q.traceparent)).toEqual(kubeReqs.map(() => `00-${TRACE}-${kubeSpan.spanId}-01`));
    expect(kubeReqs.some((q) => q.method === 'POST' && q.path === '/api/v1/namespaces/kube-system/secrets')).toBe(true);
    const kmsCalls = kms.calls.slice(kmsBefore);
    expect(kmsCalls.map((c) => [c.op, c.traceparent])).toEqual([['Encrypt', `00-${TRACE}-${kmsSpan.spanId}-01`]]);

    // Log lines: the broker's span, the caller's as parent.
    const access = b.logs().find((l) => l.requestId === 'req-ok' && l.msg === 'request')!;
    expect(access).toMatchObject({ traceId: TRACE, spanId: server.spanId, parentSpanId: CALLER_SPAN, status: 200 });
  });

  it('failures: the CLIENT span and the 5xx server span have status ERROR with the broker’s code; a 4xx keeps status unset', async () => {
    const { tracer, exporter } = tracerTo(collector);
    const b = await brokerWith({ tracer });
    kube.forbid = true;
    const r = await b.attest({ traceparent: TRACEPARENT });
    expect(r.status).toBeGreaterThanOrEqual(500);
    const problem = (await r.json()) as { code: string };
    kube.forbid = false;
    kms.mode = 'internal-error';
    const r2 = await b.attest({ traceparent: TRACEPARENT });
    expect(r2.status).toBeGreaterThanOrEqual(500);
    const problem2 = (await r2.json()) as { code: string };
    kms.mode = 'up';
    const bad = await b.post('/v1/attest', { nope: 1 }, { traceparent: TRACEPARENT });
    expect(bad.status).toBe(400);
    await exporter.shutdown();
    expect(collector.problems).toEqual([]);

    const kubeSpan = collector.spans.find((s) => s.name === 'kubernetes create_secret')!;
    expect(kubeSpan.status).toEqual({ code: 2, message: 'KUBE_FORBIDDEN' });
    expect(kubeSpan.attributes['error.type']).toBe('KUBE_FORBIDDEN');
    const kmsSpan = collector.spans.find((s) => s.name === 'kms wrap' && s.status.code === 2)!;
    expect(kmsSpan.attributes['error.type']).toMatch(/^KMS_/);

    const servers = collector.spans.filter((s) => s.name === 'POST /v1/attest');
    expect(servers).toHaveLength(3);
    const [forbidden, kmsDown, malformed] = servers as [OtlpSpan, OtlpSpan, OtlpSpan];
    expect(forbidden.parentSpanId).toBe(CALLER_SPAN);
    expect(kubeSpan.parentSpanId).toBe(forbidden.spanId);
    expect(kmsSpan.parentSpanId).toBe(kmsDown.spanId);
    expect(forbidden).toMatchObject({ status: { code: 2, message: problem.code }, attributes: { 'attest_broker.error.code': problem.code, 'http.response.status_code': r.status } });
    expect(kmsDown).toMatchObject({ status: { code: 2, message: problem2.code }, attributes: { 'attest_broker.error.code': problem2.code } });
    expect(malformed.status.code ?? 0).toBe(0);
    expect(malformed.attributes).toMatchObject({ 'error.type': 'SCHEMA_INVALID', 'http.response.status_code': 400 });
  });

  it('tracing off: nothing exported, no traceparent sent downstream, the logs carry the caller’s span', async () => {
    const b = await brokerWith({});
    const kubeBefore = kube.requests.length;
    const kmsBefore = kms.calls.length;
    expect((await b.attest({ traceparent: TRACEPARENT, 'x-request-id': 'req-off' })).status).toBe(200);
    await new Promise((r) => setTimeout(r, 50));
    expect(collector.requests).toEqual([]);
    expect(kube.requests.slice(kubeBefore).length).toBeGreaterThan(0);
    expect(kube.requests.slice(kubeBefore).every((q) => q.traceparent === undefined)).toBe(true);
    expect(kms.calls.slice(kmsBefore).every((c) => c.traceparent === undefined)).toBe(true);
    const access = b.logs().find((l) => l.requestId === 'req-off' && l.msg === 'request')!;
    expect(access).toMatchObject({ traceId: TRACE, spanId: CALLER_SPAN });
    expect(access).not.toHaveProperty('parentSpanId');
    // And the configuration without an endpoint builds no tracer.
    expect(buildTracer(parseConfig({}), createConsoleLogger('error'))).toBeUndefined();
  });

  it('a dead collector neither fails nor slows requests: the queue is bounded, drops and failures are counted, logged once, without the headers', async () => {
    const metrics = createSimpleMetrics();
    const secret = `Bearer ${randomBytes(16).toString('hex')}`;
    collector.mode = 'hang';
    const { tracer, exporter, exporterLogs } = tracerTo(collector, {
      maxQueue: 16,
      maxBatch: 8,
      timeoutMs: 300,
      headers: { authorization: secret },
      onDropped: metrics.spansDropped!.bind(metrics),
    });
    const lines: string[] = [];
    const app = createBroker({ store: new MemoryStore(), providers: [], trust: createTrustStore([]), logger: createConsoleLogger('debug', {}, (l) => lines.push(l)), tracer, options: { rateLimits: NO_LIMITS } });
    const t0 = performance.now();
    for (let i = 0; i < 100; i++) {
      const r = await app.request('/v1/challenge', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
      expect(r.status).toBe(201);
    }
    // 100 requests while the export hangs: no request waited for it (each is well under its 300 ms timeout).
    expect(performance.now() - t0).toBeLessThan(2000);
    await exporter.shutdown();
    expect(exporter.stats.exported).toBe(0);
    expect(exporter.stats.failedExports).toBeGreaterThan(0);
    // Every span is accounted for: dropped from the full queue, or dropped with its failed export.
    expect(exporter.stats.dropped).toBe(100);
    const text = (await metrics.render!()).body;
    const queueFull = Number(/attest_broker_trace_spans_dropped_total\{reason="queue_full"\} (\d+)/.exec(text)![1]);
    const exportFailed = Number(/attest_broker_trace_spans_dropped_total\{reason="export_failed"\} (\d+)/.exec(text)![1]);
    expect(queueFull).toBeGreaterThan(0);
    expect(queueFull + exportFailed).toBe(100);
    const failures = exporterLogs.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.code === 'OTLP_EXPORT_FAILED');
    expect(failures).toHaveLength(1);
    expect(failures[0]).toMatchObject({ level: 'warn', endpoint: `${collector.url}/v1/traces` });
    expect([...exporterLogs, ...lines].join('\n')).not.toContain(secret.slice(7));

    // A collector that refuses (503) is a failed export too, and nothing is retried.
    collector.mode = 'down';
    const { tracer: t2, exporter: e2 } = tracerTo(collector);
    const app2 = createBroker({ store: new MemoryStore(), providers: [], trust: createTrustStore([]), logger: createConsoleLogger('error'), tracer: t2 });
    expect((await app2.request('/v1/challenge', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })).status).toBe(201);
    await e2.shutdown();
    expect(collector.requests).toHaveLength(1);
    expect(e2.stats).toMatchObject({ exported: 0, failedExports: 1, dropped: 1 });
  });
});

describe('sampling and shutdown', () => {
  const bare = (tracer: Tracer, lines: string[] = []) =>
    createBroker({ store: new MemoryStore(), providers: [], trust: createTrustStore([]), logger: createConsoleLogger('debug', {}, (l) => lines.push(l)), tracer, options: { rateLimits: NO_LIMITS } });
  const challenge = (app: ReturnType<typeof createBroker>, headers: Record<string, string>) =>
    app.request('/v1/challenge', { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: '{}' });

  it('parent-based: the caller’s sampled flag decides; sampleRatio 0 records no new trace; the logs carry the broker’s span either way', async () => {
    const { tracer, exporter } = tracerTo(collector, {}, 0);
    const lines: string[] = [];
    const app = bare(tracer, lines);
    expect((await challenge(app, { traceparent: `00-${TRACE}-${CALLER_SPAN}-00`, 'x-request-id': 'unsampled' })).status).toBe(201);
    expect((await challenge(app, { 'x-request-id': 'new-trace' })).status).toBe(201);
    expect((await challenge(app, { traceparent: TRACEPARENT, 'x-request-id': 'sampled' })).status).toBe(201);
    await exporter.shutdown();
    expect(collector.problems).toEqual([]);
    expect(collector.spans).toHaveLength(1);
    expect(collector.spans[0]).toMatchObject({ traceId: TRACE, parentSpanId: CALLER_SPAN });
    const logs = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    const unsampled = logs.find((l) => l.requestId === 'unsampled')!;
    expect(unsampled).toMatchObject({ traceId: TRACE, parentSpanId: CALLER_SPAN });
    expect(unsampled.spanId).toMatch(HEX16);
    expect(unsampled.spanId).not.toBe(CALLER_SPAN);
    expect(logs.find((l) => l.requestId === 'new-trace')!.traceId).toMatch(HEX32);
  });

  it('shutdown with a hung collector ends within shutdownTimeoutMs and drops (counts) what it could not send', async () => {
    collector.mode = 'hang';
    const { tracer, exporter } = tracerTo(collector, { timeoutMs: 60_000, shutdownTimeoutMs: 300 });
    const app = bare(tracer);
    for (let i = 0; i < 5; i++) expect((await challenge(app, {})).status).toBe(201);
    const t0 = performance.now();
    await exporter.shutdown();
    expect(performance.now() - t0).toBeLessThan(1500);
    expect(exporter.stats).toMatchObject({ exported: 0, dropped: 5 });
  });
});

describe('tracing from the configuration (serve path)', () => {
  it('tracing.otlpEndpoint and headers: spans reach the collector with the headers; the headers are never logged', async () => {
    const secret = randomBytes(24).toString('hex');
    const dir = mkdtempSync(join(tmpdir(), 'ab-tracing-'));
    const served = await serveInProcess(
      writeConfig(
        {
          listen: { host: '127.0.0.1', port: 0 },
          store: { url: 'memory://' },
          trust: { dir: join(dir, 'trust') },
          clients: { enabled: false },
          tracing: { otlpEndpoint: collector.url, serviceName: 'broker-under-test', headers: { 'x-api-key': secret } },
        },
        dir,
      ),
    );
    let closed = false;
    try {
      const r = await rawRequest(`${served.main.url}/v1/challenge`, { body: '{}', headers: { traceparent: TRACEPARENT, 'x-request-id': 'req-serve' } });
      expect(r.status).toBe(201);
      expect((await rawRequest(`${served.main.url}/nowhere`)).status).toBe(404);
      // Probes start no recorded trace; with a sampled traceparent they are recorded.
      expect((await rawRequest(`${served.main.url}/healthz`)).status).toBe(200);
      expect((await rawRequest(`${served.main.url}/readyz`, { headers: { traceparent: TRACEPARENT } })).status).toBe(503);
      await served.close(); // flushes the exporter
      closed = true;
    } finally {
      if (!closed) await served.close();
    }
    expect(collector.problems).toEqual([]);
    expect(collector.requests.length).toBeGreaterThan(0);
    for (const q of collector.requests) expect(q.headers['x-api-key']).toBe(secret);
    const span = collector.spans.find((s) => s.name === 'POST /v1/challenge')!;
    expect(span).toMatchObject({ traceId: TRACE, parentSpanId: CALLER_SPAN, kind: 2, resource: { 'service.name': 'broker-under-test' } });
    expect(span.resource['service.version']).toMatch(/^\d+\.\d+\.\d+/);
    // No route matched: the span is named by the method alone and has no http.route.
    const notFound = collector.spans.find((s) => s.attributes['url.path'] === '/nowhere')!;
    expect(notFound.name).toBe('GET');
    expect(notFound.attributes).not.toHaveProperty('http.route');
    expect(notFound.attributes['error.type']).toBe('NOT_FOUND');
    expect(collector.spans.some((s) => s.name === 'GET /healthz')).toBe(false);
    expect(collector.spans.find((s) => s.name === 'GET /readyz')).toMatchObject({ parentSpanId: CALLER_SPAN, status: { code: 2, message: 'NOT_READY' } });
    const access = served.logs.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.requestId === 'req-serve')!;
    expect(access).toMatchObject({ traceId: TRACE, spanId: span.spanId, parentSpanId: CALLER_SPAN });
    expect(served.logs.some((l) => l.includes('tracing on'))).toBe(true);
    expect(served.logs.join('\n')).not.toContain(secret);
  });

  it('OTEL_EXPORTER_OTLP_ENDPOINT and OTEL_SERVICE_NAME configure it; endpoints with credentials are refused', () => {
    const cfg = parseConfig(applyEnv({}, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318', OTEL_SERVICE_NAME: 'edge-broker' }));
    expect(cfg.tracing).toMatchObject({ otlpEndpoint: 'http://collector:4318', serviceName: 'edge-broker', sampleRatio: 1, headers: {} });
    expect(parseConfig({}).tracing.otlpEndpoint).toBeUndefined();
    expect(() => parseConfig({ tracing: { otlpEndpoint: 'http://user:pw@collector:4318' } })).toThrow(/tracing\.otlpEndpoint: must not carry credentials/);
    expect(() => parseConfig({ tracing: { otlpEndpoint: 'ftp://collector' } })).toThrow(/tracing\.otlpEndpoint: must be an http\(s\) URL/);
    expect(() => parseConfig({ tracing: { otlpEndpoint: 'http://c:4318', sampleRatio: 2 } })).toThrow(/tracing\.sampleRatio/);
    expect(() => parseConfig({ tracing: { otlpEnpoint: 'http://c:4318' } })).toThrow(/unknown key/);
    expect(() => parseConfig({ tracing: { otlpEndpoint: 'http://c:4318', headers: { 'x-api-key': 'a\r\nx-injected: 1' } } })).toThrow(/tracing\.headers\.x-api-key: must be a header value/);
    expect(() => parseConfig({ tracing: { otlpEndpoint: 'http://c:4318', headers: { 'Content-Type': 'text/plain' } } })).toThrow(/content-type is set by the exporter/);
    expect(parseConfig({ tracing: { otlpEndpoint: 'http://c:4318', headers: { authorization: 'Bearer x' } } }).tracing.headers).toEqual({ authorization: 'Bearer x' });
  });
});

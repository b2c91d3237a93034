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
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
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

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const CALLER_SPAN = '00f067aa0ba902b7';
const TRACEPARENT = `00-${TRACE}-${CALLER_SPAN}-01`;
const HEX32 = /^[0-9a-f]{32}$/;
const HEX16 = /^[0-9a-f]{16}$/;

// ───────────────────────────── the local OTLP/HTTP collector ─────────────────────────────

interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  start: bigint;
  end: bigint;
  attributes: Record<string, string | number | boolean>;
  status: { code?: number; message?: string };
  resource: Record<string, string | number | boolean>;
  scope: string;
}

interface Collector {
  url: string;
  /** 'up': 200; 'down': 503; 'hang': never answers. */
  mode: 'up' | 'down' | 'hang';
  requests: Array<{ headers: IncomingHttpHeaders; path: string }>;
  spans: OtlpSpan[];
  /** Everything in the requests that is not OTLP/JSON as the specification writes it. */
  problems: string[];
  close(): Promise<void>;
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** KeyValue list → record, checking each AnyValue holds exactly one known scalar field. */
function attrs(list: unknown, where: string, p: string[]): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  if (!Array.isArray(list)) {
    p.push(`${where}: attributes is not an array`);
    return out;
  }
  for (const kv of list) {
    if (!isObj(kv) || typeof kv.key !== 'string' || !isObj(kv.value) || Object.keys(kv).some((k) => k !== 'key' && k !== 'value')) {
      p.push(`${where}: bad KeyValue ${JSON.stringify(kv)}`);
      continue;
    }
    const v = kv.value;
    const fields = Object.keys(v);
    if (fields.length !== 1) p.push(`${where}.${kv.key}: AnyValue with ${fields.length} fields`);
    if (typeof v.stringValue === 'string') out[kv.key] = v.stringValue;
    else if (typeof v.boolValue === 'boolean') out[kv.key] = v.boolValue;
    else if (typeof v.intValue === 'string' && /^-?\d+$/.test(v.intValue)) out[kv.key] = Number(v.intValue); // int64: a decimal string
    else if (typeof v.doubleValue === 'number') out[kv.key] = v.doubleValue;
    else p.push(`${where}.${kv.key}: AnyValue ${JSON.stringify(v)} is not OTLP/JSON`);
  }
  return out;
}

function unexpected(o: Record<string, unknown>, allowed: readonly string[], where: string, p: string[]): void {
  for (const k of Object.keys(o)) if (!allowed.includes(k)) p.push(`${where}: unexpected key ${k}`);
}

/** Checks an ExportTraceServiceRequest (OTLP JSON encoding) and returns its spans. */
function decode(body: unknown, p: string[]): OtlpSpan[] {
  const out: OtlpSpan[] = [];
  if (!isObj(body) || !Array.isArray(body.resourceSpans) || body.resourceSpans.length === 0) {
    p.push('request: no resourceSpans');
    return out;
  }
  unexpected(body, ['resourceSpans'], 'request', p);
  for (const rs of body.resourceSpans as unknown[]) {
    if (!isObj(rs) || !isObj(rs.resource) || !Array.isArray(rs.scopeSpans)) {
      p.push('resourceSpans: needs resource and scopeSpans');
      continue;
    }
    unexpected(rs, ['resource', 'scopeSpans', 'schemaUrl'], 'resourceSpans', p);
    const resource = attrs(rs.resource.attributes, 'resource', p);
    for (const ss of rs.scopeSpans as unknown[]) {
      if (!isObj(ss) || !isObj(ss.scope) || typeof ss.scope.name !== 'string' || !Array.isArray(ss.spans)) {
        p.push('scopeSpans: needs scope.name and spans');
        continue;
      }
      unexpected(ss, ['scope', 'spans', 'schemaUrl'], 'scopeSpans', p);
      for (const s of ss.spans as unknown[]) {
        if (!isObj(s)) {
          p.push('span: not an object');
          continue;
        }
        const where = `span ${String(s.name)}`;
        unexpected(s, ['traceId', 'spanId', 'parentSpanId', 'traceState', 'flags', 'name', 'kind', 'startTimeUnixNano', 'endTimeUnixNano', 'attributes', 'status', 'events', 'links'], where, p);
        if (typeof s.traceId !== 'string' || !HEX32.test(s.traceId) || /^0+$/.test(s.traceId)) p.push(`${where}: traceId ${String(s.traceId)} is not 16 non-zero bytes in hex`);
        if (typeof s.spanId !== 'string' || !HEX16.test(s.spanId) || /^0+$/.test(s.spanId)) p.push(`${where}: spanId ${String(s.spanId)} is not 8 non-zero bytes in hex`);
        if (s.parentSpanId !== undefined && (typeof s.parentSpanId !== 'string' || !HEX16.test(s.parentSpanId))) p.push(`${where}: parentSpanId ${String(s.parentSpanId)}`);
        if (typeof s.name !== 'string' || !s.name) p.push(`${where}: no name`);
        if (!Number.isInteger(s.kind) || (s.kind as number) < 1 || (s.kind as number) > 5) p.push(`${where}: kind ${String(s.kind)} is not a SpanKind integer`);
        if (s.flags !== undefined && !Number.isInteger(s.flags)) p.push(`${where}: flags ${String(s.flags)}`);
        for (const t of ['startTimeUnixNano', 'endTimeUnixNano']) if (typeof s[t] !== 'string' || !/^[1-9]\d{18}$/.test(s[t])) p.push(`${where}: ${t} ${String(s[t])} is not Unix nanoseconds as a decimal string`);
        const start = BigInt(typeof s.startTimeUnixNano === 'string' ? s.startTimeUnixNano : 0);
        const end = BigInt(typeof s.endTimeUnixNano === 'string' ? s.endTimeUnixNano : 0);
        if (end < start) p.push(`${where}: ends before it starts`);
        const nowNs = BigInt(Date.now()) * 1_000_000n;
        if (start > nowNs + 1_000_000_000n || start < nowNs - 600_000_000_000n) p.push(`${where}: start time is not now`);
        const status = isObj(s.status) ? s.status : {};
        if (s.status !== undefined) unexpected(status, ['code', 'message'], `${where} status`, p);
        if (status.code !== undefined && ![0, 1, 2].includes(status.code as number)) p.push(`${where}: status.code ${String(status.code)} is not a StatusCode integer`);
        out.push({
          traceId: s.traceId as string,
          spanId: s.spanId as string,
          ...(typeof s.parentSpanId === 'string' && s.parentSpanId ? { parentSpanId: s.parentSpanId } : {}),
          name: s.name as string,
          kind: s.kind as number,
          start,
          end,
          attributes: attrs(s.attributes ?? [], where, p),
          status: status as OtlpSpan['status'],
          resource,
          scope: ss.scope.name,
        });
      }
    }
  }
  return out;
}

async function startCollector(): Promise<Collector> {
  const self: Partial<Collector> = { mode: 'up', requests: [], spans: [], problems: [] };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (self.mode === 'hang') return; // a collector that accepts and never answers
      self.requests!.push({ headers: req.headers, path: req.url ?? '' });
      if (self.mode === 'down') {
        res.writeHead(503).end();
        return;
      }
      if (req.method !== 'POST' || req.url !== '/v1/traces') self.problems!.push(`${req.method} ${req.url}: not POST /v1/traces`);
      if (req.headers['content-type'] !== 'application/json') self.problems!.push(`content-type ${req.headers['content-type']}`);
      let body: unknown;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        self.problems!.push('body is not JSON');
      }
      self.spans!.push(...decode(body, self.problems!));
      // ExportTraceServiceResponse: empty is full success.
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  self.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  self.close = () =>
    new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    });
  return self as Collector;
}

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

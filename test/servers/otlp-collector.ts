/**
 * A local OTLP/HTTP collector (the `otlp` receiver's HTTP port, 4318) that checks every export
 * request strictly against the OTLP JSON encoding and keeps the spans it received.
 *
 * Specification followed: OTLP 1.x, "OTLP/HTTP" and "JSON Protobuf Encoding"
 * (https://opentelemetry.io/docs/specs/otlp/#otlphttp-request,
 * https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding): `POST /v1/traces`,
 * `Content-Type: application/json`, an ExportTraceServiceRequest with hex ids, integer enums and
 * 64-bit integers as decimal strings; the answer to a full success is an empty
 * ExportTraceServiceResponse.
 *
 * For tests that cannot read this object (they run inside workerd): `GET /test/received` answers
 * `{spans, problems, headers}` (each export request's headers) as JSON (times as decimal strings). It is no part of OTLP.
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export const HEX32 = /^[0-9a-f]{32}$/;
export const HEX16 = /^[0-9a-f]{16}$/;

// ───────────────────────────── the local OTLP/HTTP collector ─────────────────────────────

export interface OtlpSpan {
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

export interface Collector {
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

export async function startCollector(): Promise<Collector> {
  const self: Partial<Collector> = { mode: 'up', requests: [], spans: [], problems: [] };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.method === 'GET' && req.url === '/test/received') {
        const spans = self.spans!.map((s) => ({ ...s, start: String(s.start), end: String(s.end) }));
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ spans, problems: self.problems, headers: self.requests!.map((q) => q.headers) }));
        return;
      }
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


/**
 * @module broker/observability/tracing
 *
 * A small OpenTelemetry tracer on Web APIs only (crypto.getRandomValues, fetch), so the same code
 * runs on Node and on Workers. Off unless configured (`tracing.otlpEndpoint`): without a tracer
 * the app pays one branch per request and allocates nothing for tracing.
 *
 * - A SERVER span per request (app.ts), child of a valid incoming W3C `traceparent`
 *   (trace.ts; parent-based sampling: the caller's sampled flag decides, else `sampleRatio`).
 * - A CLIENT span around each call of the KMS adapter and of the Kubernetes client made while a
 *   request is being served (`traceCalls`), and `traceparent` naming that span on the outgoing
 *   HTTP requests (`tracedFetch`, and an AWS SDK middleware in release/runtime.node.ts).
 *   Finding "the span being served" across awaits needs an async context: the runtime supplies
 *   it (`ContextStorage`; AsyncLocalStorage: tracing-context.node.ts on Node,
 *   tracing-context.worker.ts on Workers with `nodejs_compat`). Without one, only
 *   server spans are made. Calls outside a request (approver watch, sweep) make no spans.
 * - Export: OTLP/HTTP with the JSON encoding (OtlpHttpExporter below).
 *
 * Specifications followed:
 * - OTLP 1.x, "OTLP/HTTP" and "JSON Protobuf Encoding"
 *   (https://opentelemetry.io/docs/specs/otlp/#otlphttp-request and
 *   https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding; the same text as
 *   open-telemetry/opentelemetry-proto docs/specification.md): `POST {endpoint}/v1/traces`,
 *   `Content-Type: application/json`, body an ExportTraceServiceRequest in the proto3 JSON
 *   mapping with lowerCamelCase keys, traceId/spanId/parentSpanId as hex strings (not base64),
 *   enum values (Span.kind, Status.code) as integers, 64-bit integers (times in Unix nanoseconds)
 *   as decimal strings.
 * - opentelemetry-proto trace/v1/trace.proto: SpanKind SERVER = 2, CLIENT = 3; Status.code
 *   UNSET = 0, ERROR = 2.
 * - Semantic conventions for HTTP server spans: name `{method} {http.route}`, attributes
 *   http.request.method, http.route, url.path, http.response.status_code, error.type; status
 *   ERROR for 5xx only (https://opentelemetry.io/docs/specs/semconv/http/http-spans/).
 * - OTel SDK environment variables OTEL_EXPORTER_OTLP_ENDPOINT (the base URL, `/v1/traces` is
 *   appended) and OTEL_SERVICE_NAME (config/schema.ts ENV_OVERRIDES).
 */
import type { Logger } from '../contracts.js';
import { errorCode } from './instrument.js';
import type { TraceParent } from './trace.js';

export const SpanKind = { INTERNAL: 1, SERVER: 2, CLIENT: 3 } as const;
export const StatusCode = { UNSET: 0, OK: 1, ERROR: 2 } as const;

export type AttributeValue = string | number | boolean;

/** A span: ids, times (epoch ms, float), attributes, status. Exported when ended and sampled. */
export class Span {
  readonly attributes: Record<string, AttributeValue> = {};
  status: number = StatusCode.UNSET;
  statusMessage: string | undefined;
  endMs = 0;
  constructor(
    public name: string,
    readonly kind: number,
    readonly traceId: string,
    readonly spanId: string,
    readonly parentSpanId: string | undefined,
    readonly sampled: boolean,
    readonly startMs: number,
  ) {}
  /** The W3C traceparent naming this span as the parent of a downstream call. */
  traceparent(): string {
    return `00-${this.traceId}-${this.spanId}-${this.sampled ? '01' : '00'}`;
  }
  /** A failure: status ERROR with the broker's stable error code (never an error message). */
  fail(e: unknown): void {
    const code = errorCode(e);
    this.status = StatusCode.ERROR;
    this.statusMessage = code;
    this.attributes['error.type'] = code;
    this.attributes['attest_broker.error.code'] = code;
  }
}

/** The async context the runtime supplies: which span is being served right now. */
export interface ContextStorage {
  run<T>(span: Span, fn: () => T): T;
  active(): Span | undefined;
}

/** Where ended, sampled spans go. `add` must never block or throw. */
export interface SpanExporter {
  add(span: Span): void;
  /** Sends what is queued (one export at a time). */
  flush(): Promise<void>;
  /** Stops the timer and sends what is queued. */
  shutdown(): Promise<void>;
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

/** `n` random bytes as lower-case hex, never all zero (an all-zero id is invalid). */
export function randomId(bytes: 8 | 16): string {
  const b = crypto.getRandomValues(new Uint8Array(bytes));
  if (b.every((x) => x === 0)) b[bytes - 1] = 1;
  let s = '';
  for (const x of b) s += HEX[x];
  return s;
}

export interface TracerOptions {
  exporter: SpanExporter;
  /** Fraction of new traces (no sampled parent decision) that are recorded, 0..1 (default 1). */
  sampleRatio?: number;
  /** The runtime's async context (Node: AsyncLocalStorage); without it no CLIENT spans. */
  storage?: ContextStorage;
  /** Wall clock in epoch milliseconds (default performance.timeOrigin + performance.now()). */
  now?: () => number;
}

export class Tracer {
  readonly exporter: SpanExporter;
  readonly #ratio: number;
  readonly #storage: ContextStorage | undefined;
  readonly #now: () => number;
  constructor(o: TracerOptions) {
    this.exporter = o.exporter;
    this.#ratio = Math.min(1, Math.max(0, o.sampleRatio ?? 1));
    this.#storage = o.storage;
    this.#now = o.now ?? (() => performance.timeOrigin + performance.now());
  }

  /**
   * A SERVER span; `parent` from a valid incoming traceparent (its sampled flag decides).
   * `record: false` makes a new trace unsampled whatever the ratio (probes and scrapes).
   */
  startServer(name: string, parent: TraceParent | undefined, record = true): Span {
    if (parent) return new Span(name, SpanKind.SERVER, parent.traceId, randomId(8), parent.spanId, (parent.flags & 1) === 1, this.#now());
    const traceId = randomId(16);
    // Trace-id ratio sampling on the id's last 32 bits, so every service sampling by ratio agrees.
    const sampled = record && (this.#ratio >= 1 || parseInt(traceId.slice(24), 16) / 0x1_0000_0000 < this.#ratio);
    return new Span(name, SpanKind.SERVER, traceId, randomId(8), undefined, sampled, this.#now());
  }

  /** A CLIENT span, child of the span being served; undefined outside a request. */
  startClient(name: string): Span | undefined {
    const parent = this.#storage?.active();
    if (!parent) return undefined;
    return new Span(name, SpanKind.CLIENT, parent.traceId, randomId(8), parent.spanId, parent.sampled, this.#now());
  }

  /** Runs `fn` with `span` as the span being served (a plain call without a context storage). */
  run<T>(span: Span, fn: () => T): T {
    return this.#storage ? this.#storage.run(span, fn) : fn();
  }

  active(): Span | undefined {
    return this.#storage?.active();
  }

  end(span: Span): void {
    span.endMs = this.#now();
    if (span.sampled) this.exporter.add(span);
  }
}

/**
 * Wraps each listed method of `target` (in place, as instrument.ts countFailures does) in a CLIENT
 * span `{system} {operation}` while a request is being served; outside one the original runs.
 * Failures set status ERROR and the error code. `attributes` go on every span (no secrets).
 */
export function traceCalls<T extends object>(
  target: T,
  tracer: Tracer | undefined,
  system: 'kms' | 'kubernetes',
  ops: Partial<Record<keyof T & string, string>>,
  attributes: Readonly<Record<string, AttributeValue>> = {},
): T {
  if (!tracer) return target;
  const t = target as Record<string, unknown>;
  for (const [method, op] of Object.entries(ops) as Array<[string, string]>) {
    const orig = t[method];
    if (typeof orig !== 'function') continue;
    const name = `${system} ${op}`;
    t[method] = function traced(...args: unknown[]): unknown {
      const span = tracer.startClient(name);
      if (!span) return (orig as (...a: unknown[]) => unknown).apply(target, args);
      Object.assign(span.attributes, attributes);
      span.attributes['attest_broker.dependency'] = system;
      span.attributes['attest_broker.operation'] = op;
      const failed = (e: unknown): never => {
        span.fail(e);
        tracer.end(span);
        throw e;
      };
      let r: unknown;
      try {
        r = tracer.run(span, () => (orig as (...a: unknown[]) => unknown).apply(target, args));
      } catch (e) {
        failed(e);
      }
      if (r instanceof Promise) {
        return r.then((v: unknown) => {
          tracer.end(span);
          return v;
        }, failed);
      }
      tracer.end(span);
      return r;
    };
  }
  return target;
}

/** A fetch that sends `traceparent` naming the active span (the CLIENT span of traceCalls). */
export function tracedFetch(f: typeof fetch, tracer: Tracer | undefined): typeof fetch {
  if (!tracer) return f;
  return ((input: RequestInfo | URL, init?: RequestInit) => {
    const span = tracer.active();
    if (!span) return f(input, init);
    const headers = new Headers(init?.headers);
    headers.set('traceparent', span.traceparent());
    return f(input, { ...init, headers });
  }) as typeof fetch;
}

// ───────────────────────────── OTLP/HTTP JSON export ─────────────────────────────

/** Unix nanoseconds as the decimal string OTLP/JSON wants for fixed64 (exact past 2^53). */
export function unixNano(ms: number): string {
  const whole = Math.floor(ms);
  return (BigInt(whole) * 1_000_000n + BigInt(Math.round((ms - whole) * 1e6))).toString();
}

type AnyValue = { stringValue: string } | { intValue: string } | { doubleValue: number } | { boolValue: boolean };
const anyValue = (v: AttributeValue): AnyValue =>
  typeof v === 'string' ? { stringValue: v } : typeof v === 'boolean' ? { boolValue: v } : Number.isInteger(v) ? { intValue: String(v) } : { doubleValue: v };
const keyValues = (a: Readonly<Record<string, AttributeValue>>): Array<{ key: string; value: AnyValue }> =>
  Object.entries(a).map(([key, v]) => ({ key, value: anyValue(v) }));

export const SCOPE_NAME = 'attest-broker';

/** An ExportTraceServiceRequest (OTLP JSON mapping) of `spans`, one resource, one scope. */
export function otlpRequest(spans: readonly Span[], resource: Readonly<Record<string, AttributeValue>>, scopeVersion?: string): unknown {
  return {
    resourceSpans: [
      {
        resource: { attributes: keyValues(resource) },
        scopeSpans: [
          {
            scope: { name: SCOPE_NAME, ...(scopeVersion ? { version: scopeVersion } : {}) },
            spans: spans.map((s) => ({
              traceId: s.traceId,
              spanId: s.spanId,
              ...(s.parentSpanId ? { parentSpanId: s.parentSpanId } : {}),
              flags: s.sampled ? 1 : 0,
              name: s.name,
              kind: s.kind,
              startTimeUnixNano: unixNano(s.startMs),
              endTimeUnixNano: unixNano(s.endMs),
              attributes: keyValues(s.attributes),
              status: s.status === StatusCode.UNSET ? {} : { code: s.status, ...(s.statusMessage ? { message: s.statusMessage } : {}) },
            })),
          },
        ],
      },
    ],
  };
}

export interface OtlpExporterOptions {
  /** The OTLP/HTTP base URL (OTEL_EXPORTER_OTLP_ENDPOINT): spans go to `{endpoint}/v1/traces`. */
  endpoint: string;
  serviceName: string;
  serviceVersion?: string;
  /** Extra request headers (e.g. a collector's API key): sent, never logged. */
  headers?: Readonly<Record<string, string>>;
  fetch?: typeof fetch;
  logger: Logger;
  /** Spans held at most; when full the oldest is dropped (default 2048). */
  maxQueue?: number;
  /** Spans per export request at most (default 512). */
  maxBatch?: number;
  /**
   * Export period (default 5000 ms); also exported as soon as a batch is full. 0: no timer, the
   * runtime calls `flush` itself (Workers: after each request, in `ctx.waitUntil`; a timer there
   * would outlive the request that set it).
   */
  intervalMs?: number;
  /** One export request's time limit (default 10 s). */
  timeoutMs?: number;
  /** `shutdown` gives up (and drops what is left) after this long (default 5 s). */
  shutdownTimeoutMs?: number;
  /** Spans dropped: the queue was full, or their export failed (metrics hook). */
  onDropped?: (reason: 'queue_full' | 'export_failed', n: number) => void;
}

export const OtlpCodes = { OTLP_EXPORT_FAILED: 'OTLP_EXPORT_FAILED' } as const;

/**
 * Batches ended spans and POSTs them as OTLP/JSON. `add` only pushes onto a bounded queue (the
 * oldest span is dropped when full), so a slow or dead collector never holds up a request. One
 * export request is in flight at a time; a failed one is counted, logged (status or error name,
 * never the headers) once per run of failures, and its spans dropped: nothing is retried.
 */
/** The `tracing:` settings both runtimes configure the exporter and tracer from. */
export interface TracingSettings {
  otlpEndpoint?: string | undefined;
  serviceName: string;
  sampleRatio: number;
  headers?: Readonly<Record<string, string>> | undefined;
  maxQueueSpans: number;
  exportIntervalSeconds: number;
}

/**
 * The tracer of a runtime's `tracing:` settings, or undefined when no OTLP endpoint is set
 * (tracing off). `intervalMs` 0: no export timer (Workers flush after each request).
 */
export function tracerFromSettings(
  t: TracingSettings,
  o: { serviceVersion: string; logger: Logger; storage: ContextStorage; onDropped?: (reason: 'queue_full' | 'export_failed', n: number) => void; intervalMs?: number },
): Tracer | undefined {
  if (!t.otlpEndpoint) return undefined;
  const exporter = new OtlpHttpExporter({
    endpoint: t.otlpEndpoint,
    serviceName: t.serviceName,
    serviceVersion: o.serviceVersion,
    ...(t.headers ? { headers: t.headers } : {}),
    logger: o.logger.child({ component: 'tracing' }),
    maxQueue: t.maxQueueSpans,
    intervalMs: o.intervalMs ?? t.exportIntervalSeconds * 1000,
    ...(o.onDropped ? { onDropped: o.onDropped } : {}),
  });
  return new Tracer({ exporter, sampleRatio: t.sampleRatio, storage: o.storage });
}

export class OtlpHttpExporter implements SpanExporter {
  readonly #o: OtlpExporterOptions;
  readonly #url: string;
  /** The URL as logged: no user-info, query or fragment (they may carry credentials). */
  readonly #logUrl: string;
  readonly #headers: Record<string, string>;
  readonly #fetch: typeof fetch;
  readonly #max: number;
  readonly #batch: number;
  readonly #resource: Record<string, AttributeValue>;
  #queue: Span[] = [];
  #inFlight: Promise<void> | undefined;
  #timer: ReturnType<typeof setInterval> | undefined;
  #failing = false;
  /** Aborts the export in flight when shutdown runs out of time. */
  readonly #abort = new AbortController();
  /** Spans dropped (queue full or export failed) and export requests that failed, since start. */
  readonly stats = { dropped: 0, exported: 0, failedExports: 0 };

  constructor(o: OtlpExporterOptions) {
    this.#o = o;
    this.#url = `${o.endpoint.replace(/\/+$/, '')}/v1/traces`;
    const u = new URL(this.#url);
    this.#logUrl = `${u.protocol}//${u.host}${u.pathname}`;
    this.#headers = { ...o.headers, 'content-type': 'application/json' };
    this.#fetch = o.fetch ?? ((i: RequestInfo | URL, init?: RequestInit) => fetch(i, init));
    this.#max = o.maxQueue ?? 2048;
    this.#batch = Math.min(o.maxBatch ?? 512, this.#max);
    this.#resource = { 'service.name': o.serviceName, ...(o.serviceVersion ? { 'service.version': o.serviceVersion } : {}), 'telemetry.sdk.name': SCOPE_NAME };
    const interval = o.intervalMs ?? 5000;
    if (interval > 0) {
      const t = setInterval(() => void this.flush(), interval);
      (t as { unref?: () => void }).unref?.();
      this.#timer = t;
    }
  }

  add(span: Span): void {
    if (this.#queue.length >= this.#max) {
      this.#queue.shift();
      this.stats.dropped++;
      this.#o.onDropped?.('queue_full', 1);
    }
    this.#queue.push(span);
    if (this.#queue.length >= this.#batch && !this.#inFlight) void this.flush();
  }

  flush(): Promise<void> {
    if (this.#inFlight) return this.#inFlight;
    if (this.#queue.length === 0) return Promise.resolve();
    const run = async (): Promise<void> => {
      // Only what is queued now: spans added meanwhile wait for the next tick.
      let rounds = Math.ceil(this.#queue.length / this.#batch);
      while (rounds-- > 0 && this.#queue.length) await this.#send(this.#queue.splice(0, this.#batch));
    };
    this.#inFlight = run().finally(() => (this.#inFlight = undefined));
    return this.#inFlight;
  }

  /**
   * Stops the timer and sends what is queued, within `shutdownTimeoutMs`: a hung collector must
   * not hold up the broker's exit. Past the deadline the export in flight is aborted and what is
   * left is dropped (counted as export_failed).
   */
  async shutdown(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const deadline = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), this.#o.shutdownTimeoutMs ?? 5000)));
    const drained = (async () => {
      await this.#inFlight;
      await this.flush();
    })();
    const outcome = await Promise.race([drained, deadline]);
    clearTimeout(timer);
    if (outcome !== 'timeout') return;
    this.#abort.abort();
    const left = this.#queue.length;
    this.#queue = [];
    if (left) {
      this.stats.dropped += left;
      this.#o.onDropped?.('export_failed', left);
    }
    await drained.catch(() => undefined);
  }

  async #send(spans: Span[]): Promise<void> {
    let failure: Record<string, unknown> | undefined;
    try {
      const res = await this.#fetch(this.#url, {
        method: 'POST',
        headers: this.#headers,
        body: JSON.stringify(otlpRequest(spans, this.#resource)),
        // Never followed: a 3xx is not ok and fails the export ('error' is what is meant, but
        // Workers' fetch refuses that value with a TypeError, which failed every export there).
        redirect: 'manual',
        signal: AbortSignal.any([AbortSignal.timeout(this.#o.timeoutMs ?? 10_000), this.#abort.signal]),
      });
      await res.body?.cancel().catch(() => undefined);
      if (!res.ok) failure = { status: res.status };
    } catch (e) {
      failure = { err: (e as { name?: string } | null)?.name ?? 'Error' };
    }
    if (!failure) {
      this.stats.exported += spans.length;
      if (this.#failing) this.#o.logger.info({ endpoint: this.#logUrl }, 'trace export recovered');
      this.#failing = false;
      return;
    }
    this.stats.failedExports++;
    this.stats.dropped += spans.length;
    this.#o.onDropped?.('export_failed', spans.length);
    if (!this.#failing) this.#o.logger.warn({ code: OtlpCodes.OTLP_EXPORT_FAILED, endpoint: this.#logUrl, spans: spans.length, ...failure }, 'trace export failed; spans dropped (logged once until an export succeeds)');
    this.#failing = true;
  }
}

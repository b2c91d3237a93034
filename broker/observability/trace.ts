/**
 * @module broker/observability/trace
 *
 * W3C Trace Context (https://www.w3.org/TR/trace-context/, §3.2 "traceparent Header"): the
 * trace a request belongs to, so its log lines can be joined with the caller's trace.
 *
 *   traceparent: <version 2 hex>-<trace-id 32 hex>-<parent-id 16 hex>-<trace-flags 2 hex>
 *
 * Lower-case hex only; version `ff` is invalid; an all-zero trace-id or parent-id is invalid;
 * version 00 is exactly 55 characters; a higher version is parsed by the version-00 layout and
 * may only continue after the flags with `-` (§3.2.4, "Versioning of traceparent"). Anything
 * else — including two traceparent headers, which arrive joined by a comma — is ignored, as the
 * specification requires, and the request is logged without a trace.
 *
 * With tracing off (the default) the broker creates no span of its own: `spanId` in the logs is
 * the caller's span, the parent-id of the header. With tracing on (`tracing.otlpEndpoint`,
 * tracing.ts) the broker's SERVER span is the header's child, and the logs carry the broker's
 * span as `spanId` and the caller's as `parentSpanId`. `tracestate` is not read or forwarded.
 */

export interface TraceParent {
  /** 32 lower-case hex digits. */
  traceId: string;
  /** The caller's span: 16 lower-case hex digits. */
  spanId: string;
  /** trace-flags (bit 0: sampled). */
  flags: number;
}

/** Longest header value looked at (a future version may append fields; nothing needs more). */
const MAX_LENGTH = 512;
const TRACEPARENT_RE = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;
const ZERO_TRACE = '0'.repeat(32);
const ZERO_SPAN = '0'.repeat(16);

/** The trace context of a `traceparent` header value, or undefined when absent or invalid. */
export function parseTraceparent(value: string | null | undefined): TraceParent | undefined {
  if (!value || value.length < 55 || value.length > MAX_LENGTH) return undefined;
  const m = TRACEPARENT_RE.exec(value);
  if (!m) return undefined;
  const [, version, traceId, spanId, flags, rest] = m as unknown as [string, string, string, string, string, string | undefined];
  if (version === 'ff') return undefined;
  if (version === '00' && rest !== undefined) return undefined;
  if (traceId === ZERO_TRACE || spanId === ZERO_SPAN) return undefined;
  return { traceId, spanId, flags: parseInt(flags, 16) };
}

/**
 * W3C Trace Context (docs/operations.md, "Tracing"): a valid `traceparent` puts traceId and spanId
 * (the caller's span) into every log line of the request — the access line, the error line and
 * release's lines — and an invalid one is ignored (the request is served, logged without a
 * trace). The parser follows §3.2 of https://www.w3.org/TR/trace-context/ case by case.
 */
import { describe, expect, it } from 'vitest';
import { parseTraceparent } from '../../broker/observability/trace.js';
import { postJson, testBroker } from '../helpers/broker.js';
import { allowAll, bindingEchoProvider, TEST_FORMAT } from '../helpers/test-provider.js';
import { fromBase64Url, toHex } from '../../providers/common/encoding.js';
import type { ReleaseRequest, ReleaseService } from '../../broker/contracts.js';
import { BrokerReleaseService } from '../../broker/release/service.js';
import { HashChainAudit } from '../../broker/release/audit.js';
import { KubeClient } from '../../broker/release/kube.js';
import { MemoryStore } from '../../broker/store/memory.js';
import { captureLogger, claimsFor, decisionFor, fixedClock } from '../release/helpers.js';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const SPAN = '00f067aa0ba902b7';
const VALID = `00-${TRACE}-${SPAN}-01`;

describe('parseTraceparent', () => {
  it('accepts the specification’s example and reads the sampled flag', () => {
    expect(parseTraceparent(VALID)).toEqual({ traceId: TRACE, spanId: SPAN, flags: 1 });
    expect(parseTraceparent(`00-${TRACE}-${SPAN}-00`)).toEqual({ traceId: TRACE, spanId: SPAN, flags: 0 });
  });

  it('a higher version is parsed by the version-00 layout and may continue only after a dash', () => {
    expect(parseTraceparent(`01-${TRACE}-${SPAN}-01`)).toEqual({ traceId: TRACE, spanId: SPAN, flags: 1 });
    expect(parseTraceparent(`cc-${TRACE}-${SPAN}-09-what-the-future-adds`)).toEqual({ traceId: TRACE, spanId: SPAN, flags: 9 });
    expect(parseTraceparent(`01-${TRACE}-${SPAN}-01.x`)).toBeUndefined();
  });

  const invalid: Array<[string, string | undefined | null]> = [
    ['absent', undefined],
    ['null', null],
    ['empty', ''],
    ['version ff', `ff-${TRACE}-${SPAN}-01`],
    ['version 00 with trailing data', `00-${TRACE}-${SPAN}-01-extra`],
    ['upper-case hex', `00-${TRACE.toUpperCase()}-${SPAN}-01`],
    ['upper-case version', `0A-${TRACE}-${SPAN}-01`],
    ['all-zero trace-id', `00-${'0'.repeat(32)}-${SPAN}-01`],
    ['all-zero parent-id', `00-${TRACE}-${'0'.repeat(16)}-01`],
    ['short trace-id', `00-${TRACE.slice(1)}-${SPAN}-01`],
    ['long parent-id', `00-${TRACE}-${SPAN}0-01`],
    ['one-digit flags', `00-${TRACE}-${SPAN}-1`],
    ['non-hex', `00-${TRACE.slice(0, 31)}g-${SPAN}-01`],
    ['wrong separators', `00_${TRACE}_${SPAN}_01`],
    ['two headers joined by a comma', `${VALID}, 00-${TRACE}-${'1'.repeat(16)}-01`],
    ['leading space', ` ${VALID}`],
    ['too long', `01-${TRACE}-${SPAN}-01-${'a'.repeat(600)}`],
  ];
  for (const [what, v] of invalid) it(`ignores: ${what}`, () => expect(parseTraceparent(v)).toBeUndefined());
});

describe('traceparent in the request’s log lines', () => {
  const lines = (all: string[]) => all.map((l) => JSON.parse(l) as Record<string, unknown>);

  it('a valid traceparent: traceId and spanId on the access line and the error line', async () => {
    const { app, lines: out } = testBroker();
    const r = await postJson(app, '/v1/attest', { nope: 1 }, { traceparent: VALID, 'x-request-id': 'req-1' });
    expect(r.status).toBe(400);
    const logged = lines(out).filter((l) => l.requestId === 'req-1');
    expect(logged.map((l) => l.msg)).toEqual(['request failed', 'request']);
    for (const l of logged) expect(l).toMatchObject({ traceId: TRACE, spanId: SPAN });
  });

  it('an invalid traceparent is ignored: the request is served and logged without a trace', async () => {
    const { app, lines: out } = testBroker();
    const r = await postJson(app, '/v1/challenge', {}, { traceparent: `00-${TRACE.toUpperCase()}-${SPAN}-01`, 'x-request-id': 'req-2' });
    expect(r.status).toBe(201);
    const logged = lines(out).filter((l) => l.requestId === 'req-2');
    expect(logged).toHaveLength(1);
    expect(logged[0]).not.toHaveProperty('traceId');
    expect(logged[0]).not.toHaveProperty('spanId');
    expect(r.headers.get('traceparent')).toBeNull(); // nothing echoed
  });

  it('no traceparent: no trace fields', async () => {
    const { app, lines: out } = testBroker();
    await postJson(app, '/v1/challenge', {}, { 'x-request-id': 'req-3' });
    expect(lines(out).find((l) => l.requestId === 'req-3')).not.toHaveProperty('traceId');
  });

  it('the trace reaches release (its log lines carry it), and only a valid one', async () => {
    const seen: Array<ReleaseRequest['trace']> = [];
    const release: ReleaseService = {
      async release(req) {
        seen.push(req.trace);
        return { nodeName: req.decision.nodeName, expiresAt: new Date(0).toISOString() };
      },
    };
    const { app } = testBroker({ providers: [bindingEchoProvider], policy: allowAll, release });
    for (const traceparent of [VALID, 'garbage']) {
      const ch = (await (await postJson(app, '/v1/challenge', {})).json()) as { challengeId: string; nonce: string };
      const body = { challengeId: ch.challengeId, provider: 'tpm', format: TEST_FORMAT, evidence: { binding: toHex(fromBase64Url(ch.nonce)) } };
      expect((await postJson(app, '/v1/attest', body, { traceparent })).status).toBe(200);
    }
    expect(seen).toEqual([{ traceId: TRACE, spanId: SPAN }, undefined]);
  });

  it('release’s own log lines carry the trace', async () => {
    const clock = fixedClock();
    const store = new MemoryStore({ clock });
    const logger = captureLogger();
    const kube = new KubeClient({ server: 'https://api.test:6443', fetch: async () => new Response('{}', { status: 403 }), sleep: async () => undefined });
    const svc = new BrokerReleaseService({
      store,
      clock,
      logger,
      audit: new HashChainAudit({ store, clock, write: async () => undefined }),
      clusters: { prod: { apiServer: 'https://api.prod.example:6443', kube } },
    });
    const req = { claims: claimsFor(), decision: decisionFor({}, { allowUnsealed: true }), want: ['bootstrap-token'] as const, requestId: 'req-5', trace: { traceId: TRACE, spanId: SPAN } };
    await expect(svc.release(req)).rejects.toMatchObject({ code: 'KUBE_FORBIDDEN' });
    const failed = logger.lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.msg === 'release failed; nothing released');
    expect(failed).toMatchObject({ requestId: 'req-5', traceId: TRACE, spanId: SPAN });
  });
});

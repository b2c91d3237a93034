/**
 * Abuse limits through the app (app.request, injected peer): per-address limits on challenge and
 * attest, per-identity limit on verified attests, trusted-proxy X-Forwarded-For, and a full
 * challenge space that answers 503 STORE_FULL (never 500) without blocking a release already in
 * progress. The server-level limits (timeouts, connection caps, the flood) are in
 * limits-server.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { clientKey, parseCidr, parseIp } from '../../broker/http/address.js';
import { MemoryStore } from '../../broker/store/memory.js';
import { isAttestError } from '../../providers/common/errors.js';
import { toHex, fromBase64Url } from '../../providers/common/encoding.js';
import type { Peer } from '../../broker/contracts.js';
import { testBroker, postJson, NO_LIMITS } from '../helpers/broker.js';
import { bindingEchoProvider, TEST_FORMAT, allowAll, echoRelease } from '../helpers/test-provider.js';

const trusted = ['10.0.0.0/8', 'fd00::/8'].map(parseCidr);

describe('client address', () => {
  it.each([
    ['the TCP peer without proxies', '192.0.2.7', undefined, [], '192.0.2.7'],
    ['X-Forwarded-For from an untrusted peer is ignored', '192.0.2.7', '198.51.100.1', trusted, '192.0.2.7'],
    ['through one trusted proxy', '10.1.2.3', '198.51.100.1', trusted, '198.51.100.1'],
    ['a client cannot prepend its way out: the rightmost untrusted hop counts', '10.1.2.3', '203.0.113.9, 198.51.100.1', trusted, '198.51.100.1'],
    ['through two trusted proxies', '10.1.2.3', '198.51.100.1, 10.9.9.9', trusted, '198.51.100.1'],
    ['garbage in the header stops at the last good hop', '10.1.2.3', 'garbage, 10.9.9.9', trusted, '10.9.9.9'],
    ['IPv6 is keyed by its /64', '2001:db8:1:2:aaaa:bbbb:cccc:dddd', undefined, [], '2001:db8:1:2::/64'],
    ['another address of the same /64 shares the key', '2001:db8:1:2::1', undefined, [], '2001:db8:1:2::/64'],
    ['IPv4-mapped IPv6 is IPv4', '::ffff:192.0.2.7', undefined, [], '192.0.2.7'],
    ['an IPv6 trusted proxy', 'fd00::5', '2001:db8:9::1', trusted, '2001:db8:9:0::/64'],
    ['no peer (in-process request)', undefined, '198.51.100.1', trusted, 'local'],
  ] as const)('%s', (_name, peer, xff, proxies, want) => {
    expect(clientKey(peer, xff, proxies)).toBe(want);
  });

  it('parses and refuses addresses and ranges strictly', () => {
    expect(parseIp('1.2.3.4')).toEqual({ v: 4, bits: 0x01020304n });
    expect(parseIp('::1')).toEqual({ v: 6, bits: 1n });
    for (const bad of ['1.2.3', '1.2.3.256', '01.2.3.4', '1::2::3', 'g::1', '1:2:3:4:5:6:7:8:9', '']) expect(parseIp(bad), bad).toBeUndefined();
    for (const bad of ['10.0.0.0/33', '10.0.0.0/x', 'host/8', '::/129']) expect(() => parseCidr(bad), bad).toThrow();
    expect(parseCidr('10.1.2.3/8')).toEqual({ v: 4, bits: 0x0a000000n, prefix: 8 });
  });
});

async function challenge(app: ReturnType<typeof testBroker>['app'], headers: Record<string, string> = {}) {
  return postJson(app, '/v1/challenge', {}, headers);
}

describe('rate limits through the app', () => {
  it('per client address: 429 RATE_LIMITED with Retry-After; another address is unaffected', async () => {
    let addr = '192.0.2.1';
    const { app } = testBroker({ peer: (): Peer => ({ address: addr }), options: { rateLimits: { ...NO_LIMITS, challenge: { limit: 3, windowSeconds: 60 } } } });
    for (let i = 0; i < 3; i++) expect((await challenge(app)).status).toBe(201);
    const r = await challenge(app);
    expect(r.status).toBe(429);
    const retry = Number(r.headers.get('retry-after'));
    expect(retry).toBeGreaterThanOrEqual(1);
    expect(retry).toBeLessThanOrEqual(60);
    const body = (await r.json()) as { code: string; status: number; type: string };
    expect(body).toMatchObject({ code: 'RATE_LIMITED', status: 429 });
    expect(r.headers.get('content-type')).toBe('application/problem+json');
    addr = '192.0.2.2';
    expect((await challenge(app)).status).toBe(201);
  });

  it('X-Forwarded-For counts only behind a trusted proxy', async () => {
    const { app } = testBroker({
      peer: (): Peer => ({ address: '203.0.113.50' }),
      options: { trustedProxies: ['10.0.0.0/8'], rateLimits: { ...NO_LIMITS, challenge: { limit: 2, windowSeconds: 60 } } },
    });
    // An untrusted client rotating X-Forwarded-For is still one address.
    for (let i = 0; i < 2; i++) expect((await challenge(app, { 'x-forwarded-for': `198.51.100.${i}` })).status).toBe(201);
    expect((await challenge(app, { 'x-forwarded-for': '198.51.100.99' })).status).toBe(429);
    const viaProxy = testBroker({
      peer: (): Peer => ({ address: '10.0.0.9' }),
      options: { trustedProxies: ['10.0.0.0/8'], rateLimits: { ...NO_LIMITS, challenge: { limit: 2, windowSeconds: 60 } } },
    });
    for (let i = 0; i < 5; i++) expect((await challenge(viaProxy.app, { 'x-forwarded-for': `198.51.100.${i}` })).status).toBe(201);
  });

  it('per attested identity: a node past its verified-attest budget gets 429 whatever its address', async () => {
    let n = 0;
    const { app } = testBroker({
      providers: [bindingEchoProvider],
      policy: allowAll,
      release: echoRelease,
      peer: (): Peer => ({ address: `192.0.2.${++n}` }),
      options: { rateLimits: { ...NO_LIMITS, identity: { limit: 2, windowSeconds: 600 } } },
    });
    const attest = async () => {
      const ch = (await (await challenge(app)).json()) as { challengeId: string; nonce: string };
      return postJson(app, '/v1/attest', { challengeId: ch.challengeId, provider: 'tpm', format: TEST_FORMAT, evidence: { binding: toHex(fromBase64Url(ch.nonce)) } });
    };
    expect((await attest()).status).toBe(200);
    expect((await attest()).status).toBe(200);
    const r = await attest();
    expect(r.status).toBe(429);
    expect(((await r.json()) as { code: string }).code).toBe('RATE_LIMITED');
    expect(Number(r.headers.get('retry-after'))).toBeGreaterThan(0);
  });
});

describe('a full challenge space', () => {
  it('answers 503 STORE_FULL with Retry-After (never 500), and a node holding a challenge still gets its release', async () => {
    const store = new MemoryStore({ maxChallenges: 100 });
    const { app } = testBroker({ store, providers: [bindingEchoProvider], policy: allowAll, release: echoRelease });
    const held = (await (await challenge(app)).json()) as { challengeId: string; nonce: string };
    for (let i = 0; i < 99; i++) expect((await challenge(app)).status).toBe(201);
    const statuses = new Set<number>();
    for (let i = 0; i < 50; i++) {
      const r = await challenge(app);
      statuses.add(r.status);
      if (r.status === 503) {
        expect(((await r.json()) as { code: string }).code).toBe('STORE_FULL');
        expect(Number(r.headers.get('retry-after'))).toBeGreaterThan(0);
      }
    }
    expect([...statuses]).toEqual([503]);
    // Release state has its own space: the node that already holds a challenge is admitted.
    const ok = await postJson(app, '/v1/attest', { challengeId: held.challengeId, provider: 'tpm', format: TEST_FORMAT, evidence: { binding: toHex(fromBase64Url(held.nonce)) } });
    expect(ok.status).toBe(200);
    // …and its consumed challenge freed one place.
    expect((await challenge(app)).status).toBe(201);
  });

  it('the memory store keeps its spaces apart and sweeps expired entries in O(1) per write', async () => {
    let now = 1_000_000;
    const s = new MemoryStore({ clock: { now: () => new Date(now) }, maxChallenges: 1000, maxEntries: 10, maxCounters: 10 });
    const rec = { nonce: 'n'.repeat(43), issuedAt: new Date(now).toISOString(), expiresAt: new Date(now + 120_000).toISOString() };
    for (let i = 0; i < 1000; i++) await s.putChallenge(`c${i}`, rec, 120_000);
    const full = await s.putChallenge('one-more', rec, 120_000).catch((e: unknown) => e);
    expect(isAttestError(full) && full.code).toBe('STORE_FULL');
    // Release state and counters are unaffected by full challenges.
    for (let i = 0; i < 10; i++) await s.set(`k${i}`, 'v', 60_000);
    expect(await s.incr('rl', 60_000)).toBe(1);
    // Once the first challenges expire, new ones fit again (the head of the map is swept).
    now += 121_000;
    await s.putChallenge('after-expiry', rec, 120_000);
    expect(await s.consumeChallenge('after-expiry')).toMatchObject({ nonce: rec.nonce });
    expect(await s.consumeChallenge('c0')).toBeNull();
  });
});

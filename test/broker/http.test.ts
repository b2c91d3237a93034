/**
 * The HTTP surface of protocol.md §1, §3 and §5 through `app.request()`: status codes,
 * problem+json bodies with stable codes, single-use challenges, body caps and strict schemas.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postJson, testBroker } from '../helpers/broker.js';
import { allowAll, bindingEchoProvider, echoRelease, TEST_FORMAT } from '../helpers/test-provider.js';
import { fromBase64Url, toHex } from '../../providers/common/encoding.js';
import { RedisStore } from '../../broker/store/redis.node.js';
import { MemoryStore } from '../../broker/store/memory.js';
import { startRedis, type RedisServer } from '../helpers/redis.js';
import { computeBinding } from '../../broker/binding.js';

async function challenge(app: ReturnType<typeof testBroker>['app'], body: unknown = {}) {
  const r = await postJson(app, '/v1/challenge', body);
  expect(r.status).toBe(201);
  return (await r.json()) as { challengeId: string; nonce: string; expiresAt: string };
}

describe('operations endpoints', () => {
  it('readyz is 503 NOT_READY while no provider is enabled (a broker that can verify nothing admits nobody)', async () => {
    const { app } = testBroker();
    const r = await app.request('/readyz');
    expect(r.status).toBe(503);
    expect(await r.json()).toMatchObject({ code: 'NOT_READY', detail: 'not ready: no provider enabled' });
    expect((await app.request('/healthz')).status).toBe(200);
  });

  it('healthz 200, readyz 200 with a reachable store and a provider, metrics as Prometheus text', async () => {
    const { app } = testBroker({ providers: [bindingEchoProvider] });
    expect((await app.request('/healthz')).status).toBe(200);
    const r = await app.request('/readyz');
    expect(r.status).toBe(200);
    await challenge(app);
    const m = await app.request('/metrics');
    expect(m.headers.get('content-type')).toContain('text/plain');
    expect(await m.text()).toContain('attest_broker_challenges_total 1');
  });
  it('unknown routes are a 404 problem', async () => {
    const { app } = testBroker();
    const r = await app.request('/nope');
    expect(r.status).toBe(404);
    expect(r.headers.get('content-type')).toContain('application/problem+json');
    expect(((await r.json()) as { code: string }).code).toBe('NOT_FOUND');
  });
});

describe('POST /v1/challenge', () => {
  it('201 with a 32-byte nonce, an id and an expiry 120 s out, not cacheable', async () => {
    const { app } = testBroker({ clock: { now: () => new Date('2026-01-01T00:00:00Z') } });
    const r = await postJson(app, '/v1/challenge', { provider: 'tpm', cluster: 'prod-eu' });
    expect(r.status).toBe(201);
    expect(r.headers.get('cache-control')).toBe('no-store');
    const b = (await r.json()) as { challengeId: string; nonce: string; expiresAt: string };
    expect(fromBase64Url(b.nonce)).toHaveLength(32);
    expect(b.challengeId).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(b.expiresAt).toBe('2026-01-01T00:02:00.000Z');
  });
  it('nonces are unique', async () => {
    const { app } = testBroker();
    const seen = new Set<string>();
    for (let i = 0; i < 200; i++) seen.add((await challenge(app)).nonce);
    expect(seen.size).toBe(200);
  });
});

describe('POST /v1/attest', () => {
  const deps = { providers: [bindingEchoProvider], policy: allowAll, release: echoRelease };

  it('accepts evidence bound to the challenge nonce, once; a replay is CHALLENGE_UNKNOWN (404)', async () => {
    const { app } = testBroker(deps);
    const ch = await challenge(app);
    const body = { challengeId: ch.challengeId, provider: 'tpm', format: TEST_FORMAT, evidence: { binding: toHex(fromBase64Url(ch.nonce)) } };
    const ok = await postJson(app, '/v1/attest', body);
    expect(ok.status).toBe(200);
    expect(((await ok.json()) as { release: { nodeName: string } }).release.nodeName).toBe('node-1');
    const replay = await postJson(app, '/v1/attest', body);
    expect(replay.status).toBe(404);
    expect(((await replay.json()) as { code: string }).code).toBe('CHALLENGE_UNKNOWN');
  });

  it('with an ephemeral key the binding is SHA-256(nonce ‖ thumbprint); the bare nonce is then rejected', async () => {
    const { app } = testBroker(deps);
    const kp = (await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign'])) as CryptoKeyPair;
    const jwk = await crypto.subtle.exportKey('jwk', kp.publicKey);
    const ephemeralKey = { kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y };
    const ch1 = await challenge(app);
    const bad = await postJson(app, '/v1/attest', {
      challengeId: ch1.challengeId, provider: 'tpm', format: TEST_FORMAT, ephemeralKey, evidence: { binding: toHex(fromBase64Url(ch1.nonce)) },
    });
    expect(((await bad.json()) as { code: string }).code).toBe('NONCE_MISMATCH');
    const ch2 = await challenge(app);
    const binding = await computeBinding(fromBase64Url(ch2.nonce), ephemeralKey);
    const good = await postJson(app, '/v1/attest', { challengeId: ch2.challengeId, provider: 'tpm', format: TEST_FORMAT, ephemeralKey, evidence: { binding: toHex(binding) } });
    expect(good.status).toBe(200);
  });

  it('an expired challenge is refused (CHALLENGE_EXPIRED or CHALLENGE_UNKNOWN)', async () => {
    let now = new Date('2026-01-01T00:00:00Z');
    const clock = { now: () => now };
    const { app } = testBroker({ ...deps, clock, store: new MemoryStore({ clock: { now: () => new Date('2026-01-01T00:00:00Z') } }) });
    const ch = await challenge(app);
    now = new Date('2026-01-01T00:02:01Z');
    const r = await postJson(app, '/v1/attest', { challengeId: ch.challengeId, provider: 'tpm', format: TEST_FORMAT, evidence: { binding: toHex(fromBase64Url(ch.nonce)) } });
    expect(r.status).toBe(410);
    expect(((await r.json()) as { code: string }).code).toBe('CHALLENGE_EXPIRED');
    // And once the store's TTL has passed, the record is simply gone.
    const { app: app2 } = testBroker({ ...deps, store: new MemoryStore({ clock }) });
    now = new Date('2026-01-01T00:00:00Z');
    const ch2 = await challenge(app2);
    now = new Date('2026-01-01T00:05:00Z');
    const r2 = await postJson(app2, '/v1/attest', { challengeId: ch2.challengeId, provider: 'tpm', format: TEST_FORMAT, evidence: {} });
    expect(((await r2.json()) as { code: string }).code).toBe('CHALLENGE_UNKNOWN');
  });

  it('1,000 concurrent attests on one challenge: exactly one 200', async () => {
    const { app } = testBroker(deps);
    const ch = await challenge(app);
    const body = JSON.stringify({ challengeId: ch.challengeId, provider: 'tpm', format: TEST_FORMAT, evidence: { binding: toHex(fromBase64Url(ch.nonce)) } });
    const rs = await Promise.all(Array.from({ length: 1000 }, () => postJson(app, '/v1/attest', body)));
    const statuses = rs.map((r) => r.status);
    expect(statuses.filter((s) => s === 200)).toHaveLength(1);
    expect(statuses.filter((s) => s === 404)).toHaveLength(999);
  });

  it('a format nobody registered is PROVIDER_UNAVAILABLE (501) and does not burn the challenge', async () => {
    const { app } = testBroker(deps);
    const ch = await challenge(app);
    const r = await postJson(app, '/v1/attest', { challengeId: ch.challengeId, provider: 'gcp', format: 'gotpm', evidence: {} });
    expect(r.status).toBe(501);
    expect(((await r.json()) as { code: string }).code).toBe('PROVIDER_UNAVAILABLE');
    const again = await postJson(app, '/v1/attest', { challengeId: ch.challengeId, provider: 'tpm', format: TEST_FORMAT, evidence: { binding: toHex(fromBase64Url(ch.nonce)) } });
    expect(again.status).toBe(200);
  });

  it('without a policy nobody is admitted (POLICY_UNAVAILABLE, 503)', async () => {
    // (Whether a release may go out unsealed is the release service's rule alone: see
    // test/release/service.test.ts and the HTTP tests of the real release in test/release/.)
    const { app } = testBroker({ providers: [bindingEchoProvider] });
    const ch = await challenge(app);
    const r = await postJson(app, '/v1/attest', { challengeId: ch.challengeId, provider: 'tpm', format: TEST_FORMAT, evidence: { binding: toHex(fromBase64Url(ch.nonce)) } });
    expect(r.status).toBe(503);
    expect(((await r.json()) as { code: string }).code).toBe('POLICY_UNAVAILABLE');
  });
});

describe('bad input: every case is a 4xx problem with a stable code', () => {
  const big = 'A'.repeat(1024 * 1024 + 10);
  const valid = { challengeId: 'aaaaaaaaaaaaaaaaaaaaaa', provider: 'tpm', format: TEST_FORMAT, evidence: {} };
  const rows: { name: string; path: string; body: string; ct?: string; status: number; code: string }[] = [
    { name: 'malformed JSON', path: '/v1/attest', body: '{"challengeId":', status: 400, code: 'BODY_NOT_JSON' },
    { name: 'malformed JSON (challenge)', path: '/v1/challenge', body: '{', status: 400, code: 'BODY_NOT_JSON' },
    { name: 'wrong content type', path: '/v1/attest', body: JSON.stringify(valid), ct: 'text/plain', status: 415, code: 'UNSUPPORTED_MEDIA_TYPE' },
    { name: 'form content type', path: '/v1/challenge', body: 'a=b', ct: 'application/x-www-form-urlencoded', status: 415, code: 'UNSUPPORTED_MEDIA_TYPE' },
    { name: 'oversized body', path: '/v1/attest', body: JSON.stringify({ ...valid, evidence: { x: big } }), status: 413, code: 'BODY_TOO_LARGE' },
    { name: 'unknown top-level field', path: '/v1/attest', body: JSON.stringify({ ...valid, ephemeralkey: {} }), status: 400, code: 'SCHEMA_INVALID' },
    { name: 'unknown challenge field', path: '/v1/challenge', body: JSON.stringify({ nonce: 'x' }), status: 400, code: 'SCHEMA_INVALID' },
    { name: 'unknown provider', path: '/v1/attest', body: JSON.stringify({ ...valid, provider: 'ibm' }), status: 400, code: 'SCHEMA_INVALID' },
    { name: 'missing evidence', path: '/v1/attest', body: JSON.stringify({ ...valid, evidence: undefined }), status: 400, code: 'SCHEMA_INVALID' },
    { name: 'evidence is an array', path: '/v1/attest', body: JSON.stringify({ ...valid, evidence: [1] }), status: 400, code: 'SCHEMA_INVALID' },
    { name: 'challenge id with bad characters', path: '/v1/attest', body: JSON.stringify({ ...valid, challengeId: '../../etc/passwd' }), status: 400, code: 'SCHEMA_INVALID' },
    { name: 'wrong base64 in ephemeral key', path: '/v1/attest', body: JSON.stringify({ ...valid, ephemeralKey: { kty: 'EC', crv: 'P-256', x: '+'.repeat(43), y: 'A'.repeat(43) } }), status: 400, code: 'SCHEMA_INVALID' },
    { name: 'ephemeral key on a weak curve', path: '/v1/attest', body: JSON.stringify({ ...valid, ephemeralKey: { kty: 'EC', crv: 'secp256k1', x: 'A'.repeat(43), y: 'A'.repeat(43) } }), status: 400, code: 'SCHEMA_INVALID' },
    { name: 'private key material in ephemeral key', path: '/v1/attest', body: JSON.stringify({ ...valid, ephemeralKey: { kty: 'EC', crv: 'P-256', x: 'A'.repeat(43), y: 'A'.repeat(43), d: 'A'.repeat(43) } }), status: 400, code: 'SCHEMA_INVALID' },
    { name: 'RSA key too small', path: '/v1/attest', body: JSON.stringify({ ...valid, ephemeralKey: { kty: 'RSA', n: 'A'.repeat(100), e: 'AQAB' } }), status: 400, code: 'SCHEMA_INVALID' },
    { name: 'wrong base64 in wrapped disk key', path: '/v1/attest', body: JSON.stringify({ ...valid, diskKey: { wrapped: 'a/b=' } }), status: 400, code: 'SCHEMA_INVALID' },
    { name: 'huge want array', path: '/v1/attest', body: JSON.stringify({ ...valid, want: Array(10000).fill('bootstrap-token') }), status: 400, code: 'SCHEMA_INVALID' },
    { name: 'unknown want', path: '/v1/attest', body: JSON.stringify({ ...valid, want: ['root-shell'] }), status: 400, code: 'SCHEMA_INVALID' },
    { name: 'duplicate want', path: '/v1/attest', body: JSON.stringify({ ...valid, want: ['disk-key', 'disk-key'] }), status: 400, code: 'SCHEMA_INVALID' },
    { name: 'deeply nested evidence', path: '/v1/attest', body: JSON.stringify({ ...valid, evidence: JSON.parse('{"a":'.repeat(20) + '1' + '}'.repeat(20)) }), status: 400, code: 'SCHEMA_INVALID' },
    { name: 'huge array in evidence (format check rejects before crypto)', path: '/v1/attest', body: JSON.stringify({ ...valid, format: 'Bad_Format', evidence: { a: Array(50000).fill(0) } }), status: 400, code: 'SCHEMA_INVALID' },
    { name: 'cluster not DNS-1123', path: '/v1/challenge', body: JSON.stringify({ cluster: 'Prod_EU' }), status: 400, code: 'SCHEMA_INVALID' },
    { name: 'JSON null body', path: '/v1/attest', body: 'null', status: 400, code: 'SCHEMA_INVALID' },
  ];
  it.each(rows)('$name → $status $code', async (row) => {
    const { app } = testBroker({ providers: [bindingEchoProvider] });
    const r = await app.request(row.path, { method: 'POST', headers: { 'content-type': row.ct ?? 'application/json' }, body: row.body });
    expect(r.status).toBe(row.status);
    expect(r.headers.get('content-type')).toContain('application/problem+json');
    const p = (await r.json()) as { code: string; status: number; type: string; title: string; detail: string };
    expect(p.code).toBe(row.code);
    expect(p.status).toBe(row.status);
    expect(p.type).toMatch(/^https:\/\//);
    expect(typeof p.title).toBe('string');
    expect(typeof p.detail).toBe('string');
  });

  it('an internal bug is a bare 500 INTERNAL with no stack or message', async () => {
    const boom = { ...bindingEchoProvider, verify: async () => { throw new TypeError('secret internals at /srv/x.ts:12'); } };
    const { app, lines } = testBroker({ providers: [boom] });
    const ch = await challenge(app);
    const r = await postJson(app, '/v1/attest', { challengeId: ch.challengeId, provider: 'tpm', format: TEST_FORMAT, evidence: {} });
    expect(r.status).toBe(500);
    const text = await r.text();
    expect(text).toContain('"code":"INTERNAL"');
    expect(text).not.toContain('secret internals');
    expect(lines.join('\n')).toContain('secret internals'); // …but the operator sees it in the log
  });
});

describe('Redis outage over HTTP', () => {
  let server: RedisServer;
  beforeAll(async () => {
    server = await startRedis();
  });
  afterAll(async () => {
    await server?.stop().catch(() => {});
  });
  it('gives 503 problems (challenge, attest, readyz) — never a crash, never an accepted attest', async () => {
    const store = new RedisStore({ url: server.url, commandTimeoutMs: 500, connectTimeoutMs: 500 });
    const { app } = testBroker({ store, providers: [bindingEchoProvider], policy: allowAll, release: echoRelease });
    const ch = await challenge(app);
    expect((await app.request('/readyz')).status).toBe(200);
    await server.kill();
    const c = await postJson(app, '/v1/challenge', {});
    expect(c.status).toBe(503);
    expect(((await c.json()) as { code: string }).code).toBe('STORE_UNAVAILABLE');
    expect(c.headers.get('retry-after')).toBe('5');
    const a = await postJson(app, '/v1/attest', { challengeId: ch.challengeId, provider: 'tpm', format: TEST_FORMAT, evidence: { binding: toHex(fromBase64Url(ch.nonce)) } });
    expect(a.status).toBe(503);
    expect(((await a.json()) as { code: string }).code).toBe('STORE_UNAVAILABLE');
    const rz = await app.request('/readyz');
    expect(rz.status).toBe(503);
    expect(((await rz.json()) as { code: string }).code).toBe('NOT_READY');
    await store.close();
  });
});

describe('stored challenge records are checked, not trusted', () => {
  it('a corrupt record in the store is a 500 INTERNAL-class problem, never an accepted attest', async () => {
    const store = new MemoryStore();
    await store.putChallenge('cccccccccccccccccccccc', { nonce: 'short', issuedAt: 'x', expiresAt: 'not a date' }, 60_000);
    const { app } = testBroker({ store, providers: [bindingEchoProvider], policy: allowAll, release: echoRelease });
    const r = await postJson(app, '/v1/attest', { challengeId: 'cccccccccccccccccccccc', provider: 'tpm', format: TEST_FORMAT, evidence: { binding: '00' } });
    expect(r.status).toBe(500);
    expect(((await r.json()) as { code: string }).code).toBe('CHALLENGE_RECORD_CORRUPT');
  });
});

/**
 * Inside workerd (@cloudflare/vitest-pool-workers): the Worker entry serves the same app, and
 * the Durable Object store keeps the StateStore contract — exactly one of 1,000 concurrent
 * consumers wins, expired records are gone, outages never read as "not found".
 */
import { env, SELF } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { DurableObjectStore } from '../../broker/store/durable-object.worker.js';
import type { ChallengeRecord } from '../../broker/contracts.js';

const rec: ChallengeRecord = { nonce: 'n', issuedAt: '2026-01-01T00:00:00Z', expiresAt: '2099-01-01T00:00:00Z' };
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const ns = (env as any).STATE;

describe('Worker entry', () => {
  it('serves healthz and a 201 challenge with a 32-byte nonce; readyz is 503 with no provider enabled (PROVIDERS="")', async () => {
    expect((await SELF.fetch('https://broker.test/healthz')).status).toBe(200);
    const r = await SELF.fetch('https://broker.test/v1/challenge', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    expect(r.status).toBe(201);
    const b = (await r.json()) as { nonce: string; challengeId: string };
    const raw = atob(b.nonce.replace(/-/g, '+').replace(/_/g, '/'));
    expect(raw.length).toBe(32);
    const rz = await SELF.fetch('https://broker.test/readyz');
    expect(rz.status).toBe(503);
    const body = (await rz.json()) as { code: string; detail: string };
    expect(body.code).toBe('NOT_READY');
    expect(body.detail).toContain('no provider enabled');
  });

  it('a format nobody registered is PROVIDER_UNAVAILABLE in workerd too', async () => {
    const r = await SELF.fetch('https://broker.test/v1/attest', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ challengeId: 'aaaaaaaaaaaaaaaaaaaaaa', provider: 'tpm', format: 'tpm', evidence: {} }),
    });
    expect(r.status).toBe(501);
    expect(((await r.json()) as { code: string }).code).toBe('PROVIDER_UNAVAILABLE');
  });

  it('bad input gets problem+json', async () => {
    const r = await SELF.fetch('https://broker.test/v1/challenge', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{' });
    expect(r.status).toBe(400);
    expect(r.headers.get('content-type')).toContain('application/problem+json');
    expect(((await r.json()) as { code: string }).code).toBe('BODY_NOT_JSON');
  });
});

describe('Durable Object store contract', () => {
  it('1,000 concurrent consumes of one challenge: exactly one wins', async () => {
    const s = new DurableObjectStore(ns);
    await s.putChallenge('race', rec, 60_000);
    const got = await Promise.all(Array.from({ length: 1000 }, () => s.consumeChallenge('race')));
    expect(got.filter((g) => g !== null)).toHaveLength(1);
  });

  it('an expired challenge is gone (injected clock)', async () => {
    let now = new Date('2026-01-01T00:00:00Z');
    const s = new DurableObjectStore(ns, { now: () => now });
    await s.putChallenge('exp', rec, 1000);
    now = new Date('2026-01-01T00:00:02Z');
    expect(await s.consumeChallenge('exp')).toBeNull();
  });

  it('setIfAbsent and compareAndSet are atomic', async () => {
    const s = new DurableObjectStore(ns);
    const r = await Promise.all(Array.from({ length: 100 }, (_, i) => s.setIfAbsent('once', `v${i}`)));
    expect(r.filter(Boolean)).toHaveLength(1);
    expect(await s.compareAndSet('head', null, 'a')).toBe(true);
    const c = await Promise.all(Array.from({ length: 20 }, (_, i) => s.compareAndSet('head', 'a', `b${i}`)));
    expect(c.filter(Boolean)).toHaveLength(1);
    await s.ping();
  });

  it('incr counts concurrent increments exactly, per window (rate limits across isolates)', async () => {
    // The store's clock is pinned at the real time, and the window is a minute: the Durable
    // Object's expiry alarm runs on real time, so a window already past in real time (or a short
    // one on a loaded machine) could be swept away during the 100 calls.
    let now = new Date(Math.floor(Date.now() / 1000) * 1000);
    const s = new DurableObjectStore(ns, { now: () => now });
    const r = await Promise.all(Array.from({ length: 100 }, () => s.incr('rl-window', 60_000)));
    expect(Math.max(...r)).toBe(100);
    expect(new Set(r).size).toBe(100);
    now = new Date(now.getTime() + 61_000);
    expect(await s.incr('rl-window', 60_000)).toBe(1);
  });

  it('a failing namespace surfaces as STORE_UNAVAILABLE', async () => {
    const broken = { idFromName: () => { throw new Error('binding gone'); }, get: () => { throw new Error('x'); } };
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    const s = new DurableObjectStore(broken as any);
    await expect(s.consumeChallenge('x')).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE', kind: 'unavailable' });
  });
});

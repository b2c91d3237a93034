/**
 * Every StateStore honours the same contract: single-use challenges under concurrency, expiry,
 * setIfAbsent/compareAndSet atomicity, and outages as STORE_UNAVAILABLE (never "not found").
 * The Durable Object store runs the same checks inside workerd (test/workers/).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryStore } from '../../broker/store/memory.js';
import { RedisStore, createRedisClient } from '../../broker/store/redis.node.js';
import type { ChallengeRecord, StateStore } from '../../broker/contracts.js';
import { AttestError } from '../../providers/common/errors.js';
import { startRedis, type RedisServer } from '../helpers/redis.js';

const rec = (): ChallengeRecord => ({ nonce: 'n', issuedAt: new Date().toISOString(), expiresAt: new Date(Date.now() + 60_000).toISOString() });

function contract(name: string, make: () => Promise<StateStore>, waitExpiry: (s: StateStore) => Promise<void>) {
  describe(`${name} store contract`, () => {
    let s: StateStore;
    beforeAll(async () => {
      s = await make();
    });
    afterAll(async () => {
      await s.close();
    });

    it('1,000 concurrent consumes of one challenge: exactly one wins', async () => {
      await s.putChallenge('race-1', rec(), 60_000);
      const got = await Promise.all(Array.from({ length: 1000 }, () => s.consumeChallenge('race-1')));
      expect(got.filter((g) => g !== null)).toHaveLength(1);
      expect(await s.consumeChallenge('race-1')).toBeNull();
    });

    it('many challenges consumed concurrently: each exactly once', async () => {
      const ids = Array.from({ length: 200 }, (_, i) => `many-${i}`);
      await Promise.all(ids.map((id) => s.putChallenge(id, rec(), 60_000)));
      const got = await Promise.all(ids.flatMap((id) => [s.consumeChallenge(id), s.consumeChallenge(id), s.consumeChallenge(id)]));
      expect(got.filter((g) => g !== null)).toHaveLength(200);
    });

    it('an expired challenge is gone', async () => {
      await s.putChallenge('exp-1', rec(), 30);
      await waitExpiry(s);
      expect(await s.consumeChallenge('exp-1')).toBeNull();
    });

    it('setIfAbsent: of 200 concurrent callers exactly one sets', async () => {
      const r = await Promise.all(Array.from({ length: 200 }, (_, i) => s.setIfAbsent('once', `v${i}`, 60_000)));
      expect(r.filter(Boolean)).toHaveLength(1);
      const v = await s.get('once');
      expect(v).toMatch(/^v\d+$/);
    });

    it('compareAndSet: a hash chain head advances exactly once per expected value', async () => {
      expect(await s.compareAndSet('head', null, 'h1')).toBe(true);
      const r = await Promise.all(Array.from({ length: 50 }, (_, i) => s.compareAndSet('head', 'h1', `h2-${i}`)));
      expect(r.filter(Boolean)).toHaveLength(1);
      expect(await s.compareAndSet('head', 'h1', 'x')).toBe(false);
      await s.delete('head');
      expect(await s.get('head')).toBeNull();
    });

    it('incr: 300 concurrent increments count exactly; the counter expires with its window and is apart from get/set', async () => {
      // A window long enough that a loaded machine cannot see it end during the 300 calls.
      const r = await Promise.all(Array.from({ length: 300 }, () => s.incr('window-1', 60_000)));
      expect(new Set(r).size).toBe(300);
      expect(Math.max(...r)).toBe(300);
      await s.set('window-1', 'a value');
      expect(await s.incr('window-1', 60_000)).toBe(301);
      expect(await s.get('window-1')).toBe('a value');
      // A short window: the counter is gone once it ends.
      expect(await s.incr('window-2', 30)).toBe(1);
      await waitExpiry(s);
      expect(await s.incr('window-2', 60_000)).toBe(1);
    });

    it('set with TTL expires; set without TTL stays', async () => {
      await s.set('ttl', 'a', 30);
      await s.set('keep', 'b');
      await waitExpiry(s);
      expect(await s.get('ttl')).toBeNull();
      expect(await s.get('keep')).toBe('b');
    });
  });
}

// Memory: the clock is injected, so expiry is exact and instantaneous.
let fakeNow = Date.now();
contract(
  'memory',
  async () => new MemoryStore({ clock: { now: () => new Date(fakeNow) } }),
  async () => {
    fakeNow += 1000;
  },
);

describe('memory store: packed and object challenge records', () => {
  // Records that pack into one string and records that do not (times outside 0..2^48 or not whole
  // ms, text beyond Latin-1, a long nonce) must come back alike.
  const now = Date.UTC(2026, 0, 2, 3, 4, 5, 678);
  const clock = { now: () => new Date(now) };
  const cases: [string, ChallengeRecord, number][] = [
    ['plain', { nonce: 'A'.repeat(43), issuedAt: new Date(now).toISOString(), expiresAt: 'x' }, 120_000],
    ['provider + cluster', { nonce: 'n-_0', issuedAt: new Date(now - 1).toISOString(), expiresAt: 'x', provider: 'azure', cluster: 'prod-eu.1' }, 5_000],
    ['second provider', { nonce: 'z', issuedAt: new Date(now).toISOString(), expiresAt: 'x', provider: 'gcp' }, 1],
    ['empty nonce, latin-1 text', { nonce: '', issuedAt: new Date(now).toISOString(), expiresAt: 'x', cluster: 'ÿé\u0000' }, 60_000],
    ['cluster beyond latin-1', { nonce: 'n', issuedAt: new Date(now).toISOString(), expiresAt: 'x', cluster: 'π' }, 60_000],
    ['nonce beyond latin-1', { nonce: 'n€', issuedAt: new Date(now).toISOString(), expiresAt: 'x' }, 60_000],
    ['long nonce', { nonce: 'q'.repeat(5000), issuedAt: new Date(now).toISOString(), expiresAt: 'x', provider: 'aws' }, 60_000],
    ['long cluster', { nonce: 'n', issuedAt: new Date(now).toISOString(), expiresAt: 'x', cluster: 'c'.repeat(300) }, 60_000],
    ['invalid issuedAt', { nonce: 'n', issuedAt: 'yesterday', expiresAt: 'x' }, 60_000],
    ['issued before 1970', { nonce: 'n', issuedAt: '1969-12-31T23:59:59.000Z', expiresAt: 'x' }, 60_000],
    ['fractional TTL', { nonce: 'n', issuedAt: new Date(now).toISOString(), expiresAt: 'x' }, 1.5],
  ];
  for (const [name, record, ttl] of cases) {
    it(name, async () => {
      const s = new MemoryStore({ clock });
      await s.putChallenge('id', record, ttl);
      const { expiresAt: _, ...rest } = record;
      const want: ChallengeRecord = {
        ...rest,
        issuedAt: Number.isNaN(Date.parse(record.issuedAt)) ? 'invalid' : new Date(Date.parse(record.issuedAt)).toISOString(),
        expiresAt: new Date(now + ttl).toISOString(),
      };
      expect(await s.consumeChallenge('id')).toEqual(want);
      expect(await s.consumeChallenge('id')).toBeNull();
    });
  }

  it('expiry of packed and object records on the same clock', async () => {
    let t = now;
    const s = new MemoryStore({ clock: { now: () => new Date(t) }, maxChallenges: 2 });
    await s.putChallenge('a', { nonce: 'n', issuedAt: new Date(now).toISOString(), expiresAt: 'x' }, 1000);
    await s.putChallenge('b', { nonce: 'n€', issuedAt: new Date(now).toISOString(), expiresAt: 'x' }, 1000);
    await expect(s.putChallenge('c', rec(), 1000)).rejects.toMatchObject({ code: 'STORE_FULL' });
    t = now + 999;
    expect((await s.consumeChallenge('a'))?.nonce).toBe('n');
    t = now + 1000;
    expect(await s.consumeChallenge('b')).toBeNull();
    await s.putChallenge('c', rec(), 1000);
    await s.putChallenge('d', rec(), 1000);
  });
});

describe('redis', () => {
  let server: RedisServer;
  beforeAll(async () => {
    server = await startRedis();
  });
  afterAll(async () => {
    await server?.stop();
  });
  contract(
    'redis',
    async () => new RedisStore({ url: server.url, keyPrefix: `t${Date.now()}:` }),
    () => new Promise((r) => setTimeout(r, 80)),
  );

  it('an outage surfaces as STORE_UNAVAILABLE within the command timeout, and recovers', async () => {
    const own = await startRedis();
    const s = new RedisStore({ url: own.url, commandTimeoutMs: 500, connectTimeoutMs: 500 });
    await s.putChallenge('x', rec(), 60_000);
    await own.kill();
    for (const op of [() => s.consumeChallenge('x'), () => s.putChallenge('y', rec(), 1000), () => s.ping(), () => s.setIfAbsent('k', 'v')]) {
      const e = await op().then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(e).toBeInstanceOf(AttestError);
      expect((e as AttestError).code).toBe('STORE_UNAVAILABLE');
      expect((e as AttestError).kind).toBe('unavailable');
    }
    const back = await startRedis(own.port);
    // ioredis reconnects by itself; the store works again without a restart.
    let ok = false;
    for (let i = 0; i < 40 && !ok; i++) {
      ok = await s.ping().then(
        () => true,
        () => false,
      );
      if (!ok) await new Promise((r) => setTimeout(r, 100));
    }
    expect(ok).toBe(true);
    await s.close();
    await back.stop();
  });
});

describe('redis: a lost connection is waited for briefly, an ended client is revived', () => {
  let server: RedisServer;
  beforeAll(async () => {
    server = await startRedis();
  });
  afterAll(async () => {
    await server?.stop();
  });
  /** Polls on every turn of the event loop (a state may last only until the next reconnect), up to 5 s. */
  const waitFor = async (cond: () => boolean): Promise<void> => {
    const end = performance.now() + 5000;
    while (!cond() && performance.now() < end) await new Promise((r) => setImmediate(r));
    expect(cond()).toBe(true);
  };

  it('a command issued just after the server dropped the connection waits for the reconnect and succeeds', async () => {
    const client = createRedisClient({ url: server.url });
    const s = new RedisStore({ url: server.url, keyPrefix: 'drop:' }, client);
    const admin = createRedisClient({ url: server.url });
    try {
      await s.connect();
      await admin.connect();
      for (let round = 0; round < 3; round++) {
        expect(Number(await admin.call('CLIENT', 'KILL', 'TYPE', 'normal', 'SKIPME', 'yes'))).toBeGreaterThan(0);
        await waitFor(() => client.status !== 'ready');
        // ioredis alone fails this command at once (offline queue off): a 503 for a blip.
        await s.set(`k${round}`, 'v');
        expect(client.status).toBe('ready');
        expect(await admin.get(`drop:kv:{k${round}}`)).toBe('v');
      }
    } finally {
      admin.disconnect();
      await s.close();
    }
  });

  it('an ended client (ioredis stopped reconnecting) is revived on the next command and on its own; close() leaves it ended', async () => {
    const client = createRedisClient({ url: server.url });
    const s = new RedisStore({ url: server.url, keyPrefix: 'end:' }, client);
    await s.connect();
    client.disconnect();
    await waitFor(() => client.status === 'end');
    await s.set('a', '1');
    expect(await s.get('a')).toBe('1');
    client.disconnect();
    await waitFor(() => client.status === 'end');
    // No command: the store reconnects by itself (200 ms later), so readiness recovers too.
    await new Promise((r) => setTimeout(r, 600));
    expect(client.status).toBe('ready');
    await s.close();
    await new Promise((r) => setTimeout(r, 600));
    expect(client.status).toBe('end');
    const e = await s.get('a').then(
      () => undefined,
      (err: unknown) => err,
    );
    expect((e as AttestError).code).toBe('STORE_UNAVAILABLE');
  });

  it('past the connect timeout after a loss, an outage fails at once instead of making each request wait', async () => {
    const own = await startRedis();
    const s = new RedisStore({ url: own.url, connectTimeoutMs: 1000, commandTimeoutMs: 1000 });
    await s.ping();
    await own.kill();
    const t0 = performance.now();
    await expect(s.ping()).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
    const first = performance.now() - t0;
    await new Promise((r) => setTimeout(r, 1100));
    const t1 = performance.now();
    for (let i = 0; i < 5; i++) await expect(s.ping()).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
    // Bounds, not timings: the first waits at most the connect timeout (1 s); the five later ones
    // do not wait for it (waiting, they would take 5 s).
    expect(first).toBeLessThan(3000);
    expect(performance.now() - t1).toBeLessThan(2500);
    await s.close();
  });
});

describe('redis at its memory limit', () => {
  it('a full Redis (maxmemory, noeviction) answers STORE_FULL (503 with Retry-After), not STORE_UNAVAILABLE', async () => {
    const own = await startRedis();
    const s = new RedisStore({ url: own.url });
    const admin = new RedisStore({ url: own.url });
    await admin.ping();
    const { createRedisClient } = await import('../../broker/store/redis.node.js');
    const c = createRedisClient({ url: own.url });
    await c.connect();
    await c.config('SET', 'maxmemory', '2mb');
    await c.config('SET', 'maxmemory-policy', 'noeviction');
    let err: unknown;
    for (let i = 0; i < 100_000 && !err; i++) {
      await s.putChallenge(`fill-${i}`, { ...rec(), nonce: 'n'.repeat(43) }, 60_000).catch((e: unknown) => (err = e));
    }
    expect(err).toBeInstanceOf(AttestError);
    expect((err as AttestError).code).toBe('STORE_FULL');
    expect((err as AttestError).kind).toBe('unavailable');
    expect((err as AttestError).retryAfter).toBeGreaterThan(0);
    c.disconnect();
    await s.close();
    await admin.close();
    await own.stop();
  });
});

describe('redis URL forms', () => {
  it.each([
    ['redis://127.0.0.1:6379', true],
    ['rediss://:secret@redis.example:6380/2', true],
    ['redis+sentinel://10.0.0.1:26379,10.0.0.2:26379/mymaster', true],
    ['redis+cluster://10.0.0.1:7000,10.0.0.2:7000', true],
    ['redis+sentinel://10.0.0.1:26379', false],
    ['http://x', false],
    ['redis://nohostport', false],
  ])('%s → valid=%s', async (url, valid) => {
    const { createRedisClient } = await import('../../broker/store/redis.node.js');
    if (valid) {
      const c = createRedisClient({ url });
      c.disconnect();
    } else expect(() => createRedisClient({ url })).toThrow(AttestError);
  });

  it('never prints the password', async () => {
    const { redact } = await import('../../broker/store/redis.node.js');
    expect(redact('rediss://user:hunter2@h:1')).not.toContain('hunter2');
  });
});

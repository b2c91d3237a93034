/**
 * @module broker/store/memory
 *
 * The embedded default store: one process, no dependencies. Atomicity comes from JavaScript's
 * single thread: `consumeChallenge` reads and deletes in one synchronous step, so of any number
 * of concurrent callers exactly one sees the record. Expiry is checked on read with the injected
 * clock, so a stopped clock in tests behaves deterministically.
 *
 * Three separately capped spaces, so a flood of one kind can never exhaust another:
 * - challenges (`maxChallenges`): a full space answers STORE_FULL (HTTP 503 with Retry-After),
 *   never a 500, and never affects release state of a node already past its challenge;
 * - release state (`maxEntries`: issuance windows, token state, audit head, activations);
 * - rate-limit counters (`maxCounters`).
 * No request does O(n) work: each space is a Map in insertion order, and a write first drops
 * expired entries from its head. With one TTL per space (the challenge TTL, a limit's window)
 * insertion order is expiry order, so that sweep is amortised O(1). Only when a space is full and
 * its head is not expired (mixed TTLs) does one full scan run, at most once per second.
 *
 * A live challenge costs ~200 bytes: its record is stored as a small object (nonce string,
 * expiry and issue times as numbers, interned provider/cluster strings), not as JSON text
 * (bench/challenge-memory.mjs measures it).
 *
 * Not for more than one replica: use Redis or the Durable Object store there.
 */
import type { ChallengeRecord, Clock, StateStore } from '../contracts.js';
import { systemClock } from '../contracts.js';
import { storeFull } from './errors.js';

interface Entry {
  value: string;
  /** ms since epoch; Infinity = no TTL */
  exp: number;
}

/** A challenge as kept in memory: ~200 bytes with its Map entry and id. */
interface Challenge {
  n: string;
  /** issued and expires, ms since epoch */
  i: number;
  e: number;
  p: ChallengeRecord['provider'] | undefined;
  c: string | undefined;
}

interface Counter {
  n: number;
  exp: number;
}

export interface MemoryStoreOptions {
  clock?: Clock;
  /** Live challenges at most (default 250,000 ≈ 50 MB); beyond, putChallenge throws STORE_FULL. */
  maxChallenges?: number;
  /** Release-state entries at most (default 200,000). */
  maxEntries?: number;
  /** Rate-limit counters at most (default 200,000); beyond, incr throws STORE_FULL. */
  maxCounters?: number;
}

/** RFC 3339 of a time; 'invalid' for NaN (the app's shape check then refuses the record). */
const iso = (ms: number): string => (Number.isFinite(ms) ? new Date(ms).toISOString() : 'invalid');

/** Retry-After (s) for a full space: by then the oldest entries of a TTL-bounded space expire. */
const FULL_RETRY_S = 5;

/** A Map whose head is swept of expired entries before each insert; bounded. */
class Space<V extends { exp: number } | { e: number }> {
  readonly map = new Map<string, V>();
  #lastFullScan = -Infinity;
  constructor(
    readonly max: number,
    readonly name: string,
    private readonly expOf: (v: V) => number,
  ) {}

  live(key: string, now: number): V | undefined {
    const v = this.map.get(key);
    if (v === undefined) return undefined;
    if (this.expOf(v) <= now) {
      this.map.delete(key);
      return undefined;
    }
    return v;
  }

  /** Makes room for one new key (throws STORE_FULL when there is none). */
  reserve(key: string, now: number): void {
    if (this.map.has(key)) return;
    // Amortised O(1): expired entries at the head go first (insertion order = expiry order
    // whenever the TTL is the same for the whole space).
    for (const [k, v] of this.map) {
      if (this.expOf(v) > now) break;
      this.map.delete(k);
    }
    if (this.map.size < this.max) return;
    if (now - this.#lastFullScan >= 1000) {
      this.#lastFullScan = now;
      for (const [k, v] of this.map) if (this.expOf(v) <= now) this.map.delete(k);
      if (this.map.size < this.max) return;
    }
    throw storeFull(this.name, FULL_RETRY_S);
  }
}

export class MemoryStore implements StateStore {
  readonly kind = 'memory' as const;
  readonly #clock: Clock;
  readonly #challenges: Space<Challenge>;
  readonly #kv: Space<Entry>;
  readonly #counters: Space<Counter>;
  /** Cluster names seen in challenges, interned so 100k challenges share a few strings. */
  readonly #names = new Map<string, string>();

  constructor(o: MemoryStoreOptions = {}) {
    this.#clock = o.clock ?? systemClock;
    this.#challenges = new Space<Challenge>(o.maxChallenges ?? 250_000, 'challenges', (v) => v.e);
    this.#kv = new Space<Entry>(o.maxEntries ?? 200_000, 'release state', (v) => v.exp);
    this.#counters = new Space<Counter>(o.maxCounters ?? 200_000, 'rate-limit counters', (v) => v.exp);
  }

  #now(): number {
    return this.#clock.now().getTime();
  }

  #intern(s: string | undefined): string | undefined {
    if (s === undefined) return undefined;
    const have = this.#names.get(s);
    if (have !== undefined) return have;
    if (this.#names.size < 1024) this.#names.set(s, s);
    return s;
  }

  async putChallenge(id: string, record: ChallengeRecord, ttlMs: number): Promise<void> {
    const now = this.#now();
    this.#challenges.reserve(id, now);
    this.#challenges.map.set(id, {
      n: record.nonce,
      i: Date.parse(record.issuedAt),
      e: now + ttlMs,
      p: record.provider,
      c: this.#intern(record.cluster),
    });
  }

  async consumeChallenge(id: string): Promise<ChallengeRecord | null> {
    const ch = this.#challenges.live(id, this.#now());
    if (!ch) return null;
    this.#challenges.map.delete(id);
    return {
      nonce: ch.n,
      issuedAt: iso(ch.i),
      expiresAt: iso(ch.e),
      ...(ch.p ? { provider: ch.p } : {}),
      ...(ch.c ? { cluster: ch.c } : {}),
    };
  }

  #write(key: string, value: string, ttlMs?: number): void {
    const now = this.#now();
    this.#kv.reserve(key, now);
    this.#kv.map.set(key, { value, exp: ttlMs === undefined ? Infinity : now + ttlMs });
  }

  async get(key: string): Promise<string | null> {
    return this.#kv.live(key, this.#now())?.value ?? null;
  }

  async set(key: string, value: string, ttlMs?: number): Promise<void> {
    this.#write(key, value, ttlMs);
  }

  async setIfAbsent(key: string, value: string, ttlMs?: number): Promise<boolean> {
    if (this.#kv.live(key, this.#now())) return false;
    this.#write(key, value, ttlMs);
    return true;
  }

  async compareAndSet(key: string, expected: string | null, value: string, ttlMs?: number): Promise<boolean> {
    const cur = this.#kv.live(key, this.#now())?.value ?? null;
    if (cur !== expected) return false;
    this.#write(key, value, ttlMs);
    return true;
  }

  async delete(key: string): Promise<void> {
    this.#kv.map.delete(key);
  }

  async incr(key: string, ttlMs: number): Promise<number> {
    const now = this.#now();
    const c = this.#counters.live(key, now);
    if (c) return ++c.n;
    this.#counters.reserve(key, now);
    this.#counters.map.set(key, { n: 1, exp: now + ttlMs });
    return 1;
  }

  async ping(): Promise<void> {}

  async close(): Promise<void> {
    this.#challenges.map.clear();
    this.#kv.map.clear();
    this.#counters.map.clear();
  }
}

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
 * A live challenge costs ~160 bytes: its record is packed into one flat one-byte string (expiry
 * and issue times as 6 chars each, a provider code, the cluster and the nonce; see `pack`), not an
 * object with number boxes and separate strings (~240 bytes) or JSON text. A record that does not
 * fit that form (a time that is not a whole ms in 0..2^48, text beyond Latin-1, a long nonce or
 * cluster) is kept as a small object instead, with the same semantics
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

/** A challenge that `pack` cannot represent, kept as an object (~240 bytes with its Map entry and id). */
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
  /** Live challenges at most (default 250,000 ≈ 40 MB); beyond, putChallenge throws STORE_FULL. */
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

/*
 * A packed challenge: one string of char codes 0..255 (V8 keeps it as a flat one-byte string,
 * 16 bytes of header plus one byte a char):
 *   [0, 6)   expires, ms since epoch, big-endian base 256
 *   [6, 12)  issued, likewise
 *   [12]     provider: 0 none, else 1 + its index in the store's provider table
 *   [13]     cluster length L (0: none)
 *   [14, 14 + L)  cluster
 *   [14 + L, end) nonce
 * Built with String.fromCharCode over a scratch array, so it is flat from the start (string
 * concatenation would leave cons strings of 32 bytes each in the Map).
 */
const TIME_CHARS = 6;
const MAX_TIME = 2 ** (8 * TIME_CHARS);
const HEAD = 2 * TIME_CHARS + 2;
const MAX_NONCE = 1024;
const MAX_CLUSTER = 255;
const MAX_PROVIDERS = 255;
const scratch: number[] = [];

const timeFits = (ms: number): boolean => Number.isInteger(ms) && ms >= 0 && ms < MAX_TIME;

function putTime(at: number, ms: number): void {
  for (let k = TIME_CHARS - 1; k >= 0; k--) {
    scratch[at + k] = ms % 256;
    ms = Math.floor(ms / 256);
  }
}

function getTime(s: string, at: number): number {
  let ms = 0;
  for (let k = 0; k < TIME_CHARS; k++) ms = ms * 256 + s.charCodeAt(at + k);
  return ms;
}

/** Appends the char codes of `text` to the scratch array at `at`; false if one is beyond Latin-1. */
function putText(at: number, text: string): boolean {
  for (let k = 0; k < text.length; k++) {
    const c = text.charCodeAt(k);
    if (c > 255) return false;
    scratch[at + k] = c;
  }
  return true;
}

const expOfChallenge = (v: string | Challenge): number => (typeof v === 'string' ? getTime(v, 0) : v.e);

/** A Map whose head is swept of expired entries before each insert; bounded. */
class Space<V> {
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
  readonly #challenges: Space<string | Challenge>;
  readonly #kv: Space<Entry>;
  readonly #counters: Space<Counter>;
  /** Cluster names seen in (object) challenges, interned so 100k challenges share a few strings. */
  readonly #names = new Map<string, string>();
  /** Provider names of packed challenges: code = 1 + index. */
  readonly #providers: NonNullable<ChallengeRecord['provider']>[] = [];

  constructor(o: MemoryStoreOptions = {}) {
    this.#clock = o.clock ?? systemClock;
    this.#challenges = new Space<string | Challenge>(o.maxChallenges ?? 250_000, 'challenges', expOfChallenge);
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

  #providerCode(p: ChallengeRecord['provider']): number {
    if (!p) return 0;
    let i = this.#providers.indexOf(p);
    if (i < 0) {
      if (this.#providers.length >= MAX_PROVIDERS) return -1;
      i = this.#providers.push(p) - 1;
    }
    return i + 1;
  }

  /** The packed form of a challenge (see `pack` above), or undefined when it does not fit. */
  #pack(record: ChallengeRecord, issued: number, expires: number): string | undefined {
    const cluster = record.cluster ?? '';
    const nonce = record.nonce;
    if (!timeFits(issued) || !timeFits(expires) || cluster.length > MAX_CLUSTER || nonce.length > MAX_NONCE) return undefined;
    const provider = this.#providerCode(record.provider);
    if (provider < 0) return undefined;
    const len = HEAD + cluster.length + nonce.length;
    scratch.length = len;
    putTime(0, expires);
    putTime(TIME_CHARS, issued);
    scratch[2 * TIME_CHARS] = provider;
    scratch[2 * TIME_CHARS + 1] = cluster.length;
    if (!putText(HEAD, cluster) || !putText(HEAD + cluster.length, nonce)) return undefined;
    return String.fromCharCode.apply(null, scratch);
  }

  async putChallenge(id: string, record: ChallengeRecord, ttlMs: number): Promise<void> {
    const now = this.#now();
    this.#challenges.reserve(id, now);
    const issued = Date.parse(record.issuedAt);
    const expires = now + ttlMs;
    this.#challenges.map.set(
      id,
      this.#pack(record, issued, expires) ?? {
        n: record.nonce,
        i: issued,
        e: expires,
        p: record.provider,
        c: this.#intern(record.cluster),
      },
    );
  }

  async consumeChallenge(id: string): Promise<ChallengeRecord | null> {
    const ch = this.#challenges.live(id, this.#now());
    if (ch === undefined) return null;
    this.#challenges.map.delete(id);
    if (typeof ch === 'string') {
      const p = ch.charCodeAt(2 * TIME_CHARS);
      const clusterLen = ch.charCodeAt(2 * TIME_CHARS + 1);
      const provider = p ? this.#providers[p - 1] : undefined;
      return {
        nonce: ch.slice(HEAD + clusterLen),
        issuedAt: iso(getTime(ch, TIME_CHARS)),
        expiresAt: iso(getTime(ch, 0)),
        ...(provider ? { provider } : {}),
        ...(clusterLen ? { cluster: ch.slice(HEAD, HEAD + clusterLen) } : {}),
      };
    }
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

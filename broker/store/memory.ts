/**
 * @module broker/store/memory
 *
 * The embedded default store: one process, no dependencies. Atomicity comes from JavaScript's
 * single thread: `consumeChallenge` reads and deletes in one synchronous step, so of any number
 * of concurrent callers exactly one sees the record. Expiry is checked on read (with the
 * injected clock) and swept lazily, so a stopped clock in tests behaves deterministically.
 *
 * Not for more than one replica: use Redis or the Durable Object store there.
 */
import type { ChallengeRecord, Clock, StateStore } from '../contracts.js';
import { systemClock } from '../contracts.js';

interface Entry {
  value: string;
  expiresAt: number; // ms since epoch; Infinity = no TTL
}

export interface MemoryStoreOptions {
  clock?: Clock;
  /** Upper bound on entries, so a flood of challenges cannot exhaust memory. */
  maxEntries?: number;
}

export class MemoryStore implements StateStore {
  readonly kind = 'memory' as const;
  readonly #map = new Map<string, Entry>();
  readonly #clock: Clock;
  readonly #max: number;
  #ops = 0;

  constructor(o: MemoryStoreOptions = {}) {
    this.#clock = o.clock ?? systemClock;
    this.#max = o.maxEntries ?? 1_000_000;
  }

  #now(): number {
    return this.#clock.now().getTime();
  }

  #live(key: string): Entry | undefined {
    const e = this.#map.get(key);
    if (!e) return undefined;
    if (e.expiresAt <= this.#now()) {
      this.#map.delete(key);
      return undefined;
    }
    return e;
  }

  #write(key: string, value: string, ttlMs?: number): void {
    if (++this.#ops % 1024 === 0 || this.#map.size >= this.#max) this.#sweep();
    if (this.#map.size >= this.#max && !this.#map.has(key)) {
      throw new RangeError('memory store is full');
    }
    this.#map.set(key, { value, expiresAt: ttlMs === undefined ? Infinity : this.#now() + ttlMs });
  }

  #sweep(): void {
    const now = this.#now();
    for (const [k, e] of this.#map) if (e.expiresAt <= now) this.#map.delete(k);
  }

  async putChallenge(id: string, record: ChallengeRecord, ttlMs: number): Promise<void> {
    this.#write(`ch:${id}`, JSON.stringify(record), ttlMs);
  }

  async consumeChallenge(id: string): Promise<ChallengeRecord | null> {
    const key = `ch:${id}`;
    const e = this.#live(key);
    if (!e) return null;
    this.#map.delete(key);
    return JSON.parse(e.value) as ChallengeRecord;
  }

  async get(key: string): Promise<string | null> {
    return this.#live(`kv:${key}`)?.value ?? null;
  }

  async set(key: string, value: string, ttlMs?: number): Promise<void> {
    this.#write(`kv:${key}`, value, ttlMs);
  }

  async setIfAbsent(key: string, value: string, ttlMs?: number): Promise<boolean> {
    if (this.#live(`kv:${key}`)) return false;
    this.#write(`kv:${key}`, value, ttlMs);
    return true;
  }

  async compareAndSet(key: string, expected: string | null, value: string, ttlMs?: number): Promise<boolean> {
    const cur = this.#live(`kv:${key}`)?.value ?? null;
    if (cur !== expected) return false;
    this.#write(`kv:${key}`, value, ttlMs);
    return true;
  }

  async delete(key: string): Promise<void> {
    this.#map.delete(`kv:${key}`);
  }

  async ping(): Promise<void> {}

  async close(): Promise<void> {
    this.#map.clear();
  }
}

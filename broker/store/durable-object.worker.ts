/**
 * @module broker/store/durable-object.worker
 *
 * The state store on Cloudflare Workers: a Durable Object namespace, sharded by key.
 *
 * Atomicity: a Durable Object processes one event at a time and its storage calls hold the
 * input gate, so `consume` (get, then delete) cannot interleave with another request to the same
 * object: of any number of concurrent consumers — from any Worker isolate anywhere — exactly one
 * receives the record. Each key always maps to the same shard (FNV-1a of the key), so sharding
 * keeps that guarantee while spreading load.
 *
 * Expiry: records carry their deadline and are treated as absent once past it; an alarm sweeps
 * expired records so storage does not grow.
 */
import { DurableObject } from 'cloudflare:workers';
import type { ChallengeRecord, StateStore } from '../contracts.js';
import { storeUnavailable } from './errors.js';

interface Rec {
  v: string;
  exp: number; // ms since epoch; 0 = never
}

/** The Durable Object class (exported from the Worker entry as `StateStoreObject`). */
export class StateStoreObject extends DurableObject {
  #live(r: Rec | undefined, now: number): Rec | undefined {
    return r && (r.exp === 0 || r.exp > now) ? r : undefined;
  }

  async #schedule(exp: number): Promise<void> {
    if (exp === 0) return;
    const cur = await this.ctx.storage.getAlarm();
    if (cur === null || cur > exp) await this.ctx.storage.setAlarm(exp);
  }

  async put(key: string, value: string, ttlMs: number | null, now: number): Promise<void> {
    const exp = ttlMs === null ? 0 : now + ttlMs;
    await this.ctx.storage.put<Rec>(key, { v: value, exp });
    await this.#schedule(exp);
  }

  async take(key: string, now: number): Promise<string | null> {
    const r = this.#live(await this.ctx.storage.get<Rec>(key), now);
    if (!r) return null;
    await this.ctx.storage.delete(key);
    return r.v;
  }

  async read(key: string, now: number): Promise<string | null> {
    return this.#live(await this.ctx.storage.get<Rec>(key), now)?.v ?? null;
  }

  async cas(key: string, expected: string | null, value: string, ttlMs: number | null, now: number): Promise<boolean> {
    const cur = this.#live(await this.ctx.storage.get<Rec>(key), now)?.v ?? null;
    if (cur !== expected) return false;
    await this.put(key, value, ttlMs, now);
    return true;
  }

  async incr(key: string, ttlMs: number, now: number): Promise<number> {
    const r = this.#live(await this.ctx.storage.get<Rec>(key), now);
    if (r) {
      const n = Number(r.v) + 1;
      await this.ctx.storage.put<Rec>(key, { v: String(n), exp: r.exp });
      return n;
    }
    await this.put(key, '1', ttlMs, now);
    return 1;
  }

  async remove(key: string): Promise<void> {
    await this.ctx.storage.delete(key);
  }

  async ping(): Promise<string> {
    return 'pong';
  }

  override async alarm(): Promise<void> {
    // The alarm runs outside any request, so there is no injected clock to use: real time is
    // what expiry means here (requests pass their own `now`).
    // eslint-disable-next-line no-restricted-properties
    const now = Date.now();
    let next = 0;
    const all = await this.ctx.storage.list<Rec>();
    const dead: string[] = [];
    for (const [k, r] of all) {
      if (r.exp !== 0 && r.exp <= now) dead.push(k);
      else if (r.exp !== 0 && (next === 0 || r.exp < next)) next = r.exp;
    }
    for (let i = 0; i < dead.length; i += 128) await this.ctx.storage.delete(dead.slice(i, i + 128));
    if (next !== 0) await this.ctx.storage.setAlarm(next);
  }
}

function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

export interface DurableObjectStoreOptions {
  shards?: number;
  now?: () => Date;
}

/** `StateStore` over a `StateStoreObject` namespace. */
export class DurableObjectStore implements StateStore {
  readonly kind = 'durable-object' as const;
  readonly #ns: DurableObjectNamespace<StateStoreObject>;
  readonly #shards: number;
  readonly #now: () => Date;

  constructor(ns: DurableObjectNamespace<StateStoreObject>, o: DurableObjectStoreOptions = {}) {
    this.#ns = ns;
    this.#shards = o.shards ?? 16;
    this.#now = o.now ?? (() => new Date());
  }

  #stub(key: string): DurableObjectStub<StateStoreObject> {
    return this.#ns.get(this.#ns.idFromName(`shard-${fnv1a(key) % this.#shards}`));
  }

  async #run<T>(op: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      throw storeUnavailable(e, op);
    }
  }

  putChallenge(id: string, record: ChallengeRecord, ttlMs: number): Promise<void> {
    const k = `ch:${id}`;
    return this.#run('putChallenge', () => this.#stub(k).put(k, JSON.stringify(record), ttlMs, this.#now().getTime()));
  }
  consumeChallenge(id: string): Promise<ChallengeRecord | null> {
    const k = `ch:${id}`;
    return this.#run('consumeChallenge', async () => {
      const v = await this.#stub(k).take(k, this.#now().getTime());
      return v === null ? null : (JSON.parse(v) as ChallengeRecord);
    });
  }
  get(key: string): Promise<string | null> {
    const k = `kv:${key}`;
    return this.#run('get', () => this.#stub(k).read(k, this.#now().getTime()));
  }
  set(key: string, value: string, ttlMs?: number): Promise<void> {
    const k = `kv:${key}`;
    return this.#run('set', () => this.#stub(k).put(k, value, ttlMs ?? null, this.#now().getTime()));
  }
  setIfAbsent(key: string, value: string, ttlMs?: number): Promise<boolean> {
    const k = `kv:${key}`;
    return this.#run('setIfAbsent', () => this.#stub(k).cas(k, null, value, ttlMs ?? null, this.#now().getTime()));
  }
  compareAndSet(key: string, expected: string | null, value: string, ttlMs?: number): Promise<boolean> {
    const k = `kv:${key}`;
    return this.#run('compareAndSet', () => this.#stub(k).cas(k, expected, value, ttlMs ?? null, this.#now().getTime()));
  }
  incr(key: string, ttlMs: number): Promise<number> {
    const k = `rl:${key}`;
    return this.#run('incr', () => this.#stub(k).incr(k, ttlMs, this.#now().getTime()));
  }
  delete(key: string): Promise<void> {
    const k = `kv:${key}`;
    return this.#run('delete', () => this.#stub(k).remove(k));
  }
  ping(): Promise<void> {
    return this.#run('ping', async () => {
      await this.#stub('ping').ping();
    });
  }
  async close(): Promise<void> {}
}

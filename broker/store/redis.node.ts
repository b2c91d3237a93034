/**
 * @module broker/store/redis.node
 *
 * Redis through ioredis, for more than one broker replica. Node-only (ioredis uses node:net).
 *
 * URLs:
 * - standalone: `redis://[:password@]host:port[/db]` or `rediss://…` (TLS)
 * - Sentinel:   `redis+sentinel://[:password@]host1:port1,host2:port2/<masterName>[/db]`
 * - Cluster:    `redis+cluster://[:password@]host1:port1,host2:port2`
 *
 * Atomicity:
 * - `consumeChallenge` is `GETDEL` (Redis ≥ 6.2): one round trip, atomic on the server, so of any
 *   number of concurrent consumers on any number of replicas exactly one gets the value.
 * - `setIfAbsent` is `SET NX PX`; `compareAndSet` is a Lua script (atomic on the server).
 * - Keys carry a prefix (default `attest-broker:`); challenge keys use a hash tag so Cluster
 *   routing stays single-slot per key.
 *
 * Sentinel: the client follows `+switch-master` (ioredis `failoverDetector`) so it leaves the old
 * master as soon as the sentinels announce the switch. Replication is asynchronous (Redis Sentinel
 * documents that acknowledged writes can be lost on failover): a challenge stored just before the
 * switch may be lost (fails closed: the node asks again), and a GETDEL served by the old master in
 * the instant before the switch is not seen by the new master. That window is now the sentinels'
 * pub/sub delay, not the ~10 s until the old master is demoted.
 *
 * Failure: commands do not queue while disconnected (`enableOfflineQueue: false`) and have a
 * short timeout, so an outage turns into STORE_UNAVAILABLE (HTTP 503) within a bounded time.
 * Within one connect timeout of losing a connection, commands wait for the reconnect instead (a
 * restart or a failover is a blip, not a burst of 503s); after that they fail at once. A client
 * that ioredis has given up on ('end', see the constructor) is reconnected by the store.
 */
import { Redis, Cluster, type RedisOptions } from 'ioredis';
import type { ChallengeRecord, StateStore } from '../contracts.js';
import { storeFull, storeUnavailable } from './errors.js';
import { configError } from '../../providers/common/errors.js';

/** INCR, and on the first increment of a window set its expiry (atomic: one script). */
const INCR_LUA = `
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n`;

const CAS_LUA = `
local cur = redis.call('GET', KEYS[1])
if (ARGV[1] == '' and cur == false) or (ARGV[1] ~= '' and cur == ARGV[2]) then
  if ARGV[4] ~= '' then redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4]) else redis.call('SET', KEYS[1], ARGV[3]) end
  return 1
end
return 0`;

export interface RedisStoreOptions {
  url: string;
  keyPrefix?: string;
  /** Per-command timeout, ms. */
  commandTimeoutMs?: number;
  connectTimeoutMs?: number;
}

type Client = Redis | Cluster;

function parseHosts(list: string, scheme: string): { host: string; port: number }[] {
  return list.split(',').map((hp) => {
    const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(hp.trim());
    if (!m) throw configError('CONFIG_INVALID', `store URL (${scheme}): "${hp}" is not host:port`);
    return { host: m[1] as string, port: Number(m[2]) };
  });
}

/** Builds an ioredis client from one of the URL forms above. */
export function createRedisClient(o: RedisStoreOptions): Client {
  const common: RedisOptions = {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: o.connectTimeoutMs ?? 2000,
    commandTimeout: o.commandTimeoutMs ?? 2000,
    lazyConnect: true,
    retryStrategy: (times) => Math.min(times * 200, 2000),
  };
  const m = /^(redis\+sentinel|redis\+cluster|rediss?):\/\/(?:(?:([^:@/]*):)?([^@/]*)@)?([^/]+)(?:\/(.*))?$/.exec(o.url);
  if (!m) throw configError('CONFIG_INVALID', `store URL "${redact(o.url)}" is not a redis://, rediss://, redis+sentinel:// or redis+cluster:// URL`);
  const [, scheme, user, pass, hosts, path] = m as unknown as [string, string, string | undefined, string | undefined, string, string | undefined];
  const password = pass ? decodeURIComponent(pass) : undefined;
  const username = user ? decodeURIComponent(user) : undefined;
  if (scheme === 'redis+cluster') {
    return new Cluster(parseHosts(hosts, scheme), {
      enableOfflineQueue: false,
      lazyConnect: true,
      redisOptions: { ...common, password, username },
    });
  }
  if (scheme === 'redis+sentinel') {
    const [name, db] = (path ?? '').split('/');
    if (!name) throw configError('CONFIG_INVALID', 'redis+sentinel:// URL needs the master name as its path: redis+sentinel://h1:26379,h2:26379/mymaster');
    // failoverDetector: subscribe to the sentinels' +switch-master and reconnect at once. Without
    // it the client stays on the old master until that node is demoted (the sentinel's next INFO
    // poll, ~10 s), and every write — and every GETDEL of a challenge the new master still holds —
    // in that window goes to a node whose data is about to be discarded.
    return new Redis({
      ...common,
      sentinels: parseHosts(hosts, scheme),
      name,
      password,
      username,
      db: db ? Number(db) : 0,
      failoverDetector: true,
    });
  }
  const [host] = parseHosts(hosts, scheme);
  return new Redis({
    ...common,
    host: host!.host,
    port: host!.port,
    password,
    username,
    db: path ? Number(path) : 0,
    tls: scheme === 'rediss' ? {} : undefined,
  });
}

/** A URL with any password replaced, for logs and messages. */
export function redact(url: string): string {
  return url.replace(/\/\/([^:@/]*):([^@/]*)@/, '//$1:***@');
}

export class RedisStore implements StateStore {
  readonly kind = 'redis' as const;
  readonly #c: Client;
  readonly #p: string;
  readonly #connectTimeout: number;
  /** Set by close(): an ended client is then left ended. */
  #closed = false;
  /** When a ready connection was last lost (ms, monotonic), or null while ready. */
  #lostAt: number | null = null;
  /** One wait for the next 'ready', shared by every command that arrives while reconnecting. */
  #waiting: Promise<void> | null = null;
  /** One revival of an ended client at a time. */
  #reviving: Promise<void> | null = null;
  #reviveTimer: ReturnType<typeof setTimeout> | null = null;

  constructor(o: RedisStoreOptions, client?: Client) {
    this.#c = client ?? createRedisClient(o);
    this.#p = o.keyPrefix ?? 'attest-broker:';
    this.#connectTimeout = o.connectTimeoutMs ?? 2000;
    // Errors surface per command; an unhandled 'error' event must not crash the process.
    this.#c.on('error', () => {});
    this.#c.on('ready', () => {
      this.#lostAt = null;
    });
    this.#c.on('close', () => {
      this.#lostAt ??= performance.now();
    });
    // ioredis gives up for good ('end') when a reconnect's connector is torn down mid-way: with
    // Sentinel, a +switch-master that arrives while the client is already asking the sentinels
    // for the new master makes the failover detector close the connector under that very
    // attempt, and the client then never reconnects (every later command would be a 503 until
    // the broker restarts). The store revives such a client itself, at once and on use.
    this.#c.on('end', () => {
      if (this.#closed || this.#reviveTimer) return;
      this.#reviveTimer = setTimeout(() => {
        this.#reviveTimer = null;
        this.#revive().catch(() => {});
      }, 200);
      this.#reviveTimer.unref?.();
    });
  }

  async connect(): Promise<void> {
    try {
      if (this.#c.status === 'wait') await this.#c.connect();
    } catch (e) {
      throw storeUnavailable(e, 'connect');
    }
  }

  /** Reconnects a client that ended without close(); concurrent callers share one attempt. */
  #revive(): Promise<void> {
    if (this.#closed) return Promise.reject(new Error('store closed'));
    if (this.#c.status !== 'end') return Promise.resolve();
    this.#reviving ??= this.#c.connect().finally(() => {
      this.#reviving = null;
    });
    return this.#reviving;
  }

  /** Resolves on the next 'ready'; rejects on 'end' or after `ms`. */
  #nextReady(ms: number): Promise<void> {
    this.#waiting ??= new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => done(new Error('timed out waiting for the Redis connection')), ms);
      const onReady = (): void => done();
      const onEnd = (): void => done(new Error('Redis connection closed'));
      const done = (err?: Error): void => {
        clearTimeout(t);
        this.#c.off('ready', onReady);
        this.#c.off('end', onEnd);
        this.#waiting = null;
        if (err) reject(err);
        else resolve();
      };
      this.#c.once('ready', onReady);
      this.#c.once('end', onEnd);
    });
    return this.#waiting;
  }

  /**
   * Commands are not queued while disconnected (so an outage fails fast). Two cases wait instead,
   * each bounded by the connect timeout: a command issued while the first connection is still
   * opening, and one issued within a connect timeout of losing a ready connection — a server
   * restart, or the Sentinel failover detector dropping a connection the client had just made,
   * is then absorbed instead of failing the joins in flight. Past that window an outage fails at
   * once (STORE_UNAVAILABLE), so requests do not pile up behind a dead store.
   */
  async #ready(): Promise<void> {
    const st = this.#c.status;
    if (st === 'ready') return;
    if (st === 'wait') {
      await this.#c.connect();
      return;
    }
    if (st === 'end') {
      await this.#revive();
      return;
    }
    if (this.#lostAt === null) {
      // The first connection is still opening.
      await this.#nextReady(this.#connectTimeout);
      return;
    }
    // A connection that was up was lost ('close', 'reconnecting', or a reconnect in progress).
    const since = performance.now() - this.#lostAt;
    if (since < this.#connectTimeout) await this.#nextReady(this.#connectTimeout - since);
  }

  async #run<T>(op: string, fn: () => Promise<T>): Promise<T> {
    try {
      await this.#ready();
      return await fn();
    } catch (e) {
      // Redis at maxmemory with a no-eviction policy refuses writes with an OOM error: that is a
      // full store (503 STORE_FULL, retry later), not an outage.
      if (e instanceof Error && /^OOM /.test(e.message)) throw storeFull('Redis', 5, e);
      throw storeUnavailable(e, op);
    }
  }

  #ck(id: string): string {
    return `${this.#p}ch:{${id}}`;
  }
  #kk(key: string): string {
    return `${this.#p}kv:{${key}}`;
  }
  #rk(key: string): string {
    return `${this.#p}rl:{${key}}`;
  }

  putChallenge(id: string, record: ChallengeRecord, ttlMs: number): Promise<void> {
    return this.#run('putChallenge', async () => {
      await this.#c.set(this.#ck(id), JSON.stringify(record), 'PX', Math.max(1, Math.ceil(ttlMs)));
    });
  }

  consumeChallenge(id: string): Promise<ChallengeRecord | null> {
    return this.#run('consumeChallenge', async () => {
      const v = await this.#c.getdel(this.#ck(id));
      return v === null ? null : (JSON.parse(v) as ChallengeRecord);
    });
  }

  get(key: string): Promise<string | null> {
    return this.#run('get', () => this.#c.get(this.#kk(key)));
  }

  set(key: string, value: string, ttlMs?: number): Promise<void> {
    return this.#run('set', async () => {
      if (ttlMs === undefined) await this.#c.set(this.#kk(key), value);
      else await this.#c.set(this.#kk(key), value, 'PX', Math.max(1, Math.ceil(ttlMs)));
    });
  }

  setIfAbsent(key: string, value: string, ttlMs?: number): Promise<boolean> {
    return this.#run('setIfAbsent', async () => {
      const r =
        ttlMs === undefined
          ? await this.#c.set(this.#kk(key), value, 'NX')
          : await this.#c.set(this.#kk(key), value, 'PX', Math.max(1, Math.ceil(ttlMs)), 'NX');
      return r === 'OK';
    });
  }

  compareAndSet(key: string, expected: string | null, value: string, ttlMs?: number): Promise<boolean> {
    return this.#run('compareAndSet', async () => {
      const r = await this.#c.eval(
        CAS_LUA,
        1,
        this.#kk(key),
        expected === null ? '' : '1',
        expected ?? '',
        value,
        ttlMs === undefined ? '' : String(Math.max(1, Math.ceil(ttlMs))),
      );
      return r === 1;
    });
  }

  delete(key: string): Promise<void> {
    return this.#run('delete', async () => {
      await this.#c.del(this.#kk(key));
    });
  }

  incr(key: string, ttlMs: number): Promise<number> {
    return this.#run('incr', async () => {
      const r = await this.#c.eval(INCR_LUA, 1, this.#rk(key), String(Math.max(1, Math.ceil(ttlMs))));
      return Number(r);
    });
  }

  ping(): Promise<void> {
    return this.#run('ping', async () => {
      await this.#c.ping();
    });
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#reviveTimer) clearTimeout(this.#reviveTimer);
    try {
      await this.#c.quit();
    } catch {
      this.#c.disconnect();
    }
  }
}

/**
 * @module test/broker/redis-topologies
 *
 * The StateStore contract essentials against REAL Redis Sentinel and Redis Cluster topologies,
 * each started by this file on free loopback ports with Debian's `redis-server` (7.x), no
 * persistence, config/state files in a temp dir — and reached only through `RedisStore` built
 * from its URL (`redis+sentinel://…/<master>`, `redis+cluster://…`), exactly as the broker does.
 *
 * - Sentinel (1 master + 1 replica + 1 sentinel, quorum 1): single-use challenges under 1,000
 *   concurrent consumers, setIfAbsent/compareAndSet atomicity, expiry, and a `SENTINEL FAILOVER`
 *   after which the same store instance writes ON the promoted replica within a bounded wait —
 *   without waiting for the old master's demotion — and then a crash (SIGKILL) of the new master,
 *   after which the sentinel promotes the other node and the store follows, data intact
 *   (https://redis.io/docs/latest/operate/oss_and_stack/management/sentinel/).
 * - Sentinel, the switch announced while the client is already asking the sentinel for the master
 *   (made certain by a relay that holds that lookup back): ioredis ends a bare client for good;
 *   the store revives its own and writes on the new master.
 * - Cluster (3 masters, no replicas): the same contract; keys of different ids land on all three
 *   masters (every store key carries its own `{hash tag}`, and every store command — GETDEL, SET,
 *   EVAL with one key — touches exactly one key, so no CROSSSLOT error can arise)
 *   (https://redis.io/docs/latest/operate/oss_and_stack/reference/cluster-spec/#hash-tags).
 *   Finally one master is killed: consuming a challenge it held is STORE_UNAVAILABLE (fail
 *   closed), never null.
 *
 * Skips with a message when redis-server or redis-cli are missing. Every process started here is
 * SIGKILLed in afterAll.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, connect as netConnect, type Socket } from 'node:net';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisStore, createRedisClient } from '../../broker/store/redis.node.js';
import type { ChallengeRecord, StateStore } from '../../broker/contracts.js';
import { AttestError } from '../../providers/common/errors.js';
import { REDIS_BIN } from '../helpers/redis.js';
import { freePort } from '../helpers/ports.js';

const CLI_BIN = process.env.REDIS_CLI ?? '/usr/bin/redis-cli';
const HAVE = existsSync(REDIS_BIN) && existsSync(CLI_BIN);
if (!HAVE) console.warn(`redis-topologies: skipped — needs ${REDIS_BIN} and ${CLI_BIN} (apt-get install redis-server)`);

const run = promisify(execFile);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const rec = (): ChallengeRecord => ({ nonce: 'n', issuedAt: new Date().toISOString(), expiresAt: new Date(Date.now() + 60_000).toISOString() });

const procs: ChildProcess[] = [];
const dirs: string[] = [];

async function cli(port: number, ...args: string[]): Promise<string> {
  const { stdout } = await run(CLI_BIN, ['-h', '127.0.0.1', '-p', String(port), ...args], { timeout: 10_000 });
  return stdout.trim();
}

/** Polls `cond` every 100 ms until true or `ms` elapse; returns whether it became true. */
async function until(ms: number, cond: () => Promise<boolean>): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await cond().catch(() => false)) return true;
    await sleep(100);
  }
  return false;
}

/**
 * Writes fresh keys through `s` until one of them is found ON the node at `port` (the new master
 * after a failover); returns whether that happened within `ms`.
 */
async function writesLandOn(s: StateStore, port: number, keyPrefix: string, ms: number): Promise<boolean> {
  let n = 0;
  return until(ms, async () => {
    const k = `after-${n++}`;
    await s.set(k, 'y');
    return (await cli(port, 'GET', `${keyPrefix}kv:{${k}}`)) === 'y';
  });
}

async function server(args: string[], cwd: string): Promise<{ port: number; proc: ChildProcess }> {
  const port = await freePort();
  const proc = spawn(REDIS_BIN, [...args, '--port', String(port)], { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
  procs.push(proc);
  let stderr = '';
  proc.stderr?.on('data', (d) => (stderr += d));
  const up = await until(5000, async () => (await cli(port, 'PING')) === 'PONG');
  if (!up) throw new Error(`redis on ${port} did not start: ${stderr}`);
  return { port, proc };
}

function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'attest-redis-'));
  dirs.push(d);
  return d;
}

const DATA = ['--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'];

afterAll(() => {
  for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/**
 * A master, its replica and one sentinel (quorum 1, down after 1 s) watching them, each on a free
 * port; returns once the sentinel knows the replica (learned from the master's INFO), which a
 * failover needs.
 */
async function sentinelTopology(name: string): Promise<{ master: number; masterProc: ChildProcess; replica: number; replicaProc: ChildProcess; sentinel: number }> {
  const dir = tmp();
  const { port: master, proc: masterProc } = await server(DATA, dir);
  const { port: replica, proc: replicaProc } = await server([...DATA, '--replicaof', '127.0.0.1', String(master)], dir);
  expect(await until(10_000, async () => (await cli(replica, 'INFO', 'replication')).includes('master_link_status:up'))).toBe(true);
  // Sentinel rewrites its config file, so it must be a writable file of its own.
  const conf = join(dir, 'sentinel.conf');
  writeFileSync(
    conf,
    [
      'bind 127.0.0.1',
      `dir ${dir}`,
      `sentinel monitor ${name} 127.0.0.1 ${master} 1`,
      `sentinel down-after-milliseconds ${name} 1000`,
      `sentinel failover-timeout ${name} 5000`,
      `sentinel parallel-syncs ${name} 1`,
      '',
    ].join('\n'),
  );
  const sentinel = (await server([conf, '--sentinel'], dir)).port;
  expect(await until(15_000, async () => (await cli(sentinel, 'SENTINEL', 'REPLICAS', name)).includes(String(replica)))).toBe(true);
  return { master, masterProc, replica, replicaProc, sentinel };
}

/** The contract essentials, run against whichever topology `store()` reaches. */
function essentials(store: () => StateStore) {
  it('1,000 concurrent consumes of one challenge: exactly one wins', async () => {
    const s = store();
    await s.putChallenge('race-1', rec(), 60_000);
    const got = await Promise.all(Array.from({ length: 1000 }, () => s.consumeChallenge('race-1')));
    expect(got.filter((g) => g !== null)).toHaveLength(1);
    expect(await s.consumeChallenge('race-1')).toBeNull();
  });

  it('setIfAbsent: of 200 concurrent callers exactly one sets', async () => {
    const s = store();
    const r = await Promise.all(Array.from({ length: 200 }, (_, i) => s.setIfAbsent('once', `v${i}`, 60_000)));
    expect(r.filter(Boolean)).toHaveLength(1);
    expect(await s.get('once')).toMatch(/^v\d+$/);
  });

  it('compareAndSet: advances exactly once per expected value', async () => {
    const s = store();
    expect(await s.compareAndSet('head', null, 'h1')).toBe(true);
    expect(await s.compareAndSet('head', null, 'again')).toBe(false);
    const r = await Promise.all(Array.from({ length: 50 }, (_, i) => s.compareAndSet('head', 'h1', `h2-${i}`, 60_000)));
    expect(r.filter(Boolean)).toHaveLength(1);
    expect(await s.get('head')).toMatch(/^h2-\d+$/);
    expect(await s.compareAndSet('head', 'h1', 'x')).toBe(false);
    await s.delete('head');
    expect(await s.get('head')).toBeNull();
  });

  it('expiry: an expired challenge and an expired key are gone; a key without TTL stays', async () => {
    const s = store();
    await s.putChallenge('exp-1', rec(), 30);
    await s.set('ttl', 'a', 30);
    await s.set('keep', 'b');
    await sleep(120);
    expect(await s.consumeChallenge('exp-1')).toBeNull();
    expect(await s.get('ttl')).toBeNull();
    expect(await s.get('keep')).toBe('b');
  });
}

describe('Redis Sentinel (1 master + 1 replica + 1 sentinel)', () => {
  const MASTER = 'attestmaster';
  let master: number;
  let replica: number;
  let sentinel: number;
  let replicaProc: ChildProcess;
  let s: RedisStore;

  beforeAll(async () => {
    const t = await sentinelTopology(MASTER);
    ({ master, replica, replicaProc, sentinel } = t);
    s = new RedisStore({ url: `redis+sentinel://127.0.0.1:${sentinel}/${MASTER}`, keyPrefix: 'sent:' });
    await s.connect();
  });
  afterAll(async () => {
    await s?.close();
  });

  essentials(() => s);

  it('after SENTINEL FAILOVER the same store writes to the promoted replica within a bounded wait', async () => {
    await s.set('before', 'x');
    // The write must reach the replica before the switch, or it is (correctly) lost with the old master.
    expect(await until(5000, async () => (await cli(replica, 'GET', 'sent:kv:{before}')) === 'x')).toBe(true);
    expect(await cli(sentinel, 'SENTINEL', 'FAILOVER', MASTER)).toBe('OK');
    expect(await until(20_000, async () => (await cli(sentinel, 'SENTINEL', 'GET-MASTER-ADDR-BY-NAME', MASTER)).split('\n')[1] === String(replica))).toBe(true);
    // Until the sentinel demotes the old master (it does so only on its next periodic INFO, ~10 s
    // later), that node still accepts writes: a client that stays on it would lose writes and could
    // consume a challenge that the new master still holds. The store must move to the new master as
    // soon as the sentinel announces +switch-master, so each write here is checked ON the new master.
    expect(await writesLandOn(s, replica, 'sent:', 8000)).toBe(true);
    expect(await cli(replica, 'ROLE')).toMatch(/^master/);
    expect(await s.get('before')).toBe('x');
    // The contract still holds against the new master.
    await s.putChallenge('post-failover', rec(), 60_000);
    const got = await Promise.all(Array.from({ length: 200 }, () => s.consumeChallenge('post-failover')));
    expect(got.filter((g) => g !== null)).toHaveLength(1);
    expect(await s.setIfAbsent('post-once', 'a')).toBe(true);
    expect(await s.setIfAbsent('post-once', 'b')).toBe(false);
  });

  it('after the promoted master is killed, the sentinel fails over back and the store follows', async () => {
    // The old master must first have been turned into a synced replica of the promoted one.
    expect(await until(20_000, async () => (await cli(master, 'INFO', 'replication')).includes('master_link_status:up'))).toBe(true);
    await s.set('pre-crash', 'z');
    expect(await until(5000, async () => (await cli(master, 'GET', 'sent:kv:{pre-crash}')) === 'z')).toBe(true);
    replicaProc.kill('SIGKILL');
    // down-after-milliseconds 1000 with quorum 1: the sentinel promotes the old master again.
    expect(await until(20_000, async () => (await cli(sentinel, 'SENTINEL', 'GET-MASTER-ADDR-BY-NAME', MASTER)).split('\n')[1] === String(master))).toBe(true);
    // The client first has to notice its master died (a closed connection, then its reconnect
    // back-off) before it asks the sentinel again: seconds on a busy machine, so a wide window.
    // Settled means five writes in a row land on the new master: the client may reconnect on its
    // own before the sentinel publishes +switch-master, and its failover detector then drops the
    // fresh connection once more. The store waits out that drop for commands issued after it, but
    // one already on the wire at that instant fails (STORE_UNAVAILABLE, fail closed), and the
    // assertions below need the settled store. (Should the switch land while the client is still
    // asking the sentinel, ioredis gives up on it altogether: the next describe covers that.)
    let n = 0;
    let inRow = 0;
    const moved = await until(30_000, async () => {
      const k = `crash-${n++}`;
      const ok = await s.set(k, 'w').then(
        async () => (await cli(master, 'GET', `sent:kv:{${k}}`)) === 'w',
        () => false,
      );
      inRow = ok ? inRow + 1 : 0;
      return inRow >= 5;
    });
    expect(moved).toBe(true);
    expect(await s.get('pre-crash')).toBe('z');
    await s.putChallenge('post-crash', rec(), 60_000);
    const got = await Promise.all(Array.from({ length: 200 }, () => s.consumeChallenge('post-crash')));
    expect(got.filter((g) => g !== null)).toHaveLength(1);
  }, 90_000);
});

/**
 * A loopback TCP relay to the sentinel that can hold back what new connections send: bytes from
 * connections accepted while `hold()` is in force are queued until `release()`. That opens,
 * deterministically, the window in which ioredis gives up on a client for good: the master dies,
 * the client reconnects and asks the sentinel for the master (held here), the sentinel fails
 * over and publishes +switch-master on the failover detector's older subscription, the detector
 * closes the connector under the reconnect in progress, and once the answer arrives ioredis ends
 * the client ('end': no further reconnects).
 */
async function holdingRelay(upstream: number): Promise<{ port: number; hold(): void; release(): void; close(): void }> {
  let holding = false;
  const queued: (() => void)[] = [];
  const socks = new Set<Socket>();
  const srv = createServer((down) => {
    let held = holding;
    const up = netConnect(upstream, '127.0.0.1');
    socks.add(down).add(up);
    const kill = (): void => {
      down.destroy();
      up.destroy();
    };
    down.on('error', kill).on('close', kill);
    up.on('error', kill).on('close', kill);
    up.on('data', (d) => down.write(d));
    down.on('data', (d) => {
      if (held && holding) queued.push(() => !up.destroyed && up.write(d));
      else {
        held = false;
        up.write(d);
      }
    });
  });
  const port = await freePort();
  await new Promise<void>((r) => srv.listen(port, '127.0.0.1', r));
  return {
    port,
    hold: () => void (holding = true),
    release() {
      holding = false;
      for (const f of queued.splice(0)) f();
    },
    close() {
      for (const x of socks) x.destroy();
      srv.close();
    },
  };
}

describe('Redis Sentinel: +switch-master while the client is already reconnecting', () => {
  const MASTER = 'racemaster';
  it('ioredis ends its client; the store revives it and writes on the new master', async () => {
    const { masterProc, replica, sentinel } = await sentinelTopology(MASTER);
    const relay = await holdingRelay(sentinel);
    const url = `redis+sentinel://127.0.0.1:${relay.port}/${MASTER}`;
    // The control: a bare client built exactly as the store builds its own.
    const bare = createRedisClient({ url });
    bare.on('error', () => {});
    const s = new RedisStore({ url, keyPrefix: 'race:' });
    try {
      await bare.connect();
      await s.connect();
      await s.set('before', 'x');
      expect(await until(5000, async () => (await cli(replica, 'GET', 'race:kv:{before}')) === 'x')).toBe(true);
      relay.hold();
      masterProc.kill('SIGKILL');
      expect(await until(30_000, async () => (await cli(sentinel, 'SENTINEL', 'GET-MASTER-ADDR-BY-NAME', MASTER)).split('\n')[1] === String(replica))).toBe(true);
      // The sentinel publishes +switch-master as it switches; give the detectors a moment to act
      // on it, then let the held lookups through: ioredis then gives up on the bare client.
      await sleep(500);
      relay.release();
      expect(await until(10_000, async () => bare.status === 'end')).toBe(true);
      expect(await writesLandOn(s, replica, 'race:', 20_000)).toBe(true);
      expect(await s.get('before')).toBe('x');
      // The control stays ended: without the store's revival this is every command's fate.
      expect(bare.status).toBe('end');
    } finally {
      bare.disconnect();
      await s.close();
      relay.close();
    }
  }, 90_000);
});

describe('Redis Cluster (3 masters)', () => {
  let ports: number[];
  let nodeProcs: ChildProcess[];
  let s: RedisStore;

  beforeAll(async () => {
    const dir = tmp();
    ports = [];
    nodeProcs = [];
    for (let i = 0; i < 3; i++) {
      const sub = join(dir, `n${i}`);
      dirs.push(sub);
      await run('mkdir', ['-p', sub]);
      const n = await server([...DATA, '--cluster-enabled', 'yes', '--cluster-config-file', join(sub, 'nodes.conf'), '--cluster-node-timeout', '2000', '--dir', sub], sub);
      ports.push(n.port);
      nodeProcs.push(n.proc);
    }
    await run(CLI_BIN, ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-yes'], { timeout: 30_000 });
    for (const p of ports) expect(await until(15_000, async () => (await cli(p, 'CLUSTER', 'INFO')).includes('cluster_state:ok'))).toBe(true);
    s = new RedisStore({ url: `redis+cluster://127.0.0.1:${ports[0]},127.0.0.1:${ports[1]}`, keyPrefix: 'clu:' });
    await s.connect();
  });
  afterAll(async () => {
    await s?.close();
  });

  essentials(() => s);

  it('keys of different ids spread over all three masters; each op stays single-slot', async () => {
    const ids = Array.from({ length: 60 }, (_, i) => `spread-${i}`);
    await Promise.all(ids.map((id) => s.putChallenge(id, rec(), 60_000)));
    await Promise.all(ids.map((id, i) => s.set(`k-${id}`, String(i), 60_000)));
    await Promise.all(ids.map((id) => s.compareAndSet(`cas-${id}`, null, 'v', 60_000)));
    // Each master holds some of them: the hash tag is per key, not one shared tag.
    const sizes = await Promise.all(ports.map(async (p) => Number(await cli(p, 'DBSIZE'))));
    for (const n of sizes) expect(n).toBeGreaterThan(0);
    expect(sizes.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(180);
    // The tag is the whole id: the slot of a store key is the slot of its id.
    for (const id of ids.slice(0, 5)) expect(await cli(ports[0]!, 'CLUSTER', 'KEYSLOT', `clu:ch:{${id}}`)).toBe(await cli(ports[0]!, 'CLUSTER', 'KEYSLOT', id));
    const got = await Promise.all(ids.flatMap((id) => [s.consumeChallenge(id), s.consumeChallenge(id)]));
    expect(got.filter((g) => g !== null)).toHaveLength(ids.length);
    for (const [i, id] of ids.entries()) expect(await s.get(`k-${id}`)).toBe(String(i));
  });

  // Last: it kills a node. Fail closed — a challenge on a dead master is an outage, never "not found".
  it('a dead master: its challenges surface as STORE_UNAVAILABLE, never as consumed or unknown', async () => {
    const ids = Array.from({ length: 30 }, (_, i) => `dead-${i}`);
    await Promise.all(ids.map((id) => s.putChallenge(id, rec(), 60_000)));
    const onDead: string[] = [];
    for (const id of ids) if ((await cli(ports[2]!, 'EXISTS', `clu:ch:{${id}}`)) === '1') onDead.push(id);
    expect(onDead.length).toBeGreaterThan(0);
    nodeProcs[2]!.kill('SIGKILL');
    const e = await s.consumeChallenge(onDead[0]!).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(e).toBeInstanceOf(AttestError);
    expect((e as AttestError).code).toBe('STORE_UNAVAILABLE');
  });
});

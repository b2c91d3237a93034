/**
 * @module broker/cluster.node
 *
 * `listen.workers: N` (or `auto`): the Node runtime serves with N processes (node:cluster), so a
 * burst of joins uses every core. The primary only supervises: it forks the workers, restarts one
 * that dies (each keeps its index; the approver runs in worker 0 only), forwards SIGTERM/SIGINT
 * so every worker drains its connections, and answers the workers' requests for the cluster-wide
 * metrics (prom-client's AggregatorRegistry), so `/metrics` on any worker is one view of all.
 *
 * All shared state lives in the store, so more than one worker needs a shared store: the memory
 * store would give each process its own challenges. That is refused at start.
 */
import cluster, { type Worker } from 'node:cluster';
import { availableParallelism } from 'node:os';
import { AggregatorRegistry, type Registry } from 'prom-client';
import type { BrokerConfig } from './config/schema.js';
import { ConfigProblem } from './config/schema.js';
import type { Logger, Metrics } from './contracts.js';

const METRICS_REQ = 'attest-broker:cluster-metrics';
const METRICS_RES = 'attest-broker:cluster-metrics-result';
/** How long the primary waits for its workers' metrics (prom-client's own limit is 5 s). */
const METRICS_TIMEOUT_MS = 6000;
/** A worker that dies this soon after its start, this many times in a row, stops the broker. */
const CRASH_WINDOW_MS = 10_000;
const CRASH_LIMIT = 5;

/** The number of worker processes `cfg.listen.workers` asks for. */
export function workerCount(cfg: BrokerConfig): number {
  const w = cfg.listen.workers;
  return w === 'auto' ? Math.max(1, Math.min(64, availableParallelism())) : w;
}

/** Refuses a worker count the store cannot serve. */
export function checkWorkers(cfg: BrokerConfig): void {
  const n = workerCount(cfg);
  if (n > 1 && cfg.store.url.startsWith('memory://')) {
    throw new ConfigProblem([
      `listen.workers: ${String(cfg.listen.workers)} (${n} processes) needs a shared store — with store.url memory:// each process would hold its own challenges, ` +
        `so a challenge issued by one could not be used at another; set store.url to redis://… or listen.workers to 1`,
    ]);
  }
}

/** This process's worker index (0-based), or undefined outside a cluster. */
export function workerIndex(): number | undefined {
  const v = process.env.ATTEST_BROKER_WORKER_INDEX;
  return cluster.isWorker && v !== undefined && /^\d+$/.test(v) ? Number(v) : undefined;
}

/**
 * In a worker: `/metrics` renders the whole cluster (asked of the primary over IPC), and this
 * worker's own registry answers the primary's collection requests.
 */
export function clusterMetrics(local: Metrics & { registry: Registry }): Metrics {
  AggregatorRegistry.setRegistries([local.registry]);
  // Registers the worker-side listener that answers the primary's collection requests.
  new AggregatorRegistry();
  let seq = 0;
  const waiting = new Map<number, (m: { body?: string; error?: string }) => void>();
  process.on('message', (m: { type?: string; id?: number; body?: string; error?: string }) => {
    if (m?.type !== METRICS_RES || typeof m.id !== 'number') return;
    waiting.get(m.id)?.(m);
    waiting.delete(m.id);
  });
  return {
    ...local,
    async render() {
      const id = seq++;
      const reply = await new Promise<{ body?: string; error?: string }>((resolve) => {
        const t = setTimeout(() => {
          waiting.delete(id);
          resolve({ error: 'the primary did not answer' });
        }, METRICS_TIMEOUT_MS);
        waiting.set(id, (m) => {
          clearTimeout(t);
          resolve(m);
        });
        process.send?.({ type: METRICS_REQ, id });
      });
      if (reply.body === undefined) throw new Error(`cluster metrics unavailable: ${reply.error ?? 'no answer'}`);
      return { contentType: AggregatorRegistry.PROMETHEUS_CONTENT_TYPE, body: reply.body };
    },
  };
}

/**
 * The primary: forks `n` workers running this same program, keeps them up, and stops them all on
 * SIGTERM/SIGINT (each drains its listeners; the primary exits when they have).
 */
export function runPrimary(n: number, log: Logger): void {
  const aggregator = new AggregatorRegistry();
  const byIndex = new Map<number, Worker>();
  const crashes = new Map<number, number>();
  let stopping = false;
  let exitWith = 0;

  const fork = (index: number): void => {
    const startedAt = Date.now();
    const w = cluster.fork({ ATTEST_BROKER_WORKER_INDEX: String(index) });
    byIndex.set(index, w);
    w.on('message', (m: { type?: string; id?: number }) => {
      if (m?.type !== METRICS_REQ || typeof m.id !== 'number') return;
      aggregator.clusterMetrics().then(
        (body) => w.isConnected() && w.send({ type: METRICS_RES, id: m.id, body }),
        (e: unknown) => w.isConnected() && w.send({ type: METRICS_RES, id: m.id, error: e instanceof Error ? e.message : String(e) }),
      );
    });
    w.on('exit', (code, signal) => {
      byIndex.delete(index);
      if (stopping) {
        if (byIndex.size === 0) process.exit(exitWith);
        return;
      }
      const quick = Date.now() - startedAt < CRASH_WINDOW_MS;
      const count = quick ? (crashes.get(index) ?? 0) + 1 : 0;
      crashes.set(index, count);
      if (count >= CRASH_LIMIT) {
        log.error({ worker: index, code, signal }, `worker ${index} exited ${CRASH_LIMIT} times within ${CRASH_WINDOW_MS / 1000} s of starting: stopping the broker (see the worker's errors above)`);
        stop('worker crash loop', 1);
        return;
      }
      log.error({ worker: index, code, signal }, `worker ${index} exited; starting it again`);
      // Not unref'd: with every worker down, this timer is what keeps the primary alive.
      setTimeout(() => fork(index), quick ? 1000 * count : 0);
    });
  };

  const stop = (why: string, exitCode = 0): void => {
    if (stopping) return;
    stopping = true;
    // A crash loop ends the broker with a failure, so a supervisor (systemd Restart=on-failure,
    // a container runtime) sees one.
    exitWith = exitCode;
    log.info({ reason: why, workers: byIndex.size }, 'shutting down the workers');
    if (byIndex.size === 0) process.exit(exitCode);
    for (const w of byIndex.values()) w.process.kill('SIGTERM');
    // Workers give themselves 10 s to drain; past that, the primary ends them.
    setTimeout(() => {
      for (const w of byIndex.values()) w.process.kill('SIGKILL');
      process.exit(exitCode);
    }, 12_000).unref();
  };

  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  for (let i = 0; i < n; i++) fork(i);
  log.info({ workers: n, pid: process.pid }, `attest-broker primary: ${n} workers`);
}

/**
 * @module broker/cluster.node
 *
 * `listen.workers: N` (or `auto`): the Node runtime serves with N processes (node:cluster), so a
 * burst of joins uses every core. The primary only supervises: it forks the workers, restarts one
 * that dies (each keeps its index; the approver runs in worker 0 only), forwards SIGTERM/SIGINT
 * so every worker drains its connections, and answers the workers' requests for the cluster-wide
 * metrics (merged with prom-client's aggregators), so `/metrics` on any worker is one view of all.
 *
 * All shared state lives in the store, so more than one worker needs a shared store: the memory
 * store would give each process its own challenges. That is refused at start.
 */
import cluster, { type Worker } from 'node:cluster';
import { availableParallelism } from 'node:os';
import { AggregatorRegistry, type Registry } from 'prom-client';
import type { BrokerConfig } from './config/schema.js';
import { ConfigProblem } from './config/schema.js';
import { setSlowCurvesSync } from '../providers/common/sig.js';
import type { Logger, Metrics } from './contracts.js';

const METRICS_REQ = 'attest-broker:cluster-metrics';
const METRICS_RES = 'attest-broker:cluster-metrics-result';
const COLLECT_REQ = 'attest-broker:collect-metrics';
const COLLECT_RES = 'attest-broker:collect-metrics-result';
/** How long the primary waits for one worker's metrics. */
const METRICS_TIMEOUT_MS = 5000;
/** A worker that dies this soon after its start, this many times in a row, stops the broker. */
const CRASH_WINDOW_MS = 10_000;
const CRASH_LIMIT = 5;

/** The number of worker processes `cfg.listen.workers` asks for. */
export function workerCount(cfg: BrokerConfig): number {
  const w = cfg.listen.workers;
  return w === 'auto' ? Math.max(1, Math.min(64, availableParallelism())) : w;
}

/**
 * In a worker of a cluster with a worker per core, every core already has a process verifying:
 * a P-384 verify handed to the thread pool would only compete with the other workers (and pay
 * the hop), so it runs synchronously (providers/common/sig.ts). Outside such a cluster nothing
 * changes. Returns whether it switched.
 */
export function applyWorkerCryptoMode(cfg: BrokerConfig): boolean {
  if (workerIndex() === undefined || workerCount(cfg) < availableParallelism()) return false;
  setSlowCurvesSync(true);
  return true;
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

/** A worker's registry as prom-client's `getMetricsAsJSON()` gives it (what `aggregate` takes). */
type MetricsJson = Awaited<ReturnType<Registry['getMetricsAsJSON']>>;
type CollectReply = { type: typeof COLLECT_RES; id: number; metrics?: MetricsJson; error?: string };

/**
 * In a worker: `/metrics` renders the whole cluster (asked of the primary over IPC), and this
 * worker answers the primary's collection requests with its own registry.
 */
export function clusterMetrics(local: Metrics & { registry: Registry }): Metrics {
  let seq = 0;
  const waiting = new Map<number, (m: { body?: string; error?: string }) => void>();
  process.on('message', (m: { type?: string; id?: number; body?: string; error?: string }) => {
    if (typeof m?.id !== 'number') return;
    if (m.type === COLLECT_REQ) {
      const id = m.id;
      local.registry.getMetricsAsJSON().then(
        (metrics) => process.send?.({ type: COLLECT_RES, id, metrics } satisfies CollectReply),
        (e: unknown) => process.send?.({ type: COLLECT_RES, id, error: e instanceof Error ? e.message : String(e) } satisfies CollectReply),
      );
      return;
    }
    if (m.type !== METRICS_RES) return;
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
        }, METRICS_TIMEOUT_MS + 1000);
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
 * The primary's side of `/metrics`: asks every worker that is serving (has emitted `listening`,
 * so its collection listener is in place) for its registry and merges them with prom-client's
 * aggregators. A worker still starting is not asked: it would not answer, and it has counted
 * nothing yet. Scrapes that arrive while a collection is running share it, so any number of
 * concurrent `/metrics` requests cost one collection.
 */
class ClusterCollector {
  readonly serving = new Set<Worker>();
  private seq = 0;
  private readonly pending = new Map<number, (r: CollectReply) => void>();
  private inFlight: Promise<string> | undefined;

  onReply(r: CollectReply): void {
    this.pending.get(r.id)?.(r);
  }

  collect(): Promise<string> {
    this.inFlight ??= this.run().finally(() => (this.inFlight = undefined));
    return this.inFlight;
  }

  private async run(): Promise<string> {
    const targets = [...this.serving].filter((w) => w.isConnected());
    const parts = await Promise.all(targets.map((w) => this.ask(w)));
    return AggregatorRegistry.aggregate(parts).metrics();
  }

  private ask(w: Worker): Promise<MetricsJson> {
    const id = this.seq++;
    return new Promise<MetricsJson>((resolve, reject) => {
      const t = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`worker process ${w.process.pid ?? '?'} did not send its metrics within ${METRICS_TIMEOUT_MS / 1000} s`));
      }, METRICS_TIMEOUT_MS);
      this.pending.set(id, (r) => {
        clearTimeout(t);
        this.pending.delete(id);
        if (r.metrics) resolve(r.metrics);
        else reject(new Error(`a worker could not render its metrics: ${r.error ?? 'no metrics'}`));
      });
      w.send({ type: COLLECT_REQ, id });
    });
  }
}

/**
 * The primary: forks `n` workers running this same program, keeps them up, and stops them all on
 * SIGTERM/SIGINT (each drains its listeners; the primary exits when they have).
 */
export function runPrimary(n: number, log: Logger): void {
  const collector = new ClusterCollector();
  const byIndex = new Map<number, Worker>();
  const crashes = new Map<number, number>();
  let stopping = false;
  let exitWith = 0;

  const fork = (index: number): void => {
    const startedAt = Date.now();
    const w = cluster.fork({ ATTEST_BROKER_WORKER_INDEX: String(index) });
    byIndex.set(index, w);
    w.on('listening', () => collector.serving.add(w));
    w.on('message', (m: { type?: string; id?: number }) => {
      if (typeof m?.id !== 'number') return;
      if (m.type === COLLECT_RES) return collector.onReply(m as CollectReply);
      if (m.type !== METRICS_REQ) return;
      collector.collect().then(
        (body) => w.isConnected() && w.send({ type: METRICS_RES, id: m.id, body }),
        (e: unknown) => w.isConnected() && w.send({ type: METRICS_RES, id: m.id, error: e instanceof Error ? e.message : String(e) }),
      );
    });
    w.on('exit', (code, signal) => {
      byIndex.delete(index);
      collector.serving.delete(w);
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

/**
 * @module broker/commands/serve.node
 *
 * `attest-broker serve [--config FILE] [--dev]`: runs the HTTP service on Node: the public join
 * listener (`listen:`) and, when configured, the TokenReview webhook (`release.tokenReview.listen`)
 * and the Prometheus metrics (`metrics.listen`) on listeners of their own, all with the server
 * limits of `limits:`; with `listen.workers` > 1, as that many processes (broker/cluster.node.ts).
 * The expiry of each served TLS certificate is exported as a metric.
 */
import type { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { createBroker, createMetricsApp, createWebhookApp } from '../app.js';
import type { Metrics } from '../contracts.js';
import { buildRuntime, loadConfig, type ApproverHandle, type Runtime } from '../runtime.node.js';
import { listen, nodePeer, type Listener, type ServerLimits } from '../server.node.js';
import type { BrokerConfig } from '../config/schema.js';
import { exitOnConfigProblem } from './util.node.js';
import { isAttestError } from '../../providers/common/errors.js';
import cluster from 'node:cluster';
import { checkWorkers, runPrimary, workerCount, workerIndex } from '../cluster.node.js';
import { createPinoLogger } from '../observability/pino.node.js';

export interface Served {
  main: Listener;
  webhook?: Listener;
  /** `GET /metrics` on its own listener (`metrics.listen`). */
  metrics?: Listener;
  runtime: Runtime;
  /** The in-process CSR approver (`release.approver.enabled`), when it has a cluster to watch. */
  approver?: ApproverHandle;
  close(): Promise<void>;
}

/** Exports the expiry of the (first) certificate in a PEM file the listener read at start. */
function certificateExpiry(metrics: Metrics | undefined, name: string, certFile: string): void {
  if (!metrics?.certificateExpiry) return;
  try {
    metrics.certificateExpiry(name, new Date(new X509Certificate(readFileSync(certFile)).validTo));
  } catch {
    // The listener already serves this file; a metric never stops the server.
  }
}

/** Starts every listener of a runtime (used by `serve` and by tests that run the real server). */
export async function startServers(cfg: BrokerConfig, rt: Runtime): Promise<Served> {
  const limits: ServerLimits = cfg.limits;
  const metricsApart = cfg.metrics.listen !== undefined && rt.deps.metrics !== undefined;
  const app = createBroker({ ...rt.deps, peer: nodePeer, options: { ...rt.deps.options, metricsRoute: !metricsApart } });
  const main = await listen(app.fetch, { host: cfg.listen.host, port: cfg.listen.port, ...(cfg.listen.tls ? { tls: cfg.listen.tls } : {}), limits });
  if (cfg.listen.tls) certificateExpiry(rt.deps.metrics, 'listen', cfg.listen.tls.certFile);
  const started: Listener[] = [main];
  const closeStarted = (): Promise<unknown> => Promise.all(started.map((l) => l.close()));
  let webhook: Listener | undefined;
  let metrics: Listener | undefined;
  try {
    if (rt.webhook) {
      const wapp = createWebhookApp({ logger: rt.deps.logger, tokenReview: rt.webhook.handler, peer: nodePeer, ...(rt.deps.tracer ? { tracer: rt.deps.tracer } : {}) });
      webhook = await listen(wapp.fetch, { ...rt.webhook.listen, limits });
      started.push(webhook);
      if (rt.webhook.listen.tls) certificateExpiry(rt.deps.metrics, 'token_review_listen', rt.webhook.listen.tls.certFile);
    }
    if (metricsApart) {
      const mapp = createMetricsApp({ logger: rt.deps.logger, metrics: rt.deps.metrics! });
      metrics = await listen(mapp.fetch, { host: cfg.metrics.listen!.host, port: cfg.metrics.listen!.port, limits });
      started.push(metrics);
    }
  } catch (e) {
    await closeStarted();
    throw e;
  }
  let approver: ApproverHandle | undefined;
  try {
    approver = rt.approverInProcess ? rt.startApprover() : undefined;
  } catch (e) {
    await closeStarted();
    throw e;
  }
  if (rt.approverInProcess && !approver) rt.deps.logger.warn({}, 'release.approver.enabled, but no cluster under release.clusters has kube access: no CSR is approved');
  return {
    main,
    ...(webhook ? { webhook } : {}),
    ...(metrics ? { metrics } : {}),
    ...(approver ? { approver } : {}),
    runtime: rt,
    async close() {
      // The approver first: it gives its Lease up while the store and API access still work.
      await approver?.stop().catch(() => undefined);
      await closeStarted();
      await rt.close();
    },
  };
}

export function register(program: Command): void {
  program
    .command('serve')
    .description('run the broker HTTP service')
    .option('-c, --config <file>', 'configuration file (YAML or JSON); env ATTEST_BROKER_CONFIG', process.env.ATTEST_BROKER_CONFIG)
    .option('--dev', 'embedded defaults: memory store, 127.0.0.1:8080, dev policy, local software KMS (NOT for production)')
    .action(async (o: { config?: string; dev?: boolean }) => {
      const cfg = await loadConfig({ file: o.config, dev: !!o.dev }).catch(exitOnConfigProblem);
      try {
        checkWorkers(cfg);
      } catch (e) {
        exitOnConfigProblem(e);
      }
      const workers = workerCount(cfg);
      if (workers > 1 && cluster.isPrimary) {
        // The primary supervises; each worker runs this same command and serves (cluster.node.ts).
        runPrimary(workers, createPinoLogger(cfg.log.level));
        return;
      }
      const rt = await buildRuntime(cfg).catch(exitOnConfigProblem);
      const log = rt.deps.logger;
      let served: Served;
      try {
        served = await startServers(cfg, rt);
      } catch (e) {
        if (isAttestError(e)) exitOnConfigProblem(e); // e.g. an approver configuration it cannot run
        const err = e as NodeJS.ErrnoException;
        log.error({ err: err.message }, err.code === 'EADDRINUSE' ? `a port is in use (${err.message}): set listen.port / release.tokenReview.listen.port / metrics.listen.port` : 'server error');
        process.exit(2);
      }
      const index = workerIndex();
      log.info(
        { url: served.main.url, store: rt.deps.store.kind, dev: !!o.dev, policy: cfg.policy.file ?? null, ...(index !== undefined ? { worker: index } : {}) },
        `attest-broker listening on ${served.main.url}${index !== undefined ? ` (worker ${index})` : ''}`,
      );
      if (served.webhook) log.info({ url: served.webhook.url }, `TokenReview webhook listening on ${served.webhook.url}`);
      if (served.metrics) log.info({ url: served.metrics.url }, `metrics listening on ${served.metrics.url}/metrics`);
      let stopping = false;
      const stop = (sig: string): void => {
        if (stopping) return;
        stopping = true;
        log.info({ signal: sig }, 'shutting down');
        void served.close().then(() => process.exit(0));
        setTimeout(() => process.exit(0), 10_000).unref();
      };
      process.on('SIGTERM', () => stop('SIGTERM'));
      process.on('SIGINT', () => stop('SIGINT'));
    });
}

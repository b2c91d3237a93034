/**
 * @module broker/commands/serve.node
 *
 * `attest-broker serve [--config FILE] [--dev]`: runs the HTTP service on Node.
 */
import type { Command } from 'commander';
import { serve } from '@hono/node-server';
import { createBroker } from '../app.js';
import { buildRuntime, loadConfig } from '../runtime.node.js';
import { exitOnConfigProblem } from './util.node.js';

export function register(program: Command): void {
  program
    .command('serve')
    .description('run the broker HTTP service')
    .option('-c, --config <file>', 'configuration file (YAML or JSON); env ATTEST_BROKER_CONFIG', process.env.ATTEST_BROKER_CONFIG)
    .option('--dev', 'embedded defaults: memory store, 127.0.0.1:8080, dev policy, local software KMS (NOT for production)')
    .action(async (o: { config?: string; dev?: boolean }) => {
      const cfg = await loadConfig({ file: o.config, dev: !!o.dev }).catch(exitOnConfigProblem);
      const rt = await buildRuntime(cfg).catch(exitOnConfigProblem);
      const log = rt.deps.logger;
      const app = createBroker(rt.deps);
      const server = serve({ fetch: app.fetch, hostname: cfg.listen.host, port: cfg.listen.port }, (info) => {
        log.info(
          { address: info.address, port: info.port, store: rt.deps.store.kind, dev: !!o.dev, policy: cfg.policy.file ?? null },
          `attest-broker listening on http://${info.address}:${info.port}`,
        );
      });
      server.on('error', (e: NodeJS.ErrnoException) => {
        log.error({ err: e.message }, e.code === 'EADDRINUSE' ? `port ${cfg.listen.port} is in use: set listen.port or ATTEST_BROKER_PORT` : 'server error');
        process.exit(2);
      });
      let stopping = false;
      const stop = (sig: string): void => {
        if (stopping) return;
        stopping = true;
        log.info({ signal: sig }, 'shutting down');
        server.close(() => void rt.close().then(() => process.exit(0)));
        setTimeout(() => process.exit(0), 10_000).unref();
      };
      process.on('SIGTERM', () => stop('SIGTERM'));
      process.on('SIGINT', () => stop('SIGINT'));
    });
}

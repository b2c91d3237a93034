/**
 * @module broker/commands/approve.node
 *
 * `attest-broker approve [--config FILE]`: the CSR approver on its own (its own Deployment, same
 * image and configuration as `serve`): for every cluster under `release.clusters` with `kube`
 * access it watches CertificateSigningRequests and approves kubelet certificates only for nodes
 * this broker admitted (docs/approver.md). Replicas elect one leader per cluster through a Lease
 * (`release.approver.leaderElection`). It shares the broker's store (token state, node records),
 * so with more than one process the store must be Redis.
 */
import type { Command } from 'commander';
import { buildRuntime, loadConfig } from '../runtime.node.js';
import { exitOnConfigProblem, usage } from './util.node.js';

export function register(program: Command): void {
  program
    .command('approve')
    .description("run the CSR approver: kubelet certificates only for attested nodes, under their attested names")
    .option('-c, --config <file>', 'configuration file (YAML or JSON); env ATTEST_BROKER_CONFIG', process.env.ATTEST_BROKER_CONFIG)
    .action(async (o: { config?: string }) => {
      if (!o.config) usage('approve needs --config (the broker configuration with release.clusters.<name>.kube)');
      const cfg = await loadConfig({ file: o.config }).catch(exitOnConfigProblem);
      if (cfg.store.url.startsWith('memory://')) {
        usage('approve as its own process needs the shared store the broker writes token state to (store.url: redis://…); with the memory store set release.approver.enabled and let serve run it');
      }
      const rt = await buildRuntime(cfg).catch(exitOnConfigProblem);
      const log = rt.deps.logger;
      const approver = rt.startApprover();
      if (!approver) usage('no cluster under release.clusters has kube access (inCluster or kubeconfig): nothing to approve for');
      let stopping = false;
      const stop = (sig: string): void => {
        if (stopping) return;
        stopping = true;
        log.info({ signal: sig }, 'approver shutting down');
        void approver
          .stop()
          .then(() => rt.close())
          .then(() => process.exit(0));
        setTimeout(() => process.exit(0), 10_000).unref();
      };
      process.on('SIGTERM', () => stop('SIGTERM'));
      process.on('SIGINT', () => stop('SIGINT'));
    });
}

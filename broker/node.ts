/**
 * @module broker/node
 *
 * The Node entry: the `attest-broker` CLI (serve, verify, trust, version, and the commands the
 * providers, policy and join client add). Bundled to dist/node.mjs by scripts/build.mjs so
 * `npx attest-broker` works right after `npm ci`.
 */
import { Command } from 'commander';
import { register as registerServe } from './commands/serve.node.js';
import { register as registerVerify } from './commands/verify.node.js';
import { register as registerTrust } from './commands/trust.node.js';
import { register as registerMeasure } from './commands/measure.node.js';
import { register as registerPolicy } from './commands/policy.node.js';
import { register as registerJoin } from './commands/join.node.js';
import { register as registerApprove } from './commands/approve.node.js';
import { register as registerWorker } from './commands/worker.node.js';
import { availableProviders } from './providers.js';
import pkg from '../package.json' with { type: 'json' };
import './builtins.node.js';

export function buildCli(): Command {
  const program = new Command('attest-broker')
    .description('Admit Kubernetes nodes by remote attestation: TPM quotes + Confidential-VM evidence in, single-use bootstrap tokens out.')
    .version(pkg.version, '-V, --version', 'print the version and exit')
    .showHelpAfterError()
    .exitOverride((e) => {
      // commander's own usage errors → exit 2 (protocol §4), help/version → 0.
      process.exit(e.exitCode === 0 ? 0 : 2);
    });
  registerServe(program);
  registerVerify(program);
  registerTrust(program);
  registerMeasure(program);
  registerPolicy(program);
  registerJoin(program);
  registerApprove(program);
  registerWorker(program);
  program
    .command('version')
    .description('print version information')
    .action(() => {
      process.stdout.write(
        JSON.stringify({ name: pkg.name, version: pkg.version, node: process.versions.node, providers: availableProviders() }, null, 2) + '\n',
      );
    });
  return program;
}

await buildCli().parseAsync(process.argv);

/**
 * @module deploy/node/client/main.node
 *
 * Entry of the single-file client (`dist/attest-join.mjs`, and the Node SEA binary built from
 * a CommonJS bundle of it by `scripts/bundle-client.mjs`): `attest-join --broker … --ca-pin …
 * --cluster …`. No top-level await, so the same source bundles as ESM and as the CommonJS
 * script Node's single-executable support requires.
 */
import { Command } from 'commander';
import { configureJoinCommand } from './cli.node.js';

const program = configureJoinCommand(new Command('attest-join'));
program.exitOverride((err) => {
  // Usage errors exit 2 (as `attest-broker`); --help / --version exit 0.
  process.exit(err.exitCode === 0 ? 0 : 2);
});
program.parseAsync(process.argv).catch((e: unknown) => {
  process.stderr.write(`attest-join: ${(e as Error).message}\n`);
  process.exit(1);
});

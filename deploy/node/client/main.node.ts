/**
 * @module deploy/node/client/main.node
 *
 * Entry of the single-file client (`dist/attest-join.mjs`, and the Node SEA binary built from
 * it by `scripts/bundle-client.mjs`): `attest-join --broker … --ca-pin … --cluster …`.
 */
import { Command } from 'commander';
import { configureJoinCommand } from './cli.node.js';

const program = configureJoinCommand(new Command('attest-join'));
program.exitOverride((err) => {
  // Usage errors exit 2 (as `attest-broker`); --help / --version exit 0.
  process.exit(err.exitCode === 0 ? 0 : 2);
});
await program.parseAsync(process.argv);

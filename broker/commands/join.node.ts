/**
 * @module broker/commands/join.node
 *
 * `attest-broker join`: the node-side client (deploy/node/client/), registered as a subcommand
 * of the broker CLI so one package serves both sides.
 */
import { Command } from 'commander';
import { configureJoinCommand } from '../../deploy/node/client/cli.node.js';

export function register(program: Command): void {
  configureJoinCommand(program.command('join'));
}

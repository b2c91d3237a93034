/**
 * @module broker/commands/trust.node
 *
 * `attest-broker trust fetch|import|list`: put the pinned roots on the host (see
 * broker/trust/fetch.node.ts). Exit 1 when any root could not be obtained and checked.
 */
import type { Command } from 'commander';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { BUILTIN_INTERMEDIATES, BUILTIN_PINS } from '../../providers/common/pins.js';
import { fetchTrust, importTrust, type TrustResult } from '../trust/fetch.node.js';
import { EXIT } from './util.node.js';

const DEFAULT_DIR = process.env.ATTEST_BROKER_TRUST_DIR ?? '/var/lib/attest-broker/trust';

/** The roots named by --only (undefined: every root and every pinned intermediate). */
function selectPins(only?: string) {
  if (!only) return undefined;
  const ids = only.split(',').map((s) => s.trim());
  const unknown = ids.filter((id) => !BUILTIN_PINS.some((p) => p.id === id));
  if (unknown.length) {
    process.stderr.write(`attest-broker: unknown root id(s) ${unknown.join(', ')}; see 'attest-broker trust list'\n`);
    process.exit(EXIT.USAGE);
  }
  return BUILTIN_PINS.filter((p) => ids.includes(p.id));
}

function finish(results: TrustResult[], dir: string): void {
  const bad = results.filter((r) => !r.ok);
  if (bad.length) {
    process.stderr.write(
      `${bad.length} of ${results.length} roots missing: ${bad.map((b) => b.id).join(', ')}.\n` +
        `Providers that need them will refuse to start. Retry, or copy the vendor files to a directory and run 'attest-broker trust import DIR --dir ${dir}'.\n`,
    );
    process.exitCode = EXIT.REJECTED;
  } else process.stderr.write(`all ${results.length} roots and intermediates present and pinned in ${dir}\n`);
}

export function register(program: Command): void {
  const trust = program.command('trust').description('manage the pinned root certificates');
  trust
    .command('fetch')
    .description("download the vendors' roots from their official URLs and check the pins")
    .option('--dir <dir>', 'trust directory', DEFAULT_DIR)
    .option('--only <ids>', 'comma-separated root ids')
    .action(async (o: { dir: string; only?: string }) => {
      const pins = selectPins(o.only);
      const results = await fetchTrust({ dir: o.dir, fetch: globalThis.fetch, ...(pins ? { pins } : {}), progress: (l) => process.stderr.write(l + '\n') });
      finish(results, o.dir);
    });
  trust
    .command('import <from>')
    .description('air-gapped install: take the roots and intermediates from the files under a directory tree (checked against the pins)')
    .option('--dir <dir>', 'trust directory', DEFAULT_DIR)
    .option('--only <ids>', 'comma-separated root ids')
    .action(async (from: string, o: { dir: string; only?: string }) => {
      const pins = selectPins(o.only);
      const results = await importTrust({ from, dir: o.dir, ...(pins ? { pins } : {}), progress: (l) => process.stderr.write(l + '\n') });
      finish(results, o.dir);
    });
  trust
    .command('list')
    .description('show the pinned roots and whether each is installed')
    .option('--dir <dir>', 'trust directory', DEFAULT_DIR)
    .action((o: { dir: string }) => {
      for (const p of BUILTIN_PINS) {
        const have = existsSync(join(o.dir, `${p.id}.pem`));
        process.stdout.write(`${have ? 'present' : 'MISSING'}  ${p.id}  sha256:${p.sha256}\n         ${p.description}\n         source: ${p.source}\n`);
      }
      for (const p of BUILTIN_INTERMEDIATES) {
        const have = existsSync(join(o.dir, `${p.id}.intermediates.pem`));
        process.stdout.write(`${have ? 'present' : 'MISSING'}  ${p.id} (intermediate under ${p.issuer})  sha256:${p.sha256}\n         ${p.description}\n         source: ${p.source}\n`);
      }
    });
}

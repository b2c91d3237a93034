/**
 * @module broker/commands/util.node
 *
 * Shared CLI behaviour: configuration problems print what to fix and exit 2.
 */
import { ConfigProblem } from '../config/schema.js';
import { isAttestError } from '../../providers/common/errors.js';

export const EXIT = { OK: 0, REJECTED: 1, USAGE: 2 } as const;

export function exitOnConfigProblem(e: unknown): never {
  if (e instanceof ConfigProblem) {
    process.stderr.write(`attest-broker: ${e.message}\n`);
    process.exit(EXIT.USAGE);
  }
  if (isAttestError(e) && (e.kind === 'config' || e.kind === 'malformed')) {
    process.stderr.write(`attest-broker: ${e.code}: ${e.message}\n`);
    process.exit(EXIT.USAGE);
  }
  throw e;
}

export function usage(msg: string): never {
  process.stderr.write(`attest-broker: ${msg}\n`);
  process.exit(EXIT.USAGE);
}

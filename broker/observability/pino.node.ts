/**
 * @module broker/observability/pino.node
 *
 * The Node logger: pino, JSON lines on stdout, with pino's path redaction for fields that could
 * carry secrets (callers must never pass them; this is the second line of defence).
 */
import { pino, type DestinationStream } from 'pino';
import type { Logger } from '../contracts.js';
import { REDACT_KEYS, type LogLevel } from './console-logger.js';

export function createPinoLogger(level: LogLevel = 'info', destination?: DestinationStream): Logger {
  const paths = [...REDACT_KEYS].flatMap((k) => [k, `*.${k}`, `*.*.${k}`]);
  const p = pino(
    { level, base: { service: 'attest-broker' }, redact: { paths, censor: '[redacted]' }, timestamp: pino.stdTimeFunctions.isoTime, formatters: { level: (label) => ({ level: label }) } },
    destination,
  );
  return wrap(p);
}

function wrap(p: pino.Logger): Logger {
  return {
    debug: (o, m) => p.debug(o, m),
    info: (o, m) => p.info(o, m),
    warn: (o, m) => p.warn(o, m),
    error: (o, m) => p.error(o, m),
    child: (b) => wrap(p.child(b)),
  };
}

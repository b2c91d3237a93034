/**
 * @module broker/observability/console-logger
 *
 * Structured JSON log lines on `console` (Workers' log pipeline reads them). Same `Logger`
 * interface as the pino logger on Node. Keys that commonly carry secrets are redacted before
 * anything is written, as a second line of defence: callers must never pass secrets at all.
 */
import type { Logger } from '../contracts.js';

const LEVELS = { debug: 20, info: 30, warn: 40, error: 50 } as const;
export type LogLevel = keyof typeof LEVELS;

/** Field names whose values are never logged. */
export const REDACT_KEYS = new Set([
  'token',
  'bootstrapToken',
  'secret',
  'key',
  'diskKey',
  'password',
  'authorization',
  'kubeconfig',
  'release',
  'privateKey',
  'd',
]);

export function redact(v: unknown, depth = 0): unknown {
  if (depth > 6 || v === null || typeof v !== 'object') return v;
  if (Array.isArray(v)) return v.map((x) => redact(x, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) out[k] = REDACT_KEYS.has(k) ? '[redacted]' : redact(x, depth + 1);
  return out;
}

export function createConsoleLogger(
  level: LogLevel = 'info',
  bindings: Record<string, unknown> = {},
  sink: (line: string) => void = (l) => console.log(l),
  now: () => Date = () => new Date(),
): Logger {
  const min = LEVELS[level];
  const emit = (lvl: LogLevel, obj: Record<string, unknown>, msg?: string): void => {
    if (LEVELS[lvl] < min) return;
    sink(JSON.stringify({ level: lvl, time: now().toISOString(), ...bindings, ...(redact(obj) as object), ...(msg ? { msg } : {}) }));
  };
  return {
    debug: (o, m) => emit('debug', o, m),
    info: (o, m) => emit('info', o, m),
    warn: (o, m) => emit('warn', o, m),
    error: (o, m) => emit('error', o, m),
    child: (b) => createConsoleLogger(level, { ...bindings, ...b }, sink, now),
  };
}

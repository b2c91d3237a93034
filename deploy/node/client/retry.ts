/**
 * @module deploy/node/client/retry
 *
 * Exponential backoff with full jitter under one overall deadline (AWS Architecture Blog,
 * "Exponential Backoff and Jitter": sleep = random(0, min(cap, base·2^attempt))). A server's
 * `Retry-After` (RFC 9110 §10.2.3) is honoured as a lower bound. Nothing here decides *what* is
 * safe to retry — the caller classifies each failure (see `join.node.ts`); this only schedules.
 *
 * Clock, sleep and randomness are injected so tests run without real waiting.
 */
import { JoinCodes, joinError } from './codes.js';

export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Resolves after `ms`, or rejects when `signal` aborts. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
  /** Uniform in [0, 1). */
  random(): number;
}

export interface BackoffOptions {
  baseMs: number;
  capMs: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { baseMs: 500, capMs: 15_000 };

/** The delay before retry number `attempt` (0-based), never below `retryAfterMs`. */
export function backoffDelay(attempt: number, o: BackoffOptions, random: number, retryAfterMs = 0): number {
  const ceiling = Math.min(o.capMs, o.baseMs * 2 ** Math.min(attempt, 30));
  return Math.max(retryAfterMs, Math.floor(random * ceiling));
}

/**
 * Parses `Retry-After`: delta-seconds or an HTTP-date (RFC 9110 §10.2.3). Returns milliseconds,
 * or undefined when absent/unparseable. Capped at one hour so a hostile value cannot park us.
 */
export function parseRetryAfter(v: string | null | undefined, nowMs: number): number | undefined {
  if (v == null) return undefined;
  const s = v.trim();
  let ms: number | undefined;
  if (/^\d{1,9}$/.test(s)) ms = Number(s) * 1000;
  else {
    const t = Date.parse(s);
    if (Number.isFinite(t)) ms = Math.max(0, t - nowMs);
  }
  return ms === undefined ? undefined : Math.min(ms, 3_600_000);
}

/** An absolute deadline; `remaining()` is what every wait and request is bounded by. */
export class Deadline {
  constructor(
    private readonly clock: Clock,
    readonly atMs: number,
  ) {}
  remaining(): number {
    return Math.max(0, this.atMs - this.clock.now());
  }
  expired(): boolean {
    return this.remaining() <= 0;
  }
  /** Throws JOIN_DEADLINE_EXCEEDED when over, with what we were doing and the last failure. */
  check(what: string, last?: unknown): void {
    if (this.expired()) throw joinError(JoinCodes.DEADLINE_EXCEEDED, `deadline exceeded while ${what}`, { cause: last });
  }
  /**
   * Sleeps `ms` unless that would cross the deadline, in which case it fails now (sleeping to
   * the deadline only to fail then helps nobody).
   */
  async sleep(ms: number, what: string, last?: unknown): Promise<void> {
    if (ms >= this.remaining()) {
      throw joinError(JoinCodes.DEADLINE_EXCEEDED, `deadline exceeded while ${what} (next retry in ${ms} ms is past it)`, {
        cause: last,
      });
    }
    await this.clock.sleep(ms);
  }
}

/** Parses a Go/systemd-like duration: `300s`, `5m`, `1m30s`, `1500ms`, `2h`, or bare seconds. */
export function parseDuration(s: string): number {
  const t = s.trim();
  if (/^\d+$/.test(t)) return Number(t) * 1000;
  const re = /(\d+)(ms|s|m|h)/gy;
  let total = 0;
  let consumed = 0;
  for (const m of t.matchAll(re)) {
    const n = Number(m[1]);
    total += n * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 'ms' | 's' | 'm' | 'h'];
    consumed += m[0].length;
  }
  if (consumed === 0 || consumed !== t.length || total <= 0) {
    throw joinError(JoinCodes.USAGE, `not a duration: ${JSON.stringify(s)} (use e.g. 300s, 5m, 1m30s)`);
  }
  return total;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: (ms, signal) =>
    new Promise((resolve, reject) => {
      const t = setTimeout(resolve, ms);
      signal?.addEventListener('abort', () => {
        clearTimeout(t);
        reject(signal.reason as Error);
      });
    }),
  random: () => Math.random(),
};

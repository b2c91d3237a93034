/**
 * Test helpers for release: a capturing Logger (to grep every log line for secrets), a fixed
 * clock, and claims/decisions shaped like the policy engine's.
 */
import type { Clock, Decision, Logger, StateStore } from '../../broker/contracts.js';
import type { Claims } from '../../providers/common/types.js';
import { MemoryStore } from '../../broker/store/memory.js';

export interface CapturedLogger extends Logger {
  lines: string[];
}

export function captureLogger(bindings: Record<string, unknown> = {}, lines: string[] = []): CapturedLogger {
  const emit = (level: string) => (obj: Record<string, unknown>, msg?: string) => {
    lines.push(JSON.stringify({ level, ...bindings, ...obj, msg }, (_k, v: unknown) => (v instanceof Error ? { message: v.message, cause: String(v.cause) } : v)));
  };
  return {
    lines,
    debug: emit('debug'),
    info: emit('info'),
    warn: emit('warn'),
    error: emit('error'),
    child: (b) => captureLogger({ ...bindings, ...b }, lines),
  };
}

export function fixedClock(iso = '2026-11-27T18:00:00Z'): Clock & { set(d: Date): void } {
  let t = new Date(iso);
  return { now: () => new Date(t), set: (d) => (t = d) };
}

export function claimsFor(instanceId = 'i-0123456789abcdef0', over: Partial<Claims> = {}): Claims {
  return {
    provider: 'aws',
    format: 'nitrotpm',
    platform: { tee: 'nitro', debug: false },
    identity: { cloud: 'aws', account: '123456789012', region: 'eu-west-1', instanceId, proven: ['instanceId', 'account', 'region'] },
    evidenceSha256: 'ab'.repeat(32),
    ...over,
  };
}

export function decisionFor(over: Partial<Decision> = {}, release: Partial<Decision['release']> = {}): Decision {
  return {
    allow: true,
    nodeName: 'ip-10-0-0-12.eu-west-1.compute.internal',
    cluster: 'prod',
    policyHash: 'cd'.repeat(32),
    policyVersion: '7',
    rules: [],
    release: { tokenTtlSeconds: 600, extraGroups: ['system:bootstrappers:attest-broker:aws'], allowUnsealed: false, diskKey: true, ...release },
    ...over,
  };
}

/** The broker's own in-memory store (broker/store/memory.ts) on the given clock. */
export function memoryStore(clock: Clock = { now: () => new Date() }): StateStore {
  return new MemoryStore({ clock });
}

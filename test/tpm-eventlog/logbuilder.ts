/**
 * Test helper: encodes event logs (TCG PC Client PFP §10.2.1/§10.2.2 layout), so tests can
 * re-encode a parsed real log after mutating it, and build small synthetic logs whose digests
 * are computed honestly with node:crypto (an implementation independent of the code under test).
 */
import { createHash } from 'node:crypto';
import type { EventLog, LogEvent } from '../../providers/tpm/eventlog.js';

export const ALG = { sha1: 0x04, sha256: 0x0b, sha384: 0x0c } as const;
export const SIZE: Record<number, number> = { 0x04: 20, 0x0b: 32, 0x0c: 48, 0x0d: 64, 0x12: 32 };
const NODE_HASH: Record<number, string> = { 0x04: 'sha1', 0x0b: 'sha256', 0x0c: 'sha384' };

function u32le(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0);
  return b;
}
function u16le(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(n);
  return b;
}

export function specIdEvent(algs: ReadonlyArray<{ algId: number; digestSize: number }>, o: { major?: number; minor?: number; uintn?: number; vendor?: Uint8Array } = {}): Buffer {
  return Buffer.concat([
    Buffer.from('Spec ID Event03\0', 'latin1'),
    u32le(0),
    Buffer.from([o.minor ?? 0, o.major ?? 2, 0, o.uintn ?? 2]),
    u32le(algs.length),
    ...algs.map((a) => Buffer.concat([u16le(a.algId), u16le(a.digestSize)])),
    Buffer.from([(o.vendor ?? new Uint8Array()).length]),
    Buffer.from(o.vendor ?? new Uint8Array()),
  ]);
}

export function header(specId: Uint8Array, pcr = 0, type = 3): Buffer {
  return Buffer.concat([u32le(pcr), u32le(type), Buffer.alloc(20), u32le(specId.length), Buffer.from(specId)]);
}

export interface RawEvent {
  pcr: number;
  type: number;
  digests: Array<[number, Uint8Array]>;
  data: Uint8Array;
}

export function event2(e: RawEvent): Buffer {
  return Buffer.concat([
    u32le(e.pcr),
    u32le(e.type),
    u32le(e.digests.length),
    ...e.digests.map(([alg, d]) => Buffer.concat([u16le(alg), Buffer.from(d)])),
    u32le(e.data.length),
    Buffer.from(e.data),
  ]);
}

/** Re-encodes a parsed log (header rebuilt from its Spec ID fields). */
export function encodeLog(log: EventLog, events: readonly LogEvent[] = log.events): Buffer {
  const s = log.specId;
  const spec = specIdEvent(s.algorithms, { major: s.specVersionMajor, minor: s.specVersionMinor, uintn: s.uintnSize, vendor: s.vendorInfo });
  spec.writeUInt32LE(s.platformClass, 16);
  spec[26] = s.specErrata;
  return Buffer.concat([
    header(spec),
    ...events.map((e) => event2({ pcr: e.pcrIndex, type: e.eventType, digests: s.algorithms.map((a) => [a.algId, e.digests.get(a.algId)!]), data: e.data })),
  ]);
}

export function hashWith(alg: number, data: Uint8Array): Buffer {
  return createHash(NODE_HASH[alg]!).update(data).digest();
}

/** A synthetic event whose digest in every bank is H(hashed) (default: H(data)). */
export function measured(pcr: number, type: number, data: Uint8Array, algs: readonly number[], hashed: Uint8Array = data): RawEvent {
  return { pcr, type, data, digests: algs.map((a) => [a, hashWith(a, hashed)]) };
}

/** A synthetic log over `algs` (sha1/sha256/sha384 ids). */
export function buildLog(algs: readonly number[], events: readonly RawEvent[]): Buffer {
  return Buffer.concat([header(specIdEvent(algs.map((a) => ({ algId: a, digestSize: SIZE[a]! })))), ...events.map(event2)]);
}

/** Independent replay with node:crypto (for cross-checks). */
export function replayNode(alg: number, events: readonly RawEvent[], locality?: number): Record<number, string> {
  const out: Record<number, Buffer> = {};
  if (locality !== undefined) {
    out[0] = Buffer.alloc(SIZE[alg]!);
    out[0][SIZE[alg]! - 1] = locality;
  }
  for (const e of events) {
    if (e.type === 3) continue;
    const d = e.digests.find(([a]) => a === alg)![1];
    out[e.pcr] = createHash(NODE_HASH[alg]!).update(Buffer.concat([out[e.pcr] ?? Buffer.alloc(SIZE[alg]!), d])).digest();
  }
  return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, v.toString('hex')]));
}

export const utf16z = (s: string): Buffer => Buffer.from(s + '\0', 'utf16le');

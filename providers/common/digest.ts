/**
 * @module providers/common/digest
 *
 * Hashing. WebCrypto (`crypto.subtle.digest`) runs everywhere but is asynchronous: on Node each
 * call is a thread-pool job and a promise (~10 µs), which dominates replaying an event log (one
 * extend per event per bank). Where the runtime offers a synchronous hash — Node's `node:crypto`,
 * reached through `process.getBuiltinModule` (Node ≥ 20.16) without importing a Node module here —
 * `digestSync` uses it; otherwise it is `null` and callers keep the WebCrypto path. Both produce
 * the same bytes (test/common/digest.test.ts).
 */
export type HashName = 'sha1' | 'sha256' | 'sha384' | 'sha512';

const WEB: Record<HashName, string> = { sha1: 'SHA-1', sha256: 'SHA-256', sha384: 'SHA-384', sha512: 'SHA-512' };
export const HASH_SIZE: Record<HashName, number> = { sha1: 20, sha256: 32, sha384: 48, sha512: 64 };

export function webHashName(h: HashName): string {
  return WEB[h];
}

/** A synchronous hash function, when the runtime has one. */
export type SyncHasher = (h: HashName, ...parts: Uint8Array[]) => Uint8Array;

interface NodeHash {
  update(d: Uint8Array | string, enc?: 'utf8'): NodeHash;
  digest(): Uint8Array;
  digest(enc: 'hex'): string;
}
function nodeCrypto(): { createHash?: (alg: string) => NodeHash; hash?: NodeOneShot & NodeTextHash } | undefined {
  const proc = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process;
  return proc?.getBuiltinModule?.('node:crypto') as { createHash?: (alg: string) => NodeHash; hash?: NodeOneShot & NodeTextHash } | undefined;
}
type NodeOneShot = (alg: string, data: Uint8Array, outputEncoding: 'buffer') => Uint8Array;
type NodeTextHash = (alg: string, data: string, outputEncoding: 'hex') => string;

/** The bytes of a Buffer node:crypto returned, as a plain Uint8Array that owns its memory. */
function own(b: Uint8Array): Uint8Array {
  return b.byteOffset === 0 && b.buffer.byteLength === b.byteLength ? new Uint8Array(b.buffer) : new Uint8Array(b);
}

function detectSyncHasher(): SyncHasher | null {
  const mod = nodeCrypto();
  const createHash = mod?.createHash;
  if (typeof createHash !== 'function') return null;
  // crypto.hash (Node >= 20.12) hashes in one native call: no Hash object to build and collect,
  // about half the cost of createHash for the short inputs of an event-log replay. Several parts
  // are joined first (an extend is 2 x 20..64 bytes).
  const oneShot = typeof mod?.hash === 'function' ? mod.hash : undefined;
  if (oneShot) {
    return (h, ...parts) => {
      let data: Uint8Array;
      if (parts.length === 1) data = parts[0]!;
      else {
        let n = 0;
        for (const p of parts) n += p.byteLength;
        data = new Uint8Array(n);
        n = 0;
        for (const p of parts) {
          data.set(p, n);
          n += p.byteLength;
        }
      }
      return own(oneShot(h, data, 'buffer'));
    };
  }
  return (h, ...parts) => {
    const x = createHash(h);
    for (const p of parts) x.update(p);
    return own(x.digest());
  };
}

const detected = detectSyncHasher();
let syncHasher: SyncHasher | null = detected;
const nodeMod = nodeCrypto();
const nodeTextHash: ((text: string) => string) | null =
  typeof nodeMod?.hash === 'function'
    ? (t) => (nodeMod.hash as NodeTextHash)('sha256', t, 'hex')
    : typeof nodeMod?.createHash === 'function'
      ? (t) => nodeMod.createHash!('sha256').update(t, 'utf8').digest('hex')
      : null;

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

/**
 * The lower-case hex SHA-256 of a string's UTF-8 bytes. With node:crypto the string goes to the
 * hash as it is (no TextEncoder copy, no hex loop): this runs over every attest's canonical
 * evidence, kilobytes of base64.
 */
export async function sha256HexOfText(text: string): Promise<string> {
  if (nodeTextHash && syncHasher === detected) return nodeTextHash(text);
  const d = await digest('sha256', new TextEncoder().encode(text));
  let out = '';
  for (const b of d) out += HEX[b];
  return out;
}

/** The runtime's synchronous hash, or null (Workers without node:crypto, or turned off). */
export function digestSync(): SyncHasher | null {
  return syncHasher;
}

/**
 * Replaces the synchronous hash (`null`: WebCrypto only). For tests that prove both paths agree,
 * and for runtimes that provide their own; returns the previous one.
 */
export function setSyncHasher(h: SyncHasher | null): SyncHasher | null {
  const prev = syncHasher;
  syncHasher = h;
  return prev;
}

export async function digest(h: HashName, data: Uint8Array): Promise<Uint8Array> {
  if (syncHasher) return syncHasher(h, data);
  return new Uint8Array(await crypto.subtle.digest(WEB[h], data as Uint8Array<ArrayBuffer>));
}

export const sha256 = (data: Uint8Array): Promise<Uint8Array> => digest('sha256', data);
export const sha384 = (data: Uint8Array): Promise<Uint8Array> => digest('sha384', data);

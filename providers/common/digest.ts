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
function nodeCreateHash(): ((alg: string) => NodeHash) | null {
  const proc = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process;
  const mod = proc?.getBuiltinModule?.('node:crypto') as { createHash?: (alg: string) => NodeHash } | undefined;
  return typeof mod?.createHash === 'function' ? mod.createHash : null;
}
function detectSyncHasher(): SyncHasher | null {
  const createHash = nodeCreateHash();
  if (!createHash) return null;
  return (h, ...parts) => {
    const x = createHash(h);
    for (const p of parts) x.update(p);
    const b = x.digest();
    return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  };
}

const detected = detectSyncHasher();
let syncHasher: SyncHasher | null = detected;
const nodeHash = nodeCreateHash();

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

/**
 * The lower-case hex SHA-256 of a string's UTF-8 bytes. With node:crypto the string goes to the
 * hash as it is (no TextEncoder copy, no hex loop): this runs over every attest's canonical
 * evidence, kilobytes of base64.
 */
export async function sha256HexOfText(text: string): Promise<string> {
  if (nodeHash && syncHasher === detected) return nodeHash('sha256').update(text, 'utf8').digest('hex');
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

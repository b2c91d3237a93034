/**
 * @module broker/worker-config
 *
 * Roots and policy of a Worker, kept in the state store (the Durable Object) instead of env
 * bindings: a Worker variable or secret holds at most 5 KiB, which the AMD roots alone exceed.
 *
 * Layout (StateStore keys, no TTL):
 * - `worker-config:head` → `{"version": n, "doc": "<doc key>"}` — small, read by every isolate
 *   at most once per refresh interval to see whether anything changed;
 * - `worker-config:doc:<n>:<random>` → the whole document (`StoredConfig`), never rewritten.
 * An update writes a new document under a fresh key, then moves the head with compare-and-set
 * from the exact value it read; a writer that loses the race deletes its document and retries,
 * so concurrent admin calls serialise and no reader ever sees half of an update. The replaced
 * document is kept for 10 minutes (an isolate that read the old head may still fetch it).
 *
 * Web APIs only; the admin endpoints that write it are in ./worker-admin.ts.
 */
import type { Clock, StateStore } from './contracts.js';
import { unavailable } from '../providers/common/errors.js';
import { toBase64Url } from '../providers/common/encoding.js';

export interface StoredConfig {
  version: number;
  updatedAt: string;
  /** Concatenated PEM of the roots; every one matched a built-in pin when it was stored. */
  trustPem?: string;
  /** Pin ids of those roots, in order. */
  trustIds?: string[];
  /** The join policy document (YAML), compiled successfully when it was stored. */
  policyYaml?: string;
  policySha256?: string;
}

interface Head {
  version: number;
  doc: string;
}

const HEAD = 'worker-config:head';
const KEEP_REPLACED_MS = 10 * 60_000;

function parseHead(v: string | null): Head | null {
  if (v === null) return null;
  const h = JSON.parse(v) as Head;
  if (!Number.isSafeInteger(h.version) || typeof h.doc !== 'string') throw unavailable('STORE_UNAVAILABLE', 'worker-config head is corrupt');
  return h;
}

/** The version in force (0: nothing stored yet). One small store read. */
export async function configVersion(store: StateStore): Promise<number> {
  return parseHead(await store.get(HEAD))?.version ?? 0;
}

/** The stored document in force, or null when nothing was ever stored. */
export async function readConfig(store: StateStore): Promise<StoredConfig | null> {
  for (let attempt = 0; attempt < 3; attempt++) {
    const head = parseHead(await store.get(HEAD));
    if (!head) return null;
    const doc = await store.get(head.doc);
    // The head moved between the two reads and its old document is gone: read again.
    if (doc !== null) return JSON.parse(doc) as StoredConfig;
  }
  throw unavailable('STORE_UNAVAILABLE', 'worker-config: the head names a document that is not stored');
}

/** Applies `patch` on top of the document in force, atomically against concurrent updates. */
export async function updateConfig(store: StateStore, clock: Clock, patch: Partial<Omit<StoredConfig, 'version' | 'updatedAt'>>): Promise<StoredConfig> {
  for (let attempt = 0; attempt < 8; attempt++) {
    const rawHead = await store.get(HEAD);
    const head = parseHead(rawHead);
    const prevRaw = head ? await store.get(head.doc) : null;
    // Moved under us: read again. A head whose document stays gone (never written by this code,
    // but a store can lose a key) is replaced rather than blocking every later update.
    if (head && prevRaw === null && attempt < 3) continue;
    const prev = prevRaw ? (JSON.parse(prevRaw) as StoredConfig) : undefined;
    const next: StoredConfig = { ...prev, ...patch, version: (head?.version ?? 0) + 1, updatedAt: clock.now().toISOString() };
    const docKey = `worker-config:doc:${next.version}:${toBase64Url(crypto.getRandomValues(new Uint8Array(9)))}`;
    const nextRaw = JSON.stringify(next);
    await store.set(docKey, nextRaw);
    if (await store.compareAndSet(HEAD, rawHead, JSON.stringify({ version: next.version, doc: docKey } satisfies Head))) {
      if (head && prevRaw) await store.set(head.doc, prevRaw, KEEP_REPLACED_MS).catch(() => undefined);
      return next;
    }
    await store.delete(docKey).catch(() => undefined);
  }
  throw unavailable('STORE_UNAVAILABLE', 'worker-config: too many concurrent updates; retry');
}

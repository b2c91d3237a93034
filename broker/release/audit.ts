/**
 * @module broker/release/audit
 *
 * A hash-chained audit log: one record per release, each carrying the SHA-256 of the record
 * before it, so deleting, reordering, inserting or editing any record breaks the chain at that
 * point and `verifyAuditChain` names the first broken sequence number.
 *
 * Record (canonical JSON, providers/common/canonical.ts — sorted keys, no whitespace):
 * `{v: 1, seq, time, prev, entry}` and `hash = hex(SHA-256(canonical(record without hash)))`.
 * The first record's `prev` is 64 zeros (GENESIS) unless the log was rotated, in which case the
 * verifier is given the last (seq, hash) of the previous file.
 *
 * Replicas share one chain: the head `{seq, hash}` lives in the StateStore and is advanced with
 * `compareAndSet`, so two replicas never both extend the same head (the loser re-reads and
 * retries). A record is written to the sink only after its head is committed; if writing fails
 * the release fails too (no release without its audit record), and the chain shows a gap that
 * an operator must explain — a gap is reported, never silently skipped.
 *
 * The audit never carries secrets: entries are checked against a deny-list of field names
 * (token secret, kubeconfig, key material) before anything is hashed or written.
 */
import type { AuditSink, Clock, StateStore } from '../contracts.js';
import { canonicalJson } from '../../providers/common/canonical.js';
import { sha256 } from '../../providers/common/digest.js';
import { toHex, utf8 } from '../../providers/common/encoding.js';
import { AttestError, unavailable } from '../../providers/common/errors.js';
import { timingSafeEqualString } from '../../providers/common/ct.js';

export const GENESIS = '0'.repeat(64);
export const AuditCodes = {
  AUDIT_CONTENDED: 'AUDIT_CONTENDED',
  AUDIT_SECRET_FIELD: 'AUDIT_SECRET_FIELD',
  AUDIT_CHAIN_BROKEN: 'AUDIT_CHAIN_BROKEN',
  AUDIT_WRITE_FAILED: 'AUDIT_WRITE_FAILED',
} as const;

export interface AuditRecord {
  v: 1;
  seq: number;
  time: string;
  prev: string;
  entry: Record<string, unknown>;
  hash: string;
}

/**
 * Field names whose *string* values are secrets, refused at any depth (a boolean such as the
 * Decision's `release.diskKey: true` is a setting, not key material, and passes).
 */
const SECRET_FIELDS = new Set(['bootstrapToken', 'token', 'tokenSecret', 'token-secret', 'secret', 'kubeconfig', 'key', 'diskKey', 'plaintext', 'password']);

function assertNoSecrets(v: unknown, depth = 0): void {
  if (typeof v !== 'object' || v === null) return;
  if (depth > 16) throw new AttestError(AuditCodes.AUDIT_SECRET_FIELD, 'audit entry nests too deeply to be checked');
  for (const [k, x] of Object.entries(v)) {
    if (SECRET_FIELDS.has(k) && typeof x === 'string') {
      throw new AttestError(AuditCodes.AUDIT_SECRET_FIELD, `audit entry must not carry field ${k}`);
    }
    assertNoSecrets(x, depth + 1);
  }
}

export async function recordHash(r: Omit<AuditRecord, 'hash'>): Promise<string> {
  return toHex(await sha256(utf8(canonicalJson({ v: r.v, seq: r.seq, time: r.time, prev: r.prev, entry: r.entry }))));
}

export interface HashChainAuditOptions {
  store: StateStore;
  clock: Clock;
  /** Where committed records go (a log line, a file, an object store). */
  write: (record: AuditRecord) => Promise<void>;
  /** Store key of the chain head (default 'audit:head'); one chain per key. */
  headKey?: string;
  /** compareAndSet attempts under contention (default 64). */
  attempts?: number;
}

export class HashChainAudit implements AuditSink {
  readonly #o: HashChainAuditOptions;
  constructor(o: HashChainAuditOptions) {
    this.#o = o;
  }

  async record(entry: Record<string, unknown>): Promise<void> {
    await this.append(entry);
  }

  /** Appends one record and returns it (with its hash). */
  async append(entry: Record<string, unknown>): Promise<AuditRecord> {
    assertNoSecrets(entry);
    const key = this.#o.headKey ?? 'audit:head';
    const clean = JSON.parse(JSON.stringify(entry)) as Record<string, unknown>;
    for (let i = 0; i < (this.#o.attempts ?? 64); i++) {
      const raw = await this.#o.store.get(key);
      let seq = 0;
      let prev = GENESIS;
      if (raw !== null) {
        const h = JSON.parse(raw) as { seq: number; hash: string };
        seq = h.seq;
        prev = h.hash;
      }
      const rec: Omit<AuditRecord, 'hash'> = { v: 1, seq: seq + 1, time: this.#o.clock.now().toISOString(), prev, entry: clean };
      const hash = await recordHash(rec);
      if (await this.#o.store.compareAndSet(key, raw, JSON.stringify({ seq: rec.seq, hash }))) {
        const full: AuditRecord = { ...rec, hash };
        try {
          await this.#o.write(full);
        } catch (cause) {
          throw unavailable(AuditCodes.AUDIT_WRITE_FAILED, `audit record ${rec.seq} could not be written`, { cause });
        }
        return full;
      }
    }
    throw unavailable(AuditCodes.AUDIT_CONTENDED, 'audit chain head contended; retry', { retryAfter: 1 });
  }
}

export interface VerifyAuditOptions {
  /** Where this file starts when the log was rotated (default: seq 0, GENESIS). */
  from?: { seq: number; hash: string };
  /** The head from the store: the last record must match it (detects truncation at the end). */
  head?: { seq: number; hash: string };
}

/**
 * Verifies a chain of records (in any order; sorted by seq). Checks, each a distinct failure
 * reported as AUDIT_CHAIN_BROKEN with `detail.seq` and `detail.reason`:
 * - every record's hash recomputes over its canonical content (`edited`);
 * - sequence numbers are consecutive from `from.seq + 1` (`gap` / `duplicate`);
 * - each `prev` equals the previous record's hash, the first equals `from.hash` (`relinked`);
 * - the last record equals `head` when given (`truncated`).
 */
export async function verifyAuditChain(records: readonly AuditRecord[], o: VerifyAuditOptions = {}): Promise<{ count: number; head: { seq: number; hash: string } }> {
  const broken = (seq: number, reason: string): AttestError =>
    new AttestError(AuditCodes.AUDIT_CHAIN_BROKEN, `audit chain broken at ${seq}: ${reason}`, { detail: { seq, reason } });
  const sorted = [...records].sort((a, b) => a.seq - b.seq);
  let seq = o.from?.seq ?? 0;
  let prev = o.from?.hash ?? GENESIS;
  for (const r of sorted) {
    if (r.seq === seq) throw broken(r.seq, 'duplicate');
    if (r.seq !== seq + 1) throw broken(seq + 1, 'gap');
    const h = await recordHash(r);
    if (typeof r.hash !== 'string' || !timingSafeEqualString(h, r.hash)) throw broken(r.seq, 'edited');
    if (typeof r.prev !== 'string' || !timingSafeEqualString(r.prev, prev)) throw broken(r.seq, 'relinked');
    seq = r.seq;
    prev = r.hash;
  }
  if (o.head && (o.head.seq !== seq || !timingSafeEqualString(o.head.hash, prev))) throw broken(o.head.seq, 'truncated');
  return { count: sorted.length, head: { seq, hash: prev } };
}

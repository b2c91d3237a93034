/**
 * @module broker/policy/watch.node
 *
 * Loading the policy from a file, and hot reload when it changes (Node only).
 *
 * - The directory is watched, not the file: editors save by writing a new file and renaming it
 *   over the old one, and Kubernetes ConfigMap volumes swap a `..data` symlink, both of which
 *   a watch on the file's own inode would miss after the first change.
 * - Events are debounced and reloads serialized; a reload that reads the same bytes (same
 *   SHA-256) is a no-op, so touching the file does not churn.
 * - A new policy replaces the one in force only after it passed the schema and the semantic
 *   checks. An unreadable, deleted or invalid file leaves the previous policy in force and is
 *   logged at error level with every issue, so a bad edit never opens (or locks) the cluster.
 * - `reload()` is also exposed for SIGHUP-style manual reloads.
 */
import { readFile, stat } from 'node:fs/promises';
import { watch, type FSWatcher } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import type { Clock, Logger } from '../contracts.js';
import { configError, isAttestError } from '../../providers/common/errors.js';
import type { ReloadablePolicyEngine } from './engine.js';
import { loadPolicyText, MAX_POLICY_BYTES, type LoadedPolicy } from './load.js';
import type { PolicyIssue } from './semantic.js';

/** Reads and validates a policy file; throws POLICY_INVALID / POLICY_UNREADABLE (kind 'config'). */
export async function loadPolicyFile(path: string, now: Date): Promise<LoadedPolicy> {
  let buf: Buffer;
  try {
    const st = await stat(path);
    if (st.size > MAX_POLICY_BYTES) throw configError('POLICY_INVALID', `policy file ${path} is ${st.size} bytes; the limit is ${MAX_POLICY_BYTES}`);
    buf = await readFile(path);
  } catch (e) {
    if (isAttestError(e)) throw e;
    throw configError('POLICY_UNREADABLE', `cannot read policy file ${path}: ${(e as Error).message}`, { cause: e });
  }
  if (buf.length > MAX_POLICY_BYTES) throw configError('POLICY_INVALID', `policy file ${path} is ${buf.length} bytes; the limit is ${MAX_POLICY_BYTES}`);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(buf);
  } catch (e) {
    throw configError('POLICY_INVALID', `policy file ${path} is not UTF-8`, { cause: e });
  }
  return loadPolicyText(text, now);
}

export type ReloadResult =
  | { status: 'reloaded'; hash: string; version: string; previousHash: string }
  | { status: 'unchanged'; hash: string }
  | { status: 'kept-previous'; hash: string; code: string; issues?: readonly PolicyIssue[] };

export interface PolicyWatchOptions {
  path: string;
  engine: ReloadablePolicyEngine;
  clock: Clock;
  logger: Logger;
  /** Quiet period after the last file event before reloading (default 100 ms). */
  debounceMs?: number;
  /** Called after each reload attempt triggered by a file event (tests, metrics). */
  onReload?: (r: ReloadResult) => void;
}

export interface PolicyWatcher {
  /** Reloads now (serialized with watch-triggered reloads). */
  reload(): Promise<ReloadResult>;
  close(): void;
}

export function watchPolicyFile(o: PolicyWatchOptions): PolicyWatcher {
  const path = resolve(o.path);
  const name = basename(path);
  const log = o.logger.child({ component: 'policy', path });
  let chain: Promise<unknown> = Promise.resolve();
  let timer: NodeJS.Timeout | undefined;
  let closed = false;

  const doReload = async (): Promise<ReloadResult> => {
    const current = o.engine.current();
    try {
      const next = await loadPolicyFile(path, o.clock.now());
      if (next.hash === current.hash) return { status: 'unchanged', hash: current.hash };
      o.engine.replace(next);
      for (const w of next.warnings) log.warn({ issue: w }, 'policy warning');
      log.info({ hash: next.hash, version: next.version, previousHash: current.hash }, 'policy reloaded');
      return { status: 'reloaded', hash: next.hash, version: next.version, previousHash: current.hash };
    } catch (e) {
      const code = isAttestError(e) ? e.code : 'POLICY_RELOAD_FAILED';
      const issues = isAttestError(e) ? (e.detail?.issues as PolicyIssue[] | undefined) : undefined;
      log.error({ code, issues, err: (e as Error).message, keptHash: current.hash }, 'policy reload rejected; keeping the policy in force');
      return { status: 'kept-previous', hash: current.hash, code, ...(issues ? { issues } : {}) };
    }
  };

  const reload = (): Promise<ReloadResult> => {
    const p = chain.then(doReload);
    chain = p.catch(() => undefined);
    return p;
  };

  let watcher: FSWatcher | undefined;
  try {
    watcher = watch(dirname(path), { persistent: false }, (_event, file) => {
      // `file` may be null on some platforms; then any event in the directory triggers a check.
      if (closed || (file !== null && file !== name && !String(file).startsWith('..'))) return;
      if (timer) clearTimeout(timer);
      timer = setTimeout(() => {
        timer = undefined;
        void reload().then((r) => o.onReload?.(r));
      }, o.debounceMs ?? 100);
    });
    watcher.on('error', (e) => log.error({ err: e.message }, 'policy watch failed; hot reload is off until restart'));
  } catch (e) {
    log.error({ err: (e as Error).message }, 'cannot watch the policy directory; hot reload is off');
  }

  return {
    reload,
    close() {
      closed = true;
      if (timer) clearTimeout(timer);
      watcher?.close();
    },
  };
}

/**
 * Hot reload with real files in a temporary directory: a valid new policy replaces the one in
 * force (decisions then carry the new hash); an invalid, unreadable or deleted file keeps the
 * previous policy and is logged with its issues; identical bytes are a no-op. Both in-place
 * writes and editor-style rename-over are picked up.
 */
import { mkdtempSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Logger } from '../../broker/contracts.js';
import { createPolicyEngine } from '../../broker/policy/engine.js';
import { loadPolicyFile, watchPolicyFile, type PolicyWatcher, type ReloadResult } from '../../broker/policy/watch.node.js';
import { gcpAmd } from './fixtures/claims.js';
import { docFor, NOW, yamlOf } from './helpers.js';

interface LogRecord {
  level: string;
  obj: Record<string, unknown>;
  msg?: string;
}

function memoryLogger(records: LogRecord[]): Logger {
  const make = (bindings: Record<string, unknown>): Logger => ({
    debug: (obj, msg) => records.push({ level: 'debug', obj: { ...bindings, ...obj }, msg }),
    info: (obj, msg) => records.push({ level: 'info', obj: { ...bindings, ...obj }, msg }),
    warn: (obj, msg) => records.push({ level: 'warn', obj: { ...bindings, ...obj }, msg }),
    error: (obj, msg) => records.push({ level: 'error', obj: { ...bindings, ...obj }, msg }),
    child: (b) => make({ ...bindings, ...b }),
  });
  return make({});
}

const v1 = yamlOf(docFor(gcpAmd, (_c, d) => (d.version = 'v1')));
const v2 = yamlOf(docFor(gcpAmd, (_c, d) => (d.version = 'v2')));
const invalid = v2.replace('apiVersion: attest-broker/v1', 'apiVersion: attest-broker/v1\nsurprise: true');
const noIdentity = yamlOf(docFor(gcpAmd, (c, d) => ((d.version = 'v3'), (c.identity = {}))));

describe('policy hot reload (real files)', () => {
  let dir: string;
  let file: string;
  let watcher: PolicyWatcher | undefined;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'policy-watch-'));
    file = join(dir, 'policy.yaml');
    writeFileSync(file, v1);
  });
  afterEach(() => {
    watcher?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function setup() {
    const records: LogRecord[] = [];
    const engine = createPolicyEngine(await loadPolicyFile(file, NOW), { clock: { now: () => NOW } });
    const events: ReloadResult[] = [];
    const waiters: Array<(r: ReloadResult) => void> = [];
    watcher = watchPolicyFile({
      path: file,
      engine,
      clock: { now: () => NOW },
      logger: memoryLogger(records),
      debounceMs: 25,
      onReload: (r) => {
        const w = waiters.shift();
        if (w) w(r);
        else events.push(r);
      },
    });
    /** Waits for the next reload that is not 'unchanged' (the test timeout bounds the wait). */
    const next = async (): Promise<ReloadResult> => {
      for (;;) {
        const r = events.shift() ?? (await new Promise<ReloadResult>((res) => waiters.push(res)));
        if (r.status !== 'unchanged') return r;
      }
    };
    return { engine, records, next };
  }

  it('reloads a valid change and keeps the previous policy on an invalid one', async () => {
    const { engine, records, next } = await setup();
    const h1 = engine.current().hash;
    expect(engine.current().version).toBe('v1');

    writeFileSync(file, v2); // in-place write
    const r2 = await next();
    expect(r2).toMatchObject({ status: 'reloaded', version: 'v2', previousHash: h1 });
    expect(engine.current().version).toBe('v2');
    const d = await engine.evaluate(gcpAmd);
    expect(d).toMatchObject({ allow: true, policyVersion: 'v2', policyHash: engine.current().hash });

    const h2 = engine.current().hash;
    writeFileSync(join(dir, '.policy.yaml.swp'), invalid); // editor-style: write elsewhere, rename over
    renameSync(join(dir, '.policy.yaml.swp'), file);
    const r3 = await next();
    expect(r3).toMatchObject({ status: 'kept-previous', code: 'POLICY_INVALID', hash: h2 });
    expect(engine.current().hash).toBe(h2);
    expect((await engine.evaluate(gcpAmd)).policyHash).toBe(h2);
    const err = records.find((x) => x.level === 'error');
    expect(err?.obj).toMatchObject({ code: 'POLICY_INVALID', keptHash: h2 });
    expect(JSON.stringify(err?.obj.issues)).toContain('surprise');

    writeFileSync(file, noIdentity); // fail closed on semantic errors too
    expect(await next()).toMatchObject({ status: 'kept-previous', code: 'POLICY_INVALID' });
    expect(engine.current().version).toBe('v2');

    unlinkSync(file);
    expect(await next()).toMatchObject({ status: 'kept-previous', code: 'POLICY_UNREADABLE' });
    expect(engine.current().hash).toBe(h2);

    writeFileSync(file, v1); // back to a valid file
    expect(await next()).toMatchObject({ status: 'reloaded', version: 'v1', hash: h1 });
  });

  it('manual reload: identical bytes are a no-op', async () => {
    const { engine } = await setup();
    const h = engine.current().hash;
    expect(await watcher!.reload()).toEqual({ status: 'unchanged', hash: h });
  });

  it('refuses to start from an invalid or missing file', async () => {
    writeFileSync(file, invalid);
    await expect(loadPolicyFile(file, NOW)).rejects.toMatchObject({ code: 'POLICY_INVALID', kind: 'config' });
    await expect(loadPolicyFile(join(dir, 'absent.yaml'), NOW)).rejects.toMatchObject({ code: 'POLICY_UNREADABLE' });
    writeFileSync(file, Buffer.alloc((1 << 20) + 1, 0x20));
    await expect(loadPolicyFile(file, NOW)).rejects.toMatchObject({ code: 'POLICY_INVALID' });
    writeFileSync(file, Buffer.from([0xff, 0xfe, 0x00]));
    await expect(loadPolicyFile(file, NOW)).rejects.toMatchObject({ code: 'POLICY_INVALID' });
  });
});

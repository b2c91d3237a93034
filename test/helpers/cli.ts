/** Runs the real `attest-broker` command (bin → dist bundle), building the bundle once. */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { resolve } from 'node:path';

export const ROOT = resolve(import.meta.dirname, '../..');
export const BIN = resolve(ROOT, 'bin/attest-broker.js');
let built = false;

export function ensureBuilt(): void {
  if (built) return;
  execFileSync(process.execPath, [resolve(ROOT, 'scripts/build.mjs')], { cwd: ROOT, stdio: 'inherit' });
  built = true;
}

export function runCli(args: string[], env: Record<string, string> = {}, input?: string) {
  ensureBuilt();
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd: ROOT, env: { ...process.env, ...env }, input, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

export function spawnCli(args: string[], env: Record<string, string> = {}, nodeArgs: string[] = []) {
  ensureBuilt();
  return spawn(process.execPath, [...nodeArgs, BIN, ...args], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
}

/**
 * The V8 heap limit the broker runs with (the container image's ENTRYPOINT and `npm start` pass
 * the same flag): it bounds the process's memory under load. docs/deploy.md, "Memory".
 */
export const SERVE_NODE_ARGS = ['--max-old-space-size=160', '--max-semi-space-size=16'];

/**
 * A real software TPM (swtpm, libtpms) driven by tpm2-tools, for tests.
 *
 * - `swtpm socket --tpm2` on a free pair of ports P (commands) and P+1 (control: the swtpm TCTI
 *   expects it there), bound to 127.0.0.1, with `--flags not-need-init,startup-clear` so the TPM
 *   is started and usable at once, and its own temporary state directory.
 * - tpm2-tools reach it with `TPM2TOOLS_TCTI=swtpm:host=127.0.0.1,port=P`. There is no resource
 *   manager, so `flush()` (`tpm2_flushcontext -t/-l/-s`) must follow every command that loads an
 *   object or starts a session, or the TPM's three transient slots fill up (TPM_RC_OBJECT_MEMORY).
 * - `stop()` kills only the swtpm process this helper started (by its pid) and removes the state.
 *
 * `HAVE_SWTPM` is false when swtpm or tpm2-tools are missing; suites then skip with a message.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, connect, type Server, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe } from 'vitest';

const BIN_DIRS = ['/usr/bin', '/usr/local/bin'];
const which = (b: string): boolean => BIN_DIRS.some((d) => existsSync(join(d, b)));
export const HAVE_SWTPM = which('swtpm') && which('tpm2_quote') && which('tpm2_checkquote') && which('tpm2_activatecredential');

/** A suite on a real swtpm (test/global-setup.ts fails the run when swtpm or tpm2-tools are missing). */
export function describeSwtpm(name: string, fn: () => void): void {
  describe(name, fn);
}

function listen(port: number): Promise<Server | undefined> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(undefined));
    s.listen(port, '127.0.0.1', () => resolve(s));
  });
}
const close = (s: Server): Promise<void> => new Promise((r) => s.close(() => r()));

/** A port P such that P and P+1 are both free on 127.0.0.1 right now. */
async function freePortPair(): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const a = await listen(0);
    if (!a) continue;
    const p = (a.address() as AddressInfo).port;
    const b = p < 65535 ? await listen(p + 1) : undefined;
    await close(a);
    if (b) {
      await close(b);
      return p;
    }
  }
  throw new Error('no free port pair for swtpm');
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const c = connect({ host: '127.0.0.1', port });
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a program with an environment; never throws on a non-zero exit. */
export function run(cmd: string, args: readonly string[], env: NodeJS.ProcessEnv = process.env, cwd?: string): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args as string[], { env, cwd, maxBuffer: 16 << 20, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err && typeof (err as { code?: unknown }).code !== 'number') return reject(err);
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

export interface Swtpm {
  readonly port: number;
  /** Scratch directory for this TPM's files (state lives in `dir/state`). */
  readonly dir: string;
  readonly env: NodeJS.ProcessEnv;
  /** Path of a file in the scratch directory. */
  file(name: string): string;
  read(name: string): Uint8Array;
  write(name: string, data: Uint8Array | string): string;
  /** Runs a tpm2-tools command against this TPM; throws with stderr on failure. */
  tpm2(tool: string, args: readonly string[]): Promise<string>;
  /** Runs a tpm2-tools command; returns the exit status instead of throwing. */
  tpm2Status(tool: string, args: readonly string[]): Promise<RunResult>;
  /** Flushes every transient object and session. */
  flush(): Promise<void>;
  stop(): Promise<void>;
}

export interface StartSwtpmOptions {
  /**
   * Runs on the empty state directory before swtpm starts, e.g. to manufacture the TPM with
   * `swtpm_setup --create-ek-cert` (test/deploy/swtpm.ts). `dir` is the scratch directory.
   */
  prepare?: (stateDir: string, dir: string) => Promise<void>;
}

export async function startSwtpm(options: StartSwtpmOptions = {}): Promise<Swtpm> {
  const dir = mkdtempSync(join(tmpdir(), 'swtpm-test-'));
  const state = join(dir, 'state');
  mkdirSync(state);
  await options.prepare?.(state, dir);
  let child: ChildProcess | undefined;
  let port = 0;
  for (let attempt = 0; attempt < 5 && !child; attempt++) {
    port = await freePortPair();
    const c = spawn(
      'swtpm',
      [
        'socket',
        '--tpm2',
        '--tpmstate',
        `dir=${state}`,
        '--server',
        `type=tcp,port=${port},bindaddr=127.0.0.1`,
        '--ctrl',
        `type=tcp,port=${port + 1},bindaddr=127.0.0.1`,
        '--flags',
        'not-need-init,startup-clear',
      ],
      { stdio: 'ignore' },
    );
    let exited = false;
    c.once('exit', () => {
      exited = true;
    });
    for (let i = 0; i < 100 && !exited; i++) {
      if (await canConnect(port)) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    if (!exited) child = c;
  }
  if (!child) throw new Error('swtpm did not start');
  const proc = child;
  const env = { ...process.env, TPM2TOOLS_TCTI: `swtpm:host=127.0.0.1,port=${port}` };
  const file = (n: string): string => join(dir, n);
  const tpm2Status = (tool: string, args: readonly string[]): Promise<RunResult> => run(tool, args, env, dir);
  const tpm2 = async (tool: string, args: readonly string[]): Promise<string> => {
    const r = await tpm2Status(tool, args);
    if (r.code !== 0) throw new Error(`${tool} ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
    return r.stdout;
  };
  return {
    port,
    dir,
    env,
    file,
    read: (n) => new Uint8Array(readFileSync(file(n))),
    write: (n, d) => {
      writeFileSync(file(n), d);
      return file(n);
    },
    tpm2,
    tpm2Status,
    async flush() {
      for (const f of ['-t', '-l', '-s']) await tpm2('tpm2_flushcontext', [f]);
    },
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) {
        const gone = new Promise((r) => proc.once('exit', r));
        proc.kill('SIGTERM');
        await gone;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * @module deploy/node/client/gpu.node
 *
 * Attached GPU evidence (`--gpu-evidence-cmd PATH`, `ATTEST_GPU_EVIDENCE_CMD`): the join client
 * runs an operator-supplied executable once per attest request, after the challenge arrived and
 * the binding (protocol §2) is known, and attaches what it prints as
 * `devices: [{kind: "nvidia-gpu", evidence: <that JSON array>}]` (protocol §3, docs/nvidia.md).
 *
 * The contract (deploy/node/attest-join.sh keeps the same one):
 * - PATH is an absolute path to an executable file. It is run directly (no shell), with the
 *   binding as 64 lower-case hex digits as its only argument and in `ATTEST_GPU_NONCE`, stdin
 *   closed, the client's environment otherwise. That is the nonce form nvtrust's attestation SDK
 *   takes (`get_evidence(nonce)` with a hex string): the GPUs must be asked with exactly it.
 * - Its stdout must be the nvtrust evidence array: ASCII JSON (non-ASCII escaped as `\uXXXX`, as
 *   Python's json.dumps writes by default), at most `GPU_EVIDENCE_MAX_BYTES`, an array of
 *   1..`GPU_EVIDENCE_MAX_ENTRIES` objects each with string `evidence` and `certificate`
 *   members, nested at most `GPU_EVIDENCE_MAX_DEPTH` deep. Nothing else is checked here: the
 *   broker verifies the evidence. It is attached as parsed, not rewritten.
 * - Its stderr goes to the client's log, line by line (at most `STDERR_MAX_LINES` lines).
 * - It must exit 0 before the join deadline; it runs in its own process group, which is killed
 *   when the deadline passes or stdout overflows.
 * Any failure is JOIN_GPU_EVIDENCE_FAILED (exit 1) and the attest request is not sent.
 */
import { spawn } from 'node:child_process';
import { access, stat } from 'node:fs/promises';
import { constants } from 'node:fs';
import { isAbsolute } from 'node:path';
import { toHex } from '../../../providers/common/encoding.js';
import { JoinCodes, joinError } from './codes.js';

/** Stdout larger than this is refused (8 GPUs of real evidence are ~120 KiB). */
export const GPU_EVIDENCE_MAX_BYTES = 4 << 20;
/** Entries in the array (the broker's own cap, `maxGpus`, is at most 16). */
export const GPU_EVIDENCE_MAX_ENTRIES = 64;
/** Array and object nesting, the array itself being level 1. */
export const GPU_EVIDENCE_MAX_DEPTH = 64;
const STDERR_MAX_LINES = 100;
const STDERR_MAX_LINE = 500;
/** The device kind the evidence is attached as (protocol §3). */
export const NVIDIA_GPU_KIND = 'nvidia-gpu';

const fail = (message: string, cause?: unknown) => joinError(JoinCodes.GPU_EVIDENCE_FAILED, message, cause === undefined ? {} : { cause });
const HOWTO = 'run it by hand with a 64-hex-digit nonce to see what it prints';

/** `--gpu-evidence-cmd` before anything is sent: absolute (usage error otherwise), an executable file. */
export async function checkGpuEvidenceCommand(cmd: string): Promise<void> {
  if (!isAbsolute(cmd)) throw joinError(JoinCodes.USAGE, `--gpu-evidence-cmd must be an absolute path (it is not looked up on PATH): ${cmd}`);
  try {
    if (!(await stat(cmd)).isFile()) throw new Error('not a regular file');
    await access(cmd, constants.X_OK);
  } catch (cause) {
    throw fail(`--gpu-evidence-cmd ${cmd} is not an executable file: install the GPU evidence gatherer there (docs/nvidia.md, "The node side"), or drop the option on nodes without GPUs`, cause);
  }
}

function depthOf(v: unknown): number {
  // Iterative: a deeply nested document must not cost stack.
  let max = 0;
  const todo: Array<[unknown, number]> = [[v, 1]];
  while (todo.length > 0) {
    const [x, d] = todo.pop() as [unknown, number];
    if (x === null || typeof x !== 'object') continue;
    if (d > max) max = d;
    if (max > GPU_EVIDENCE_MAX_DEPTH) return max;
    for (const c of Array.isArray(x) ? x : Object.values(x)) todo.push([c, d + 1]);
  }
  return max;
}

/**
 * The gatherer's stdout, checked as the contract above says; returns the parsed array.
 * Pure (no I/O), so the same rules can be shown on bytes.
 */
export function checkGpuEvidence(out: Uint8Array): unknown[] {
  if (out.length > GPU_EVIDENCE_MAX_BYTES) throw fail(`the GPU evidence command printed more than ${GPU_EVIDENCE_MAX_BYTES} bytes`);
  for (const b of out) {
    if (!(b === 0x09 || b === 0x0a || b === 0x0d || (b >= 0x20 && b <= 0x7e))) {
      throw fail(`the GPU evidence command printed a byte that is not printable ASCII (0x${b.toString(16).padStart(2, '0')}): it must print only the nvtrust evidence JSON array; ${HOWTO}`);
    }
  }
  let v: unknown;
  try {
    v = JSON.parse(new TextDecoder().decode(out));
  } catch (cause) {
    throw fail(`the GPU evidence command printed something that is not JSON: it must print only the nvtrust evidence JSON array (log lines go to stderr); ${HOWTO}`, cause);
  }
  if (!Array.isArray(v)) throw fail(`the GPU evidence command printed JSON that is not an array: it must print the nvtrust evidence array ([{"evidence":…,"certificate":…},…])`);
  if (v.length === 0) throw fail('the GPU evidence command printed an empty array: no GPU answered (driver loaded? GPUs in CC mode?); drop --gpu-evidence-cmd on nodes without GPUs');
  if (v.length > GPU_EVIDENCE_MAX_ENTRIES) throw fail(`the GPU evidence command printed ${v.length} entries, more than ${GPU_EVIDENCE_MAX_ENTRIES}`);
  if (depthOf(v) > GPU_EVIDENCE_MAX_DEPTH) throw fail(`the GPU evidence command printed JSON nested deeper than ${GPU_EVIDENCE_MAX_DEPTH}`);
  v.forEach((e, i) => {
    if (e === null || typeof e !== 'object' || Array.isArray(e)) throw fail(`entry ${i} of the GPU evidence is not an object`);
    const o = e as Record<string, unknown>;
    if (typeof o.evidence !== 'string' || typeof o.certificate !== 'string') {
      throw fail(`entry ${i} of the GPU evidence lacks string "evidence" and "certificate" members: is the command printing nvtrust's evidence array?`);
    }
  });
  return v;
}

export interface GpuEvidenceRun {
  cmd: string;
  binding: Uint8Array;
  /** Time left before the join deadline. */
  timeoutMs: number;
  /** The join's abort signal (the deadline). */
  signal?: AbortSignal;
  env?: NodeJS.ProcessEnv;
  log: (msg: string) => void;
}

/** Runs the gatherer for one binding; resolves the checked evidence array. */
export function runGpuEvidenceCommand(o: GpuEvidenceRun): Promise<unknown[]> {
  const nonce = toHex(o.binding);
  if (o.timeoutMs <= 0 || o.signal?.aborted) return Promise.reject(fail(`no time left before the join deadline to run ${o.cmd}`));
  return new Promise<unknown[]>((resolve, reject) => {
    const child = spawn(o.cmd, [nonce], {
      env: { ...(o.env ?? process.env), ATTEST_GPU_NONCE: nonce },
      stdio: ['ignore', 'pipe', 'pipe'],
      // Its own process group, so that a timeout or an overflow ends the gatherer's children too.
      detached: true,
      shell: false,
    });
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    let stderrLines = 0;
    let stderrRest = '';
    const killGroup = (): void => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    };
    const finish = (e: Error | undefined, v?: unknown[]): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      o.signal?.removeEventListener('abort', onAbort);
      if (e) {
        killGroup();
        reject(e);
      } else resolve(v as unknown[]);
    };
    const timer = setTimeout(() => finish(fail(`the GPU evidence command ${o.cmd} did not finish before the join deadline (${Math.ceil(o.timeoutMs / 1000)} s left when it started); killed. ${HOWTO}, or raise --deadline`)), o.timeoutMs);
    const onAbort = (): void => finish(fail(`the join deadline passed while the GPU evidence command ${o.cmd} ran; killed`));
    o.signal?.addEventListener('abort', onAbort, { once: true });
    const logLine = (l: string): void => {
      if (stderrLines < STDERR_MAX_LINES) o.log(`gpu evidence command: ${l.slice(0, STDERR_MAX_LINE).replace(/[^\x20-\x7e\t]/g, '?')}`);
      else if (stderrLines === STDERR_MAX_LINES) o.log('gpu evidence command: (further stderr lines not shown)');
      stderrLines++;
    };
    child.stderr.setEncoding('latin1');
    child.stderr.on('data', (s: string) => {
      const lines = (stderrRest + s).split('\n');
      stderrRest = (lines.pop() ?? '').slice(0, STDERR_MAX_LINE);
      for (const l of lines) logLine(l);
    });
    child.stdout.on('data', (b: Buffer) => {
      size += b.length;
      if (size > GPU_EVIDENCE_MAX_BYTES) {
        finish(fail(`the GPU evidence command ${o.cmd} printed more than ${GPU_EVIDENCE_MAX_BYTES} bytes; killed. It must print only the nvtrust evidence JSON array`));
        return;
      }
      chunks.push(b);
    });
    child.on('error', (e: NodeJS.ErrnoException) => {
      finish(fail(`the GPU evidence command ${o.cmd} could not be run (${e.code ?? e.message}): install the GPU evidence gatherer there, or fix --gpu-evidence-cmd`, e));
    });
    child.on('close', (code, sig) => {
      if (stderrRest) logLine(stderrRest);
      if (done) return;
      if (code !== 0) {
        finish(fail(`the GPU evidence command ${o.cmd} ${sig ? `was killed by ${sig}` : `exited with status ${code}`}: its stderr is above; ${HOWTO} (nvtrust installed? driver loaded? GPUs in CC mode?)`));
        return;
      }
      try {
        finish(undefined, checkGpuEvidence(Buffer.concat(chunks)));
      } catch (e) {
        finish(e as Error);
      }
    });
  });
}

/** The `devices` member for one evidence array (protocol §3). */
export function gpuDevices(evidence: unknown[]): Array<{ kind: string; evidence: unknown[] }> {
  return [{ kind: NVIDIA_GPU_KIND, evidence }];
}

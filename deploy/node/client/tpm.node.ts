/**
 * @module deploy/node/client/tpm.node
 *
 * The node's TPM through tpm2-tools 5.x (no TSS bindings: the tools are in every distribution,
 * and an operator can replay any step by hand). The TCTI comes from the environment as usual
 * (`TPM2TOOLS_TCTI`, default the kernel resource manager `/dev/tpmrm0`).
 *
 * Every command runs with execFile (no shell), a timeout, and its files in a private temporary
 * directory (mode 0700) removed afterwards. Transient objects are flushed after each command
 * that loads one (`tpm2_flushcontext -t`, sessions with `-s`): without a resource manager the
 * TPM has only three transient slots (TPM_RC_OBJECT_MEMORY, 0x902).
 *
 * What it makes (TCG EK Credential Profile 2.0 §2.2.1.4 low-range templates, via tpm2_createek):
 * - the EK: RSA 2048 by default (matches the EK certificate at NV 0x01c00002), or ECC P-256;
 * - an AK under it (`tpm2_createak`): restricted signing key, ECDSA P-256/SHA-256 by default,
 *   null symmetric (dependencies.md: TPM_RC_SYMMETRIC otherwise);
 * - quotes with `-q <binding>` as TPMS_ATTEST.extraData.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { toHex } from '../../../providers/common/encoding.js';
import { JoinCodes, joinError } from './codes.js';

export type PcrBank = 'sha1' | 'sha256' | 'sha384';

export interface ToolRunner {
  /** Runs a tool by name; resolves stdout, rejects JOIN_TPM_TOOL_FAILED. */
  run(tool: string, args: readonly string[], opts?: { timeoutMs?: number; signal?: AbortSignal }): Promise<Uint8Array>;
}

/** Binds every run of `inner` to `signal` (the join deadline): an aborted run kills the tool. */
export function withSignal(inner: ToolRunner, signal: AbortSignal): ToolRunner {
  return {
    async run(tool, args, opts = {}) {
      if (signal.aborted) throw joinError(JoinCodes.DEADLINE_EXCEEDED, `deadline exceeded before ${tool}`);
      try {
        return await inner.run(tool, args, { ...opts, signal });
      } catch (e) {
        if (signal.aborted) throw joinError(JoinCodes.DEADLINE_EXCEEDED, `deadline exceeded while ${tool} ran`, { cause: e });
        throw e;
      }
    },
  };
}

export function createToolRunner(env: NodeJS.ProcessEnv = process.env, defaultTimeoutMs = 60_000): ToolRunner {
  return {
    run(tool, args, opts = {}) {
      return new Promise((resolve, reject) => {
        execFile(
          tool,
          args as string[],
          { env, timeout: opts.timeoutMs ?? defaultTimeoutMs, encoding: 'buffer', maxBuffer: 16 << 20, ...(opts.signal ? { signal: opts.signal } : {}) },
          (err, stdout, stderr) => {
            if (err) {
              const why = (err as NodeJS.ErrnoException).code === 'ENOENT' ? `${tool} is not installed (install tpm2-tools)` : String(stderr).trim().split('\n').slice(-2).join(' ');
              reject(joinError(JoinCodes.TPM_TOOL_FAILED, `${tool} ${args[0] ?? ''} failed: ${why || err.message}`, { cause: err, detail: { tool } }));
              return;
            }
            resolve(new Uint8Array(stdout));
          },
        );
      });
    },
  };
}

export interface TpmSession {
  readonly dir: string;
  readonly tools: ToolRunner;
  file(name: string): string;
  read(name: string): Promise<Uint8Array>;
  write(name: string, data: Uint8Array): Promise<void>;
  exists(name: string): Promise<boolean>;
  /** Flushes transient objects and sessions (best effort: an empty TPM is fine). */
  flush(): Promise<void>;
  close(): Promise<void>;
}

export async function openTpmSession(tools: ToolRunner = createToolRunner()): Promise<TpmSession> {
  const dir = await mkdtemp(join(tmpdir(), 'attest-join-'));
  const file = (n: string): string => join(dir, n);
  const flush = async (): Promise<void> => {
    for (const f of ['-t', '-s']) {
      try {
        await tools.run('tpm2_flushcontext', [f]);
      } catch {
        /* nothing loaded */
      }
    }
  };
  return {
    dir,
    tools,
    file,
    read: async (n) => new Uint8Array(await readFile(file(n))),
    write: (n, d) => writeFile(file(n), d, { mode: 0o600 }),
    exists: async (n) => {
      try {
        await stat(file(n));
        return true;
      } catch {
        return false;
      }
    },
    flush,
    async close() {
      await flush();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export interface EkAk {
  /** TPM2B_PUBLIC of the EK. */
  ekPublic: Uint8Array;
  /** TPM2B_PUBLIC of the AK. */
  akPublic: Uint8Array;
  /** The AK's Name (nameAlg ‖ H(TPMT_PUBLIC)). */
  akName: Uint8Array;
}

/** Creates the EK (transient) and an AK under it; context files stay in the session for activation. */
export async function createEkAndAk(s: TpmSession, o: { ekAlg?: 'rsa' | 'ecc'; akAlg?: 'ecc' | 'rsa' } = {}): Promise<EkAk> {
  const ekAlg = o.ekAlg ?? 'rsa';
  const akAlg = o.akAlg ?? 'ecc';
  await s.tools.run('tpm2_createek', ['-c', s.file('ek.ctx'), '-G', ekAlg, '-u', s.file('ek.pub'), '-f', 'tss']);
  await s.flush();
  await s.tools.run('tpm2_createak', [
    '-C', s.file('ek.ctx'),
    '-c', s.file('ak.ctx'),
    '-G', akAlg,
    '-g', 'sha256',
    '-s', akAlg === 'ecc' ? 'ecdsa' : 'rsassa',
    '-u', s.file('ak.pub'),
    '-n', s.file('ak.name'),
    '-r', s.file('ak.priv'),
    '-f', 'tss',
  ]);
  await s.flush();
  return { ekPublic: await s.read('ek.pub'), akPublic: await s.read('ak.pub'), akName: await s.read('ak.name') };
}

export interface QuoteResult {
  /** TPMS_ATTEST. */
  message: Uint8Array;
  /** TPMT_SIGNATURE. */
  signature: Uint8Array;
  /** PCR values of the quoted selection, index → digest. */
  pcrs: Map<number, Uint8Array>;
}

export const ALL_PCRS: readonly number[] = Array.from({ length: 24 }, (_, i) => i);

const BANK_SIZE: Record<PcrBank, number> = { sha1: 20, sha256: 32, sha384: 48 };

/**
 * Quotes `pcrs` of `bank` with `qualification` (the binding) as extraData, signing with the AK
 * in `akCtx`. PCR values come from the quote's own PCR output (`-o`, `-F values`: the digests
 * concatenated in selection order, TPML_DIGEST order = ascending index).
 */
export async function quote(
  s: TpmSession,
  akCtx: string,
  bank: PcrBank,
  qualification: Uint8Array,
  pcrs: readonly number[] = ALL_PCRS,
  signHash: PcrBank = 'sha256',
  /** `tss` = TPMT_SIGNATURE; `plain` = the bare signature (Azure's az-snp-vtpm format). */
  sigFormat: 'tss' | 'plain' = 'tss',
): Promise<QuoteResult> {
  const tag = `${bank}`;
  await s.tools.run('tpm2_quote', [
    '-c', akCtx,
    '-l', `${bank}:${pcrs.join(',')}`,
    '-q', toHex(qualification),
    '-g', signHash,
    '-m', s.file(`quote-${tag}.msg`),
    '-s', s.file(`quote-${tag}.sig`),
    '-o', s.file(`quote-${tag}.pcrs`),
    '-F', 'values',
    '-f', sigFormat,
  ]);
  await s.flush();
  const values = await s.read(`quote-${tag}.pcrs`);
  const size = BANK_SIZE[bank];
  const sorted = [...pcrs].sort((a, b) => a - b);
  if (values.length !== size * sorted.length) {
    throw joinError(JoinCodes.TPM_TOOL_FAILED, `tpm2_quote wrote ${values.length} bytes of ${bank} PCR values, expected ${size * sorted.length}`);
  }
  const map = new Map<number, Uint8Array>();
  sorted.forEach((idx, i) => map.set(idx, values.slice(i * size, (i + 1) * size)));
  return { message: await s.read(`quote-${tag}.msg`), signature: await s.read(`quote-${tag}.sig`), pcrs: map };
}

/** Which PCR banks the TPM has allocated (from `tpm2_getcap pcrs`). */
export async function allocatedBanks(s: TpmSession): Promise<PcrBank[]> {
  const out = new TextDecoder().decode(await s.tools.run('tpm2_getcap', ['pcrs']));
  const banks: PcrBank[] = [];
  // YAML like:  - sha256: [ 0, 1, 2, ... ]   (a bank with [] is not allocated)
  for (const m of out.matchAll(/-\s*(sha1|sha256|sha384)\s*:\s*\[([^\]]*)\]/g)) {
    if (m[2]!.trim().length > 0) banks.push(m[1] as PcrBank);
  }
  return banks;
}

/** Every defined NV index (`tpm2_getcap handles-nv-index`), ascending. */
export async function nvIndices(s: TpmSession): Promise<number[]> {
  const out = new TextDecoder().decode(await s.tools.run('tpm2_getcap', ['handles-nv-index']));
  return [...out.matchAll(/0x([0-9a-fA-F]{1,8})/g)].map((m) => Number.parseInt(m[1]!, 16)).sort((a, b) => a - b);
}

/** Size of an NV index, or undefined when it is not defined. */
export async function nvSize(s: TpmSession, index: number): Promise<number | undefined> {
  let out: string;
  try {
    out = new TextDecoder().decode(await s.tools.run('tpm2_nvreadpublic', [hexHandle(index)]));
  } catch {
    return undefined;
  }
  const m = /size:\s*(\d+)/.exec(out);
  return m ? Number(m[1]) : undefined;
}

/** Reads a whole NV index, or undefined when it is not defined. */
export async function nvReadIfPresent(s: TpmSession, index: number): Promise<Uint8Array | undefined> {
  const size = await nvSize(s, index);
  if (size === undefined || size === 0) return undefined;
  const name = `nv-${index.toString(16)}.bin`;
  // Owner-readable indices (EK certs are ownerread|authread|ppread) read with -C o.
  await s.tools.run('tpm2_nvread', [hexHandle(index), '-C', 'o', '-s', String(size), '-o', s.file(name)]).catch(async () => {
    await s.tools.run('tpm2_nvread', [hexHandle(index), '-C', hexHandle(index), '-s', String(size), '-o', s.file(name)]);
  });
  return s.read(name);
}

export function hexHandle(h: number): string {
  return '0x' + h.toString(16).padStart(8, '0');
}

/**
 * Credential activation (TPM 2.0 Part 1 §24, TPM2_ActivateCredential): proves the AK is
 * resident in the same TPM as the EK. `blob` is the credential in tpm2-tools' file format
 * (activation.ts `credentialFile`). The EK's authPolicy is PolicySecret(endorsement), so a policy
 * session is started and satisfied first.
 */
export async function activateCredential(s: TpmSession, blob: Uint8Array): Promise<Uint8Array> {
  await s.write('cred.blob', blob);
  await s.tools.run('tpm2_startauthsession', ['--policy-session', '-S', s.file('session.ctx')]);
  try {
    await s.tools.run('tpm2_policysecret', ['-S', s.file('session.ctx'), '-c', 'e']);
    await s.tools.run('tpm2_activatecredential', [
      '-c', s.file('ak.ctx'),
      '-C', s.file('ek.ctx'),
      '-i', s.file('cred.blob'),
      '-o', s.file('cred.out'),
      '-P', `session:${s.file('session.ctx')}`,
    ]);
  } finally {
    await s.tools.run('tpm2_flushcontext', [s.file('session.ctx')]).catch(() => undefined);
    await s.flush();
  }
  return s.read('cred.out');
}

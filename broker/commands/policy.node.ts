/**
 * @module broker/commands/policy.node
 *
 * `attest-broker policy check FILE` and `attest-broker policy capture`.
 *
 * Exit codes (as `verify`, protocol.md §4): 0 success, 1 the policy (or verdict) is rejected,
 * 2 usage or I/O error. Every message names the field path and what to change, because the
 * person reading it is an operator in the middle of a rollout.
 *
 * - `check` runs exactly the loader the broker runs (YAML → schema → semantic checks), so a
 *   policy that passes `check` loads in the broker, and one that fails never does.
 * - `capture` reads the JSON verdict of `attest-broker verify` (or bare claims) and writes a
 *   starting policy that pins what that node presented (broker/policy/capture.ts).
 */
import { readFile, writeFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { isAttestError } from '../../providers/common/errors.js';
import { capturePolicy, claimsFromJson } from '../policy/capture.js';
import { checkPolicyText, formatIssue, MAX_POLICY_BYTES } from '../policy/load.js';

export interface CliIo {
  out(s: string): void;
  err(s: string): void;
  /** Sets the process exit code (tests capture it). */
  exit(code: number): void;
  now(): Date;
}

const processIo: CliIo = {
  out: (s) => process.stdout.write(s.endsWith('\n') ? s : `${s}\n`),
  err: (s) => process.stderr.write(s.endsWith('\n') ? s : `${s}\n`),
  exit: (code) => {
    process.exitCode = code;
  },
  now: () => new Date(),
};

function parseAt(at: string | undefined, io: CliIo): Date | undefined {
  if (at === undefined) return io.now();
  const d = new Date(at);
  if (!/^\d{4}-\d{2}-\d{2}T/.test(at) || Number.isNaN(d.getTime())) {
    io.err(`--at must be an RFC 3339 date-time (e.g. 2026-11-27T12:00:00Z), got '${at}'`);
    return undefined;
  }
  return d;
}

async function readText(path: string, what: string, io: CliIo): Promise<string | undefined> {
  try {
    const buf = await readFile(path);
    if (buf.length > MAX_POLICY_BYTES * 4) {
      io.err(`${what} ${path} is too large (${buf.length} bytes)`);
      return undefined;
    }
    return new TextDecoder('utf-8', { fatal: true }).decode(buf);
  } catch (e) {
    io.err(`cannot read ${what} ${path}: ${(e as Error).message}`);
    return undefined;
  }
}

export interface CheckOptions {
  at?: string;
  json?: boolean;
}

export async function runPolicyCheck(file: string, opts: CheckOptions, io: CliIo = processIo): Promise<number> {
  const now = parseAt(opts.at, io);
  const text = now && (await readText(file, 'policy file', io));
  if (now === undefined || text === undefined) {
    io.exit(2);
    return 2;
  }
  const r = await checkPolicyText(text, now);
  const errors = r.issues.filter((i) => i.severity === 'error');
  const code = r.policy ? 0 : 1;
  if (opts.json) {
    io.out(JSON.stringify({ ok: code === 0, file, hash: r.policy?.hash, version: r.policy?.version, issues: r.issues }));
  } else {
    for (const i of r.issues) (i.severity === 'error' ? io.err : io.out)(formatIssue(i));
    if (r.policy) {
      io.out(`${file}: OK (apiVersion attest-broker/v1, version ${r.policy.version}, sha256 ${r.policy.hash}, ${r.issues.length} warning(s))`);
    } else {
      io.err(`${file}: INVALID (${errors.length} error(s)); fix the fields above (docs/policy.md describes each one)`);
    }
  }
  io.exit(code);
  return code;
}

export interface CaptureCliOptions {
  evidence?: string;
  claims?: string;
  cluster?: string;
  image?: string;
  policyVersion?: string;
  expires?: string;
  out?: string;
  at?: string;
}

export async function runPolicyCapture(opts: CaptureCliOptions, io: CliIo = processIo): Promise<number> {
  const fail = (code: number, msg: string) => {
    io.err(msg);
    io.exit(code);
    return code;
  };
  if ((opts.evidence === undefined) === (opts.claims === undefined)) {
    return fail(2, 'give exactly one of --evidence VERDICT.json (the output of `attest-broker verify`) or --claims CLAIMS.json');
  }
  const now = parseAt(opts.at, io);
  if (now === undefined) return fail(2, 'invalid --at');
  const src = (opts.evidence ?? opts.claims)!;
  const text = await readText(src, 'input', io);
  if (text === undefined) return fail(2, 'nothing captured');
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    return fail(2, `${src} is not JSON: ${(e as Error).message}`);
  }
  if (opts.evidence !== undefined && raw !== null && typeof raw === 'object' && !('claims' in raw)) {
    return fail(
      2,
      `${src} has no 'claims': it looks like raw evidence, not a verdict. Verify it first: ` +
        '`attest-broker verify --evidence FILE --nonce HEX > verdict.json`, then `attest-broker policy capture --evidence verdict.json`',
    );
  }
  try {
    const claims = claimsFromJson(raw);
    const r = await capturePolicy(claims, {
      now,
      ...(opts.cluster ? { cluster: opts.cluster } : {}),
      ...(opts.image ? { image: opts.image } : {}),
      ...(opts.policyVersion ? { version: opts.policyVersion } : {}),
      ...(opts.expires ? { expires: opts.expires } : {}),
    });
    if (opts.out) {
      try {
        await writeFile(opts.out, r.yaml, { flag: 'wx' });
      } catch (e) {
        return fail(2, `cannot write ${opts.out}: ${(e as Error).message}`);
      }
      io.err(`wrote ${opts.out} (sha256 ${r.policy.hash}); review it, then run: attest-broker policy check ${opts.out}`);
    } else {
      io.out(r.yaml);
    }
    for (const w of r.policy.warnings) io.err(formatIssue(w));
    io.exit(0);
    return 0;
  } catch (e) {
    if (isAttestError(e)) return fail(['CAPTURE_VERDICT_REJECTED', 'CAPTURE_POLICY_INVALID', 'CAPTURE_NOT_ADMITTED'].includes(e.code) ? 1 : 2, `${e.message} [${e.code}]`);
    return fail(2, `capture failed: ${(e as Error).message}`);
  }
}

/** Registers `policy check` and `policy capture` on the top-level program. */
export function register(program: Command, io: CliIo = processIo): void {
  const policy = program.command('policy').description('Check and capture join policies (docs/policy.md)');
  policy
    .command('check')
    .description('Validate a policy file: schema, unknown keys, impossible or empty rules. Exit 0 valid, 1 invalid, 2 unreadable.')
    .argument('<file>', 'policy YAML')
    .option('--at <rfc3339>', 'evaluate image expiry at this time instead of now')
    .option('--json', 'print one JSON object instead of text')
    .action(async (file: string, o: CheckOptions) => {
      await runPolicyCheck(file, o, io);
    });
  policy
    .command('capture')
    .description('Write a starting policy that pins exactly what one known-good node presented.')
    .option('--evidence <file>', 'verdict JSON from `attest-broker verify` (must be ok: true)')
    .option('--claims <file>', 'normalized claims JSON')
    .option('--cluster <name>', 'cluster name', 'default')
    .option('--image <name>', 'image name for the captured reference values')
    .option('--policy-version <v>', 'declared policy version')
    .option('--expires <date>', 'expiry of the captured image (RFC 3339)')
    .option('--out <file>', 'write to this new file instead of stdout (never overwrites)')
    .option('--at <rfc3339>', 'capture time (defaults to now)')
    .action(async (o: CaptureCliOptions) => {
      await runPolicyCapture(o, io);
    });
}

/**
 * @module broker/commands/worker.node
 *
 * `attest-broker worker load`: puts the pinned roots and the join policy into a deployed
 * Cloudflare Worker through its admin API (broker/worker-admin.ts), then reads back what the
 * Worker holds and whether it is ready. Run after `wrangler deploy` (or by the Terraform
 * broker-cloudflare module after it uploads the script).
 *
 * - Roots: every `<pin-id>.pem` of a trust directory as `attest-broker trust fetch|import`
 *   writes it, concatenated into one `PUT /v1/admin/trust` (the Worker refuses the whole upload
 *   when one certificate matches no built-in pin). `*.intermediates.pem` are not sent: the admin
 *   API takes pinned roots only.
 * - Policy: the YAML file as is, `PUT /v1/admin/policy` (the Worker compiles it first).
 * - Idempotent: what the Worker already holds (same root ids, same policy SHA-256, from
 *   `GET /v1/admin/config`) is not uploaded again (`--force` uploads anyway), so a re-run does
 *   not bump the configuration version every isolate rebuilds on.
 * - The admin token comes from `--token-file` or ATTEST_BROKER_ADMIN_TOKEN, is sent only in the
 *   Authorization header, and never printed. Plain http:// is refused unless the host is
 *   loopback (wrangler dev), so the token does not cross a network in clear.
 *
 * Exit codes (as the other commands): 0 loaded (and ready, with --require-ready); 1 the Worker
 * refused (its code is printed, e.g. ADMIN_UNAUTHENTICATED, ADMIN_ROOT_NOT_PINNED,
 * ADMIN_POLICY_INVALID), could not be reached (WORKER_ADMIN_UNREACHABLE), or is not ready
 * (NOT_READY, with --require-ready); 2 usage or unreadable input.
 */
import type { Command } from 'commander';
import { readFile, readdir } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { rootCertificates } from 'node:tls';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { BUILTIN_PINS } from '../../providers/common/pins.js';
import { fingerprint, parsePemCertificates } from '../../providers/common/x509.js';
import { AttestError } from '../../providers/common/errors.js';
import { EXIT } from './util.node.js';

export const WorkerLoadCodes = {
  WORKER_ADMIN_UNREACHABLE: 'WORKER_ADMIN_UNREACHABLE',
  NOT_READY: 'NOT_READY',
} as const;

export const TOKEN_ENV = 'ATTEST_BROKER_ADMIN_TOKEN';
const RESPONSE_LIMIT = 1 << 20;
const TIMEOUT_MS = 30_000;

export interface WorkerLoadOptions {
  url: string;
  tokenFile?: string;
  trustDir?: string;
  policy?: string;
  caFile?: string;
  force?: boolean;
  requireReady?: boolean;
  /** Seconds to wait for /readyz 200 after loading (default 15). */
  wait?: string;
}

export interface WorkerIo {
  out(s: string): void;
  err(s: string): void;
  env: Readonly<Record<string, string | undefined>>;
}

const processIo: WorkerIo = {
  out: (s) => process.stdout.write(s.endsWith('\n') ? s : `${s}\n`),
  err: (s) => process.stderr.write(s.endsWith('\n') ? s : `${s}\n`),
  env: process.env,
};

/** A problem the operator must fix before anything is sent (exit 2). */
class Usage extends Error {}

/** The Worker answered with a problem document: its code is the one printed. */
export class AdminRefusal extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly body: Record<string, unknown>,
  ) {
    super(message);
  }
}

interface Answer {
  status: number;
  text: string;
}

interface Target {
  base: URL;
  token: string;
  ca?: string;
}

function send(t: Target, method: 'GET' | 'PUT', path: string, body?: string, auth = true): Promise<Answer> {
  const url = new URL(path, t.base);
  const headers: Record<string, string> = { accept: 'application/json' };
  if (auth) headers.authorization = `Bearer ${t.token}`;
  const payload = body === undefined ? undefined : Buffer.from(body, 'utf8');
  if (payload) {
    headers['content-type'] = path.endsWith('/policy') ? 'application/yaml' : 'application/x-pem-file';
    headers['content-length'] = String(payload.length);
  }
  const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise<Answer>((resolve, reject) => {
    const req = request(url, { method, headers, timeout: TIMEOUT_MS, ...(t.ca && url.protocol === 'https:' ? { ca: [...rootCertificates, t.ca] } : {}) }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > RESPONSE_LIMIT) req.destroy(new Error(`answer larger than ${RESPONSE_LIMIT} bytes`));
        else chunks.push(c);
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${TIMEOUT_MS / 1000} s`)));
    req.on('error', (e) => reject(new AttestError(WorkerLoadCodes.WORKER_ADMIN_UNREACHABLE, `${method} ${url.href}: ${e.message}`, { cause: e })));
    req.end(payload);
  });
}

function parseJson(a: Answer): Record<string, unknown> | undefined {
  try {
    const v: unknown = JSON.parse(a.text);
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** The JSON body of a 200, or the Worker's refusal as an AdminRefusal. */
async function admin(t: Target, method: 'GET' | 'PUT', path: string, body?: string): Promise<Record<string, unknown>> {
  const a = await send(t, method, path, body);
  const j = parseJson(a);
  if (a.status === 200 && j) return j;
  if (j && typeof j.code === 'string') throw new AdminRefusal(a.status, j.code, typeof j.detail === 'string' ? j.detail : String(j.title ?? ''), j);
  throw new AttestError(
    WorkerLoadCodes.WORKER_ADMIN_UNREACHABLE,
    `${method} ${new URL(path, t.base).href} answered ${a.status} without a problem document: is --url the broker Worker, and does its route cover /v1/admin/*?`,
  );
}

interface Stored {
  version: number;
  roots: string[];
  policySha256: string | null;
}

function stored(j: Record<string, unknown>): Stored {
  return {
    version: typeof j.version === 'number' ? j.version : 0,
    roots: Array.isArray(j.roots) ? j.roots.filter((r): r is string => typeof r === 'string') : [],
    policySha256: typeof j.policySha256 === 'string' ? j.policySha256 : null,
  };
}

async function readText(path: string, what: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (e) {
    throw new Usage(`cannot read ${what} ${path}: ${(e as Error).message}`);
  }
}

async function token(o: WorkerLoadOptions, io: WorkerIo): Promise<string> {
  const raw = o.tokenFile ? await readText(o.tokenFile, '--token-file') : io.env[TOKEN_ENV];
  if (raw === undefined || raw === '') throw new Usage(`no admin token: give --token-file FILE or set ${TOKEN_ENV} (the Worker's ADMIN_TOKEN secret)`);
  const t = raw.trim();
  // The Worker accepts visible ASCII only (RFC 6750 b64token is narrower still).
  if (!/^[\x21-\x7e]{32,4096}$/.test(t)) throw new Usage(`the admin token ${o.tokenFile ? `in ${o.tokenFile}` : `in ${TOKEN_ENV}`} must be 32 to 4096 visible ASCII characters (the Worker's ADMIN_TOKEN)`);
  return t;
}

function baseUrl(raw: string): URL {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new Usage(`--url ${raw} is not a URL (e.g. https://attest.prod.example)`);
  }
  const loopback = ['127.0.0.1', 'localhost', '[::1]'].includes(u.hostname);
  if (u.protocol !== 'https:' && !(u.protocol === 'http:' && loopback)) {
    throw new Usage(`--url must be https:// (http:// only to a loopback address such as wrangler dev): the admin token must not cross a network in clear`);
  }
  if (u.username || u.password) throw new Usage('--url must not carry credentials; the token goes in --token-file or ' + TOKEN_ENV);
  return u;
}

interface Roots {
  pem: string;
  ids: string[];
  /** SHA-256 of each certificate → the file it came from (to name the file the Worker refuses). */
  files: Map<string, string>;
}

async function roots(dir: string): Promise<Roots> {
  if (!existsSync(dir)) throw new Usage(`--trust-dir ${dir} does not exist; fill it with 'attest-broker trust fetch --dir ${dir}'`);
  const present = new Set(await readdir(dir));
  const out: Roots = { pem: '', ids: [], files: new Map() };
  for (const pin of BUILTIN_PINS) {
    const f = `${pin.id}.pem`;
    if (!present.has(f)) continue;
    const text = await readText(join(dir, f), 'root file');
    let certs;
    try {
      certs = parsePemCertificates(text, f, 64);
    } catch (e) {
      throw new Usage(`${join(dir, f)}: ${(e as Error).message}`);
    }
    for (const c of certs) {
      const fp = await fingerprint(c);
      out.files.set(fp, join(dir, f));
      // The id the Worker will store is the pin the certificate hashes to, whatever the file name.
      const id = BUILTIN_PINS.find((p) => p.sha256 === fp)?.id ?? pin.id;
      if (!out.ids.includes(id)) out.ids.push(id);
    }
    out.pem += text.endsWith('\n') ? text : `${text}\n`;
  }
  if (!out.ids.length) throw new Usage(`--trust-dir ${dir} holds no <pin-id>.pem root; fill it with 'attest-broker trust fetch --dir ${dir}' (or 'trust import')`);
  return out;
}

const sameSet = (a: readonly string[], b: readonly string[]) => a.length === b.length && [...a].sort().join() === [...b].sort().join();

async function readiness(t: Target, waitSeconds: number): Promise<{ ready: boolean; detail: string }> {
  const end = Date.now() + waitSeconds * 1000;
  for (;;) {
    const a = await send(t, 'GET', '/readyz', undefined, false);
    if (a.status === 200) return { ready: true, detail: 'ready' };
    const j = parseJson(a);
    const detail = typeof j?.detail === 'string' ? j.detail : `answered ${a.status}`;
    if (Date.now() >= end) return { ready: false, detail };
    await new Promise((r) => setTimeout(r, 1000));
  }
}

/** Runs `worker load`; returns the exit code (and prints every line itself). */
export async function runWorkerLoad(o: WorkerLoadOptions, io: WorkerIo = processIo): Promise<number> {
  try {
    if (!o.trustDir && !o.policy) throw new Usage('nothing to load: give --trust-dir DIR and/or --policy FILE');
    const wait = o.wait === undefined ? 15 : Number(o.wait);
    if (!Number.isInteger(wait) || wait < 0 || wait > 600) throw new Usage(`--wait must be whole seconds from 0 to 600, got '${o.wait}'`);
    const t: Target = { base: baseUrl(o.url), token: await token(o, io), ...(o.caFile ? { ca: await readText(o.caFile, '--ca-file') } : {}) };
    const r = o.trustDir ? await roots(o.trustDir) : undefined;
    const yaml = o.policy ? await readText(o.policy, '--policy') : undefined;
    const policySha256 = yaml === undefined ? undefined : createHash('sha256').update(yaml, 'utf8').digest('hex');

    let now = stored(await admin(t, 'GET', '/v1/admin/config'));
    io.err(`worker: ${t.base.origin} holds version ${now.version} (${now.roots.length} roots, policy ${now.policySha256 ?? 'none'})`);
    if (r) {
      if (!o.force && sameSet(now.roots, r.ids)) io.err(`trust: unchanged, ${r.ids.length} roots already stored (${r.ids.join(', ')})`);
      else {
        io.err(`trust: uploading ${r.ids.length} roots from ${o.trustDir}: ${r.ids.join(', ')}`);
        try {
          now = stored(await admin(t, 'PUT', '/v1/admin/trust', r.pem));
        } catch (e) {
          if (e instanceof AdminRefusal && typeof e.body.sha256 === 'string') {
            const file = r.files.get(e.body.sha256);
            throw new AdminRefusal(e.status, e.code, `${e.message}${file ? ` (from ${file}; replace it with 'attest-broker trust fetch')` : ''}`, e.body);
          }
          throw e;
        }
        io.err(`trust: stored (version ${now.version}): ${now.roots.join(', ')}`);
      }
    }
    if (yaml !== undefined) {
      if (!o.force && now.policySha256 === policySha256) io.err(`policy: unchanged, sha256 ${policySha256} already stored`);
      else {
        io.err(`policy: uploading ${o.policy} (sha256 ${policySha256})`);
        now = stored(await admin(t, 'PUT', '/v1/admin/policy', yaml));
        io.err(`policy: stored (version ${now.version})`);
      }
    }
    // Read back: another writer between our calls would show here.
    now = stored(await admin(t, 'GET', '/v1/admin/config'));
    if ((r && !sameSet(now.roots, r.ids)) || (policySha256 && now.policySha256 !== policySha256)) {
      io.err('worker: what the Worker holds now differs from what was loaded: another `worker load` ran at the same time? Run again.');
      return EXIT.REJECTED;
    }
    const ready = await readiness(t, wait);
    io.out(
      JSON.stringify({ url: t.base.origin, version: now.version, roots: now.roots, policySha256: now.policySha256, ready: ready.ready, ...(ready.ready ? {} : { notReady: ready.detail }) }),
    );
    if (!ready.ready) {
      io.err(`worker: /readyz is 503 after ${wait} s: ${ready.detail}${o.requireReady ? ` [${WorkerLoadCodes.NOT_READY}]` : ''}`);
      if (o.requireReady) return EXIT.REJECTED;
    } else io.err('worker: /readyz 200');
    return EXIT.OK;
  } catch (e) {
    if (e instanceof Usage) {
      io.err(`attest-broker: worker load: ${e.message}`);
      return EXIT.USAGE;
    }
    if (e instanceof AdminRefusal) {
      io.err(`attest-broker: worker load: the Worker refused: ${e.status} ${e.code}: ${e.message}${hint(e.code)}`);
      return EXIT.REJECTED;
    }
    if (e instanceof AttestError) {
      io.err(`attest-broker: worker load: ${e.code}: ${e.message}`);
      return EXIT.REJECTED;
    }
    throw e;
  }
}

function hint(code: string): string {
  switch (code) {
    case 'ADMIN_UNAUTHENTICATED':
      return ` — the token is not the Worker's ADMIN_TOKEN secret (wrangler secret put ADMIN_TOKEN, or the module's admin_token)`;
    case 'ADMIN_DISABLED':
      return ` — set the ADMIN_TOKEN secret on the Worker first`;
    case 'ADMIN_POLICY_INVALID':
      return ` — check it locally with 'attest-broker policy check FILE'; nothing was stored`;
    case 'RATE_LIMITED':
      return ` — wait a minute and run again`;
    default:
      return '';
  }
}

export function register(program: Command, io: WorkerIo = processIo): void {
  const worker = program.command('worker').description('operate a broker deployed on Cloudflare Workers');
  worker
    .command('load')
    .description("load the pinned roots and the join policy into a deployed Worker (its admin API), then print what it holds and /readyz. Token: --token-file or ATTEST_BROKER_ADMIN_TOKEN")
    .requiredOption('--url <url>', 'the Worker, e.g. https://attest.prod.example (http:// only to loopback)')
    .option('--token-file <file>', `file holding the Worker's ADMIN_TOKEN (default: the ${TOKEN_ENV} environment variable)`)
    .option('--trust-dir <dir>', 'trust directory as `attest-broker trust fetch|import` writes it (every <pin-id>.pem is sent)')
    .option('--policy <file>', 'join policy YAML')
    .option('--ca-file <file>', 'PEM CA bundle to trust for the Worker (besides the system CAs)')
    .option('--force', 'upload even what the Worker already holds')
    .option('--require-ready', 'exit 1 unless /readyz answers 200 after loading')
    .option('--wait <seconds>', 'how long to wait for /readyz 200', '15')
    .action(async (o: WorkerLoadOptions) => {
      process.exitCode = await runWorkerLoad(o, io);
    });
}

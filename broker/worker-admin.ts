/**
 * @module broker/worker-admin
 *
 * The Worker's admin endpoints (docs/protocol.md §6): how an operator loads the pinned roots and
 * the join policy into the Durable Object, where no 5 KiB binding limit applies.
 *
 * - `PUT /v1/admin/trust` — body: concatenated PEM certificates (at most 64). Every one must be
 *   a built-in pinned root (providers/common/pins.ts, SHA-256 of the DER); one that matches no
 *   pin refuses the whole upload (`400 ADMIN_ROOT_NOT_PINNED`). Replaces the stored set.
 * - `PUT /v1/admin/policy` — body: the join policy YAML. It must compile exactly as the broker
 *   will use it (`400 ADMIN_POLICY_INVALID` with the reasons otherwise). Replaces the stored one.
 * - `GET /v1/admin/config` — what is stored: version, root ids, policy SHA-256, time.
 *
 * Every call: counted against a per-address limit first (`429 RATE_LIMITED`), then
 * `Authorization: Bearer <ADMIN_TOKEN>` compared as SHA-256 digests in constant time
 * (`401 ADMIN_UNAUTHENTICATED`, nothing else said). With the ADMIN_TOKEN secret unset (or shorter
 * than 32 characters) the endpoints do not exist (`404 ADMIN_DISABLED`). Bodies are capped at
 * 256 KiB (`413 BODY_TOO_LARGE`). A successful write bumps the version every isolate watches
 * (./worker-config.ts) and is logged with the caller's address and the new digests.
 */
import type { Clock, Logger, StateStore } from './contracts.js';
import { AttestError, malformed } from '../providers/common/errors.js';
import { timingSafeEqual } from '../providers/common/ct.js';
import { sha256 } from '../providers/common/digest.js';
import { toHex, utf8 } from '../providers/common/encoding.js';
import { BUILTIN_PINS } from '../providers/common/pins.js';
import { anchorFromPin, fingerprint, parsePemCertificates } from '../providers/common/x509.js';
import { toProblem } from './http/problem.js';
import { readConfig, updateConfig, type StoredConfig } from './worker-config.js';

export const AdminCodes = {
  ADMIN_DISABLED: 'ADMIN_DISABLED',
  ADMIN_UNAUTHENTICATED: 'ADMIN_UNAUTHENTICATED',
  ADMIN_ROOT_NOT_PINNED: 'ADMIN_ROOT_NOT_PINNED',
  ADMIN_POLICY_INVALID: 'ADMIN_POLICY_INVALID',
} as const;

export const ADMIN_PREFIX = '/v1/admin/';
export const ADMIN_BODY_LIMIT = 256 * 1024;
/** Admin calls per client address per minute (all outcomes counted, before authentication). */
export const ADMIN_RATE_LIMIT = 20;
const MIN_TOKEN_LENGTH = 32;
const MAX_ROOTS = 64;

export interface AdminDeps {
  store: StateStore;
  clock: Clock;
  logger: Logger;
  /** The ADMIN_TOKEN secret (undefined: the admin API is off). */
  adminToken: string | undefined;
  /** Compiles a policy document exactly as the broker will; throws when it is not valid. */
  compilePolicy: (yaml: string) => Promise<unknown>;
  /** Called after a successful write, so this isolate rebuilds at once. */
  changed: () => void;
}

function json(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json', 'cache-control': 'no-store' } });
}

function problem(e: unknown): Response {
  const { problem: p, headers } = toProblem(e);
  return new Response(JSON.stringify(p), { status: p.status, headers });
}

async function limited(store: StateStore, clock: Clock, address: string): Promise<void> {
  const windowMs = 60_000;
  const now = clock.now().getTime();
  const index = Math.floor(now / windowMs);
  const endsIn = (index + 1) * windowMs - now;
  const n = await store.incr(`admin:${address}:${index}`, endsIn + 1000);
  if (n > ADMIN_RATE_LIMIT) {
    const retryAfter = Math.max(1, Math.ceil(endsIn / 1000));
    throw new AttestError('RATE_LIMITED', `too many admin requests; retry after ${retryAfter} s`, { retryAfter });
  }
}

async function authenticate(req: Request, token: string): Promise<void> {
  const h = req.headers.get('authorization') ?? '';
  const m = /^Bearer ([\x21-\x7e]{1,4096})$/.exec(h);
  // Digests of equal length: the comparison time says nothing about the secret or its length.
  const got = await sha256(utf8(m?.[1] ?? ''));
  const want = await sha256(utf8(token));
  if (!m || !timingSafeEqual(got, want)) throw new AttestError(AdminCodes.ADMIN_UNAUTHENTICATED, 'admin calls need Authorization: Bearer <ADMIN_TOKEN>');
}

async function body(req: Request): Promise<string> {
  const declared = Number(req.headers.get('content-length') ?? '0');
  if (declared > ADMIN_BODY_LIMIT) throw new AttestError('BODY_TOO_LARGE', `admin bodies are at most ${ADMIN_BODY_LIMIT} bytes`);
  const buf = new Uint8Array(await req.arrayBuffer());
  if (buf.byteLength > ADMIN_BODY_LIMIT) throw new AttestError('BODY_TOO_LARGE', `admin bodies are at most ${ADMIN_BODY_LIMIT} bytes`);
  const text = new TextDecoder('utf-8', { fatal: false }).decode(buf);
  if (!text.trim()) throw malformed('SCHEMA_INVALID', 'empty body');
  return text;
}

/** Every certificate must be a built-in pinned root; returns their ids in order. */
export async function checkRoots(pem: string): Promise<string[]> {
  const byFp = new Map(BUILTIN_PINS.map((p) => [p.sha256, p]));
  const ids: string[] = [];
  for (const c of parsePemCertificates(pem, 'trust roots', MAX_ROOTS)) {
    const fp = await fingerprint(c);
    const pin = byFp.get(fp);
    if (!pin) {
      throw malformed(AdminCodes.ADMIN_ROOT_NOT_PINNED, `certificate with SHA-256 ${fp} is not a built-in pinned root; nothing was stored`, { detail: { sha256: fp } });
    }
    await anchorFromPin(pin, c);
    if (!ids.includes(pin.id)) ids.push(pin.id);
  }
  return ids;
}

function summary(c: StoredConfig | null): Record<string, unknown> {
  return {
    version: c?.version ?? 0,
    updatedAt: c?.updatedAt ?? null,
    roots: c?.trustIds ?? [],
    policySha256: c?.policySha256 ?? null,
  };
}

/** Handles `/v1/admin/*`; `address` is the client address (CF-Connecting-IP on Workers). */
export async function handleAdmin(req: Request, address: string, d: AdminDeps): Promise<Response> {
  try {
    const path = new URL(req.url).pathname;
    if (!d.adminToken || d.adminToken.length < MIN_TOKEN_LENGTH) {
      throw new AttestError(AdminCodes.ADMIN_DISABLED, 'the admin API is off: set the ADMIN_TOKEN secret (at least 32 random characters)');
    }
    await limited(d.store, d.clock, address || 'unknown');
    await authenticate(req, d.adminToken);
    const log = d.logger.child({ component: 'admin', address });
    if (path === '/v1/admin/config' && req.method === 'GET') return json(summary(await readConfig(d.store)));
    if (path === '/v1/admin/trust' && req.method === 'PUT') {
      const pem = await body(req);
      const ids = await checkRoots(pem);
      const c = await updateConfig(d.store, d.clock, { trustPem: pem, trustIds: ids });
      d.changed();
      log.info({ version: c.version, roots: ids }, 'admin: trust roots stored');
      return json(summary(c));
    }
    if (path === '/v1/admin/policy' && req.method === 'PUT') {
      const yaml = await body(req);
      try {
        await d.compilePolicy(yaml);
      } catch (e) {
        throw malformed(AdminCodes.ADMIN_POLICY_INVALID, e instanceof Error ? e.message : 'the policy does not compile; nothing was stored');
      }
      const policySha256 = toHex(await sha256(utf8(yaml)));
      const c = await updateConfig(d.store, d.clock, { policyYaml: yaml, policySha256 });
      d.changed();
      log.info({ version: c.version, policySha256 }, 'admin: policy stored');
      return json(summary(c));
    }
    throw new AttestError('NOT_FOUND', `no admin route for ${req.method} ${path}`);
  } catch (e) {
    if (!(e instanceof AttestError)) d.logger.error({ err: e instanceof Error ? e.message : String(e) }, 'admin call failed');
    return problem(e);
  }
}

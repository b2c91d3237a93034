/**
 * The Worker entry end to end inside workerd (broker/worker.ts with its Durable Object store),
 * called with bindings of each test's own (the entry keeps one app per set of bindings):
 * - /readyz is 503 without a provider, without an enabled provider's pinned roots, and without
 *   a policy, and stops naming the roots once they were loaded through the admin endpoint;
 * - the admin endpoints refuse when ADMIN_TOKEN is unset, without a token and with a wrong one,
 *   refuse a certificate that is no built-in pinned root and a policy that does not compile.
 */
import { env, createExecutionContext } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import worker from '../../broker/worker.js';
import { toBase64Url } from '../../providers/common/encoding.js';

const roots = import.meta.glob<string>(['../vectors/vaportpm/certs/aws-nitro-root.pem', '../vectors/trustee/amd-roots/milan_ask_ark_asvk.pem'], {
  eager: true,
  import: 'default',
  query: '?raw',
});
const file = (tail: string): string => {
  const k = Object.keys(roots).find((f) => f.endsWith(tail));
  if (!k) throw new Error(`vector ${tail} missing from the bundle`);
  return roots[k]!;
};

const ADMIN = 'admin-' + toBase64Url(crypto.getRandomValues(new Uint8Array(24)));
type Bindings = Record<string, unknown>;

async function call(b: Bindings, path: string, init: RequestInit = {}): Promise<Response> {
  return worker.fetch(new Request(`https://broker.test${path}`, init), b as never, createExecutionContext());
}
const admin = (b: Bindings, path: string, body: string, token = ADMIN): Promise<Response> =>
  call(b, path, { method: 'PUT', headers: { authorization: `Bearer ${token}`, 'content-type': 'text/plain' }, body });

describe('Worker readiness and admin endpoints', () => {
  it('/readyz is 503 without providers, roots or policy; the admin calls refuse bad tokens, unpinned roots and broken policies', async () => {
    const none: Bindings = { ...env, PROVIDERS: '', ADMIN_TOKEN: ADMIN, LOG_LEVEL: 'error' };
    const r0 = await call(none, '/readyz');
    expect(r0.status).toBe(503);
    expect(((await r0.json()) as { detail: string }).detail).toContain('no provider enabled');

    // Admin off when ADMIN_TOKEN is unset (or too short), whatever is presented.
    for (const b of [{ ...none, ADMIN_TOKEN: undefined }, { ...none, ADMIN_TOKEN: 'short' }]) {
      const r = await admin(b, '/v1/admin/policy', 'x: 1', 'short');
      expect(r.status).toBe(404);
      expect(((await r.json()) as { code: string }).code).toBe('ADMIN_DISABLED');
    }
    // No token, a wrong token, a wrong scheme: 401, nothing stored.
    const noAuth = await call(none, '/v1/admin/trust', { method: 'PUT', body: file('aws-nitro-root.pem') });
    expect(noAuth.status).toBe(401);
    expect(noAuth.headers.get('www-authenticate')).toBe('Bearer');
    expect(((await noAuth.json()) as { code: string }).code).toBe('ADMIN_UNAUTHENTICATED');
    expect((await admin(none, '/v1/admin/trust', file('aws-nitro-root.pem'), ADMIN + 'x')).status).toBe(401);
    expect((await admin(none, '/v1/admin/trust', file('aws-nitro-root.pem'), ADMIN.slice(0, -1))).status).toBe(401);
    expect((await call(none, '/v1/admin/trust', { method: 'PUT', headers: { authorization: `Basic ${ADMIN}` }, body: 'x' })).status).toBe(401);
    const cfg0 = (await (await call(none, '/v1/admin/config', { headers: { authorization: `Bearer ${ADMIN}` } })).json()) as { version: number; roots: string[] };

    // aws enabled, but its root not loaded: not ready, and it says which root and how.
    const aws: Bindings = { ...none, PROVIDERS: 'aws' };
    const r1 = await call(aws, '/readyz');
    expect(r1.status).toBe(503);
    const d1 = ((await r1.json()) as { detail: string }).detail;
    if (!cfg0.roots.includes('aws-nitro-root-g1')) expect(d1).toContain('provider aws has none of its pinned roots (aws-nitro-root-g1)');

    // A PEM holding a certificate that is no pinned root (the AMD ASK beside the ARK): refused whole.
    const bad = await admin(aws, '/v1/admin/trust', file('milan_ask_ark_asvk.pem'));
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { code: string }).code).toBe('ADMIN_ROOT_NOT_PINNED');
    // A policy that does not compile: refused with its reasons.
    const badPolicy = await admin(aws, '/v1/admin/policy', 'apiVersion: attest-broker/v1\nkind: JoinPolicy\nclusters: {}\n');
    expect(badPolicy.status).toBe(400);
    expect(((await badPolicy.json()) as { code: string }).code).toBe('ADMIN_POLICY_INVALID');

    // The Nitro root (pinned) is stored; the version moves; the provider is now ready.
    const ok = await admin(aws, '/v1/admin/trust', file('aws-nitro-root.pem'));
    expect(ok.status).toBe(200);
    const cfg1 = (await ok.json()) as { version: number; roots: string[] };
    expect(cfg1.roots).toEqual(['aws-nitro-root-g1']);
    expect(cfg1.version).toBe(cfg0.version + 1);
    const r2 = await call(aws, '/readyz');
    const d2 = r2.status === 503 ? ((await r2.json()) as { detail: string }).detail : '';
    expect(d2).not.toContain('pinned roots');
  });
});

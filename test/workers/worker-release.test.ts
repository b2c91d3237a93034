/**
 * The Worker entry end to end inside workerd (broker/worker.ts with its Durable Object store),
 * called with bindings of each test's own (the entry keeps one app per set of bindings):
 * - /readyz is 503 without a provider, without an enabled provider's pinned roots, and without
 *   a policy, and stops naming the roots once they were loaded through the admin endpoint;
 * - the admin endpoints refuse when ADMIN_TOKEN is unset, without a token and with a wrong one,
 *   refuse a certificate that is no built-in pinned root and a policy that does not compile;
 * - a node with a (software) TPM AK is admitted under a policy loaded with PUT /v1/admin/policy
 *   and gets, sealed to its ephemeral key, a webhook-mode bootstrap token + kubeconfig and a disk
 *   key wrapped by AWS KMS through the SigV4 REST client (test/servers/aws-kms.ts, which checks
 *   every signature); POST /v1/tokenreview authenticates that token for the configured API-server
 *   credential only; the next boot gets the same disk key back (KMS Decrypt);
 * - the same with KMS_KIND=azure-keyvault: the disk key is wrapped by the broker's Key Vault REST
 *   client (client-credentials grant, wrapkey/unwrapkey) against test/servers/azure.ts over TLS
 *   (its test CA is trusted by the workerd network, vitest.workers.config.ts); a key that does
 *   not permit wrapKey (403) and a wrong client secret (401 from Entra ID) are KMS_DENIED;
 * - RELEASE_TPM_SEAL reaches the release service through the entry (require: a node whose AK is
 *   pinned, so without EK, is TPM_SEAL_UNAVAILABLE); the sealing itself: tpm-seal.test.ts.
 */
import { env, createExecutionContext, waitOnExecutionContext } from 'cloudflare:test';
import { describe, expect, inject, it } from 'vitest';
import { compactDecrypt, exportJWK, generateKeyPair } from 'jose';
import worker from '../../broker/worker.js';
import { DurableObjectStore } from '../../broker/store/durable-object.worker.js';
import { configVersion, readConfig, updateConfig } from '../../broker/worker-config.js';
import { createTpmProvider } from '../../providers/tpm/provider.js';
import { computeBinding } from '../../broker/binding.js';
import { capturePolicy } from '../../broker/policy/capture.js';
import { fromBase64Url, toBase64, toBase64Url, toHex } from '../../providers/common/encoding.js';
import type { ReleaseObject } from '../../broker/contracts.js';
import { attest, pcrDigest, softwareAk, tpm2bPublic, type SoftwareAk } from '../tpm/build.js';

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
const APISERVER = 'apiserver-' + toBase64Url(crypto.getRandomValues(new Uint8Array(24)));
type Bindings = Record<string, unknown>;

/** Calls the Worker entry and waits for what it left in ctx.waitUntil (the trace export). */
async function call(b: Bindings, path: string, init: RequestInit = {}): Promise<Response> {
  const ctx = createExecutionContext();
  const r = await worker.fetch(new Request(`https://broker.test${path}`, init), b as never, ctx);
  await waitOnExecutionContext(ctx);
  return r;
}
const admin = (b: Bindings, path: string, body: string, token = ADMIN): Promise<Response> =>
  call(b, path, { method: 'PUT', headers: { authorization: `Bearer ${token}`, 'content-type': 'text/plain' }, body });
const post = (b: Bindings, path: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> =>
  call(b, path, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });

/** A TPM "node": a software AK quoting PCRs 0 and 7 over whatever binding it is given. */
async function tpmNode(): Promise<{ ak: SoftwareAk; evidence(binding: Uint8Array): Promise<unknown> }> {
  const ak = await softwareAk('p256');
  const values = [crypto.getRandomValues(new Uint8Array(32)), crypto.getRandomValues(new Uint8Array(32))];
  const digest = await pcrDigest('sha256', values);
  return {
    ak,
    async evidence(binding) {
      const message = attest({ extraData: binding, selection: [{ hash: 'sha256', pcrs: [0, 7] }], pcrDigest: digest });
      return {
        ak_public: toBase64Url(tpm2bPublic(ak.tpmtPublic)),
        quote: { message: toBase64Url(message), signature: toBase64Url(await ak.sign(message)) },
        pcrs: { sha256: { 0: toHex(values[0]!), 7: toHex(values[1]!) } },
      };
    },
  };
}

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

/**
 * A TPM node admitted through the Worker entry with `kms` as its disk-key bindings: its policy is
 * captured from the node's own claims (as `policy capture` does) with disk keys on, loaded with
 * PUT /v1/admin/policy; `attestOnce` runs challenge + attest with an ephemeral key, `open` opens
 * the sealed release.
 */
async function admitted(kms: Bindings): Promise<{
  b: Bindings;
  instanceId: string;
  attestOnce(extra: Record<string, unknown>, headers?: Record<string, string>): Promise<Response>;
  open(r: Response): Promise<ReleaseObject>;
}> {
  const node = await tpmNode();
  const probe = await createTpmProvider().verify('tpm', await node.evidence(new Uint8Array(32)), {
    binding: new Uint8Array(32),
    now: new Date(),
    fetch,
    trust: { anchors: () => [], ids: () => [] },
    options: {},
  });
  const captured = await capturePolicy(
    { ...probe, identity: { ...probe.identity, proven: ['instanceId'] }, tpm: { ...probe.tpm!, akTrust: 'pinned' }, evidenceSha256: '0'.repeat(64) },
    { now: new Date(), cluster: 'prod' },
  );
  const policyYaml = captured.yaml.replace(/diskKey: false/, 'diskKey: true');
  expect(policyYaml).toContain('diskKey: true');
  const b: Bindings = {
    ...env,
    LOG_LEVEL: 'error',
    PROVIDERS: 'tpm',
    PROVIDER_OPTIONS: JSON.stringify({ tpm: { pinnedAkSha256: [probe.tpm!.akSha256] } }),
    ADMIN_TOKEN: ADMIN,
    RELEASE_CLUSTER: 'prod',
    RELEASE_API_SERVER: 'https://api.prod.test:6443',
    TOKENREVIEW_BEARER_TOKEN: APISERVER,
    ...kms,
  };
  expect((await admin(b, '/v1/admin/policy', policyYaml)).status).toBe(200);
  const ready = await call(b, '/readyz');
  expect(ready.status, await ready.clone().text()).toBe(200);

  const { publicKey, privateKey } = await generateKeyPair('ECDH-ES+A256KW', { extractable: true });
  const { kty, crv, x, y } = await exportJWK(publicKey);
  const ephemeralKey = { kty: kty!, crv: crv!, x: x!, y: y! };
  return {
    b,
    instanceId: probe.identity.instanceId,
    async attestOnce(extra, headers = {}) {
      const ch = (await (await post(b, '/v1/challenge', { provider: 'tpm' })).json()) as { challengeId: string; nonce: string };
      const binding = await computeBinding(fromBase64Url(ch.nonce), ephemeralKey);
      return post(b, '/v1/attest', { challengeId: ch.challengeId, provider: 'tpm', format: 'tpm', ephemeralKey, evidence: await node.evidence(binding), ...extra }, headers);
    },
    async open(r) {
      const { release } = (await r.json()) as { release: string };
      return JSON.parse(new TextDecoder().decode((await compactDecrypt(release, privateKey)).plaintext)) as ReleaseObject;
    },
  };
}

describe('release on Workers: webhook-mode token and AWS KMS disk key', () => {
  it('admits a TPM node, releases a sealed token + kubeconfig + KMS-wrapped disk key, reviews the token, unwraps on the next boot', async () => {
    const kms = inject('awsKms');
    const { b, instanceId, attestOnce, open } = await admitted({
      KMS_KIND: 'aws-kms',
      AWS_KMS_KEY_ID: kms.keyArn,
      AWS_REGION: kms.region,
      AWS_ACCESS_KEY_ID: kms.accessKeyId,
      AWS_SECRET_ACCESS_KEY: kms.secretAccessKey,
      AWS_KMS_ENDPOINT: kms.url,
    });

    const r1 = await attestOnce({ want: ['bootstrap-token', 'disk-key'] });
    expect(r1.status, await r1.clone().text()).toBe(200);
    const rel = await open(r1);
    expect(rel.bootstrapToken).toMatch(/^[a-z0-9]{6}\.[a-z0-9]{16}$/);
    expect(rel.apiServer).toBe('https://api.prod.test:6443');
    expect(rel.kubeconfig).toContain(`token: ${rel.bootstrapToken}`);
    expect(rel.nodeName).toContain(instanceId);
    expect(fromBase64Url(rel.diskKey!.key)).toHaveLength(32);
    // The wrapped key is the AWS KMS test server's blob for its key (magic "TKMS" + the key ARN).
    const blob = fromBase64Url(rel.diskKey!.wrapped);
    expect(new TextDecoder().decode(blob.subarray(0, 4))).toBe('TKMS');
    expect(new TextDecoder().decode(blob)).toContain(kms.keyArn);

    // TokenReview: the configured API-server credential gets the bootstrap identity; anyone else 401.
    const review = (bearer: string) =>
      post(b, '/v1/tokenreview', { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token: rel.bootstrapToken } }, { authorization: `Bearer ${bearer}` });
    const tr = await review(APISERVER);
    expect(tr.status).toBe(200);
    const st = ((await tr.json()) as { status: { authenticated: boolean; user: { username: string; groups: string[] } } }).status;
    expect(st.authenticated).toBe(true);
    expect(st.user.username).toBe(`system:bootstrap:${rel.bootstrapToken!.split('.')[0]}`);
    expect(st.user.groups).toContain('system:bootstrappers');
    expect((await review(APISERVER + 'x')).status).toBe(401);
    // A token this broker never issued is not authenticated.
    const forged = await post(b, '/v1/tokenreview', { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token: 'abcdef.0123456789abcdef' } }, { authorization: `Bearer ${APISERVER}` });
    expect(((await forged.json()) as { status: { authenticated: boolean } }).status.authenticated).toBe(false);

    // Next boot: the node sends its wrapped key back and gets the same key (KMS Decrypt, same context).
    const r2 = await attestOnce({ want: ['disk-key'], diskKey: { wrapped: rel.diskKey!.wrapped } });
    expect(r2.status, await r2.clone().text()).toBe(200);
    expect((await open(r2)).diskKey!.key).toBe(rel.diskKey!.key);
  });

  it('RELEASE_TPM_SEAL reaches the release through the entry: require refuses a node trusted without its EK (pinned AK) with 403 TPM_SEAL_UNAVAILABLE; a bad value is a 500 naming the binding', async () => {
    const { attestOnce } = await admitted({ RELEASE_TPM_SEAL: 'require' });
    const r = await attestOnce({ want: ['bootstrap-token'] });
    expect(r.status).toBe(403);
    expect(((await r.json()) as { code: string }).code).toBe('TPM_SEAL_UNAVAILABLE');
    const bad = await call({ ...env, LOG_LEVEL: 'error', PROVIDERS: 'tpm', RELEASE_CLUSTER: 'prod', RELEASE_API_SERVER: 'https://api.prod.test:6443', TOKENREVIEW_BEARER_TOKEN: APISERVER, RELEASE_TPM_SEAL: 'always' }, '/readyz');
    expect(bad.status).toBe(500);
    expect(((await bad.json()) as { detail: string }).detail).toContain('RELEASE_TPM_SEAL: one of off, when-available, require');
  });

  it('release configured without a TokenReview credential is refused (500 naming the binding), never served open', async () => {
    const b: Bindings = { ...env, LOG_LEVEL: 'error', PROVIDERS: 'tpm', RELEASE_CLUSTER: 'prod', RELEASE_API_SERVER: 'https://api.prod.test:6443' };
    const r = await call(b, '/readyz');
    expect(r.status).toBe(500);
    expect(((await r.json()) as { detail: string }).detail).toContain('TOKENREVIEW_BEARER_TOKEN');
  });
});

describe('release on Workers: disk key through Azure Key Vault (test/servers/azure.ts over TLS)', () => {
  const kvBindings = (o: { keyName?: string; secret?: string } = {}): Bindings => {
    const kv = inject('azureKeyVault');
    return {
      KMS_KIND: 'azure-keyvault',
      AZURE_KEYVAULT_URL: kv.url,
      AZURE_KEY_NAME: o.keyName ?? kv.keyName,
      AZURE_KEY_VERSION: kv.keyVersion,
      AZURE_TENANT_ID: kv.tenantId,
      AZURE_CLIENT_ID: kv.clientId,
      AZURE_CLIENT_SECRET: o.secret ?? kv.clientSecret,
      AZURE_AUTHORITY_HOST: kv.url,
    };
  };

  it('admits a TPM node; its disk key is wrapped by Key Vault (wrapkey) and given back on the next boot (unwrapkey)', async () => {
    const kv = inject('azureKeyVault');
    const { attestOnce, open } = await admitted(kvBindings());
    const r1 = await attestOnce({ want: ['bootstrap-token', 'disk-key'] });
    expect(r1.status, await r1.clone().text()).toBe(200);
    const rel = await open(r1);
    expect(rel.bootstrapToken).toMatch(/^[a-z0-9]{6}\.[a-z0-9]{16}$/);
    const key = fromBase64Url(rel.diskKey!.key);
    expect(key).toHaveLength(32);
    // The Key Vault envelope ("ABKV", version 1) names the versioned key URL Key Vault answered.
    const blob = fromBase64Url(rel.diskKey!.wrapped);
    expect(new TextDecoder().decode(blob.subarray(0, 4))).toBe('ABKV');
    expect(new TextDecoder().decode(blob)).toContain(`${kv.url}/keys/${kv.keyName}/${kv.keyVersion}`);

    const r2 = await attestOnce({ want: ['disk-key'], diskKey: { wrapped: rel.diskKey!.wrapped } });
    expect(r2.status, await r2.clone().text()).toBe(200);
    expect((await open(r2)).diskKey!.key).toBe(rel.diskKey!.key);
    // A tampered envelope (last byte of the AES-GCM tag) is refused, not answered with another key.
    const bad = blob.slice();
    bad[bad.length - 1] = bad[bad.length - 1]! ^ 1;
    const r3 = await attestOnce({ want: ['disk-key'], diskKey: { wrapped: toBase64Url(bad) } });
    expect(((await r3.json()) as { code: string }).code).toBe('KMS_UNWRAP_FAILED');
  });

  it('Key Vault refusing the operation (403 Forbidden) or Entra ID refusing the client secret (401) is KMS_DENIED, and nothing is released', async () => {
    for (const [o, what] of [
      [{ keyName: inject('azureKeyVault').signOnlyKeyName }, 'key without wrapKey in key_ops'],
      [{ secret: 'not-the-client-secret' }, 'wrong client secret'],
    ] as const) {
      const { attestOnce } = await admitted(kvBindings(o));
      const r = await attestOnce({ want: ['bootstrap-token', 'disk-key'] });
      const body = (await r.json()) as { code: string; release?: unknown };
      expect(r.status, what).toBe(500);
      expect(body.code, what).toBe('KMS_DENIED');
      expect(body.release, what).toBeUndefined();
    }
  });
});

describe('tracing on Workers: OTLP/HTTP export to test/servers/otlp-collector.ts', () => {
  interface Received {
    spans: Array<{ traceId: string; spanId: string; parentSpanId?: string; name: string; kind: number; attributes: Record<string, string | number | boolean>; status: { code?: number; message?: string }; resource: Record<string, string | number | boolean> }>;
    problems: string[];
    headers: Array<Record<string, string>>;
  }
  const received = async (): Promise<Received> => (await fetch(`${inject('otlpCollector').url}/test/received`)).json() as Promise<Received>;

  it('a request with a traceparent is a SERVER span, child of the caller; its KMS calls are CLIENT spans below it (AsyncLocalStorage in workerd); exported in ctx.waitUntil', async () => {
    const trace = toHex(crypto.getRandomValues(new Uint8Array(16)));
    const caller = toHex(crypto.getRandomValues(new Uint8Array(8)));
    const { attestOnce, open } = await admitted({
      KMS_KIND: 'local',
      KMS_LOCAL_KEK: toBase64(crypto.getRandomValues(new Uint8Array(32))),
      OTEL_EXPORTER_OTLP_ENDPOINT: inject('otlpCollector').url,
      OTEL_SERVICE_NAME: 'attest-broker-worker',
      TRACING_HEADERS: JSON.stringify({ 'x-api-key': 'k-worker' }),
    });
    const r1 = await attestOnce({ want: ['bootstrap-token', 'disk-key'] }, { traceparent: `00-${trace}-${caller}-01`, 'x-request-id': 'traced-1' });
    expect(r1.status, await r1.clone().text()).toBe(200);
    const rel = await open(r1);
    // A failing KMS call (another node's envelope cannot be opened here: tampered) is an ERROR CLIENT span.
    const bad = fromBase64Url(rel.diskKey!.wrapped);
    bad[bad.length - 1] = bad[bad.length - 1]! ^ 1;
    const r2 = await attestOnce({ want: ['disk-key'], diskKey: { wrapped: toBase64Url(bad) } }, { traceparent: `00-${trace}-${caller}-01`, 'x-request-id': 'traced-2' });
    expect(((await r2.json()) as { code: string }).code).toBe('KMS_UNWRAP_FAILED');

    const got = await received();
    expect(got.problems).toEqual([]);
    // TRACING_HEADERS went with the export.
    expect(got.headers.some((h) => h['x-api-key'] === 'k-worker' && h['content-type'] === 'application/json')).toBe(true);
    const mine = got.spans.filter((s) => s.traceId === trace);
    const server = mine.filter((s) => s.name === 'POST /v1/attest');
    expect(server).toHaveLength(2);
    const [s1, s2] = [server.find((s) => s.attributes['attest_broker.request_id'] === 'traced-1')!, server.find((s) => s.attributes['attest_broker.request_id'] === 'traced-2')!];
    expect(s1).toMatchObject({ kind: 2, parentSpanId: caller, attributes: { 'http.request.method': 'POST', 'http.route': '/v1/attest', 'http.response.status_code': 200 } });
    expect(s1.resource).toMatchObject({ 'service.name': 'attest-broker-worker' });
    expect(s2.attributes).toMatchObject({ 'http.response.status_code': 403, 'error.type': 'KMS_UNWRAP_FAILED' });
    const wrap = mine.find((s) => s.name === 'kms wrap')!;
    expect(wrap).toMatchObject({ kind: 3, parentSpanId: s1.spanId, attributes: { 'attest_broker.kms.kind': 'local', 'attest_broker.operation': 'wrap' } });
    const unwrap = mine.find((s) => s.name === 'kms unwrap')!;
    expect(unwrap).toMatchObject({ kind: 3, parentSpanId: s2.spanId, status: { code: 2, message: 'KMS_UNWRAP_FAILED' } });
  });

  it('tracing off (no endpoint): nothing is exported; a bad TRACING_HEADERS or endpoint is a 500 naming it', async () => {
    const before = (await received()).spans.length;
    const b: Bindings = { ...env, LOG_LEVEL: 'error', PROVIDERS: 'tpm' };
    await call(b, '/v1/challenge', { method: 'POST', headers: { 'content-type': 'application/json', traceparent: `00-${'a'.repeat(32)}-${'b'.repeat(16)}-01` }, body: '{"provider":"tpm"}' });
    expect((await received()).spans.length).toBe(before);
    for (const [more, what] of [
      [{ TRACING_HEADERS: '{x' }, 'TRACING_HEADERS: not JSON'],
      [{ TRACING_HEADERS: '{"x-k":"a\\nb"}' }, 'tracing.headers'],
      [{ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://u:p@collector:4318' }, 'must not carry credentials'],
      [{ TRACING_SAMPLE_RATIO: '2' }, 'tracing.sampleRatio'],
    ] as const) {
      const r = await call({ ...b, OTEL_EXPORTER_OTLP_ENDPOINT: inject('otlpCollector').url, ...more }, '/healthz');
      expect(r.status, what).toBe(500);
      expect(((await r.json()) as { detail: string }).detail, what).toContain(what);
    }
  });
});

describe('stored configuration (broker/worker-config.ts)', () => {
  it('concurrent updates serialise: each gets its own version, none is lost, the head names a whole document', async () => {
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    const store = new DurableObjectStore((env as any).STATE);
    const clock = { now: () => new Date() };
    const v0 = await configVersion(store);
    const before = await readConfig(store);
    const results = await Promise.all(Array.from({ length: 6 }, (_, i) => updateConfig(store, clock, { policyYaml: `p${i}`, policySha256: String(i) })));
    expect(new Set(results.map((r) => r.version))).toEqual(new Set([1, 2, 3, 4, 5, 6].map((n) => v0 + n)));
    const last = results.find((r) => r.version === v0 + 6)!;
    const now = await readConfig(store);
    expect(now).toEqual(last);
    // A policy update keeps the roots stored before it.
    expect(now!.trustPem).toBe(before?.trustPem);
    expect(now!.policySha256).toBe(last.policySha256);
  });
});

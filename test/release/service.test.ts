/**
 * ReleaseService end to end (local KMS, in-memory store, the TLS Kubernetes test server):
 * sealing to the node's key only, binding checks, one issuance per window, rollback on outages,
 * the audit chain, and no secret in any log line.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compactDecrypt, exportJWK, generateKeyPair, calculateJwkThumbprint, type JWK } from 'jose';
import { createHash, randomBytes } from 'node:crypto';
import { BrokerReleaseService, diskKeyContext, type ReleaseOptions } from '../../broker/release/service.js';
import { HashChainAudit, verifyAuditChain, type AuditRecord } from '../../broker/release/audit.js';
import { LocalKeyService } from '../../providers/local/kms.js';
import type { KeyServiceLike } from '../../providers/common/keyservice.js';
import type { KeyService, ReleaseObject, StateStore } from '../../broker/contracts.js';
import { kubeClientFor } from '../../broker/release/kube.node.js';
import { makeTestPki, type TestPki } from '../servers/tls.js';
import { startKubeServer, type KubeTestServer } from '../servers/kube-apiserver.js';
import { captureLogger, claimsFor, decisionFor, fixedClock, memoryStore, type CapturedLogger } from './helpers.js';
import { unavailable } from '../../providers/common/errors.js';

const b64u = (b: Uint8Array): string => Buffer.from(b).toString('base64url');

let pki: TestPki;
let srv: KubeTestServer;

beforeAll(async () => {
  pki = makeTestPki();
  srv = await startKubeServer(pki);
});
afterAll(async () => {
  await srv?.close();
});

// Compile-time: the providers' KeyService shape and the broker's contract are the same.
const _a: (k: KeyServiceLike) => KeyService = (k) => k;
const _b: (k: KeyService) => KeyServiceLike = (k) => k;
void _a;
void _b;

interface Node {
  priv: CryptoKey;
  jwk: JWK;
  nonce: string;
  binding: string;
}

async function nodeKey(kind: 'EC' | 'RSA' = 'EC'): Promise<Node> {
  const { publicKey, privateKey } =
    kind === 'EC' ? await generateKeyPair('ECDH-ES+A256KW', { extractable: true }) : await generateKeyPair('RSA-OAEP-256', { modulusLength: 2048, extractable: true });
  const jwk = await exportJWK(publicKey);
  const nonce = randomBytes(32);
  const tp = Buffer.from(await calculateJwkThumbprint(jwk, 'sha256'), 'base64url');
  const binding = createHash('sha256').update(Buffer.concat([nonce, tp])).digest();
  return { priv: privateKey as CryptoKey, jwk, nonce: b64u(nonce), binding: b64u(binding) };
}

interface Env {
  svc: BrokerReleaseService;
  store: StateStore;
  logger: CapturedLogger;
  records: AuditRecord[];
  keys: KeyServiceLike;
  clock: ReturnType<typeof fixedClock>;
}

async function env(over: Partial<ReleaseOptions> = {}): Promise<Env> {
  const clock = fixedClock(new Date().toISOString());
  const store = memoryStore(clock);
  const logger = captureLogger();
  const records: AuditRecord[] = [];
  const keys = over.keys ?? (await LocalKeyService.create({ kek: randomBytes(32) }));
  const audit = new HashChainAudit({ store, clock, write: async (r) => void records.push(r) });
  const kube = kubeClientFor({ server: srv.url, caPem: pki.caPem, token: () => srv.adminToken }, { sleep: async () => undefined });
  const svc = new BrokerReleaseService({
    store,
    clock,
    logger,
    audit,
    keys,
    clusters: { prod: { apiServer: 'https://api.prod.example:6443', caPem: pki.caPem, kube } },
    ...over,
  });
  return { svc, store, logger, records, keys, clock };
}

async function open(jwe: string, key: CryptoKey): Promise<ReleaseObject> {
  const { plaintext, protectedHeader } = await compactDecrypt(jwe, key);
  expect(protectedHeader.enc).toBe('A256GCM');
  return JSON.parse(Buffer.from(plaintext).toString()) as ReleaseObject;
}

describe('sealed release', () => {
  it.each(['EC', 'RSA'] as const)('%s: a JWE only the node opens, with token, kubeconfig and a disk key', async (kind) => {
    const e = await env();
    const n = await nodeKey(kind);
    const instanceId = `i-${kind.toLowerCase()}${randomBytes(4).toString('hex')}`;
    const jwe = await e.svc.release({ claims: claimsFor(instanceId), decision: decisionFor(), want: ['bootstrap-token', 'disk-key'], ephemeralKey: n.jwk, nonce: n.nonce, binding: n.binding, requestId: 'r1' });
    expect(typeof jwe).toBe('string');
    const header = JSON.parse(Buffer.from((jwe as string).split('.')[0]!, 'base64url').toString());
    expect(header.alg).toBe(kind === 'EC' ? 'ECDH-ES+A256KW' : 'RSA-OAEP-256');
    const rel = await open(jwe as string, n.priv);
    expect(rel.nodeName).toBe(decisionFor().nodeName);
    expect(rel.nonce).toBe(n.nonce);
    expect(rel.bootstrapToken).toMatch(/^[a-z0-9]{6}\.[a-z0-9]{16}$/);
    expect(rel.kubeconfig).toContain(rel.bootstrapToken);
    expect(rel.caCertHashes![0]).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(rel.apiServer).toBe('https://api.prod.example:6443');
    // the Secret exists in the cluster with that secret
    const id = rel.bootstrapToken!.split('.')[0]!;
    const s = srv.secrets.get(`kube-system/bootstrap-token-${id}`)!;
    expect(Buffer.from(s.data['token-secret']!, 'base64').toString()).toBe(rel.bootstrapToken!.split('.')[1]);
    expect(Buffer.from(s.data.description!, 'base64').toString()).toContain(instanceId);
    // disk key: 32 bytes, unwraps under this identity only
    const key = Buffer.from(rel.diskKey!.key, 'base64url');
    expect(key.length).toBe(32);
    const ctx = diskKeyContext(claimsFor(instanceId), decisionFor());
    expect(Buffer.from(await e.keys.unwrap(Buffer.from(rel.diskKey!.wrapped, 'base64url'), ctx))).toEqual(key);
  });

  it('another private key cannot open it; a flipped bit anywhere makes it useless', async () => {
    const e = await env();
    const n = await nodeKey();
    const other = await nodeKey();
    const jwe = (await e.svc.release({ claims: claimsFor('i-seal'), decision: decisionFor(), want: ['bootstrap-token'], ephemeralKey: n.jwk, nonce: n.nonce, binding: n.binding, requestId: 'r' })) as string;
    await expect(compactDecrypt(jwe, other.priv)).rejects.toThrow();
    const parts = jwe.split('.');
    for (const i of [0, 1, 2, 3, 4]) {
      if (parts[i] === '') continue;
      const raw = Buffer.from(parts[i]!, 'base64url');
      raw[Math.floor(raw.length / 2)]! ^= 0x01;
      const tampered = parts.map((p, j) => (j === i ? b64u(raw) : p)).join('.');
      await expect(compactDecrypt(tampered, n.priv)).rejects.toThrow();
    }
  });

  it('sealEnc A128CBC-HS256 (what the shell client asks for): the same release in CBC+HMAC, and a flipped bit fails its tag', async () => {
    const e = await env();
    const n = await nodeKey('RSA');
    const jwe = (await e.svc.release({ claims: claimsFor('i-cbc'), decision: decisionFor(), want: ['bootstrap-token', 'disk-key'], ephemeralKey: n.jwk, nonce: n.nonce, binding: n.binding, sealEnc: 'A128CBC-HS256', requestId: 'r' })) as string;
    const { plaintext, protectedHeader } = await compactDecrypt(jwe, n.priv);
    expect(protectedHeader).toMatchObject({ alg: 'RSA-OAEP-256', enc: 'A128CBC-HS256', cty: 'application/attest-broker.release+json' });
    const rel = JSON.parse(Buffer.from(plaintext).toString()) as ReleaseObject;
    expect(rel.nonce).toBe(n.nonce);
    expect(rel.bootstrapToken).toMatch(/^[a-z0-9]{6}\.[a-z0-9]{16}$/);
    expect(Buffer.from(rel.diskKey!.key, 'base64url')).toHaveLength(32);
    // 256-bit CEK wrapped (RSA-2048 → 256-byte encrypted key), 16-byte IV, 16-byte truncated HMAC tag.
    const [, ek, iv, ct, tag] = jwe.split('.');
    expect(Buffer.from(ek!, 'base64url')).toHaveLength(256);
    expect(Buffer.from(iv!, 'base64url')).toHaveLength(16);
    expect(Buffer.from(ct!, 'base64url').length % 16).toBe(0);
    expect(Buffer.from(tag!, 'base64url')).toHaveLength(16);
    for (const i of [0, 2, 3, 4]) {
      const raw = Buffer.from(jwe.split('.')[i]!, 'base64url');
      raw[raw.length - 1]! ^= 0x01;
      await expect(compactDecrypt(jwe.split('.').map((p, j) => (j === i ? b64u(raw) : p)).join('.'), n.priv)).rejects.toThrow();
    }
    // The default stays A256GCM.
    const n2 = await nodeKey('RSA');
    const gcm = (await e.svc.release({ claims: claimsFor('i-gcm'), decision: decisionFor(), want: ['disk-key'], ephemeralKey: n2.jwk, nonce: n2.nonce, binding: n2.binding, requestId: 'r2' })) as string;
    expect((await compactDecrypt(gcm, n2.priv)).protectedHeader.enc).toBe('A256GCM');
  });

  it('a replayed response is useless to the next attempt: sealed to the old key, carrying the old nonce', async () => {
    const e = await env({ issuanceWindowSeconds: 60 });
    const first = await nodeKey();
    const jwe = (await e.svc.release({ claims: claimsFor('i-replay'), decision: decisionFor(), want: ['disk-key'], ephemeralKey: first.jwk, nonce: first.nonce, binding: first.binding, requestId: 'r' })) as string;
    const second = await nodeKey(); // the node's next attempt: new key, new nonce
    await expect(compactDecrypt(jwe, second.priv)).rejects.toThrow();
    expect((await open(jwe, first.priv)).nonce).not.toBe(second.nonce);
  });

  const rows: Array<{ name: string; mutate: (n: Node) => Partial<Parameters<BrokerReleaseService['release']>[0]>; wantCode: string }> = [
    { name: 'key not bound into the binding', mutate: (n) => ({ binding: b64u(randomBytes(32)), ephemeralKey: n.jwk }), wantCode: 'BINDING_KEY_MISMATCH' },
    { name: 'other nonce', mutate: (n) => ({ nonce: b64u(randomBytes(32)), ephemeralKey: n.jwk }), wantCode: 'BINDING_KEY_MISMATCH' },
    { name: 'binding missing', mutate: (n) => ({ binding: undefined, ephemeralKey: n.jwk }), wantCode: 'BINDING_MISSING' },
    { name: 'private key material sent', mutate: (n) => ({ ephemeralKey: { ...n.jwk, d: 'AAAA' } as JsonWebKey }), wantCode: 'EPHEMERAL_KEY_INVALID' },
    { name: 'P-384 key', mutate: (n) => ({ ephemeralKey: { ...n.jwk, crv: 'P-384' } as JsonWebKey }), wantCode: 'EPHEMERAL_KEY_INVALID' },
    { name: 'symmetric key', mutate: () => ({ ephemeralKey: { kty: 'oct', k: 'AAAA' } as JsonWebKey }), wantCode: 'EPHEMERAL_KEY_INVALID' },
    { name: 'point off the curve', mutate: (n) => ({ ephemeralKey: { ...n.jwk, y: b64u(randomBytes(32)) } as JsonWebKey }), wantCode: 'EPHEMERAL_KEY_INVALID' },
    { name: 'no key while policy forbids unsealed', mutate: () => ({ ephemeralKey: undefined }), wantCode: 'RELEASE_UNSEALED_FORBIDDEN' },
    { name: 'decision denies', mutate: (n) => ({ ephemeralKey: n.jwk, decision: decisionFor({ allow: false }) }), wantCode: 'RELEASE_NOT_ALLOWED' },
    { name: 'disk key not allowed by policy', mutate: (n) => ({ ephemeralKey: n.jwk, want: ['disk-key'], decision: decisionFor({}, { diskKey: false }) }), wantCode: 'DISK_KEY_NOT_ALLOWED' },
    { name: 'unknown want', mutate: (n) => ({ ephemeralKey: n.jwk, want: ['admin'] as never }), wantCode: 'RELEASE_WANT_INVALID' },
    { name: 'node name not DNS-1123', mutate: (n) => ({ ephemeralKey: n.jwk, decision: decisionFor({ nodeName: 'Bad_Name' }) }), wantCode: 'NODE_NAME_INVALID' },
    { name: 'extra group outside system:bootstrappers', mutate: (n) => ({ ephemeralKey: n.jwk, decision: decisionFor({}, { extraGroups: ['system:masters'] }) }), wantCode: 'TOKEN_GROUP_INVALID' },
    {
      name: 'instance id not proven, disk key wanted',
      mutate: (n) => ({ ephemeralKey: n.jwk, want: ['disk-key'], claims: claimsFor('i-x', { identity: { cloud: 'aws', instanceId: 'i-x', proven: [] } }) }),
      wantCode: 'DISK_KEY_IDENTITY_UNPROVEN',
    },
  ];
  it.each(rows)('refuses: $name → $wantCode, and creates nothing', async ({ mutate, wantCode }) => {
    const e = await env();
    const n = await nodeKey();
    const before = srv.secrets.size;
    await expect(
      e.svc.release({ claims: claimsFor('i-neg'), decision: decisionFor(), want: ['bootstrap-token'], nonce: n.nonce, binding: n.binding, requestId: 'r', ...mutate(n) }),
    ).rejects.toMatchObject({ code: wantCode });
    expect(srv.secrets.size).toBe(before);
    expect(e.records).toHaveLength(0);
  });

  it('unsealed release only where policy allows it', async () => {
    const e = await env();
    const rel = (await e.svc.release({ claims: claimsFor('i-unsealed'), decision: decisionFor({}, { allowUnsealed: true }), want: ['bootstrap-token'], requestId: 'r' })) as ReleaseObject;
    expect(rel.bootstrapToken).toMatch(/^[a-z0-9]{6}\./);
  });
});

describe('one issuance per instance per window', () => {
  it('a second request inside the window gets ISSUANCE_CONFLICT (409), another instance does not', async () => {
    const e = await env();
    const n = await nodeKey();
    const req = { claims: claimsFor('i-window'), decision: decisionFor(), want: ['bootstrap-token'] as const, ephemeralKey: n.jwk, nonce: n.nonce, binding: n.binding, requestId: 'r' };
    await e.svc.release({ ...req, want: [...req.want] });
    await expect(e.svc.release({ ...req, want: [...req.want] })).rejects.toMatchObject({ code: 'ISSUANCE_CONFLICT', kind: 'conflict' });
    await e.svc.release({ ...req, want: [...req.want], claims: claimsFor('i-window-2') });
    // after the window (default: the token TTL) a new token may be issued
    e.clock.set(new Date(e.clock.now().getTime() + 601_000));
    await e.svc.release({ ...req, want: [...req.want] });
  });

  it('one live token per instance across clusters, unless the issuing cluster says one-per-cluster', async () => {
    const e = await env({ clusters: { prod: { apiServer: 'https://api.prod:6443' }, stage: { apiServer: 'https://api.stage:6443' }, lab: { apiServer: 'https://api.lab:6443' } } });
    const n = await nodeKey();
    const base = { claims: claimsFor('i-multi'), want: ['bootstrap-token'] as Array<'bootstrap-token'>, ephemeralKey: n.jwk, nonce: n.nonce, binding: n.binding, requestId: 'r' };
    await e.svc.release({ ...base, decision: decisionFor({ cluster: 'stage' }) });
    // A strict cluster refuses a second token for the same instance …
    await expect(e.svc.release({ ...base, decision: decisionFor({ cluster: 'prod' }) })).rejects.toMatchObject({ code: 'ISSUANCE_CONFLICT' });
    // … a cluster whose policy allows one token per cluster issues its own.
    await expect(e.svc.release({ ...base, decision: decisionFor({ cluster: 'lab' }, { tokensPerInstance: 'one-per-cluster' }) })).resolves.toBeTruthy();
    await expect(e.svc.release({ ...base, decision: decisionFor({ cluster: 'lab' }, { tokensPerInstance: 'one-per-cluster' }) })).rejects.toMatchObject({ code: 'ISSUANCE_CONFLICT' });
  });

  it('the window is configurable independently of the token TTL', async () => {
    const e = await env({ issuanceWindowSeconds: 60 });
    const n = await nodeKey();
    const req = { claims: claimsFor('i-window-60'), decision: decisionFor(), want: ['bootstrap-token'] as Array<'bootstrap-token'>, ephemeralKey: n.jwk, nonce: n.nonce, binding: n.binding, requestId: 'r' };
    await e.svc.release(req);
    e.clock.set(new Date(e.clock.now().getTime() + 59_000));
    await expect(e.svc.release(req)).rejects.toMatchObject({ code: 'ISSUANCE_CONFLICT', retryAfter: 1 });
    e.clock.set(new Date(e.clock.now().getTime() + 2_000));
    await e.svc.release(req);
  });

  it('disk-key-only requests are not limited by the window (a node unlocks its disk at every boot)', async () => {
    const e = await env();
    const n = await nodeKey();
    const base = { claims: claimsFor('i-boot'), decision: decisionFor(), ephemeralKey: n.jwk, nonce: n.nonce, binding: n.binding, requestId: 'r' };
    const first = await open((await e.svc.release({ ...base, want: ['disk-key'] })) as string, n.priv);
    const again = await open((await e.svc.release({ ...base, want: ['disk-key'], diskKey: { wrapped: first.diskKey!.wrapped } })) as string, n.priv);
    expect(again.diskKey!.key).toBe(first.diskKey!.key);
  });

  it('a wrapped disk key does not unwrap for another attested instance', async () => {
    const e = await env();
    const n = await nodeKey();
    const base = { decision: decisionFor(), ephemeralKey: n.jwk, nonce: n.nonce, binding: n.binding, requestId: 'r', want: ['disk-key'] as ['disk-key'] };
    const first = await open((await e.svc.release({ ...base, claims: claimsFor('i-owner') })) as string, n.priv);
    await expect(e.svc.release({ ...base, claims: claimsFor('i-thief'), diskKey: { wrapped: first.diskKey!.wrapped } })).rejects.toMatchObject({ code: 'KMS_UNWRAP_FAILED' });
    await expect(
      e.svc.release({ ...base, claims: claimsFor('i-owner', { identity: { cloud: 'aws', account: '999999999999', instanceId: 'i-owner', proven: ['instanceId'] } }), diskKey: { wrapped: first.diskKey!.wrapped } }),
    ).rejects.toMatchObject({ code: 'KMS_UNWRAP_FAILED' });
  });
});

describe('outages release nothing', () => {
  const down: KeyServiceLike = {
    kind: 'local',
    wrap: async () => {
      throw unavailable('KMS_UNAVAILABLE', 'down');
    },
    unwrap: async () => {
      throw unavailable('KMS_UNAVAILABLE', 'down');
    },
  };

  it('KMS outage → 503-class error, no Secret, no audit record, window released for a retry', async () => {
    const e = await env({ keys: down });
    const n = await nodeKey();
    const before = srv.secrets.size;
    const req = { claims: claimsFor('i-kmsdown'), decision: decisionFor(), want: ['bootstrap-token', 'disk-key'] as Array<'bootstrap-token' | 'disk-key'>, ephemeralKey: n.jwk, nonce: n.nonce, binding: n.binding, requestId: 'r' };
    await expect(e.svc.release(req)).rejects.toMatchObject({ code: 'KMS_UNAVAILABLE', kind: 'unavailable' });
    expect(srv.secrets.size).toBe(before);
    expect(e.records).toHaveLength(0);
    // The window claim was released: the token alone can be issued right away.
    await e.svc.release({ ...req, want: ['bootstrap-token'] });
  });

  it('Kubernetes outage → KUBE_UNAVAILABLE, nothing left behind', async () => {
    const e = await env();
    const n = await nodeKey();
    srv.failNext(100, 503);
    try {
      await expect(
        e.svc.release({ claims: claimsFor('i-kubedown'), decision: decisionFor(), want: ['bootstrap-token'], ephemeralKey: n.jwk, nonce: n.nonce, binding: n.binding, requestId: 'r' }),
      ).rejects.toMatchObject({ code: 'KUBE_UNAVAILABLE', kind: 'unavailable' });
    } finally {
      srv.failNext(0, 0);
    }
    expect(e.records).toHaveLength(0);
  });

  it('audit failure → no release and the Secret is deleted again', async () => {
    const e = await env({
      audit: {
        record: async () => {
          throw unavailable('AUDIT_WRITE_FAILED', 'disk full');
        },
      },
    });
    const n = await nodeKey();
    const before = new Set(srv.secrets.keys());
    await expect(
      e.svc.release({ claims: claimsFor('i-auditdown'), decision: decisionFor(), want: ['bootstrap-token'], ephemeralKey: n.jwk, nonce: n.nonce, binding: n.binding, requestId: 'r' }),
    ).rejects.toMatchObject({ code: 'AUDIT_WRITE_FAILED' });
    expect(new Set(srv.secrets.keys())).toEqual(before);
  });
});

describe('audit and logs', () => {
  it('one hash-chained record per release, without secrets; the chain verifies and detects tampering', async () => {
    const e = await env();
    const secrets: string[] = [];
    for (let i = 0; i < 5; i++) {
      const n = await nodeKey();
      const rel = await open(
        (await e.svc.release({ claims: claimsFor(`i-audit-${i}`), decision: decisionFor(), want: ['bootstrap-token', 'disk-key'], ephemeralKey: n.jwk, nonce: n.nonce, binding: n.binding, requestId: `r${i}` })) as string,
        n.priv,
      );
      secrets.push(rel.bootstrapToken!, rel.bootstrapToken!.split('.')[1]!, rel.diskKey!.key, Buffer.from(rel.diskKey!.key, 'base64url').toString('hex'), Buffer.from(rel.diskKey!.key, 'base64url').toString('base64'));
      expect(e.records[i]!.entry.tokenId).toBe(rel.bootstrapToken!.split('.')[0]);
    }
    expect(e.records).toHaveLength(5);
    const r0 = e.records[0]!.entry;
    expect(r0).toMatchObject({ instanceId: 'i-audit-0', evidenceSha256: 'ab'.repeat(32), policyHash: 'cd'.repeat(32), nodeName: decisionFor().nodeName });
    const head = JSON.parse((await e.store.get('audit:head'))!);
    expect(await verifyAuditChain(e.records, { head })).toEqual({ count: 5, head });

    const everything = JSON.stringify(e.records) + '\n' + e.logger.lines.join('\n');
    expect(e.logger.lines.length).toBeGreaterThan(0);
    for (const s of secrets) expect(everything).not.toContain(s);

    const clone = (): typeof e.records => JSON.parse(JSON.stringify(e.records));
    const tamper: Array<{ name: string; mutate: (r: AuditRecord[]) => AuditRecord[]; reason: string }> = [
      { name: 'edit a field', mutate: (r) => ((r[2]!.entry.nodeName = 'evil'), r), reason: 'edited' },
      { name: 'delete a record', mutate: (r) => (r.splice(2, 1), r), reason: 'gap' },
      { name: 'duplicate a record', mutate: (r) => (r.splice(2, 0, r[1]!), r), reason: 'duplicate' },
      {
        name: 'rehash an edited record',
        mutate: (r) => {
          r[2]!.entry.nodeName = 'evil';
          r[2]!.hash = createHash('sha256').update('x').digest('hex');
          return r;
        },
        reason: 'edited',
      },
      { name: 'drop the last record', mutate: (r) => (r.pop(), r), reason: 'truncated' },
    ];
    for (const t of tamper) {
      await expect(verifyAuditChain(t.mutate(clone()), { head }), t.name).rejects.toMatchObject({ code: 'AUDIT_CHAIN_BROKEN', detail: { reason: t.reason } });
    }
  });

  it('refuses to audit an entry carrying a secret field', async () => {
    const clock = fixedClock();
    const a = new HashChainAudit({ store: memoryStore(clock), clock, write: async () => undefined });
    await expect(a.record({ tokenId: 'abc123', nested: { bootstrapToken: 'abc123.0123456789abcdef' } })).rejects.toMatchObject({ code: 'AUDIT_SECRET_FIELD' });
    await expect(a.record({ out: { diskKey: { key: 'AAAA', wrapped: 'BBBB' } } })).rejects.toMatchObject({ code: 'AUDIT_SECRET_FIELD' });
    // The app's deny records carry the Decision, whose release.diskKey is a boolean setting: allowed.
    await expect(a.record({ kind: 'deny', decision: decisionFor() })).resolves.toBeUndefined();
  });
});

describe('configuration faults are not the node\'s fault', () => {
  it('a cluster CA that is not PEM → RELEASE_CLUSTER_CA_INVALID (config), and the window is given back', async () => {
    const e = await env({ clusters: { prod: { apiServer: 'https://api:6443', caPem: 'not a certificate' } } });
    const n = await nodeKey();
    const req = { claims: claimsFor('i-badca'), decision: decisionFor(), want: ['bootstrap-token'] as Array<'bootstrap-token'>, ephemeralKey: n.jwk, nonce: n.nonce, binding: n.binding, requestId: 'r' };
    await expect(e.svc.release(req)).rejects.toMatchObject({ code: 'RELEASE_CLUSTER_CA_INVALID', kind: 'config' });
    await expect(e.svc.release(req)).rejects.toMatchObject({ code: 'RELEASE_CLUSTER_CA_INVALID' });
  });

  it('a decision for a cluster the broker has no target for → RELEASE_CLUSTER_UNKNOWN', async () => {
    const e = await env();
    const n = await nodeKey();
    await expect(
      e.svc.release({ claims: claimsFor('i-x'), decision: decisionFor({ cluster: 'staging' }), want: ['bootstrap-token'], ephemeralKey: n.jwk, nonce: n.nonce, binding: n.binding, requestId: 'r' }),
    ).rejects.toMatchObject({ code: 'RELEASE_CLUSTER_UNKNOWN', kind: 'config' });
  });
});

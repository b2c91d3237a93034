/**
 * End to end over HTTP (`app.request()`), with the memory store and with a real redis-server:
 * a swtpm "node" gets a challenge, quotes with the binding (nonce + ephemeral key thumbprint),
 * posts format `tpm`, is told ACTIVATION_REQUIRED (401) with a sealed credential, answers it
 * with tpm2_activatecredential, attests again with a fresh challenge and gets 200. Replaying a
 * request gets 404 CHALLENGE_UNKNOWN; reusing an activation answer gets 403 ACTIVATION_FAILED.
 * The provider is built by the broker's own factory (`PROVIDER_FACTORIES.tpm`, broker/builtins),
 * so the StateStore-backed activation store is the production one. Policy and release are the
 * HTTP tests' stand-ins (allow-all; release echoes the node name) with claims captured; one run
 * uses the real policy engine with a policy captured from those claims (admits the node under a
 * DNS-1123 node name, denies it once PCR 7 changes).
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeSwtpm, startSwtpm, type Swtpm } from '../helpers/swtpm.js';
import { ROOT_ID, setupTpmNode, type TpmNode } from './node.js';
import { postJson, testBroker } from '../helpers/broker.js';
import { allowAll } from '../helpers/test-provider.js';
import { HAVE_REDIS, startRedis, type RedisServer } from '../helpers/redis.js';
import '../../broker/builtins.js';
import { PROVIDER_FACTORIES } from '../../broker/providers.js';
import { computeBinding } from '../../broker/binding.js';
import { MemoryStore } from '../../broker/store/memory.js';
import { RedisStore } from '../../broker/store/redis.node.js';
import type { ReleaseService, StateStore } from '../../broker/contracts.js';
import type { ProviderClaims } from '../../providers/common/types.js';
import { fromBase64Url, toBase64Url } from '../../providers/common/encoding.js';
import { capturePolicy, createPolicyEngine, isDns1123Subdomain } from '../../broker/policy/index.js';

describeSwtpm('HTTP end to end: swtpm node, format tpm, EK credential activation', () => {
  let tpm: Swtpm;
  let node: TpmNode;
  let redis: RedisServer | undefined;

  beforeAll(async () => {
    tpm = await startSwtpm();
    node = await setupTpmNode(tpm);
    if (HAVE_REDIS) redis = await startRedis();
  }, 60_000);
  afterAll(async () => {
    await tpm?.stop();
    await redis?.stop();
  });

  /** Challenge → quote → 401 ACTIVATION_REQUIRED → tpm2_activatecredential → challenge → quote → final response. */
  async function twoStep(app: ReturnType<typeof testBroker>['app']): Promise<Response> {
    const kp = (await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign'])) as CryptoKeyPair;
    const { kty, crv, x, y } = await crypto.subtle.exportKey('jwk', kp.publicKey);
    const ephemeralKey = { kty: kty!, crv: crv!, x: x!, y: y! };
    const c = async (): Promise<{ challengeId: string; binding: Uint8Array }> => {
      const r = await postJson(app, '/v1/challenge', { provider: 'tpm' });
      const j = (await r.json()) as { challengeId: string; nonce: string };
      return { challengeId: j.challengeId, binding: await computeBinding(fromBase64Url(j.nonce), ephemeralKey) };
    };
    const c1 = await c();
    const r1 = await postJson(app, '/v1/attest', { challengeId: c1.challengeId, provider: 'tpm', format: 'tpm', ephemeralKey, evidence: await node.evidence(1, c1.binding, node.ekEvidence()) });
    expect(r1.status).toBe(401);
    const a = ((await r1.json()) as { activation: { id: string; credential: string } }).activation;
    const secret = await node.activate(1, a.credential);
    const c2 = await c();
    return postJson(app, '/v1/attest', {
      challengeId: c2.challengeId,
      provider: 'tpm',
      format: 'tpm',
      ephemeralKey,
      evidence: await node.evidence(1, c2.binding, { ...node.ekEvidence(), activation: { id: a.id, secret: toBase64Url(secret) } }),
    });
  }

  async function flow(store: StateStore): Promise<void> {
    const claims: ProviderClaims[] = [];
    const release: ReleaseService = {
      async release(req) {
        claims.push(req.claims);
        return { nodeName: req.decision.nodeName, expiresAt: new Date(0).toISOString() };
      },
    };
    const provider = PROVIDER_FACTORIES.tpm!({ ekRoots: [ROOT_ID] }, { store });
    const { app } = testBroker({ store, providers: [provider], trust: node.trust, policy: allowAll, release });

    const kp = (await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign'])) as CryptoKeyPair;
    const { kty, crv, x, y } = await crypto.subtle.exportKey('jwk', kp.publicKey);
    const ephemeralKey = { kty: kty!, crv: crv!, x: x!, y: y! };
    const challenge = async (): Promise<{ challengeId: string; binding: Uint8Array }> => {
      const r = await postJson(app, '/v1/challenge', { provider: 'tpm' });
      expect(r.status).toBe(201);
      const c = (await r.json()) as { challengeId: string; nonce: string };
      return { challengeId: c.challengeId, binding: await computeBinding(fromBase64Url(c.nonce), ephemeralKey) };
    };

    // Step 1: quote + EK certificate → 401 ACTIVATION_REQUIRED with the sealed credential.
    const c1 = await challenge();
    const body1 = { challengeId: c1.challengeId, provider: 'tpm', format: 'tpm', ephemeralKey, evidence: await node.evidence(1, c1.binding, node.ekEvidence()) };
    const r1 = await postJson(app, '/v1/attest', body1);
    expect(r1.status).toBe(401);
    expect(r1.headers.get('content-type')).toContain('application/problem+json');
    const p1 = (await r1.json()) as { code: string; activation: { id: string; credential: string; expiresInSeconds: number } };
    expect(p1.code).toBe('ACTIVATION_REQUIRED');
    expect(p1.activation.expiresInSeconds).toBe(120);
    // The same request again: the challenge was consumed.
    const replay1 = await postJson(app, '/v1/attest', body1);
    expect(replay1.status).toBe(404);
    expect(((await replay1.json()) as { code: string }).code).toBe('CHALLENGE_UNKNOWN');

    // Step 2: the node's TPM opens the credential.
    const secret = await node.activate(1, p1.activation.credential);

    // Step 3: fresh challenge, fresh quote, the answer → 200.
    const c2 = await challenge();
    const activation = { id: p1.activation.id, secret: toBase64Url(secret) };
    const body2 = { challengeId: c2.challengeId, provider: 'tpm', format: 'tpm', ephemeralKey, evidence: await node.evidence(1, c2.binding, { ...node.ekEvidence(), activation }) };
    const r2 = await postJson(app, '/v1/attest', body2);
    expect(r2.status).toBe(200);
    const got = claims[0]!;
    expect(got.tpm?.akTrust).toBe('ek-credential');
    expect(((await r2.json()) as { release: { nodeName: string } }).release.nodeName).toBe(got.identity.instanceId);
    expect(got.release?.ekPublic).toBe(toBase64Url(tpm.read('ek.pub')));
    const replay2 = await postJson(app, '/v1/attest', body2);
    expect(replay2.status).toBe(404);
    expect(((await replay2.json()) as { code: string }).code).toBe('CHALLENGE_UNKNOWN');

    // The activation answer is single use, also with a new challenge and quote.
    const c3 = await challenge();
    const r3 = await postJson(app, '/v1/attest', { challengeId: c3.challengeId, provider: 'tpm', format: 'tpm', ephemeralKey, evidence: await node.evidence(1, c3.binding, { ...node.ekEvidence(), activation }) });
    expect(r3.status).toBe(403);
    expect(((await r3.json()) as { code: string }).code).toBe('ACTIVATION_FAILED');

    // A quote over the bare nonce while an ephemeral key is sent: the binding differs.
    const c4 = await challenge();
    const r4 = await postJson(app, '/v1/attest', { challengeId: c4.challengeId, provider: 'tpm', format: 'tpm', ephemeralKey, evidence: await node.evidence(1, new Uint8Array(32), node.ekEvidence()) });
    expect(r4.status).toBe(403);
    expect(((await r4.json()) as { code: string }).code).toBe('NONCE_MISMATCH');
    expect(claims).toHaveLength(1);
  }

  it('with the memory store', async () => {
    await flow(new MemoryStore());
  });

  it('with the real policy engine: a policy captured from the verified claims admits the node under a valid node name', async () => {
    const store = new MemoryStore();
    const seen: ProviderClaims[] = [];
    const release: ReleaseService = {
      async release(req) {
        seen.push(req.claims);
        return { nodeName: req.decision.nodeName, expiresAt: new Date(0).toISOString() };
      },
    };
    const provider = PROVIDER_FACTORIES.tpm!({ ekRoots: [ROOT_ID] }, { store });
    // Round 1 with allow-all, to get claims to capture a policy from.
    const open = testBroker({ store, providers: [provider], trust: node.trust, policy: allowAll, release });
    expect((await twoStep(open.app)).status).toBe(200);
    const now = new Date();
    const captured = await capturePolicy({ ...seen[0]!, evidenceSha256: '0'.repeat(64) }, { now });
    expect(captured.yaml).toContain('ek-credential');
    // Round 2: the same node through the real policy engine.
    const strict = testBroker({ store, providers: [provider], trust: node.trust, policy: createPolicyEngine(captured.policy, { clock: { now: () => new Date() } }), release });
    const r = await twoStep(strict.app);
    expect(r.status).toBe(200);
    const name = ((await r.json()) as { release: { nodeName: string } }).release.nodeName;
    expect(isDns1123Subdomain(name)).toBe(true);
    expect(name).toContain(seen[1]!.identity.instanceId);
    expect(seen[1]!.tpm?.akSha256).toBe(seen[0]!.tpm?.akSha256);
    // A changed PCR breaks the captured image pin: the real engine denies.
    await tpm.tpm2('tpm2_pcrextend', ['7:sha256=' + '11'.repeat(32)]);
    const denied = await twoStep(strict.app);
    expect(denied.status).toBe(403);
    expect(((await denied.json()) as { code: string }).code).toMatch(/^POLICY_/);
    expect(seen).toHaveLength(2);
  });

  it('with redis-server', async () => {
    const store = new RedisStore({ url: redis!.url });
    try {
      await flow(store);
    } finally {
      await store.close();
    }
  });
});

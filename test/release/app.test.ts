/**
 * Release behind the broker's HTTP app (createBroker, app.request): challenge → attest → release
 * (webhook mode, local KMS, hash-chained audit), and the second attest for the same instance
 * inside the window is a 409 problem with code ISSUANCE_CONFLICT.
 */
import { describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { postJson, testBroker } from '../helpers/broker.js';
import { allowAll, bindingEchoProvider, TEST_FORMAT } from '../helpers/test-provider.js';
import { BrokerReleaseService } from '../../broker/release/service.js';
import { HashChainAudit, verifyAuditChain, type AuditRecord } from '../../broker/release/audit.js';
import { LocalKeyService } from '../../providers/local/kms.js';
import { MemoryStore } from '../../broker/store/memory.js';
import { systemClock, type ReleaseObject } from '../../broker/contracts.js';
import { makeTestPki } from '../servers/tls.js';
import { captureLogger, claimsFor, decisionFor, fixedClock } from './helpers.js';

describe('release behind the HTTP app', () => {
  it('challenge → attest → unsealed release (policy allows it); a second attest in the window → 409 ISSUANCE_CONFLICT', async () => {
    const store = new MemoryStore();
    const records: AuditRecord[] = [];
    const audit = new HashChainAudit({ store, clock: systemClock, write: async (r) => void records.push(r) });
    const release = new BrokerReleaseService({
      store,
      clock: systemClock,
      logger: captureLogger(),
      audit,
      keys: await LocalKeyService.create({ kek: randomBytes(32) }),
      clusters: { default: { apiServer: 'https://api:6443', caPem: makeTestPki().caPem } },
    });
    const { app } = testBroker({ store, providers: [bindingEchoProvider], policy: allowAll, release, audit });
    const attest = async () => {
      const ch = (await (await postJson(app, '/v1/challenge', { provider: 'tpm' })).json()) as { challengeId: string; nonce: string };
      const binding = Buffer.from(ch.nonce, 'base64url').toString('hex');
      return postJson(app, '/v1/attest', { challengeId: ch.challengeId, provider: 'tpm', format: TEST_FORMAT, evidence: { binding }, want: ['bootstrap-token'] });
    };
    const r1 = await attest();
    expect(r1.status).toBe(200);
    const rel = ((await r1.json()) as { release: ReleaseObject }).release;
    expect(rel.bootstrapToken).toMatch(/^[a-z0-9]{6}\.[a-z0-9]{16}$/);
    expect(rel.kubeconfig).toContain('server: https://api:6443');
    const r2 = await attest();
    expect(r2.status).toBe(409);
    expect(((await r2.json()) as { code: string }).code).toBe('ISSUANCE_CONFLICT');
    expect(r2.headers.get('retry-after')).toBe('600');
    await expect(verifyAuditChain(records)).resolves.toMatchObject({ count: 1 });
  });

  it('ISSUANCE_CONFLICT says when the window really closes, not its full length', async () => {
    const clock = fixedClock('2026-12-01T10:00:00Z');
    const store = new MemoryStore({ clock });
    const svc = new BrokerReleaseService({ store, clock, logger: captureLogger(), audit: { record: async () => undefined }, clusters: { prod: { apiServer: 'https://api:6443' } } });
    const go = () => svc.release({ claims: claimsFor('i-window'), decision: decisionFor({}, { allowUnsealed: true }), want: ['bootstrap-token'], requestId: 'r' });
    await go();
    clock.set(new Date('2026-12-01T10:04:10Z')); // 250 s into the 600 s window
    await expect(go()).rejects.toMatchObject({ code: 'ISSUANCE_CONFLICT', retryAfter: 350 });
    clock.set(new Date('2026-12-01T10:10:01Z'));
    await expect(go()).resolves.toBeTruthy();
  });

  it('sealed release through the app: a JWE that opens only with the node key and echoes the challenge nonce', async () => {
    const { compactDecrypt, calculateJwkThumbprint } = await import('jose');
    const { createHash } = await import('node:crypto');
    const store = new MemoryStore();
    const release = new BrokerReleaseService({
      store,
      clock: systemClock,
      logger: captureLogger(),
      audit: new HashChainAudit({ store, clock: systemClock, write: async () => {} }),
      keys: await LocalKeyService.create({ kek: randomBytes(32) }),
      clusters: { default: { apiServer: 'https://api:6443', caPem: makeTestPki().caPem } },
    });
    const sealedOnly = { ...allowAll, evaluate: async (c: Parameters<typeof allowAll.evaluate>[0]) => ({ ...(await allowAll.evaluate(c)), release: { tokenTtlSeconds: 600, extraGroups: [], allowUnsealed: false, diskKey: false } }) };
    const { app } = testBroker({ store, providers: [bindingEchoProvider], policy: sealedOnly, release });
    const kp = (await crypto.subtle.generateKey({ name: 'ECDH', namedCurve: 'P-256' }, true, ['deriveBits'])) as CryptoKeyPair;
    const jwk = await crypto.subtle.exportKey('jwk', kp.publicKey);
    const ephemeralKey = { kty: 'EC', crv: 'P-256', x: jwk.x!, y: jwk.y! };
    const ch = (await (await postJson(app, '/v1/challenge', {})).json()) as { challengeId: string; nonce: string };
    const thumb = Buffer.from(await calculateJwkThumbprint(ephemeralKey, 'sha256'), 'base64url');
    const binding = createHash('sha256').update(Buffer.concat([Buffer.from(ch.nonce, 'base64url'), thumb])).digest('hex');
    const r = await postJson(app, '/v1/attest', { challengeId: ch.challengeId, provider: 'tpm', format: TEST_FORMAT, evidence: { binding }, ephemeralKey });
    expect(r.status).toBe(200);
    const jwe = ((await r.json()) as { release: string }).release;
    expect(typeof jwe).toBe('string');
    const opened = JSON.parse(new TextDecoder().decode((await compactDecrypt(jwe, kp.privateKey)).plaintext)) as ReleaseObject;
    expect(opened.bootstrapToken).toMatch(/^[a-z0-9]{6}\.[a-z0-9]{16}$/);
    expect(opened.nonce).toBe(ch.nonce);
    const other = (await crypto.subtle.generateKey({ name: 'ECDH', namedCurve: 'P-256' }, true, ['deriveBits'])) as CryptoKeyPair;
    await expect(compactDecrypt(jwe, other.privateKey)).rejects.toThrow();
  });
});

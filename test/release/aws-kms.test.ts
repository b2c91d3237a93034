/**
 * providers/aws/kms.ts through the REAL @aws-sdk/client-kms, pointed at the local AWS JSON 1.1
 * server (test/servers/aws-kms.ts; SigV4 verified there with the test secret key).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KMSClient } from '@aws-sdk/client-kms';
import { encode } from 'cborg';
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AwsKmsKeyService } from '../../providers/aws/kms.js';
import { startAwsKmsServer, type AwsKmsTestServer } from '../servers/aws-kms.js';
import { BrokerReleaseService } from '../../broker/release/service.js';
import { HashChainAudit } from '../../broker/release/audit.js';
import type { ReleaseObject } from '../../broker/contracts.js';
import { captureLogger, claimsFor, decisionFor, fixedClock, memoryStore } from './helpers.js';

let srv: AwsKmsTestServer;
const ctx = { 'attest-broker:purpose': 'disk-key', 'attest-broker:instance': 'i-0abc', 'attest-broker:account': '123456789012' };

function client(o: { secret?: string; url?: string } = {}): KMSClient {
  return new KMSClient({
    region: srv.region,
    endpoint: o.url ?? srv.url,
    credentials: { accessKeyId: srv.accessKeyId, secretAccessKey: o.secret ?? srv.secretAccessKey },
    maxAttempts: 2,
  });
}

beforeAll(async () => {
  srv = await startAwsKmsServer();
});
afterAll(async () => {
  await srv?.close();
});

describe('AWS KMS adapter (real SDK, local JSON 1.1 server)', () => {
  it('round-trips a 256-bit key under its EncryptionContext', async () => {
    const kms = new AwsKmsKeyService({ keyId: srv.keyArn, client: client() });
    const key = randomBytes(32);
    const wrapped = await kms.wrap(key, ctx);
    expect(Buffer.from(wrapped).includes(key)).toBe(false);
    expect(Buffer.from(await kms.unwrap(wrapped, ctx))).toEqual(key);
    const enc = srv.calls.find((c) => c.op === 'Encrypt')!;
    expect(enc.body.EncryptionContext).toEqual(ctx);
    expect(enc.body.KeyId).toBe(srv.keyArn);
  });

  it.each([
    { name: 'other instance', mutate: (c: Record<string, string>) => ({ ...c, 'attest-broker:instance': 'i-0def' }) },
    { name: 'entry removed', mutate: (c: Record<string, string>) => ({ 'attest-broker:purpose': c['attest-broker:purpose']!, 'attest-broker:instance': c['attest-broker:instance']! }) },
    { name: 'entry added', mutate: (c: Record<string, string>) => ({ ...c, extra: 'x' }) },
  ])('a wrong encryption context fails: $name → KMS_UNWRAP_FAILED', async ({ mutate }) => {
    const kms = new AwsKmsKeyService({ keyId: srv.keyArn, client: client() });
    const wrapped = await kms.wrap(randomBytes(32), ctx);
    await expect(kms.unwrap(wrapped, mutate(ctx))).rejects.toMatchObject({ code: 'KMS_UNWRAP_FAILED', kind: 'rejected' });
  });

  it('a tampered blob fails', async () => {
    const kms = new AwsKmsKeyService({ keyId: srv.keyArn, client: client() });
    const wrapped = await kms.wrap(randomBytes(32), ctx);
    wrapped[wrapped.length - 3]! ^= 1;
    await expect(kms.unwrap(wrapped, ctx)).rejects.toMatchObject({ code: 'KMS_UNWRAP_FAILED' });
  });

  it('a wrong SigV4 secret or unknown key is the broker\'s misconfiguration (KMS_DENIED)', async () => {
    await expect(new AwsKmsKeyService({ keyId: srv.keyArn, client: client({ secret: 'wrong' }) }).wrap(randomBytes(32), ctx)).rejects.toMatchObject({ code: 'KMS_DENIED', kind: 'config' });
    await expect(new AwsKmsKeyService({ keyId: srv.keyArn + 'x', client: client() }).wrap(randomBytes(32), ctx)).rejects.toMatchObject({ code: 'KMS_DENIED' });
  });

  it.each(['internal-error', 'throttle'] as const)('outage (%s) → KMS_UNAVAILABLE (503-class)', async (mode) => {
    srv.mode = mode;
    try {
      await expect(new AwsKmsKeyService({ keyId: srv.keyArn, client: client() }).wrap(randomBytes(32), ctx)).rejects.toMatchObject({ code: 'KMS_UNAVAILABLE', kind: 'unavailable' });
    } finally {
      srv.mode = 'up';
    }
  });

  it('unreachable endpoint → KMS_UNAVAILABLE, and the release service releases nothing', async () => {
    const dead = new AwsKmsKeyService({ keyId: srv.keyArn, client: client({ url: 'http://127.0.0.1:1' }) });
    await expect(dead.wrap(randomBytes(32), ctx)).rejects.toMatchObject({ code: 'KMS_UNAVAILABLE', kind: 'unavailable' });
    const clock = fixedClock();
    const store = memoryStore(clock);
    const records: unknown[] = [];
    const svc = new BrokerReleaseService({
      store,
      clock,
      logger: captureLogger(),
      audit: new HashChainAudit({ store, clock, write: async (r) => void records.push(r) }),
      keys: dead,
      clusters: { prod: { apiServer: 'https://api:6443', caPem: '' } },
    });
    await expect(svc.release({ claims: claimsFor(), decision: decisionFor({}, { allowUnsealed: true }), want: ['bootstrap-token', 'disk-key'], requestId: 'r' })).rejects.toMatchObject({
      kind: 'unavailable',
    });
    expect(records).toHaveLength(0);
  });
});

describe('NitroTPM Recipient: KMS encrypts to the attested TPM key, the broker never sees it', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ab-nitro-'));
  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  writeFileSync(join(dir, 'node.key'), privateKey.export({ type: 'pkcs8', format: 'pem' }));
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  // A NitroTPM attestation document's shape: COSE_Sign1 [protected, unprotected, payload, sig]
  // with a CBOR payload carrying `public_key` (the KMS side verifies it; the test server does not).
  const doc = encode([encode(new Map([[1, -35]])), new Map(), encode(new Map<string, unknown>([['module_id', 'i-0abc'], ['public_key', new Uint8Array(spki)], ['nonce', new Uint8Array(32)]])), new Uint8Array(96)]);
  const openCms = (der: Uint8Array): Buffer => {
    writeFileSync(join(dir, 'c.der'), der);
    return execFileSync('openssl', ['cms', '-decrypt', '-inform', 'DER', '-in', join(dir, 'c.der'), '-inkey', join(dir, 'node.key'), '-binary']);
  };

  it('GenerateDataKey/Decrypt with Recipient give CiphertextForRecipient that only the node key opens', async () => {
    const kms = new AwsKmsKeyService({ keyId: srv.keyArn, client: client() });
    const r = await kms.generateForRecipient(ctx, doc);
    const key = openCms(r.ciphertextForRecipient);
    expect(key.length).toBe(32);
    const again = openCms(await kms.unwrapForRecipient(r.wrapped, ctx, doc));
    expect(again).toEqual(key);
    await expect(kms.unwrapForRecipient(r.wrapped, { ...ctx, 'attest-broker:instance': 'i-other' }, doc)).rejects.toMatchObject({ code: 'KMS_UNWRAP_FAILED' });
    const gdk = srv.calls.filter((c) => c.op === 'GenerateDataKey').pop()!;
    expect(gdk.body.Recipient).toMatchObject({ KeyEncryptionAlgorithm: 'RSAES_OAEP_SHA_256' });
  });

  it('the release service uses Recipient for NitroTPM evidence and returns no plaintext key', async () => {
    const clock = fixedClock();
    const store = memoryStore(clock);
    const svc = new BrokerReleaseService({
      store,
      clock,
      logger: captureLogger(),
      audit: new HashChainAudit({ store, clock, write: async () => undefined }),
      keys: new AwsKmsKeyService({ keyId: srv.keyArn, client: client() }),
      clusters: { prod: { apiServer: 'https://api:6443', caPem: '' } },
    });
    const claims = claimsFor('i-0abc', { release: { nitroDocument: Buffer.from(doc).toString('base64url'), platformKeySpki: spki.toString('base64url') } });
    const rel = (await svc.release({ claims, decision: decisionFor({}, { allowUnsealed: true }), want: ['disk-key'], requestId: 'r' })) as ReleaseObject;
    expect(rel.diskKey).toBeUndefined();
    const key = openCms(Buffer.from(rel.diskKeyForRecipient!.ciphertextForRecipient, 'base64url'));
    expect(key.length).toBe(32);
    const rel2 = (await svc.release({ claims, decision: decisionFor({}, { allowUnsealed: true }), want: ['disk-key'], diskKey: { wrapped: rel.diskKeyForRecipient!.wrapped }, requestId: 'r2' })) as ReleaseObject;
    expect(openCms(Buffer.from(rel2.diskKeyForRecipient!.ciphertextForRecipient, 'base64url'))).toEqual(key);
  });
});

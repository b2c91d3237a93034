/**
 * providers/azure/keyvault.ts with the REAL @azure/identity ClientSecretCredential (authorityHost
 * pointed at the local Entra ID endpoint, TLS with an openssl-made CA) and Key Vault REST.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClientSecretCredential } from '@azure/identity';
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { AttestError } from '../../providers/common/errors.js';
import { AzureKeyVaultKeyService, clientSecretTokenSource } from '../../providers/azure/keyvault.js';
import { caFetch } from '../../broker/release/kube.node.js';
import { makeTestPki, type TestPki } from '../servers/tls.js';
import { startAzureServer, type AzureTestServer } from '../servers/azure.js';

let pki: TestPki;
let srv: AzureTestServer;
const ctx = { 'attest-broker:purpose': 'disk-key', 'attest-broker:instance': 'a1b2c3d4-0000-4000-8000-000000000001', 'attest-broker:account': 'sub-1' };

function credential(secret?: string): ClientSecretCredential {
  return new ClientSecretCredential(srv.tenantId, srv.clientId, secret ?? srv.clientSecret, {
    authorityHost: srv.base,
    disableInstanceDiscovery: true,
    // Trust the test CA for this pipeline only (production uses the public Entra ID endpoint).
    additionalPolicies: [
      {
        position: 'perCall',
        policy: {
          name: 'test-ca',
          sendRequest: (req, next) => {
            req.tlsSettings = { ca: pki.caPem };
            return next(req);
          },
        },
      },
    ],
  });
}

function kv(o: { secret?: string; version?: string } = {}): AzureKeyVaultKeyService {
  return new AzureKeyVaultKeyService({
    vaultUrl: srv.base,
    keyName: srv.keyName,
    keyVersion: o.version ?? srv.keyVersion,
    credential: credential(o.secret),
    fetch: caFetch({ ca: pki.caPem }),
  });
}

beforeAll(async () => {
  pki = makeTestPki();
  srv = await startAzureServer(pki);
});
afterAll(async () => {
  await srv?.close();
});

describe('Azure Key Vault adapter (real @azure/identity, local Entra ID + Key Vault over TLS)', () => {
  it('round-trips a key: RSA-OAEP-256 wrapKey of a CEK plus an AES-GCM layer binding the identity', async () => {
    const k = kv();
    const key = randomBytes(32);
    const wrapped = await k.wrap(key, ctx);
    expect(Buffer.from(wrapped).subarray(0, 4).toString()).toBe('ABKV');
    expect(Buffer.from(await k.unwrap(wrapped, ctx))).toEqual(key);
    expect(srv.calls.some((c) => c.path.endsWith('/oauth2/v2.0/token') && c.status === 200)).toBe(true);
  });

  it('a wrong identity context fails the AES-GCM layer (KMS_UNWRAP_FAILED)', async () => {
    const k = kv();
    const wrapped = await k.wrap(randomBytes(32), ctx);
    await expect(k.unwrap(wrapped, { ...ctx, 'attest-broker:instance': 'other' })).rejects.toMatchObject({ code: 'KMS_UNWRAP_FAILED', kind: 'rejected' });
  });

  it('every header byte is authenticated; truncation and trailing bytes are malformed', async () => {
    const k = kv();
    const wrapped = await k.wrap(randomBytes(32), ctx);
    for (const i of [4, 8, wrapped.length - 40, wrapped.length - 1]) {
      const t = new Uint8Array(wrapped);
      t[i]! ^= 0x01;
      await expect(k.unwrap(t, ctx)).rejects.toMatchObject({ code: expect.stringMatching(/^KMS_(UNWRAP_FAILED|WRAPPED_MALFORMED)$/) });
    }
    await expect(k.unwrap(wrapped.subarray(0, 20), ctx)).rejects.toMatchObject({ code: 'KMS_WRAPPED_MALFORMED' });
  });

  it('truncation sweep: every prefix of an envelope is refused with a typed code', async () => {
    const k = kv();
    const wrapped = await k.wrap(randomBytes(32), ctx);
    for (let n = 0; n < wrapped.length; n++) {
      await expect(k.unwrap(wrapped.subarray(0, n), ctx)).rejects.toMatchObject({ code: expect.stringMatching(/^KMS_(WRAPPED_MALFORMED|UNWRAP_FAILED)$/) });
    }
  });

  it('fuzz: arbitrary envelopes (with a valid magic) never unwrap and only throw AttestErrors, without calling out', async () => {
    const k = kv();
    const before = srv.calls.length;
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 200 }), async (tail) => {
        const b = Buffer.concat([Buffer.from('ABKV'), Buffer.of(1), tail]);
        await expect(k.unwrap(b, ctx)).rejects.toBeInstanceOf(AttestError);
      }),
      { numRuns: 10_000 },
    );
    expect(srv.calls.length).toBe(before); // no forged kid ever named our vault
  });

  it('an envelope naming another vault is refused before any call (the token never leaves for it)', async () => {
    const k = kv();
    const wrapped = Buffer.from(await k.wrap(randomBytes(32), ctx));
    const kidLen = wrapped.readUInt16BE(5);
    const kid = wrapped.subarray(7, 7 + kidLen).toString();
    const evil = kid.replace(srv.base, 'https://evil.example');
    const forged = Buffer.concat([wrapped.subarray(0, 5), Buffer.from([0, Buffer.byteLength(evil)]), Buffer.from(evil), wrapped.subarray(7 + kidLen)]);
    const before = srv.calls.length;
    await expect(k.unwrap(forged, ctx)).rejects.toMatchObject({ code: 'KMS_UNWRAP_FAILED' });
    expect(srv.calls.length).toBe(before);
  });

  it('outage (503) → KMS_UNAVAILABLE; 403 → KMS_DENIED; bad client secret → KMS_DENIED', async () => {
    srv.mode = 'unavailable';
    try {
      await expect(kv().wrap(randomBytes(32), ctx)).rejects.toMatchObject({ code: 'KMS_UNAVAILABLE', kind: 'unavailable' });
    } finally {
      srv.mode = 'up';
    }
    srv.mode = 'forbidden';
    try {
      await expect(kv().wrap(randomBytes(32), ctx)).rejects.toMatchObject({ code: 'KMS_DENIED', kind: 'config' });
    } finally {
      srv.mode = 'up';
    }
    await expect(kv({ secret: 'wrong' }).wrap(randomBytes(32), ctx)).rejects.toMatchObject({ code: 'KMS_DENIED' });
  });

  it('refuses a non-https vault URL or a bad key version', () => {
    expect(() => new AzureKeyVaultKeyService({ vaultUrl: 'http://v.vault.azure.net', keyName: 'k', keyVersion: 'v1', credential: credential() })).toThrowError(
      expect.objectContaining({ code: 'KMS_CONFIG_INVALID' }),
    );
    expect(() => new AzureKeyVaultKeyService({ vaultUrl: 'https://v.vault.azure.net', keyName: 'k', keyVersion: '../x', credential: credential() })).toThrowError(
      expect.objectContaining({ code: 'KMS_CONFIG_INVALID' }),
    );
  });
});

describe('Key Vault on Workers: client-credentials token source over fetch', () => {
  it('gets, caches and shares a token; the vault accepts it; a wrong secret is KMS_DENIED', async () => {
    let t = Date.parse('2026-11-27T18:00:00Z');
    const f = caFetch({ ca: pki.caPem });
    const source = clientSecretTokenSource({ tenantId: srv.tenantId, clientId: srv.clientId, clientSecret: srv.clientSecret, authorityHost: srv.base, fetch: f, now: () => new Date(t) });
    const k = new AzureKeyVaultKeyService({ vaultUrl: srv.base, keyName: srv.keyName, keyVersion: srv.keyVersion, credential: source, fetch: f });
    const tokenCalls = () => srv.calls.filter((c) => c.path.endsWith('/oauth2/v2.0/token')).length;
    const before = tokenCalls();
    const key = randomBytes(32);
    const wrapped = await Promise.all(Array.from({ length: 8 }, () => k.wrap(key, ctx)));
    expect(tokenCalls() - before).toBe(1);
    expect(Buffer.from(await k.unwrap(wrapped[3]!, ctx))).toEqual(key);
    t += 3600_000;
    await k.wrap(key, ctx);
    expect(tokenCalls() - before).toBe(2);
    const bad = clientSecretTokenSource({ tenantId: srv.tenantId, clientId: srv.clientId, clientSecret: 'nope', authorityHost: srv.base, fetch: f, now: () => new Date(t) });
    await expect(new AzureKeyVaultKeyService({ vaultUrl: srv.base, keyName: srv.keyName, keyVersion: srv.keyVersion, credential: bad, fetch: f }).wrap(key, ctx)).rejects.toMatchObject({
      code: 'KMS_DENIED',
    });
  });
});

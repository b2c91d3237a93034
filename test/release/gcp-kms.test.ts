/**
 * providers/gcp/kms.ts with both transports — the REAL @google-cloud/kms client (REST fallback,
 * as on Node) and plain fetch (as on Workers) — against the local Cloud KMS REST server.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KeyManagementServiceClient } from '@google-cloud/kms';
import { randomBytes } from 'node:crypto';
import { GcpKmsKeyService, cloudKmsRest, crc32c, serviceAccountTokenSource, type CloudKmsTransport } from '../../providers/gcp/kms.js';
import { generateKeyPairSync } from 'node:crypto';
import { cloudKmsSdk } from '../../broker/release/kms-sdk.node.js';
import { startGcpKmsServer, crc32cBitwise, type GcpKmsTestServer } from '../servers/gcp-kms.js';
import fc from 'fast-check';

let srv: GcpKmsTestServer;
const ctx = { 'attest-broker:purpose': 'disk-key', 'attest-broker:instance': '1234567890123456789', 'attest-broker:account': 'attest-test' };

/** An auth client for gax's REST fallback: it only needs `fetch` that adds the bearer token. */
function authClient(token: () => string) {
  return {
    universeDomain: 'googleapis.com',
    getRequestHeaders: async () => new Headers({ authorization: `Bearer ${token()}` }),
    fetch: (url: string, init: RequestInit & { headers?: HeadersInit }) => {
      const h = new Headers(init.headers);
      h.set('authorization', `Bearer ${token()}`);
      return fetch(url, { method: init.method, headers: h, body: init.body, signal: init.signal });
    },
  };
}

function sdkTransport(token?: string): CloudKmsTransport {
  const client = new KeyManagementServiceClient({
    fallback: true,
    apiEndpoint: srv.host,
    port: srv.port,
    protocol: 'http',
    authClient: authClient(() => token ?? srv.accessToken) as never,
  } as never);
  return cloudKmsSdk(client, { maxRetries: 0, timeout: 5000 });
}
const restTransport = (token?: string): CloudKmsTransport => cloudKmsRest({ endpoint: srv.url, accessToken: async () => token ?? srv.accessToken });

beforeAll(async () => {
  srv = await startGcpKmsServer();
});
afterAll(async () => {
  await srv?.close();
});

describe('CRC32C', () => {
  it('matches the RFC 3720 check value and an independent bitwise implementation', () => {
    expect(crc32c(new TextEncoder().encode('123456789'))).toBe(0xe3069283);
    fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), (b) => crc32c(b) === crc32cBitwise(b)), { numRuns: 2000 });
  });
});

describe.each([
  ['@google-cloud/kms (REST fallback)', sdkTransport],
  ['fetch (Workers)', restTransport],
])('Cloud KMS adapter via %s', (_name, transport) => {
  it('round-trips a key with the identity as additionalAuthenticatedData and CRC32C verified both ways', async () => {
    const kms = new GcpKmsKeyService({ keyName: srv.keyName, transport: transport() });
    const key = randomBytes(32);
    const wrapped = await kms.wrap(key, ctx);
    expect(Buffer.from(await kms.unwrap(wrapped, ctx))).toEqual(key);
    const call = srv.calls.filter((c) => c.path.endsWith(':encrypt')).pop()!;
    expect(Buffer.from(String(call.body.additionalAuthenticatedData), 'base64').toString()).toContain('"attest-broker:instance":"1234567890123456789"');
    expect(call.body.plaintextCrc32c).toBeDefined();
  });

  it('a wrong context (AAD) fails with KMS_UNWRAP_FAILED', async () => {
    const kms = new GcpKmsKeyService({ keyName: srv.keyName, transport: transport() });
    const wrapped = await kms.wrap(randomBytes(32), ctx);
    await expect(kms.unwrap(wrapped, { ...ctx, 'attest-broker:instance': '999' })).rejects.toMatchObject({ code: 'KMS_UNWRAP_FAILED', kind: 'rejected' });
  });

  it('outage (503 UNAVAILABLE) → KMS_UNAVAILABLE', async () => {
    srv.mode = 'unavailable';
    try {
      await expect(new GcpKmsKeyService({ keyName: srv.keyName, transport: transport() }).wrap(randomBytes(32), ctx)).rejects.toMatchObject({ code: 'KMS_UNAVAILABLE', kind: 'unavailable' });
    } finally {
      srv.mode = 'up';
    }
  });

  it('a response corrupted in transit (CRC32C mismatch) is refused', async () => {
    srv.mode = 'corrupt-response';
    try {
      await expect(new GcpKmsKeyService({ keyName: srv.keyName, transport: transport() }).wrap(randomBytes(32), ctx)).rejects.toMatchObject({ code: 'KMS_BAD_RESPONSE' });
    } finally {
      srv.mode = 'up';
    }
  });

  it('a wrong access token is the broker\'s misconfiguration (KMS_DENIED)', async () => {
    await expect(new GcpKmsKeyService({ keyName: srv.keyName, transport: transport('ya29.stale') }).wrap(randomBytes(32), ctx)).rejects.toMatchObject({ code: 'KMS_DENIED', kind: 'config' });
  });
});

describe('Cloud KMS adapter configuration', () => {
  it('refuses a key name that is not a CryptoKey path', () => {
    expect(() => new GcpKmsKeyService({ keyName: 'projects/p/locations/l/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1', transport: restTransport() })).toThrowError(
      expect.objectContaining({ code: 'KMS_CONFIG_INVALID' }),
    );
  });

  it('unreachable endpoint → KMS_UNAVAILABLE', async () => {
    const kms = new GcpKmsKeyService({ keyName: srv.keyName, transport: cloudKmsRest({ endpoint: 'http://127.0.0.1:1', accessToken: async () => 't' }) });
    await expect(kms.wrap(randomBytes(32), ctx)).rejects.toMatchObject({ code: 'KMS_UNAVAILABLE' });
  });
});

describe('service-account tokens for the REST transport (Workers: no metadata server)', () => {
  it('gets a token with the JWT-bearer grant, caches it, single-flights refreshes, and the KMS accepts it', async () => {
    let t = Date.parse('2026-11-27T18:00:00Z');
    const now = () => new Date(t);
    srv.now = now; // the token endpoint checks iat/exp on the same clock
    const before = srv.tokenRequests;
    const token = serviceAccountTokenSource({ ...srv.serviceAccount, tokenUri: `${srv.url}/token`, now });
    const kms = new GcpKmsKeyService({ keyName: srv.keyName, transport: cloudKmsRest({ endpoint: srv.url, accessToken: token }) });
    const key = randomBytes(32);
    const results = await Promise.all(Array.from({ length: 10 }, () => kms.wrap(key, ctx)));
    expect(srv.tokenRequests - before).toBe(1);
    expect(Buffer.from(await kms.unwrap(results[0]!, ctx))).toEqual(key);
    t += 3600_000; // past expiry − 5 min: refreshed
    await kms.wrap(key, ctx);
    expect(srv.tokenRequests - before).toBe(2);
    srv.now = () => new Date();
  });

  it('a key the token endpoint does not know → KMS_DENIED', async () => {
    const other = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    const token = serviceAccountTokenSource({ clientEmail: srv.serviceAccount.clientEmail, privateKeyPem: other, tokenUri: `${srv.url}/token`, now: () => new Date() });
    await expect(token()).rejects.toMatchObject({ code: 'KMS_DENIED', kind: 'config' });
  });
});

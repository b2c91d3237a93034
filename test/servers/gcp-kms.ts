/**
 * A local Cloud KMS REST endpoint with real crypto, for the official @google-cloud/kms client
 * (REST fallback) and the fetch transport of providers/gcp/kms.ts.
 *
 * References followed:
 * - REST v1 `cryptoKeys.encrypt` / `.decrypt` request and response bodies:
 *   https://cloud.google.com/kms/docs/reference/rest/v1/projects.locations.keyRings.cryptoKeys/encrypt
 *   and …/decrypt (bytes base64; int64 CRC32C fields as decimal strings; verified… booleans);
 * - error model (`{"error": {"code", "message", "status"}}`, INVALID_ARGUMENT for a ciphertext
 *   or AAD that does not decrypt, UNAVAILABLE 503): https://cloud.google.com/apis/design/errors;
 * - data integrity: https://cloud.google.com/kms/docs/data-integrity-guidelines.
 *
 * - OAuth 2.0 JWT-bearer grant for service accounts, `POST /token`
 *   (https://developers.google.com/identity/protocols/oauth2/service-account#httprest): the RS256
 *   assertion is verified with the service account's public key (iss, aud, scope, exp − iat ≤ 3600)
 *   and answered with `{access_token, expires_in, token_type}`; the issued token is then accepted.
 *
 * Crypto: AES-256-GCM per CryptoKey, AAD = the request's additionalAuthenticatedData. CRC32C is
 * computed here bit by bit (an implementation independent of the adapter's table-driven one).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createCipheriv, createDecipheriv, generateKeyPairSync, randomBytes } from 'node:crypto';
import { jwtVerify } from 'jose';

export function crc32cBitwise(buf: Uint8Array): number {
  let crc = 0xffffffff;
  for (const byte of buf) {
    crc ^= byte;
    for (let k = 0; k < 8; k++) crc = (crc >>> 1) ^ (0x82f63b78 & -(crc & 1));
  }
  return (crc ^ 0xffffffff) >>> 0;
}

export interface GcpKmsTestServer {
  url: string;
  host: string;
  port: number;
  keyName: string;
  accessToken: string;
  mode: 'up' | 'unavailable' | 'corrupt-response';
  /** Service account whose key the /token endpoint accepts. */
  serviceAccount: { clientEmail: string; privateKeyPem: string };
  tokenRequests: number;
  /** The token endpoint's clock (tests move it along with the client's). */
  now: () => Date;
  calls: Array<{ path: string; status: number; body: Record<string, unknown> }>;
  close(): Promise<void>;
}

export async function startGcpKmsServer(): Promise<GcpKmsTestServer> {
  const keyName = 'projects/attest-test/locations/europe-west1/keyRings/brokers/cryptoKeys/disk-keys';
  const key = randomBytes(32);
  const sa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const issued = new Set<string>();
  const self: Partial<GcpKmsTestServer> = {
    keyName,
    accessToken: 'ya29.test-' + randomBytes(12).toString('hex'),
    mode: 'up',
    calls: [],
    tokenRequests: 0,
    now: () => new Date(),
    serviceAccount: { clientEmail: 'broker@attest-test.iam.gserviceaccount.com', privateKeyPem: sa.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() },
  };

  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const u = new URL(req.url ?? '/', 'http://x');
      let body: Record<string, unknown> = {};
      const reply = (status: number, obj: unknown): void => {
        self.calls!.push({ path: u.pathname, status, body });
        res.writeHead(status, { 'content-type': 'application/json; charset=UTF-8' });
        res.end(JSON.stringify(obj));
      };
      const err = (code: number, status: string, message: string): void => reply(code, { error: { code, message, status } });
      if (req.method === 'POST' && u.pathname === '/token') {
        self.tokenRequests!++;
        const f = new URLSearchParams(Buffer.concat(chunks).toString());
        if (f.get('grant_type') !== 'urn:ietf:params:oauth:grant-type:jwt-bearer') return reply(400, { error: 'unsupported_grant_type' });
        void jwtVerify(f.get('assertion') ?? '', sa.publicKey, { algorithms: ['RS256'], issuer: self.serviceAccount!.clientEmail, audience: `${self.url}/token`, maxTokenAge: 3600, currentDate: self.now!() })
          .then(({ payload }) => {
            if (payload.scope !== 'https://www.googleapis.com/auth/cloudkms' || (payload.exp ?? 0) - (payload.iat ?? 0) > 3600) return reply(400, { error: 'invalid_scope' });
            const t = 'ya29.sa-' + randomBytes(12).toString('hex');
            issued.add(t);
            return reply(200, { access_token: t, expires_in: 3599, token_type: 'Bearer' });
          })
          .catch(() => reply(400, { error: 'invalid_grant', error_description: 'Invalid JWT Signature.' }));
        return;
      }
      try {
        body = JSON.parse(Buffer.concat(chunks).toString() || '{}') as Record<string, unknown>;
      } catch {
        return err(400, 'INVALID_ARGUMENT', 'Invalid JSON payload received.');
      }
      const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
      if (bearer !== self.accessToken && !(bearer && issued.has(bearer))) return err(401, 'UNAUTHENTICATED', 'Request had invalid authentication credentials.');
      if (self.mode === 'unavailable') return err(503, 'UNAVAILABLE', 'The service is currently unavailable.');
      const m = /^\/v1\/(.+):(encrypt|decrypt)$/.exec(u.pathname);
      if (req.method !== 'POST' || !m) return err(404, 'NOT_FOUND', 'Not found');
      if (m[1] !== keyName) return err(404, 'NOT_FOUND', `CryptoKey ${m[1]} not found.`);
      const b = (k: string): Buffer => Buffer.from(typeof body[k] === 'string' ? (body[k] as string) : '', 'base64');
      const crcField = (k: string): number | undefined => {
        const v = body[k] as unknown;
        if (v === undefined || v === null) return undefined;
        return Number(typeof v === 'object' ? (v as { value: unknown }).value : v);
      };
      const aad = b('additionalAuthenticatedData');
      const aadCrc = crcField('additionalAuthenticatedDataCrc32c');
      if (aadCrc !== undefined && aadCrc !== crc32cBitwise(aad)) return err(400, 'INVALID_ARGUMENT', 'The checksum in field additional_authenticated_data_crc32c did not match.');
      if (m[2] === 'encrypt') {
        const pt = b('plaintext');
        const pc = crcField('plaintextCrc32c');
        if (pt.length === 0 || pt.length > 65536) return err(400, 'INVALID_ARGUMENT', 'plaintext size');
        if (pc !== undefined && pc !== crc32cBitwise(pt)) return err(400, 'INVALID_ARGUMENT', 'The checksum in field plaintext_crc32c did not match.');
        const iv = randomBytes(12);
        const c = createCipheriv('aes-256-gcm', key, iv);
        c.setAAD(aad);
        const ct = Buffer.concat([Buffer.of(1), iv, c.update(pt), c.final(), c.getAuthTag()]);
        const crc = self.mode === 'corrupt-response' ? crc32cBitwise(ct) ^ 1 : crc32cBitwise(ct);
        return reply(200, {
          name: `${keyName}/cryptoKeyVersions/1`,
          ciphertext: ct.toString('base64'),
          ciphertextCrc32c: String(crc),
          verifiedPlaintextCrc32c: pc !== undefined,
          verifiedAdditionalAuthenticatedDataCrc32c: aadCrc !== undefined,
          protectionLevel: 1,
        });
      }
      const ct = b('ciphertext');
      const cc = crcField('ciphertextCrc32c');
      if (cc !== undefined && cc !== crc32cBitwise(ct)) return err(400, 'INVALID_ARGUMENT', 'The checksum in field ciphertext_crc32c did not match.');
      if (ct.length < 1 + 12 + 16 || ct[0] !== 1) return err(400, 'INVALID_ARGUMENT', 'Decryption failed: the ciphertext is invalid.');
      const d = createDecipheriv('aes-256-gcm', key, ct.subarray(1, 13));
      d.setAAD(aad);
      d.setAuthTag(ct.subarray(ct.length - 16));
      let pt: Buffer;
      try {
        pt = Buffer.concat([d.update(ct.subarray(13, ct.length - 16)), d.final()]);
      } catch {
        return err(400, 'INVALID_ARGUMENT', 'Decryption failed: the ciphertext is invalid.');
      }
      return reply(200, { plaintext: pt.toString('base64'), plaintextCrc32c: String(crc32cBitwise(pt)), usedPrimary: true, protectionLevel: 1 });
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  Object.assign(self, {
    url: `http://127.0.0.1:${port}`,
    host: '127.0.0.1',
    port,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  });
  return self as GcpKmsTestServer;
}

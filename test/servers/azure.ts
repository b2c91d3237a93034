/**
 * A local Microsoft Entra ID token endpoint and Azure Key Vault (keys) over TLS, with real RSA
 * behind it, for the REAL @azure/identity ClientSecretCredential (pointed here via
 * `authorityHost`) and the Key Vault REST adapter.
 *
 * References followed:
 * - OAuth 2.0 client credentials flow (shared secret), `POST /{tenant}/oauth2/v2.0/token`
 *   (https://learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow) and
 *   the OpenID discovery document `/{tenant}/v2.0/.well-known/openid-configuration`
 *   (https://learn.microsoft.com/entra/identity-platform/v2-protocols-oidc#find-your-apps-openid-configuration-document-uri);
 * - Key Vault REST 7.5 Wrap Key / Unwrap Key
 *   (https://learn.microsoft.com/rest/api/keyvault/keys/wrap-key/wrap-key,
 *   https://learn.microsoft.com/rest/api/keyvault/keys/unwrap-key/unwrap-key): `alg` RSA-OAEP-256,
 *   values base64url, response `{kid, value}`; errors `{"error": {"code", "message"}}` with
 *   401 Unauthorized, 403 Forbidden, 404 KeyNotFound, 400 BadParameter;
 * - a key's permitted operations, `key_ops` (JsonWebKeyOperation: encrypt, decrypt, sign, verify,
 *   wrapKey, unwrapKey — https://learn.microsoft.com/rest/api/keyvault/keys/create-key/create-key#jsonwebkeyoperation):
 *   an operation the key does not permit is refused with 403 Forbidden (`signOnlyKeyName`).
 */
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { constants, generateKeyPairSync, privateDecrypt, publicEncrypt, randomBytes, type KeyObject } from 'node:crypto';

export interface AzureTestServer {
  base: string;
  tenantId: string;
  clientId: string;
  clientSecret: string;
  keyName: string;
  keyVersion: string;
  /** A key whose permitted operations (`key_ops`) are sign/verify only: wrapkey/unwrapkey answer 403 Forbidden. */
  signOnlyKeyName: string;
  mode: 'up' | 'unavailable' | 'forbidden';
  calls: Array<{ path: string; status: number }>;
  close(): Promise<void>;
}

export async function startAzureServer(tls: { certPem: string; keyPem: string }): Promise<AzureTestServer> {
  const tenantId = '72f988bf-86f1-41af-91ab-2d7cd011db47';
  const keys = new Map<string, { priv: KeyObject; pub: KeyObject; ops: readonly string[] }>();
  const keyName = 'disk-keys';
  const keyVersion = randomBytes(16).toString('hex');
  const kp = generateKeyPairSync('rsa', { modulusLength: 2048 });
  keys.set(`${keyName}/${keyVersion}`, { priv: kp.privateKey, pub: kp.publicKey, ops: ['wrapKey', 'unwrapKey', 'encrypt', 'decrypt'] });
  // Same version string under another name: only the key's permitted operations differ.
  const signOnlyKeyName = 'signing-only';
  keys.set(`${signOnlyKeyName}/${keyVersion}`, { priv: kp.privateKey, pub: kp.publicKey, ops: ['sign', 'verify'] });
  const tokens = new Set<string>();
  const self: Partial<AzureTestServer> = {
    tenantId,
    clientId: '0b2c1e6d-5a43-4d2e-9f55-3c2f3b9c7a11',
    clientSecret: randomBytes(24).toString('base64url'),
    keyName,
    keyVersion,
    signOnlyKeyName,
    mode: 'up',
    calls: [],
  };

  const server: Server = createServer({ cert: tls.certPem, key: tls.keyPem }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const u = new URL(req.url ?? '/', self.base);
      const body = Buffer.concat(chunks).toString();
      const send = (status: number, obj: unknown): void => {
        self.calls!.push({ path: u.pathname, status });
        res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' });
        res.end(JSON.stringify(obj));
      };
      const kvErr = (status: number, code: string, message: string): void => send(status, { error: { code, message } });
      // ── Entra ID ──
      if (req.method === 'GET' && u.pathname === `/${tenantId}/v2.0/.well-known/openid-configuration`) {
        return send(200, {
          token_endpoint: `${self.base}/${tenantId}/oauth2/v2.0/token`,
          authorization_endpoint: `${self.base}/${tenantId}/oauth2/v2.0/authorize`,
          end_session_endpoint: `${self.base}/${tenantId}/oauth2/v2.0/logout`,
          issuer: `${self.base}/${tenantId}/v2.0`,
          jwks_uri: `${self.base}/${tenantId}/discovery/v2.0/keys`,
          response_types_supported: ['code', 'id_token', 'code id_token', 'id_token token'],
          token_endpoint_auth_methods_supported: ['client_secret_post', 'private_key_jwt', 'client_secret_basic'],
        });
      }
      if (req.method === 'POST' && u.pathname === `/${tenantId}/oauth2/v2.0/token`) {
        const f = new URLSearchParams(body);
        if (f.get('grant_type') !== 'client_credentials' || f.get('client_id') !== self.clientId || f.get('client_secret') !== self.clientSecret) {
          return send(401, { error: 'invalid_client', error_description: 'AADSTS7000215: Invalid client secret provided.', error_codes: [7000215] });
        }
        if (f.get('scope') !== 'https://vault.azure.net/.default') return send(400, { error: 'invalid_scope', error_description: 'AADSTS70011: invalid scope' });
        const t = randomBytes(32).toString('base64url');
        tokens.add(t);
        return send(200, { token_type: 'Bearer', expires_in: 3599, ext_expires_in: 3599, access_token: t });
      }
      // ── Key Vault ──
      const m = /^\/keys\/([A-Za-z0-9-]+)\/([A-Za-z0-9]+)\/(wrapkey|unwrapkey)$/.exec(u.pathname);
      if (!m || req.method !== 'POST') return kvErr(404, 'NotFound', 'not found');
      if (u.searchParams.get('api-version') !== '7.5') return kvErr(400, 'BadParameter', 'api-version');
      const auth = /^Bearer (.+)$/.exec(req.headers.authorization ?? '');
      if (!auth || !tokens.has(auth[1]!)) return kvErr(401, 'Unauthorized', 'AKV10000: Request is missing a Bearer or PoP token.');
      if (self.mode === 'unavailable') return kvErr(503, 'ServiceUnavailable', 'The service is unavailable');
      if (self.mode === 'forbidden') return kvErr(403, 'Forbidden', 'Operation wrapKey is not permitted on this key.');
      const k = keys.get(`${m[1]}/${m[2]}`);
      if (!k) return kvErr(404, 'KeyNotFound', `A key with (name/id) ${m[1]}/${m[2]} was not found in this key vault.`);
      const op = m[3] === 'wrapkey' ? 'wrapKey' : 'unwrapKey';
      if (!k.ops.includes(op)) return kvErr(403, 'Forbidden', `Operation ${op} is not permitted on this key.`);
      let j: { alg?: string; value?: string };
      try {
        j = JSON.parse(body) as { alg?: string; value?: string };
      } catch {
        return kvErr(400, 'BadParameter', 'body');
      }
      if (j.alg !== 'RSA-OAEP-256' || typeof j.value !== 'string') return kvErr(400, 'BadParameter', 'alg must be RSA-OAEP-256');
      const input = Buffer.from(j.value, 'base64url');
      const kid = `${self.base}/keys/${m[1]}/${m[2]}`;
      if (m[3] === 'wrapkey') {
        const out = publicEncrypt({ key: k.pub, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, input);
        return send(200, { kid, value: out.toString('base64url') });
      }
      try {
        const out = privateDecrypt({ key: k.priv, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, input);
        return send(200, { kid, value: out.toString('base64url') });
      } catch {
        return kvErr(400, 'BadParameter', 'Error occurred while decrypting the content.');
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  Object.assign(self, {
    base: `https://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  });
  return self as AzureTestServer;
}

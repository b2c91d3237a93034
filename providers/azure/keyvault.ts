/**
 * @module providers/azure/keyvault
 *
 * Disk-key wrapping with Azure Key Vault (`KeyService` kind 'azure-keyvault') over its REST API
 * with plain fetch (Node and Workers); the access token comes from any `TokenCredential`
 * (@azure/identity on Node: ManagedIdentityCredential, WorkloadIdentityCredential,
 * ClientSecretCredential…).
 *
 * API reference: Key Vault Keys REST 7.5 — Wrap Key / Unwrap Key
 * (https://learn.microsoft.com/rest/api/keyvault/keys/wrap-key/wrap-key,
 * …/unwrap-key/unwrap-key): `POST {vault}/keys/{name}/{version}/wrapkey?api-version=7.5` with
 * `{"alg": "RSA-OAEP-256", "value": base64url}` → `{"kid", "value"}`; errors
 * `{"error": {"code", "message"}}`.
 *
 * Why two layers: Key Vault's wrapKey is plain RSA-OAEP-256 — it takes no AAD, so on its own it
 * could not bind the node's identity. We therefore wrap a fresh 256-bit content key (CEK) with
 * Key Vault and encrypt the disk key under the CEK with AES-256-GCM whose AAD carries the
 * identity context and the whole header. Unwrapping under another identity fails the GCM tag.
 *
 * Envelope (integers big-endian):
 * ```
 * "ABKV" | u8 version=1 | u16 len | kid (UTF-8, the versioned key URL) | u16 len | wrapped CEK
 *        | IV (12) | ciphertext ‖ tag (16)
 * ```
 * AAD = "attest-broker/azure-keyvault/v1\n" ‖ canonical context ‖ "\n" ‖ every byte before the IV.
 *
 * Checks on unwrap: magic, version, lengths (ByteReader, no trailing bytes); the kid must be a
 * version of *the configured key* in *the configured vault* (a forged envelope cannot make the
 * broker call another URL with its token); RSA unwrap by Key Vault; CEK exactly 32 bytes;
 * AES-GCM tag.
 */
import { ByteReader, concat, u16be } from '../common/bytes.js';
import { timingSafeEqual } from '../common/ct.js';
import { AttestError, CommonCodes, configError, malformed, rejected, unavailable } from '../common/errors.js';
import { fromBase64Url, fromUtf8, toBase64Url, utf8 } from '../common/encoding.js';
import { KmsCodes, checkKeyInput, contextAad, kmsHttpError, kmsNetworkError, type KeyServiceLike } from '../common/keyservice.js';

const MAGIC = utf8('ABKV');
const VERSION = 1;
const LABEL = 'attest-broker/azure-keyvault/v1';
const API_VERSION = '7.5';
const NAME_RE = /^[A-Za-z0-9-]{1,127}$/;
const VERSION_RE = /^[A-Za-z0-9]{1,64}$/;

/** The shape of @azure/identity's TokenCredential that we use. */
export interface TokenSource {
  getToken(scopes: string | string[]): Promise<{ token: string; expiresOnTimestamp: number } | null>;
}

export interface KeyVaultOptions {
  /** https://<name>.vault.azure.net (or a Managed HSM / sovereign-cloud URL). */
  vaultUrl: string;
  keyName: string;
  /** Pinned key version used for new wraps (rotation is explicit; old blobs name their own). */
  keyVersion: string;
  credential: TokenSource;
  /** Token scope (default https://vault.azure.net/.default). */
  scope?: string;
  fetch?: typeof fetch;
  /** Per-request timeout (default 10 s). */
  timeoutMs?: number;
}

export class AzureKeyVaultKeyService implements KeyServiceLike {
  readonly kind = 'azure-keyvault' as const;
  readonly #o: KeyVaultOptions;
  readonly #vault: string;
  readonly #fetch: typeof fetch;

  constructor(o: KeyVaultOptions) {
    let u: URL;
    try {
      u = new URL(o.vaultUrl);
    } catch (cause) {
      throw configError('KMS_CONFIG_INVALID', 'Key Vault URL is not a URL', { cause });
    }
    if (u.protocol !== 'https:' || u.pathname.replace(/\/+$/, '') !== '' || u.search || u.hash) {
      throw configError('KMS_CONFIG_INVALID', 'Key Vault URL must be https://<vault>/ with no path');
    }
    if (!NAME_RE.test(o.keyName) || !VERSION_RE.test(o.keyVersion)) throw configError('KMS_CONFIG_INVALID', 'Key Vault key name or version is invalid');
    this.#o = o;
    this.#vault = u.origin;
    this.#fetch = o.fetch ?? ((i, init) => fetch(i, init));
  }

  async #call(op: 'wrapkey' | 'unwrapkey', kid: string, value: Uint8Array): Promise<{ kid: string; value: Uint8Array }> {
    const which = op === 'wrapkey' ? 'wrap' : 'unwrap';
    let res: Response;
    try {
      const t = await this.#o.credential.getToken(this.#o.scope ?? 'https://vault.azure.net/.default');
      if (!t?.token) throw unavailable(KmsCodes.KMS_UNAVAILABLE, 'no Entra ID token for Key Vault');
      res = await this.#fetch(`${kid}/${op}?api-version=${API_VERSION}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${t.token}`, 'content-type': 'application/json', accept: 'application/json' },
        body: JSON.stringify({ alg: 'RSA-OAEP-256', value: toBase64Url(value) }),
        // Never followed: a 3xx is not ok and fails below ('error' is what is meant, but
        // Workers' fetch refuses that value).
        redirect: 'manual',
        signal: AbortSignal.timeout(this.#o.timeoutMs ?? 10_000),
      });
    } catch (e) {
      if (e instanceof AttestError) throw e;
      // @azure/identity: AuthenticationRequiredError (the token endpoint refused the client),
      // AuthenticationError with a 4xx statusCode, CredentialUnavailableError (no such identity
      // here) are configuration faults; everything else (network, 5xx) is an outage.
      const name = (e as { name?: unknown })?.name;
      const status = (e as { statusCode?: unknown })?.statusCode;
      if (name === 'AuthenticationRequiredError' || name === 'CredentialUnavailableError' || (typeof status === 'number' && status >= 400 && status < 500)) {
        throw configError(KmsCodes.KMS_DENIED, 'Entra ID refused the broker credential', { cause: e });
      }
      throw kmsNetworkError('Key Vault', which, e);
    }
    const text = await res.text().catch((e: unknown) => {
      throw kmsNetworkError('Key Vault', which, e);
    });
    if (!res.ok) throw kmsHttpError('Key Vault', which, res.status);
    let j: { kid?: unknown; value?: unknown };
    try {
      j = JSON.parse(text) as { kid?: unknown; value?: unknown };
    } catch (cause) {
      throw unavailable(KmsCodes.KMS_BAD_RESPONSE, 'Key Vault response is not JSON', { cause });
    }
    if (typeof j.value !== 'string' || typeof j.kid !== 'string') throw unavailable(KmsCodes.KMS_BAD_RESPONSE, 'Key Vault response lacks kid or value');
    return { kid: j.kid, value: fromBase64Url(j.value.replace(/=+$/, ''), 'Key Vault value') };
  }

  /** The versioned key URL if `kid` names a version of our key in our vault, else null. */
  #ourKid(kid: string): string | null {
    const prefix = `${this.#vault}/keys/${this.#o.keyName}/`;
    if (!kid.startsWith(prefix)) return null;
    const version = kid.slice(prefix.length);
    return VERSION_RE.test(version) ? kid : null;
  }

  async wrap(key: Uint8Array, context: Readonly<Record<string, string>>): Promise<Uint8Array> {
    checkKeyInput(key);
    const aadContext = contextAad(LABEL, context);
    const cek = crypto.getRandomValues(new Uint8Array(32));
    try {
      const r = await this.#call('wrapkey', `${this.#vault}/keys/${this.#o.keyName}/${this.#o.keyVersion}`, cek);
      const kid = this.#ourKid(r.kid);
      if (!kid) throw unavailable(KmsCodes.KMS_BAD_RESPONSE, 'Key Vault answered with a kid of another key');
      const kidBytes = utf8(kid);
      if (kidBytes.byteLength > 1024 || r.value.byteLength === 0 || r.value.byteLength > 1024) throw unavailable(KmsCodes.KMS_BAD_RESPONSE, 'Key Vault kid or wrapped key size');
      const iv = crypto.getRandomValues(new Uint8Array(12));
      const head = concat(MAGIC, Uint8Array.of(VERSION), u16be(kidBytes.byteLength), kidBytes, u16be(r.value.byteLength), r.value);
      const aes = await crypto.subtle.importKey('raw', cek, 'AES-GCM', false, ['encrypt']);
      const ct = new Uint8Array(
        await crypto.subtle.encrypt(
          { name: 'AES-GCM', iv, additionalData: concat(aadContext, utf8('\n'), head) as Uint8Array<ArrayBuffer>, tagLength: 128 },
          aes,
          key as Uint8Array<ArrayBuffer>,
        ),
      );
      return concat(head, iv, ct);
    } finally {
      cek.fill(0);
    }
  }

  async unwrap(wrapped: Uint8Array, context: Readonly<Record<string, string>>): Promise<Uint8Array> {
    const aadContext = contextAad(LABEL, context);
    let kid: string, wrappedCek: Uint8Array, iv: Uint8Array, ct: Uint8Array, head: Uint8Array;
    try {
      const r = new ByteReader(wrapped);
      if (!timingSafeEqual(r.bytes(4), MAGIC)) throw malformed(KmsCodes.KMS_WRAPPED_MALFORMED, 'not a Key Vault envelope');
      if (r.u8() !== VERSION) throw malformed(KmsCodes.KMS_WRAPPED_MALFORMED, 'unknown Key Vault envelope version');
      kid = fromUtf8(r.bytes(r.u16()), 'kid');
      wrappedCek = r.bytes(r.u16());
      head = wrapped.subarray(0, r.position);
      iv = r.bytes(12);
      if (r.remaining < 17) throw malformed(CommonCodes.TRUNCATED, 'Key Vault envelope too short');
      ct = r.bytes(r.remaining);
      r.end();
    } catch (e) {
      if (e instanceof AttestError && e.code === KmsCodes.KMS_WRAPPED_MALFORMED) throw e;
      throw malformed(KmsCodes.KMS_WRAPPED_MALFORMED, 'Key Vault envelope does not parse', { cause: e });
    }
    if (!this.#ourKid(kid)) throw rejected(KmsCodes.KMS_UNWRAP_FAILED, 'wrapped key names another vault or key');
    const r = await this.#call('unwrapkey', kid, wrappedCek);
    const cek = r.value;
    try {
      if (cek.byteLength !== 32) throw rejected(KmsCodes.KMS_UNWRAP_FAILED, 'unwrapped content key has the wrong size');
      const aes = await crypto.subtle.importKey('raw', cek as Uint8Array<ArrayBuffer>, 'AES-GCM', false, ['decrypt']);
      return new Uint8Array(
        await crypto.subtle.decrypt(
          { name: 'AES-GCM', iv: iv as Uint8Array<ArrayBuffer>, additionalData: concat(aadContext, utf8('\n'), head) as Uint8Array<ArrayBuffer>, tagLength: 128 },
          aes,
          ct as Uint8Array<ArrayBuffer>,
        ),
      );
    } catch (e) {
      if (e instanceof AttestError) throw e;
      throw rejected(KmsCodes.KMS_UNWRAP_FAILED, 'AES-GCM layer refused (wrong identity context or tampered blob)', { cause: e });
    } finally {
      cek.fill(0);
    }
  }
}

export interface ClientSecretTokenOptions {
  tenantId: string;
  clientId: string;
  clientSecret: string;
  /** Default https://login.microsoftonline.com (sovereign clouds differ). */
  authorityHost?: string;
  fetch?: typeof fetch;
  /** Injected clock (no Date.now() below broker/ and providers/). */
  now: () => Date;
}

/**
 * A `TokenSource` for Workers, where @azure/identity does not run: the OAuth 2.0 client
 * credentials grant with a shared secret against Microsoft Entra ID
 * (https://learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow):
 * `POST {authority}/{tenant}/oauth2/v2.0/token` with `client_id`, `client_secret`, `scope`,
 * `grant_type=client_credentials`. Tokens are cached until five minutes before expiry, per
 * scope, and concurrent refreshes share one request. 4xx → KMS_DENIED, 5xx/network → KMS_UNAVAILABLE.
 */
export function clientSecretTokenSource(o: ClientSecretTokenOptions): TokenSource {
  const f = o.fetch ?? ((i: RequestInfo | URL, init?: RequestInit) => fetch(i, init));
  const authority = (o.authorityHost ?? 'https://login.microsoftonline.com').replace(/\/+$/, '');
  if (!/^[0-9a-zA-Z.-]{1,64}$/.test(o.tenantId)) throw configError('KMS_CONFIG_INVALID', 'Entra tenant id is invalid');
  const cache = new Map<string, { token: string; expiresOnTimestamp: number }>();
  const inflight = new Map<string, Promise<{ token: string; expiresOnTimestamp: number }>>();
  const refresh = async (scope: string): Promise<{ token: string; expiresOnTimestamp: number }> => {
    let res: Response;
    try {
      res = await f(`${authority}/${o.tenantId}/oauth2/v2.0/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ client_id: o.clientId, client_secret: o.clientSecret, scope, grant_type: 'client_credentials' }).toString(),
        // Never followed: a 3xx is not ok and fails below ('error' is what is meant, but
        // Workers' fetch refuses that value).
        redirect: 'manual',
        signal: AbortSignal.timeout(10_000),
      });
    } catch (e) {
      throw kmsNetworkError('Entra ID', 'wrap', e);
    }
    if (!res.ok) {
      if (res.status >= 400 && res.status < 500) throw configError(KmsCodes.KMS_DENIED, `Entra ID refused the client credentials (HTTP ${res.status})`);
      throw unavailable(KmsCodes.KMS_UNAVAILABLE, `Entra ID token endpoint: HTTP ${res.status}`, { retryAfter: 5 });
    }
    const j = (await res.json().catch(() => ({}))) as { access_token?: unknown; expires_in?: unknown };
    if (typeof j.access_token !== 'string' || typeof j.expires_in !== 'number') throw unavailable(KmsCodes.KMS_BAD_RESPONSE, 'Entra ID response lacks access_token');
    const t = { token: j.access_token, expiresOnTimestamp: o.now().getTime() + j.expires_in * 1000 };
    cache.set(scope, t);
    return t;
  };
  return {
    async getToken(scopes) {
      const scope = Array.isArray(scopes) ? scopes.join(' ') : scopes;
      const c = cache.get(scope);
      if (c && c.expiresOnTimestamp - 300_000 > o.now().getTime()) return c;
      let p = inflight.get(scope);
      if (!p) {
        p = refresh(scope).finally(() => inflight.delete(scope));
        inflight.set(scope, p);
      }
      return p;
    },
  };
}

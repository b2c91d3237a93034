/**
 * @module providers/gcp/kms
 *
 * Disk-key wrapping with Google Cloud KMS (`KeyService` kind 'gcp-kms').
 *
 * API reference: Cloud KMS REST v1, `projects.locations.keyRings.cryptoKeys.encrypt` / `.decrypt`
 * (https://cloud.google.com/kms/docs/reference/rest/v1/projects.locations.keyRings.cryptoKeys/encrypt,
 * …/decrypt): `POST https://cloudkms.googleapis.com/v1/{name}:encrypt` with
 * `{plaintext, additionalAuthenticatedData, plaintextCrc32c, additionalAuthenticatedDataCrc32c}`
 * (bytes base64, int64 as decimal strings) → `{name, ciphertext, ciphertextCrc32c,
 * verifiedPlaintextCrc32c, verifiedAdditionalAuthenticatedDataCrc32c}`; decrypt likewise.
 *
 * - The identity context is the AAD (canonical JSON, providers/common/keyservice.ts): Cloud KMS
 *   refuses to decrypt under any other AAD (400 INVALID_ARGUMENT).
 * - End-to-end integrity as Google recommends ("Verifying end-to-end data integrity",
 *   https://cloud.google.com/kms/docs/data-integrity-guidelines): CRC32C of what we send is sent
 *   along and must come back `verified…: true`; the CRC32C of what we receive must match its
 *   `…Crc32c` field. Any mismatch is KMS_BAD_RESPONSE (503-class; retry).
 *
 * Two transports behind one adapter: `cloudKmsRest` (fetch; runs on Workers, where the SDK
 * cannot) and, on Node, the official @google-cloud/kms client (broker/release/kms-sdk.node.ts).
 * On Workers there is no metadata server: `serviceAccountTokenSource` obtains access tokens with
 * the OAuth 2.0 JWT-bearer grant for a service-account key ("Using OAuth 2.0 for Server to
 * Server Applications", https://developers.google.com/identity/protocols/oauth2/service-account#httprest):
 * an RS256 JWT `{iss: client_email, scope, aud: token_uri, iat, exp ≤ iat + 3600}` posted to
 * `token_uri` as `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=…`.
 */
import { SignJWT, importPKCS8 } from 'jose';
import { AttestError, configError, malformed, unavailable } from '../common/errors.js';
import { fromBase64Any, toBase64 } from '../common/encoding.js';
import { KmsCodes, checkKeyInput, contextAad, kmsHttpError, kmsNetworkError, type KeyServiceLike } from '../common/keyservice.js';

const LABEL = 'attest-broker/gcp-kms/v1';
const KEY_NAME_RE = /^projects\/[a-z0-9-]{4,63}\/locations\/[a-z0-9-]{1,63}\/keyRings\/[A-Za-z0-9_-]{1,63}\/cryptoKeys\/[A-Za-z0-9_-]{1,63}$/;

// ── CRC32C (Castagnoli, reflected polynomial 0x82F63B78; RFC 3720 §B.4) ──
const TABLE = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
    t[i] = c >>> 0;
  }
  return t;
})();
export function crc32c(data: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of data) c = TABLE[(c ^ b) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** What one Cloud KMS call carries; int64 CRCs as numbers (they fit: CRC32C is 32-bit). */
export interface CloudKmsEncryptResult {
  ciphertext: Uint8Array;
  ciphertextCrc32c?: number;
  verifiedPlaintextCrc32c?: boolean;
  verifiedAdditionalAuthenticatedDataCrc32c?: boolean;
}
export interface CloudKmsDecryptResult {
  plaintext: Uint8Array;
  plaintextCrc32c?: number;
}
export interface CloudKmsTransport {
  encrypt(name: string, plaintext: Uint8Array, aad: Uint8Array, plaintextCrc32c: number, aadCrc32c: number): Promise<CloudKmsEncryptResult>;
  decrypt(name: string, ciphertext: Uint8Array, aad: Uint8Array, ciphertextCrc32c: number, aadCrc32c: number): Promise<CloudKmsDecryptResult>;
}

/** Reads an int64 that JSON/protobuf may give as a string, a number or `{value}`. */
export function int64(v: unknown): number | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'object' && 'value' in (v as object)) return int64((v as { value: unknown }).value);
  const n = typeof v === 'string' ? Number(v) : typeof v === 'number' ? v : typeof (v as { toString?: unknown }).toString === 'function' ? Number(String(v)) : NaN;
  if (!Number.isSafeInteger(n) || n < 0) throw unavailable(KmsCodes.KMS_BAD_RESPONSE, 'Cloud KMS returned a bad CRC32C');
  return n;
}

export interface CloudKmsRestOptions {
  /** OAuth2 access token with scope cloudkms (metadata server, workload identity…). */
  accessToken: () => Promise<string>;
  fetch?: typeof fetch;
  /** Default https://cloudkms.googleapis.com (a regional or private endpoint may be set). */
  endpoint?: string;
  /** Per-request timeout (default 10 s). */
  timeoutMs?: number;
}

/** The REST transport over fetch (Workers and Node). */
export function cloudKmsRest(o: CloudKmsRestOptions): CloudKmsTransport {
  const f = o.fetch ?? ((i: RequestInfo | URL, init?: RequestInit) => fetch(i, init));
  const base = (o.endpoint ?? 'https://cloudkms.googleapis.com').replace(/\/+$/, '');
  const call = async (op: 'encrypt' | 'decrypt', name: string, body: Record<string, string>): Promise<Record<string, unknown>> => {
    const which = op === 'encrypt' ? 'wrap' : 'unwrap';
    let res: Response;
    try {
      res = await f(`${base}/v1/${name}:${op}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${await o.accessToken()}`, 'content-type': 'application/json', accept: 'application/json' },
        body: JSON.stringify(body),
        // Never followed: a 3xx is not ok and fails below ('error' is what is meant, but
        // Workers' fetch refuses that value).
        redirect: 'manual',
        signal: AbortSignal.timeout(o.timeoutMs ?? 10_000),
      });
    } catch (e) {
      throw kmsNetworkError('Cloud KMS', which, e);
    }
    const text = await res.text().catch((e: unknown) => {
      throw kmsNetworkError('Cloud KMS', which, e);
    });
    if (!res.ok) throw kmsHttpError('Cloud KMS', which, res.status);
    try {
      const j = JSON.parse(text) as unknown;
      if (typeof j !== 'object' || j === null || Array.isArray(j)) throw new Error('not an object');
      return j as Record<string, unknown>;
    } catch (cause) {
      throw unavailable(KmsCodes.KMS_BAD_RESPONSE, `Cloud KMS ${op}: response is not JSON`, { cause });
    }
  };
  const b = (v: unknown, what: string): Uint8Array => {
    if (typeof v !== 'string' || v.length === 0) throw unavailable(KmsCodes.KMS_BAD_RESPONSE, `Cloud KMS response lacks ${what}`);
    return fromBase64Any(v, what);
  };
  return {
    async encrypt(name, plaintext, aad, pc, ac) {
      const j = await call('encrypt', name, {
        plaintext: toBase64(plaintext),
        additionalAuthenticatedData: toBase64(aad),
        plaintextCrc32c: String(pc),
        additionalAuthenticatedDataCrc32c: String(ac),
      });
      return {
        ciphertext: b(j.ciphertext, 'ciphertext'),
        ciphertextCrc32c: int64(j.ciphertextCrc32c),
        verifiedPlaintextCrc32c: j.verifiedPlaintextCrc32c === true,
        verifiedAdditionalAuthenticatedDataCrc32c: j.verifiedAdditionalAuthenticatedDataCrc32c === true,
      };
    },
    async decrypt(name, ciphertext, aad, cc, ac) {
      const j = await call('decrypt', name, {
        ciphertext: toBase64(ciphertext),
        additionalAuthenticatedData: toBase64(aad),
        ciphertextCrc32c: String(cc),
        additionalAuthenticatedDataCrc32c: String(ac),
      });
      return { plaintext: b(j.plaintext, 'plaintext'), plaintextCrc32c: int64(j.plaintextCrc32c) };
    },
  };
}

export interface GcpKmsOptions {
  /** projects/P/locations/L/keyRings/R/cryptoKeys/K (a symmetric ENCRYPT_DECRYPT key). */
  keyName: string;
  transport: CloudKmsTransport;
}

export class GcpKmsKeyService implements KeyServiceLike {
  readonly kind = 'gcp-kms' as const;
  readonly #o: GcpKmsOptions;

  constructor(o: GcpKmsOptions) {
    if (!KEY_NAME_RE.test(o.keyName)) throw configError('KMS_CONFIG_INVALID', 'Cloud KMS key name must be projects/…/locations/…/keyRings/…/cryptoKeys/…');
    this.#o = o;
  }

  async wrap(key: Uint8Array, context: Readonly<Record<string, string>>): Promise<Uint8Array> {
    checkKeyInput(key);
    const aad = contextAad(LABEL, context);
    let r: CloudKmsEncryptResult;
    try {
      r = await this.#o.transport.encrypt(this.#o.keyName, key, aad, crc32c(key), crc32c(aad));
    } catch (e) {
      throw e instanceof AttestError ? e : kmsNetworkError('Cloud KMS', 'wrap', e);
    }
    if (!r.verifiedPlaintextCrc32c || !r.verifiedAdditionalAuthenticatedDataCrc32c) {
      throw unavailable(KmsCodes.KMS_BAD_RESPONSE, 'Cloud KMS did not verify the request CRC32C (corrupted in transit)');
    }
    if (r.ciphertextCrc32c === undefined || r.ciphertextCrc32c !== crc32c(r.ciphertext)) {
      throw unavailable(KmsCodes.KMS_BAD_RESPONSE, 'Cloud KMS ciphertext CRC32C mismatch (corrupted in transit)');
    }
    return r.ciphertext;
  }

  async unwrap(wrapped: Uint8Array, context: Readonly<Record<string, string>>): Promise<Uint8Array> {
    const aad = contextAad(LABEL, context);
    if (wrapped.byteLength === 0 || wrapped.byteLength > 65_536) throw malformed(KmsCodes.KMS_WRAPPED_MALFORMED, 'Cloud KMS ciphertext size');
    let r: CloudKmsDecryptResult;
    try {
      r = await this.#o.transport.decrypt(this.#o.keyName, wrapped, aad, crc32c(wrapped), crc32c(aad));
    } catch (e) {
      throw e instanceof AttestError ? e : kmsNetworkError('Cloud KMS', 'unwrap', e);
    }
    if (r.plaintextCrc32c === undefined || r.plaintextCrc32c !== crc32c(r.plaintext)) {
      throw unavailable(KmsCodes.KMS_BAD_RESPONSE, 'Cloud KMS plaintext CRC32C mismatch (corrupted in transit)');
    }
    return r.plaintext;
  }
}

export interface ServiceAccountTokenOptions {
  /** `client_email` of the service-account key. */
  clientEmail: string;
  /** `private_key` (PKCS#8 PEM) of the service-account key. */
  privateKeyPem: string;
  /** Default https://oauth2.googleapis.com/token. */
  tokenUri?: string;
  scope?: string;
  fetch?: typeof fetch;
  /** Injected clock (no Date.now() below broker/ and providers/). */
  now: () => Date;
}

/**
 * An access-token source for `cloudKmsRest` from a service-account key, with caching until five
 * minutes before expiry and single-flight refresh (concurrent callers share one token request).
 * Failures: token endpoint 5xx/network → KMS_UNAVAILABLE; 4xx → KMS_DENIED.
 */
export function serviceAccountTokenSource(o: ServiceAccountTokenOptions): () => Promise<string> {
  const f = o.fetch ?? ((i: RequestInfo | URL, init?: RequestInit) => fetch(i, init));
  const tokenUri = o.tokenUri ?? 'https://oauth2.googleapis.com/token';
  const scope = o.scope ?? 'https://www.googleapis.com/auth/cloudkms';
  let cached: { token: string; until: number } | undefined;
  let inflight: Promise<string> | undefined;
  const keyP = importPKCS8(o.privateKeyPem, 'RS256').catch((cause: unknown) => {
    throw configError('KMS_CONFIG_INVALID', 'service-account private_key is not a PKCS#8 RSA key', { cause });
  });
  const refresh = async (): Promise<string> => {
    const iat = Math.floor(o.now().getTime() / 1000);
    const assertion = await new SignJWT({ scope })
      .setProtectedHeader({ alg: 'RS256', typ: 'JWT' })
      .setIssuer(o.clientEmail)
      .setAudience(tokenUri)
      .setIssuedAt(iat)
      .setExpirationTime(iat + 3600)
      .sign(await keyP);
    let res: Response;
    try {
      res = await f(tokenUri, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer', assertion }).toString(),
        // Never followed: a 3xx is not ok and fails below ('error' is what is meant, but
        // Workers' fetch refuses that value).
        redirect: 'manual',
        signal: AbortSignal.timeout(10_000),
      });
    } catch (e) {
      throw kmsNetworkError('Google OAuth', 'wrap', e);
    }
    if (!res.ok) {
      if (res.status >= 400 && res.status < 500) throw configError(KmsCodes.KMS_DENIED, `Google OAuth token endpoint refused the service account (HTTP ${res.status})`);
      throw unavailable(KmsCodes.KMS_UNAVAILABLE, `Google OAuth token endpoint: HTTP ${res.status}`, { retryAfter: 5 });
    }
    const j = (await res.json().catch(() => ({}))) as { access_token?: unknown; expires_in?: unknown };
    if (typeof j.access_token !== 'string' || typeof j.expires_in !== 'number') throw unavailable(KmsCodes.KMS_BAD_RESPONSE, 'Google OAuth response lacks access_token');
    cached = { token: j.access_token, until: o.now().getTime() + (j.expires_in - 300) * 1000 };
    return j.access_token;
  };
  return async () => {
    if (cached && cached.until > o.now().getTime()) return cached.token;
    inflight ??= refresh().finally(() => {
      inflight = undefined;
    });
    return inflight;
  };
}

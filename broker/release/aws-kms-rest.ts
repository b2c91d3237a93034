/**
 * @module broker/release/aws-kms-rest
 *
 * AWS KMS over plain fetch with Signature Version 4 computed by WebCrypto HMAC, for Workers
 * (the SDK's credential chain, file and IMDS providers do not run there). It is a stand-in for
 * `KMSClient.send`, so `AwsKmsKeyService` (providers/aws/kms.ts) keeps its one error mapping and
 * its NitroTPM `Recipient` handling.
 *
 * References followed:
 * - AWS KMS API Reference, Encrypt / Decrypt / GenerateDataKey request and response syntax
 *   (https://docs.aws.amazon.com/kms/latest/APIReference/API_Encrypt.html, …/API_Decrypt.html,
 *   …/API_GenerateDataKey.html); blobs travel base64 in JSON; endpoint
 *   `https://kms.<region>.amazonaws.com` (https://docs.aws.amazon.com/general/latest/gr/kms.html);
 * - AWS JSON 1.1 protocol (https://smithy.io/2.0/aws/protocols/aws-json-1_1-protocol.html):
 *   `POST /`, `Content-Type: application/x-amz-json-1.1`, `X-Amz-Target: TrentService.<Op>`;
 *   an error is a non-2xx answer whose body `__type` (or header `X-Amzn-ErrorType`) names the
 *   exception, possibly prefixed `namespace#` or suffixed `:uri`;
 * - Signature Version 4 ("Create a signed AWS API request",
 *   https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-create-signed-request.html):
 *   canonical request (method, URI, sorted query, lower-case sorted headers, signed header list,
 *   hex SHA-256 of the payload) → string to sign (`AWS4-HMAC-SHA256`, amz date, scope
 *   `<date>/<region>/<service>/aws4_request`, hex SHA-256 of the canonical request) → key
 *   HMAC(HMAC(HMAC(HMAC("AWS4"+secret, date), region), service), "aws4_request"); temporary
 *   credentials add `X-Amz-Security-Token` (signed). The signer is checked against AWS's
 *   published test-suite values (get-vanilla, get-vanilla-query-order-key-case) in
 *   test/workers/aws-kms-rest.test.ts, and end to end against test/servers/aws-kms.ts, which
 *   recomputes every signature.
 */
import { DecryptCommand, EncryptCommand, GenerateDataKeyCommand, type KMSClient } from '@aws-sdk/client-kms';
import { configError } from '../../providers/common/errors.js';
import { fromBase64Any, toBase64, toHex, utf8 } from '../../providers/common/encoding.js';
import { sha256 } from '../../providers/common/digest.js';

export interface AwsCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

export interface SigV4Request {
  method: string;
  /** Absolute URL; its path and query are signed. */
  url: URL;
  /** Headers to sign (lower- or mixed-case names); `host` must be among them. */
  headers: Readonly<Record<string, string>>;
  body: Uint8Array;
}

export interface SigV4Result {
  authorization: string;
  signature: string;
  canonicalRequest: string;
  stringToSign: string;
}

const enc = (s: string): string => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

async function hmac(key: Uint8Array, data: string): Promise<Uint8Array> {
  const k = await crypto.subtle.importKey('raw', key as Uint8Array<ArrayBuffer>, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
  return new Uint8Array(await crypto.subtle.sign('HMAC', k, utf8(data) as Uint8Array<ArrayBuffer>));
}

/** Signs `req` for `service` in `region` at `amzDate` (YYYYMMDD'T'HHMMSS'Z'). */
export async function signV4(req: SigV4Request, creds: AwsCredentials, region: string, service: string, amzDate: string): Promise<SigV4Result> {
  if (!/^\d{8}T\d{6}Z$/.test(amzDate)) throw new Error('amzDate must be YYYYMMDDTHHMMSSZ');
  const date = amzDate.slice(0, 8);
  const headers = Object.entries(req.headers).map(([k, v]) => [k.toLowerCase(), v.trim().replace(/\s+/g, ' ')] as const);
  headers.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const signedHeaders = headers.map(([k]) => k).join(';');
  const params: Array<[string, string]> = [];
  req.url.searchParams.forEach((v, k) => params.push([k, v]));
  const query = params
    .map(([k, v]) => [enc(k), enc(v)] as const)
    .sort(([ak, av], [bk, bv]) => (ak < bk ? -1 : ak > bk ? 1 : av < bv ? -1 : av > bv ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join('&');
  const path = req.url.pathname || '/';
  const canonicalRequest = [req.method.toUpperCase(), path, query, headers.map(([k, v]) => `${k}:${v}\n`).join(''), signedHeaders, toHex(await sha256(req.body))].join('\n');
  const scope = `${date}/${region}/${service}/aws4_request`;
  const stringToSign = ['AWS4-HMAC-SHA256', amzDate, scope, toHex(await sha256(utf8(canonicalRequest)))].join('\n');
  let key = await hmac(utf8(`AWS4${creds.secretAccessKey}`), date);
  for (const part of [region, service, 'aws4_request']) key = await hmac(key, part);
  const signature = toHex(await hmac(key, stringToSign));
  return {
    authorization: `AWS4-HMAC-SHA256 Credential=${creds.accessKeyId}/${scope}, SignedHeaders=${signedHeaders}, Signature=${signature}`,
    signature,
    canonicalRequest,
    stringToSign,
  };
}

/** `2026-12-04T09:30:00.123Z` → `20261204T093000Z`. */
export const amzDateOf = (d: Date): string => d.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');

export interface AwsKmsRestOptions {
  region: string;
  credentials: AwsCredentials;
  /** Default https://kms.<region>.amazonaws.com (a VPC or FIPS endpoint, or a test server). */
  endpoint?: string;
  fetch?: typeof fetch;
  /** Injected clock (the signature carries the time; AWS allows 5 minutes of skew). */
  now: () => Date;
  /** Per-request timeout (default 10 s). */
  timeoutMs?: number;
}

/** Uint8Array members become base64, as the JSON protocol carries blobs. */
function toWire(v: unknown): unknown {
  if (v instanceof Uint8Array) return toBase64(v);
  if (Array.isArray(v)) return v.map(toWire);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).filter(([, x]) => x !== undefined).map(([k, x]) => [k, toWire(x)]));
  return v;
}

const BLOB_OUTPUTS = ['CiphertextBlob', 'Plaintext', 'CiphertextForRecipient'] as const;

/** An error shaped like the SDK's service exceptions (name, $fault, $metadata), for mapError. */
function serviceError(status: number, type: string, message: string): Error {
  const name = type.split('#').pop()!.split(':')[0]!.trim() || `HTTP${status}`;
  return Object.assign(new Error(message || name), { name, $fault: status >= 500 ? 'server' : 'client', $metadata: { httpStatusCode: status } });
}

/**
 * A `KMSClient.send` over fetch for the three commands AwsKmsKeyService sends (Encrypt,
 * Decrypt, GenerateDataKey); anything else is refused.
 */
export function awsKmsRest(o: AwsKmsRestOptions): Pick<KMSClient, 'send'> {
  if (!/^[a-z]{2}(-[a-z]+)+-\d$/.test(o.region)) throw configError('KMS_CONFIG_INVALID', `AWS region ${o.region} is not a region name`);
  if (!o.credentials.accessKeyId || !o.credentials.secretAccessKey) throw configError('KMS_CONFIG_INVALID', 'AWS KMS needs an access key id and secret access key');
  const endpoint = new URL(o.endpoint ?? `https://kms.${o.region}.amazonaws.com/`);
  if (endpoint.protocol !== 'https:' && !(endpoint.protocol === 'http:' && /^(127\.0\.0\.1|localhost|\[::1\])$/.test(endpoint.hostname))) {
    throw configError('KMS_CONFIG_INVALID', 'the AWS KMS endpoint must be https (http only on loopback, for tests)');
  }
  const f = o.fetch ?? ((i: RequestInfo | URL, init?: RequestInit) => fetch(i, init));
  const send = async (command: unknown): Promise<Record<string, unknown>> => {
    const op =
      command instanceof EncryptCommand ? 'Encrypt' : command instanceof DecryptCommand ? 'Decrypt' : command instanceof GenerateDataKeyCommand ? 'GenerateDataKey' : undefined;
    if (!op) throw configError('KMS_CONFIG_INVALID', 'awsKmsRest sends Encrypt, Decrypt and GenerateDataKey only');
    const body = utf8(JSON.stringify(toWire((command as { input: unknown }).input)));
    const amzDate = amzDateOf(o.now());
    const headers: Record<string, string> = {
      'content-type': 'application/x-amz-json-1.1',
      host: endpoint.host,
      'x-amz-date': amzDate,
      'x-amz-target': `TrentService.${op}`,
      ...(o.credentials.sessionToken ? { 'x-amz-security-token': o.credentials.sessionToken } : {}),
    };
    const { authorization } = await signV4({ method: 'POST', url: endpoint, headers, body }, o.credentials, o.region, 'kms', amzDate);
    // fetch sets Host itself (from the URL, exactly what was signed).
    const { host: _host, ...sent } = headers;
    void _host;
    const res = await f(endpoint.toString(), {
      method: 'POST',
      headers: { ...sent, authorization, accept: 'application/json' },
      body: body as Uint8Array<ArrayBuffer>,
      // Never followed: a 3xx is not ok and fails below ('error' is what is meant, but Workers'
      // fetch refuses that value).
      redirect: 'manual',
      signal: AbortSignal.timeout(o.timeoutMs ?? 10_000),
    });
    // Read as bytes: the body is JSON served as application/x-amz-json-1.1.
    const text = new TextDecoder().decode(await res.arrayBuffer());
    let j: Record<string, unknown> = {};
    try {
      j = text ? (JSON.parse(text) as Record<string, unknown>) : {};
    } catch {
      if (res.ok) throw serviceError(502, 'BadResponse', 'AWS KMS answered with something that is not JSON');
    }
    if (!res.ok) {
      const type = String(j.__type ?? res.headers.get('x-amzn-errortype') ?? '');
      throw serviceError(res.status, type, String(j.message ?? j.Message ?? ''));
    }
    const out: Record<string, unknown> = { ...j };
    for (const k of BLOB_OUTPUTS) if (typeof j[k] === 'string') out[k] = fromBase64Any(j[k] as string, `AWS KMS ${k}`);
    return out;
  };
  return { send } as unknown as Pick<KMSClient, 'send'>;
}

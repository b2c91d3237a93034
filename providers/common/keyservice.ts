/**
 * @module providers/common/keyservice
 *
 * What every KMS adapter (`providers/aws/kms.ts`, `providers/gcp/kms.ts`,
 * `providers/azure/keyvault.ts`, `providers/local/kms.ts`) shares: the `KeyService` shape and the
 * one way an identity-binding *context* becomes bytes.
 *
 * `broker/contracts.ts` declares `KeyService` for the broker; providers/ may not import broker/
 * (eslint boundary), so the same shape is declared here and the two are kept structurally
 * identical (a type test in test/release asserts assignability both ways).
 *
 * Why a context at all: a wrapped disk key is only safe to hand back to a node if the KMS (or
 * the AEAD) refuses to unwrap it under any other identity. Each adapter binds the context with
 * its service's native mechanism (AWS KMS EncryptionContext, Cloud KMS
 * additionalAuthenticatedData, AES-GCM AAD for Key Vault and the local KEK), so a blob stolen from
 * one node's disk header cannot be unwrapped for another node.
 */
import { malformed, rejected, unavailable, configError, AttestError } from './errors.js';
import { canonicalJson } from './canonical.js';
import { utf8 } from './encoding.js';

export interface KeyServiceLike {
  readonly kind: 'aws-kms' | 'gcp-kms' | 'azure-keyvault' | 'local';
  wrap(key: Uint8Array, context: Readonly<Record<string, string>>): Promise<Uint8Array>;
  unwrap(wrapped: Uint8Array, context: Readonly<Record<string, string>>): Promise<Uint8Array>;
  /**
   * AWS KMS only: generate a data key that KMS encrypts to the RSA `public_key` of a NitroTPM
   * attestation document (`Recipient`), so the caller never sees the plaintext.
   */
  generateForRecipient?(context: Readonly<Record<string, string>>, attestationDocument: Uint8Array): Promise<RecipientResult>;
  /** AWS KMS only: re-encrypt an existing wrapped key to a NitroTPM document's `public_key`. */
  unwrapForRecipient?(wrapped: Uint8Array, context: Readonly<Record<string, string>>, attestationDocument: Uint8Array): Promise<Uint8Array>;
}

export interface RecipientResult {
  /** KMS ciphertext blob (stored by the node, sent back on later boots). */
  wrapped: Uint8Array;
  /** CMS EnvelopedData (RFC 5652) encrypted to the document's public key, RSAES-OAEP-SHA-256. */
  ciphertextForRecipient: Uint8Array;
}

export const KmsCodes = {
  /** The KMS could not be reached or answered with a server-side / throttling error (HTTP 503). */
  KMS_UNAVAILABLE: 'KMS_UNAVAILABLE',
  /** The KMS or the AEAD refused to unwrap: wrong context, wrong key or a tampered blob. */
  KMS_UNWRAP_FAILED: 'KMS_UNWRAP_FAILED',
  /** The KMS refused the call (permissions, disabled key): a configuration fault of the broker. */
  KMS_DENIED: 'KMS_DENIED',
  /** The wrapped blob does not parse as this adapter's envelope. */
  KMS_WRAPPED_MALFORMED: 'KMS_WRAPPED_MALFORMED',
  /** The context is outside the limits below (empty, too many entries, too long, bad chars). */
  KMS_CONTEXT_INVALID: 'KMS_CONTEXT_INVALID',
  /** The KMS answered with something that is not what its API reference promises. */
  KMS_BAD_RESPONSE: 'KMS_BAD_RESPONSE',
} as const;

/** Limits chosen well inside every service's own (AWS EncryptionContext ≤ 8 KiB; Cloud KMS AAD ≤ 64 KiB). */
const MAX_ENTRIES = 16;
const MAX_LEN = 256;
const KEY_RE = /^[A-Za-z0-9:_./-]{1,64}$/;
/** Disk keys are 256-bit; adapters wrap nothing else. */
export const MAX_WRAP_INPUT = 64;

/** Validates a context: 1..16 entries, keys from a small alphabet, printable values ≤ 256 chars. */
export function checkContext(context: Readonly<Record<string, string>>): void {
  const keys = Object.keys(context);
  if (keys.length === 0 || keys.length > MAX_ENTRIES) {
    throw malformed(KmsCodes.KMS_CONTEXT_INVALID, `context must have 1..${MAX_ENTRIES} entries`);
  }
  for (const k of keys) {
    const v = context[k];
    if (!KEY_RE.test(k)) throw malformed(KmsCodes.KMS_CONTEXT_INVALID, 'context key has characters outside [A-Za-z0-9:_./-]');
    // eslint-disable-next-line no-control-regex
    if (typeof v !== 'string' || v.length === 0 || v.length > MAX_LEN || /[\u0000-\u001f\u007f]/.test(v)) {
      throw malformed(KmsCodes.KMS_CONTEXT_INVALID, `context value for ${k} must be 1..${MAX_LEN} printable characters`);
    }
  }
}

/**
 * The context as AAD bytes: a domain label, then canonical JSON (sorted keys, no whitespace), so
 * the same map always gives the same bytes and no two maps give the same bytes.
 */
export function contextAad(label: string, context: Readonly<Record<string, string>>): Uint8Array {
  checkContext(context);
  return utf8(`${label}\n${canonicalJson(context)}`);
}

export function checkKeyInput(key: Uint8Array): void {
  if (key.byteLength === 0 || key.byteLength > MAX_WRAP_INPUT) {
    throw malformed(KmsCodes.KMS_CONTEXT_INVALID, `key to wrap must be 1..${MAX_WRAP_INPUT} bytes`);
  }
}

/**
 * Classifies an HTTP status from a KMS REST API: 5xx, 429 and 408 are outages (retry later);
 * 401/403 are the broker's own misconfiguration; other 4xx on unwrap are refusals.
 */
export function kmsHttpError(service: string, op: 'wrap' | 'unwrap', status: number, cause?: unknown): AttestError {
  if (status >= 500 || status === 429 || status === 408) {
    return unavailable(KmsCodes.KMS_UNAVAILABLE, `${service} ${op}: HTTP ${status}`, { cause, retryAfter: 5 });
  }
  if (status === 401 || status === 403) {
    return configError(KmsCodes.KMS_DENIED, `${service} ${op}: HTTP ${status} (credentials or key permissions)`, { cause });
  }
  if (op === 'unwrap') return rejected(KmsCodes.KMS_UNWRAP_FAILED, `${service} refused to unwrap (HTTP ${status})`, { cause });
  return configError(KmsCodes.KMS_DENIED, `${service} ${op}: HTTP ${status}`, { cause });
}

/** A network-level failure (connection refused, reset, DNS, abort): the KMS is unavailable. */
export function kmsNetworkError(service: string, op: 'wrap' | 'unwrap', cause: unknown): AttestError {
  if (cause instanceof AttestError) return cause;
  return unavailable(KmsCodes.KMS_UNAVAILABLE, `${service} ${op}: unreachable`, { cause, retryAfter: 5 });
}

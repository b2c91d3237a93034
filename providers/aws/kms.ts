/**
 * @module providers/aws/kms
 *
 * Disk-key wrapping with AWS KMS (`KeyService` kind 'aws-kms') through the official
 * @aws-sdk/client-kms (it runs on Node and, with its fetch handler, on Workers).
 *
 * API reference: AWS KMS API Reference — Encrypt, Decrypt, GenerateDataKey
 * (https://docs.aws.amazon.com/kms/latest/APIReference/), wire protocol AWS JSON 1.1
 * (`X-Amz-Target: TrentService.<Op>`).
 *
 * - wrap → `Encrypt{KeyId, Plaintext, EncryptionContext}`; the returned CiphertextBlob is the
 *   wrapped key. KMS binds the EncryptionContext cryptographically (as AAD): `Decrypt` with any
 *   other context fails with InvalidCiphertextException.
 * - unwrap → `Decrypt{KeyId, CiphertextBlob, EncryptionContext}`. KeyId is always sent, so a blob
 *   made under another KMS key (e.g. an attacker's key in another account) is refused
 *   (IncorrectKeyException) instead of being decrypted under whatever key it names.
 * - NitroTPM (https://docs.aws.amazon.com/kms/latest/developerguide/cryptographic-attestation.html):
 *   `GenerateDataKey`/`Decrypt` with `Recipient{KeyEncryptionAlgorithm: RSAES_OAEP_SHA_256,
 *   AttestationDocument}` make KMS return `CiphertextForRecipient` (CMS EnvelopedData to the
 *   document's RSA `public_key`) and no Plaintext: the broker never sees the key. KMS itself
 *   verifies the document and evaluates key-policy conditions such as
 *   `kms:RecipientAttestation:NitroTPMPCR4` (docs/release.md shows a key policy).
 *
 * Error mapping (exception name, AWS "Common Errors" and per-operation errors):
 * - InvalidCiphertextException, IncorrectKeyException → KMS_UNWRAP_FAILED (403-class: wrong identity);
 * - AccessDeniedException, DisabledException, NotFoundException, KMSInvalidStateException,
 *   InvalidKeyUsageException, UnrecognizedClientException → KMS_DENIED (broker misconfigured);
 * - KMSInternalException, KeyUnavailableException, DependencyTimeoutException,
 *   ThrottlingException, any 5xx or network error → KMS_UNAVAILABLE (503, retry later).
 * A response missing its promised field is KMS_BAD_RESPONSE; a plaintext present together with a
 * Recipient is refused (the broker must not hold it).
 */
import { DecryptCommand, EncryptCommand, GenerateDataKeyCommand, type KMSClient } from '@aws-sdk/client-kms';
import { AttestError, configError, rejected, unavailable } from '../common/errors.js';
import { KmsCodes, checkContext, checkKeyInput, type KeyServiceLike, type RecipientResult } from '../common/keyservice.js';

export interface AwsKmsOptions {
  /** Key ARN (preferred) or alias ARN of a SYMMETRIC_DEFAULT key. */
  keyId: string;
  /** A configured KMSClient (region, credentials; endpoint only in tests). */
  client: Pick<KMSClient, 'send'>;
}

const UNWRAP_FAILED = new Set(['InvalidCiphertextException', 'IncorrectKeyException']);
const DENIED = new Set([
  'AccessDeniedException',
  'DisabledException',
  'NotFoundException',
  'KMSInvalidStateException',
  'InvalidKeyUsageException',
  'UnrecognizedClientException',
  'InvalidSignatureException',
]);

/** Retryable by name even when AWS marks them client faults (ThrottlingException is HTTP 400). */
const OUTAGE = new Set(['ThrottlingException', 'KMSInternalException', 'KeyUnavailableException', 'DependencyTimeoutException']);

function mapError(op: 'wrap' | 'unwrap', e: unknown): AttestError {
  if (e instanceof AttestError) return e;
  const err = e as { name?: string; $fault?: string; $metadata?: { httpStatusCode?: number } };
  const name = err?.name ?? '';
  if (UNWRAP_FAILED.has(name) && op === 'unwrap') return rejected(KmsCodes.KMS_UNWRAP_FAILED, `AWS KMS refused to unwrap (${name})`, { cause: e });
  if (DENIED.has(name) || UNWRAP_FAILED.has(name)) return configError(KmsCodes.KMS_DENIED, `AWS KMS ${op}: ${name}`, { cause: e });
  const status = err?.$metadata?.httpStatusCode;
  if (OUTAGE.has(name)) return unavailable(KmsCodes.KMS_UNAVAILABLE, `AWS KMS ${op}: ${name}`, { cause: e, retryAfter: 5 });
  if (err?.$fault === 'client' && status !== undefined && status < 500 && status !== 429) {
    return configError(KmsCodes.KMS_DENIED, `AWS KMS ${op}: ${name || 'client error'} (HTTP ${status})`, { cause: e });
  }
  return unavailable(KmsCodes.KMS_UNAVAILABLE, `AWS KMS ${op}: ${name || 'unreachable'}`, { cause: e, retryAfter: 5 });
}

function bytes(v: Uint8Array | undefined, what: string): Uint8Array {
  if (!(v instanceof Uint8Array) || v.byteLength === 0) throw unavailable(KmsCodes.KMS_BAD_RESPONSE, `AWS KMS response lacks ${what}`);
  return v;
}

export class AwsKmsKeyService implements KeyServiceLike {
  readonly kind = 'aws-kms' as const;
  readonly #o: AwsKmsOptions;

  constructor(o: AwsKmsOptions) {
    if (!o.keyId) throw configError('KMS_CONFIG_INVALID', 'AWS KMS keyId is required');
    this.#o = o;
  }

  async wrap(key: Uint8Array, context: Readonly<Record<string, string>>): Promise<Uint8Array> {
    checkKeyInput(key);
    checkContext(context);
    try {
      const r = await this.#o.client.send(new EncryptCommand({ KeyId: this.#o.keyId, Plaintext: key, EncryptionContext: { ...context } }));
      return bytes(r.CiphertextBlob, 'CiphertextBlob');
    } catch (e) {
      throw mapError('wrap', e);
    }
  }

  async unwrap(wrapped: Uint8Array, context: Readonly<Record<string, string>>): Promise<Uint8Array> {
    checkContext(context);
    try {
      const r = await this.#o.client.send(new DecryptCommand({ KeyId: this.#o.keyId, CiphertextBlob: wrapped, EncryptionContext: { ...context } }));
      return bytes(r.Plaintext, 'Plaintext');
    } catch (e) {
      throw mapError('unwrap', e);
    }
  }

  async generateForRecipient(context: Readonly<Record<string, string>>, attestationDocument: Uint8Array): Promise<RecipientResult> {
    checkContext(context);
    try {
      const r = await this.#o.client.send(
        new GenerateDataKeyCommand({
          KeyId: this.#o.keyId,
          KeySpec: 'AES_256',
          EncryptionContext: { ...context },
          Recipient: { KeyEncryptionAlgorithm: 'RSAES_OAEP_SHA_256', AttestationDocument: attestationDocument },
        }),
      );
      if (r.Plaintext && r.Plaintext.byteLength > 0) throw unavailable(KmsCodes.KMS_BAD_RESPONSE, 'AWS KMS returned a plaintext despite Recipient');
      return { wrapped: bytes(r.CiphertextBlob, 'CiphertextBlob'), ciphertextForRecipient: bytes(r.CiphertextForRecipient, 'CiphertextForRecipient') };
    } catch (e) {
      throw mapError('wrap', e);
    }
  }

  async unwrapForRecipient(wrapped: Uint8Array, context: Readonly<Record<string, string>>, attestationDocument: Uint8Array): Promise<Uint8Array> {
    checkContext(context);
    try {
      const r = await this.#o.client.send(
        new DecryptCommand({
          KeyId: this.#o.keyId,
          CiphertextBlob: wrapped,
          EncryptionContext: { ...context },
          Recipient: { KeyEncryptionAlgorithm: 'RSAES_OAEP_SHA_256', AttestationDocument: attestationDocument },
        }),
      );
      if (r.Plaintext && r.Plaintext.byteLength > 0) throw unavailable(KmsCodes.KMS_BAD_RESPONSE, 'AWS KMS returned a plaintext despite Recipient');
      return bytes(r.CiphertextForRecipient, 'CiphertextForRecipient');
    } catch (e) {
      throw mapError('unwrap', e);
    }
  }
}

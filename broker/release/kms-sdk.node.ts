/**
 * @module broker/release/kms-sdk.node
 *
 * Node-only transports that put the official SDKs behind the Web-API adapters of providers/:
 * - Cloud KMS: @google-cloud/kms `KeyManagementServiceClient` (gRPC, or its REST fallback with
 *   `fallback: true`) as a `CloudKmsTransport` for providers/gcp/kms.ts;
 * (AWS KMS needs none: providers/aws/kms.ts uses @aws-sdk/client-kms directly, which runs on both
 * runtimes; Key Vault takes any @azure/identity `TokenCredential` directly.)
 *
 * gax errors carry a gRPC status `code` (google/rpc/code.proto; the REST fallback maps HTTP
 * statuses onto the same codes): INVALID_ARGUMENT(3) on decrypt is a refusal (wrong AAD or
 * ciphertext); PERMISSION_DENIED(7), UNAUTHENTICATED(16), NOT_FOUND(5), FAILED_PRECONDITION(9)
 * are the broker's misconfiguration; everything else (UNAVAILABLE 14, DEADLINE_EXCEEDED 4,
 * RESOURCE_EXHAUSTED 8, INTERNAL 13, network errors) is an outage.
 */
import type { KeyManagementServiceClient } from '@google-cloud/kms';
import { configError, rejected, unavailable, AttestError } from '../../providers/common/errors.js';
import { KmsCodes } from '../../providers/common/keyservice.js';
import { int64, type CloudKmsTransport } from '../../providers/gcp/kms.js';

/** gax call options (retry, timeout). */
export interface KmsCallOptions {
  timeout?: number;
  maxRetries?: number;
}

function mapGaxError(op: 'wrap' | 'unwrap', e: unknown): AttestError {
  if (e instanceof AttestError) return e;
  const code = (e as { code?: unknown })?.code;
  if (code === 3 && op === 'unwrap') return rejected(KmsCodes.KMS_UNWRAP_FAILED, 'Cloud KMS refused to decrypt (INVALID_ARGUMENT)', { cause: e });
  if (code === 7 || code === 16 || code === 5 || code === 9 || code === 3) return configError(KmsCodes.KMS_DENIED, `Cloud KMS ${op}: gRPC status ${String(code)}`, { cause: e });
  return unavailable(KmsCodes.KMS_UNAVAILABLE, `Cloud KMS ${op}: ${typeof code === 'number' ? `gRPC status ${code}` : 'unreachable'}`, { cause: e, retryAfter: 5 });
}

const bytes = (v: unknown, what: string): Uint8Array => {
  if (v instanceof Uint8Array && v.byteLength > 0) return new Uint8Array(v);
  if (typeof v === 'string' && v.length > 0) return new Uint8Array(Buffer.from(v, 'base64'));
  throw unavailable(KmsCodes.KMS_BAD_RESPONSE, `Cloud KMS response lacks ${what}`);
};

export function cloudKmsSdk(client: KeyManagementServiceClient, callOptions: KmsCallOptions = {}): CloudKmsTransport {
  return {
    async encrypt(name, plaintext, aad, pc, ac) {
      try {
        const [r] = await client.encrypt(
          { name, plaintext: Buffer.from(plaintext), additionalAuthenticatedData: Buffer.from(aad), plaintextCrc32c: { value: pc }, additionalAuthenticatedDataCrc32c: { value: ac } },
          callOptions,
        );
        return {
          ciphertext: bytes(r.ciphertext, 'ciphertext'),
          ciphertextCrc32c: int64(r.ciphertextCrc32c),
          verifiedPlaintextCrc32c: r.verifiedPlaintextCrc32c === true,
          verifiedAdditionalAuthenticatedDataCrc32c: r.verifiedAdditionalAuthenticatedDataCrc32c === true,
        };
      } catch (e) {
        throw mapGaxError('wrap', e);
      }
    },
    async decrypt(name, ciphertext, aad, cc, ac) {
      try {
        const [r] = await client.decrypt(
          { name, ciphertext: Buffer.from(ciphertext), additionalAuthenticatedData: Buffer.from(aad), ciphertextCrc32c: { value: cc }, additionalAuthenticatedDataCrc32c: { value: ac } },
          callOptions,
        );
        return { plaintext: bytes(r.plaintext, 'plaintext'), plaintextCrc32c: int64(r.plaintextCrc32c) };
      } catch (e) {
        throw mapGaxError('unwrap', e);
      }
    },
  };
}

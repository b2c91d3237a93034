/**
 * @module deploy/node/client/activation
 *
 * The second step of a generic-TPM join (TPM 2.0 Part 1 §24 "Credential Protection"): the
 * broker cannot trust an AK it has never seen, so it makes a credential for the AK's Name
 * under the EK from the node's EK certificate (TPM2_MakeCredential, done in software), and
 * only a TPM holding both that EK and that AK can recover the secret
 * (TPM2_ActivateCredential).
 *
 * Wire (proposed here; the broker side lives with the TPM provider — see docs/join.md):
 *   POST /v1/attest → 401 application/problem+json
 *     { "code": "ACTIVATION_REQUIRED", …, "activation": {
 *         "activationId": string,
 *         "credentialBlob": b64url(TPM2B_ID_OBJECT, with its u16 size),
 *         "encryptedSecret": b64url(TPM2B_ENCRYPTED_SECRET, with its u16 size) } }
 *   POST /v1/attest/activate { "activationId", "secret": b64url(recovered credential) }
 *     → 200 exactly as /v1/attest.
 * The activation id is single-use and expires with the challenge; the recovered credential
 * is compared in constant time by the broker.
 */
import { ByteReader } from '../../../providers/common/bytes.js';
import { fromBase64Url } from '../../../providers/common/encoding.js';
import { JoinCodes, joinError } from './codes.js';

export const ACTIVATION_REQUIRED = 'ACTIVATION_REQUIRED';
export const ACTIVATE_PATH = '/v1/attest/activate';

export interface ActivationChallenge {
  activationId: string;
  /** TPM2B_ID_OBJECT (size-prefixed). */
  credentialBlob: Uint8Array;
  /** TPM2B_ENCRYPTED_SECRET (size-prefixed). */
  encryptedSecret: Uint8Array;
}

/** Checks the broker's activation member: both fields must be exactly one well-formed TPM2B. */
export function parseActivation(problem: Record<string, unknown>): ActivationChallenge {
  const a = problem.activation;
  if (!a || typeof a !== 'object') throw joinError(JoinCodes.ACTIVATION_INVALID, 'ACTIVATION_REQUIRED without an activation member');
  const { activationId, credentialBlob, encryptedSecret } = a as Record<string, unknown>;
  if (typeof activationId !== 'string' || activationId.length === 0 || activationId.length > 256) {
    throw joinError(JoinCodes.ACTIVATION_INVALID, 'activation.activationId missing or malformed');
  }
  const tpm2b = (v: unknown, what: string, max: number): Uint8Array => {
    try {
      if (typeof v !== 'string') throw new Error('not a string');
      const b = fromBase64Url(v, what);
      const r = new ByteReader(b);
      r.tpm2b(what, max);
      r.end(what);
      return b;
    } catch (cause) {
      throw joinError(JoinCodes.ACTIVATION_INVALID, `activation.${what} is not one TPM2B`, { cause });
    }
  };
  return {
    activationId,
    // TPM2B_ID_OBJECT ≤ sizeof(TPMS_ID_OBJECT) (integrityHMAC + encIdentity: a few hundred
    // bytes); TPM2B_ENCRYPTED_SECRET ≤ sizeof(TPMU_ENCRYPTED_SECRET) (512 for RSA-4096).
    credentialBlob: tpm2b(credentialBlob, 'credentialBlob', 1024),
    encryptedSecret: tpm2b(encryptedSecret, 'encryptedSecret', 1024),
  };
}

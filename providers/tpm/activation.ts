/**
 * @module providers/tpm/activation
 *
 * The broker side of credential activation (docs/tpm.md "Credential activation"): proof that
 * an AK is resident in the same TPM as an EK whose certificate chains to a TPM vendor root.
 *
 * - `beginActivation` seals a fresh random secret with TPM2_MakeCredential to (EK, AK Name) and
 *   returns what the node needs (`challenge`, safe to send: only that TPM can open it) and what
 *   the broker must keep until the answer arrives (`pending`: the AK Name, the EK digest and
 *   SHA-256 of the secret — never the secret itself, so a store dump cannot answer a challenge).
 * - `checkActivation` compares the node's answer with `pending`: the secret by SHA-256 in
 *   constant time, and the AK Name and EK digest of the *new* attest request, so the AK that just
 *   quoted is the one that was activated. Any difference is `ACTIVATION_FAILED`.
 *
 * Both are pure functions (randomness and hashing through WebCrypto); storing `pending` with a
 * TTL, single use, is the caller's job (`ActivationStore`).
 */
import { rejected } from '../common/errors.js';
import { sha256 } from '../common/digest.js';
import { fromHex, toBase64Url, toHex } from '../common/encoding.js';
import { timingSafeEqual } from '../common/ct.js';
import { TpmCodes } from './codes.js';
import { checkName, makeCredential, type MakeCredentialOptions } from './credential.js';
import { parseTpm2bPublic, type TpmtPublic } from './structures.js';
import { keyFromTpmtPublic, keySha256 } from './keys.js';

/** What the broker keeps between the two attest requests (JSON-serializable, no secret). */
export interface PendingActivation {
  readonly v: 1;
  /** AK Name (hex) the credential was sealed for. */
  readonly akName: string;
  /** SHA-256 (hex) of the EK's canonical SPKI. */
  readonly ekSha256: string;
  /** SHA-256 (hex) of the secret. */
  readonly secretSha256: string;
}

/** What the node receives (all base64url) and feeds to `tpm2_activatecredential`. */
export interface ActivationChallenge {
  /** The file `tpm2_activatecredential -i` reads (tpm2-tools format). */
  readonly credential: string;
  /** TPM2B_ID_OBJECT and TPM2B_ENCRYPTED_SECRET, for TSS libraries other than tpm2-tools. */
  readonly credentialBlob: string;
  readonly encryptedSecret: string;
}

/** Pending activations, keyed by an unguessable id; `take` is atomic and single use. */
export interface ActivationStore {
  put(id: string, pending: PendingActivation, ttlMs: number): Promise<void>;
  /** Returns and deletes the record; null when absent, expired or already taken. */
  take(id: string): Promise<PendingActivation | null>;
}

/** Secret size: 32 bytes, within every EK nameAlg's digest size except SHA-1 (20). */
const SECRET_BYTES = 32;

/** SHA-256 of the EK's canonical SPKI, the EK's identity in claims and in `pending`. */
export async function ekSha256(ek: TpmtPublic): Promise<string> {
  return toHex(await keySha256(keyFromTpmtPublic(ek)));
}

export async function beginActivation(input: {
  ekPublic: TpmtPublic | Uint8Array;
  akName: Uint8Array;
  options?: MakeCredentialOptions;
}): Promise<{ challenge: ActivationChallenge; pending: PendingActivation }> {
  const ek = input.ekPublic instanceof Uint8Array ? parseTpm2bPublic(input.ekPublic) : input.ekPublic;
  checkName(input.akName);
  const random = input.options?.random ?? ((n: number) => crypto.getRandomValues(new Uint8Array(n)));
  const size = ek.nameAlg === 'sha1' ? 20 : SECRET_BYTES;
  const secret = random(size);
  const made = await makeCredential(ek, input.akName, secret, { random });
  const pending: PendingActivation = Object.freeze({
    v: 1,
    akName: toHex(input.akName),
    ekSha256: await ekSha256(ek),
    secretSha256: toHex(await sha256(secret)),
  });
  secret.fill(0);
  return {
    challenge: Object.freeze({
      credential: toBase64Url(made.tpm2ToolsFile),
      credentialBlob: toBase64Url(made.credentialBlob),
      encryptedSecret: toBase64Url(made.encryptedSecret),
    }),
    pending,
  };
}

/** Runtime shape check for a record read back from a store. */
export function isPendingActivation(x: unknown): x is PendingActivation {
  if (typeof x !== 'object' || x === null) return false;
  const p = x as Record<string, unknown>;
  const hex = (v: unknown, len?: number): boolean => typeof v === 'string' && /^(?:[0-9a-f]{2})+$/.test(v) && (len === undefined || v.length === len);
  return p.v === 1 && hex(p.akName) && hex(p.ekSha256, 64) && hex(p.secretSha256, 64) && Object.keys(p).length === 4;
}

/**
 * Checks the node's answer. Throws `ACTIVATION_FAILED` unless the secret's SHA-256, the AK Name
 * and the EK digest all equal the pending record's.
 */
export async function checkActivation(
  pending: PendingActivation,
  answer: { akName: Uint8Array; ekSha256: string; secret: Uint8Array },
): Promise<void> {
  if (!isPendingActivation(pending)) throw rejected(TpmCodes.ACTIVATION_FAILED, 'the pending activation record is malformed');
  const secretOk = timingSafeEqual(await sha256(answer.secret), fromHex(pending.secretSha256));
  const akOk = timingSafeEqual(answer.akName, fromHex(pending.akName));
  const ekOk = /^[0-9a-f]{64}$/.test(answer.ekSha256) && timingSafeEqual(fromHex(answer.ekSha256), fromHex(pending.ekSha256));
  if (!(secretOk && akOk && ekOk)) {
    throw rejected(TpmCodes.ACTIVATION_FAILED, 'credential activation failed: wrong secret, or a different AK or EK than the one challenged');
  }
}

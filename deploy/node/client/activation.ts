/**
 * @module deploy/node/client/activation
 *
 * The second step of a generic-TPM join (TPM 2.0 Part 1 §24 "Credential Protection"): the
 * broker cannot trust an AK it has never seen, so it makes a credential for the AK's Name
 * under the EK from the node's EK certificate (TPM2_MakeCredential, in software), and only a
 * TPM holding both that EK and that AK can recover the secret (TPM2_ActivateCredential).
 *
 * Wire (docs/tpm.md "Credential activation", the broker's `tpm` provider):
 *   POST /v1/attest → 403 application/problem+json, code ACTIVATION_REQUIRED, with member
 *     "activation": { "id", "credential": b64url(tpm2-tools credential file),
 *                     "credentialBlob": b64url(TPM2B_ID_OBJECT),
 *                     "encryptedSecret": b64url(TPM2B_ENCRYPTED_SECRET), "expiresInSeconds" }
 *   then a NEW challenge, a new quote with the same AK, and
 *   POST /v1/attest with the same evidence plus "activation": { "id", "secret": b64url }
 *   inside `evidence` (every challenge stays single use; each quote is fresh).
 *
 * Everything from the broker is checked before it reaches the TPM: the credential file must be
 * exactly magic 0xBADCC0DE, version 1, one TPM2B_ID_OBJECT and one TPM2B_ENCRYPTED_SECRET
 * (tpm2-tools lib/files.c layout); when only the two TPM2Bs are sent, the file is built here.
 */
import { ByteReader, concat } from '../../../providers/common/bytes.js';
import { fromBase64Url } from '../../../providers/common/encoding.js';
import { JoinCodes, joinError } from './codes.js';

export const ACTIVATION_REQUIRED = 'ACTIVATION_REQUIRED';

export interface ActivationChallenge {
  id: string;
  /** The tpm2-tools credential file `tpm2_activatecredential -i` reads. */
  credentialFile: Uint8Array;
}

const ID_RE = /^[A-Za-z0-9_-]{8,128}$/;
/** TPM2B_ID_OBJECT ≤ sizeof(TPMS_ID_OBJECT); TPM2B_ENCRYPTED_SECRET ≤ 512 (RSA-4096): 1 KiB caps both. */
const MAX_TPM2B = 1024;

/**
 * tpm2-tools' credential file (tools/tpm2_makecredential.c, lib/files.c): u32 magic
 * 0xBADCC0DE, u32 version 1 (big-endian), TPM2B_ID_OBJECT, TPM2B_ENCRYPTED_SECRET.
 */
export function credentialFile(idObject: Uint8Array, encryptedSecret: Uint8Array): Uint8Array {
  const hdr = new Uint8Array([0xba, 0xdc, 0xc0, 0xde, 0, 0, 0, 1]);
  return concat(hdr, idObject, encryptedSecret);
}

function checkCredentialFile(f: Uint8Array): void {
  const r = new ByteReader(f);
  if (r.u32('magic') !== 0xbadcc0de) throw new Error('bad magic');
  if (r.u32('version') !== 1) throw new Error('bad version');
  r.tpm2b('TPM2B_ID_OBJECT', MAX_TPM2B);
  r.tpm2b('TPM2B_ENCRYPTED_SECRET', MAX_TPM2B);
  r.end('credential file');
}

function oneTpm2b(v: unknown, what: string): Uint8Array {
  if (typeof v !== 'string') throw new Error(`${what} missing`);
  const b = fromBase64Url(v, what);
  const r = new ByteReader(b);
  r.tpm2b(what, MAX_TPM2B);
  r.end(what);
  return b;
}

/** Reads the `activation` member of an ACTIVATION_REQUIRED problem. */
export function parseActivation(problem: Record<string, unknown>): ActivationChallenge {
  const a = problem.activation;
  if (!a || typeof a !== 'object' || Array.isArray(a)) throw joinError(JoinCodes.ACTIVATION_INVALID, 'ACTIVATION_REQUIRED without an activation member');
  const m = a as Record<string, unknown>;
  if (typeof m.id !== 'string' || !ID_RE.test(m.id)) throw joinError(JoinCodes.ACTIVATION_INVALID, 'activation.id missing or malformed');
  try {
    let file: Uint8Array;
    if (typeof m.credential === 'string') {
      file = fromBase64Url(m.credential, 'activation.credential');
      checkCredentialFile(file);
    } else {
      file = credentialFile(oneTpm2b(m.credentialBlob, 'credentialBlob'), oneTpm2b(m.encryptedSecret, 'encryptedSecret'));
    }
    return { id: m.id, credentialFile: file };
  } catch (cause) {
    throw joinError(JoinCodes.ACTIVATION_INVALID, `activation credential is malformed: ${(cause as Error).message}`, { cause });
  }
}

/**
 * @module deploy/node/client/codes
 *
 * Stable machine codes of the join client. The client fails with an `AttestError` (the project's
 * one error class) carrying one of these codes, or the broker's own RFC 9457 `code` when the
 * broker refused the node (`JOIN_REJECTED` wraps it in `detail.brokerCode`). Scripts and tests
 * match on codes, never on messages. Codes are a public contract: add, never rename.
 *
 * Exit statuses of `attest-broker join` (see `exitStatusFor`):
 * - 0 joined (kubeconfig written);
 * - 1 refused or failed (evidence, policy, TPM, release, files);
 * - 2 usage or configuration error (bad flag, bad pin syntax);
 * - 3 deadline exceeded or broker unreachable (worth retrying later: systemd restarts the unit).
 */
import { AttestError } from '../../../providers/common/errors.js';

export const JoinCodes = {
  /** A flag is missing or malformed (exit 2). */
  USAGE: 'JOIN_USAGE',
  /** `--deadline` passed before the join finished (exit 3). */
  DEADLINE_EXCEEDED: 'JOIN_DEADLINE_EXCEEDED',
  /** The broker could not be reached (DNS, connect, TLS handshake) before the deadline (exit 3). */
  BROKER_UNREACHABLE: 'JOIN_BROKER_UNREACHABLE',
  /** No certificate in the broker's TLS chain has the pinned SubjectPublicKeyInfo hash. */
  TLS_PIN_MISMATCH: 'JOIN_TLS_PIN_MISMATCH',
  /** The chain contains the pinned key but does not verify to it (or the name does not match). */
  TLS_VERIFY_FAILED: 'JOIN_TLS_VERIFY_FAILED',
  /** The broker refused the request with a 4xx problem; `detail.brokerCode` holds its code. */
  REJECTED: 'JOIN_REJECTED',
  /** The broker answered 5xx / 429 until the deadline. */
  BROKER_FAILED: 'JOIN_BROKER_FAILED',
  /** The attest POST was sent but no answer came back: the challenge may be spent. */
  OUTCOME_UNKNOWN: 'JOIN_OUTCOME_UNKNOWN',
  /** The broker's answer is not what the protocol says (shape, size, content type). */
  BAD_RESPONSE: 'JOIN_BAD_RESPONSE',
  /** A tpm2-tools (or nitro-tpm-attest) command failed or is missing. */
  TPM_TOOL_FAILED: 'JOIN_TPM_TOOL_FAILED',
  /** The NitroTPM vendor command (NSM request) got no answer, a malformed one, or a TPM error code. */
  NITRO_COMMAND_FAILED: 'JOIN_NITRO_COMMAND_FAILED',
  /** The NSM's answer in the NitroTPM message buffer is not a well-formed attestation response. */
  NITRO_RESPONSE_INVALID: 'JOIN_NITRO_RESPONSE_INVALID',
  /** The NSM answered the attestation request with its own error (`detail.nsmError`). */
  NITRO_NSM_ERROR: 'JOIN_NITRO_NSM_ERROR',
  /** A platform source the chosen platform requires is absent (NV index, IMDS, device). */
  EVIDENCE_UNAVAILABLE: 'JOIN_EVIDENCE_UNAVAILABLE',
  /**
   * A Confidential VM whose TEE report (SEV-SNP / TDX) cannot be gathered or sent: configfs-tsm
   * missing or failing while the kernel's guest device exists, an unreadable or malformed
   * report, a race on the report entry, or a TEE the broker cannot verify in this format. The
   * report is never silently left out; `ATTEST_GCP_TEE=none` joins knowingly without it.
   */
  TEE_REPORT_UNAVAILABLE: 'JOIN_TEE_REPORT_UNAVAILABLE',
  /**
   * `--gpu-evidence-cmd`: the GPU evidence gatherer is missing, exited non-zero, outlived the
   * deadline, printed too much or printed something that is not an nvtrust evidence array
   * (gpu.node.ts). The attest request is not sent.
   */
  GPU_EVIDENCE_FAILED: 'JOIN_GPU_EVIDENCE_FAILED',
  /** The release could not be opened or is malformed (wrong key, algorithm, shape). */
  RELEASE_INVALID: 'JOIN_RELEASE_INVALID',
  /** The broker sent an unsealed release although the client sent an ephemeral key. */
  RELEASE_NOT_SEALED: 'JOIN_RELEASE_NOT_SEALED',
  /** `--disk-key-out` was given but the release carries no disk key. */
  DISK_KEY_MISSING: 'JOIN_DISK_KEY_MISSING',
  /** Writing an output file failed. */
  WRITE_FAILED: 'JOIN_WRITE_FAILED',
  /** The broker asked for credential activation in a shape the client does not understand. */
  ACTIVATION_INVALID: 'JOIN_ACTIVATION_INVALID',
} as const;

export type JoinCode = (typeof JoinCodes)[keyof typeof JoinCodes];

export function joinError(
  code: JoinCode,
  message: string,
  opts: { cause?: unknown; retryAfter?: number; detail?: Record<string, unknown> } = {},
): AttestError {
  // The kind (and so the exit status) comes from the code table, never from the call site.
  return new AttestError(code, message, opts);
}

/** Process exit status for a failure (see the module header). */
export function exitStatusFor(e: unknown): number {
  if (e instanceof AttestError) {
    if (e.code === JoinCodes.USAGE || e.kind === 'config') return 2;
    if (e.code === JoinCodes.DEADLINE_EXCEEDED || e.code === JoinCodes.BROKER_UNREACHABLE || e.code === JoinCodes.BROKER_FAILED) return 3;
  }
  return 1;
}

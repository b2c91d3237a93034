/**
 * @module providers/tpm/codes
 *
 * Stable error codes of the TPM 2.0 core (structures, quote verification, credential
 * activation, the generic `tpm` provider). Codes are public contract: never rename one, add a
 * new one. Parser codes shared with every other format (TRUNCATED, TRAILING_BYTES,
 * RESERVED_NONZERO, LIMIT_EXCEEDED, BAD_ENCODING) live in `providers/common/errors.ts`.
 * Event-log codes live with the event-log parser.
 */
export const TpmCodes = {
  // --- structures (TCG TPM 2.0 Library Part 2) ---
  /** An algorithm identifier this implementation does not handle (or an illegal one for the field). */
  TPM_ALG_UNSUPPORTED: 'TPM_ALG_UNSUPPORTED',
  /** A structure is syntactically wrong beyond truncation (bad size, bad selector, bad key size). */
  TPM_STRUCTURE_INVALID: 'TPM_STRUCTURE_INVALID',

  // --- quote verification ---
  /** The AK's signature over the raw TPMS_ATTEST bytes does not verify. */
  QUOTE_SIGNATURE_INVALID: 'QUOTE_SIGNATURE_INVALID',
  /** TPMS_ATTEST.magic is not TPM_GENERATED_VALUE (0xff544347): not produced by a TPM. */
  QUOTE_MAGIC_INVALID: 'QUOTE_MAGIC_INVALID',
  /** TPMS_ATTEST.type is not TPM_ST_ATTEST_QUOTE. */
  QUOTE_TYPE_INVALID: 'QUOTE_TYPE_INVALID',
  /** TPMS_ATTEST.extraData differs from the expected binding. */
  NONCE_MISMATCH: 'NONCE_MISMATCH',
  /** The digest of the supplied PCR values differs from the quoted pcrDigest. */
  PCR_DIGEST_MISMATCH: 'PCR_DIGEST_MISMATCH',
  /** Supplied PCR values do not cover exactly the quote's PCR selection. */
  PCR_SELECTION_MISMATCH: 'PCR_SELECTION_MISMATCH',
  /** A supplied PCR value is not a digest of its bank's size (or not hex). */
  PCR_VALUE_INVALID: 'PCR_VALUE_INVALID',
  /** A hash / signature algorithm / PCR bank outside the caller's allow-list. */
  ALGORITHM_NOT_ALLOWED: 'ALGORITHM_NOT_ALLOWED',
  /** The AK's TPMA_OBJECT is not that of a restricted signing key resident in a TPM. */
  AK_ATTRIBUTES_INVALID: 'AK_ATTRIBUTES_INVALID',
  /** The AK public key is unusable (bad JWK/SPKI/point, wrong size, unsupported key type). */
  AK_INVALID: 'AK_INVALID',
  /** The signature's scheme / hash / key type differs from what the AK is bound to. */
  SIGNATURE_SCHEME_MISMATCH: 'SIGNATURE_SCHEME_MISMATCH',

  // --- credential activation / EK ---
  /** The EK public area is not a usable storage (restricted decrypt) key. */
  EK_INVALID: 'EK_INVALID',
  /** The EK certificate's key differs from the EK public area. */
  EK_CERTIFICATE_MISMATCH: 'EK_CERTIFICATE_MISMATCH',
  /** The node must first prove AK/EK co-residence (two-step attest: see docs/tpm.md). */
  ACTIVATION_REQUIRED: 'ACTIVATION_REQUIRED',
  /** The secret returned by the node is not the one sealed to its EK for this AK. */
  ACTIVATION_FAILED: 'ACTIVATION_FAILED',
  /** The AK's digest is not on the configured allow-list. */
  AK_NOT_PINNED: 'AK_NOT_PINNED',

  // --- generic provider ---
  /** The evidence object does not match the `tpm` format of protocol §3. */
  EVIDENCE_INVALID: 'EVIDENCE_INVALID',
  /** An event log was supplied but this broker cannot replay event logs (never silently ignored). */
  EVENTLOG_UNSUPPORTED: 'EVENTLOG_UNSUPPORTED',
  /** The `tpm` provider options are invalid. */
  TPM_OPTIONS_INVALID: 'TPM_OPTIONS_INVALID',
} as const;

export type TpmCode = (typeof TpmCodes)[keyof typeof TpmCodes];

/**
 * @module providers/nvidia/codes
 *
 * Every error code the NVIDIA GPU verifier throws, in one `as const` object. The comment on each
 * says its kind — malformed (HTTP 400), rejected (403), unavailable (503) or config (500) — which
 * is the `kind` it is constructed with (`providers/common/errors.ts` helpers); the lead folds
 * these into the central table at merge.
 *
 * Codes shared with the rest of the project are reused as they are: `TRUNCATED`,
 * `TRAILING_BYTES`, `RESERVED_NONZERO`, `LIMIT_EXCEEDED` and `BAD_ENCODING` (malformed, from
 * `ByteReader` and the strict decoders) and `CERT_MALFORMED` (malformed, unparseable
 * certificate). Every code here carries the `NVIDIA_` prefix so none collides with another
 * provider's code of the same name but a different meaning.
 */
export const NvidiaCodes = {
  // --- malformed (400): the evidence or a manifest cannot be read ---------------------------
  /** malformed: the evidence JSON is not nvtrust's array of `{arch, nonce, evidence, certificate, …}`. */
  EVIDENCE_MALFORMED: 'NVIDIA_EVIDENCE_MALFORMED',
  /** malformed: more GPUs in one evidence array than `maxGpus` allows (or none at all). */
  GPU_COUNT_INVALID: 'NVIDIA_GPU_COUNT_INVALID',
  /** malformed: the SPDM GET_MEASUREMENTS / MEASUREMENTS bytes break DSP0274 1.1 or NVIDIA's profile of it. */
  SPDM_MALFORMED: 'NVIDIA_SPDM_MALFORMED',
  /** malformed: NVIDIA's opaque-data TLVs are broken (duplicate or unknown field, bad size or value). */
  OPAQUE_MALFORMED: 'NVIDIA_OPAQUE_MALFORMED',
  /** malformed: an opaque-data layout this verifier does not read (the `NVDAOD` header format, version > 1). */
  OPAQUE_UNSUPPORTED: 'NVIDIA_OPAQUE_UNSUPPORTED',
  /** malformed: a RIM is not the strict SWID + enveloped XML-DSig shape (XML syntax, DTD, structure, caps). */
  RIM_MALFORMED: 'NVIDIA_RIM_MALFORMED',

  // --- rejected (403): parsed, but not authentic, not bound, or not what NVIDIA signed -------
  /** rejected: the GET_MEASUREMENTS request nonce is not the expected 32-byte binding. */
  NONCE_MISMATCH: 'NVIDIA_NONCE_MISMATCH',
  /** rejected: the report's ECDSA P-384 signature does not verify with the leaf certificate's key. */
  SIGNATURE_INVALID: 'NVIDIA_SIGNATURE_INVALID',
  /** rejected: the device chain does not reach the pinned NVIDIA Device Identity CA, or the evidence carries a different root. */
  DEVICE_CHAIN_UNTRUSTED: 'NVIDIA_DEVICE_CHAIN_UNTRUSTED',
  /** rejected: the device chain reaches the pinned root but a link is invalid (signature, CA flags, dates, order, algorithm). */
  DEVICE_CHAIN_INVALID: 'NVIDIA_DEVICE_CHAIN_INVALID',
  /** rejected: the leaf's DICE FWID differs from the report's opaque FWID. */
  FWID_MISMATCH: 'NVIDIA_FWID_MISMATCH',
  /** rejected: one side of the FWID binding is absent (leaf extension missing, or report FWID missing while required). */
  FWID_MISSING: 'NVIDIA_FWID_MISSING',
  /** rejected: the unsigned JSON members (nonce, arch, driver_version, vbios_version) contradict the signed report. */
  EVIDENCE_INCONSISTENT: 'NVIDIA_EVIDENCE_INCONSISTENT',
  /** rejected: the chip is not one this verifier knows (GH100, GB100) or its architecture is not in `allowedArchs`. */
  ARCH_NOT_ALLOWED: 'NVIDIA_ARCH_NOT_ALLOWED',
  /** rejected: two entries of one evidence array come from the same physical GPU. */
  DUPLICATE_GPU: 'NVIDIA_DUPLICATE_GPU',
  /** rejected: a RIM's XML-DSig SignatureValue does not verify over its canonical SignedInfo. */
  RIM_SIGNATURE_INVALID: 'NVIDIA_RIM_SIGNATURE_INVALID',
  /** rejected: the SHA-384 of the canonical, signature-less RIM is not the signed DigestValue (payload edited). */
  RIM_DIGEST_MISMATCH: 'NVIDIA_RIM_DIGEST_MISMATCH',
  /** rejected: a certificate of the RIM signer chain is expired or not yet valid at the verification time. */
  RIM_SIGNER_EXPIRED: 'NVIDIA_RIM_SIGNER_EXPIRED',
  /** rejected: the RIM signer chain does not reach the pinned NVIDIA CoRIM signing Root CA. */
  RIM_SIGNER_UNTRUSTED: 'NVIDIA_RIM_SIGNER_UNTRUSTED',
  /** rejected: the RIM signer chain reaches the pinned root but a link is invalid (signature, CA flags, order, algorithm). */
  RIM_CHAIN_INVALID: 'NVIDIA_RIM_CHAIN_INVALID',
  /** rejected: a validly signed RIM is for another version or chip than the report (wrong RIM for this GPU). */
  RIM_VERSION_MISMATCH: 'NVIDIA_RIM_VERSION_MISMATCH',
  /** rejected: the driver and VBIOS RIMs both claim the same active measurement index. */
  RIM_CONFLICT: 'NVIDIA_RIM_CONFLICT',
  /** rejected: the RIM source has no RIM for this id and `measurements` is `require`. */
  RIM_MISSING: 'NVIDIA_RIM_MISSING',
  /** rejected: an active golden measurement differs from the report (only with `measurements: 'require'`). */
  MEASUREMENT_MISMATCH: 'NVIDIA_MEASUREMENT_MISMATCH',
  /** rejected: OCSP says a certificate of the device or RIM chain is revoked (or on hold). */
  OCSP_REVOKED: 'NVIDIA_OCSP_REVOKED',

  // --- unavailable (503): a vendor service could not answer; retrying may succeed -----------
  /** unavailable: the RIM service failed (network, HTTP error, garbled answer). */
  RIM_UNAVAILABLE: 'NVIDIA_RIM_UNAVAILABLE',
  /** unavailable: `ocsp.mode` is `required` and no good, verified OCSP response was obtained. */
  OCSP_UNAVAILABLE: 'NVIDIA_OCSP_UNAVAILABLE',

  // --- config (500): the verifier is set up wrongly -----------------------------------------
  /** config: the options do not match the schema, or the binding is not 32 bytes. */
  OPTIONS_INVALID: 'NVIDIA_OPTIONS_INVALID',
  /** config: the trust store lacks the pinned NVIDIA root a step needs. */
  TRUST_ANCHOR_MISSING: 'NVIDIA_TRUST_ANCHOR_MISSING',
} as const;

export type NvidiaCode = (typeof NvidiaCodes)[keyof typeof NvidiaCodes];

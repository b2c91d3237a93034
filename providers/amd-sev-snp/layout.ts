/**
 * @module providers/amd-sev-snp/layout
 *
 * The ATTESTATION_REPORT layout, once: AMD SEV Secure Nested Paging Firmware ABI Specification,
 * "Attestation", Table "ATTESTATION_REPORT Structure" (1184 = 0x4A0 bytes, little-endian). The
 * parser (parse.ts) checks that it reads each field at this offset; the GCP converter
 * (providers/gcp/sevsnp.ts) writes each field at this offset. A test checks the table is
 * contiguous and covers the report exactly, and that a report rebuilt from go-sev-guest's
 * protobuf parses back to the same fields.
 */
export const SNP_LAYOUT = {
  VERSION: { off: 0x000, len: 4 },
  GUEST_SVN: { off: 0x004, len: 4 },
  POLICY: { off: 0x008, len: 8 },
  FAMILY_ID: { off: 0x010, len: 16 },
  IMAGE_ID: { off: 0x020, len: 16 },
  VMPL: { off: 0x030, len: 4 },
  SIGNATURE_ALGO: { off: 0x034, len: 4 },
  CURRENT_TCB: { off: 0x038, len: 8 },
  PLATFORM_INFO: { off: 0x040, len: 8 },
  SIGNER_INFO: { off: 0x048, len: 4 },
  RESERVED_04C: { off: 0x04c, len: 4 },
  REPORT_DATA: { off: 0x050, len: 64 },
  MEASUREMENT: { off: 0x090, len: 48 },
  HOST_DATA: { off: 0x0c0, len: 32 },
  ID_KEY_DIGEST: { off: 0x0e0, len: 48 },
  AUTHOR_KEY_DIGEST: { off: 0x110, len: 48 },
  REPORT_ID: { off: 0x140, len: 32 },
  REPORT_ID_MA: { off: 0x160, len: 32 },
  REPORTED_TCB: { off: 0x180, len: 8 },
  CPUID_FAM_ID: { off: 0x188, len: 1 },
  CPUID_MOD_ID: { off: 0x189, len: 1 },
  CPUID_STEP: { off: 0x18a, len: 1 },
  RESERVED_18B: { off: 0x18b, len: 21 },
  CHIP_ID: { off: 0x1a0, len: 64 },
  COMMITTED_TCB: { off: 0x1e0, len: 8 },
  CURRENT_BUILD: { off: 0x1e8, len: 1 },
  CURRENT_MINOR: { off: 0x1e9, len: 1 },
  CURRENT_MAJOR: { off: 0x1ea, len: 1 },
  RESERVED_1EB: { off: 0x1eb, len: 1 },
  COMMITTED_BUILD: { off: 0x1ec, len: 1 },
  COMMITTED_MINOR: { off: 0x1ed, len: 1 },
  COMMITTED_MAJOR: { off: 0x1ee, len: 1 },
  RESERVED_1EF: { off: 0x1ef, len: 1 },
  LAUNCH_TCB: { off: 0x1f0, len: 8 },
  LAUNCH_MIT_VECTOR: { off: 0x1f8, len: 8 },
  CURRENT_MIT_VECTOR: { off: 0x200, len: 8 },
  RESERVED_208: { off: 0x208, len: 152 },
  SIGNATURE_R: { off: 0x2a0, len: 72 },
  SIGNATURE_S: { off: 0x2e8, len: 72 },
  RESERVED_SIGNATURE: { off: 0x330, len: 368 },
} as const satisfies Record<string, { off: number; len: number }>;

export type SnpField = keyof typeof SNP_LAYOUT;

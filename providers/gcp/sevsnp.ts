/**
 * @module providers/gcp/sevsnp
 *
 * The SEV-SNP report inside a go-tpm-tools Attestation (`sev_snp_attestation`, field 8): a
 * go-sev-guest `sevsnp.Attestation` protobuf (go-sev-guest proto/sevsnp.proto), decoded with the
 * strict reader and turned back into the exact 1184-byte ATTESTATION_REPORT the AMD-SP signed,
 * which the shared SEV-SNP layer (providers/amd-sev-snp) then verifies to the pinned ARK.
 *
 * ```
 * sevsnp.Attestation   1 report Report   2 certificate_chain CertificateChain   3 product SevProduct
 * sevsnp.Report        1 version u32  2 guest_svn u32  3 policy u64  4 family_id (16)  5 image_id (16)
 *                      6 vmpl u32  7 signature_algo u32  8 current_tcb u64  9 platform_info u64
 *                      10 signer_info u32  11 report_data (64)  12 measurement (48)  13 host_data (32)
 *                      14 id_key_digest (48)  15 author_key_digest (48)  16 report_id (32)
 *                      17 report_id_ma (32)  18 reported_tcb u64  19 chip_id (64)  20 committed_tcb u64
 *                      21-23 current_build/minor/major u32 (< 256)  24-26 committed_… u32 (< 256)
 *                      27 launch_tcb u64  28 signature (512)  29 cpuid1eax_fms u32
 *                      30 launch_mit_vector u64  31 current_mit_vector u64
 * CertificateChain     1 vcek_cert  6 vlek_cert  2 ask_cert  3 ark_cert  4 firmware_cert  7 extras
 * SevProduct           1 name (1 Milan, 2 Genoa, 3 Turin)  2 stepping  3 machine_stepping
 * ```
 *
 * Rebuilding the report follows go-sev-guest `abi.ReportToAbiBytes` field for field, at the
 * offsets of the one layout table (providers/amd-sev-snp/layout.ts, from the SEV-SNP ABI spec):
 * reserved ranges are zero, the byte-sized version fields must fit a byte, signer_info bits 31:5 must be zero, and the CPUID
 * family/model/stepping bytes (version ≥ 3) come from cpuid(1).eax exactly as
 * `abi.FmsFromCpuid1Eax` computes them. Any field that did not come from the signed report makes
 * the signature check fail, so the rebuild cannot be steered into accepting anything.
 *
 * The ARK in the chain is ignored (roots are pinned); VCEK/VLEK and ASK come from the evidence
 * or, when absent, from AMD KDS through the injected fetch (providers/amd-sev-snp/kds.ts).
 */
import { concat } from '../common/bytes.js';
import { SNP_LAYOUT } from '../amd-sev-snp/layout.js';
import { SNP_REPORT_SIZE } from '../amd-sev-snp/parse.js';
import { malformed } from '../common/errors.js';
import { decodeMessage, getBytes, getNumber, getU64, has, type Schema } from './protobuf.js';

export const SevSnpProtoCodes = {
  /** The sevsnp.Attestation message is structurally wrong (sizes, byte-sized fields, signer_info). */
  SNP_PROTO_INVALID: 'SNP_PROTO_INVALID',
} as const;

const bytes = (max: number) => ({ kind: 'bytes', max }) as const;
const u32 = { kind: 'uint32' } as const;
const u64 = { kind: 'uint64' } as const;

const REPORT_SCHEMA: Schema = {
  1: { name: 'version', spec: u32 },
  2: { name: 'guest_svn', spec: u32 },
  3: { name: 'policy', spec: u64 },
  4: { name: 'family_id', spec: bytes(16) },
  5: { name: 'image_id', spec: bytes(16) },
  6: { name: 'vmpl', spec: u32 },
  7: { name: 'signature_algo', spec: u32 },
  8: { name: 'current_tcb', spec: u64 },
  9: { name: 'platform_info', spec: u64 },
  10: { name: 'signer_info', spec: u32 },
  11: { name: 'report_data', spec: bytes(64) },
  12: { name: 'measurement', spec: bytes(48) },
  13: { name: 'host_data', spec: bytes(32) },
  14: { name: 'id_key_digest', spec: bytes(48) },
  15: { name: 'author_key_digest', spec: bytes(48) },
  16: { name: 'report_id', spec: bytes(32) },
  17: { name: 'report_id_ma', spec: bytes(32) },
  18: { name: 'reported_tcb', spec: u64 },
  19: { name: 'chip_id', spec: bytes(64) },
  20: { name: 'committed_tcb', spec: u64 },
  21: { name: 'current_build', spec: u32 },
  22: { name: 'current_minor', spec: u32 },
  23: { name: 'current_major', spec: u32 },
  24: { name: 'committed_build', spec: u32 },
  25: { name: 'committed_minor', spec: u32 },
  26: { name: 'committed_major', spec: u32 },
  27: { name: 'launch_tcb', spec: u64 },
  28: { name: 'signature', spec: bytes(512) },
  29: { name: 'cpuid1eax_fms', spec: u32 },
  30: { name: 'launch_mit_vector', spec: u64 },
  31: { name: 'current_mit_vector', spec: u64 },
};

const CERT_CHAIN_SCHEMA: Schema = {
  1: { name: 'vcek_cert', spec: bytes(16 * 1024) },
  2: { name: 'ask_cert', spec: bytes(16 * 1024) },
  3: { name: 'ark_cert', spec: bytes(16 * 1024) },
  4: { name: 'firmware_cert', spec: bytes(16 * 1024) },
  6: { name: 'vlek_cert', spec: bytes(16 * 1024) },
  // map<string, bytes> extras: entries are read as opaque messages and not interpreted.
  7: { name: 'extras', spec: { kind: 'message', max: 64 * 1024, repeated: { maxCount: 16 } } },
};

const PRODUCT_SCHEMA: Schema = {
  1: { name: 'name', spec: { kind: 'enum' } },
  2: { name: 'stepping', spec: u32 },
  3: { name: 'machine_stepping', spec: { kind: 'message', max: 16 } },
};

const ATTESTATION_SCHEMA: Schema = {
  1: { name: 'report', spec: { kind: 'message', max: 8 * 1024 } },
  2: { name: 'certificate_chain', spec: { kind: 'message', max: 128 * 1024 } },
  3: { name: 'product', spec: { kind: 'message', max: 64 } },
};

export interface GcpSevSnpEvidence {
  /** The rebuilt 1184-byte ATTESTATION_REPORT. */
  readonly report: Uint8Array;
  readonly vcek: Uint8Array | undefined;
  readonly vlek: Uint8Array | undefined;
  readonly ask: Uint8Array | undefined;
  /** Unsigned hint; the SNP layer requires it to agree with the report and the VCEK. */
  readonly product: 'Milan' | 'Genoa' | 'Turin' | undefined;
}

const bad = (m: string) => malformed(SevSnpProtoCodes.SNP_PROTO_INVALID, `sev_snp_attestation: ${m}`);

/** go-sev-guest abi.FmsFromCpuid1Eax: (family, model, stepping) bytes from cpuid(1).eax. */
export function fmsFromCpuid1Eax(eax: number): [number, number, number] {
  const extendedFamily = (eax >>> 20) & 0xff;
  const extendedModel = (eax >>> 16) & 0xf;
  const family = (eax >>> 8) & 0xf;
  const model = (eax >>> 4) & 0xf;
  return [(extendedFamily + family) & 0xff, ((extendedModel << 4) | model) & 0xff, eax & 0xf];
}

/** Byte fields and their sizes, from the one layout table (the signature block is R ‖ S ‖ reserved). */
const SIZES: Readonly<Record<string, number>> = {
  family_id: SNP_LAYOUT.FAMILY_ID.len,
  image_id: SNP_LAYOUT.IMAGE_ID.len,
  report_data: SNP_LAYOUT.REPORT_DATA.len,
  measurement: SNP_LAYOUT.MEASUREMENT.len,
  host_data: SNP_LAYOUT.HOST_DATA.len,
  id_key_digest: SNP_LAYOUT.ID_KEY_DIGEST.len,
  author_key_digest: SNP_LAYOUT.AUTHOR_KEY_DIGEST.len,
  report_id: SNP_LAYOUT.REPORT_ID.len,
  report_id_ma: SNP_LAYOUT.REPORT_ID_MA.len,
  chip_id: SNP_LAYOUT.CHIP_ID.len,
  signature: SNP_LAYOUT.SIGNATURE_R.len + SNP_LAYOUT.SIGNATURE_S.len + SNP_LAYOUT.RESERVED_SIGNATURE.len,
};

/** Decodes sevsnp.Attestation and rebuilds the signed report (see the module comment). */
export function parseGcpSevSnp(b: Uint8Array): GcpSevSnpEvidence {
  const a = decodeMessage(b, ATTESTATION_SCHEMA, 'sev_snp_attestation');
  if (!has(a, 'report')) throw bad('no report');
  const r = decodeMessage(getBytes(a, 'report'), REPORT_SCHEMA, 'sev_snp_attestation.report');
  for (const [name, size] of Object.entries(SIZES)) {
    const len = getBytes(r, name).byteLength;
    if (len !== size) throw bad(`${name} is ${len} bytes, expected ${size}`);
  }
  const out = new Uint8Array(SNP_REPORT_SIZE);
  const dv = new DataView(out.buffer);
  const u32le = (off: number, name: string) => dv.setUint32(off, getNumber(r, name), true);
  const u64le = (off: number, name: string) => dv.setBigUint64(off, getU64(r, name), true);
  const put = (off: number, name: string) => out.set(getBytes(r, name), off);
  const byte = (off: number, name: string) => {
    const v = getNumber(r, name);
    if (v > 0xff) throw bad(`${name} ${v} does not fit a byte`);
    out[off] = v;
  };
  const L = SNP_LAYOUT;
  const version = getNumber(r, 'version');
  u32le(L.VERSION.off, 'version');
  u32le(L.GUEST_SVN.off, 'guest_svn');
  u64le(L.POLICY.off, 'policy');
  put(L.FAMILY_ID.off, 'family_id');
  put(L.IMAGE_ID.off, 'image_id');
  u32le(L.VMPL.off, 'vmpl');
  u32le(L.SIGNATURE_ALGO.off, 'signature_algo');
  u64le(L.CURRENT_TCB.off, 'current_tcb');
  u64le(L.PLATFORM_INFO.off, 'platform_info');
  const signerInfo = getNumber(r, 'signer_info');
  if (signerInfo >>> 5 !== 0) throw bad('signer_info bits 31:5 must be zero');
  const signingKey = (signerInfo >>> 2) & 7;
  if (signingKey > 1 && signingKey < 7) throw bad(`signer_info signing_key ${signingKey} is reserved`);
  u32le(L.SIGNER_INFO.off, 'signer_info');
  put(L.REPORT_DATA.off, 'report_data');
  put(L.MEASUREMENT.off, 'measurement');
  put(L.HOST_DATA.off, 'host_data');
  put(L.ID_KEY_DIGEST.off, 'id_key_digest');
  put(L.AUTHOR_KEY_DIGEST.off, 'author_key_digest');
  put(L.REPORT_ID.off, 'report_id');
  put(L.REPORT_ID_MA.off, 'report_id_ma');
  u64le(L.REPORTED_TCB.off, 'reported_tcb');
  if (version >= 3) {
    const [f, m, s] = fmsFromCpuid1Eax(getNumber(r, 'cpuid1eax_fms'));
    out[L.CPUID_FAM_ID.off] = f;
    out[L.CPUID_MOD_ID.off] = m;
    out[L.CPUID_STEP.off] = s;
  }
  put(L.CHIP_ID.off, 'chip_id');
  u64le(L.COMMITTED_TCB.off, 'committed_tcb');
  byte(L.CURRENT_BUILD.off, 'current_build');
  byte(L.CURRENT_MINOR.off, 'current_minor');
  byte(L.CURRENT_MAJOR.off, 'current_major');
  byte(L.COMMITTED_BUILD.off, 'committed_build');
  byte(L.COMMITTED_MINOR.off, 'committed_minor');
  byte(L.COMMITTED_MAJOR.off, 'committed_major');
  u64le(L.LAUNCH_TCB.off, 'launch_tcb');
  u64le(L.LAUNCH_MIT_VECTOR.off, 'launch_mit_vector');
  u64le(L.CURRENT_MIT_VECTOR.off, 'current_mit_vector');
  put(L.SIGNATURE_R.off, 'signature'); // R ‖ S ‖ reserved: the 512-byte signature block

  const chain = decodeMessage(getBytes(a, 'certificate_chain'), CERT_CHAIN_SCHEMA, 'sev_snp_attestation.certificate_chain');
  const opt = (name: string) => (getBytes(chain, name).byteLength > 0 ? getBytes(chain, name) : undefined);
  const p = decodeMessage(getBytes(a, 'product'), PRODUCT_SCHEMA, 'sev_snp_attestation.product');
  const product = ({ 1: 'Milan', 2: 'Genoa', 3: 'Turin' } as const)[getNumber(p, 'name') as 1 | 2 | 3];
  return Object.freeze({ report: out, vcek: opt('vcek_cert'), vlek: opt('vlek_cert'), ask: opt('ask_cert'), product });
}

/**
 * The REPORT_DATA go-tpm-tools asks for (client/attest.go `SevSnpQuoteProvider.AddAttestation`):
 * the `--tee-nonce` if given, else the TPM nonce zero-padded to 64 bytes. The broker's binding
 * is the TPM nonce, so REPORT_DATA must be binding ‖ zeros.
 */
export function expectedReportData(binding: Uint8Array): Uint8Array {
  if (binding.byteLength > 64) throw malformed(SevSnpProtoCodes.SNP_PROTO_INVALID, 'the binding is longer than REPORT_DATA (64 bytes)');
  return concat(binding, new Uint8Array(64 - binding.byteLength));
}

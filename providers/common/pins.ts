/**
 * @module providers/common/pins
 *
 * The root certificates attest-broker trusts, pinned by the SHA-256 fingerprint of their DER
 * encoding, with the vendor's official URL they are fetched from (`attest-broker trust fetch`).
 *
 * The project carries these pins, never the certificate files. A root is only ever loaded if its
 * bytes hash to the pin; evidence may supply intermediates but never a root ("an ARK from the
 * attester would void the guarantees", go-sev-guest verify/trust).
 *
 * Each fingerprint below was checked against the copy in `test/vectors` (see its INDEX.md) and,
 * where the vendor publishes one, against the vendor's published value.
 */

export type PinFormat =
  /** A single DER certificate. */
  | 'der'
  /** One or more PEM certificates; the one matching the pin is taken. */
  | 'pem'
  /** A ZIP archive holding a PEM file (AWS publishes the Nitro root this way). */
  | 'zip-pem';

export interface Pin {
  /** Stable id, also the file name (`<id>.pem`) in a trust directory. */
  readonly id: string;
  /** Lower-case hex SHA-256 of the certificate's DER encoding. */
  readonly sha256: string;
  /** Official URL the certificate is fetched from. */
  readonly source: string;
  readonly format: PinFormat;
  readonly description: string;
  /** The vendor it belongs to (which provider needs it is its descriptor's `pins`, providers/catalog.ts). */
  readonly provider: 'azure' | 'gcp' | 'aws' | 'amd' | 'intel' | 'nvidia';
}

export const PinIds = {
  AMD_ARK_MILAN: 'amd-ark-milan',
  AMD_ARK_GENOA: 'amd-ark-genoa',
  AMD_ARK_TURIN: 'amd-ark-turin',
  INTEL_SGX_ROOT: 'intel-sgx-root-ca',
  GOOGLE_TPM_EK_ROOT_1: 'google-tpm-ek-root-1',
  GOOGLE_EKAK_ROOT: 'google-ekak-ca-root',
  AWS_NITRO_ROOT_G1: 'aws-nitro-root-g1',
  NVIDIA_DEVICE_IDENTITY_CA: 'nvidia-device-identity-ca',
  NVIDIA_CORIM_ROOT_CA: 'nvidia-corim-signing-root-ca',
} as const;

export const BUILTIN_PINS: readonly Pin[] = Object.freeze([
  {
    id: PinIds.AMD_ARK_MILAN,
    sha256: '69d063b45344d26a2e94e1f4210de49ef555308287d4c174445c95639a540bcd',
    source: 'https://kdsintf.amd.com/vcek/v1/Milan/cert_chain',
    format: 'pem',
    description: 'AMD Root Key (ARK) for EPYC Milan; signs the ASK (VCEK) and ASVK (VLEK) chains',
    provider: 'amd',
  },
  {
    id: PinIds.AMD_ARK_GENOA,
    sha256: '4c6598d19c18719c5dfd4a7d335f674e5bfe1d8f800cea2cf270c10d103db2f1',
    source: 'https://kdsintf.amd.com/vcek/v1/Genoa/cert_chain',
    format: 'pem',
    description: 'AMD Root Key (ARK) for EPYC Genoa',
    provider: 'amd',
  },
  {
    id: PinIds.AMD_ARK_TURIN,
    sha256: '1f084161a44bb6d93778a904877d4819cafa5d05ef4193b2ded9dd9c73dd3f6a',
    source: 'https://kdsintf.amd.com/vcek/v1/Turin/cert_chain',
    format: 'pem',
    description: 'AMD Root Key (ARK) for EPYC Turin',
    provider: 'amd',
  },
  {
    id: PinIds.INTEL_SGX_ROOT,
    sha256: '44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3',
    source: 'https://certificates.trustedservices.intel.com/Intel_SGX_Provisioning_Certification_RootCA.cer',
    format: 'der',
    description: 'Intel SGX Root CA; roots the PCK chain that signs TDX quotes',
    provider: 'intel',
  },
  {
    id: PinIds.GOOGLE_TPM_EK_ROOT_1,
    sha256: '9bd5285f8fb18502a7947e621ffd470266f49fcd3b73e19a190f690ad32a7caf',
    source: 'http://pki.goog/cloud_integrity/tpm_ek_root_1.crt',
    format: 'der',
    description: 'Google legacy GCE vTPM EK/AK root (tpm_ek_v1_cloud_host_root), 2018-2118',
    provider: 'gcp',
  },
  {
    id: PinIds.GOOGLE_EKAK_ROOT,
    sha256: '594759594b9b61524f6c8ef668f7177f7b9066bc0674f2f49fe9e052be78beb2',
    source:
      'http://privateca-content-62d71773-0000-21da-852e-f4f5e80d7778.storage.googleapis.com/032bf9d39db4fa06aade/ca.crt',
    format: 'der',
    description: 'Google Cloud "EK/AK CA Root" (CA Service), 2022-2122; issues current GCE AK certificates',
    provider: 'gcp',
  },
  {
    id: PinIds.AWS_NITRO_ROOT_G1,
    sha256: '641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b',
    source: 'https://aws-nitro-enclaves.amazonaws.com/AWS_NitroEnclaves_Root-G1.zip',
    format: 'zip-pem',
    description: 'AWS Nitro root G1 (CN=aws.nitro-enclaves); roots NitroTPM and Nitro Enclave documents',
    provider: 'aws',
  },
  // NVIDIA publishes its two attestation roots only inside its open-source verifier (no
  // standalone download exists): the sources are raw URLs of the nvtrust repository pinned to
  // the commit the vectors were taken from, so the bytes behind them cannot change.
  {
    id: PinIds.NVIDIA_DEVICE_IDENTITY_CA,
    sha256: '102bf659d5419614c9d8e6aecebc80454eb26b1df6a769ac720b9a690b167b48',
    source:
      'https://raw.githubusercontent.com/NVIDIA/nvtrust/028173093d43dbf37364bdc39ad7e696bccbce2e/guest_tools/gpu_verifiers/local_gpu_verifier/src/verifier/certs/verifier_device_root.pem',
    format: 'pem',
    description: 'NVIDIA Device Identity CA (P-384, 2021-9999); roots every Hopper/Blackwell GPU device certificate chain',
    provider: 'nvidia',
  },
  {
    id: PinIds.NVIDIA_CORIM_ROOT_CA,
    sha256: '12977b5115acb0381179279fffeb5a8c4d264971ebb32298023a465fa41df5d1',
    source:
      'https://raw.githubusercontent.com/NVIDIA/nvtrust/028173093d43dbf37364bdc39ad7e696bccbce2e/guest_tools/gpu_verifiers/local_gpu_verifier/src/verifier/certs/verifier_RIM_root.pem',
    format: 'pem',
    description: 'NVIDIA CoRIM signing Root CA (P-384, 2023-2053); roots the signers of GPU driver and VBIOS RIMs',
    provider: 'nvidia',
  },
]);

/**
 * Intermediates the broker installs beside the roots because some evidence does not carry them:
 * legacy GCE attestations (`gotpm` before go-tpm-tools v0.4) hold the AK certificate alone, and
 * go-tpm-tools verifies them with these intermediates compiled in. They are pinned like roots
 * (a swapped file is refused) but trusted only as intermediates: every chain through them is
 * still validated up to `issuer`'s pinned root. The URLs are the issuers named in the Authority
 * Information Access of the certificates they sign.
 */
export interface IntermediatePin {
  readonly id: string;
  readonly sha256: string;
  readonly source: string;
  readonly format: 'der' | 'pem';
  readonly description: string;
  /** The built-in root it chains to. */
  readonly issuer: string;
}

export const BUILTIN_INTERMEDIATES: readonly IntermediatePin[] = Object.freeze([
  {
    id: 'google-tpm-ek-intermediate-2',
    sha256: '5d8dbcf8c8053dd8ffad711b6219355032b7122c34cac0f90ccb49def69ec504',
    source: 'https://pki.goog/cloud_integrity/tpm_ek_intermediate_2.crt',
    format: 'der',
    description: 'Google GCE vTPM EK/AK intermediate (tpm_ek_v1_cloud_host-signer, 2020); signs legacy GCE AK certificates',
    issuer: PinIds.GOOGLE_TPM_EK_ROOT_1,
  },
  {
    id: 'google-tpm-ek-intermediate-3',
    sha256: '7132b6ea71101f6c51bb58f98c3798c19b65be510eca0344318900510b593178',
    source: 'https://pki.goog/cloud_integrity/tpm_ek_intermediate_3.crt',
    format: 'der',
    description: 'Google GCE vTPM EK/AK intermediate (tpm_ek_v1_cloud_host-signer, 2021)',
    issuer: PinIds.GOOGLE_TPM_EK_ROOT_1,
  },
]);

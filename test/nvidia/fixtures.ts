/**
 * Shared fixtures for the NVIDIA GPU verifier tests: the real reports, chains, evidence arrays
 * and RIMs of test/vectors/nvidia (provenance in its INDEX.md; read in place through
 * test/helpers/vectors.ts with paths relative to the vectors root), the two pinned NVIDIA roots,
 * verification times inside the validity of the certificates each vector needs, and a context
 * whose network refuses every request unless a test routes it.
 */
import { fromHex } from '../../providers/common/encoding.js';
import { PinIds } from '../../providers/common/pins.js';
import type { TrustStore } from '../../providers/common/types.js';
import { AttestError } from '../../providers/common/errors.js';
import { loadTestTrust, readVector, readVectorJson, readVectorText } from '../helpers/vectors.js';

/** A report file: one line of lower-case hex. */
export function reportBytes(hexText: string): Uint8Array {
  return fromHex(hexText.trim());
}

export const NV = 'nvidia';
export const SDK = `${NV}/attestation-sdk/nv-attestation-sdk-cpp/unit-tests/testdata`;
export const SDK_GPU = `${SDK}/sample_attestation_data/gpu`;
export const NVTRUST = `${NV}/nvtrust/local_gpu_verifier`;
export const PRE230 = `${NVTRUST}/samples_pre_v2.3.0`;
export const SAMPLES = `${NVTRUST}/samples`;
export const PPCIE = `${NV}/nvtrust/ppcie-verifier-sdk-cpp/gpu_evidence.json`;

/** One entry of nvtrust's evidence array. */
export interface EvidenceEntry {
  arch: string;
  nonce: string;
  evidence: string;
  certificate: string;
  driver_version?: string;
  vbios_version?: string;
  version?: string;
}

const b64 = (b: Uint8Array): string => Buffer.from(b).toString('base64');

/** Builds the evidence entry nvtrust would emit for a report file and its PEM chain file. */
export function entryFor(reportPath: string, chainPath: string, nonce: string, arch = 'HOPPER'): EvidenceEntry {
  return {
    arch,
    nonce,
    evidence: b64(reportBytes(readVectorText(reportPath))),
    certificate: b64(readVector(chainPath)),
  };
}

export function evidenceArray(path: string): EvidenceEntry[] {
  return readVectorJson<EvidenceEntry[]>(path);
}

export interface ReportVector {
  name: string;
  bytes: () => Uint8Array;
  chain: string;
  nonce: string;
  blocks: number;
  driver: string;
  vbios: string;
  sku: string;
  fwid: boolean;
  ppcie?: boolean;
  arch: 'HOPPER' | 'BLACKWELL';
}

const fromFile = (p: string) => () => reportBytes(readVectorText(p));
const fromArray = (p: string, i: number) => () => new Uint8Array(Buffer.from(evidenceArray(p)[i]!.evidence, 'base64'));

/** Every real GPU report in the vectors (INDEX.md), the first being the complete positive one. */
export const REPORTS: readonly ReportVector[] = [
  {
    name: 'nvtrust pre-v2.3.0 H100 PCIe (545.00)',
    bytes: fromFile(`${PRE230}/attestationReport.txt`),
    chain: `${PRE230}/gpuAkCertChain.txt`,
    nonce: '4cff7f5380ead8fad8ec2c531c110aca4302a88f603792801a8ca29ee151af2e',
    blocks: 64,
    driver: '545.00',
    vbios: '96.00.5E.00.01',
    sku: '1010/0200/882',
    fwid: false,
    arch: 'HOPPER',
  },
  {
    name: 'nvtrust sample H100 PCIe (550.90.07)',
    bytes: fromFile(`${SAMPLES}/hopperAttestationReport.txt`),
    chain: `${SAMPLES}/hopperCertChain.txt`,
    nonce: '931d8dd0add203ac3d8b4fbde75e115278eefcdceac5b87671a748f32364dfcb',
    blocks: 64,
    driver: '550.90.07',
    vbios: '96.00.9F.00.01',
    sku: '1010/0200/882',
    fwid: true,
    arch: 'HOPPER',
  },
  {
    name: 'attestation-sdk H100 (580.159.03)',
    bytes: fromFile(`${SDK}/hopperAttestationReport.txt`),
    chain: `${SDK}/hopperCertChain.txt`,
    nonce: '5bb22e377702d4e1e8215a903ba094826b9ac7f731dee1fe8102958bf2840aca',
    blocks: 64,
    driver: '580.159.03',
    vbios: '96.00.74.00.20',
    sku: '1010/0205/862',
    fwid: true,
    arch: 'HOPPER',
  },
  {
    name: 'attestation-sdk H100 (535.86.09, mismatch scenario)',
    bytes: fromFile(`${SDK_GPU}/hopperAttestationReport.txt`),
    chain: `${SDK_GPU}/hopperCertChain.txt`,
    nonce: '27a328247bf7935c993341cf587be6f05986ccce4fe7ba2c54100bd616a58f66',
    blocks: 64,
    driver: '535.86.09',
    vbios: '96.00.5E.00.01',
    sku: '1010/0200/882',
    fwid: false,
    arch: 'HOPPER',
  },
  {
    name: 'attestation-sdk H100 (570.124.03, "expired" scenario)',
    bytes: fromFile(`${SDK_GPU}/hopperAttestationReportExpired.txt`),
    chain: `${SDK_GPU}/hopperCertChainExpired.txt`,
    nonce: '931d8dd0add203ac3d8b4fbde75e115278eefcdceac5b87671a748f32364dfcb',
    blocks: 64,
    driver: '570.124.03',
    vbios: '96.00.5E.00.04',
    sku: '1010/0205/862',
    fwid: true,
    arch: 'HOPPER',
  },
  {
    name: 'attestation-sdk HGX H100 PPCIe (560.00, paired with the wrong chain upstream)',
    bytes: fromFile(`${SDK_GPU}/hopperAttestationReportInvalidSignature.txt`),
    chain: `${SDK_GPU}/hopperCertChainExpired.txt`,
    nonce: '931d8dd0add203ac3d8b4fbde75e115278eefcdceac5b87671a748f32364dfcb',
    blocks: 64,
    driver: '560.00',
    vbios: '96.00.A5.00.01',
    sku: 'G520/0200/885',
    fwid: true,
    arch: 'HOPPER',
  },
  {
    name: 'attestation-sdk GB100 Blackwell (575.32)',
    bytes: fromFile(`${SDK_GPU}/blackwellAttestationReport.txt`),
    chain: `${SDK_GPU}/blackwellCertChain.txt`,
    nonce: '931d8dd0add203ac3d8b4fbde75e115278eefcdceac5b87671a748f32364dfcb',
    blocks: 64,
    driver: '575.32',
    vbios: '97.00.88.00.0F',
    sku: 'G525/0220/886',
    fwid: true,
    arch: 'BLACKWELL',
  },
  {
    name: 'nvtrust PPCIe 8x HGX H100, GPU 0 (590.12)',
    bytes: fromArray(PPCIE, 0),
    chain: '',
    nonce: '4760e30534a0621357d458b1a7936551b5dc4cd1e69718adf7ed9fb0252a537e',
    blocks: 64,
    driver: '590.12',
    vbios: '96.00.A5.00.01',
    sku: 'G520/0200/885',
    fwid: true,
    ppcie: true,
    arch: 'HOPPER',
  },
];

/** Inside every pre-v2.3.0 certificate's validity and both test RIM signers' (expire 2025-06-22/26). */
export const PRE230_TIME = new Date('2024-06-01T00:00:00Z');
/** After the test RIM signers expired (2025-06-26) but with the device chain still valid. */
export const AFTER_TEST_RIMS = new Date('2025-07-01T00:00:00Z');
/** Inside the 550.144.03 driver RIM signer's validity (2024-12-30 → 2026-12-30). */
export const RIM_550_TIME = new Date('2025-06-01T00:00:00Z');
/** Inside the genuine VBIOS "measurement mismatch" RIM signer's validity (2023-12-13 → 2025-12-12). */
export const MISMATCH_RIM_TIME = new Date('2024-06-01T00:00:00Z');
/** Any time works for the device chains (valid to 9999) after the newest notBefore (2023-06-20). */
export const DEVICE_TIME = new Date('2026-03-01T00:00:00Z');

export function nvidiaTrust(only: readonly string[] = [PinIds.NVIDIA_DEVICE_IDENTITY_CA, PinIds.NVIDIA_CORIM_ROOT_CA]): Promise<TrustStore> {
  return loadTestTrust(only);
}

/** A fetch that refuses every request (the default network of these tests). */
export const offlineFetch: typeof fetch = (input) => Promise.reject(new Error(`offline test: no network for ${String(input)}`));

export function codeOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    if (e instanceof AttestError) return e.code;
    throw new Error(`untyped error: ${String(e)}`, { cause: e });
  }
  return 'ACCEPTED';
}

export async function codeOfAsync(p: Promise<unknown> | (() => Promise<unknown>)): Promise<string> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    if (e instanceof AttestError) return e.code;
    throw new Error(`untyped error: ${String(e)}`, { cause: e });
  }
  return 'ACCEPTED';
}

/**
 * @module providers/nvidia/claims
 *
 * What one verified GPU proves, normalized: `NvidiaGpuClaims`. Every field comes from the signed
 * report, the pinned device chain or a verified RIM — never from the unsigned JSON members — and
 * docs/nvidia.md says what each does and does not mean.
 */
import type { OcspChainResult, OcspMode } from './ocsp.js';
import type { FeatureFlag } from './parse.js';
import type { RimKind } from './rim.js';
import type { Mismatch } from './validate.js';
import type { GpuArch } from './verify.js';

export interface RimUse {
  /** The id derived from the report. */
  readonly id: string;
  /** `verified`: fetched and verified; `missing`: the source has none; `unavailable`: the source failed (only recorded with `measurements: 'report'`). */
  readonly status: 'verified' | 'missing' | 'unavailable';
  readonly tagId?: string;
  /** The RIM signer certificate's expiry (ISO 8601): after it the RIM stops verifying. */
  readonly signerNotAfter?: string;
}

export interface NvidiaGpuClaims {
  readonly vendor: 'nvidia';
  /** Position in the evidence array. */
  readonly index: number;
  readonly arch: GpuArch;
  /** The chip named by the certified leaf (GH100 for H100 and H200, GB100 for B200). */
  readonly chip: string;
  /** NVIDIA's `hwmodel`: the DeviceID certificate's common name, e.g. "GH100 A01 GSP BROM". */
  readonly model: string;
  readonly project: string;
  readonly projectSku: string;
  readonly chipSku: string;
  readonly projectSkuMod?: string;
  readonly chipSkuMod?: string;
  /** Hex. */
  readonly boardId?: string;
  readonly driverVersion: string;
  /** Dotted, upper case (96.00.9F.00.01). */
  readonly vbiosVersion: string;
  /**
   * True only when both RIMs verified and every active golden measurement matched: the report
   * carries no CC-mode bit, and NVIDIA's verifiers derive their own secure-boot / debug-disabled
   * claims from the same result. False means "not proven", not "off".
   */
  readonly ccMode: boolean;
  /** PROTECTED_PCIE_STATUS says enabled (signed; absent on older drivers → false). */
  readonly ppcie: boolean;
  readonly protectedPcie: 'enabled' | 'disabled' | 'not-reported';
  /** FEATURE_FLAG (opaque data v1+): single-GPU passthrough, multi-GPU passthrough, protected PCIe. */
  readonly gpuMode?: FeatureFlag;
  readonly nvdec0: 'enabled' | 'disabled';
  readonly opaqueDataVersion?: number;
  /** The leaf certificate's DICE FWID (hex): the firmware (FMC) that holds the attestation key. */
  readonly fwid: string;
  /** Whether the report carried the FWID too (and it matched). */
  readonly fwidInReport: boolean;
  /** Leaf serial number (hex) and the same number in decimal, as NVIDIA's `ueid`. */
  readonly leafSerial: string;
  readonly ueid: string;
  /** SHA-256 of the DeviceID certificate: stable per physical GPU. */
  readonly deviceCertSha256: string;
  readonly measurementsOk: boolean;
  readonly mismatchedIndexes: readonly number[];
  readonly mismatches: readonly Mismatch[];
  readonly missingIndexes: readonly number[];
  readonly missingRims: readonly RimKind[];
  readonly rims: { readonly driver: RimUse; readonly vbios: RimUse };
  readonly ocsp: {
    readonly mode: OcspMode;
    readonly device: OcspChainResult['status'];
    /** Worst status over the RIM signer chains used ('off' when none was checked). */
    readonly rims: OcspChainResult['status'];
  };
}

/** The normalized view policy reads (providers/common/types.ts `GpuClaims`). */
export function toGpuClaims(c: NvidiaGpuClaims): import('../common/types.js').GpuClaims {
  return {
    vendor: 'nvidia',
    arch: c.arch,
    chip: c.chip,
    model: c.model,
    ccMode: c.ccMode,
    measurementsOk: c.measurementsOk,
    ppcie: c.ppcie,
    driverVersion: c.driverVersion,
    vbiosVersion: c.vbiosVersion,
    ...(c.boardId !== undefined ? { boardId: c.boardId } : {}),
    deviceCertSha256: c.deviceCertSha256,
  };
}

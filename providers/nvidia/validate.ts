/**
 * @module providers/nvidia/validate
 *
 * From an authenticated report and authenticated RIMs to a verdict on the GPU's measurements.
 *
 * - `rimIdsFor`: the RIM ids NVIDIA's verifiers derive from the *signed* opaque data:
 *   driver `NV_GPU_DRIVER_GH100_<driver>` (Hopper) / `NV_GPU_CC_DRIVER_GB100_<driver>`
 *   (Blackwell), VBIOS `NV_GPU_VBIOS_<PROJECT>_<PROJECT_SKU>_<CHIP_SKU>_<VBIOS without dots>`
 *   (attestation-sdk `get_driver_rim_id` / `get_vbios_rim_id`).
 * - `checkRimFitsReport`: a validly signed RIM is still the wrong RIM when its
 *   Meta@colloquialVersion is not the report's driver / VBIOS version or its Meta@product is not
 *   the certified chip (RIM_VERSION_MISMATCH): a source can never substitute another
 *   version's golden values.
 * - `compareMeasurements`: every *active* golden measurement of the driver and VBIOS RIMs
 *   against the report's block at the same index (RIM index = SPDM index − 1), matching any of
 *   its `alternatives`, compared in constant time. The two RIMs must not both claim an index
 *   (RIM_CONFLICT). Index 35 is skipped when NVDEC0 is disabled (NVIDIA's rule: that block then
 *   holds no NVDEC firmware measurement). An active golden index with no block in the report
 *   counts as missing. Mismatches are *returned*, not thrown: the caller's policy decides.
 */
import { timingSafeEqual } from '../common/ct.js';
import { rejected } from '../common/errors.js';
import { NvidiaCodes } from './codes.js';
import type { AttestationReport } from './parse.js';
import type { RimKind, VerifiedRim } from './rim.js';
import type { GpuArch } from './verify.js';

/** The measurement index NVIDIA skips when NVDEC0 is disabled. */
export const NVDEC0_MEASUREMENT_INDEX = 35;

export interface RimIds {
  readonly driver: string;
  readonly vbios: string;
}

export function rimIdsFor(report: AttestationReport, arch: GpuArch): RimIds {
  const i = report.info;
  return Object.freeze({
    driver: arch === 'hopper' ? `NV_GPU_DRIVER_GH100_${i.driverVersion}` : `NV_GPU_CC_DRIVER_GB100_${i.driverVersion}`,
    vbios: `NV_GPU_VBIOS_${i.project}_${i.projectSku}_${i.chipSku}_${i.vbiosVersion.replace(/\./g, '')}`,
  });
}

export function checkRimFitsReport(rim: VerifiedRim, report: AttestationReport, chip: string): void {
  const want = rim.kind === 'driver' ? report.info.driverVersion : report.info.vbiosVersion;
  const got = rim.kind === 'driver' ? rim.version : rim.version.toUpperCase();
  if (got !== want || rim.product !== chip) {
    throw rejected(NvidiaCodes.RIM_VERSION_MISMATCH, `RIM ${rim.rimId} describes ${rim.product} ${rim.version}, but the report is ${chip} ${rim.kind} ${want}`);
  }
}

export interface Mismatch {
  /** RIM index (SPDM block index − 1). */
  readonly index: number;
  readonly source: RimKind;
}

export interface MeasurementResult {
  /** True only with both RIMs, no mismatch and no missing index. */
  readonly ok: boolean;
  readonly mismatched: readonly Mismatch[];
  /** Active golden indexes the report has no block for. */
  readonly missingIndexes: readonly number[];
  /** RIMs the source did not have. */
  readonly missingRims: readonly RimKind[];
  /** How many golden values were compared. */
  readonly compared: number;
}

export function compareMeasurements(report: AttestationReport, rims: { driver?: VerifiedRim; vbios?: VerifiedRim }): MeasurementResult {
  const runtime = new Map<number, Uint8Array>();
  for (const b of report.response.blocks) runtime.set(b.index - 1, b.value);
  const skip35 = report.info.nvdec0 === 'disabled';

  const active = (r: VerifiedRim | undefined) => (r ? r.measurements.filter((m) => m.active) : []);
  const driverIdx = new Set(active(rims.driver).map((m) => m.index));
  for (const m of active(rims.vbios)) {
    if (driverIdx.has(m.index)) {
      throw rejected(NvidiaCodes.RIM_CONFLICT, `the driver RIM and the VBIOS RIM both hold an active golden value for index ${m.index}`);
    }
  }

  const mismatched: Mismatch[] = [];
  const missingIndexes: number[] = [];
  let compared = 0;
  for (const [source, rim] of [['driver', rims.driver], ['vbios', rims.vbios]] as const) {
    for (const m of active(rim)) {
      if (m.index === NVDEC0_MEASUREMENT_INDEX && skip35) continue;
      const value = runtime.get(m.index);
      if (!value) {
        missingIndexes.push(m.index);
        continue;
      }
      compared++;
      // Every alternative is compared (no early exit), each in constant time.
      let match = false;
      for (const alt of m.alternatives) match = timingSafeEqual(alt, value) || match;
      if (!match) mismatched.push(Object.freeze({ index: m.index, source }));
    }
  }
  const missingRims: RimKind[] = [];
  if (!rims.driver) missingRims.push('driver');
  if (!rims.vbios) missingRims.push('vbios');
  mismatched.sort((a, b) => a.index - b.index);
  missingIndexes.sort((a, b) => a - b);
  return Object.freeze({
    ok: missingRims.length === 0 && mismatched.length === 0 && missingIndexes.length === 0,
    mismatched: Object.freeze(mismatched),
    missingIndexes: Object.freeze(missingIndexes),
    missingRims: Object.freeze(missingRims),
    compared,
  });
}

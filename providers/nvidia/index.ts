/**
 * @module providers/nvidia
 *
 * NVIDIA Hopper / Blackwell confidential-GPU evidence: the JSON array nvtrust and NVIDIA's
 * attestation SDK emit (one entry per GPU), verified into one `NvidiaGpuClaims` per GPU. A
 * self-contained module for the provider registry and composite attest requests (the lead wires
 * it); Web APIs only, so it runs on Node and Workers.
 *
 * `verify` runs, in order (each step throws a typed `AttestError`; codes in `codes.ts`):
 * 1. options (schema, `options.ts`) and the 32-byte binding; the evidence array (1..maxGpus
 *    entries, strict members, `evidence.ts`);
 * 2. per GPU (`verify.ts`): the report's ECDSA P-384 signature by the chain's leaf, *then* the
 *    strict SPDM 1.1 parse (`parse.ts`), the request nonce = binding (constant time), the chain to
 *    the pinned NVIDIA Device Identity CA, chip/arch from the certified leaf (`allowedArchs`),
 *    the DICE FWID binding, the unsigned JSON members against the signed report;
 * 3. no physical GPU twice in one array (DUPLICATE_GPU), every GPU bound to the same binding;
 * 4. OCSP over the device chain (`ocsp.ts`, mode off | best-effort | required);
 * 5. the driver and VBIOS RIMs named after the signed report (`validate.ts`), from the RIM
 *    source (static map, then NVIDIA's RIM service), each verified (`rim.ts`: XML-DSig, chain to
 *    the pinned CoRIM root valid now, version and chip equal to the report's) and OCSP-checked;
 * 6. the active golden measurements against the report (`validate.ts`), the verdict applied per
 *    `measurements` (require → RIM_MISSING / MEASUREMENT_MISMATCH; report → in the claims).
 *
 * `createNvidiaVerifier` is the long-lived form (it owns the RIM-service and OCSP caches);
 * `verifyNvidiaEvidence` is the one-shot form with the context the broker passes providers.
 */
import { configError, isAttestError, rejected } from '../common/errors.js';
import { PinIds } from '../common/pins.js';
import type { GpuClaims, TrustStore } from '../common/types.js';
import type { Certificate } from '../common/x509.js';
import { NvidiaCodes } from './codes.js';
import { toGpuClaims, type NvidiaGpuClaims, type RimUse } from './claims.js';
import { parseGpuEvidence } from './evidence.js';
import { OcspChecker, type OcspChainResult, type OcspStatus } from './ocsp.js';
import { parseNvidiaOptions, type NvidiaOptions } from './options.js';
import { verifyRim, type RimKind, type VerifiedRim } from './rim.js';
import { ChainedRimSource, NvidiaRimService, StaticRimSource, type RimSource } from './rimsource.js';
import { checkRimFitsReport, compareMeasurements, rimIdsFor } from './validate.js';
import { verifyGpuReport } from './verify.js';

export { NvidiaCodes } from './codes.js';
export type { NvidiaGpuClaims, RimUse } from './claims.js';
export { toGpuClaims } from './claims.js';
export { NvidiaOptionsSchema, parseNvidiaOptions, type NvidiaOptions, type NvidiaOptionsInput } from './options.js';
export { StaticRimSource, NvidiaRimService, ChainedRimSource, type RimSource, type RimSourceContext } from './rimsource.js';

export interface NvidiaVerifierDeps {
  /** Network for the RIM service and OCSP (injected: tests and Workers control it). */
  readonly fetch: typeof fetch;
  /** Replaces the RIM source built from `options.rims` (e.g. a directory source on Node). */
  readonly rimSource?: RimSource;
}

export interface NvidiaVerifyContext {
  /** The 32-byte binding every GPU's GET_MEASUREMENTS nonce must equal. */
  readonly binding: Uint8Array;
  readonly now: Date;
  readonly trust: TrustStore;
}

export interface NvidiaVerifier {
  readonly options: NvidiaOptions;
  readonly rimSource: RimSource;
  readonly ocsp: OcspChecker;
  verify(evidence: unknown, ctx: NvidiaVerifyContext): Promise<NvidiaGpuClaims[]>;
}

/** The RIM source `options.rims` describes: the static map, then the service unless 'off'. */
export function rimSourceFromOptions(o: NvidiaOptions, fetchFn: typeof fetch): RimSource {
  if (o.rims.dir !== undefined) {
    throw configError(
      NvidiaCodes.OPTIONS_INVALID,
      `nvidia options: rims.dir (${o.rims.dir}) is read by the Node runtime at start, and this runtime did not read it: put the RIMs in rims.static instead`,
    );
  }
  const sources: RimSource[] = [new StaticRimSource(o.rims.static)];
  if (o.rims.service !== 'off') sources.push(new NvidiaRimService({ fetch: fetchFn, ...o.rims.service }));
  return new ChainedRimSource(sources);
}

const rank: Record<OcspStatus | 'off', number> = { off: -1, good: 0, unknown: 1, unavailable: 2, revoked: 3 };
const worst = (a: OcspChainResult['status'], b: OcspChainResult['status']): OcspChainResult['status'] => (rank[b] > rank[a] ? b : a);

export function createNvidiaVerifier(options: unknown, deps: NvidiaVerifierDeps): NvidiaVerifier {
  const o = parseNvidiaOptions(options);
  const rimSource = deps.rimSource ?? rimSourceFromOptions(o, deps.fetch);
  const ocsp = new OcspChecker({ fetch: deps.fetch, ...o.ocsp });

  async function verify(evidence: unknown, ctx: NvidiaVerifyContext): Promise<NvidiaGpuClaims[]> {
    if (!(ctx.binding instanceof Uint8Array) || ctx.binding.byteLength !== 32) {
      throw configError(NvidiaCodes.OPTIONS_INVALID, 'the NVIDIA verifier needs a 32-byte binding (the GET_MEASUREMENTS nonce)');
    }
    const entries = parseGpuEvidence(evidence, o.maxGpus);
    const deviceAnchors = ctx.trust.anchors([PinIds.NVIDIA_DEVICE_IDENTITY_CA]);
    const rimAnchors = ctx.trust.anchors([PinIds.NVIDIA_CORIM_ROOT_CA]);

    // RIMs are shared by GPUs of one board: fetch, verify and OCSP-check each id once per call.
    const rimCache = new Map<string, Promise<{ rim?: VerifiedRim; status: RimUse['status']; ocsp: OcspChainResult['status'] }>>();
    const loadRim = (id: string, kind: RimKind) => {
      let p = rimCache.get(id);
      if (!p) {
        p = (async () => {
          let bytes: Uint8Array | undefined;
          try {
            bytes = await rimSource.get(id, { now: ctx.now });
          } catch (e) {
            if (o.measurements === 'report' && isAttestError(e) && e.code === NvidiaCodes.RIM_UNAVAILABLE) return { status: 'unavailable' as const, ocsp: 'off' as const };
            throw e;
          }
          if (!bytes) return { status: 'missing' as const, ocsp: 'off' as const };
          const rim = await verifyRim(bytes, { rimId: id, kind, anchors: rimAnchors, at: ctx.now });
          const r = await ocsp.checkChain(rim.path, 'rim', o.ocsp.mode, ctx.now, `RIM ${id} signer chain`);
          return { rim, status: 'verified' as const, ocsp: r.status };
        })();
        rimCache.set(id, p);
      }
      return p;
    };

    const seen = new Set<string>();
    const out: NvidiaGpuClaims[] = [];
    for (const ev of entries) {
      const v = await verifyGpuReport(ev, { anchors: deviceAnchors, binding: ctx.binding, at: ctx.now, requireReportFwid: o.requireReportFwid });
      if (!o.allowedArchs.includes(v.arch)) throw rejected(NvidiaCodes.ARCH_NOT_ALLOWED, `GPU ${ev.position}: ${v.chip} (${v.arch}) is not in allowedArchs`);
      for (const k of [`device:${v.deviceCertSha256}`, `leaf:${v.leafSerial}`]) {
        if (seen.has(k)) throw rejected(NvidiaCodes.DUPLICATE_GPU, `GPU ${ev.position} repeats an earlier GPU of the same evidence`);
        seen.add(k);
      }
      const deviceOcsp = await ocsp.checkChain(v.path as Certificate[], 'device', o.ocsp.mode, ctx.now, `GPU ${ev.position} device chain`);

      const ids = rimIdsFor(v.report, v.arch);
      const [driver, vbios] = await Promise.all([loadRim(ids.driver, 'driver'), loadRim(ids.vbios, 'vbios')]);
      for (const r of [driver.rim, vbios.rim]) if (r) checkRimFitsReport(r, v.report, v.chip);
      const m = compareMeasurements(v.report, { driver: driver.rim, vbios: vbios.rim });
      if (o.measurements === 'require') {
        // A golden value the GPU contradicts is the stronger verdict: reported before a missing RIM.
        if (m.mismatched.length > 0) {
          throw rejected(NvidiaCodes.MEASUREMENT_MISMATCH, `GPU ${ev.position}: measurements differ from the golden values at indexes ${m.mismatched.map((x) => x.index).join(', ')}`, {
            detail: { mismatched: m.mismatched.map((x) => x.index), missing: m.missingIndexes },
          });
        }
        if (m.missingRims.length > 0) {
          throw rejected(NvidiaCodes.RIM_MISSING, `GPU ${ev.position}: no ${m.missingRims.join(' or ')} RIM (${m.missingRims.map((k) => ids[k]).join(', ')})`, {
            detail: { rims: m.missingRims.map((k) => ids[k]) },
          });
        }
        if (!m.ok) {
          throw rejected(NvidiaCodes.MEASUREMENT_MISMATCH, `GPU ${ev.position}: the report has no measurement for golden indexes ${m.missingIndexes.join(', ')}`, {
            detail: { mismatched: m.mismatched.map((x) => x.index), missing: m.missingIndexes },
          });
        }
      }
      const use = (id: string, r: Awaited<ReturnType<typeof loadRim>>): RimUse =>
        Object.freeze({
          id,
          status: r.status,
          ...(r.rim ? { tagId: r.rim.tagId, signerNotAfter: (r.rim.path[0] as Certificate).notAfter.toISOString() } : {}),
        });
      const i = v.report.info;
      out.push(
        Object.freeze({
          vendor: 'nvidia',
          index: ev.position,
          arch: v.arch,
          chip: v.chip,
          model: v.hwModel,
          project: i.project,
          projectSku: i.projectSku,
          chipSku: i.chipSku,
          ...(i.projectSkuMod !== undefined ? { projectSkuMod: i.projectSkuMod } : {}),
          ...(i.chipSkuMod !== undefined ? { chipSkuMod: i.chipSkuMod } : {}),
          ...(i.boardId !== undefined ? { boardId: i.boardId } : {}),
          driverVersion: i.driverVersion,
          vbiosVersion: i.vbiosVersion,
          ccMode: m.ok,
          ppcie: i.protectedPcie === 'enabled',
          protectedPcie: i.protectedPcie ?? 'not-reported',
          ...(i.featureFlag !== undefined ? { gpuMode: i.featureFlag } : {}),
          nvdec0: i.nvdec0,
          ...(i.opaqueDataVersion !== undefined ? { opaqueDataVersion: i.opaqueDataVersion } : {}),
          fwid: v.fwid,
          fwidInReport: v.fwidInReport,
          leafSerial: v.leafSerial,
          ueid: v.ueid,
          deviceCertSha256: v.deviceCertSha256,
          measurementsOk: m.ok,
          mismatchedIndexes: Object.freeze(m.mismatched.map((x) => x.index)),
          mismatches: m.mismatched,
          missingIndexes: m.missingIndexes,
          missingRims: m.missingRims,
          rims: Object.freeze({ driver: use(ids.driver, driver), vbios: use(ids.vbios, vbios) }),
          ocsp: Object.freeze({ mode: o.ocsp.mode, device: deviceOcsp.status, rims: worst(driver.ocsp, vbios.ocsp) }),
        } satisfies NvidiaGpuClaims),
      );
    }
    return out;
  }

  return Object.freeze({ options: o, rimSource, ocsp, verify });
}

/**
 * One-shot verification with the broker's provider context: builds a verifier from
 * `ctx.options` (no cache survives the call; wire `createNvidiaVerifier` once for caching).
 */
export async function verifyNvidiaEvidence(
  evidence: unknown,
  ctx: { binding: Uint8Array; now: Date; trust: TrustStore; fetch: typeof fetch; options: unknown; rimSource?: RimSource },
): Promise<NvidiaGpuClaims[]> {
  const v = createNvidiaVerifier(ctx.options, { fetch: ctx.fetch, ...(ctx.rimSource ? { rimSource: ctx.rimSource } : {}) });
  return v.verify(evidence, ctx);
}

/**
 * The broker's device verifier for `nvidia-gpu` evidence attached to an attest request: one
 * verifier (RIM and OCSP caches live as long as it does), its claims normalized for policy.
 */
export function nvidiaDeviceVerifier(options: unknown, deps: NvidiaVerifierDeps): { verify(evidence: unknown, ctx: NvidiaVerifyContext): Promise<GpuClaims[]> } {
  const v = createNvidiaVerifier(options, deps);
  return { verify: async (evidence, ctx) => (await v.verify(evidence, ctx)).map(toGpuClaims) };
}

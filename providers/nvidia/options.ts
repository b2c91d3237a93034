/**
 * @module providers/nvidia/options
 *
 * The verifier's options: one strict zod schema (unknown keys refused), every field with a
 * default that fails closed and the reason for it beside it. `parseNvidiaOptions` turns input
 * into the resolved options or throws OPTIONS_INVALID (config).
 */
import { z } from 'zod';
import { configError } from '../common/errors.js';
import { NvidiaCodes } from './codes.js';
import { MAX_GPUS_CEILING } from './evidence.js';
import { NVIDIA_RIM_SERVICE_URL, RIM_ID_RE } from './rimsource.js';
import { XML_LIMITS } from './xml.js';

/** NVIDIA's OCSP responder, as its verifiers use it. */
export const NVIDIA_OCSP_URL = 'https://ocsp.ndis.nvidia.com';

const httpUrl = z.url({ protocol: /^https?$/ });

export const NvidiaOptionsSchema = z.strictObject({
  /**
   * Architectures admitted. Hopper only by default: Blackwell evidence is verified the same way
   * (signature, chain, FWID) but its RIM naming is taken from NVIDIA's SDK without a real
   * Blackwell RIM to prove it, so an operator opts in knowingly.
   */
  allowedArchs: z.array(z.enum(['hopper', 'blackwell'])).min(1).max(2).default(['hopper']),
  /** GPUs per evidence array (an HGX board has 8); never more than 16. */
  maxGpus: z.number().int().min(1).max(MAX_GPUS_CEILING).default(8),
  /**
   * `require`: a missing RIM (RIM_MISSING) or any golden mismatch (MEASUREMENT_MISMATCH) refuses
   * the evidence. `report`: both are returned in the claims (`measurementsOk: false`) and policy
   * decides. Either way a RIM that is present but fails verification is refused.
   */
  measurements: z.enum(['require', 'report']).default('require'),
  /**
   * Refuse reports without an opaque FWID (drivers before ~550 did not send one). With `false`
   * such reports rest on DICE alone (docs/nvidia.md); reports that carry one are always checked.
   */
  requireReportFwid: z.boolean().default(true),
  rims: z
    .strictObject({
      /** RIM id → SWID XML text, consulted before the service (operator-supplied, e.g. air-gapped). */
      static: z.record(z.string().regex(RIM_ID_RE), z.string().min(1).max(XML_LIMITS.maxBytes)).default({}),
      /**
       * A directory of `<RIM id>.xml` files, read once at start by the Node runtime into `static`
       * (broker/devices.node.ts). The verifier itself never reads files: on a runtime that did not
       * resolve it (Workers) a set `dir` is a configuration error, never silently empty.
       */
      dir: z.string().min(1).optional(),
      /** NVIDIA's RIM service, or 'off' (then only `static` RIMs exist). */
      service: z
        .union([
          z.literal('off'),
          z.strictObject({
            url: httpUrl.default(NVIDIA_RIM_SERVICE_URL),
            timeoutMs: z.number().int().min(100).max(60_000).default(10_000),
            /** RIMs kept (LRU); 0 disables the cache. */
            cacheEntries: z.number().int().min(0).max(4096).default(256),
            /** How long a fetched RIM is reused (it is re-verified on every use regardless). */
            ttlSeconds: z.number().int().min(0).max(7 * 86_400).default(86_400),
          }),
        ])
        .prefault({}),
    })
    .prefault({}),
  ocsp: z
    .strictObject({
      /**
       * `required` by default, as NVIDIA's verifiers behave: no verified good answer for every
       * certificate → OCSP_UNAVAILABLE. `best-effort` refuses only revoked certificates; `off`
       * skips OCSP (write it out to run offline).
       */
      mode: z.enum(['off', 'best-effort', 'required']).default('required'),
      url: httpUrl.default(NVIDIA_OCSP_URL),
      timeoutMs: z.number().int().min(100).max(60_000).default(10_000),
      cacheEntries: z.number().int().min(0).max(65_536).default(1024),
      /** Longest a verified answer is reused, and the age bound for answers without nextUpdate. */
      maxAgeSeconds: z.number().int().min(60).max(7 * 86_400).default(3600),
      clockSkewSeconds: z.number().int().min(0).max(3600).default(300),
      certIdHash: z.enum(['sha256', 'sha384']).default('sha384'),
    })
    .prefault({}),
});

export type NvidiaOptionsInput = z.input<typeof NvidiaOptionsSchema>;
export type NvidiaOptions = z.output<typeof NvidiaOptionsSchema>;

export function parseNvidiaOptions(input: unknown): NvidiaOptions {
  const r = NvidiaOptionsSchema.safeParse(input ?? {});
  if (!r.success) {
    const issue = r.error.issues[0];
    throw configError(NvidiaCodes.OPTIONS_INVALID, `nvidia options: ${issue ? `${issue.path.join('.') || '(root)'}: ${issue.message}` : 'invalid'}`);
  }
  return r.data;
}

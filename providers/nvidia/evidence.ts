/**
 * @module providers/nvidia/evidence
 *
 * The evidence JSON exactly as NVIDIA's nvtrust / attestation-sdk emit it (accepted unchanged):
 * ```
 * [ { "arch": "HOPPER" | "BLACKWELL",
 *     "nonce": hex(32 bytes),
 *     "evidence": base64(GET_MEASUREMENTS request ‖ MEASUREMENTS response),
 *     "certificate": base64(PEM chain, leaf first),
 *     ? "driver_version": string, ? "vbios_version": string, ? "version": string }, … ]
 * ```
 * one entry per GPU. Checks: an array of 1..`maxGpus` entries, each exactly these members
 * (unknown ones refused), each string within its cap, strict base64 and hex (one encoding per
 * value). `arch`, `nonce`, `driver_version` and `vbios_version` are *unsigned* hints from the
 * host: `verify.ts` compares them with the signed report and never takes a claim from them.
 */
import { z } from 'zod';
import { CommonCodes, malformed } from '../common/errors.js';
import { fromBase64Any, fromHex, fromUtf8 } from '../common/encoding.js';
import { NvidiaCodes } from './codes.js';
import { SPDM } from './parse.js';

/** A hard ceiling on GPUs per evidence array, whatever the options say. */
export const MAX_GPUS_CEILING = 16;
/** Largest PEM chain accepted (five P-384 certificates are ~4 KiB). */
export const MAX_CHAIN_PEM_BYTES = 32 * 1024;

const b64Chars = (n: number): number => 4 * Math.ceil(n / 3);

const EntrySchema = z.strictObject({
  arch: z.enum(['HOPPER', 'BLACKWELL']),
  nonce: z.string().regex(/^[0-9a-fA-F]{64}$/, 'must be 64 hex digits'),
  evidence: z.string().min(1).max(b64Chars(SPDM.MAX_REPORT_BYTES)),
  certificate: z.string().min(1).max(b64Chars(MAX_CHAIN_PEM_BYTES)),
  driver_version: z.string().max(32).optional(),
  vbios_version: z.string().max(32).optional(),
  version: z.string().max(16).optional(),
});

export type EvidenceArch = z.infer<typeof EntrySchema>['arch'];

export interface GpuEvidence {
  /** Position in the array (for messages and claims). */
  readonly position: number;
  readonly arch: EvidenceArch;
  /** The host's copy of the nonce (unsigned). */
  readonly nonce: Uint8Array;
  readonly report: Uint8Array;
  /** The PEM text of the chain (leaf first). */
  readonly chainPem: string;
  readonly driverVersion: string | undefined;
  readonly vbiosVersion: string | undefined;
  readonly version: string | undefined;
}

/** Parses nvtrust's evidence array; `maxGpus` is capped at MAX_GPUS_CEILING. */
export function parseGpuEvidence(evidence: unknown, maxGpus: number): GpuEvidence[] {
  const cap = Math.min(maxGpus, MAX_GPUS_CEILING);
  if (!Array.isArray(evidence)) throw malformed(NvidiaCodes.EVIDENCE_MALFORMED, 'NVIDIA GPU evidence must be a JSON array (one entry per GPU)');
  if (evidence.length === 0 || evidence.length > cap) {
    throw malformed(NvidiaCodes.GPU_COUNT_INVALID, `NVIDIA GPU evidence has ${evidence.length} entries; 1..${cap} are accepted`);
  }
  return evidence.map((raw, position) => {
    const r = EntrySchema.safeParse(raw);
    if (!r.success) {
      const issue = r.error.issues[0];
      const where = issue?.path.join('.') || '(entry)';
      throw malformed(issue?.code === 'too_big' ? CommonCodes.LIMIT_EXCEEDED : NvidiaCodes.EVIDENCE_MALFORMED, `NVIDIA GPU evidence[${position}].${where}: ${issue?.message ?? 'invalid'}`);
    }
    const e = r.data;
    return Object.freeze({
      position,
      arch: e.arch,
      nonce: fromHex(e.nonce, `evidence[${position}].nonce`),
      report: fromBase64Any(e.evidence, `evidence[${position}].evidence`),
      chainPem: fromUtf8(fromBase64Any(e.certificate, `evidence[${position}].certificate`), `evidence[${position}].certificate`),
      driverVersion: e.driver_version,
      vbiosVersion: e.vbios_version,
      version: e.version,
    });
  });
}

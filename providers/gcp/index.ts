/**
 * @module providers/gcp
 *
 * Provider `gcp`: GCE Shielded / Confidential VMs attest with a vTPM whose attestation key (AK)
 * Google's EK/AK CA certifies, naming the instance (project, zone, instance id and name) in the
 * certificate. `gotpm attest --nonce <binding>` packs the AK certificate, the AK public area,
 * one quote per PCR bank and the event log into a go-tpm-tools `attest.Attestation`.
 *
 * Formats:
 * - `gotpm`        `{"attestation": base64(attest.Attestation protobuf)}` (protocol §3);
 * - `gotpm-json`   the same parts as JSON (schema in docs/gcp.md, parse.ts);
 * - `vaportpm-gcp` lockboot/vaportpm's GCP evidence JSON (vaportpm.ts).
 *
 * The pipeline is parse (parse.ts / vaportpm.ts, no crypto) → verify (verify.ts, akcert.ts) →
 * claims (validate.ts). Options come from `createGcpProvider(options)`; a call's
 * `ctx.options`, when non-empty, replaces them for that call (validated the same way).
 */
import { malformed } from '../common/errors.js';
import { KdsClient, SnpVerifyCache } from '../amd-sev-snp/index.js';
import type { Provider, ProviderClaims, VerifyContext } from '../common/types.js';
import { parseGotpmEvidence, parseGotpmJsonEvidence, type GotpmAttestation } from './parse.js';
import { parseVaportpmGcpEvidence } from './vaportpm.js';
import { verifyGcpAttestation } from './verify.js';
import { parseGcpOptions, toClaims, type GcpOptions, type GcpOptionsInput } from './validate.js';

export const GCP_FORMATS = Object.freeze(['gotpm', 'gotpm-json', 'vaportpm-gcp'] as const);
export type GcpFormat = (typeof GCP_FORMATS)[number];

export { GcpCodes } from './verify.js';
export { AkCertCodes } from './akcert.js';
export { GcpParseCodes } from './parse.js';
export { InstanceInfoCodes } from './instance-info.js';
export { ProtoCodes } from './protobuf.js';
export type { GcpOptionsInput, GcpOptions };

function parseEvidence(format: string, evidence: unknown): GotpmAttestation {
  switch (format) {
    case 'gotpm':
      return parseGotpmEvidence(evidence);
    case 'gotpm-json':
      return parseGotpmJsonEvidence(evidence);
    case 'vaportpm-gcp':
      return parseVaportpmGcpEvidence(evidence);
    default:
      throw malformed('FORMAT_UNSUPPORTED', `provider gcp does not verify format ${format}`);
  }
}

/** Builds the `gcp` provider; invalid options throw GCP_OPTIONS_INVALID at construction. */
export function createGcpProvider(options: GcpOptionsInput = {}): Provider {
  const base = parseGcpOptions(options);
  // One KDS client and SNP cache per provider: AMD KDS rate-limits, so misses are single-flight.
  const kds = new KdsClient();
  const snpCache = new SnpVerifyCache();
  // The broker passes the same configuration object on every call: validate it once per object.
  const perCall = new WeakMap<object, GcpOptions>();
  const optionsFor = (o: Readonly<Record<string, unknown>>): GcpOptions => {
    let v = perCall.get(o);
    if (!v) {
      v = parseGcpOptions(o);
      perCall.set(o, v);
    }
    return v;
  };
  return Object.freeze({
    name: 'gcp' as const,
    formats: GCP_FORMATS,
    async verify(format: string, evidence: unknown, ctx: VerifyContext): Promise<ProviderClaims> {
      const opts: GcpOptions = ctx.options && Object.keys(ctx.options).length > 0 ? optionsFor(ctx.options) : base;
      const att = parseEvidence(format, evidence);
      const verified = await verifyGcpAttestation(att, {
        binding: ctx.binding,
        now: ctx.now,
        trust: ctx.trust,
        allowSha1: opts.allowSha1,
        allowNonProduction: opts.allowNonProduction,
        requiredBanks: opts.requiredBanks,
        configuredIntermediates: opts.intermediates,
        fetch: ctx.fetch,
        ...(ctx.signal ? { signal: ctx.signal } : {}),
        kds,
        snpCache,
      });
      return toClaims(format, verified, opts.acceptNonceBoundTee);
    },
  });
}

/**
 * @module providers/gcp/validate
 *
 * The `gcp` provider's options (validated once, fail closed) and the mapping from verified
 * evidence to normalized claims. Policy (which projects, zones, PCR values are admitted) is not
 * decided here: it sees only the claims, and may pin only fields listed in `identity.proven`.
 *
 * Options (every field explicit; defaults are the safe choice):
 * - `allowSha1` (false): report SHA-1 PCR banks and accept attestations whose only bank is SHA-1
 *   (old distributions with a SHA-1-only event log). SHA-1 *signatures* are never accepted.
 * - `allowNonProduction` (false): accept AK certificates whose instance info does not say
 *   isProduction (Google-internal test instances).
 * - `intermediates` ([]): Google EK/AK intermediate certificates (PEM text or base64 DER) for
 *   attestations that do not carry their own (older `gotpm` releases); they are intermediates
 *   only — the path must still end at a pinned Google root.
 */
import { z } from 'zod';
import { configError } from '../common/errors.js';
import { fromBase64Any } from '../common/encoding.js';
import { parsePemCertificates, certDer, type Certificate } from '../common/x509.js';
import type { ProviderClaims } from '../common/types.js';
import { parseConfiguredIntermediates } from './akcert.js';
import type { VerifiedGcpAttestation } from './verify.js';

export const GcpOptionsSchema = z.strictObject({
  allowSha1: z.boolean().default(false),
  allowNonProduction: z.boolean().default(false),
  intermediates: z
    .array(z.union([z.string().min(1).max(64 * 1024), z.custom<Uint8Array>((v) => v instanceof Uint8Array, 'expected bytes')]))
    .max(16)
    .default([]),
});

/** What `createGcpProvider` accepts (configuration files give strings; code may give bytes). */
export interface GcpOptionsInput {
  readonly allowSha1?: boolean;
  readonly allowNonProduction?: boolean;
  readonly intermediates?: readonly (string | Uint8Array)[];
}

export interface GcpOptions {
  readonly allowSha1: boolean;
  readonly allowNonProduction: boolean;
  readonly intermediates: readonly Certificate[];
}

/** Validates provider options; throws GCP_OPTIONS_INVALID (kind config) otherwise. */
export function parseGcpOptions(input: unknown): GcpOptions {
  const r = GcpOptionsSchema.safeParse(input ?? {});
  if (!r.success) {
    const first = r.error.issues[0];
    throw configError('GCP_OPTIONS_INVALID', `gcp provider options: ${first ? `${first.path.join('.')}: ${first.message}` : 'invalid'}`);
  }
  const ders: Uint8Array[] = [];
  for (const item of r.data.intermediates) {
    if (item instanceof Uint8Array) ders.push(item);
    else if (item.includes('-----BEGIN')) ders.push(...parsePemCertificates(item, 'gcp intermediates').map(certDer));
    else ders.push(fromBase64Any(item, 'gcp intermediate'));
  }
  return Object.freeze({
    allowSha1: r.data.allowSha1,
    allowNonProduction: r.data.allowNonProduction,
    intermediates: Object.freeze(parseConfiguredIntermediates(ders)),
  });
}

/** `us-central1-a` → `us-central1` (GCE zone names are `<region>-<letter>`). */
export function regionOfZone(zone: string): string | undefined {
  const m = /^([a-z]+-[a-z]+[0-9]+)-[a-z]$/.exec(zone);
  return m ? m[1] : undefined;
}

/** Normalized claims from a verified attestation (architecture.md "Normalized claims"). */
export function toClaims(format: string, v: VerifiedGcpAttestation): ProviderClaims {
  const id = v.akCert.identity;
  const region = regionOfZone(id.zone);
  const extra: Record<string, string> = {
    projectNumber: id.projectNumber.toString(),
    akCertLineage: v.akCert.lineage,
    akCertRoot: v.akCert.anchor.id,
  };
  const sp = id.securityProperties;
  if (sp?.securityVersion !== undefined) extra.securityVersion = sp.securityVersion.toString();
  if (sp?.isProduction !== undefined) extra.isProduction = String(sp.isProduction);
  for (const [tag, val] of Object.entries(sp?.other ?? {})) extra[`securityProperty${tag}`] = String(val);
  if (v.eventLog === 'not-replayed') extra.eventLog = 'present-not-replayed';
  const proven = ['account', 'zone', 'instanceId', 'instanceName', 'extra.projectNumber', 'extra.akCertLineage'];
  if (region) proven.push('region');
  if (sp?.securityVersion !== undefined) proven.push('extra.securityVersion');
  if (sp?.isProduction !== undefined) proven.push('extra.isProduction');
  return {
    provider: 'gcp',
    format,
    // No hardware TEE report is verified on this path (verify.ts refuses attestations with one).
    platform: { tee: 'none', debug: false },
    identity: {
      cloud: 'gcp',
      account: id.projectId,
      ...(region ? { region } : {}),
      zone: id.zone,
      instanceId: id.instanceId.toString(),
      instanceName: id.instanceName,
      extra,
      proven: Object.freeze(proven),
    },
    tpm: { akSha256: v.akSha256, akName: v.akName, pcrs: v.pcrs, akTrust: 'cloud-certified' },
    // No `boot`: the event log is not replayed on this path, so nothing in it is a fact.
    release: { akName: v.akName },
  };
}

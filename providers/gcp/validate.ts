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
 * - `requiredBanks` (['sha256']): PCR banks every attestation must carry a verified quote for.
 *   Policies pin SHA-256 values, every GCE vTPM quotes SHA-256, and a fixed bank means claims
 *   cannot shift to another bank's digests when a quote is withheld. [] accepts any allowed bank.
 * - `allowNonProduction` (false): accept AK certificates whose instance info does not say
 *   isProduction (Google-internal test instances).
 * - `intermediates` ([]): Google EK/AK intermediate certificates (PEM text or base64 DER) for
 *   attestations that do not carry their own (older `gotpm` releases); they are intermediates
 *   only — the path must still end at a pinned Google root.
 */
import { snpPlatformClaims } from '../amd-sev-snp/claims.js';
import { z } from 'zod';
import { configError } from '../common/errors.js';
import { fromBase64Any } from '../common/encoding.js';
import { parsePemCertificates, certDer, type Certificate } from '../common/x509.js';
import type { PcrBank, PlatformClaims, ProviderClaims } from '../common/types.js';
import type { VerifiedSnpReport } from '../amd-sev-snp/index.js';
import { parseConfiguredIntermediates } from './akcert.js';
import type { VerifiedGcpAttestation } from './verify.js';

export const GcpOptionsSchema = z.strictObject({
  allowSha1: z.boolean().default(false),
  allowNonProduction: z.boolean().default(false),
  /**
   * go-tpm-tools binds a Confidential VM's SEV-SNP report to the vTPM quotes only through the
   * shared nonce: nothing proves the report came from the VM whose vTPM quoted. Anyone running
   * some SNP VM could have it sign a report over the broker's nonce and pair it with another
   * (non-confidential) VM's quote. Off by default: the report is still verified, but the claims
   * then say `tee: 'none'` (with the report's facts under `platform.fields.unbound*`), so a
   * policy requiring a TEE denies. Turn on only if you accept that pairing risk.
   */
  acceptNonceBoundTee: z.boolean().default(false),
  requiredBanks: z.array(z.enum(['sha1', 'sha256', 'sha384'])).max(3).default(['sha256']),
  intermediates: z
    .array(z.union([z.string().min(1).max(64 * 1024), z.custom<Uint8Array>((v) => v instanceof Uint8Array, 'expected bytes')]))
    .max(16)
    .default([]),
});

/** What `createGcpProvider` accepts (configuration files give strings; code may give bytes). */
export interface GcpOptionsInput {
  readonly allowSha1?: boolean;
  readonly allowNonProduction?: boolean;
  readonly acceptNonceBoundTee?: boolean;
  readonly requiredBanks?: readonly ('sha1' | 'sha256' | 'sha384')[];
  readonly intermediates?: readonly (string | Uint8Array)[];
}

export interface GcpOptions {
  readonly allowSha1: boolean;
  readonly allowNonProduction: boolean;
  readonly acceptNonceBoundTee: boolean;
  readonly requiredBanks: readonly PcrBank[];
  readonly intermediates: readonly Certificate[];
}

/** Validates provider options; throws GCP_OPTIONS_INVALID (kind config) otherwise. */
export function parseGcpOptions(input: unknown): GcpOptions {
  const r = GcpOptionsSchema.safeParse(input ?? {});
  if (!r.success) {
    const first = r.error.issues[0];
    throw configError('GCP_OPTIONS_INVALID', `gcp provider options: ${first ? `${first.path.join('.')}: ${first.message}` : 'invalid'}`);
  }
  if (r.data.requiredBanks.includes('sha1') && !r.data.allowSha1) {
    throw configError('GCP_OPTIONS_INVALID', 'gcp provider options: requiredBanks names sha1 but allowSha1 is false');
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
    acceptNonceBoundTee: r.data.acceptNonceBoundTee,
    requiredBanks: Object.freeze([...new Set(r.data.requiredBanks)]),
    intermediates: Object.freeze(parseConfiguredIntermediates(ders)),
  });
}

/** Platform claims of a verified SEV-SNP report (the shared shape), with its binding named. */
function snpPlatform(s: VerifiedSnpReport): PlatformClaims {
  const p = snpPlatformClaims(s);
  // go-tpm-tools binds the report to the quotes through the nonce only (docs/gcp.md).
  return { ...p, fields: { ...p.fields, binding: 'nonce' } };
}

/** `us-central1-a` → `us-central1` (GCE zone names are `<region>-<letter>`). */
export function regionOfZone(zone: string): string | undefined {
  const m = /^([a-z]+-[a-z]+[0-9]+)-[a-z]$/.exec(zone);
  return m ? m[1] : undefined;
}

/** Normalized claims from a verified attestation (architecture.md "Normalized claims"). */
/** The SNP platform when the operator accepts nonce-only binding; otherwise no TEE is claimed. */
export function gcpPlatform(v: Pick<VerifiedGcpAttestation, 'snp'>, acceptNonceBoundTee: boolean): PlatformClaims {
  if (!v.snp) return { tee: 'none', debug: false };
  const p = snpPlatform(v.snp);
  if (acceptNonceBoundTee) return p;
  return {
    tee: 'none',
    debug: p.debug,
    fields: {
      unboundTee: 'sev-snp',
      unboundMeasurement: p.measurement ?? '',
      unboundChipId: p.chipId ?? '',
      binding: 'nonce',
    },
  };
}

export function toClaims(format: string, v: VerifiedGcpAttestation, acceptNonceBoundTee = false): ProviderClaims {
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
  const proven = ['account', 'zone', 'instanceId', 'instanceName', 'extra.projectNumber', 'extra.akCertLineage'];
  if (region) proven.push('region');
  if (sp?.securityVersion !== undefined) proven.push('extra.securityVersion');
  if (sp?.isProduction !== undefined) proven.push('extra.isProduction');
  return {
    provider: 'gcp',
    format,
    platform: gcpPlatform(v, acceptNonceBoundTee),
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
    ...(v.boot ? { boot: v.boot } : {}),
    release: { akName: v.akName },
  };
}

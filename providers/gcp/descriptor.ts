/**
 * @module providers/gcp/descriptor
 *
 * Provider `gcp`: go-tpm-tools attestations with Google-certified AKs, optionally carrying a
 * SEV-SNP report (docs/gcp.md). Needs one of Google's EK/AK roots.
 */
import { PinIds } from '../common/pins.js';
import { intermediatesOf, provenValue, type ProviderDescriptor } from '../descriptor.js';
import { createGcpProvider, type GcpOptionsInput } from './index.js';
import { GcpOptionsSchema } from './validate.js';

export const gcp: ProviderDescriptor<'gcp'> = {
  kind: 'platform',
  name: 'gcp',
  formats: {
    // TDX reports in gotpm evidence are refused today (TEE_REPORT_UNSUPPORTED), so a TDX rule is impossible.
    gotpm: { tees: ['sev-snp', 'none'] },
    'gotpm-json': { tees: ['sev-snp', 'none'] },
    'vaportpm-gcp': { tees: ['none'] },
  },
  pins: [[PinIds.GOOGLE_TPM_EK_ROOT_1, PinIds.GOOGLE_EKAK_ROOT]],
  intermediates: 'google-',
  options: GcpOptionsSchema,
  // The pinned Google intermediates `trust fetch` installs serve legacy attestations that carry
  // only their AK certificate (as go-tpm-tools compiles them in); operator options come first.
  create(raw, env) {
    const o = raw as GcpOptionsInput;
    const google = intermediatesOf(env, 'google-');
    return createGcpProvider(google && o.intermediates === undefined ? { ...o, intermediates: [google] } : o);
  },
  identity: {
    cloud: 'gcp',
    rule: {
      projects: { claim: 'account', match: 'exact', description: 'GCP project ids (claims.identity.account).' },
      zones: { claim: 'zone', match: 'exact', description: 'GCE zones (claims.identity.zone).' },
      instanceNames: { claim: 'instanceName', match: 'glob', description: 'Patterns over the GCE instance name (claims.identity.instanceName).' },
    },
    hint: 'projects and zones',
    capture: (c) => ({ projects: provenValue(c, 'account'), zones: provenValue(c, 'zone'), instanceNames: 'any' }),
  },
  nodeName: {
    sources: { 'gce-instance-name': { field: 'instanceName' } },
    capture: () => 'gce-instance-name',
  },
  offlineOptions: (o) => ({
    ...(o.intermediatesPem ? { intermediates: [o.intermediatesPem] } : {}),
    ...(o.allowSha1 ? { allowSha1: true, requiredBanks: [] } : {}),
  }),
  client: { platform: 'gcp', format: 'gotpm' },
};

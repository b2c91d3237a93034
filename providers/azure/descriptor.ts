/**
 * @module providers/azure/descriptor
 *
 * Provider `azure`: Azure Confidential VMs on AMD SEV-SNP and Intel TDX through their vTPM
 * (docs/azure.md). Needs an AMD ARK or the Intel SGX root (one family suffices to start).
 */
import { PinIds } from '../common/pins.js';
import { intermediatesOf, proves, provenValue, type ProviderDescriptor } from '../descriptor.js';
import { AzureProviderOptionsSchema, createAzureProviderFromConfig } from './index.js';

export const azure: ProviderDescriptor<'azure'> = {
  kind: 'platform',
  name: 'azure',
  formats: { 'az-snp-vtpm': { tees: ['sev-snp'] }, 'az-tdx-vtpm': { tees: ['tdx'] } },
  // Azure SNP needs an AMD ARK; Azure TDX an Intel root. One family suffices to start.
  pins: [[PinIds.AMD_ARK_MILAN, PinIds.AMD_ARK_GENOA, PinIds.AMD_ARK_TURIN, PinIds.INTEL_SGX_ROOT]],
  intermediates: 'amd-',
  options: AzureProviderOptionsSchema,
  create(o, env) {
    const amd = intermediatesOf(env, 'amd-');
    return createAzureProviderFromConfig(amd && o.amdIntermediatesPem === undefined ? { ...o, amdIntermediatesPem: amd } : o);
  },
  identity: {
    cloud: 'azure',
    rule: {
      subscriptions: { claim: 'account', match: 'exact', description: 'Azure subscription ids (claims.identity.account).' },
      resourceGroups: { claim: 'extra.resourceGroup', match: 'exact', description: "Resource groups (claims.identity.extra.resourceGroup, proven as 'extra.resourceGroup')." },
      instanceNames: { claim: 'instanceName', match: 'glob', description: 'Patterns over the VM name (claims.identity.instanceName).' },
    },
    hint: 'subscriptions and resource groups',
    capture: (c) => ({ subscriptions: provenValue(c, 'account'), resourceGroups: provenValue(c, 'extra.resourceGroup'), instanceNames: 'any' }),
  },
  nodeName: {
    // vmId is a GUID, case-insensitive by definition (RFC 9562 §4): lower-cased. Names are used
    // exactly as proven: changing them could make two instances collide.
    sources: { 'azure-vm-name': { field: 'instanceName' }, 'azure-vm-id': { field: 'instanceId', lowercase: true } },
    capture: (c) => (proves(c, 'instanceName') ? 'azure-vm-name' : 'azure-vm-id'),
  },
  offlineOptions: (o) => (o.intermediatesPem ? { amdIntermediatesPem: o.intermediatesPem } : {}),
  client: { platform: 'azure', format: 'az-snp-vtpm' },
};

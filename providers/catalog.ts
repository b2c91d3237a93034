/**
 * @module providers/catalog
 *
 * The providers this build contains: THE list (docs/providers.md). Everything provider-specific
 * in the broker is derived from it — formats and registry, configuration, required roots,
 * policy schema and evaluation, semantic checks, capture, the `verify` command, the node
 * client's platforms. Adding a provider is a folder with a `descriptor.ts` and one line here.
 *
 * The order is the order of every derived list (protocol enums, config and policy keys).
 */
import { checkCatalog } from './descriptor.js';
import { azure } from './azure/descriptor.js';
import { gcp } from './gcp/descriptor.js';
import { aws } from './aws/descriptor.js';
import { tpm } from './tpm/descriptor.js';
import { nvidia } from './nvidia/descriptor.js';

/** Platform providers: verify the evidence of an attest request. */
export const PROVIDERS = [azure, gcp, aws, tpm] as const;

/** Device providers: verify device evidence attached to an attest request. */
export const DEVICES = [nvidia] as const;

checkCatalog(PROVIDERS, DEVICES);

export type ProviderName = (typeof PROVIDERS)[number]['name'];
export type DeviceName = (typeof DEVICES)[number]['name'];
/** The attest request's `devices[].kind` values. */
export type DeviceKind = (typeof DEVICES)[number]['evidence'];

export const PROVIDER_NAMES: readonly ProviderName[] = PROVIDERS.map((d) => d.name);
export const DEVICE_KINDS: readonly DeviceKind[] = DEVICES.map((d) => d.evidence);

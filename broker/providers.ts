/**
 * @module broker/providers
 *
 * Builds the enabled providers and device verifiers from the catalog (providers/catalog.ts), and
 * holds the start-up check that every enabled one has its pinned roots loaded (fail closed: an
 * enabled provider without roots refuses to start instead of "skipping" chain checks).
 */
import { BUILTIN_PINS } from '../providers/common/pins.js';
import type { Provider, ProviderName, TrustStore } from '../providers/common/types.js';
import { DEVICES, PROVIDERS, type DeviceKind } from '../providers/catalog.js';
import { checkOptions, factoryOf, type DeviceDescriptor, type DeviceVerifier, type ProviderDescriptor, type ProviderFactory } from '../providers/descriptor.js';
import type { BrokerConfig } from './config/schema.js';
import { ConfigProblem } from './config/schema.js';

export { intermediatesOf, type ProviderEnv, type ProviderFactory } from '../providers/descriptor.js';
import type { ProviderEnv } from '../providers/descriptor.js';

/**
 * Factories of the providers compiled into this build, by name: a view derived from the catalog
 * (the options are checked by the descriptor's schema, then its `create` runs). Kept as a plain
 * object for callers that build one provider directly (tests, the perf harness); the broker
 * itself builds from the descriptors (`buildProviders`), so changing this object changes nothing
 * the broker serves.
 */
export const PROVIDER_FACTORIES: Partial<Record<ProviderName, ProviderFactory>> = Object.fromEntries(PROVIDERS.map((d) => [d.name, factoryOf(d)]));

/** Roots each provider cannot work without (at least one of each group must be loaded). */
export const REQUIRED_PINS: Readonly<Record<string, readonly (readonly string[])[]>> = Object.freeze(
  Object.fromEntries([...PROVIDERS, ...DEVICES].filter((d) => d.pins.length > 0).map((d) => [d.name, d.pins])),
);

export function availableProviders(catalog: readonly ProviderDescriptor[] = PROVIDERS): string[] {
  return catalog.map((d) => d.name);
}

/** One problem line per required root group of `d` with no loaded root. */
function missingRoots(at: string, d: { readonly pins: readonly (readonly string[])[] }, trust: TrustStore, dir: string): string[] {
  const out: string[] = [];
  for (const group of d.pins) {
    if (trust.anchors(group).length > 0) continue;
    const pins = BUILTIN_PINS.filter((p) => group.includes(p.id)).map((p) => p.id);
    out.push(
      `${at}: enabled, but none of its pinned roots (${(pins.length ? pins : group).join(', ')}) is loaded from trust.dir "${dir}"; ` +
        `run 'attest-broker trust fetch --dir ${dir}' (or 'trust import DIR' on an air-gapped host), or disable the provider`,
    );
  }
  return out;
}

type Toggle = { enabled: boolean; options: Readonly<Record<string, unknown>> };

/** Builds the enabled providers; throws ConfigProblem listing everything to fix. */
export function buildProviders(cfg: BrokerConfig, trust: TrustStore, env: ProviderEnv, catalog: readonly ProviderDescriptor[] = PROVIDERS): Provider[] {
  const problems: string[] = [];
  const out: Provider[] = [];
  const toggles = cfg.providers as Readonly<Record<string, Toggle | undefined>>;
  for (const [name, toggle] of Object.entries(toggles)) {
    if (!toggle?.enabled) continue;
    const d = catalog.find((x) => x.name === name);
    if (!d) {
      problems.push(`providers.${name}.enabled: this build has no "${name}" provider (available: ${availableProviders(catalog).join(', ') || 'none'}); disable it`);
      continue;
    }
    problems.push(...missingRoots(`providers.${name}`, d, trust, cfg.trust.dir));
    try {
      out.push(factoryOf(d)(toggle.options, env));
    } catch (e) {
      problems.push(`providers.${name}.options: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  if (problems.length) throw new ConfigProblem(problems);
  return out;
}

/** Builds the enabled device verifiers, by evidence kind; throws ConfigProblem listing everything to fix. */
export function buildDevices(
  cfg: BrokerConfig,
  trust: TrustStore,
  deps: { fetch: typeof fetch },
  catalog: readonly DeviceDescriptor[] = DEVICES,
): Partial<Record<DeviceKind, DeviceVerifier>> | undefined {
  const problems: string[] = [];
  const out: Record<string, DeviceVerifier> = {};
  const toggles = cfg.devices as Readonly<Record<string, Toggle | undefined>>;
  for (const [name, toggle] of Object.entries(toggles)) {
    if (!toggle?.enabled) continue;
    const d = catalog.find((x) => x.name === name);
    if (!d) {
      problems.push(`devices.${name}.enabled: this build has no "${name}" device verifier (available: ${catalog.map((x) => x.name).join(', ') || 'none'}); disable it`);
      continue;
    }
    problems.push(...missingRoots(`devices.${name}`, d, trust, cfg.trust.dir));
    try {
      out[d.evidence] = d.create(checkOptions(d, toggle.options), deps);
    } catch (e) {
      problems.push(`devices.${name}.options: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  if (problems.length) throw new ConfigProblem(problems);
  return Object.keys(out).length > 0 ? (out as Partial<Record<DeviceKind, DeviceVerifier>>) : undefined;
}

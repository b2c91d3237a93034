/**
 * @module broker/providers
 *
 * The provider adapters this build contains, and the start-up check that every enabled cloud
 * provider has its pinned roots loaded (fail closed: an enabled provider without roots refuses
 * to start instead of "skipping" chain checks).
 */
import { REQUIRED_PINS, BUILTIN_PINS } from '../providers/common/pins.js';
import type { Provider, ProviderName, TrustStore } from '../providers/common/types.js';
import type { StateStore } from './contracts.js';
import type { BrokerConfig } from './config/schema.js';
import { ConfigProblem } from './config/schema.js';

/** What a provider may need from the runtime besides its options (e.g. TPM activations). */
export interface ProviderEnv {
  store: StateStore;
  /**
   * Vendor intermediates installed beside the pinned roots (PEM by file id: `amd-ark-milan` →
   * its ASK/ASVK, `google-tpm-ek-intermediate-2` → that certificate).
   */
  intermediates?: Readonly<Record<string, string>>;
}

/** The PEM of the installed intermediates whose file id starts with `prefix` (one vendor's). */
export function intermediatesOf(env: ProviderEnv, prefix: string): string {
  return Object.entries(env.intermediates ?? {})
    .filter(([id]) => id.startsWith(prefix))
    .map(([, pem]) => pem)
    .join('');
}

export type ProviderFactory = (options: Readonly<Record<string, unknown>>, env: ProviderEnv) => Provider;

/** Factories of the providers compiled into this build. */
export const PROVIDER_FACTORIES: Partial<Record<ProviderName, ProviderFactory>> = {};

export function availableProviders(): ProviderName[] {
  return Object.keys(PROVIDER_FACTORIES) as ProviderName[];
}

/** Builds the enabled providers; throws ConfigProblem listing everything to fix. */
export function buildProviders(cfg: BrokerConfig, trust: TrustStore, env: ProviderEnv): Provider[] {
  const problems: string[] = [];
  const out: Provider[] = [];
  for (const [name, toggle] of Object.entries(cfg.providers) as [ProviderName, BrokerConfig['providers']['tpm']][]) {
    if (!toggle.enabled) continue;
    const factory = PROVIDER_FACTORIES[name];
    if (!factory) {
      problems.push(`providers.${name}.enabled: this build has no "${name}" provider (available: ${availableProviders().join(', ') || 'none'}); disable it`);
      continue;
    }
    if (name !== 'tpm') {
      for (const group of REQUIRED_PINS[name]) {
        if (trust.anchors(group).length === 0) {
          const pins = BUILTIN_PINS.filter((p) => group.includes(p.id)).map((p) => p.id);
          problems.push(
            `providers.${name}: enabled, but none of its pinned roots (${pins.join(', ')}) is loaded from trust.dir "${cfg.trust.dir}"; ` +
              `run 'attest-broker trust fetch --dir ${cfg.trust.dir}' (or 'trust import DIR' on an air-gapped host), or disable the provider`,
          );
        }
      }
    }
    try {
      out.push(factory(toggle.options, env));
    } catch (e) {
      problems.push(`providers.${name}.options: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  if (problems.length) throw new ConfigProblem(problems);
  return out;
}

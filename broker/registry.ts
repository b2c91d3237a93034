/**
 * @module broker/registry
 *
 * Maps protocol formats to the provider that verifies them. A format nobody registered is a
 * clear PROVIDER_UNAVAILABLE problem — never a fake success.
 */
import { AttestError } from '../providers/common/errors.js';
import type { Provider, ProviderName } from '../providers/common/types.js';
import { PROVIDERS } from '../providers/catalog.js';
import type { ProviderDescriptor } from '../providers/descriptor.js';

export const PROVIDER_UNAVAILABLE = 'PROVIDER_UNAVAILABLE';

/** Formats by provider, as the descriptors declare them. */
export function formatsOf<N extends string>(catalog: readonly ProviderDescriptor<N>[]): Readonly<Record<N, readonly string[]>> {
  return Object.freeze(Object.fromEntries(catalog.map((d) => [d.name, Object.freeze(Object.keys(d.formats))]))) as Record<N, readonly string[]>;
}

/** Formats the protocol defines, by provider (protocol.md §3): the catalog's. */
export const PROTOCOL_FORMATS: Readonly<Record<ProviderName, readonly string[]>> = formatsOf(PROVIDERS);

export class ProviderRegistry {
  readonly #byFormat = new Map<string, Provider>();

  constructor(providers: readonly Provider[]) {
    for (const p of providers) {
      for (const f of p.formats) {
        if (this.#byFormat.has(f)) throw new Error(`format ${f} registered twice`);
        this.#byFormat.set(f, p);
      }
    }
  }

  /** The provider for (provider, format), or PROVIDER_UNAVAILABLE. */
  resolve(provider: string, format: string): Provider {
    const p = this.#byFormat.get(format);
    if (!p || p.name !== provider) {
      const known = (PROTOCOL_FORMATS as Record<string, readonly string[] | undefined>)[provider]?.includes(format);
      throw new AttestError(
        PROVIDER_UNAVAILABLE,
        known
          ? `format "${format}" of provider "${provider}" is not enabled on this broker; enable the provider in the broker's configuration`
          : `no provider "${provider}" with format "${format}" is registered on this broker (enabled formats: ${this.formats().join(', ') || 'none'})`,
      );
    }
    return p;
  }

  formats(): string[] {
    return [...this.#byFormat.keys()].sort();
  }

  providers(): Provider[] {
    return [...new Set(this.#byFormat.values())];
  }
}

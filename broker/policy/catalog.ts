/**
 * @module broker/policy/catalog
 *
 * What the policy needs of the provider catalog (providers/catalog.ts), derived once per list:
 * the schema (its `providers` / `identity` / `nodeName` sections), the `platform.tee` values each
 * format can produce, node-name sources, identity rule fields and the cloud each provider proves.
 * Every policy function takes the list as an optional last argument (default: this build's), so
 * a test can run a policy over a catalog with a provider of its own.
 */
import { PROVIDERS } from '../../providers/catalog.js';
import type { ProviderDescriptor } from '../../providers/descriptor.js';
import { clusterSchema, nodeNameSourcesOf, policySchema, policySchemaFor, teesOf } from './schema.js';

export type Catalog = readonly ProviderDescriptor[];

export interface PolicyCatalog {
  readonly providers: Catalog;
  readonly names: readonly string[];
  byName(name: string): ProviderDescriptor | undefined;
  readonly tees: Readonly<Record<string, readonly string[]>>;
  readonly nodeNames: Readonly<Record<string, { provider: string; field: string; lowercase?: true }>>;
  readonly schema: ReturnType<typeof policySchemaFor<string>>;
}

const memo = new WeakMap<Catalog, PolicyCatalog>();

export function policyCatalog(list: Catalog = PROVIDERS): PolicyCatalog {
  let c = memo.get(list);
  if (!c) {
    const byName = new Map(list.map((d) => [d.name, d]));
    c = Object.freeze({
      providers: list,
      names: Object.freeze(list.map((d) => d.name)),
      byName: (name: string) => byName.get(name),
      tees: teesOf(list),
      nodeNames: nodeNameSourcesOf(list),
      // This build's list uses the exported schema (the one docs/policy.schema.json is generated from).
      schema: list === (PROVIDERS as Catalog) ? { cluster: clusterSchema, policy: policySchema } : policySchemaFor(list),
    });
    memo.set(list, c);
  }
  return c;
}

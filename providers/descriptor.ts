/**
 * @module providers/descriptor
 *
 * What a provider folder tells the broker about itself, in one value (docs/providers.md). The
 * broker derives everything provider-specific from the list in `providers/catalog.ts`: the
 * protocol's formats and the registry, the `providers.<name>` / `devices.<name>` blocks of the
 * configuration, the pinned roots an enabled provider refuses to start without, the policy
 * schema's `providers` / `identity` / `nodeName` sections and their evaluation, the semantic
 * checks, `policy capture`, the `verify` command's format list and the node client's platforms.
 *
 * Two kinds share the list shape:
 * - `platform` (tpm, azure, gcp, aws): verifies the evidence of an attest request into `Claims`;
 * - `device` (nvidia): verifies device evidence attached to the request into `gpus` claims.
 *
 * Descriptors are data plus a factory: nothing registers itself, and no provider is built until
 * the broker builds the enabled ones. Web APIs only (the Workers build includes every descriptor).
 */
import type { z } from 'zod';
import { configError } from './common/errors.js';
import type { Claims, GpuClaims, PlatformClaims, Provider, TrustStore } from './common/types.js';

export type TeeKind = PlatformClaims['tee'];

/** The part of the broker's shared store a provider may use (e.g. TPM credential activations). */
export interface ProviderStore {
  get(key: string): Promise<string | null>;
  setIfAbsent(key: string, value: string, ttlMs?: number): Promise<boolean>;
  compareAndSet(key: string, expected: string | null, value: string, ttlMs?: number): Promise<boolean>;
}

/** What a provider may need from the runtime besides its options. */
export interface ProviderEnv {
  store: ProviderStore;
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

/** Raw `providers.<name>.options` → provider. Throws (a ConfigProblem line) on bad options. */
export type ProviderFactory = (options: Readonly<Record<string, unknown>>, env: ProviderEnv) => Provider;

/** One field of a provider's `identity.<name>` policy rule. */
export interface IdentityRuleField {
  /** The claims field it compares, as listed in `identity.proven` (`account`, `extra.resourceGroup`…). */
  readonly claim: string;
  /** `exact`: allow-list of values; `glob`: allow-list of `*`/`?` patterns. */
  readonly match: 'exact' | 'glob';
  /** The JSON-schema description (docs/policy.schema.json). */
  readonly description: string;
}

/** A policy `nodeName.<provider>.from` value: which proven identity field names the node. */
export interface NodeNameSource {
  readonly field: string;
  /** Case-insensitive by definition (a GUID): lower-cased before use. */
  readonly lowercase?: true;
}

/** A captured identity rule: per rule field, the proven value(s), or 'any'. */
export type CapturedIdentity = Readonly<Record<string, readonly string[] | 'any'>> | 'any';

export interface ProviderDescriptor<N extends string = string> {
  readonly kind: 'platform';
  /** The protocol's `provider`, the config key `providers.<name>`, the policy keys `<section>.<name>`. */
  readonly name: N;
  /** The formats it verifies (protocol.md §3), with the `platform.tee` values each can produce. */
  readonly formats: Readonly<Record<string, { readonly tees: readonly TeeKind[] }>>;
  /**
   * Pinned-root groups (pin ids, providers/common/pins.ts): at least one root of every group must
   * be loaded, or the enabled provider refuses to start. Empty: it needs no built-in root.
   */
  readonly pins: readonly (readonly string[])[];
  /** File-id prefix of the installed vendor intermediates `create` receives in `env` (`amd-`, `google-`). */
  readonly intermediates?: string;
  /** Schema of `providers.<name>.options` (strict), checked before `create` runs. */
  readonly options: z.ZodType;
  /** Builds the provider from its (already checked) options. */
  readonly create: ProviderFactory;
  readonly identity: {
    /** The `claims.identity.cloud` its evidence proves (absent: any, e.g. bare-metal TPMs). */
    readonly cloud?: string;
    /** Fields of the policy rule `identity.<name>` (besides `mode`). */
    readonly rule: Readonly<Record<string, IdentityRuleField>>;
    /** What an identity rule typically pins, for the "rule missing" message. */
    readonly hint: string;
    /** `policy capture`: the rule pinning what one known-good node proved. */
    capture(c: Claims): CapturedIdentity;
  };
  readonly nodeName: {
    /** Values of `nodeName.<name>.from` (names unique across providers). */
    readonly sources: Readonly<Record<string, NodeNameSource>>;
    /** `policy capture`: the source to use for this node. */
    capture(c: Claims): string;
  };
  /** `attest-broker verify`: options for an offline verdict (given intermediates, --allow-sha1). */
  offlineOptions?(o: { intermediatesPem: string; allowSha1: boolean }): Record<string, unknown>;
  /** The join client's `--platform` that gathers this provider's evidence, and the format it sends. */
  readonly client?: { readonly platform: string; readonly format: string };
}

/** Verifies one kind of attached device evidence against the attest's binding. */
export interface DeviceVerifier {
  verify(evidence: unknown, ctx: { binding: Uint8Array; now: Date; trust: TrustStore }): Promise<GpuClaims[]>;
}

export interface DeviceDescriptor<N extends string = string, K extends string = string> {
  readonly kind: 'device';
  /** The config key `devices.<name>`. */
  readonly name: N;
  /** The attest request's `devices[].kind` it verifies (protocol.md §3). */
  readonly evidence: K;
  readonly pins: readonly (readonly string[])[];
  readonly options: z.ZodType;
  readonly create: (options: Readonly<Record<string, unknown>>, deps: { fetch: typeof fetch }) => DeviceVerifier;
}

/** Checks `raw` against a descriptor's options schema; throws CONFIG_INVALID naming each field. */
export function checkOptions(d: { readonly options: z.ZodType }, raw: unknown): Readonly<Record<string, unknown>> {
  const r = d.options.safeParse(raw ?? {});
  if (!r.success) throw configError('CONFIG_INVALID', r.error.issues.map((i) => `${i.path.join('.') || 'options'}: ${i.message}`).join('; '));
  return (raw ?? {}) as Readonly<Record<string, unknown>>;
}

/** The factory the broker calls: options checked by the descriptor's schema, then `create`. */
export function factoryOf(d: Pick<ProviderDescriptor, 'options' | 'create'>): ProviderFactory {
  return (raw, env) => d.create(checkOptions(d, raw), env);
}

/**
 * Refuses a list the broker could not derive one meaning from: a name, format, node-name source
 * or device kind used twice, or a provider without formats. Thrown at start (and in tests).
 */
export function checkCatalog(providers: readonly ProviderDescriptor[], devices: readonly DeviceDescriptor[] = []): void {
  const seen = (what: string) => {
    const s = new Set<string>();
    return (v: string) => {
      if (s.has(v)) throw new Error(`provider catalog: ${what} "${v}" is declared twice`);
      s.add(v);
    };
  };
  const name = seen('name');
  const format = seen('format');
  const source = seen('node-name source');
  const kind = seen('device evidence kind');
  for (const d of providers) {
    if (!/^[a-z][a-z0-9-]{0,31}$/.test(d.name)) throw new Error(`provider catalog: "${d.name}" is not a provider name (lower-case letters, digits, -)`);
    name(d.name);
    if (Object.keys(d.formats).length === 0) throw new Error(`provider catalog: ${d.name} declares no format`);
    for (const f of Object.keys(d.formats)) format(f);
    for (const s of Object.keys(d.nodeName.sources)) source(s);
    if (Object.keys(d.nodeName.sources).length === 0) throw new Error(`provider catalog: ${d.name} declares no node-name source`);
  }
  const deviceName = seen('device name');
  for (const d of devices) {
    deviceName(d.name);
    kind(d.evidence);
  }
}

/** `policy capture` helper: `[value]` when the claims prove `field`, else 'any'. */
export function provenValue(c: Claims, field: string): string[] | 'any' {
  if (!c.identity.proven.includes(field)) return 'any';
  const id = c.identity as unknown as Record<string, unknown>;
  const v = field.startsWith('extra.') ? c.identity.extra?.[field.slice(6)] : id[field];
  return typeof v === 'string' && v !== '' ? [v] : 'any';
}

/** Whether the claims prove `field`. */
export const proves = (c: Claims, field: string): boolean => c.identity.proven.includes(field);

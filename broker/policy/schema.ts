/**
 * @module broker/policy/schema
 *
 * The join-policy file format, `apiVersion: attest-broker/v1` (docs/policy.md explains every
 * field and its reason; docs/policy.schema.json is generated from this file).
 *
 * Design rules, all of them "fail closed":
 * - Every object is strict: an unknown key (a typo such as `secureboot`) is an error, never a
 *   silently ignored rule.
 * - Every check is REQUIRED. A check the operator does not want is written out as the string
 *   `'any'`; a missing key never means "skip" (house-style §7, go-tpm-tools `validateOpts`).
 * - Allow-lists are non-empty. An empty list is refused with a message telling the operator to
 *   either list values or write `'any'`.
 * - Reference values are lower-case hex of the exact digest size of their bank, so a truncated
 *   or upper-case paste is caught at load time instead of silently never matching.
 * - `mode: warn` exists only on rules whose failure a new image or a new cloud setting could
 *   cause (platform, identity, secure boot, reference values). Rules that define what the claims
 *   *mean* — which providers/formats, AK trust, node name, release — have no warn mode: a
 *   warn-mode AK-trust rule would admit self-asserted keys without anyone writing that down.
 *
 * Semantic checks that need more than one field (a rule for a cloud the cluster does not
 * enable, a TEE kind no enabled format can produce, a missing identity rule…) live in
 * `semantic.ts`; they are errors at load time too.
 */
import { z } from 'zod';
import { PROVIDERS, type ProviderName } from '../../providers/catalog.js';
import type { ProviderDescriptor } from '../../providers/descriptor.js';
import { formatsOf } from '../registry.js';

export const API_VERSION = 'attest-broker/v1';

/** Known formats per provider (protocol.md §3). A format not listed here is an impossible rule. */
export const PROVIDER_FORMATS = formatsOf(PROVIDERS);

/** Which `platform.tee` values each format can produce (used to find impossible TEE rules). */
export const FORMAT_TEES: Readonly<Record<string, readonly string[]>> = teesOf(PROVIDERS);

/** `platform.tee` values by format, as the descriptors declare them. */
export function teesOf(catalog: readonly ProviderDescriptor[]): Readonly<Record<string, readonly string[]>> {
  return Object.freeze(Object.fromEntries(catalog.flatMap((d) => Object.entries(d.formats).map(([f, x]) => [f, x.tees]))));
}

export const ANY = z.literal('any').describe("Written out to leave this check unchecked: an absent key is an error, never 'skip'.");

const mode = z
  .enum(['enforce', 'warn'])
  .optional()
  .describe("'enforce' (default) denies on failure; 'warn' records the failure in the decision and the policy-warning metric (Metrics.policyWarn) but never denies.");

const hexOf = (bytes: number, what: string) =>
  z
    .string()
    .regex(new RegExp(`^[0-9a-f]{${bytes * 2}}$`), `${what} must be ${bytes * 2} lower-case hex digits`)
    .describe(`${what}: ${bytes * 2} lower-case hex digits`);

const nonEmpty = <T extends z.ZodType>(item: T, what: string) =>
  z
    .array(item)
    .min(1, `${what}: an empty list would admit nothing and hides intent; list the allowed values or write 'any'`)
    .max(1024, `${what}: at most 1024 entries`);

const sha256Hex = hexOf(32, 'SHA-256 digest');
const sha384Hex = hexOf(48, 'SHA-384 digest');

/** A glob over a name: `*` any run of characters, `?` one character; everything else literal. */
const namePattern = z
  .string()
  .min(1)
  .max(253)
  .regex(/^[A-Za-z0-9*?._:-]+$/, 'instance-name patterns use letters, digits, . _ : - and the wildcards * and ?')
  .describe('Glob over the proven instance name: * matches any run of characters, ? one character.');

const identityValue = z.string().min(1).max(256);

// ───────────────────────────── providers ─────────────────────────────

const providerEntry = (d: ProviderDescriptor) =>
  z
    .strictObject({
      formats: nonEmpty(z.enum(Object.keys(d.formats) as [string, ...string[]]), `providers.${d.name}.formats`).describe(`Evidence formats accepted from ${d.name} nodes.`),
    })
    .describe(`Admit ${d.name} nodes presenting one of these formats.`);

/** `{<name>: f(descriptor)}` over a catalog, keyed by its names. */
function perProvider<N extends string, T extends z.ZodType>(catalog: readonly ProviderDescriptor<N>[], f: (d: ProviderDescriptor<N>) => T): { [K in N]: T } {
  return Object.fromEntries(catalog.map((d) => [d.name, f(d)])) as { [K in N]: T };
}

const providersOf = <N extends string>(catalog: readonly ProviderDescriptor<N>[]) =>
  z
    .strictObject(perProvider(catalog, (d) => providerEntry(d).optional()))
    .describe('Allowed providers and formats. A provider not listed here is denied (POLICY_PROVIDER_NOT_ALLOWED).');

// ───────────────────────────── TPM ─────────────────────────────

export const AK_TRUST = ['cloud-certified', 'hardware-report', 'ek-credential', 'pinned', 'evidence-only'] as const;

const tpm = z
  .strictObject({
    akTrust: nonEmpty(z.enum(AK_TRUST), 'tpm.akTrust').describe(
      "How the attestation key may be known to live in a genuine TPM. 'evidence-only' (the AK is whatever the evidence presents) is admitted only when listed here.",
    ),
    pinnedAks: z
      .union([
        ANY,
        z.strictObject({ mode, sha256: nonEmpty(sha256Hex, 'tpm.pinnedAks.sha256').describe('SHA-256 of the AK SubjectPublicKeyInfo (claims.tpm.akSha256).') }),
      ])
      .describe('Pin the exact AKs allowed (labs, bare metal), or any.'),
  })
  .describe('TPM attestation-key trust. Claims without a TPM section are denied (POLICY_TPM_MISSING).');

// ───────────────────────────── platform ─────────────────────────────

const platform = z
  .strictObject({
    tee: z
      .union([
        ANY,
        z.strictObject({
          mode,
          kinds: nonEmpty(z.enum(['sev-snp', 'tdx', 'nitro']), 'platform.tee.kinds').describe('Confidential-computing kinds accepted; a node without a TEE is denied.'),
        }),
      ])
      .describe('Require a TEE, and which kinds.'),
    debug: z
      .union([ANY, z.strictObject({ mode, forbidden: z.literal(true, { error: "write 'forbidden: true', or 'debug: any' to admit debug guests" }).describe('Deny guests launched with debug enabled (SNP policy bit 19, TDX TD_ATTRIBUTES.DEBUG).') })])
      .describe('Forbid debug-enabled guests (their memory is readable by the host).'),
    snpTcb: z
      .union([
        ANY,
        z.strictObject({
          mode,
          min: z
            .strictObject({
              bootloader: z.int().min(0).max(255),
              tee: z.int().min(0).max(255),
              snp: z.int().min(0).max(255),
              microcode: z.int().min(0).max(255),
            })
            .describe('Minimum reported TCB security version per component (SNP report reported_tcb).'),
        }),
      ])
      .describe('Minimum SEV-SNP TCB; applies to sev-snp claims only.'),
    tdx: z
      .union([
        ANY,
        z.strictObject({
          mode,
          tdAttributes: nonEmpty(hexOf(8, 'TD_ATTRIBUTES'), 'platform.tdx.tdAttributes').describe('Allowed TD_ATTRIBUTES (8 bytes, hex as in the TD report).'),
          xfam: z.union([ANY, nonEmpty(hexOf(8, 'XFAM'), 'platform.tdx.xfam')]).describe('Allowed XFAM values, or any.'),
        }),
      ])
      .describe('Allowed TDX attributes; applies to tdx claims only.'),
  })
  .describe('Platform (TEE) rules.');

// ───────────────────────────── identity ─────────────────────────────

const idList = (what: string) => z.union([ANY, nonEmpty(identityValue, what)]);
const patternList = (what: string) => z.union([ANY, nonEmpty(namePattern, what)]);

/** Rule values: allow-lists of values or of name patterns. */
type IdentityValues = z.ZodUnion<[typeof ANY, z.ZodArray<z.ZodString>]>;

/** `identity.<name>`: `mode` plus the fields the descriptor declares (providers/<name>/descriptor.ts). */
const identityRuleOf = (d: ProviderDescriptor) =>
  z.strictObject({
    mode,
    ...(Object.fromEntries(
      Object.entries(d.identity.rule).map(([k, f]) => [k, (f.match === 'glob' ? patternList : idList)(`identity.${d.name}.${k}`).describe(f.description)]),
    ) as Record<string, IdentityValues>),
  }) as unknown as z.ZodType<IdentityRule>;

/** A provider's identity rule: `mode` and, per field the descriptor declares, a list or 'any'. */
export type IdentityRule = { mode?: RuleMode } & { [field: string]: readonly string[] | 'any' | RuleMode | undefined };

const identityOf = <N extends string>(catalog: readonly ProviderDescriptor<N>[]) =>
  z
    .union([ANY, z.strictObject(perProvider(catalog, (d) => z.union([ANY, identityRuleOf(d)]).optional()))])
    .describe(
      "Who may join, per provider. Every enabled provider needs an entry (or the whole block written as 'any'). A rule may only pin a field the provider lists in claims.identity.proven.",
    );

// ───────────────────────────── boot ─────────────────────────────

const boot = z
  .strictObject({
    secureBoot: z
      .union([ANY, z.strictObject({ mode, required: z.literal(true, { error: "write 'required: true', or 'secureBoot: any' to admit nodes without Secure Boot" }).describe('UEFI Secure Boot must be on (claims.boot.secureBoot).') })])
      .describe('Require UEFI Secure Boot.'),
  })
  .describe('Boot rules common to every image; per-image reference values live under images.');

// ───────────────────────────── images ─────────────────────────────

const pcrIndex = z.string().regex(/^(?:[0-9]|1[0-9]|2[0-3])$/, 'PCR index must be 0..23');
const pcrBank = <T extends z.ZodType>(hex: T, bank: string) =>
  z.record(pcrIndex, nonEmpty(hex, `pcrs.${bank}[i]`)).describe(`Allowed ${bank} PCR values by index (any of the listed values).`);

export const UKI_PHASES = ['enter-initrd', 'leave-initrd', 'sysinit', 'ready'] as const;

const expiry = z
  .union([z.iso.date(), z.iso.datetime({ offset: true })])
  .describe('RFC 3339 date or date-time after which this image no longer admits nodes (a date means 00:00 UTC that day).');

const image = z
  .strictObject({
    name: z
      .string()
      .regex(/^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$/, 'image names are 1-63 lower-case letters, digits, . _ -')
      .describe('Image (reference-value set) name, recorded in the decision.'),
    expires: expiry.optional(),
    measurement: z
      .union([ANY, z.strictObject({ mode, allowed: nonEmpty(sha384Hex, 'measurement.allowed') })])
      .describe('Allowed SEV-SNP launch measurement or TDX MRTD (claims.platform.measurement).'),
    pcrs: z
      .union([
        ANY,
        z.strictObject({
          mode,
          sha1: pcrBank(hexOf(20, 'SHA-1 PCR'), 'sha1').optional(),
          sha256: pcrBank(sha256Hex, 'sha256').optional(),
          sha384: pcrBank(sha384Hex, 'sha384').optional(),
        }),
      ])
      .describe('Allowed quoted PCR values per bank (claims.tpm.pcrs).'),
    uki: z
      .union([
        ANY,
        z.strictObject({
          mode,
          phase: z.enum(UKI_PHASES).describe('Boot phase at which the join client quotes (systemd-pcrphase words; `systemd-measure calculate --phase=`).'),
          bank: z.enum(['sha256', 'sha384']),
          pcr11: nonEmpty(z.string().regex(/^[0-9a-f]{64}([0-9a-f]{32})?$/, 'PCR 11 value must be SHA-256 or SHA-384 hex'), 'uki.pcr11'),
        }),
      ])
      .describe('Allowed PCR 11 values of a systemd-stub UKI at the named boot phase.'),
    verity: z
      .union([
        ANY,
        z.strictObject({
          mode,
          rootHash: z.union([ANY, nonEmpty(z.string().regex(/^[0-9a-f]{64}([0-9a-f]{64})?$/), 'verity.rootHash')]),
          usrHash: z.union([ANY, nonEmpty(z.string().regex(/^[0-9a-f]{64}([0-9a-f]{64})?$/), 'verity.usrHash')]),
        }),
      ])
      .describe('Allowed dm-verity root hashes (claims.boot.verityRootHash / verityUsrHash).'),
    bootApps: z
      .union([ANY, z.strictObject({ mode, allowed: nonEmpty(z.string().regex(/^[0-9a-f]{40}([0-9a-f]{24})?([0-9a-f]{32})?$/), 'bootApps.allowed') })])
      .describe('Authenticode digests every measured boot application must be among (claims.boot.bootApps).'),
  })
  .describe('One immutable image version: the reference values a node of that image presents.');

// ───────────────────────────── node name, release ─────────────────────────────

/** Node-name sources by `from` value: the provider they belong to and the proven field they read. */
export function nodeNameSourcesOf<N extends string>(catalog: readonly ProviderDescriptor<N>[]): Readonly<Record<string, { provider: N; field: string; lowercase?: true }>> {
  return Object.freeze(Object.fromEntries(catalog.flatMap((d) => Object.entries(d.nodeName.sources).map(([k, v]) => [k, { provider: d.name, ...v }]))));
}

export const NODE_NAME_SOURCES = nodeNameSourcesOf(PROVIDERS);
export type NodeNameSource = string;

const nodeNameRuleOf = (sources: readonly string[]) =>
  z.strictObject({
    from: z.enum(sources as [string, ...string[]]).describe('Proven identity field the node name is taken from.'),
    prefix: z
      .string()
      .regex(/^[a-z0-9]([a-z0-9.-]{0,30})?$/, 'prefix: up to 31 lower-case letters, digits, . -, starting alphanumeric')
      .optional()
      .describe('Prepended to the derived name (e.g. to keep bare-metal names apart).'),
  });

const nodeNameOf = <N extends string>(catalog: readonly ProviderDescriptor<N>[]) => {
  const rule = nodeNameRuleOf(Object.keys(nodeNameSourcesOf(catalog)));
  return z
    .strictObject(perProvider(catalog, () => rule.optional()))
    .describe('Node-name derivation per provider, from the verified identity only (DNS-1123 subdomain checked).');
};

const release = z
  .strictObject({
    tokenTtlSeconds: z.int().min(60).max(86_400).describe('Bootstrap-token lifetime; keep it short (minutes).'),
    extraGroups: z
      .array(z.string().regex(/^system:bootstrappers:[a-z0-9:-]{1,100}$/, 'extra groups of a bootstrap token must start with system:bootstrappers: (Kubernetes auth-extra-groups)'))
      .max(16)
      .describe('Extra groups for the bootstrap token (Kubernetes requires the system:bootstrappers: prefix).'),
    allowUnsealed: z.boolean().describe('Allow release without an ephemeral key (in clear over TLS). false in production.'),
    diskKey: z.boolean().describe('Whether this cluster releases disk keys.'),
    tokensPerInstance: z
      .enum(['one', 'one-per-cluster'])
      .default('one')
      .describe(
        "'one' (default): an attested instance holds at most one live bootstrap token across every cluster of this broker. 'one-per-cluster': this cluster issues even when the instance holds another cluster's token (each token still only authenticates in its own cluster).",
      ),
  })
  .describe('What an admitted node receives.');

// ───────────────────────────── gpus ─────────────────────────────

const dotted = (what: string, radix: 'decimal' | 'hex') =>
  z
    .string()
    .regex(radix === 'hex' ? /^[0-9A-Fa-f]{1,4}(\.[0-9A-Fa-f]{1,4}){1,7}$/ : /^[0-9]{1,6}(\.[0-9]{1,6}){1,5}$/, `${what} must be dotted ${radix} components, e.g. ${radix === 'hex' ? '96.00.9F.00.01' : '550.90.07'}`)
    .describe(`Lowest ${what} admitted (component-wise ${radix} comparison).`);

export const GPU_ARCHS = ['hopper', 'blackwell'] as const;

const gpus = z
  .union([
    ANY,
    z.strictObject({
      mode,
      count: z
        .strictObject({ min: z.int().min(0).max(64), max: z.int().min(0).max(64).optional() })
        .refine((c) => c.max === undefined || c.max >= c.min, 'gpus.count.max must be at least count.min')
        .describe('How many attested GPUs the node must have (device evidence attached to the attest request; max absent: no upper bound).'),
      arch: z.union([ANY, nonEmpty(z.enum(GPU_ARCHS), 'gpus.arch')]).describe('Allowed GPU architectures (claims.gpus[].arch), for every GPU.'),
      ccMode: z
        .union([ANY, z.literal('required')])
        .describe("'required': every GPU's measurements matched NVIDIA's signed RIMs (claims.gpus[].ccMode), i.e. it runs the firmware and driver of a confidential-computing configuration."),
      ppcie: z.union([ANY, z.literal('required')]).describe("'required': every GPU reports protected PCIe enabled (multi-GPU passthrough, claims.gpus[].ppcie)."),
      minDriverVersion: z.union([ANY, dotted('driver version', 'decimal')]),
      minVbiosVersion: z.union([ANY, dotted('VBIOS version', 'hex')]),
      boardIds: z.union([ANY, nonEmpty(z.string().regex(/^[0-9a-f]{1,16}$/, 'board ids are lower-case hex'), 'gpus.boardIds')]).describe('Allowed board ids (claims.gpus[].boardId), for every GPU.'),
    }),
  ])
  .describe(
    "GPU rules over the device evidence attached to the attest request (NVIDIA Hopper/Blackwell, docs/nvidia.md). Absent: GPUs are neither required nor checked (any attached evidence is still verified and recorded); 'any': the same, written out.",
  );

// ───────────────────────────── cluster, document ─────────────────────────────

const clusterOf = <N extends string>(catalog: readonly ProviderDescriptor<N>[]) =>
    z
    .strictObject({
      providers: providersOf(catalog),
      tpm,
      platform,
      identity: identityOf(catalog),
      boot,
      images: z
        .union([ANY, nonEmpty(image, 'images').max(64)])
        .describe("Reference values as named images; claims must match at least one unexpired image. 'any' only for labs."),
      gpus: gpus.optional(),
      nodeName: nodeNameOf(catalog),
      release,
      explain: z
        .boolean()
        .default(false)
        .describe(
          'Tell a refused node which rules failed (rule path, code and reason) in its problem response, instead of only POLICY_DENIED. Off by default: the reasons show what the policy expects (e.g. the PCR values it pins), which helps whoever probes it; turn it on while bringing up images, off in production.',
        ),
    })
    .describe('Join policy of one cluster.');

const policyOf = <C extends z.ZodType>(cluster: C) =>
    z
    .strictObject({
      apiVersion: z.literal(API_VERSION),
      kind: z.literal('JoinPolicy'),
      version: z
        .string()
        .min(1)
        .max(64)
        .regex(/^[A-Za-z0-9._:+-]+$/)
        .describe('Operator-declared version of this document, recorded in every decision with its SHA-256.'),
      defaultCluster: z.string().describe('Cluster used when a request names none.'),
      clusters: z
        .record(z.string().regex(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/, 'cluster names are DNS-1123 labels'), cluster)
        .describe('Policies by cluster name.'),
    })
    .describe('attest-broker join policy (docs/policy.md).');

/**
 * The policy schema for a provider catalog: the `providers`, `identity` and `nodeName` sections
 * come from the descriptors. `policySchema` is the one for this build's catalog (providers/catalog.ts).
 */
export function policySchemaFor<N extends string>(catalog: readonly ProviderDescriptor<N>[]) {
  const cluster = clusterOf(catalog);
  return { cluster, policy: policyOf(cluster) };
}

const BUILT = policySchemaFor<ProviderName>(PROVIDERS);
export const clusterSchema = BUILT.cluster;
export const policySchema = BUILT.policy;

export type PolicyDocument = z.infer<typeof policySchema>;
export type ClusterPolicy = z.infer<typeof clusterSchema>;
export type ImagePolicy = z.infer<typeof image>;
export type RuleMode = 'enforce' | 'warn';

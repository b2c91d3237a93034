/**
 * @module broker/policy/capture
 *
 * `policy capture`: turns the claims of one known-good node (the `claims` of an
 * `attest-broker verify` verdict, protocol.md §4, or bare claims) into a starting policy that
 * pins exactly what that node presented:
 * - its provider and format; its AK trust (and its AK digest when the AK is only pinned or
 *   known from the evidence, so `evidence-only` is written out and bound to this one key);
 * - its TEE kind, debug off (when off), SNP TCB as the minimum, TDX attributes/XFAM;
 * - the identity fields the evidence proves (project/account/subscription, zone/region,
 *   resource group) — not the instance name, so other nodes of the same pool can join;
 * - Secure Boot (when on);
 * - one image holding every quoted PCR of every bank, the launch measurement / MRTD, the
 *   dm-verity hashes and boot-application digests, so any single changed value denies;
 * - the node-name source for the provider (the proven name when there is one, else the id);
 * - a conservative release: 15-minute tokens, no extra groups, sealed release only, no disk key.
 *
 * The result is re-checked with the same loader the broker uses and evaluated against the
 * claims it came from before it is returned, so a captured policy always passes `policy check`
 * and admits its node (or capture fails with CAPTURE_POLICY_INVALID / CAPTURE_NOT_ADMITTED). Refuses verdicts with `ok: false`: a policy must
 * never be captured from evidence that did not verify.
 */
import { z } from 'zod';
import { configError, malformed } from '../../providers/common/errors.js';
import type { Claims } from '../../providers/common/types.js';
import { API_VERSION, type ClusterPolicy, type PolicyDocument } from './schema.js';
import { checkPolicyText, stringifyPolicy, type LoadedPolicy } from './load.js';
import { evaluatePolicy, versionAtLeast } from './evaluate.js';
import { policyCatalog, type Catalog } from './catalog.js';
import { PROVIDER_NAMES } from '../../providers/catalog.js';

const hexString = z.string().regex(/^[0-9a-f]*$/);
const pcrBankSchema = z.record(z.string().regex(/^\d{1,2}$/), hexString);

/** Runtime shape of the claims capture reads (a verdict is JSON from another process: checked, not cast). */
export const claimsInputSchema = claimsInputSchemaFor(PROVIDER_NAMES);

/** The claims shape for a list of provider names (the catalog's). */
export function claimsInputSchemaFor(names: readonly string[]) {
  return z.object({
    provider: z.enum(names as [string, ...string[]]),
    format: z.string().min(1),
    platform: z.object({
      tee: z.enum(['sev-snp', 'tdx', 'nitro', 'none']),
      debug: z.boolean(),
      tcb: z.record(z.string(), z.int()).optional(),
      measurement: hexString.optional(),
      chipId: hexString.optional(),
      fields: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])).optional(),
    }),
    identity: z.object({
      cloud: z.string(),
      account: z.string().optional(),
      region: z.string().optional(),
      zone: z.string().optional(),
      instanceId: z.string(),
      instanceName: z.string().optional(),
      extra: z.record(z.string(), z.string()).optional(),
      proven: z.array(z.string()),
    }),
    tpm: z
      .object({
        akSha256: hexString,
        akName: hexString.optional(),
        pcrs: z.object({ sha1: pcrBankSchema.optional(), sha256: pcrBankSchema.optional(), sha384: pcrBankSchema.optional() }),
        akTrust: z.enum(['cloud-certified', 'hardware-report', 'ek-credential', 'pinned', 'evidence-only']),
      })
      .optional(),
    boot: z
      .object({
        secureBoot: z.boolean().optional(),
        verityRootHash: hexString.optional(),
        verityUsrHash: hexString.optional(),
        bootApps: z.array(hexString).optional(),
      })
      .loose()
      .optional(),
    gpus: z
      .array(
        z
          .object({
            vendor: z.literal('nvidia'),
            arch: z.enum(['hopper', 'blackwell']),
            chip: z.string(),
            ccMode: z.boolean(),
            ppcie: z.boolean(),
            driverVersion: z.string(),
            vbiosVersion: z.string(),
            boardId: z.string().optional(),
          })
          .loose(),
      )
      .max(64)
      .optional(),
    evidenceSha256: hexString.optional(),
  }).loose();
}

/** Accepts a verdict (`{ok, claims, …}`) or bare claims; returns the claims (`catalog`: the provider list, default this build's). */
export function claimsFromJson(raw: unknown, catalog?: Catalog): Claims {
  let c: unknown = raw;
  if (raw !== null && typeof raw === 'object' && 'claims' in raw) {
    const v = raw as { ok?: unknown; claims: unknown };
    if (v.ok !== true) throw malformed('CAPTURE_VERDICT_REJECTED', 'the verdict is not ok: capture a policy only from evidence that verified');
    c = v.claims;
  }
  const parsed = (catalog ? claimsInputSchemaFor(policyCatalog(catalog).names) : claimsInputSchema).safeParse(c);
  if (!parsed.success) {
    throw malformed('CAPTURE_CLAIMS_INVALID', `not a verdict or claims JSON: ${parsed.error.issues.slice(0, 3).map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  }
  return { ...(parsed.data as unknown as Claims), evidenceSha256: parsed.data.evidenceSha256 ?? '' };
}

export interface CaptureOptions {
  cluster?: string;
  image?: string;
  /** Declared policy version (default `captured-YYYY-MM-DD`). */
  version?: string;
  /** Optional image expiry (RFC 3339). */
  expires?: string;
  now: Date;
  /** The provider list (default: this build's, providers/catalog.ts). */
  catalog?: Catalog;
}

/** The claims' provider's descriptor: its identity rule and node-name source come from there. */
function descriptorOf(c: Claims, catalog: Catalog | undefined) {
  const d = policyCatalog(catalog).byName(c.provider);
  if (!d) throw malformed('CAPTURE_CLAIMS_INVALID', `provider '${c.provider}' is not one this broker knows`);
  return d;
}

/** The identity rule pinning what the node proved; a rule whose every field is 'any' is written 'any'. */
function identityFor(c: Claims, catalog: Catalog | undefined): ClusterPolicy['identity'] {
  const r = descriptorOf(c, catalog).identity.capture(c);
  const collapsed = r === 'any' || Object.values(r).every((v) => v === 'any') ? 'any' : r;
  return { [c.provider]: collapsed } as ClusterPolicy['identity'];
}

const SNP_TCB = ['bootloader', 'tee', 'snp', 'microcode'] as const;

/** Builds the captured policy document (not yet checked). */
export function capturePolicyDocument(c: Claims, o: CaptureOptions): PolicyDocument {
  const day = o.now.toISOString().slice(0, 10);
  const cluster = o.cluster ?? 'default';
  const p = c.platform;
  const tcb = p.tcb;
  const pcrs: Record<string, Record<string, string[]>> = {};
  for (const bank of ['sha1', 'sha256', 'sha384'] as const) {
    const values = c.tpm?.pcrs[bank];
    if (!values) continue;
    const entries = Object.entries(values).sort(([a], [b]) => Number(a) - Number(b));
    if (entries.length > 0) pcrs[bank] = Object.fromEntries(entries.map(([i, v]) => [i, [v]]));
  }
  const apps = [...new Set(c.boot?.bootApps ?? [])];
  const image = {
    name: o.image ?? `captured-${day}`,
    ...(o.expires ? { expires: o.expires } : {}),
    measurement: p.measurement ? { allowed: [p.measurement] } : ('any' as const),
    pcrs: Object.keys(pcrs).length > 0 ? pcrs : ('any' as const),
    uki: 'any' as const, // PCR 11 is already pinned with every other PCR above
    verity:
      c.boot?.verityRootHash || c.boot?.verityUsrHash
        ? { rootHash: c.boot.verityRootHash ? [c.boot.verityRootHash] : ('any' as const), usrHash: c.boot.verityUsrHash ? [c.boot.verityUsrHash] : ('any' as const) }
        : ('any' as const),
    bootApps: apps.length > 0 ? { allowed: apps } : ('any' as const),
  };
  const checksSomething = image.measurement !== 'any' || image.pcrs !== 'any' || image.verity !== 'any' || image.bootApps !== 'any';
  const akTrust = c.tpm?.akTrust;
  const policy: ClusterPolicy = {
    providers: { [c.provider]: { formats: [c.format] } } as ClusterPolicy['providers'],
    tpm: {
      akTrust: akTrust ? [akTrust] : ['cloud-certified'],
      pinnedAks: c.tpm && (akTrust === 'evidence-only' || akTrust === 'pinned') ? { sha256: [c.tpm.akSha256] } : 'any',
    },
    platform: {
      tee: p.tee === 'none' ? 'any' : { kinds: [p.tee] },
      debug: p.debug ? 'any' : { forbidden: true },
      snpTcb:
        p.tee === 'sev-snp' && tcb && SNP_TCB.every((k) => typeof tcb[k] === 'number')
          ? { min: { bootloader: tcb.bootloader!, tee: tcb.tee!, snp: tcb.snp!, microcode: tcb.microcode! } }
          : 'any',
      tdx:
        p.tee === 'tdx' && typeof p.fields?.tdAttributes === 'string'
          ? { tdAttributes: [p.fields.tdAttributes], xfam: typeof p.fields.xfam === 'string' ? [p.fields.xfam] : 'any' }
          : 'any',
    },
    identity: identityFor(c, o.catalog),
    boot: { secureBoot: c.boot?.secureBoot === true ? { required: true } : 'any' },
    images: checksSomething ? [image as never] : 'any',
    ...(c.gpus?.length ? { gpus: gpusFor(c.gpus) } : {}),
    nodeName: { [c.provider]: { from: descriptorOf(c, o.catalog).nodeName.capture(c) } } as ClusterPolicy['nodeName'],
    release: { tokenTtlSeconds: 900, extraGroups: [], allowUnsealed: false, diskKey: false, tokensPerInstance: 'one' },
    explain: false,
  };
  return { apiVersion: API_VERSION, kind: 'JoinPolicy', version: o.version ?? `captured-${day}`, defaultCluster: cluster, clusters: { [cluster]: policy } };
}

/**
 * The GPUs of the known-good node, as a rule: exactly that many, of those architectures, CC mode
 * and protected PCIe required where the node had them, its driver and VBIOS as minimums, its
 * board ids.
 */
function gpusFor(g: NonNullable<Claims['gpus']>): NonNullable<ClusterPolicy['gpus']> {
  const min = (vs: string[], radix: 10 | 16): string => vs.reduce((a, b) => (versionAtLeast(b, a, radix) ? a : b));
  const boards = [...new Set(g.map((x) => x.boardId).filter((b): b is string => b !== undefined))];
  return {
    count: { min: g.length, max: g.length },
    arch: [...new Set(g.map((x) => x.arch))],
    ccMode: g.every((x) => x.ccMode) ? 'required' : 'any',
    ppcie: g.every((x) => x.ppcie) ? 'required' : 'any',
    minDriverVersion: min(g.map((x) => x.driverVersion), 10),
    minVbiosVersion: min(g.map((x) => x.vbiosVersion), 16),
    boardIds: boards.length > 0 && g.every((x) => x.boardId !== undefined) ? boards : 'any',
  };
}

/** Captures, renders as commented YAML, and re-checks with the broker's own loader. */
export async function capturePolicy(c: Claims, o: CaptureOptions): Promise<{ yaml: string; policy: LoadedPolicy }> {
  const doc = capturePolicyDocument(c, o);
  const header = [
    `Captured by 'attest-broker policy capture' from one ${c.provider}/${c.format} node on ${o.now.toISOString()}.`,
    'It pins exactly what that node presented. Review before use (docs/policy.md):',
    "- identity pins the proven project/account/zone/region; instanceNames is 'any' so the whole pool can join;",
    '- images[0] pins every quoted PCR: add a new image entry (do not edit this one) when a new image ships;',
    "- fields written 'any' were not present in the claims and are NOT checked.",
    ...(c.tpm?.akTrust === 'evidence-only' ? ["- tpm.akTrust 'evidence-only' is bound to this node's AK digest only: NOT FOR PRODUCTION fleets."] : []),
    ...(c.platform.debug ? ['- WARNING: this node runs with debug enabled, so platform.debug is any. Do not use in production.'] : []),
  ].join('\n');
  const yaml = stringifyPolicy(doc, header);
  const r = await checkPolicyText(yaml, o.now, o.catalog);
  if (!r.policy) {
    throw configError('CAPTURE_POLICY_INVALID', `the claims cannot be expressed as a valid policy: ${r.issues.filter((i) => i.severity === 'error').map((i) => `${i.path}: ${i.message}`).join(' | ')}`);
  }
  // Self-check: a captured policy must admit the node it was captured from.
  const d = evaluatePolicy(r.policy, c, doc.defaultCluster, o.now, o.catalog);
  if (!d.allow) {
    const why = d.rules.filter((x) => x.outcome === 'fail').map((x) => `${x.rule}: ${x.reason ?? x.code}`);
    throw configError('CAPTURE_NOT_ADMITTED', `the captured policy would not admit this node (${why.join(' | ')}); edit the policy by hand`);
  }
  return { yaml, policy: r.policy };
}

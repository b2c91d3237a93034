/**
 * @module broker/policy/semantic
 *
 * Checks that span several fields of a schema-valid policy. Errors make the policy unloadable
 * (the broker refuses to start / keeps the previous policy on reload); warnings are printed by
 * `policy check` and logged on load, and never change a decision.
 *
 * Errors (fail closed):
 * - `defaultCluster` names no cluster; a cluster enables no provider.
 * - An enabled provider has no identity rule and the cluster does not say `identity: any`
 *   (a forgotten rule must not mean "any project of any customer may join").
 * - An identity rule whose every field is `'any'` (write `identity.<p>: any` instead, so the
 *   intent is visible in review).
 * - An enabled provider has no node-name rule, or one whose source belongs to another provider.
 * - An enforced TEE rule that no enabled format can ever satisfy (an impossible rule).
 * - Images: duplicate names, an image that checks nothing, a PCR bank with no index, a UKI
 *   PCR 11 value whose length does not fit its bank, an unparseable expiry.
 *
 * Warnings: `identity: any`, `images: any`, rules for providers the cluster does not enable,
 * SNP/TDX rules no enabled format can produce, `evidence-only` AKs without pinned digests, unsealed release, SHA-1 banks, duplicate
 * list entries, images already expired at check time.
 */
import type { ClusterPolicy, PolicyDocument } from './schema.js';
import type { Code } from '../../providers/common/codes.js';
import { policyCatalog, type Catalog, type PolicyCatalog } from './catalog.js';

export interface PolicyIssue {
  severity: 'error' | 'warning';
  /** Dotted path in the policy document. */
  path: string;
  /** Stable code, e.g. POLICY_IDENTITY_RULE_MISSING. */
  code: Code;
  /** What is wrong and how to fix it, for the operator. */
  message: string;
}

/** Parses an image expiry (RFC 3339 date or date-time); a bare date means 00:00 UTC that day. */
export function parseExpiry(s: string): Date {
  return new Date(/^\d{4}-\d{2}-\d{2}$/.test(s) ? `${s}T00:00:00Z` : s);
}

function dupes(list: readonly string[]): string[] {
  const seen = new Set<string>();
  const out = new Set<string>();
  for (const v of list) (seen.has(v) ? out : seen).add(v);
  return [...out];
}

/** `catalog`: the provider list (default: this build's, providers/catalog.ts). */
export function semanticIssues(doc: PolicyDocument, now: Date, catalog?: Catalog): PolicyIssue[] {
  const cat = policyCatalog(catalog);
  const issues: PolicyIssue[] = [];
  const err = (path: string, code: Code, message: string) => issues.push({ severity: 'error', path, code, message });
  const warn = (path: string, code: Code, message: string) => issues.push({ severity: 'warning', path, code, message });

  const names = Object.keys(doc.clusters);
  if (names.length === 0) err('clusters', 'POLICY_NO_CLUSTER', 'define at least one cluster under clusters:');
  if (!Object.hasOwn(doc.clusters, doc.defaultCluster)) {
    err('defaultCluster', 'POLICY_DEFAULT_CLUSTER_UNKNOWN', `defaultCluster '${doc.defaultCluster}' is not defined under clusters: (have: ${names.join(', ') || 'none'})`);
  }
  for (const name of names) clusterIssues(`clusters.${name}`, doc.clusters[name]!, now, err, warn, cat);
  return issues;
}

type Report = (path: string, code: Code, message: string) => void;

function clusterIssues(at: string, c: ClusterPolicy, now: Date, err: Report, warn: Report, cat: PolicyCatalog): void {
  const PROVIDERS = cat.names;
  const providers = c.providers as Readonly<Record<string, { formats: readonly string[] } | undefined>>;
  const identity = c.identity as 'any' | Readonly<Record<string, Readonly<Record<string, unknown>> | 'any' | undefined>>;
  const nodeName = c.nodeName as Readonly<Record<string, { from: string } | undefined>>;
  const enabled = PROVIDERS.filter((p) => providers[p] !== undefined);
  const formats = enabled.flatMap((p) => providers[p]!.formats);
  if (enabled.length === 0) err(`${at}.providers`, 'POLICY_NO_PROVIDER', `enable at least one provider (${orList(PROVIDERS)}) with its formats`);
  for (const p of enabled) {
    for (const d of dupes(providers[p]!.formats)) warn(`${at}.providers.${p}.formats`, 'POLICY_DUPLICATE_VALUE', `'${d}' is listed twice`);
  }

  // ── identity: fail closed for every enabled provider
  if (identity === 'any') {
    warn(`${at}.identity`, 'POLICY_IDENTITY_UNCHECKED', "identity: any admits nodes of every account/project/subscription whose evidence verifies");
  } else {
    for (const p of enabled) {
      const rule = identity[p];
      if (rule === undefined) {
        err(
          `${at}.identity.${p}`,
          'POLICY_IDENTITY_RULE_MISSING',
          `provider '${p}' is enabled but has no identity rule: add identity.${p} (e.g. the ${cat.byName(p)?.identity.hint ?? 'identities'} allowed to join) or write 'identity.${p}: any' to admit every ${p} identity explicitly`,
        );
        continue;
      }
      if (rule === 'any') continue;
      const fields = Object.entries(rule).filter(([k]) => k !== 'mode');
      if (fields.every(([, v]) => v === 'any')) {
        err(`${at}.identity.${p}`, 'POLICY_IDENTITY_RULE_EMPTY', `every field of identity.${p} is 'any': write 'identity.${p}: any' instead so reviewers see that no identity is checked`);
      }
      for (const [k, v] of fields) {
        if (Array.isArray(v)) for (const d of dupes(v)) warn(`${at}.identity.${p}.${k}`, 'POLICY_DUPLICATE_VALUE', `'${d}' is listed twice`);
      }
    }
    for (const p of PROVIDERS) {
      if (identity[p] !== undefined && !enabled.includes(p)) warn(`${at}.identity.${p}`, 'POLICY_RULE_UNUSED', `identity.${p} is set but provider '${p}' is not enabled under providers:`);
    }
  }

  // ── node names
  const sourcesFor = (p: string): string[] => Object.keys(cat.nodeNames).filter((k) => cat.nodeNames[k]!.provider === p);
  for (const p of enabled) {
    const rule = nodeName[p];
    if (rule === undefined) {
      err(`${at}.nodeName.${p}`, 'POLICY_NODE_NAME_RULE_MISSING', `provider '${p}' is enabled but nodeName.${p} is not set: choose a source (${sourcesFor(p).join(', ')})`);
    } else if (!Object.hasOwn(cat.nodeNames, rule.from) || cat.nodeNames[rule.from]!.provider !== p) {
      err(`${at}.nodeName.${p}.from`, 'POLICY_NODE_NAME_SOURCE_INVALID', `'${rule.from}' is not a ${p} identity field; use one of ${sourcesFor(p).join(', ')}`);
    }
  }
  for (const p of PROVIDERS) {
    if (nodeName[p] !== undefined && !enabled.includes(p)) warn(`${at}.nodeName.${p}`, 'POLICY_RULE_UNUSED', `nodeName.${p} is set but provider '${p}' is not enabled`);
  }

  // ── platform: impossible or inapplicable rules
  const FORMAT_TEES = cat.tees;
  const producible = new Set(formats.flatMap((f) => FORMAT_TEES[f] ?? []));
  const tee = c.platform.tee;
  if (tee !== 'any' && tee.mode !== 'warn') {
    for (const f of formats) {
      const can = FORMAT_TEES[f] ?? [];
      if (!can.some((k) => (tee.kinds as readonly string[]).includes(k))) {
        err(
          `${at}.platform.tee.kinds`,
          'POLICY_RULE_IMPOSSIBLE',
          `format '${f}' can only produce tee ${can.join('/')}, so no '${f}' node can pass platform.tee (kinds: ${tee.kinds.join(', ')}); remove the format or add a kind it produces`,
        );
      }
    }
  }
  if (c.platform.snpTcb !== 'any' && !producible.has('sev-snp')) warn(`${at}.platform.snpTcb`, 'POLICY_RULE_UNUSED', 'no enabled format produces SEV-SNP claims; this rule never applies');
  if (c.platform.tdx !== 'any' && !producible.has('tdx')) warn(`${at}.platform.tdx`, 'POLICY_RULE_UNUSED', 'no enabled format produces TDX claims; this rule never applies');

  // ── TPM trust
  if (c.tpm.akTrust.includes('evidence-only')) {
    if (c.tpm.pinnedAks === 'any') {
      warn(`${at}.tpm.akTrust`, 'POLICY_AK_EVIDENCE_ONLY', "'evidence-only' with pinnedAks: any admits ANY key that signs a quote (software TPMs included): NOT FOR PRODUCTION");
    }
  }
  for (const d of dupes(c.tpm.akTrust)) warn(`${at}.tpm.akTrust`, 'POLICY_DUPLICATE_VALUE', `'${d}' is listed twice`);

  // ── release
  if (c.release.allowUnsealed) warn(`${at}.release.allowUnsealed`, 'POLICY_UNSEALED_RELEASE', 'release may go out without an ephemeral key (readable by anything that can read the TLS session end): NOT FOR PRODUCTION');
  for (const d of dupes(c.release.extraGroups)) warn(`${at}.release.extraGroups`, 'POLICY_DUPLICATE_VALUE', `'${d}' is listed twice`);

  // ── images
  if (c.images === 'any') {
    warn(`${at}.images`, 'POLICY_IMAGES_UNCHECKED', 'images: any checks no reference value (no PCR, measurement or boot digest): any software may join');
  } else {
    const seen = new Set<string>();
    let live = 0;
    c.images.forEach((img, i) => {
      const ip = `${at}.images[${i}]`;
      if (seen.has(img.name)) err(`${ip}.name`, 'POLICY_IMAGE_DUPLICATE', `image name '${img.name}' is used twice; names identify images in decisions and must be unique`);
      seen.add(img.name);
      if (img.expires !== undefined) {
        const exp = parseExpiry(img.expires);
        if (Number.isNaN(exp.getTime())) err(`${ip}.expires`, 'POLICY_IMAGE_EXPIRY_INVALID', `'${img.expires}' is not a valid date`);
        else if (exp.getTime() <= now.getTime()) warn(`${ip}.expires`, 'POLICY_IMAGE_EXPIRED', `image '${img.name}' expired at ${exp.toISOString()} and admits no node`);
        else live++;
      } else live++;
      const checks = [img.measurement, img.pcrs, img.uki, img.verity, img.bootApps];
      if (checks.every((x) => x === 'any')) {
        err(ip, 'POLICY_IMAGE_EMPTY', `image '${img.name}' checks nothing (every reference value is 'any'); pin at least one value, or write 'images: any' to say reference values are not checked`);
      }
      if (img.pcrs !== 'any') {
        const banks = (['sha1', 'sha256', 'sha384'] as const).filter((b) => img.pcrs !== 'any' && img.pcrs[b] !== undefined);
        if (banks.length === 0) err(`${ip}.pcrs`, 'POLICY_PCRS_EMPTY', `image '${img.name}' pins no PCR bank; list PCR values under sha256/sha384/sha1, or write 'pcrs: any'`);
        for (const b of banks) {
          const bank = img.pcrs[b]!;
          if (Object.keys(bank).length === 0) err(`${ip}.pcrs.${b}`, 'POLICY_PCRS_EMPTY', `bank ${b} lists no PCR; remove it or pin indexes`);
          for (const [idx, vals] of Object.entries(bank)) {
            for (const d of dupes(vals)) warn(`${ip}.pcrs.${b}.${idx}`, 'POLICY_DUPLICATE_VALUE', `'${d}' is listed twice`);
          }
        }
        if (banks.includes('sha1')) warn(`${ip}.pcrs.sha1`, 'POLICY_SHA1_BANK', 'the SHA-1 bank is collision-prone; pin sha256 or sha384 values where the TPM has that bank');
      }
      if (img.uki !== 'any') {
        const want = img.uki.bank === 'sha256' ? 64 : 96;
        img.uki.pcr11.forEach((v, j) => {
          if (v.length !== want) err(`${ip}.uki.pcr11[${j}]`, 'POLICY_UKI_BANK_MISMATCH', `PCR 11 value has ${v.length / 2} bytes but bank ${img.uki !== 'any' ? img.uki.bank : ''} needs ${want / 2}`);
        });
      }
    });
    if (live === 0 && c.images.length > 0) warn(`${at}.images`, 'POLICY_ALL_IMAGES_EXPIRED', 'every image has expired: no node can join this cluster');
  }
}

/** 'a, b, c or d' */
function orList(names: readonly string[]): string {
  return names.length <= 1 ? names.join('') : `${names.slice(0, -1).join(', ')} or ${names[names.length - 1]}`;
}

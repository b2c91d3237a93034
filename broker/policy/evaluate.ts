/**
 * @module broker/policy/evaluate
 *
 * `evaluate(policy, claims, cluster, now)` → `Decision`. Pure: no I/O, the clock is a parameter
 * (image expiry), and it never throws for a deny.
 *
 * Policy reads the normalized `Claims` only (providers/common/types.ts); it never re-reads
 * evidence. Every rule of the cluster is evaluated and recorded, so the audit log shows all that
 * failed, not just the first thing:
 * - `providers.<p>` / `providers.<p>.formats`   POLICY_PROVIDER_NOT_ALLOWED / POLICY_FORMAT_NOT_ALLOWED
 * - `tpm.akTrust`                               POLICY_TPM_MISSING / POLICY_AK_TRUST_NOT_ALLOWED
 * - `tpm.pinnedAks`                             POLICY_AK_NOT_PINNED
 * - `platform.tee`                              POLICY_TEE_REQUIRED / POLICY_TEE_KIND_NOT_ALLOWED
 * - `platform.debug`                            POLICY_DEBUG_FORBIDDEN
 * - `platform.snpTcb`                           POLICY_TCB_MISSING / POLICY_TCB_TOO_LOW (sev-snp only)
 * - `platform.tdx.tdAttributes` / `.xfam`       POLICY_TDX_ATTRIBUTES_MISMATCH / POLICY_TDX_XFAM_MISMATCH (tdx only)
 * - `identity.<p>` and its fields               POLICY_IDENTITY_RULE_MISSING / POLICY_IDENTITY_MISMATCH /
 *                                               POLICY_IDENTITY_UNPROVEN / POLICY_INSTANCE_NAME_MISMATCH
 * - `boot.secureBoot`                           POLICY_SECURE_BOOT_OFF
 * - `images` (+ `images.<name>.…` per check)    POLICY_IMAGE_EXPIRED / POLICY_MEASUREMENT_MISMATCH /
 *                                               POLICY_PCR_MISMATCH / POLICY_UKI_PCR11_MISMATCH /
 *                                               POLICY_VERITY_MISMATCH / POLICY_BOOT_APP_NOT_ALLOWED
 * - `gpus.count` / `.arch` / `.ccMode` / `.ppcie` POLICY_GPU_COUNT / POLICY_GPU_ARCH_NOT_ALLOWED / POLICY_GPU_CC_MODE_OFF /
 *   `.minDriverVersion` / `.minVbiosVersion`    POLICY_GPU_PPCIE_OFF / POLICY_GPU_DRIVER_TOO_OLD / POLICY_GPU_VBIOS_TOO_OLD /
 *   `.boardIds`                                 POLICY_GPU_BOARD_NOT_ALLOWED (every GPU must pass)
 * - `nodeName`                                  POLICY_NODE_NAME_RULE_MISSING / POLICY_NODE_NAME_UNPROVEN /
 *                                               POLICY_NODE_NAME_MISSING / POLICY_NODE_NAME_INVALID
 * - `claims`                                    POLICY_CLAIMS_MALFORMED (claims not of the normalized shape: deny, not throw)
 *
 * A rule in `warn` mode that fails is recorded with outcome `warn` and never denies. A check
 * written as `'any'` is recorded with outcome `skip`, so reviewers of the audit log see what was
 * deliberately not checked. The node only ever sees the coarse `denyCode` POLICY_DENIED.
 *
 * Reference values are public (they are in the policy file in git), so they are compared with
 * ordinary string equality; constant-time comparison is for secrets (nonces, tokens).
 */
import type { Decision, RuleResult } from '../contracts.js';
import type { Claims } from '../../providers/common/types.js';
import type { CodeOfKind } from '../../providers/common/codes.js';
import type { ClusterPolicy, IdentityRule, ImagePolicy, RuleMode } from './schema.js';
import { parseExpiry } from './semantic.js';
import type { LoadedPolicy } from './load.js';
import { policyCatalog, type Catalog, type PolicyCatalog } from './catalog.js';

/** The coarse code returned to a denied node: which rule failed is for the audit log only. */
export const DENY_CODE = 'POLICY_DENIED';

type Mode = RuleMode | undefined;

class Rules {
  readonly list: RuleResult[] = [];
  pass(rule: string, mode: Mode, reason?: string): void {
    this.list.push({ rule, outcome: 'pass', mode: mode ?? 'enforce', ...(reason ? { reason } : {}) });
  }
  skip(rule: string, reason: string): void {
    this.list.push({ rule, outcome: 'skip', mode: 'enforce', reason });
  }
  fail(rule: string, mode: Mode, code: CodeOfKind<'policy'>, reason: string): void {
    const m = mode ?? 'enforce';
    this.list.push({ rule, outcome: m === 'warn' ? 'warn' : 'fail', mode: m, code, reason });
  }
}

const short = (h: string | undefined): string => (h === undefined ? '(absent)' : h);
const UNCHECKED = "written as 'any': not checked";

/** DNS-1123 subdomain (Kubernetes node names): ≤253 chars, dot-separated labels of ≤63 [a-z0-9-], alphanumeric at both ends. */
export function isDns1123Subdomain(s: string): boolean {
  if (s.length === 0 || s.length > 253) return false;
  return s.split('.').every((l) => l.length >= 1 && l.length <= 63 && /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/.test(l));
}

/** Glob match (`*`, `?`), linear-time two-pointer algorithm: no regular expressions, no ReDoS. */
export function globMatch(pattern: string, s: string): boolean {
  let p = 0;
  let i = 0;
  let star = -1;
  let mark = 0;
  while (i < s.length) {
    if (p < pattern.length && (pattern[p] === '?' || pattern[p] === s[i])) {
      p++;
      i++;
    } else if (p < pattern.length && pattern[p] === '*') {
      star = p++;
      mark = i;
    } else if (star >= 0) {
      p = star + 1;
      i = ++mark;
    } else return false;
  }
  while (p < pattern.length && pattern[p] === '*') p++;
  return p === pattern.length;
}

/** Own-property lookup: a claims value such as 'constructor' must never reach Object.prototype. */
function own<T>(o: Readonly<Record<string, T | undefined>>, key: string): T | undefined {
  return Object.hasOwn(o, key) ? o[key] : undefined;
}

function isProven(claims: Claims, field: string): boolean {
  const proven = Array.isArray(claims.identity?.proven) ? claims.identity.proven : [];
  return proven.includes(field);
}

function identityField(claims: Claims, field: string): string | undefined {
  const id = claims.identity;
  if (field.startsWith('extra.')) return id.extra?.[field.slice(6)];
  const v = (id as unknown as Record<string, unknown>)[field];
  return typeof v === 'string' ? v : undefined;
}

// ───────────────────────────── sections ─────────────────────────────

function checkProviders(r: Rules, c: ClusterPolicy, claims: Claims): void {
  const entry = own(c.providers as Record<string, { formats: readonly string[] } | undefined>, claims.provider);
  if (!entry) {
    r.fail(`providers.${claims.provider}`, 'enforce', 'POLICY_PROVIDER_NOT_ALLOWED', `provider '${claims.provider}' is not enabled for this cluster`);
    return;
  }
  r.pass(`providers.${claims.provider}`, 'enforce');
  if (entry.formats.includes(claims.format)) r.pass(`providers.${claims.provider}.formats`, 'enforce');
  else r.fail(`providers.${claims.provider}.formats`, 'enforce', 'POLICY_FORMAT_NOT_ALLOWED', `format '${claims.format}' is not among ${entry.formats.join(', ')}`);
}

function checkTpm(r: Rules, c: ClusterPolicy, claims: Claims): void {
  const t = claims.tpm;
  if (!t) {
    r.fail('tpm.akTrust', 'enforce', 'POLICY_TPM_MISSING', 'the claims carry no TPM attestation key');
  } else if ((c.tpm.akTrust as readonly string[]).includes(t.akTrust)) {
    r.pass('tpm.akTrust', 'enforce', `AK trust '${t.akTrust}'`);
  } else {
    r.fail('tpm.akTrust', 'enforce', 'POLICY_AK_TRUST_NOT_ALLOWED', `AK trust '${t.akTrust}' is not among ${c.tpm.akTrust.join(', ')}`);
  }
  const pin = c.tpm.pinnedAks;
  if (pin === 'any') r.skip('tpm.pinnedAks', UNCHECKED);
  else if (t && pin.sha256.includes(t.akSha256)) r.pass('tpm.pinnedAks', pin.mode);
  else r.fail('tpm.pinnedAks', pin.mode, 'POLICY_AK_NOT_PINNED', `AK sha256 ${short(t?.akSha256)} is not among the ${pin.sha256.length} pinned AKs`);
}

function checkPlatform(r: Rules, c: ClusterPolicy, claims: Claims): void {
  const p = claims.platform;
  const tee = c.platform.tee;
  if (tee === 'any') r.skip('platform.tee', UNCHECKED);
  else if (p.tee === 'none') r.fail('platform.tee', tee.mode, 'POLICY_TEE_REQUIRED', `the node runs without a TEE; required one of ${tee.kinds.join(', ')}`);
  else if ((tee.kinds as readonly string[]).includes(p.tee)) r.pass('platform.tee', tee.mode, `tee '${p.tee}'`);
  else r.fail('platform.tee', tee.mode, 'POLICY_TEE_KIND_NOT_ALLOWED', `tee '${p.tee}' is not among ${tee.kinds.join(', ')}`);

  const dbg = c.platform.debug;
  if (dbg === 'any') r.skip('platform.debug', UNCHECKED);
  else if (p.debug === false) r.pass('platform.debug', dbg.mode);
  else r.fail('platform.debug', dbg.mode, 'POLICY_DEBUG_FORBIDDEN', 'the guest was launched with debug enabled (host can read its memory)');

  const tcb = c.platform.snpTcb;
  if (tcb === 'any') r.skip('platform.snpTcb', UNCHECKED);
  else if (p.tee !== 'sev-snp') r.skip('platform.snpTcb', `applies to sev-snp only (tee '${p.tee}')`);
  else {
    const missing: string[] = [];
    const low: string[] = [];
    for (const [k, min] of Object.entries(tcb.min)) {
      const v = p.tcb?.[k];
      if (typeof v !== 'number' || !Number.isInteger(v)) missing.push(k);
      else if (v < min) low.push(`${k} ${v} < ${min}`);
    }
    if (missing.length > 0) r.fail('platform.snpTcb', tcb.mode, 'POLICY_TCB_MISSING', `the claims lack TCB component(s) ${missing.join(', ')}`);
    else if (low.length > 0) r.fail('platform.snpTcb', tcb.mode, 'POLICY_TCB_TOO_LOW', `TCB below minimum: ${low.join(', ')}`);
    else r.pass('platform.snpTcb', tcb.mode);
  }

  const tdx = c.platform.tdx;
  if (tdx === 'any') r.skip('platform.tdx', UNCHECKED);
  else if (p.tee !== 'tdx') r.skip('platform.tdx', `applies to tdx only (tee '${p.tee}')`);
  else {
    const attrs = p.fields?.tdAttributes;
    if (typeof attrs === 'string' && (tdx.tdAttributes as readonly string[]).includes(attrs)) r.pass('platform.tdx.tdAttributes', tdx.mode);
    else r.fail('platform.tdx.tdAttributes', tdx.mode, 'POLICY_TDX_ATTRIBUTES_MISMATCH', `TD_ATTRIBUTES ${String(attrs ?? '(absent)')} not among ${tdx.tdAttributes.join(', ')}`);
    if (tdx.xfam === 'any') r.skip('platform.tdx.xfam', UNCHECKED);
    else {
      const xfam = p.fields?.xfam;
      if (typeof xfam === 'string' && (tdx.xfam as readonly string[]).includes(xfam)) r.pass('platform.tdx.xfam', tdx.mode);
      else r.fail('platform.tdx.xfam', tdx.mode, 'POLICY_TDX_XFAM_MISMATCH', `XFAM ${String(xfam ?? '(absent)')} not among ${tdx.xfam.join(', ')}`);
    }
  }
}

function checkIdentity(r: Rules, c: ClusterPolicy, claims: Claims, cat: PolicyCatalog): void {
  if (c.identity === 'any') {
    r.skip('identity', UNCHECKED);
    return;
  }
  const p = claims.provider;
  const rule = own(c.identity as Record<string, IdentityRule | 'any' | undefined>, p);
  const at = `identity.${p}`;
  if (rule === undefined) {
    r.fail(at, 'enforce', 'POLICY_IDENTITY_RULE_MISSING', `no identity rule for provider '${p}'`);
    return;
  }
  if (rule === 'any') {
    r.skip(at, UNCHECKED);
    return;
  }
  // The cloud the provider's evidence proves (descriptor identity.cloud; a bare TPM may run anywhere).
  const descriptor = cat.byName(p);
  const cloud = descriptor?.identity.cloud;
  if (cloud !== undefined && claims.identity.cloud !== cloud) {
    r.fail(at, rule.mode, 'POLICY_IDENTITY_MISMATCH', `identity cloud '${claims.identity.cloud}' does not match provider '${p}'`);
  } else {
    r.pass(at, rule.mode, `cloud '${claims.identity.cloud}'`);
  }
  for (const [key, allowed] of Object.entries(rule)) {
    if (key === 'mode') continue;
    const path = `${at}.${key}`;
    if (allowed === 'any') {
      r.skip(path, UNCHECKED);
      continue;
    }
    // identity rule field name → claims field (as listed in `identity.proven`), from the descriptor.
    const f = descriptor && Object.hasOwn(descriptor.identity.rule, key) ? descriptor.identity.rule[key] : undefined;
    const spec = f ? { field: f.claim, glob: f.match === 'glob' } : undefined;
    if (!spec) {
      r.fail(path, 'enforce', 'POLICY_INTERNAL', `unknown identity field '${key}'`); // unreachable: schema is strict
      continue;
    }
    const list = allowed as readonly string[];
    if (!isProven(claims, spec.field)) {
      r.fail(path, rule.mode, 'POLICY_IDENTITY_UNPROVEN', `the ${p} evidence does not prove '${spec.field}' (proven: ${claims.identity.proven?.join(', ') || 'nothing'}), so the policy cannot pin it`);
      continue;
    }
    const v = identityField(claims, spec.field);
    if (v === undefined) {
      r.fail(path, rule.mode, 'POLICY_IDENTITY_UNPROVEN', `'${spec.field}' is listed as proven but absent from the claims`);
    } else if (spec.glob ? list.some((g) => globMatch(g, v)) : list.includes(v)) {
      r.pass(path, rule.mode, `${spec.field} '${v}'`);
    } else {
      r.fail(path, rule.mode, spec.glob ? 'POLICY_INSTANCE_NAME_MISMATCH' : 'POLICY_IDENTITY_MISMATCH', `${spec.field} '${v}' is not among ${list.join(', ')}`);
    }
  }
}

function checkBoot(r: Rules, c: ClusterPolicy, claims: Claims): void {
  const sb = c.boot.secureBoot;
  if (sb === 'any') r.skip('boot.secureBoot', UNCHECKED);
  else if (claims.boot?.secureBoot === true) r.pass('boot.secureBoot', sb.mode);
  else r.fail('boot.secureBoot', sb.mode, 'POLICY_SECURE_BOOT_OFF', claims.boot?.secureBoot === false ? 'Secure Boot is off' : 'the claims do not establish that Secure Boot is on');
}

/** Dotted versions compared component by component (missing components count as 0). */
export function versionAtLeast(v: string, min: string, radix: 10 | 16): boolean {
  const a = v.split('.').map((x) => parseInt(x, radix));
  const b = min.split('.').map((x) => parseInt(x, radix));
  if (a.some((x) => !Number.isFinite(x))) return false;
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const x = a[i] ?? 0;
    const y = b[i] ?? 0;
    if (x !== y) return x > y;
  }
  return true;
}

function checkGpus(r: Rules, c: ClusterPolicy, claims: Claims): void {
  const g = c.gpus;
  if (g === undefined) return r.skip('gpus', 'no gpus rule: GPUs are neither required nor checked');
  if (g === 'any') return r.skip('gpus', UNCHECKED);
  const list = claims.gpus ?? [];
  const n = list.length;
  if (n < g.count.min || (g.count.max !== undefined && n > g.count.max)) {
    r.fail('gpus.count', g.mode, 'POLICY_GPU_COUNT', `${n} attested GPU(s); the policy wants ${g.count.max === g.count.min ? g.count.min : `${g.count.min}..${g.count.max ?? '∞'}`}`);
  } else r.pass('gpus.count', g.mode, `${n} attested GPU(s)`);
  const each = (rule: string, spec: unknown, code: CodeOfKind<'policy'>, ok: (x: NonNullable<Claims['gpus']>[number]) => boolean, why: string): void => {
    if (spec === 'any') return r.skip(`gpus.${rule}`, UNCHECKED);
    const bad = list.map((x, i) => [x, i] as const).filter(([x]) => !ok(x)).map(([x, i]) => `GPU ${i} (${x.chip} ${x.driverVersion}/${x.vbiosVersion})`);
    if (bad.length) r.fail(`gpus.${rule}`, g.mode, code, `${bad.join(', ')}: ${why}`);
    else r.pass(`gpus.${rule}`, g.mode);
  };
  each('arch', g.arch, 'POLICY_GPU_ARCH_NOT_ALLOWED', (x) => g.arch === 'any' || g.arch.includes(x.arch), `architecture not among ${g.arch === 'any' ? '' : g.arch.join(', ')}`);
  each('ccMode', g.ccMode, 'POLICY_GPU_CC_MODE_OFF', (x) => x.ccMode, 'measurements not proven against NVIDIA\'s signed RIMs');
  each('ppcie', g.ppcie, 'POLICY_GPU_PPCIE_OFF', (x) => x.ppcie, 'protected PCIe not enabled');
  each('minDriverVersion', g.minDriverVersion, 'POLICY_GPU_DRIVER_TOO_OLD', (x) => g.minDriverVersion === 'any' || versionAtLeast(x.driverVersion, g.minDriverVersion, 10), `driver older than ${String(g.minDriverVersion)}`);
  each('minVbiosVersion', g.minVbiosVersion, 'POLICY_GPU_VBIOS_TOO_OLD', (x) => g.minVbiosVersion === 'any' || versionAtLeast(x.vbiosVersion, g.minVbiosVersion, 16), `VBIOS older than ${String(g.minVbiosVersion)}`);
  each('boardIds', g.boardIds, 'POLICY_GPU_BOARD_NOT_ALLOWED', (x) => g.boardIds === 'any' || (x.boardId !== undefined && g.boardIds.includes(x.boardId)), 'board id not allowed');
}

/** Evaluates one image; its own Rules so the caller can pick which image to report. */
function checkImage(img: ImagePolicy, claims: Claims, now: Date): Rules {
  const r = new Rules();
  const at = `images.${img.name}`;
  if (img.expires !== undefined) {
    const exp = parseExpiry(img.expires);
    if (!(exp.getTime() > now.getTime())) r.fail(`${at}.expires`, 'enforce', 'POLICY_IMAGE_EXPIRED', `image '${img.name}' expired at ${img.expires} (now ${now.toISOString()})`);
    else r.pass(`${at}.expires`, 'enforce');
  }
  const m = img.measurement;
  if (m === 'any') r.skip(`${at}.measurement`, UNCHECKED);
  else if (claims.platform.measurement !== undefined && m.allowed.includes(claims.platform.measurement)) r.pass(`${at}.measurement`, m.mode);
  else r.fail(`${at}.measurement`, m.mode, 'POLICY_MEASUREMENT_MISMATCH', `launch measurement ${short(claims.platform.measurement)} is not among the ${m.allowed.length} allowed`);

  const pcrs = img.pcrs;
  if (pcrs === 'any') r.skip(`${at}.pcrs`, UNCHECKED);
  else {
    for (const bank of ['sha1', 'sha256', 'sha384'] as const) {
      const want = pcrs[bank];
      if (!want) continue;
      for (const [idx, allowed] of Object.entries(want)) {
        const got = claims.tpm?.pcrs[bank]?.[Number(idx)];
        const path = `${at}.pcrs.${bank}.${idx}`;
        if (got !== undefined && allowed.includes(got)) r.pass(path, pcrs.mode);
        else r.fail(path, pcrs.mode, 'POLICY_PCR_MISMATCH', got === undefined ? `PCR ${bank}[${idx}] was not quoted` : `PCR ${bank}[${idx}] = ${got} is not among the ${allowed.length} allowed`);
      }
    }
  }

  const uki = img.uki;
  if (uki === 'any') r.skip(`${at}.uki`, UNCHECKED);
  else {
    const got = claims.tpm?.pcrs[uki.bank]?.[11];
    if (got !== undefined && uki.pcr11.includes(got)) r.pass(`${at}.uki`, uki.mode, `PCR 11 matches phase '${uki.phase}'`);
    else r.fail(`${at}.uki`, uki.mode, 'POLICY_UKI_PCR11_MISMATCH', `PCR ${uki.bank}[11] = ${short(got)} is not an allowed UKI value at phase '${uki.phase}'`);
  }

  const v = img.verity;
  if (v === 'any') r.skip(`${at}.verity`, UNCHECKED);
  else {
    for (const [key, claim] of [
      ['rootHash', claims.boot?.verityRootHash],
      ['usrHash', claims.boot?.verityUsrHash],
    ] as const) {
      const allowed = v[key];
      if (allowed === 'any') r.skip(`${at}.verity.${key}`, UNCHECKED);
      else if (claim !== undefined && allowed.includes(claim)) r.pass(`${at}.verity.${key}`, v.mode);
      else r.fail(`${at}.verity.${key}`, v.mode, 'POLICY_VERITY_MISMATCH', `dm-verity ${key} ${short(claim)} is not among the ${allowed.length} allowed`);
    }
  }

  const apps = img.bootApps;
  if (apps === 'any') r.skip(`${at}.bootApps`, UNCHECKED);
  else {
    const got = claims.boot?.bootApps;
    if (!got || got.length === 0) r.fail(`${at}.bootApps`, apps.mode, 'POLICY_BOOT_APP_NOT_ALLOWED', 'the claims list no measured boot application (event log not replayed?)');
    else {
      const bad = got.filter((d) => !apps.allowed.includes(d));
      if (bad.length === 0) r.pass(`${at}.bootApps`, apps.mode);
      else r.fail(`${at}.bootApps`, apps.mode, 'POLICY_BOOT_APP_NOT_ALLOWED', `boot application(s) ${bad.join(', ')} not allowed`);
    }
  }
  return r;
}

function checkImages(r: Rules, c: ClusterPolicy, claims: Claims, now: Date): string | undefined {
  if (c.images === 'any') {
    r.skip('images', UNCHECKED);
    return undefined;
  }
  const results = c.images.map((img) => ({ img, rules: checkImage(img, claims, now) }));
  const fails = (x: Rules) => x.list.filter((y) => y.outcome === 'fail').length;
  const warns = (x: Rules) => x.list.filter((y) => y.outcome === 'warn').length;
  const matched = results.filter((x) => fails(x.rules) === 0).sort((a, b) => warns(a.rules) - warns(b.rules))[0];
  if (matched) {
    r.list.push(...matched.rules.list);
    r.pass('images', 'enforce', `matched image '${matched.img.name}'`);
    return matched.img.name;
  }
  // Nothing matched: report the closest image in full, and a one-line summary of every image.
  let closest = results[0]!;
  for (const x of results) if (fails(x.rules) < fails(closest.rules)) closest = x;
  r.list.push(...closest.rules.list);
  const first = closest.rules.list.find((y) => y.outcome === 'fail')!;
  const summary = results.map((x) => `${x.img.name}: ${x.rules.list.filter((y) => y.outcome === 'fail').map((y) => y.code).join(', ')}`).join('; ');
  r.fail('images', 'enforce', first.code!, `no image matches (closest '${closest.img.name}'); ${summary}`);
  return undefined;
}

function deriveNodeName(r: Rules, c: ClusterPolicy, claims: Claims, cat: PolicyCatalog): string {
  const rule = own(c.nodeName as Record<string, { from: string; prefix?: string } | undefined>, claims.provider);
  if (!rule) {
    r.fail('nodeName', 'enforce', 'POLICY_NODE_NAME_RULE_MISSING', `no nodeName rule for provider '${claims.provider}'`);
    return '';
  }
  const src = own(cat.nodeNames, rule.from);
  if (!src || src.provider !== claims.provider) {
    r.fail('nodeName', 'enforce', 'POLICY_NODE_NAME_RULE_MISSING', `nodeName source '${rule.from}' does not apply to provider '${claims.provider}'`);
    return '';
  }
  if (!isProven(claims, src.field)) {
    r.fail('nodeName', 'enforce', 'POLICY_NODE_NAME_UNPROVEN', `'${src.field}' is not proven by the evidence; the node name must come from verified identity`);
    return '';
  }
  let base = identityField(claims, src.field);
  if (base === undefined || base === '') {
    r.fail('nodeName', 'enforce', 'POLICY_NODE_NAME_MISSING', `'${src.field}' is absent from the claims`);
    return '';
  }
  // A source its descriptor marks case-insensitive (Azure's vmId, a GUID: RFC 9562 §4) is
  // lower-cased. Names are used exactly as proven: changing them could make two instances collide.
  if (src.lowercase) base = base.toLowerCase();
  const name = `${rule.prefix ?? ''}${base}`;
  if (!isDns1123Subdomain(name)) {
    r.fail('nodeName', 'enforce', 'POLICY_NODE_NAME_INVALID', `derived node name '${name.slice(0, 300)}' is not a DNS-1123 subdomain`);
    return '';
  }
  r.pass('nodeName', 'enforce', `'${name}' from ${rule.from}`);
  return name;
}

// ───────────────────────────── entry ─────────────────────────────

/** `catalog`: the provider list the policy was loaded with (default: this build's, providers/catalog.ts). */
export function evaluatePolicy(policy: LoadedPolicy, claims: Claims, cluster: string | undefined, now: Date, catalog?: Catalog): Decision {
  const cat = policyCatalog(catalog);
  const name = cluster ?? policy.doc.defaultCluster;
  const base = { cluster: name, policyHash: policy.hash, policyVersion: policy.version };
  const c = Object.hasOwn(policy.doc.clusters, name) ? policy.doc.clusters[name] : undefined;
  if (!c) {
    return {
      ...base,
      allow: false,
      nodeName: '',
      rules: [{ rule: 'cluster', outcome: 'fail', mode: 'enforce', code: 'POLICY_CLUSTER_UNKNOWN', reason: `no policy for cluster '${name}'` }],
      denyCode: DENY_CODE,
      release: { tokenTtlSeconds: 0, extraGroups: [], allowUnsealed: false, diskKey: false },
    };
  }
  const r = new Rules();
  let image: string | undefined;
  let nodeName = '';
  try {
    checkProviders(r, c, claims);
    checkTpm(r, c, claims);
    checkPlatform(r, c, claims);
    checkIdentity(r, c, claims, cat);
    checkBoot(r, c, claims);
    image = checkImages(r, c, claims, now);
    checkGpus(r, c, claims);
    nodeName = deriveNodeName(r, c, claims, cat);
  } catch (e) {
    // Claims that break the Claims type (a provider bug) deny, audibly, instead of throwing.
    r.fail('claims', 'enforce', 'POLICY_CLAIMS_MALFORMED', `claims do not have the normalized shape: ${(e as Error).message}`);
    image = undefined;
  }
  const allow = !r.list.some((x) => x.outcome === 'fail');
  return {
    ...base,
    allow,
    nodeName,
    ...(image !== undefined ? { image } : {}),
    rules: r.list,
    ...(allow ? {} : { denyCode: DENY_CODE }),
    ...(c.explain ? { explain: true } : {}),
    release: {
      tokenTtlSeconds: c.release.tokenTtlSeconds,
      extraGroups: [...c.release.extraGroups],
      allowUnsealed: c.release.allowUnsealed,
      diskKey: c.release.diskKey,
      tokensPerInstance: c.release.tokensPerInstance,
    },
  };
}

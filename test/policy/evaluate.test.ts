/**
 * Table tests of every policy rule over the normalized claims of the real vectors
 * (fixtures/claims.ts cites the INDEX lines). Each row:
 * - builds a policy in which the rule under test is active for that vector and checks the
 *   unmodified claims are ADMITTED (the rule passes on matching claims);
 * - changes ONE field of the claims (or, for expiry/unproven-field rows, one policy field) and
 *   checks the decision DENIES with the rule's own code, on that rule only, with the coarse
 *   POLICY_DENIED for the node;
 * - where the rule has a `warn` mode, re-runs the change with the rule in warn mode: admitted,
 *   the rule recorded with outcome `warn` and its code, and reported to Metrics.policyWarn.
 */
import { describe, expect, it } from 'vitest';
import type { Claims } from '../../providers/common/types.js';
import type { ClusterPolicy } from '../../broker/policy/schema.js';
import type { Metrics } from '../../broker/contracts.js';
import { createPolicyEngine } from '../../broker/policy/engine.js';
import { evaluatePolicy, globMatch, isDns1123Subdomain } from '../../broker/policy/evaluate.js';
import { awsNitro, azureSnpGenoa, azureSnpV0, azureTdx, gcpAmd, gcpCos85, swtpm, UKI_PCR11_ENTER_INITRD, ALL_VECTORS } from './fixtures/claims.js';
import { clone, img, NOW, policyFor } from './helpers.js';

interface Row {
  name: string;
  claims: Claims;
  /** Makes the rule under test active (the captured policy already pins most values). */
  patch?: (c: ClusterPolicy) => void;
  /** One-field change of the claims. */
  mutate?: (c: Claims) => void;
  /** Or one-field change of the policy (expiry, pinning an unproven field). */
  mutatePolicy?: (c: ClusterPolicy) => void;
  wantCode: string;
  /** Rule path that must fail. */
  rule: string;
  /** Puts the rule under test in warn mode (absent for rules without one). */
  warn?: (c: ClusterPolicy) => void;
}

const flip = (h: string) => (h[0] === '0' ? '1' : '0') + h.slice(1);
const tpm = (c: Claims) => c.tpm!;
const setMode = (o: unknown) => {
  (o as { mode?: string }).mode = 'warn';
};

const rows: Row[] = [
  // ── providers and formats
  { name: 'gcp claims into an azure-only cluster', claims: azureSnpV0, mutate: (c) => (c.provider = 'gcp'), wantCode: 'POLICY_PROVIDER_NOT_ALLOWED', rule: 'providers.gcp' },
  { name: 'tdx format on an snp-only cluster', claims: azureSnpV0, mutate: (c) => (c.format = 'az-tdx-vtpm'), wantCode: 'POLICY_FORMAT_NOT_ALLOWED', rule: 'providers.azure.formats' },
  { name: 'tpm format name changed', claims: swtpm, mutate: (c) => (c.format = 'tpm2'), wantCode: 'POLICY_FORMAT_NOT_ALLOWED', rule: 'providers.tpm.formats' },
  // ── TPM AK trust
  { name: 'azure AK not backed by the hardware report', claims: azureSnpV0, mutate: (c) => (tpm(c).akTrust = 'evidence-only'), wantCode: 'POLICY_AK_TRUST_NOT_ALLOWED', rule: 'tpm.akTrust' },
  { name: 'gcp AK not cloud-certified', claims: gcpAmd, mutate: (c) => (tpm(c).akTrust = 'evidence-only'), wantCode: 'POLICY_AK_TRUST_NOT_ALLOWED', rule: 'tpm.akTrust' },
  { name: 'nitro claims without a TPM section', claims: awsNitro, patch: (c) => (c.images = 'any'), mutate: (c) => delete c.tpm, wantCode: 'POLICY_TPM_MISSING', rule: 'tpm.akTrust' },
  { name: 'swtpm with another AK', claims: swtpm, mutate: (c) => (tpm(c).akSha256 = flip(tpm(c).akSha256)), wantCode: 'POLICY_AK_NOT_PINNED', rule: 'tpm.pinnedAks', warn: (c) => setMode(c.tpm.pinnedAks) },
  // ── platform
  { name: 'snp node without TEE', claims: azureSnpV0, mutate: (c) => (c.platform.tee = 'none'), wantCode: 'POLICY_TEE_REQUIRED', rule: 'platform.tee', warn: (c) => setMode(c.platform.tee) },
  { name: 'snp cluster, tdx node', claims: azureSnpGenoa, mutate: (c) => (c.platform.tee = 'tdx'), wantCode: 'POLICY_TEE_KIND_NOT_ALLOWED', rule: 'platform.tee', warn: (c) => setMode(c.platform.tee) },
  { name: 'nitro node without TEE', claims: awsNitro, mutate: (c) => (c.platform.tee = 'none'), wantCode: 'POLICY_TEE_REQUIRED', rule: 'platform.tee', warn: (c) => setMode(c.platform.tee) },
  ...ALL_VECTORS.map(
    (v): Row => ({ name: `${v.name} launched with debug`, claims: v.claims, mutate: (c) => (c.platform.debug = true), wantCode: 'POLICY_DEBUG_FORBIDDEN', rule: 'platform.debug', warn: (c) => setMode(c.platform.debug) }),
  ),
  { name: 'snp v0 TCB snp 24 → 23', claims: azureSnpV0, mutate: (c) => (c.platform.tcb!.snp = 23), wantCode: 'POLICY_TCB_TOO_LOW', rule: 'platform.snpTcb', warn: (c) => setMode(c.platform.snpTcb) },
  { name: 'snp genoa microcode 84 → 83', claims: azureSnpGenoa, mutate: (c) => (c.platform.tcb!.microcode = 83), wantCode: 'POLICY_TCB_TOO_LOW', rule: 'platform.snpTcb', warn: (c) => setMode(c.platform.snpTcb) },
  { name: 'snp genoa bootloader 10 → 9', claims: azureSnpGenoa, mutate: (c) => (c.platform.tcb!.bootloader = 9), wantCode: 'POLICY_TCB_TOO_LOW', rule: 'platform.snpTcb' },
  { name: 'snp TCB without microcode', claims: azureSnpV0, mutate: (c) => delete c.platform.tcb!.microcode, wantCode: 'POLICY_TCB_MISSING', rule: 'platform.snpTcb' },
  { name: 'tdx TD_ATTRIBUTES with DEBUG bit', claims: azureTdx, mutate: (c) => (c.platform.fields!.tdAttributes = '0100000000000000'), wantCode: 'POLICY_TDX_ATTRIBUTES_MISMATCH', rule: 'platform.tdx.tdAttributes', warn: (c) => setMode(c.platform.tdx) },
  { name: 'tdx XFAM changed', claims: azureTdx, mutate: (c) => (c.platform.fields!.xfam = 'e718070000000000'), wantCode: 'POLICY_TDX_XFAM_MISMATCH', rule: 'platform.tdx.xfam', warn: (c) => setMode(c.platform.tdx) },
  // ── identity (the captured policy pins the proven project/zone/region)
  { name: 'gcp other project', claims: gcpAmd, mutate: (c) => (c.identity.account = 'attacker-project'), wantCode: 'POLICY_IDENTITY_MISMATCH', rule: 'identity.gcp.projects', warn: (c) => setMode(c.identity !== 'any' && c.identity.gcp) },
  { name: 'gcp other zone', claims: gcpCos85, mutate: (c) => (c.identity.zone = 'europe-west1-b'), wantCode: 'POLICY_IDENTITY_MISMATCH', rule: 'identity.gcp.zones', warn: (c) => setMode(c.identity !== 'any' && c.identity.gcp) },
  {
    name: 'gcp instance name outside the pattern',
    claims: gcpAmd,
    patch: (c) => {
      if (c.identity !== 'any' && c.identity.gcp && c.identity.gcp !== 'any') c.identity.gcp.instanceNames = ['instance-2026*', 'cos-*'];
    },
    mutate: (c) => (c.identity.instanceName = 'web-20260202'),
    wantCode: 'POLICY_INSTANCE_NAME_MISMATCH',
    rule: 'identity.gcp.instanceNames',
    warn: (c) => setMode(c.identity !== 'any' && c.identity.gcp),
  },
  { name: 'gcp project no longer proven', claims: gcpAmd, mutate: (c) => (c.identity.proven = c.identity.proven.filter((f) => f !== 'account')), wantCode: 'POLICY_IDENTITY_UNPROVEN', rule: 'identity.gcp.projects' },
  { name: 'gcp claims from another cloud', claims: gcpCos85, mutate: (c) => (c.identity.cloud = 'aws'), wantCode: 'POLICY_IDENTITY_MISMATCH', rule: 'identity.gcp' },
  { name: 'aws other region', claims: awsNitro, mutate: (c) => (c.identity.region = 'eu-west-1'), wantCode: 'POLICY_IDENTITY_MISMATCH', rule: 'identity.aws.regions', warn: (c) => setMode(c.identity !== 'any' && c.identity.aws) },
  {
    name: 'aws account pinned but the Nitro document does not prove it',
    claims: awsNitro,
    mutatePolicy: (c) => {
      if (c.identity !== 'any' && c.identity.aws && c.identity.aws !== 'any') c.identity.aws.accounts = ['123456789012'];
    },
    wantCode: 'POLICY_IDENTITY_UNPROVEN',
    rule: 'identity.aws.accounts',
  },
  {
    name: 'azure subscription pinned but the HCL report does not prove it',
    claims: azureSnpV0,
    mutatePolicy: (c) => {
      c.identity = { azure: { subscriptions: ['00000000-1111-2222-3333-444444444444'], resourceGroups: 'any', instanceNames: 'any' } };
    },
    wantCode: 'POLICY_IDENTITY_UNPROVEN',
    rule: 'identity.azure.subscriptions',
  },
  {
    name: 'azure resource group (proven by a future provider) differs',
    claims: { ...clone(azureTdx), identity: { ...azureTdx.identity, extra: { resourceGroup: 'rg-prod' }, proven: ['instanceId', 'extra.resourceGroup'] } },
    patch: (c) => {
      c.identity = { azure: { subscriptions: 'any', resourceGroups: ['rg-prod'], instanceNames: 'any' } };
    },
    mutate: (c) => (c.identity.extra = { resourceGroup: 'rg-dev' }),
    wantCode: 'POLICY_IDENTITY_MISMATCH',
    rule: 'identity.azure.resourceGroups',
    warn: (c) => setMode(c.identity !== 'any' && c.identity.azure),
  },
  {
    name: 'bare-metal instance id not listed',
    claims: swtpm,
    patch: (c) => {
      c.identity = { tpm: { instanceIds: ['f16ea5c9d028c828'], instanceNames: 'any' } };
    },
    mutate: (c) => (c.identity.instanceId = 'f16ea5c9d028c829'),
    wantCode: 'POLICY_IDENTITY_MISMATCH',
    rule: 'identity.tpm.instanceIds',
    warn: (c) => setMode(c.identity !== 'any' && c.identity.tpm),
  },
  // ── boot
  { name: 'secure boot off', claims: azureSnpV0, mutate: (c) => (c.boot!.secureBoot = false), wantCode: 'POLICY_SECURE_BOOT_OFF', rule: 'boot.secureBoot', warn: (c) => setMode(c.boot.secureBoot) },
  { name: 'secure boot not reported', claims: gcpAmd, mutate: (c) => delete c.boot, wantCode: 'POLICY_SECURE_BOOT_OFF', rule: 'boot.secureBoot', warn: (c) => setMode(c.boot.secureBoot) },
  // ── images (reference values)
  { name: 'snp measurement changed', claims: azureSnpV0, mutate: (c) => (c.platform.measurement = flip(c.platform.measurement!)), wantCode: 'POLICY_MEASUREMENT_MISMATCH', rule: 'images.img.measurement', warn: (c) => setMode(img(c).measurement) },
  { name: 'genoa measurement changed', claims: azureSnpGenoa, mutate: (c) => (c.platform.measurement = flip(c.platform.measurement!)), wantCode: 'POLICY_MEASUREMENT_MISMATCH', rule: 'images.img.measurement' },
  { name: 'tdx MRTD changed', claims: azureTdx, mutate: (c) => (c.platform.measurement = flip(c.platform.measurement!)), wantCode: 'POLICY_MEASUREMENT_MISMATCH', rule: 'images.img.measurement', warn: (c) => setMode(img(c).measurement) },
  { name: 'snp PCR0 changed', claims: azureSnpV0, mutate: (c) => (tpm(c).pcrs.sha256![0] = flip(tpm(c).pcrs.sha256![0]!)), wantCode: 'POLICY_PCR_MISMATCH', rule: 'images.img.pcrs.sha256.0', warn: (c) => setMode(img(c).pcrs) },
  { name: 'gcp sha1 PCR0 changed', claims: gcpCos85, mutate: (c) => (tpm(c).pcrs.sha1![0] = flip(tpm(c).pcrs.sha1![0]!)), wantCode: 'POLICY_PCR_MISMATCH', rule: 'images.img.pcrs.sha1.0', warn: (c) => setMode(img(c).pcrs) },
  { name: 'gcp-amd PCR7 changed', claims: gcpAmd, mutate: (c) => (tpm(c).pcrs.sha256![7] = flip(tpm(c).pcrs.sha256![7]!)), wantCode: 'POLICY_PCR_MISMATCH', rule: 'images.img.pcrs.sha256.7', warn: (c) => setMode(img(c).pcrs) },
  { name: 'nitro sha384 PCR4 changed', claims: awsNitro, mutate: (c) => (tpm(c).pcrs.sha384![4] = flip(tpm(c).pcrs.sha384![4]!)), wantCode: 'POLICY_PCR_MISMATCH', rule: 'images.img.pcrs.sha384.4', warn: (c) => setMode(img(c).pcrs) },
  { name: 'nitro PCR bank missing', claims: awsNitro, mutate: (c) => delete tpm(c).pcrs.sha384, wantCode: 'POLICY_PCR_MISMATCH', rule: 'images.img.pcrs.sha384.0' },
  {
    name: 'UKI PCR 11 at enter-initrd changed',
    claims: swtpm,
    patch: (c) => {
      const i = img(c);
      if (i.pcrs !== 'any') delete i.pcrs.sha256!['11'];
      i.uki = { phase: 'enter-initrd', bank: 'sha256', pcr11: [UKI_PCR11_ENTER_INITRD] };
    },
    mutate: (c) => (tpm(c).pcrs.sha256![11] = flip(UKI_PCR11_ENTER_INITRD)),
    wantCode: 'POLICY_UKI_PCR11_MISMATCH',
    rule: 'images.img.uki',
    warn: (c) => setMode(img(c).uki),
  },
  { name: 'dm-verity root hash changed', claims: swtpm, mutate: (c) => (c.boot!.verityRootHash = flip(c.boot!.verityRootHash!)), wantCode: 'POLICY_VERITY_MISMATCH', rule: 'images.img.verity.rootHash', warn: (c) => setMode(img(c).verity) },
  { name: 'extra boot application', claims: swtpm, mutate: (c) => c.boot!.bootApps!.push('ab'.repeat(32)), wantCode: 'POLICY_BOOT_APP_NOT_ALLOWED', rule: 'images.img.bootApps', warn: (c) => setMode(img(c).bootApps) },
  { name: 'no boot applications reported', claims: swtpm, mutate: (c) => delete c.boot!.bootApps, wantCode: 'POLICY_BOOT_APP_NOT_ALLOWED', rule: 'images.img.bootApps' },
  { name: 'image expired', claims: gcpAmd, mutatePolicy: (c) => (img(c).expires = '2026-11-27T11:59:59Z'), wantCode: 'POLICY_IMAGE_EXPIRED', rule: 'images.img.expires' },
  // ── node name
  { name: 'gce instance name not DNS-1123', claims: gcpAmd, mutate: (c) => (c.identity.instanceName = 'Instance_2026'), wantCode: 'POLICY_NODE_NAME_INVALID', rule: 'nodeName' },
  { name: 'gce instance name too long for a label', claims: gcpCos85, mutate: (c) => (c.identity.instanceName = 'a'.repeat(64)), wantCode: 'POLICY_NODE_NAME_INVALID', rule: 'nodeName' },
  { name: 'gce instance name not proven', claims: gcpAmd, mutate: (c) => (c.identity.proven = c.identity.proven.filter((f) => f !== 'instanceName')), wantCode: 'POLICY_NODE_NAME_UNPROVEN', rule: 'nodeName' },
  {
    name: 'ec2 private DNS name requested but not proven',
    claims: awsNitro,
    mutatePolicy: (c) => (c.nodeName.aws = { from: 'ec2-private-dns-name' }),
    wantCode: 'POLICY_NODE_NAME_UNPROVEN',
    rule: 'nodeName',
  },
  { name: 'ec2 instance id missing', claims: awsNitro, mutate: (c) => (c.identity.instanceId = ''), wantCode: 'POLICY_NODE_NAME_MISSING', rule: 'nodeName' },
];

function failing(d: { rules: { outcome: string; rule: string; code?: string }[] }) {
  return d.rules.filter((r) => r.outcome === 'fail');
}

describe('policy rules over the vectors’ normalized claims', () => {
  it.each(rows)('$name → $wantCode', async (row) => {
    const policy = await policyFor(row.claims, row.patch);
    const ok = evaluatePolicy(policy, row.claims, undefined, NOW);
    expect(failing(ok)).toEqual([]);
    expect(ok.allow).toBe(true);
    expect(ok.rules.some((r) => r.rule === row.rule && r.outcome === 'pass') || row.rule.startsWith('providers.') || row.mutatePolicy !== undefined).toBe(true);

    const claims = clone(row.claims);
    row.mutate?.(claims);
    const denyPolicy = row.mutatePolicy
      ? await policyFor(row.claims, (c) => {
          row.patch?.(c);
          row.mutatePolicy!(c);
        })
      : policy;
    const d = evaluatePolicy(denyPolicy, claims, undefined, NOW);
    expect(d.allow).toBe(false);
    expect(d.denyCode).toBe('POLICY_DENIED');
    const fails = failing(d);
    expect(fails.map((f) => f.rule)).toContain(row.rule);
    // Its own code: every failing rule carries the code of the change (the `images` summary
    // repeats the closest image's code; the provider swap also fails that provider's identity/name rules).
    for (const f of fails) {
      if (row.rule.startsWith('providers.gcp')) break;
      expect(f.code, `${f.rule}`).toBe(row.wantCode);
    }
    expect(d.policyHash).toBe(policy.hash === denyPolicy.hash ? policy.hash : denyPolicy.hash);
    expect(d.policyVersion).toBe(denyPolicy.version);

    if (row.warn) {
      const warned: Array<[string, string]> = [];
      const metrics: Metrics = { challengeIssued() {}, attestOutcome() {}, policyWarn: (rule, code) => warned.push([rule, code]) };
      const wp = await policyFor(row.claims, (c) => {
        row.patch?.(c);
        row.mutatePolicy?.(c);
        row.warn!(c);
      });
      const engine = createPolicyEngine(wp, { clock: { now: () => NOW }, metrics });
      const w = await engine.evaluate(claims);
      expect(w.allow).toBe(true);
      expect(w.denyCode).toBeUndefined();
      const rec = w.rules.find((r) => r.rule === row.rule)!;
      expect(rec).toMatchObject({ outcome: 'warn', mode: 'warn', code: row.wantCode });
      expect(rec.reason).toBeTruthy();
      expect(warned).toContainEqual([row.rule, row.wantCode]);
    }
  });

  it('every rule family of the brief has a row', () => {
    const codes = new Set(rows.map((r) => r.wantCode));
    for (const c of [
      'POLICY_PROVIDER_NOT_ALLOWED',
      'POLICY_FORMAT_NOT_ALLOWED',
      'POLICY_AK_TRUST_NOT_ALLOWED',
      'POLICY_AK_NOT_PINNED',
      'POLICY_TEE_REQUIRED',
      'POLICY_DEBUG_FORBIDDEN',
      'POLICY_TCB_TOO_LOW',
      'POLICY_TDX_ATTRIBUTES_MISMATCH',
      'POLICY_IDENTITY_MISMATCH',
      'POLICY_IDENTITY_UNPROVEN',
      'POLICY_INSTANCE_NAME_MISMATCH',
      'POLICY_SECURE_BOOT_OFF',
      'POLICY_MEASUREMENT_MISMATCH',
      'POLICY_PCR_MISMATCH',
      'POLICY_UKI_PCR11_MISMATCH',
      'POLICY_VERITY_MISMATCH',
      'POLICY_BOOT_APP_NOT_ALLOWED',
      'POLICY_IMAGE_EXPIRED',
      'POLICY_NODE_NAME_INVALID',
    ]) {
      expect(codes).toContain(c);
    }
  });
});

describe('decisions', () => {
  it('records every rule, the policy hash and version, the image and the derived node name', async () => {
    const p = await policyFor(gcpAmd);
    const d = evaluatePolicy(p, gcpAmd, undefined, NOW);
    expect(d).toMatchObject({ allow: true, cluster: 'default', image: 'img', nodeName: 'instance-20260202-065609', policyHash: p.hash, policyVersion: p.version });
    expect(d.policyHash).toMatch(/^[0-9a-f]{64}$/);
    // Checks written 'any' are recorded as skipped, never silently absent.
    expect(d.rules.find((r) => r.rule === 'platform.tdx')).toMatchObject({ outcome: 'skip' });
    expect(d.rules.find((r) => r.rule === 'images.img.uki')).toMatchObject({ outcome: 'skip' });
    expect(d.release).toEqual({ tokenTtlSeconds: 900, extraGroups: [], allowUnsealed: false, diskKey: false, tokensPerInstance: 'one' });
  });

  it('denies an unknown cluster without throwing', async () => {
    const p = await policyFor(gcpAmd);
    const d = evaluatePolicy(p, gcpAmd, 'other', NOW);
    expect(d).toMatchObject({ allow: false, denyCode: 'POLICY_DENIED', cluster: 'other' });
    expect(d.rules[0]).toMatchObject({ rule: 'cluster', code: 'POLICY_CLUSTER_UNKNOWN' });
    expect(evaluatePolicy(p, gcpAmd, '__proto__', NOW).allow).toBe(false);
  });

  it('derives Azure node names from the proven vmId, lower-cased', async () => {
    const d = evaluatePolicy(await policyFor(azureTdx), azureTdx, undefined, NOW);
    expect(d.nodeName).toBe('6332533d-5649-4d02-8aa7-8f64b7c3ee21');
  });

  it('applies a node-name prefix', async () => {
    const p = await policyFor(swtpm, (c) => (c.nodeName.tpm = { from: 'tpm-instance-id', prefix: 'bm-' }));
    expect(evaluatePolicy(p, swtpm, undefined, NOW).nodeName).toBe('bm-f16ea5c9d028c828');
  });

  it('rolling upgrade: two images admitted at once, each with its own expiry', async () => {
    // Old image = Milan v0 values (expiring), new image = Genoa values.
    const newImg = (await policyFor(azureSnpGenoa)).doc.clusters.default!;
    const p = await policyFor(azureSnpV0, (c) => {
      const old = img(c);
      old.name = 'old';
      old.expires = '2026-12-31';
      const n = img(newImg);
      n.name = 'new';
      c.images = [old, n];
      if (c.platform.snpTcb !== 'any') c.platform.snpTcb.min = { bootloader: 4, tee: 0, snp: 23, microcode: 84 };
    });
    const genoa = { ...clone(azureSnpGenoa), tpm: { ...clone(azureSnpGenoa.tpm!), akTrust: 'hardware-report' as const } };
    expect(evaluatePolicy(p, azureSnpV0, undefined, NOW)).toMatchObject({ allow: true, image: 'old' });
    expect(evaluatePolicy(p, genoa, undefined, NOW)).toMatchObject({ allow: true, image: 'new' });
    // After the old image expires, old nodes are denied with POLICY_IMAGE_EXPIRED; new ones still join.
    const later = new Date('2027-01-01T00:00:00Z');
    const d = evaluatePolicy(p, azureSnpV0, undefined, later);
    expect(d.allow).toBe(false);
    expect(d.rules.find((r) => r.rule === 'images')).toMatchObject({ outcome: 'fail', code: 'POLICY_IMAGE_EXPIRED' });
    expect(evaluatePolicy(p, genoa, undefined, later)).toMatchObject({ allow: true, image: 'new' });
    // A node of neither image: the decision names the closest image's failure.
    const other = clone(azureSnpV0);
    other.tpm!.pcrs.sha256![0] = flip(other.tpm!.pcrs.sha256![0]!);
    const x = evaluatePolicy(p, other, undefined, NOW);
    expect(x.allow).toBe(false);
    expect(x.rules.find((r) => r.rule === 'images')).toMatchObject({ code: 'POLICY_PCR_MISMATCH' });
  });

  it('an image that only fails warn-mode checks still matches, with the warning recorded', async () => {
    const p = await policyFor(gcpAmd, (c) => {
      const i = img(c);
      if (i.pcrs !== 'any') i.pcrs.mode = 'warn';
    });
    const claims = clone(gcpAmd);
    claims.tpm!.pcrs.sha256![9] = flip(claims.tpm!.pcrs.sha256![9]!);
    const d = evaluatePolicy(p, claims, undefined, NOW);
    expect(d).toMatchObject({ allow: true, image: 'img' });
    expect(d.rules.filter((r) => r.outcome === 'warn').map((r) => r.rule)).toEqual(['images.img.pcrs.sha256.9']);
  });

  it('claims that break the normalized shape deny (POLICY_CLAIMS_MALFORMED) instead of throwing', async () => {
    const p = await policyFor(gcpAmd);
    const bad = { ...clone(gcpAmd), identity: null } as unknown as Claims;
    const d = evaluatePolicy(p, bad, undefined, NOW);
    expect(d).toMatchObject({ allow: false, denyCode: 'POLICY_DENIED', nodeName: '' });
    expect(d.rules.at(-1)).toMatchObject({ rule: 'claims', outcome: 'fail', code: 'POLICY_CLAIMS_MALFORMED' });
  });

  it.each(['constructor', '__proto__', 'toString'])('a provider named %s never reaches Object.prototype', async (name) => {
    const p = await policyFor(gcpAmd);
    const d = evaluatePolicy(p, { ...clone(gcpAmd), provider: name as never }, undefined, NOW);
    expect(d.allow).toBe(false);
    expect(d.rules[0]).toMatchObject({ rule: `providers.${name}`, code: 'POLICY_PROVIDER_NOT_ALLOWED' });
    expect(d.rules.map((r) => r.code)).not.toContain('POLICY_CLAIMS_MALFORMED');
  });

  it('does not mutate claims or the policy', async () => {
    const p = await policyFor(awsNitro);
    const before = JSON.stringify(p.doc);
    const claims = clone(awsNitro);
    evaluatePolicy(p, claims, undefined, NOW);
    expect(claims).toEqual(awsNitro);
    expect(JSON.stringify(p.doc)).toBe(before);
  });
});

describe('helpers', () => {
  it.each([
    ['cos-*', 'cos-test', true],
    ['cos-*', 'cos-', true],
    ['cos-*', 'xcos-test', false],
    ['instance-????????-*', 'instance-20260202-065609', true],
    ['*-prod-*', 'gke-prod-pool-1', true],
    ['a*b*c', 'axxbyyc', true],
    ['a*b*c', 'axxbyy', false],
    ['exact', 'exact', true],
    ['exact', 'exactly', false],
  ])('glob %s ~ %s = %s', (p, s, want) => {
    expect(globMatch(p, s)).toBe(want);
  });

  it('glob matching stays linear on adversarial input', () => {
    // A backtracking matcher would take exponential time here; this must return at once.
    expect(globMatch('*a*a*a*a*a*a*a*a*a*a*b', 'a'.repeat(5000))).toBe(false);
  });

  it.each([
    ['ip-10-0-0-1.ec2.internal', true],
    ['instance-20260202-065609', true],
    ['Instance', false],
    ['-a', false],
    ['a-', false],
    ['a..b', false],
    ['a_b', false],
    ['a'.repeat(63), true],
    ['a'.repeat(64), false],
    [`${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(61)}`, true],
    [`${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(62)}`, false],
    ['', false],
  ])('DNS-1123 subdomain %s = %s', (s, want) => {
    expect(isDns1123Subdomain(s)).toBe(want);
  });
});

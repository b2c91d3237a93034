/**
 * Loading fails closed: unknown keys, missing checks, empty allow-lists, malformed reference
 * values, impossible rules and forgotten identity rules are all refused at load time with the
 * path of the field to fix. The policy hash is the SHA-256 of the exact bytes loaded.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { AttestError } from '../../providers/common/errors.js';
import { checkPolicyText, loadPolicyText } from '../../broker/policy/load.js';
import type { ClusterPolicy, PolicyDocument } from '../../broker/policy/schema.js';
import { awsNitro, azureSnpV0, azureTdx, gcpAmd, swtpm } from './fixtures/claims.js';
import { clone, docFor, img, NOW, yamlOf } from './helpers.js';
import type { Claims } from '../../providers/common/types.js';

async function codesOf(doc: unknown): Promise<string[]> {
  const r = await checkPolicyText(yamlOf(doc), NOW);
  return r.issues.filter((i) => i.severity === 'error').map((i) => `${i.code}@${i.path}`);
}

interface Row {
  name: string;
  base?: Claims;
  edit: (c: ClusterPolicy & Record<string, unknown>, doc: PolicyDocument & Record<string, unknown>) => void;
  /** `CODE@path` expected among the errors (the error may name a field below that path). */
  want: string;
}

const rows: Row[] = [
  // ── schema: strictness
  { name: 'unknown top-level key', edit: (_c, d) => (d.extra = 1), want: 'POLICY_SCHEMA@(document)' },
  { name: 'typo in a rule name', edit: (c) => ((c.boot as Record<string, unknown>).secureboot = 'any'), want: 'POLICY_SCHEMA@clusters.default.boot' },
  { name: 'unknown key inside an image', edit: (c) => ((img(c) as Record<string, unknown>).pcr = 'any'), want: 'POLICY_SCHEMA@clusters.default.images[0]' },
  { name: 'wrong apiVersion', edit: (_c, d) => (d.apiVersion = 'attest-broker/v2' as never), want: 'POLICY_SCHEMA@apiVersion' },
  // ── schema: "unchecked" must be written out
  { name: 'platform.debug omitted', edit: (c) => delete (c.platform as Record<string, unknown>).debug, want: 'POLICY_SCHEMA@clusters.default.platform.debug' },
  { name: 'images omitted', edit: (c) => delete (c as Record<string, unknown>).images, want: 'POLICY_SCHEMA@clusters.default.images' },
  { name: 'identity omitted', edit: (c) => delete (c as Record<string, unknown>).identity, want: 'POLICY_SCHEMA@clusters.default.identity' },
  { name: 'image uki omitted', edit: (c) => delete (img(c) as Record<string, unknown>).uki, want: 'POLICY_SCHEMA@clusters.default.images[0].uki' },
  { name: "debug: false instead of 'any'", edit: (c) => ((c.platform as Record<string, unknown>).debug = { forbidden: false }), want: 'POLICY_SCHEMA@clusters.default.platform.debug' },
  { name: 'tpm: any (evidence-only would be admitted implicitly)', edit: (c) => (c.tpm = 'any' as never), want: 'POLICY_SCHEMA@clusters.default.tpm' },
  // ── schema: empty allow-lists
  { name: 'empty akTrust', edit: (c) => (c.tpm.akTrust = []), want: 'POLICY_SCHEMA@clusters.default.tpm.akTrust' },
  { name: 'empty format list', base: gcpAmd, edit: (c) => (c.providers.gcp!.formats = []), want: 'POLICY_SCHEMA@clusters.default.providers.gcp.formats' },
  { name: 'empty image list', edit: (c) => (c.images = []), want: 'POLICY_SCHEMA@clusters.default.images' },
  { name: 'empty tee kinds', edit: (c) => (c.platform.tee = { kinds: [] }), want: 'POLICY_SCHEMA@clusters.default.platform.tee' },
  { name: 'empty project list', base: gcpAmd, edit: (c) => (c.identity = { gcp: { projects: [], zones: 'any', instanceNames: 'any' } }), want: 'POLICY_SCHEMA@clusters.default.identity' },
  { name: 'empty PCR value list', base: gcpAmd, edit: (c) => ((img(c).pcrs as { sha256: Record<string, string[]> }).sha256['7'] = []), want: 'POLICY_SCHEMA@clusters.default.images[0].pcrs' },
  // ── schema: value formats
  { name: 'upper-case PCR hex', base: gcpAmd, edit: (c) => ((img(c).pcrs as { sha256: Record<string, string[]> }).sha256['7'] = ['A'.repeat(64)]), want: 'POLICY_SCHEMA@clusters.default.images[0].pcrs' },
  { name: 'sha384 value in the sha256 bank', base: gcpAmd, edit: (c) => ((img(c).pcrs as { sha256: Record<string, string[]> }).sha256['7'] = ['a'.repeat(96)]), want: 'POLICY_SCHEMA@clusters.default.images[0].pcrs' },
  { name: 'PCR index 24', base: gcpAmd, edit: (c) => ((img(c).pcrs as { sha256: Record<string, string[]> }).sha256['24'] = ['a'.repeat(64)]), want: 'POLICY_SCHEMA@clusters.default.images[0].pcrs' },
  { name: 'truncated measurement', edit: (c) => (img(c).measurement = { allowed: ['6a063be9'] }), want: 'POLICY_SCHEMA@clusters.default.images[0].measurement' },
  { name: 'unknown format', edit: (c) => (c.providers.azure!.formats = ['az-sev-vtpm' as never]), want: 'POLICY_SCHEMA@clusters.default.providers.azure.formats[0]' },
  { name: 'unknown UKI phase', base: swtpm, edit: (c) => (img(c).uki = { phase: 'initrd' as never, bank: 'sha256', pcr11: ['a'.repeat(64)] }), want: 'POLICY_SCHEMA@clusters.default.images[0].uki' },
  { name: 'token TTL of a week', edit: (c) => (c.release.tokenTtlSeconds = 604800), want: 'POLICY_SCHEMA@clusters.default.release.tokenTtlSeconds' },
  { name: 'system:masters as an extra group', edit: (c) => (c.release.extraGroups = ['system:masters']), want: 'POLICY_SCHEMA@clusters.default.release.extraGroups[0]' },
  { name: 'invalid expiry', edit: (c) => (img(c).expires = 'next tuesday'), want: 'POLICY_SCHEMA@clusters.default.images[0].expires' },
  { name: 'regex instead of a glob', base: gcpAmd, edit: (c) => (c.identity = { gcp: { projects: ['lockboot'], zones: 'any', instanceNames: ['^cos-(a|b)+$'] } }), want: 'POLICY_SCHEMA@clusters.default.identity' },
  // ── semantic: fail closed
  { name: 'no identity rule for an enabled cloud', base: gcpAmd, edit: (c) => (c.identity = {}), want: 'POLICY_IDENTITY_RULE_MISSING@clusters.default.identity.gcp' },
  { name: 'identity rule for another cloud only', base: awsNitro, edit: (c) => (c.identity = { gcp: 'any' }), want: 'POLICY_IDENTITY_RULE_MISSING@clusters.default.identity.aws' },
  { name: "identity rule whose fields are all 'any'", base: gcpAmd, edit: (c) => (c.identity = { gcp: { projects: 'any', zones: 'any', instanceNames: 'any' } }), want: 'POLICY_IDENTITY_RULE_EMPTY@clusters.default.identity.gcp' },
  { name: 'no node-name rule', edit: (c) => (c.nodeName = {}), want: 'POLICY_NODE_NAME_RULE_MISSING@clusters.default.nodeName.azure' },
  { name: 'node name from another cloud', edit: (c) => (c.nodeName = { azure: { from: 'gce-instance-name' } }), want: 'POLICY_NODE_NAME_SOURCE_INVALID@clusters.default.nodeName.azure.from' },
  { name: 'TEE kind no enabled format produces', base: awsNitro, edit: (c) => (c.platform.tee = { kinds: ['sev-snp'] }), want: 'POLICY_RULE_IMPOSSIBLE@clusters.default.platform.tee.kinds' },
  { name: 'TEE required for bare metal', base: swtpm, edit: (c) => (c.platform.tee = { kinds: ['sev-snp', 'tdx'] }), want: 'POLICY_RULE_IMPOSSIBLE@clusters.default.platform.tee.kinds' },
  { name: 'no provider enabled', edit: (c) => (c.providers = {}), want: 'POLICY_NO_PROVIDER@clusters.default.providers' },
  { name: 'defaultCluster undefined', edit: (_c, d) => (d.defaultCluster = 'prod'), want: 'POLICY_DEFAULT_CLUSTER_UNKNOWN@defaultCluster' },
  { name: 'duplicate image names', edit: (c) => (c.images = [img(c), clone(img(c))]), want: 'POLICY_IMAGE_DUPLICATE@clusters.default.images[1].name' },
  {
    name: 'image that checks nothing',
    edit: (c) => (c.images = [{ name: 'x', measurement: 'any', pcrs: 'any', uki: 'any', verity: 'any', bootApps: 'any' }]),
    want: 'POLICY_IMAGE_EMPTY@clusters.default.images[0]',
  },
  { name: 'PCR block without banks', edit: (c) => (img(c).pcrs = {}), want: 'POLICY_PCRS_EMPTY@clusters.default.images[0].pcrs' },
  { name: 'UKI value size does not fit the bank', base: swtpm, edit: (c) => (img(c).uki = { phase: 'enter-initrd', bank: 'sha384', pcr11: ['a'.repeat(64)] }), want: 'POLICY_UKI_BANK_MISMATCH@clusters.default.images[0].uki.pcr11[0]' },
];

describe('policy load: refused with the path to fix', () => {
  it.each(rows)('$name', async (row) => {
    const base = row.base ?? azureSnpV0;
    expect(await codesOf(docFor(base))).toEqual([]);
    const doc = docFor(base) as PolicyDocument & Record<string, unknown>;
    row.edit(doc.clusters.default as ClusterPolicy & Record<string, unknown>, doc);
    const errs = await codesOf(doc);
    expect(errs.some((e) => e === row.want || e.startsWith(`${row.want}.`) || e.startsWith(`${row.want}[`)), errs.join('\n')).toBe(true);
    await expect(loadPolicyText(yamlOf(doc), NOW)).rejects.toMatchObject({ code: 'POLICY_INVALID', kind: 'config' });
  });

  it("a cluster with no identity rule loads only when it says 'identity: any' explicitly", async () => {
    const doc = docFor(gcpAmd);
    doc.clusters.default!.identity = {};
    await expect(loadPolicyText(yamlOf(doc), NOW)).rejects.toBeInstanceOf(AttestError);
    doc.clusters.default!.identity = 'any';
    const p = await loadPolicyText(yamlOf(doc), NOW);
    expect(p.warnings.map((w) => w.code)).toContain('POLICY_IDENTITY_UNCHECKED');
    doc.clusters.default!.identity = { gcp: 'any' };
    await expect(loadPolicyText(yamlOf(doc), NOW)).resolves.toBeTruthy();
  });

  it('multi-cloud cluster: every enabled provider needs its own identity and node-name rule', async () => {
    const doc = docFor(gcpAmd);
    const c = doc.clusters.default!;
    c.providers.aws = { formats: ['nitrotpm'] };
    c.tpm.akTrust = ['cloud-certified'];
    const errs = await codesOf(doc);
    expect(errs).toContain('POLICY_IDENTITY_RULE_MISSING@clusters.default.identity.aws');
    expect(errs).toContain('POLICY_NODE_NAME_RULE_MISSING@clusters.default.nodeName.aws');
    c.identity = { ...(c.identity as object), aws: { accounts: 'any', regions: ['us-east-1'], instanceNames: 'any' } };
    c.nodeName.aws = { from: 'ec2-instance-id' };
    expect(await codesOf(doc)).toEqual([]);
  });

  it('warns (without refusing) on rules that never apply and on NOT-FOR-PRODUCTION relaxations', async () => {
    const doc = docFor(swtpm);
    const c = doc.clusters.default!;
    c.platform.snpTcb = { min: { bootloader: 1, tee: 0, snp: 1, microcode: 1 } };
    c.release.allowUnsealed = true;
    c.tpm.pinnedAks = 'any';
    c.identity = { tpm: 'any', gcp: 'any' };
    img(c).expires = '2020-01-01';
    const r = await checkPolicyText(yamlOf(doc), NOW);
    expect(r.policy).toBeDefined();
    expect(r.issues.map((i) => i.code).sort()).toEqual(
      ['POLICY_AK_EVIDENCE_ONLY', 'POLICY_ALL_IMAGES_EXPIRED', 'POLICY_IMAGE_EXPIRED', 'POLICY_RULE_UNUSED', 'POLICY_RULE_UNUSED', 'POLICY_UNSEALED_RELEASE'].sort(),
    );
  });

  it('YAML problems: duplicate keys, bad syntax, non-UTF-8-safe input and size', async () => {
    const dup = 'apiVersion: attest-broker/v1\napiVersion: attest-broker/v1\n';
    expect((await checkPolicyText(dup, NOW)).issues[0]!.code).toBe('POLICY_YAML');
    // `7:` and `"7":` become the same key: a duplicate, never a silent last-wins.
    const text = yamlOf(docFor(gcpAmd));
    const twice = text.replace(/( +)"7":\n( +- [0-9a-f]{64}\n)/, (m, ind: string, val: string) => `${m}${ind}7:\n${val.replace(/[0-9a-f]{64}/, 'f'.repeat(64))}`);
    expect(twice).not.toBe(text);
    expect((await checkPolicyText(twice, NOW)).issues[0]!.code).toBe('POLICY_YAML');
    expect((await checkPolicyText('a: [1, 2\n', NOW)).issues[0]!.code).toBe('POLICY_YAML');
    expect((await checkPolicyText('', NOW)).issues[0]!.code).toBe('POLICY_SCHEMA');
    expect((await checkPolicyText('- 1\n- 2\n', NOW)).issues[0]!.code).toBe('POLICY_SCHEMA');
    expect((await checkPolicyText('x'.repeat((1 << 20) + 1), NOW)).issues[0]!.code).toBe('POLICY_TOO_LARGE');
    // Alias bombs are cut off by the alias cap instead of expanding.
    const bomb = ['a: &a [x, x, x, x, x, x, x, x, x, x]', ...Array.from({ length: 9 }, (_, i) => `${String.fromCharCode(98 + i)}: &${String.fromCharCode(98 + i)} [${Array(10).fill(`*${String.fromCharCode(97 + i)}`).join(', ')}]`)].join('\n');
    const r = await checkPolicyText(bomb, NOW);
    expect(r.policy).toBeUndefined();
    expect(['POLICY_YAML', 'POLICY_SCHEMA']).toContain(r.issues[0]!.code);
  });

  it('YAML 1.2 core schema: bare PCR indexes and quoted hex both load; no implicit timestamps', async () => {
    const text = yamlOf(docFor(azureTdx))
      .replace(/"(\d{1,2})":/g, '$1:')
      .replace(/- "0000000000000000"/, '- "0000000000000000"');
    const p = await loadPolicyText(text, NOW);
    const pcrs = img(p.doc.clusters.default!).pcrs;
    expect(pcrs !== 'any' && Object.keys(pcrs.sha256!)).toContain('0');
    // an unquoted date stays a string (YAML 1.1 would have made it a timestamp)
    const withDate = yamlOf(docFor(azureTdx)).replace('    images:\n      - name: img\n', '    images:\n      - name: img\n        expires: 2027-01-01\n');
    const q = await loadPolicyText(withDate, NOW);
    expect(img(q.doc.clusters.default!).expires).toBe('2027-01-01');
  });

  it('the policy hash is the SHA-256 of the exact bytes; version is the declared one', async () => {
    const text = yamlOf(docFor(gcpAmd));
    const p = await loadPolicyText(text, NOW);
    expect(p.hash).toBe(createHash('sha256').update(text, 'utf8').digest('hex'));
    expect(p.version).toBe('captured-2026-11-27');
    const q = await loadPolicyText(`${text}\n# a comment changes the hash\n`, NOW);
    expect(q.hash).not.toBe(p.hash);
  });
});

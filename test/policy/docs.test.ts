/**
 * Published artefacts stay true:
 * - docs/policy.schema.json equals the schema generated from the zod schema;
 * - every example policy under deploy/policies passes `policy check` (exit 0) through the CLI;
 * - docs/policy.md embeds each example verbatim (so the docs never drift from the files);
 * - each cloud's example admits the matching vector's claims where the example uses its values,
 *   and dev.yaml admits swtpm claims while labelling itself NOT FOR PRODUCTION.
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { register, type CliIo } from '../../broker/commands/policy.node.js';
import { evaluatePolicy } from '../../broker/policy/evaluate.js';
import { policyJsonSchemaText } from '../../broker/policy/json-schema.js';
import { loadPolicyText } from '../../broker/policy/load.js';
import type { Claims } from '../../providers/common/types.js';
import { awsNitro, azureSnpGenoa, azureSnpV0, azureTdx, gcpAmd, swtpm } from './fixtures/claims.js';
import { clone, NOW } from './helpers.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const policiesDir = join(root, 'deploy/policies');
const examples = readdirSync(policiesDir).filter((f) => f.endsWith('.yaml')).sort();

async function check(file: string): Promise<{ code: number; out: string; err: string }> {
  let code = -1;
  let out = '';
  let err = '';
  const io: CliIo = { out: (s) => (out += `${s}\n`), err: (s) => (err += `${s}\n`), exit: (c) => (code = c), now: () => NOW };
  const program = new Command().exitOverride();
  register(program, io);
  await program.parseAsync(['node', 'attest-broker', 'policy', 'check', file]);
  return { code, out, err };
}

describe('docs/policy.schema.json', () => {
  it('equals the schema generated from the zod schema', () => {
    const path = join(root, 'docs/policy.schema.json');
    const want = policyJsonSchemaText();
    if (process.env.UPDATE_POLICY_SCHEMA === '1') writeFileSync(path, want);
    expect(readFileSync(path, 'utf8')).toBe(want);
  });

  it('forbids unknown keys and requires every check', () => {
    const s = JSON.parse(policyJsonSchemaText()) as { additionalProperties?: boolean; required?: string[] };
    expect(s.additionalProperties).toBe(false);
    expect(s.required).toEqual(expect.arrayContaining(['apiVersion', 'kind', 'version', 'defaultCluster', 'clusters']));
    expect(policyJsonSchemaText()).not.toContain('"additionalProperties": {}');
  });
});

describe('example policies', () => {
  it('has one example per cloud plus dev', () => {
    expect(examples).toEqual(['aws.yaml', 'azure.yaml', 'dev.yaml', 'gcp.yaml', 'tpm.yaml']);
  });

  it.each(examples)('%s passes `policy check` and is embedded verbatim in docs/policy.md', async (f) => {
    const r = await check(join(policiesDir, f));
    expect(r.code, r.err).toBe(0);
    const doc = readFileSync(join(root, 'docs/policy.md'), 'utf8');
    expect(doc).toContain(`\`\`\`yaml\n${readFileSync(join(policiesDir, f), 'utf8')}\`\`\``);
  });

  const load = async (f: string) => loadPolicyText(readFileSync(join(policiesDir, f), 'utf8'), NOW);
  const admits = async (f: string, claims: Claims) => evaluatePolicy(await load(f), claims, undefined, NOW);

  it('azure.yaml admits the Milan, Genoa and TDX vectors (rolling upgrade) and records the TDX warn rule', async () => {
    expect(await admits('azure.yaml', azureSnpV0)).toMatchObject({ allow: true, image: 'cvm-milan-2026-10', nodeName: 'az-26f8bc30-774e-4290-8e7a-535f3b672aee' });
    expect(await admits('azure.yaml', azureSnpGenoa)).toMatchObject({ allow: true, image: 'cvm-genoa-2026-11' });
    expect(await admits('azure.yaml', azureTdx)).toMatchObject({ allow: true, image: 'cvm-tdx-2026-11' });
    const drift = clone(azureTdx);
    drift.tpm!.pcrs.sha256![0] = 'ff'.repeat(32);
    const d = await admits('azure.yaml', drift);
    expect(d.allow).toBe(true);
    expect(d.rules.find((r) => r.outcome === 'warn')).toMatchObject({ rule: 'images.cvm-tdx-2026-11.pcrs.sha256.0', code: 'POLICY_PCR_MISMATCH' });
    // After the Milan image expires, Milan nodes are denied.
    expect(evaluatePolicy(await load('azure.yaml'), azureSnpV0, undefined, new Date('2027-02-01T00:00:00Z')).allow).toBe(false);
  });

  it('gcp.yaml admits the gcp-amd vector, recording the missing TEE as a warning', async () => {
    const d = await admits('gcp.yaml', gcpAmd);
    expect(d).toMatchObject({ allow: true, nodeName: 'instance-20260202-065609', image: 'node-image-2026-11' });
    expect(d.rules.find((r) => r.rule === 'platform.tee')).toMatchObject({ outcome: 'warn', code: 'POLICY_TEE_REQUIRED' });
  });

  it('aws.yaml admits the NitroTPM vector', async () => {
    expect(await admits('aws.yaml', awsNitro)).toMatchObject({ allow: true, nodeName: 'i-01cfb383223e42522' });
  });

  it('tpm.yaml denies an evidence-only swtpm; dev.yaml admits it', async () => {
    const t = await admits('tpm.yaml', swtpm);
    expect(t.allow).toBe(false);
    expect(t.rules.filter((r) => r.outcome === 'fail').map((r) => r.code)).toEqual(['POLICY_AK_TRUST_NOT_ALLOWED', 'POLICY_SECURE_BOOT_OFF']);
    const ekCert = { ...clone(swtpm), tpm: { ...clone(swtpm.tpm!), akTrust: 'ek-credential' as const }, boot: { ...clone(swtpm.boot!), secureBoot: true } };
    expect(await admits('tpm.yaml', ekCert)).toMatchObject({ allow: true, nodeName: 'bm-f16ea5c9d028c828', image: 'os-2026.11.1' });

    const dev = await admits('dev.yaml', swtpm);
    expect(dev).toMatchObject({ allow: true, nodeName: 'dev-f16ea5c9d028c828', release: { allowUnsealed: true } });
    const text = readFileSync(join(policiesDir, 'dev.yaml'), 'utf8');
    expect(text).toContain('NOT FOR PRODUCTION');
    expect((await check(join(policiesDir, 'dev.yaml'))).out).toContain('POLICY_AK_EVIDENCE_ONLY');
  });
});

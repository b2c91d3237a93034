/**
 * `attest-broker policy check` through commander (the lead wires `register` into the CLI):
 * exit 0 valid, 1 invalid (every error with its path and fix), 2 unreadable file or bad usage.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { afterAll, describe, expect, it } from 'vitest';
import { register, type CliIo } from '../../broker/commands/policy.node.js';
import { gcpAmd } from './fixtures/claims.js';
import { docFor, NOW, yamlOf } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'policy-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function run(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let code = -1;
  let out = '';
  let err = '';
  const io: CliIo = { out: (s) => (out += `${s}\n`), err: (s) => (err += `${s}\n`), exit: (c) => (code = c), now: () => NOW };
  const program = new Command().exitOverride();
  register(program, io);
  await program.parseAsync(['node', 'attest-broker', ...args]);
  return { code, out, err };
}

function write(name: string, text: string): string {
  const f = join(dir, name);
  writeFileSync(f, text);
  return f;
}

describe('policy check', () => {
  it('exit 0 for a valid policy, with hash and version', async () => {
    const r = await run(['policy', 'check', write('ok.yaml', yamlOf(docFor(gcpAmd)))]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/OK \(apiVersion attest-broker\/v1, version captured-2026-11-27, sha256 [0-9a-f]{64}/);
  });

  it('exit 1 listing every error with its path, fix and code', async () => {
    const doc = docFor(gcpAmd, (c) => {
      c.identity = {};
      (c.platform as Record<string, unknown>).debgu = 'any';
    });
    const r = await run(['policy', 'check', write('bad.yaml', yamlOf(doc))]);
    expect(r.code).toBe(1);
    expect(r.err).toContain("clusters.default.platform: unknown key(s) 'debgu'");
    expect(r.err).toContain('INVALID');
    // Schema errors come first; once fixed, the semantic error is reported.
    const doc2 = docFor(gcpAmd, (c) => (c.identity = {}));
    const r2 = await run(['policy', 'check', write('bad2.yaml', yamlOf(doc2))]);
    expect(r2.code).toBe(1);
    expect(r2.err).toContain("clusters.default.identity.gcp: provider 'gcp' is enabled but has no identity rule");
    expect(r2.err).toContain('[POLICY_IDENTITY_RULE_MISSING]');
  });

  it('--json prints one machine-readable object', async () => {
    const r = await run(['policy', 'check', '--json', write('bad3.yaml', 'apiVersion: attest-broker/v1\n')]);
    expect(r.code).toBe(1);
    const j = JSON.parse(r.out) as { ok: boolean; issues: Array<{ code: string; path: string }> };
    expect(j.ok).toBe(false);
    expect(j.issues.map((i) => i.path)).toEqual(expect.arrayContaining(['kind', 'version', 'defaultCluster', 'clusters']));
  });

  it('exit 2 when the file cannot be read or --at is not RFC 3339', async () => {
    expect((await run(['policy', 'check', join(dir, 'absent.yaml')])).code).toBe(2);
    expect((await run(['policy', 'check', '--at', 'yesterday', write('ok2.yaml', yamlOf(docFor(gcpAmd)))])).code).toBe(2);
  });

  it('--at evaluates image expiry at the given time', async () => {
    const f = write('exp.yaml', yamlOf(docFor(gcpAmd, (c) => c.images !== 'any' && (c.images[0]!.expires = '2027-01-01'))));
    expect((await run(['policy', 'check', f])).out).not.toContain('POLICY_IMAGE_EXPIRED');
    const later = await run(['policy', 'check', '--at', '2027-06-01T00:00:00Z', f]);
    expect(later.code).toBe(0);
    expect(later.out).toContain('POLICY_ALL_IMAGES_EXPIRED');
  });
});

/**
 * `policy capture`: for each vector's claims, the captured policy (through the real CLI
 * command, from a verdict JSON file as `attest-broker verify` prints it) passes `policy check`,
 * admits those claims, and denies them after ANY single PCR change, in every bank and index.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { afterAll, describe, expect, it } from 'vitest';
import { register, type CliIo } from '../../broker/commands/policy.node.js';
import { evaluatePolicy } from '../../broker/policy/evaluate.js';
import { loadPolicyText } from '../../broker/policy/load.js';
import type { PcrBank } from '../../providers/common/types.js';
import { ALL_VECTORS, gcpAmd } from './fixtures/claims.js';
import { clone, NOW } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'policy-capture-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let code = -1;
  let out = '';
  let err = '';
  const io: CliIo = { out: (s) => (out += `${s}\n`), err: (s) => (err += `${s}\n`), exit: (c) => (code = c), now: () => NOW };
  const program = new Command().exitOverride();
  register(program, io);
  await program.parseAsync(['node', 'attest-broker', ...args]);
  return { code, out, err };
}

describe('policy capture on each vector', () => {
  it.each(ALL_VECTORS)('$name: admits its claims, denies every single-PCR change', async ({ name, claims }) => {
    const verdict = join(dir, `${name}.verdict.json`);
    writeFileSync(verdict, JSON.stringify({ ok: true, provider: claims.provider, format: claims.format, claims, errors: [] }));
    const r = await cli(['policy', 'capture', '--evidence', verdict, '--cluster', 'prod', '--image', `${name}-v1`]);
    expect(r.code, r.err).toBe(0);
    const policy = await loadPolicyText(r.out, NOW);

    const ok = evaluatePolicy(policy, claims, 'prod', NOW);
    expect(ok.rules.filter((x) => x.outcome === 'fail')).toEqual([]);
    expect(ok).toMatchObject({ allow: true, image: `${name}-v1` });

    // The captured file also passes `policy check`.
    const file = join(dir, `${name}.policy.yaml`);
    writeFileSync(file, r.out);
    expect((await cli(['policy', 'check', file])).code).toBe(0);

    let changes = 0;
    for (const bank of Object.keys(claims.tpm!.pcrs) as PcrBank[]) {
      for (const idx of Object.keys(claims.tpm!.pcrs[bank]!)) {
        const c = clone(claims);
        const v = c.tpm!.pcrs[bank]![Number(idx)]!;
        c.tpm!.pcrs[bank]![Number(idx)] = (v[0] === 'f' ? 'e' : 'f') + v.slice(1);
        const d = evaluatePolicy(policy, c, 'prod', NOW);
        expect(d.allow, `${bank}[${idx}]`).toBe(false);
        expect(d.denyCode).toBe('POLICY_DENIED');
        expect(d.rules.filter((x) => x.outcome === 'fail').map((x) => [x.rule, x.code])).toEqual([
          [`images.${name}-v1.pcrs.${bank}.${idx}`, 'POLICY_PCR_MISMATCH'],
          ['images', 'POLICY_PCR_MISMATCH'],
        ]);
        changes++;
      }
    }
    expect(changes).toBeGreaterThanOrEqual(24);
  });

  it('pins the proven identity and the platform it saw', async () => {
    const f = join(dir, 'gcp.claims.json');
    writeFileSync(f, JSON.stringify(gcpAmd));
    const r = await cli(['policy', 'capture', '--claims', f]);
    expect(r.code).toBe(0);
    const p = await loadPolicyText(r.out, NOW);
    const c = p.doc.clusters.default!;
    expect(c.identity).toEqual({ gcp: { projects: ['lockboot'], zones: ['us-central1-f'], instanceNames: 'any' } });
    expect(c.tpm).toEqual({ akTrust: ['cloud-certified'], pinnedAks: 'any' });
    expect(c.platform.debug).toEqual({ forbidden: true });
    expect(c.release).toEqual({ tokenTtlSeconds: 900, extraGroups: [], allowUnsealed: false, diskKey: false, tokensPerInstance: 'one' });
    // Another project is denied by the captured policy.
    const other = clone(gcpAmd);
    other.identity.account = 'someone-else';
    expect(evaluatePolicy(p, other, undefined, NOW).rules.find((x) => x.rule === 'identity.gcp.projects')).toMatchObject({ code: 'POLICY_IDENTITY_MISMATCH' });
  });

  it('fails (exit 1) when the claims cannot name the node from proven identity', async () => {
    const f = join(dir, 'noname.json');
    writeFileSync(f, JSON.stringify({ ...gcpAmd, identity: { ...gcpAmd.identity, proven: ['account', 'zone', 'instanceId'] } }));
    const r = await cli(['policy', 'capture', '--claims', f]);
    expect(r.code).toBe(1);
    expect(r.err).toContain('CAPTURE_NOT_ADMITTED');
  });

  it('refuses a rejected verdict (exit 1), raw evidence and bad input (exit 2), and never overwrites', async () => {
    const bad = join(dir, 'rejected.json');
    writeFileSync(bad, JSON.stringify({ ok: false, claims: gcpAmd, errors: [{ code: 'NONCE_MISMATCH' }] }));
    expect(await cli(['policy', 'capture', '--evidence', bad])).toMatchObject({ code: 1 });

    const raw = join(dir, 'raw.json');
    writeFileSync(raw, JSON.stringify({ attestation: 'AAAA' }));
    const r = await cli(['policy', 'capture', '--evidence', raw]);
    expect(r.code).toBe(2);
    expect(r.err).toContain('attest-broker verify');

    const junk = join(dir, 'junk.json');
    writeFileSync(junk, '{"provider":"gcp"}');
    expect((await cli(['policy', 'capture', '--claims', junk])).code).toBe(2);
    writeFileSync(junk, 'not json');
    expect((await cli(['policy', 'capture', '--claims', junk])).code).toBe(2);
    expect((await cli(['policy', 'capture'])).code).toBe(2);
    expect((await cli(['policy', 'capture', '--claims', join(dir, 'absent.json')])).code).toBe(2);

    const good = join(dir, 'good.json');
    writeFileSync(good, JSON.stringify(gcpAmd));
    const out = join(dir, 'out.yaml');
    expect((await cli(['policy', 'capture', '--claims', good, '--out', out])).code).toBe(0);
    const first = readFileSync(out, 'utf8');
    expect((await cli(['policy', 'capture', '--claims', good, '--out', out, '--image', 'other'])).code).toBe(2);
    expect(readFileSync(out, 'utf8')).toBe(first);
  });
});

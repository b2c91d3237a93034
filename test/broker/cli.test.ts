/**
 * The `attest-broker` command as operators and scripts call it: exit codes (0 ok, 1 rejected,
 * 2 usage/config), messages that say what to fix, and `serve --dev` answering like `npm start`.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { copyFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli, spawnCli } from '../helpers/cli.js';
import { freePort } from '../helpers/ports.js';
import { describeVectors, vectorPath } from '../helpers/vectors.js';

describe('attest-broker CLI', () => {
  it('version prints JSON and exits 0', () => {
    const r = runCli(['version']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ name: 'attest-broker' });
  });

  it.each([
    [['verify'], /required option '--evidence/],
    [['verify', '--evidence', '/nonexistent.json', '--nonce', '00'], /cannot read --evidence/],
    [['frobnicate'], /unknown command/],
  ])('%j is a usage error (exit 2)', (args, re) => {
    const r = runCli(args);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(re);
  });

  it('verify refuses ambiguous bindings and unknown formats with exit 2', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cli-'));
    const ev = join(dir, 'ev.json');
    writeFileSync(ev, '{}');
    expect(runCli(['verify', '--evidence', ev, '--format', 'nope', '--nonce', '00']).stderr).toMatch(/unknown format/);
    const both = runCli(['verify', '--evidence', ev, '--format', 'tpm', '--nonce', '00', '--binding', '00']);
    expect(both.code).toBe(2);
    expect(both.stderr).toMatch(/exactly one of --binding/);
  });

  it('serve refuses an invalid config with exit 2 and says what to fix', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cli-'));
    const cfg = join(dir, 'c.yaml');
    writeFileSync(cfg, 'store:\n  url: mysql://db\nlisten:\n  prot: 1\n');
    const r = runCli(['serve', '--config', cfg]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/store\.url: must start with memory:\/\//);
    expect(r.stderr).toMatch(/listen: unknown key\(s\) "prot"/);
  });

  it('trust list shows every pinned root with its source', () => {
    const r = runCli(['trust', 'list', '--dir', '/nonexistent']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/MISSING {2}aws-nitro-root-g1 {2}sha256:641a0321/);
    expect(r.stdout).toMatch(/source: https:\/\/kdsintf\.amd\.com/);
  });

  it('serve --dev (what `npm start` runs) answers healthz 200, challenge 201 with a 32-byte nonce, readyz 200', async () => {
    const port = await freePort();
    const p = spawnCli(['serve', '--dev'], { ATTEST_BROKER_PORT: String(port) });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (out += d));
    try {
      for (let i = 0; i < 100 && !out.includes('listening'); i++) await new Promise((r) => setTimeout(r, 100));
      const base = `http://127.0.0.1:${port}`;
      expect((await fetch(`${base}/healthz`)).status).toBe(200);
      const c = await fetch(`${base}/v1/challenge`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
      expect(c.status).toBe(201);
      const { nonce } = (await c.json()) as { nonce: string };
      expect(Buffer.from(nonce, 'base64url')).toHaveLength(32);
      expect((await fetch(`${base}/readyz`)).status).toBe(200);
      expect((await fetch(`${base}/metrics`)).status).toBe(200);
    } finally {
      p.kill('SIGTERM');
      await new Promise((r) => p.once('exit', r));
    }
    expect(out).toContain('"msg":"request"');
  });
});

describeVectors('attest-broker verify on real evidence (trust installed with `trust import`)', () => {
  let trustDir = '';
  beforeAll(() => {
    // An operator's download folder: the vendors' files as published (copied to a temp dir).
    const from = mkdtempSync(join(tmpdir(), 'vendor-'));
    for (const f of ['trustee/amd-roots/milan_ask_ark_asvk.pem', 'trustee/amd-roots/genoa_ask_ark_asvk.pem', 'go-tdx-guest/trusted_root.pem']) {
      copyFileSync(vectorPath(f), join(from, f.replace(/\//g, '_')));
    }
    trustDir = mkdtempSync(join(tmpdir(), 'trust-'));
    const r = runCli(['trust', 'import', from, '--dir', trustDir]);
    expect(r.stderr).toMatch(/amd-ark-milan \(pin matches\)/);
  });

  it('az-snp-vtpm v1 verifies with its nonce at a pinned time and prints the claims (exit 0)', () => {
    const r = runCli(['verify', '--evidence', vectorPath('trustee/az-snp-vtpm/evidence-v1.json'), '--format', 'az-snp-vtpm', '--nonce', '6368616c6c656e6765', '--at', '2025-06-01T00:00:00Z', '--trust', trustDir]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const v = JSON.parse(r.stdout) as { ok: boolean; claims: { platform: { tee: string }; tpm: { pcrs: { sha256: Record<string, string> } } } };
    expect(v.ok).toBe(true);
    expect(v.claims.platform.tee).toBe('sev-snp');
    expect(v.claims.tpm.pcrs.sha256['0']).toBe('e15c44796beabf46abcec7c57e590942041e47497e4ec27571c8b7664f48dced');
  });

  it('a wrong nonce is a rejection with a code (exit 1)', () => {
    const r = runCli(['verify', '--evidence', vectorPath('trustee/az-snp-vtpm/evidence-v1.json'), '--format', 'az-snp-vtpm', '--nonce', '656e67656c6c616863', '--at', '2025-06-01T00:00:00Z', '--trust', trustDir]);
    expect(r.code).toBe(1);
    expect((JSON.parse(r.stdout) as { errors: { code: string }[] }).errors[0]!.code).toBe('NONCE_MISMATCH');
  });

  it('without the pinned roots nothing is accepted (exit 1, TRUST_ANCHOR_MISSING)', () => {
    const empty = mkdtempSync(join(tmpdir(), 'trust-empty-'));
    const r = runCli(['verify', '--evidence', vectorPath('trustee/az-tdx-vtpm/evidence-v1.json'), '--format', 'az-tdx-vtpm', '--nonce', '6368616c6c656e6765', '--at', '2025-06-01T00:00:00Z', '--trust', empty]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('TRUST_ANCHOR_MISSING');
  });
});

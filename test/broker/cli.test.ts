/**
 * The `attest-broker` command as operators and scripts call it: exit codes (0 ok, 1 rejected,
 * 2 usage/config), messages that say what to fix, and `serve --dev` answering like `npm start`.
 */
import { describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli, spawnCli } from '../helpers/cli.js';
import { freePort } from '../helpers/ports.js';

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

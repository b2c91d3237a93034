/**
 * The `attest-broker` command as operators and scripts call it: exit codes (0 ok, 1 rejected,
 * 2 usage/config), messages that say what to fix, and `serve --dev` answering like `npm start`.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli, spawnCli } from '../helpers/cli.js';
import { freePort } from '../helpers/ports.js';
import { describeVectors, vectorPath } from '../helpers/vectors.js';

describe('attest-broker CLI', () => {
  it('version prints JSON and exits 0; --version prints the version', () => {
    const r = runCli(['version']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ name: 'attest-broker' });
    const v = runCli(['--version']);
    expect(v.code).toBe(0);
    expect(v.stdout.trim()).toBe((JSON.parse(r.stdout) as { version: string }).version);
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
    expect(both.stderr).toMatch(/one of --binding HEX or --nonce HEX, not both/);
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
    expect(r.stderr).toMatch(/amd-ark-milan: took .* \(pin matches\)/);
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

/**
 * `verify` takes what the tools emit, unchanged (formats detected from the content), with the
 * roots and intermediates `trust import` installs from a directory tree of vendor files — the
 * README/docs examples, run as written.
 */
describeVectors('verify on tool output, with trust import', () => {
  let trust = '';
  beforeAll(() => {
    trust = mkdtempSync(join(tmpdir(), 'cli-trust-'));
    const r = runCli(['trust', 'import', vectorPath(''), '--dir', trust]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/google-tpm-ek-intermediate-2: took go-tpm-tools\/ca-certs\/tpm_ek_intermediate_2\.crt/);
    expect(r.stderr).toMatch(/all 11 roots and intermediates present/);
  });
  const verify = (...args: string[]) => runCli(['verify', '--trust', trust, ...args]);

  it.each([
    ['raw go-tpm-tools .pb with its nonce', ['--evidence', 'go-tpm-tools/attestations/gce-cos-85-nonce9009.pb', '--nonce', '9009'], 'gotpm'],
    ['raw go-tpm-tools .pb made without a nonce', ['--evidence', 'go-tpm-tools/attestations/gce-cos-85-no-nonce.pb', '--nonce', ''], 'gotpm'],
    ["Trustee's Azure SNP JSON (v0)", ['--evidence', 'trustee/az-snp-vtpm/evidence-v0.json', '--nonce', '6368616c6c656e6765', '--at', '2026-01-01T00:00:00Z'], 'az-snp-vtpm'],
    ["Trustee's Azure SNP JSON (v1)", ['--evidence', 'trustee/az-snp-vtpm/evidence-v1.json', '--nonce', '6368616c6c656e6765', '--at', '2026-01-01T00:00:00Z'], 'az-snp-vtpm'],
    ["Trustee's Azure TDX JSON (v1)", ['--evidence', 'trustee/az-tdx-vtpm/evidence-v1.json', '--nonce', '6368616c6c656e6765', '--at', '2026-01-01T00:00:00Z'], 'az-tdx-vtpm'],
    ['the vaportpm NitroTPM fixture (hex document + quote)', ['--evidence', 'vaportpm/test-nitro-fixture.json', '--nonce', '230af3f7c0ec43ccf99a4cab47ac61469a36ea74b1e79740fdf8ccfc8f56161a', '--at', '2026-02-03T11:00:00Z'], 'nitrotpm'],
  ])('accepts %s', (_name, args, format) => {
    const ev = args.indexOf('--evidence');
    args[ev + 1] = vectorPath(args[ev + 1]!);
    const r = verify(...args);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: true, format });
    expect(r.stderr).toMatch(new RegExp(`→ format ${format}`));
  });

  it('the legacy .pb needs the Google intermediate: refused without it, accepted with --intermediates', () => {
    const rootsOnly = mkdtempSync(join(tmpdir(), 'cli-roots-'));
    copyFileSync(join(trust, 'google-tpm-ek-root-1.pem'), join(rootsOnly, 'google-tpm-ek-root-1.pem'));
    const pb = vectorPath('go-tpm-tools/attestations/gce-cos-85-nonce9009.pb');
    const no = runCli(['verify', '--trust', rootsOnly, '--evidence', pb, '--nonce', '9009']);
    expect(no.code).toBe(1);
    expect(JSON.parse(no.stdout).errors[0].code).toBe('CHAIN_UNTRUSTED');
    const yes = runCli(['verify', '--trust', rootsOnly, '--evidence', pb, '--nonce', '9009', '--intermediates', join(trust, 'google-tpm-ek-intermediate-2.intermediates.pem')]);
    expect(yes.code, yes.stdout).toBe(0);
  });

  it('a wrong nonce is a rejection with its code, and --format that contradicts the content is a usage error', () => {
    const pb = vectorPath('go-tpm-tools/attestations/gce-cos-85-nonce9009.pb');
    const wrong = verify('--evidence', pb, '--nonce', '9010');
    expect(wrong.code).toBe(1);
    expect(JSON.parse(wrong.stdout).errors[0].code).toBe('NONCE_MISMATCH');
    const contradict = verify('--evidence', pb, '--nonce', '9009', '--format', 'nitrotpm');
    expect(contradict.code).toBe(2);
    expect(contradict.stderr).toMatch(/not --format nitrotpm/);
  });

  it('hex and base64 of a NitroTPM document are detected too', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cli-doc-'));
    const fixture = JSON.parse(readFileSync(vectorPath('vaportpm/test-nitro-fixture.json'), 'utf8')) as { attestation: { nitro: { document: string } } };
    const hex = join(dir, 'doc.hex');
    writeFileSync(hex, fixture.attestation.nitro.document + '\n');
    const b64 = join(dir, 'doc.b64');
    writeFileSync(b64, Buffer.from(fixture.attestation.nitro.document, 'hex').toString('base64'));
    const raw = join(dir, 'doc.cose');
    writeFileSync(raw, Buffer.from(fixture.attestation.nitro.document, 'hex'));
    for (const f of [hex, b64, raw]) {
      const r = verify('--evidence', f, '--nonce', '230af3f7c0ec43ccf99a4cab47ac61469a36ea74b1e79740fdf8ccfc8f56161a', '--at', '2026-02-03T11:00:00Z');
      expect(r.code, `${f}: ${r.stdout}${r.stderr}`).toBe(0);
      expect(r.stderr).toMatch(/COSE_Sign1/);
    }
  });

  it('trust import walks the tree and names what is missing', () => {
    const empty = mkdtempSync(join(tmpdir(), 'cli-empty-'));
    const r = runCli(['trust', 'import', empty, '--dir', mkdtempSync(join(tmpdir(), 'cli-t-'))]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/intel-sgx-root-ca: missing: no file under .* holds a certificate with SHA-256 44a0196b.* \(download it from https:\/\/certificates\.trustedservices\.intel\.com/);
  });

  it('trust fetch says why a download failed', () => {
    const r = runCli(['trust', 'fetch', '--dir', mkdtempSync(join(tmpdir(), 'cli-f-')), '--only', 'intel-sgx-root-ca']);
    expect(r.code).toBe(1);
    // This machine has no route to Intel: the cause (DNS or connect) is shown, not just "fetch failed".
    expect(r.stderr).toMatch(/intel-sgx-root-ca: FAILED: cannot reach certificates\.trustedservices\.intel\.com: fetch failed: .+/);
  });
});

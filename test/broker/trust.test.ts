/**
 * `trust fetch` against a local HTTP server standing in for the vendors' URLs (the official URLs
 * are mapped to it by the injected fetch; the served bytes are the real roots from the vectors,
 * including a ZIP built the way AWS publishes its root), and `trust import` for air-gapped hosts.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createServer, type Server } from 'node:http';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, writeFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BUILTIN_INTERMEDIATES, BUILTIN_PINS, PinIds } from '../../providers/common/pins.js';
import { fetchTrust, importTrust } from '../../broker/trust/fetch.node.js';
import { loadTrustStore } from '../../broker/trust/store.node.js';
import { parseConfig } from '../../broker/config/schema.js';
import { describeVectors, readVector, rootVectorFile, vectorPath } from '../helpers/vectors.js';

/** Where each pinned intermediate sits in the vectors (go-tpm-tools ships them as it embeds them). */
const INTERMEDIATE_FILES: Record<string, string> = {
  'google-tpm-ek-intermediate-2': 'go-tpm-tools/ca-certs/tpm_ek_intermediate_2.crt',
  'google-tpm-ek-intermediate-3': 'go-tpm-tools/ca-certs/tpm_ek_intermediate_3.crt',
};

describeVectors('trust fetch / import', () => {
  let server: Server;
  let base = '';
  let zipPath = '';
  let tamper = false;
  beforeAll(async () => {
    const work = mkdtempSync(join(tmpdir(), 'zip-'));
    copyFileSync(vectorPath(rootVectorFile(PinIds.AWS_NITRO_ROOT_G1)), join(work, 'root.pem'));
    zipPath = join(work, 'AWS_NitroEnclaves_Root-G1.zip');
    execFileSync('python3', ['-c', `import zipfile;z=zipfile.ZipFile(${JSON.stringify(zipPath)},'w',zipfile.ZIP_DEFLATED);z.write(${JSON.stringify(join(work, 'root.pem'))},'root.pem');z.close()`]);
    server = createServer((req, res) => {
      const inter = BUILTIN_INTERMEDIATES.find((p) => new URL(p.source).pathname === req.url);
      if (inter) return void res.writeHead(200).end(readVector(INTERMEDIATE_FILES[inter.id]!));
      const pin = BUILTIN_PINS.find((p) => new URL(p.source).pathname === req.url);
      if (!pin) return void res.writeHead(404).end();
      let body = pin.format === 'zip-pem' ? new Uint8Array(execFileSync('cat', [zipPath])) : readVector(rootVectorFile(pin.id));
      if (tamper && pin.id === PinIds.INTEL_SGX_ROOT) body = readVector(rootVectorFile(PinIds.AWS_NITRO_ROOT_G1));
      res.writeHead(200).end(body);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const a = server.address();
    base = `http://127.0.0.1:${typeof a === 'object' && a ? a.port : 0}`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  // The official URL's path is kept; only the host is redirected to the local server.
  const localFetch: typeof fetch = (input, init) => fetch(base + new URL(String(input)).pathname, init);

  it('fetches every root, checks each pin, writes <id>.pem, and the broker loads them', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'trust-'));
    const lines: string[] = [];
    const r = await fetchTrust({ dir, fetch: localFetch, progress: (l) => lines.push(l) });
    expect(r.filter((x) => !x.ok)).toEqual([]);
    expect(r).toHaveLength(BUILTIN_PINS.length + BUILTIN_INTERMEDIATES.length);
    expect(readdirSync(dir).filter((f) => !f.endsWith('.intermediates.pem')).sort()).toEqual(BUILTIN_PINS.map((p) => `${p.id}.pem`).sort());
    // AMD's cert_chain brings the ASK and ASVK: kept as intermediates (never as roots).
    expect(readdirSync(dir)).toContain('amd-ark-milan.intermediates.pem');
    // The pinned Google intermediates legacy GCE attestations need.
    for (const p of BUILTIN_INTERMEDIATES) expect(readdirSync(dir)).toContain(`${p.id}.intermediates.pem`);
    expect(lines.filter((l) => l.includes('matches the pin'))).toHaveLength(BUILTIN_PINS.length + BUILTIN_INTERMEDIATES.length);
    const store = await loadTrustStore(parseConfig({ trust: { dir } }).trust);
    expect([...store.ids()].sort()).toEqual(BUILTIN_PINS.map((p) => p.id).sort());
  });

  it('a download whose hash is not the pin is refused and not written', async () => {
    tamper = true;
    try {
      const dir = mkdtempSync(join(tmpdir(), 'trust-'));
      const r = await fetchTrust({ dir, fetch: localFetch, pins: BUILTIN_PINS.filter((p) => p.id === PinIds.INTEL_SGX_ROOT) });
      expect(r[0]!.ok).toBe(false);
      expect(r[0]!.error).toMatch(/pin/);
      expect(readdirSync(dir)).toEqual([]);
    } finally {
      tamper = false;
    }
  });

  it('network failures are reported per root with what to do', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'trust-'));
    const r = await fetchTrust({ dir, fetch: () => Promise.reject(new TypeError('fetch failed', { cause: Object.assign(new Error('connect ECONNREFUSED 1.2.3.4:443'), { code: 'ECONNREFUSED' }) })), pins: BUILTIN_PINS.slice(0, 1) });
    expect(r[0]).toMatchObject({ ok: false, error: 'cannot reach kdsintf.amd.com: fetch failed: connect ECONNREFUSED 1.2.3.4:443' });
  });

  it('import takes matching certificates from any files in a directory (air-gapped)', async () => {
    const from = mkdtempSync(join(tmpdir(), 'vendor-'));
    for (const p of BUILTIN_PINS) {
      if (p.format === 'zip-pem') copyFileSync(zipPath, join(from, 'aws.zip'));
      else copyFileSync(vectorPath(rootVectorFile(p.id)), join(from, `${p.id}-download.bin`));
    }
    // Nested folders are walked.
    mkdirSync(join(from, 'google', 'intermediates'), { recursive: true });
    for (const p of BUILTIN_INTERMEDIATES) copyFileSync(vectorPath(INTERMEDIATE_FILES[p.id]!), join(from, 'google', 'intermediates', `${p.id}.crt`));
    writeFileSync(join(from, 'README.txt'), 'not a certificate');
    const dir = mkdtempSync(join(tmpdir(), 'trust-'));
    const r = await importTrust({ from, dir });
    expect(r.filter((x) => !x.ok)).toEqual([]);
    expect(readdirSync(dir).filter((f) => !f.endsWith('.intermediates.pem'))).toHaveLength(BUILTIN_PINS.length);
  });
});

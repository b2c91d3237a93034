/**
 * `trust fetch` against a local HTTP server standing in for the vendors' URLs (the official URLs
 * are mapped to it by the injected fetch; the served bytes are the real roots from the vectors,
 * including a ZIP built the way AWS publishes its root), and `trust import` for air-gapped hosts.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createServer, type Server } from 'node:http';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, writeFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BUILTIN_PINS, PinIds } from '../../providers/common/pins.js';
import { fetchTrust, importTrust } from '../../broker/trust/fetch.node.js';
import { loadTrustStore } from '../../broker/trust/store.node.js';
import { parseConfig } from '../../broker/config/schema.js';
import { describeVectors, readVector, rootVectorFile, vectorPath } from '../helpers/vectors.js';

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
    expect(r.every((x) => x.ok)).toBe(true);
    expect(readdirSync(dir).sort()).toEqual(BUILTIN_PINS.map((p) => `${p.id}.pem`).sort());
    expect(lines.filter((l) => l.includes('matches the pin'))).toHaveLength(BUILTIN_PINS.length);
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
    const r = await fetchTrust({ dir, fetch: () => Promise.reject(new Error('ECONNREFUSED')), pins: BUILTIN_PINS.slice(0, 1) });
    expect(r[0]).toMatchObject({ ok: false, error: 'ECONNREFUSED' });
  });

  it('import takes matching certificates from any files in a directory (air-gapped)', async () => {
    const from = mkdtempSync(join(tmpdir(), 'vendor-'));
    for (const p of BUILTIN_PINS) {
      if (p.format === 'zip-pem') copyFileSync(zipPath, join(from, 'aws.zip'));
      else copyFileSync(vectorPath(rootVectorFile(p.id)), join(from, `${p.id}-download.bin`));
    }
    writeFileSync(join(from, 'README.txt'), 'not a certificate');
    const dir = mkdtempSync(join(tmpdir(), 'trust-'));
    const r = await importTrust({ from, dir });
    expect(r.filter((x) => !x.ok)).toEqual([]);
    expect(readdirSync(dir)).toHaveLength(BUILTIN_PINS.length);
  });
});

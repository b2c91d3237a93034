/**
 * @module broker/trust/fetch.node
 *
 * `attest-broker trust fetch` and `trust import`: get the pinned roots onto the host.
 *
 * - fetch: downloads each built-in root from its vendor's official URL (providers/common/pins.ts)
 *   through an injected `fetch`, extracts the certificate (DER, PEM bundle, or the ZIP AWS
 *   publishes), checks the SHA-256 pin and writes `<dir>/<pin-id>.pem`. A mismatch is an error,
 *   never a warning: the file is not written.
 * - import: for air-gapped sites; scans a directory of certificate files (any names, DER or PEM,
 *   bundles allowed, .zip as AWS ships it), keeps each certificate whose hash equals a pin.
 * Progress goes to `progress` (stderr in the CLI), one line per root.
 */
import { mkdir, readFile, readdir, writeFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { inflateRawSync } from 'node:zlib';
import { BUILTIN_PINS, type Pin } from '../../providers/common/pins.js';
import { anchorFromBytes } from '../../providers/common/trust.js';
import { certDer, fingerprint, parseCertificate, parsePemCertificates, x509, type Certificate } from '../../providers/common/x509.js';
import { toBase64 } from '../../providers/common/encoding.js';

export interface TrustResult {
  id: string;
  ok: boolean;
  file?: string;
  error?: string;
}

function toPem(c: Certificate): string {
  const b64 = toBase64(certDer(c)).replace(/(.{64})/g, '$1\n').replace(/\n$/, '');
  return `-----BEGIN CERTIFICATE-----\n${b64}\n-----END CERTIFICATE-----\n`;
}

/** Minimal ZIP reader (local file headers; stored or deflated entries), for AWS's root archive. */
export function unzipEntries(buf: Uint8Array, maxEntries = 16, maxSize = 1 << 20): { name: string; data: Uint8Array }[] {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const out: { name: string; data: Uint8Array }[] = [];
  let p = 0;
  while (p + 30 <= buf.length && dv.getUint32(p, true) === 0x04034b50) {
    if (out.length >= maxEntries) throw new Error('zip: too many entries');
    const flags = dv.getUint16(p + 6, true);
    const method = dv.getUint16(p + 8, true);
    const csize = dv.getUint32(p + 18, true);
    const nlen = dv.getUint16(p + 26, true);
    const xlen = dv.getUint16(p + 28, true);
    if (flags & 0x08) throw new Error('zip: streamed entries (data descriptor) are not supported');
    const start = p + 30 + nlen + xlen;
    if (start + csize > buf.length || csize > maxSize) throw new Error('zip: entry exceeds the archive');
    const name = new TextDecoder().decode(buf.subarray(p + 30, p + 30 + nlen));
    const raw = buf.subarray(start, start + csize);
    let data: Uint8Array;
    if (method === 0) data = raw.slice();
    else if (method === 8) data = new Uint8Array(inflateRawSync(raw, { maxOutputLength: maxSize }));
    else throw new Error(`zip: compression method ${method} is not supported`);
    out.push({ name, data });
    p = start + csize;
  }
  if (out.length === 0) throw new Error('not a zip archive');
  return out;
}

/**
 * Keeps the other CA certificates that came with a root (AMD's cert_chain holds the ASK/ASVK
 * beside the ARK) as `<id>.intermediates.pem`, so offline verification has them. They are
 * intermediates only: every use still validates them up to the pinned root.
 */
async function saveIntermediates(dir: string, id: string, certs: readonly Certificate[], rootSha256: string): Promise<void> {
  const others: Certificate[] = [];
  for (const c of certs) {
    const ca = c.getExtension(x509.BasicConstraintsExtension)?.ca === true;
    if (ca && (await fingerprint(c)) !== rootSha256) others.push(c);
  }
  if (others.length) await writeAtomic(join(dir, `${id}.intermediates.pem`), others.map(toPem).join(''));
}

async function writeAtomic(path: string, text: string): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  await writeFile(tmp, text, { mode: 0o644 });
  await rename(tmp, path);
}

function certsIn(bytes: Uint8Array, name: string): Certificate[] {
  if (bytes[0] === 0x50 && bytes[1] === 0x4b) return unzipEntries(bytes).flatMap((e) => certsIn(e.data, `${name}:${e.name}`));
  const text = new TextDecoder().decode(bytes.subarray(0, Math.min(bytes.length, 1 << 20)));
  if (text.includes('-----BEGIN CERTIFICATE-----')) return parsePemCertificates(text, name, 64);
  return [parseCertificate(bytes, name)];
}

export async function fetchTrust(o: {
  dir: string;
  fetch: typeof fetch;
  pins?: readonly Pin[];
  progress?: (line: string) => void;
  timeoutMs?: number;
}): Promise<TrustResult[]> {
  const pins = o.pins ?? BUILTIN_PINS;
  const say = o.progress ?? (() => {});
  await mkdir(o.dir, { recursive: true });
  const results: TrustResult[] = [];
  let i = 0;
  for (const pin of pins) {
    i++;
    say(`[${i}/${pins.length}] ${pin.id}: fetching ${pin.source}`);
    try {
      const res = await o.fetch(pin.source, { signal: AbortSignal.timeout(o.timeoutMs ?? 30_000), redirect: 'follow' });
      if (!res.ok) throw new Error(`HTTP ${res.status} from ${pin.source}`);
      const bytes = new Uint8Array(await res.arrayBuffer());
      let payload: Uint8Array = bytes;
      if (pin.format === 'zip-pem') {
        const pem = unzipEntries(bytes).find((e) => /\.pem$/i.test(e.name));
        if (!pem) throw new Error('the archive holds no .pem file');
        payload = pem.data;
      }
      const a = await anchorFromBytes(pin, payload);
      const file = join(o.dir, `${pin.id}.pem`);
      await writeAtomic(file, toPem(a.cert));
      await saveIntermediates(o.dir, pin.id, certsIn(payload, pin.id), a.sha256);
      say(`[${i}/${pins.length}] ${pin.id}: ok, SHA-256 ${a.sha256} matches the pin → ${file}`);
      results.push({ id: pin.id, ok: true, file });
    } catch (e) {
      const error = e instanceof Error ? e.message : String(e);
      say(`[${i}/${pins.length}] ${pin.id}: FAILED: ${error}`);
      results.push({ id: pin.id, ok: false, error });
    }
  }
  return results;
}

export async function importTrust(o: { from: string; dir: string; pins?: readonly Pin[]; progress?: (l: string) => void }): Promise<TrustResult[]> {
  const pins = o.pins ?? BUILTIN_PINS;
  const say = o.progress ?? (() => {});
  const byFp = new Map(pins.map((p) => [p.sha256, p]));
  const found = new Map<string, Certificate>();
  const siblings = new Map<string, Certificate[]>();
  for (const name of (await readdir(o.from)).sort()) {
    let certs: Certificate[];
    try {
      certs = certsIn(new Uint8Array(await readFile(join(o.from, name))), name);
    } catch {
      say(`skip ${name}: no certificate in it`);
      continue;
    }
    for (const c of certs) {
      const pin = byFp.get(await fingerprint(c));
      if (pin && !found.has(pin.id)) {
        found.set(pin.id, c);
        siblings.set(pin.id, certs);
        say(`${name}: ${pin.id} (pin matches)`);
      }
    }
  }
  await mkdir(o.dir, { recursive: true });
  const results: TrustResult[] = [];
  for (const pin of pins) {
    const c = found.get(pin.id);
    if (!c) {
      results.push({ id: pin.id, ok: false, error: `no certificate in ${o.from} matches the pin ${pin.sha256}` });
      continue;
    }
    const file = join(o.dir, `${pin.id}.pem`);
    await writeAtomic(file, toPem(c));
    await saveIntermediates(o.dir, pin.id, siblings.get(pin.id) ?? [], pin.sha256);
    results.push({ id: pin.id, ok: true, file });
  }
  return results;
}

/**
 * @module broker/trust/fetch.node
 *
 * `attest-broker trust fetch` and `trust import`: get the pinned roots onto the host.
 *
 * - fetch: downloads each built-in root from its vendor's official URL (providers/common/pins.ts)
 *   through an injected `fetch`, extracts the certificate (DER, PEM bundle, or the ZIP AWS
 *   publishes), checks the SHA-256 pin and writes `<dir>/<pin-id>.pem`. A mismatch is an error,
 *   never a warning: the file is not written.
 * - import: for air-gapped sites; walks a directory tree of certificate files (any names, DER or
 *   PEM, bundles allowed, .zip as AWS ships it), keeps each certificate whose hash equals a pin,
 *   and lists what it took and what is still missing.
 * Both also install the pinned intermediates (BUILTIN_INTERMEDIATES) as `<id>.intermediates.pem`.
 * Progress goes to `progress` (stderr in the CLI), one line per root.
 */
import { mkdir, readFile, readdir, writeFile, rename } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { inflateRawSync } from 'node:zlib';
import { BUILTIN_INTERMEDIATES, BUILTIN_PINS, type IntermediatePin, type Pin } from '../../providers/common/pins.js';
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
  const seen = new Set<string>([rootSha256]);
  for (const c of certs) {
    const ca = c.getExtension(x509.BasicConstraintsExtension)?.ca === true;
    const fp = await fingerprint(c);
    if (ca && !seen.has(fp)) others.push(c);
    seen.add(fp);
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

/** An error with its causes, e.g. "fetch failed: getaddrinfo ENOTFOUND kdsintf.amd.com". */
export function describeError(e: unknown): string {
  const parts: string[] = [];
  let cur: unknown = e;
  for (let i = 0; i < 4 && cur; i++) {
    if (cur instanceof Error) {
      const code = (cur as { code?: unknown }).code;
      const msg = cur.message || String(code ?? cur.name);
      if (!parts.some((p) => p.includes(msg))) parts.push(typeof code === 'string' && !msg.includes(code) ? `${msg} (${code})` : msg);
      cur = (cur as { cause?: unknown }).cause;
    } else {
      parts.push(String(cur));
      break;
    }
  }
  return parts.join(': ');
}

/** What `trust fetch|import` installs: the roots, then the pinned intermediates. */
type Item = { kind: 'root'; pin: Pin } | { kind: 'intermediate'; pin: IntermediatePin };

function itemsFor(pins: readonly Pin[], intermediates: readonly IntermediatePin[]): Item[] {
  return [...pins.map((pin) => ({ kind: 'root' as const, pin })), ...intermediates.map((pin) => ({ kind: 'intermediate' as const, pin }))];
}

/**
 * Writes the certificate of `item` found among `certs` (checked against its pin): a root as
 * `<id>.pem` with the other CA certificates beside it as intermediates, an intermediate as
 * `<id>.intermediates.pem`.
 */
async function install(dir: string, item: Item, certs: readonly Certificate[], name: string): Promise<string> {
  let cert: Certificate | undefined;
  for (const c of certs) if ((await fingerprint(c)) === item.pin.sha256) cert = c;
  if (!cert) throw new Error(`no certificate in ${name} has the pinned SHA-256 ${item.pin.sha256}`);
  if (item.kind === 'root') {
    const a = await anchorFromBytes(item.pin, certDer(cert));
    const file = join(dir, `${item.pin.id}.pem`);
    await writeAtomic(file, toPem(a.cert));
    await saveIntermediates(dir, item.pin.id, certs, a.sha256);
    return file;
  }
  const file = join(dir, `${item.pin.id}.intermediates.pem`);
  await writeAtomic(file, toPem(cert));
  return file;
}

export async function fetchTrust(o: {
  dir: string;
  fetch: typeof fetch;
  pins?: readonly Pin[];
  intermediates?: readonly IntermediatePin[];
  progress?: (line: string) => void;
  timeoutMs?: number;
}): Promise<TrustResult[]> {
  const items = itemsFor(o.pins ?? BUILTIN_PINS, o.intermediates ?? (o.pins ? [] : BUILTIN_INTERMEDIATES));
  const say = o.progress ?? (() => {});
  await mkdir(o.dir, { recursive: true });
  const results: TrustResult[] = [];
  let i = 0;
  for (const item of items) {
    const { pin } = item;
    i++;
    const tag = `[${i}/${items.length}] ${pin.id}${item.kind === 'intermediate' ? ' (intermediate)' : ''}`;
    say(`${tag}: fetching ${pin.source}`);
    try {
      let res: Response;
      try {
        res = await o.fetch(pin.source, { signal: AbortSignal.timeout(o.timeoutMs ?? 30_000), redirect: 'follow' });
      } catch (e) {
        throw new Error(`cannot reach ${new URL(pin.source).host}: ${describeError(e)}`, { cause: e });
      }
      if (!res.ok) throw new Error(`HTTP ${res.status} from ${pin.source}`);
      const bytes = new Uint8Array(await res.arrayBuffer());
      let payload: Uint8Array = bytes;
      if (pin.format === 'zip-pem') {
        const pem = unzipEntries(bytes).find((e) => /\.pem$/i.test(e.name));
        if (!pem) throw new Error('the archive holds no .pem file');
        payload = pem.data;
      }
      const file = await install(o.dir, item, certsIn(payload, pin.id), pin.id);
      say(`${tag}: ok, SHA-256 ${pin.sha256} matches the pin → ${file}`);
      results.push({ id: pin.id, ok: true, file });
    } catch (e) {
      const error = describeError(e);
      say(`${tag}: FAILED: ${error}`);
      results.push({ id: pin.id, ok: false, error });
    }
  }
  return results;
}

/** Files under `root`, depth-first, sorted, at most `max` (symbolic links are not followed). */
async function walk(root: string, max = 10_000, depth = 8): Promise<string[]> {
  const out: string[] = [];
  const visit = async (dir: string, d: number): Promise<void> => {
    if (d > depth) return;
    for (const e of (await readdir(dir, { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name))) {
      if (out.length >= max) return;
      const p = join(dir, e.name);
      if (e.isDirectory()) await visit(p, d + 1);
      else if (e.isFile()) out.push(p);
    }
  };
  await visit(root, 0);
  return out;
}

/**
 * Air-gapped install: walks `from` recursively (any file names, DER/PEM/bundles/.zip), keeps each
 * certificate whose SHA-256 equals a pin, and reports per pin what it took (from which file) and
 * what is still missing.
 */
export async function importTrust(o: {
  from: string;
  dir: string;
  pins?: readonly Pin[];
  intermediates?: readonly IntermediatePin[];
  progress?: (l: string) => void;
}): Promise<TrustResult[]> {
  const items = itemsFor(o.pins ?? BUILTIN_PINS, o.intermediates ?? (o.pins ? [] : BUILTIN_INTERMEDIATES));
  const say = o.progress ?? (() => {});
  const byFp = new Map(items.map((it) => [it.pin.sha256, it]));
  const found = new Map<string, { certs: Certificate[]; name: string }>();
  const files = await walk(o.from);
  say(`scanning ${files.length} file(s) under ${o.from}`);
  for (const path of files) {
    const name = relative(o.from, path);
    let certs: Certificate[];
    try {
      certs = certsIn(new Uint8Array(await readFile(path)), name);
    } catch {
      continue; // not a certificate file
    }
    for (const c of certs) {
      const it = byFp.get(await fingerprint(c));
      if (!it) continue;
      const have = found.get(it.pin.id);
      // A root may come in several bundles (AMD: ARK+ASK in one, ARK+ASVK in another): keep
      // every CA certificate that came with it, as intermediates.
      if (have) have.certs.push(...certs);
      else found.set(it.pin.id, { certs: [...certs], name });
    }
  }
  await mkdir(o.dir, { recursive: true });
  const results: TrustResult[] = [];
  for (const item of items) {
    const f = found.get(item.pin.id);
    if (!f) {
      const error = `missing: no file under ${o.from} holds a certificate with SHA-256 ${item.pin.sha256} (download it from ${item.pin.source})`;
      say(`${item.pin.id}: ${error}`);
      results.push({ id: item.pin.id, ok: false, error });
      continue;
    }
    try {
      const file = await install(o.dir, item, f.certs, f.name);
      say(`${item.pin.id}: took ${f.name} (pin matches) → ${file}`);
      results.push({ id: item.pin.id, ok: true, file });
    } catch (e) {
      const error = describeError(e);
      say(`${item.pin.id}: FAILED: ${error}`);
      results.push({ id: item.pin.id, ok: false, error });
    }
  }
  return results;
}

/**
 * @module providers/common/canonical
 *
 * Canonical JSON (RFC 8785-style: sorted keys, no whitespace) and its SHA-256, so the same
 * evidence always yields the same audit hash however the node formatted it.
 */
import { sha256HexOfText, sha256TextHasher, type TextHasher } from './digest.js';

export function canonicalJson(v: unknown): string {
  // One string built in place (no per-level arrays of parts): this runs over every request's
  // evidence, tens of kilobytes of base64 for some formats.
  let text = '';
  const pending = feed({ update: (t) => void (text += t) }, '', v);
  return text + pending;
}

/**
 * SHA-256 (lower-case hex) of `canonicalJson(v)`'s UTF-8 bytes. Where the runtime hashes
 * incrementally the canonical text is never built: small tokens are gathered and fed in pieces,
 * and a long string that JSON would not escape (printable ASCII without `"` or `\` — every
 * base64 or hex field) goes to the hash as it is, without the copy JSON.stringify makes of it.
 * That is most of an evidence document: 39 KB of base64 for a go-tpm-tools attestation.
 */
export async function canonicalSha256(v: unknown): Promise<string> {
  const h = sha256TextHasher();
  if (!h) return sha256HexOfText(canonicalJson(v));
  h.update(feed(h, '', v));
  return h.hex();
}

/** Long strings are worth a separate update; JSON.stringify would copy them to quote them. */
const LONG = 512;
const UNESCAPED = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;

/**
 * Appends `v`'s canonical text to `out`; long strings (and what precedes them) go to `h` at once.
 * Returns the text still pending, which the caller hands to `h` last.
 */
function feed(h: Pick<TextHasher, 'update'>, out: string, v: unknown): string {
  if (typeof v === 'string' && v.length >= LONG) {
    if (UNESCAPED.test(v)) {
      h.update(`${out}"`);
      h.update(v);
      return '"';
    }
    h.update(out);
    h.update(JSON.stringify(v));
    return '';
  }
  if (v === null || typeof v === 'number' || typeof v === 'boolean' || typeof v === 'string') return out + JSON.stringify(v);
  if (Array.isArray(v)) {
    out += '[';
    for (let i = 0; i < v.length; i++) out = feed(h, i === 0 ? out : out + ',', v[i]);
    return out + ']';
  }
  if (typeof v === 'object') {
    const o = v as Record<string, unknown>;
    const keys = Object.keys(o).sort();
    out += '{';
    let first = true;
    for (const k of keys) {
      const x = o[k];
      if (x === undefined) continue;
      out = feed(h, `${first ? out : out + ','}${JSON.stringify(k)}:`, x);
      first = false;
    }
    return out + '}';
  }
  throw new TypeError(`cannot canonicalize a ${typeof v}`);
}

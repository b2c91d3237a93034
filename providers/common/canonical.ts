/**
 * @module providers/common/canonical
 *
 * Canonical JSON (RFC 8785-style: sorted keys, no whitespace) and its SHA-256, so the same
 * evidence always yields the same audit hash however the node formatted it.
 */
import { sha256HexOfText } from './digest.js';

export function canonicalJson(v: unknown): string {
  // One string built in place (no per-level arrays of parts): this runs over every request's
  // evidence, tens of kilobytes of base64 for some formats.
  return append('', v);
}

/**
 * From this length on, a string JSON would not escape (printable ASCII without `"` or `\`:
 * every base64 and hex field) is quoted as it is: JSON.stringify would copy it to check each
 * character (~50 µs for the 39 KB of base64 of a go-tpm-tools attestation on Node 20), and
 * the test is a third of that. Shorter strings are not worth the extra test.
 */
const LONG = 512;
const UNESCAPED = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;

function append(out: string, v: unknown): string {
  if (typeof v === 'string') return out + (v.length >= LONG && UNESCAPED.test(v) ? `"${v}"` : JSON.stringify(v));
  if (v === null || typeof v === 'number' || typeof v === 'boolean') return out + JSON.stringify(v);
  if (Array.isArray(v)) {
    out += '[';
    for (let i = 0; i < v.length; i++) out = append(i === 0 ? out : out + ',', v[i]);
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
      out = append(`${first ? out : out + ','}${JSON.stringify(k)}:`, x);
      first = false;
    }
    return out + '}';
  }
  throw new TypeError(`cannot canonicalize a ${typeof v}`);
}

export async function canonicalSha256(v: unknown): Promise<string> {
  return sha256HexOfText(canonicalJson(v));
}

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

function append(out: string, v: unknown): string {
  if (v === null || typeof v === 'number' || typeof v === 'boolean' || typeof v === 'string') return out + JSON.stringify(v);
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

/**
 * @module providers/common/canonical
 *
 * Canonical JSON (RFC 8785-style: sorted keys, no whitespace) and its SHA-256, so the same
 * evidence always yields the same audit hash however the node formatted it.
 */
import { sha256 } from './digest.js';
import { toHex, utf8 } from './encoding.js';

export function canonicalJson(v: unknown): string {
  if (v === null || typeof v === 'number' || typeof v === 'boolean' || typeof v === 'string') {
    return JSON.stringify(v);
  }
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (typeof v === 'object') {
    const o = v as Record<string, unknown>;
    const keys = Object.keys(o)
      .filter((k) => o[k] !== undefined)
      .sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`).join(',')}}`;
  }
  throw new TypeError(`cannot canonicalize a ${typeof v}`);
}

export async function canonicalSha256(v: unknown): Promise<string> {
  return toHex(await sha256(utf8(canonicalJson(v))));
}

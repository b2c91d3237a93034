/**
 * @module providers/common/encoding
 *
 * Strict text encodings for binary fields. Every decoder rejects anything that is not exactly
 * its alphabet (no whitespace, no mixed alphabets, no stray padding) with `BAD_ENCODING`, so
 * two different strings never decode to the same bytes and the evidence hash stays canonical.
 */
import { malformed, CommonCodes } from './errors.js';

const HEX_RE = /^(?:[0-9a-fA-F]{2})*$/;
const B64URL_RE = /^[A-Za-z0-9_-]*$/;
const B64STD_RE = /^[A-Za-z0-9+/]*={0,2}$/;

export function toHex(b: Uint8Array): string {
  let s = '';
  for (const x of b) s += x.toString(16).padStart(2, '0');
  return s;
}

export function fromHex(s: string, what = 'hex'): Uint8Array {
  if (!HEX_RE.test(s)) throw malformed(CommonCodes.BAD_ENCODING, `${what} is not valid hex`);
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = Number.parseInt(s.slice(2 * i, 2 * i + 2), 16);
  return out;
}

function b64decodeCore(std: string, what: string): Uint8Array {
  // atob is a Web API (Node and Workers); it accepts missing padding for length%4 != 1.
  if (std.length % 4 === 1) throw malformed(CommonCodes.BAD_ENCODING, `${what} has an impossible base64 length`);
  let bin: string;
  try {
    bin = atob(std);
  } catch (cause) {
    throw malformed(CommonCodes.BAD_ENCODING, `${what} is not valid base64`, { cause });
  }
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  // Reject non-canonical encodings (non-zero pad bits): re-encode and compare.
  const again = toBase64(out).replace(/=+$/, '');
  if (again !== std.replace(/=+$/, '')) {
    throw malformed(CommonCodes.BAD_ENCODING, `${what} is not canonical base64`);
  }
  return out;
}

/** Base64url without padding (the protocol's default for binary fields). */
export function fromBase64Url(s: string, what = 'base64url'): Uint8Array {
  if (!B64URL_RE.test(s)) throw malformed(CommonCodes.BAD_ENCODING, `${what} is not base64url (unpadded)`);
  return b64decodeCore(s.replace(/-/g, '+').replace(/_/g, '/'), what);
}

/**
 * Either standard (optionally padded) or URL-safe base64, for formats reused from other tools
 * (`attestation`, `document`). Mixing the two alphabets in one string is rejected.
 */
export function fromBase64Any(s: string, what = 'base64'): Uint8Array {
  if (B64URL_RE.test(s)) return fromBase64Url(s, what);
  if (B64STD_RE.test(s) && (s.length % 4 === 0 || !s.includes('='))) return b64decodeCore(s, what);
  throw malformed(CommonCodes.BAD_ENCODING, `${what} is not valid base64`);
}

export function toBase64(b: Uint8Array): string {
  let bin = '';
  for (let i = 0; i < b.length; i += 0x8000) bin += String.fromCharCode(...b.subarray(i, i + 0x8000));
  return btoa(bin);
}

export function toBase64Url(b: Uint8Array): string {
  return toBase64(b).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

const enc = new TextEncoder();
export function utf8(s: string): Uint8Array {
  return enc.encode(s);
}
export function fromUtf8(b: Uint8Array, what = 'utf-8 text'): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(b);
  } catch (cause) {
    throw malformed(CommonCodes.BAD_ENCODING, `${what} is not valid UTF-8`, { cause });
  }
}

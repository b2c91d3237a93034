/**
 * @module providers/common/encoding
 *
 * Strict text encodings for binary fields. Every decoder rejects anything that is not exactly
 * its alphabet (no whitespace, no mixed alphabets, no stray padding) with `BAD_ENCODING`, so
 * two different strings never decode to the same bytes and the evidence hash stays canonical.
 */
import { malformed, CommonCodes } from './errors.js';

const B64URL_RE = /^[A-Za-z0-9_-]*$/;
const B64STD_RE = /^[A-Za-z0-9+/]*={0,2}$/;

const HEX_BYTE: string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));
// Nibble value of each ASCII code ('0'-'9', 'a'-'f', 'A'-'F'), -1 otherwise.
const HEX_NIBBLE = new Int8Array(128).fill(-1);
for (let i = 0; i < 16; i++) {
  HEX_NIBBLE['0123456789abcdef'.charCodeAt(i)] = i;
  HEX_NIBBLE['0123456789ABCDEF'.charCodeAt(i)] = i;
}

export function toHex(b: Uint8Array): string {
  let s = '';
  for (let i = 0; i < b.length; i++) s += HEX_BYTE[b[i]!];
  return s;
}

export function fromHex(s: string, what = 'hex'): Uint8Array {
  if (s.length % 2 !== 0) throw malformed(CommonCodes.BAD_ENCODING, `${what} is not valid hex`);
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) {
    const a = s.charCodeAt(2 * i);
    const b = s.charCodeAt(2 * i + 1);
    const hi = a < 128 ? HEX_NIBBLE[a]! : -1;
    const lo = b < 128 ? HEX_NIBBLE[b]! : -1;
    if (hi < 0 || lo < 0) throw malformed(CommonCodes.BAD_ENCODING, `${what} is not valid hex`);
    out[i] = (hi << 4) | lo;
  }
  return out;
}

// Value of each base64 alphabet character (standard alphabet; '-'/'_' are mapped by the caller).
const B64_VALUE = new Int8Array(128).fill(-1);
for (let i = 0; i < 64; i++) B64_VALUE['ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'.charCodeAt(i)] = i;

function b64decodeCore(std: string, what: string): Uint8Array {
  // The caller's regex has already limited `std` to the alphabet plus trailing '='.
  let end = std.length;
  while (end > 0 && std.charCodeAt(end - 1) === 0x3d) end--;
  const rem = end % 4;
  if (rem === 1) throw malformed(CommonCodes.BAD_ENCODING, `${what} has an impossible base64 length`);
  // Padding, when present, must complete the last quantum exactly.
  if (end !== std.length && std.length !== end + (4 - rem) % 4) throw malformed(CommonCodes.BAD_ENCODING, `${what} has wrong base64 padding`);
  // Canonical: the bits the last character carries beyond the data must be zero (RFC 4648 §3.5),
  // so exactly one string encodes given bytes. Checked on that one character, not by re-encoding.
  if (rem !== 0) {
    const last = B64_VALUE[std.charCodeAt(end - 1)] ?? -1;
    if (last < 0 || (last & (rem === 2 ? 0x0f : 0x03)) !== 0) throw malformed(CommonCodes.BAD_ENCODING, `${what} is not canonical base64`);
  }
  let bin: string;
  try {
    // atob is a Web API (Node and Workers).
    bin = atob(end === std.length ? std : std.slice(0, end));
  } catch (cause) {
    throw malformed(CommonCodes.BAD_ENCODING, `${what} is not valid base64`, { cause });
  }
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/**
 * `Buffer.from(latin1)` where the runtime has `node:buffer` (reached through
 * `process.getBuiltinModule`, as providers/common/digest.ts reaches node:crypto, so nothing
 * Node-only is imported here): a native copy, about 10× the JS loop for the tens of kilobytes of
 * an attestation (5.5 against 55 µs for 29 KB on Node 20). Elsewhere, or for short strings, the loop.
 */
const NODE_BUFFER = (
  (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process?.getBuiltinModule?.('node:buffer') as
    | { Buffer?: { from(s: string, encoding: 'latin1'): Uint8Array } }
    | undefined
)?.Buffer;
const NATIVE_FROM = 256;

/** The bytes of a binary string (every char ≤ 0xFF, as atob returns), in a Uint8Array of its own. */
function binaryToBytes(bin: string): Uint8Array {
  const n = bin.length; // hoisted: re-reading it in the loop costs a third of the copy
  if (NODE_BUFFER && n >= NATIVE_FROM) {
    const b = NODE_BUFFER.from(bin, 'latin1');
    // A plain Uint8Array (not a Buffer, whose slice() shares memory), owning all of its memory
    // (a short Buffer can be a slice of Node's shared pool).
    return b.byteOffset === 0 && b.buffer.byteLength === n ? new Uint8Array(b.buffer, 0, n) : new Uint8Array(b);
  }
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/**
 * The accepting fast path of both decoders: the native `atob` instead of a scan with a
 * regex over the whole string. It returns bytes only for a string the exact path below accepts
 * (with the same bytes) and `undefined` otherwise; then the exact path decides and says why.
 * Why that holds: with the trailing '=' cut off, atob (WHATWG forgiving-base64) accepts exactly
 * the standard alphabet with a length ≢ 1 (mod 4), which is the regex the exact path applies,
 * except that it first drops ASCII whitespace. Whitespace is caught by the output length instead
 * of another scan: for `end` ≢ 1 (mod 4) characters the output is exactly ⌊3·end/4⌋ bytes, and
 * dropping any character makes it shorter.
 */
function b64Fast(s: string, url: boolean): Uint8Array | undefined {
  let end = s.length;
  while (end > 0 && s.charCodeAt(end - 1) === 0x3d) end--;
  const pad = s.length - end;
  let std = end === s.length ? s : s.slice(0, end);
  if (url) {
    if (pad !== 0 || std.includes('+') || std.includes('/')) return undefined;
    if (std.includes('-')) std = std.replaceAll('-', '+');
    if (std.includes('_')) std = std.replaceAll('_', '/');
  } else if (pad > 2 || (pad > 0 && s.length % 4 !== 0)) {
    return undefined;
  }
  const rem = end % 4;
  if (rem === 1 || (pad !== 0 && pad !== (4 - rem) % 4)) return undefined;
  if (rem !== 0) {
    const last = B64_VALUE[std.charCodeAt(end - 1)] ?? -1;
    if (last < 0 || (last & (rem === 2 ? 0x0f : 0x03)) !== 0) return undefined;
  }
  let bin: string;
  try {
    bin = atob(std);
  } catch {
    return undefined;
  }
  if (bin.length !== Math.floor((3 * end) / 4)) return undefined; // whitespace was dropped
  return binaryToBytes(bin);
}

/** Base64url without padding (the protocol's default for binary fields). */
export function fromBase64Url(s: string, what = 'base64url'): Uint8Array {
  const fast = b64Fast(s, true);
  if (fast) return fast;
  if (!B64URL_RE.test(s)) throw malformed(CommonCodes.BAD_ENCODING, `${what} is not base64url (unpadded)`);
  return b64decodeCore(s.replace(/-/g, '+').replace(/_/g, '/'), what);
}

/**
 * Either standard (optionally padded) or URL-safe base64, for formats reused from other tools
 * (`attestation`, `document`). Mixing the two alphabets in one string is rejected.
 */
export function fromBase64Any(s: string, what = 'base64'): Uint8Array {
  // A string the standard path accepts decodes the same through the URL path when it has no
  // '+', '/' or padding, so trying the standard alphabet first changes no result.
  const fast = b64Fast(s, false) ?? b64Fast(s, true);
  if (fast) return fast;
  if (B64URL_RE.test(s)) return fromBase64Url(s, what);
  if (B64STD_RE.test(s) && (s.length % 4 === 0 || !s.includes('='))) return b64decodeCore(s, what);
  throw malformed(CommonCodes.BAD_ENCODING, `${what} is not valid base64`);
}

const B64_STD_ALPHABET = new TextEncoder().encode('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/');
const B64_URL_ALPHABET = new TextEncoder().encode('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_');
const ASCII = new TextDecoder();

/**
 * Base64 (RFC 4648 §4/§5) by table into ASCII bytes, decoded once: `btoa` over a binary string
 * built with `String.fromCharCode(...)` (then three regex passes for base64url) cost ~10× more on
 * Node — ~250 µs for a 4.5 KiB Nitro document, which the aws claims carry.
 */
function encodeBase64(b: Uint8Array, a: Uint8Array, pad: boolean): string {
  const full = b.byteLength - (b.byteLength % 3);
  const out = new Uint8Array(4 * Math.ceil(b.byteLength / 3));
  let o = 0;
  let i = 0;
  for (; i < full; i += 3) {
    const x = (b[i]! << 16) | (b[i + 1]! << 8) | b[i + 2]!;
    out[o++] = a[x >>> 18]!;
    out[o++] = a[(x >>> 12) & 63]!;
    out[o++] = a[(x >>> 6) & 63]!;
    out[o++] = a[x & 63]!;
  }
  const rest = b.byteLength - full;
  if (rest > 0) {
    const x = (b[i]! << 16) | (rest === 2 ? b[i + 1]! << 8 : 0);
    out[o++] = a[x >>> 18]!;
    out[o++] = a[(x >>> 12) & 63]!;
    if (rest === 2) out[o++] = a[(x >>> 6) & 63]!;
    if (pad) out[o++] = 0x3d;
    if (pad && rest === 1) out[o++] = 0x3d;
  }
  return ASCII.decode(out.subarray(0, o));
}

export function toBase64(b: Uint8Array): string {
  return encodeBase64(b, B64_STD_ALPHABET, true);
}

/**
 * Base64url without padding, by the same table (no binary string, btoa or regex passes). The
 * result is one flat string: the replace chain this replaced left a sliced string over its padded
 * parent, so a challenge id kept in the memory store cost 72 bytes, not 40.
 */
export function toBase64Url(b: Uint8Array): string {
  return encodeBase64(b, B64_URL_ALPHABET, false);
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

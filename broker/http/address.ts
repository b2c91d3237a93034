/**
 * @module broker/http/address
 *
 * Who is asking: the client address rate limits are keyed on.
 *
 * - The runtime supplies the peer address (Node: the TCP socket's remote address; Workers: the
 *   `CF-Connecting-IP` header, which Cloudflare's edge sets and a client cannot forge there).
 * - `X-Forwarded-For` is honoured only when the peer is a configured trusted proxy, and then read
 *   from the right: the first address that is not itself a trusted proxy is the client. A client
 *   can prepend anything it likes to the header; it cannot make a trusted proxy append a lie.
 * - IPv6 clients are keyed by their /64 (a host usually holds a whole /64, so per-address keys
 *   would let one host rotate through 2^64 of them); IPv4-mapped IPv6 is plain IPv4.
 *
 * Pure functions over strings: runs on Workers and Node alike.
 */

export interface Cidr {
  readonly v: 4 | 6;
  readonly bits: bigint;
  readonly prefix: number;
}

const IPV4_RE = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

function v4(s: string): bigint | undefined {
  if (!IPV4_RE.test(s)) return undefined;
  return s.split('.').reduce((a, o) => (a << 8n) | BigInt(o), 0n);
}

/** 128-bit value of an IPv6 address (with optional embedded IPv4 and zone id), or undefined. */
function v6(s: string): bigint | undefined {
  let addr = s.replace(/%.*$/, '');
  if (!/^[0-9a-fA-F:.]+$/.test(addr) || addr.length > 45) return undefined;
  const lastColon = addr.lastIndexOf(':');
  const last = addr.slice(lastColon + 1);
  if (last.includes('.')) {
    // Embedded IPv4 (::ffff:1.2.3.4): rewrite it as its two hex groups.
    const four = v4(last);
    if (four === undefined) return undefined;
    addr = `${addr.slice(0, lastColon + 1)}${(four >> 16n).toString(16)}:${(four & 0xffffn).toString(16)}`;
  }
  const dbl = addr.split('::');
  if (dbl.length > 2) return undefined;
  const left = dbl[0] ? dbl[0].split(':') : [];
  const right = dbl.length === 2 && dbl[1] ? dbl[1].split(':') : [];
  const total = left.length + right.length;
  let groups: string[];
  if (dbl.length === 1) {
    if (total !== 8) return undefined;
    groups = left;
  } else {
    if (total > 7) return undefined;
    groups = [...left, ...Array<string>(8 - total).fill('0'), ...right];
  }
  let out = 0n;
  for (const g of groups) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return undefined;
    out = (out << 16n) | BigInt(parseInt(g, 16));
  }
  return out;
}

interface Parsed {
  v: 4 | 6;
  bits: bigint;
}

/** Parses an IP address; IPv4-mapped IPv6 (::ffff:a.b.c.d) becomes IPv4. */
export function parseIp(s: string): Parsed | undefined {
  const a = v4(s);
  if (a !== undefined) return { v: 4, bits: a };
  const b = v6(s);
  if (b === undefined) return undefined;
  if (b >> 32n === 0xffffn) return { v: 4, bits: b & 0xffffffffn };
  return { v: 6, bits: b };
}

/** Parses `a.b.c.d/n`, `x::y/n` or a bare address (a /32 or /128). Throws on nonsense. */
export function parseCidr(s: string): Cidr {
  const [addr, len, extra] = s.trim().split('/');
  const ip = addr === undefined ? undefined : parseIp(addr);
  const max = ip?.v === 4 ? 32 : 128;
  const prefix = len === undefined ? max : /^\d{1,3}$/.test(len) ? Number(len) : NaN;
  if (!ip || extra !== undefined || !(prefix >= 0 && prefix <= max)) throw new TypeError(`not an IP address or CIDR range: ${s}`);
  const shift = BigInt(max - prefix);
  return { v: ip.v, bits: (ip.bits >> shift) << shift, prefix };
}

export function inCidr(ip: Parsed, c: Cidr): boolean {
  if (ip.v !== c.v) return false;
  const shift = BigInt((c.v === 4 ? 32 : 128) - c.prefix);
  return (ip.bits >> shift) << shift === c.bits;
}

function format(ip: Parsed): string {
  if (ip.v === 4) return [24n, 16n, 8n, 0n].map((s) => String((ip.bits >> s) & 0xffn)).join('.');
  // The /64 a host sits in.
  const hi = ip.bits >> 64n;
  const g = [48n, 32n, 16n, 0n].map((s) => ((hi >> s) & 0xffffn).toString(16));
  return `${g.join(':')}::/64`;
}

/**
 * The rate-limit key of a request: the client (see module doc), IPv6 reduced to its /64.
 * `peer` undefined (an in-process request, e.g. a test calling `app.request`) → 'local'.
 */
export function clientKey(peer: string | undefined, forwardedFor: string | undefined, trusted: readonly Cidr[]): string {
  if (peer === undefined) return 'local';
  let ip = parseIp(peer);
  if (!ip) return 'unparsed';
  const isTrusted = (p: Parsed): boolean => trusted.some((c) => inCidr(p, c));
  if (forwardedFor && trusted.length > 0 && isTrusted(ip)) {
    const hops = forwardedFor.split(',').map((h) => h.trim()).slice(-32);
    for (let i = hops.length - 1; i >= 0; i--) {
      const h = parseIp(hops[i]!);
      if (!h) break; // garbage from the client side: stop at the last good hop
      ip = h;
      if (!isTrusted(h)) break;
    }
  }
  return format(ip);
}

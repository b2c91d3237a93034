/**
 * Canonical JSON (providers/common/canonical.ts): the audit hash of evidence must not depend on
 * how the node ordered or spaced its JSON. Checked against fixed expectations and, on random
 * values, against a plain reference written with map/join.
 */
import { createHash, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { canonicalJson, canonicalSha256 } from '../../providers/common/canonical.js';
import { setSyncHasher } from '../../providers/common/digest.js';

/** The plain reading: keys sorted by UTF-16 code units at every level, members joined by commas. */
const reference = (v: unknown): string => {
  if (Array.isArray(v)) return `[${v.map(reference).join(',')}]`;
  if (v && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    const keys = Object.keys(o).filter((k) => o[k] !== undefined).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${reference(o[k])}`).join(',')}}`;
  }
  return JSON.stringify(v);
};

/**
 * Long strings (around the 512 characters from which canonicalJson quotes a string JSON would
 * not escape without JSON.stringify): base64 and hex as evidence carries them, and the same with one character JSON escapes
 * (quote, backslash, control, DEL-adjacent, non-ASCII, a lone surrogate) at a random place.
 */
function longString(): string {
  const n = 500 + Math.floor(Math.random() * 40);
  const base = Math.random() < 0.5 ? randomBytes(n).toString('base64').slice(0, n) : randomBytes(n).toString('hex').slice(0, n);
  if (Math.random() < 0.5) return base;
  const odd = ['"', '\\', '\n', '\u0000', '\u001f', '\u007f', 'é', '😀', '\ud800', '\udfff', '\u2028'][Math.floor(Math.random() * 11)]!;
  const at = Math.floor(Math.random() * (base.length + 1));
  return base.slice(0, at) + odd + base.slice(at);
}

function randomValue(depth: number): unknown {
  const r = Math.random();
  if (depth === 0 || r < 0.3) {
    const leaves = [null, true, false, 0, -1.5, 1e21, 'x', 'é"\\\n\u2028', randomBytes(6).toString('base64')];
    return Math.random() < 0.2 ? longString() : leaves[Math.floor(Math.random() * leaves.length)];
  }
  if (r < 0.6) return Array.from({ length: Math.floor(Math.random() * 4) }, () => randomValue(depth - 1));
  const o: Record<string, unknown> = {};
  for (let i = 0; i < Math.floor(Math.random() * 5); i++) o[['b', 'a', 'B', 'ä', '10', '9', 'a b', randomBytes(2).toString('hex')][Math.floor(Math.random() * 8)]!] = Math.random() < 0.1 ? undefined : randomValue(depth - 1);
  return o;
}

/** canonicalSha256(v) is `want` streamed through node:crypto and with WebCrypto alone. */
async function expectBothPaths(v: unknown, want: string): Promise<void> {
  expect(await canonicalSha256(v)).toBe(want);
  const prev = setSyncHasher(null);
  try {
    expect(await canonicalSha256(v)).toBe(want);
  } finally {
    setSyncHasher(prev);
  }
}

describe('canonicalJson', () => {
  it('sorts keys at every level, drops undefined members, no whitespace', () => {
    expect(canonicalJson({ b: 1, a: [{ d: null, c: 'x' }, []], e: undefined, f: {} })).toBe('{"a":[{"c":"x","d":null},[]],"b":1,"f":{}}');
    expect(canonicalJson({ é: 1, z: 2, Z: 3, '10': 4, '9': 5 })).toBe('{"10":4,"9":5,"Z":3,"z":2,"é":1}');
    expect(canonicalJson('a"b')).toBe('"a\\"b"');
    expect(() => canonicalJson({ a: [undefined] })).toThrow(TypeError);
  });
  it('equals the reference on 2,000 random values, and the hash ignores member order', async () => {
    for (let i = 0; i < 2000; i++) {
      const v = randomValue(4);
      expect(canonicalJson(v)).toBe(reference(v));
    }
    expect(await canonicalSha256({ a: 1, b: [2, { c: 3, d: 4 }] })).toBe(await canonicalSha256(JSON.parse('{ "b": [2, {"d":4, "c":3}], "a": 1 }')));
  });
  it('hashes the UTF-8 bytes of the canonical text, the same with and without node:crypto', async () => {
    for (let i = 0; i < 200; i++) {
      const v = { s: randomValue(3), u: 'é€😀\u2028', n: i };
      await expectBothPaths(v, createHash('sha256').update(Buffer.from(canonicalJson(v), 'utf8')).digest('hex'));
    }
  });
  it('with long strings (quoted without JSON.stringify when nothing in them needs escaping): the SHA-256 of the reference text, with and without node:crypto', async () => {
    const hex = (t: string) => createHash('sha256').update(t, 'utf8').digest('hex');
    for (let i = 0; i < 500; i++) {
      const v = { attestation: longString(), more: [longString(), randomValue(3)], n: i, tail: randomValue(2) };
      await expectBothPaths(v, hex(reference(v)));
    }
    // A long string on its own, and as the only member.
    const s = randomBytes(3000).toString('base64');
    expect(await canonicalSha256(s)).toBe(hex(JSON.stringify(s)));
    expect(await canonicalSha256({ s })).toBe(hex(`{"s":${JSON.stringify(s)}}`));
  });
  it('rejects (does not throw synchronously) on what it cannot canonicalize', async () => {
    await expect(canonicalSha256({ a: [randomBytes(600).toString('hex'), undefined] })).rejects.toThrow(TypeError);
    const p = canonicalSha256({ a: [undefined] });
    await expect(p).rejects.toThrow(TypeError);
  });
});

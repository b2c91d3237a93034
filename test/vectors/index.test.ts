/**
 * test/vectors/INDEX.md lists every evidence file the tests read, with its SHA-256: a file that
 * is not indexed, an index row without its file, or a file whose bytes changed fails here.
 */
import { describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

const DIR = import.meta.dirname;
const NOT_VECTORS = new Set(['INDEX.md', 'index.test.ts']);

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((e) => {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) return files(p);
    return NOT_VECTORS.has(relative(DIR, p)) || /^LICENSE(-MIT|-APACHE)?$/.test(e) ? [] : [relative(DIR, p)];
  });
}

describe('test/vectors/INDEX.md', () => {
  const rows = new Map(
    [...readFileSync(join(DIR, 'INDEX.md'), 'utf8').matchAll(/^\| `([^`]+)` \| .* \| `([0-9a-f]{64})` \| (.+) \|$/gm)].map((m) => [m[1]!, { sha256: m[2]!, proves: m[3]! }]),
  );

  it('indexes every file, and every row has its file', () => {
    const onDisk = files(DIR).sort();
    expect(onDisk.length).toBeGreaterThan(100);
    expect(onDisk.filter((f) => !rows.has(f))).toEqual([]);
    expect([...rows.keys()].filter((f) => !onDisk.includes(f))).toEqual([]);
  });

  it('every file has the SHA-256 the index gives, and says what it proves', () => {
    for (const [f, r] of rows) {
      expect(createHash('sha256').update(readFileSync(join(DIR, f))).digest('hex'), f).toBe(r.sha256);
      expect(r.proves.length, f).toBeGreaterThan(10);
    }
  });

  it('keeps the license text of every source folder', () => {
    for (const d of ['trustee', 'uki/trustee', 'azure-cvm-tooling', 'go-tpm-tools', 'go-sev-guest', 'go-tdx-guest', 'nitrite', 'nvidia']) {
      expect(readFileSync(join(DIR, d, 'LICENSE'), 'utf8'), d).toMatch(/Apache License|MIT License/);
    }
    expect(readFileSync(join(DIR, 'vaportpm/LICENSE-MIT'), 'utf8')).toMatch(/MIT License/);
    expect(readFileSync(join(DIR, 'vaportpm/LICENSE-APACHE'), 'utf8')).toMatch(/Apache License/);
  });
});

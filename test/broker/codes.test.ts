/**
 * One code table: every stable error code is defined once (providers/common/codes.ts) with one
 * kind, and the kind alone decides the HTTP status (broker/http/problem.ts). These tests prove
 * the table is total and that every `*Codes` constant object any module exports names only codes
 * of the table (so no call site can raise a code the table does not know).
 */
import { describe, expect, it } from 'vitest';
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { CODE_KINDS, AttestError, isCode, type Code } from '../../providers/common/errors.js';
import { STATUS_BY_KIND, toProblem } from '../../broker/http/problem.js';

const ROOT = join(import.meta.dirname, '../..');
/** Entry files run a program when imported; they define no codes. */
const ENTRY_FILES = new Set(['broker/node.ts', 'deploy/node/client/main.node.ts']);

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(join(ROOT, dir))) {
    const p = join(dir, e);
    if (statSync(join(ROOT, p)).isDirectory()) out.push(...sources(p));
    else if (p.endsWith('.ts') && !p.endsWith('.d.ts') && !p.endsWith('.test.ts') && !p.includes('worker') && !ENTRY_FILES.has(p)) out.push(p);
  }
  return out;
}

describe('error code table', () => {
  it('maps every code to exactly one HTTP status through its kind', () => {
    const statuses = new Map<Code, number>();
    for (const code of Object.keys(CODE_KINDS) as Code[]) {
      expect(code).toMatch(/^[A-Z][A-Z0-9_]*$/);
      const status = STATUS_BY_KIND[CODE_KINDS[code]];
      expect(status, code).toBeTypeOf('number');
      statuses.set(code, status);
      // The problem a thrown error becomes carries exactly that status, whoever throws it.
      const { problem } = toProblem(new AttestError(code, 'x'));
      expect(problem.status, code).toBe(status);
      expect(problem.code).toBe(code);
    }
    expect(statuses.size).toBeGreaterThan(250);
  });

  it('refuses a code that is not in the table, even through a cast', () => {
    expect(() => new AttestError('NO_SUCH_CODE' as Code, 'x')).toThrow(/unknown error code/);
    expect(isCode('TRUNCATED')).toBe(true);
    expect(isCode('toString')).toBe(false);
  });

  it('every exported *Codes object in broker/, providers/ and deploy/ names only codes of the table', async () => {
    const unknown: string[] = [];
    let objects = 0;
    for (const file of [...sources('broker'), ...sources('providers'), ...sources('deploy/node')]) {
      const mod = (await import(join(ROOT, file))) as Record<string, unknown>;
      for (const [name, value] of Object.entries(mod)) {
        if (!/Codes$/.test(name) || typeof value !== 'object' || value === null) continue;
        objects++;
        for (const code of Object.values(value)) {
          if (typeof code === 'string' && !isCode(code)) unknown.push(`${relative(ROOT, join(ROOT, file))} ${name}: ${code}`);
        }
      }
    }
    expect(objects).toBeGreaterThan(30);
    expect(unknown).toEqual([]);
  }, 60_000);
});

describe('docs/protocol.md', () => {
  /** The block between the codes markers: one row per code, grouped by status. */
  function codesBlock(): string {
    const rows = (Object.keys(CODE_KINDS) as Code[])
      .map((c) => ({ code: c, kind: CODE_KINDS[c], status: STATUS_BY_KIND[CODE_KINDS[c]] }))
      .sort((a, b) => a.status - b.status || a.code.localeCompare(b.code));
    return ['| code | status | kind |', '|---|---|---|', ...rows.map((r) => `| \`${r.code}\` | ${r.status} | ${r.kind} |`)].join('\n');
  }

  it('lists every code with the status its kind gives (UPDATE_PROTOCOL_DOC=1 rewrites the block)', async () => {
    const { readFileSync, writeFileSync } = await import('node:fs');
    const path = join(ROOT, 'docs/protocol.md');
    const doc = readFileSync(path, 'utf8');
    const re = /<!-- codes:begin -->\n[\s\S]*?<!-- codes:end -->/;
    const want = `<!-- codes:begin -->\n${codesBlock()}\n<!-- codes:end -->`;
    if (process.env.UPDATE_PROTOCOL_DOC === '1') writeFileSync(path, doc.replace(re, want));
    expect(readFileSync(path, 'utf8').match(re)?.[0]).toBe(want);
  });
});

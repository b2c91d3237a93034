/**
 * Property tests (fast-check):
 * - the loader never throws on any input (arbitrary text, arbitrary JSON-shaped values, random
 *   mutations of a valid policy): it returns issues, each with a stable code;
 * - evaluation never throws on randomly mutated claims, and a decision that allows always has a
 *   valid DNS-1123 node name and no failing rule;
 * - the glob matcher agrees with an anchored regular expression on small inputs;
 * - `__proto__` keys in a policy neither pollute prototypes nor load.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { checkPolicyText, loadPolicyText } from '../../broker/policy/load.js';
import { evaluatePolicy, globMatch, isDns1123Subdomain } from '../../broker/policy/evaluate.js';
import type { Claims } from '../../providers/common/types.js';
import { ALL_VECTORS, gcpAmd } from './fixtures/claims.js';
import { clone, docFor, NOW } from './helpers.js';

const CODE = /^[A-Z][A-Z0-9_]*$/;

function setAt(obj: unknown, path: readonly string[], value: unknown): void {
  let o = obj as Record<string, unknown>;
  for (const k of path.slice(0, -1)) {
    if (o[k] === null || typeof o[k] !== 'object') return;
    o = o[k] as Record<string, unknown>;
  }
  o[path[path.length - 1]!] = value;
}

function paths(v: unknown, prefix: string[] = [], out: string[][] = []): string[][] {
  if (v !== null && typeof v === 'object') {
    for (const [k, x] of Object.entries(v)) {
      out.push([...prefix, k]);
      paths(x, [...prefix, k], out);
    }
  }
  return out;
}

describe('policy loader never throws', () => {
  it('arbitrary text', async () => {
    await fc.assert(
      fc.asyncProperty(fc.string({ maxLength: 400 }), async (s) => {
        const r = await checkPolicyText(s, NOW);
        expect(r.policy === undefined || r.issues.every((i) => i.severity === 'warning')).toBe(true);
        for (const i of r.issues) expect(i.code).toMatch(CODE);
      }),
      { numRuns: 2000 },
    );
  });

  it('random mutations of a valid policy', async () => {
    const base = docFor(gcpAmd);
    const all = paths(base);
    const value = fc.oneof(fc.constant('any'), fc.constant([]), fc.constant({}), fc.constant(null), fc.integer(), fc.boolean(), fc.string({ maxLength: 20 }), fc.array(fc.string({ maxLength: 8 }), { maxLength: 3 }));
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(fc.integer({ min: 0, max: all.length - 1 }), value), { minLength: 1, maxLength: 3 }), async (edits) => {
        const doc = clone(base);
        for (const [i, v] of edits) setAt(doc, all[i]!, v);
        const r = await checkPolicyText(stringify(doc), NOW);
        for (const i of r.issues) expect(i.code).toMatch(CODE);
        if (r.policy) {
          // Whatever loaded still evaluates without throwing.
          evaluatePolicy(r.policy, gcpAmd, undefined, NOW);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('__proto__ keys neither pollute nor load', async () => {
    const text = stringify(docFor(gcpAmd)).replace('clusters:\n', 'clusters:\n  __proto__:\n    polluted: true\n');
    const r = await checkPolicyText(text, NOW);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(r.policy).toBeUndefined();
  });
});

describe('evaluation never throws and never admits inconsistently', () => {
  it('randomly mutated claims', async () => {
    const policies = await Promise.all(ALL_VECTORS.map(async (v) => ({ v, p: await loadPolicyText(stringify(docFor(v.claims)), NOW) })));
    const leaf = fc.oneof(fc.constant(undefined), fc.constant(null), fc.string({ maxLength: 70 }), fc.integer(), fc.boolean(), fc.constant([]), fc.constant({}));
    await fc.assert(
      fc.property(fc.integer({ min: 0, max: policies.length - 1 }), fc.array(fc.tuple(fc.nat(), leaf), { maxLength: 3 }), (pi, edits) => {
        const { v, p } = policies[pi]!;
        const claims = clone(v.claims) as unknown as Record<string, unknown>;
        const all = paths(claims);
        for (const [i, val] of edits) setAt(claims, all[i % all.length]!, val);
        // Even claims that break the Claims type (identity replaced by null…) give a decision.
        const d = evaluatePolicy(p, claims as unknown as Claims, undefined, NOW);
        if (d.allow) {
          expect(d.rules.some((r) => r.outcome === 'fail')).toBe(false);
          expect(isDns1123Subdomain(d.nodeName)).toBe(true);
        } else {
          expect(d.denyCode).toBe('POLICY_DENIED');
        }
      }),
      { numRuns: 3000 },
    );
  });
});

describe('glob matcher', () => {
  it('agrees with an anchored regular expression', () => {
    const ch = fc.constantFrom('a', 'b', '-', '*', '?');
    const sc = fc.constantFrom('a', 'b', '-');
    fc.assert(
      fc.property(fc.array(ch, { maxLength: 8 }), fc.array(sc, { maxLength: 10 }), (p, s) => {
        const pattern = p.join('');
        const re = new RegExp(`^${pattern.replace(/[-]/g, '\\-').replace(/\*/g, '.*').replace(/\?/g, '.')}$`);
        expect(globMatch(pattern, s.join(''))).toBe(re.test(s.join('')));
      }),
      { numRuns: 5000 },
    );
  });
});

/**
 * @module broker/policy/load
 *
 * Text → validated policy, in three steps, each of which fails closed:
 * 1. YAML (the `yaml` package, YAML 1.2 core schema: no implicit timestamps or octal surprises;
 *    duplicate keys are errors, also `0:` next to `"0":`; `__proto__` keys are refused; alias
 *    expansion capped against billion-laughs documents).
 * 2. The zod schema (`schema.ts`): strict objects, required checks, non-empty allow-lists.
 * 3. Semantic checks (`semantic.ts`).
 *
 * The SHA-256 of the exact bytes loaded is the policy hash recorded in every decision, so an
 * audit record names the precise document that decided, whatever its declared `version` says.
 *
 * The only dependency on `yaml` in the broker lives here (house-style §15: each dependency
 * wrapped in exactly one module).
 */
import { Document, isScalar, parseDocument, visit } from 'yaml';
import type { z } from 'zod';
import { configError } from '../../providers/common/errors.js';
import { sha256 } from '../../providers/common/digest.js';
import { toHex, utf8 } from '../../providers/common/encoding.js';
import type { PolicyDocument } from './schema.js';
import { semanticIssues, type PolicyIssue } from './semantic.js';
import { policyCatalog, type Catalog } from './catalog.js';

/** Cap on policy size: a policy is reviewed by people; 1 MiB is far beyond any real one. */
export const MAX_POLICY_BYTES = 1 << 20;

export interface LoadedPolicy {
  readonly doc: PolicyDocument;
  /** SHA-256 (hex) of the exact text loaded. */
  readonly hash: string;
  readonly version: string;
  readonly warnings: readonly PolicyIssue[];
}

export interface CheckResult {
  /** Present when the policy has no error. */
  policy?: LoadedPolicy;
  issues: PolicyIssue[];
}

type PathPart = PropertyKey;

function formatPath(path: readonly PathPart[]): string {
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : `${i === 0 ? '' : '.'}${String(p)}`)).join('') || '(document)';
}

function valueAt(raw: unknown, path: readonly PathPart[]): unknown {
  let v = raw;
  for (const p of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<PropertyKey, unknown>)[p];
  }
  return v;
}

const isAnyBranch = (b: readonly z.core.$ZodIssue[]) => b.length === 1 && b[0]!.path.length === 0 && b[0]!.code === 'invalid_value' && b[0]!.values.includes('any');
const isShapeMiss = (b: readonly z.core.$ZodIssue[]) => b.every((e) => e.path.length === 0 && e.code === 'invalid_type');

/**
 * Turns zod issues into operator messages. Unions of `'any' | rule` are unwrapped: when the
 * value is clearly meant as a rule (an object/list), the rule's own issues are reported at their
 * full path instead of zod's generic "invalid input".
 */
function expand(i: z.core.$ZodIssue, prefix: readonly PathPart[], raw: unknown, out: PolicyIssue[]): void {
  const path = [...prefix, ...i.path];
  const push = (message: string) => out.push({ severity: 'error', path: formatPath(path), code: 'POLICY_SCHEMA', message });
  const value = valueAt(raw, path);
  if (i.code === 'invalid_union') {
    const deep = i.errors.filter((b) => !isAnyBranch(b) && !isShapeMiss(b));
    if (deep.length === 1) {
      for (const e of deep[0]!) expand(e, path, raw, out);
      return;
    }
    push(
      value === undefined
        ? "required: write the rule, or 'any' to leave it unchecked on purpose (a missing key never means 'skip')"
        : `must be 'any' or a rule as described in docs/policy.md (got ${Array.isArray(value) ? 'a list' : typeof value === 'string' ? `'${value}'` : typeof value})`,
    );
    return;
  }
  if (i.code === 'unrecognized_keys') {
    push(`unknown key(s) ${i.keys.map((k) => `'${k}'`).join(', ')}: check the spelling (docs/policy.md lists every field)`);
    return;
  }
  if (i.code === 'invalid_type' && value === undefined) {
    push(`required field missing (${i.message.replace(/^Invalid input: /, '')})`);
    return;
  }
  push(i.message);
}

function zodIssues(error: z.ZodError, raw: unknown): PolicyIssue[] {
  const out: PolicyIssue[] = [];
  for (const i of error.issues) expand(i, [], raw, out);
  return out;
}

/**
 * Parses and checks a policy without throwing for policy errors: every issue, with its path and
 * a fix, for `policy check`. `now` is only used to warn about expired images.
 */
export async function checkPolicyText(text: string, now: Date, catalog?: Catalog): Promise<CheckResult> {
  const bytes = utf8(text);
  if (bytes.length > MAX_POLICY_BYTES) {
    return { issues: [{ severity: 'error', path: '(document)', code: 'POLICY_TOO_LARGE', message: `policy is ${bytes.length} bytes; the limit is ${MAX_POLICY_BYTES}` }] };
  }
  // Keys are compared as the strings they become (so `0:` and `"0":` in one map are duplicates,
  // not a silent last-wins).
  const yamlDoc = parseDocument(text, {
    uniqueKeys: (a, b) => a === b || (isScalar(a) && isScalar(b) && String(a.value) === String(b.value)),
    prettyErrors: true,
    version: '1.2',
    schema: 'core',
  });
  if (yamlDoc.errors.length > 0) {
    return { issues: yamlDoc.errors.map((e) => ({ severity: 'error', path: '(yaml)', code: 'POLICY_YAML', message: e.message })) };
  }
  // `__proto__` as a key would become the prototype of the parsed object (so invisible to the
  // strict schema) instead of an unknown key: refuse it outright.
  const protoKeys: string[] = [];
  visit(yamlDoc, {
    Pair(_k, pair) {
      if (isScalar(pair.key) && pair.key.value === '__proto__') protoKeys.push(String(pair.key.range?.[0] ?? '?'));
    },
  });
  if (protoKeys.length > 0) {
    return { issues: [{ severity: 'error', path: '(yaml)', code: 'POLICY_YAML', message: `'__proto__' is not a valid key (at offset ${protoKeys.join(', ')})` }] };
  }
  let raw: unknown;
  try {
    raw = yamlDoc.toJS({ maxAliasCount: 100 });
  } catch (e) {
    return { issues: [{ severity: 'error', path: '(yaml)', code: 'POLICY_YAML', message: (e as Error).message }] };
  }
  // The schema of the provider catalog (default: this build's, providers/catalog.ts).
  const parsed = policyCatalog(catalog).schema.policy.safeParse(raw);
  if (!parsed.success) return { issues: zodIssues(parsed.error, raw) };
  const doc = parsed.data as PolicyDocument;
  const issues = semanticIssues(doc, now, catalog);
  const hash = toHex(await sha256(bytes));
  if (issues.some((i) => i.severity === 'error')) return { issues };
  return { policy: { doc, hash, version: doc.version, warnings: issues }, issues };
}

/** Loads a policy or throws POLICY_INVALID (kind 'config') listing every error. */
export async function loadPolicyText(text: string, now: Date, catalog?: Catalog): Promise<LoadedPolicy> {
  const r = await checkPolicyText(text, now, catalog);
  if (!r.policy) {
    const errors = r.issues.filter((i) => i.severity === 'error');
    throw configError('POLICY_INVALID', `policy rejected: ${errors.map((i) => `${i.path}: ${i.message}`).join(' | ')}`, {
      detail: { issues: errors },
    });
  }
  return r.policy;
}

export function formatIssue(i: PolicyIssue): string {
  return `${i.severity}: ${i.path}: ${i.message} [${i.code}]`;
}

/** Renders a policy document as YAML with a leading comment block (used by `policy capture`). */
export function stringifyPolicy(doc: PolicyDocument, header: string): string {
  const d = new Document(doc, { version: '1.2' });
  // One-element lists of scalars (a pinned PCR, a format) on one line: shorter, clearer diffs.
  visit(d, {
    Seq(_k, node) {
      if (node.items.length === 1 && isScalar(node.items[0])) node.flow = true;
    },
  });
  d.commentBefore = header
    .split('\n')
    .map((l) => ` ${l}`)
    .join('\n');
  return d.toString({ lineWidth: 0 });
}

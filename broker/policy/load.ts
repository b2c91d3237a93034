/**
 * @module broker/policy/load
 *
 * Text → validated policy, in three steps, each of which fails closed:
 * 1. YAML (the `yaml` package, YAML 1.2 core schema: no implicit timestamps or octal surprises;
 *    duplicate keys are errors; alias expansion capped against billion-laughs documents).
 * 2. The zod schema (`schema.ts`): strict objects, required checks, non-empty allow-lists.
 * 3. Semantic checks (`semantic.ts`).
 *
 * The SHA-256 of the exact bytes loaded is the policy hash recorded in every decision, so an
 * audit record names the precise document that decided, whatever its declared `version` says.
 *
 * The only dependency on `yaml` in the broker lives here (house-style §15: each dependency
 * wrapped in exactly one module).
 */
import { Document, parseDocument } from 'yaml';
import type { z } from 'zod';
import { configError } from '../../providers/common/errors.js';
import { sha256 } from '../../providers/common/digest.js';
import { toHex, utf8 } from '../../providers/common/encoding.js';
import { policySchema, type PolicyDocument } from './schema.js';
import { semanticIssues, type PolicyIssue } from './semantic.js';

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

function zodIssues(error: z.ZodError): PolicyIssue[] {
  return error.issues.map((i) => {
    const path = i.path.map((p) => (typeof p === 'number' ? `[${p}]` : String(p))).join('.').replace(/\.\[/g, '[') || '(document)';
    let message = i.message;
    if (i.code === 'unrecognized_keys') message = `unknown key(s) ${i.keys.map((k) => `'${k}'`).join(', ')}: check the spelling (docs/policy.md lists every field)`;
    if (i.code === 'invalid_union') message = `${message}: expected 'any' or a rule object/list (docs/policy.md); ${unionDetail(i)}`;
    return { severity: 'error' as const, path, code: 'POLICY_SCHEMA', message };
  });
}

function unionDetail(i: z.core.$ZodIssueInvalidUnion): string {
  const inner = i.errors.flat().filter((e) => !(e.code === 'invalid_value' && e.values.includes('any')));
  return inner
    .slice(0, 3)
    .map((e) => `${e.path.join('.') || 'value'}: ${e.message}`)
    .join('; ');
}

/**
 * Parses and checks a policy without throwing for policy errors: every issue, with its path and
 * a fix, for `policy check`. `now` is only used to warn about expired images.
 */
export async function checkPolicyText(text: string, now: Date): Promise<CheckResult> {
  const bytes = utf8(text);
  if (bytes.length > MAX_POLICY_BYTES) {
    return { issues: [{ severity: 'error', path: '(document)', code: 'POLICY_TOO_LARGE', message: `policy is ${bytes.length} bytes; the limit is ${MAX_POLICY_BYTES}` }] };
  }
  const yamlDoc = parseDocument(text, { uniqueKeys: true, prettyErrors: true, version: '1.2', schema: 'core' });
  if (yamlDoc.errors.length > 0) {
    return { issues: yamlDoc.errors.map((e) => ({ severity: 'error', path: '(yaml)', code: 'POLICY_YAML', message: e.message })) };
  }
  let raw: unknown;
  try {
    raw = yamlDoc.toJS({ maxAliasCount: 100 });
  } catch (e) {
    return { issues: [{ severity: 'error', path: '(yaml)', code: 'POLICY_YAML', message: (e as Error).message }] };
  }
  const parsed = policySchema.safeParse(raw);
  if (!parsed.success) return { issues: zodIssues(parsed.error) };
  const issues = semanticIssues(parsed.data, now);
  const hash = toHex(await sha256(bytes));
  if (issues.some((i) => i.severity === 'error')) return { issues };
  return { policy: { doc: parsed.data, hash, version: parsed.data.version, warnings: issues }, issues };
}

/** Loads a policy or throws POLICY_INVALID (kind 'config') listing every error. */
export async function loadPolicyText(text: string, now: Date): Promise<LoadedPolicy> {
  const r = await checkPolicyText(text, now);
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
  d.commentBefore = header
    .split('\n')
    .map((l) => ` ${l}`)
    .join('\n');
  return d.toString({ lineWidth: 0 });
}

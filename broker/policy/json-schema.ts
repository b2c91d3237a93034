/**
 * @module broker/policy/json-schema
 *
 * The JSON Schema of the policy file, generated from the zod schema (zod 4 `z.toJSONSchema`),
 * published as docs/policy.schema.json so editors (yaml-language-server, VS Code) validate and
 * complete policy files. A test keeps the committed file equal to this output; regenerate it with
 * `UPDATE_POLICY_SCHEMA=1 npx vitest run --project node test/policy/docs.test.ts`.
 *
 * The schema covers shapes and value formats; the cross-field checks of `semantic.ts` (identity
 * rule per enabled provider, impossible rules, …) are only enforced by `policy check` and the
 * broker's loader.
 */
import { z } from 'zod';
import { policySchema } from './schema.js';

export const POLICY_SCHEMA_ID = 'https://attest-broker.dev/schemas/policy-v1.json';

export function policyJsonSchema(): Record<string, unknown> {
  const s = z.toJSONSchema(policySchema, { target: 'draft-2020-12', io: 'input' }) as Record<string, unknown>;
  return { ...s, $id: POLICY_SCHEMA_ID, title: 'attest-broker join policy (apiVersion attest-broker/v1)' };
}

export function policyJsonSchemaText(): string {
  return `${JSON.stringify(policyJsonSchema(), null, 2)}\n`;
}

/**
 * The attest body's fast path (`fastAttestRequest`) against the schema (`AttestRequest`): on
 * valid bodies and on every mutation below, the fast path either gives exactly the schema's result
 * or steps aside (undefined) — it never accepts a body the schema refuses.
 */
import { describe, expect, it } from 'vitest';
import { AttestRequest, fastAttestRequest, parseAttestRequest } from '../../broker/http/envelope.js';

const ID = 'A'.repeat(22);
const base = (): Record<string, unknown> => ({ challengeId: ID, provider: 'tpm', format: 'tpm', evidence: { quote: 'AAAA', pcrs: { sha256: { 0: 'AA' } } } });

function nest(levels: number): unknown {
  let v: unknown = 'x';
  for (let i = 0; i < levels; i++) v = i % 2 ? [v] : { k: v };
  return v;
}

const mutations: [string, (b: Record<string, unknown>) => unknown][] = [
  ['as is', (b) => b],
  ['want token', (b) => ({ ...b, want: ['bootstrap-token'] })],
  ['want both', (b) => ({ ...b, want: ['bootstrap-token', 'disk-key'] })],
  ['want disk key', (b) => ({ ...b, want: ['disk-key'] })],
  ['want empty', (b) => ({ ...b, want: [] })],
  ['want duplicate', (b) => ({ ...b, want: ['disk-key', 'disk-key'] })],
  ['want three', (b) => ({ ...b, want: ['disk-key', 'bootstrap-token', 'disk-key'] })],
  ['want unknown', (b) => ({ ...b, want: ['root-shell'] })],
  ['want string', (b) => ({ ...b, want: 'disk-key' })],
  ['want null', (b) => ({ ...b, want: null })],
  ['sealEnc A256GCM', (b) => ({ ...b, sealEnc: 'A256GCM' })],
  ['sealEnc CBC', (b) => ({ ...b, sealEnc: 'A128CBC-HS256' })],
  ['sealEnc other', (b) => ({ ...b, sealEnc: 'A128GCM' })],
  ['diskKey', (b) => ({ ...b, want: ['disk-key'], diskKey: { wrapped: 'abc_-' } })],
  ['diskKey extra', (b) => ({ ...b, diskKey: { wrapped: 'abc', x: 1 } })],
  ['diskKey empty', (b) => ({ ...b, diskKey: { wrapped: '' } })],
  ['diskKey long', (b) => ({ ...b, diskKey: { wrapped: 'a'.repeat(8193) } })],
  ['diskKey max', (b) => ({ ...b, diskKey: { wrapped: 'a'.repeat(8192) } })],
  ['diskKey padded', (b) => ({ ...b, diskKey: { wrapped: 'abc=' } })],
  ['diskKey array', (b) => ({ ...b, diskKey: ['abc'] })],
  ['diskKey null', (b) => ({ ...b, diskKey: null })],
  ['unknown field', (b) => ({ ...b, ephemeralkey: {} })],
  ['__proto__ field (as JSON.parse makes it)', (b) => JSON.parse(JSON.stringify(b).replace(/^\{/, '{"__proto__":{"x":1},'))],
  ['constructor field', (b) => ({ ...b, constructor: 1 })],
  ['ephemeral key EC', (b) => ({ ...b, ephemeralKey: { kty: 'EC', crv: 'P-256', x: 'a'.repeat(43), y: 'b'.repeat(43) } })],
  ['devices', (b) => ({ ...b, devices: [{ kind: 'nvidia-gpu', evidence: [{ a: 1 }] }] })],
  ['no challenge id', ({ challengeId: _, ...b }) => b],
  ['challenge id 15', (b) => ({ ...b, challengeId: 'A'.repeat(15) })],
  ['challenge id 16', (b) => ({ ...b, challengeId: 'A'.repeat(16) })],
  ['challenge id 64', (b) => ({ ...b, challengeId: 'A'.repeat(64) })],
  ['challenge id 65', (b) => ({ ...b, challengeId: 'A'.repeat(65) })],
  ['challenge id padded', (b) => ({ ...b, challengeId: `${'A'.repeat(20)}==` })],
  ['challenge id newline', (b) => ({ ...b, challengeId: `${'A'.repeat(20)}\n` })],
  ['challenge id number', (b) => ({ ...b, challengeId: 1234567890123456 })],
  ['provider unknown', (b) => ({ ...b, provider: 'qemu' })],
  ['provider upper', (b) => ({ ...b, provider: 'TPM' })],
  ['provider missing', ({ provider: _, ...b }) => b],
  ['provider aws', (b) => ({ ...b, provider: 'aws', format: 'nitrotpm' })],
  ['format upper', (b) => ({ ...b, format: 'TPM' })],
  ['format 32', (b) => ({ ...b, format: 'a'.repeat(32) })],
  ['format 33', (b) => ({ ...b, format: 'a'.repeat(33) })],
  ['format leading dash', (b) => ({ ...b, format: '-tpm' })],
  ['format missing', ({ format: _, ...b }) => b],
  ['evidence array', (b) => ({ ...b, evidence: [1] })],
  ['evidence null', (b) => ({ ...b, evidence: null })],
  ['evidence string', (b) => ({ ...b, evidence: 'AAAA' })],
  ['evidence empty', (b) => ({ ...b, evidence: {} })],
  ['evidence missing', ({ evidence: _, ...b }) => b],
  ['evidence depth 8', (b) => ({ ...b, evidence: { a: nest(7) } })],
  ['evidence depth 9', (b) => ({ ...b, evidence: { a: nest(8) } })],
  ['evidence depth 30', (b) => ({ ...b, evidence: { a: nest(29) } })],
  ['evidence deep in a long array', (b) => ({ ...b, evidence: { a: [...Array.from({ length: 5000 }, () => 0), nest(20)] } })],
  ['evidence class instance', (b) => ({ ...b, evidence: new Date(0) })],
  ['body array', (b) => [b]],
  ['body null', () => null],
  ['body string', () => 'x'],
  ['body Map', () => new Map()],
];

describe('attest body: fast path vs schema', () => {
  it.each(mutations)('%s', (_name, mutate) => {
    const body = mutate(base());
    const schema = AttestRequest.safeParse(body);
    const fast = fastAttestRequest(body);
    if (fast !== undefined) {
      expect(schema.success, 'the fast path accepted what the schema refuses').toBe(true);
      expect(fast).toEqual(schema.data);
    }
    const combined = parseAttestRequest(body);
    expect(combined.success).toBe(schema.success);
    if (combined.success && schema.success) expect(combined.data).toEqual(schema.data);
  });

  it('takes the common bodies itself (so the comparison above is not vacuous)', () => {
    for (const name of ['as is', 'want both', 'sealEnc CBC', 'diskKey', 'challenge id 64', 'evidence depth 8', 'provider aws']) {
      const m = mutations.find(([n]) => n === name)!;
      expect(fastAttestRequest(m[1](base())), name).toBeDefined();
    }
  });

  it('agrees with the schema on 3,000 random bodies', () => {
    let seed = 7;
    const rnd = (n: number) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    const pick = <T>(a: readonly T[]): T => a[rnd(a.length)]!;
    const values = [undefined, null, 0, 1, '', 'x', 'disk-key', 'bootstrap-token', 'A256GCM', 'tpm', 'aws', ID, [], ['disk-key'], ['bootstrap-token', 'disk-key'], {}, { wrapped: 'abc' }, { a: 1 }, [1]];
    const keys = ['challengeId', 'provider', 'format', 'evidence', 'want', 'sealEnc', 'diskKey', 'devices', 'extra'];
    let fastTaken = 0;
    for (let i = 0; i < 3000; i++) {
      const body = base();
      for (let j = rnd(4); j > 0; j--) {
        const k = pick(keys);
        const v = pick(values);
        if (v === undefined) delete body[k];
        else body[k] = v;
      }
      const schema = AttestRequest.safeParse(body);
      const fast = fastAttestRequest(body);
      if (fast !== undefined) {
        fastTaken++;
        expect(schema.success, JSON.stringify(body)).toBe(true);
        expect(fast).toEqual(schema.data);
      }
      expect(parseAttestRequest(body).success).toBe(schema.success);
    }
    expect(fastTaken).toBeGreaterThan(100);
  });
});

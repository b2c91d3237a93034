/**
 * The `gpus` rule (docs/policy.md): every check over every attested GPU, each failure with its
 * own code, warn mode, and `policy capture` writing the rule from a known-good node's GPUs.
 */
import { describe, expect, it } from 'vitest';
import { evaluatePolicy, versionAtLeast } from '../../broker/policy/evaluate.js';
import { capturePolicy } from '../../broker/policy/capture.js';
import type { Claims, GpuClaims } from '../../providers/common/types.js';
import { swtpm } from './fixtures/claims.js';
import { clone, NOW, policyFor } from './helpers.js';
import type { ClusterPolicy } from '../../broker/policy/schema.js';

const h100 = (o: Partial<GpuClaims> = {}): GpuClaims => ({
  vendor: 'nvidia',
  arch: 'hopper',
  chip: 'GH100',
  model: 'GH100 A01 GSP BROM',
  ccMode: true,
  measurementsOk: true,
  ppcie: false,
  driverVersion: '550.90.07',
  vbiosVersion: '96.00.9F.00.01',
  boardId: '2330',
  deviceCertSha256: 'ab'.repeat(32),
  ...o,
});
const withGpus = (gpus: GpuClaims[]): Claims => ({ ...clone(swtpm), gpus });
const rule = (g: NonNullable<ClusterPolicy['gpus']>) => (c: ClusterPolicy) => {
  c.gpus = g;
};
const ALL_ANY = { count: { min: 0 }, arch: 'any', ccMode: 'any', ppcie: 'any', minDriverVersion: 'any', minVbiosVersion: 'any', boardIds: 'any' } as const;

async function codes(claims: Claims, g: NonNullable<ClusterPolicy['gpus']>): Promise<string[]> {
  const d = evaluatePolicy(await policyFor(claims, rule(g)), claims, undefined, NOW);
  return d.rules.filter((r) => r.rule.startsWith('gpus') && (r.outcome === 'fail' || r.outcome === 'warn')).map((r) => r.code!);
}

describe('gpus rule', () => {
  it('passes a matching node, and records the rule skipped when absent or any', async () => {
    const c = withGpus([h100(), h100()]);
    expect(await codes(c, { count: { min: 2, max: 2 }, arch: ['hopper'], ccMode: 'required', ppcie: 'any', minDriverVersion: '550.54.14', minVbiosVersion: '96.00.74.00.01', boardIds: ['2330'] })).toEqual([]);
    // A policy without a gpus rule (captured from a node without GPUs) records the rule skipped.
    const plain = clone(swtpm);
    const none = evaluatePolicy(await policyFor(plain), plain, undefined, NOW);
    expect(none.rules.find((r) => r.rule === 'gpus')).toMatchObject({ outcome: 'skip' });
    const any = evaluatePolicy(await policyFor(plain, rule('any')), plain, undefined, NOW);
    expect(any.rules.find((r) => r.rule === 'gpus')).toMatchObject({ outcome: 'skip' });
  });

  it.each([
    ['too few', [h100()], { ...ALL_ANY, count: { min: 2 } }, 'POLICY_GPU_COUNT'],
    ['too many', [h100(), h100(), h100()], { ...ALL_ANY, count: { min: 1, max: 2 } }, 'POLICY_GPU_COUNT'],
    ['none at all', [], { ...ALL_ANY, count: { min: 1 } }, 'POLICY_GPU_COUNT'],
    ['another architecture', [h100({ arch: 'blackwell', chip: 'GB100' })], { ...ALL_ANY, arch: ['hopper'] }, 'POLICY_GPU_ARCH_NOT_ALLOWED'],
    ['one GPU not in CC mode', [h100(), h100({ ccMode: false })], { ...ALL_ANY, ccMode: 'required' }, 'POLICY_GPU_CC_MODE_OFF'],
    ['no protected PCIe', [h100()], { ...ALL_ANY, ppcie: 'required' }, 'POLICY_GPU_PPCIE_OFF'],
    ['an older driver', [h100({ driverVersion: '535.86.09' })], { ...ALL_ANY, minDriverVersion: '550.54.14' }, 'POLICY_GPU_DRIVER_TOO_OLD'],
    ['an older VBIOS (hex components)', [h100({ vbiosVersion: '96.00.5E.00.01' })], { ...ALL_ANY, minVbiosVersion: '96.00.9F.00.01' }, 'POLICY_GPU_VBIOS_TOO_OLD'],
    ['another board', [h100({ boardId: '1234' })], { ...ALL_ANY, boardIds: ['2330'] }, 'POLICY_GPU_BOARD_NOT_ALLOWED'],
    ['no board id at all', [h100({ boardId: undefined })], { ...ALL_ANY, boardIds: ['2330'] }, 'POLICY_GPU_BOARD_NOT_ALLOWED'],
  ] as const)('denies %s', async (_w, gpus, g, code) => {
    const c = withGpus([...gpus]);
    expect(await codes(c, g as NonNullable<ClusterPolicy['gpus']>)).toEqual([code]);
    const d = evaluatePolicy(await policyFor(c, rule(g as NonNullable<ClusterPolicy['gpus']>)), c, undefined, NOW);
    expect(d.allow).toBe(false);
  });

  it('warn mode records the failure and admits', async () => {
    const c = withGpus([h100({ driverVersion: '535.86.09' })]);
    const d = evaluatePolicy(await policyFor(c, rule({ ...ALL_ANY, mode: 'warn', minDriverVersion: '550.54.14' })), c, undefined, NOW);
    expect(d.allow).toBe(true);
    expect(d.rules.find((r) => r.rule === 'gpus.minDriverVersion')).toMatchObject({ outcome: 'warn', code: 'POLICY_GPU_DRIVER_TOO_OLD' });
  });

  it('compares versions component by component (decimal drivers, hex VBIOS)', () => {
    expect(versionAtLeast('550.90.07', '550.54.14', 10)).toBe(true);
    expect(versionAtLeast('550.9', '550.54.14', 10)).toBe(false);
    expect(versionAtLeast('96.00.9F.00.01', '96.00.A0.00.00', 16)).toBe(false);
    expect(versionAtLeast('96.00.A5.00.01', '96.00.9F.00.01', 16)).toBe(true);
    expect(versionAtLeast('96.00', '96.00.00.00.00', 16)).toBe(true);
    expect(versionAtLeast('x.1', '0.0', 10)).toBe(false);
  });

  it('refuses count.max below count.min in the policy file', async () => {
    await expect(policyFor(withGpus([]), rule({ ...ALL_ANY, count: { min: 2, max: 1 } }))).rejects.toThrow(/count\.max/);
  });
});

describe('policy capture with GPUs', () => {
  it('writes the known-good node’s GPUs as the rule, and the captured policy admits that node', async () => {
    const c = withGpus([h100(), h100({ vbiosVersion: '96.00.74.00.01', driverVersion: '550.54.14' })]);
    const { policy } = await capturePolicy(c, { cluster: 'gpu-pool', now: NOW });
    const g = policy.doc.clusters['gpu-pool']!.gpus;
    expect(g).toEqual({ count: { min: 2, max: 2 }, arch: ['hopper'], ccMode: 'required', ppcie: 'any', minDriverVersion: '550.54.14', minVbiosVersion: '96.00.74.00.01', boardIds: ['2330'] });
    expect(evaluatePolicy(policy, c, 'gpu-pool', NOW).allow).toBe(true);
    expect(evaluatePolicy(policy, withGpus([h100()]), 'gpu-pool', NOW).allow).toBe(false);
  });
});

/**
 * The runtime user-data freshness rule cannot be switched off by the attester-chosen `version`.
 * (Real vectors cover the positive cases and "v1 relabelled as v2"; a mismatching v1-labelled
 * report cannot be produced without re-signing, so the rule is tested directly here.)
 */
import { describe, expect, it } from 'vitest';
import { checkUserDataBinding } from '../../providers/azure/verify.js';
import { AttestError } from '../../providers/common/errors.js';

const binding = new Uint8Array(32).fill(7);
const code = (fn: () => void): string => {
  try {
    fn();
  } catch (e) {
    if (e instanceof AttestError) return e.code;
    throw e;
  }
  return 'OK';
};

describe('checkUserDataBinding', () => {
  it.each([
    ['v1, all-zero user-data (paravisor without refresh)', 1, new Uint8Array(64), 'OK'],
    ['v1, no user-data', 1, undefined, 'OK'],
    ['v1, user-data starting with the binding', 1, new Uint8Array([...binding, 0, 0]), 'OK'],
    ['v2 relabelled v1: non-zero user-data of another nonce', 1, new Uint8Array(64).fill(9), 'HCL_USER_DATA_MISMATCH'],
    ['v2, user-data starting with the binding', 2, new Uint8Array([...binding, 0]), 'OK'],
    ['v2, no user-data', 2, undefined, 'HCL_USER_DATA_MISSING'],
    ['v2, all-zero user-data', 2, new Uint8Array(64), 'HCL_USER_DATA_MISMATCH'],
    ['v2, user-data shorter than the binding', 2, binding.subarray(0, 16), 'HCL_USER_DATA_MISMATCH'],
    ['v2, one bit off', 2, (() => { const u = new Uint8Array([...binding]); u[31]! ^= 1; return u; })(), 'HCL_USER_DATA_MISMATCH'],
  ])('%s → %s', (_n, version, ud, want) => {
    expect(code(() => checkUserDataBinding(version as number, ud as Uint8Array | undefined, binding))).toBe(want);
  });
});

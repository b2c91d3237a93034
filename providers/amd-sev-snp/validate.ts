/**
 * @module providers/amd-sev-snp/validate
 *
 * Compares a verified SEV-SNP report with what the operator expects. Every option is written
 * out: `'forbid' | 'allow'` for policy bits, `{ expect } | 'any'` for values — never
 * "optional means unchecked" (house style 7). `strictSnpOptions()` is the default the
 * providers use: no debug, no migration agent, VMPL 0, everything else `'any'`.
 *
 * Checks (each with its own code):
 * - guest policy DEBUG (bit 19) → SNP_POLICY_DEBUG: the hypervisor could read and write guest
 *   memory, so nothing the guest says can be trusted;
 * - guest policy MIGRATE_MA (bit 18) → SNP_POLICY_MIGRATE_MA: a migration agent could export
 *   the guest's memory;
 * - SMT allowed (bit 16) → SNP_POLICY_SMT (when forbidden: side-channel-sensitive deployments);
 * - SINGLE_SOCKET required → SNP_POLICY_SINGLE_SOCKET;
 * - VMPL → SNP_VMPL_MISMATCH (VMPL 0 on Azure: the paravisor's report, not a lower-privilege one);
 * - MEASUREMENT (one of) → SNP_MEASUREMENT_MISMATCH; HOST_DATA → SNP_HOST_DATA_MISMATCH;
 *   ID_KEY_DIGEST (one of) → SNP_ID_KEY_DIGEST_MISMATCH; REPORT_DATA → SNP_REPORT_DATA_MISMATCH;
 * - REPORTED_TCB at least a minimum per component → SNP_TCB_TOO_LOW;
 * - GUEST_SVN at least a minimum → SNP_GUEST_SVN_TOO_LOW;
 * - product in an allow-list → SNP_PRODUCT_NOT_ALLOWED; signer VCEK/VLEK → SNP_SIGNER_NOT_ALLOWED.
 */
import { rejected } from '../common/errors.js';
import { timingSafeEqual } from '../common/ct.js';
import { fromHex, toHex } from '../common/encoding.js';
import type { SnpProduct, SnpTcb } from './parse.js';
import type { VerifiedSnpReport } from './verify.js';

export const SnpValidateCodes = {
  SNP_POLICY_DEBUG: 'SNP_POLICY_DEBUG',
  SNP_POLICY_MIGRATE_MA: 'SNP_POLICY_MIGRATE_MA',
  SNP_POLICY_SMT: 'SNP_POLICY_SMT',
  SNP_POLICY_SINGLE_SOCKET: 'SNP_POLICY_SINGLE_SOCKET',
  SNP_VMPL_MISMATCH: 'SNP_VMPL_MISMATCH',
  SNP_MEASUREMENT_MISMATCH: 'SNP_MEASUREMENT_MISMATCH',
  SNP_HOST_DATA_MISMATCH: 'SNP_HOST_DATA_MISMATCH',
  SNP_ID_KEY_DIGEST_MISMATCH: 'SNP_ID_KEY_DIGEST_MISMATCH',
  SNP_REPORT_DATA_MISMATCH: 'SNP_REPORT_DATA_MISMATCH',
  SNP_TCB_TOO_LOW: 'SNP_TCB_TOO_LOW',
  SNP_GUEST_SVN_TOO_LOW: 'SNP_GUEST_SVN_TOO_LOW',
  SNP_PRODUCT_NOT_ALLOWED: 'SNP_PRODUCT_NOT_ALLOWED',
  SNP_SIGNER_NOT_ALLOWED: 'SNP_SIGNER_NOT_ALLOWED',
} as const;

export type Expect<T> = { readonly expect: T } | 'any';

export interface SnpValidateOptions {
  readonly debug: 'forbid' | 'allow';
  readonly migrateMa: 'forbid' | 'allow';
  readonly smt: 'forbid' | 'allow';
  readonly singleSocket: 'require' | 'any';
  readonly vmpl: Expect<number>;
  /** Hex, any one of them. */
  readonly measurement: Expect<readonly string[]>;
  readonly hostData: Expect<string>;
  /** Hex, any one of them. */
  readonly idKeyDigest: Expect<readonly string[]>;
  readonly reportData: Expect<Uint8Array>;
  readonly minimumTcb: Expect<Partial<SnpTcb>>;
  readonly minimumGuestSvn: Expect<number>;
  readonly products: Expect<readonly SnpProduct[]>;
  readonly signers: Expect<readonly ('vcek' | 'vlek')[]>;
}

/** The default: authentic, not debuggable, no migration agent, VMPL 0. */
export function strictSnpOptions(over: Partial<SnpValidateOptions> = {}): SnpValidateOptions {
  return Object.freeze({
    debug: 'forbid',
    migrateMa: 'forbid',
    smt: 'allow',
    singleSocket: 'any',
    vmpl: { expect: 0 },
    measurement: 'any',
    hostData: 'any',
    idKeyDigest: 'any',
    reportData: 'any',
    minimumTcb: 'any',
    minimumGuestSvn: 'any',
    products: 'any',
    signers: 'any',
    ...over,
  });
}

function oneOfHex(actual: Uint8Array, expected: readonly string[]): boolean {
  let hit = false;
  for (const e of expected) {
    const want = fromHex(e.toLowerCase(), 'expected value');
    if (timingSafeEqual(actual, want)) hit = true;
  }
  return hit;
}

/** Throws the first violated expectation; returns nothing when the report satisfies `o`. */
export function validateSnpReport(v: VerifiedSnpReport, o: SnpValidateOptions): void {
  const r = v.report;
  if (o.debug === 'forbid' && r.policy.debug) {
    throw rejected(SnpValidateCodes.SNP_POLICY_DEBUG, 'the guest policy allows debugging (DEBUG bit 19 set)');
  }
  if (o.migrateMa === 'forbid' && r.policy.migrateMa) {
    throw rejected(SnpValidateCodes.SNP_POLICY_MIGRATE_MA, 'the guest policy allows a migration agent (MIGRATE_MA bit 18 set)');
  }
  if (o.smt === 'forbid' && r.policy.smt) throw rejected(SnpValidateCodes.SNP_POLICY_SMT, 'the guest policy allows SMT');
  if (o.singleSocket === 'require' && !r.policy.singleSocket) {
    throw rejected(SnpValidateCodes.SNP_POLICY_SINGLE_SOCKET, 'the guest policy does not require a single socket');
  }
  if (o.vmpl !== 'any' && r.vmpl !== o.vmpl.expect) {
    throw rejected(SnpValidateCodes.SNP_VMPL_MISMATCH, `report VMPL is ${r.vmpl}, expected ${o.vmpl.expect}`);
  }
  if (o.measurement !== 'any' && !oneOfHex(r.measurement, o.measurement.expect)) {
    throw rejected(SnpValidateCodes.SNP_MEASUREMENT_MISMATCH, `launch measurement ${toHex(r.measurement)} is not an expected one`);
  }
  if (o.hostData !== 'any' && !oneOfHex(r.hostData, [o.hostData.expect])) {
    throw rejected(SnpValidateCodes.SNP_HOST_DATA_MISMATCH, 'HOST_DATA differs from the expected value');
  }
  if (o.idKeyDigest !== 'any' && !oneOfHex(r.idKeyDigest, o.idKeyDigest.expect)) {
    throw rejected(SnpValidateCodes.SNP_ID_KEY_DIGEST_MISMATCH, `ID_KEY_DIGEST ${toHex(r.idKeyDigest)} is not an expected one`);
  }
  if (o.reportData !== 'any' && !timingSafeEqual(r.reportData, o.reportData.expect)) {
    throw rejected(SnpValidateCodes.SNP_REPORT_DATA_MISMATCH, 'REPORT_DATA differs from the expected value');
  }
  if (o.minimumTcb !== 'any') {
    const min = o.minimumTcb.expect;
    const t = v.reportedTcb;
    for (const k of ['bootloader', 'tee', 'snp', 'microcode', 'fmc'] as const) {
      const want = min[k];
      if (want === undefined) continue;
      const have = t[k];
      if (have === undefined || have < want) {
        throw rejected(SnpValidateCodes.SNP_TCB_TOO_LOW, `reported TCB ${k} ${have ?? 'absent'} is below the minimum ${want}`);
      }
    }
  }
  if (o.minimumGuestSvn !== 'any' && r.guestSvn < o.minimumGuestSvn.expect) {
    throw rejected(SnpValidateCodes.SNP_GUEST_SVN_TOO_LOW, `GUEST_SVN ${r.guestSvn} is below ${o.minimumGuestSvn.expect}`);
  }
  if (o.products !== 'any' && !o.products.expect.includes(v.product)) {
    throw rejected(SnpValidateCodes.SNP_PRODUCT_NOT_ALLOWED, `product ${v.product} is not allowed`);
  }
  if (o.signers !== 'any' && !o.signers.expect.includes(v.signer)) {
    throw rejected(SnpValidateCodes.SNP_SIGNER_NOT_ALLOWED, `reports signed by a ${v.signer.toUpperCase()} are not allowed`);
  }
}

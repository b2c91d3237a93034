/**
 * @module providers/intel-tdx/validate
 *
 * Compares a verified TD quote with what the operator expects. Options are written out
 * (`'forbid' | 'allow'`, `{ expect } | 'any'`); `strictTdxOptions()` forbids debug TDs and
 * leaves measurements to policy.
 *
 * Checks (each with its own code):
 * - TDATTRIBUTES.DEBUG (bit 0) → TDX_DEBUG: the host VMM can read and write TD state;
 * - MRTD (one of) → TDX_MRTD_MISMATCH; RTMR0..3 → TDX_RTMR_MISMATCH; MRSEAM (one of)
 *   → TDX_MRSEAM_MISMATCH; XFAM → TDX_XFAM_MISMATCH; TDATTRIBUTES → TDX_ATTRIBUTES_MISMATCH;
 * - TEE_TCB_SVN at least a minimum, byte by byte → TDX_TCB_SVN_TOO_LOW;
 * - REPORTDATA → TDX_REPORT_DATA_MISMATCH;
 * - `tcbStatus`: evaluating the platform TCB level needs Intel PCS collateral (TCB Info and
 *   QE Identity for the FMSPC, signed by the Intel TCB signing key, plus the PCK CRL). It is
 *   `'off'` by default because no collateral is reachable here. Turning it on without
 *   collateral rejects (TDX_COLLATERAL_MISSING); collateral evaluation itself is not built yet,
 *   so supplying collateral rejects too (TDX_TCB_EVALUATION_UNSUPPORTED) — fail closed, never
 *   "enabled but skipped".
 */
import { rejected } from '../common/errors.js';
import { timingSafeEqual } from '../common/ct.js';
import { fromHex } from '../common/encoding.js';
import { tdDebug } from './parse.js';
import type { VerifiedTdQuote } from './verify.js';

export const TdxValidateCodes = {
  TDX_DEBUG: 'TDX_DEBUG',
  TDX_MRTD_MISMATCH: 'TDX_MRTD_MISMATCH',
  TDX_RTMR_MISMATCH: 'TDX_RTMR_MISMATCH',
  TDX_MRSEAM_MISMATCH: 'TDX_MRSEAM_MISMATCH',
  TDX_XFAM_MISMATCH: 'TDX_XFAM_MISMATCH',
  TDX_ATTRIBUTES_MISMATCH: 'TDX_ATTRIBUTES_MISMATCH',
  TDX_TCB_SVN_TOO_LOW: 'TDX_TCB_SVN_TOO_LOW',
  TDX_REPORT_DATA_MISMATCH: 'TDX_REPORT_DATA_MISMATCH',
  TDX_COLLATERAL_MISSING: 'TDX_COLLATERAL_MISSING',
  TDX_TCB_EVALUATION_UNSUPPORTED: 'TDX_TCB_EVALUATION_UNSUPPORTED',
} as const;

type Expect<T> = { readonly expect: T } | 'any';

export interface TdxCollateral {
  readonly tcbInfo?: string;
  readonly qeIdentity?: string;
  readonly pckCrl?: Uint8Array;
}

export interface TdxValidateOptions {
  readonly debug: 'forbid' | 'allow';
  readonly mrTd: Expect<readonly string[]>;
  readonly rtmrs: Expect<readonly [string | 'any', string | 'any', string | 'any', string | 'any']>;
  readonly mrSeam: Expect<readonly string[]>;
  readonly xfam: Expect<string>;
  readonly tdAttributes: Expect<string>;
  /** 16 bytes hex, compared byte by byte. */
  readonly minimumTeeTcbSvn: Expect<string>;
  readonly reportData: Expect<Uint8Array>;
  readonly tcbStatus: 'off' | { readonly collateral?: TdxCollateral };
}

export function strictTdxOptions(over: Partial<TdxValidateOptions> = {}): TdxValidateOptions {
  return Object.freeze({
    debug: 'forbid',
    mrTd: 'any',
    rtmrs: 'any',
    mrSeam: 'any',
    xfam: 'any',
    tdAttributes: 'any',
    minimumTeeTcbSvn: 'any',
    reportData: 'any',
    tcbStatus: 'off',
    ...over,
  });
}

const eqHex = (a: Uint8Array, hex: string): boolean => timingSafeEqual(a, fromHex(hex.toLowerCase(), 'expected value'));

export function validateTdQuote(v: VerifiedTdQuote, o: TdxValidateOptions): void {
  const b = v.quote.body;
  if (o.debug === 'forbid' && tdDebug(b)) throw rejected(TdxValidateCodes.TDX_DEBUG, 'the TD is debuggable (TDATTRIBUTES.DEBUG set)');
  if (o.mrTd !== 'any' && !o.mrTd.expect.some((h) => eqHex(b.mrTd, h))) throw rejected(TdxValidateCodes.TDX_MRTD_MISMATCH, 'MRTD is not an expected value');
  if (o.rtmrs !== 'any') {
    o.rtmrs.expect.forEach((h, i) => {
      if (h !== 'any' && !eqHex(b.rtmrs[i]!, h)) throw rejected(TdxValidateCodes.TDX_RTMR_MISMATCH, `RTMR${i} is not the expected value`);
    });
  }
  if (o.mrSeam !== 'any' && !o.mrSeam.expect.some((h) => eqHex(b.mrSeam, h))) throw rejected(TdxValidateCodes.TDX_MRSEAM_MISMATCH, 'MRSEAM is not an expected TDX module');
  if (o.xfam !== 'any' && !eqHex(b.xfam, o.xfam.expect)) throw rejected(TdxValidateCodes.TDX_XFAM_MISMATCH, 'XFAM is not the expected value');
  if (o.tdAttributes !== 'any' && !eqHex(b.tdAttributes, o.tdAttributes.expect)) throw rejected(TdxValidateCodes.TDX_ATTRIBUTES_MISMATCH, 'TDATTRIBUTES are not the expected value');
  if (o.minimumTeeTcbSvn !== 'any') {
    const min = fromHex(o.minimumTeeTcbSvn.expect, 'minimum TEE_TCB_SVN');
    for (let i = 0; i < 16; i++) {
      if ((b.teeTcbSvn[i] ?? 0) < (min[i] ?? 0)) throw rejected(TdxValidateCodes.TDX_TCB_SVN_TOO_LOW, `TEE_TCB_SVN[${i}] is below the minimum`);
    }
  }
  if (o.reportData !== 'any' && !timingSafeEqual(b.reportData, o.reportData.expect)) throw rejected(TdxValidateCodes.TDX_REPORT_DATA_MISMATCH, 'REPORTDATA differs');
  if (o.tcbStatus !== 'off') {
    const c = o.tcbStatus.collateral;
    if (!c || (!c.tcbInfo && !c.qeIdentity && !c.pckCrl)) {
      throw rejected(TdxValidateCodes.TDX_COLLATERAL_MISSING, 'TCB-status evaluation is enabled but no Intel collateral (TCB Info, QE Identity, PCK CRL) was supplied');
    }
    throw rejected(TdxValidateCodes.TDX_TCB_EVALUATION_UNSUPPORTED, 'TCB-status evaluation from Intel collateral is not implemented; turn tcbStatus off or verify through Intel/Azure services');
  }
}

/**
 * @module providers/intel-tdx/claims
 *
 * The normalized platform claims of a verified TDX quote (providers/common/types.ts
 * `PlatformClaims`), for every provider that carries one (Azure's az-tdx-vtpm today): the TD's
 * MRTD as the measurement, the TEE TCB SVN components as the TCB, and the quote body's other
 * registers as fields that policy and capture read.
 */
import { toHex } from '../common/encoding.js';
import type { PlatformClaims } from '../common/types.js';
import { tdDebug } from './parse.js';
import type { VerifiedTdQuote } from './verify.js';

export function tdxPlatformClaims(t: VerifiedTdQuote): PlatformClaims {
  const b = t.quote.body;
  const tcb: Record<string, number> = {};
  b.teeTcbSvn.forEach((x, i) => (tcb[`teeTcbSvn${i}`] = x));
  const fields: Record<string, string | number | boolean> = {
    mrSeam: toHex(b.mrSeam),
    mrSignerSeam: toHex(b.mrSignerSeam),
    seamAttributes: toHex(b.seamAttributes),
    tdAttributes: toHex(b.tdAttributes),
    xfam: toHex(b.xfam),
    mrConfigId: toHex(b.mrConfigId),
    mrOwner: toHex(b.mrOwner),
    mrOwnerConfig: toHex(b.mrOwnerConfig),
    rtmr0: toHex(b.rtmrs[0]),
    rtmr1: toHex(b.rtmrs[1]),
    rtmr2: toHex(b.rtmrs[2]),
    rtmr3: toHex(b.rtmrs[3]),
    teeTcbSvn: toHex(b.teeTcbSvn),
    reportData: toHex(b.reportData),
    pckIssuer: t.pckIssuer,
    qeSvn: t.quote.qeReport.isvSvn,
    tcbStatus: 'not-evaluated',
  };
  if (t.fmspc) fields.fmspc = t.fmspc;
  return { tee: 'tdx', debug: tdDebug(b), tcb, measurement: toHex(b.mrTd), fields };
}

/**
 * @module providers/amd-sev-snp/claims
 *
 * Normalized platform claims of a verified SEV-SNP report, one shape for every provider that
 * carries one (Azure HCL report, GCP Confidential VM). Only fields of the signed report and of
 * its verified endorsement key appear here.
 */
import { toHex } from '../common/encoding.js';
import type { PlatformClaims } from '../common/types.js';
import type { VerifiedSnpReport } from './verify.js';

export function snpPlatformClaims(s: VerifiedSnpReport): PlatformClaims {
  const r = s.report;
  const tcb: Record<string, number> = { bootloader: s.reportedTcb.bootloader, tee: s.reportedTcb.tee, snp: s.reportedTcb.snp, microcode: s.reportedTcb.microcode };
  if (s.reportedTcb.fmc !== undefined) tcb.fmc = s.reportedTcb.fmc;
  return {
    tee: 'sev-snp',
    debug: r.policy.debug,
    tcb,
    measurement: toHex(r.measurement),
    chipId: toHex(r.chipId),
    fields: {
      product: s.product,
      signer: s.signer,
      reportVersion: r.version,
      vmpl: r.vmpl,
      policy: `0x${r.policy.raw.toString(16)}`,
      smt: r.policy.smt,
      migrateMa: r.policy.migrateMa,
      singleSocket: r.policy.singleSocket,
      guestSvn: r.guestSvn,
      familyId: toHex(r.familyId),
      imageId: toHex(r.imageId),
      hostData: toHex(r.hostData),
      idKeyDigest: toHex(r.idKeyDigest),
      authorKeyDigest: toHex(r.authorKeyDigest),
      reportData: toHex(r.reportData),
      endorsementKeySha256: s.endorsementKeySha256,
    },
  };
}

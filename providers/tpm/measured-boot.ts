/**
 * @module providers/tpm/measured-boot
 *
 * The measured-boot hook the `tpm`, GCP and AWS providers call once a quote is verified:
 * parse the TCG event log (eventlog.ts), replay it and require it to reproduce the quoted PCRs,
 * then summarize only the verified events for policy (boot.ts).
 *
 * Order matters and is fixed here so no provider can get it wrong: nothing is read from the log
 * for policy before its replay matched PCR values that a verified quote vouches for.
 */
import type { BootClaims, PcrBank } from '../common/types.js';
import { summarizeBoot } from './boot.js';
import { parseEventLog, verifyEventLogAgainstPcrs, type ParseEventLogOptions, type QuotedPcrValues, type VerifiedEventLog, type VerifyEventLogOptions } from './eventlog.js';

export interface ReplayAndSummarizeOptions extends ParseEventLogOptions, VerifyEventLogOptions {
  /** Bank whose digests the boot summary reports (default sha256, else the strongest verified). */
  digestBank?: PcrBank;
}

export interface ReplayAndSummarizeResult {
  /** Banks whose replay matched the quote. */
  readonly replayedBanks: readonly PcrBank[];
  readonly boot: BootClaims;
  readonly verified: VerifiedEventLog;
}

/**
 * @param logBytes the raw event log (binary_bios_measurements)
 * @param quotedPcrs PCR values (hex or bytes) from a quote whose signature and pcrDigest are already verified
 * @throws AttestError EVENTLOG_* (parse, replay mismatch) or BOOT_* (malformed verified data)
 */
export async function replayAndSummarize(
  logBytes: Uint8Array,
  quotedPcrs: QuotedPcrValues,
  opts: ReplayAndSummarizeOptions = {},
): Promise<ReplayAndSummarizeResult> {
  const log = parseEventLog(logBytes, opts);
  const verified = await verifyEventLogAgainstPcrs(log, quotedPcrs, opts);
  const boot = await summarizeBoot(verified, opts.digestBank === undefined ? {} : { digestBank: opts.digestBank });
  return { replayedBanks: verified.banks, boot, verified };
}

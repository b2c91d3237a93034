/**
 * @module providers/aws/quote
 *
 * The optional TPM quote (and event log) carried next to a NitroTPM document.
 *
 * Not wired yet: the shared TPM core (`providers/tpm/quote.ts`, `providers/tpm/eventlog.ts`) is
 * built on other branches. Until it is merged here, evidence that carries a quote or an event log
 * is REJECTED with a typed `not-implemented` error — never ignored, because a caller who sent a
 * quote expects it to have been checked.
 */
import { AttestError } from '../common/errors.js';
import type { NitroTpmDocument, TpmQuoteInput } from './parse.js';
import type { PlatformKey } from './keys.js';

export const QuoteCodes = {
  /** This build cannot verify a TPM quote inside `nitrotpm` evidence. */
  QUOTE_UNSUPPORTED: 'QUOTE_UNSUPPORTED',
  /** This build cannot replay an event log inside `nitrotpm` evidence. */
  EVENT_LOG_UNSUPPORTED: 'EVENT_LOG_UNSUPPORTED',
} as const;

export async function verifyNitroQuote(
  _doc: NitroTpmDocument,
  _key: PlatformKey | undefined,
  _quote: TpmQuoteInput,
  _binding: Uint8Array,
): Promise<void> {
  throw new AttestError(QuoteCodes.QUOTE_UNSUPPORTED, 'TPM quotes in nitrotpm evidence are not supported by this build', {
    kind: 'not-implemented',
  });
}

export async function replayNitroEventLog(_doc: NitroTpmDocument, _log: Uint8Array): Promise<never> {
  throw new AttestError(QuoteCodes.EVENT_LOG_UNSUPPORTED, 'event logs in nitrotpm evidence are not supported by this build', {
    kind: 'not-implemented',
  });
}

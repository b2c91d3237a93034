/**
 * @module providers/aws/quote
 *
 * The optional TPM quote (and event log) carried next to a NitroTPM document.
 *
 * The NitroTPM document alone already carries PCR values signed by the Nitro hypervisor. A quote
 * adds the TPM's own statement, signed by the attestation key (AK) that the document certifies in
 * `public_key` — the same construction vaportpm verifies, and the piece Constellation's NitroTPM
 * path skips (it never ties the AK to the document). `verifyNitroQuote` checks:
 * - the document certifies a key (`public_key` present); that key — and only that key — is the AK;
 * - the quote's PCR values are given for exactly one bank, SHA-384, the bank NitroTPM reports
 *   (`QUOTE_PCR_BANK_INVALID` for SHA-256 instead, or mixed banks);
 * - through the TPM core `verifyQuote` (providers/tpm/quote.ts): the signature verifies over the
 *   raw TPMS_ATTEST with that AK (`QUOTE_SIGNATURE_INVALID`), magic/type, extraData equals the
 *   binding (`NONCE_MISMATCH`), the supplied values cover exactly the selection, and pcrDigest
 *   matches them (`PCR_DIGEST_MISMATCH`); only the SHA-384 bank is allowed in the selection;
 * - the quoted PCRs equal the document's `nitrotpm_pcrs`: same index set, same values
 *   (`QUOTE_PCR_MISMATCH`), so both signers vouch for one state.
 *
 * Signature forms: a marshalled TPMT_SIGNATURE (protocol §3; it starts with the big-endian
 * TPM_ALG_ID, first byte 0x00), or — as in the vaportpm fixture — a bare ASN.1 DER
 * ECDSA-Sig-Value (first byte 0x30, a SEQUENCE), whose hash is then the AK curve's
 * (SHA-256 for P-256, SHA-384 for P-384).
 *
 * Event logs (`replayNitroEventLog`): replayed against the document's SHA-384 PCRs by the TPM
 * core (`providers/tpm/measured-boot.ts`); any mismatch is `EVENTLOG_REPLAY_MISMATCH`, and only
 * events in PCRs that matched feed the boot claims.
 */
import { rejected } from '../common/errors.js';
import type { BootClaims } from '../common/types.js';
import { replayAndSummarize } from '../tpm/measured-boot.js';
import { timingSafeEqual } from '../common/ct.js';
import { toHex } from '../common/encoding.js';
import { verifyQuote, type RawSignature, type VerifiedQuote } from '../tpm/quote.js';
import type { NitroTpmDocument, TpmQuoteInput } from './parse.js';
import type { PlatformKey } from './keys.js';

export const QuoteCodes = {
  /** The document certifies no key, so nothing can vouch for the quote's signer. */
  QUOTE_AK_UNCERTIFIED: 'QUOTE_AK_UNCERTIFIED',
  /** The quote's PCR values are not exactly the SHA-384 bank. */
  QUOTE_PCR_BANK_INVALID: 'QUOTE_PCR_BANK_INVALID',
  /** The quoted PCRs differ from the document's `nitrotpm_pcrs`. */
  QUOTE_PCR_MISMATCH: 'QUOTE_PCR_MISMATCH',
} as const;

function signatureOf(bytes: Uint8Array, key: PlatformKey): Uint8Array | RawSignature {
  if (bytes[0] === 0x30 && key.kind !== 'rsa') {
    return { scheme: 'ecdsa', hash: key.kind === 'ec-p384' ? 'sha384' : 'sha256', bytes, encoding: 'der' };
  }
  return bytes;
}

/** Verifies the quote against the document; see the module header. Returns the verified quote. */
export async function verifyNitroQuote(
  doc: NitroTpmDocument,
  key: PlatformKey | undefined,
  quote: TpmQuoteInput,
  binding: Uint8Array,
): Promise<VerifiedQuote> {
  if (!key) {
    throw rejected(QuoteCodes.QUOTE_AK_UNCERTIFIED, 'the document has no public_key, so no certified AK can verify the quote');
  }
  const banks = Object.keys(quote.pcrs);
  if (banks.length !== 1 || banks[0] !== 'sha384') {
    throw rejected(QuoteCodes.QUOTE_PCR_BANK_INVALID, `quote PCRs must be exactly the sha384 bank, got [${banks.join(', ')}]`);
  }
  const q = await verifyQuote({
    message: quote.message,
    signature: signatureOf(quote.signature, key),
    ak: { spki: key.spki },
    binding,
    pcrs: { sha384: quote.pcrs.sha384 ?? {} },
    pcrBanks: ['sha384'],
  });
  const quoted = q.pcrBytes.sha384 ?? {};
  const quotedIdx = Object.keys(quoted).map(Number);
  if (quotedIdx.length !== doc.pcrs.size) {
    throw rejected(QuoteCodes.QUOTE_PCR_MISMATCH, 'the quote selects other PCRs than the document reports');
  }
  for (const [i, v] of doc.pcrs) {
    const bytes = Object.prototype.hasOwnProperty.call(quoted, i) ? quoted[i] : undefined;
    if (bytes === undefined || !timingSafeEqual(bytes, v)) {
      throw rejected(QuoteCodes.QUOTE_PCR_MISMATCH, `quoted PCR ${i} differs from the document's (${toHex(v).slice(0, 16)}…)`);
    }
  }
  return q;
}

export interface NitroEventLogOptions {
  /** systemd-pcrphase words extended into PCR 11 when the document was taken (docs/tpm-eventlog.md). */
  pcr11Phases?: readonly string[];
}

/**
 * Replays the TCG event log against the document's SHA-384 PCRs (through the TPM core's
 * `replayAndSummarize`, the one fixed order: parse → replay and compare → summarize verified
 * events only). The document's `nitrotpm_pcrs` are PCR values the Nitro hypervisor signed, so they
 * play the role of "quoted" PCRs here whether or not a TPM quote came along (with a quote, they
 * were shown equal to the quoted values first). Returns the boot claims, reported in SHA-384.
 */
export async function replayNitroEventLog(doc: NitroTpmDocument, log: Uint8Array, opts: NitroEventLogOptions = {}): Promise<BootClaims> {
  const sha384: Record<number, Uint8Array> = {};
  for (const [i, v] of doc.pcrs) sha384[i] = v;
  const { boot } = await replayAndSummarize(log, { sha384 }, {
    digestBank: 'sha384',
    ...(opts.pcr11Phases !== undefined ? { pcr11Phases: opts.pcr11Phases } : {}),
  });
  return boot;
}

/**
 * @module providers/gcp/verify
 *
 * Verifies a parsed go-tpm-tools `Attestation` the way go-tpm-tools `server.VerifyAttestation`
 * does with `TrustedRootCerts`, plus the checks a broker needs that it leaves to callers.
 *
 * Checks (each failing with the code in brackets; tests in test/gcp). Nothing is trusted until
 * all have passed; the cheap ones run first, so the order only decides which error a forgery gets:
 * - a TDX quote (tdx_attestation) is refused [TEE_REPORT_UNSUPPORTED]: its verifier is not wired
 *   in for this proto form yet, and a report that is not verified must never be silently ignored
 *   while the attestation is accepted;
 * - `ak_pub` (TPMT_PUBLIC) parses and is a restricted signing key (tpm core) [AK_ATTRIBUTES_INVALID];
 * - every quote, in every bank present, verifies with that key over its raw TPMS_ATTEST, carries
 *   the binding as extraData, and its PCR values match pcrDigest (tpm core `verifyQuote`)
 *   [QUOTE_*, NONCE_MISMATCH, PCR_*]; SHA-1 signatures are never allowed; a SHA-1 *bank* quote is
 *   still verified (a tampered one is rejected) but its values are only reported when the
 *   operator allows SHA-1, and an attestation whose only bank is SHA-1 is refused
 *   [SHA1_NOT_ALLOWED]; every bank the operator requires (default SHA-256) must be among the
 *   verified ones [PCR_BANK_MISSING]; a bank appearing twice is refused [DUPLICATE_PCR_BANK]; a PCRs.hash that
 *   is not sha1/sha256/sha384 is refused [ALGORITHM_NOT_ALLOWED];
 * - each quote's qualifiedSigner equals the Qualified Name of ak_pub as a primary key of the
 *   endorsement hierarchy, QN = nameAlg ‖ H(TPM_RH_ENDORSEMENT ‖ Name) (TPM 2.0 Part 1 §16),
 *   which is how GCE provisions its AKs (true of every real vector). This binds every byte of
 *   ak_pub, not just its key [AK_QUALIFIED_NAME_MISMATCH];
 * - the AK certificate chains to a pinned Google root, fits Google's profile and carries a
 *   production instance identity (akcert.ts) [AK_CERT_*, CHAIN_*, CERT_*, INSTANCE_*,
 *   TRUST_ANCHOR_MISSING];
 * - the certificate's public key equals ak_pub's [AK_CERT_KEY_MISMATCH] (go-tpm-tools ignores
 *   ak_pub when a certificate is present; checking both ties the cert to the quoting key);
 * - a client-reported `instance_info`, when present, equals the certificate's signed identity
 *   [INSTANCE_INFO_MISMATCH]; it is never a source of claims;
 * - the event log, when present, is parsed and replayed against the verified PCRs of every
 *   allowed bank it shares with the quotes; every PCR it extends that a quote covers must match
 *   (providers/tpm/eventlog.ts) [EVENTLOG_*]; boot facts (Secure Boot, PCR 7 variables, boot
 *   applications, GRUB kernel command line, UKI sections) come only from replay-verified events
 *   whose data is proven by its digest (providers/tpm/boot.ts) [BOOT_*]. A log that does not
 *   replay fails the attestation, as in go-tpm-tools. Without a log there are no boot claims.
 *   `canonical_event_log` (the COS launcher's Canonical Event Log) is not interpreted and no
 *   claim is derived from it;
 * - a SEV-SNP report (sev_snp_attestation, sevsnp.ts) is rebuilt byte-exactly from its proto
 *   [SNP_PROTO_INVALID], verified to the pinned AMD ARK for its product with the VCEK/VLEK and
 *   ASK from the evidence or AMD KDS (providers/amd-sev-snp) [SNP_*, CHAIN_*, KDS_*], its
 *   REPORT_DATA must be the binding zero-padded to 64 bytes [SNP_REPORT_DATA_MISMATCH] and its
 *   policy strict (no debug, no migration agent, VMPL 0). go-tpm-tools binds the report to the
 *   quotes through the shared nonce only (docs/gcp.md).
 */
import { AttestError, rejected } from '../common/errors.js';
import { timingSafeEqual } from '../common/ct.js';
import { concat, u32be, u16be } from '../common/bytes.js';
import { digest } from '../common/digest.js';
import { toHex } from '../common/encoding.js';
import type { BootClaims, PcrBank, Hex, TrustStore } from '../common/types.js';
import { parseCertificate, type Certificate } from '../common/x509.js';
import { verifyQuote, prepareAk, type VerifiedQuote } from '../tpm/quote.js';
import { algFromHash, computeName, type TpmtPublic } from '../tpm/structures.js';
import { keyFromSpki, type NormalizedKey } from '../tpm/keys.js';
import { TpmCodes } from '../tpm/codes.js';
import { replayAndSummarize } from '../tpm/measured-boot.js';
import type { QuotedPcrValues } from '../tpm/eventlog.js';
import { strictSnpOptions, verifySnpAttestation, type KdsClient, type SnpVerifyCache, type VerifiedSnpReport } from '../amd-sev-snp/index.js';
import { expectedReportData, parseGcpSevSnp } from './sevsnp.js';
import { verifyAkCertificate, type VerifiedAkCert } from './akcert.js';
import { HashAlgo, GcpParseCodes, type GotpmAttestation } from './parse.js';

export const GcpCodes = {
  TEE_REPORT_UNSUPPORTED: 'TEE_REPORT_UNSUPPORTED',
  AK_CERT_KEY_MISMATCH: 'AK_CERT_KEY_MISMATCH',
  AK_QUALIFIED_NAME_MISMATCH: 'AK_QUALIFIED_NAME_MISMATCH',
  SHA1_NOT_ALLOWED: 'SHA1_NOT_ALLOWED',
  DUPLICATE_PCR_BANK: 'DUPLICATE_PCR_BANK',
  PCR_BANK_MISSING: 'PCR_BANK_MISSING',
  INSTANCE_INFO_MISMATCH: 'INSTANCE_INFO_MISMATCH',
} as const;

/** TPM_RH_ENDORSEMENT (Part 2 §7.4). */
const TPM_RH_ENDORSEMENT = 0x4000000b;

const BANK_BY_ALG: Readonly<Record<number, PcrBank>> = {
  [HashAlgo.SHA1]: 'sha1',
  [HashAlgo.SHA256]: 'sha256',
  [HashAlgo.SHA384]: 'sha384',
};

export interface GcpVerifyInput {
  readonly binding: Uint8Array;
  readonly now: Date;
  readonly trust: TrustStore;
  readonly allowSha1: boolean;
  readonly allowNonProduction: boolean;
  /** Banks that must be present and verified (default in options: sha256). */
  readonly requiredBanks: readonly PcrBank[];
  readonly configuredIntermediates: readonly Certificate[];
  /** For a SEV-SNP report: VCEK/ASK from AMD KDS when the evidence lacks them (cached, single-flight). */
  readonly fetch: typeof fetch;
  readonly signal?: AbortSignal;
  readonly kds: KdsClient;
  readonly snpCache?: SnpVerifyCache;
}

export type EventLogStatus = 'absent' | 'replayed';

export interface VerifiedGcpAttestation {
  readonly akCert: VerifiedAkCert;
  readonly akPublic: TpmtPublic;
  readonly akName: Hex;
  readonly akSha256: Hex;
  /** Verified PCR values of the banks the operator allows. */
  readonly pcrs: Partial<Record<PcrBank, Record<number, Hex>>>;
  /** Every bank whose quote verified (including SHA-1 when it is not reported). */
  readonly verifiedBanks: readonly PcrBank[];
  readonly quotes: readonly VerifiedQuote[];
  readonly eventLog: EventLogStatus;
  /** Boot facts from the replayed event log (only when it was present and matched). */
  readonly boot: BootClaims | undefined;
  /** The verified SEV-SNP report, when the attestation carried one. */
  readonly snp: VerifiedSnpReport | undefined;
}

function sameKey(a: NormalizedKey, b: NormalizedKey): boolean {
  if (a.kty === 'RSA' && b.kty === 'RSA') return timingSafeEqual(a.n, b.n) && timingSafeEqual(a.e, b.e);
  if (a.kty === 'EC' && b.kty === 'EC') return a.crv === b.crv && timingSafeEqual(a.x, b.x) && timingSafeEqual(a.y, b.y);
  return false;
}

/** Qualified Name of a primary object of the endorsement hierarchy (TPM 2.0 Part 1 §16, Names). */
async function endorsementPrimaryQualifiedName(pub: TpmtPublic, name: Uint8Array): Promise<Uint8Array> {
  return concat(u16be(algFromHash(pub.nameAlg)), await digest(pub.nameAlg, concat(u32be(TPM_RH_ENDORSEMENT), name)));
}

export async function verifyGcpAttestation(att: GotpmAttestation, input: GcpVerifyInput): Promise<VerifiedGcpAttestation> {
  if (att.tee?.kind === 'tdx') {
    throw new AttestError(
      GcpCodes.TEE_REPORT_UNSUPPORTED,
      'the attestation carries a TDX quote (tdx.QuoteV4), which this broker cannot verify yet; refusing rather than ignoring it',
      { detail: { tee: att.tee.kind } },
    );
  }
  if (att.akPub.byteLength === 0 || att.quotes.length === 0) {
    throw rejected(GcpParseCodes.ATTESTATION_INCOMPLETE, 'the attestation needs ak_pub and at least one quote');
  }

  // 1. The AK public area and every quote (the cheap checks first; nothing is trusted until all
  //    checks have passed, so the order only decides which error a forgery gets).
  // Parsed, TPMA_OBJECT-checked and normalized once for every quote (tpm core `prepareAk`).
  const ak = await prepareAk({ tpmtPublic: att.akPub });
  const akPublic = ak.pub!;
  const akName = await computeName(akPublic);
  const qualifiedName = await endorsementPrimaryQualifiedName(akPublic, akName);
  const seen = new Set<PcrBank>();
  const quotes: VerifiedQuote[] = [];
  const pcrs: Partial<Record<PcrBank, Record<number, Hex>>> = {};
  const pcrBytes: QuotedPcrValues = {};
  for (const [i, q] of att.quotes.entries()) {
    const bank = BANK_BY_ALG[q.pcrs.hash];
    if (!bank) {
      throw rejected(TpmCodes.ALGORITHM_NOT_ALLOWED, `quotes[${i}] names PCR hash 0x${q.pcrs.hash.toString(16)}, not sha1/sha256/sha384`);
    }
    if (seen.has(bank)) throw rejected(GcpCodes.DUPLICATE_PCR_BANK, `two quotes over the ${bank} bank`);
    seen.add(bank);
    const values: Record<number, Uint8Array> = {};
    for (const [k, v] of q.pcrs.values) values[k] = v;
    const vq = await verifyQuote({
      message: q.quote,
      signature: q.rawSig,
      ak,
      binding: input.binding,
      pcrs: { [bank]: values },
      // Values come from this quote's one PCRs map, so any selection beyond its bank fails as
      // PCR_SELECTION_MISMATCH. SHA-1 bank quotes are verified for integrity (see above) and only
      // reported when allowed below.
      pcrBanks: ['sha1', 'sha256', 'sha384'],
    });
    if (!timingSafeEqual(vq.attest.qualifiedSigner, qualifiedName)) {
      throw rejected(
        GcpCodes.AK_QUALIFIED_NAME_MISMATCH,
        `quotes[${i}] qualifiedSigner is not ak_pub as an endorsement-hierarchy primary key`,
      );
    }
    quotes.push(vq);
    if (bank !== 'sha1' || input.allowSha1) {
      Object.assign(pcrs, vq.pcrs);
      Object.assign(pcrBytes, vq.pcrBytes);
    }
  }
  if (![...seen].some((b) => b !== 'sha1' || input.allowSha1)) {
    throw rejected(GcpCodes.SHA1_NOT_ALLOWED, 'the only PCR bank quoted is SHA-1, which is not allowed (set allowSha1 to accept it)');
  }
  const missing = input.requiredBanks.filter((b) => pcrs[b] === undefined);
  if (missing.length > 0 || Object.keys(pcrs).length === 0) {
    throw rejected(GcpCodes.PCR_BANK_MISSING, `no verified PCR values in the required bank(s) ${missing.join(', ') || '(any)'}`, { detail: { missing } });
  }

  // 2. The AK certificate: trust in the AK, and the instance it names.
  const akCert = await verifyAkCertificate({
    akCert: att.akCert,
    intermediates: att.intermediateCerts,
    configuredIntermediates: input.configuredIntermediates,
    trust: input.trust,
    now: input.now,
    allowNonProduction: input.allowNonProduction,
  });
  let certKey: NormalizedKey;
  try {
    certKey = await keyFromSpki(new Uint8Array(akCert.cert.publicKey.rawData));
  } catch (cause) {
    throw rejected(GcpCodes.AK_CERT_KEY_MISMATCH, 'the AK certificate key is not a usable AK key', { cause });
  }
  if (!sameKey(ak.key, certKey)) {
    throw rejected(GcpCodes.AK_CERT_KEY_MISMATCH, 'ak_pub is not the key the AK certificate certifies');
  }

  // 3. Unsigned client-reported identity must agree with the signed one.
  if (att.instanceInfo) {
    const a = att.instanceInfo;
    const s = akCert.identity;
    if (
      a.zone !== s.zone ||
      a.projectId !== s.projectId ||
      a.projectNumber !== s.projectNumber ||
      a.instanceName !== s.instanceName ||
      a.instanceId !== s.instanceId
    ) {
      throw rejected(GcpCodes.INSTANCE_INFO_MISMATCH, 'instance_info differs from the identity in the AK certificate');
    }
  }

  // 4. The event log, replayed against the verified PCRs of the allowed banks; boot facts come
  //    only from events the replay proved (providers/tpm/measured-boot.ts fixes that order).
  let boot: BootClaims | undefined;
  if (att.eventLog.byteLength > 0) {
    const r = await replayAndSummarize(att.eventLog, pcrBytes, { allowSha1: input.allowSha1 });
    boot = r.boot;
  }

  // 5. The SEV-SNP report: rebuilt from its proto, verified to the pinned AMD ARK, bound to the
  //    same nonce the quotes carry (REPORT_DATA = binding ‖ zeros, as gotpm requests it), and
  //    validated strictly (no debug, no migration agent, VMPL 0).
  const snp = att.tee?.kind === 'sev-snp' ? await verifyGcpSevSnp(att.tee.bytes, input) : undefined;

  return Object.freeze({
    snp,
    akCert,
    akPublic,
    akName: toHex(akName),
    akSha256: quotes[0]!.akSha256,
    pcrs,
    verifiedBanks: Object.freeze([...seen]),
    quotes: Object.freeze(quotes),
    eventLog: boot ? 'replayed' : 'absent',
    boot,
  });
}

/**
 * The SEV-SNP leg: `sev_snp_attestation` bytes → rebuilt report → verified to the pinned ARK,
 * REPORT_DATA = binding ‖ zeros, strict guest policy. Exported for tests of the leg on its own.
 */
export async function verifyGcpSevSnp(
  bytes: Uint8Array,
  input: Pick<GcpVerifyInput, 'binding' | 'now' | 'trust' | 'fetch' | 'signal' | 'kds' | 'snpCache'>,
): Promise<VerifiedSnpReport> {
  const e = parseGcpSevSnp(bytes);
  const signedByVlek = ((e.report[0x48]! >>> 2) & 7) === 1;
  const keyDer = signedByVlek ? e.vlek : e.vcek;
  return verifySnpAttestation({
    report: e.report,
    ...(keyDer ? { endorsementKey: parseCertificate(keyDer, signedByVlek ? 'VLEK' : 'VCEK') } : {}),
    ...(e.ask ? { intermediates: [parseCertificate(e.ask, 'ASK')] } : {}),
    ...(e.product ? { product: e.product } : {}),
    trust: input.trust,
    at: input.now,
    kds: input.kds,
    fetch: input.fetch,
    ...(input.signal ? { signal: input.signal } : {}),
    ...(input.snpCache ? { cache: input.snpCache } : {}),
    validate: strictSnpOptions({ reportData: { expect: expectedReportData(input.binding) } }),
  });
}

/**
 * @module providers/tpm/quote
 *
 * Verification of a TPM2_Quote (TCG TPM 2.0 Library Part 3 §18.4): a TPMS_ATTEST of type
 * TPM_ST_ATTEST_QUOTE signed by an attestation key (AK), plus the PCR values the node claims.
 *
 * Checks, in this order (verify the signature over the raw bytes before decoding them):
 * - the AK is an allowed key (RSA 2048/3072/4096, ECC P-256/P-384); when it is given as a
 *   TPMT_PUBLIC, its TPMA_OBJECT says restricted, sign, fixedTPM, fixedParent,
 *   sensitiveDataOrigin and not decrypt (Part 1 §25.2 / §27: only a restricted signing key
 *   refuses to sign external data starting with TPM_GENERATED_VALUE, which is what makes a
 *   quote a quote), and its scheme is set and equals the signature's (scheme + hash);
 * - the signature's hash is on the caller's allow-list (SHA-1 only when listed) and its scheme
 *   fits the key type;
 * - the signature verifies over the raw TPMS_ATTEST bytes (`QUOTE_SIGNATURE_INVALID`);
 * - magic = TPM_GENERATED_VALUE (`QUOTE_MAGIC_INVALID`), type = TPM_ST_ATTEST_QUOTE
 *   (`QUOTE_TYPE_INVALID`), the structure parses exactly;
 * - extraData equals the expected binding, compared in constant time (`NONCE_MISMATCH`);
 * - every selected bank is on the caller's PCR-bank allow-list (SHA-1 only when listed);
 * - the supplied PCR values cover exactly the selected PCRs, no more, no less
 *   (`PCR_SELECTION_MISMATCH`), each of its bank's digest size (`PCR_VALUE_INVALID`);
 * - pcrDigest = H(selected PCR values, in selection order, ascending index within a selection),
 *   where H is the *signing scheme's* hash, not the bank's (Part 3 §18.4.1; the TPM uses the
 *   scheme's hash for PCRComputeCurrentDigest) → `PCR_DIGEST_MISMATCH`.
 *
 * Not checked here (caller's job): whether the AK is trustworthy at all (EK credential
 * activation, cloud AK certificate, pinned digest), clock/firmware policy, and what the PCR
 * values mean. `qualifiedSigner` is the AK's *qualified* name (depends on its parents) and
 * cannot be checked from the public area alone.
 *
 * How the cloud providers call it:
 * ```ts
 * // Azure (HCL var-data JWK `HCLAkPub`, raw RSASSA signature from tpm_quote.signature hex):
 * const q = await verifyQuote({
 *   message: fromHex(ev.tpm_quote.message),
 *   signature: { scheme: 'rsassa', hash: 'sha256', bytes: fromHex(ev.tpm_quote.signature) },
 *   ak: { jwk: hclAkPubJwk },
 *   binding: ctx.binding,
 *   pcrs: { sha256: Object.fromEntries(ev.tpm_quote.pcrs.map((h, i) => [i, h])) },
 * });
 * // GCP gotpm (ak_pub is a TPMT_PUBLIC, quotes carry TPMT_SIGNATURE + a PCRs proto per bank):
 * const q = await verifyQuote({ message: quote.quote, signature: quote.raw_sig,
 *   ak: { tpmtPublic: att.ak_pub }, binding: ctx.binding, pcrs: { sha256: pcrsOfThisQuote } });
 * // AWS NitroTPM / vaportpm (AK = SEC1 point from the Nitro document, DER ECDSA signature):
 * const q = await verifyQuote({ message: attestData,
 *   signature: { scheme: 'ecdsa', hash: 'sha256', bytes: derSig, encoding: 'der' },
 *   ak: { ecPoint: doc.public_key, curve: 'P-256' }, binding: ctx.binding, pcrs: { sha384: docPcrs } });
 * // q.pcrs (verified, lower-case hex), q.akSha256, q.attest (parsed TPMS_ATTEST), q.akName?
 * ```
 * Cloud AKs given as JWK/SPKI/point skip the TPMA_OBJECT check (there is no TPMT_PUBLIC): the
 * cloud's own certificate or signed report is what vouches for them.
 */
import { ByteReader, concat } from '../common/bytes.js';
import { malformed, rejected } from '../common/errors.js';
import { fromHex, toHex } from '../common/encoding.js';
import { digest, HASH_SIZE } from '../common/digest.js';
import { timingSafeEqual } from '../common/ct.js';
import type { Hex, PcrBank } from '../common/types.js';
import { TpmCodes } from './codes.js';
import {
  computeName,
  curveSize,
  ecdsaDerToP1363,
  ecdsaToP1363,
  parseAttest,
  parseTpm2bPublic,
  parseTpmtPublic,
  parseTpmtSignature,
  TPM_GENERATED_VALUE,
  TPM_ST,
  type QuoteInfo,
  type SignScheme,
  type TpmHash,
  type TpmsAttest,
  type TpmtPublic,
  type TpmtSignature,
} from './structures.js';
import { importVerifyKey, keyFromEcPoint, keyFromJwk, keyFromSpki, keyFromTpmtPublic, keySha256, type NormalizedKey } from './keys.js';
import { verifySignature } from '../common/sig.js';

/** The attestation key, in whichever form the evidence carries it. */
export type AkInput =
  | { readonly tpmtPublic: Uint8Array }
  | { readonly tpm2bPublic: Uint8Array }
  | { readonly jwk: unknown }
  | { readonly spki: Uint8Array }
  | { readonly ecPoint: Uint8Array; readonly curve: 'P-256' | 'P-384' };

/**
 * A signature given outside a TPMT_SIGNATURE (cloud formats). `bytes` is the RSA signature, or for
 * ECDSA r‖s (`encoding: 'p1363'`, the default) or an ASN.1 DER ECDSA-Sig-Value (`'der'`).
 */
export interface RawSignature {
  readonly scheme: SignScheme;
  readonly hash: TpmHash;
  readonly bytes: Uint8Array;
  readonly encoding?: 'p1363' | 'der';
}

/** PCR values per bank: index (number or decimal string) → digest bytes or hex; an array indexed by PCR works too. */
export type PcrValuesInput = Partial<Record<PcrBank, Readonly<Record<string | number, Uint8Array | string>> | readonly (Uint8Array | string)[]>>;

export interface VerifyQuoteInput {
  /** The raw TPMS_ATTEST bytes exactly as signed. */
  readonly message: Uint8Array;
  /** A marshalled TPMT_SIGNATURE, or an explicit raw signature. */
  readonly signature: Uint8Array | RawSignature;
  /** The AK as the evidence carries it, or resolved once by `prepareAk` for several quotes. */
  readonly ak: AkInput | PreparedAk;
  /** The expected extraData (protocol §2 binding). */
  readonly binding: Uint8Array;
  /** The PCR values the node claims; must cover exactly the quote's selection. */
  readonly pcrs: PcrValuesInput;
  /** Signature hashes allowed (default sha256, sha384, sha512). SHA-1 only if listed. */
  readonly signatureHashes?: readonly TpmHash[];
  /** PCR banks allowed in the selection (default sha256, sha384). SHA-1 only if listed. */
  readonly pcrBanks?: readonly PcrBank[];
}

export interface VerifiedQuote {
  readonly attest: TpmsAttest & { readonly type: 'quote' };
  readonly quote: QuoteInfo;
  /** The verified PCR values (lower-case hex) per selected bank. */
  readonly pcrs: Partial<Record<PcrBank, Record<number, Hex>>>;
  /**
   * The same verified values as bytes, for consumers that compare bytes (event-log replay): no
   * hex round trip. The arrays are the ones the pcrDigest was computed over; do not modify them.
   */
  readonly pcrBytes: Partial<Record<PcrBank, Readonly<Record<number, Uint8Array>>>>;
  /** SHA-256 (hex) of the AK's canonical SPKI DER. */
  readonly akSha256: Hex;
  /** The AK's TPM Name (hex), when the AK was given as a TPMT_PUBLIC. */
  readonly akName?: Hex;
  readonly akPublic?: TpmtPublic;
  readonly akKey: NormalizedKey;
  readonly signature: { readonly scheme: SignScheme; readonly hash: TpmHash };
}

export const DEFAULT_SIGNATURE_HASHES: readonly TpmHash[] = Object.freeze(['sha256', 'sha384', 'sha512']);
export const DEFAULT_PCR_BANKS: readonly PcrBank[] = Object.freeze(['sha256', 'sha384']);
/** At most this many PCR values in total (3 banks × 24 PCRs, with room). */
const MAX_PCR_VALUES = 128;

/** Required TPMA_OBJECT bits of an AK and forbidden ones (Part 2 §8.3.3). */
export function checkAkAttributes(p: TpmtPublic): void {
  const a = p.objectAttributes;
  const missing = (['restricted', 'sign', 'fixedTPM', 'fixedParent', 'sensitiveDataOrigin'] as const).filter((k) => !a[k]);
  if (missing.length > 0 || a.decrypt) {
    throw rejected(
      TpmCodes.AK_ATTRIBUTES_INVALID,
      missing.length > 0 ? `the AK is not ${missing.join(', ')}` : 'the AK is a decryption key',
      { detail: { missing, decrypt: a.decrypt } },
    );
  }
  if (p.parameters.scheme.scheme === 'null' || !('hash' in p.parameters.scheme)) {
    throw rejected(TpmCodes.AK_ATTRIBUTES_INVALID, 'the AK has no signing scheme (a restricted signing key must name one)');
  }
  const s = p.parameters.scheme.scheme;
  if (s !== 'rsassa' && s !== 'rsapss' && s !== 'ecdsa') {
    throw rejected(TpmCodes.AK_ATTRIBUTES_INVALID, `the AK's scheme ${s} is not a signing scheme`);
  }
}

interface ResolvedAk {
  key: NormalizedKey;
  pub?: TpmtPublic;
}

const PREPARED: unique symbol = Symbol('PreparedAk');

/**
 * An AK resolved once (parsed, TPMA_OBJECT-checked, normalized) for several quotes by the same
 * key (GCP: one quote per PCR bank). Only `prepareAk` makes one; what is derived from the key
 * (WebCrypto key per scheme, akSha256, Name) is computed on first use and kept with it, for the
 * lifetime of this object (one request), never across requests.
 */
export interface PreparedAk {
  readonly [PREPARED]: true;
  readonly key: NormalizedKey;
  readonly pub: TpmtPublic | undefined;
}

interface PreparedAkState extends PreparedAk {
  verifyKeys: Map<string, Promise<{ key: CryptoKey; verifyAlg: Algorithm }>>;
  akSha256?: Promise<Hex>;
  akName?: Promise<Hex>;
}

/** Resolves an AK once (same checks and errors as `verifyQuote` applies to `input.ak`). */
export async function prepareAk(ak: AkInput): Promise<PreparedAk> {
  const { key, pub } = await resolveAk(ak);
  const state: PreparedAkState = { [PREPARED]: true, key, pub, verifyKeys: new Map() };
  return state;
}

function isPrepared(ak: AkInput | PreparedAk): ak is PreparedAkState {
  return (ak as Partial<PreparedAk>)[PREPARED] === true;
}

async function resolveAk(ak: AkInput): Promise<ResolvedAk> {
  if ('tpmtPublic' in ak || 'tpm2bPublic' in ak) {
    // Parser codes (TRUNCATED, TPM_ALG_UNSUPPORTED, …) pass through: they say what is wrong.
    const pub = 'tpmtPublic' in ak ? parseTpmtPublic(ak.tpmtPublic) : parseTpm2bPublic(ak.tpm2bPublic);
    checkAkAttributes(pub);
    return { key: keyFromTpmtPublic(pub), pub };
  }
  if ('jwk' in ak) return { key: keyFromJwk(ak.jwk) };
  if ('spki' in ak) return { key: await keyFromSpki(ak.spki) };
  if ('ecPoint' in ak) return { key: keyFromEcPoint(ak.ecPoint, ak.curve) };
  throw malformed(TpmCodes.AK_INVALID, 'no AK given');
}

/** Scheme and hash of a signature, before its values are looked at. */
function signatureHeader(sig: Uint8Array | RawSignature): { scheme: SignScheme; hash: TpmHash; parsed?: TpmtSignature } {
  if (sig instanceof Uint8Array) {
    const parsed = parseTpmtSignature(sig);
    return { scheme: parsed.sigAlg, hash: parsed.hash, parsed };
  }
  if (sig.scheme !== 'rsassa' && sig.scheme !== 'rsapss' && sig.scheme !== 'ecdsa') {
    throw malformed(TpmCodes.TPM_ALG_UNSUPPORTED, `signature scheme ${String(sig.scheme)} is not supported`);
  }
  if (!(['sha1', 'sha256', 'sha384', 'sha512'] as const).includes(sig.hash)) {
    throw malformed(TpmCodes.TPM_ALG_UNSUPPORTED, `signature hash ${String(sig.hash)} is not supported`);
  }
  return { scheme: sig.scheme, hash: sig.hash };
}

/** The signature value in WebCrypto form: RSA as is, ECDSA as P1363 r‖s of the curve's size. */
function signatureValue(sig: Uint8Array | RawSignature, parsed: TpmtSignature | undefined, key: NormalizedKey): Uint8Array {
  if (parsed) {
    if (parsed.sigAlg !== 'ecdsa') return parsed.sig;
    if (key.kty !== 'EC') throw rejected(TpmCodes.SIGNATURE_SCHEME_MISMATCH, 'ECDSA signature but the AK is RSA');
    return ecdsaToP1363(parsed.r, parsed.s, curveSize(key.crv));
  }
  const raw = sig as RawSignature;
  if (raw.scheme !== 'ecdsa') return raw.bytes;
  if (key.kty !== 'EC') throw rejected(TpmCodes.SIGNATURE_SCHEME_MISMATCH, 'ECDSA signature but the AK is RSA');
  const size = curveSize(key.crv);
  if (raw.encoding === 'der') return ecdsaDerToP1363(raw.bytes, size);
  if (raw.bytes.byteLength !== 2 * size) throw malformed(TpmCodes.TPM_STRUCTURE_INVALID, `ECDSA r‖s must be ${2 * size} bytes`);
  return raw.bytes;
}

interface ResolvedSig {
  scheme: SignScheme;
  hash: TpmHash;
  /** RSA signature or ECDSA P1363 r‖s. */
  bytes: Uint8Array;
}

async function checkSignature(key: NormalizedKey, sig: ResolvedSig, message: Uint8Array, prepared: PreparedAkState | undefined): Promise<void> {
  if (key.kty === 'RSA' && sig.bytes.byteLength !== key.n.byteLength) {
    // RSA signatures are exactly the modulus length (RFC 8017 §8.1.2 / §8.2.2 step 1).
    throw rejected(TpmCodes.QUOTE_SIGNATURE_INVALID, 'RSA signature length differs from the modulus length');
  }
  let imported: Promise<{ key: CryptoKey; verifyAlg: Algorithm }>;
  if (prepared) {
    const k = `${sig.scheme}/${sig.hash}`;
    let p = prepared.verifyKeys.get(k);
    if (!p) {
      p = importVerifyKey(key, sig.scheme, sig.hash);
      prepared.verifyKeys.set(k, p);
    }
    imported = p;
  } else imported = importVerifyKey(key, sig.scheme, sig.hash);
  const { key: ck, verifyAlg } = await imported;
  const data = message as Uint8Array<ArrayBuffer>;
  const s = sig.bytes as Uint8Array<ArrayBuffer>;
  let ok = await verifySignature(verifyAlg, ck, s, data);
  if (!ok && sig.scheme === 'rsapss' && key.kty === 'RSA') {
    // Some TPMs sign PSS with the maximum salt (emLen - hLen - 2) instead of hLen; both are valid
    // RSASSA-PSS signatures for this key (RFC 8017 §9.1.1), so accept either.
    const hLen = HASH_SIZE[sig.hash];
    const emLen = Math.ceil((key.n.byteLength * 8 - 1) / 8);
    ok = await verifySignature({ name: 'RSA-PSS', saltLength: emLen - hLen - 2 } as RsaPssParams, ck, s, data);
  }
  if (!ok) throw rejected(TpmCodes.QUOTE_SIGNATURE_INVALID, 'the quote signature does not verify with the AK');
}

function decodePcr(bank: PcrBank, idx: number, v: Uint8Array | string): Uint8Array {
  let b: Uint8Array;
  if (typeof v === 'string') {
    try {
      b = fromHex(v, `PCR ${bank}:${idx}`);
    } catch (cause) {
      throw malformed(TpmCodes.PCR_VALUE_INVALID, `PCR ${bank}:${idx} is not hex`, { cause });
    }
  } else if (v instanceof Uint8Array) b = v;
  else throw malformed(TpmCodes.PCR_VALUE_INVALID, `PCR ${bank}:${idx} is neither hex nor bytes`);
  if (b.byteLength !== HASH_SIZE[bank]) {
    throw malformed(TpmCodes.PCR_VALUE_INVALID, `PCR ${bank}:${idx} is ${b.byteLength} bytes, not ${HASH_SIZE[bank]}`);
  }
  return b;
}

const IDX_RE = /^(?:0|[1-9][0-9]{0,2})$/;

/** Verifies a TPM2_Quote; see the module comment for the checks. Throws AttestError. */
export async function verifyQuote(input: VerifyQuoteInput): Promise<VerifiedQuote> {
  const sigHashes = input.signatureHashes ?? DEFAULT_SIGNATURE_HASHES;
  const banks = input.pcrBanks ?? DEFAULT_PCR_BANKS;

  // 1. The AK and the signature's algorithm.
  const prepared = isPrepared(input.ak) ? input.ak : undefined;
  const { key, pub } = prepared ?? (await resolveAk(input.ak as AkInput));
  const head = signatureHeader(input.signature);
  if (!sigHashes.includes(head.hash)) {
    throw rejected(TpmCodes.ALGORITHM_NOT_ALLOWED, `signature hash ${head.hash} is not allowed`, { detail: { hash: head.hash } });
  }
  if ((key.kty === 'RSA') !== (head.scheme !== 'ecdsa')) {
    throw rejected(TpmCodes.SIGNATURE_SCHEME_MISMATCH, `${head.scheme} signature does not fit a ${key.kty} AK`);
  }
  if (pub) {
    const s = pub.parameters.scheme;
    if (s.scheme !== head.scheme || !('hash' in s) || s.hash !== head.hash) {
      throw rejected(TpmCodes.SIGNATURE_SCHEME_MISMATCH, `signature ${head.scheme}/${head.hash} differs from the AK's scheme`);
    }
  }
  const sig: ResolvedSig = { scheme: head.scheme, hash: head.hash, bytes: signatureValue(input.signature, head.parsed, key) };

  // 2. The signature over the raw bytes, before anything in them is believed.
  await checkSignature(key, sig, input.message, prepared);

  // 3. Decode: magic and type first (stable codes), then the full structure.
  // (A message too short for these fields fails in parseAttest with TRUNCATED.)
  const prefix = new ByteReader(input.message);
  if (prefix.remaining >= 6) {
    if (prefix.u32() !== TPM_GENERATED_VALUE) throw rejected(TpmCodes.QUOTE_MAGIC_INVALID, 'TPMS_ATTEST.magic is not TPM_GENERATED_VALUE');
    if (prefix.u16() !== TPM_ST.ATTEST_QUOTE) throw rejected(TpmCodes.QUOTE_TYPE_INVALID, 'TPMS_ATTEST.type is not TPM_ST_ATTEST_QUOTE');
  }
  const attest = parseAttest(input.message);
  if (attest.type !== 'quote') throw rejected(TpmCodes.QUOTE_TYPE_INVALID, 'TPMS_ATTEST.type is not TPM_ST_ATTEST_QUOTE');

  // 4. Freshness / binding.
  if (!timingSafeEqual(attest.extraData, input.binding)) {
    throw rejected(TpmCodes.NONCE_MISMATCH, 'the quote extraData does not equal the expected binding');
  }

  // 5. The PCR selection against the supplied values.
  const seen = new Set<PcrBank>();
  const ordered: Uint8Array[] = [];
  const out: Partial<Record<PcrBank, Record<number, Hex>>> = {};
  const outBytes: Partial<Record<PcrBank, Record<number, Uint8Array>>> = {};
  let total = 0;
  for (const sel of attest.quote.pcrSelect) {
    const bank = sel.hash as PcrBank;
    if (sel.hash === 'sha512' || !banks.includes(bank)) {
      throw rejected(TpmCodes.ALGORITHM_NOT_ALLOWED, `PCR bank ${sel.hash} is not allowed`, { detail: { bank: sel.hash } });
    }
    if (seen.has(bank)) throw rejected(TpmCodes.PCR_SELECTION_MISMATCH, `PCR bank ${bank} is selected twice`);
    seen.add(bank);
    const supplied = input.pcrs[bank];
    if (sel.pcrs.length === 0) continue;
    if (!supplied) throw rejected(TpmCodes.PCR_SELECTION_MISMATCH, `no PCR values supplied for selected bank ${bank}`);
    const bankOut: Record<number, Hex> = {};
    const bankBytes: Record<number, Uint8Array> = {};
    for (const idx of sel.pcrs) {
      const v = Object.prototype.hasOwnProperty.call(supplied, String(idx)) ? supplied[idx] : undefined;
      if (v === undefined) throw rejected(TpmCodes.PCR_SELECTION_MISMATCH, `PCR ${bank}:${idx} is selected but not supplied`);
      const b = decodePcr(bank, idx, v);
      ordered.push(b);
      bankBytes[idx] = b;
      // A lower-case hex value is already its canonical text (fromHex checked it): no re-encoding.
      bankOut[idx] = typeof v === 'string' && !/[A-F]/.test(v) ? v : toHex(b);
      if (++total > MAX_PCR_VALUES) throw malformed('LIMIT_EXCEEDED', 'too many PCR values');
    }
    out[bank] = bankOut;
    outBytes[bank] = bankBytes;
  }
  // Every supplied value must have been selected: extra values would be claims the quote does not cover.
  for (const [bank, values] of Object.entries(input.pcrs)) {
    if (values === undefined) continue;
    if (typeof values !== 'object' || values === null) throw malformed(TpmCodes.PCR_VALUE_INVALID, `PCR bank ${bank} is not a map of values`);
    const keys = Object.keys(values);
    const sel = attest.quote.pcrSelect.find((s) => s.hash === bank);
    for (const k of keys) {
      if (!IDX_RE.test(k) || !sel || !sel.pcrs.includes(Number(k))) {
        throw rejected(TpmCodes.PCR_SELECTION_MISMATCH, `PCR ${bank}:${k} is supplied but not quoted`);
      }
    }
  }

  // 6. pcrDigest with the signing scheme's hash.
  const computed = await digest(sig.hash, concat(...ordered));
  if (!timingSafeEqual(computed, attest.quote.pcrDigest)) {
    throw rejected(TpmCodes.PCR_DIGEST_MISMATCH, 'the supplied PCR values do not match the quoted pcrDigest');
  }

  let akSha256: Hex;
  let akName: Hex | undefined;
  if (prepared) {
    akSha256 = await (prepared.akSha256 ??= keySha256(key).then(toHex));
    if (pub) akName = await (prepared.akName ??= computeName(pub).then(toHex));
  } else {
    akSha256 = toHex(await keySha256(key));
    if (pub) akName = toHex(await computeName(pub));
  }
  return Object.freeze({
    attest,
    quote: attest.quote,
    pcrs: out,
    pcrBytes: outBytes,
    akSha256,
    ...(pub ? { akName: akName!, akPublic: pub } : {}),
    akKey: key,
    signature: Object.freeze({ scheme: sig.scheme, hash: sig.hash }),
  });
}

/**
 * @module providers/tpm/provider
 *
 * The generic `tpm` provider (protocol §3, format `tpm`): any TPM 2.0 driven by tpm2-tools —
 * bare metal, swtpm, other clouds' vTPMs. Evidence:
 * `{ak_public: b64url(TPM2B_PUBLIC), quote: {message: b64url(TPMS_ATTEST), signature:
 * b64url(TPMT_SIGNATURE)}, pcrs: {bank: {index: hex}}, event_log?, ek_certificate?, ek_public?,
 * ek_intermediates?: [b64url(DER)], activation?: {id, secret: b64url}}`.
 *
 * Checks:
 * - the evidence object has exactly the known members, each strictly encoded (`EVIDENCE_INVALID`,
 *   `BAD_ENCODING`);
 * - an `event_log` is replayed by `options.replayEventLog`, and without that hook it is
 *   REJECTED (`EVENTLOG_UNSUPPORTED`): a log the broker cannot check must never look checked;
 * - the quote, by `verifyQuote` (AK attributes, signature over the raw TPMS_ATTEST, magic, type,
 *   extraData = ctx.binding, exact PCR selection, pcrDigest), with the configured algorithm
 *   allow-lists;
 * - trust in the AK, by one of (see docs/tpm.md):
 *   (b) `pinnedAkSha256`: SHA-256 of the AK's SPKI on the operator's allow-list → `pinned`;
 *   (a) `ekRoots`: the EK certificate chains (evidence intermediates only) to a configured
 *       TPM-vendor root in the trust store, its key equals `ek_public`, `ek_public` is a storage
 *       key, and the AK passed credential activation (two-step attest; first step answers
 *       `ACTIVATION_REQUIRED` with the sealed credential) → `ek-credential`;
 *   with neither configured: `evidence-only` — the quote is authentic for the AK it carries,
 *   but nothing says that AK is in a TPM. Policy MUST refuse `evidence-only` for admission
 *   (it exists for `attest-broker verify` and labs). With only a pin list configured, an AK not
 *   on it is `AK_NOT_PINNED`.
 *
 * The provider reads no clock except `ctx.now` (certificate validity) and no network.
 */
import { AttestError, malformed, rejected, configError, isAttestError } from '../common/errors.js';
import { fromBase64Url, fromHex, toBase64Url } from '../common/encoding.js';
import type { BootClaims, PcrBank, Provider, ProviderClaims, VerifyContext } from '../common/types.js';
import { parseCertificate, verifyChain, type Certificate } from '../common/x509.js';
import { timingSafeEqual } from '../common/ct.js';
import { TpmCodes } from './codes.js';
import { verifyQuote, type PcrValuesInput } from './quote.js';
import type { QuotedPcrValues } from './eventlog.js';
import { parseTpm2bPublic, type TpmHash, type TpmtPublic } from './structures.js';
import { keyFromSpki, keyFromTpmtPublic, spkiDer } from './keys.js';
import { checkEkPublic } from './credential.js';
import { beginActivation, checkActivation, ekSha256 as ekDigest, isPendingActivation, type ActivationStore } from './activation.js';

/**
 * Replays a TCG event log against the verified quote. Must throw an AttestError unless the log
 * replays to the quoted value of every PCR it covers in every quoted bank; returns boot claims.
 */
export type ReplayEventLog = (log: Uint8Array, quoted: QuotedPcrValues) => Promise<BootClaims>;

export interface TpmProviderOptions {
  /** Trust-store ids of TPM-vendor EK roots; enables EK certificate + credential activation. */
  readonly ekRoots?: readonly string[];
  /** Lower-case hex SHA-256 of AK SPKI DERs admitted without activation. */
  readonly pinnedAkSha256?: readonly string[];
  /** Where pending activations wait for the node's answer (required with `ekRoots`). */
  readonly activations?: ActivationStore;
  /** How long the node has to answer an activation (default 120 s). */
  readonly activationTtlMs?: number;
  /** Quote signature hashes allowed (default sha256, sha384, sha512; SHA-1 only if listed). */
  readonly signatureHashes?: readonly TpmHash[];
  /** PCR banks allowed in quotes (default sha256, sha384; SHA-1 only if listed). */
  readonly pcrBanks?: readonly PcrBank[];
  /** Event-log replay (the event-log module); without it an `event_log` is rejected. */
  readonly replayEventLog?: ReplayEventLog;
}

/** The `tpm` evidence after strict decoding. */
export interface TpmEvidence {
  readonly akPublic: Uint8Array;
  readonly message: Uint8Array;
  readonly signature: Uint8Array;
  readonly pcrs: PcrValuesInput;
  readonly eventLog?: Uint8Array;
  readonly ekCertificate?: Uint8Array;
  readonly ekPublic?: Uint8Array;
  readonly ekIntermediates?: readonly Uint8Array[];
  readonly activation?: { readonly id: string; readonly secret: Uint8Array };
}

const TOP_KEYS = new Set(['ak_public', 'quote', 'pcrs', 'event_log', 'ek_certificate', 'ek_public', 'ek_intermediates', 'activation']);
const BANKS = new Set<string>(['sha1', 'sha256', 'sha384']);
const MAX_B64 = 512 * 1024;
const MAX_INTERMEDIATES = 4;
const ID_RE = /^[A-Za-z0-9_-]{16,64}$/;

const bad = (m: string): never => {
  throw malformed(TpmCodes.EVIDENCE_INVALID, m);
};
const isObj = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);

function b64(o: Record<string, unknown>, k: string, what: string, optional: true): Uint8Array | undefined;
function b64(o: Record<string, unknown>, k: string, what: string, optional?: false): Uint8Array;
function b64(o: Record<string, unknown>, k: string, what: string, optional = false): Uint8Array | undefined {
  const v = o[k];
  if (v === undefined && optional) return undefined;
  if (typeof v !== 'string' || v.length === 0 || v.length > MAX_B64) return bad(`${what} must be a non-empty base64url string`);
  return fromBase64Url(v, what);
}

/** Strictly decodes the `tpm` evidence object (protocol §3). */
export function parseTpmEvidence(evidence: unknown): TpmEvidence {
  if (!isObj(evidence)) return bad('evidence must be an object');
  for (const k of Object.keys(evidence)) if (!TOP_KEYS.has(k)) bad(`unknown evidence member ${k}`);
  const q = evidence.quote;
  if (!isObj(q) || Object.keys(q).some((k) => k !== 'message' && k !== 'signature')) bad('quote must be {message, signature}');
  const pcrsIn = evidence.pcrs;
  if (!isObj(pcrsIn)) return bad('pcrs must be an object of banks');
  const pcrs: Record<string, Record<string, string>> = {};
  for (const [bank, values] of Object.entries(pcrsIn)) {
    if (!BANKS.has(bank)) bad(`unknown PCR bank ${bank}`);
    if (!isObj(values)) bad(`pcrs.${bank} must be an object`);
    const m: Record<string, string> = {};
    for (const [i, v] of Object.entries(values as Record<string, unknown>)) {
      if (typeof v !== 'string') bad(`pcrs.${bank}.${i} must be a hex string`);
      m[i] = v as string;
    }
    pcrs[bank] = m;
  }
  let ekIntermediates: Uint8Array[] | undefined;
  if (evidence.ek_intermediates !== undefined) {
    const l = evidence.ek_intermediates;
    if (!Array.isArray(l) || l.length > MAX_INTERMEDIATES) bad(`ek_intermediates must be an array of at most ${MAX_INTERMEDIATES}`);
    ekIntermediates = (l as unknown[]).map((x, i) => b64({ x }, 'x', `ek_intermediates[${i}]`));
  }
  let activation: TpmEvidence['activation'];
  if (evidence.activation !== undefined) {
    const a = evidence.activation;
    if (!isObj(a) || Object.keys(a).some((k) => k !== 'id' && k !== 'secret')) return bad('activation must be {id, secret}');
    if (typeof a.id !== 'string' || !ID_RE.test(a.id)) bad('activation.id is invalid');
    activation = { id: a.id as string, secret: b64(a, 'secret', 'activation.secret') };
  }
  const eventLog = b64(evidence, 'event_log', 'event_log', true);
  const ekCertificate = b64(evidence, 'ek_certificate', 'ek_certificate', true);
  const ekPublic = b64(evidence, 'ek_public', 'ek_public', true);
  return {
    akPublic: b64(evidence, 'ak_public', 'ak_public'),
    message: b64(q as Record<string, unknown>, 'message', 'quote.message'),
    signature: b64(q as Record<string, unknown>, 'signature', 'quote.signature'),
    pcrs: pcrs as PcrValuesInput,
    ...(eventLog ? { eventLog } : {}),
    ...(ekCertificate ? { ekCertificate } : {}),
    ...(ekPublic ? { ekPublic } : {}),
    ...(ekIntermediates ? { ekIntermediates } : {}),
    ...(activation ? { activation } : {}),
  };
}

const HEX64 = /^[0-9a-f]{64}$/;
/** Hex digits of the key digest used as `identity.instanceId` (128 bits). */
export const INSTANCE_ID_HEX = 32;

function validateOptions(o: TpmProviderOptions): void {
  const fail = (m: string): never => {
    throw configError(TpmCodes.TPM_OPTIONS_INVALID, `tpm provider: ${m}`);
  };
  for (const p of o.pinnedAkSha256 ?? []) if (!HEX64.test(p)) fail(`pinnedAkSha256 entry ${p} is not 64 lower-case hex digits`);
  for (const r of o.ekRoots ?? []) if (typeof r !== 'string' || r.length === 0) fail('ekRoots entries must be trust-store ids');
  if ((o.ekRoots?.length ?? 0) > 0 && !o.activations) fail('ekRoots needs an activation store (credential activation is two-step)');
  if (o.activationTtlMs !== undefined && !(Number.isInteger(o.activationTtlMs) && o.activationTtlMs >= 10_000 && o.activationTtlMs <= 600_000)) {
    fail('activationTtlMs must be an integer between 10 s and 10 min');
  }
  for (const h of o.signatureHashes ?? []) if (!['sha1', 'sha256', 'sha384', 'sha512'].includes(h)) fail(`unknown signature hash ${h}`);
  for (const b of o.pcrBanks ?? []) if (!BANKS.has(b)) fail(`unknown PCR bank ${b}`);
}

/** Canonical SPKI of a certificate's key, compared with the EK public area's. */
async function certKeyMatches(cert: Certificate, ek: TpmtPublic): Promise<boolean> {
  let certSpki: Uint8Array;
  try {
    certSpki = spkiDer(await keyFromSpki(new Uint8Array(cert.publicKey.rawData)));
  } catch (cause) {
    if (isAttestError(cause)) return false;
    throw cause;
  }
  return timingSafeEqual(certSpki, spkiDer(keyFromTpmtPublic(ek)));
}

async function ekTrust(
  ev: TpmEvidence,
  o: TpmProviderOptions,
  ctx: VerifyContext,
): Promise<{ ek: TpmtPublic; ekSha256: string }> {
  if (!ev.ekCertificate || !ev.ekPublic) {
    throw rejected('EVIDENCE_INCOMPLETE', 'this broker trusts AKs through the EK: ek_certificate and ek_public are required');
  }
  const ek = parseTpm2bPublic(ev.ekPublic);
  try {
    checkEkPublic(ek);
  } catch (cause) {
    throw rejected(TpmCodes.EK_INVALID, 'ek_public is not a TPM storage (EK) key', { cause });
  }
  const leaf = parseCertificate(ev.ekCertificate, 'EK certificate');
  const intermediates = (ev.ekIntermediates ?? []).map((d, i) => parseCertificate(d, `EK intermediate ${i}`));
  await verifyChain({ leaf, intermediates, anchors: ctx.trust.anchors(o.ekRoots ?? []), at: ctx.now, what: 'EK certificate chain' });
  if (!(await certKeyMatches(leaf, ek))) {
    throw rejected(TpmCodes.EK_CERTIFICATE_MISMATCH, 'the EK certificate certifies a different key than ek_public');
  }
  return { ek, ekSha256: await ekDigest(ek) };
}

/** Creates the generic `tpm` provider. Throws TPM_OPTIONS_INVALID on bad options. */
export function createTpmProvider(options: TpmProviderOptions = {}): Provider {
  validateOptions(options);
  const o = options;
  const pinned = new Set(o.pinnedAkSha256 ?? []);
  const useEk = (o.ekRoots?.length ?? 0) > 0;
  const ttl = o.activationTtlMs ?? 120_000;

  return {
    name: 'tpm',
    formats: ['tpm'],
    async verify(format: string, evidence: unknown, ctx: VerifyContext): Promise<ProviderClaims> {
      if (format !== 'tpm') throw malformed(TpmCodes.EVIDENCE_INVALID, `the tpm provider does not verify format ${format}`);
      const ev = parseTpmEvidence(evidence);
      if (ev.eventLog && !o.replayEventLog) {
        throw rejected(TpmCodes.EVENTLOG_UNSUPPORTED, 'an event log was supplied but this broker cannot replay event logs');
      }

      const q = await verifyQuote({
        message: ev.message,
        signature: ev.signature,
        ak: { tpm2bPublic: ev.akPublic },
        binding: ctx.binding,
        pcrs: ev.pcrs,
        ...(o.signatureHashes ? { signatureHashes: o.signatureHashes } : {}),
        ...(o.pcrBanks ? { pcrBanks: o.pcrBanks } : {}),
      });
      // The AK came as a TPMT_PUBLIC, so verifyQuote computed its Name.
      const akName = q.akName as string;
      const akNameBytes = fromHex(akName);

      const boot = ev.eventLog && o.replayEventLog ? await o.replayEventLog(ev.eventLog, q.pcrBytes) : undefined;

      let akTrust: 'pinned' | 'ek-credential' | 'evidence-only';
      let ekInfo: { ek: TpmtPublic; ekSha256: string } | undefined;
      if (pinned.has(q.akSha256)) {
        akTrust = 'pinned';
      } else if (useEk) {
        ekInfo = await ekTrust(ev, o, ctx);
        const store = o.activations as ActivationStore;
        if (!ev.activation) {
          const { challenge, pending } = await beginActivation({ ekPublic: ekInfo.ek, akName: akNameBytes });
          const id = toBase64Url(crypto.getRandomValues(new Uint8Array(24)));
          await store.put(id, pending, ttl);
          throw new AttestError(TpmCodes.ACTIVATION_REQUIRED, 'prove the AK is in the same TPM as the EK: run tpm2_activatecredential and attest again', {
            detail: { activation: { id, ...challenge, expiresInSeconds: Math.floor(ttl / 1000) } },
          });
        }
        const pending = await store.take(ev.activation.id);
        if (!pending || !isPendingActivation(pending)) {
          throw rejected(TpmCodes.ACTIVATION_FAILED, 'unknown, expired or already used activation id');
        }
        await checkActivation(pending, { akName: akNameBytes, ekSha256: ekInfo.ekSha256, secret: ev.activation.secret });
        akTrust = 'ek-credential';
      } else if (pinned.size > 0) {
        throw rejected(TpmCodes.AK_NOT_PINNED, 'the AK is not on the configured allow-list', { detail: { akSha256: q.akSha256 } });
      } else {
        akTrust = 'evidence-only';
      }

      // The machine's name in claims: the EK (the TPM's durable identity) once activation proved
      // the AK lives beside it, else the AK. 128 bits of the SHA-256 keep it unique while fitting
      // a DNS label with a prefix (Kubernetes node names: labels ≤ 63 characters); the full
      // digests are in identity.extra and tpm.akSha256.
      const identityKey = (ekInfo ? ekInfo.ekSha256 : q.akSha256).slice(0, INSTANCE_ID_HEX);
      return {
        provider: 'tpm',
        format: 'tpm',
        platform: { tee: 'none', debug: false },
        identity: {
          cloud: 'baremetal',
          instanceId: identityKey,
          extra: { akSha256: q.akSha256, ...(ekInfo ? { ekSha256: ekInfo.ekSha256 } : {}) },
          // Only an AK the broker has a reason to trust identifies a machine.
          proven: akTrust === 'evidence-only' ? [] : ['instanceId'],
        },
        tpm: { akSha256: q.akSha256, akName, pcrs: q.pcrs, akTrust },
        ...(boot ? { boot } : {}),
        ...(ekInfo ? { release: { ekPublic: toBase64Url(ev.ekPublic as Uint8Array), akName } } : {}),
      };
    },
  };
}


/**
 * @module providers/common/types
 *
 * The contract between the broker and every provider adapter.
 *
 * A provider turns one format's evidence into normalized `Claims` or throws an `AttestError`.
 * It never sees policy, never reads the clock or the network except through `VerifyContext`, and
 * never trusts a root that is not in `ctx.trust`. Downstream, policy sees only `Claims` and release
 * sees only the policy `Decision`: nothing after the provider re-reads evidence.
 */
import type { TrustAnchor } from './x509.js';
import type { ProviderName } from '../catalog.js';

/** The names of the providers in `providers/catalog.ts` (the list is the only place they are written). */
export type { ProviderName };

export type PcrBank = 'sha1' | 'sha256' | 'sha384';

/** Lower-case hex strings throughout. */
export type Hex = string;

export interface PlatformClaims {
  tee: 'sev-snp' | 'tdx' | 'nitro' | 'none';
  debug: boolean;
  /** TCB components, e.g. SNP `{bootloader, tee, snp, microcode}`, TDX `{teeTcbSvn0..}`. */
  tcb?: Record<string, number>;
  /** SNP launch measurement or TDX MRTD. */
  measurement?: Hex;
  chipId?: Hex;
  /** Further fixed-layout fields (hostData, idKeyDigest, policy, vmpl, rtmr0..3, tdAttributes, xfam…). */
  fields?: Record<string, string | number | boolean>;
}

export interface IdentityClaims {
  /** 'azure' | 'gcp' | 'aws' | 'baremetal' | … */
  cloud: string;
  /** AWS account, GCP project id, Azure subscription: set only when evidence proves it. */
  account?: string;
  region?: string;
  zone?: string;
  instanceId: string;
  instanceName?: string;
  /** Further identity facts (GCP project number, Azure vmUniqueId, EC2 private DNS name…). */
  extra?: Record<string, string>;
  /**
   * Which of the fields above signed evidence proves (e.g. ['instanceId', 'zone', 'account']).
   * Policy may only pin a field that is listed here.
   */
  proven: readonly string[];
}

export interface TpmClaims {
  /** SHA-256 of the AK public key (hex): of the DER SPKI. */
  akSha256: Hex;
  /** TPM Name of the AK (nameAlg ‖ H(TPMT_PUBLIC)), hex, when the TPMT_PUBLIC is known. */
  akName?: Hex;
  /** Quoted PCR values per bank, verified against the quote's pcrDigest. */
  pcrs: Partial<Record<PcrBank, Record<number, Hex>>>;
  /** How the AK is known to live in a genuine TPM. */
  akTrust: 'cloud-certified' | 'hardware-report' | 'ek-credential' | 'pinned' | 'evidence-only';
}

export interface BootClaims {
  secureBoot?: boolean;
  /** PCR 7 variable digests (hex) by name: PK, KEK, db, dbx. */
  secureBootVars?: Record<string, Hex>;
  /** systemd-stub UKI section digests by section name ('.linux', '.cmdline', …). */
  ukiSections?: Record<string, Hex>;
  cmdline?: string;
  verityRootHash?: Hex;
  verityUsrHash?: Hex;
  /** Authenticode digests (hex) of boot applications measured into PCR 4, in order. */
  bootApps?: Hex[];
  /** Event-log replay matched the quoted PCRs for these banks. */
  eventLogReplayed?: PcrBank[];
  /** The bank whose digests secureBootVars, ukiSections and bootApps report. */
  digestBank?: PcrBank;
}

/**
 * One attested GPU (device evidence attached to the platform's, bound to the same binding).
 * Every field comes from signed data: the SPDM measurement report, its certified chain, and the
 * RIMs it was compared with (providers/nvidia).
 */
export interface GpuClaims {
  vendor: 'nvidia';
  arch: 'hopper' | 'blackwell';
  /** The chip named by the certified device certificate, e.g. GH100. */
  chip: string;
  model: string;
  /** Every active golden measurement matched both verified RIMs (NVIDIA's "CC mode" evidence). */
  ccMode: boolean;
  measurementsOk: boolean;
  /** Protected PCIe (multi-GPU passthrough) reported enabled in the signed report. */
  ppcie: boolean;
  driverVersion: string;
  vbiosVersion: string;
  boardId?: string;
  /** SHA-256 of the DeviceID certificate: stable per physical GPU. */
  deviceCertSha256: string;
}

/** Material the node bound into its evidence that release may use (never secrets). */
export interface ReleaseBindings {
  /** A public key certified by the platform (NitroTPM `public_key`, RSA for KMS Recipient), SPKI DER b64url. */
  platformKeySpki?: string;
  /** Raw NitroTPM attestation document (b64url) for KMS Recipient requests. */
  nitroDocument?: string;
  /** Signed `user_data` of a NitroTPM attestation document (b64url), exactly as the node set it. */
  userData?: string;
  /** TPM EK public (TPM2B_PUBLIC b64url) and AK name (hex) for TPM2_MakeCredential sealing. */
  ekPublic?: string;
  akName?: Hex;
}

/** The normalized claims every provider returns (architecture.md). */
export interface Claims {
  provider: ProviderName;
  format: string;
  platform: PlatformClaims;
  identity: IdentityClaims;
  tpm?: TpmClaims;
  boot?: BootClaims;
  gpus?: GpuClaims[];
  release?: ReleaseBindings;
  /** SHA-256 (hex) of the canonical evidence JSON, for audit. Filled by the broker. */
  evidenceSha256: Hex;
}

/** What a provider returns; the broker adds `evidenceSha256`. */
export type ProviderClaims = Omit<Claims, 'evidenceSha256'>;

/** Read-only access to pinned roots. */
export interface TrustStore {
  /** The anchors among `ids` that are loaded (possibly none: the caller must then reject). */
  anchors(ids: readonly string[]): readonly TrustAnchor[];
  /** Every loaded anchor id. */
  ids(): readonly string[];
}

export interface VerifyContext {
  /** The binding the evidence must carry (protocol §2), 32 bytes from the broker. */
  binding: Uint8Array;
  /** Verification time: the injected clock, or `--at`. */
  now: Date;
  /** Network access for vendor collateral (AMD KDS…); injected so tests and Workers control it. */
  fetch: typeof fetch;
  trust: TrustStore;
  /** Provider options from configuration (validated by the provider's own schema). */
  options: Readonly<Record<string, unknown>>;
  signal?: AbortSignal;
}

/**
 * Whether `ctx.options` carries nothing (absent, or a plain object with no own keys): a provider
 * then uses the defaults it resolved once, instead of validating `{}` on every call. Anything
 * else, including non-objects and objects with another prototype (which could carry inherited
 * keys a schema reads), goes to the provider's schema, which decides.
 */
export function isEmptyOptions(o: unknown): boolean {
  if (o === undefined || o === null) return true;
  if (typeof o !== 'object') return false;
  const proto: unknown = Object.getPrototypeOf(o);
  if (proto !== Object.prototype && proto !== null) return false;
  return Object.getOwnPropertyNames(o).length === 0 && Object.getOwnPropertySymbols(o).length === 0;
}

export interface Provider {
  readonly name: ProviderName;
  /** Protocol formats this provider verifies. */
  readonly formats: readonly string[];
  /** Verifies `evidence` (the JSON `evidence` object of protocol §3) for `format`. */
  verify(format: string, evidence: unknown, ctx: VerifyContext): Promise<ProviderClaims>;
}

/**
 * @module deploy/node/client/evidence.node
 *
 * Gathers evidence for the `evidence` member of the attest request (protocol §3), one gatherer
 * per format. Each puts the binding (protocol §2) where its format carries the challenge:
 *
 * | platform | format | binding goes into | sources |
 * |---|---|---|---|
 * | generic | `tpm` | TPMS_ATTEST.extraData (`tpm2_quote -q`) | EK (+ cert NV 0x01c00002 / 0x01c0000a), fresh AK, PCRs, event log |
 * | azure | `az-snp-vtpm` | quote extraData; HCL user-data (NV 0x01400002) where writable | AK 0x81000003, HCL report NV 0x01400001 (SEV-SNP), VCEK from IMDS THIM |
 * | azure | `az-tdx-vtpm` | the same | the same, HCL report holding a TDREPORT; TD quote from IMDS `POST /acc/tdquote` |
 * | gcp | `gotpm` | each quote's extraData; on a Confidential VM also the SEV-SNP REPORT_DATA (binding ‖ zeros) | AK template/cert NV 0x01c10001/0x01c10000 (RSA) or 0x01c10003/0x01c10002 (ECC), quotes per bank, event log; SEV-SNP report + certificate table from configfs-tsm (tsm.node.ts) |
 * | aws | `nitrotpm` | the document's `nonce` | `nitro-tpm-attest --nonce FILE` (the binding's 32 bytes in FILE) |
 *
 * deploy/node/attest-join.sh gathers the same formats; test/deploy/gather-both.test.ts checks
 * that both clients send the same evidence for the same TPM.
 *
 * Cloud gatherers are best effort where the cloud is: an optional source that is missing is
 * left out (the broker's policy then decides); a required one fails with
 * JOIN_EVIDENCE_UNAVAILABLE. Nothing here judges the evidence — the broker does.
 */
import { readFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { ByteReader, concat } from '../../../providers/common/bytes.js';
import { toBase64, toBase64Url, toHex } from '../../../providers/common/encoding.js';
import { JoinCodes, joinError } from './codes.js';
import {
  NITRO_NV_CHUNK,
  NITRO_NV_SIZE,
  checkVendorResponse,
  nsmAttestationRequest,
  nsmVendorCommand,
  nvDefineCommand,
  nvReadCommand,
  nvResponse,
  nvUndefineCommand,
  nvWriteCommand,
  parseNsmResponse,
  tpmResponse,
} from './nitro.js';
import { encodeAttestation, encodeSevSnpAttestation, type GotpmQuote } from './protobuf.js';
import { DEFAULT_CPUINFO, DEFAULT_TEE_DEV_DIR, DEFAULT_TSM_REPORT_DIR, parseCertTable, readTsmReport, snpProductFromCpuinfo, snpReportFields } from './tsm.node.js';
import { ALL_PCRS, allocatedBanks, createEkAndAk, hexHandle, nvIndices, nvReadIfPresent, quote, type PcrBank, type TpmSession } from './tpm.node.js';

/** The `--platform` values (each gatherer's; test/broker/descriptor.test.ts keeps them equal to the descriptors' `client`). */
export const PLATFORMS = ['generic', 'azure', 'gcp', 'aws'] as const;
export type Platform = (typeof PLATFORMS)[number];

/** TCG NV indices (TCG EK Credential Profile 2.0 §2.2.1.4; cloud docs for the vendor ranges). */
export const NV = {
  EK_CERT_RSA2048: 0x01c00002,
  EK_CERT_ECC_P256: 0x01c0000a,
  /** TCG EK Credential Profile 2.3+ §2.2.1.5: EK certificate chain (intermediates), one range. */
  EK_CHAIN_FIRST: 0x01c00100,
  EK_CHAIN_LAST: 0x01c001ff,
  AZURE_HCL_REPORT: 0x01400001,
  AZURE_HCL_USER_DATA: 0x01400002,
  GCE_AK_CERT_RSA: 0x01c10000,
  GCE_AK_TEMPLATE_RSA: 0x01c10001,
  GCE_AK_CERT_ECC: 0x01c10002,
  GCE_AK_TEMPLATE_ECC: 0x01c10003,
} as const;
/** Azure vTPM's persistent AK (HCLAkPub). */
export const AZURE_AK_HANDLE = 0x81000003;

export interface GatherOptions {
  session: TpmSession;
  binding: Uint8Array;
  /** Injected network, used only for Azure's IMDS. */
  fetch: typeof fetch;
  /** TCG binary event log (securityfs); empty = send none. */
  eventLogPath: string;
  /** Azure IMDS base (tests point it at a local server). */
  imdsBase: string;
  /** The NitroTPM tool (path or name on PATH); not installed → the vendor command (nitro.ts). */
  nitroTpmAttest: string;
  /** The vendor command's NV buffer size (default 8192, as AWS's tool). */
  nitroNvSize?: number;
  /** TCTI for the vendor-command exchange (default device:/dev/tpm0, as AWS's tool). */
  nitroTcti?: string;
  /**
   * AWS: an RSA public key (SPKI DER) for the document's `public_key`, so KMS can encrypt the
   * disk key to it (`CiphertextForRecipient`); its private key stays in the join client.
   */
  recipientSpki?: Uint8Array;
  /** GCP: the configfs-tsm report root (ATTEST_TSM_REPORT_DIR; default /sys/kernel/config/tsm/report). */
  tsmReportDir?: string;
  /** GCP: where the kernel's TEE guest devices appear (default /dev; tests point it elsewhere). */
  teeDevDir?: string;
  /** GCP: the CPU's family and model for the SEV-SNP product hint (ATTEST_CPUINFO; default /proc/cpuinfo). */
  cpuinfoPath?: string;
  /** GCP: `none` sends the vTPM attestation only, even on a Confidential VM (ATTEST_GCP_TEE). */
  gcpTee?: 'auto' | 'none';
  log: (msg: string) => void;
}

export interface Gathered {
  provider: 'tpm' | 'azure' | 'gcp' | 'aws';
  format: 'tpm' | 'az-snp-vtpm' | 'az-tdx-vtpm' | 'gotpm' | 'nitrotpm';
  evidence: Record<string, unknown>;
  /** True when an EK and AK were made in `session` and credential activation can run. */
  canActivate: boolean;
}

export const DEFAULT_EVENT_LOG = '/sys/kernel/security/tpm0/binary_bios_measurements';
export const DEFAULT_IMDS = 'http://169.254.169.254';
/** Event logs above this are refused (a real one is tens of KiB). */
const MAX_EVENT_LOG = 512 << 10;

async function readEventLog(o: GatherOptions): Promise<Uint8Array | undefined> {
  if (!o.eventLogPath) return undefined; // --no-event-log
  try {
    const b = new Uint8Array(await readFile(o.eventLogPath));
    if (b.length > MAX_EVENT_LOG) throw joinError(JoinCodes.EVIDENCE_UNAVAILABLE, `event log ${o.eventLogPath} is ${b.length} bytes, over ${MAX_EVENT_LOG}`);
    return b.length ? b : undefined;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
      o.log(`no event log at ${o.eventLogPath}; continuing without one`);
      return undefined;
    }
    throw e;
  }
}

function pcrsHex(m: ReadonlyMap<number, Uint8Array>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of [...m].sort((a, b) => a[0] - b[0])) out[String(k)] = toHex(v);
  return out;
}

/**
 * Generic TPM 2.0 (`tpm` format): EK + fresh AK + quote; activation possible. With
 * `reuseKeys` (the second step of credential activation) the EK and AK already in the session
 * are kept and only a new quote is made — the broker sealed its credential to this AK's Name.
 */
export async function gatherTpm(o: GatherOptions, reuseKeys = false): Promise<Gathered> {
  const s = o.session;
  const { ekPublic, akPublic } = reuseKeys && (await s.exists('ak.ctx'))
    ? { ekPublic: await s.read('ek.pub'), akPublic: await s.read('ak.pub') }
    : await createEkAndAk(s, { ekAlg: 'rsa', akAlg: 'ecc' });
  const q = await quote(s, s.file('ak.ctx'), 'sha256', o.binding, ALL_PCRS);
  const evidence: Record<string, unknown> = {
    ak_public: toBase64Url(akPublic),
    quote: { message: toBase64Url(q.message), signature: toBase64Url(q.signature) },
    pcrs: { sha256: pcrsHex(q.pcrs) },
    ek_public: toBase64Url(ekPublic),
  };
  const log = await readEventLog(o);
  if (log) evidence.event_log = toBase64Url(log);
  const ekCert = await nvReadIfPresent(s, NV.EK_CERT_RSA2048);
  if (ekCert) {
    evidence.ek_certificate = toBase64Url(stripNvPadding(ekCert));
    const chain = await readEkChain(s);
    if (chain.length) evidence.ek_intermediates = chain.map(toBase64Url);
  } else o.log(`no EK certificate at NV ${hexHandle(NV.EK_CERT_RSA2048)}; the broker must know this EK another way`);
  return { provider: 'tpm', format: 'tpm', evidence, canActivate: true };
}

/** At most this many intermediates are sent (the broker caps chains too). */
/** The broker takes at most 4 (providers/tpm/provider.ts): more would only get the attest refused. */
const MAX_EK_INTERMEDIATES = 4;

/**
 * The manufacturer's EK certificate chain, when the TPM carries it: NV indices 0x01c00100 to
 * 0x01c001ff, in index order, each holding one or more concatenated DER certificates (TCG EK
 * Credential Profile 2.3+ §2.2.1.5). Intermediates only; the broker anchors them to its own
 * pinned vendor roots and never trusts a root from here.
 */
export async function readEkChain(s: TpmSession): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  let indices: number[];
  try {
    indices = (await nvIndices(s)).filter((i) => i >= NV.EK_CHAIN_FIRST && i <= NV.EK_CHAIN_LAST);
  } catch {
    return out;
  }
  for (const i of indices) {
    const raw = await nvReadIfPresent(s, i);
    if (!raw) continue;
    for (const der of splitDer(raw)) if (out.length < MAX_EK_INTERMEDIATES) out.push(der);
  }
  return out;
}

/** Splits concatenated DER SEQUENCEs, stopping at zero padding or anything that is not DER. */
export function splitDer(b: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  let off = 0;
  for (let n = derLength(b.subarray(off)); n !== undefined; n = derLength(b.subarray(off))) {
    out.push(b.slice(off, off + n));
    off += n;
  }
  return out;
}

/** Total length (header + content) of the DER SEQUENCE at the start of `b`, if it fits (X.690 §8.1.3). */
function derLength(b: Uint8Array): number | undefined {
  if (b.length < 2 || b[0] !== 0x30) return undefined;
  const l0 = b[1]!;
  if (l0 < 0x80) return 2 + l0 <= b.length ? 2 + l0 : undefined;
  const n = l0 & 0x7f;
  if (n < 1 || n > 3 || b.length < 2 + n) return undefined;
  let len = 0;
  for (let i = 0; i < n; i++) len = len * 256 + b[2 + i]!;
  return 2 + n + len <= b.length ? 2 + n + len : undefined;
}

/**
 * NV certificate indices are often larger than the DER they hold (zero padding). Trim to the
 * outer DER SEQUENCE length (X.690 §8.1.3); leave anything that is not a DER SEQUENCE as is.
 */
export function stripNvPadding(b: Uint8Array): Uint8Array {
  const n = derLength(b);
  return n === undefined ? b : b.slice(0, n);
}

/** HCL report_type (IGVM request header, offset 1224, u32 LE; providers/azure/hcl.ts): 2 SEV-SNP, 4 TDX. */
const HCL_REPORT_TYPE_OFFSET = 1224;
/** The TDREPORT in the HCL report's hardware-report slot (offset 32, 1024 bytes). */
const HCL_TDREPORT = { offset: 32, size: 1024 } as const;

/**
 * Azure confidential VM: `az-snp-vtpm` (SEV-SNP) or `az-tdx-vtpm` (TDX), as the HCL report says.
 * No event log is sent: the azure verifier does not replay one and refuses evidence that carries
 * one (EVENTLOG_UNSUPPORTED) rather than ignore it.
 */
export async function gatherAzure(o: GatherOptions): Promise<Gathered> {
  const s = o.session;
  // Refresh the HCL report with the binding as user data (Azure confidential VM guest
  // attestation: write 64 bytes to NV 0x01400002, then read the report at 0x01400001).
  try {
    const ud = new Uint8Array(64);
    ud.set(o.binding);
    await s.write('hcl-user-data.bin', ud);
    const idx = hexHandle(NV.AZURE_HCL_USER_DATA);
    await s.tools.run('tpm2_nvreadpublic', [idx]).catch(() => s.tools.run('tpm2_nvdefine', [idx, '-C', 'o', '-s', '64', '-a', 'ownerread|ownerwrite|authread|authwrite']));
    await s.tools.run('tpm2_nvwrite', [idx, '-C', 'o', '-i', s.file('hcl-user-data.bin')]);
  } catch (e) {
    o.log(`could not write the binding into the HCL user data (${(e as Error).message}); the quote still carries it`);
  }
  const hcl = await nvReadIfPresent(s, NV.AZURE_HCL_REPORT);
  if (!hcl) throw joinError(JoinCodes.EVIDENCE_UNAVAILABLE, `no HCL report at NV ${hexHandle(NV.AZURE_HCL_REPORT)}: not an Azure confidential VM?`);
  if (hcl.length < HCL_REPORT_TYPE_OFFSET + 4) throw joinError(JoinCodes.EVIDENCE_UNAVAILABLE, `the HCL report is ${hcl.length} bytes: too short`);
  const reportType = new DataView(hcl.buffer, hcl.byteOffset, hcl.byteLength).getUint32(HCL_REPORT_TYPE_OFFSET, true);
  if (reportType !== 2 && reportType !== 4) throw joinError(JoinCodes.EVIDENCE_UNAVAILABLE, `the HCL report's type ${reportType} is neither SEV-SNP (2) nor TDX (4)`);
  const q = await quote(s, hexHandle(AZURE_AK_HANDLE), 'sha256', o.binding, ALL_PCRS, 'sha256', 'plain');
  const pcrs = ALL_PCRS.map((i) => toHex(q.pcrs.get(i)!));
  const evidence: Record<string, unknown> = {
    version: 1,
    tpm_quote: { signature: toHex(q.signature), message: toHex(q.message), pcrs },
    hcl_report: toBase64Url(hcl),
  };
  if (reportType === 4) {
    const tdReport = hcl.slice(HCL_TDREPORT.offset, HCL_TDREPORT.offset + HCL_TDREPORT.size);
    evidence.td_quote = toBase64Url(await fetchTdQuote(o, tdReport));
    return { provider: 'azure', format: 'az-tdx-vtpm', evidence, canActivate: false };
  }
  const thim = await fetchThim(o);
  evidence.vcek = toBase64Url(thim.vcekDer);
  if (thim.chainPem) evidence.vcek_chain = thim.chainPem;
  return { provider: 'azure', format: 'az-snp-vtpm', evidence, canActivate: false };
}

/** At most this many bytes are read from an IMDS answer (a TD quote is about 5 KiB). */
const MAX_IMDS_ANSWER = 64 << 10;

/**
 * Azure IMDS TD quote: `POST /acc/tdquote` with `{"report": base64url(TDREPORT)}` answers
 * `{"quote": base64url(TD quote)}` — the host's quoting enclave signs the TDREPORT the paravisor
 * put in the HCL report (whose REPORTDATA is the hash of the runtime data naming the vTPM AK).
 */
async function fetchTdQuote(o: GatherOptions, tdReport: Uint8Array): Promise<Uint8Array> {
  const url = new URL('/acc/tdquote', o.imdsBase);
  let res: Response;
  try {
    res = await o.fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ report: toBase64Url(tdReport) }),
      signal: AbortSignal.timeout(10_000),
    });
  } catch (cause) {
    throw joinError(JoinCodes.EVIDENCE_UNAVAILABLE, `Azure IMDS TD quote service unreachable at ${url.href}`, { cause });
  }
  if (!res.ok) throw joinError(JoinCodes.EVIDENCE_UNAVAILABLE, `Azure IMDS TD quote service answered HTTP ${res.status}`);
  const text = await res.text();
  if (text.length > MAX_IMDS_ANSWER) throw joinError(JoinCodes.EVIDENCE_UNAVAILABLE, 'Azure IMDS TD quote answer is too large');
  const j = JSON.parse(text) as { quote?: unknown };
  if (typeof j.quote !== 'string' || !/^[A-Za-z0-9_-]+={0,2}$/.test(j.quote)) throw joinError(JoinCodes.EVIDENCE_UNAVAILABLE, 'Azure IMDS TD quote answer has no base64url quote');
  return new Uint8Array(Buffer.from(j.quote, 'base64url'));
}

/** A certificate chain is passed on only as plain PEM text (no other characters to escape). */
const PLAIN_PEM = /^[A-Za-z0-9+/=\r\n -]*$/;

/**
 * Azure IMDS THIM: `GET /metadata/THIM/amd/certification` with `Metadata: true` returns JSON
 * `{vcekCert: PEM, certificateChain: PEM, tcbm}` for this host's chip and TCB.
 */
async function fetchThim(o: GatherOptions): Promise<{ vcekDer: Uint8Array; chainPem?: string }> {
  const url = new URL('/metadata/THIM/amd/certification', o.imdsBase);
  let res: Response;
  try {
    res = await o.fetch(url, { headers: { Metadata: 'true' }, signal: AbortSignal.timeout(10_000) });
  } catch (cause) {
    throw joinError(JoinCodes.EVIDENCE_UNAVAILABLE, `Azure IMDS THIM unreachable at ${url.href}`, { cause });
  }
  if (!res.ok) throw joinError(JoinCodes.EVIDENCE_UNAVAILABLE, `Azure IMDS THIM answered HTTP ${res.status}`);
  const j = (await res.json()) as { vcekCert?: unknown; certificateChain?: unknown };
  if (typeof j.vcekCert !== 'string') throw joinError(JoinCodes.EVIDENCE_UNAVAILABLE, 'Azure IMDS THIM answer has no vcekCert');
  const der = pemToDer(j.vcekCert);
  const chain = j.certificateChain;
  return typeof chain === 'string' && chain.includes('-----BEGIN CERTIFICATE-----') && PLAIN_PEM.test(chain) ? { vcekDer: der, chainPem: chain } : { vcekDer: der };
}

function pemToDer(pem: string): Uint8Array {
  const m = /-----BEGIN CERTIFICATE-----([\s\S]+?)-----END CERTIFICATE-----/.exec(pem);
  if (!m) throw joinError(JoinCodes.EVIDENCE_UNAVAILABLE, 'not a PEM certificate');
  return new Uint8Array(Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64'));
}

/**
 * GCE Shielded / Confidential VM (`gotpm`): same bytes `gotpm attest --nonce <binding>` emits.
 * On a Confidential VM with SEV-SNP the report goes into `sev_snp_attestation` with REPORT_DATA
 * = binding ‖ zeros, as go-tpm-tools requests it and the broker's gcp verifier checks it
 * (providers/gcp/sevsnp.ts `expectedReportData`). It is read first: a Confidential VM whose
 * report cannot be had fails (JOIN_TEE_REPORT_UNAVAILABLE) before any TPM work.
 */
export async function gatherGcp(o: GatherOptions): Promise<Gathered> {
  const s = o.session;
  let sevSnpAttestation: Uint8Array | undefined;
  if (o.gcpTee === 'none') {
    o.log('ATTEST_GCP_TEE=none: sending the vTPM attestation only, without any TEE report');
  } else {
    const tsm = await readTsmReport({ reportDir: o.tsmReportDir ?? DEFAULT_TSM_REPORT_DIR, devDir: o.teeDevDir ?? DEFAULT_TEE_DEV_DIR, binding: o.binding, log: o.log });
    if (tsm) {
      const product = await snpProductFromCpuinfo(o.cpuinfoPath ?? DEFAULT_CPUINFO);
      sevSnpAttestation = encodeSevSnpAttestation(snpReportFields(tsm.outblob), parseCertTable(tsm.auxblob), product);
    }
  }
  let template = await nvReadIfPresent(s, NV.GCE_AK_TEMPLATE_ECC);
  let certIdx: number = NV.GCE_AK_CERT_ECC;
  if (!template) {
    template = await nvReadIfPresent(s, NV.GCE_AK_TEMPLATE_RSA);
    certIdx = NV.GCE_AK_CERT_RSA;
  }
  if (!template) throw joinError(JoinCodes.EVIDENCE_UNAVAILABLE, 'no GCE AK template in NV (0x01c10003 / 0x01c10001): not a Shielded VM with vTPM?');
  const akPub = await createPrimaryFromTemplate(s, template, 'e', 'gce-ak');
  const quotes: GotpmQuote[] = [];
  const banks = (await allocatedBanks(s)).filter((b): b is PcrBank => b === 'sha1' || b === 'sha256' || b === 'sha384');
  if (banks.length === 0) throw joinError(JoinCodes.EVIDENCE_UNAVAILABLE, 'the TPM reports no allocated PCR bank');
  for (const bank of banks) {
    const q = await quote(s, s.file('gce-ak.ctx'), bank, o.binding, ALL_PCRS);
    quotes.push({ bank, quote: q.message, rawSig: q.signature, pcrs: q.pcrs });
  }
  const akCertRaw = await nvReadIfPresent(s, certIdx);
  const eventLog = await readEventLog(o);
  const att = encodeAttestation({
    akPub,
    quotes,
    ...(eventLog ? { eventLog } : {}),
    ...(akCertRaw ? { akCert: stripNvPadding(akCertRaw) } : {}),
    ...(sevSnpAttestation ? { sevSnpAttestation } : {}),
  });
  return { provider: 'gcp', format: 'gotpm', evidence: { attestation: toBase64(att) }, canActivate: false };
}

/** TPM algorithm IDs (TCG Algorithm Registry). */
const ALG = { RSA: 0x0001, ECC: 0x0023, NULL: 0x0010, SHA1: 0x0004, SHA256: 0x000b, SHA384: 0x000c, RSASSA: 0x0014, RSAPSS: 0x0016, ECDSA: 0x0018 } as const;
const HASH_NAME: Record<number, string> = { [ALG.SHA1]: 'sha1', [ALG.SHA256]: 'sha256', [ALG.SHA384]: 'sha384' };
const CURVE: Record<number, string> = { 0x0003: 'ecc256', 0x0004: 'ecc384' };

/**
 * Turns a TPMT_PUBLIC template (TPM 2.0 Part 2 §12.2.4) into tpm2_createprimary options, makes
 * the primary key in `hierarchy`, and returns its TPMT_PUBLIC (without the TPM2B size).
 * Only the shapes GCE uses are supported: RSA-2048 RSASSA/RSAPSS or ECC P-256/P-384 ECDSA
 * signing keys with a null symmetric; anything else fails (no guessing at a key).
 */
export async function createPrimaryFromTemplate(s: TpmSession, template: Uint8Array, hierarchy: 'e' | 'o', name: string): Promise<Uint8Array> {
  const r = new ByteReader(template);
  const type = r.u16('type');
  const nameAlg = r.u16('nameAlg');
  const attrs = r.u32('objectAttributes');
  const policy = r.tpm2b('authPolicy', 64);
  const sym = r.u16('symmetric');
  if (sym !== ALG.NULL) throw joinError(JoinCodes.EVIDENCE_UNAVAILABLE, 'AK template has a non-null symmetric: not a signing key');
  const scheme = r.u16('scheme');
  const schemeHash = scheme === ALG.NULL ? undefined : r.u16('scheme hash');
  let alg: string;
  let unique: Uint8Array | undefined;
  let head: number;
  if (type === ALG.RSA) {
    const bits = r.u16('keyBits');
    r.u32('exponent');
    head = r.position;
    const n = r.tpm2b('unique', 512);
    unique = n.length ? tssUnique([n], 512) : undefined;
    const sch = scheme === ALG.RSASSA ? 'rsassa' : scheme === ALG.RSAPSS ? 'rsapss' : undefined;
    if (!sch || bits !== 2048) throw joinError(JoinCodes.EVIDENCE_UNAVAILABLE, `unsupported RSA AK template (bits ${bits}, scheme 0x${scheme.toString(16)})`);
    alg = `rsa${bits}:${sch}-${HASH_NAME[schemeHash!] ?? 'sha256'}:null`;
  } else if (type === ALG.ECC) {
    const curve = CURVE[r.u16('curveID')];
    const kdf = r.u16('kdf');
    if (kdf !== ALG.NULL) r.u16('kdf hash');
    head = r.position;
    const x = r.tpm2b('unique.x', 66);
    const y = r.tpm2b('unique.y', 66);
    unique = x.length || y.length ? tssUnique([x, y], 128) : undefined;
    if (!curve || scheme !== ALG.ECDSA) throw joinError(JoinCodes.EVIDENCE_UNAVAILABLE, 'unsupported ECC AK template (curve or scheme)');
    alg = `${curve}:ecdsa-${HASH_NAME[schemeHash!] ?? 'sha256'}:null`;
  } else {
    throw joinError(JoinCodes.EVIDENCE_UNAVAILABLE, `unsupported AK template type 0x${type.toString(16)}`);
  }
  r.end('AK template');
  const args = ['-C', hierarchy, '-G', alg, '-g', HASH_NAME[nameAlg] ?? 'sha256', '-a', '0x' + attrs.toString(16).padStart(8, '0'), '-c', s.file(`${name}.ctx`)];
  if (policy.length) {
    await s.write(`${name}.policy`, policy);
    args.push('-L', s.file(`${name}.policy`));
  }
  if (unique) {
    await s.write(`${name}.unique`, unique);
    args.push('-u', s.file(`${name}.unique`));
  }
  await s.tools.run('tpm2_createprimary', args);
  await s.flush();
  await s.tools.run('tpm2_readpublic', ['-c', s.file(`${name}.ctx`), '-o', s.file(`${name}.pub`), '-f', 'tss']);
  await s.flush();
  const made = new ByteReader(await s.read(`${name}.pub`)).tpm2b('TPM2B_PUBLIC');
  // The key the TPM made must carry exactly the template's type, nameAlg, attributes, policy
  // and parameters; otherwise the options above did not express the template.
  const same = made.length >= head && made.subarray(0, head).every((b, i) => b === template[i]);
  if (!same) throw joinError(JoinCodes.EVIDENCE_UNAVAILABLE, 'the AK made from the NV template does not match the template');
  return made;
}

/**
 * tpm2-tools' `-u FILE` is the raw in-memory TPMU_PUBLIC_ID of the TSS (lib/files.c
 * `files_load_unique_data`): each TPM2B as a little-endian u16 size followed by its fixed-size
 * buffer (TPM2B_PUBLIC_KEY_RSA: 512 bytes; TPM2B_ECC_PARAMETER: 128 bytes). A template's
 * unique field matters: the TPM derives a primary key from the whole template, so GCE's
 * zero-filled unique must be passed through exactly.
 */
function tssUnique(parts: Uint8Array[], bufSize: number): Uint8Array {
  const out = new Uint8Array(parts.length * (2 + bufSize));
  parts.forEach((p, i) => {
    const o = i * (2 + bufSize);
    out[o] = p.length & 0xff;
    out[o + 1] = p.length >> 8;
    out.set(p, o + 2);
  });
  return out;
}

/**
 * EC2 NitroTPM (`nitrotpm`): the signed document with the binding as its nonce. AWS's
 * `nitro-tpm-attest` (aws-nitro-tpm-tools) takes the nonce as a *file* of raw bytes
 * (`--nonce FILE`), the public key likewise (`--public-key FILE`, SPKI DER), and writes the
 * COSE_Sign1 document to stdout. Where the tool is not installed, the client sends the
 * NitroTPM's NSM vendor command itself (nitroVendorDocument; deploy/node/client/nitro.ts).
 */
export async function gatherAws(o: GatherOptions): Promise<Gathered> {
  await o.session.write('nitro-nonce.bin', o.binding);
  const args = ['--nonce', o.session.file('nitro-nonce.bin')];
  if (o.recipientSpki) {
    await o.session.write('nitro-recipient.spki', o.recipientSpki);
    args.push('--public-key', o.session.file('nitro-recipient.spki'));
  }
  let doc: Uint8Array;
  try {
    doc = await o.session.tools.run(o.nitroTpmAttest, args);
  } catch (e) {
    const missing = e instanceof Error && (e.cause as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
    if (!missing) throw e;
    o.log(`${o.nitroTpmAttest} not installed: sending the NitroTPM vendor command`);
    doc = await nitroVendorDocument(o.session, o.binding, o.recipientSpki, o.nitroTcti ?? 'device:/dev/tpm0', o.nitroNvSize);
  }
  if (doc.length === 0) throw joinError(JoinCodes.EVIDENCE_UNAVAILABLE, `${o.nitroTpmAttest} printed no document`);
  const evidence: Record<string, unknown> = { document: toBase64(doc) };
  return { provider: 'aws', format: 'nitrotpm', evidence, canActivate: false };
}

/**
 * The NitroTPM document through TPM2_CC 0x20000001 (steps in deploy/node/client/nitro.ts), every
 * command raw through `tpm2_send` with password sessions, over `tcti` (AWS's tool and vaportpm
 * use /dev/tpm0: the kernel resource manager does not pass the vendor command): a fresh NV
 * buffer with a random password, the NSM request written into it, the vendor command, the
 * answer read back chunk by chunk; the buffer is undefined whatever happens.
 */
export async function nitroVendorDocument(s: TpmSession, nonce: Uint8Array, publicKey: Uint8Array | undefined, tcti: string, nvSize = NITRO_NV_SIZE): Promise<Uint8Array> {
  let n = 0;
  // TPM_RC_RETRY / YIELDED / TESTING: the TPM asks to be asked again (the TSS retries these for
  // the tools); up to 10 times, a second apart.
  const send = async (cmd: Uint8Array): Promise<Uint8Array> => {
    for (let tries = 0; ; tries++) {
      const name = `tpm-cmd-${n++}`;
      await s.write(`${name}.bin`, cmd);
      await s.tools.run('tpm2_send', ['-T', tcti, '-o', s.file(`${name}.rsp`), s.file(`${name}.bin`)]);
      const rsp = await s.read(`${name}.rsp`);
      const rc = rsp.length >= 10 ? new DataView(rsp.buffer, rsp.byteOffset, rsp.byteLength).getUint32(6) : 0;
      if (![0x922, 0x908, 0x90a].includes(rc) || tries >= 9) return rsp;
      await new Promise((r) => setTimeout(r, 1000));
    }
  };
  const password = new Uint8Array(randomBytes(32));
  const request = nsmAttestationRequest(nonce, publicKey);
  if (request.length > NITRO_NV_CHUNK) throw joinError(JoinCodes.EVIDENCE_UNAVAILABLE, `NSM request of ${request.length} bytes`);
  const used = new Set(await nvIndices(s));
  let nv: number | undefined;
  for (let h = 0x01000000; h < 0x01000040 && nv === undefined; h++) {
    if (used.has(h)) continue;
    const { rc } = tpmResponse(await send(nvDefineCommand(h, password, nvSize)), 'NV_DefineSpace', JoinCodes.TPM_TOOL_FAILED);
    if (rc === 0) nv = h;
    else if (rc !== 0x14c) throw joinError(JoinCodes.TPM_TOOL_FAILED, `NV_DefineSpace of the ${nvSize}-byte NSM buffer: TPM response code 0x${rc.toString(16)}`, { detail: { tpmRc: rc } });
  }
  if (nv === undefined) throw joinError(JoinCodes.TPM_TOOL_FAILED, 'no free NV index for the NSM buffer');
  const index = nv;
  try {
    nvResponse(await send(nvWriteCommand(index, password, request, 0)), 'NV_Write of the NSM request');
    let rsp: Uint8Array;
    try {
      rsp = await send(nsmVendorCommand(index, password));
    } catch (e) {
      throw joinError(JoinCodes.NITRO_COMMAND_FAILED, 'NitroTPM vendor command: no answer', { cause: e });
    }
    checkVendorResponse(rsp);
    const chunks: Uint8Array[] = [];
    for (let off = 0; off < nvSize; off += NITRO_NV_CHUNK) {
      const len = Math.min(NITRO_NV_CHUNK, nvSize - off);
      chunks.push(nvResponse(await send(nvReadCommand(index, password, len, off)), 'NV_Read of the NSM response', len));
    }
    return parseNsmResponse(concat(...chunks));
  } finally {
    await send(nvUndefineCommand(index)).catch(() => undefined);
  }
}

export async function gather(platform: Platform, o: GatherOptions): Promise<Gathered> {
  switch (platform) {
    case 'generic':
      return gatherTpm(o);
    case 'azure':
      return gatherAzure(o);
    case 'gcp':
      return gatherGcp(o);
    case 'aws':
      return gatherAws(o);
  }
}

/**
 * Platform detection from SMBIOS (DMI) strings, never from the network: probing a link-local
 * metadata address on the wrong cloud (or on bare metal) would hang or reach something else.
 */
export async function detectPlatform(dmiDir = '/sys/class/dmi/id'): Promise<Platform> {
  const read = async (f: string): Promise<string> => (await readFile(`${dmiDir}/${f}`, 'utf8').catch(() => '')).trim();
  const vendor = `${await read('sys_vendor')} ${await read('board_vendor')} ${await read('bios_vendor')}`;
  const product = await read('product_name');
  if (/Microsoft Corporation/i.test(vendor) && /Virtual Machine/i.test(product)) return 'azure';
  if (/Google/i.test(vendor)) return 'gcp';
  if (/Amazon EC2/i.test(vendor)) return 'aws';
  return 'generic';
}

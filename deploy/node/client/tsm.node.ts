/**
 * @module deploy/node/client/tsm.node
 *
 * A Confidential VM's TEE report through the kernel's configfs-tsm interface (Linux >= 6.7,
 * Documentation/ABI/testing/configfs-tsm): `mkdir <root>/<entry>` makes a report entry, the
 * 64 bytes written to `inblob` become the report's REPORT_DATA, reading `outblob` asks the
 * guest firmware for the report (and `auxblob` holds the host's certificate table, when the
 * host gave one), `provider` names the guest driver (`sev_guest`, `tdx_guest`), `generation`
 * counts writes to the entry so a concurrent writer is noticed; `rmdir` removes it.
 * deploy/node/attest-join.sh does the same steps from sh.
 *
 * What happens when (the same in both clients):
 * - the root is there and an entry can be made: the report is read; any failure from there on
 *   is JOIN_TEE_REPORT_UNAVAILABLE (the VM is a Confidential VM; its report is never dropped);
 * - no entry can be made (no configfs-tsm, or no provider registered) and the kernel's guest
 *   device (`/dev/sev-guest`, `/dev/tdx_guest`) exists: a Confidential VM whose report cannot
 *   be read this way (a kernel before 6.7, or configfs not mounted) — JOIN_TEE_REPORT_UNAVAILABLE
 *   saying so; the device's ioctl is not used (the shell client cannot reach it either);
 * - neither: a Shielded VM, nothing to add.
 *
 * The entry's name is derived from the binding (`attest-join-` + its first 8 bytes in hex): one
 * entry per challenge. An entry of that name that already exists (an earlier run for the same
 * challenge that did not finish, or a kernel stand-in a test laid out in advance) is used as
 * it is: `generation` and the broker's REPORT_DATA check make that harmless.
 */
import { mkdir, readFile, rmdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ByteReader } from '../../../providers/common/bytes.js';
import { SNP_LAYOUT, type SnpField } from '../../../providers/amd-sev-snp/layout.js';
import { productFromCpuid } from '../../../providers/amd-sev-snp/parse.js';
import { toHex } from '../../../providers/common/encoding.js';
import { JoinCodes, joinError } from './codes.js';
import type { SnpCertificates, SnpReportFields } from './protobuf.js';

export const DEFAULT_TSM_REPORT_DIR = '/sys/kernel/config/tsm/report';
export const DEFAULT_TEE_DEV_DIR = '/dev';
export const DEFAULT_CPUINFO = '/proc/cpuinfo';
/** The kernel's TEE guest devices (drivers/virt/coco): present on a Confidential VM. */
const GUEST_DEVICES = ['sev-guest', 'tdx_guest'] as const;
/** ATTESTATION_REPORT size (SEV-SNP Firmware ABI, "ATTESTATION_REPORT Structure"). */
const SNP_REPORT_SIZE = 0x4a0;
/** A certificate table far above a real one (VCEK + ASK + ARK: about 4 KiB). */
const MAX_AUXBLOB = 128 << 10;
/** The broker's per-certificate cap (providers/gcp/sevsnp.ts). */
const MAX_CERT = 16 << 10;
const MAX_CERT_ENTRIES = 16;

const unavailable = (message: string, cause?: unknown) => joinError(JoinCodes.TEE_REPORT_UNAVAILABLE, message, cause === undefined ? {} : { cause });
const FIX = 'set ATTEST_GCP_TEE=none to join knowingly with the vTPM attestation only (the broker then sees a Shielded VM)';

export interface TsmOptions {
  /** The configfs-tsm report root (ATTEST_TSM_REPORT_DIR). */
  reportDir: string;
  /** Where the kernel's guest devices appear (tests point it elsewhere). */
  devDir: string;
  binding: Uint8Array;
  log: (msg: string) => void;
}

export interface TsmReport {
  provider: string;
  outblob: Uint8Array;
  /** Empty when the host gave no certificate table. */
  auxblob: Uint8Array;
}

async function exists(p: string): Promise<boolean> {
  return stat(p).then(
    () => true,
    () => false,
  );
}

async function readSmall(path: string, max: number, what: string): Promise<Uint8Array> {
  let b: Uint8Array;
  try {
    b = new Uint8Array(await readFile(path));
  } catch (e) {
    throw unavailable(`cannot read ${what} ${path} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); ${FIX}`, e);
  }
  if (b.byteLength > max) throw unavailable(`${what} ${path} is ${b.byteLength} bytes, over ${max}`);
  return b;
}

/** The report for REPORT_DATA = binding ‖ zeros, or undefined on a VM without a TEE (see the module comment). */
export async function readTsmReport(o: TsmOptions): Promise<TsmReport | undefined> {
  if (o.binding.byteLength > 64) throw unavailable('the binding is longer than REPORT_DATA (64 bytes)');
  const entry = join(o.reportDir, `attest-join-${toHex(o.binding.subarray(0, 8))}`);
  try {
    await mkdir(entry);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? 'error';
    if (code !== 'EEXIST') {
      for (const d of GUEST_DEVICES) {
        if (await exists(join(o.devDir, d))) {
          throw unavailable(
            `${join(o.devDir, d)} exists (a Confidential VM) but no configfs-tsm report entry can be made under ${o.reportDir} (${code}): ` +
              `the report is read through configfs-tsm, which needs Linux >= 6.7 with configfs mounted (mount -t configfs none /sys/kernel/config); ${FIX}`,
            e,
          );
        }
      }
      o.log(`no configfs-tsm report entry under ${o.reportDir} (${code}) and no TEE guest device: a Shielded VM, sending the vTPM attestation only`);
      return undefined;
    }
  }
  try {
    const provider = new TextDecoder().decode(await readSmall(join(entry, 'provider'), 64, 'the TSM provider')).trim();
    if (provider === 'tdx_guest') {
      // Nothing on the broker can check a TD quote in gotpm evidence (TEE_REPORT_UNSUPPORTED):
      // the vTPM part goes alone, and the broker's policy decides.
      o.log(`warning: an Intel TDX Confidential VM: the broker's gcp verifier cannot check a TD quote in gotpm evidence yet, so the vTPM attestation goes alone (the broker's policy decides)`);
      return undefined;
    }
    if (provider !== 'sev_guest') throw unavailable(`unknown TSM provider ${JSON.stringify(provider)} in ${entry}`);
    const inblob = new Uint8Array(64);
    inblob.set(o.binding);
    try {
      await writeFile(join(entry, 'inblob'), inblob);
    } catch (e) {
      throw unavailable(`cannot write ${join(entry, 'inblob')} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); ${FIX}`, e);
    }
    const before = new TextDecoder().decode(await readSmall(join(entry, 'generation'), 32, 'the TSM generation')).trim();
    const outblob = await readSmall(join(entry, 'outblob'), SNP_REPORT_SIZE, 'the TEE report');
    if (outblob.byteLength !== SNP_REPORT_SIZE) throw unavailable(`the SEV-SNP report ${join(entry, 'outblob')} is ${outblob.byteLength} bytes, not ${SNP_REPORT_SIZE}`);
    const auxblob = (await exists(join(entry, 'auxblob'))) ? await readSmall(join(entry, 'auxblob'), MAX_AUXBLOB, 'the certificate table') : new Uint8Array(0);
    const after = new TextDecoder().decode(await readSmall(join(entry, 'generation'), 32, 'the TSM generation')).trim();
    if (before !== after) throw unavailable(`${entry} was written by someone else while the report was read (generation ${before} → ${after}); try again`);
    return { provider, outblob, auxblob };
  } finally {
    await rmdir(entry).catch((e: NodeJS.ErrnoException) => o.log(`could not remove ${entry} (${e.code ?? e.message})`));
  }
}

/** sevsnp.Report field number → the report bytes it holds (providers/gcp/sevsnp.ts, the other way round). */
const INTEGERS: ReadonlyArray<readonly [number, SnpField]> = [
  [1, 'VERSION'], [2, 'GUEST_SVN'], [3, 'POLICY'], [6, 'VMPL'], [7, 'SIGNATURE_ALGO'], [8, 'CURRENT_TCB'],
  [9, 'PLATFORM_INFO'], [10, 'SIGNER_INFO'], [18, 'REPORTED_TCB'], [20, 'COMMITTED_TCB'], [21, 'CURRENT_BUILD'],
  [22, 'CURRENT_MINOR'], [23, 'CURRENT_MAJOR'], [24, 'COMMITTED_BUILD'], [25, 'COMMITTED_MINOR'], [26, 'COMMITTED_MAJOR'],
  [27, 'LAUNCH_TCB'], [30, 'LAUNCH_MIT_VECTOR'], [31, 'CURRENT_MIT_VECTOR'],
];
const BYTES: ReadonlyArray<readonly [number, SnpField]> = [
  [4, 'FAMILY_ID'], [5, 'IMAGE_ID'], [11, 'REPORT_DATA'], [12, 'MEASUREMENT'], [13, 'HOST_DATA'], [14, 'ID_KEY_DIGEST'],
  [15, 'AUTHOR_KEY_DIGEST'], [16, 'REPORT_ID'], [17, 'REPORT_ID_MA'], [19, 'CHIP_ID'],
];
/** Bytes the proto cannot carry: they must be zero, or the broker's rebuild could not match the signature. */
const RESERVED: readonly SnpField[] = ['RESERVED_04C', 'RESERVED_18B', 'RESERVED_1EB', 'RESERVED_1EF', 'RESERVED_208'];

/**
 * The sevsnp.Report fields of a 1184-byte report (go-sev-guest `abi.ReportToProto`): integers
 * little-endian at their offsets, byte strings as they are, the 512-byte signature block
 * (R ‖ S ‖ reserved) as `signature`, and from version 3 the CPUID family/model/stepping bytes
 * as cpuid(1).eax (`cpuid1eax_fms`, which the broker turns back into the same three bytes).
 */
export function snpReportFields(report: Uint8Array): SnpReportFields {
  if (report.byteLength !== SNP_REPORT_SIZE) throw unavailable(`the SEV-SNP report is ${report.byteLength} bytes, not ${SNP_REPORT_SIZE}`);
  const at = (f: SnpField) => new ByteReader(report.subarray(SNP_LAYOUT[f].off, SNP_LAYOUT[f].off + SNP_LAYOUT[f].len), SNP_LAYOUT[f].off);
  const fields = new Map<number, bigint | Uint8Array>();
  try {
    for (const [n, f] of INTEGERS) {
      const r = at(f);
      fields.set(n, SNP_LAYOUT[f].len === 8 ? r.u64le(f) : SNP_LAYOUT[f].len === 4 ? BigInt(r.u32le(f)) : BigInt(r.u8(f)));
    }
    for (const [n, f] of BYTES) fields.set(n, at(f).bytes(SNP_LAYOUT[f].len, f));
    for (const f of RESERVED) at(f).expectZero(SNP_LAYOUT[f].len, f);
    const sigOff = SNP_LAYOUT.SIGNATURE_R.off;
    fields.set(28, new ByteReader(report.subarray(sigOff), sigOff).bytes(512, 'signature'));
    if ((fields.get(1) as bigint) >= 3n) {
      const family = at('CPUID_FAM_ID').u8();
      const model = at('CPUID_MOD_ID').u8();
      const stepping = at('CPUID_STEP').u8();
      if (stepping > 0xf) throw unavailable(`the report's CPUID stepping ${stepping} does not fit cpuid(1).eax`);
      // cpuid(1).eax: a family of 0Fh and above is base family 0Fh plus the extended family;
      // the model is split in nibbles (extended model, model).
      const [ext, base] = family >= 0xf ? [family - 0xf, 0xf] : [0, family];
      fields.set(29, BigInt(((ext << 20) | ((model >> 4) << 16) | (base << 8) | ((model & 0xf) << 4) | stepping) >>> 0));
    } else {
      for (const f of ['CPUID_FAM_ID', 'CPUID_MOD_ID', 'CPUID_STEP'] as const) at(f).expectZero(1, f);
    }
  } catch (e) {
    if ((e as { code?: string }).code === JoinCodes.TEE_REPORT_UNAVAILABLE) throw e;
    throw unavailable(`the SEV-SNP report cannot be carried in sevsnp.Report: ${(e as Error).message}`, e);
  }
  return { fields };
}

/** Certificate table GUIDs (GHCB specification, SNP extended guest request), in RFC 4122 byte order. */
const CERT_GUIDS: Readonly<Record<string, keyof SnpCertificates>> = {
  '63da758de6644564adc5f4b93be8accd': 'vcek',
  '4ab7b379bbac4fe4a02f05aef327c782': 'ask',
  'c0b406a4a803495297433fb6014cd0ae': 'ark',
  'a8074bc2a25a483eaae639c045a0b8a1': 'vlek',
};

/**
 * The certificate table in `auxblob`: entries of GUID (16) ‖ offset u32 LE ‖ length u32 LE,
 * ended by an all-zero entry, offsets from the table's start. VCEK, VLEK, ASK and ARK are kept
 * (the broker pins the ARK and ignores the one sent); other GUIDs are skipped.
 */
export function parseCertTable(aux: Uint8Array): SnpCertificates {
  const out: SnpCertificates = {};
  if (aux.byteLength === 0) return out;
  try {
    const r = new ByteReader(aux);
    for (let i = 0; ; i++) {
      if (i > MAX_CERT_ENTRIES) throw new Error(`more than ${MAX_CERT_ENTRIES} entries`);
      const guid = toHex(r.bytes(16, 'GUID'));
      const off = r.u32le('offset');
      const len = r.u32le('length');
      if (/^0+$/.test(guid) && off === 0 && len === 0) break;
      const role = CERT_GUIDS[guid];
      if (!role || len === 0) continue;
      if (len > MAX_CERT) throw new Error(`the ${role} certificate is ${len} bytes, over ${MAX_CERT}`);
      const c = new ByteReader(aux);
      c.skip(off, `${role} offset`);
      out[role] = c.bytes(len, `${role} certificate`);
    }
  } catch (e) {
    throw unavailable(`the certificate table in auxblob is malformed: ${(e as Error).message}`, e);
  }
  return out;
}

/**
 * sevsnp.SevProduct name (1 Milan, 2 Genoa, 3 Turin) from the first `cpu family` and `model`
 * lines of /proc/cpuinfo (decimal), with the broker's own family/model table; undefined when
 * the file is unreadable or names no SEV-SNP product.
 */
export async function snpProductFromCpuinfo(path: string): Promise<1 | 2 | 3 | undefined> {
  const text = await readFile(path, 'utf8').catch(() => '');
  const family = /^cpu family\s*:\s*([0-9]{1,3})\s*$/m.exec(text)?.[1];
  const model = /^model\s*:\s*([0-9]{1,3})\s*$/m.exec(text)?.[1];
  if (family === undefined || model === undefined) return undefined;
  const p = productFromCpuid({ family: Number(family), model: Number(model), stepping: 0 });
  return p === 'Milan' ? 1 : p === 'Genoa' ? 2 : p === 'Turin' ? 3 : undefined;
}

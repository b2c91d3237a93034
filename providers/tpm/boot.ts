/**
 * @module providers/tpm/boot
 *
 * Boot summary for policy, derived ONLY from a `VerifiedEventLog` (an event log whose replay
 * matched the quoted PCRs), and only from events in PCRs that the quote covered and that
 * matched in the reporting bank. Where a claim is read from event *data* (a variable's value,
 * a command line), the data is first proven to be what was hashed (digest = H(data) in the
 * verified bank); otherwise the summary throws rather than report unproven text.
 *
 * What is summarized (TCG PC Client PFP 1.05 §3.3.4, §10.4.4; systemd TPM2_PCR_MEASUREMENTS.md;
 * GRUB manual "Measured Boot"):
 * - PCR 7, EV_EFI_VARIABLE_DRIVER_CONFIG: the event data is UEFI_VARIABLE_DATA
 *   { VariableName GUID, UnicodeNameLength u64le, VariableDataLength u64le, UnicodeName UTF-16LE,
 *   VariableData } and the digest is H(UEFI_VARIABLE_DATA) (§10.4.4 / §3.3.4.8).
 *   `SecureBoot` (EFI_GLOBAL_VARIABLE) with one byte 0/1 gives `secureBoot`; `PK`, `KEK`
 *   (EFI_GLOBAL_VARIABLE) and `db`, `dbx` (EFI_IMAGE_SECURITY_DATABASE) give `secureBootVars`
 *   (the event digests). A SecureBoot variable whose data is not exactly one byte is rejected
 *   (BOOT_SECUREBOOT_MALFORMED), as go-tpm-tools does.
 * - PCR 4, EV_EFI_BOOT_SERVICES_APPLICATION: the digest is the PE/COFF Authenticode digest of
 *   the loaded image (§3.3.4.5) → `bootApps`, in order (compare with `authenticodeDigest`).
 * - PCR 8, EV_IPL from GRUB: data "kernel_cmdline: <cmdline>\0" (GRUB ≥ 2.04) or
 *   "grub_kernel_cmdline <cmdline>\0" (RHEL/Fedora GRUB), digest = H(<cmdline>) → `cmdline`.
 * - PCR 12, EV_IPL from systemd-stub: data = the UTF-16LE load options incl. NUL, and the digest is
 *   H(data) → `cmdline` (only when the boot loader passed options that override the UKI's).
 * - PCR 11, systemd-stub UKI sections: per measured section two EV_IPL events whose data is the
 *   UTF-16LE section name + NUL; the first digest is H(ASCII name + NUL) (checked), the second is
 *   H(section content) → `ukiSections[name]`. Any other PCR 11 event in the firmware log is
 *   rejected: the summary would not describe what PCR 11 holds.
 * - `roothash=` / `usrhash=` (systemd-veritysetup-generator) in the command line → verity hashes.
 *   Repeated or non-hex values are rejected (BOOT_VERITY_MALFORMED).
 *
 * All digests are reported in one bank (`digestBank`, returned in `eventLogReplayed` order); a
 * claim whose PCR is not verified in that bank is omitted, never guessed.
 */
import { ByteReader } from '../common/bytes.js';
import { timingSafeEqual } from '../common/ct.js';
import { digest } from '../common/digest.js';
import { fromUtf8, toHex } from '../common/encoding.js';
import { malformed, configError, CommonCodes } from '../common/errors.js';
import type { BootClaims, Hex, PcrBank } from '../common/types.js';
import { EV, algIdOf, type LogEvent, type VerifiedEventLog } from './eventlog.js';
import { UKI_MEASURED_SECTIONS } from './uki.js';

export const BootCodes = {
  /** Event data does not hash to the (verified) event digest: the text is unproven. */
  BOOT_EVENT_DATA_MISMATCH: 'BOOT_EVENT_DATA_MISMATCH',
  /** A UEFI_VARIABLE_DATA name is not valid UTF-16 (odd length, embedded NUL). */
  BOOT_VARIABLE_MALFORMED: 'BOOT_VARIABLE_MALFORMED',
  /** The SecureBoot variable's data is not one byte of 0 or 1. */
  BOOT_SECUREBOOT_MALFORMED: 'BOOT_SECUREBOOT_MALFORMED',
  /** A Secure Boot variable measured more than once. */
  BOOT_DUPLICATE_VARIABLE: 'BOOT_DUPLICATE_VARIABLE',
  /** More than one distinct kernel command line measured. */
  BOOT_AMBIGUOUS_CMDLINE: 'BOOT_AMBIGUOUS_CMDLINE',
  /** roothash=/usrhash= repeated or not hex. */
  BOOT_VERITY_MALFORMED: 'BOOT_VERITY_MALFORMED',
  /** PCR 11 holds events that are not systemd-stub section pairs. */
  BOOT_UKI_EVENT_MALFORMED: 'BOOT_UKI_EVENT_MALFORMED',
  /** The requested digest bank was not verified against the quote. */
  BOOT_DIGEST_BANK_UNVERIFIED: 'BOOT_DIGEST_BANK_UNVERIFIED',
} as const;

export interface SummarizeBootOptions {
  /** Bank whose digests are reported (default sha256, else sha384, else sha1 among verified banks). */
  digestBank?: PcrBank;
}

/** EFI_GLOBAL_VARIABLE 8BE4DF61-93CA-11D2-AA0D-00E098032B8C, in its on-disk (mixed-endian) form. */
const EFI_GLOBAL_VARIABLE = guidBytes('8be4df61-93ca-11d2-aa0d-00e098032b8c');
/** EFI_IMAGE_SECURITY_DATABASE_GUID D719B2CB-3D3A-4596-A3BC-DAD00E67656F. */
const EFI_IMAGE_SECURITY_DATABASE = guidBytes('d719b2cb-3d3a-4596-a3bc-dad00e67656f');

/** EFI_GUID text → bytes (Data1..3 little-endian, Data4 as is; UEFI 2.10 Appendix A). */
function guidBytes(s: string): Uint8Array {
  const h = s.replace(/-/g, '');
  const b = new Uint8Array(16);
  const le = (hex: string): number[] => (hex.match(/../g) ?? []).map((x) => parseInt(x, 16)).reverse();
  b.set(le(h.slice(0, 8)), 0);
  b.set(le(h.slice(8, 12)), 4);
  b.set(le(h.slice(12, 16)), 6);
  b.set((h.slice(16).match(/../g) ?? []).map((x) => parseInt(x, 16)), 8);
  return b;
}

const SECURE_BOOT_VARS: ReadonlyMap<string, Uint8Array> = new Map([
  ['PK', EFI_GLOBAL_VARIABLE],
  ['KEK', EFI_GLOBAL_VARIABLE],
  ['db', EFI_IMAGE_SECURITY_DATABASE],
  ['dbx', EFI_IMAGE_SECURITY_DATABASE],
]);

interface UefiVariableData {
  readonly guid: Uint8Array;
  readonly name: string;
  readonly data: Uint8Array;
}

/**
 * UEFI_VARIABLE_DATA (PFP §10.4.4 / TCG EFI Platform spec): exact layout, lengths bounded by the
 * event size before any allocation. TRUNCATED / TRAILING_BYTES when the lengths do not fit.
 */
export function parseUefiVariableData(bytes: Uint8Array): UefiVariableData {
  const r = new ByteReader(bytes);
  const guid = r.bytes(16, 'VariableName');
  const nameLen = r.u64le('UnicodeNameLength');
  const dataLen = r.u64le('VariableDataLength');
  if (nameLen * 2n + dataLen > BigInt(r.remaining)) {
    throw malformed(CommonCodes.TRUNCATED, `UEFI_VARIABLE_DATA declares ${nameLen} name chars and ${dataLen} data bytes, ${r.remaining} bytes left`, {
      offset: r.offset,
    });
  }
  const name = utf16(r.bytes(Number(nameLen) * 2, 'UnicodeName'), false);
  const data = r.bytes(Number(dataLen), 'VariableData');
  r.end('UEFI_VARIABLE_DATA');
  return { guid, name, data };
}

/** UTF-16LE → string; with `nulTerminated`, exactly one trailing NUL is required and removed. */
function utf16(b: Uint8Array, nulTerminated: boolean): string {
  if (b.byteLength % 2 !== 0) throw malformed(BootCodes.BOOT_VARIABLE_MALFORMED, 'UTF-16 string of odd length');
  let s = '';
  for (let i = 0; i < b.byteLength; i += 2) s += String.fromCharCode(b[i]! | (b[i + 1]! << 8));
  if (nulTerminated) {
    if (!s.endsWith('\0')) throw malformed(BootCodes.BOOT_UKI_EVENT_MALFORMED, 'UTF-16 string without NUL terminator');
    s = s.slice(0, -1);
  }
  if (s.includes('\0')) throw malformed(BootCodes.BOOT_VARIABLE_MALFORMED, 'UTF-16 string with embedded NUL');
  return s;
}

/** Whether `b` starts with the bytes of the ASCII string `p` (no text is built from `b`). */
function startsWithAscii(b: Uint8Array, p: string): boolean {
  if (b.byteLength < p.length) return false;
  for (let i = 0; i < p.length; i++) if (b[i] !== p.charCodeAt(i)) return false;
  return true;
}

function asciiBytes(s: string): Uint8Array {
  const b = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) b[i] = s.charCodeAt(i) & 0xff;
  return b;
}

function chooseBank(v: VerifiedEventLog, want: PcrBank | undefined): PcrBank {
  if (want !== undefined) {
    if (!v.banks.includes(want)) {
      throw configError(BootCodes.BOOT_DIGEST_BANK_UNVERIFIED, `digest bank ${want} was not verified against the quote`);
    }
    return want;
  }
  for (const b of ['sha256', 'sha384', 'sha1'] as const) if (v.banks.includes(b)) return b;
  // verifyEventLogAgainstPcrs never yields an empty bank list.
  throw configError(BootCodes.BOOT_DIGEST_BANK_UNVERIFIED, 'no verified bank');
}

async function requireDataHash(ev: LogEvent, bank: PcrBank, hashed: Uint8Array, what: string): Promise<void> {
  const d = ev.digests.get(algIdOf(bank))!;
  if (!timingSafeEqual(await digest(bank, hashed), d)) {
    throw malformed(BootCodes.BOOT_EVENT_DATA_MISMATCH, `event ${ev.seq} (${what}): data does not hash to its ${bank} digest`, {
      detail: { event: ev.seq, pcr: ev.pcrIndex },
    });
  }
}

const GRUB_CMDLINE_PREFIXES = ['kernel_cmdline: ', 'grub_kernel_cmdline '] as const;

/**
 * One systemd-stub section pair in PCR 11 (or the CCEL MR that holds PCR 11).
 * `strict`: every event given must belong to a pair; otherwise non-pair events are skipped.
 */
export async function extractUkiSections(
  events: readonly LogEvent[],
  bank: PcrBank,
  strict: boolean,
): Promise<Record<string, Hex>> {
  const alg = algIdOf(bank);
  const out: Record<string, Hex> = {};
  const known = new Set<string>(UKI_MEASURED_SECTIONS);
  for (let i = 0; i < events.length; i++) {
    const ev = events[i]!;
    let name: string | undefined;
    if (ev.eventType === EV.IPL && ev.data.byteLength % 2 === 0 && ev.data.byteLength <= 64) {
      try {
        name = utf16(ev.data, true);
      } catch {
        name = undefined;
      }
    }
    if (name === undefined || !known.has(name)) {
      if (strict) throw malformed(BootCodes.BOOT_UKI_EVENT_MALFORMED, `event ${ev.seq} in PCR ${ev.pcrIndex} is not a systemd-stub section measurement`);
      continue;
    }
    const nameDigest = await digest(bank, asciiBytes(name + '\0'));
    if (!timingSafeEqual(nameDigest, ev.digests.get(alg)!)) {
      if (strict) throw malformed(BootCodes.BOOT_UKI_EVENT_MALFORMED, `event ${ev.seq}: section-name digest is not H("${name}\\0")`);
      continue;
    }
    const next = events[i + 1];
    if (next === undefined || next.eventType !== EV.IPL || !timingSafeEqual(next.data, ev.data)) {
      throw malformed(BootCodes.BOOT_UKI_EVENT_MALFORMED, `event ${ev.seq}: section name "${name}" not followed by its content measurement`);
    }
    if (out[name] !== undefined) throw malformed(BootCodes.BOOT_UKI_EVENT_MALFORMED, `section ${name} measured twice`);
    out[name] = toHex(next.digests.get(alg)!);
    i++;
  }
  return out;
}

/** Kernel command-line tokenizer (Linux lib/cmdline.c next_arg: double quotes group spaces). */
export function splitCmdline(cmdline: string): Array<{ key: string; value: string | undefined }> {
  const out: Array<{ key: string; value: string | undefined }> = [];
  let i = 0;
  while (i < cmdline.length) {
    while (i < cmdline.length && /\s/.test(cmdline[i]!)) i++;
    if (i >= cmdline.length) break;
    let tok = '';
    let inQuote = false;
    while (i < cmdline.length && (inQuote || !/\s/.test(cmdline[i]!))) {
      if (cmdline[i] === '"') inQuote = !inQuote;
      tok += cmdline[i];
      i++;
    }
    const eq = tok.indexOf('=');
    const strip = (s: string): string => s.replace(/"/g, '');
    if (eq < 0) out.push({ key: strip(tok), value: undefined });
    else out.push({ key: strip(tok.slice(0, eq)), value: strip(tok.slice(eq + 1)) });
  }
  return out;
}

/** roothash= / usrhash= from a command line (systemd-veritysetup-generator(8)). */
export function verityFromCmdline(cmdline: string): { root?: Hex; usr?: Hex } {
  const res: { root?: Hex; usr?: Hex } = {};
  for (const { key, value } of splitCmdline(cmdline)) {
    const slot = key === 'roothash' ? 'root' : key === 'usrhash' ? 'usr' : undefined;
    if (slot === undefined) continue;
    if (value === undefined || !/^(?:[0-9a-fA-F]{2}){16,64}$/.test(value)) {
      throw malformed(BootCodes.BOOT_VERITY_MALFORMED, `${key}= is not a hex digest`);
    }
    if (res[slot] !== undefined) throw malformed(BootCodes.BOOT_VERITY_MALFORMED, `${key}= given more than once`);
    res[slot] = value.toLowerCase();
  }
  return res;
}

/**
 * Boot summary of a verified event log (see the module comment for what each claim means).
 * @throws AttestError BOOT_* when verified data is malformed or ambiguous
 */
export async function summarizeBoot(v: VerifiedEventLog, opts: SummarizeBootOptions = {}): Promise<BootClaims> {
  const bank = chooseBank(v, opts.digestBank);
  const alg = algIdOf(bank);
  const ok = v.verified[bank]!;
  const events = v.log.events;
  const boot: BootClaims = { digestBank: bank, eventLogReplayed: [...v.banks] };

  // PCR 7: Secure Boot state and policy variables.
  if (ok.has(7)) {
    const vars: Record<string, Hex> = {};
    let secureBoot: boolean | undefined;
    for (const ev of events) {
      if (ev.pcrIndex !== 7 || ev.eventType !== EV.EFI_VARIABLE_DRIVER_CONFIG) continue;
      const uv = parseUefiVariableData(ev.data);
      await requireDataHash(ev, bank, ev.data, 'UEFI_VARIABLE_DATA');
      if (uv.name === 'SecureBoot' && timingSafeEqual(uv.guid, EFI_GLOBAL_VARIABLE)) {
        if (secureBoot !== undefined) throw malformed(BootCodes.BOOT_DUPLICATE_VARIABLE, 'SecureBoot measured twice');
        if (uv.data.byteLength !== 1 || (uv.data[0] !== 0 && uv.data[0] !== 1)) {
          throw malformed(BootCodes.BOOT_SECUREBOOT_MALFORMED, `SecureBoot data is ${uv.data.byteLength} bytes, want one byte 0 or 1`, {
            detail: { event: ev.seq },
          });
        }
        secureBoot = uv.data[0] === 1;
        continue;
      }
      const guid = SECURE_BOOT_VARS.get(uv.name);
      if (guid !== undefined && timingSafeEqual(uv.guid, guid)) {
        if (vars[uv.name] !== undefined) throw malformed(BootCodes.BOOT_DUPLICATE_VARIABLE, `${uv.name} measured twice`);
        vars[uv.name] = toHex(ev.digests.get(alg)!);
      }
    }
    if (secureBoot !== undefined) boot.secureBoot = secureBoot;
    if (Object.keys(vars).length > 0) boot.secureBootVars = vars;
  }

  // PCR 4: boot applications' Authenticode digests.
  // The event *type* is not covered by any digest, so it cannot decide what is a boot app: a
  // log could relabel a bootloader's event (say as EV_IPL) and hide it from an allow-list.
  // Every PCR 4 extension counts as a boot application except a separator or an EFI action
  // whose digest is the hash of its own data (which cannot be forged for an application's
  // Authenticode digest).
  if (ok.has(4)) {
    const apps: string[] = [];
    for (const e of events) {
      if (e.pcrIndex !== 4) continue;
      const d = e.digests.get(alg)!;
      if ((e.eventType === EV.SEPARATOR || e.eventType === EV.EFI_ACTION) && timingSafeEqual(await digest(bank, e.data), d)) continue;
      apps.push(toHex(d));
    }
    if (apps.length > 0) boot.bootApps = apps;
  }

  // PCR 8 (GRUB) and PCR 12 (systemd-stub): the kernel command line.
  const cmdlines = new Set<string>();
  if (ok.has(8)) {
    for (const ev of events) {
      if (ev.pcrIndex !== 8 || ev.eventType !== EV.IPL) continue;
      const prefix = GRUB_CMDLINE_PREFIXES.find((p) => startsWithAscii(ev.data, p));
      if (prefix === undefined) continue;
      // GRUB hashes the command line without the prefix and without the trailing NUL.
      const body = ev.data.subarray(prefix.length, ev.data.byteLength - (ev.data[ev.data.byteLength - 1] === 0 ? 1 : 0));
      await requireDataHash(ev, bank, body, 'GRUB kernel_cmdline');
      cmdlines.add(fromUtf8(body, 'GRUB kernel_cmdline'));
    }
  }
  if (ok.has(12)) {
    for (const ev of events) {
      if (ev.pcrIndex !== 12 || ev.eventType !== EV.IPL) continue;
      // Only the load-options event hashes its own data; credentials/sysexts log a file name.
      if (!timingSafeEqual(await digest(bank, ev.data), ev.digests.get(alg)!)) continue;
      let s: string;
      try {
        s = utf16(ev.data, true);
      } catch {
        continue;
      }
      cmdlines.add(s);
    }
  }
  if (cmdlines.size > 1) throw malformed(BootCodes.BOOT_AMBIGUOUS_CMDLINE, `${cmdlines.size} different kernel command lines measured`);
  const [cmdline] = cmdlines;
  if (cmdline !== undefined) {
    boot.cmdline = cmdline;
    const verity = verityFromCmdline(cmdline);
    if (verity.root !== undefined) boot.verityRootHash = verity.root;
    if (verity.usr !== undefined) boot.verityUsrHash = verity.usr;
  }

  // PCR 11: systemd-stub UKI sections.
  if (ok.has(11)) {
    const pcr11 = events.filter((e) => e.pcrIndex === 11 && e.eventType !== EV.NO_ACTION);
    const sections = await extractUkiSections(pcr11, bank, true);
    if (Object.keys(sections).length > 0) boot.ukiSections = sections;
  }
  return boot;
}

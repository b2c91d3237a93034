/**
 * @module providers/tpm/uki
 *
 * Predicts what booting a Unified Kernel Image (UAPI.5 UKI) extends into the TPM:
 * - PCR 11, the way systemd-stub measures it (systemd TPM2_PCR_MEASUREMENTS.md, "PCR 11"): PCR 11
 *   starts at zero; for each UKI section present, in systemd's fixed section order (the
 *   `unified_sections[]` table: .linux .osrel .cmdline .initrd .ucode .splash .dtb .uname .sbat
 *   .pcrsig .pcrpkey .profile .dtbauto .hwids .efifw; .pcrsig is never measured, since it holds
 *   the signature over the result), extend H(section name ‖ NUL) and then H(section content as
 *   mapped: VirtualSize bytes). Then systemd-pcrphase extends H(phase word) for
 *   `enter-initrd`, `leave-initrd`, `sysinit`, `ready` as boot proceeds; like
 *   `systemd-measure calculate`, the prediction is reported after each phase. The value with no
 *   phase word is what the firmware event log alone replays to.
 * - PCR 4: the PE's Authenticode digest (see pe.ts), which firmware extends when it loads the
 *   UKI as a boot application.
 *
 * Which sections a stub measures depends on its version (newer stubs learned new sections).
 * The stub version is read from the `.sdmagic` section ("#### LoaderInfo: systemd-stub <v> ####")
 * and can be overridden. Sections introduced after that version are not measured by it.
 *
 * Checks: strict PE parse (pe.ts); every UKI section name at most once (a repeated section is
 * ambiguous: which copy the stub would pick is not something to guess); multi-profile UKIs
 * (`.profile`) and hardware-selected device trees (`.dtbauto`/`.hwids`, measured only when the
 * firmware's hardware matches) are rejected (UKI_UNSUPPORTED): their PCR 11 depends on choices
 * made at boot that this prediction cannot see.
 */
import { concat } from '../common/bytes.js';
import { digest, HASH_SIZE, type HashName } from '../common/digest.js';
import { toHex } from '../common/encoding.js';
import { malformed } from '../common/errors.js';
import type { Hex } from '../common/types.js';
import { authenticodeDigest, parsePe, sectionContent } from './pe.js';

export const UkiCodes = {
  /** A UKI section appears more than once. */
  UKI_DUPLICATE_SECTION: 'UKI_DUPLICATE_SECTION',
  /** A feature whose measurement depends on boot-time choices (profiles, auto device trees). */
  UKI_UNSUPPORTED: 'UKI_UNSUPPORTED',
  /** No .linux section: not a UKI. */
  UKI_NO_LINUX: 'UKI_NO_LINUX',
} as const;

/** systemd's `unified_sections[]` order (src/fundamental/uki.c). */
export const UKI_SECTION_ORDER = [
  '.linux',
  '.osrel',
  '.cmdline',
  '.initrd',
  '.ucode',
  '.splash',
  '.dtb',
  '.uname',
  '.sbat',
  '.pcrsig',
  '.pcrpkey',
  '.profile',
  '.dtbauto',
  '.hwids',
  '.efifw',
] as const;
export type UkiSectionName = (typeof UKI_SECTION_ORDER)[number];

/** Every section systemd-stub may measure (all but .pcrsig). */
export const UKI_MEASURED_SECTIONS: readonly UkiSectionName[] = UKI_SECTION_ORDER.filter((s) => s !== '.pcrsig');

/**
 * The first systemd-stub version that knows (and so measures) each section. Sections from
 * systemd 252 (the first release with systemd-measure and .pcrpkey) and older are listed as 0.
 */
export const SECTION_SINCE: Readonly<Record<UkiSectionName, number>> = {
  '.linux': 0,
  '.osrel': 0,
  '.cmdline': 0,
  '.initrd': 0,
  '.splash': 0,
  '.dtb': 0,
  '.pcrsig': 0,
  '.pcrpkey': 0,
  '.uname': 253,
  '.sbat': 253,
  '.ucode': 256,
  '.profile': 257,
  '.dtbauto': 257,
  '.hwids': 257,
  '.efifw': 258,
};

/** The systemd-pcrphase words extended into PCR 11 during boot, in order. */
export const BOOT_PHASES = ['enter-initrd', 'leave-initrd', 'sysinit', 'ready'] as const;

export type UkiBank = 'sha1' | 'sha256' | 'sha384' | 'sha512';

export interface Pcr11Prediction {
  /** Phase label like systemd-measure's: '' (firmware log only), 'enter-initrd', 'enter-initrd:leave-initrd', … */
  readonly phase: string;
  readonly pcr11: Hex;
}

export interface MeasureSectionsResult {
  /** Sections measured, in measurement order, with H(content) per bank. */
  readonly sections: ReadonlyArray<{ readonly name: UkiSectionName; readonly digests: Readonly<Partial<Record<UkiBank, Hex>>> }>;
  /** PCR 11 per bank, before any phase and after each boot phase. */
  readonly pcr11: Readonly<Partial<Record<UkiBank, readonly Pcr11Prediction[]>>>;
}

export interface MeasureUkiResult extends MeasureSectionsResult {
  /** Stub version the section set was chosen for (undefined: unknown → every section measured). */
  readonly stubVersion: number | undefined;
  /** PE sections present that the stub does not measure (e.g. .sbat on a systemd 252 stub). */
  readonly unmeasured: readonly string[];
  /** PCR 4 Authenticode digest of the whole PE, per bank. */
  readonly authenticode: Readonly<Partial<Record<UkiBank, Hex>>>;
}

export interface MeasureOptions {
  banks?: readonly UkiBank[];
  /** Phase words (default BOOT_PHASES). */
  phases?: readonly string[];
}

export interface MeasureUkiOptions extends MeasureOptions {
  /** Override the stub version read from .sdmagic. */
  stubVersion?: number;
}

const enc = new TextEncoder();

async function extend(bank: UkiBank, pcr: Uint8Array, data: Uint8Array): Promise<Uint8Array> {
  return digest(bank as HashName, concat(pcr, await digest(bank as HashName, data)));
}

/**
 * PCR 11 from section contents (the systemd-measure model): `sections` maps section names to
 * their contents; unknown names are rejected, .pcrsig ignored, the rest measured in systemd order.
 */
export async function measureSections(sections: ReadonlyMap<string, Uint8Array>, opts: MeasureOptions = {}): Promise<MeasureSectionsResult> {
  const banks = opts.banks ?? ['sha256', 'sha384'];
  const phases = opts.phases ?? BOOT_PHASES;
  for (const name of sections.keys()) {
    if (!(UKI_SECTION_ORDER as readonly string[]).includes(name)) throw malformed(UkiCodes.UKI_UNSUPPORTED, `unknown UKI section ${name}`);
  }
  const order = UKI_MEASURED_SECTIONS.filter((s) => sections.has(s));
  const perSection: Array<{ name: UkiSectionName; digests: Partial<Record<UkiBank, Hex>> }> = order.map((name) => ({ name, digests: {} }));
  const pcr11: Partial<Record<UkiBank, Pcr11Prediction[]>> = {};
  for (const bank of banks) {
    let pcr: Uint8Array = new Uint8Array(HASH_SIZE[bank]);
    for (const [i, name] of order.entries()) {
      const content = sections.get(name)!;
      pcr = await extend(bank, pcr, enc.encode(name + '\0'));
      perSection[i]!.digests[bank] = toHex(await digest(bank, content));
      pcr = await extend(bank, pcr, content);
    }
    const out: Pcr11Prediction[] = [{ phase: '', pcr11: toHex(pcr) }];
    const words: string[] = [];
    for (const word of phases) {
      words.push(word);
      pcr = await extend(bank, pcr, enc.encode(word));
      out.push({ phase: words.join(':'), pcr11: toHex(pcr) });
    }
    pcr11[bank] = out;
  }
  return { sections: perSection, pcr11 };
}

/** Reads the systemd-stub version from a `.sdmagic` string. */
export function stubVersionFromSdmagic(s: Uint8Array): number | undefined {
  let text = '';
  for (const b of s) text += b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : ' ';
  const m = /LoaderInfo: systemd-stub (\d{3})\b/.exec(text);
  return m ? Number(m[1]) : undefined;
}

/**
 * Predicts PCR 11 (per boot phase) and the PCR 4 Authenticode digest for a UKI file.
 * @throws AttestError PE_* / TRUNCATED for a malformed PE, UKI_* as documented above
 */
export async function measureUki(bytes: Uint8Array, opts: MeasureUkiOptions = {}): Promise<MeasureUkiResult> {
  const banks = opts.banks ?? ['sha256', 'sha384'];
  const img = parsePe(bytes);
  const byName = new Map<string, Uint8Array>();
  let sdmagic: Uint8Array | undefined;
  const ukiNames = new Set<string>(UKI_SECTION_ORDER);
  for (const s of img.sections) {
    if (s.name === '.sdmagic') sdmagic = sectionContent(bytes, s);
    if (!ukiNames.has(s.name)) continue;
    if (byName.has(s.name)) throw malformed(UkiCodes.UKI_DUPLICATE_SECTION, `section ${s.name} appears more than once`);
    byName.set(s.name, sectionContent(bytes, s));
  }
  if (!byName.has('.linux')) throw malformed(UkiCodes.UKI_NO_LINUX, 'no .linux section: not a unified kernel image');
  for (const s of ['.profile', '.dtbauto', '.hwids']) {
    if (byName.has(s)) throw malformed(UkiCodes.UKI_UNSUPPORTED, `${s}: PCR 11 depends on a boot-time selection this prediction cannot make`);
  }
  const stubVersion = opts.stubVersion ?? (sdmagic ? stubVersionFromSdmagic(sdmagic) : undefined);
  const measured = new Map<string, Uint8Array>();
  const unmeasured: string[] = [];
  for (const [name, content] of byName) {
    const since = SECTION_SINCE[name as UkiSectionName];
    if (name === '.pcrsig' || (stubVersion !== undefined && since > stubVersion)) unmeasured.push(name);
    else measured.set(name, content);
  }
  const res = await measureSections(measured, { banks, ...(opts.phases ? { phases: opts.phases } : {}) });
  const authenticode: Partial<Record<UkiBank, Hex>> = {};
  for (const bank of banks) authenticode[bank] = toHex(await authenticodeDigest(bytes, bank));
  return { ...res, stubVersion, unmeasured, authenticode };
}

/**
 * @module providers/tpm/pe
 *
 * Strict PE/COFF parsing and the Authenticode image digest, as UEFI firmware measures a boot
 * application into PCR 4 (TCG PC Client PFP §3.3.4.5 / §10.4.3: the EV_EFI_BOOT_SERVICES_APPLICATION
 * digest is the PE image hash defined by Authenticode).
 *
 * Layout (Microsoft "PE Format", sections cited):
 * - MS-DOS stub: "MZ" at 0, e_lfanew (u32le) at 0x3C → "PE\0\0" (§"Signature (Image Only)").
 * - COFF file header, 20 bytes (§"COFF File Header"): Machine u16, NumberOfSections u16,
 *   TimeDateStamp u32, PointerToSymbolTable u32, NumberOfSymbols u32, SizeOfOptionalHeader u16,
 *   Characteristics u16.
 * - Optional header (§"Optional Header (Image Only)"): Magic 0x10B (PE32) / 0x20B (PE32+);
 *   SizeOfHeaders at +60, CheckSum at +64 (both formats); NumberOfRvaAndSizes at +92 (PE32) /
 *   +108 (PE32+), then the data directories (8 bytes each); the Certificate Table is directory 4,
 *   and its "VirtualAddress" is a FILE offset (§"The Attribute Certificate Table").
 * - Section table, 40 bytes per entry (§"Section Table (Section Headers)"): Name[8],
 *   VirtualSize, VirtualAddress, SizeOfRawData, PointerToRawData, PointerToRelocations,
 *   PointerToLinenumbers, NumberOfRelocations u16, NumberOfLinenumbers u16, Characteristics.
 *
 * Authenticode image hash ("Windows Authenticode Portable Executable Signature Format",
 * "Calculating the PE Image Hash"), in the form EDK2 firmware measures (DxeTpm2MeasureBootLib):
 *   1. hash [0, CheckSum) and (CheckSum, CertTableEntry) and (CertTableEntry, SizeOfHeaders);
 *   2. hash every section's raw data in ascending PointerToRawData order;
 *   3. hash whatever follows the last section up to the attribute certificate table (or EOF).
 *
 * Strictness (every failure is an AttestError): MZ/PE signatures, e_lfanew in range, known
 * optional-header magic, SizeOfOptionalHeader large enough for the directories it declares,
 * ≤ 96 sections, section names ASCII NUL-padded, section raw data inside the file and after the
 * headers, raw ranges not overlapping, the certificate table (if any) at the end of the file,
 * 8-byte aligned, after the last section. Truncation → TRUNCATED.
 */
import { ByteReader } from '../common/bytes.js';
import { digest, type HashName } from '../common/digest.js';
import { malformed, CommonCodes } from '../common/errors.js';

export const PeCodes = {
  /** Not a PE image (no MZ / PE\0\0 signature, unknown optional header magic). */
  PE_BAD_SIGNATURE: 'PE_BAD_SIGNATURE',
  /** Inconsistent headers (sizes, offsets, section table, overlapping sections). */
  PE_MALFORMED: 'PE_MALFORMED',
} as const;

export interface PeSection {
  /** ASCII name without NUL padding (e.g. ".linux"). */
  readonly name: string;
  readonly virtualSize: number;
  readonly virtualAddress: number;
  readonly sizeOfRawData: number;
  readonly pointerToRawData: number;
  readonly characteristics: number;
}

export interface PeImage {
  readonly machine: number;
  readonly pe32plus: boolean;
  readonly sizeOfHeaders: number;
  /** File offset of the optional header's CheckSum field. */
  readonly checksumOffset: number;
  /** File offset of the Certificate Table data-directory entry (undefined: fewer than 5 directories). */
  readonly certDirOffset: number | undefined;
  /** The attribute certificate table (file offset, size), if present. */
  readonly certTable: { readonly offset: number; readonly size: number } | undefined;
  readonly sections: readonly PeSection[];
}

const MAX_SECTIONS = 96;
const CERT_DIRECTORY_INDEX = 4;

function bad(msg: string, offset?: number): never {
  throw malformed(PeCodes.PE_MALFORMED, msg, offset === undefined ? {} : { offset });
}

/** Parses the PE headers and section table of `bytes` (a whole image file). No hashing. */
export function parsePe(bytes: Uint8Array): PeImage {
  const r = new ByteReader(bytes);
  if (r.u16le('e_magic') !== 0x5a4d) throw malformed(PeCodes.PE_BAD_SIGNATURE, 'no MZ signature', { offset: 0 });
  r.skip(0x3c - 2, 'MS-DOS header (not interpreted)');
  const lfanew = r.u32le('e_lfanew');
  if (lfanew < 0x40 || lfanew % 8 !== 0) bad(`e_lfanew ${lfanew} is not an 8-aligned offset past the DOS header`, 0x3c);
  if (lfanew > bytes.byteLength) throw malformed(CommonCodes.TRUNCATED, `e_lfanew ${lfanew} beyond end of file`, { offset: 0x3c });
  const h = new ByteReader(bytes.subarray(lfanew), lfanew);
  if (h.u32('PE signature') !== 0x50450000) throw malformed(PeCodes.PE_BAD_SIGNATURE, 'no PE\\0\\0 signature', { offset: lfanew });
  const machine = h.u16le('Machine');
  const nSections = h.u16le('NumberOfSections');
  h.skip(12, 'TimeDateStamp, PointerToSymbolTable, NumberOfSymbols (not used by images)');
  const sizeOfOpt = h.u16le('SizeOfOptionalHeader');
  h.skip(2, 'Characteristics (not used for hashing)');
  if (nSections === 0 || nSections > MAX_SECTIONS) {
    throw malformed(nSections === 0 ? PeCodes.PE_MALFORMED : CommonCodes.LIMIT_EXCEEDED, `NumberOfSections ${nSections} outside 1..${MAX_SECTIONS}`);
  }
  const optStart = h.offset;
  const opt = h.sub(sizeOfOpt, 'optional header');
  const magic = opt.u16le('Magic');
  if (magic !== 0x10b && magic !== 0x20b) throw malformed(PeCodes.PE_BAD_SIGNATURE, `optional header magic 0x${magic.toString(16)}`, { offset: optStart });
  const pe32plus = magic === 0x20b;
  opt.skip(58, 'optional header fields up to SizeOfHeaders (not used for hashing)');
  const sizeOfHeaders = opt.u32le('SizeOfHeaders');
  const checksumOffset = opt.offset;
  opt.skip(4, 'CheckSum (excluded from the hash)');
  opt.skip(pe32plus ? 40 : 24, 'Subsystem..LoaderFlags (not used for hashing)');
  const nDirs = opt.u32le('NumberOfRvaAndSizes');
  if (nDirs > 16) bad(`NumberOfRvaAndSizes ${nDirs} > 16`, opt.offset - 4);
  if (opt.remaining !== nDirs * 8) bad(`SizeOfOptionalHeader ${sizeOfOpt} does not match ${nDirs} data directories`, optStart);
  let certDirOffset: number | undefined;
  let certTable: { offset: number; size: number } | undefined;
  for (let i = 0; i < nDirs; i++) {
    const at = opt.offset;
    const va = opt.u32le('directory.VirtualAddress');
    const size = opt.u32le('directory.Size');
    if (i === CERT_DIRECTORY_INDEX) {
      certDirOffset = at;
      if (size !== 0 || va !== 0) certTable = { offset: va, size };
    }
  }
  opt.end('optional header');

  const sections: PeSection[] = [];
  const tableStart = h.offset;
  for (let i = 0; i < nSections; i++) {
    const nameBytes = h.bytes(8, 'section Name');
    const nul = nameBytes.indexOf(0);
    const nameLen = nul < 0 ? 8 : nul;
    for (let j = 0; j < 8; j++) {
      const c = nameBytes[j]!;
      if (j < nameLen ? c < 0x21 || c > 0x7e : c !== 0) bad(`section ${i} name is not NUL-padded printable ASCII`, tableStart + 40 * i);
    }
    const name = String.fromCharCode(...nameBytes.subarray(0, nameLen));
    const virtualSize = h.u32le('VirtualSize');
    const virtualAddress = h.u32le('VirtualAddress');
    const sizeOfRawData = h.u32le('SizeOfRawData');
    const pointerToRawData = h.u32le('PointerToRawData');
    h.skip(12, 'relocation / line-number pointers and counts (zero in images, not hashed separately)');
    const characteristics = h.u32le('Characteristics');
    sections.push({ name, virtualSize, virtualAddress, sizeOfRawData, pointerToRawData, characteristics });
  }
  const headersEnd = h.offset;
  if (sizeOfHeaders < headersEnd || sizeOfHeaders > bytes.byteLength) {
    if (sizeOfHeaders > bytes.byteLength) throw malformed(CommonCodes.TRUNCATED, `SizeOfHeaders ${sizeOfHeaders} beyond end of file`);
    bad(`SizeOfHeaders ${sizeOfHeaders} ends inside the section table (${headersEnd})`);
  }

  // Raw data ranges: inside the file, after the headers, not overlapping.
  const ranges = sections.filter((s) => s.sizeOfRawData > 0).sort((a, b) => a.pointerToRawData - b.pointerToRawData);
  let prevEnd = sizeOfHeaders;
  for (const s of ranges) {
    if (s.pointerToRawData < prevEnd) bad(`section ${s.name} raw data at ${s.pointerToRawData} overlaps the headers or the previous section`);
    const end = s.pointerToRawData + s.sizeOfRawData;
    if (end > bytes.byteLength) throw malformed(CommonCodes.TRUNCATED, `section ${s.name} raw data ends at ${end}, beyond end of file`);
    prevEnd = end;
  }
  if (certTable !== undefined) {
    const end = certTable.offset + certTable.size;
    if (certTable.offset < prevEnd || certTable.offset % 8 !== 0 || certTable.size < 8) {
      bad(`certificate table at ${certTable.offset} (size ${certTable.size}) is not an 8-aligned table after the last section`);
    }
    if (end > bytes.byteLength) throw malformed(CommonCodes.TRUNCATED, `certificate table ends at ${end}, beyond end of file`);
    if (end !== bytes.byteLength) bad(`certificate table ends at ${end}, not at end of file ${bytes.byteLength}`);
  }
  return { machine, pe32plus, sizeOfHeaders, checksumOffset, certDirOffset, certTable, sections };
}

/** The byte ranges [start, end) of `bytes` that the Authenticode hash covers, in order. */
export function authenticodeRanges(img: PeImage, fileSize: number): Array<readonly [number, number]> {
  const out: Array<readonly [number, number]> = [];
  const skips: Array<readonly [number, number]> = [[img.checksumOffset, img.checksumOffset + 4]];
  if (img.certDirOffset !== undefined) skips.push([img.certDirOffset, img.certDirOffset + 8]);
  let at = 0;
  for (const [s, e] of skips) {
    out.push([at, s]);
    at = e;
  }
  out.push([at, img.sizeOfHeaders]);
  let hashed = img.sizeOfHeaders;
  const ranges = img.sections.filter((s) => s.sizeOfRawData > 0).sort((a, b) => a.pointerToRawData - b.pointerToRawData);
  for (const s of ranges) {
    out.push([s.pointerToRawData, s.pointerToRawData + s.sizeOfRawData]);
    hashed = s.pointerToRawData + s.sizeOfRawData;
  }
  const tail = img.certTable === undefined ? fileSize : img.certTable.offset;
  if (tail > hashed) out.push([hashed, tail]);
  return out;
}

/**
 * The Authenticode digest of a PE image (what firmware extends into PCR 4 for it).
 * Parses strictly first; throws on any malformed image.
 */
export async function authenticodeDigest(bytes: Uint8Array, hash: HashName): Promise<Uint8Array> {
  const img = parsePe(bytes);
  const ranges = authenticodeRanges(img, bytes.byteLength);
  let n = 0;
  for (const [s, e] of ranges) n += e - s;
  const buf = new Uint8Array(n);
  let at = 0;
  for (const [s, e] of ranges) {
    buf.set(bytes.subarray(s, e), at);
    at += e - s;
  }
  return digest(hash, buf);
}

/**
 * A section's content as the loader maps it: VirtualSize bytes, i.e. the raw data cut to
 * VirtualSize, or zero-filled beyond SizeOfRawData (PE Format §"Section Table").
 */
export function sectionContent(bytes: Uint8Array, s: PeSection, maxZeroFill = 64 * 1024 * 1024): Uint8Array {
  if (s.virtualSize <= s.sizeOfRawData) return bytes.slice(s.pointerToRawData, s.pointerToRawData + s.virtualSize);
  if (s.virtualSize - s.sizeOfRawData > maxZeroFill) {
    throw malformed(CommonCodes.LIMIT_EXCEEDED, `section ${s.name} VirtualSize ${s.virtualSize} exceeds its raw data by more than ${maxZeroFill}`);
  }
  const out = new Uint8Array(s.virtualSize);
  out.set(bytes.subarray(s.pointerToRawData, s.pointerToRawData + s.sizeOfRawData), 0);
  return out;
}

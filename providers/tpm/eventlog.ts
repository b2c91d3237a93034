/**
 * @module providers/tpm/eventlog
 *
 * TCG PC Client crypto-agile event log: parse, replay to PCRs, and compare with quoted PCRs.
 *
 * Spec: TCG PC Client Platform Firmware Profile Specification, Level 00 Version 1.05 r23
 * (PFP), §10 "Event Logging":
 * - §10.2.1 TCG_PCR_EVENT (the SHA-1 shaped header every log starts with):
 *     pcrIndex u32le | eventType u32le | digest[20] | eventSize u32le | event[eventSize]
 * - §10.2.2 TCG_PCR_EVENT2 (every later record):
 *     pcrIndex u32le | eventType u32le | TPML_DIGEST_VALUES | eventSize u32le | event[eventSize]
 *   TPML_DIGEST_VALUES = count u32le, then count × { hashAlg u16le, digest[size of hashAlg] }.
 *   Digest sizes come from the header, not from a built-in table, so a log can carry banks
 *   this code does not replay (they are parsed and ignored).
 * - §10.4.5.1 TCG_EfiSpecIDEvent ("Spec ID Event03"), the header's event data:
 *     signature[16] = "Spec ID Event03\0" | platformClass u32le | specVersionMinor u8 |
 *     specVersionMajor u8 | specErrata u8 | uintnSize u8 | numberOfAlgorithms u32le |
 *     numberOfAlgorithms × { algorithmId u16le, digestSize u16le } | vendorInfoSize u8 | vendorInfo
 * - §10.4.5.3 StartupLocality: an EV_NO_ACTION event in PCR 0 whose data is
 *   "StartupLocality\0" ‖ locality u8. PCR 0 then starts at 0…0‖locality instead of zero
 *   (TPM 2.0 Library Part 1 §34.3: TPM2_Startup from locality 3/4 sets the last octet).
 * - EV_NO_ACTION (type 3) events are never extended (§10.4.1); their digests must be zero.
 * - Logs without the Spec ID Event03 header are the SHA-1-only TCG 1.2 format
 *   (TCG EFI Protocol 1.22 / PC Client 1.21). They are rejected (`EVENTLOG_LEGACY_FORMAT`):
 *   a SHA-1-only log cannot be matched to a SHA-256/384 quote, and SHA-1 is not collision safe.
 *
 * Parse checks (every failure throws an `AttestError` with a stable code):
 * - the header is TCG_PCR_EVENT, PCR 0, EV_NO_ACTION, zero digest, "Spec ID Event03" signature,
 *   spec version 2.0, uintnSize 1 or 2, 1..8 algorithms, no duplicate algorithm, the declared
 *   size of every algorithm this code knows equals its true size, vendorInfo fully consumed;
 * - every TCG_PCR_EVENT2 carries exactly the header's algorithms, each once (all banks);
 * - PCR indexes are 0..23 (TPM) or 0..4 (CCEL measurement-register indexes);
 * - EV_NO_ACTION digests are all zero; a StartupLocality event appears at most once, in PCR 0,
 *   before anything is extended into PCR 0, with locality 0, 3 or 4;
 * - caps on total size, event count and per-event data size (`LIMIT_EXCEEDED`);
 * - nothing after the last event (CCEL: only 0x00/0xFF padding, the unused tail of the
 *   ACPI-reserved region).
 *
 * Replay (§10.1 / Part 1 §17.6): PCR := H(PCR ‖ digest) per bank, from zero (PCR 0: the
 * StartupLocality value). Only PCRs the log extends (or initializes) appear in the result.
 *
 * `verifyEventLogAgainstPcrs` is the only way to obtain a `VerifiedEventLog`, which is the only
 * input the boot summary (`boot.ts`) accepts: claims are derived from verified data only.
 * Providers call `replayAndSummarize` (`measured-boot.ts`), which chains parse → verify → summarize.
 */
import { ByteReader, concat } from '../common/bytes.js';
import { timingSafeEqual } from '../common/ct.js';
import { digest, digestSync, HASH_SIZE, type HashName } from '../common/digest.js';
import { fromHex, toHex } from '../common/encoding.js';
import { malformed, rejected, CommonCodes } from '../common/errors.js';
import type { Hex, PcrBank } from '../common/types.js';

export const EventLogCodes = {
  /** No "Spec ID Event03" header: a SHA-1-only TCG 1.2 log (or not an event log at all). */
  EVENTLOG_LEGACY_FORMAT: 'EVENTLOG_LEGACY_FORMAT',
  /** The Spec ID Event03 header is inconsistent (version, algorithm list, sizes). */
  EVENTLOG_SPEC_ID_INVALID: 'EVENTLOG_SPEC_ID_INVALID',
  /** An event's digest list does not carry exactly the header's algorithms. */
  EVENTLOG_DIGEST_SET: 'EVENTLOG_DIGEST_SET',
  /** A PCR / MR index out of range. */
  EVENTLOG_PCR_INDEX: 'EVENTLOG_PCR_INDEX',
  /** EV_NO_ACTION with a non-zero digest. */
  EVENTLOG_NO_ACTION_DIGEST: 'EVENTLOG_NO_ACTION_DIGEST',
  /** A StartupLocality event that is malformed, repeated, late or has an invalid locality. */
  EVENTLOG_STARTUP_LOCALITY: 'EVENTLOG_STARTUP_LOCALITY',
  /** Replaying the log does not reproduce a quoted PCR (detail: bank, pcr). */
  EVENTLOG_REPLAY_MISMATCH: 'EVENTLOG_REPLAY_MISMATCH',
  /** No bank is both quoted and present in the log (or only SHA-1 and SHA-1 is not allowed). */
  EVENTLOG_NO_COMMON_BANK: 'EVENTLOG_NO_COMMON_BANK',
  /** The quote and log share banks but no PCR the log extends is quoted: nothing is verified. */
  EVENTLOG_NOTHING_VERIFIED: 'EVENTLOG_NOTHING_VERIFIED',
  /** A quoted PCR value is not the right length / hex for its bank. */
  EVENTLOG_BAD_QUOTED_PCR: 'EVENTLOG_BAD_QUOTED_PCR',
} as const;

/** TPM_ALG_ID values (TCG Algorithm Registry). */
export const TPM_ALG = { sha1: 0x0004, sha256: 0x000b, sha384: 0x000c, sha512: 0x000d, sm3_256: 0x0012 } as const;
const ALG_SIZES: ReadonlyMap<number, number> = new Map([
  [TPM_ALG.sha1, 20],
  [TPM_ALG.sha256, 32],
  [TPM_ALG.sha384, 48],
  [TPM_ALG.sha512, 64],
  [TPM_ALG.sm3_256, 32],
]);
/** Banks this code replays (and the PcrBank names they map to). */
const REPLAY_BANKS: ReadonlyMap<number, PcrBank> = new Map([
  [TPM_ALG.sha1, 'sha1'],
  [TPM_ALG.sha256, 'sha256'],
  [TPM_ALG.sha384, 'sha384'],
]);
export const BANK_ORDER: readonly PcrBank[] = ['sha1', 'sha256', 'sha384'];

/** Event types used by the parser and the boot summary (PFP §10.4.1, Table 9). */
export const EV = {
  PREBOOT_CERT: 0x00000000,
  POST_CODE: 0x00000001,
  NO_ACTION: 0x00000003,
  SEPARATOR: 0x00000004,
  ACTION: 0x00000005,
  EVENT_TAG: 0x00000006,
  S_CRTM_CONTENTS: 0x00000007,
  S_CRTM_VERSION: 0x00000008,
  CPU_MICROCODE: 0x00000009,
  PLATFORM_CONFIG_FLAGS: 0x0000000a,
  TABLE_OF_DEVICES: 0x0000000b,
  COMPACT_HASH: 0x0000000c,
  IPL: 0x0000000d,
  IPL_PARTITION_DATA: 0x0000000e,
  NONHOST_CODE: 0x0000000f,
  NONHOST_CONFIG: 0x00000010,
  NONHOST_INFO: 0x00000011,
  OMIT_BOOT_DEVICE_EVENTS: 0x00000012,
  EFI_VARIABLE_DRIVER_CONFIG: 0x80000001,
  EFI_VARIABLE_BOOT: 0x80000002,
  EFI_BOOT_SERVICES_APPLICATION: 0x80000003,
  EFI_BOOT_SERVICES_DRIVER: 0x80000004,
  EFI_RUNTIME_SERVICES_DRIVER: 0x80000005,
  EFI_GPT_EVENT: 0x80000006,
  EFI_ACTION: 0x80000007,
  EFI_PLATFORM_FIRMWARE_BLOB: 0x80000008,
  EFI_HANDOFF_TABLES: 0x80000009,
  EFI_PLATFORM_FIRMWARE_BLOB2: 0x8000000a,
  EFI_HANDOFF_TABLES2: 0x8000000b,
  EFI_VARIABLE_BOOT2: 0x8000000c,
  EFI_HCRTM_EVENT: 0x80000010,
  EFI_VARIABLE_AUTHORITY: 0x800000e0,
  EFI_SPDM_FIRMWARE_BLOB: 0x800000e1,
  EFI_SPDM_FIRMWARE_CONFIG: 0x800000e2,
} as const;

export interface SpecIdAlgorithm {
  readonly algId: number;
  readonly digestSize: number;
}

export interface SpecIdEvent {
  readonly platformClass: number;
  readonly specVersionMinor: number;
  readonly specVersionMajor: number;
  readonly specErrata: number;
  readonly uintnSize: number;
  readonly algorithms: readonly SpecIdAlgorithm[];
  readonly vendorInfo: Uint8Array;
}

export interface LogEvent {
  /** Position in the log (0 = the Spec ID header). */
  readonly seq: number;
  readonly pcrIndex: number;
  readonly eventType: number;
  /** Digest per algorithm id (every algorithm of the header). */
  readonly digests: ReadonlyMap<number, Uint8Array>;
  readonly data: Uint8Array;
}

export interface EventLog {
  readonly format: 'tcg2' | 'ccel';
  readonly specId: SpecIdEvent;
  /** TCG_PCR_EVENT2 records (the header is not included). */
  readonly events: readonly LogEvent[];
  /** StartupLocality value when present (PCR 0 starts at 0…0‖locality). */
  readonly startupLocality: number | undefined;
}

export interface ParseEventLogOptions {
  /**
   * 'tcg2' (default): a TPM log (/sys/kernel/security/tpm0/binary_bios_measurements), exact length.
   * 'ccel': an ACPI CCEL region (TDX): header PCR index is the MR index, indexes 0..4, and the
   * unused tail of the region is 0x00/0xFF padding.
   */
  format?: 'tcg2' | 'ccel';
  /** Cap on the whole log (default 4 MiB). */
  maxBytes?: number;
  /** Cap on the number of events (default 4096; real logs carry < 300). */
  maxEvents?: number;
  /** Cap on one event's data (default 1 MiB; dbx updates are tens of KiB). */
  maxEventSize?: number;
}

const SPEC_ID_SIGNATURE = 'Spec ID Event03\0';
const STARTUP_LOCALITY_SIGNATURE = 'StartupLocality\0';
const MAX_ALGORITHMS = 8;

function ascii(b: Uint8Array): string {
  let s = '';
  for (const x of b) s += String.fromCharCode(x);
  return s;
}

function isZero(b: Uint8Array): boolean {
  for (const x of b) if (x !== 0) return false;
  return true;
}

/** PFP §10.4.5.1: the Spec ID Event03 structure (the header event's data). */
function parseSpecId(data: Uint8Array, base: number): SpecIdEvent {
  const r = new ByteReader(data, base);
  if (data.byteLength < 16 || ascii(data.subarray(0, 16)) !== SPEC_ID_SIGNATURE) {
    throw malformed(EventLogCodes.EVENTLOG_LEGACY_FORMAT, 'first event is not a "Spec ID Event03" header: not a crypto-agile (TCG2) log', {
      offset: base,
    });
  }
  r.skip(16, 'Spec ID signature (checked above)');
  const platformClass = r.u32le('platformClass');
  const specVersionMinor = r.u8('specVersionMinor');
  const specVersionMajor = r.u8('specVersionMajor');
  const specErrata = r.u8('specErrata');
  const uintnSize = r.u8('uintnSize');
  if (specVersionMajor !== 2 || specVersionMinor !== 0) {
    throw malformed(EventLogCodes.EVENTLOG_SPEC_ID_INVALID, `spec version ${specVersionMajor}.${specVersionMinor}, want 2.0`, { offset: base });
  }
  // uintnSize: 1 = UINT32, 2 = UINT64 (§10.4.5.1).
  if (uintnSize !== 1 && uintnSize !== 2) {
    throw malformed(EventLogCodes.EVENTLOG_SPEC_ID_INVALID, `uintnSize ${uintnSize} is neither 1 nor 2`, { offset: base });
  }
  const n = r.u32le('numberOfAlgorithms');
  if (n < 1 || n > MAX_ALGORITHMS) {
    throw malformed(EventLogCodes.EVENTLOG_SPEC_ID_INVALID, `numberOfAlgorithms ${n} outside 1..${MAX_ALGORITHMS}`, { offset: base });
  }
  const algorithms: SpecIdAlgorithm[] = [];
  const seen = new Set<number>();
  for (let i = 0; i < n; i++) {
    const algId = r.u16le('algorithmId');
    const digestSize = r.u16le('digestSize');
    if (seen.has(algId)) {
      throw malformed(EventLogCodes.EVENTLOG_SPEC_ID_INVALID, `algorithm 0x${algId.toString(16)} listed twice`, { offset: r.offset - 4 });
    }
    seen.add(algId);
    const known = ALG_SIZES.get(algId);
    if (known !== undefined && known !== digestSize) {
      throw malformed(EventLogCodes.EVENTLOG_SPEC_ID_INVALID, `algorithm 0x${algId.toString(16)} declared size ${digestSize}, is ${known}`, {
        offset: r.offset - 2,
      });
    }
    if (digestSize < 1 || digestSize > 128) {
      throw malformed(EventLogCodes.EVENTLOG_SPEC_ID_INVALID, `digest size ${digestSize} outside 1..128`, { offset: r.offset - 2 });
    }
    algorithms.push({ algId, digestSize });
  }
  const vendorInfoSize = r.u8('vendorInfoSize');
  const vendorInfo = r.bytes(vendorInfoSize, 'vendorInfo');
  r.end('Spec ID Event03');
  return { platformClass, specVersionMinor, specVersionMajor, specErrata, uintnSize, algorithms, vendorInfo };
}

/**
 * Parses a crypto-agile event log. Pure: no hashing, no policy.
 * @throws AttestError EVENTLOG_* / TRUNCATED / TRAILING_BYTES / LIMIT_EXCEEDED
 */
export function parseEventLog(bytes: Uint8Array, opts: ParseEventLogOptions = {}): EventLog {
  const format = opts.format ?? 'tcg2';
  const maxBytes = opts.maxBytes ?? 4 * 1024 * 1024;
  const maxEvents = opts.maxEvents ?? 4096;
  const maxEventSize = opts.maxEventSize ?? 1024 * 1024;
  const maxPcr = format === 'ccel' ? 4 : 23;
  if (bytes.byteLength > maxBytes) {
    throw malformed(CommonCodes.LIMIT_EXCEEDED, `event log of ${bytes.byteLength} bytes exceeds ${maxBytes}`);
  }
  // One private copy of the log; digests and event data are views into it (ByteReader.view), so
  // the parsed log never aliases the caller's buffer without a copy per digest and event.
  const r = new ByteReader(bytes.slice());

  // --- Header: TCG_PCR_EVENT (§10.2.1). A TCG 1.2 log also starts with this shape, so the
  // distinguishing check is the event type and the Spec ID signature.
  const hPcr = r.u32le('header.pcrIndex');
  const hType = r.u32le('header.eventType');
  const hDigest = r.bytes(20, 'header.digest');
  const hSize = r.u32le('header.eventSize');
  if (hType !== EV.NO_ACTION) {
    throw malformed(EventLogCodes.EVENTLOG_LEGACY_FORMAT, `first event has type 0x${hType.toString(16)}, not EV_NO_ACTION: not a crypto-agile (TCG2) log`, {
      offset: 4,
    });
  }
  if (hSize > maxEventSize) throw malformed(CommonCodes.LIMIT_EXCEEDED, `header event size ${hSize} exceeds ${maxEventSize}`, { offset: 28 });
  const hDataAt = r.offset;
  const hData = r.bytes(hSize, 'header.event');
  const specId = parseSpecId(hData, hDataAt);
  if (format === 'tcg2' && hPcr !== 0) {
    throw malformed(EventLogCodes.EVENTLOG_SPEC_ID_INVALID, `Spec ID header in PCR ${hPcr}, want 0`, { offset: 0 });
  }
  if (!isZero(hDigest)) throw malformed(EventLogCodes.EVENTLOG_NO_ACTION_DIGEST, 'Spec ID header digest is not zero', { offset: 8 });

  const sizeOf = new Map<number, number>(specId.algorithms.map((a) => [a.algId, a.digestSize]));
  const events: LogEvent[] = [];
  let startupLocality: number | undefined;
  let pcr0Extended = false;

  while (r.remaining > 0) {
    if (format === 'ccel' && isPadding(bytes, r.position)) {
      r.skip(r.remaining, 'CCEL padding (checked uniform 0x00 or 0xFF)');
      break;
    }
    if (events.length >= maxEvents) {
      throw malformed(CommonCodes.LIMIT_EXCEEDED, `event log has more than ${maxEvents} events`, { offset: r.offset });
    }
    const at = r.offset;
    const pcrIndex = r.u32le('pcrIndex');
    const eventType = r.u32le('eventType');
    if (pcrIndex > maxPcr) {
      throw malformed(EventLogCodes.EVENTLOG_PCR_INDEX, `event ${events.length + 1}: PCR index ${pcrIndex} > ${maxPcr}`, { offset: at });
    }
    const count = r.u32le('digests.count');
    if (count !== specId.algorithms.length) {
      throw malformed(EventLogCodes.EVENTLOG_DIGEST_SET, `event ${events.length + 1}: ${count} digests, header declares ${specId.algorithms.length}`, {
        offset: at + 8,
      });
    }
    const digests = new Map<number, Uint8Array>();
    for (let i = 0; i < count; i++) {
      const alg = r.u16le('hashAlg');
      const size = sizeOf.get(alg);
      if (size === undefined || digests.has(alg)) {
        throw malformed(
          EventLogCodes.EVENTLOG_DIGEST_SET,
          `event ${events.length + 1}: algorithm 0x${alg.toString(16)} ${size === undefined ? 'not in the header' : 'repeated'}`,
          { offset: r.offset - 2 },
        );
      }
      digests.set(alg, r.view(size, 'digest'));
    }
    const eventSize = r.u32le('eventSize');
    if (eventSize > maxEventSize) {
      throw malformed(CommonCodes.LIMIT_EXCEEDED, `event ${events.length + 1}: data size ${eventSize} exceeds ${maxEventSize}`, {
        offset: r.offset - 4,
      });
    }
    const data = r.view(eventSize, 'event');

    if (eventType === EV.NO_ACTION) {
      for (const d of digests.values()) {
        if (!isZero(d)) throw malformed(EventLogCodes.EVENTLOG_NO_ACTION_DIGEST, `event ${events.length + 1}: EV_NO_ACTION with non-zero digest`, { offset: at });
      }
      if (data.byteLength >= 16 && ascii(data.subarray(0, 16)) === STARTUP_LOCALITY_SIGNATURE) {
        // §10.4.5.3: exactly signature ‖ locality; PCR 0 only; once; before PCR 0 is extended.
        if (data.byteLength !== 17 || pcrIndex !== 0 || startupLocality !== undefined || pcr0Extended) {
          throw malformed(EventLogCodes.EVENTLOG_STARTUP_LOCALITY, 'StartupLocality event is malformed, repeated, not in PCR 0 or after PCR 0 was extended', {
            offset: at,
          });
        }
        const loc = data[16]!;
        if (loc !== 0 && loc !== 3 && loc !== 4) {
          throw malformed(EventLogCodes.EVENTLOG_STARTUP_LOCALITY, `StartupLocality ${loc} is not 0, 3 or 4`, { offset: at });
        }
        startupLocality = loc;
      }
    } else if (pcrIndex === 0) {
      pcr0Extended = true;
    }
    events.push({ seq: events.length + 1, pcrIndex, eventType, digests, data });
  }
  r.end('event log');
  return { format, specId, events, startupLocality };
}

/** CCEL: is everything from `pos` on padding (all 0x00 or all 0xFF)? */
function isPadding(b: Uint8Array, pos: number): boolean {
  const first = b[pos];
  if (first !== 0x00 && first !== 0xff) return false;
  for (let i = pos; i < b.byteLength; i++) if (b[i] !== first) return false;
  return true;
}

/** Replayed PCR values: bank → PCR index → lower-case hex. */
export type PcrValues = Partial<Record<PcrBank, Record<number, Hex>>>;

/**
 * PCR values a verified quote (or a signed document) vouches for: bank → PCR index → the value,
 * as hex or as the bytes the signature covered (no hex round trip when the caller has bytes).
 */
export type QuotedPcrValues = Partial<Record<PcrBank, Readonly<Record<number, Hex | Uint8Array>>>>;

/** Replay in bytes (internal form). */
type RawReplay = Map<PcrBank, Map<number, Uint8Array>>;

/**
 * Extends made after the firmware log ends, by software that keeps its own log (e.g.
 * systemd-pcrphase's boot-phase words into PCR 11): PCR → the data whose hash was extended.
 */
export type LaterExtends = ReadonlyMap<number, readonly Uint8Array[]>;

async function replayRaw(log: EventLog, later: LaterExtends = new Map(), only?: ReadonlySet<PcrBank>): Promise<RawReplay> {
  // Each PCR's chain is sequential, but chains (and banks) are independent: run them
  // concurrently so WebCrypto's latency overlaps.
  const byPcr = new Map<number, LogEvent[]>();
  for (const ev of log.events) {
    if (ev.eventType === EV.NO_ACTION) continue;
    const list = byPcr.get(ev.pcrIndex);
    if (list) list.push(ev);
    else byPcr.set(ev.pcrIndex, [ev]);
  }
  const pcrsTouched = new Set<number>([...byPcr.keys(), ...later.keys()]);
  if (log.startupLocality !== undefined) pcrsTouched.add(0);
  const out: RawReplay = new Map();
  const jobs: Promise<void>[] = [];
  for (const { algId } of log.specId.algorithms) {
    const bank = REPLAY_BANKS.get(algId);
    if (bank === undefined || (only !== undefined && !only.has(bank))) continue;
    const h = bank as HashName;
    const size = HASH_SIZE[h];
    const pcrs = new Map<number, Uint8Array>();
    out.set(bank, pcrs);
    const hs = digestSync();
    for (const pcr of pcrsTouched) {
      if (hs) {
        // One synchronous pass per PCR chain: no job or promise per extend.
        let v: Uint8Array = new Uint8Array(size);
        if (pcr === 0 && log.startupLocality !== undefined) v[size - 1] = log.startupLocality;
        for (const ev of byPcr.get(pcr) ?? []) v = hs(h, v, ev.digests.get(algId)!);
        for (const item of later.get(pcr) ?? []) v = hs(h, v, hs(h, item));
        pcrs.set(pcr, v);
        continue;
      }
      jobs.push(
        (async () => {
          let v: Uint8Array = new Uint8Array(size);
          if (pcr === 0 && log.startupLocality !== undefined) v[size - 1] = log.startupLocality;
          for (const ev of byPcr.get(pcr) ?? []) v = await digest(h, concat(v, ev.digests.get(algId)!));
          for (const item of later.get(pcr) ?? []) v = await digest(h, concat(v, await digest(h, item)));
          pcrs.set(pcr, v);
        })(),
      );
    }
  }
  await Promise.all(jobs);
  return out;
}

function rawToHex(raw: RawReplay): PcrValues {
  const out: PcrValues = {};
  for (const bank of BANK_ORDER) {
    const pcrs = raw.get(bank);
    if (!pcrs) continue;
    const rec: Record<number, Hex> = {};
    for (const idx of [...pcrs.keys()].sort((a, b) => a - b)) rec[idx] = toHex(pcrs.get(idx)!);
    out[bank] = rec;
  }
  return out;
}

/**
 * Replays the log into every bank it carries that this code knows (sha1, sha256, sha384).
 * Only PCRs the log extends (or initializes via StartupLocality) appear.
 */
export async function replayEventLog(log: EventLog, later?: LaterExtends): Promise<PcrValues> {
  return rawToHex(await replayRaw(log, later));
}

const BRAND: unique symbol = Symbol('VerifiedEventLog');

/**
 * A log whose replay matched the quoted PCRs. Only `verifyEventLogAgainstPcrs` creates one; the
 * boot summary accepts nothing else.
 */
export interface VerifiedEventLog {
  readonly [BRAND]: true;
  readonly log: EventLog;
  /** Banks in which at least one PCR was compared, and all compared PCRs matched. */
  readonly banks: readonly PcrBank[];
  /** Per bank, the PCR indexes that the log extends AND the quote covers, and that matched. */
  readonly verified: Readonly<Partial<Record<PcrBank, ReadonlySet<number>>>>;
  readonly replayed: PcrValues;
}

export interface VerifyEventLogOptions {
  /** SHA-1 banks are compared only when explicitly allowed (house style §10). */
  allowSha1?: boolean;
  /**
   * systemd-pcrphase words already extended into PCR 11 when the node quoted (e.g.
   * ['enter-initrd', 'leave-initrd', 'sysinit', 'ready'] for a fully booted node). Policy states
   * the phase; they are not in the firmware log, so without this PCR 11 cannot match.
   */
  pcr11Phases?: readonly string[];
}

/**
 * Replays `log` and compares it with `quotedPcrs` (PCR values whose integrity the caller has
 * already established through a verified quote).
 *
 * Checks:
 * - at least one bank is both quoted and in the log (SHA-1 only if `allowSha1`)
 *   → `EVENTLOG_NO_COMMON_BANK`;
 * - every quoted PCR value is the bank's digest size, as bytes or hex → `EVENTLOG_BAD_QUOTED_PCR`;
 * - for every quoted PCR the log touches, replay equals the quoted value (constant time)
 *   → `EVENTLOG_REPLAY_MISMATCH` with detail `{bank, pcr}`;
 * - at least one PCR was compared → `EVENTLOG_NOTHING_VERIFIED`.
 * PCRs the quote covers but the log never touches are not compared (other agents, e.g. IMA in
 * PCR 10, extend them); events in PCRs the quote does not cover stay unverified and the boot
 * summary ignores them.
 */
export async function verifyEventLogAgainstPcrs(
  log: EventLog,
  quotedPcrs: QuotedPcrValues,
  opts: VerifyEventLogOptions = {},
): Promise<VerifiedEventLog> {
  const later = new Map<number, Uint8Array[]>();
  if (opts.pcr11Phases !== undefined && opts.pcr11Phases.length > 0) {
    later.set(11, opts.pcr11Phases.map((w) => new TextEncoder().encode(w)));
  }
  const wanted = new Set<PcrBank>(BANK_ORDER.filter((b) => quotedPcrs[b] !== undefined && (b !== 'sha1' || opts.allowSha1 === true)));
  const raw = await replayRaw(log, later, wanted);
  const banks: PcrBank[] = [];
  const verified: Partial<Record<PcrBank, ReadonlySet<number>>> = {};
  let common = 0;
  for (const bank of BANK_ORDER) {
    if (bank === 'sha1' && opts.allowSha1 !== true) continue;
    const quoted = quotedPcrs[bank];
    const replayed = raw.get(bank);
    if (quoted === undefined || replayed === undefined) continue;
    common++;
    const ok = new Set<number>();
    for (const [key, value] of Object.entries(quoted)) {
      const pcr = Number(key);
      const isBytes = value instanceof Uint8Array;
      if (
        !Number.isInteger(pcr) ||
        pcr < 0 ||
        pcr > 23 ||
        (isBytes ? value.byteLength !== HASH_SIZE[bank] : typeof value !== 'string' || value.length !== 2 * HASH_SIZE[bank])
      ) {
        throw malformed(EventLogCodes.EVENTLOG_BAD_QUOTED_PCR, `quoted ${bank} PCR ${key} is not a ${HASH_SIZE[bank]}-byte value`, {
          detail: { bank, pcr: key },
        });
      }
      // Bytes are compared as they are. fromHex reads either case; the label is only built for
      // the error (a second, failing call).
      let want: Uint8Array;
      if (isBytes) want = value;
      else {
        try {
          want = fromHex(value);
        } catch {
          want = fromHex(value, `quoted ${bank} PCR ${pcr}`);
        }
      }
      const got = replayed.get(pcr);
      if (got === undefined) continue;
      if (!timingSafeEqual(got, want)) {
        throw rejected(EventLogCodes.EVENTLOG_REPLAY_MISMATCH, `event log replay does not match quoted ${bank} PCR ${pcr}`, {
          detail: { bank, pcr },
        });
      }
      ok.add(pcr);
    }
    if (ok.size > 0) {
      banks.push(bank);
      verified[bank] = ok;
    }
  }
  if (common === 0) {
    throw rejected(EventLogCodes.EVENTLOG_NO_COMMON_BANK, 'no PCR bank is both quoted and in the event log' + (opts.allowSha1 ? '' : ' (SHA-1 not allowed)'));
  }
  if (banks.length === 0) {
    throw rejected(EventLogCodes.EVENTLOG_NOTHING_VERIFIED, 'no PCR the event log extends is covered by the quote');
  }
  // The hex form is built only if someone reads it (tests and tools do; the boot summary does not).
  let replayed: PcrValues | undefined;
  return {
    [BRAND]: true,
    log,
    banks,
    verified,
    get replayed(): PcrValues {
      return (replayed ??= rawToHex(raw));
    },
  };
}

/** For the boot summary: the algorithm id of a bank. */
export function algIdOf(bank: PcrBank): number {
  return TPM_ALG[bank];
}

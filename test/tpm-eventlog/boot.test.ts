/**
 * Boot summary from verified event logs.
 *
 * Proves:
 * - on the real go-tpm-tools logs: Secure Boot state (on for RHEL 8 and COS, off for the
 *   "no secure boot" logs), PK/KEK/db/dbx digests, boot-application Authenticode digests equal
 *   to upstream's ExpectedEFIAppDigests (sha1 and sha256), GRUB kernel command lines (the SEV-SNP
 *   Ubuntu 24.04 one exactly as INDEX gives it), and the Arch log's zero-length SecureBoot rejected
 *   as upstream does;
 * - claims come only from verified data: PCRs outside the quote yield no claims; event data that
 *   does not hash to its (replay-verified) digest is rejected, not reported (a forged
 *   SecureBoot=1 or edited cmdline with the original digest kept);
 * - dm-verity roothash=/usrhash= extraction with kernel quoting rules, and its rejections;
 * - systemd-stub UKI section pairs in PCR 11 agree with measureUki's per-section digests and PCR
 *   11, including the boot phases; malformed PCR 11 content is rejected;
 * - the UEFI_VARIABLE_DATA parser: truncation sweep and fast-check (≥ 10,000 inputs).
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { AttestError } from '../../providers/common/errors.js';
import { parseUefiVariableData, splitCmdline, summarizeBoot, verityFromCmdline } from '../../providers/tpm/boot.js';
import { EV, parseEventLog, replayEventLog, verifyEventLogAgainstPcrs, type PcrValues } from '../../providers/tpm/eventlog.js';
import { replayAndSummarize } from '../../providers/tpm/measured-boot.js';
import { BOOT_PHASES, measureSections } from '../../providers/tpm/uki.js';
import { describeVectors, readVector, readVectorJson } from '../helpers/vectors.js';
import { ALG, buildLog, encodeLog, measured, utf16z, type RawEvent } from './logbuilder.js';

const LOG_DIR = 'go-tpm-tools/eventlogs';
const expectedBanks = (name: string): PcrValues => readVectorJson<Record<string, { banks: PcrValues }>>('go-tpm-tools/eventlogs.expected.json')[name]!.banks;

async function codeOfAsync(f: () => Promise<unknown>): Promise<string> {
  try {
    await f();
  } catch (e) {
    if (e instanceof AttestError) return e.code;
    throw e;
  }
  return 'OK';
}

/** go-tpm-tools server/eventlog_test.go ExpectedEFIAppDigests (transcribed). */
const UPSTREAM_APPS: Record<string, { sha1: string[]; sha256: string[] }> = {
  'rhel8-uefi.bin': {
    sha1: ['95f400d9003b4e8c0cb4734efcf547e36fc4100c', '4f60d11ad6ac9a76837834f1371bc9521d018779', '075f3bc8c7363c35a87ce56c604fa9201a97f79d'],
    sha256: [
      '40d6cae02973789080cf4c3a9ad11b5a0a4d8bba4438ab96e276cc784454dee7',
      'e8a268c431da72caaae407f729f602b9dbf5d1d43492d4a51cc2b688a08586e3',
      'e4c0382f98feaebfd43923a85fd6da9a20e1a48524a4d5928c31850ca1a96a6e',
    ],
  },
  'ubuntu-1804-amd-sev.bin': {
    sha1: ['21e79438580ec89df674dfe12653d77d132c3936', '9a4c7c895a5d40c3906121ff59c6fe267a4c32e0'],
    sha256: ['2ea4cb6a1f1eb1d3dce82d54fde26ded243ba3e18de7c6d211902a594fe56788', '835f940e97bac2f7c171819b1fcc4bebe72a1c4ea7d7245088ef32d253085bb3'],
  },
  'ubuntu-2104-no-dbx.bin': {
    sha1: ['92e6ec17937f600b9ec7f23adf4ea5553b4e2364', '4f9604e61091095594c206c8a404afe187a92586'],
    sha256: ['d99c93fcb042dbe52707bbde371c75fcf081dd5b0c88a195d44cc57536f6f521', 'b0a836fec2faf4a9bea0e1a5f1945bc86ddc03ac98ce0ae172ed9b1e536d7595'],
  },
  'ubuntu-2104-no-secure-boot.bin': {
    sha1: ['22df40d6e32d4721f1b2406b2b4a3bb0ca10ead5', '4f9604e61091095594c206c8a404afe187a92586'],
    sha256: ['6265b732b005b3f330bcd1843374e5ec6ec5aef27cdb97a23daeb8580abbf526', 'b0a836fec2faf4a9bea0e1a5f1945bc86ddc03ac98ce0ae172ed9b1e536d7595'],
  },
};

describeVectors('boot summary on the real logs', () => {
  const SB: Record<string, boolean> = {
    'rhel8-uefi.bin': true,
    'cos-85-amd-sev.bin': true,
    'cos-93-amd-sev.bin': true,
    'cos-101-amd-sev.bin': true,
    'confidential-gke-debug-251000_eventlog.bin': true,
    'eventlogwithsp800155.bin': true,
    'ubuntu-2104-no-secure-boot.bin': false,
    'ubuntu-2104-no-dbx.bin': false,
    'glinux-alex.bin': false,
    'gdc-host.bin': false,
    'ubuntu-1804-amd-sev.bin': false,
    'ubuntu-2404-amd-sevsnp.bin': false,
  };
  const CMDLINE: Record<string, string | undefined> = {
    // INDEX §2d (the trailing NUL is not part of the measured command line).
    'ubuntu-2404-amd-sevsnp.bin': '/vmlinuz-6.8.0-1010-gcp root=PARTUUID=8270f3c9-b4e4-4345-80ee-5a62db7ebf3f ro console=ttyS0,115200 panic=-1',
    'ubuntu-1804-amd-sev.bin': '/boot/vmlinuz-5.4.0-1046-gcp root=LABEL=cloudimg-rootfs ro console=ttyS0',
    'ubuntu-2104-no-secure-boot.bin': '/boot/vmlinuz-5.11.0-1006-gcp root=PARTUUID=6443a6ae-e5e9-4df7-9a06-d1329e50f33c ro console=ttyS0 panic=-1',
    'rhel8-uefi.bin':
      '(hd0,gpt2)/boot/vmlinuz-4.18.0-240.22.1.el8_3.x86_64 root=UUID=f3948fb4-cce7-4193-940a-c50052e93bf3 ro net.ifnames=0 biosdevname=0 scsi_mod.use_blk_mq=Y crashkernel=auto console=ttyS0,38400n8',
    'gdc-host.bin': '/vmlinuz-6.9.0-rc7+ root=/dev/mapper/ubuntu--vg-ubuntu--lv ro nohibernate kvm_intel.tdx=on intel_iommu=on',
    'glinux-alex.bin': undefined,
  };

  for (const [name, sb] of Object.entries(SB)) {
    it(`${name}: secureBoot=${sb}, PK/KEK/db/dbx digests are the variable events' digests`, async () => {
      const r = await replayAndSummarize(readVector(`${LOG_DIR}/${name}`), expectedBanks(name), { allowSha1: true });
      expect(r.boot.secureBoot).toBe(sb);
      expect(r.boot.digestBank).toBe('sha256');
      // Cross-check: each variable digest is SHA-256 of its UEFI_VARIABLE_DATA (node:crypto).
      const log = parseEventLog(readVector(`${LOG_DIR}/${name}`));
      const byName: Record<string, string> = {};
      for (const e of log.events.filter((e) => e.pcrIndex === 7 && e.eventType === EV.EFI_VARIABLE_DRIVER_CONFIG)) {
        byName[parseUefiVariableData(e.data).name] = createHash('sha256').update(e.data).digest('hex');
      }
      expect(r.boot.secureBootVars).toEqual({ PK: byName.PK, KEK: byName.KEK, db: byName.db, dbx: byName.dbx });
      if (name in CMDLINE) expect(r.boot.cmdline).toBe(CMDLINE[name]);
    });
  }

  for (const [name, apps] of Object.entries(UPSTREAM_APPS)) {
    it(`${name}: boot applications equal upstream's expected Authenticode digests (sha256, sha1)`, async () => {
      const r = await replayAndSummarize(readVector(`${LOG_DIR}/${name}`), expectedBanks(name), { allowSha1: true });
      expect(r.boot.bootApps).toEqual(apps.sha256);
      const r1 = await replayAndSummarize(readVector(`${LOG_DIR}/${name}`), expectedBanks(name), { allowSha1: true, digestBank: 'sha1' });
      expect(r1.boot.bootApps).toEqual(apps.sha1);
    });
  }

  it('sha384 digests are reported when the sha384 bank is quoted', async () => {
    const name = 'rhel8-uefi.bin';
    const bytes = readVector(`${LOG_DIR}/${name}`);
    // The expected file has no sha384 values; tpm2_eventlog agrees with this replay (eventlog.test.ts).
    const q = { sha384: (await replayEventLog(parseEventLog(bytes))).sha384! };
    const r = await replayAndSummarize(bytes, q);
    expect(r.boot.digestBank).toBe('sha384');
    expect(r.boot.bootApps?.every((d) => d.length === 96)).toBe(true);
  });

  it('arch-linux-workstation: SecureBoot with zero-length data is rejected (BOOT_SECUREBOOT_MALFORMED), as upstream', async () => {
    const name = 'arch-linux-workstation.bin';
    expect(await codeOfAsync(() => replayAndSummarize(readVector(`${LOG_DIR}/${name}`), expectedBanks(name), { allowSha1: true }))).toBe('BOOT_SECUREBOOT_MALFORMED');
  });

  it('COS: GRUB cmdline with a ChromeOS dm= verity table yields no roothash (none is given)', async () => {
    for (const name of ['cos-85-amd-sev.bin', 'cos-93-amd-sev.bin', 'cos-101-amd-sev.bin']) {
      const r = await replayAndSummarize(readVector(`${LOG_DIR}/${name}`), expectedBanks(name));
      expect(r.boot.cmdline).toContain('dm_verity.error_behavior=3');
      expect(r.boot.cmdline).toContain('root=/dev/dm-0');
      expect(r.boot.verityRootHash).toBeUndefined();
    }
  });

  it('claims only from PCRs the quote covers', async () => {
    const name = 'rhel8-uefi.bin';
    const all = expectedBanks(name).sha256!;
    const only = (pcrs: number[]): PcrValues => ({ sha256: Object.fromEntries(pcrs.map((p) => [p, all[p]!])) });
    const bytes = readVector(`${LOG_DIR}/${name}`);
    const r7 = await replayAndSummarize(bytes, only([7]));
    expect(r7.boot.secureBoot).toBe(true);
    expect(r7.boot.bootApps).toBeUndefined();
    expect(r7.boot.cmdline).toBeUndefined();
    const r4 = await replayAndSummarize(bytes, only([4]));
    expect(r4.boot.secureBoot).toBeUndefined();
    expect(r4.boot.secureBootVars).toBeUndefined();
    expect(r4.boot.bootApps?.length).toBe(3);
    const r8 = await replayAndSummarize(bytes, only([8]));
    expect(r8.boot.cmdline).toBe(CMDLINE[name]);
    expect(await codeOfAsync(() => replayAndSummarize(bytes, only([7]), { digestBank: 'sha384' }))).toBe('BOOT_DIGEST_BANK_UNVERIFIED');
  });

  it('forged event data with the original digest kept: replay still matches, the summary refuses it', async () => {
    // SecureBoot=0 → 1 in the event data, digest untouched.
    const name = 'ubuntu-2104-no-secure-boot.bin';
    const log = parseEventLog(readVector(`${LOG_DIR}/${name}`));
    const ev = log.events.map((e) => {
      if (e.pcrIndex !== 7 || e.eventType !== EV.EFI_VARIABLE_DRIVER_CONFIG || parseUefiVariableData(e.data).name !== 'SecureBoot') return e;
      const data = Uint8Array.from(e.data);
      data[data.length - 1] = 1;
      return { ...e, data };
    });
    const forged = encodeLog(log, ev);
    const v = await verifyEventLogAgainstPcrs(parseEventLog(forged), expectedBanks(name));
    expect(v.banks).toEqual(['sha256']);
    expect(await codeOfAsync(() => summarizeBoot(v))).toBe('BOOT_EVENT_DATA_MISMATCH');

    // An edited kernel command line ("ro" → "rw").
    const name2 = 'ubuntu-2404-amd-sevsnp.bin';
    const log2 = parseEventLog(readVector(`${LOG_DIR}/${name2}`));
    const ev2 = log2.events.map((e) => {
      const t = Buffer.from(e.data).toString('latin1');
      return t.startsWith('kernel_cmdline: ') ? { ...e, data: Buffer.from(t.replace(' ro ', ' rw '), 'latin1') } : e;
    });
    expect(await codeOfAsync(() => replayAndSummarize(encodeLog(log2, ev2), expectedBanks(name2)))).toBe('BOOT_EVENT_DATA_MISMATCH');
  });
});

// ---------------------------------------------------------------------------------------------
const ALGS: number[] = [ALG.sha256, ALG.sha384];
const grub = (cmdline: string): RawEvent =>
  measured(8, EV.IPL, Buffer.from(`kernel_cmdline: ${cmdline}\0`, 'latin1'), ALGS, Buffer.from(cmdline, 'latin1'));
async function summarize(events: RawEvent[], opts: { pcr11Phases?: readonly string[]; quoted?: PcrValues } = {}) {
  const bytes = buildLog(ALGS, events);
  const q = opts.quoted ?? (await replayEventLog(parseEventLog(bytes)));
  return replayAndSummarize(bytes, q, opts.pcr11Phases ? { pcr11Phases: opts.pcr11Phases } : {});
}

describe('command line and dm-verity', () => {
  const root = 'ab'.repeat(32);
  const usr = 'CD'.repeat(32);

  it('GRUB cmdline with roothash= and usrhash=', async () => {
    const r = await summarize([grub(`/vmlinuz root=/dev/mapper/root roothash=${root} usrhash=${usr} ro`)]);
    expect(r.boot.verityRootHash).toBe(root);
    expect(r.boot.verityUsrHash).toBe(usr.toLowerCase());
  });

  it('systemd-stub load options in PCR 12 (UTF-16LE, digest over the data)', async () => {
    const r = await summarize([measured(12, EV.IPL, utf16z(`quiet roothash=${root}`), ALGS)]);
    expect(r.boot.cmdline).toBe(`quiet roothash=${root}`);
    expect(r.boot.verityRootHash).toBe(root);
  });

  it('PCR 12 events whose data is not what was hashed (credential file names) are not a cmdline', async () => {
    const r = await summarize([measured(12, EV.IPL, utf16z('foo.cred'), ALGS, Buffer.from('secret'))]);
    expect(r.boot.cmdline).toBeUndefined();
  });

  type Row = { name: string; events: () => RawEvent[]; wantCode: string };
  const rows: Row[] = [
    { name: 'roothash twice', events: () => [grub(`roothash=${root} roothash=${root}`)], wantCode: 'BOOT_VERITY_MALFORMED' },
    { name: 'roothash not hex', events: () => [grub('roothash=xyz')], wantCode: 'BOOT_VERITY_MALFORMED' },
    { name: 'usrhash without value', events: () => [grub('usrhash')], wantCode: 'BOOT_VERITY_MALFORMED' },
    { name: 'roothash too short', events: () => [grub('roothash=abcd')], wantCode: 'BOOT_VERITY_MALFORMED' },
    {
      name: 'GRUB cmdline that is not UTF-8',
      events: () => [measured(8, EV.IPL, Buffer.from([...Buffer.from('kernel_cmdline: a'), 0xff, 0]), ALGS, Buffer.from([0x61, 0xff]))],
      wantCode: 'BAD_ENCODING',
    },
    { name: 'two different command lines', events: () => [grub('a=1'), grub('a=2')], wantCode: 'BOOT_AMBIGUOUS_CMDLINE' },
    {
      name: 'GRUB cmdline event whose data differs from what was hashed',
      events: () => [measured(8, EV.IPL, Buffer.from('kernel_cmdline: ro\0'), ALGS, Buffer.from('rw'))],
      wantCode: 'BOOT_EVENT_DATA_MISMATCH',
    },
  ];
  for (const row of rows) {
    it(`${row.name} → ${row.wantCode}`, async () => {
      expect(await codeOfAsync(() => summarize(row.events()))).toBe(row.wantCode);
    });
  }

  it('the same command line measured twice is not ambiguous', async () => {
    const r = await summarize([grub('a=1'), grub('a=1')]);
    expect(r.boot.cmdline).toBe('a=1');
  });

  it('kernel quoting: roothash= inside a quoted dm= table is not a parameter', () => {
    expect(verityFromCmdline(`dm="1 vroot none ro 1,0 roothash=${root}" root=/dev/dm-0`)).toEqual({});
    expect(splitCmdline('a="b c" d=e "f g"')).toEqual([
      { key: 'a', value: 'b c' },
      { key: 'd', value: 'e' },
      { key: 'f g', value: undefined },
    ]);
  });
});

describe('systemd-stub UKI sections in PCR 11', () => {
  const sections = new Map<string, Uint8Array>([
    ['.linux', Buffer.from('kernel image bytes')],
    ['.osrel', Buffer.from('ID=test\n')],
    ['.cmdline', Buffer.from(`ro roothash=${'ef'.repeat(32)}`)],
    ['.initrd', Buffer.from('initrd bytes')],
  ]);
  /** What systemd-stub logs: per section, name event then content event; both carry the UTF-16 name. */
  const stubEvents = (secs: Map<string, Uint8Array>): RawEvent[] =>
    [...secs].flatMap(([name, content]) => [
      measured(11, EV.IPL, utf16z(name), ALGS, Buffer.from(name + '\0', 'latin1')),
      measured(11, EV.IPL, utf16z(name), ALGS, content),
    ]);

  it('section digests and PCR 11 agree with measureSections, before and after the boot phases', async () => {
    const m = await measureSections(sections, { banks: ['sha256', 'sha384'] });
    const r = await summarize(stubEvents(sections));
    expect(r.boot.ukiSections).toEqual(Object.fromEntries(m.sections.map((s) => [s.name, s.digests.sha256])));
    expect(r.verified.replayed.sha256?.[11]).toBe(m.pcr11.sha256![0]!.pcr11);
    expect(r.verified.replayed.sha384?.[11]).toBe(m.pcr11.sha384![0]!.pcr11);
    // A node quoting after boot completed: PCR 11 carries the four phase words.
    const ready = m.pcr11.sha256!.at(-1)!.pcr11;
    const bytes = buildLog(ALGS, stubEvents(sections));
    expect(await codeOfAsync(() => replayAndSummarize(bytes, { sha256: { 11: ready } }))).toBe('EVENTLOG_REPLAY_MISMATCH');
    const ok = await replayAndSummarize(bytes, { sha256: { 11: ready } }, { pcr11Phases: BOOT_PHASES });
    expect(Object.keys(ok.boot.ukiSections ?? {})).toEqual(['.linux', '.osrel', '.cmdline', '.initrd']);
  });

  const name = (s: string): RawEvent => measured(11, EV.IPL, utf16z(s), ALGS, Buffer.from(s + '\0', 'latin1'));
  const content = (s: string, c: string): RawEvent => measured(11, EV.IPL, utf16z(s), ALGS, Buffer.from(c));
  type Row = { name: string; events: RawEvent[]; wantCode: string };
  const rows: Row[] = [
    { name: 'a stray event in PCR 11', events: [name('.linux'), content('.linux', 'k'), measured(11, EV.IPL, Buffer.from('x'), ALGS)], wantCode: 'BOOT_UKI_EVENT_MALFORMED' },
    { name: 'a section name event without its content event', events: [name('.linux')], wantCode: 'BOOT_UKI_EVENT_MALFORMED' },
    { name: 'a name event whose digest is not H(name‖NUL)', events: [content('.linux', 'k'), content('.linux', 'k')], wantCode: 'BOOT_UKI_EVENT_MALFORMED' },
    { name: 'a section measured twice', events: [name('.linux'), content('.linux', 'a'), name('.linux'), content('.linux', 'b')], wantCode: 'BOOT_UKI_EVENT_MALFORMED' },
    { name: 'an unknown section name', events: [name('.bogus'), content('.bogus', 'a')], wantCode: 'BOOT_UKI_EVENT_MALFORMED' },
    { name: 'content event with a different name', events: [name('.linux'), content('.osrel', 'a')], wantCode: 'BOOT_UKI_EVENT_MALFORMED' },
  ];
  for (const row of rows) {
    it(`${row.name} → ${row.wantCode}`, async () => {
      expect(await codeOfAsync(() => summarize(row.events))).toBe(row.wantCode);
    });
  }
});

describe('UEFI_VARIABLE_DATA parser', () => {
  const sample = Buffer.concat([
    Buffer.alloc(16, 7),
    Buffer.from([10, 0, 0, 0, 0, 0, 0, 0]),
    Buffer.from([1, 0, 0, 0, 0, 0, 0, 0]),
    Buffer.from('SecureBoot', 'utf16le'),
    Buffer.from([1]),
  ]);
  it('parses a well-formed structure', () => {
    const v = parseUefiVariableData(sample);
    expect(v.name).toBe('SecureBoot');
    expect([...v.data]).toEqual([1]);
  });
  it('every prefix is rejected with TRUNCATED, a trailing byte with TRAILING_BYTES', () => {
    for (let n = 0; n < sample.length; n++) {
      expect(() => parseUefiVariableData(sample.subarray(0, n))).toThrow(expect.objectContaining({ code: 'TRUNCATED' }));
    }
    expect(() => parseUefiVariableData(Buffer.concat([sample, Buffer.alloc(1)]))).toThrow(expect.objectContaining({ code: 'TRAILING_BYTES' }));
  });
  it('huge lengths are rejected without allocation; a name with an embedded NUL is malformed', () => {
    const b = Buffer.from(sample);
    b.writeBigUInt64LE(2n ** 62n, 16);
    expect(() => parseUefiVariableData(b)).toThrow(expect.objectContaining({ code: 'TRUNCATED' }));
    const c = Buffer.from(sample);
    c[32] = 0;
    expect(() => parseUefiVariableData(c)).toThrow(expect.objectContaining({ code: 'BOOT_VARIABLE_MALFORMED' }));
  });
  it('fast-check: 10,000 inputs, typed errors only', () => {
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 96 }), fc.array(fc.tuple(fc.nat(sample.length - 1), fc.nat(255)), { maxLength: 4 }).map((flips) => {
        const b = Buffer.from(sample);
        for (const [i, v] of flips) b[i] = v;
        return new Uint8Array(b);
      })), (b) => {
        try {
          parseUefiVariableData(b);
        } catch (e) {
          if (!(e instanceof AttestError)) throw e;
        }
      }),
      { numRuns: 10_000 },
    );
  });
});

describeVectors('boot apps cannot be hidden by relabelling an event', () => {
  it('a PCR 4 application event relabelled as EV_IPL (type is not covered by the digest) is still listed', async () => {
    const bytes = readVector('go-tpm-tools/eventlogs/ubuntu-2104-no-secure-boot.bin');
    const summarize = async (b: Uint8Array) => {
      const log = parseEventLog(b);
      const quoted = await replayEventLog(log);
      return summarizeBoot(await verifyEventLogAgainstPcrs(log, { sha256: quoted.sha256! }));
    };
    const original = await summarize(bytes);
    expect(original.bootApps!.length).toBeGreaterThanOrEqual(2);
    // Find the first EV_EFI_BOOT_SERVICES_APPLICATION (0x80000003) header in PCR 4 and relabel it EV_IPL (0x0000000d).
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    let at = -1;
    for (let i = 0; i + 8 <= bytes.length; i++) {
      if (dv.getUint32(i, true) === 4 && dv.getUint32(i + 4, true) === 0x80000003) {
        at = i + 4;
        break;
      }
    }
    expect(at).toBeGreaterThan(0);
    const forged = bytes.slice();
    new DataView(forged.buffer).setUint32(at, 0x0000000d, true);
    const got = await summarize(forged);
    expect(got.bootApps).toEqual(original.bootApps);
  });
});

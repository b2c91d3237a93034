/**
 * UKI measurement (PCR 11) and PE Authenticode (PCR 4).
 *
 * Proves:
 * - measureSections equals `systemd-measure calculate` on section contents (sha1/256/384/512,
 *   every phase, every section systemd 252 knows, in systemd's order);
 * - measureUki equals `systemd-measure calculate` (Debian systemd, /usr/lib/systemd) in sha256
 *   and sha384, before any phase (`--phase=:`) and after each boot phase, on UKIs this test BUILDS
 *   with `objcopy` from Debian's systemd-boot-efi stub (`systemd-boot-efi`, `pesign`,
 *   `osslsigncode`, `binutils` are required: test/global-setup.ts);
 * - authenticodeDigest equals `pesign --hash` (sha256) on the stub and on every UKI, and equals the
 *   digest inside an osslsigncode Authenticode signature (sha256 and sha384) for signed images,
 *   i.e. the certificate table and its directory entry are excluded correctly;
 * - strict PE parsing: a negative table, a truncation sweep over every prefix of the headers and
 *   of whole images, trailing bytes, and fast-check fuzzing (≥ 10,000 inputs) with typed errors only.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { AttestError } from '../../providers/common/errors.js';
import { authenticodeDigest, parsePe } from '../../providers/tpm/pe.js';
import { BOOT_PHASES, measureSections, measureUki, type UkiBank } from '../../providers/tpm/uki.js';

const STUB = '/usr/lib/systemd/boot/efi/linuxx64.efi.stub';
const MEASURE = '/usr/lib/systemd/systemd-measure';
// systemd-boot-efi, systemd, binutils, pesign, osslsigncode: required (test/global-setup.ts).

function codeOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    if (e instanceof AttestError) return e.code;
    throw e;
  }
  return 'OK';
}
async function asyncCodeOf(f: () => Promise<unknown>): Promise<string> {
  try {
    await f();
  } catch (e) {
    if (e instanceof AttestError) return e.code;
    throw e;
  }
  return 'OK';
}

/** `systemd-measure calculate` (the oracle) on section files; `{bank: [pcr11 per phase]}`. */
function systemdMeasure(files: Record<string, string>, banks: UkiBank[], phases: string[]): Record<string, string[]> {
  const args = ['calculate', '--json=short', ...Object.entries(files).map(([k, f]) => `--${k}=${f}`), ...banks.map((b) => `--bank=${b}`), ...phases.map((p) => `--phase=${p}`)];
  const out = JSON.parse(execFileSync(MEASURE, args, { encoding: 'utf8' })) as Record<string, { hash: string }[]>;
  return Object.fromEntries(Object.entries(out).map(([bank, rows]) => [bank, rows.map((r) => r.hash)]));
}

describe('PCR 11 of section contents equals systemd-measure calculate', () => {
  let dir = '';
  const file = (name: string, content: string | Uint8Array): string => {
    const p = join(dir, name);
    writeFileSync(p, content);
    return p;
  };
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'uki-measure-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const ALL: UkiBank[] = ['sha1', 'sha256', 'sha384', 'sha512'];

  it('two sections (.linux, .initrd), every bank, before any phase and after each of several phase words', async () => {
    const files = { linux: file('linux', 'HALLO\n'), initrd: file('initrd', 'foobar\n') };
    const sections = new Map([
      ['.linux', Buffer.from('HALLO\n')],
      ['.initrd', Buffer.from('foobar\n')],
    ]);
    for (const phases of [[':'], ['enter-initrd'], ['enter-initrd:leave-initrd', 'enter-initrd:leave-initrd:sysinit:ready', 'foo']]) {
      const want = systemdMeasure(files, ALL, phases);
      const words = phases.map((p) => (p === ':' ? [] : p.split(':')));
      for (const w of words) {
        const r = await measureSections(sections, { banks: ALL, phases: w });
        for (const bank of ALL) expect(r.pcr11[bank]!.at(-1)!.pcr11, `${bank} ${w.join(':')}`).toBe(want[bank]![words.indexOf(w)]);
      }
    }
  });

  it('every section systemd-measure knows, in systemd order (.pcrsig is never measured)', async () => {
    const names = ['linux', 'osrel', 'cmdline', 'initrd', 'splash', 'dtb', 'pcrpkey'];
    const content = (n: string) => Buffer.from(`${n}:${randomBytes(8).toString('hex')}\n`);
    const bytes = new Map(names.map((n) => [`.${n}`, content(n)]));
    const files = Object.fromEntries(names.map((n) => [n, file(n, bytes.get(`.${n}`)!)]));
    const want = systemdMeasure(files, ALL, [':']);
    // Handed over in reverse, with a signature section: measured in systemd's order all the same.
    const sections = new Map([...bytes].reverse());
    sections.set('.pcrsig', Buffer.from('ignored'));
    const r = await measureSections(sections, { banks: ALL, phases: [] });
    for (const bank of ALL) expect(r.pcr11[bank]!.at(-1)!.pcr11, bank).toBe(want[bank]![0]);
    expect(r.sections.map((s) => s.name)).toEqual(names.map((n) => `.${n}`));
  });

  it('rejects a section name systemd does not know', async () => {
    expect(await asyncCodeOf(() => measureSections(new Map([['.bogus', new Uint8Array(1)]])))).toBe('UKI_UNSUPPORTED');
  });
});

interface Built {
  file: string;
  parts: Record<string, string>;
}

describe('UKIs built with objcopy + systemd-boot-efi stub', () => {
  let dir = '';
  let tiny = '';
  const ukis: Built[] = [];
  const part = (name: string, content: Uint8Array): string => {
    const p = join(dir, name);
    writeFileSync(p, content);
    return p;
  };
  /** objcopy, as systemd's docs describe building a UKI by hand (each section at its own VMA). */
  const build = (name: string, sections: Array<[string, string, number]>): string => {
    const out = join(dir, name);
    const args: string[] = [];
    for (const [sec, file, vma] of sections) args.push('--add-section', `${sec}=${file}`, '--change-section-vma', `${sec}=0x${vma.toString(16)}`);
    execFileSync('objcopy', [...args, STUB, out]);
    return out;
  };

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'uki-test-'));
    const linux = part('linux', randomBytes(300_001));
    const initrd = part('initrd', randomBytes(123_457));
    const osrel = part('osrel', Buffer.from('ID=test\nNAME="Test OS"\nVERSION_ID=1\n'));
    const cmdline = part('cmdline', Buffer.from(`root=/dev/vda1 ro roothash=${randomBytes(32).toString('hex')}`));
    const splash = part('splash', randomBytes(4099));
    const dtb = part('dtb', randomBytes(777));
    const pcrpkey = part('pcrpkey', Buffer.from('-----BEGIN PUBLIC KEY-----\nnot-a-key\n-----END PUBLIC KEY-----\n'));
    ukis.push({
      file: build('full.efi', [['.osrel', osrel, 0x20000], ['.cmdline', cmdline, 0x30000], ['.linux', linux, 0x2000000], ['.initrd', initrd, 0x3000000]]),
      parts: { linux, osrel, cmdline, initrd },
    });
    tiny = build('tiny.efi', [['.linux', part('tiny-linux', randomBytes(1000)), 0x2000000], ['.cmdline', cmdline, 0x30000]]);
    ukis.push({ file: build('linux-only.efi', [['.linux', linux, 0x2000000]]), parts: { linux } });
    // Sections added in a non-canonical order: measurement order must still be systemd's.
    ukis.push({
      file: build('shuffled.efi', [['.initrd', initrd, 0x3000000], ['.pcrpkey', pcrpkey, 0x50000], ['.dtb', dtb, 0x40000], ['.splash', splash, 0x60000], ['.cmdline', cmdline, 0x30000], ['.linux', linux, 0x2000000]]),
      parts: { linux, cmdline, initrd, splash, dtb, pcrpkey },
    });
  });
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const measureTool = (parts: Record<string, string>, bank: string, phase?: string): Array<{ phase?: string; hash: string }> => {
    const args = ['calculate', `--bank=${bank}`, '--json=short', ...Object.entries(parts).map(([k, f]) => `--${k}=${f}`)];
    if (phase !== undefined) args.push(`--phase=${phase}`);
    const out = JSON.parse(execFileSync(MEASURE, args, { encoding: 'utf8' })) as Record<string, Array<{ phase?: string; hash: string }>>;
    return out[bank]!;
  };

  it('PCR 11 equals systemd-measure calculate, sha256 and sha384, every phase', async () => {
    for (const u of ukis) {
      const r = await measureUki(new Uint8Array(readFileSync(u.file)));
      expect(r.stubVersion).toBe(252);
      // The systemd 252 stub does not measure its own .sbat section.
      expect(r.unmeasured).toEqual(['.sbat']);
      for (const bank of ['sha256', 'sha384'] as const) {
        const ours = r.pcr11[bank]!;
        const phases = measureTool(u.parts, bank);
        expect(ours.slice(1).map((p) => ({ phase: p.phase, hash: p.pcr11 })), `${u.file} ${bank}`).toEqual(phases.map((p) => ({ phase: p.phase, hash: p.hash })));
        expect(ours[0]!.pcr11, `${u.file} ${bank} no phase`).toBe(measureTool(u.parts, bank, ':')[0]!.hash);
      }
      expect(r.pcr11.sha256!.map((p) => p.phase)).toEqual(['', ...BOOT_PHASES.map((_, i) => BOOT_PHASES.slice(0, i + 1).join(':'))]);
    }
  });

  it('Authenticode sha256 equals pesign --hash on the stub and every UKI', async () => {
    for (const f of [STUB, ...ukis.map((u) => u.file)]) {
      const want = /hash: ([0-9a-f]{64})/.exec(execFileSync('pesign', ['--hash', '-i', f], { encoding: 'utf8' }))![1];
      expect(Buffer.from(await authenticodeDigest(new Uint8Array(readFileSync(f)), 'sha256')).toString('hex'), f).toBe(want);
    }
  });

  it('signed images: digest equals the one inside the osslsigncode signature (sha256, sha384)', async () => {
    const key = join(dir, 'k.pem');
    const cert = join(dir, 'c.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=uki-test'], { stdio: 'ignore' });
    for (const u of ukis) {
      for (const h of ['sha256', 'sha384'] as const) {
        const signed = `${u.file}.${h}.signed`;
        execFileSync('osslsigncode', ['sign', '-h', h, '-certs', cert, '-key', key, '-in', u.file, '-out', signed], { stdio: 'ignore' });
        let out: string;
        try {
          out = execFileSync('osslsigncode', ['verify', '-in', signed], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
        } catch (e) {
          // Untrusted self-signed certificate: verification fails, the digests are still printed.
          out = String((e as { stdout?: string }).stdout ?? '');
        }
        const current = /Current message digest\s*:\s*([0-9A-F]+)/.exec(out)![1]!.toLowerCase();
        const calculated = /Calculated message digest\s*:\s*([0-9A-F]+)/.exec(out)![1]!.toLowerCase();
        expect(calculated).toBe(current);
        const bytes = new Uint8Array(readFileSync(signed));
        expect(parsePe(bytes).certTable).toBeDefined();
        expect(Buffer.from(await authenticodeDigest(bytes, h)).toString('hex'), `${signed}`).toBe(current);
        // PCR 11 does not depend on the signature.
        const a = await measureUki(bytes);
        const b = await measureUki(new Uint8Array(readFileSync(u.file)));
        expect(a.pcr11).toEqual(b.pcr11);
        if (h === 'sha256') {
          const want = /hash: ([0-9a-f]{64})/.exec(execFileSync('pesign', ['--hash', '-i', signed], { encoding: 'utf8' }))![1];
          expect(Buffer.from(await authenticodeDigest(bytes, 'sha256')).toString('hex')).toBe(want);
        }
      }
    }
  });

  it('PE32 (i386) image with a symbol table after the sections: equals pesign and osslsigncode', async () => {
    // A tiny EFI application linked by GNU ld for i386 (PE32 optional header, magic 0x10B).
    writeFileSync(join(dir, 'a.s'), '.text\n.globl _start\n_start: ret\n.data\n.fill 3000,1,7\n');
    execFileSync('as', ['--32', '-o', join(dir, 'a.o'), join(dir, 'a.s')]);
    const pe32 = join(dir, 'pe32.efi');
    execFileSync('ld', ['-m', 'i386pe', '--subsystem', '10', '-e', '_start', '-o', pe32, join(dir, 'a.o')]);
    const bytes = new Uint8Array(readFileSync(pe32));
    const img = parsePe(bytes);
    expect(img.pe32plus).toBe(false);
    expect(img.machine).toBe(0x14c);
    const want = /hash: ([0-9a-f]{64})/.exec(execFileSync('pesign', ['--hash', '-i', pe32], { encoding: 'utf8' }))![1];
    expect(Buffer.from(await authenticodeDigest(bytes, 'sha256')).toString('hex')).toBe(want);
    const key = join(dir, 'k3.pem');
    const cert = join(dir, 'c3.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=pe32'], { stdio: 'ignore' });
    const signed = join(dir, 'pe32s.efi');
    execFileSync('osslsigncode', ['sign', '-certs', cert, '-key', key, '-in', pe32, '-out', signed], { stdio: 'ignore' });
    let out: string;
    try {
      out = execFileSync('osslsigncode', ['verify', '-in', signed], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (e) {
      out = String((e as { stdout?: string }).stdout ?? '');
    }
    const current = /Current message digest\s*:\s*([0-9A-F]+)/.exec(out)![1]!.toLowerCase();
    expect(Buffer.from(await authenticodeDigest(new Uint8Array(readFileSync(signed)), 'sha256')).toString('hex')).toBe(current);
  });

  it('rejects a UKI with a duplicated section, with .profile, and a PE without .linux', async () => {
    // objcopy refuses duplicate names, so rename .osrel to .cmdline in the section table.
    const dup = Buffer.from(readFileSync(ukis[0]!.file));
    const at = dup.indexOf(Buffer.from('.osrel\0\0', 'latin1'));
    Buffer.from('.cmdline', 'latin1').copy(dup, at);
    expect(codeOf(() => parsePe(dup))).toBe('OK');
    expect(await asyncCodeOf(() => measureUki(dup))).toBe('UKI_DUPLICATE_SECTION');
    const prof = build('profile.efi', [['.linux', ukis[0]!.parts.linux!, 0x2000000], ['.profile', ukis[0]!.parts.osrel!, 0x30000]]);
    expect(await asyncCodeOf(() => measureUki(new Uint8Array(readFileSync(prof))))).toBe('UKI_UNSUPPORTED');
    expect(await asyncCodeOf(() => measureUki(new Uint8Array(readFileSync(STUB))))).toBe('UKI_NO_LINUX');
  });

  it('a stub version override changes the measured set (.sbat measured from systemd 253 on)', async () => {
    const bytes = new Uint8Array(readFileSync(ukis[1]!.file));
    const r252 = await measureUki(bytes);
    const r258 = await measureUki(bytes, { stubVersion: 258 });
    expect(r258.sections.map((s) => s.name)).toEqual(['.linux', '.sbat']);
    expect(r258.pcr11.sha256![0]!.pcr11).not.toBe(r252.pcr11.sha256![0]!.pcr11);
  });

  describe('PE parser hardening', () => {
    type Row = { name: string; mutate: (b: Buffer) => Buffer; wantCode: string };
    const lfanew = (b: Buffer): number => b.readUInt32LE(0x3c);
    const optOff = (b: Buffer): number => lfanew(b) + 24;
    const secOff = (b: Buffer, i: number): number => optOff(b) + b.readUInt16LE(lfanew(b) + 20) + 40 * i;
    const rows: Row[] = [
      { name: 'no MZ', mutate: (b) => { b[0] = 0; return b; }, wantCode: 'PE_BAD_SIGNATURE' },
      { name: 'no PE signature', mutate: (b) => { b[lfanew(b)] = 0x51; return b; }, wantCode: 'PE_BAD_SIGNATURE' },
      { name: 'e_lfanew beyond EOF', mutate: (b) => { b.writeUInt32LE(b.length + 16 - (b.length % 8), 0x3c); return b; }, wantCode: 'TRUNCATED' },
      { name: 'e_lfanew unaligned', mutate: (b) => { b.writeUInt32LE(lfanew(b) + 1, 0x3c); return b; }, wantCode: 'PE_MALFORMED' },
      { name: 'optional header magic 0x107', mutate: (b) => { b.writeUInt16LE(0x107, optOff(b)); return b; }, wantCode: 'PE_BAD_SIGNATURE' },
      { name: 'zero sections', mutate: (b) => { b.writeUInt16LE(0, lfanew(b) + 6); return b; }, wantCode: 'PE_MALFORMED' },
      { name: '97 sections', mutate: (b) => { b.writeUInt16LE(97, lfanew(b) + 6); return b; }, wantCode: 'LIMIT_EXCEEDED' },
      { name: 'NumberOfRvaAndSizes 17', mutate: (b) => { b.writeUInt32LE(17, optOff(b) + 108); return b; }, wantCode: 'PE_MALFORMED' },
      { name: 'SizeOfOptionalHeader disagrees with directories', mutate: (b) => { b.writeUInt32LE(15, optOff(b) + 108); return b; }, wantCode: 'PE_MALFORMED' },
      { name: 'SizeOfHeaders inside the section table', mutate: (b) => { b.writeUInt32LE(0x80, optOff(b) + 60); return b; }, wantCode: 'PE_MALFORMED' },
      { name: 'SizeOfHeaders beyond EOF', mutate: (b) => { b.writeUInt32LE(b.length + 1, optOff(b) + 60); return b; }, wantCode: 'TRUNCATED' },
      { name: 'section name not NUL-padded', mutate: (b) => { b[secOff(b, 0) + 7] = 0x41; return b; }, wantCode: 'PE_MALFORMED' },
      { name: 'section name with a control character', mutate: (b) => { b[secOff(b, 0) + 1] = 0x01; return b; }, wantCode: 'PE_MALFORMED' },
      { name: 'section raw data beyond EOF', mutate: (b) => { b.writeUInt32LE(b.length, secOff(b, 0) + 16); return b; }, wantCode: 'TRUNCATED' },
      { name: 'sections overlapping', mutate: (b) => { b.writeUInt32LE(b.readUInt32LE(secOff(b, 0) + 20), secOff(b, 1) + 20); return b; }, wantCode: 'PE_MALFORMED' },
      { name: 'section raw data inside the headers', mutate: (b) => { b.writeUInt32LE(0x40, secOff(b, 0) + 20); return b; }, wantCode: 'PE_MALFORMED' },
      { name: 'certificate table not at EOF', mutate: (b) => { b.writeUInt32LE(b.length - 16, optOff(b) + 112 + 32); b.writeUInt32LE(8, optOff(b) + 112 + 36); return b; }, wantCode: 'PE_MALFORMED' },
      { name: 'certificate table overlapping a section', mutate: (b) => { b.writeUInt32LE(0x400, optOff(b) + 112 + 32); b.writeUInt32LE(b.length - 0x400, optOff(b) + 112 + 36); return b; }, wantCode: 'PE_MALFORMED' },
      { name: 'certificate table beyond EOF', mutate: (b) => { const end = b.length + 8 - (b.length % 8); b.writeUInt32LE(end, optOff(b) + 112 + 32); b.writeUInt32LE(16, optOff(b) + 112 + 36); return b; }, wantCode: 'TRUNCATED' },
    ];
    for (const row of rows) {
      it(`${row.name} → ${row.wantCode}`, () => {
        expect(codeOf(() => parsePe(row.mutate(Buffer.from(readFileSync(ukis[0]!.file)))))).toBe(row.wantCode);
      });
    }

    it('accepts the untouched images (PE32+, x86-64)', () => {
      const pe = parsePe(new Uint8Array(readFileSync(ukis[0]!.file)));
      expect(pe.pe32plus).toBe(true);
      expect(pe.machine).toBe(0x8664);
    });

    it('truncation sweep: every prefix of the stub cut inside its headers or sections throws TRUNCATED', () => {
      const b = new Uint8Array(readFileSync(STUB));
      const pe = parsePe(b);
      // Bytes after the last section (the stub carries ~12 KiB of them) are legitimate extra
      // data that Authenticode hashes, so a prefix that keeps every section is a valid image.
      const sectionsEnd = Math.max(...pe.sections.map((s) => s.pointerToRawData + s.sizeOfRawData));
      expect(sectionsEnd).toBeLessThan(b.length);
      const wrong: string[] = [];
      for (let n = 0; n < b.length; n++) {
        const code = codeOf(() => parsePe(b.subarray(0, n)));
        if (code !== (n < sectionsEnd ? 'TRUNCATED' : 'OK')) wrong.push(`prefix ${n}: ${code}`);
      }
      expect(wrong).toEqual([]);
    });

    it('trailing bytes after a signed image (past the certificate table) are rejected', async () => {
      const key = join(dir, 'k2.pem');
      const cert = join(dir, 'c2.pem');
      execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=t'], { stdio: 'ignore' });
      const signed = join(dir, 'trail.efi');
      execFileSync('osslsigncode', ['sign', '-certs', cert, '-key', key, '-in', ukis[1]!.file, '-out', signed], { stdio: 'ignore' });
      const b = readFileSync(signed);
      expect(codeOf(() => parsePe(b))).toBe('OK');
      for (const k of [1, 8, 100]) expect(codeOf(() => parsePe(Buffer.concat([b, Buffer.alloc(k)])))).toBe('PE_MALFORMED');
    });

    it('fast-check: 10,000 mutated headers never throw an untyped exception', async () => {
      const base = readFileSync(STUB).subarray(0, 0x1000);
      const linux = Buffer.from(readFileSync(tiny));
      await fc.assert(
        fc.asyncProperty(fc.array(fc.tuple(fc.nat(0x2ff), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }), fc.nat(19), async (flips, pick) => {
          // One input in 20 goes through the whole measureUki (hashing); the rest through parsePe.
          const whole = pick === 0;
          const b = whole ? Buffer.from(linux) : Buffer.from(base);
          for (const [i, v] of flips) b[i] = v;
          try {
            if (whole) await measureUki(b, { banks: ['sha256'] });
            else parsePe(b);
          } catch (e) {
            if (!(e instanceof AttestError)) throw e;
          }
        }),
        { numRuns: 10_000 },
      );
    });

    it('fast-check: random bytes behind a valid MZ/PE prefix never throw an untyped exception (5,000 inputs)', () => {
      const head = readFileSync(STUB).subarray(0, 0x90);
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 2048 }), (tail) => {
          try {
            parsePe(Buffer.concat([head, tail]));
          } catch (e) {
            if (!(e instanceof AttestError)) throw e;
          }
        }),
        { numRuns: 5000 },
      );
    });
  });
});

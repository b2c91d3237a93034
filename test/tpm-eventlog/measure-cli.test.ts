/**
 * `measure uki` CLI: registered on a commander program, run on a UKI built with objcopy from the
 * systemd-boot-efi stub; JSON output equals measureUki and systemd-measure; errors carry codes.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Command } from 'commander';
import { register, type MeasureIo } from '../../broker/commands/measure.node.js';
import { measureUki } from '../../providers/tpm/uki.js';

const STUB = '/usr/lib/systemd/boot/efi/linuxx64.efi.stub';
const MEASURE = '/usr/lib/systemd/systemd-measure';

async function run(args: string[]): Promise<{ out: string; err: string; code: number }> {
  let out = '';
  let err = '';
  let code = 0;
  const io: MeasureIo = { out: (s) => (out += s), err: (s) => (err += s), setExitCode: (c) => (code = c) };
  const program = new Command().exitOverride().configureOutput({ writeOut: (s) => (out += s), writeErr: (s) => (err += s) });
  register(program, io);
  try {
    await program.parseAsync(['node', 'attest-broker', ...args]);
  } catch (e) {
    code = (e as { exitCode?: number }).exitCode ?? 99;
  }
  return { out, err, code };
}

describe('attest-broker measure uki', () => {
  let dir = '';
  let uki = '';
  const parts: Record<string, string> = {};
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'measure-cli-'));
    parts.linux = join(dir, 'linux');
    parts.cmdline = join(dir, 'cmdline');
    writeFileSync(parts.linux, Buffer.alloc(5000, 0x5a));
    writeFileSync(parts.cmdline, 'console=ttyS0 roothash=' + 'ab'.repeat(32));
    uki = join(dir, 'uki.efi');
    execFileSync('objcopy', ['--add-section', `.cmdline=${parts.cmdline}`, '--change-section-vma', '.cmdline=0x30000', '--add-section', `.linux=${parts.linux}`, '--change-section-vma', '.linux=0x2000000', STUB, uki]);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('--json equals measureUki, and its sha256 phases equal systemd-measure', async () => {
    const { out, code } = await run(['measure', 'uki', uki, '--json', '--bank', 'sha256']);
    expect(code).toBe(0);
    const got = JSON.parse(out) as { pcr11: { sha256: Array<{ phase: string; pcr11: string }> }; authenticode: Record<string, string> };
    const want = await measureUki(new Uint8Array(readFileSync(uki)), { banks: ['sha256'] });
    expect(got).toEqual(JSON.parse(JSON.stringify({ file: uki, ...want })));
    if (existsSync(MEASURE)) {
      const tool = JSON.parse(execFileSync(MEASURE, ['calculate', '--bank=sha256', '--json=short', `--linux=${parts.linux}`, `--cmdline=${parts.cmdline}`], { encoding: 'utf8' })) as {
        sha256: Array<{ phase: string; hash: string }>;
      };
      expect(got.pcr11.sha256.slice(1).map((p) => p.pcr11)).toEqual(tool.sha256.map((p) => p.hash));
    }
  });

  it('text output names every phase, PCR 4 and the sections, for both banks by default', async () => {
    const { out, code } = await run(['measure', 'uki', uki]);
    expect(code).toBe(0);
    for (const s of ['PCR 4 (Authenticode, sha256)', 'PCR 11 (sha384)', 'enter-initrd:leave-initrd:sysinit:ready', '.cmdline', 'not measured by this stub: .sbat']) expect(out).toContain(s);
  });

  it('a file that is not a UKI exits 1 with a stable code; a bad bank is a usage error', async () => {
    const r = await run(['measure', 'uki', STUB]);
    expect(r.code).toBe(1);
    expect(r.err).toContain('UKI_NO_LINUX');
    const r2 = await run(['measure', 'uki', parts.cmdline!]);
    expect(r2.err).toContain('PE_BAD_SIGNATURE');
    const r3 = await run(['measure', 'uki', uki, '--bank', 'md5']);
    expect(r3.code).not.toBe(0);
    const r4 = await run(['measure', 'uki', join(dir, 'missing.efi')]);
    expect(r4.code).toBe(2);
  });
});

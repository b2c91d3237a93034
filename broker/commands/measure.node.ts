/**
 * @module broker/commands/measure.node
 *
 * `attest-broker measure uki FILE.efi [--bank sha256|sha384]... [--json] [--stub-version N]`
 *
 * Predicts what booting a Unified Kernel Image puts in the TPM, for writing policy:
 * - PCR 11 as systemd-stub measures the UKI's sections, before any boot phase (what the
 *   firmware event log alone replays to) and after each systemd-pcrphase word (`enter-initrd`,
 *   `leave-initrd`, `sysinit`, `ready`), matching `systemd-measure calculate`; a policy must
 *   say which phase its nodes quote in;
 * - PCR 4's Authenticode digest of the PE, which firmware extends when it loads the UKI;
 * - each measured section's content digest (what BootClaims.ukiSections reports).
 * Node-only (reads a file); the work is done by providers/tpm/uki.ts (Web APIs only).
 * Exit status: 0 ok, 1 the file is not a well-formed UKI (stable error code on stderr), 2 usage.
 */
import { readFile } from 'node:fs/promises';
import { Command, InvalidArgumentError, Option } from 'commander';
import { isAttestError } from '../../providers/common/errors.js';
import { measureUki, type MeasureUkiResult, type UkiBank } from '../../providers/tpm/uki.js';

export interface MeasureIo {
  out: (s: string) => void;
  err: (s: string) => void;
  setExitCode: (code: number) => void;
}

const defaultIo: MeasureIo = {
  out: (s) => process.stdout.write(s),
  err: (s) => process.stderr.write(s),
  setExitCode: (c) => {
    process.exitCode = c;
  },
};

const BANKS = ['sha256', 'sha384'] as const;

function parseStubVersion(v: string): number {
  if (!/^\d{3}$/.test(v)) throw new InvalidArgumentError('a systemd version like 252');
  return Number(v);
}

/** Human-readable report. */
export function formatMeasurement(file: string, r: MeasureUkiResult, banks: readonly UkiBank[]): string {
  const lines: string[] = [`UKI: ${file}`];
  lines.push(
    `systemd-stub: ${r.stubVersion === undefined ? 'version unknown (no .sdmagic): every section assumed measured' : r.stubVersion}` +
      (r.unmeasured.length > 0 ? `; not measured by this stub: ${r.unmeasured.join(' ')}` : ''),
  );
  for (const bank of banks) {
    lines.push('', `PCR 4 (Authenticode, ${bank}): ${r.authenticode[bank]}`, `PCR 11 (${bank}):`);
    for (const p of r.pcr11[bank] ?? []) lines.push(`  ${(p.phase === '' ? '(no phase: event log only)' : p.phase).padEnd(42)} ${p.pcr11}`);
    lines.push(`Sections (${bank}):`);
    for (const s of r.sections) lines.push(`  ${s.name.padEnd(10)} ${s.digests[bank]}`);
  }
  return lines.join('\n') + '\n';
}

export function register(program: Command, io: MeasureIo = defaultIo): void {
  const measure = program.command('measure').description('predict TPM PCR values for boot artifacts (for writing policy)');
  measure
    .command('uki')
    .description('PCR 11 (per boot phase) and PCR 4 Authenticode digest of a unified kernel image, as systemd-stub and firmware measure it')
    .argument('<file>', 'the UKI (.efi)')
    .addOption(new Option('--bank <bank...>', 'PCR bank(s) to report').choices(BANKS).default([...BANKS]))
    .option('--json', 'machine-readable output')
    .option('--stub-version <n>', 'systemd-stub version to assume instead of the one in .sdmagic', parseStubVersion)
    .action(async (file: string, opts: { bank: UkiBank[]; json?: boolean; stubVersion?: number }) => {
      let bytes: Uint8Array;
      try {
        bytes = new Uint8Array(await readFile(file));
      } catch (e) {
        io.err(`error: cannot read ${file}: ${(e as Error).message}\n`);
        io.setExitCode(2);
        return;
      }
      const banks = [...new Set(opts.bank)];
      try {
        const r = await measureUki(bytes, { banks, ...(opts.stubVersion === undefined ? {} : { stubVersion: opts.stubVersion }) });
        if (opts.json) io.out(JSON.stringify({ file, ...r }, null, 2) + '\n');
        else io.out(formatMeasurement(file, r, banks));
      } catch (e) {
        if (!isAttestError(e)) throw e;
        io.err(`error: ${e.code}: ${e.message}\n`);
        io.setExitCode(1);
      }
    });
}

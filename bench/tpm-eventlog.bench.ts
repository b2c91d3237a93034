/**
 * Event-log replay and UKI measurement throughput.
 *
 * Run: npx vitest bench --run --project node bench/tpm-eventlog.bench.ts
 * The "raw WebCrypto" rows hash exactly the bytes the measured operation must hash (one
 * digest per event per bank for replay; the section + Authenticode bytes for measureUki), so
 * the ratio shows the parser/replay overhead on top of unavoidable hashing.
 */
import { readFileSync, existsSync } from 'node:fs';
import { bench, describe } from 'vitest';
import { parseEventLog, replayEventLog, verifyEventLogAgainstPcrs } from '../providers/tpm/eventlog.js';
import { replayAndSummarize } from '../providers/tpm/measured-boot.js';
import { VECTORS_DIR } from '../test/helpers/vectors.js';

const LOG = `${VECTORS_DIR}/go-tpm-tools/eventlogs/ubuntu-2404-amd-sevsnp.bin`;
if (existsSync(LOG)) {
  const bytes = new Uint8Array(readFileSync(LOG));
  const log = parseEventLog(bytes);
  const quoted = await replayEventLog(log);
  const q256 = { sha256: quoted.sha256! };
  // The same values as the bytes a verified quote hands over (VerifiedQuote.pcrBytes).
  const q256Bytes = { sha256: Object.fromEntries(Object.entries(quoted.sha256!).map(([k, v]) => [k, new Uint8Array(Buffer.from(v, 'hex'))])) };
  // The hashing replay cannot avoid: one extend per non-NO_ACTION event in the sha256 bank.
  const extendInputs = log.events.filter((e) => e.eventType !== 3).map(() => new Uint8Array(64));

  describe(`event log (${log.events.length} events, ${bytes.length} bytes)`, () => {
    bench('parseEventLog', () => {
      parseEventLog(bytes);
    });
    bench('verifyEventLogAgainstPcrs (sha256, quoted as hex)', async () => {
      await verifyEventLogAgainstPcrs(parseEventLog(bytes), q256);
    });
    bench('verifyEventLogAgainstPcrs (sha256, quoted as bytes)', async () => {
      await verifyEventLogAgainstPcrs(parseEventLog(bytes), q256Bytes);
    });
    bench('verifyEventLogAgainstPcrs (sha256, quoted as hex, hex replay read)', async () => {
      void (await verifyEventLogAgainstPcrs(parseEventLog(bytes), q256)).replayed;
    });
    bench('replayAndSummarize (sha256)', async () => {
      await replayAndSummarize(bytes, q256);
    });
    bench('raw WebCrypto: the sha256 extends alone', async () => {
      for (const b of extendInputs) await crypto.subtle.digest('SHA-256', b);
    });
  });
}

// UKI: PCR 11 + Authenticode for a UKI with an 8 MiB "kernel" and a 16 MiB "initrd", built with
// objcopy from the systemd-boot-efi stub when it is installed.
const STUB = '/usr/lib/systemd/boot/efi/linuxx64.efi.stub';
if (existsSync(STUB)) {
  const { execFileSync } = await import('node:child_process');
  const { mkdtempSync, writeFileSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { randomBytes } = await import('node:crypto');
  const { measureUki } = await import('../providers/tpm/uki.js');
  const dir = mkdtempSync(join(tmpdir(), 'uki-bench-'));
  writeFileSync(join(dir, 'linux'), randomBytes(8 << 20));
  writeFileSync(join(dir, 'initrd'), randomBytes(16 << 20));
  const uki = join(dir, 'uki.efi');
  execFileSync('objcopy', ['--add-section', `.linux=${join(dir, 'linux')}`, '--change-section-vma', '.linux=0x2000000', '--add-section', `.initrd=${join(dir, 'initrd')}`, '--change-section-vma', '.initrd=0x3000000', STUB, uki]);
  const bytes = new Uint8Array(readFileSync(uki));
  rmSync(dir, { recursive: true, force: true });
  describe(`measureUki (${(bytes.length / 1048576).toFixed(1)} MiB UKI, sha256)`, () => {
    bench('measureUki: PCR 11 phases + Authenticode', async () => {
      await measureUki(bytes, { banks: ['sha256'] });
    });
    bench('raw WebCrypto: SHA-256 over the file twice (sections + Authenticode)', async () => {
      await crypto.subtle.digest('SHA-256', bytes);
      await crypto.subtle.digest('SHA-256', bytes);
    });
  });
}

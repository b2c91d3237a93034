/**
 * The join tests' TPM: the shared swtpm helper (test/helpers/swtpm.ts: free loopback ports,
 * own state, stopped by pid), manufactured first when asked:
 * - `swtpm_setup --create-ek-cert` under a private test CA (swtpm_localca with its own state
 *   directory, never /var/lib/swtpm-localca), so the EK certificate at NV 0x01c00002 chains to
 *   a root the test holds: root → issuer (intermediate) → EK certificate;
 * - `--pcr-banks` to allocate several banks (GCE quotes every bank);
 * - optionally the issuer in the TCG EK chain NV range (0x01c00100), as manufacturers do.
 */
import { execFile, execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { HAVE_SWTPM, startSwtpm as startBase } from '../helpers/swtpm.js';

export { HAVE_SWTPM };
const run = promisify(execFile);

export interface Swtpm {
  dir: string;
  port: number;
  tcti: string;
  /** Environment for tpm2-tools against this TPM. */
  env: NodeJS.ProcessEnv;
  /** PEM of the test CA chain that issued the EK certificate (root, then issuer). */
  ekCaPem?: string;
  /** The root alone, and the intermediate that signed the EK certificate. */
  ekRootPem?: string;
  ekIssuerPem?: string;
  /** Runs a tpm2-tools command against this TPM (stdout as text); throws on failure. */
  tpm2(tool: string, args: string[]): Promise<string>;
  stop(): Promise<void>;
}

export interface SwtpmOptions {
  ekCert?: boolean;
  /** Also store the EK certificate's issuer in NV 0x01c00100 (TCG EK chain range), DER. */
  ekChainInNv?: boolean;
  /** PCR banks to allocate (swtpm_setup --pcr-banks). */
  banks?: string;
}

export async function startSwtpm(o: SwtpmOptions = {}): Promise<Swtpm> {
  let ca = '';
  const base = await startBase({
    prepare: async (state, dir) => {
      if (!o.ekCert && !o.banks) return;
      ca = join(dir, 'localca');
      mkdirSync(ca);
      writeFileSync(join(dir, 'swtpm-localca.conf'), `statedir = ${ca}\nsigningkey = ${ca}/signkey.pem\nissuercert = ${ca}/issuercert.pem\ncertserial = ${ca}/certserial\n`);
      writeFileSync(join(dir, 'swtpm-localca.options'), '--platform-manufacturer attest-broker-test\n--platform-version 2.1\n--platform-model swtpm\n');
      writeFileSync(
        join(dir, 'swtpm_setup.conf'),
        `create_certs_tool = /usr/bin/swtpm_localca\ncreate_certs_tool_config = ${dir}/swtpm-localca.conf\ncreate_certs_tool_options = ${dir}/swtpm-localca.options\nactive_pcr_banks = ${o.banks ?? 'sha256'}\n`,
      );
      const args = ['--tpm2', '--tpmstate', state, '--config', join(dir, 'swtpm_setup.conf'), '--overwrite', '--pcr-banks', o.banks ?? 'sha256'];
      if (o.ekCert) args.push('--create-ek-cert');
      await run('swtpm_setup', args);
    },
  });
  const t: Swtpm = {
    dir: base.dir,
    port: base.port,
    tcti: String(base.env.TPM2TOOLS_TCTI),
    env: base.env,
    tpm2: (tool, args) => base.tpm2(tool, args),
    stop: () => base.stop(),
  };
  if (o.ekCert) {
    t.ekRootPem = readFileSync(join(ca, 'swtpm-localca-rootca-cert.pem'), 'utf8');
    t.ekIssuerPem = readFileSync(join(ca, 'issuercert.pem'), 'utf8');
    t.ekCaPem = t.ekRootPem + t.ekIssuerPem;
    if (o.ekChainInNv) {
      // As a manufacturer would: the EK certificate's issuer, DER, in the TCG chain range.
      const der = join(base.dir, 'issuer.der');
      execFileSync('openssl', ['x509', '-in', join(ca, 'issuercert.pem'), '-outform', 'der', '-out', der]);
      const size = String(readFileSync(der).length + 16); // NV padding, as real TPMs have
      await t.tpm2('tpm2_nvdefine', ['0x01c00100', '-C', 'o', '-s', size, '-a', 'ownerread|ownerwrite|authread|authwrite']);
      await t.tpm2('tpm2_nvwrite', ['0x01c00100', '-C', 'o', '-i', der]);
    }
  }
  return t;
}

/** One measurement to extend (an event-log entry's digests, EV_NO_ACTION already dropped). */
export interface Extend {
  pcr: number;
  digests: Partial<Record<'sha1' | 'sha256' | 'sha384', Uint8Array>>;
}

/**
 * Extends the TPM's PCRs with `events` in order (`tpm2_pcrextend <pcr>:sha1=…,sha256=…`), the
 * way firmware does while it writes its event log — so a real log (parsed by the event-log
 * module) replayed here makes quote, log and PCRs agree. Banks the TPM has not allocated are
 * skipped by the caller's choice of `banks`.
 */
export async function extendPcrs(t: Swtpm, events: readonly Extend[], banks: ReadonlyArray<'sha1' | 'sha256' | 'sha384'> = ['sha256']): Promise<void> {
  for (const e of events) {
    const parts = banks.filter((b) => e.digests[b]).map((b) => `${b}=${Buffer.from(e.digests[b]!).toString('hex')}`);
    if (parts.length) await t.tpm2('tpm2_pcrextend', [`${e.pcr}:${parts.join(',')}`]);
  }
}

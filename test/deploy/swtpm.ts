/**
 * A real software TPM for the join tests: `swtpm socket` on free loopback ports (never the
 * system's), optionally manufactured by `swtpm_setup --create-ek-cert` under a private test CA
 * (swtpm_localca with its own state directory, so tests never touch /var/lib/swtpm-localca).
 * Facts used (shared/design/dependencies.md): the TCTI `swtpm:host=…,port=P` expects the
 * control channel at P+1; without a resource manager, transient objects must be flushed.
 */
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export const HAVE_SWTPM = (() => {
  try {
    execFileSync('swtpm', ['--version'], { stdio: 'ignore' });
    execFileSync('tpm2_getrandom', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

async function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/** A port P with P+1 also free. */
export async function freePortPair(): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const p = await new Promise<number>((resolve) => {
      const s = createServer();
      s.listen(0, '127.0.0.1', () => {
        const port = (s.address() as { port: number }).port;
        s.close(() => resolve(port));
      });
    });
    if (p < 65534 && (await portFree(p + 1))) return p;
  }
  throw new Error('no free port pair');
}

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
  tpm2(tool: string, args: string[]): Promise<Buffer>;
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
  const dir = mkdtempSync(join(tmpdir(), 'swtpm-join-'));
  const state = join(dir, 'state');
  execFileSync('mkdir', ['-p', state]);
  let ekCaPem: string | undefined;
  let ekRootPem: string | undefined;
  let ekIssuerPem: string | undefined;
  if (o.ekCert || o.banks) {
    const ca = join(dir, 'localca');
    execFileSync('mkdir', ['-p', ca]);
    writeFileSync(
      join(dir, 'swtpm-localca.conf'),
      `statedir = ${ca}\nsigningkey = ${ca}/signkey.pem\nissuercert = ${ca}/issuercert.pem\ncertserial = ${ca}/certserial\n`,
    );
    writeFileSync(join(dir, 'swtpm-localca.options'), '--platform-manufacturer attest-broker-test\n--platform-version 2.1\n--platform-model swtpm\n');
    writeFileSync(
      join(dir, 'swtpm_setup.conf'),
      `create_certs_tool = /usr/bin/swtpm_localca\ncreate_certs_tool_config = ${dir}/swtpm-localca.conf\ncreate_certs_tool_options = ${dir}/swtpm-localca.options\nactive_pcr_banks = ${o.banks ?? 'sha256'}\n`,
    );
    const args = ['--tpm2', '--tpmstate', state, '--config', join(dir, 'swtpm_setup.conf'), '--overwrite', '--pcr-banks', o.banks ?? 'sha256'];
    if (o.ekCert) args.push('--create-ek-cert');
    await run('swtpm_setup', args);
    if (o.ekCert) {
      // swtpm_localca makes a root CA and an intermediate (issuercert) that signs the EK cert.
      const root = join(ca, 'swtpm-localca-rootca-cert.pem');
      ekCaPem = [root, join(ca, 'issuercert.pem')].filter(existsSync).map((f) => readFileSync(f, 'utf8')).join('');
      ekRootPem = readFileSync(root, 'utf8');
      ekIssuerPem = readFileSync(join(ca, 'issuercert.pem'), 'utf8');
    }
  }
  const port = await freePortPair();
  const pidFile = join(dir, 'swtpm.pid');
  await run('swtpm', [
    'socket', '--tpm2',
    '--tpmstate', `dir=${state}`,
    '--server', `type=tcp,port=${port},bindaddr=127.0.0.1`,
    '--ctrl', `type=tcp,port=${port + 1},bindaddr=127.0.0.1`,
    '--flags', 'not-need-init,startup-clear',
    '--daemon', '--pid', `file=${pidFile}`,
  ]);
  const tcti = `swtpm:host=127.0.0.1,port=${port}`;
  const env = { ...process.env, TPM2TOOLS_TCTI: tcti };
  const t: Swtpm = {
    dir,
    port,
    tcti,
    env,
    ...(ekCaPem ? { ekCaPem } : {}),
    ...(ekRootPem ? { ekRootPem } : {}),
    ...(ekIssuerPem ? { ekIssuerPem } : {}),
    async tpm2(tool, args) {
      const { stdout } = await run(tool, args, { env, encoding: 'buffer', maxBuffer: 16 << 20 });
      return stdout;
    },
    async stop() {
      try {
        const pid = Number(readFileSync(pidFile, 'utf8').trim());
        if (pid > 0) process.kill(pid, 'SIGTERM');
      } catch {
        /* already gone */
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
  // Ready in ~50 ms; poll briefly.
  for (let i = 0; i < 50; i++) {
    try {
      await t.tpm2('tpm2_getrandom', ['--hex', '4']);
      if (o.ekChainInNv && ekIssuerPem) {
        // As a manufacturer would: the EK certificate's issuer, DER, in the TCG chain range.
        const der = join(dir, 'issuer.der');
        execFileSync('openssl', ['x509', '-in', join(dir, 'localca', 'issuercert.pem'), '-outform', 'der', '-out', der]);
        const size = String(readFileSync(der).length + 16); // NV padding, as real TPMs have
        await t.tpm2('tpm2_nvdefine', ['0x01c00100', '-C', 'o', '-s', size, '-a', 'ownerread|ownerwrite|authread|authwrite']);
        await t.tpm2('tpm2_nvwrite', ['0x01c00100', '-C', 'o', '-i', der]);
      }
      return t;
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  await t.stop();
  throw new Error('swtpm did not come up');
}

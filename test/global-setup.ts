/**
 * Before any Node test runs: every system tool the suite drives must be installed. A missing one
 * fails the whole run at once with the Debian package to install — never a silent skip, so a
 * green run always means every test ran (`./test/run-all.sh` installs them on a fresh Debian).
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';

/** command or absolute path → the Debian package that provides it. */
export const REQUIRED_TOOLS: Readonly<Record<string, string>> = {
  'redis-server': 'redis-server',
  'redis-cli': 'redis-tools',
  swtpm: 'swtpm',
  swtpm_setup: 'swtpm-tools',
  swtpm_localca: 'swtpm-tools',
  tpm2_quote: 'tpm2-tools',
  tpm2_checkquote: 'tpm2-tools',
  tpm2_activatecredential: 'tpm2-tools',
  tpm2_eventlog: 'tpm2-tools',
  openssl: 'openssl',
  curl: 'curl',
  dash: 'dash',
  objcopy: 'binutils',
  as: 'binutils',
  ld: 'binutils',
  '/usr/lib/systemd/systemd-measure': 'systemd',
  'systemd-analyze': 'systemd',
  '/usr/lib/systemd/boot/efi/linuxx64.efi.stub': 'systemd-boot-efi',
  pesign: 'pesign',
  osslsigncode: 'osslsigncode',
  'cloud-init': 'cloud-init',
  shellcheck: 'shellcheck',
  kubectl: 'kubernetes-client',
  python3: 'python3',
  // The disk key into LUKS (test/deploy/disk-unlock.test.ts) and the cloud-init run in a private
  // mount namespace (test/deploy/cloud-init-run.test.ts).
  cryptsetup: 'cryptsetup-bin',
  dmsetup: 'dmsetup',
  losetup: 'mount',
  mkswap: 'util-linux',
  blkid: 'util-linux',
  unshare: 'util-linux',
};

function present(tool: string): boolean {
  if (tool.startsWith('/')) return existsSync(tool);
  try {
    execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export default function setup(): void {
  const missing = Object.entries(REQUIRED_TOOLS).filter(([t]) => !present(t));
  if (missing.length) {
    const pkgs = [...new Set(missing.map(([, p]) => p))].join(' ');
    throw new Error(
      `the test suite drives real tools and these are missing: ${missing.map(([t]) => t).join(', ')}.\n` +
        `Install them (./test/run-all.sh does it on Debian): sudo apt-get install -y ${pkgs}`,
    );
  }
}

/**
 * Node-side deployment files: every deploy/cloud-init/*.yaml is valid cloud-config according
 * to Debian's cloud-init (`cloud-init schema --config-file`), carries only the broker URL, the
 * CA pin and the cluster name (plus the constant platform), embeds exactly
 * deploy/systemd/attest-join.service, and its install step writes a working wrapper; the unit
 * passes `systemd-analyze verify`. Tools missing → those checks skip with a message.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';

const has = (cmd: string, args: string[]): boolean => {
  try {
    execFileSync(cmd, args, { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
};
const HAVE_CLOUD_INIT = has('cloud-init', ['--version']);
const HAVE_SYSTEMD_ANALYZE = has('systemd-analyze', ['--version']);
if (!HAVE_CLOUD_INIT) console.warn('cloud-init not installed (Debian package cloud-init): schema checks skipped');
if (!HAVE_SYSTEMD_ANALYZE) console.warn('systemd-analyze not available: unit verification skipped');

const DIR = 'deploy/cloud-init';
const UNIT = readFileSync('deploy/systemd/attest-join.service', 'utf8');
const INSTALL = readFileSync('deploy/node/install-client.sh', 'utf8');
const files = readdirSync(DIR).filter((f) => f.endsWith('.yaml'));

interface CloudConfig {
  write_files: Array<{ path: string; content: string; permissions: string }>;
  runcmd: Array<string[]>;
  packages: string[];
}

describe('cloud-init user-data', () => {
  it('has one file per cloud', () => {
    expect(files.sort()).toEqual(['aws.yaml', 'azure.yaml', 'gcp.yaml', 'generic.yaml']);
  });

  for (const f of files) {
    const path = join(DIR, f);
    const text = readFileSync(path, 'utf8');
    const cc = parse(text) as CloudConfig;

    it(`${f}: cloud-init schema --config-file accepts it`, () => {
      const out = execFileSync('cloud-init', ['schema', '--config-file', path], { encoding: 'utf8' });
      expect(out).toMatch(/Valid cloud-config/);
    });

    it(`${f}: carries only broker URL, CA pin, cluster (and the platform constant)`, () => {
      expect(text.startsWith('#cloud-config\n')).toBe(true);
      const env = cc.write_files.find((w) => w.path === '/etc/attest-broker/join.env')!;
      expect(env.permissions).toBe('0600');
      const kv = Object.fromEntries(env.content.trim().split('\n').map((l) => l.split(/=(.*)/s).slice(0, 2) as [string, string]));
      expect(Object.keys(kv).sort()).toEqual(['ATTEST_BROKER', 'ATTEST_CA_PIN', 'ATTEST_CLIENT', 'ATTEST_CLIENT_SHA256', 'ATTEST_CLUSTER', 'ATTEST_PLATFORM']);
      // The client comes from the broker; its digest may be pinned (empty: the broker's Repr-Digest).
      expect(kv.ATTEST_CLIENT).toBe(f === 'generic.yaml' ? 'attest-join.sh' : 'attest-join.mjs');
      expect(kv.ATTEST_CLIENT_SHA256).toBe('');
      expect(kv.ATTEST_BROKER).toMatch(/^https:\/\//);
      expect(kv.ATTEST_CA_PIN).toMatch(/^sha256:[0-9a-f]{64}$/);
      expect(kv.ATTEST_PLATFORM).toBe(f.replace('.yaml', ''));
      // Nothing secret-looking anywhere in the user-data.
      expect(text).not.toMatch(/token:|password|BEGIN (RSA |EC )?PRIVATE KEY|[a-z0-9]{6}\.[a-z0-9]{16}/);
    });

    it(`${f}: embeds exactly deploy/systemd/attest-join.service`, () => {
      const unit = cc.write_files.find((w) => w.path === '/etc/systemd/system/attest-join.service')!;
      expect(unit.content).toBe(UNIT);
    });

    it(`${f}: installs the client from the broker (embedded deploy/node/install-client.sh), never from a package registry`, () => {
      const inst = cc.write_files.find((w) => w.path === '/usr/local/lib/attest-broker/install-client.sh')!;
      expect(inst.content).toBe(INSTALL);
      expect(inst.permissions).toBe('0755');
      expect(cc.packages.sort()).toEqual(['curl', 'openssl', 'tpm2-tools']);
      expect(text).not.toMatch(/npm|pip install|gem install/);
      expect(cc.runcmd).toEqual([
        ['sh', '/usr/local/lib/attest-broker/install-client.sh'],
        ['systemctl', 'daemon-reload'],
        ['systemctl', 'enable', 'attest-join.service'],
        ['systemctl', 'start', '--no-block', 'attest-join.service'],
      ]);
    });
  }
});

describe('attest-join.service', () => {
  it('runs once, before the kubelet, with the TPM and nothing else', () => {
    expect(UNIT).toMatch(/^Before=kubelet\.service$/m);
    expect(UNIT).toMatch(/^ConditionPathExists=!\/var\/lib\/kubelet\/bootstrap-kubeconfig$/m);
    expect(UNIT).toMatch(/^Type=oneshot$/m);
    expect(UNIT).toMatch(/^RestartPreventExitStatus=2$/m);
    expect(UNIT).toMatch(/^DevicePolicy=closed$/m);
  });

  it('shellcheck accepts install-client.sh and attest-disk-unlock.sh (POSIX sh)', () => {
    execFileSync('shellcheck', ['--shell=sh', '--severity=style', 'deploy/node/install-client.sh', 'deploy/node/attest-disk-unlock.sh'], { encoding: 'utf8' });
  });

  it('systemd-analyze verify accepts attest-disk-unlock.service', () => {
    const dir = mkdtempSync(join(tmpdir(), 'unit-'));
    for (const f of ['attest-join', 'attest-disk-unlock.sh']) {
      writeFileSync(join(dir, f), '#!/bin/sh\n');
      chmodSync(join(dir, f), 0o755);
    }
    const unit = readFileSync('deploy/systemd/attest-disk-unlock.service', 'utf8')
      .replace('/usr/local/bin/attest-join', join(dir, 'attest-join'))
      .replace('/usr/local/lib/attest-broker/attest-disk-unlock.sh', join(dir, 'attest-disk-unlock.sh'));
    writeFileSync(join(dir, 'attest-disk-unlock.service'), unit);
    expect(execFileSync('systemd-analyze', ['verify', join(dir, 'attest-disk-unlock.service')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })).toBe('');
  });

  it('nothing under deploy/ that runs on a node installs from a package registry', () => {
    const hits = execFileSync('sh', ['-c', "grep -rn 'npm install' deploy/ || true"], { encoding: 'utf8' }).trim();
    expect(hits).toBe('');
  });

  it('systemd-analyze verify accepts it', () => {
    // verify insists that ExecStart's binary exists: point it at a stand-in, nothing else changes.
    const dir = mkdtempSync(join(tmpdir(), 'unit-'));
    writeFileSync(join(dir, 'attest-join'), '#!/bin/sh\n');
    chmodSync(join(dir, 'attest-join'), 0o755);
    writeFileSync(join(dir, 'attest-join.service'), UNIT.replace('/usr/local/bin/attest-join', join(dir, 'attest-join')));
    const r = execFileSync('systemd-analyze', ['verify', join(dir, 'attest-join.service')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    expect(r).toBe('');
  });
});

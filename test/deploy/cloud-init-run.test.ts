/**
 * Runs what each deploy/cloud-init/*.yaml tells cloud-init to do, as a fresh node would, against
 * the production broker on this machine:
 * - `write_files` and `runcmd` are taken from the YAML itself (parsed, never retyped). The only
 *   edits are the example values of join.env, which the user-data module replaces the same way:
 *   broker URL, CA pin, cluster name, and the optional client digest or client choice;
 * - everything runs in a private mount namespace (`unshare -m`) with /etc, /var, /usr/local and
 *   /run overlaid, so the absolute paths of the YAML are real and the host is untouched. PATH is
 *   one directory holding only what the distribution provides: sh, coreutils, sed, awk, curl,
 *   openssl, tpm2-tools, and node for the single-file client;
 * - there is no init in the namespace. A `systemctl` stand-in does what systemd would do with the
 *   unit the YAML wrote: `start` runs its ExecStart once, with its EnvironmentFile, expanding
 *   `${VAR}` as systemd does. It runs synchronously, so the test sees the outcome;
 * - the node is swtpm with an EK certificate. The broker is the real one (`startServers`, as
 *   `serve` runs it) over pinned TLS, with `release.tpmSeal: when-available` and a policy that
 *   forbids unsealed release, so every join must come out sealed.
 * The cloud yamls (azure, gcp, aws) install the single-file client the same way; on swtpm their
 * join then stops where their platform's evidence is missing. That evidence gathered against swtpm
 * with each platform's NV layout is not yet in place (docs/join.md).
 */
import { execFile } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import '../../broker/builtins.node.js';
import { serveInProcess, writeConfig } from '../broker/serve-helpers.js';
import type { Served } from '../../broker/commands/serve.node.js';
import { ensureBuilt, ROOT } from '../helpers/cli.js';
import { startSwtpm, type Swtpm } from './swtpm.js';
import { makeTls, type TlsMaterial } from './test-broker.js';

const run = promisify(execFile);

interface CloudConfig {
  write_files: Array<{ path: string; content: string; permissions: string }>;
  runcmd: string[][];
}

/** What a Debian/Ubuntu/AL2023/RHEL node has from its distribution (and node for the .mjs). */
const TOOLS = [
  'sh', 'cat', 'cp', 'mv', 'rm', 'mkdir', 'mktemp', 'chmod', 'date', 'sleep', 'sed', 'awk', 'od', 'dd', 'tr', 'cut', 'grep', 'head', 'tail', 'wc',
  'dirname', 'basename', 'sync', 'env', 'ls', 'curl', 'openssl', 'node',
];

const SYSTEMCTL = `#!/bin/sh
# Test stand-in for systemd's systemctl (no init in the test namespace): daemon-reload and enable
# change nothing here; start runs the unit's ExecStart once, with its EnvironmentFile, expanding
# \${VAR} as systemd does, and waits for it.
set -eu
case $1 in
  daemon-reload|enable) exit 0 ;;
  start)
    shift; [ "$1" = --no-block ] && shift
    unit=/etc/systemd/system/$1
    envf=$(sed -n 's/^EnvironmentFile=//p' "$unit")
    set -a; . "$envf"; set +a
    cmd=$(sed -n 's/^ExecStart=//p' "$unit")
    eval "exec $cmd" ;;
  *) echo "systemctl stand-in: $*: not supported" >&2; exit 1 ;;
esac
`;

const q = (s: string): string => `'${s.replaceAll("'", "'\\''")}'`;

describe('deploy/cloud-init/*.yaml, run as cloud-init runs them (namespace, distribution tools, swtpm, real broker)', () => {
  let tpm: Swtpm;
  let tls: TlsMaterial;
  let dir: string;
  let bin: string;
  let policyFile: string;
  let trust: { rootFile: string; rootSha: string };
  const served: Served[] = [];

  beforeAll(async () => {
    ensureBuilt();
    dir = mkdtempSync(join(tmpdir(), 'ci-run-'));
    [tpm, tls] = await Promise.all([startSwtpm({ ekCert: true, ekChainInNv: true }), Promise.resolve(makeTls('cloud-init'))]);
    bin = join(dir, 'bin');
    mkdirSync(bin);
    const which = async (t: string): Promise<string> => (await run('sh', ['-c', `command -v ${t}`])).stdout.trim();
    for (const t of TOOLS) symlinkSync(await which(t), join(bin, t));
    for (const f of readdirSync('/usr/bin').filter((f) => f.startsWith('tpm2_'))) symlinkSync(join('/usr/bin', f), join(bin, f));
    writeFileSync(join(bin, 'systemctl'), SYSTEMCTL, { mode: 0o755 });
    const rootPem = tpm.ekRootPem!;
    trust = { rootFile: join(dir, 'ek-root.pem'), rootSha: createHash('sha256').update(new X509Certificate(rootPem).raw).digest('hex') };
    writeFileSync(trust.rootFile, rootPem);
    policyFile = join(dir, 'policy.yaml');
    writeFileSync(
      policyFile,
      `apiVersion: attest-broker/v1
kind: JoinPolicy
version: cloud-init-run
defaultCluster: prod
clusters:
  prod:
    providers:
      tpm: {formats: [tpm]}
    tpm:
      akTrust: [ek-credential]
      pinnedAks: any
    platform: {tee: any, debug: any, snpTcb: any, tdx: any}
    identity:
      tpm: any
    boot:
      secureBoot: any
    images: any
    nodeName:
      tpm: {from: tpm-instance-id, prefix: ci-}
    release:
      tokenTtlSeconds: 600
      extraGroups: []
      allowUnsealed: false
      diskKey: false
`,
    );
  }, 120_000);

  afterAll(async () => {
    for (const s of served) await s.close();
    await tpm?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** A broker of its own (one token per instance per window), serving `clientsDir`. */
  async function broker(name: string, clientsDir = join(ROOT, 'dist/clients')): Promise<{ url: string; audit: string; served: Served }> {
    const bdir = join(dir, `broker-${name}`);
    mkdirSync(bdir);
    writeFileSync(join(bdir, 'tls.crt'), tls.leafPem + tls.caPem);
    writeFileSync(join(bdir, 'tls.key'), tls.leafKeyPem);
    const audit = join(bdir, 'audit.jsonl');
    const s = await serveInProcess(
      writeConfig(
        {
          listen: { host: '127.0.0.1', port: 0, tls: { certFile: join(bdir, 'tls.crt'), keyFile: join(bdir, 'tls.key') } },
          trust: { dir: join(bdir, 'trust'), anchors: [{ id: 'swtpm-ek-root', file: trust.rootFile, sha256: trust.rootSha, source: 'test' }] },
          providers: { tpm: { enabled: true, options: { ekRoots: ['swtpm-ek-root'] } } },
          policy: { file: policyFile, watch: false },
          clients: { dir: clientsDir },
          release: { mode: 'dev', tpmSeal: 'when-available', audit: { file: audit } },
          log: { level: 'warn' },
        },
        bdir,
      ),
    );
    served.push(s);
    return { url: s.main.url.replace('localhost', '127.0.0.1'), audit, served: s };
  }

  /**
   * Writes the YAML's files and runs its runcmd in a fresh namespace; returns the exit status,
   * the output, and the files the node ended with.
   */
  async function boot(yaml: string, env: Record<string, string>): Promise<{ code: number; out: string; kubeconfig?: string; installed: boolean }> {
    const cc = parseYaml(readFileSync(join(ROOT, 'deploy/cloud-init', yaml), 'utf8')) as CloudConfig;
    const run1 = mkdtempSync(join(dir, 'boot-'));
    const staged = join(run1, 'files');
    const lines: string[] = ['set -u', `S=${q(run1)}`];
    // Overlays: the YAML's absolute paths are real in here, and nothing reaches the host.
    for (const d of ['/etc', '/var', '/usr/local', '/run']) {
      lines.push(`mkdir -p "$S/ovl${d}/u" "$S/ovl${d}/w"`, `mount -t overlay overlay -o "lowerdir=${d},upperdir=$S/ovl${d}/u,workdir=$S/ovl${d}/w" ${d}`);
    }
    for (const w of cc.write_files) {
      let content = w.content;
      if (w.path === '/etc/attest-broker/join.env') {
        for (const [k, v] of Object.entries(env)) {
          const re = new RegExp(`^${k}=.*$`, 'm');
          content = re.test(content) ? content.replace(re, `${k}=${v}`) : `${content}${k}=${v}\n`;
        }
      }
      const f = join(staged, w.path);
      mkdirSync(dirname(f), { recursive: true });
      writeFileSync(f, content);
      lines.push(`mkdir -p ${q(dirname(w.path))}`, `cp ${q(f)} ${q(w.path)}`, `chmod ${w.permissions} ${q(w.path)}`);
    }
    lines.push('rc=0');
    for (const c of cc.runcmd) lines.push(`env -i PATH=${q(bin)} HOME=/root TPM2TOOLS_TCTI=${q(tpm.env.TPM2TOOLS_TCTI!)} ${c.map(q).join(' ')} || { rc=$?; echo "runcmd failed ($rc): ${c.join(' ').replaceAll('"', '')}" >&2; }`);
    lines.push(
      `[ -f /var/lib/kubelet/bootstrap-kubeconfig ] && cp /var/lib/kubelet/bootstrap-kubeconfig "$S/kubeconfig"`,
      `[ -f /usr/local/bin/attest-join ] && touch "$S/installed"`,
      'exit $rc',
    );
    writeFileSync(join(run1, 'driver.sh'), lines.join('\n') + '\n');
    const r = await run('unshare', ['-m', '--propagation', 'private', 'sh', join(run1, 'driver.sh')], { timeout: 240_000 }).then(
      (x) => ({ code: 0, out: x.stdout + x.stderr }),
      (e: { code?: number; stdout?: string; stderr?: string }) => ({ code: Number(e.code ?? 1), out: (e.stdout ?? '') + (e.stderr ?? '') }),
    );
    return {
      ...r,
      ...(existsSync(join(run1, 'kubeconfig')) ? { kubeconfig: readFileSync(join(run1, 'kubeconfig'), 'utf8') } : {}),
      installed: existsSync(join(run1, 'installed')),
    };
  }

  const sha256Of = (f: string): string => `sha256:${createHash('sha256').update(readFileSync(f)).digest('hex')}`;
  const releases = (audit: string): Array<Record<string, unknown>> =>
    existsSync(audit) ? readFileSync(audit, 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { entry: Record<string, unknown> }).entry).filter((e) => e.type === 'release') : [];

  it('generic.yaml, shell client: fetched from the broker, digest pinned in user-data, joins with a release sealed to the TPM', async () => {
    const b = await broker('generic-sh');
    const r = await boot('generic.yaml', { ATTEST_BROKER: b.url, ATTEST_CA_PIN: tls.pin, ATTEST_CLUSTER: 'prod', ATTEST_CLIENT_SHA256: sha256Of(join(ROOT, 'dist/clients/attest-join.sh')) });
    expect(r.code, r.out).toBe(0);
    expect(r.out).toContain('installed attest-join.sh');
    expect(r.out).toContain('release sealed to this TPM opened');
    expect(r.kubeconfig).toMatch(/token: "?[a-z0-9]{6}\.[a-z0-9]{16}/);
    expect(releases(b.audit)).toEqual([expect.objectContaining({ provider: 'tpm', sealed: 'none', tpmSealed: true })]);
  }, 240_000);

  it('generic.yaml, single-file client (ATTEST_CLIENT=attest-join.mjs), no digest in user-data: the Repr-Digest is checked, the join sealed both ways', async () => {
    const b = await broker('generic-mjs');
    const r = await boot('generic.yaml', { ATTEST_BROKER: b.url, ATTEST_CA_PIN: tls.pin, ATTEST_CLUSTER: 'prod', ATTEST_CLIENT: 'attest-join.mjs' });
    expect(r.code, r.out).toBe(0);
    expect(r.out).toContain('trusted the pinned TLS connection and its Repr-Digest');
    expect(r.kubeconfig).toMatch(/[a-z0-9]{6}\.[a-z0-9]{16}/);
    expect(releases(b.audit)).toEqual([expect.objectContaining({ provider: 'tpm', sealed: 'ECDH-ES+A256KW', tpmSealed: true })]);
  }, 240_000);

  it('a tampered client is refused: nothing is installed, nothing runs, no token is issued', async () => {
    const evil = join(dir, 'evil-clients');
    mkdirSync(evil);
    copyFileSync(join(ROOT, 'dist/clients/attest-join.mjs'), join(evil, 'attest-join.mjs'));
    writeFileSync(join(evil, 'attest-join.sh'), readFileSync(join(ROOT, 'dist/clients/attest-join.sh'), 'utf8').replace('set -eu', 'set -eu\ntouch /tmp/pwned'));
    chmodSync(join(evil, 'attest-join.sh'), 0o755);
    const b = await broker('evil', evil);
    const r = await boot('generic.yaml', { ATTEST_BROKER: b.url, ATTEST_CA_PIN: tls.pin, ATTEST_CLUSTER: 'prod', ATTEST_CLIENT_SHA256: sha256Of(join(ROOT, 'dist/clients/attest-join.sh')) });
    expect(r.code).not.toBe(0);
    expect(r.out).toContain('not installed');
    expect(r.installed).toBe(false);
    expect(r.kubeconfig).toBeUndefined();
    expect(releases(b.audit)).toEqual([]);
  }, 240_000);

  it('a wrong CA pin: nothing is fetched from an unpinned server', async () => {
    const b = await broker('wrong-pin');
    const r = await boot('generic.yaml', { ATTEST_BROKER: b.url, ATTEST_CA_PIN: `sha256:${'0'.repeat(64)}`, ATTEST_CLUSTER: 'prod', ATTEST_INSTALL_DEADLINE: '4' });
    // The installer retries until its deadline (300 s by default, 4 s here); the unit then has no client.
    expect(r.out).toContain('no certificate with the pinned SPKI');
    expect(r.code).not.toBe(0);
    expect(r.installed).toBe(false);
  }, 120_000);

  for (const cloud of ['azure', 'gcp', 'aws'] as const) {
    it(`${cloud}.yaml: installs the single-file client from the broker and starts it for ${cloud} evidence (which swtpm cannot give)`, async () => {
      const b = await broker(`${cloud}-mjs`);
      const r = await boot(`${cloud}.yaml`, { ATTEST_BROKER: b.url, ATTEST_CA_PIN: tls.pin, ATTEST_CLUSTER: 'prod', ATTEST_CLIENT_SHA256: sha256Of(join(ROOT, 'dist/clients/attest-join.mjs')) });
      expect(r.out).toContain('installed attest-join.mjs');
      expect(r.installed).toBe(true);
      expect(r.code).not.toBe(0);
      expect(r.out).toMatch(/attest-join: error JOIN_/);
      expect(r.kubeconfig).toBeUndefined();
    }, 240_000);
  }
});

/**
 * The disk key, from the broker into LUKS, as deploy/systemd/attest-disk-unlock.service runs it:
 * the production broker (release mode dev: its software KMS) admits a swtpm node. The join client
 * asks for the disk key alone (`--disk-key-only`) and writes it to tmpfs (/dev/shm here, /run on a
 * node). Then deploy/node/attest-disk-unlock.sh formats a blank loop device with it on first boot
 * and opens it. At the next boot the client sends the wrapped key back, gets the same key, and it
 * unlocks the volume.
 *
 * Device-mapper: where the kernel lets this process create mappings (dm_mod loaded, privileges),
 * the volume is really opened and closed. Where it does not (containers without dm_mod), the open
 * step fails with cryptsetup's own reason and the key is checked against the LUKS keyslot with
 * `cryptsetup open --test-passphrase`, which needs no device-mapper. The test says which ran.
 * The key must never appear in a file outside tmpfs or in any log: every file the test and the
 * broker wrote, and the captured logs, are searched for it in raw, hex and base64(url) form.
 */
import { execFile, execFileSync } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import '../../broker/builtins.node.js';
import type { Served } from '../../broker/commands/serve.node.js';
import { join as joinNode } from '../../deploy/node/client/join.node.js';
import { createToolRunner } from '../../deploy/node/client/tpm.node.js';
import { serveInProcess, writeConfig } from '../broker/serve-helpers.js';
import { startSwtpm, type Swtpm } from './swtpm.js';
import { makeTls, type TlsMaterial } from './test-broker.js';

const run = promisify(execFile);
const SCRIPT = 'deploy/node/attest-disk-unlock.sh';

const dmWorks = (() => {
  try {
    execFileSync('dmsetup', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

describe('disk key → LUKS (attest-disk-unlock: tmpfs key file, first-boot format, open, same key next boot)', () => {
  let tpm: Swtpm;
  let tls: TlsMaterial;
  let dir: string;
  let shm: string;
  let served: Served & { logs: string[] };
  let url: string;
  let image: string;
  let device: string;
  let loop: string | undefined;
  const logs: string[] = [];
  const keys: Buffer[] = [];
  const mapped = `ab-test-${process.pid}`;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'disk-unlock-'));
    shm = mkdtempSync('/dev/shm/attest-join-');
    [tpm, tls] = await Promise.all([startSwtpm({ ekCert: true, ekChainInNv: true }), Promise.resolve(makeTls('disk'))]);
    const rootFile = join(dir, 'ek-root.pem');
    writeFileSync(rootFile, tpm.ekRootPem!);
    const rootSha = createHash('sha256').update(new X509Certificate(tpm.ekRootPem!).raw).digest('hex');
    writeFileSync(
      join(dir, 'policy.yaml'),
      `apiVersion: attest-broker/v1
kind: JoinPolicy
version: disk-unlock
defaultCluster: prod
clusters:
  prod:
    providers:
      tpm: {formats: [tpm]}
    tpm: {akTrust: [ek-credential], pinnedAks: any}
    platform: {tee: any, debug: any, snpTcb: any, tdx: any}
    identity:
      tpm: any
    boot: {secureBoot: any}
    images: any
    nodeName:
      tpm: {from: tpm-instance-id, prefix: disk-}
    release: {tokenTtlSeconds: 600, extraGroups: [], allowUnsealed: false, diskKey: true}
`,
    );
    writeFileSync(join(dir, 'tls.crt'), tls.leafPem + tls.caPem);
    writeFileSync(join(dir, 'tls.key'), tls.leafKeyPem);
    served = await serveInProcess(
      writeConfig(
        {
          listen: { host: '127.0.0.1', port: 0, tls: { certFile: join(dir, 'tls.crt'), keyFile: join(dir, 'tls.key') } },
          trust: { dir: join(dir, 'trust'), anchors: [{ id: 'swtpm-ek-root', file: rootFile, sha256: rootSha, source: 'test' }] },
          providers: { tpm: { enabled: true, options: { ekRoots: ['swtpm-ek-root'] } } },
          policy: { file: join(dir, 'policy.yaml'), watch: false },
          // tpmSeal: the shell client sends no ephemeral key; its release is sealed to its TPM.
          release: { mode: 'dev', tpmSeal: 'when-available', audit: { file: join(dir, 'audit.jsonl') } },
          log: { level: 'debug' },
        },
        mkdtempSync(join(dir, 'cfg-')),
      ),
    );
    url = served.main.url.replace('localhost', '127.0.0.1');
    image = join(dir, 'state.img');
    execFileSync('truncate', ['-s', '32M', image]);
    try {
      loop = execFileSync('losetup', ['-f', '--show', image], { encoding: 'utf8' }).trim();
    } catch {
      loop = undefined; // no loop devices here: cryptsetup works on the image file itself
    }
    device = loop ?? image;
  }, 120_000);

  afterAll(async () => {
    if (existsSync(`/dev/mapper/${mapped}`)) execFileSync('cryptsetup', ['close', mapped]);
    if (loop) execFileSync('losetup', ['-d', loop]);
    await served?.close();
    await tpm?.stop();
    rmSync(dir, { recursive: true, force: true });
    rmSync(shm, { recursive: true, force: true });
  });

  const keyFile = (): string => join(shm, 'disk.key');
  const wrapped = (): string => join(dir, 'disk.wrapped');
  const boot = () =>
    joinNode({
      broker: url,
      caPin: tls.pin,
      cluster: 'prod',
      platform: 'generic',
      out: join(dir, 'unused-kubeconfig'),
      diskKeyOnly: true,
      diskKeyOut: keyFile(),
      diskKeyWrappedPath: wrapped(),
      deadlineMs: 60_000,
      tools: createToolRunner(tpm.env),
      eventLogPath: '',
      log: (l) => logs.push(l),
    });
  const unlock = (env: Record<string, string>) =>
    run('sh', [SCRIPT], { env: { PATH: process.env.PATH!, ATTEST_DISK_ENV_FILE: '/nonexistent', ATTEST_DISK_DEVICE: device, ATTEST_DISK_NAME: mapped, ATTEST_DISK_KEY: keyFile(), ...env } }).then(
      (r) => ({ code: 0, err: r.stderr }),
      (e: { code?: number; stderr?: string }) => ({ code: Number(e.code ?? 1), err: e.stderr ?? '' }),
    );
  const testKey = (key: Buffer): boolean => {
    const f = join(shm, 'check.key');
    writeFileSync(f, key, { mode: 0o600 });
    try {
      execFileSync('cryptsetup', ['open', '--test-passphrase', '--key-file', f, device], { stdio: 'ignore' });
      return true;
    } catch {
      return false;
    } finally {
      rmSync(f, { force: true });
    }
  };

  it('first boot: the disk key alone (no token), on tmpfs; the blank volume is formatted with it and opened', async () => {
    const r = await boot();
    expect(r.kubeconfigPath).toBeUndefined();
    expect(existsSync(join(dir, 'unused-kubeconfig'))).toBe(false);
    expect(statSync(keyFile()).mode & 0o777).toBe(0o600);
    const key = readFileSync(keyFile());
    expect(key.length).toBe(32);
    keys.push(key);
    const u = await unlock({ ATTEST_DISK_FORMAT: 'first-boot' });
    expect(u.err).toContain('formatting');
    expect(existsSync(keyFile())).toBe(false); // forgotten, opened or not
    expect(execFileSync('cryptsetup', ['isLuks', device]).length).toBe(0);
    if (dmWorks) {
      expect(u.code, u.err).toBe(0);
      expect(existsSync(`/dev/mapper/${mapped}`)).toBe(true);
      execFileSync('cryptsetup', ['close', mapped]);
    } else {
      // This kernel gives no device-mapper to this process: open fails with cryptsetup's reason.
      expect(u.code).toBe(1);
      expect(u.err).toMatch(/device-mapper|dm_mod|cryptsetup open/);
      console.warn('device-mapper unavailable here: the volume was formatted and the key checked with --test-passphrase, not mapped');
    }
    expect(testKey(key)).toBe(true);
    expect(testKey(Buffer.alloc(32, 7))).toBe(false);
  }, 120_000);

  it('next boot: the wrapped key goes back, the same key comes out and unlocks the volume; no second format', async () => {
    expect(keys).toHaveLength(1);
    await boot();
    const key = readFileSync(keyFile());
    expect(key.equals(keys[0]!)).toBe(true);
    const u = await unlock({});
    expect(u.err).not.toContain('formatting');
    if (dmWorks) {
      expect(u.code, u.err).toBe(0);
      execFileSync('cryptsetup', ['close', mapped]);
    }
    expect(existsSync(keyFile())).toBe(false);
    expect(testKey(key)).toBe(true);
  }, 120_000);

  it('the shell client gets the same disk key (--disk-key-only, wrapped form from the earlier boot), sealed to its TPM', async () => {
    const out = join(shm, 'sh.key');
    const r = await run('sh', ['deploy/node/attest-join.sh', '--broker', url, '--ca-pin', tls.pin, '--cluster', 'prod', '--no-event-log', '--deadline', '60',
      '--disk-key-only', '--disk-key-out', out, '--disk-key-wrapped', wrapped()], { env: { ...tpm.env, PATH: process.env.PATH! } }).catch((e: { code?: number; stderr?: string }) => ({ stderr: e.stderr ?? '', code: e.code }));
    expect((r as { code?: number }).code ?? 0, r.stderr).toBe(0);
    expect(r.stderr).toContain('release sealed to this TPM opened');
    expect(statSync(out).mode & 0o777).toBe(0o600);
    expect(readFileSync(out).equals(keys[0]!)).toBe(true);
    rmSync(out);
    // No token in a disk-key-only release, and nothing else written.
    expect(existsSync(join(dir, 'unused-kubeconfig'))).toBe(false);
  }, 120_000);

  it('refuses a key that is not on tmpfs, a device with data on it, and a wrong key; the key file is always removed', async () => {
    // Not on tmpfs.
    const onDisk = join(dir, 'disk.key');
    writeFileSync(onDisk, keys[0]!, { mode: 0o600 });
    const a = await unlock({ ATTEST_DISK_KEY: onDisk });
    expect(a.code).toBe(2);
    expect(a.err).toContain('not tmpfs');
    expect(existsSync(onDisk)).toBe(false);
    // A device that carries data but no LUKS header is never formatted.
    const other = join(dir, 'swap.img');
    execFileSync('truncate', ['-s', '8M', other]);
    execFileSync('mkswap', [other], { stdio: 'ignore' });
    writeFileSync(keyFile(), keys[0]!, { mode: 0o600 });
    const b = await unlock({ ATTEST_DISK_DEVICE: other, ATTEST_DISK_FORMAT: 'first-boot' });
    expect(b.code).toBe(1);
    expect(b.err).toContain('not formatting it');
    expect(execFileSync('blkid', ['-p', '-o', 'value', '-s', 'TYPE', other], { encoding: 'utf8' }).trim()).toBe('swap');
    // A key from another attestation does not open it.
    writeFileSync(keyFile(), Buffer.alloc(32, 9), { mode: 0o600 });
    const c = await unlock({});
    expect(c.code).toBe(1);
    expect(existsSync(keyFile())).toBe(false);
  }, 60_000);

  it('the key never reached a file outside tmpfs, nor a log', () => {
    const key = keys[0]!;
    const forms = [key, Buffer.from(key.toString('hex')), Buffer.from(key.toString('base64')), Buffer.from(key.toString('base64url'))];
    const walk = (d: string): string[] => readdirSync(d, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(join(d, e.name)) : [join(d, e.name)]));
    for (const f of walk(dir)) {
      const bytes = readFileSync(f);
      for (const form of forms) expect(bytes.includes(form), `${f} holds the key`).toBe(false);
    }
    const all = Buffer.from([...logs, ...served.logs].join('\n'));
    for (const form of forms) expect(all.includes(form)).toBe(false);
  });
});

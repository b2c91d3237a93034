/**
 * End to end, real parts only: a node joins a cluster by proving what it booted.
 *
 * - The node: swtpm manufactured by `swtpm_setup --create-ek-cert` under a private test CA
 *   (EK certificate at NV 0x01c00002, its issuer in the TCG chain range 0x01c00100), whose
 *   sha256 PCRs are extended — firmware-style, `tpm2_pcrextend` — with every digest of a REAL
 *   event log (go-tpm-tools `rhel8-uefi.bin`: RHEL 8 on GCE, Secure Boot on), EV_NO_ACTION
 *   skipped (vectors INDEX §2d). The resulting PCRs are checked against upstream's expected
 *   values (`eventlogs.expected.json`), so quote, log and PCRs agree by an independent oracle.
 * - The broker: built exactly as `attest-broker serve` builds it — `loadConfig` on a YAML file
 *   written here, `buildRuntime` (broker/runtime.node.ts) with the registrations of
 *   broker/builtins.node.ts — and served over HTTPS (leaf + CA chain, the CA pinned by the
 *   client). The config names the test EK root as a pinned trust anchor (`trust.anchors`,
 *   file + sha256) and `providers.tpm.ekRoots`; the policy is a real policy file pinning that
 *   boot (PCRs 0–9 and 14 of the sha256 bank, Secure Boot on, AK trusted by EK credential
 *   activation) and deriving the node name from the EK; release is `secret` mode against the
 *   test Kubernetes API server (test/servers/kube-apiserver.ts: Secrets API over TLS).
 *   Once with the memory store, once with a real `redis-server`.
 * - The clients: `join()` (what `attest-broker join` runs) and the `attest-broker join` command
 *   itself, the bundled single-file `attest-join.mjs` on plain node, and the POSIX shell client
 *   in unsealed mode. Each successful client gets a broker of its own: one token per instance
 *   per issuance window is a property of the broker (shown: a second join gets ISSUANCE_CONFLICT).
 *
 * - TLS bootstrap: a broker holding only the shipped RBAC runs its CSR approver; kubectl with
 *   the released bootstrap kubeconfig posts an openssl-made kubelet CSR, gets it approved and
 *   signed for exactly the attested name, authenticates with the certificate as
 *   system:node:<name> (`kubectl auth whoami`), and the token is then retired.
 *
 * What each join must show: a bootstrap kubeconfig (0600) whose token is a `bootstrap-token-<id>`
 * Secret in the API server (read back with `kubectl`), authenticating as that bootstrap token,
 * for the node name the policy derives (`e2e-` + the first 128 bits of the EK's SHA-256). A node
 * whose PCR 7 differs (one more measurement, honestly logged) is refused with a policy code,
 * and no Secret is created.
 */
import '../../broker/builtins.node.js';
import { execFile, execFileSync } from 'node:child_process';
import { createHash, createPublicKey, X509Certificate } from 'node:crypto';
import { createServer } from 'node:https';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join as pjoin } from 'node:path';
import { promisify } from 'node:util';
import { serve, type ServerType } from '@hono/node-server';
import { parse as parseYaml } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBroker } from '../../broker/app.js';
import { buildRuntime, loadConfig, type Runtime } from '../../broker/runtime.node.js';
import { createConsoleLogger } from '../../broker/observability/console-logger.js';
import { AttestError } from '../../providers/common/errors.js';
import { EV, parseEventLog, TPM_ALG } from '../../providers/tpm/eventlog.js';
import { JoinCodes } from '../../deploy/node/client/codes.js';
import { join } from '../../deploy/node/client/join.node.js';
import { createToolRunner } from '../../deploy/node/client/tpm.node.js';
import { extendPcrs, startSwtpm, type Extend, type Swtpm } from '../deploy/swtpm.js';
import { makeTls, type TlsMaterial } from '../deploy/test-broker.js';
import { BIN, ensureBuilt } from '../helpers/cli.js';
import { startRedis, type RedisServer } from '../helpers/redis.js';
import { readVector, readVectorJson } from '../helpers/vectors.js';
import { startKubeServer, type KubeTestServer } from '../servers/kube-apiserver.js';
import { makeTestPki, type TestPki } from '../servers/tls.js';
import { APPROVER_SA, makeCsr, rbacFrom, until, writeKubeconfig } from '../approver/helpers.js';

const execFileP = promisify(execFile);
const LOG = 'go-tpm-tools/eventlogs/rhel8-uefi.bin';
const CLUSTER = 'e2e';
/** A second cluster in the same policy that allows unsealed release (shell client only). */
const CLUSTER_UNSEALED = 'e2e-unsealed';
const PINNED_PCRS = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '14'];
/** Upstream's PCR values for this log (vectors: eventlogs.expected.json, independently re-verified). */
const EXPECTED = (): Record<string, string> =>
  readVectorJson<Record<string, { banks: { sha256: Record<string, string> } }>>('go-tpm-tools/eventlogs.expected.json')['rhel8-uefi.bin']!.banks.sha256;
const HAVE_KUBECTL = existsSync('/usr/bin/kubectl') || existsSync('/usr/local/bin/kubectl');

const BANK_OF: Record<number, 'sha1' | 'sha256' | 'sha384'> = { [TPM_ALG.sha1]: 'sha1', [TPM_ALG.sha256]: 'sha256', [TPM_ALG.sha384]: 'sha384' };

/** The log's measurements in order, EV_NO_ACTION dropped (they are never extended). */
function extendsOf(log: Uint8Array): Extend[] {
  return parseEventLog(log)
    .events.filter((e) => e.eventType !== EV.NO_ACTION)
    .map((e) => ({ pcr: e.pcrIndex, digests: Object.fromEntries([...e.digests].filter(([alg]) => BANK_OF[alg]).map(([alg, d]) => [BANK_OF[alg], d])) }));
}

/**
 * One TCG_PCR_EVENT2 (PFP §10.2.2) to append to the log: EV_EFI_ACTION in PCR 7, the digest of
 * `data` in every bank of the log's Spec ID header, in header order — what a firmware that
 * measured one more thing into PCR 7 would have logged.
 */
function pcr7Event(log: Uint8Array, data: Uint8Array): { record: Uint8Array; extend: Extend } {
  const algs = parseEventLog(log).specId.algorithms;
  const parts: Buffer[] = [];
  const u32 = (n: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(n);
    return b;
  };
  const u16 = (n: number) => {
    const b = Buffer.alloc(2);
    b.writeUInt16LE(n);
    return b;
  };
  const digests: Extend['digests'] = {};
  parts.push(u32(7), u32(EV.EFI_ACTION), u32(algs.length));
  for (const a of algs) {
    const bank = BANK_OF[a.algId];
    if (!bank) throw new Error(`unexpected algorithm 0x${a.algId.toString(16)} in the log header`);
    const d = new Uint8Array(createHash(bank).update(data).digest());
    digests[bank] = d;
    parts.push(u16(a.algId), Buffer.from(d));
  }
  parts.push(u32(data.byteLength), Buffer.from(data));
  return { record: new Uint8Array(Buffer.concat(parts)), extend: { pcr: 7, digests } };
}

interface Pcrs {
  sha256: Record<string, string>;
}

/** The policy file: everything written out (docs/policy.md), the boot pinned exactly. */
function policyYaml(pcrs: Record<string, string>): string {
  const pcrLines = PINNED_PCRS.map((i) => `            "${i}": ["${pcrs[i]}"]`).join('\n');
  const cluster = (name: string, allowUnsealed: boolean) => `  ${name}:
    providers:
      tpm: {formats: [tpm]}
    tpm:
      akTrust: [ek-credential]
      pinnedAks: any
    platform: {tee: any, debug: any, snpTcb: any, tdx: any}
    identity:
      tpm: any
    boot:
      secureBoot: {required: true}
    images:
      - name: rhel8-gce
        measurement: any
        pcrs:
          sha256:
${pcrLines}
        uki: any
        verity: any
        bootApps: any
    nodeName:
      tpm: {from: tpm-instance-id, prefix: e2e-}
    release:
      tokenTtlSeconds: 600
      extraGroups: ["system:bootstrappers:e2e"]
      allowUnsealed: ${allowUnsealed}
      diskKey: false
`;
  return `apiVersion: attest-broker/v1
kind: JoinPolicy
version: "e2e-1"
defaultCluster: ${CLUSTER}
clusters:
${cluster(CLUSTER, false)}${cluster(CLUSTER_UNSEALED, true)}`;
}

const d = describe;

d('e2e: a swtpm node with a real boot log joins through the production broker (policy + secret release)', () => {
  let tpm: Swtpm;
  let tls: TlsMaterial;
  let kubePki: TestPki;
  let kube: KubeTestServer;
  let dir: string;
  let eventLogFile: string;
  let logBytes: Uint8Array;
  let adminKubeconfig: string;
  let nodeName: string;
  const runtimes: Runtime[] = [];
  const servers: ServerType[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(pjoin(tmpdir(), 'e2e-join-'));
    [tpm, tls, kubePki] = await Promise.all([startSwtpm({ ekCert: true, ekChainInNv: true }), Promise.resolve(makeTls('e2e')), Promise.resolve(makeTestPki('e2e-kube-ca'))]);
    kube = await startKubeServer(kubePki);
    // The RBAC we ship; brokers started with the service-account kubeconfig have nothing else.
    kube.loadRbac(rbacFrom('deploy/kubernetes/base/rbac.yaml'));

    // Boot the node: replay the real log into the TPM, as firmware does while logging.
    logBytes = readVector(LOG);
    await extendPcrs(tpm, extendsOf(logBytes));
    eventLogFile = pjoin(dir, 'binary_bios_measurements');
    writeFileSync(eventLogFile, logBytes);

    // The node's EK, as the broker will see it: its identity key names the node.
    await tpm.tpm2('tpm2_createek', ['-c', pjoin(tpm.dir, 'ek.ctx'), '-G', 'rsa', '-f', 'pem', '-u', pjoin(tpm.dir, 'ek.pem')]);
    await tpm.tpm2('tpm2_flushcontext', ['-t']);
    // The node name the policy will derive: `e2e-` + the first 128 bits of SHA-256 of the EK's
    // SubjectPublicKeyInfo (the tpm provider's EK identity) — computed here without the
    // broker's code, from `tpm2_createek -f pem` and node:crypto.
    const spki = createPublicKey(readFileSync(pjoin(tpm.dir, 'ek.pem'))).export({ type: 'spki', format: 'der' });
    nodeName = `e2e-${createHash('sha256').update(spki).digest('hex').slice(0, 32)}`;

    // The broker's view of the cluster: an admin kubeconfig for the Secrets API.
    adminKubeconfig = pjoin(dir, 'admin.kubeconfig');
    writeFileSync(
      adminKubeconfig,
      `apiVersion: v1
kind: Config
clusters:
- name: test
  cluster: {server: "${kube.url}", certificate-authority-data: ${Buffer.from(kubePki.caPem).toString('base64')}}
users:
- name: admin
  user: {token: "${kube.adminToken}"}
contexts:
- name: test
  context: {cluster: test, user: admin}
current-context: test
`,
      { mode: 0o600 },
    );
  }, 60_000);

  afterAll(async () => {
    for (const s of servers) s.close();
    for (const r of runtimes) await r.close();
    await kube?.close();
    await tpm?.stop();
    for (const p of [dir, tls?.dir, kubePki?.dir]) if (p) rmSync(p, { recursive: true, force: true });
  });

  /** The TPM's sha256 PCRs as `tpm2_pcrread` prints them (`  7 : 0x<HEX>`). */
  const readPcrs = async (): Promise<Pcrs> => {
    const out: Record<string, string> = {};
    const text = await tpm.tpm2('tpm2_pcrread', ['sha256']);
    for (const m of text.matchAll(/^\s*(\d+)\s*:\s*0x([0-9A-Fa-f]{64})\s*$/gm)) out[m[1]!] = m[2]!.toLowerCase();
    expect(Object.keys(out)).toHaveLength(24);
    return { sha256: out };
  };

  /** Writes the config + policy and builds the broker the way `attest-broker serve` does. */
  async function startBroker(name: string, storeUrl: string, o: { kubeconfig?: string; releaseExtra?: string; oneCluster?: boolean } = {}): Promise<{ url: string; audit: string; runtime: Runtime }> {
    const bdir = pjoin(dir, name);
    mkdirSync(bdir);
    const rootPem = tpm.ekRootPem!;
    const rootFile = pjoin(bdir, 'ek-root.pem');
    writeFileSync(rootFile, rootPem);
    const rootSha = createHash('sha256').update(new X509Certificate(rootPem).raw).digest('hex');
    // The policy pins the known-good values of this boot (upstream's, not read from this TPM).
    writeFileSync(pjoin(bdir, 'policy.yaml'), policyYaml(EXPECTED()));
    const audit = pjoin(bdir, 'audit.jsonl');
    const clusterCfg = `{apiServer: "${kube.url}", caFile: "${kubePki.caFile}", kube: {kubeconfig: "${o.kubeconfig ?? adminKubeconfig}"}}`;
    writeFileSync(
      pjoin(bdir, 'config.yaml'),
      `apiVersion: attest-broker/v1
listen: {host: 127.0.0.1, port: 0}
store: {url: "${storeUrl}", keyPrefix: "e2e-${name}:"}
trust:
  dir: ${pjoin(bdir, 'trust')}
  anchors:
    - {id: swtpm-e2e-ek-root, file: "${rootFile}", sha256: ${rootSha}, source: test}
providers:
  tpm:
    enabled: true
    options: {ekRoots: [swtpm-e2e-ek-root]}
policy: {file: "${pjoin(bdir, 'policy.yaml')}", watch: true}
release:
  mode: secret
  clusters:
    ${CLUSTER}: ${clusterCfg}
${o.oneCluster ? '' : `    ${CLUSTER_UNSEALED}: ${clusterCfg}\n`}  audit: {file: "${audit}"}
${o.releaseExtra ?? ''}log: {level: error}
`,
    );
    const cfg = await loadConfig({ file: pjoin(bdir, 'config.yaml'), env: {} });
    const rt = await buildRuntime(cfg, { logger: createConsoleLogger('error', {}, () => undefined) });
    runtimes.push(rt);
    const app = createBroker(rt.deps);
    const server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1', createServer, serverOptions: { cert: tls.leafPem + tls.caPem, key: tls.leafKeyPem } });
    servers.push(server);
    await new Promise<void>((r) => (server.listening ? r() : server.once('listening', () => r())));
    return { url: `https://127.0.0.1:${(server.address() as { port: number }).port}`, audit, runtime: rt };
  }

  const outFile = (tag: string): string => pjoin(mkdtempSync(pjoin(dir, `${tag}-`)), 'kubelet', 'bootstrap-kubeconfig');

  /** What every successful join must show, whichever client made it. */
  async function expectJoined(out: string, secretsBefore: number): Promise<string> {
    expect(statSync(out).mode & 0o777).toBe(0o600);
    const kc = parseYaml(readFileSync(out, 'utf8')) as { clusters: { cluster: { server: string } }[]; users: { user: { token: string } }[] };
    expect(kc.clusters[0]!.cluster.server).toBe(kube.url);
    const token = kc.users[0]!.user.token;
    const m = /^([a-z0-9]{6})\.([a-z0-9]{16})$/.exec(token);
    expect(m, 'a kubeadm-format bootstrap token').not.toBeNull();
    const [, id, secret] = m!;
    expect(kube.secrets.size).toBe(secretsBefore + 1);
    const s = kube.secrets.get(`kube-system/bootstrap-token-${id}`);
    expect(s?.type).toBe('bootstrap.kubernetes.io/token');
    const b64 = (k: string) => Buffer.from(s!.data[k] ?? '', 'base64').toString('utf8');
    expect(b64('token-id')).toBe(id);
    expect(b64('token-secret')).toBe(secret);
    expect(b64('usage-bootstrap-authentication')).toBe('true');
    expect(b64('auth-extra-groups')).toContain('system:bootstrappers:e2e');
    if (HAVE_KUBECTL) {
      // Read it back through the Secrets API with kubectl, as an operator would.
      const { stdout } = await execFileP('kubectl', ['--kubeconfig', adminKubeconfig, '-n', 'kube-system', 'get', 'secret', `bootstrap-token-${id}`, '-o', 'json'], { timeout: 30_000 });
      const got = JSON.parse(stdout) as { type: string; data: Record<string, string> };
      expect(got.type).toBe('bootstrap.kubernetes.io/token');
      expect(Buffer.from(got.data['token-secret']!, 'base64').toString()).toBe(secret);
      // And the node's kubeconfig authenticates as that bootstrap token (kubectl version → /version).
      const v = await execFileP('kubectl', ['--kubeconfig', out, 'version', '-o', 'json'], { timeout: 30_000 });
      expect(JSON.parse(v.stdout)).toMatchObject({ serverVersion: { gitVersion: 'v1.32.4-attest-test' } });
    }
    return id!;
  }

  /** The last audit record's entry (hash-chained JSON lines written by release). */
  const lastAudit = (file: string): Record<string, unknown> => {
    const lines = readFileSync(file, 'utf8').trim().split('\n');
    return (JSON.parse(lines.at(-1)!) as { entry: Record<string, unknown> }).entry;
  };

  let memoryBroker: Promise<{ url: string; audit: string; runtime: Runtime }> | undefined;
  const memory = () => (memoryBroker ??= startBroker('memory', 'memory://'));

  it('the TPM holds exactly what the real log says (upstream expected PCRs, every one the policy pins)', async () => {
    const expected = EXPECTED();
    expect(Object.keys(expected).sort()).toEqual([...PINNED_PCRS].sort());
    const got = (await readPcrs()).sha256;
    for (const [i, v] of Object.entries(expected)) expect(got[i], `PCR ${i}`).toBe(v);
  });

  it('memory store: attest-broker join gets a bootstrap kubeconfig whose token is a Secret, named by policy', async () => {
    const b = await memory();
    const out = outFile('mem');
    const before = kube.secrets.size;
    const r = await join({
      broker: b.url,
      caPin: tls.pin,
      cluster: CLUSTER,
      platform: 'generic',
      out,
      deadlineMs: 60_000,
      tools: createToolRunner(tpm.env),
      eventLogPath: eventLogFile,
      log: () => undefined,
    });
    expect(r.nodeName).toBe(nodeName);
    expect(r.attempts).toBeGreaterThanOrEqual(1);
    const id = await expectJoined(out, before);
    const entry = lastAudit(b.audit);
    expect(entry).toMatchObject({ type: 'release', cluster: CLUSTER, provider: 'tpm', nodeName, image: 'rhel8-gce', tokenId: id, sealed: 'ECDH-ES+A256KW' });
    // One token per instance per issuance window: joining again at once gets nothing new.
    const again = await join({
      broker: b.url,
      caPin: tls.pin,
      cluster: CLUSTER,
      platform: 'generic',
      out: outFile('mem-again'),
      deadlineMs: 20_000,
      tools: createToolRunner(tpm.env),
      eventLogPath: eventLogFile,
      log: () => undefined,
    }).catch((x: unknown) => x);
    expect(again).toBeInstanceOf(AttestError);
    expect((again as AttestError).detail?.brokerCode).toBe('ISSUANCE_CONFLICT');
    expect(kube.secrets.size).toBe(before + 1);
  }, 60_000);
  it('Redis store (real redis-server): the `attest-broker join` command joins the same way, state in Redis', async () => {
    let redis: RedisServer | undefined;
    const mine = runtimes.length;
    try {
      redis = await startRedis();
      const b = await startBroker('redis', redis.url);
      const out = outFile('redis');
      const before = kube.secrets.size;
      // This time through the real command line: `attest-broker join` (bin → dist/node.mjs).
      ensureBuilt();
      const { stdout } = await execFileP(
        process.execPath,
        [BIN, 'join', '--broker', b.url, '--ca-pin', tls.pin, '--cluster', CLUSTER, '--platform', 'generic', '--out', out, '--event-log', eventLogFile, '--deadline', '60s'],
        { env: tpm.env, timeout: 60_000 },
      );
      expect(JSON.parse(stdout.trim())).toMatchObject({ ok: true, nodeName, kubeconfigPath: out });
      const id = await expectJoined(out, before);
      expect(lastAudit(b.audit)).toMatchObject({ type: 'release', nodeName, tokenId: id });
      // The broker's state really is in Redis: its audit chain head and token records.
      const keys = execFileSync('redis-cli', ['-p', String(redis.port), '--scan', '--pattern', 'e2e-redis:*'], { encoding: 'utf8' }).trim().split('\n');
      expect(keys.length).toBeGreaterThan(0);
    } finally {
      // The runtime holds the Redis connection: close it before the server goes.
      for (const r of runtimes.splice(mine)) await r.close();
      await redis?.stop();
    }
  }, 60_000);

  it('the bundled single-file client (dist/attest-join.mjs on plain node) joins the same way', async () => {
    // A broker of its own: the memory broker already issued this node its token for the window.
    const b = await startBroker('bundle', 'memory://');
    const bundleDir = pjoin(dir, 'bundle');
    execFileSync(process.execPath, ['scripts/bundle-client.mjs', '--no-sea', '--outdir', bundleDir], { stdio: 'pipe', timeout: 60_000 });
    const out = outFile('bundle');
    const before = kube.secrets.size;
    const { stdout } = await execFileP(
      process.execPath,
      [pjoin(bundleDir, 'attest-join.mjs'), '--broker', b.url, '--ca-pin', tls.pin, '--cluster', CLUSTER, '--platform', 'generic', '--out', out, '--event-log', eventLogFile, '--deadline', '60s'],
      { env: tpm.env, timeout: 60_000 },
    );
    expect(JSON.parse(stdout.trim())).toMatchObject({ ok: true, nodeName, kubeconfigPath: out });
    const id = await expectJoined(out, before);
    expect(lastAudit(b.audit)).toMatchObject({ type: 'release', nodeName, tokenId: id, sealed: 'ECDH-ES+A256KW' });
  }, 60_000);

  const shell = (url: string, cluster: string, out: string): Promise<{ code: number; stderr: string }> =>
    new Promise((resolve) => {
      const args = ['deploy/node/attest-join.sh', '--broker', url, '--ca-pin', tls.pin, '--cluster', cluster, '--out', out, '--deadline', '60', '--event-log', eventLogFile];
      execFile('/bin/sh', args, { env: tpm.env, timeout: 60_000 }, (err, _stdout, stderr) => {
        resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stderr });
      });
    });

  it('release.tpmSeal: the shell client joins the sealed cluster — the release sealed to its TPM (EK + the AK that quoted), opened with tpm2_activatecredential and openssl', async () => {
    const b = await startBroker('tpmseal-sh', 'memory://', { releaseExtra: '  tpmSeal: when-available\n' });
    const out = outFile('sh-tpmseal');
    const before = kube.secrets.size;
    const r = await shell(b.url, CLUSTER, out);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('release sealed to this TPM opened');
    const id = await expectJoined(out, before);
    expect(lastAudit(b.audit)).toMatchObject({ type: 'release', cluster: CLUSTER, nodeName, tokenId: id, sealed: 'none', tpmSealed: true });
  }, 120_000);

  it('release.tpmSeal: the Node client opens both layers (TPM credential outside, its ephemeral key inside)', async () => {
    const b = await startBroker('tpmseal-node', 'memory://', { releaseExtra: '  tpmSeal: require\n' });
    const out = outFile('node-tpmseal');
    const before = kube.secrets.size;
    const r = await join({ broker: b.url, caPin: tls.pin, cluster: CLUSTER, platform: 'generic', out, deadlineMs: 60_000, tools: createToolRunner(tpm.env), eventLogPath: eventLogFile, log: () => undefined });
    expect(r.nodeName).toBe(nodeName);
    const id = await expectJoined(out, before);
    expect(lastAudit(b.audit)).toMatchObject({ type: 'release', nodeName, tokenId: id, sealed: 'ECDH-ES+A256KW', tpmSealed: true });
  }, 120_000);

  it('the shell client joins in unsealed mode where the policy allows it, and is refused where it does not', async () => {
    const b = await startBroker('shell', 'memory://');
    const out = outFile('sh');
    const before = kube.secrets.size;
    const ok = await shell(b.url, CLUSTER_UNSEALED, out);
    expect(ok.code, ok.stderr).toBe(0);
    const id = await expectJoined(out, before);
    expect(lastAudit(b.audit)).toMatchObject({ type: 'release', cluster: CLUSTER_UNSEALED, nodeName, tokenId: id });
    // The production cluster requires sealing: no ephemeral key, no token.
    const out2 = outFile('sh-sealed');
    const no = await shell(b.url, CLUSTER, out2);
    expect(no.code).toBe(1);
    expect(no.stderr).toContain('RELEASE_UNSEALED_FORBIDDEN');
    expect(kube.secrets.size).toBe(before + 1);
    expect(existsSync(out2)).toBe(false);
  }, 60_000);

  it('TLS bootstrap: the kubelet-like client (kubectl + openssl) gets a certificate for exactly its attested name, and the token is spent', async () => {
    // A broker with only the shipped RBAC (service-account token), running its CSR approver.
    const saKubeconfig = writeKubeconfig(dir, 'sa.kubeconfig', kube.url, kubePki.caPem, { token: kube.addToken(APPROVER_SA) });
    const b = await startBroker('tls-bootstrap', 'memory://', {
      kubeconfig: saKubeconfig,
      oneCluster: true, // one release.clusters entry per API server (the approver refuses two)
      releaseExtra: '  approver: {enabled: true, retireTokenAfterSeconds: 2, leaderElection: {namespace: attest-broker, leaseDurationSeconds: 6, renewDeadlineSeconds: 4, retryPeriodSeconds: 1}}\n',
    });
    const approver = b.runtime.startApprover();
    expect(approver).toBeDefined();
    try {
      await until(() => approver!.leading(), (l) => l[CLUSTER] === true, 20_000, 'the approver to lead');
      const out = outFile('tls');
      const kubeletConfigOut = pjoin(out, '..', 'config.d', '50-attest-broker.conf');
      const r = await join({ broker: b.url, caPin: tls.pin, cluster: CLUSTER, platform: 'generic', out, kubeletConfigOut, deadlineMs: 60_000, tools: createToolRunner(tpm.env), eventLogPath: eventLogFile, log: () => undefined });
      expect(r.nodeName).toBe(nodeName);
      expect(parseYaml(readFileSync(kubeletConfigOut, 'utf8'))).toMatchObject({ kind: 'KubeletConfiguration', rotateCertificates: true, serverTLSBootstrap: true });
      const token = (parseYaml(readFileSync(out, 'utf8')) as { users: { user: { token: string } }[] }).users[0]!.user.token;
      const id = token.slice(0, 6);
      const kubectl = (kc: string, ...args: string[]) => execFileP('kubectl', ['--kubeconfig', kc, ...args], { timeout: 30_000 });

      // The kubelet's request, made the way the kubelet makes it (ECDSA P-256, O=system:nodes).
      const csrObj = (name: string, pem: string, signer: string, usages: string[]) =>
        JSON.stringify({ apiVersion: 'certificates.k8s.io/v1', kind: 'CertificateSigningRequest', metadata: { name }, spec: { request: Buffer.from(pem).toString('base64'), signerName: signer, usages } });
      const client = makeCsr({ subject: `/O=system:nodes/CN=system:node:${nodeName}` });
      const f = pjoin(dir, 'client-csr.json');
      writeFileSync(f, csrObj(`node-csr-${id}`, client.csrPem, 'kubernetes.io/kube-apiserver-client-kubelet', ['digital signature', 'client auth']));
      await kubectl(out, 'create', '--validate=false', '-f', f);
      const certB64 = await until(async () => (await kubectl(out, 'get', 'csr', `node-csr-${id}`, '-o', 'jsonpath={.status.certificate}')).stdout.trim(), (c) => c.length > 0, 20_000, 'the signed certificate');
      const cond = JSON.parse((await kubectl(out, 'get', 'csr', `node-csr-${id}`, '-o', 'jsonpath={.status.conditions[0]}')).stdout) as { type: string; reason: string };
      expect(cond).toMatchObject({ type: 'Approved', reason: 'AttestedNodeClient' });

      // The certificate authenticates as the node (kubectl auth whoami → SelfSubjectReview).
      const nodeKc = writeKubeconfig(dir, 'node.kubeconfig', kube.url, kubePki.caPem, { cert: Buffer.from(certB64, 'base64').toString('utf8'), key: client.keyPem });
      const who = JSON.parse((await kubectl(nodeKc, 'auth', 'whoami', '-o', 'json')).stdout) as { status: { userInfo: { username: string; groups: string[] } } };
      expect(who.status.userInfo.username).toBe(`system:node:${nodeName}`);
      expect(who.status.userInfo.groups).toContain('system:nodes');

      // Serving certificate: the tpm provider proves the node name only; an address is refused.
      const serving = makeCsr({ subject: `/O=system:nodes/CN=system:node:${nodeName}`, dns: [nodeName] });
      writeFileSync(f, csrObj(`serving-${id}`, serving.csrPem, 'kubernetes.io/kubelet-serving', ['digital signature', 'server auth']));
      await kubectl(nodeKc, 'create', '--validate=false', '-f', f);
      const withIp = makeCsr({ subject: `/O=system:nodes/CN=system:node:${nodeName}`, dns: [nodeName], ips: ['10.1.2.3'] });
      writeFileSync(f, csrObj(`serving-ip-${id}`, withIp.csrPem, 'kubernetes.io/kubelet-serving', ['digital signature', 'server auth']));
      await kubectl(nodeKc, 'create', '--validate=false', '-f', f);
      const reasonOf = (n: string) => until(async () => (await kubectl(nodeKc, 'get', 'csr', n, '-o', 'jsonpath={.status.conditions[0].reason}')).stdout.trim(), (x) => x.length > 0, 20_000, `a decision on ${n}`);
      expect(await reasonOf(`serving-${id}`)).toBe('AttestedNodeServing');
      expect(await reasonOf(`serving-ip-${id}`)).toBe('AddressNotProven');

      // The token has done its job: retired (Secret deleted), it no longer authenticates.
      await until(() => kube.secrets.has(`kube-system/bootstrap-token-${id}`), (x) => !x, 20_000, 'the Secret to be deleted');
      const after = await kubectl(out, 'version', '-o', 'json').then(() => 'authenticated', (e: { stderr?: string }) => e.stderr ?? '');
      expect(after).toMatch(/Unauthorized|must be logged in/i);
      const entries = readFileSync(b.audit, 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { entry: Record<string, unknown> }).entry);
      expect(entries).toEqual(
        expect.arrayContaining([
          expect.objectContaining({ type: 'release', nodeName, tokenId: id }),
          expect.objectContaining({ type: 'csr', decision: 'approve', reason: 'AttestedNodeClient', nodeName, tokenId: id, csr: `node-csr-${id}` }),
          expect.objectContaining({ type: 'csr', decision: 'deny', reason: 'AddressNotProven', nodeName, csr: `serving-ip-${id}` }),
          expect.objectContaining({ type: 'token-retired', tokenId: id }),
        ]),
      );
    } finally {
      await approver!.stop();
    }
  }, 120_000);

  it('the log is load-bearing: a log that does not replay to the quote is refused, and so is a node that sends none', async () => {
    const b = await memory();
    const before = kube.secrets.size;
    const attempt = (eventLogPath: string): Promise<AttestError> =>
      join({
        broker: b.url,
        caPin: tls.pin,
        cluster: CLUSTER,
        platform: 'generic',
        out: outFile('log'),
        deadlineMs: 30_000,
        tools: createToolRunner(tpm.env),
        eventLogPath,
        log: () => undefined,
      }).then(
        () => {
          throw new Error('joined, but must have been refused');
        },
        (x: unknown) => x as AttestError,
      );
    // One more PCR 7 event in the log that the TPM never saw: the replay cannot match the quote.
    const forged = pjoin(dir, 'forged_bios_measurements');
    writeFileSync(forged, Buffer.concat([logBytes, pcr7Event(logBytes, new TextEncoder().encode('never measured')).record]));
    const e1 = await attempt(forged);
    expect(e1).toBeInstanceOf(AttestError);
    expect(e1.code).toBe(JoinCodes.REJECTED);
    expect(e1.detail?.brokerCode).toBe('EVENTLOG_REPLAY_MISMATCH');
    // No log: the quote alone still matches every pinned PCR, but nothing establishes Secure Boot.
    const e2 = await attempt('');
    expect(e2.detail?.brokerCode).toBe('POLICY_DENIED');
    expect(JSON.stringify(lastAudit(b.audit))).toContain('POLICY_SECURE_BOOT_OFF');
    expect(kube.secrets.size).toBe(before);
  }, 60_000);

  // Last: it changes the TPM's PCR 7 for good.
  it('a node whose PCR 7 differs (one more, honestly logged, measurement) is refused with a policy code and gets nothing', async () => {
    const b = await memory();
    const extra = pcr7Event(logBytes, new TextEncoder().encode('attest-broker e2e: a different Secure Boot state'));
    await extendPcrs(tpm, [extra.extend]);
    const changedLog = pjoin(dir, 'changed_bios_measurements');
    writeFileSync(changedLog, Buffer.concat([logBytes, extra.record]));
    expect((await readPcrs()).sha256['7']).not.toBe(EXPECTED()['7']);
    const out = outFile('pcr7');
    const before = kube.secrets.size;
    const auditBefore = existsSync(b.audit) ? readFileSync(b.audit, 'utf8') : '';
    const e = await join({
      broker: b.url,
      caPin: tls.pin,
      cluster: CLUSTER,
      platform: 'generic',
      out,
      deadlineMs: 60_000,
      tools: createToolRunner(tpm.env),
      eventLogPath: changedLog,
      log: () => undefined,
    }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(AttestError);
    expect((e as AttestError).code).toBe(JoinCodes.REJECTED);
    // The node learns only the coarse code; the audit log has the reason.
    expect((e as AttestError).detail?.brokerCode).toBe('POLICY_DENIED');
    expect(existsSync(out)).toBe(false);
    expect(kube.secrets.size).toBe(before);
    const deny = lastAudit(b.audit);
    expect(readFileSync(b.audit, 'utf8').length).toBeGreaterThan(auditBefore.length);
    expect(JSON.stringify(deny)).toContain('POLICY_PCR_MISMATCH');
    expect(JSON.stringify(deny)).toContain('images.rhel8-gce.pcrs.sha256.7');
  }, 60_000);
});

/**
 * `--gpu-evidence-cmd` (deploy/node/client/gpu.node.ts, deploy/node/attest-join.sh): both join
 * clients against the real broker over HTTPS with the NVIDIA device verifier enabled.
 *
 * The broker is `createBroker` with the real `tpm` provider (EK certificate chain to the swtpm's
 * test root, two-step credential activation), the real policy engine (a `gpus` rule requiring
 * exactly one Hopper GPU), the real release service and the production `nvidiaDeviceVerifier`.
 * The node is swtpm manufactured with an EK certificate.
 *
 * Simulated link, said plainly: no GPU. The gatherer the clients run is a test script standing in
 * for nvtrust: it takes a real H100 report (nvtrust's 550.90.07 sample), writes the nonce it was
 * given into the GET_MEASUREMENTS request and signs request ‖ response with the leaf key of a
 * throw-away NVIDIA-shaped device PKI (test/nvidia/testpki.ts), whose root the broker's trust
 * store holds under the NVIDIA Device Identity CA pin id. Everything the broker does with the
 * evidence is the production path; RIMs are not consulted (`measurements: 'report'`, no RIM
 * source), so the policy asks for `ccMode: any`.
 *
 * Shown: a gatherer that uses the nonce it was given admits the node (and is run again for the
 * second challenge of credential activation, with that challenge's binding); one that ignores it
 * (another nonce, or the captured real report with its own) is refused by the broker with
 * NVIDIA_NONCE_MISMATCH; one that exits 1, prints garbage, too much, JSON that is not an array,
 * entries without the two members, or outlives the deadline makes the client fail with
 * JOIN_GPU_EVIDENCE_FAILED (exit 1) before any attest request reaches the broker.
 */
import { execFile, execFileSync } from 'node:child_process';
import { createServer } from 'node:https';
import { createHash, X509Certificate } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join as pjoin } from 'node:path';
import { serve, type ServerType } from '@hono/node-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import '../../broker/builtins.js';
import { createBroker } from '../../broker/app.js';
import { systemClock } from '../../broker/contracts.js';
import { BrokerReleaseService } from '../../broker/release/service.js';
import { MemoryStore } from '../../broker/store/memory.js';
import { createConsoleLogger } from '../../broker/observability/console-logger.js';
import { createPolicyEngine, loadPolicyText } from '../../broker/policy/index.js';
import { anchorFromBytes, createTrustStore } from '../../providers/common/trust.js';
import { fingerprint } from '../../providers/common/x509.js';
import { PinIds } from '../../providers/common/pins.js';
import { toHex } from '../../providers/common/encoding.js';
import { AttestError } from '../../providers/common/errors.js';
import { memoryActivations } from '../helpers/activations.js';
import { createTpmProvider } from '../../providers/tpm/provider.js';
import { nvidiaDeviceVerifier } from '../../providers/nvidia/index.js';
import { parseAttestationReport } from '../../providers/nvidia/parse.js';
import { join } from '../../deploy/node/client/join.node.js';
import { createToolRunner } from '../../deploy/node/client/tpm.node.js';
import { checkGpuEvidence, GPU_EVIDENCE_MAX_BYTES, GPU_EVIDENCE_MAX_DEPTH, GPU_EVIDENCE_MAX_ENTRIES } from '../../deploy/node/client/gpu.node.js';
import { readVectorText } from '../helpers/vectors.js';
import { entryFor, offlineFetch, PRE230, reportBytes, SAMPLES } from '../nvidia/fixtures.js';
import { makeNvPki } from '../nvidia/testpki.js';
import { HAVE_SWTPM, startSwtpm, type Swtpm } from './swtpm.js';
import { makeTls, type TlsMaterial } from './test-broker.js';

const POLICY = `apiVersion: attest-broker/v1
kind: JoinPolicy
version: gpu-join
defaultCluster: gpu-pool
clusters:
  gpu-pool:
    providers:
      tpm: {formats: [tpm]}
    tpm: {akTrust: [ek-credential], pinnedAks: any}
    platform: {tee: any, debug: any, snpTcb: any, tdx: any}
    identity:
      tpm: any
    boot: {secureBoot: any}
    images: any
    gpus: {count: {min: 1, max: 1}, arch: [hopper], ccMode: any, ppcie: any, minDriverVersion: any, minVbiosVersion: any, boardIds: any}
    nodeName:
      tpm: {from: tpm-instance-id, prefix: gpu-}
    release: {tokenTtlSeconds: 600, extraGroups: [], allowUnsealed: true, diskKey: false}
    explain: true
`;

type Mode = 'good' | 'other-nonce' | 'real-report' | 'exit-1' | 'garbage' | 'too-much' | 'not-array' | 'no-members' | 'hang';

/** The stand-in for nvtrust (module doc): CommonJS, run by this test's node, one mode each. */
const GATHERER = `
const { appendFileSync, readFileSync } = require('node:fs');
const { randomBytes, sign } = require('node:crypto');
const cfg = JSON.parse(readFileSync(__dirname + '/gatherer.json', 'utf8'));
const nonce = process.argv[2];
appendFileSync(__dirname + '/calls.jsonl', JSON.stringify({ argv: process.argv.slice(2), env: process.env.ATTEST_GPU_NONCE ?? null }) + '\\n');
process.stderr.write('test gatherer: asked for nonce ' + nonce + '\\n');
function evidenceFor(hex) {
  const r = Buffer.from(cfg.reportHex, 'hex');
  Buffer.from(hex, 'hex').copy(r, 4);
  const signed = r.subarray(0, r.length - 96);
  const sig = sign('sha384', signed, { key: cfg.keyPem, dsaEncoding: 'ieee-p1363' });
  return [{ arch: 'HOPPER', nonce: hex, evidence: Buffer.concat([signed, sig]).toString('base64'), certificate: Buffer.from(cfg.chainPem).toString('base64') }];
}
const out = (s) => process.stdout.write(s);
switch (cfg.mode) {
  case 'good': out(JSON.stringify(evidenceFor(nonce), null, 2) + '\\n'); break;
  case 'other-nonce': out(JSON.stringify(evidenceFor(randomBytes(32).toString('hex')))); break;
  case 'real-report': out(JSON.stringify([cfg.realEntry])); break;
  case 'exit-1': process.stderr.write('test gatherer: no GPU found\\n'); process.exit(1); break;
  case 'garbage': out('Attestation complete\\n' + JSON.stringify(evidenceFor(nonce))); break;
  case 'too-much': out('[' + JSON.stringify({ evidence: 'A'.repeat(cfg.max), certificate: '' }) + ']'); break;
  case 'not-array': out(JSON.stringify(evidenceFor(nonce)[0])); break;
  case 'no-members': out(JSON.stringify([{ arch: 'HOPPER', nonce }])); break;
  case 'hang': setTimeout(() => out('[]'), 600000); break;
}
`;

interface Broker {
  url: string;
  /** attest requests that reached the broker, and their `devices` member. */
  attests: Array<{ devices?: Array<{ kind: string; evidence: unknown }> }>;
  issued: string[];
}

const d = HAVE_SWTPM ? describe : describe.skip;
/** What the brokers logged at level error (shown when a join fails unexpectedly). */
const brokerErrors: string[] = [];

d('--gpu-evidence-cmd: both clients ↔ real broker with the NVIDIA verifier (swtpm, test GPU PKI, HTTPS)', () => {
  let tpm: Swtpm;
  let tls: TlsMaterial;
  let work: string;
  const servers: ServerType[] = [];
  let trust: ReturnType<typeof createTrustStore>;
  let gathererCfg: Record<string, unknown>;

  beforeAll(async () => {
    tpm = await startSwtpm({ ekCert: true, ekChainInNv: true });
    tls = makeTls('gpu');
    work = mkdtempSync(pjoin(tmpdir(), 'gpu-join-'));
    const base = reportBytes(readVectorText(`${SAMPLES}/hopperAttestationReport.txt`));
    const pki = await makeNvPki({ fwid: parseAttestationReport(base).info.fwid! });
    const ekRoot = new Uint8Array(new X509Certificate(tpm.ekRootPem!).raw);
    const ekAnchor = await anchorFromBytes({ id: 'swtpm-test-ek-root', sha256: createHash('sha256').update(ekRoot).digest('hex'), source: 'test' }, ekRoot);
    trust = createTrustStore([ekAnchor, { id: PinIds.NVIDIA_DEVICE_IDENTITY_CA, sha256: await fingerprint(pki.root), source: 'test GPU PKI', cert: pki.root }]);
    const pre230Nonce = '4cff7f5380ead8fad8ec2c531c110aca4302a88f603792801a8ca29ee151af2e';
    gathererCfg = {
      reportHex: toHex(base),
      keyPem: await pki.leafKeyPem(),
      chainPem: pki.chainPem,
      realEntry: entryFor(`${PRE230}/attestationReport.txt`, `${PRE230}/gpuAkCertChain.txt`, pre230Nonce),
      max: GPU_EVIDENCE_MAX_BYTES,
    };
  }, 60_000);
  afterAll(async () => {
    for (const s of servers) s.close();
    await tpm?.stop();
    if (tls) rmSync(tls.dir, { recursive: true, force: true });
    if (work) rmSync(work, { recursive: true, force: true });
  });

  /** A fresh broker per join (the release service issues one token per instance per window). */
  async function startBroker(): Promise<Broker> {
    const store = new MemoryStore();
    const issued: string[] = [];
    const attests: Broker['attests'] = [];
    const app = createBroker({
      store,
      providers: [createTpmProvider({ ekRoots: ['swtpm-test-ek-root'], activations: memoryActivations() })],
      trust,
      logger: createConsoleLogger('error', {}, (l) => brokerErrors.push(l)),
      policy: createPolicyEngine(await loadPolicyText(POLICY, new Date()), { clock: systemClock }),
      release: new BrokerReleaseService({
        store,
        clock: systemClock,
        logger: createConsoleLogger('error', {}, () => undefined),
        audit: { record: async (r) => void (typeof r.tokenId === 'string' && issued.push(r.tokenId + '.')) },
        clusters: { '*': { apiServer: 'https://127.0.0.1:6443' } },
      }),
      devices: { 'nvidia-gpu': nvidiaDeviceVerifier({ measurements: 'report', ocsp: { mode: 'off' }, rims: { service: 'off' } }, { fetch: offlineFetch }) },
    });
    const fetch = async (req: Request): Promise<Response> => {
      if (req.method === 'POST' && new URL(req.url).pathname === '/v1/attest') attests.push((await req.clone().json()) as Broker['attests'][number]);
      return app.fetch(req);
    };
    const server = serve({ fetch, port: 0, hostname: '127.0.0.1', createServer, serverOptions: { cert: tls.leafPem + tls.caPem, key: tls.leafKeyPem } });
    servers.push(server);
    await new Promise<void>((r) => (server.listening ? r() : server.once('listening', () => r())));
    return { url: `https://127.0.0.1:${(server.address() as { port: number }).port}`, attests, issued };
  }

  /** A gatherer in a directory of its own: the script, its configuration, its call log. */
  function gatherer(mode: Mode): { path: string; calls: () => Array<{ argv: string[]; env: string | null }> } {
    const dir = mkdtempSync(pjoin(work, `g-${mode}-`));
    const path = pjoin(dir, 'gpu-evidence');
    writeFileSync(pjoin(dir, 'gatherer.json'), JSON.stringify({ ...gathererCfg, mode }));
    writeFileSync(path, `#!${process.execPath}\n${GATHERER}`);
    chmodSync(path, 0o755);
    const log = pjoin(dir, 'calls.jsonl');
    return {
      path,
      calls: () => (existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { argv: string[]; env: string | null }) : []),
    };
  }

  const nodeJoin = async (b: Broker, cmd: string, deadlineMs = 120_000): Promise<{ code?: string; brokerCode?: string; out: string; logs: string[] }> => {
    const out = pjoin(mkdtempSync(pjoin(work, 'node-')), 'bootstrap-kubeconfig');
    const logs: string[] = [];
    try {
      await join({
        broker: b.url,
        caPin: tls.pin,
        cluster: 'gpu-pool',
        platform: 'generic',
        out,
        deadlineMs,
        gpuEvidenceCmd: cmd,
        tools: createToolRunner(tpm.env),
        eventLogPath: '', // the tpm provider refuses event logs until replay is wired (docs/tpm.md)
        log: (m) => logs.push(m),
      });
      return { out, logs };
    } catch (e) {
      if (!(e instanceof AttestError)) throw e;
      return { code: e.code, brokerCode: e.detail?.brokerCode as string | undefined, out, logs };
    }
  };

  const shellJoin = (b: Broker, cmd: string, deadline = 60, viaEnv = false): Promise<{ status: number; stderr: string; out: string }> => {
    const out = pjoin(mkdtempSync(pjoin(work, 'sh-')), 'bootstrap-kubeconfig');
    const args = ['deploy/node/attest-join.sh', '--broker', b.url, '--ca-pin', tls.pin, '--cluster', 'gpu-pool', '--platform', 'generic', '--out', out, '--deadline', String(deadline), '--no-event-log'];
    const env = { ...tpm.env, ...(viaEnv ? { ATTEST_GPU_EVIDENCE_CMD: cmd } : {}) };
    if (!viaEnv) args.push('--gpu-evidence-cmd', cmd);
    return new Promise((resolve) => {
      execFile('/bin/sh', args, { env, timeout: 120_000 }, (err, _stdout, stderr) => {
        resolve({ status: err ? Number((err as { code?: number }).code ?? 1) : 0, stderr, out });
      });
    });
  };

  /** Each GPU evidence attached is the gatherer's own, for the nonce it was given. */
  function expectAttached(b: Broker, calls: Array<{ argv: string[]; env: string | null }>): void {
    // Credential activation: two attest requests, the gatherer run once for each binding.
    expect(b.attests).toHaveLength(2);
    expect(calls).toHaveLength(2);
    for (const [i, a] of b.attests.entries()) {
      const c = calls[i]!;
      expect(c.argv).toHaveLength(1);
      expect(c.argv[0]).toMatch(/^[0-9a-f]{64}$/);
      expect(c.env).toBe(c.argv[0]);
      expect(a.devices).toHaveLength(1);
      expect(a.devices![0]!.kind).toBe('nvidia-gpu');
      const ev = a.devices![0]!.evidence as Array<{ nonce: string; evidence: string }>;
      expect(ev).toHaveLength(1);
      expect(ev[0]!.nonce).toBe(c.argv[0]);
      expect(Buffer.from(ev[0]!.evidence, 'base64').subarray(4, 36).toString('hex')).toBe(c.argv[0]);
    }
    expect(calls[0]!.argv[0]).not.toBe(calls[1]!.argv[0]);
  }

  it('Node client: evidence made for the binding it was given admits the node (one GPU required); run once per challenge', async () => {
    const b = await startBroker();
    const g = gatherer('good');
    const r = await nodeJoin(b, g.path);
    expect(r.code, [...r.logs, ...brokerErrors].join('\n')).toBeUndefined();
    expect(b.issued).toHaveLength(1);
    expect(readFileSync(r.out, 'utf8')).toContain(b.issued[0]!);
    expectAttached(b, g.calls());
    expect(r.logs.some((l) => l.startsWith('gpu evidence command: test gatherer: asked for nonce '))).toBe(true);
  }, 120_000);

  it('shell client: the same, with ATTEST_GPU_EVIDENCE_CMD', async () => {
    const b = await startBroker();
    const g = gatherer('good');
    const r = await shellJoin(b, g.path, 60, true);
    expect(r.status, [r.stderr, ...brokerErrors].join('\n')).toBe(0);
    expect(b.issued).toHaveLength(1);
    expect(readFileSync(r.out, 'utf8')).toContain(b.issued[0]!);
    expectAttached(b, g.calls());
    expect(r.stderr).toContain('test gatherer: asked for nonce ');
  }, 120_000);

  it.each([['other-nonce'], ['real-report']] as const)('a gatherer that ignores the nonce (%s): refused by the broker with NVIDIA_NONCE_MISMATCH, both clients', async (mode) => {
    const b1 = await startBroker();
    const n = await nodeJoin(b1, gatherer(mode).path);
    expect(n.code).toBe('JOIN_REJECTED');
    expect(n.brokerCode).toBe('NVIDIA_NONCE_MISMATCH');
    expect(b1.issued).toHaveLength(0);
    const b2 = await startBroker();
    const s = await shellJoin(b2, gatherer(mode).path);
    expect(s.status).toBe(1);
    expect(s.stderr).toMatch(/JOIN_REJECTED.*NVIDIA_NONCE_MISMATCH/);
    expect(b2.issued).toHaveLength(0);
    // Both got as far as the broker: the evidence was sent and judged there.
    expect(b1.attests.at(-1)?.devices).toHaveLength(1);
    expect(b2.attests.at(-1)?.devices).toHaveLength(1);
  }, 180_000);

  it.each([
    ['exit-1', /exited with status 1/],
    ['garbage', /not JSON/],
    ['too-much', new RegExp(`more than ${GPU_EVIDENCE_MAX_BYTES} bytes`)],
    ['not-array', /not an array/],
    ['no-members', /lacks string "evidence" and "certificate"/],
  ] as const)('a gatherer that fails (%s): JOIN_GPU_EVIDENCE_FAILED, exit 1, no attest request sent, both clients', async (mode, why) => {
    const b = await startBroker();
    const n = await nodeJoin(b, gatherer(mode).path);
    expect(n.code).toBe('JOIN_GPU_EVIDENCE_FAILED');
    const s = await shellJoin(b, gatherer(mode).path);
    expect(s.status, s.stderr).toBe(1);
    expect(s.stderr).toContain('JOIN_GPU_EVIDENCE_FAILED');
    expect(s.stderr).toMatch(why);
    expect(b.attests).toHaveLength(0);
    expect(existsSync(n.out) || existsSync(s.out)).toBe(false);
  }, 120_000);

  it('a gatherer that outlives the deadline is killed: JOIN_GPU_EVIDENCE_FAILED, nothing sent, both clients', async () => {
    const b = await startBroker();
    const t0 = Date.now();
    const n = await nodeJoin(b, gatherer('hang').path, 8_000);
    expect(n.code).toBe('JOIN_GPU_EVIDENCE_FAILED');
    const s = await shellJoin(b, gatherer('hang').path, 8);
    expect(s.status, s.stderr).toBe(1);
    expect(s.stderr).toMatch(/JOIN_GPU_EVIDENCE_FAILED.*deadline/);
    expect(Date.now() - t0).toBeLessThan(40_000);
    expect(b.attests).toHaveLength(0);
  }, 60_000);

  it('a command that is not there, or not absolute: refused before the broker is asked anything', async () => {
    const b = await startBroker();
    const missing = pjoin(work, 'no-such-gatherer');
    const n = await nodeJoin(b, missing);
    expect(n.code).toBe('JOIN_GPU_EVIDENCE_FAILED');
    const s = await shellJoin(b, missing);
    expect(s.status).toBe(1);
    expect(s.stderr).toMatch(/JOIN_GPU_EVIDENCE_FAILED: --gpu-evidence-cmd .* is not an executable file/);
    expect((await nodeJoin(b, 'nvattest')).code).toBe('JOIN_USAGE');
    expect((await shellJoin(b, 'nvattest')).status).toBe(2);
    expect(b.attests).toHaveLength(0);
  }, 60_000);
});

/**
 * The two clients' checks of the gatherer's stdout on the same inputs: the TypeScript client's
 * `checkGpuEvidence`, and the shell client's `gpu_json_check` (its awk JSON reader) taken from
 * deploy/node/attest-join.sh as it stands and run by dash.
 */
describe('the stdout check: the same verdict in both clients', () => {
  const script = readFileSync('deploy/node/attest-join.sh', 'utf8');
  const fn = /^gpu_json_check\(\) \{\n[\s\S]*?\n\}\n/m.exec(script)?.[0];
  const dir = mkdtempSync(pjoin(tmpdir(), 'gpu-check-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const shell = (text: string): string => {
    writeFileSync(pjoin(dir, 'in.json'), text);
    const prog = `GPU_MAX_ENTRIES=${GPU_EVIDENCE_MAX_ENTRIES}\nGPU_MAX_DEPTH=${GPU_EVIDENCE_MAX_DEPTH}\n${fn}\ngpu_json_check "$1"\n`;
    return execFileSync('/bin/sh', ['-c', prog, 'sh', pjoin(dir, 'in.json')], { encoding: 'utf8' }).trim();
  };
  const node = (text: string): string => {
    try {
      return `ok ${checkGpuEvidence(new TextEncoder().encode(text)).length}`;
    } catch (e) {
      return (e as AttestError).code;
    }
  };
  const entry = '{"evidence":"AAAA","certificate":"QkJC"}';
  const cases: Array<[string, string, boolean]> = [
    ['one entry', `[${entry}]`, true],
    ['whitespace, other members, nesting, numbers, escapes', ` \n[ {"arch":"HOPPER","x":[1,-2.5e+3,true,false,null,{"y":"a\\"\\u00e9"}],"evidence":"A","certificate":"B"} ,\r\n\t${entry} ]\n`, true],
    ['a member name written with escapes', '[{"evid\\u0065nce":"A","certificate":"B"}]', true],
    [`${GPU_EVIDENCE_MAX_ENTRIES} entries`, `[${Array(GPU_EVIDENCE_MAX_ENTRIES).fill(entry).join(',')}]`, true],
    [`nested ${GPU_EVIDENCE_MAX_DEPTH} deep`, `[{"evidence":"A","certificate":"B","x":${'['.repeat(GPU_EVIDENCE_MAX_DEPTH - 2)}${']'.repeat(GPU_EVIDENCE_MAX_DEPTH - 2)}}]`, true],
    ['a long string', `[{"evidence":"${'A'.repeat(200_000)}","certificate":"B"}]`, true],
    ['nothing', '', false],
    ['empty array', '[]', false],
    ['an object', entry, false],
    ['a string', '"[]"', false],
    ['a log line first', `attestation ok\n[${entry}]`, false],
    ['two values', `[${entry}] [${entry}]`, false],
    ['truncated', `[${entry}`, false],
    ['trailing comma', `[${entry},]`, false],
    ['a number entry', '[1]', false],
    ['evidence not a string', '[{"evidence":1,"certificate":"B"}]', false],
    ['certificate missing', '[{"evidence":"A"}]', false],
    ['the last of a repeated member counts', '[{"evidence":"A","certificate":"B","evidence":null}]', false],
    ['a bad escape', '[{"evidence":"A\\q","certificate":"B"}]', false],
    ['a tab inside a string', '[{"evidence":"A\tB","certificate":"B"}]', false],
    ['a leading zero', '[{"evidence":"A","certificate":"B","n":01}]', false],
    ['single quotes', "[{'evidence':'A','certificate':'B'}]", false],
    [`${GPU_EVIDENCE_MAX_ENTRIES + 1} entries`, `[${Array(GPU_EVIDENCE_MAX_ENTRIES + 1).fill(entry).join(',')}]`, false],
    [`nested ${GPU_EVIDENCE_MAX_DEPTH + 1} deep`, `[{"evidence":"A","certificate":"B","x":${'['.repeat(GPU_EVIDENCE_MAX_DEPTH - 1)}${']'.repeat(GPU_EVIDENCE_MAX_DEPTH - 1)}}]`, false],
  ];
  it.each(cases)('%s', (_what, text, ok) => {
    expect(fn).toBeDefined();
    const n = node(text);
    const s = shell(text);
    if (ok) {
      expect(n).toMatch(/^ok \d+$/);
      expect(s).toBe(n);
    } else {
      expect(n).toBe('JOIN_GPU_EVIDENCE_FAILED');
      expect(s).not.toMatch(/^ok/);
    }
  });

  it('non-ASCII bytes are refused by the TypeScript check (the shell refuses them before its JSON reader: tr)', () => {
    expect(node('[{"evidence":"é","certificate":"B"}]')).toBe('JOIN_GPU_EVIDENCE_FAILED');
    expect(node(`[{"evidence":"${'A'.repeat(GPU_EVIDENCE_MAX_BYTES)}","certificate":"B"}]`)).toBe('JOIN_GPU_EVIDENCE_FAILED');
  });
});

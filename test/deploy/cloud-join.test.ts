/**
 * Whole joins with cloud evidence, both clients, against the real broker app (broker/app.ts
 * `createBroker`) with the production gcp, azure and aws providers and the real release service,
 * over pinned HTTPS, on swtpm laid out like each cloud's vTPM (test/deploy/cloud-layouts.ts):
 * challenge for the platform's provider → evidence gathered with the broker's binding →
 * verification → policy → release → bootstrap kubeconfig written.
 *
 * Both clients seal, so the cluster need not allow unsealed release: the Node client to its
 * ephemeral P-256 key (A256GCM), the shell to a fresh RSA-2048 key per attempt (RSA-OAEP-256 with
 * A128CBC-HS256, opened with the openssl command line) — cloud evidence has no EK to seal to.
 *
 * Simulated links are those of gather-both.test.ts (Google's AK CA, AMD's VCEK signature, the
 * Nitro hypervisor's signature); here the stand-in `nitro-tpm-attest` asks a local signer for a
 * document carrying the nonce file's bytes, as the hypervisor would, and the aws broker verifies
 * at the test PKI's time (its certificates are valid around that fixed time; tokens are issued on
 * the real clock).
 */
import { execFile } from 'node:child_process';
import { createServer as createHttpsServer } from 'node:https';
import { createServer, type Server } from 'node:http';
import { chmodSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join as pjoin } from 'node:path';
import { promisify } from 'node:util';
import { serve, type ServerType } from '@hono/node-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import '../../broker/builtins.js';
import { createBroker } from '../../broker/app.js';
import { systemClock, type Clock, type Decision, type PolicyEngine } from '../../broker/contracts.js';
import { PROVIDER_FACTORIES } from '../../broker/providers.js';
import { BrokerReleaseService } from '../../broker/release/service.js';
import { MemoryStore } from '../../broker/store/memory.js';
import { createConsoleLogger } from '../../broker/observability/console-logger.js';
import { join as nodeJoin, type JoinOptions } from '../../deploy/node/client/join.node.js';
import { createPrimaryFromTemplate } from '../../deploy/node/client/evidence.node.js';
import { createToolRunner, openTpmSession } from '../../deploy/node/client/tpm.node.js';
import { createTrustStore } from '../../providers/common/trust.js';
import { AwsKmsKeyService } from '../../providers/aws/kms.js';
import type { KeyService } from '../../broker/contracts.js';
import { startAwsKmsServer } from '../servers/aws-kms.js';
import { KMSClient } from '@aws-sdk/client-kms';
import type { Claims, ProviderName, TrustStore } from '../../providers/common/types.js';
import { NOW, baseFields, indefinitePayload, makePki, signDocument } from '../aws/testpki.js';
import { GCE_ECC_AK_TEMPLATE, layOutAzureSnp, layOutGce } from './cloud-layouts.js';
import { startSwtpm, type Swtpm } from './swtpm.js';
import { makeTls, type TlsMaterial } from './test-broker.js';

const run = promisify(execFile);
const SCRIPT = 'deploy/node/attest-join.sh';

/** Admits any verified node of `provider` with a proven instance id; names it after it. */
function policy(provider: ProviderName, allowUnsealed: boolean, diskKey = false): PolicyEngine {
  return {
    current: () => ({ hash: '00'.repeat(32) }),
    async evaluate(claims: Claims, cluster?: string): Promise<Decision> {
      const ok = claims.provider === provider && claims.identity.proven.includes('instanceId');
      return {
        allow: ok,
        ...(ok ? {} : { denyCode: 'POLICY_PROVIDER_NOT_ALLOWED' }),
        nodeName: `node-${claims.identity.instanceId.toLowerCase().replace(/[^a-z0-9]/g, '').slice(0, 12)}`,
        cluster: cluster ?? 'c1',
        policyHash: '00'.repeat(32),
        rules: [],
        release: { tokenTtlSeconds: 900, extraGroups: [], allowUnsealed, diskKey },
      };
    },
  };
}

interface Broker {
  url: string;
  seen: Array<{ provider: string; format: string }>;
}

let tls: TlsMaterial;
const servers: ServerType[] = [];
beforeAll(() => {
  tls = makeTls('cloud-join');
});
afterAll(() => {
  for (const s of servers) s.close();
});

async function startBroker(provider: ProviderName, trust: TrustStore, allowUnsealed: boolean, clock: Clock = systemClock, keys?: KeyService, tamper?: (body: string) => string): Promise<Broker> {
  const store = new MemoryStore();
  const seen: Broker['seen'] = [];
  const logger = createConsoleLogger('error', {}, () => undefined);
  const app = createBroker({
    store,
    providers: [PROVIDER_FACTORIES[provider]!({}, { store })],
    trust,
    clock,
    logger,
    policy: {
      ...policy(provider, allowUnsealed, keys !== undefined),
      evaluate: async (c, cl) => {
        seen.push({ provider: c.provider, format: c.format });
        return policy(provider, allowUnsealed, keys !== undefined).evaluate(c, cl);
      },
    },
    // Tokens are issued on the real clock (the verifier's clock may be pinned).
    release: new BrokerReleaseService({
      store,
      clock: systemClock,
      logger,
      audit: { record: async () => undefined },
      clusters: { '*': { apiServer: 'https://127.0.0.1:6443' } },
      ...(keys ? { keys } : {}),
    }),
  });
  // `tamper`: a man in the middle rewriting the attest answer (the pinned TLS is the test's own).
  const fetchFn = async (req: Request, env: unknown): Promise<Response> => {
    const res = await app.fetch(req, env);
    if (!tamper || new URL(req.url).pathname !== '/v1/attest' || res.status !== 200) return res;
    return new Response(tamper(await res.text()), { status: 200, headers: res.headers });
  };
  const server = serve({ fetch: fetchFn, port: 0, hostname: '127.0.0.1', createServer: createHttpsServer, serverOptions: { cert: tls.leafPem + tls.caPem, key: tls.leafKeyPem } });
  servers.push(server);
  await new Promise<void>((r) => (server.listening ? r() : server.once('listening', () => r())));
  return { url: `https://127.0.0.1:${(server.address() as { port: number }).port}`, seen };
}

const outFile = (): string => pjoin(mkdtempSync(pjoin(tmpdir(), 'cloud-join-')), 'kubelet', 'bootstrap-kubeconfig');

async function shellJoin(tpm: Swtpm, b: Broker, platform: string, env: NodeJS.ProcessEnv = {}, args: string[] = []): Promise<{ code: number; stderr: string; out: string }> {
  const out = outFile();
  try {
    const r = await run('dash', [SCRIPT, '--broker', b.url, '--ca-pin', tls.pin, '--cluster', 'c1', '--out', out, '--deadline', '60', '--no-event-log', '--platform', platform, ...args], {
      env: { ...tpm.env, ...env },
      timeout: 90_000,
    });
    return { code: 0, stderr: r.stderr, out };
  } catch (e) {
    const x = e as { code: number; stderr: string };
    return { code: x.code, stderr: x.stderr, out };
  }
}

function nodeJoinOpts(tpm: Swtpm, b: Broker, platform: JoinOptions['platform'], o: Partial<JoinOptions> = {}): JoinOptions {
  return { broker: b.url, caPin: tls.pin, cluster: 'c1', platform, out: outFile(), deadlineMs: 90_000, tools: createToolRunner(tpm.env), eventLogPath: '', log: () => undefined, ...o };
}

async function httpServer(handle: (body: Buffer, url: string) => Promise<Buffer>): Promise<{ base: string; server: Server }> {
  const server = createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (c: Buffer) => parts.push(c));
    req.on('end', () => {
      handle(Buffer.concat(parts), req.url ?? '').then(
        (b) => res.writeHead(200).end(b),
        () => res.writeHead(500).end(),
      );
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { base: `http://127.0.0.1:${(server.address() as { port: number }).port}`, server };
}

describe('gcp: both clients join through the production gcp provider', () => {
  let tpm: Swtpm;
  let trust: TrustStore;
  beforeAll(async () => {
    tpm = await startSwtpm({ banks: 'sha1,sha256' });
    ({ trust } = await layOutGce(tpm, async () => {
      const s = await openTpmSession(createToolRunner(tpm.env));
      try {
        await createPrimaryFromTemplate(s, GCE_ECC_AK_TEMPLATE, 'e', 'probe-ak');
        await run('tpm2_readpublic', ['-c', s.file('probe-ak.ctx'), '-f', 'pem', '-o', s.file('ak.pem')], { env: tpm.env });
        return readFileSync(s.file('ak.pem'), 'utf8');
      } finally {
        await s.close();
      }
    }));
  }, 60_000);
  afterAll(async () => tpm?.stop());

  it('Node (sealed to its ephemeral key) and shell (sealed to its RSA key) join where unsealed release is not allowed', async () => {
    const sealed = await startBroker('gcp', trust, false);
    const n = nodeJoinOpts(tpm, sealed, 'gcp');
    const r = await nodeJoin(n);
    expect(r.platform).toBe('gcp');
    expect(readFileSync(n.out, 'utf8')).toContain('token:');
    // A second broker: one node holds one live token per broker (ISSUANCE_CONFLICT otherwise).
    const sealed2 = await startBroker('gcp', trust, false);
    const s = await shellJoin(tpm, sealed2, 'gcp');
    expect(s.code, s.stderr).toBe(0);
    expect(readFileSync(s.out, 'utf8')).toContain('token:');
    expect(s.stderr).toContain("release sealed to this attempt's key opened");
    expect(s.stderr).not.toContain('unsealed');
    expect([...sealed.seen, ...sealed2.seen]).toEqual([
      { provider: 'gcp', format: 'gotpm' },
      { provider: 'gcp', format: 'gotpm' },
    ]);
  });

  it('the shell refuses a sealed release with one ciphertext bit flipped, and one answered unsealed, writing nothing', async () => {
    const flip = (body: string): string => {
      const { release } = JSON.parse(body) as { release: string };
      const parts = release.split('.');
      const ct = Buffer.from(parts[3]!, 'base64url');
      ct[0]! ^= 1;
      parts[3] = ct.toString('base64url');
      return JSON.stringify({ release: parts.join('.') });
    };
    const s = await shellJoin(tpm, await startBroker('gcp', trust, false, systemClock, undefined, flip), 'gcp');
    expect(s.code).toBe(1);
    expect(s.stderr).toContain("JOIN_RELEASE_INVALID: the sealed release's tag does not verify");
    expect(existsSync(s.out)).toBe(false);
    // A stripped seal: the answer carries a release object in the clear.
    const strip = (): string => JSON.stringify({ release: { nodeName: 'evil', expiresAt: new Date(Date.now() + 600_000).toISOString(), bootstrapToken: 'abcdef.0123456789abcdef', kubeconfig: 'x' } });
    const u = await shellJoin(tpm, await startBroker('gcp', trust, true, systemClock, undefined, strip), 'gcp');
    expect(u.code).toBe(1);
    expect(u.stderr).toContain('JOIN_RELEASE_INVALID: the broker answered unsealed although this node sent a key to seal to');
    expect(existsSync(u.out)).toBe(false);
  });
  it('--key-in-tpm: the shell seals to an RSA key made in the TPM (tpm2_rsadecrypt unwraps) and joins; a flipped bit in the wrapped key or the ciphertext is refused, writing nothing', async () => {
    // The broker computes the thumbprint of the JWK the shell built from the TPM key's public
    // half and seals to it: the join opens only if the TPM holds the matching private key.
    const s = await shellJoin(tpm, await startBroker('gcp', trust, false), 'gcp', {}, ['--key-in-tpm']);
    expect(s.code, s.stderr).toBe(0);
    expect(readFileSync(s.out, 'utf8')).toContain('token:');
    expect(s.stderr).toContain("release sealed to this attempt's TPM-resident key opened");
    // Nothing of the key is left loaded in the TPM.
    expect(await tpm.tpm2('tpm2_getcap', ['handles-transient'])).not.toMatch(/0x80/);
    const flipPart = (i: number) => (body: string): string => {
      const { release } = JSON.parse(body) as { release: string };
      const parts = release.split('.');
      const b = Buffer.from(parts[i]!, 'base64url');
      b[b.length >> 1]! ^= 1;
      parts[i] = b.toString('base64url');
      return JSON.stringify({ release: parts.join('.') });
    };
    // (This attempt asks for the TPM key through the environment: its refusal names the TPM key.)
    const k = await shellJoin(tpm, await startBroker('gcp', trust, false, systemClock, undefined, flipPart(1)), 'gcp', { ATTEST_KEY_IN_TPM: '1' });
    expect(k.code).toBe(1);
    expect(k.stderr).toContain("JOIN_RELEASE_INVALID: this attempt's TPM key cannot unwrap the content key");
    expect(existsSync(k.out)).toBe(false);
    const c = await shellJoin(tpm, await startBroker('gcp', trust, false, systemClock, undefined, flipPart(3)), 'gcp', {}, ['--key-in-tpm']);
    expect(c.code).toBe(1);
    expect(c.stderr).toContain("JOIN_RELEASE_INVALID: the sealed release's tag does not verify");
    expect(existsSync(c.out)).toBe(false);
  });
});

describe('azure: both clients join through the production azure provider (az-snp-vtpm)', () => {
  let tpm: Swtpm;
  let lay: Awaited<ReturnType<typeof layOutAzureSnp>>;
  let imds: { base: string; server: Server };
  beforeAll(async () => {
    tpm = await startSwtpm();
    lay = await layOutAzureSnp(tpm);
    imds = await httpServer(async () => Buffer.from(JSON.stringify({ vcekCert: lay.vcekPem, certificateChain: lay.chainPem, tcbm: 'DB18000000000004' })));
  }, 60_000);
  afterAll(async () => {
    imds?.server.close();
    await tpm?.stop();
  });

  it('Node and shell, both sealed, join as the VM the HCL report names', async () => {
    const sealed = await startBroker('azure', lay.trust, false);
    const n = nodeJoinOpts(tpm, sealed, 'azure', { imdsBase: imds.base });
    const r = await nodeJoin(n);
    expect(r.nodeName).toBe(`node-${lay.vmUniqueId.toLowerCase().replace(/-/g, '').slice(0, 12)}`);
    const sealed2 = await startBroker('azure', lay.trust, false);
    const s = await shellJoin(tpm, sealed2, 'azure', { ATTEST_IMDS: imds.base });
    expect(s.code, s.stderr).toBe(0);
    expect(readFileSync(s.out, 'utf8')).toContain('token:');
    expect(s.stderr).toContain("release sealed to this attempt's key opened");
    expect([...sealed.seen, ...sealed2.seen]).toEqual([
      { provider: 'azure', format: 'az-snp-vtpm' },
      { provider: 'azure', format: 'az-snp-vtpm' },
    ]);
  });
});

describe('aws: both clients join through the production aws provider (nitrotpm)', () => {
  let tpm: Swtpm;
  let signer: { base: string; server: Server };
  let trust: TrustStore;
  let tool: string;
  const clock: Clock = { now: () => new Date(NOW) };
  beforeAll(async () => {
    tpm = await startSwtpm();
    const pki = await makePki();
    trust = createTrustStore([...pki.trust.anchors(pki.trust.ids())]);
    // The stand-in hypervisor: signs a NitroTPM document for the nonce (and public key) it is sent.
    signer = await httpServer(async (nonce, url) => {
      if (nonce.length !== 32) throw new Error('nonce must be 32 bytes');
      const pk = new URL(url, 'http://x').searchParams.get('pk');
      const over = pk ? { public_key: new Uint8Array(Buffer.from(pk, 'hex')) } : {};
      return Buffer.from(await signDocument(indefinitePayload(baseFields(pki, over, new Uint8Array(nonce))), pki.leafKeys));
    });
    const dir = mkdtempSync(pjoin(tmpdir(), 'nitro-'));
    tool = pjoin(dir, 'nitro-tpm-attest');
    // As AWS's tool: --nonce FILE [--public-key FILE] (raw bytes, SPKI DER).
    writeFileSync(
      tool,
      `#!/bin/sh\n[ "$1" = --nonce ] || exit 2\npk=\n[ "$#" = 4 ] && [ "$3" = --public-key ] && pk=$(od -An -v -tx1 "$4" | tr -d ' \\n')\nexec curl -sS --fail --noproxy '*' --data-binary @"$2" '${signer.base}/attest?pk='"$pk"\n`,
    );
    chmodSync(tool, 0o755);
  }, 60_000);
  afterAll(async () => {
    signer?.server.close();
    await tpm?.stop();
  });

  it('Node and shell, both sealed, join as the instance the chain names', async () => {
    const sealed = await startBroker('aws', trust, false, clock);
    const n = nodeJoinOpts(tpm, sealed, 'aws', { nitroTpmAttest: tool });
    expect((await nodeJoin(n)).nodeName).toBe('node-i0123456789a');
    const sealed2 = await startBroker('aws', trust, false, clock);
    const s = await shellJoin(tpm, sealed2, 'aws', { ATTEST_NITRO_TPM_ATTEST: tool });
    expect(s.code, s.stderr).toBe(0);
    expect(readFileSync(s.out, 'utf8')).toContain('token:');
    expect(s.stderr).toContain("release sealed to this attempt's key opened");
    expect([...sealed.seen, ...sealed2.seen]).toEqual([
      { provider: 'aws', format: 'nitrotpm' },
      { provider: 'aws', format: 'nitrotpm' },
    ]);
  });

  it('disk key in the KMS Recipient form: each client sends a fresh RSA key in the document and opens CiphertextForRecipient; the same key again from the other client’s wrapped form', async () => {
    const kms = await startAwsKmsServer();
    try {
      const keys = new AwsKmsKeyService({
        keyId: kms.keyArn,
        client: new KMSClient({ region: kms.region, endpoint: kms.url, credentials: { accessKeyId: kms.accessKeyId, secretAccessKey: kms.secretAccessKey }, maxAttempts: 1 }),
      });
      const b = await startBroker('aws', trust, true, clock, keys);
      const dir = mkdtempSync(pjoin(tmpdir(), 'disk-'));
      const n = nodeJoinOpts(tpm, b, 'aws', { nitroTpmAttest: tool, diskKeyOut: pjoin(dir, 'node.key'), diskKeyWrappedPath: pjoin(dir, 'disk.wrapped') });
      await nodeJoin(n);
      const key = readFileSync(pjoin(dir, 'node.key'));
      expect(key).toHaveLength(32);
      // KMS was asked for the Recipient form: the broker never had the plaintext key.
      expect(kms.calls.filter((c) => c.op === 'GenerateDataKey').map((c) => (c.body.Recipient as { KeyEncryptionAlgorithm: string }).KeyEncryptionAlgorithm)).toEqual(['RSAES_OAEP_SHA_256']);
      const s = await shellJoin(tpm, b, 'aws', { ATTEST_NITRO_TPM_ATTEST: tool }, ['--disk-key-only', '--disk-key-out', pjoin(dir, 'shell.key'), '--disk-key-wrapped', pjoin(dir, 'disk.wrapped')]);
      expect(s.code, s.stderr).toBe(0);
      expect(readFileSync(pjoin(dir, 'shell.key')).equals(key)).toBe(true);
      expect(kms.calls.filter((c) => c.op === 'Decrypt').map((c) => (c.body.Recipient as { KeyEncryptionAlgorithm: string }).KeyEncryptionAlgorithm)).toEqual(['RSAES_OAEP_SHA_256']);
      // And back: the Node client opens the key KMS re-encrypted to its own fresh key.
      await nodeJoin({ ...n, diskKeyOnly: true, diskKeyOut: pjoin(dir, 'node2.key') });
      expect(readFileSync(pjoin(dir, 'node2.key')).equals(key)).toBe(true);
    } finally {
      await kms.close();
    }
  }, 150_000);

  it('--key-in-tpm: the shell’s KMS recipient key is made in the TPM; the TPM unwraps CiphertextForRecipient (the same disk key both boots); a flipped encrypted key, a trailing byte or a cut CMS is refused', async () => {
    const kms = await startAwsKmsServer();
    try {
      const keys = new AwsKmsKeyService({
        keyId: kms.keyArn,
        client: new KMSClient({ region: kms.region, endpoint: kms.url, credentials: { accessKeyId: kms.accessKeyId, secretAccessKey: kms.secretAccessKey }, maxAttempts: 1 }),
      });
      const dir = mkdtempSync(pjoin(tmpdir(), 'disk-tpm-'));
      const b = await startBroker('aws', trust, true, clock, keys);
      const s = await shellJoin(tpm, b, 'aws', { ATTEST_NITRO_TPM_ATTEST: tool }, ['--key-in-tpm', '--disk-key-only', '--disk-key-out', pjoin(dir, 'a.key'), '--disk-key-wrapped', pjoin(dir, 'disk.wrapped')]);
      expect(s.code, s.stderr).toBe(0);
      const key = readFileSync(pjoin(dir, 'a.key'));
      expect(key).toHaveLength(32);
      // Next boot: KMS re-encrypts the stored key to a new TPM key of that attempt.
      const s2 = await shellJoin(tpm, b, 'aws', { ATTEST_NITRO_TPM_ATTEST: tool }, ['--key-in-tpm', '--disk-key-only', '--disk-key-out', pjoin(dir, 'b.key'), '--disk-key-wrapped', pjoin(dir, 'disk.wrapped')]);
      expect(s2.code, s2.stderr).toBe(0);
      expect(readFileSync(pjoin(dir, 'b.key')).equals(key)).toBe(true);
      expect(await tpm.tpm2('tpm2_getcap', ['handles-transient'])).not.toMatch(/0x80/);
      // KMS's answer altered on the way (a KeyService that passes everything else through).
      const altered = (mutate: (c: Buffer) => Buffer): KeyService =>
        ({
          wrap: (k: Uint8Array, c: Readonly<Record<string, string>>) => keys.wrap(k, c),
          unwrap: (w: Uint8Array, c: Readonly<Record<string, string>>) => keys.unwrap(w, c),
          generateForRecipient: async (c: Readonly<Record<string, string>>, d: Uint8Array) => {
            const r = await keys.generateForRecipient(c, d);
            return { ...r, ciphertextForRecipient: new Uint8Array(mutate(Buffer.from(r.ciphertextForRecipient))) };
          },
          unwrapForRecipient: async (w: Uint8Array, c: Readonly<Record<string, string>>, d: Uint8Array) => new Uint8Array(mutate(Buffer.from(await keys.unwrapForRecipient(w, c, d)))),
        }) as unknown as KeyService;
      const flipEk = (c: Buffer): Buffer => {
        const at = c.indexOf(Buffer.from('04820100', 'hex'));
        const x = Buffer.from(c);
        x[at + 4 + 100]! ^= 1;
        return x;
      };
      for (const [mutate, why] of [
        [flipEk, "does not open with this node's TPM recipient key"],
        [(c: Buffer) => Buffer.concat([c, Buffer.of(0)]), 'the KMS Recipient disk key is not'],
        [(c: Buffer) => c.subarray(0, c.length - 10), 'is not DER'],
      ] as const) {
        const bb = await startBroker('aws', trust, true, clock, altered(mutate));
        const out = pjoin(dir, 'x.key');
        const r = await shellJoin(tpm, bb, 'aws', { ATTEST_NITRO_TPM_ATTEST: tool }, ['--key-in-tpm', '--disk-key-only', '--disk-key-out', out]);
        expect(r.code, `${why}: ${r.stderr}`).toBe(1);
        expect(r.stderr).toContain('JOIN_RELEASE_INVALID');
        expect(r.stderr).toContain(why);
        expect(r.stderr).not.toContain('diskKey'); // refused in the Recipient form, not another
        expect(existsSync(out)).toBe(false);
      }
      // A wrapped key over the shell's 8,192-character bound (6,200 bytes = 8,267 base64url
      // characters): refused before anything is opened. The bound is checked by the shell's ${#}, not
      // by a grep {1,8192}, which cost ~8 s of CPU per check.
      const big = await startBroker('aws', trust, true, clock, {
        wrap: (k: Uint8Array, c: Readonly<Record<string, string>>) => keys.wrap(k, c),
        unwrap: (w: Uint8Array, c: Readonly<Record<string, string>>) => keys.unwrap(w, c),
        generateForRecipient: async (c: Readonly<Record<string, string>>, d: Uint8Array) => ({ ...(await keys.generateForRecipient(c, d)), wrapped: new Uint8Array(6200).fill(7) }),
        unwrapForRecipient: (w: Uint8Array, c: Readonly<Record<string, string>>, d: Uint8Array) => keys.unwrapForRecipient(w, c, d),
      } as unknown as KeyService);
      const out = pjoin(dir, 'big.key');
      const r = await shellJoin(tpm, big, 'aws', { ATTEST_NITRO_TPM_ATTEST: tool }, ['--key-in-tpm', '--disk-key-only', '--disk-key-out', out]);
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toContain('JOIN_RELEASE_INVALID: diskKeyForRecipient is not base64url');
      expect(existsSync(out)).toBe(false);
    } finally {
      await kms.close();
    }
  }, 240_000);
});

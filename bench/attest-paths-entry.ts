/**
 * In-process half of `node bench/attest-paths.mjs` (issue 17's per-path ratios). The driver
 * bundles this file with esbuild into .cache/bench/ (dependencies external) and starts it as an
 * IPC child in one of three roles:
 *
 * - `server` (pinned to one core by the driver): the four evidence paths on real vectors with a
 *   pinned clock; answers `floor` (the path's node:crypto signature floor), `provider` (the
 *   broker's own provider, from PROVIDER_FACTORIES), `seed` (challenges through the store API) and
 *   `cpu` (this process's CPU time, so the driver can count requests per server CPU-second); and
 *   serves two HTTP apps on loopback: the real broker (createBroker: MemoryStore, pino, prom
 *   metrics, the real policy engine on a captured policy, a release stand-in) and an empty Hono
 *   POST handler that only reads the body.
 * - `burst` (all cores): 5,000 simultaneous azure verifications in process, first cold (a fresh
 *   process, nothing verified yet) then warm, with the single-core azure floor timed around them.
 * - `cluster` (all cores): the broker as `listen.workers: 2` runs it — the broker's own
 *   checkWorkers/workerCount/runPrimary (node:cluster, one port), a RedisStore shared by the
 *   workers, clusterMetrics, the broker's listen() with the configured server limits — with the
 *   azure path, and 2 × N challenges pre-seeded in Redis for a cold and a warm HTTP burst.
 *
 * Rate limits are off everywhere (limit 0): one load generator replays one node's evidence from
 * one address, which the default per-address and per-identity limits exist to refuse. This
 * measures verification throughput; the limits are a deployment setting.
 */
import cluster from 'node:cluster';
import { X509Certificate, createPublicKey, verify as nodeVerify, type JsonWebKey as NodeJwk, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { PerformanceObserver } from 'node:perf_hooks';
import { serve } from '@hono/node-server';
import { Hono } from 'hono';
import { decode as cborDecode, encode as cborEncode } from 'cborg';
import '../broker/builtins.js';
import { PROVIDER_FACTORIES } from '../broker/providers.js';
import { createBroker } from '../broker/app.js';
import { MemoryStore } from '../broker/store/memory.js';
import { RedisStore } from '../broker/store/redis.node.js';
import { createPinoLogger } from '../broker/observability/pino.node.js';
import { createPromMetrics } from '../broker/observability/metrics.node.js';
import { capturePolicyDocument, createPolicyEngine, loadPolicyText } from '../broker/policy/index.js';
import type { Clock, PolicyEngine, ReleaseService, StateStore } from '../broker/contracts.js';
import { parseConfig, type BrokerConfig } from '../broker/config/schema.js';
import { applyWorkerCryptoMode, checkWorkers, clusterMetrics, runPrimary, workerCount } from '../broker/cluster.node.js';
import { listen, nodePeer } from '../broker/server.node.js';
import { BUILTIN_PINS, PinIds } from '../providers/common/pins.js';
import { anchorFromBytes, createTrustStore } from '../providers/common/trust.js';
import { fromHex, toBase64, toBase64Url, toHex } from '../providers/common/encoding.js';
import type { Provider, TrustStore, VerifyContext } from '../providers/common/types.js';
import { attest, pcrDigest, softwareAk, tpm2bPublic } from '../test/tpm/build.js';

export const PATH_NAMES = ['tpm', 'gcp', 'azure', 'aws'] as const;
export type PathName = (typeof PATH_NAMES)[number];

/** Every vector is valid at this instant (the NitroTPM leaf only lives 10:12–13:12Z that day). */
const NOW = new Date('2026-02-03T11:00:00Z');
const clock: Clock = { now: () => NOW };

const VECTORS = process.env.ATTEST_VECTORS ?? join(import.meta.dirname, '../../test/vectors');
const bytes = (rel: string): Uint8Array => new Uint8Array(readFileSync(join(VECTORS, rel)));
const text = (rel: string): string => readFileSync(join(VECTORS, rel), 'utf8');

// ───────────────────────────── the evidence paths ─────────────────────────────

interface EvidencePath {
  name: PathName;
  /** The broker's own provider for this path (PROVIDER_FACTORIES). */
  provider: Provider;
  format: string;
  evidence: Record<string, unknown>;
  /** What the evidence is bound to. */
  vectorBinding: Uint8Array;
  /** The 32-byte nonce put into seeded challenges (equal to vectorBinding when it is 32 bytes). */
  seededNonce: Uint8Array;
}

/** The generated TPM quote: what the tpm path verifies and what its floor verifies. */
interface TpmQuote {
  message: Uint8Array;
  /** RSASSA signature bytes (the TPMT_SIGNATURE's payload). */
  rsaSignature: Uint8Array;
  akJwk: JsonWebKey;
}

const ROOT_FILES: Readonly<Record<string, string>> = {
  [PinIds.AMD_ARK_MILAN]: 'trustee/amd-roots/milan_ask_ark_asvk.pem',
  [PinIds.GOOGLE_TPM_EK_ROOT_1]: 'go-tpm-tools/ca-certs/tpm_ek_root_1.cer',
  [PinIds.GOOGLE_EKAK_ROOT]: 'go-tpm-tools/ca-certs/gcp_ek_ak_ca_root.crt',
  [PinIds.AWS_NITRO_ROOT_G1]: 'vaportpm/certs/aws-nitro-root.pem',
};

async function trustStore(): Promise<TrustStore> {
  const pins = BUILTIN_PINS.filter((p) => ROOT_FILES[p.id] !== undefined);
  return createTrustStore(await Promise.all(pins.map((p) => anchorFromBytes(p, bytes(ROOT_FILES[p.id]!)))));
}

const ctxOf = (p: EvidencePath, trust: TrustStore): VerifyContext => ({ binding: p.vectorBinding, now: NOW, trust, fetch, options: {} });

function azurePath(store: StateStore, seededNonce: Uint8Array): EvidencePath {
  return {
    name: 'azure',
    provider: PROVIDER_FACTORIES.azure!({ amdIntermediatesPem: text('trustee/amd-roots/milan_ask_ark_asvk.pem') }, { store }),
    format: 'az-snp-vtpm',
    evidence: JSON.parse(text('trustee/az-snp-vtpm/evidence-v1.json')) as Record<string, unknown>,
    // The trustee vector's runtime data carries the nonce "challenge".
    vectorBinding: new TextEncoder().encode('challenge'),
    seededNonce,
  };
}

async function buildPaths(store: StateStore, trust: TrustStore): Promise<{ paths: EvidencePath[]; quote: TpmQuote }> {
  // tpm: a software RSA-2048 AK quotes 24 SHA-256 PCRs; the provider then pins that AK's digest.
  const ak = await softwareAk('rsa');
  const nonce = crypto.getRandomValues(new Uint8Array(32));
  const pcrValues = Array.from({ length: 24 }, () => crypto.getRandomValues(new Uint8Array(32)));
  const message = attest({ extraData: nonce, selection: [{ hash: 'sha256', pcrs: pcrValues.map((_, i) => i) }], pcrDigest: await pcrDigest('sha256', pcrValues) });
  const tpmtSignature = await ak.sign(message);
  const tpmEvidence = {
    ak_public: toBase64Url(tpm2bPublic(ak.tpmtPublic)),
    quote: { message: toBase64Url(message), signature: toBase64Url(tpmtSignature) },
    pcrs: { sha256: Object.fromEntries(pcrValues.map((v, i) => [String(i), toHex(v)])) },
  };
  const unpinned = PROVIDER_FACTORIES.tpm!({}, { store });
  const probe = await unpinned.verify('tpm', tpmEvidence, { binding: nonce, now: NOW, trust, fetch, options: {} });
  const tpm = PROVIDER_FACTORIES.tpm!({ pinnedAkSha256: [probe.tpm!.akSha256] }, { store });

  const nitro = JSON.parse(text('vaportpm/test-nitro-fixture.json')) as { nonce: string; attestation: { nitro: { document: string } } };
  const paths: EvidencePath[] = [
    { name: 'tpm', provider: tpm, format: 'tpm', evidence: tpmEvidence, vectorBinding: nonce, seededNonce: nonce },
    {
      name: 'gcp',
      provider: PROVIDER_FACTORIES.gcp!({ intermediates: [toBase64(bytes('go-tpm-tools/ca-certs/tpm_ek_intermediate_2.crt'))] }, { store }),
      format: 'gotpm',
      evidence: { attestation: toBase64(bytes('go-tpm-tools/attestations/gce-cos-85-nonce9009.pb')) },
      vectorBinding: fromHex('9009'),
      seededNonce: crypto.getRandomValues(new Uint8Array(32)),
    },
    azurePath(store, crypto.getRandomValues(new Uint8Array(32))),
    {
      name: 'aws',
      provider: PROVIDER_FACTORIES.aws!({}, { store }),
      format: 'nitrotpm',
      evidence: { document: toBase64(fromHex(nitro.attestation.nitro.document)) },
      vectorBinding: fromHex(nitro.nonce),
      seededNonce: fromHex(nitro.nonce),
    },
  ];
  // TPMT_SIGNATURE (RSASSA): sigAlg u16, hash u16, TPM2B size u16, then the signature.
  const quote: TpmQuote = { message, rsaSignature: tpmtSignature.subarray(6), akJwk: ak.jwk };
  return { paths, quote };
}

/**
 * A challenge record holds a 32-byte nonce, but the gcp and azure vectors are bound to other
 * values (0x9009, "challenge"). For those the broker gets the real provider behind this shim,
 * which swaps in the vector's binding when (and only when) the request carries the seeded
 * challenge's binding; body parsing, the store, the binding computation, the provider, policy and
 * release are all the broker's own.
 */
function withVectorBinding(p: EvidencePath): Provider {
  if (toHex(p.vectorBinding) === toHex(p.seededNonce)) return p.provider;
  const seeded = toHex(p.seededNonce);
  const inner = p.provider;
  return {
    name: inner.name,
    formats: inner.formats,
    verify: (format, evidence, ctx) => inner.verify(format, evidence, toHex(ctx.binding) === seeded ? { ...ctx, binding: p.vectorBinding } : ctx),
  };
}

/** `policy capture` of the path's own claims, with unsealed release allowed (no ephemeral key in the vectors). */
async function capturedPolicyText(p: EvidencePath, trust: TrustStore): Promise<string> {
  const claims = { ...(await p.provider.verify(p.format, p.evidence, ctxOf(p, trust))), evidenceSha256: '0'.repeat(64) };
  const doc = capturePolicyDocument(claims, { now: NOW, cluster: 'default' });
  doc.clusters['default']!.release.allowUnsealed = true;
  return JSON.stringify(doc);
}

/** The real policy engine, one captured policy per provider. */
async function policyFor(texts: Readonly<Record<string, string>>): Promise<PolicyEngine> {
  const engines = new Map<string, PolicyEngine>();
  for (const [provider, t] of Object.entries(texts)) engines.set(provider, createPolicyEngine(await loadPolicyText(t, NOW), { clock }));
  const first = [...engines.values()][0]!;
  return {
    evaluate: (claims, clusterName) => engines.get(claims.provider)!.evaluate(claims, clusterName),
    current: () => first.current(),
  };
}

/** Stand-in for release (the real one writes a Kubernetes Secret: outside the floor and this measure). */
const release: ReleaseService = {
  release: (req) => Promise.resolve({ nodeName: req.decision.nodeName, expiresAt: new Date(0).toISOString() }),
};

const OFF = { limit: 0, windowSeconds: 60 };
const ID_MARK = '@@challenge-id@@';

/** The attest body of a path, split around the challenge id so a load generator can fill it in. */
function bodyOf(p: EvidencePath): { prefix: string; suffix: string } {
  const [prefix, suffix] = JSON.stringify({ challengeId: ID_MARK, provider: p.provider.name, format: p.format, evidence: p.evidence }).split(ID_MARK);
  return { prefix: prefix!, suffix: suffix! };
}

/** Challenge ids the driver generates: tag + 12 digits. */
const challengeId = (tag: string, i: number): string => `${tag}${String(i).padStart(12, '0')}`;

async function seedChallenges(store: StateStore, p: EvidencePath, tag: string, count: number, parallel = 1): Promise<void> {
  const record = {
    nonce: toBase64Url(p.seededNonce),
    issuedAt: NOW.toISOString(),
    expiresAt: new Date(NOW.getTime() + 3_600_000).toISOString(),
    provider: p.provider.name,
  };
  for (let i = 0; i < count; i += parallel) {
    const batch: Promise<void>[] = [];
    for (let j = i; j < Math.min(count, i + parallel); j++) batch.push(store.putChallenge(challengeId(tag, j), record, 3_600_000));
    await Promise.all(batch);
  }
}

// ───────────────────────────── the crypto floors ─────────────────────────────
// The fewest node:crypto signature verifications each path needs, synchronous, keys imported
// once; chains up to the pinned roots count as already validated, per-node certificates do not.

type Floor = () => boolean;

/** Length-delimited fields of a protobuf message (other wire types skipped). */
function protoFields(b: Uint8Array): [number, Uint8Array][] {
  const out: [number, Uint8Array][] = [];
  let i = 0;
  const varint = (): number => {
    let value = 0;
    let scale = 1;
    for (;;) {
      const x = b[i++]!;
      value += (x & 0x7f) * scale;
      scale *= 128;
      if (x < 0x80) return value;
    }
  };
  while (i < b.length) {
    const key = varint();
    const wire = key % 8;
    if (wire === 0) varint();
    else if (wire === 1) i += 8;
    else if (wire === 5) i += 4;
    else if (wire === 2) {
      const n = varint();
      out.push([Math.floor(key / 8), b.subarray(i, i + n)]);
      i += n;
    } else throw new Error(`protobuf wire type ${wire}`);
  }
  return out;
}
const field = (fs: [number, Uint8Array][], n: number): Uint8Array => {
  const f = fs.find(([k]) => k === n);
  if (!f) throw new Error(`protobuf field ${n} missing`);
  return f[1];
};

/** The PCR bank (TPM_ALG_ID) a TPMS_ATTEST quote covers (its first TPMS_PCR_SELECTION). */
function quotedBank(m: Uint8Array): number {
  const dv = new DataView(m.buffer, m.byteOffset, m.byteLength);
  let at = 4 + 2; // magic, type
  at += 2 + dv.getUint16(at); // qualifiedSigner
  at += 2 + dv.getUint16(at); // extraData
  at += 17 + 8; // clockInfo, firmwareVersion
  return dv.getUint16(at + 4); // TPML_PCR_SELECTION.count (u32), then pcrSelections[0].hash
}

function makeFloors(quote: TpmQuote): Record<PathName, Floor> {
  const buf = (b: Uint8Array): Buffer => Buffer.from(b.buffer, b.byteOffset, b.byteLength);

  // tpm: one RSA-2048 PKCS#1 v1.5 SHA-256 quote signature by the pinned AK.
  const akKey = createPublicKey({ key: quote.akJwk as NodeJwk, format: 'jwk' });
  const tpmMsg = buf(quote.message);
  const tpmSig = buf(quote.rsaSignature);
  const tpm: Floor = () => nodeVerify('sha256', tpmMsg, akKey, tpmSig);

  // gcp gotpm: the quote over the SHA-256 bank by the AK certificate's key, and that per-node
  // certificate by the (cached) EK/AK intermediate.
  const top = protoFields(bytes('go-tpm-tools/attestations/gce-cos-85-nonce9009.pb'));
  const akCert = new X509Certificate(buf(field(top, 6)));
  const intermediate = new X509Certificate(buf(bytes('go-tpm-tools/ca-certs/tpm_ek_intermediate_2.crt')));
  const quotes = top
    .filter(([k]) => k === 2)
    .map(([, q]) => {
      const qf = protoFields(q);
      const raw = field(qf, 2);
      const size = (raw[4]! << 8) | raw[5]!;
      return { message: buf(field(qf, 1)), signature: buf(raw.subarray(6, 6 + size)) };
    });
  const sha256Quote = quotes.find((q) => quotedBank(q.message) === 0x000b);
  if (!sha256Quote) throw new Error('gcp floor: no quote over the SHA-256 bank');
  const akCertKey = akCert.publicKey;
  const intermediateKey = intermediate.publicKey;
  const gcp: Floor = () => nodeVerify('sha256', sha256Quote.message, akCertKey, sha256Quote.signature) && akCert.verify(intermediateKey);

  // azure az-snp-vtpm: the vTPM quote by HCLAkPub (RSA-2048) and the SNP report by the VCEK (P-384).
  const az = JSON.parse(text('trustee/az-snp-vtpm/evidence-v1.json')) as { hcl_report: string; vcek: string; tpm_quote: { message: string; signature: string } };
  const hcl = Buffer.from(az.hcl_report, 'base64url');
  const REPORT_AT = 32;
  const REPORT_LEN = 1184;
  const report = hcl.subarray(REPORT_AT, REPORT_AT + REPORT_LEN);
  const runtimeAt = REPORT_AT + REPORT_LEN + 20; // IGVM request header: 5 × u32, the last the data size
  const runtimeLen = hcl.readUInt32LE(REPORT_AT + REPORT_LEN + 16);
  const runtime = JSON.parse(hcl.subarray(runtimeAt, runtimeAt + runtimeLen).toString('utf8')) as { keys: (JsonWebKey & { kid: string })[] };
  const hclAk = runtime.keys.find((k) => k.kid === 'HCLAkPub');
  if (!hclAk) throw new Error('azure floor: no HCLAkPub in the runtime data');
  const hclAkKey = createPublicKey({ key: { kty: 'RSA', n: hclAk.n!, e: hclAk.e! }, format: 'jwk' });
  const azQuote = Buffer.from(az.tpm_quote.message, 'hex');
  const azQuoteSig = Buffer.from(az.tpm_quote.signature, 'hex');
  // SNP report: signed bytes [0, 0x2a0); signature r and s as 72-byte little-endian fields.
  const SIG_AT = 0x2a0;
  const be48 = (at: number): Buffer => Buffer.from(report.subarray(at, at + 48)).reverse();
  const snpSig = Buffer.concat([be48(SIG_AT), be48(SIG_AT + 72)]);
  const snpSigned = report.subarray(0, SIG_AT);
  const vcek: { key: KeyObject; dsaEncoding: 'ieee-p1363' } = { key: new X509Certificate(Buffer.from(az.vcek, 'base64url')).publicKey, dsaEncoding: 'ieee-p1363' };
  const azure: Floor = () => nodeVerify('sha256', azQuote, hclAkKey, azQuoteSig) && nodeVerify('sha384', snpSigned, vcek, snpSig);

  // aws nitrotpm: the COSE_Sign1 (ES384) by the 3-hour leaf, the leaf by the instance CA, and
  // the instance CA by the zonal CA (root → regional → zonal counted as cached).
  const nitro = JSON.parse(text('vaportpm/test-nitro-fixture.json')) as { attestation: { nitro: { document: string } } };
  const cose = cborDecode(Buffer.from(nitro.attestation.nitro.document, 'hex'), { useMaps: true }) as [Uint8Array, unknown, Uint8Array, Uint8Array];
  const [protectedHeader, , payload, coseSignature] = cose;
  const doc = cborDecode(payload, { useMaps: true }) as Map<string, unknown>;
  const leaf = new X509Certificate(buf(doc.get('certificate') as Uint8Array));
  const bundle = (doc.get('cabundle') as Uint8Array[]).map((c) => new X509Certificate(buf(c)));
  const instanceCa = bundle[bundle.length - 1]!;
  const zonalCa = bundle[bundle.length - 2]!;
  if (!leaf.checkIssued(instanceCa) || !instanceCa.checkIssued(zonalCa)) throw new Error('aws floor: unexpected cabundle order');
  const sigStructure = buf(cborEncode(['Signature1', protectedHeader, new Uint8Array(0), payload]));
  const leafKey: { key: KeyObject; dsaEncoding: 'ieee-p1363' } = { key: leaf.publicKey, dsaEncoding: 'ieee-p1363' };
  const instanceKey = instanceCa.publicKey;
  const zonalKey = zonalCa.publicKey;
  const coseSig = buf(coseSignature);
  const aws: Floor = () => nodeVerify('sha384', sigStructure, leafKey, coseSig) && leaf.verify(instanceKey) && instanceCa.verify(zonalKey);

  const floors = { tpm, gcp, azure, aws };
  for (const [name, f] of Object.entries(floors)) if (!f()) throw new Error(`${name} floor: the vector does not verify`);
  return floors;
}

/** Runs `f` for about `ms`; operations per wall second and per CPU-second of this process. */
function timeFloor(f: Floor, ms: number): { opsPerSec: number; opsPerCpuSec: number } {
  let n = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const end = t0 + ms;
  while (performance.now() < end) {
    f();
    f();
    f();
    f();
    n += 4;
  }
  const wall = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  return { opsPerSec: n / (wall / 1000), opsPerCpuSec: n / ((cpu.user + cpu.system) / 1e6) };
}

// ───────────────────────────── IPC ─────────────────────────────

interface Command {
  id: number;
  cmd: 'floor' | 'provider' | 'seed' | 'cpu' | 'exit';
  path?: PathName;
  ms?: number;
  concurrency?: number;
  tag?: string;
  count?: number;
}

const send = (m: unknown): void => {
  process.send!(m);
};

function onCommands(handler: (c: Command) => Promise<Record<string, unknown>>): void {
  process.on('message', (raw: unknown) => {
    const c = raw as Command;
    handler(c).then(
      (r) => send({ id: c.id, ...r }),
      (e: unknown) => send({ id: c.id, error: e instanceof Error ? (e.stack ?? e.message) : String(e) }),
    );
  });
}

// ───────────────────────────── role: server (one core) ─────────────────────────────

async function server(): Promise<void> {
  const store = new MemoryStore({ clock, maxChallenges: 5_000_000, maxEntries: 5_000_000 });
  const trust = await trustStore();
  const { paths, quote } = await buildPaths(store, trust);
  const floors = makeFloors(quote);
  const byName = new Map(paths.map((p) => [p.name, p]));
  const texts: Record<string, string> = {};
  for (const p of paths) texts[p.provider.name] = await capturedPolicyText(p, trust);

  const app = createBroker({
    store,
    providers: paths.map(withVectorBinding),
    trust,
    clock,
    policy: await policyFor(texts),
    release,
    logger: createPinoLogger('warn'),
    metrics: createPromMetrics(),
    peer: nodePeer,
    options: { rateLimits: { challenge: OFF, attest: OFF, identity: OFF } },
  });
  const broker = await listen(app.fetch, { host: '127.0.0.1', port: 0 });

  const empty = new Hono();
  empty.post('/v1/attest', async (c) => {
    await c.req.text();
    return c.json({ ok: true });
  });
  const emptyPort = await new Promise<number>((resolve) => {
    serve({ fetch: empty.fetch, hostname: '127.0.0.1', port: 0 }, (info) => resolve(info.port));
  });

  const bodies = Object.fromEntries(paths.map((p) => [p.name, bodyOf(p)]));
  // One request per path through the real server must come back 200 before anything is timed.
  const sanity: Record<string, number> = {};
  for (const p of paths) {
    await seedChallenges(store, p, `sanity-${p.name}-`, 1);
    const b = bodies[p.name]!;
    const r = await fetch(`${broker.url}/v1/attest`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: b.prefix + challengeId(`sanity-${p.name}-`, 0) + b.suffix });
    const answer = await r.text();
    if (r.status !== 200) throw new Error(`sanity ${p.name}: HTTP ${r.status} ${answer}`);
    sanity[p.name] = r.status;
  }

  onCommands(async (c) => {
    const p = c.path ? byName.get(c.path) : undefined;
    switch (c.cmd) {
      case 'floor':
        return timeFloor(floors[c.path!], c.ms ?? 500);
      case 'provider': {
        const ctx = ctxOf(p!, trust);
        let n = 0;
        const cpu0 = process.cpuUsage();
        const t0 = performance.now();
        const end = t0 + (c.ms ?? 1000);
        const loop = async (): Promise<void> => {
          while (performance.now() < end) {
            await p!.provider.verify(p!.format, p!.evidence, ctx);
            n++;
          }
        };
        await Promise.all(Array.from({ length: c.concurrency ?? 4 }, loop));
        const wall = performance.now() - t0;
        const cpu = process.cpuUsage(cpu0);
        return { opsPerSec: n / (wall / 1000), opsPerCpuSec: n / ((cpu.user + cpu.system) / 1e6) };
      }
      case 'seed':
        await seedChallenges(store, p!, c.tag!, c.count!);
        return { ok: true };
      case 'cpu': {
        const u = process.cpuUsage();
        return { us: u.user + u.system };
      }
      case 'exit':
        setTimeout(() => process.exit(0), 50);
        return { ok: true };
    }
  });
  send({ ready: true, brokerUrl: broker.url, emptyUrl: `http://127.0.0.1:${emptyPort}`, bodies, sanity, cores: availableParallelism() });
}

// ───────────────────────────── role: burst (all cores, in process) ─────────────────────────────

async function burst(): Promise<void> {
  const n = Number(process.env.BENCH_BURST ?? 5000);
  const trust = await trustStore();
  const store = new MemoryStore({ clock });
  // The floors need the tpm quote only for their own setup; azure is the one timed here.
  const { quote } = await buildPaths(store, trust);
  const floor = makeFloors(quote).azure;
  const floorUs = (ms: number): number => 1e6 / timeFloor(floor, ms).opsPerSec;
  const p = azurePath(store, crypto.getRandomValues(new Uint8Array(32)));
  const ctx = ctxOf(p, trust);
  const run = async (): Promise<number> => {
    const t0 = performance.now();
    const claims = await Promise.all(Array.from({ length: n }, () => p.provider.verify(p.format, p.evidence, ctx)));
    const ms = performance.now() - t0;
    if (claims.length !== n || claims.some((c) => c.provider !== 'azure')) throw new Error('burst: a verification failed');
    return ms;
  };
  floorUs(300);
  const f0 = floorUs(1000);
  // Cold: this process has verified nothing yet (every per-process memo empty, fresh provider).
  const coldMs = await run();
  const f1 = floorUs(1000);
  const warmMs = await run();
  const f2 = floorUs(1000);
  send({ ready: true, n, cores: availableParallelism(), floorUs: [f0, f1, f2], coldMs, warmMs });
  setTimeout(() => process.exit(0), 50);
}

// ───────────────────────────── role: cluster (listen.workers: 2, all cores) ─────────────────────────────

interface ClusterSetup {
  port: number;
  redisUrl: string;
  keyPrefix: string;
  workers: number;
  seededNonceHex: string;
  policyText: string;
}

/** The configuration `serve` would parse for this run: workers, Redis, every rate limit off. */
function clusterConfig(s: Pick<ClusterSetup, 'port' | 'redisUrl' | 'keyPrefix' | 'workers'>): BrokerConfig {
  return parseConfig({
    listen: { host: '127.0.0.1', port: s.port, workers: s.workers },
    store: { url: s.redisUrl, keyPrefix: s.keyPrefix },
    limits: { challengesPerAddress: OFF, attestsPerAddress: OFF, attestsPerIdentity: OFF },
    log: { level: 'warn' },
  });
}

async function clusterPrimary(): Promise<void> {
  const n = Number(process.env.BENCH_BURST ?? 5000);
  const base = { port: Number(process.env.BENCH_PORT), redisUrl: process.env.BENCH_REDIS_URL!, keyPrefix: `bench-${process.pid}:`, workers: Number(process.env.BENCH_WORKERS ?? 2) };
  const cfg = clusterConfig(base);
  checkWorkers(cfg); // refuses the memory store with more than one worker, as serve does
  const workers = workerCount(cfg);

  const trust = await trustStore();
  const seedStore = new RedisStore({ url: cfg.store.url, keyPrefix: cfg.store.keyPrefix });
  await seedStore.connect();
  const p = azurePath(seedStore, crypto.getRandomValues(new Uint8Array(32)));
  // Captured here: the workers must start cold, with nothing verified before the first request.
  const setup: ClusterSetup = { ...base, workers, seededNonceHex: toHex(p.seededNonce), policyText: await capturedPolicyText(p, trust) };
  await seedChallenges(seedStore, p, 'cold-', n, 200);
  await seedChallenges(seedStore, p, 'warm-', n, 200);
  await seedStore.close();

  const { quote } = await buildPaths(new MemoryStore({ clock }), trust);
  const floor = makeFloors(quote).azure;
  const floorUs = (ms: number): number => 1e6 / timeFloor(floor, ms).opsPerSec;
  floorUs(300);
  const before = floorUs(1000);

  process.env.BENCH_CLUSTER_SETUP = JSON.stringify(setup); // inherited by the forked workers
  let listening = 0;
  cluster.on('listening', () => {
    if (++listening === workers) send({ ready: true, url: `http://127.0.0.1:${base.port}`, body: bodyOf(p), n, workers, cores: availableParallelism(), floorUs: before });
  });
  runPrimary(workers, createPinoLogger('warn'));
  onCommands(async (c) => {
    if (c.cmd === 'floor') return { floorUs: floorUs(c.ms ?? 1000) };
    if (c.cmd === 'exit') {
      // The broker's own shutdown path: SIGTERM to the primary drains and stops every worker.
      setTimeout(() => process.kill(process.pid, 'SIGTERM'), 20);
      return { ok: true };
    }
    throw new Error(`cluster: no command ${c.cmd}`);
  });
}

async function clusterWorker(): Promise<void> {
  const setup = JSON.parse(process.env.BENCH_CLUSTER_SETUP!) as ClusterSetup;
  const cfg = clusterConfig(setup);
  // As the broker's runtime does (buildRuntime): a worker per core verifies P-384 synchronously.
  applyWorkerCryptoMode(cfg);
  const store = new RedisStore({ url: cfg.store.url, keyPrefix: cfg.store.keyPrefix });
  await store.connect();
  const trust = await trustStore();
  const p = azurePath(store, fromHex(setup.seededNonceHex));
  const app = createBroker({
    store,
    providers: [withVectorBinding(p)],
    trust,
    clock,
    policy: await policyFor({ azure: setup.policyText }),
    release,
    logger: createPinoLogger(cfg.log.level),
    metrics: clusterMetrics(createPromMetrics()),
    peer: nodePeer,
    options: {
      challengeTtlSeconds: cfg.challenge.ttlSeconds,
      bodyLimitBytes: cfg.limits.bodyBytes,
      rateLimits: { challenge: cfg.limits.challengesPerAddress, attest: cfg.limits.attestsPerAddress, identity: cfg.limits.attestsPerIdentity },
    },
  });
  await listen(app.fetch, { host: cfg.listen.host, port: cfg.listen.port, limits: cfg.limits });
}

// ───────────────────────────── role: overhead (one core, in process, no sockets) ─────────────────────────────
// The broker's own cost per attest, apart from the provider and the HTTP socket: `app.fetch` on a
// Request (what @hono/node-server hands it) for (1) an empty Hono POST handler reading the same
// body, (2) the broker with the path's provider replaced by one returning that provider's claims
// (everything else real: envelope, store, binding, evidence hash, policy, release stand-in,
// metrics, logs), (3) the broker with the real provider, (4) the provider alone. Printed as µs per
// request; run with `--cpu-prof` to see where (2) goes.
// Why (3) costs more than (2) + (4), split into what can be timed without a profiler: the
// provider's own time inside (3); the provider alone on freshly parsed copies of the evidence (as
// the broker hands it over) instead of one object; the path's signature floor in a tight loop and
// timed once after each glue request (the same verifications with the request's work between
// them); and the collector's pause time per request in each phase (PerformanceObserver 'gc').

async function overhead(): Promise<void> {
  const n = Number(process.env.BENCH_OVERHEAD_N ?? 20_000);
  const which = (process.env.BENCH_OVERHEAD_PATHS ?? 'tpm,azure').split(',');
  const store = new MemoryStore({ clock, maxChallenges: 5_000_000, maxEntries: 5_000_000 });
  const trust = await trustStore();
  const { paths, quote } = await buildPaths(store, trust);
  const floors = makeFloors(quote);
  const gc = { ms: 0 };
  const gcObserver = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) gc.ms += e.duration;
  });
  gcObserver.observe({ entryTypes: ['gc'] });
  // GC entries arrive asynchronously: let the observer catch up before reading the sum.
  const gcNow = async (): Promise<number> => {
    await new Promise((r) => setTimeout(r, 5));
    return gc.ms;
  };
  const out: Record<string, Record<string, number>> = {};
  for (const p of paths.filter((x) => which.includes(x.name))) {
    const claims = await p.provider.verify(p.format, p.evidence, ctxOf(p, trust));
    const canned: Provider = { name: p.provider.name, formats: p.provider.formats, verify: () => Promise.resolve(claims) };
    // The same claims as fresh objects per request (a JSON round trip each, made before the clock
    // starts), as the real provider hands them over.
    const freshClaims: unknown[] = [];
    const cannedFresh: Provider = { name: p.provider.name, formats: p.provider.formats, verify: () => Promise.resolve(freshClaims.pop() as typeof claims) };
    const texts = { [p.provider.name]: await capturedPolicyText(p, trust) };
    const mk = async (prov: Provider) =>
      createBroker({
        store,
        providers: [prov],
        trust,
        clock,
        policy: await policyFor(texts),
        release,
        logger: createPinoLogger('warn'),
        metrics: createPromMetrics(),
        peer: () => ({ address: '127.0.0.1' }),
        options: { rateLimits: { challenge: OFF, attest: OFF, identity: OFF } },
      });
    const glue = await mk(canned);
    const glueFresh = await mk(cannedFresh);
    // The real provider, its time inside the broker summed (the wrapper costs ~1 µs).
    const inside = { ms: 0, n: 0 };
    const bound = withVectorBinding(p);
    const timed: Provider = {
      name: bound.name,
      formats: bound.formats,
      verify: async (format, evidence, ctx) => {
        const t0 = performance.now();
        try {
          return await bound.verify(format, evidence, ctx);
        } finally {
          inside.ms += performance.now() - t0;
          inside.n++;
        }
      },
    };
    const real = await mk(timed);
    const empty = new Hono();
    empty.post('/v1/attest', async (c) => {
      await c.req.text();
      return c.json({ ok: true });
    });
    const b = bodyOf(p);
    let seq = 0;
    const gcPerRequest: Record<string, number[]> = { empty: [], glue: [], real: [], provider: [] };
    const request = async (fetchFn: (r: Request) => Response | Promise<Response>, tag: string, i: number): Promise<void> => {
      const r = await fetchFn(new Request('http://broker/v1/attest', { method: 'POST', headers: { 'content-type': 'application/json' }, body: b.prefix + challengeId(tag, i) + b.suffix }));
      await r.text();
      if (r.status !== 200) throw new Error(`overhead ${p.name} ${tag}: HTTP ${r.status}`);
    };
    const run = async (fetchFn: (r: Request) => Response | Promise<Response>, tag: string, count: number, gcKey?: string): Promise<number> => {
      await seedChallenges(store, p, tag, count);
      const g0 = await gcNow();
      const t0 = performance.now();
      for (let i = 0; i < count; i++) await request(fetchFn, tag, i);
      const us = ((performance.now() - t0) * 1000) / count;
      if (gcKey) gcPerRequest[gcKey]!.push(((await gcNow()) - g0) * 1000 / count);
      return us;
    };
    // `fresh`: a JSON round trip of the evidence per call, made before the clock starts.
    const provider = async (count: number, fresh = false, gcKey?: string): Promise<number> => {
      const ctx = ctxOf(p, trust);
      const inputs = fresh ? Array.from({ length: count }, () => JSON.parse(JSON.stringify(p.evidence)) as unknown) : undefined;
      const g0 = await gcNow();
      const t0 = performance.now();
      for (let i = 0; i < count; i++) await p.provider.verify(p.format, inputs ? inputs[i] : p.evidence, ctx);
      const us = ((performance.now() - t0) * 1000) / count;
      if (gcKey) gcPerRequest[gcKey]!.push(((await gcNow()) - g0) * 1000 / count);
      return us;
    };
    // The path's floor verifications, timed one at a time right after a glue request each.
    const floorAfterRequest = async (tag: string, count: number): Promise<number> => {
      await seedChallenges(store, p, tag, count);
      let ms = 0;
      for (let i = 0; i < count; i++) {
        await request(glue.fetch, tag, i);
        const t0 = performance.now();
        floors[p.name]();
        ms += performance.now() - t0;
      }
      return (ms * 1000) / count;
    };
    const floorHot = (): number => 1e6 / timeFloor(floors[p.name], 300).opsPerSec;
    const m = Math.max(200, Math.round(n / 10));
    await run(empty.fetch, `ow-e-${seq++}-`, m);
    await run(glue.fetch, `ow-g-${seq++}-`, m);
    await run(real.fetch, `ow-r-${seq++}-`, Math.round(m / 4));
    await provider(Math.round(m / 4));
    const r: Record<string, number[]> = {
      empty_hono_us: [],
      broker_glue_us: [],
      broker_glue_fresh_us: [],
      broker_real_us: [],
      provider_us: [],
      provider_in_broker_us: [],
      provider_fresh_us: [],
      floor_hot_us: [],
      floor_after_request_us: [],
    };
    const slow = Math.round(n / 8);
    for (let round = 0; round < 3; round++) {
      r.empty_hono_us!.push(await run(empty.fetch, `o-e-${seq++}-`, n, 'empty'));
      r.broker_glue_us!.push(await run(glue.fetch, `o-g-${seq++}-`, n, 'glue'));
      for (let i = 0; i < slow; i++) freshClaims.push(JSON.parse(JSON.stringify(claims)));
      r.broker_glue_fresh_us!.push(await run(glueFresh.fetch, `o-gf-${seq++}-`, slow));
      inside.ms = 0;
      inside.n = 0;
      r.broker_real_us!.push(await run(real.fetch, `o-r-${seq++}-`, slow, 'real'));
      r.provider_in_broker_us!.push((inside.ms * 1000) / inside.n);
      r.provider_us!.push(await provider(slow, false, 'provider'));
      r.provider_fresh_us!.push(await provider(slow, true));
      r.floor_hot_us!.push(floorHot());
      r.floor_after_request_us!.push(await floorAfterRequest(`o-f-${seq++}-`, slow));
    }
    const med = (a: number[]) => [...a].sort((x, y) => x - y)[1]!;
    out[p.name] = Object.fromEntries(
      [...Object.entries(r), ...Object.entries(gcPerRequest).map(([k, v]) => [`gc_${k}_us`, v] as const)].map(([k, v]) => [k, Math.round(med(v) * 10) / 10]),
    );
  }
  gcObserver.disconnect();
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

const role = process.argv[2];
const main = role === 'burst' ? burst : role === 'overhead' ? overhead : role === 'cluster' ? (cluster.isWorker ? clusterWorker : clusterPrimary) : server;
main().catch((e: unknown) => {
  const message = e instanceof Error ? (e.stack ?? e.message) : String(e);
  if (process.send) send({ fatal: message });
  else process.stderr.write(`${message}\n`);
  setTimeout(() => process.exit(1), 50);
});

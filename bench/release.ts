/**
 * Release throughput in-process (no HTTP, no Kubernetes): sealed releases per second, p50/p99,
 * and the ratio to the raw WebCrypto work a sealed release cannot avoid. Run through
 * bench/release.bench.mjs.
 */
import { CompactEncrypt, calculateJwkThumbprint, exportJWK, generateKeyPair, importJWK } from 'jose';
import { BrokerReleaseService } from '../broker/release/service.js';
import { HashChainAudit } from '../broker/release/audit.js';
import { MemoryStore } from '../broker/store/memory.js';
import { LocalKeyService } from '../providers/local/kms.js';
import type { Claims } from '../providers/common/types.js';
import type { Decision, Logger, Want } from '../broker/contracts.js';

const quiet: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => quiet };

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}

async function timeIt(n: number, f: (i: number) => Promise<unknown>): Promise<{ opsPerSec: number; p50: number; p99: number }> {
  for (let i = 0; i < Math.min(200, n); i++) await f(-1 - i); // warm-up
  const lat: number[] = [];
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const a = performance.now();
    await f(i);
    lat.push(performance.now() - a);
  }
  const total = performance.now() - t0;
  return { opsPerSec: (n * 1000) / total, p50: pct(lat, 50), p99: pct(lat, 99) };
}

export async function run(n: number): Promise<void> {
  const store = new MemoryStore();
  const clock = { now: () => new Date() };
  const caPem = undefined;
  const svc = new BrokerReleaseService({
    store,
    clock,
    logger: quiet,
    audit: new HashChainAudit({ store, clock, write: async () => undefined }),
    keys: await LocalKeyService.create({ kek: crypto.getRandomValues(new Uint8Array(32)) }),
    clusters: { prod: { apiServer: 'https://api:6443', caPem } },
  });
  const { publicKey } = await generateKeyPair('ECDH-ES+A256KW', { extractable: true });
  const jwk = await exportJWK(publicKey);
  const nonce = crypto.getRandomValues(new Uint8Array(32));
  const tp = Uint8Array.from(atob((await calculateJwkThumbprint(jwk)).replace(/-/g, '+').replace(/_/g, '/')), (c) => c.charCodeAt(0));
  const binding = new Uint8Array(await crypto.subtle.digest('SHA-256', new Uint8Array([...nonce, ...tp])));
  const b64u = (b: Uint8Array) => btoa(String.fromCharCode(...b)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  const decision: Decision = {
    allow: true,
    nodeName: 'node-1',
    cluster: 'prod',
    policyHash: 'a'.repeat(64),
    rules: [],
    release: { tokenTtlSeconds: 600, extraGroups: [], allowUnsealed: false, diskKey: true },
  };
  const claims = (i: number): Claims => ({
    provider: 'aws',
    format: 'nitrotpm',
    platform: { tee: 'nitro', debug: false },
    identity: { cloud: 'aws', account: '123456789012', instanceId: `i-${i}-${Math.random()}`, proven: ['instanceId'] },
    evidenceSha256: 'b'.repeat(64),
  });
  const rel = (want: Want[]) => (i: number) =>
    svc.release({ claims: claims(i), decision, want, ephemeralKey: jwk, nonce: b64u(nonce), binding: b64u(binding), requestId: `r${i}` });

  const token = await timeIt(n, rel(['bootstrap-token']));
  const disk = await timeIt(n, rel(['disk-key']));
  const both = await timeIt(n, rel(['bootstrap-token', 'disk-key']));

  // Raw WebCrypto floor of a sealed release with a disk key: ECDH-ES+A256KW + A256GCM JWE of a
  // ~1 KB payload, one AES-256-GCM wrap of a 32-byte key, one SHA-256 for the binding.
  const kek = await crypto.subtle.importKey('raw', crypto.getRandomValues(new Uint8Array(32)), 'AES-GCM', false, ['encrypt']);
  const pub = await importJWK(jwk, 'ECDH-ES+A256KW');
  const payload = new TextEncoder().encode('x'.repeat(1000));
  const raw = await timeIt(n, async () => {
    await crypto.subtle.digest('SHA-256', nonce);
    await crypto.subtle.encrypt({ name: 'AES-GCM', iv: crypto.getRandomValues(new Uint8Array(12)) }, kek, crypto.getRandomValues(new Uint8Array(32)));
    await new CompactEncrypt(payload).setProtectedHeader({ alg: 'ECDH-ES+A256KW', enc: 'A256GCM' }).encrypt(pub);
  });
  const fmt = (name: string, r: { opsPerSec: number; p50: number; p99: number }) =>
    `${name.padEnd(44)} ${r.opsPerSec.toFixed(0).padStart(7)} ops/s  p50 ${r.p50.toFixed(3)} ms  p99 ${r.p99.toFixed(3)} ms  ×${(raw.opsPerSec / r.opsPerSec).toFixed(2)} raw cost`;
  console.log(fmt('sealed release: bootstrap-token (webhook mode)', token));
  console.log(fmt('sealed release: disk-key (local KMS)', disk));
  console.log(fmt('sealed release: token + disk key', both));
  console.log(fmt('raw WebCrypto floor (JWE + AES-GCM wrap + SHA-256)', raw));
}

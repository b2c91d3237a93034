/**
 * Policy cost per attestation, next to the WebCrypto work the same request already does.
 *
 * Run: npx esbuild bench/policy.bench.ts --bundle --platform=node --format=esm --packages=external \
 *        --outfile=dist/policy-bench.mjs && node dist/policy-bench.mjs
 *
 * Reports ops/s, p50 and p99 per operation for:
 * - evaluate: a captured GCP policy (24 pinned PCRs) and deploy/policies/azure.yaml (3 images);
 * - load: parse + schema + semantic checks + SHA-256 of azure.yaml (each hot reload);
 * and the ratio to one WebCrypto ECDSA-P256/SHA-256 verify (the cheapest signature check of any
 * attestation) measured the same way on the same machine.
 */
import { readFileSync } from 'node:fs';
import { stringify } from 'yaml';
import { capturePolicyDocument } from '../broker/policy/capture.js';
import { evaluatePolicy } from '../broker/policy/evaluate.js';
import { loadPolicyText } from '../broker/policy/load.js';
import { azureSnpGenoa, gcpAmd } from '../test/policy/fixtures/claims.js';

const NOW = new Date('2026-11-27T12:00:00Z');

async function measure(name: string, n: number, fn: () => unknown | Promise<unknown>) {
  for (let i = 0; i < Math.min(200, n); i++) await fn(); // warm-up
  const t: number[] = [];
  const start = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    const a = process.hrtime.bigint();
    await fn();
    t.push(Number(process.hrtime.bigint() - a) / 1e3);
  }
  const total = Number(process.hrtime.bigint() - start) / 1e9;
  t.sort((x, y) => x - y);
  const r = { name, ops: n / total, p50: t[Math.floor(n * 0.5)]!, p99: t[Math.floor(n * 0.99)]! };
  console.log(`${name.padEnd(44)} ${r.ops.toFixed(0).padStart(9)} ops/s   p50 ${r.p50.toFixed(1).padStart(7)} µs   p99 ${r.p99.toFixed(1).padStart(7)} µs`);
  return r;
}

const gcpPolicy = await loadPolicyText(stringify(capturePolicyDocument(gcpAmd, { now: NOW })), NOW);
const azureText = readFileSync(new URL('../deploy/policies/azure.yaml', import.meta.url), 'utf8');
const azurePolicy = await loadPolicyText(azureText, NOW);

const key = await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify']);
const msg = new Uint8Array(256).fill(7);
const sig = await crypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, key.privateKey, msg);

const ecdsa = await measure('webcrypto ECDSA-P256 verify (baseline)', 5000, () => crypto.subtle.verify({ name: 'ECDSA', hash: 'SHA-256' }, key.publicKey, sig, msg));
const a = await measure('evaluate gcp (24 PCRs pinned)', 20000, () => evaluatePolicy(gcpPolicy, gcpAmd, undefined, NOW));
const b = await measure('evaluate azure.yaml (3 images, 2nd matches)', 20000, () => evaluatePolicy(azurePolicy, azureSnpGenoa, undefined, NOW));
const c = await measure('load azure.yaml (yaml+schema+checks+sha256)', 500, () => loadPolicyText(azureText, NOW));
console.log(`ratio to one ECDSA verify: evaluate gcp ${(a.p50 / ecdsa.p50).toFixed(2)}x, evaluate azure ${(b.p50 / ecdsa.p50).toFixed(2)}x, load ${(c.p50 / ecdsa.p50).toFixed(1)}x (p50)`);

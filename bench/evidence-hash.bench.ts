/**
 * The evidence hash (`evidenceSha256`: SHA-256 of the canonical JSON of the evidence) per attest,
 * next to its floor: one SHA-256 over the same canonical text. Interleaved rounds in one process,
 * medians.
 *
 * Run from the project root:
 *   npx esbuild bench/evidence-hash.bench.ts --bundle --platform=node --format=esm --packages=external \
 *     --outfile=.cache/bench/evidence-hash.mjs && taskset -c 0 node .cache/bench/evidence-hash.mjs
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { canonicalJson, canonicalSha256 } from '../providers/common/canonical.js';
import { toBase64 } from '../providers/common/encoding.js';

// The bundle lives in .cache/bench/: vectors are found from the working directory.
const V = process.env.ATTEST_VECTORS ?? join(process.cwd(), 'test/vectors');
const cases: Array<[string, unknown]> = [
  ['gcp gotpm (go-tpm-tools attestation)', { attestation: toBase64(new Uint8Array(readFileSync(join(V, 'go-tpm-tools/attestations/gce-cos-85-nonce9009.pb')))) }],
  ['azure az-snp-vtpm v1', JSON.parse(readFileSync(join(V, 'trustee/az-snp-vtpm/evidence-v1.json'), 'utf8'))],
];

async function usPer(n: number, f: () => unknown): Promise<number> {
  const t0 = performance.now();
  for (let i = 0; i < n; i++) await f();
  return ((performance.now() - t0) * 1000) / n;
}
const median = (a: number[]) => [...a].sort((x, y) => x - y)[a.length >> 1]!;

console.log(`node ${process.version}; µs per evidence, median of 7 interleaved rounds of 2,000`);
for (const [name, ev] of cases) {
  const text = canonicalJson(ev);
  if ((await canonicalSha256(ev)) !== createHash('sha256').update(text, 'utf8').digest('hex')) throw new Error(`${name}: hash differs`);
  const floor: number[] = [];
  const ours: number[] = [];
  for (let round = 0; round < 8; round++) {
    const f = await usPer(2000, () => createHash('sha256').update(text, 'utf8').digest('hex'));
    const o = await usPer(2000, () => canonicalSha256(ev));
    if (round === 0) continue; // warm-up
    floor.push(f);
    ours.push(o);
  }
  const [f, o] = [median(floor), median(ours)];
  console.log(`${name}: ${text.length} bytes; floor (one SHA-256 of the text) ${f.toFixed(1)}; canonicalSha256 ${o.toFixed(1)} (${(o / f).toFixed(2)}× floor)`);
}

/**
 * The evidence hash (`evidenceSha256`: SHA-256 of the canonical JSON of the evidence) per attest,
 * the way the broker computes it (streamed into the hash) and the way it did before (the whole
 * canonical text built, then hashed), next to its floor: one SHA-256 over the same number of
 * bytes. Interleaved rounds in one process, medians.
 *
 * Run: npx esbuild bench/evidence-hash.bench.ts --bundle --platform=node --format=esm --packages=external \
 *        --outfile=.cache/bench/evidence-hash.mjs && taskset -c 0 node .cache/bench/evidence-hash.mjs
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { canonicalJson, canonicalSha256 } from '../providers/common/canonical.js';
import { sha256HexOfText } from '../providers/common/digest.js';
import { toBase64 } from '../providers/common/encoding.js';

// Run from the project root (the bundle lives in .cache/bench/).
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
  if ((await canonicalSha256(ev)) !== createHash('sha256').update(text, 'utf8').digest('hex')) throw new Error(`${name}: streamed hash differs`);
  const r = { floor: [] as number[], built: [] as number[], streamed: [] as number[] };
  for (let round = 0; round < 8; round++) {
    const f = await usPer(2000, () => createHash('sha256').update(text, 'utf8').digest('hex'));
    const b = await usPer(2000, () => sha256HexOfText(canonicalJson(ev)));
    const s = await usPer(2000, () => canonicalSha256(ev));
    if (round === 0) continue; // warm-up
    r.floor.push(f);
    r.built.push(b);
    r.streamed.push(s);
  }
  const [f, b, s] = [median(r.floor), median(r.built), median(r.streamed)];
  console.log(`${name}: ${text.length} bytes; floor (one SHA-256) ${f.toFixed(1)}; text built then hashed ${b.toFixed(1)} (${(b / f).toFixed(2)}× floor); streamed ${s.toFixed(1)} (${(s / f).toFixed(2)}× floor)`);
}

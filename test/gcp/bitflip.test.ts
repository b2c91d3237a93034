/**
 * Bit-flip sweep over the protobuf bytes of a real attestation (gce-cos-85-nonce9009.pb).
 *
 * Every byte outside the event log gets one flipped bit (bit index = offset mod 8) and every
 * framing byte (tags and lengths, top level and inside each quote) gets all eight; the event log
 * is sampled. Properties:
 * - nothing escapes as an untyped exception;
 * - no flip in a *content* byte (key, quote, signature, PCR value, certificate) is accepted;
 * - a flip in a *tag* byte may re-number a field. Proto3 then requires the decoder to skip it
 *   (unknown number) or let a later occurrence win (singular field) — the mutant is the same
 *   attestation with one part removed. Such a mutant may be accepted, and then its claims must be
 *   a subset of the original's: a flip can drop information, never add or alter any.
 * - event-log flips (every 13th byte): rejected (replay mismatch, parse error, event data that no
 *   longer hashes to its verified digest), or accepted with claims that are a subset of the
 *   original's (a flipped event *type*, which TCG logs do not measure, can hide an event from the
 *   boot summary — e.g. drop `secureBoot` — but never make it claim anything else).
 */
import { expect, it } from 'vitest';
import { describeVectors, readVector } from '../helpers/vectors.js';
import { topLevelFields } from './pb-encode.js';
import { isSubset, PB_NONCE_9009, sweepInput, verifyForSweep } from './helpers.js';

describeVectors('gcp bit-flip sweep', () => {
  it('no content-byte flip is accepted; tag flips only ever remove parts; all errors typed', async () => {
    const pb = readVector(PB_NONCE_9009);
    const input = await sweepInput();
    const original = await verifyForSweep(pb, input);
    expect(typeof original).toBe('object');

    const fields = topLevelFields(pb);
    const log = fields.find((f) => f.field === 3)!;
    const framing = new Set<number>();
    const tags = new Set<number>();
    const addFraming = (base: number, fs: ReturnType<typeof topLevelFields>) => {
      for (const f of fs) {
        tags.add(base + f.start);
        for (let i = f.start; i < f.bodyStart; i++) framing.add(base + i);
      }
    };
    addFraming(0, fields);
    for (const q of fields.filter((f) => f.field === 2)) {
      const inner = topLevelFields(pb.subarray(q.bodyStart, q.end));
      addFraming(q.bodyStart, inner);
      const pcrs = inner.find((f) => f.field === 3)!;
      const base = q.bodyStart + pcrs.bodyStart;
      const entries = topLevelFields(pb.subarray(base, q.bodyStart + pcrs.end).subarray(2)); // skip `08 xx` (hash enum)
      addFraming(base + 2, entries);
      for (const e of entries) {
        // Inside each map entry: `08 <key>` then `12 <len> <value>`.
        tags.add(base + 2 + e.bodyStart);
        tags.add(base + 2 + e.bodyStart + 2);
        for (let i = e.bodyStart; i < e.bodyStart + 4; i++) framing.add(base + 2 + i);
      }
    }

    const contentAccepted: string[] = [];
    const notSubset: string[] = [];
    const tagAccepted: string[] = [];
    const codes = new Map<string, number>();
    let n = 0;
    const flipAt = async (i: number, bit: number) => {
      const m = pb.slice();
      m[i]! ^= 1 << bit;
      const r = await verifyForSweep(m, input);
      n++;
      if (typeof r === 'string') {
        codes.set(r, (codes.get(r) ?? 0) + 1);
        return;
      }
      if (!isSubset(r, original)) notSubset.push(`byte ${i} bit ${bit}`);
      if (tags.has(i)) tagAccepted.push(`byte ${i} bit ${bit}`);
      else contentAccepted.push(`byte ${i} bit ${bit}`);
    };
    for (let i = 0; i < pb.length; i++) {
      if (i >= log.bodyStart && i < log.end) continue;
      for (const bit of framing.has(i) ? [0, 1, 2, 3, 4, 5, 6, 7] : [i % 8]) await flipAt(i, bit);
    }
    console.log(`bit-flip sweep: ${n} mutants; rejected by code:`, Object.fromEntries(codes), '; tag flips accepted with fewer parts:', tagAccepted);
    expect(contentAccepted).toEqual([]);
    expect(notSubset).toEqual([]);
    expect(n).toBeGreaterThan(5000);
  });
});

/**
 * Event-log part of the bit-flip sweep (split from bitflip.test.ts to run in parallel). Bit-flip sweep over the protobuf bytes of a real attestation (gce-cos-85-nonce9009.pb).
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
 * - event-log flips (every 59th byte): rejected (replay mismatch, parse error, event data that no
 *   longer hashes to its verified digest), or accepted with claims that are a subset of the
 *   original's (a flipped event *type*, which TCG logs do not measure, can hide an event from the
 *   boot summary — e.g. drop `secureBoot` — but never make it claim anything else).
 */
import { expect, it } from 'vitest';
import { describeVectors, readVector } from '../helpers/vectors.js';
import { topLevelFields } from './pb-encode.js';
import { isSubset, PB_NONCE_9009, sweepInput, verifyForSweep } from './helpers.js';

describeVectors('gcp bit-flip sweep over the event log', () => {
  it('event-log flips (every 59th byte) are rejected or only remove claims', async () => {
    const pb = readVector(PB_NONCE_9009);
    const input = await sweepInput();
    const original = await verifyForSweep(pb, input);
    const log = topLevelFields(pb).find((f) => f.field === 3)!;
    const codes = new Map<string, number>();
    let same = 0;
    for (let i = log.bodyStart; i < log.end; i += 59) {
      const m = pb.slice();
      m[i]! ^= 1 << (i % 8);
      const r = await verifyForSweep(m, input);
      if (typeof r === 'string') codes.set(r, (codes.get(r) ?? 0) + 1);
      else {
        // An event's type is not covered by its digest, so a flip there may turn a PCR 4
        // extension into a listed boot app: bootApps may grow (stricter for an allow-list), but
        // no original app may disappear and nothing else may be added or changed.
        const strip = (c: unknown): unknown => {
          const o = structuredClone(c) as { boot?: { bootApps?: string[] } };
          delete o.boot?.bootApps;
          return o;
        };
        expect(isSubset(strip(r), strip(original)), `event-log byte ${i - log.bodyStart}`).toBe(true);
        const apps = (c: unknown): string[] => (c as { boot?: { bootApps?: string[] } }).boot?.bootApps ?? [];
        if ((r as { boot?: unknown }).boot) expect(apps(original).every((a) => apps(r).includes(a)), `event-log byte ${i - log.bodyStart}: a boot app vanished`).toBe(true);
        same++;
      }
    }
    console.log('event-log flips rejected by code:', Object.fromEntries(codes), `; accepted with a subset of the claims: ${same}`);
    expect(codes.get('EVENTLOG_REPLAY_MISMATCH') ?? 0).toBeGreaterThan(30);
  });
});

/**
 * Bit-flip sweep over the real NitroTPM COSE message through the whole provider: one bit in
 * every byte (rotating through the 8 positions) and every bit of the first 16 bytes. Nothing may
 * be accepted and every failure must be a typed AttestError. Its own file: it is the slowest
 * sweep (~5k verifications) and the suite keeps each file under a minute.
 */
import { expect, it } from 'vitest';
import { createAwsProvider } from '../../providers/aws/index.js';
import { AttestError } from '../../providers/common/errors.js';
import { describeVectors } from '../helpers/vectors.js';
import { FIXTURE_TIME, ctxAt, evidenceFor, fixtureDocument } from './fixtures.js';

describeVectors('bit-flip sweep over the real NitroTPM document', () => {
  const doc = fixtureDocument();

  it('bit-flip sweep over the COSE bytes: nothing accepted, nothing crashes', async () => {
    const provider = createAwsProvider();
    const ctx = await ctxAt(FIXTURE_TIME);
    await provider.verify('nitrotpm', evidenceFor(doc), ctx); // warm the chain cache: the sweep then costs ~2 verifies per flip
    const codes = new Map<string, number>();
    // One bit in every byte (rotating through the 8 positions) and every bit of the first 16 bytes.
    const flips: Array<[number, number]> = [];
    for (let i = 0; i < doc.length; i++) flips.push([i, i % 8]);
    for (let i = 0; i < 16; i++) for (let b = 0; b < 8; b++) if (b !== i % 8) flips.push([i, b]);
    for (const [i, bit] of flips) {
      const m = doc.slice();
      m[i] = (m[i] as number) ^ (1 << bit);
      let code = 'ACCEPTED';
      try {
        await provider.verify('nitrotpm', evidenceFor(m), ctx);
      } catch (e) {
        if (!(e instanceof AttestError)) throw new Error(`flip ${i}:${bit} threw an untyped ${String(e)}`, { cause: e });
        code = e.code;
      }
      if (code === 'ACCEPTED') throw new Error(`flip ${i}:${bit} was accepted`);
      codes.set(code, (codes.get(code) ?? 0) + 1);
    }
    expect(codes.has('ACCEPTED')).toBe(false);
    expect(codes.get('COSE_SIGNATURE_INVALID')).toBeGreaterThan(0);
  });
});

/**
 * The embedded AES-256-GCM KMS (providers/local/kms.ts) and its KEK loader: round trip, context
 * binding, KEK rotation, and the envelope parser's truncation sweep, trailing bytes, bit-flip
 * sweep and fuzzing (every failure a typed AttestError).
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalKeyService } from '../../providers/local/kms.js';
import { loadLocalKek, localKeyServiceFrom } from '../../broker/release/local-kek.node.js';
import { AttestError } from '../../providers/common/errors.js';

const ctx = { 'attest-broker:purpose': 'disk-key', 'attest-broker:instance': 'node-1' };

describe('local KMS', () => {
  it('round-trips and binds the context', async () => {
    const kms = await LocalKeyService.create({ kek: randomBytes(32) });
    const key = randomBytes(32);
    const w = await kms.wrap(key, ctx);
    expect(w.length).toBe(25 + 32 + 16);
    expect(Buffer.from(await kms.unwrap(w, ctx))).toEqual(key);
    await expect(kms.unwrap(w, { ...ctx, 'attest-broker:instance': 'node-2' })).rejects.toMatchObject({ code: 'KMS_UNWRAP_FAILED' });
    await expect(kms.unwrap(w, { 'attest-broker:instance': 'node-1', 'attest-broker:purpose': 'disk-key' })).resolves.toBeDefined(); // key order is irrelevant
  });

  it('another KEK cannot unwrap; a retired KEK still can after rotation', async () => {
    const old = randomBytes(32);
    const a = await LocalKeyService.create({ kek: old });
    const w = await a.wrap(randomBytes(32), ctx);
    await expect((await LocalKeyService.create({ kek: randomBytes(32) })).unwrap(w, ctx)).rejects.toMatchObject({ code: 'KMS_UNWRAP_FAILED' });
    const rotated = await LocalKeyService.create({ kek: randomBytes(32), retired: [old] });
    expect(Buffer.from(await rotated.unwrap(w, ctx))).toEqual(Buffer.from(await a.unwrap(w, ctx)));
  });

  it.each([
    { name: 'empty context', c: {}, code: 'KMS_CONTEXT_INVALID' },
    { name: 'control character', c: { a: 'x\ny' }, code: 'KMS_CONTEXT_INVALID' },
    { name: 'key with space', c: { 'a b': 'x' }, code: 'KMS_CONTEXT_INVALID' },
    { name: 'too many entries', c: Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, 'v'])), code: 'KMS_CONTEXT_INVALID' },
    { name: 'value too long', c: { a: 'x'.repeat(257) }, code: 'KMS_CONTEXT_INVALID' },
  ])('refuses a context: $name', async ({ c, code }) => {
    const kms = await LocalKeyService.create({ kek: randomBytes(32) });
    await expect(kms.wrap(randomBytes(32), c)).rejects.toMatchObject({ code });
  });

  it('envelope: every truncation, trailing bytes and every bit flip are refused with a typed code', async () => {
    const kms = await LocalKeyService.create({ kek: randomBytes(32) });
    const w = await kms.wrap(randomBytes(32), ctx);
    for (let n = 0; n < w.length; n++) {
      await expect(kms.unwrap(w.subarray(0, n), ctx)).rejects.toMatchObject({ code: expect.stringMatching(/^KMS_(WRAPPED_MALFORMED|UNWRAP_FAILED)$/) });
    }
    await expect(kms.unwrap(Buffer.concat([w, Buffer.of(0)]), ctx)).rejects.toMatchObject({ code: 'KMS_UNWRAP_FAILED' });
    for (let bit = 0; bit < w.length * 8; bit++) {
      const t = new Uint8Array(w);
      t[bit >> 3]! ^= 1 << (bit & 7);
      await expect(kms.unwrap(t, ctx)).rejects.toMatchObject({ code: expect.stringMatching(/^KMS_(WRAPPED_MALFORMED|UNWRAP_FAILED)$/) });
    }
  });

  it('fuzz: arbitrary bytes never unwrap and never throw anything but an AttestError', async () => {
    const kms = await LocalKeyService.create({ kek: randomBytes(32) });
    const valid = await kms.wrap(randomBytes(32), ctx);
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.uint8Array({ maxLength: 120 }),
          fc.tuple(fc.nat(valid.length - 1), fc.uint8Array({ minLength: 1, maxLength: 8 })).map(([at, junk]) => {
            const t = new Uint8Array(valid);
            t.set(junk.subarray(0, t.length - at), at);
            return t;
          }),
        ),
        async (b) => {
          if (Buffer.from(b).equals(Buffer.from(valid))) return;
          try {
            await kms.unwrap(b, ctx);
            throw new Error('unwrapped garbage');
          } catch (e) {
            expect(e).toBeInstanceOf(AttestError);
          }
        },
      ),
      { numRuns: 10_000 },
    );
  });
});

describe('local KEK loader (Node)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ab-kek-'));

  it('reads raw, hex or base64 from a 0600 file and hex/base64 from the environment', async () => {
    const kek = randomBytes(32);
    for (const [name, content] of [
      ['raw', kek],
      ['hex', Buffer.from(kek.toString('hex') + '\n')],
      ['b64', Buffer.from(kek.toString('base64'))],
    ] as const) {
      const f = join(dir, name);
      writeFileSync(f, content, { mode: 0o600 });
      expect(Buffer.from(loadLocalKek({ file: f }))).toEqual(kek);
    }
    expect(Buffer.from(loadLocalKek({ env: 'KEK', environment: { KEK: kek.toString('hex') } }))).toEqual(kek);
    const kms = await localKeyServiceFrom({ env: 'KEK', environment: { KEK: kek.toString('base64url') } });
    expect(kms.kind).toBe('local');
  });

  it('refuses a group/world-readable file, a short key and a missing variable', () => {
    const f = join(dir, 'open');
    writeFileSync(f, randomBytes(32));
    chmodSync(f, 0o644);
    expect(() => loadLocalKek({ file: f })).toThrowError(expect.objectContaining({ code: 'KMS_KEK_INVALID' }));
    expect(() => loadLocalKek({ env: 'KEK', environment: { KEK: 'abcd' } })).toThrowError(expect.objectContaining({ code: 'KMS_KEK_INVALID' }));
    expect(() => loadLocalKek({ env: 'KEK', environment: {} })).toThrowError(expect.objectContaining({ code: 'KMS_KEK_INVALID' }));
  });
});

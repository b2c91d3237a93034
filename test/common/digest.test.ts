/**
 * The synchronous hash (node:crypto through process.getBuiltinModule) and WebCrypto give the same
 * bytes, and event-log replay gives the same PCRs on either path.
 */
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { digest, digestSync, setSyncHasher, type HashName } from '../../providers/common/digest.js';

const HASHES: HashName[] = ['sha1', 'sha256', 'sha384', 'sha512'];
const web = async (h: HashName, d: Uint8Array) =>
  new Uint8Array(await crypto.subtle.digest({ sha1: 'SHA-1', sha256: 'SHA-256', sha384: 'SHA-384', sha512: 'SHA-512' }[h], d as Uint8Array<ArrayBuffer>));

describe('digest', () => {
  const installed = digestSync();
  afterEach(() => setSyncHasher(installed));

  it('Node has a synchronous hasher', () => {
    expect(installed).not.toBeNull();
  });

  it('the synchronous path equals WebCrypto for every hash, and over concatenated parts', async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...HASHES), fc.uint8Array({ maxLength: 300 }), fc.uint8Array({ maxLength: 40 }), async (h, a, b) => {
        const joined = new Uint8Array([...a, ...b]);
        expect(installed!(h, a, b)).toEqual(await web(h, joined));
        expect(await digest(h, joined)).toEqual(await web(h, joined));
      }),
      { numRuns: 300 },
    );
  });

  it('with the synchronous hasher removed, digest() falls back to WebCrypto', async () => {
    setSyncHasher(null);
    expect(digestSync()).toBeNull();
    const d = new Uint8Array([1, 2, 3]);
    expect(await digest('sha256', d)).toEqual(await web('sha256', d));
  });
});

describe('event-log replay on both hash paths', () => {
  it('every real event log in the vectors replays to the same PCRs with and without the synchronous hasher', async () => {
    const { readdirSync, readFileSync } = await import('node:fs');
    const { parseEventLog, replayEventLog } = await import('../../providers/tpm/eventlog.js');
    const dir = 'test/vectors/go-tpm-tools/eventlogs';
    const files = readdirSync(dir).filter((f) => f.endsWith('.bin'));
    expect(files.length).toBeGreaterThan(5);
    const installed = digestSync();
    let compared = 0;
    try {
      for (const f of files) {
        let log;
        try {
          log = parseEventLog(new Uint8Array(readFileSync(`${dir}/${f}`)));
        } catch {
          continue; // logs the parser refuses are covered by the event-log suite
        }
        setSyncHasher(installed);
        const fast = await replayEventLog(log);
        setSyncHasher(null);
        const slow = await replayEventLog(log);
        expect(fast).toEqual(slow);
        compared++;
      }
    } finally {
      setSyncHasher(installed);
    }
    expect(compared).toBeGreaterThan(5);
  });
});

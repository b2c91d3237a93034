/**
 * Mutation sweeps over a real report through the whole verifier (createNvidiaVerifier):
 * - one bit in every other byte of the signed part (request ‖ response up to the signature) and
 *   of the signature, rotating through the 8 bit positions: nothing is accepted, every
 *   failure is a typed AttestError, and (since the signature is checked before anything is
 *   decoded) it is SIGNATURE_INVALID every time;
 * - every prefix of the report (stride 1 near the structure boundaries, 7 elsewhere): typed
 *   errors only, never a crash or an acceptance.
 * Its own file: ~2,700 verifications through the whole pipeline (~6 ms each).
 */
import { beforeAll, expect, it } from 'vitest';
import { createNvidiaVerifier, type NvidiaVerifier } from '../../providers/nvidia/index.js';
import { AttestError } from '../../providers/common/errors.js';
import { fromHex } from '../../providers/common/encoding.js';
import type { TrustStore } from '../../providers/common/types.js';
import { describeVectors, readVector, readVectorText } from '../helpers/vectors.js';
import { DEVICE_TIME, nvidiaTrust, offlineFetch, reportBytes, SAMPLES } from './fixtures.js';

const NONCE = '931d8dd0add203ac3d8b4fbde75e115278eefcdceac5b87671a748f32364dfcb';

describeVectors('nvidia: mutation sweeps over the nvtrust 550.90.07 report', () => {
  let verifier: NvidiaVerifier;
  let trust: TrustStore;
  let report: Uint8Array;
  let chain: string;
  beforeAll(async () => {
    trust = await nvidiaTrust();
    verifier = createNvidiaVerifier({ measurements: 'report', rims: { service: 'off' }, ocsp: { mode: 'off' } }, { fetch: offlineFetch });
    report = reportBytes(readVectorText(`${SAMPLES}/hopperAttestationReport.txt`));
    chain = Buffer.from(readVector(`${SAMPLES}/hopperCertChain.txt`)).toString('base64');
  });
  const attempt = async (bytes: Uint8Array): Promise<string> => {
    try {
      await verifier.verify([{ arch: 'HOPPER', nonce: NONCE, evidence: Buffer.from(bytes).toString('base64'), certificate: chain }], {
        binding: fromHex(NONCE),
        now: DEVICE_TIME,
        trust,
      });
      return 'ACCEPTED';
    } catch (e) {
      if (!(e instanceof AttestError)) throw new Error(`untyped error: ${String(e)}`, { cause: e });
      return e.code;
    }
  };

  it('control: the unmodified report is accepted', async () => {
    expect(await attempt(report)).toBe('ACCEPTED');
  });

  it('a bit flipped in every other byte (signed part and signature): SIGNATURE_INVALID every time', async () => {
    const codes = new Map<string, number>();
    let flips = 0;
    for (let i = 0; i < report.length; i += 2) {
      const m = report.slice();
      m[i] = (m[i] as number) ^ (1 << ((i >> 1) % 8));
      flips++;
      const code = await attempt(m);
      if (code === 'ACCEPTED') throw new Error(`flip at ${i} was accepted`);
      codes.set(code, (codes.get(code) ?? 0) + 1);
    }
    expect([...codes.entries()]).toEqual([['NVIDIA_SIGNATURE_INVALID', flips]]);
  });

  it('every prefix (dense near boundaries): typed errors only', async () => {
    const boundaries = [0, 37, 45, 45 + 3520, 45 + 3520 + 32, 45 + 3520 + 34, report.length - 96, report.length];
    const near = (n: number): boolean => boundaries.some((b) => Math.abs(n - b) <= 3);
    const codes = new Set<string>();
    for (let n = 0; n < report.length; n++) {
      if (!near(n) && n % 7 !== 0) continue;
      const code = await attempt(report.subarray(0, n));
      expect({ n, code }).not.toEqual({ n, code: 'ACCEPTED' });
      codes.add(code);
    }
    // Empty → the schema refuses it; too short to hold a signature → TRUNCATED; long enough → the
    // last 96 bytes are not the signature.
    expect([...codes].sort()).toEqual(['NVIDIA_EVIDENCE_MALFORMED', 'NVIDIA_SIGNATURE_INVALID', 'TRUNCATED']);
  });
});

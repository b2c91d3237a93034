/**
 * Differential check of the Nitro chain verifier against `openssl verify` (the real tool as an
 * oracle; without -x509_strict, which refuses AWS's leaves for lacking an Authority Key Identifier): the real NitroTPM chain at the fixture time, before and after its validity, and with
 * single bit flips inside each CA certificate's signed part. Both must agree on every case.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseCoseSign1 } from '../../providers/aws/cose.js';
import { decodeDocumentPayload, signingMaterial } from '../../providers/aws/parse.js';
import { verifyNitroChain } from '../../providers/aws/verify.js';
import { parseCertificate } from '../../providers/common/x509.js';
import { PinIds } from '../../providers/common/pins.js';
import { toBase64 } from '../../providers/common/encoding.js';
import { describeVectors } from '../helpers/vectors.js';
import { FIXTURE_TIME, awsTrust, fixtureDocument } from './fixtures.js';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'aws-chain-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const pem = (der: Uint8Array): string => `-----BEGIN CERTIFICATE-----\n${toBase64(der).replace(/(.{64})/g, '$1\n')}\n-----END CERTIFICATE-----\n`;

function opensslAccepts(leaf: Uint8Array, cabundle: readonly Uint8Array[], at: Date): boolean {
  writeFileSync(join(dir, 'root.pem'), pem(cabundle[0]!));
  writeFileSync(join(dir, 'inter.pem'), cabundle.slice(1).map(pem).join(''));
  writeFileSync(join(dir, 'leaf.pem'), pem(leaf));
  const r = spawnSync('openssl', ['verify', '-attime', String(Math.floor(at.getTime() / 1000)), '-CAfile', join(dir, 'root.pem'), '-untrusted', join(dir, 'inter.pem'), join(dir, 'leaf.pem')], { encoding: 'utf8' });
  return r.status === 0;
}

async function oursAccepts(leaf: Uint8Array, cabundle: readonly Uint8Array[], at: Date): Promise<boolean> {
  const anchors = (await awsTrust()).anchors([PinIds.AWS_NITRO_ROOT_G1]);
  try {
    await verifyNitroChain(parseCertificate(leaf), cabundle, anchors, at);
    return true;
  } catch {
    return false;
  }
}

describeVectors('Nitro chain: agreement with openssl verify', () => {
  it('agrees at the fixture time, in 2020, in 2100 and at the leaf expiry edge', async () => {
    const sm = signingMaterial(decodeDocumentPayload(parseCoseSign1(fixtureDocument()).payload));
    for (const [at, want] of [
      [FIXTURE_TIME, true],
      [new Date('2020-01-01T00:00:00Z'), false],
      [new Date('2100-01-01T00:00:00Z'), false],
      [new Date('2026-02-03T13:12:01Z'), true],
      [new Date('2026-02-03T13:12:03Z'), false],
    ] as const) {
      expect(opensslAccepts(sm.certificate, sm.cabundle, at)).toBe(want);
      expect(await oursAccepts(sm.certificate, sm.cabundle, at)).toBe(want);
    }
  });

  it('agrees on single bit flips in the leaf and in every intermediate (nothing accepted)', async () => {
    const sm = signingMaterial(decodeDocumentPayload(parseCoseSign1(fixtureDocument()).payload));
    const certs = [sm.certificate, ...sm.cabundle.slice(1)];
    for (let which = 0; which < certs.length; which++) {
      const der = certs[which]!;
      for (let i = 40; i < der.length; i += Math.max(1, Math.floor(der.length / 12))) {
        const m = der.slice();
        m[i] = (m[i] as number) ^ 0x04;
        const leaf = which === 0 ? m : sm.certificate;
        const bundle = which === 0 ? sm.cabundle : sm.cabundle.map((c, k) => (k === which ? m : c));
        const ossl = opensslAccepts(leaf, bundle, FIXTURE_TIME);
        let ours: boolean;
        try {
          ours = await oursAccepts(leaf, bundle, FIXTURE_TIME);
        } catch {
          ours = false; // leaf no longer parses: rejected
        }
        expect({ which, i, ours }).toEqual({ which, i, ours: false });
        expect({ which, i, ossl }).toEqual({ which, i, ossl: false });
      }
    }
  });
});

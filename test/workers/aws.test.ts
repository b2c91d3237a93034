/**
 * The aws provider inside workerd: the real vaportpm NitroTPM document (with its TPM quote)
 * verifies with Web APIs only, and a flipped signature bit is rejected. The vectors (test/vectors)
 * are bundled in with import.meta.glob; a missing one fails the suite.
 */
import { describe, expect, it } from 'vitest';
import { createAwsProvider } from '../../providers/aws/index.js';
import { anchorFromBytes, createTrustStore } from '../../providers/common/trust.js';
import { BUILTIN_PINS, PinIds } from '../../providers/common/pins.js';
import { fromHex, toBase64, toBase64Url, utf8 } from '../../providers/common/encoding.js';
import { AttestError } from '../../providers/common/errors.js';

const fixtures = import.meta.glob('../vectors/vaportpm/test-nitro-fixture.json', { eager: true, import: 'default' });
const roots = import.meta.glob('../vectors/vaportpm/certs/aws-nitro-root.pem', { eager: true, query: '?raw', import: 'default' });
const fixture = Object.values(fixtures)[0] as
  | { nonce: string; pcrs: { sha384: Record<string, string> }; attestation: { tpm: { ecc_p256: { attest_data: string; signature: string } }; nitro: { document: string } } }
  | undefined;
const rootPem = Object.values(roots)[0] as string | undefined;

if (!fixture || !rootPem) throw new Error('test/vectors/vaportpm files missing from the bundle');

describe('aws nitrotpm in workerd', () => {
  it('verifies the real document with its quote, and rejects a flipped signature bit', async () => {
    const f = fixture!;
    const pin = BUILTIN_PINS.find((p) => p.id === PinIds.AWS_NITRO_ROOT_G1)!;
    const trust = createTrustStore([await anchorFromBytes(pin, utf8(rootPem!))]);
    const ctx = { binding: fromHex(f.nonce), now: new Date('2026-02-03T11:00:00Z'), fetch, trust, options: {} };
    const doc = fromHex(f.attestation.nitro.document);
    const quote = {
      message: toBase64Url(fromHex(f.attestation.tpm.ecc_p256.attest_data)),
      signature: toBase64Url(fromHex(f.attestation.tpm.ecc_p256.signature)),
      pcrs: { sha384: f.pcrs.sha384 },
    };
    const p = createAwsProvider();
    const claims = await p.verify('nitrotpm', { document: toBase64(doc), quote }, ctx);
    expect(claims.identity).toMatchObject({ instanceId: 'i-01cfb383223e42522', region: 'us-east-1' });
    expect(claims.platform.fields?.tpmQuoteVerified).toBe(true);
    const bad = doc.slice();
    bad[bad.length - 1] = (bad[bad.length - 1] as number) ^ 1;
    const err = await p.verify('nitrotpm', { document: toBase64(bad) }, ctx).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AttestError);
    expect((err as AttestError).code).toBe('COSE_SIGNATURE_INVALID');
  });
});

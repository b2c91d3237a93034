/**
 * The gcp provider inside workerd: the real vaportpm GCP fixture (current Google EK/AK CA,
 * ECC P-256 AK) verifies with Web APIs only, and a tampered copy fails with the same code as on
 * Node. Fixture and root (test/vectors) are bundled at build time with `import.meta.glob`.
 */
import { describe, expect, it } from 'vitest';
import { BUILTIN_PINS, PinIds } from '../../providers/common/pins.js';
import { anchorFromBytes, createTrustStore } from '../../providers/common/trust.js';
import { fromHex, utf8 } from '../../providers/common/encoding.js';
import { AttestError } from '../../providers/common/errors.js';
import { createGcpProvider } from '../../providers/gcp/index.js';

interface Fixture {
  nonce: string;
  pcrs: { sha256: Record<string, string> };
}
const fixtures = import.meta.glob<Fixture>('../vectors/vaportpm/test-gcp-amd-fixture.json', { eager: true, import: 'default' });
const roots = import.meta.glob<string>('../vectors/vaportpm/certs/gcp-ekak-root.pem', { eager: true, import: 'default', query: '?raw' });
const fixture = Object.values(fixtures)[0];
const rootPem = Object.values(roots)[0];
if (!fixture || !rootPem) throw new Error('test/vectors/vaportpm files missing from the bundle');

describe('gcp provider in workerd', () => {
  it('verifies test-gcp-amd-fixture.json at its pinned time; a changed PCR is PCR_DIGEST_MISMATCH', async () => {
    const pin = BUILTIN_PINS.find((p) => p.id === PinIds.GOOGLE_EKAK_ROOT)!;
    const trust = createTrustStore([await anchorFromBytes(pin, utf8(rootPem!))]);
    const ctx = {
      binding: fromHex(fixture!.nonce),
      now: new Date(1770019200 * 1000),
      trust,
      fetch: globalThis.fetch,
      options: {},
    };
    const p = createGcpProvider();
    const claims = await p.verify('vaportpm-gcp', fixture, ctx);
    expect(claims.identity).toMatchObject({ account: 'lockboot', zone: 'us-central1-f', instanceId: '3414240648225485836' });
    const bad = structuredClone(fixture!);
    bad.pcrs.sha256['7'] = '00'.repeat(32);
    const err = await p.verify('vaportpm-gcp', bad, ctx).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AttestError);
    expect((err as AttestError).code).toBe('PCR_DIGEST_MISMATCH');
  });
});

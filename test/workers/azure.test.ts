/// <reference types="vite/client" />
/**
 * Inside workerd: the SEV-SNP and TDX layers and the `azure` provider verify real Azure evidence
 * with the Workers runtime's WebCrypto (P-384, P-256, RSA-PSS through @peculiar/x509, RSA
 * PKCS#1). The vectors (test/vectors) come through the bundler (`import.meta.glob`, raw text).
 */
import { describe, expect, it } from 'vitest';
import { BUILTIN_PINS, PinIds } from '../../providers/common/pins.js';
import { anchorFromBytes, createTrustStore } from '../../providers/common/trust.js';
import { createAzureProvider } from '../../providers/azure/index.js';


const files = import.meta.glob(
  [
    '../vectors/trustee/az-snp-vtpm/evidence-v1.json',
    '../vectors/trustee/az-tdx-vtpm/evidence-v1.json',
    '../vectors/trustee/amd-roots/milan_ask_ark_asvk.pem',
    '../vectors/go-tdx-guest/trusted_root.pem',
  ],
  { query: '?raw', import: 'default', eager: true },
) as Record<string, string>;
const file = (tail: string): string => {
  const k = Object.keys(files).find((f) => f.endsWith(tail));
  if (!k) throw new Error(`vector ${tail} missing`);
  return files[k]!;
};
const have = Object.keys(files).length === 4;
const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);

if (!have) throw new Error('test/vectors files missing from the bundle');

describe('azure provider inside workerd', () => {
  const trust = async () => {
    const pin = (id: string) => BUILTIN_PINS.find((p) => p.id === id)!;
    return createTrustStore([
      await anchorFromBytes(pin(PinIds.AMD_ARK_MILAN), utf8(file('milan_ask_ark_asvk.pem'))),
      await anchorFromBytes(pin(PinIds.INTEL_SGX_ROOT), utf8(file('trusted_root.pem'))),
    ]);
  };
  const noNetwork = (() => Promise.reject(new Error('no network in this test'))) as typeof fetch;

  it('az-snp-vtpm v1 verifies (ASK from configuration, no network)', async () => {
    const p = createAzureProvider({ amdIntermediatesPem: file('milan_ask_ark_asvk.pem') });
    const c = await p.verify('az-snp-vtpm', JSON.parse(file('az-snp-vtpm/evidence-v1.json')), {
      binding: utf8('challenge'),
      now: new Date('2025-06-01T00:00:00Z'),
      fetch: noNetwork,
      trust: await trust(),
      options: {},
    });
    expect(c.platform.tee).toBe('sev-snp');
    expect(c.tpm?.pcrs.sha256?.[0]).toBe('e15c44796beabf46abcec7c57e590942041e47497e4ec27571c8b7664f48dced');
  });

  it('az-tdx-vtpm v1 verifies; a reversed nonce is NONCE_MISMATCH', async () => {
    const p = createAzureProvider();
    const ctx = { binding: utf8('challenge'), now: new Date('2025-06-01T00:00:00Z'), fetch: noNetwork, trust: await trust(), options: {} };
    const ev = JSON.parse(file('az-tdx-vtpm/evidence-v1.json'));
    const c = await p.verify('az-tdx-vtpm', ev, ctx);
    expect(c.platform.measurement).toBe('024a32b070383331181619fa387cb4d55d1e38879f989933055ccad5bc2db795d1737b66205949d15469dc8c1ba7ab7b');
    let code = 'NO_ERROR';
    try {
      await p.verify('az-tdx-vtpm', ev, { ...ctx, binding: utf8('egnellahc') });
    } catch (e) {
      code = (e as { code?: string }).code ?? 'UNTYPED';
    }
    expect(code).toBe('NONCE_MISMATCH');
  });
});

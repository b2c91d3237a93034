import type {} from './test/workers/provided.js';
import { defineConfig } from 'vitest/config';
import { cloudflareTest } from '@cloudflare/vitest-pool-workers';

/**
 * Tests that run inside workerd with the Worker entry and its Durable Object store.
 *
 * The pool options are a function of what the global setup provides (the pool calls it after
 * test/workers/kms-servers.setup.ts ran): the test CA of the local Key Vault server is added to
 * the trusted certificates of the network that carries the Worker's outbound fetch. That network
 * is Miniflare's default one ("internet": public and private addresses, the public CAs) plus that
 * one CA, so the broker's Key Vault REST client does real TLS to the local server inside workerd.
 */
export default defineConfig({
  plugins: [
    cloudflareTest(({ inject }) => ({
      wrangler: { configPath: './wrangler.toml' },
      miniflare: {
        compatibilityFlags: ['nodejs_compat'],
        bindings: { LOG_LEVEL: 'warn' },
        outboundService: {
          network: {
            allow: ['public', 'private', '240.0.0.0/4'],
            deny: [],
            tlsOptions: { trustBrowserCas: true, trustedCertificates: [inject('azureKeyVault').caPem] },
          },
        },
      },
    })),
  ],
  test: {
    name: 'workers',
    include: ['test/workers/**/*.test.ts'],
    globalSetup: ['test/workers/kms-servers.setup.ts'],
  },
});

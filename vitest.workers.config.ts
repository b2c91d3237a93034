import { defineConfig } from 'vitest/config';
import { cloudflareTest } from '@cloudflare/vitest-pool-workers';

/** Tests that run inside workerd with the Worker entry and its Durable Object store. */
export default defineConfig({
  plugins: [
    cloudflareTest({
      wrangler: { configPath: './wrangler.toml' },
      miniflare: { compatibilityFlags: ['nodejs_compat'], bindings: { LOG_LEVEL: 'warn' } },
    }),
  ],
  test: {
    name: 'workers',
    include: ['test/workers/**/*.test.ts'],
    globalSetup: ['test/workers/kms-servers.setup.ts'],
  },
});

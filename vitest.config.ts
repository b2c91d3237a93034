import { defineConfig } from 'vitest/config';

/**
 * Two projects:
 * - `node`: unit, integration and end-to-end tests on Node (real redis-server, swtpm, tpm2-tools).
 * - `workers`: the same app and the Durable Object store inside workerd
 *   (see vitest.workers.config.ts).
 */
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'node',
          include: ['test/**/*.test.ts', 'providers/**/*.test.ts', 'broker/**/*.test.ts'],
          exclude: ['test/workers/**', 'node_modules/**'],
          testTimeout: 60_000,
          // Every tool the suite drives must be installed: a missing one fails the run, never skips.
          globalSetup: ['test/global-setup.ts'],
          hookTimeout: 60_000,
          pool: 'forks',
        },
      },
      './vitest.workers.config.ts',
    ],
  },
});

import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';

/**
 * Test files run in parallel processes. Most of the node suite waits on the programs it drives
 * (swtpm, redis-server, tpm2-tools, the broker it starts), so it runs one file more than the
 * machine has cores (Vitest's own default, cores - 1, is a single process on a 2-core CI
 * machine). ATTEST_TEST_WORKERS overrides it.
 */
const testWorkers = Number(process.env.ATTEST_TEST_WORKERS) || availableParallelism() + 1;

/**
 * Two projects:
 * - `node`: unit, integration and end-to-end tests on Node (real redis-server, swtpm, tpm2-tools).
 * - `workers`: the same app and the Durable Object store inside workerd
 *   (see vitest.workers.config.ts).
 */
export default defineConfig({
  test: {
    maxWorkers: testWorkers,
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

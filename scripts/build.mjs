// Bundles the Node entry (server + CLI) into dist/ so `npx attest-broker` works right after
// `npm ci` (npm runs this as `prepare`). Dependencies stay external (node_modules).
// Also puts the node clients the broker serves (GET /v1/client/<name>) into dist/clients/: the
// single-file join client (every dependency inlined) and the POSIX shell client.
import { build } from 'esbuild';
import { chmodSync, copyFileSync, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { clientBundleOptions, ESM_BANNER } from './client-bundle.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

await build({
  entryPoints: { node: 'broker/node.ts' },
  outdir: 'dist',
  outExtension: { '.js': '.mjs' },
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20.19',
  packages: 'external',
  sourcemap: true,
  logLevel: 'warning',
});

const clients = join(root, 'dist/clients');
mkdirSync(clients, { recursive: true });
await build({ ...clientBundleOptions(root), format: 'esm', outfile: join(clients, 'attest-join.mjs'), banner: ESM_BANNER });
copyFileSync(join(root, 'deploy/node/attest-join.sh'), join(clients, 'attest-join.sh'));
for (const f of ['attest-join.mjs', 'attest-join.sh']) chmodSync(join(clients, f), 0o755);

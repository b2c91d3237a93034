// Bundles the Node entry (server + CLI) into dist/ so `npx attest-broker` works right after
// `npm ci` (npm runs this as `prepare`). Dependencies stay external (node_modules).
// Also puts the node clients the broker serves (GET /v1/client/<name>) into dist/clients/: the
// single-file join client (every dependency inlined) and the POSIX shell client.
// Every file is written to a temporary name and renamed into place, so a process reading dist/
// while another build runs (parallel test files) never sees a half-written file.
import { build } from 'esbuild';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { clientBundleOptions, ESM_BANNER } from './client-bundle.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

function put(path, contents, mode = 0o644) {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, contents, { mode });
  renameSync(tmp, path);
}

async function bundle(options, mode) {
  const r = await build({ ...options, write: false });
  for (const f of r.outputFiles) put(f.path, f.contents, mode);
}

await bundle(
  {
    entryPoints: { node: join(root, 'broker/node.ts') },
    outdir: join(root, 'dist'),
    outExtension: { '.js': '.mjs' },
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20.19',
    packages: 'external',
    sourcemap: true,
    logLevel: 'warning',
  },
  0o644,
);

const clients = join(root, 'dist/clients');
await bundle({ ...clientBundleOptions(root), format: 'esm', outfile: join(clients, 'attest-join.mjs'), banner: ESM_BANNER }, 0o755);
put(join(clients, 'attest-join.sh'), readFileSync(join(root, 'deploy/node/attest-join.sh')), 0o755);

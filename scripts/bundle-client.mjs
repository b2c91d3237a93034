#!/usr/bin/env node
// Builds the join client for nodes without npm:
//   dist/attest-join.mjs  one ESM file, every dependency inlined (run: node attest-join.mjs …)
//   dist/attest-join.cjs  the same as CommonJS (what Node's single-executable support runs)
//   dist/attest-join      a Node single-executable application (SEA) of the .cjs, when it can
//                         be built: `node --experimental-sea-config` makes the blob and postject
//                         injects it into a copy of this node binary (Node ≥ 25.5 can do both
//                         with `--build-sea`; used when available).
// Usage: node scripts/bundle-client.mjs [--no-sea] [--outdir DIR]   (default DIR: dist/)
// Exit 0 with a message when SEA cannot be built here (the bundles are still produced).
import { build } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, rmSync, statSync, writeFileSync, chmodSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { clientBundleOptions, ESM_BANNER } from './client-bundle.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const oi = process.argv.indexOf('--outdir');
const dist = oi > 0 && process.argv[oi + 1] ? resolve(process.argv[oi + 1]) : join(root, 'dist');
mkdirSync(dist, { recursive: true });
const common = clientBundleOptions(root);

await build({ ...common, format: 'esm', outfile: join(dist, 'attest-join.mjs'), banner: ESM_BANNER });
chmodSync(join(dist, 'attest-join.mjs'), 0o755);
await build({ ...common, format: 'cjs', outfile: join(dist, 'attest-join.cjs') });
const kb = (f) => `${(statSync(join(dist, f)).size / 1024).toFixed(0)} KiB`;
console.log(`bundled ${dist}/attest-join.mjs (${kb('attest-join.mjs')}), attest-join.cjs (${kb('attest-join.cjs')})`);

if (process.argv.includes('--no-sea')) process.exit(0);

const seaConfig = join(dist, 'sea-config.json');
const blob = join(dist, 'attest-join.blob');
const exe = join(dist, 'attest-join');
writeFileSync(seaConfig, JSON.stringify({ main: join(dist, 'attest-join.cjs'), output: blob, disableExperimentalSEAWarning: true, useCodeCache: false }, null, 2));
const [major, minor] = process.versions.node.split('.').map(Number);
try {
  rmSync(exe, { force: true });
  if (major > 25 || (major === 25 && minor >= 5)) {
    writeFileSync(seaConfig, JSON.stringify({ main: join(dist, 'attest-join.cjs'), output: exe, executable: process.execPath, disableExperimentalSEAWarning: true }, null, 2));
    execFileSync(process.execPath, ['--build-sea', seaConfig], { stdio: 'inherit' });
  } else {
    execFileSync(process.execPath, ['--experimental-sea-config', seaConfig], { stdio: 'inherit' });
    copyFileSync(process.execPath, exe);
    chmodSync(exe, 0o755);
    const local = join(root, 'node_modules/.bin/postject');
    const [cmd, pre] = existsSync(local) ? [local, []] : ['npx', ['--yes', 'postject@1.0.0-alpha.6']];
    execFileSync(cmd, [...pre, exe, 'NODE_SEA_BLOB', blob, '--sentinel-fuse', 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2'], { stdio: 'inherit' });
  }
  console.log(`built single executable ${exe} (${kb('attest-join')}, Node ${process.versions.node})`);
} catch (e) {
  rmSync(exe, { force: true });
  console.log(`single executable not built here: ${e.message.split('\n')[0]} (the .mjs bundle runs with any node ≥ 20.19)`);
} finally {
  rmSync(blob, { force: true });
  rmSync(seaConfig, { force: true });
}

// Bundles the Node entry (server + CLI) into dist/ so `npx attest-broker` works right after
// `npm ci` (npm runs this as `prepare`). Dependencies stay external (node_modules).
// Also puts the node clients the broker serves (GET /v1/client/<name>) into dist/clients/: the
// single-file join client (every dependency inlined) and the POSIX shell client.
// Every file is written to a temporary name and renamed into place, so a process reading dist/
// while another build runs (parallel test files) never sees a half-written file.
//
// `node scripts/build.mjs --standalone DIR` (the container image, deploy/container/Dockerfile)
// writes a complete application tree to DIR instead: bin/, package.json, dist/node.mjs with every
// dependency bundled in, dist/clients/, and DIR/node_modules holding only what cannot be bundled
// (STANDALONE_EXTERNAL and the packages they depend on, copied from the lockfile-installed
// node_modules). Nothing else of node_modules goes into the image.
import { build } from 'esbuild';
import { cpSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { clientBundleOptions, ESM_BANNER } from './client-bundle.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/**
 * Packages left out of the standalone bundle: google-gax (under @google-cloud/kms) reads its
 * .proto/.json files from its own package directory at run time (`__dirname`), which a bundle
 * does not have. Loaded only when `release.kms.kind: gcp-kms`.
 */
export const STANDALONE_EXTERNAL = ['@google-cloud/kms'];

const standaloneAt = process.argv.indexOf('--standalone');
const standaloneDir = standaloneAt >= 0 ? resolve(process.argv[standaloneAt + 1] ?? '') : undefined;
if (standaloneAt >= 0 && !process.argv[standaloneAt + 1]) {
  process.stderr.write('usage: node scripts/build.mjs --standalone DIR\n');
  process.exit(2);
}

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

/**
 * The installed packages `names` need at run time: each package directory and, recursively, the
 * directories its dependencies resolve to (Node's lookup: the package's own node_modules, then
 * each parent's). Paths relative to the repository root.
 */
function dependencyClosure(names) {
  const out = new Set();
  const visit = (name, from, optional) => {
    for (let d = from; ; d = dirname(d)) {
      const dir = join(d, 'node_modules', name);
      if (existsSync(join(dir, 'package.json'))) {
        const rel = dir.slice(root.length + 1);
        if (out.has(rel)) return;
        out.add(rel);
        const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
        for (const dep of Object.keys(pkg.dependencies ?? {})) visit(dep, dir, false);
        for (const dep of Object.keys(pkg.optionalDependencies ?? {})) visit(dep, dir, true);
        return;
      }
      if (d === root) {
        if (optional) return;
        throw new Error(`${name} (needed from ${from}) is not installed: run npm ci first`);
      }
    }
  };
  for (const n of names) visit(n, root, false);
  return [...out].sort();
}

const out = standaloneDir ?? root;
await bundle(
  {
    entryPoints: { node: join(root, 'broker/node.ts') },
    outdir: join(out, 'dist'),
    outExtension: { '.js': '.mjs' },
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20.19',
    sourcemap: true,
    logLevel: 'warning',
    ...(standaloneDir
      ? // Bundled CommonJS dependencies call require(): give the ES module one.
        { external: STANDALONE_EXTERNAL, banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" } }
      : { packages: 'external' }),
  },
  0o644,
);

if (standaloneDir) {
  rmSync(join(out, 'node_modules'), { recursive: true, force: true });
  for (const rel of dependencyClosure(STANDALONE_EXTERNAL)) {
    // Each package without its nested node_modules (those are packages of the closure themselves).
    cpSync(join(root, rel), join(out, rel), { recursive: true, filter: (src) => !src.slice(root.length + 1 + rel.length).includes('/node_modules') });
  }
  cpSync(join(root, 'bin'), join(out, 'bin'), { recursive: true });
  put(join(out, 'package.json'), readFileSync(join(root, 'package.json')));
}

const clients = join(out, 'dist/clients');
await bundle({ ...clientBundleOptions(root), format: 'esm', outfile: join(clients, 'attest-join.mjs'), banner: ESM_BANNER }, 0o755);
put(join(clients, 'attest-join.sh'), readFileSync(join(root, 'deploy/node/attest-join.sh')), 0o755);

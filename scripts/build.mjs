// Bundles the Node entry (server + CLI) into dist/ so `npx attest-broker` works right after
// `npm ci` (npm runs this as `prepare`). Dependencies stay external (node_modules).
import { build } from 'esbuild';

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

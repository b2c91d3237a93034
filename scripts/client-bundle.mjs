// The join client's esbuild options, shared by scripts/build.mjs (dist/clients/, what the broker
// serves at GET /v1/client/<name>) and scripts/bundle-client.mjs (dist/, plus the .cjs and SEA).
import { join } from 'node:path';

export function clientBundleOptions(root) {
  return {
    entryPoints: [join(root, 'deploy/node/client/main.node.ts')],
    bundle: true,
    platform: 'node',
    target: 'node20.19',
    legalComments: 'none',
    logLevel: 'warning',
    minifySyntax: true,
  };
}

/** ESM: CommonJS dependencies inside an ESM bundle need a `require` for node: builtins. */
export const ESM_BANNER = { js: "#!/usr/bin/env node\nimport { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" };

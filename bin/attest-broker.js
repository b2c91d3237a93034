#!/usr/bin/env node
// The `attest-broker` command. The TypeScript sources are bundled into dist/ by `npm run build`,
// which npm runs automatically (as `prepare`) on `npm ci` / `npm install` in a checkout.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const entry = new URL('../dist/node.mjs', import.meta.url);
if (!existsSync(fileURLToPath(entry))) {
  process.stderr.write('attest-broker: dist/node.mjs is missing; run `npm run build` (npm ci runs it for you)\n');
  process.exit(2);
}
await import(entry.href);

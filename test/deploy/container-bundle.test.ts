/**
 * The container image's contents (deploy/container/Dockerfile), checked without Docker (it
 * cannot build or pull here):
 * - the Dockerfile: both base images pinned by digest (the build image by its recorded digest;
 *   the runtime image passed in, and the guard that stops an unpinned build is run here with
 *   good and bad values), the runtime stage copies the standalone tree and nothing of the build
 *   stage's node_modules;
 * - `scripts/build.mjs --standalone DIR`, the step the image runs: DIR holds the bundle, and its
 *   node_modules only @google-cloud/kms's dependency closure; the bundle imports nothing else
 *   but Node's built-ins; run from outside the repository (so the repository's node_modules
 *   cannot be found), `version` works and `serve` answers /healthz and /metrics with Cloud KMS
 *   configured (the one dependency loaded from node_modules).
 */
import { execFile, execFileSync, spawn } from 'node:child_process';
import { builtinModules } from 'node:module';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const df = readFileSync('deploy/container/Dockerfile', 'utf8');
const lines = df.split('\n').filter((l) => !l.startsWith('#'));

describe('deploy/container/Dockerfile', () => {
  it('both base images pinned by digest; the build image by the recorded one, the runtime image required', () => {
    expect(lines.filter((l) => /^FROM /.test(l))).toEqual(['FROM ${BUILD_IMAGE} AS build', 'FROM ${RUNTIME_IMAGE} AS runtime']);
    expect(df).toMatch(/^ARG BUILD_IMAGE=node:24-bookworm-slim@sha256:a9f5f7c91a432850b2a8a7797adf5eadb6c733ceed61167806cee7ea7fbc29df$/m);
    expect(df).toMatch(/^ARG RUNTIME_IMAGE$/m); // no default: the builder passes a digest
    expect(df).not.toMatch(/:latest\b/);
    expect(lines.some((l) => /^ADD /.test(l))).toBe(false);
  });

  it('the guard stops any RUNTIME_IMAGE that is not a distroless nonroot image pinned by sha256', async () => {
    // The guard's command, as the build stage runs it (RUN … \ continuation joined).
    const i = lines.findIndex((l) => l.startsWith("RUN printf '%s' \"${RUNTIME_IMAGE}\""));
    expect(i).toBeGreaterThan(0);
    const guard = `${lines[i]!.replace(/^RUN /, '').replace(/\\$/, '')}${lines[i + 1]}`; // Docker drops the backslash-newline
    const code = (image: string): Promise<number> =>
      run('sh', ['-c', guard], { env: { ...process.env, RUNTIME_IMAGE: image } }).then(
        () => 0,
        (e: { code: number }) => e.code,
      );
    const digest = 'ab'.repeat(32);
    expect(await code(`gcr.io/distroless/nodejs24-debian12:nonroot@sha256:${digest}`)).toBe(0);
    for (const bad of [
      '',
      'gcr.io/distroless/nodejs24-debian12:nonroot',
      `gcr.io/distroless/nodejs24-debian12@sha256:${digest}`, // root variant
      `gcr.io/distroless/nodejs24-debian12:nonroot@sha256:${digest.slice(2)}`,
      `gcr.io/distroless/nodejs24-debian12:nonroot@sha256:${digest.toUpperCase()}`,
      `evil.example/distroless/nodejs24-debian12:nonroot@sha256:${digest}`,
      `gcr.io/distroless/nodejs24-debian12:nonroot@sha256:${digest}; rm -rf /`,
    ]) {
      expect(await code(bad), bad).toBe(1);
    }
  });

  it('runtime stage: the standalone tree only, non-root, nothing written after USER, health check', () => {
    const runtime = lines.slice(lines.findIndex((l) => l.startsWith('FROM ${RUNTIME_IMAGE}')));
    expect(runtime.filter((l) => /^(COPY|RUN|ADD) /.test(l))).toEqual(['COPY --from=build /out /app']);
    expect(df).toMatch(/RUN node scripts\/build\.mjs --standalone \/out/);
    expect(df).not.toMatch(/node_modules \.\/node_modules|\/src\/node_modules/);
    expect(df).toMatch(/npm ci --ignore-scripts/);
    expect(df).toMatch(/^USER 65532:65532$/m);
    expect(df).toMatch(/^HEALTHCHECK /m);
    const afterUser = lines.slice(lines.findIndex((l) => l.startsWith('USER '))).filter((l) => /^(RUN|COPY) /.test(l));
    expect(afterUser).toEqual([]);
  });
});

describe('scripts/build.mjs --standalone (what the image runs)', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'ab-standalone-'));
    execFileSync(process.execPath, ['scripts/build.mjs', '--standalone', dir], { stdio: 'pipe' });
  }, 120_000);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('the tree: bin, package.json, the bundle, the node clients; node_modules only for Cloud KMS', () => {
    expect(readdirSync(dir).sort()).toEqual(['bin', 'dist', 'node_modules', 'package.json']);
    expect(readdirSync(join(dir, 'dist')).sort()).toEqual(['clients', 'node.mjs', 'node.mjs.map']);
    expect(existsSync(join(dir, 'node_modules/@google-cloud/kms/package.json'))).toBe(true);
    // node_modules is exactly a dependency closure: every package in it is @google-cloud/kms or
    // declared as a dependency by a package in it.
    const installed = readdirSync(join(dir, 'node_modules')).flatMap((n) => (n.startsWith('@') ? readdirSync(join(dir, 'node_modules', n)).map((m) => `${n}/${m}`) : [n]));
    const declared = new Set(['@google-cloud/kms']);
    const walk = (d: string): void => {
      for (const n of readdirSync(d)) {
        const p = join(d, n);
        if (n.startsWith('@')) walk(p);
        else if (existsSync(join(p, 'package.json'))) {
          const j = JSON.parse(readFileSync(join(p, 'package.json'), 'utf8')) as { dependencies?: object; optionalDependencies?: object };
          for (const k of Object.keys({ ...j.dependencies, ...j.optionalDependencies })) declared.add(k);
          if (existsSync(join(p, 'node_modules'))) walk(join(p, 'node_modules'));
        }
      }
    };
    walk(join(dir, 'node_modules'));
    expect(installed.filter((n) => !declared.has(n))).toEqual([]);
    // The broker's own runtime dependencies are inside the bundle, not beside it.
    const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { dependencies: Record<string, string> };
    const beside = Object.keys(pkg.dependencies).filter((n) => n !== '@google-cloud/kms' && existsSync(join(dir, 'node_modules', n)));
    expect(beside).toEqual([]);
    for (const dev of ['vitest', 'typescript', 'esbuild', 'kubernetes-models', 'wrangler']) expect(existsSync(join(dir, 'node_modules', dev)), dev).toBe(false);
  });

  it('the bundle imports only Node built-ins, and @google-cloud/kms (lazily, for gcp-kms)', () => {
    const code = readFileSync(join(dir, 'dist/node.mjs'), 'utf8');
    const specifiers = new Set<string>();
    for (const m of code.matchAll(/^import [^;]*? from "([^"]+)";$/gm)) specifiers.add(m[1]!);
    for (const m of code.matchAll(/^import "([^"]+)";$/gm)) specifiers.add(m[1]!);
    for (const m of code.matchAll(/\b(?:__require|import)\("([^"]+)"\)/g)) specifiers.add(m[1]!);
    const builtin = new Set(builtinModules);
    const foreign = [...specifiers].filter((s) => !s.startsWith('node:') && !builtin.has(s));
    expect(foreign).toEqual(['@google-cloud/kms']);
    expect(code).toMatch(/await import\("@google-cloud\/kms"\)/);
  });

  it('runs outside the repository: version, and serve with Cloud KMS configured answers /healthz and /metrics', async () => {
    const { stdout } = await run(process.execPath, [join(dir, 'bin/attest-broker.js'), 'version'], { cwd: dir });
    expect(JSON.parse(stdout)).toMatchObject({ name: 'attest-broker', version: JSON.parse(readFileSync('package.json', 'utf8')).version });
    const cfg = join(dir, 'config.yaml');
    writeFileSync(
      cfg,
      [
        'listen: { host: 127.0.0.1, port: 0 }',
        'metrics: { listen: { host: 127.0.0.1, port: 0 } }',
        `trust: { dir: ${join(dir, 'trust')} }`,
        'providers: { tpm: { enabled: true } }',
        'release:',
        '  mode: dev',
        '  kms: { kind: gcp-kms, keyName: projects/proj-1/locations/global/keyRings/r1/cryptoKeys/k1 }',
        '',
      ].join('\n'),
    );
    // No cloud credentials or metadata server: the Cloud KMS client is built but never called.
    const child = spawn(process.execPath, [join(dir, 'bin/attest-broker.js'), 'serve', '--config', cfg], {
      cwd: dir,
      env: { PATH: process.env.PATH ?? '', HOME: dir, GCE_METADATA_HOST: '127.0.0.1:1', METADATA_SERVER_DETECTION: 'none' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    try {
      let main: string | undefined;
      let metrics: string | undefined;
      for (let i = 0; i < 300 && !(main && metrics); i++) {
        main = /attest-broker listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(out)?.[1];
        metrics = /metrics listening on (http:\/\/127\.0\.0\.1:\d+)\/metrics/.exec(out)?.[1];
        if (child.exitCode !== null) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(main, out).toBeDefined();
      expect((await fetch(`${main}/healthz`)).status).toBe(200);
      const m = await (await fetch(`${metrics}/metrics`)).text();
      expect(m).toMatch(/^attest_broker_build_info\{version="[^"]+",runtime="node"\} 1$/m);
      expect(m).toMatch(/^process_start_time_seconds /m);
    } finally {
      child.kill('SIGTERM');
      await new Promise((r) => (child.exitCode !== null ? r(null) : child.once('exit', r)));
    }
  }, 60_000);
});

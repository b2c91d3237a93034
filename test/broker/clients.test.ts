/**
 * GET /v1/client/<name>: the node clients the boot-time installer fetches. Served exactly as
 * loaded (bytes and RFC 9530 Repr-Digest), nothing else by that path, rate-limited like a
 * challenge. The files are the ones the build writes (dist/clients), read by the Node runtime's
 * own loader.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadClients } from '../../broker/runtime.node.js';
import type { ClientFile } from '../../broker/app.js';
import { ensureBuilt, ROOT } from '../helpers/cli.js';
import { captureLogger, testBroker } from '../helpers/broker.js';

let clients: Map<string, ClientFile>;
beforeAll(async () => {
  ensureBuilt();
  clients = await loadClients(join(ROOT, 'dist/clients'), captureLogger().logger);
});

describe('GET /v1/client/<name>', () => {
  it('serves both clients byte for byte with their Repr-Digest', async () => {
    const { app } = testBroker({ clients });
    for (const [name, type] of [['attest-join.sh', 'text/x-shellscript'], ['attest-join.mjs', 'text/javascript']] as const) {
      const res = await app.request(`/v1/client/${name}`);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toContain(type);
      const body = new Uint8Array(await res.arrayBuffer());
      const disk = readFileSync(join(ROOT, 'dist/clients', name));
      expect(Buffer.from(body).equals(disk)).toBe(true);
      expect(res.headers.get('repr-digest')).toBe(`sha-256=:${createHash('sha256').update(disk).digest('base64')}:`);
    }
    // The shell client the broker serves is the one in deploy/node.
    expect(readFileSync(join(ROOT, 'dist/clients/attest-join.sh'), 'utf8')).toBe(readFileSync(join(ROOT, 'deploy/node/attest-join.sh'), 'utf8'));
  });

  it.each(['attest-join', 'config.yaml', '..%2f..%2fpackage.json', '%2e%2e', 'attest-join.sh%00', 'ATTEST-JOIN.SH'])('answers 404 NOT_FOUND for %s, nothing else', async (name) => {
    const { app } = testBroker({ clients });
    const res = await app.request(`/v1/client/${name}`);
    expect(res.status).toBe(404);
    expect(((await res.json()) as { code: string }).code).toBe('NOT_FOUND');
  });

  it('answers 404 for every name when the broker has no client files', async () => {
    const { app } = testBroker();
    expect((await app.request('/v1/client/attest-join.sh')).status).toBe(404);
    const empty = await loadClients(mkdtempSync(join(tmpdir(), 'no-clients-')), captureLogger().logger);
    expect(empty.size).toBe(0);
  });

  it('is rate-limited per address like a challenge (429 RATE_LIMITED)', async () => {
    const { app } = testBroker({ clients, options: { rateLimits: { challenge: { limit: 2, windowSeconds: 60 }, attest: { limit: 0, windowSeconds: 60 }, identity: { limit: 0, windowSeconds: 60 } } } });
    expect((await app.request('/v1/client/attest-join.sh')).status).toBe(200);
    expect((await app.request('/v1/client/attest-join.sh')).status).toBe(200);
    const r = await app.request('/v1/client/attest-join.sh');
    expect(r.status).toBe(429);
    expect(((await r.json()) as { code: string }).code).toBe('RATE_LIMITED');
  });

  it('loadClients reads what is there and nothing else', async () => {
    const d = mkdtempSync(join(tmpdir(), 'some-clients-'));
    writeFileSync(join(d, 'attest-join.sh'), '#!/bin/sh\n');
    writeFileSync(join(d, 'other.txt'), 'x');
    const m = await loadClients(d, captureLogger().logger);
    expect([...m.keys()]).toEqual(['attest-join.sh']);
  });
});

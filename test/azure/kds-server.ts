/**
 * A local server speaking AMD KDS's wire format (VCEK Certificate and KDS Interface
 * Specification, pub. 57230, §4), on a free port, serving the real AMD `cert_chain` files from
 * test/vectors. Counts requests per path.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readVectorText } from '../helpers/vectors.js';

export interface KdsServer {
  readonly base: string;
  readonly hits: Map<string, number>;
  close(): Promise<void>;
}

/** @param vceks extra VCEK answers by exact path and query (`/vcek/v1/Milan/<hwid>?blSPL=…`) */
export async function startKdsServer(vceks: Readonly<Record<string, Uint8Array>> = {}): Promise<KdsServer> {
  const chains: Record<string, string> = {
    '/vcek/v1/Milan/cert_chain': readVectorText('go-sev-guest/trust/ask_ark_milan.pem'),
    '/vcek/v1/Genoa/cert_chain': readVectorText('go-sev-guest/trust/ask_ark_genoa.pem'),
    '/vlek/v1/Milan/cert_chain': readVectorText('go-sev-guest/trust/ask_ark_milan_vlek.pem'),
  };
  const hits = new Map<string, number>();
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const path = url.pathname;
    hits.set(path, (hits.get(path) ?? 0) + 1);
    const body = chains[path];
    const vcek = vceks[path + url.search];
    if (req.method === 'GET' && vcek) res.writeHead(200, { 'content-type': 'application/pkix-cert' }).end(vcek);
    else if (req.method !== 'GET' || body === undefined) res.writeHead(404).end();
    else res.writeHead(200, { 'content-type': 'application/x-pem-file' }).end(body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    hits,
    close: () => new Promise((r) => server.close(() => r())),
  };
}

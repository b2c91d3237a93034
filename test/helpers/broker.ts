/**
 * Building blocks for HTTP-level tests: an app with real stores and a silent (or capturing)
 * logger, driven with `app.request()`.
 */
import { createBroker, type BrokerDeps } from '../../broker/app.js';
import { MemoryStore } from '../../broker/store/memory.js';
import { createConsoleLogger } from '../../broker/observability/console-logger.js';
import { createSimpleMetrics } from '../../broker/observability/metrics.js';
import { createTrustStore } from '../../providers/common/trust.js';
import type { Logger } from '../../broker/contracts.js';

export function captureLogger(): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  return { logger: createConsoleLogger('debug', {}, (l) => lines.push(l)), lines };
}

const OFF = { limit: 0, windowSeconds: 60 };
export const NO_LIMITS = { challenge: OFF, attest: OFF, identity: OFF };

export function testBroker(over: Partial<BrokerDeps> = {}) {
  const { logger, lines } = captureLogger();
  const deps: BrokerDeps = {
    store: new MemoryStore(),
    providers: [],
    trust: createTrustStore([]),
    logger,
    metrics: createSimpleMetrics(),
    ...over,
    // Rate limits are off unless a test turns them on: in-process requests share one address.
    options: { rateLimits: NO_LIMITS, ...over.options },
  };
  return { app: createBroker(deps), deps, lines };
}

export function postJson(app: ReturnType<typeof createBroker>, path: string, body: unknown, headers: Record<string, string> = {}) {
  return app.request(path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

/**
 * @module broker/observability/tracing-context.worker
 *
 * The async context of the tracer on Cloudflare Workers (tracing.ts ContextStorage): workerd's
 * AsyncLocalStorage, which the `nodejs_compat` compatibility flag (wrangler.toml) provides as
 * `node:async_hooks` (https://developers.cloudflare.com/workers/runtime-apis/nodejs/asynclocalstorage/).
 * It follows a request across awaits, timers and fetch, so a KMS call below the handler finds
 * the request's SERVER span as its parent, as on Node (tracing-context.node.ts).
 */
// The one Node-named module the Worker uses; types/cloudflare-workers.d.ts declares the part used.
// eslint-disable-next-line no-restricted-imports
import { AsyncLocalStorage } from 'node:async_hooks';
import type { ContextStorage, Span } from './tracing.js';

export function asyncContextStorage(): ContextStorage {
  const als = new AsyncLocalStorage<Span>();
  return { run: (span, fn) => als.run(span, fn), active: () => als.getStore() };
}

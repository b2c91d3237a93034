/**
 * @module broker/observability/tracing-context.node
 *
 * The async context of the tracer on Node (tracing.ts ContextStorage): AsyncLocalStorage, so a
 * KMS or Kubernetes call made anywhere below a request's handler, across awaits, finds the
 * request's span as its parent.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import type { ContextStorage, Span } from './tracing.js';

export function asyncContextStorage(): ContextStorage {
  const als = new AsyncLocalStorage<Span>();
  return { run: (span, fn) => als.run(span, fn), active: () => als.getStore() };
}

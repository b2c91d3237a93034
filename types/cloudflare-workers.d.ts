/**
 * The few Cloudflare Workers runtime types the Worker entry and the Durable Object store use,
 * declared here so those files type-check under the same Web-only configuration as the rest of
 * broker/ (the full @cloudflare/workers-types conflicts with the standard WebWorker lib).
 * Shapes follow https://developers.cloudflare.com/durable-objects/api/ .
 */
declare module 'cloudflare:workers' {
  export abstract class DurableObject<Env = unknown> {
    protected ctx: DurableObjectState;
    protected env: Env;
    constructor(ctx: DurableObjectState, env: Env);
    alarm?(): Promise<void>;
    fetch?(request: Request): Promise<Response>;
  }
}

interface DurableObjectStorage {
  get<T = unknown>(key: string): Promise<T | undefined>;
  put<T>(key: string, value: T): Promise<void>;
  delete(key: string): Promise<boolean>;
  delete(keys: string[]): Promise<number>;
  list<T = unknown>(options?: { prefix?: string; limit?: number }): Promise<Map<string, T>>;
  getAlarm(): Promise<number | null>;
  setAlarm(scheduledTime: number | Date): Promise<void>;
}

interface DurableObjectState {
  readonly storage: DurableObjectStorage;
  blockConcurrencyWhile<T>(fn: () => Promise<T>): Promise<T>;
}

interface DurableObjectId {
  toString(): string;
}

type DurableObjectStub<T> = {
  [K in keyof T]: T[K] extends (...args: infer A) => infer R ? (...args: A) => R extends Promise<unknown> ? R : Promise<R> : never;
};

interface DurableObjectNamespace<T = unknown> {
  idFromName(name: string): DurableObjectId;
  get(id: DurableObjectId): DurableObjectStub<T>;
}

interface ExecutionContext {
  waitUntil(promise: Promise<unknown>): void;
  passThroughOnException(): void;
  props: unknown;
}

interface ExportedHandler<Env = unknown> {
  fetch?(request: Request, env: Env, ctx: ExecutionContext): Response | Promise<Response>;
}

/**
 * workerd's AsyncLocalStorage (`nodejs_compat`), the part broker/observability/
 * tracing-context.worker.ts uses (https://developers.cloudflare.com/workers/runtime-apis/nodejs/asynclocalstorage/).
 * Declared for that file only: ESLint still refuses `node:*` imports anywhere else below broker/.
 */
declare module 'node:async_hooks' {
  export class AsyncLocalStorage<T> {
    run<R>(store: T, fn: () => R): R;
    getStore(): T | undefined;
  }
}

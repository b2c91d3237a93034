declare module 'cloudflare:test' {
  export const env: Record<string, unknown>;
  export const SELF: { fetch(input: string | Request, init?: RequestInit): Promise<Response> };
  export function createExecutionContext(): ExecutionContext;
  export function waitOnExecutionContext(ctx: ExecutionContext): Promise<void>;
}

interface ImportMeta {
  /** Vite's build-time glob import (bundles files of test/vectors into the workerd tests). */
  glob<T = unknown>(pattern: string | string[], options: { eager: true; import?: string; query?: string }): Record<string, T>;
}

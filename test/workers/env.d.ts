declare module 'cloudflare:test' {
  export const env: Record<string, unknown>;
  export const SELF: { fetch(input: string | Request, init?: RequestInit): Promise<Response> };
}

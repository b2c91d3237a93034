/** What test/workers/kms-servers.setup.ts hands the workerd tests (and the pool options) through inject(). */
export {};
declare module 'vitest' {
  export interface ProvidedContext {
    awsKms: { url: string; keyArn: string; accessKeyId: string; secretAccessKey: string; region: string };
    gcpKms: { url: string; keyName: string; clientEmail: string; privateKeyPem: string };
    azureKeyVault: {
      url: string;
      tenantId: string;
      clientId: string;
      clientSecret: string;
      keyName: string;
      keyVersion: string;
      signOnlyKeyName: string;
      /** The test CA of the server's TLS certificate (trusted by the workerd outbound network). */
      caPem: string;
    };
    /** test/servers/otlp-collector.ts: POST /v1/traces; GET /test/received gives back what it got. */
    otlpCollector: { url: string };
  }
}

/** What test/workers/kms-servers.setup.ts hands the workerd tests through inject(). */
export {};
declare module 'vitest' {
  export interface ProvidedContext {
    awsKms: { url: string; keyArn: string; accessKeyId: string; secretAccessKey: string; region: string };
    gcpKms: { url: string; keyName: string; clientEmail: string; privateKeyPem: string };
  }
}

/**
 * @module broker/builtins
 *
 * Registers the providers, policy engine and release service compiled into this build with
 * the runtime (imported for its side effects by both entries).
 */
export {};

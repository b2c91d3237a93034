/**
 * Shared helpers for the policy tests: build a policy around a vector's claims (via capture,
 * then a per-test patch), render it to YAML and load it through the same loader the broker uses.
 */
import { stringify } from 'yaml';
import type { Claims } from '../../providers/common/types.js';
import { capturePolicyDocument } from '../../broker/policy/capture.js';
import { loadPolicyText, type LoadedPolicy } from '../../broker/policy/load.js';
import type { ClusterPolicy, PolicyDocument } from '../../broker/policy/schema.js';

export const NOW = new Date('2026-11-27T12:00:00Z');

export function clone<T>(v: T): T {
  return structuredClone(v);
}

/** A captured policy for `claims`, patched; the cluster is named `default`. */
export function docFor(claims: Claims, patch?: (c: ClusterPolicy, doc: PolicyDocument) => void): PolicyDocument {
  const doc = capturePolicyDocument(claims, { now: NOW, image: 'img' });
  patch?.(doc.clusters.default!, doc);
  return doc;
}

export async function policyFor(claims: Claims, patch?: (c: ClusterPolicy, doc: PolicyDocument) => void): Promise<LoadedPolicy> {
  return loadPolicyText(stringify(docFor(claims, patch)), NOW);
}

export function yamlOf(doc: unknown): string {
  return stringify(doc);
}

/** The first image of a cluster (tests only use captured clusters, which have images). */
export function img(c: ClusterPolicy): Exclude<ClusterPolicy['images'], 'any'>[number] {
  if (c.images === 'any') throw new Error('cluster has images: any');
  return c.images[0]!;
}

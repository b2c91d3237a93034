/**
 * @module broker/release/tokenreview
 *
 * Webhook token authentication for the bootstrap tokens this broker issued, for clusters where
 * the broker must not write Secrets into kube-system (release `kube` absent: tokens then live only
 * as SHA-256 digests in the store).
 *
 * Reference: Kubernetes "Webhook Token Authentication"
 * (https://kubernetes.io/docs/reference/access-authn-authz/authentication/#webhook-token-authentication),
 * API `authentication.k8s.io/v1` TokenReview: the API server POSTs
 * `{apiVersion, kind: "TokenReview", spec: {token, audiences?}}` and expects the same object back
 * with `status: {authenticated, user: {username, groups, extra}, audiences?, error?}`.
 *
 * The identity returned is exactly what the built-in bootstrap-token authenticator would return
 * (https://kubernetes.io/docs/reference/access-authn-authz/bootstrap-tokens/): username
 * `system:bootstrap:<token id>`, groups `system:bootstrappers` plus the token's extra groups, so
 * the same RBAC (system:node-bootstrapper, CSR auto-approval) works in both modes. `extra`
 * carries the attested node name and instance id for the CSR approver.
 *
 * Checks, each ending in `authenticated: false` (never an HTTP error, which the API server would
 * treat as an outage):
 * - the token has the bootstrap format `[a-z0-9]{6}.[a-z0-9]{16}`;
 * - state for the token id exists, is not marked used, and has not expired (injected clock);
 * - SHA-256 of the secret equals the stored digest (constant-time);
 * - when the request names audiences, at least one is configured; the intersection is returned.
 * Malformed requests (not JSON, wrong kind/apiVersion, body over 64 KiB) are 400.
 */
import type { Clock, Logger } from '../contracts.js';
import { timingSafeEqualString } from '../../providers/common/ct.js';
import { secretDigest, type TokenState } from './issuer.js';
import { TOKEN_RE } from './token.js';

const API_VERSION = 'authentication.k8s.io/v1';
const MAX_BODY = 64 * 1024;

export interface TokenReviewOptions {
  /** Looks a token's state up (TokenIssuer.state or the store directly). */
  state(tokenId: string): Promise<TokenState | null>;
  clock: Clock;
  logger: Logger;
  /** Audiences this broker accepts when the API server asks for specific ones. */
  audiences?: readonly string[];
}

export interface TokenReviewStatus {
  authenticated: boolean;
  user?: { username: string; groups: string[]; extra?: Record<string, string[]> };
  audiences?: string[];
  error?: string;
}

/** Reviews one token; never throws for an invalid token (only store outages propagate). */
export async function reviewToken(token: string, audiences: readonly string[] | undefined, o: TokenReviewOptions): Promise<TokenReviewStatus> {
  const no = (error: string): TokenReviewStatus => ({ authenticated: false, error });
  const m = TOKEN_RE.exec(token);
  if (!m) return no('not a bootstrap token');
  const [, id, secret] = m as unknown as [string, string, string];
  const st = await o.state(id);
  if (!st) return no('unknown token');
  if (st.used) return no('token already used');
  if (!(Date.parse(st.expiresAt) > o.clock.now().getTime())) return no('token expired');
  if (!timingSafeEqualString(await secretDigest(secret), st.secretSha256)) return no('invalid token');
  let aud: string[] | undefined;
  if (audiences && audiences.length > 0) {
    aud = audiences.filter((a) => (o.audiences ?? []).includes(a));
    if (aud.length === 0) return no('token not valid for the requested audiences');
  }
  const groups = ['system:bootstrappers', ...st.groups.filter((g) => g !== 'system:bootstrappers')];
  return {
    authenticated: true,
    user: {
      username: `system:bootstrap:${id}`,
      groups,
      extra: { 'attest-broker.io/node-name': [st.nodeName], 'attest-broker.io/instance-id': [st.instanceId], 'attest-broker.io/cluster': [st.cluster] },
    },
    ...(aud ? { audiences: aud } : {}),
  };
}

function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });
}

/** `POST /v1/tokenreview` handler (the app mounts it and authenticates the API server). */
export function tokenReviewHandler(o: TokenReviewOptions): (req: Request) => Promise<Response> {
  return async (req) => {
    if (req.method !== 'POST') return json(405, { error: 'method not allowed' });
    const text = await req.text();
    if (text.length > MAX_BODY) return json(413, { error: 'body too large' });
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      return json(400, { error: 'not JSON' });
    }
    const b = body as { apiVersion?: unknown; kind?: unknown; spec?: { token?: unknown; audiences?: unknown } };
    if (typeof body !== 'object' || body === null || b.kind !== 'TokenReview' || b.apiVersion !== API_VERSION || typeof b.spec?.token !== 'string') {
      return json(400, { error: `expected an ${API_VERSION} TokenReview` });
    }
    const auds = Array.isArray(b.spec.audiences) && b.spec.audiences.every((a) => typeof a === 'string') ? (b.spec.audiences as string[]).slice(0, 16) : undefined;
    const status = await reviewToken(b.spec.token, auds, o);
    o.logger.info({ authenticated: status.authenticated, username: status.user?.username, reason: status.error }, 'tokenreview');
    return json(200, { apiVersion: API_VERSION, kind: 'TokenReview', status });
  };
}

import { createHash } from 'node:crypto';

/** Who a verified token belongs to. */
export interface TokenIdentity {
  readonly namespace: string;
  readonly serviceAccount: string;
  /** Pod name bound to the token (projected tokens carry it), if known. */
  readonly pod: string | undefined;
}

export type AuthResult =
  | { readonly ok: true; readonly identity: TokenIdentity }
  /** `unauthenticated`: no valid token; `denied`: a valid token for another workload or pod. */
  | { readonly ok: false; readonly reason: 'unauthenticated' | 'denied'; readonly message: string };

/** Verifies a sidecar's bearer token and binds it to the node it claims to be. */
export interface Authenticator {
  authenticate(token: string | undefined, node: { namespace: string; serviceAccount: string; pod: string }): Promise<AuthResult>;
}

/** Verifies a token against the identity provider (Kubernetes TokenReview). */
export type TokenVerifier = (token: string) => Promise<TokenIdentity | { readonly error: string }>;

const SA_PREFIX = 'system:serviceaccount:';

/** `system:serviceaccount:<ns>:<sa>` → identity parts; undefined for other users. */
export function parseServiceAccountUser(username: string): { namespace: string; serviceAccount: string } | undefined {
  if (!username.startsWith(SA_PREFIX)) return undefined;
  const [namespace, serviceAccount, ...rest] = username.slice(SA_PREFIX.length).split(':');
  if (namespace === undefined || serviceAccount === undefined || rest.length > 0 || namespace === '' || serviceAccount === '') return undefined;
  return { namespace, serviceAccount };
}

/**
 * Token authentication with binding and a verification cache: a token is verified once (then cached
 * for `cacheTtlMs`, failures for a shorter time), and the verified identity must match the node the
 * stream claims (namespace, service account, and pod when the token names one), so a pod cannot ask
 * for another workload's snapshot and keys.
 */
export class TokenAuthenticator implements Authenticator {
  readonly #verify: TokenVerifier;
  readonly #ttlMs: number;
  readonly #failTtlMs: number;
  readonly #maxEntries: number;
  readonly #now: () => number;
  readonly #cache = new Map<string, { at: number; result: TokenIdentity | { error: string } }>();

  constructor(verify: TokenVerifier, o: { cacheTtlMs?: number; failureTtlMs?: number; maxEntries?: number; now?: () => number } = {}) {
    this.#verify = verify;
    this.#ttlMs = o.cacheTtlMs ?? 5 * 60_000;
    this.#failTtlMs = o.failureTtlMs ?? 10_000;
    this.#maxEntries = o.maxEntries ?? 10_000;
    this.#now = o.now ?? Date.now;
  }

  /** Verifications actually sent to the verifier (the rest came from the cache). */
  verifications = 0;

  async authenticate(token: string | undefined, node: { namespace: string; serviceAccount: string; pod: string }): Promise<AuthResult> {
    if (token === undefined || token === '') return { ok: false, reason: 'unauthenticated', message: 'no bearer token: sidecars must send their projected service account token (audience sluice)' };
    const key = createHash('sha256').update(token).digest('hex');
    const now = this.#now();
    let entry = this.#cache.get(key);
    const ttl = entry !== undefined && 'error' in entry.result ? this.#failTtlMs : this.#ttlMs;
    if (entry === undefined || now - entry.at > ttl) {
      this.verifications++;
      let result: TokenIdentity | { error: string };
      try {
        result = await this.#verify(token);
      } catch (e) {
        // The verifier being down is not the token's fault: do not cache it.
        return { ok: false, reason: 'unauthenticated', message: `token verification unavailable: ${(e as Error).message}` };
      }
      if (this.#cache.size >= this.#maxEntries) this.#cache.delete(this.#cache.keys().next().value as string);
      entry = { at: now, result };
      this.#cache.set(key, entry);
    }
    const r = entry.result;
    if ('error' in r) return { ok: false, reason: 'unauthenticated', message: `token rejected: ${r.error}` };
    if (r.namespace !== node.namespace || r.serviceAccount !== node.serviceAccount) {
      return { ok: false, reason: 'denied', message: `token of ${r.namespace}/${r.serviceAccount} cannot stream for ${node.namespace}/${node.serviceAccount}` };
    }
    if (r.pod !== undefined && r.pod !== node.pod) return { ok: false, reason: 'denied', message: `token bound to pod ${r.pod} cannot stream for pod ${node.pod}` };
    return { ok: true, identity: r };
  }
}

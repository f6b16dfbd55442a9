// Bearer tokens checked by the API server (authentication.k8s.io/v1 TokenReview), as a server that serves
// Kubernetes clients with their own credentials does (Antrea's controller authenticates its agents so). Answers are
// cached for a short while, keyed by a hash of the token (the token itself is never kept), so that many agents
// reconnecting at once, or one agent retrying, do not each cost a review.
import { AuthenticationV1Api, type KubeConfig } from '@kubernetes/client-node';
import { createHash } from 'node:crypto';

export interface TokenAuthenticatorOptions {
  kubeConfig: KubeConfig;
  /** How long an authenticated answer is reused (default 60 s; a revoked token is honoured until then). */
  ttlMs?: number;
  /** How long a refusal is reused (default 5 s: short, so a token that was just issued is not refused long). */
  negativeTtlMs?: number;
  /** Clock, for tests. */
  now?: () => number;
}

export interface TokenUser {
  username: string;
  groups: string[];
}

interface Entry {
  user: TokenUser | undefined;
  expires: number;
}

/** Entries kept at most; past this, expired ones are dropped (and, if still full, the oldest). */
const MAX_ENTRIES = 10_000;

export class TokenAuthenticator {
  private readonly api: AuthenticationV1Api;
  private readonly cache = new Map<string, Entry>();
  private readonly pending = new Map<string, Promise<TokenUser | undefined>>();
  private readonly now: () => number;
  /** TokenReviews sent to the API server (cache misses). */
  reviews = 0;

  constructor(private readonly opts: TokenAuthenticatorOptions) {
    this.api = opts.kubeConfig.makeApiClient(AuthenticationV1Api);
    this.now = opts.now ?? Date.now;
  }

  /** The user name the token authenticates as; undefined when it does not. Throws when the API server cannot tell. */
  async authenticate(token: string): Promise<string | undefined> {
    return (await this.review(token))?.username;
  }

  /** The user and groups the token authenticates as; undefined when it does not. */
  async review(token: string): Promise<TokenUser | undefined> {
    if (!token) return undefined;
    const key = createHash('sha256').update(token).digest('base64');
    const hit = this.cache.get(key);
    if (hit && hit.expires > this.now()) return hit.user;
    // Concurrent requests with the same token share one review.
    let p = this.pending.get(key);
    if (!p) {
      p = this.ask(token, key).finally(() => this.pending.delete(key));
      this.pending.set(key, p);
    }
    return p;
  }

  private async ask(token: string, key: string): Promise<TokenUser | undefined> {
    this.reviews++;
    const r = await this.api.createTokenReview({ body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token } } });
    const s = r.status;
    const user = s?.authenticated && s.user?.username ? { username: s.user.username, groups: s.user.groups ?? [] } : undefined;
    this.remember(key, { user, expires: this.now() + (user ? (this.opts.ttlMs ?? 60_000) : (this.opts.negativeTtlMs ?? 5_000)) });
    return user;
  }

  private remember(key: string, entry: Entry): void {
    if (this.cache.size >= MAX_ENTRIES) {
      const now = this.now();
      for (const [k, e] of this.cache) if (e.expires <= now) this.cache.delete(k);
      // Map order is insertion order: the first is the oldest.
      while (this.cache.size >= MAX_ENTRIES) this.cache.delete(this.cache.keys().next().value!);
    }
    this.cache.delete(key);
    this.cache.set(key, entry);
  }
}

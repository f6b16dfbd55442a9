// Whether a user may do something, asked of the API server (authorization.k8s.io/v1 SubjectAccessReview), as a
// server that serves Kubernetes users with their own credentials does (kube's aggregated API servers delegate
// authorization so). Decisions are cached briefly, keyed by the user and the question, so that a user's repeated
// calls, or many at once, cost one review; an RBAC change takes effect within the cache's lifetime.
import { AuthorizationV1Api, type KubeConfig } from '@kubernetes/client-node';
import type { TokenUser } from './token-review.js';

/** A resource request: `verb` on `resource` of `group`, in `namespace` (none: cluster-scoped or every namespace). */
export interface ResourceAccess {
  verb: string;
  group: string;
  resource: string;
  namespace?: string;
  name?: string;
}

export interface AccessDecision {
  allowed: boolean;
  /** The authorizer's explanation, when it gave one. */
  reason?: string;
}

export interface AccessReviewerOptions {
  kubeConfig: KubeConfig;
  /** How long a decision is reused (default 10 s). */
  ttlMs?: number;
  /** Clock, for tests. */
  now?: () => number;
}

/** Entries kept at most; past this the oldest go first. */
const MAX_ENTRIES = 10_000;

export class AccessReviewer {
  private readonly api: AuthorizationV1Api;
  private readonly decisions = new Map<string, { decision: AccessDecision; expires: number }>();
  private readonly asking = new Map<string, Promise<AccessDecision>>();
  private readonly now: () => number;
  /** SubjectAccessReviews sent to the API server (cache misses). */
  reviews = 0;

  constructor(private readonly opts: AccessReviewerOptions) {
    this.api = opts.kubeConfig.makeApiClient(AuthorizationV1Api);
    this.now = opts.now ?? Date.now;
  }

  /** Whether the user may; throws when the API server cannot tell. */
  async check(user: TokenUser, access: ResourceAccess): Promise<AccessDecision> {
    const key = JSON.stringify([user.username, [...user.groups].sort(), access.verb, access.group, access.resource, access.namespace ?? '', access.name ?? '']);
    const hit = this.decisions.get(key);
    if (hit && hit.expires > this.now()) return hit.decision;
    let pending = this.asking.get(key);
    if (!pending) {
      pending = this.ask(user, access, key).finally(() => this.asking.delete(key));
      this.asking.set(key, pending);
    }
    return pending;
  }

  private async ask(user: TokenUser, access: ResourceAccess, key: string): Promise<AccessDecision> {
    this.reviews++;
    const r = await this.api.createSubjectAccessReview({
      body: {
        apiVersion: 'authorization.k8s.io/v1',
        kind: 'SubjectAccessReview',
        spec: { user: user.username, groups: user.groups, resourceAttributes: { ...access } },
      },
    });
    const decision: AccessDecision = { allowed: r.status?.allowed === true, ...(r.status?.reason ? { reason: r.status.reason } : {}) };
    this.decisions.delete(key);
    if (this.decisions.size >= MAX_ENTRIES) this.decisions.delete(this.decisions.keys().next().value!);
    this.decisions.set(key, { decision, expires: this.now() + (this.opts.ttlMs ?? 10_000) });
    return decision;
  }
}

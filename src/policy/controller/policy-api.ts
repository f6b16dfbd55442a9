// The controller's read API on the policy channel: GET /v1/policies?kind=NetworkPolicy|ClusterNetworkPolicy
// [&namespace=NS][&name=NAME] answers where each policy is realized (the nodes that need it, those that have
// installed its current generation, the others by name, and when each of them last reported). It serves users
// with their own Kubernetes credentials, as an aggregated API server does: the bearer token is authenticated by
// TokenReview, and the user must be allowed by the API server (SubjectAccessReview) to list, or get, the policies
// asked about. Failures are Kubernetes Status bodies, so that clients print them as kubectl would.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AccessDecision, ResourceAccess } from '../../k8s/access-review.js';
import { apiFailure } from '../../k8s/api.js';
import type { TokenUser } from '../../k8s/token-review.js';
import type { Logger } from '../../util/log.js';
import type { PolicyRef } from '../model/types.js';
import type { PolicyRealization } from './realization.js';

export const POLICIES_PATH = '/v1/policies';

/** What the API serves about each policy. */
export interface PolicyRealizationItem {
  kind: PolicyRef['kind'];
  namespace?: string;
  name: string;
  uid: string;
  generation: number;
  /** RFC 3339, when the controller has seen it. */
  creationTimestamp?: string;
  /** MultiNetworkPolicy: the network of this item (one per network the policy names). */
  network?: string;
  /** MultiNetworkPolicy: why it is not enforced on `network` (or at all, without one); its nodes are then none. */
  problem?: string;
  nodes: { desired: number; realized: number; pending: string[] };
}

/** A MultiNetworkPolicy's network that is not enforced (none: the policy as a whole, e.g. refused). */
export interface Unenforced {
  namespace: string;
  name: string;
  uid: string;
  generation: number;
  network?: string;
  problem: string;
}

export interface PolicyRealizationList {
  kind: 'PolicyRealizationList';
  items: PolicyRealizationItem[];
  /** Every node in the listed policies' spans, with its last report (null: it has not reported to this controller). */
  nodes: Record<string, { lastReport: string | null }>;
}

/** The Kubernetes resource each kind is authorized as. */
const RESOURCES: Record<PolicyRef['kind'], { group: string; resource: string; namespaced: boolean }> = {
  NetworkPolicy: { group: 'networking.k8s.io', resource: 'networkpolicies', namespaced: true },
  ClusterNetworkPolicy: { group: 'policy.networking.k8s.io', resource: 'clusternetworkpolicies', namespaced: false },
  MultiNetworkPolicy: { group: 'k8s.cni.cncf.io', resource: 'multi-networkpolicies', namespaced: true },
};

export interface PolicyApiOptions {
  /** The computed policies a filter picks, with their spans and realizations (all pending nodes). */
  realizations: (which: (ref: PolicyRef) => boolean) => Array<{ ref: PolicyRef; span: ReadonlySet<string>; realization: PolicyRealization }>;
  lastReport: (node: string) => Date | undefined;
  /** When a policy was created, by uid. */
  created: (uid: string) => Date | undefined;
  /** The MultiNetworkPolicies' networks that are not enforced, for the ones `which` picks. */
  unenforced?: (which: (ref: { namespace?: string; name: string }) => boolean) => Unenforced[];
  /** Whether every policy has been listed (until then the answer would be incomplete). */
  ready: () => boolean;
  /** The user a token authenticates as (undefined: it does not); throws when it cannot tell. */
  authenticate: (token: string) => Promise<TokenUser | undefined>;
  /** Whether the user may; throws when it cannot tell. */
  authorize: (user: TokenUser, access: ResourceAccess) => Promise<AccessDecision>;
  log: Logger;
}

class StatusError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
    readonly details?: Record<string, unknown>,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

const qualified = (r: { group: string; resource: string }): string => `${r.resource}.${r.group}`;

export class PolicyApi {
  constructor(private readonly opts: PolicyApiOptions) {}

  /** Whether a request is for this API (the share server routes it here before checking for an agent). */
  static handles(req: IncomingMessage): boolean {
    return new URL(req.url ?? '/', 'https://controller').pathname === POLICIES_PATH;
  }

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      const body = await this.answer(req);
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(JSON.stringify(body));
    } catch (e) {
      const err = e instanceof StatusError ? e : new StatusError(500, 'InternalError', `Internal error occurred: ${e instanceof Error ? e.message : String(e)}`);
      if (!(e instanceof StatusError)) this.opts.log.error({ err: String(e) }, 'policy read request failed');
      const status = { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: err.message, reason: err.reason, ...(err.details ? { details: err.details } : {}), code: err.code };
      res.writeHead(err.code, { 'content-type': 'application/json', ...err.headers }).end(JSON.stringify(status));
    }
  }

  private async answer(req: IncomingMessage): Promise<PolicyRealizationList> {
    const q = new URL(req.url ?? '/', 'https://controller').searchParams;
    const user = await this.user(req);
    if (req.method !== 'GET') throw new StatusError(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource');
    const kind = q.get('kind');
    if (kind !== 'NetworkPolicy' && kind !== 'ClusterNetworkPolicy' && kind !== 'MultiNetworkPolicy') {
      throw new StatusError(400, 'BadRequest', `kind must be NetworkPolicy, ClusterNetworkPolicy or MultiNetworkPolicy, not ${JSON.stringify(kind ?? '')}`);
    }
    const r = RESOURCES[kind];
    const namespace = q.get('namespace') || undefined;
    const name = q.get('name') || undefined;
    if (namespace && !r.namespaced) throw new StatusError(400, 'BadRequest', `${kind} is cluster-scoped: no namespace`);
    const access: ResourceAccess = { verb: name ? 'get' : 'list', group: r.group, resource: r.resource, ...(namespace ? { namespace } : {}), ...(name ? { name } : {}) };
    let decision: AccessDecision;
    try {
      decision = await this.opts.authorize(user, access);
    } catch (e) {
      this.opts.log.warn({ err: apiFailure(e) }, 'cannot review a user\'s access');
      throw new StatusError(503, 'ServiceUnavailable', `cannot ask the API server whether the user may read policies (SubjectAccessReview): ${apiFailure(e)}`, undefined, { 'retry-after': '1' });
    }
    if (!decision.allowed) throw forbidden(user.username, access, r);
    if (!this.opts.ready()) throw new StatusError(503, 'ServiceUnavailable', 'the policy controller has not listed every policy yet', undefined, { 'retry-after': '1' });

    const picks = (ref: { namespace?: string; name: string }): boolean => (!namespace || ref.namespace === namespace) && (!name || ref.name === name);
    const listed = this.opts.realizations((ref) => ref.kind === kind && picks(ref));
    const unenforced = kind === 'MultiNetworkPolicy' ? (this.opts.unenforced?.(picks) ?? []) : [];
    if (name && listed.length === 0 && unenforced.length === 0) throw new StatusError(404, 'NotFound', `${qualified(r)} "${name}" not found`, { name, group: r.group, kind: r.resource });
    // A MultiNetworkPolicy's parts carry its uid with their network: its creation is the object's.
    const objectUid = (uid: string): string => (kind === 'MultiNetworkPolicy' && uid.includes('@') ? uid.slice(0, uid.lastIndexOf('@')) : uid);
    const created = (uid: string): { creationTimestamp?: string } => {
      const at = this.opts.created(objectUid(uid));
      return at ? { creationTimestamp: at.toISOString().replace(/\.\d+Z$/, 'Z') } : {};
    };
    const items = [
      ...listed.map(({ ref, realization }): PolicyRealizationItem => ({
        kind: ref.kind,
        ...(ref.namespace ? { namespace: ref.namespace } : {}),
        name: ref.name,
        uid: ref.uid,
        generation: ref.generation,
        ...created(ref.uid),
        ...(ref.network ? { network: ref.network } : {}),
        nodes: { desired: realization.desired, realized: realization.realized, pending: realization.pending },
      })),
      ...unenforced.map((u): PolicyRealizationItem => ({
        kind: 'MultiNetworkPolicy',
        namespace: u.namespace,
        name: u.name,
        uid: u.uid,
        generation: u.generation,
        ...created(u.uid),
        ...(u.network ? { network: u.network } : {}),
        problem: u.problem,
        nodes: { desired: 0, realized: 0, pending: [] },
      })),
    ].sort((a, b) => (a.namespace ?? '').localeCompare(b.namespace ?? '') || a.name.localeCompare(b.name) || (a.network ?? '').localeCompare(b.network ?? ''));
    return { kind: 'PolicyRealizationList', items, nodes: this.nodesOf(listed) };
  }

  /** Every node the listed policies need, with its last report. */
  private nodesOf(listed: Array<{ span: ReadonlySet<string> }>): PolicyRealizationList['nodes'] {
    const names = new Set<string>();
    for (const { span } of listed) for (const n of span) names.add(n);
    const out: PolicyRealizationList['nodes'] = {};
    for (const n of [...names].sort()) out[n] = { lastReport: this.opts.lastReport(n)?.toISOString() ?? null };
    return out;
  }

  /** The authenticated user of a request: 401 without a token or for one the API server does not know. */
  private async user(req: IncomingMessage): Promise<TokenUser> {
    const h = req.headers.authorization;
    const token = h?.startsWith('Bearer ') ? h.slice('Bearer '.length).trim() : '';
    const unauthorized = (why: string): StatusError => new StatusError(401, 'Unauthorized', `Unauthorized: ${why}`, undefined, { 'www-authenticate': 'Bearer' });
    if (!token) throw unauthorized('a bearer token is required (the API server user\'s token, e.g. from `kubectl create token`)');
    let user: TokenUser | undefined;
    try {
      user = await this.opts.authenticate(token);
    } catch (e) {
      this.opts.log.warn({ err: apiFailure(e) }, 'cannot review a user\'s token');
      throw new StatusError(503, 'ServiceUnavailable', `cannot authenticate the user now (TokenReview): ${apiFailure(e)}`, undefined, { 'retry-after': '1' });
    }
    if (!user) throw unauthorized('the API server does not accept this token (TokenReview)');
    return user;
  }
}

/** kube's wording: `networkpolicies.networking.k8s.io is forbidden: User "u" cannot list resource ... in the namespace "x"`. */
function forbidden(username: string, access: ResourceAccess, r: { group: string; resource: string }): StatusError {
  const what = access.name ? `${qualified(r)} ${JSON.stringify(access.name)}` : qualified(r);
  const scope = access.namespace ? `in the namespace ${JSON.stringify(access.namespace)}` : 'at the cluster scope';
  return new StatusError(403, 'Forbidden', `${what} is forbidden: User ${JSON.stringify(username)} cannot ${access.verb} resource ${JSON.stringify(r.resource)} in API group ${JSON.stringify(r.group)} ${scope}`, {
    ...(access.name ? { name: access.name } : {}),
    group: r.group,
    kind: r.resource,
  });
}

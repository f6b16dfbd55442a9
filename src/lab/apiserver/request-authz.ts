// Authorization of the lab API server's own requests, for users other than the lab admin (ServiceAccounts with
// tokens from TokenRequest): each request's attributes as kube's RequestInfoFactory reads them from method and
// path, decided by RBAC, refused with kube's Forbidden wording. kube's default ClusterRoles that every
// authenticated user has (discovery, reviewing one's own access, public info) and cluster-admin are bootstrapped.
import { ApiError, errors } from './errors.js';
import type { AccessAttributes, ResourceAttributes } from './rbac.js';
import { RBAC_GROUP } from './rbac.js';
import type { JsonObject } from './types.js';

/** Namespace subresources: `namespaces/x/status` is the namespace's, not a resource named status. */
const NAMESPACE_SUBRESOURCES = new Set(['status', 'finalize']);
const VERBS: Record<string, string> = { POST: 'create', GET: 'get', HEAD: 'get', PUT: 'update', PATCH: 'patch', DELETE: 'delete' };

/** What a request asks, as RBAC sees it. */
export function requestAttributes(method: string, pathname: string, query: URLSearchParams): AccessAttributes {
  const path = pathname.replace(/\/+$/, '') || '/';
  const seg = path.split('/').filter(Boolean).map(decodeURIComponent);
  const verb0 = VERBS[method] ?? method.toLowerCase();
  let rest: string[] | undefined;
  let group = '';
  if (seg[0] === 'api' && seg.length >= 3) rest = seg.slice(2);
  else if (seg[0] === 'apis' && seg.length >= 4) {
    group = seg[1]!;
    rest = seg.slice(3);
  }
  // Non-resource paths are matched as sent: RBAC tells `/version` from `/version/`.
  if (!rest) return { nonResource: { verb: verb0, path: pathname } };
  let watch = false;
  if (rest[0] === 'watch') {
    watch = true;
    rest = rest.slice(1);
  }
  let namespace: string | undefined;
  if (rest[0] === 'namespaces' && rest.length > 1) {
    namespace = rest[1];
    if (rest.length > 2 && !NAMESPACE_SUBRESOURCES.has(rest[2]!)) rest = rest.slice(2);
  }
  const [resource = '', name, subresource] = rest;
  const q = query.get('watch');
  if (q === 'true' || q === '1') watch = true;
  let verb = verb0;
  let objectName = name;
  if (verb === 'get' && !name) verb = watch ? 'watch' : 'list';
  else if (verb === 'get' && watch) verb = 'watch';
  if (verb === 'delete' && !name) verb = 'deletecollection';
  // A list or watch of one object by field selector is authorized as that object's (kube does so too).
  if ((verb === 'list' || verb === 'watch') && !objectName) {
    const m = /(?:^|,)metadata\.name==?([^,]+)(?:,|$)/.exec(query.get('fieldSelector') ?? '');
    if (m) objectName = m[1];
  }
  const attrs: ResourceAttributes = { verb, group, resource, ...(subresource ? { subresource } : {}), ...(objectName ? { name: objectName } : {}), ...(namespace ? { namespace } : {}) };
  return { resource: attrs };
}

/** kube's refusal: `pods "web" is forbidden: User "u" cannot get resource "pods" in API group "" in the namespace "x"`. */
export function forbidden(username: string, attrs: AccessAttributes, reason: string): ApiError {
  const why = reason ? `: ${reason}` : '';
  if ('nonResource' in attrs) {
    return new ApiError(403, 'Forbidden', `forbidden: User ${JSON.stringify(username)} cannot ${attrs.nonResource.verb} path ${JSON.stringify(attrs.nonResource.path)}${why}`, {});
  }
  const a = attrs.resource;
  const resource = a.subresource ? `${a.resource}/${a.subresource}` : a.resource;
  const scope = a.namespace ? `in the namespace ${JSON.stringify(a.namespace)}` : 'at the cluster scope';
  return errors.forbidden({ group: a.group, resource: a.resource }, a.name ?? '', `User ${JSON.stringify(username)} cannot ${a.verb} resource ${JSON.stringify(resource)} in API group ${JSON.stringify(a.group)} ${scope}${why}`);
}

const defaults = { labels: { 'kubernetes.io/bootstrapping': 'rbac-defaults' }, annotations: { 'rbac.authorization.kubernetes.io/autoupdate': 'true' } };
const clusterRole = (name: string, rules: JsonObject[]): JsonObject => ({ apiVersion: `${RBAC_GROUP}/v1`, kind: 'ClusterRole', metadata: { name, ...defaults }, rules });
const clusterRoleBinding = (name: string, groups: string[]): JsonObject => ({
  apiVersion: `${RBAC_GROUP}/v1`,
  kind: 'ClusterRoleBinding',
  metadata: { name, ...defaults },
  roleRef: { apiGroup: RBAC_GROUP, kind: 'ClusterRole', name },
  subjects: groups.map((g) => ({ apiGroup: RBAC_GROUP, kind: 'Group', name: g })),
});

/** kube's bootstrap policy, the part a lab user meets: cluster-admin and what every authenticated user may do. */
export const DEFAULT_CLUSTER_ROLES: JsonObject[] = [
  clusterRole('cluster-admin', [{ apiGroups: ['*'], resources: ['*'], verbs: ['*'] }, { nonResourceURLs: ['*'], verbs: ['*'] }]),
  clusterRole('system:discovery', [{ nonResourceURLs: ['/api', '/api/*', '/apis', '/apis/*', '/healthz', '/livez', '/openapi', '/openapi/*', '/readyz', '/version', '/version/'], verbs: ['get'] }]),
  clusterRole('system:basic-user', [
    { apiGroups: ['authorization.k8s.io'], resources: ['selfsubjectaccessreviews', 'selfsubjectrulesreviews'], verbs: ['create'] },
    { apiGroups: ['authentication.k8s.io'], resources: ['selfsubjectreviews'], verbs: ['create'] },
  ]),
  clusterRole('system:public-info-viewer', [{ nonResourceURLs: ['/healthz', '/livez', '/readyz', '/version', '/version/'], verbs: ['get'] }]),
];

export const DEFAULT_CLUSTER_ROLE_BINDINGS: JsonObject[] = [
  clusterRoleBinding('cluster-admin', ['system:masters']),
  clusterRoleBinding('system:discovery', ['system:authenticated']),
  clusterRoleBinding('system:basic-user', ['system:authenticated']),
  clusterRoleBinding('system:public-info-viewer', ['system:authenticated', 'system:unauthenticated']),
];

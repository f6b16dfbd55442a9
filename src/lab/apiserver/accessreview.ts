// authorization.k8s.io/v1 access reviews, as kube-apiserver answers them: create-only resources that are never
// stored. SubjectAccessReview asks about any user (spec.user/groups), LocalSubjectAccessReview the same within the
// namespace of its path, SelfSubjectAccessReview about the requesting user (what `kubectl auth can-i` sends). The
// decision comes back in status: allowed, and the authorizer's reason. SelfSubjectRulesReview lists the requesting
// user's rules in a namespace (`kubectl auth can-i --list`).
import { cause, errors, type StatusCause } from './errors.js';
import type { AccessAttributes, RbacAuthorizer } from './rbac.js';
import type { UserInfo } from './tokenreview.js';
import { isObject, type JsonObject } from './types.js';

export const ACCESS_REVIEW_GROUP = 'authorization.k8s.io';
export const ACCESS_REVIEW_VERSION = 'v1';

export type AccessReviewKind = 'SubjectAccessReview' | 'SelfSubjectAccessReview' | 'LocalSubjectAccessReview' | 'SelfSubjectRulesReview';

const RESOURCES: Record<string, AccessReviewKind> = {
  subjectaccessreviews: 'SubjectAccessReview',
  selfsubjectaccessreviews: 'SelfSubjectAccessReview',
  localsubjectaccessreviews: 'LocalSubjectAccessReview',
  selfsubjectrulesreviews: 'SelfSubjectRulesReview',
};

/** Discovery entries (only `create`: a review is not an object one can get or list). */
export const accessReviewDiscovery: JsonObject[] = Object.entries(RESOURCES).map(([name, kind]) => ({
  name,
  singularName: kind.toLowerCase(),
  namespaced: kind === 'LocalSubjectAccessReview',
  kind,
  verbs: ['create'],
}));

/** The review a path names: `/apis/authorization.k8s.io/v1/<resource>` or `.../namespaces/<ns>/localsubjectaccessreviews`. */
export function accessReviewRoute(seg: string[]): { kind: AccessReviewKind; namespace?: string } | undefined {
  if (seg[0] !== 'apis' || seg[1] !== ACCESS_REVIEW_GROUP || seg[2] !== ACCESS_REVIEW_VERSION) return undefined;
  if (seg.length === 4) {
    const kind = RESOURCES[seg[3]!];
    return kind && kind !== 'LocalSubjectAccessReview' ? { kind } : undefined;
  }
  if (seg.length === 6 && seg[3] === 'namespaces' && seg[5] === 'localsubjectaccessreviews') return { kind: 'LocalSubjectAccessReview', namespace: seg[4]! };
  return undefined;
}

const str = (v: unknown): string => (typeof v === 'string' ? v : '');

/** The attributes a spec asks about, or the causes that make it invalid (exactly one kind of attributes). */
function attributesOf(spec: JsonObject): AccessAttributes | StatusCause[] {
  const r = isObject(spec.resourceAttributes) ? spec.resourceAttributes : undefined;
  const n = isObject(spec.nonResourceAttributes) ? spec.nonResourceAttributes : undefined;
  if (!!r === !!n) {
    return [cause.invalid('spec.resourceAttributes', spec.resourceAttributes ?? null, 'exactly one of nonResourceAttributes or resourceAttributes must be specified')];
  }
  if (n) return { nonResource: { verb: str(n.verb), path: str(n.path) } };
  return {
    resource: {
      verb: str(r!.verb),
      group: str(r!.group),
      resource: str(r!.resource),
      ...(str(r!.subresource) ? { subresource: str(r!.subresource) } : {}),
      ...(str(r!.name) ? { name: str(r!.name) } : {}),
      ...(str(r!.namespace) ? { namespace: str(r!.namespace) } : {}),
    },
  };
}

/**
 * The review the server returns (201) for a request body. `requester` is who sent it: a SelfSubjectAccessReview is
 * about them; the other kinds name their subject in the spec.
 */
export function reviewAccess(kind: AccessReviewKind, pathNamespace: string | undefined, body: unknown, requester: UserInfo, authorizer: RbacAuthorizer): JsonObject {
  const apiVersion = `${ACCESS_REVIEW_GROUP}/${ACCESS_REVIEW_VERSION}`;
  if (!isObject(body)) throw errors.badRequest(`the request body must be a ${kind}`);
  if (body.kind !== undefined && body.kind !== kind) throw errors.badRequest(`the body is a ${String(body.kind)}, not a ${kind}`);
  if (body.apiVersion !== undefined && body.apiVersion !== apiVersion) throw errors.badRequest(`the body is ${String(body.apiVersion)}, not ${apiVersion}`);
  const spec = isObject(body.spec) ? body.spec : {};
  const metadata = isObject(body.metadata) ? body.metadata : {};
  if (kind === 'SelfSubjectRulesReview') return { kind, apiVersion, metadata: { ...metadata, creationTimestamp: null }, spec, status: rulesStatus(requester, str(spec.namespace), authorizer) };
  const attrs = attributesOf(spec);
  const causes = Array.isArray(attrs) ? [...attrs] : [];
  let user: UserInfo = requester;
  if (kind !== 'SelfSubjectAccessReview') {
    user = { username: str(spec.user), groups: Array.isArray(spec.groups) ? spec.groups.filter((g): g is string => typeof g === 'string') : [] };
    if (!user.username && user.groups.length === 0) causes.push(cause.invalid('spec.user', '', 'at least one of user or group must be specified'));
  }
  if (kind === 'LocalSubjectAccessReview' && !Array.isArray(attrs) && 'nonResource' in attrs) {
    causes.push(cause.invalid('spec.nonResourceAttributes', spec.nonResourceAttributes, 'disallowed on this kind of request'));
  }
  if (causes.length || Array.isArray(attrs)) throw errors.invalid(ACCESS_REVIEW_GROUP, kind, str(metadata.name), causes);
  if (kind === 'LocalSubjectAccessReview' && 'resource' in attrs && (attrs.resource.namespace ?? '') !== pathNamespace) {
    throw errors.badRequest(`spec.resourceAttributes.namespace must match namespace: ${pathNamespace ?? ''}`);
  }
  const decision = authorizer.authorize(user, attrs);
  return {
    kind,
    apiVersion,
    metadata: { ...metadata, ...(pathNamespace ? { namespace: pathNamespace } : {}), creationTimestamp: null },
    spec,
    status: { allowed: decision.allowed, ...(decision.reason ? { reason: decision.reason } : {}) },
  };
}

/** The user's rules in a namespace, as a SubjectRulesReviewStatus: resource rules and non-resource rules apart. */
function rulesStatus(user: UserInfo, namespace: string, authorizer: RbacAuthorizer): JsonObject {
  const { rules, errors: failures } = authorizer.rulesFor(user, namespace);
  const resourceRules = rules
    .filter((r) => r.resources.length > 0)
    .map((r) => ({ verbs: r.verbs, apiGroups: r.apiGroups, resources: r.resources, ...(r.resourceNames.length ? { resourceNames: r.resourceNames } : {}) }));
  const nonResourceRules = rules.filter((r) => r.nonResourceURLs.length > 0).map((r) => ({ verbs: r.verbs, nonResourceURLs: r.nonResourceURLs }));
  return { resourceRules, nonResourceRules, incomplete: false, ...(failures.length ? { evaluationError: failures.join(', ') } : {}) };
}

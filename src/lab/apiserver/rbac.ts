// Kubernetes RBAC as kube-apiserver decides it (its privileged-group authorizer, then the RBAC authorizer), over
// the Roles, ClusterRoles, RoleBindings and ClusterRoleBindings in the lab's store. A request is allowed when a
// rule of a role bound to the user allows it: ClusterRoleBindings everywhere, RoleBindings in the request's
// namespace. Nothing is ever denied explicitly: a request no rule allows gets no opinion, as kube's RBAC gives.
import type { V1LabelSelector } from '@kubernetes/client-node';
import { selectorMatches } from '../../k8s/selector.js';
import type { Store } from './store.js';
import { isObject, type KubeObject } from './types.js';
import type { UserInfo } from './tokenreview.js';

export const RBAC_GROUP = 'rbac.authorization.k8s.io';
/** Members of this group are allowed everything, before RBAC is asked (kube's `system:masters`). */
export const PRIVILEGED_GROUP = 'system:masters';
const SERVICE_ACCOUNT_PREFIX = 'system:serviceaccount:';

/** What a resource request asks: `verb` on `resource[/subresource]` of `group`, maybe one `name`, in `namespace`. */
export interface ResourceAttributes {
  verb: string;
  group: string;
  resource: string;
  subresource?: string;
  name?: string;
  /** Empty or absent: cluster-scoped, or every namespace. */
  namespace?: string;
}

export interface NonResourceAttributes {
  verb: string;
  path: string;
}

export type AccessAttributes = { resource: ResourceAttributes } | { nonResource: NonResourceAttributes };

export interface Decision {
  allowed: boolean;
  /** Why it was allowed (the binding and role), or the errors met while looking (a binding to a missing role). */
  reason: string;
}

export interface PolicyRule {
  verbs: string[];
  apiGroups: string[];
  resources: string[];
  resourceNames: string[];
  nonResourceURLs: string[];
}

interface Subject {
  kind: string;
  name: string;
  namespace?: string;
}

const strings = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);

function rulesOf(role: KubeObject): PolicyRule[] {
  return (Array.isArray(role.rules) ? role.rules : []).filter(isObject).map((r) => ({
    verbs: strings(r.verbs),
    apiGroups: strings(r.apiGroups),
    resources: strings(r.resources),
    resourceNames: strings(r.resourceNames),
    nonResourceURLs: strings(r.nonResourceURLs),
  }));
}

function subjectsOf(binding: KubeObject): Subject[] {
  return (Array.isArray(binding.subjects) ? binding.subjects : [])
    .filter(isObject)
    .map((s) => ({ kind: String(s.kind ?? ''), name: String(s.name ?? ''), ...(typeof s.namespace === 'string' && s.namespace ? { namespace: s.namespace } : {}) }));
}

// ---- rule matching (kube's rbac/v1 evaluation helpers)

const matchesOrAll = (values: string[], wanted: string): boolean => values.some((v) => v === '*' || v === wanted);

function resourceMatches(rule: PolicyRule, resource: string, subresource: string): boolean {
  const combined = subresource ? `${resource}/${subresource}` : resource;
  // `*/scale` grants the scale subresource of every resource.
  return rule.resources.some((r) => r === '*' || r === combined || (!!subresource && r === `*/${subresource}`));
}

function nonResourceURLMatches(rule: PolicyRule, path: string): boolean {
  return rule.nonResourceURLs.some((u) => u === '*' || u === path || (u.endsWith('*') && path.startsWith(u.replace(/\*+$/, ''))));
}

export function ruleAllows(rule: PolicyRule, attrs: AccessAttributes): boolean {
  if ('nonResource' in attrs) return matchesOrAll(rule.verbs, attrs.nonResource.verb) && nonResourceURLMatches(rule, attrs.nonResource.path);
  const a = attrs.resource;
  return (
    matchesOrAll(rule.verbs, a.verb) &&
    matchesOrAll(rule.apiGroups, a.group) &&
    resourceMatches(rule, a.resource, a.subresource ?? '') &&
    (rule.resourceNames.length === 0 || rule.resourceNames.includes(a.name ?? ''))
  );
}

/** Whether a binding's subject is the user; a ServiceAccount without a namespace is in the binding's own. */
function appliesTo(subject: Subject, user: UserInfo, bindingNamespace: string): boolean {
  switch (subject.kind) {
    case 'User':
      return subject.name === user.username;
    case 'Group':
      return user.groups.includes(subject.name);
    case 'ServiceAccount': {
      const ns = subject.namespace ?? bindingNamespace;
      return !!ns && user.username === `${SERVICE_ACCOUNT_PREFIX}${ns}:${subject.name}`;
    }
    default:
      return false;
  }
}

/** `ServiceAccount "name/ns"`, `User "name"`, as kube's reasons name subjects. */
function describeSubject(s: Subject, bindingNamespace: string): string {
  return s.kind === 'ServiceAccount' ? `${s.kind} ${JSON.stringify(`${s.name}/${s.namespace ?? bindingNamespace}`)}` : `${s.kind} ${JSON.stringify(s.name)}`;
}

/** The RBAC objects the authorizer reads. */
export interface RbacObjects {
  clusterRoleBindings(): KubeObject[];
  roleBindings(namespace: string): KubeObject[];
  clusterRoles(): KubeObject[];
  clusterRole(name: string): KubeObject | undefined;
  role(namespace: string, name: string): KubeObject | undefined;
}

/** The store's RBAC objects, read at each decision (so a binding is in effect as soon as it is written). */
export function storeRbacObjects(store: Store): RbacObjects {
  const list = (resource: string, namespace?: string): KubeObject[] => {
    const rt = store.registry.get(RBAC_GROUP, resource);
    return rt ? store.list(rt, 'v1', namespace ? { namespace } : {}).items : [];
  };
  const get = (resource: string, namespace: string | undefined, name: string): KubeObject | undefined => {
    const rt = store.registry.get(RBAC_GROUP, resource);
    try {
      return rt ? store.get(rt, 'v1', namespace, name) : undefined;
    } catch {
      return undefined;
    }
  };
  return {
    clusterRoleBindings: () => list('clusterrolebindings'),
    roleBindings: (namespace) => list('rolebindings', namespace),
    clusterRoles: () => list('clusterroles'),
    clusterRole: (name) => get('clusterroles', undefined, name),
    role: (namespace, name) => get('roles', namespace, name),
  };
}

export class RbacAuthorizer {
  constructor(private readonly objects: RbacObjects) {}

  authorize(user: UserInfo, attrs: AccessAttributes): Decision {
    if (user.groups.includes(PRIVILEGED_GROUP)) return { allowed: true, reason: '' };
    const namespace = 'resource' in attrs ? (attrs.resource.namespace ?? '') : '';
    let reason: string | undefined;
    const errors = this.visit(user, namespace, (rules, source) => {
      if (!rules.some((r) => ruleAllows(r, attrs))) return true;
      reason = `RBAC: allowed by ${source}`;
      return false;
    });
    if (reason) return { allowed: true, reason };
    return { allowed: false, reason: errors.length === 0 ? '' : `RBAC: ${errors.length === 1 ? errors[0] : `[${errors.join(', ')}]`}` };
  }

  /** Every rule granted to the user in a namespace (none: cluster-wide only), and the errors met (SelfSubjectRulesReview). */
  rulesFor(user: UserInfo, namespace: string): { rules: PolicyRule[]; errors: string[] } {
    if (user.groups.includes(PRIVILEGED_GROUP)) return { rules: [{ verbs: ['*'], apiGroups: ['*'], resources: ['*'], resourceNames: [], nonResourceURLs: [] }, { verbs: ['*'], apiGroups: [], resources: [], resourceNames: [], nonResourceURLs: ['*'] }], errors: [] };
    const rules: PolicyRule[] = [];
    const errors = this.visit(user, namespace, (granted) => (rules.push(...granted), true));
    return { rules, errors };
  }

  /**
   * Visits the rules of every binding that applies to the user (ClusterRoleBindings, then the namespace's
   * RoleBindings), with a description of where they come from, until `visitor` returns false; returns the errors met.
   */
  private visit(user: UserInfo, namespace: string, visitor: (rules: PolicyRule[], source: string) => boolean): string[] {
    const errors: string[] = [];
    const bindings: Array<[KubeObject, 'ClusterRoleBinding' | 'RoleBinding', string]> = [
      ...this.objects.clusterRoleBindings().map((b): [KubeObject, 'ClusterRoleBinding', string] => [b, 'ClusterRoleBinding', '']),
      ...(namespace ? this.objects.roleBindings(namespace).map((b): [KubeObject, 'RoleBinding', string] => [b, 'RoleBinding', namespace]) : []),
    ];
    for (const [binding, kind, ns] of bindings) {
      const subject = subjectsOf(binding).find((s) => appliesTo(s, user, ns));
      if (!subject) continue;
      const ref = isObject(binding.roleRef) ? binding.roleRef : {};
      const refKind = String(ref.kind ?? '');
      const refName = String(ref.name ?? '');
      const rules = this.roleRules(refKind, refName, ns, errors);
      const bindingName = kind === 'RoleBinding' ? `${binding.metadata.name}/${ns}` : binding.metadata.name;
      const source = `${kind} ${JSON.stringify(bindingName)} of ${refKind} ${JSON.stringify(refName)} to ${describeSubject(subject, ns)}`;
      if (!visitor(rules, source)) break;
    }
    return errors;
  }

  /** The rules a binding's roleRef grants; a missing role is an error (noted) that grants nothing. */
  private roleRules(kind: string, name: string, namespace: string, errors: string[]): PolicyRule[] {
    if (kind === 'ClusterRole') {
      const role = this.objects.clusterRole(name);
      if (!role) errors.push(`clusterrole.${RBAC_GROUP} ${JSON.stringify(name)} not found`);
      return role ? this.clusterRoleRules(role, new Set()) : [];
    }
    if (kind === 'Role' && namespace) {
      const role = this.objects.role(namespace, name);
      if (!role) errors.push(`role.${RBAC_GROUP} ${JSON.stringify(name)} not found`);
      return role ? rulesOf(role) : [];
    }
    errors.push(`unsupported role reference kind: ${JSON.stringify(kind)}`);
    return [];
  }

  /**
   * A ClusterRole's rules; one with an aggregationRule has the rules of the ClusterRoles its selectors match (kube's
   * aggregation controller writes them into it; here they are gathered when asked, so they are never stale).
   */
  private clusterRoleRules(role: KubeObject, seen: Set<string>): PolicyRule[] {
    const name = role.metadata.name ?? '';
    const aggregation = isObject(role.aggregationRule) ? role.aggregationRule : undefined;
    if (!aggregation || seen.has(name)) return rulesOf(role);
    seen.add(name);
    const selectors = (Array.isArray(aggregation.clusterRoleSelectors) ? aggregation.clusterRoleSelectors : []).filter(isObject);
    return this.objects
      .clusterRoles()
      .filter((other) => other.metadata.name !== name && selectors.some((s) => selectorMatches(s as V1LabelSelector, other.metadata.labels)))
      .flatMap((other) => this.clusterRoleRules(other, seen));
  }
}

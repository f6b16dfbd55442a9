// Access reviews on the lab API server, decided by RBAC over Roles, ClusterRoles and their bindings written with the
// real kubectl: SubjectAccessReview through client-node and kubectl, SelfSubjectAccessReview through
// `kubectl auth can-i` (as the lab admin and, impersonating, as others), LocalSubjectAccessReview by its namespace.
import { AuthorizationV1Api, KubeConfig, type V1ResourceAttributes } from '@kubernetes/client-node';
import { describe, expect, it } from '@jest/globals';
import { call, kubectl, startServer, type TestServer } from './helpers.js';

const RBAC = `
apiVersion: v1
kind: Namespace
metadata: {name: team-a}
---
apiVersion: v1
kind: Namespace
metadata: {name: team-b}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: netpol-reader, namespace: team-a}
rules:
  - apiGroups: [networking.k8s.io]
    resources: [networkpolicies]
    verbs: [get, list, watch]
  - apiGroups: [""]
    resources: [pods, pods/log]
    verbs: [get]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: alice-netpol, namespace: team-a}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: netpol-reader}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: alice}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: dangling, namespace: team-a}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: gone}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: carol}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: one-configmap}
rules:
  - apiGroups: [""]
    resources: [configmaps]
    resourceNames: [only-this]
    verbs: [get]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: probes}
rules:
  - nonResourceURLs: [/healthz, /metrics/*]
    verbs: [get]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: alice-cluster}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: probes}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: alice}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: alice-configmap, namespace: team-b}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: one-configmap}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: alice}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: auditor}
aggregationRule:
  clusterRoleSelectors: [{matchLabels: {example.com/aggregate-to-auditor: "true"}}]
rules: []
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: secrets-lister, labels: {example.com/aggregate-to-auditor: "true"}}
rules:
  - apiGroups: [""]
    resources: [secrets]
    verbs: [list]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: auditors}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: auditor}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: Group, name: auditors}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: apps-admin}
rules:
  - apiGroups: [apps]
    resources: ["*"]
    verbs: ["*"]
  - apiGroups: ["*"]
    resources: ["*/scale"]
    verbs: [update]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: robot-apps, namespace: team-b}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: apps-admin}
subjects: [{kind: ServiceAccount, name: robot}]
`;

describe('lab API server: access reviews decided by RBAC', () => {
  let srv: TestServer;
  let authz: AuthorizationV1Api;
  beforeAll(async () => {
    srv = await startServer();
    const kc = new KubeConfig();
    kc.loadFromFile(srv.kubeconfig);
    authz = kc.makeApiClient(AuthorizationV1Api);
    const r = await kubectl(srv, ['apply', '-f', '-'], RBAC);
    if (r.code !== 0) throw new Error(`kubectl apply: ${r.stderr}`);
  });
  afterAll(() => srv?.stop());

  const review = async (who: { user?: string; groups?: string[] }, resourceAttributes: V1ResourceAttributes): Promise<{ allowed: boolean; reason?: string }> => {
    const r = await authz.createSubjectAccessReview({ body: { spec: { ...who, resourceAttributes } } });
    return { allowed: r.status!.allowed, ...(r.status!.reason ? { reason: r.status!.reason } : {}) };
  };
  const netpol = (verb: string, namespace?: string): V1ResourceAttributes => ({ verb, group: 'networking.k8s.io', resource: 'networkpolicies', ...(namespace ? { namespace } : {}) });

  it('is listed by discovery as create-only resources', async () => {
    const r = await kubectl(srv, ['api-resources', '--api-group=authorization.k8s.io', '-o', 'wide']);
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/subjectaccessreviews\s+authorization\.k8s\.io\/v1\s+false\s+SubjectAccessReview\s+create/);
    expect(r.stdout).toMatch(/selfsubjectaccessreviews\s+authorization\.k8s\.io\/v1\s+false\s+SelfSubjectAccessReview\s+create/);
    expect(r.stdout).toMatch(/localsubjectaccessreviews\s+authorization\.k8s\.io\/v1\s+true\s+LocalSubjectAccessReview\s+create/);
    expect(r.stdout).toMatch(/selfsubjectrulesreviews\s+authorization\.k8s\.io\/v1\s+false\s+SelfSubjectRulesReview\s+create/);
  });

  it('allows by a RoleBinding in the namespace only, for the verbs and subresources its Role names', async () => {
    expect(await review({ user: 'alice' }, netpol('list', 'team-a'))).toEqual({ allowed: true, reason: 'RBAC: allowed by RoleBinding "alice-netpol/team-a" of Role "netpol-reader" to User "alice"' });
    expect((await review({ user: 'alice' }, netpol('delete', 'team-a'))).allowed).toBe(false);
    expect((await review({ user: 'alice' }, netpol('list', 'team-b'))).allowed).toBe(false);
    // No namespace: every namespace, which a RoleBinding never grants.
    expect((await review({ user: 'alice' }, netpol('list'))).allowed).toBe(false);
    expect((await review({ user: 'bob' }, netpol('list', 'team-a'))).allowed).toBe(false);
    expect((await review({ user: 'alice' }, { verb: 'get', resource: 'pods', subresource: 'log', namespace: 'team-a' })).allowed).toBe(true);
    expect((await review({ user: 'alice' }, { verb: 'get', resource: 'pods', subresource: 'exec', namespace: 'team-a' })).allowed).toBe(false);
    // The same resource in another group is another resource.
    expect((await review({ user: 'alice' }, { verb: 'get', group: 'metrics.k8s.io', resource: 'pods', namespace: 'team-a' })).allowed).toBe(false);
  });

  it('limits by resourceNames, and matches non-resource URLs exactly or by a trailing *', async () => {
    const cm = (name?: string, verb = 'get'): V1ResourceAttributes => ({ verb, resource: 'configmaps', namespace: 'team-b', ...(name ? { name } : {}) });
    expect((await review({ user: 'alice' }, cm('only-this'))).allowed).toBe(true);
    expect((await review({ user: 'alice' }, cm('another'))).allowed).toBe(false);
    expect((await review({ user: 'alice' }, cm())).allowed).toBe(false);
    const url = async (verb: string, path: string): Promise<boolean> => (await authz.createSubjectAccessReview({ body: { spec: { user: 'alice', nonResourceAttributes: { verb, path } } } })).status!.allowed;
    expect(await url('get', '/healthz')).toBe(true);
    expect(await url('get', '/metrics/cadvisor')).toBe(true);
    expect(await url('get', '/healthz/etcd')).toBe(false);
    expect(await url('post', '/healthz')).toBe(false);
  });

  it('grants a group the rules aggregated into its ClusterRole, a ServiceAccount wildcards in its own namespace, system:masters everything', async () => {
    expect(await review({ user: 'bob', groups: ['auditors'] }, { verb: 'list', resource: 'secrets' })).toEqual({ allowed: true, reason: 'RBAC: allowed by ClusterRoleBinding "auditors" of ClusterRole "auditor" to Group "auditors"' });
    expect((await review({ user: 'bob', groups: ['auditors'] }, { verb: 'get', resource: 'secrets', namespace: 'x', name: 's' })).allowed).toBe(false);
    // A new aggregated role counts at once.
    const more = await kubectl(srv, ['create', 'clusterrole', 'cm-lister', '--verb=list', '--resource=configmaps'], undefined);
    expect(more.stderr).toBe('');
    expect((await review({ groups: ['auditors'] }, { verb: 'list', resource: 'configmaps' })).allowed).toBe(false);
    expect((await kubectl(srv, ['label', 'clusterrole', 'cm-lister', 'example.com/aggregate-to-auditor=true'])).code).toBe(0);
    expect((await review({ groups: ['auditors'] }, { verb: 'list', resource: 'configmaps' })).allowed).toBe(true);

    const robot = 'system:serviceaccount:team-b:robot';
    expect(await review({ user: robot }, { verb: 'create', group: 'apps', resource: 'deployments', namespace: 'team-b' })).toEqual({ allowed: true, reason: 'RBAC: allowed by RoleBinding "robot-apps/team-b" of ClusterRole "apps-admin" to ServiceAccount "robot/team-b"' });
    expect((await review({ user: robot }, { verb: 'create', group: 'apps', resource: 'deployments', namespace: 'team-a' })).allowed).toBe(false);
    expect((await review({ user: 'system:serviceaccount:team-a:robot' }, { verb: 'create', group: 'apps', resource: 'deployments', namespace: 'team-b' })).allowed).toBe(false);
    expect((await review({ user: robot }, { verb: 'update', group: 'example.com', resource: 'widgets', subresource: 'scale', namespace: 'team-b' })).allowed).toBe(true);
    expect((await review({ user: robot }, { verb: 'update', group: 'example.com', resource: 'widgets', subresource: 'status', namespace: 'team-b' })).allowed).toBe(false);

    expect(await review({ user: 'root', groups: ['system:masters'] }, { verb: 'delete', resource: 'nodes', name: 'n1' })).toEqual({ allowed: true });
  });

  it('says which role a binding misses; refuses a review without attributes or subject, and reads', async () => {
    const r = await review({ user: 'carol' }, netpol('list', 'team-a'));
    expect(r).toEqual({ allowed: false, reason: 'RBAC: role.rbac.authorization.k8s.io "gone" not found' });
    const none = await call(srv.api, 'POST', '/apis/authorization.k8s.io/v1/subjectaccessreviews', { spec: { user: 'alice' } });
    expect(none.status).toBe(422);
    expect(none.body.message).toMatch(/exactly one of nonResourceAttributes or resourceAttributes must be specified/);
    const nobody = await call(srv.api, 'POST', '/apis/authorization.k8s.io/v1/subjectaccessreviews', { spec: { resourceAttributes: netpol('list') } });
    expect(nobody.status).toBe(422);
    expect(nobody.body.message).toMatch(/at least one of user or group must be specified/);
    expect((await call(srv.api, 'GET', '/apis/authorization.k8s.io/v1/subjectaccessreviews')).status).toBe(405);
    expect((await call(srv.api, 'POST', '/apis/authorization.k8s.io/v1/subjectaccessreviews', { spec: { user: 'alice', resourceAttributes: netpol('list') } }, { authorization: 'Bearer nope' })).status).toBe(401);
  });

  it('LocalSubjectAccessReview reviews within its path\'s namespace', async () => {
    const path = '/apis/authorization.k8s.io/v1/namespaces/team-a/localsubjectaccessreviews';
    const ok = await call(srv.api, 'POST', path, { spec: { user: 'alice', resourceAttributes: netpol('list', 'team-a') } });
    expect(ok.status).toBe(201);
    expect(ok.body.status.allowed).toBe(true);
    expect((await call(srv.api, 'POST', path, { spec: { user: 'alice', resourceAttributes: netpol('list', 'team-b') } })).status).toBe(400);
  });

  it('kubectl: create -f a SubjectAccessReview, and auth can-i as the admin and as others', async () => {
    const sar = JSON.stringify({ apiVersion: 'authorization.k8s.io/v1', kind: 'SubjectAccessReview', spec: { user: 'alice', resourceAttributes: netpol('watch', 'team-a') } });
    const created = await kubectl(srv, ['create', '-o', 'json', '-f', '-'], sar);
    expect(created.stderr).toBe('');
    expect(JSON.parse(created.stdout).status.allowed).toBe(true);

    const canI = async (...args: string[]): Promise<string> => {
      const r = await kubectl(srv, ['auth', 'can-i', ...args]);
      expect(r.code).toBe(r.stdout.startsWith('yes') ? 0 : 1);
      return r.stdout.trim();
    };
    expect(await canI('list', 'networkpolicies')).toBe('yes');
    expect(await canI('list', 'networkpolicies', '-A')).toBe('yes');
    expect(await canI('list', 'networkpolicies', '-n', 'team-a', '--as', 'alice')).toBe('yes');
    expect(await canI('delete', 'networkpolicies', '-n', 'team-a', '--as', 'alice')).toBe('no');
    expect(await canI('list', 'networkpolicies', '-n', 'team-b', '--as', 'alice')).toBe('no');
    expect(await canI('get', 'pods', '--subresource=log', '-n', 'team-a', '--as', 'alice')).toBe('yes');
    expect(await canI('get', 'configmap/only-this', '-n', 'team-b', '--as', 'alice')).toBe('yes');
    expect(await canI('get', '/metrics/x', '--as', 'alice')).toBe('yes');
    expect(await canI('list', 'secrets', '-A', '--as', 'bob', '--as-group', 'auditors')).toBe('yes');
    expect(await canI('create', 'deployments.apps', '-n', 'team-b', '--as', 'system:serviceaccount:team-b:robot')).toBe('yes');
    expect(await canI('create', 'deployments.apps', '-n', 'team-a', '--as', 'system:serviceaccount:team-b:robot')).toBe('no');
  });

  it('kubectl auth can-i --list: a user\'s rules in a namespace (SelfSubjectRulesReview)', async () => {
    const rows = async (...args: string[]): Promise<string[]> => {
      const r = await kubectl(srv, ['auth', 'can-i', '--list', ...args]);
      expect(r.stderr).toBe('');
      return r.stdout.trim().split('\n').map((l) => l.trim().split(/\s{2,}/).join(' | '));
    };
    const alice = await rows('-n', 'team-a', '--as', 'alice');
    expect(alice).toEqual(
      expect.arrayContaining([
        'networkpolicies.networking.k8s.io | [] | [] | [get list watch]',
        'pods/log | [] | [] | [get]',
        'selfsubjectaccessreviews.authorization.k8s.io | [] | [] | [create]',
        '[/metrics/*] | [] | [get]',
      ]),
    );
    expect(alice.some((l) => l.startsWith('configmaps'))).toBe(false);
    expect(await rows('-n', 'team-b', '--as', 'alice')).toEqual(expect.arrayContaining(['configmaps | [] | [only-this] | [get]']));
    expect(await rows()).toEqual(expect.arrayContaining(['*.* | [] | [] | [*]', '[*] | [] | [*]']));
  });
});

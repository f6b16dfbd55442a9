// ServiceAccount tokens on the lab API server (`kubectl create token`), and what their users may do: every request
// is held to RBAC as kube-apiserver holds it (kube's default roles let any authenticated user discover the API and
// review its own access), TokenReview names the ServiceAccount, and deleting the ServiceAccount revokes its tokens.
import { AuthenticationV1Api, KubeConfig, type V1TokenReviewStatus } from '@kubernetes/client-node';
import { describe, expect, it } from '@jest/globals';
import { kubectl, startServer, type TestServer } from './helpers.js';

describe('lab API server: TokenRequest, and RBAC for the users it makes', () => {
  let srv: TestServer;
  beforeAll(async () => (srv = await startServer()));
  afterAll(() => srv?.stop());

  /** The TokenReview's status for a token, asked by the admin through client-node. */
  const reviewed = async (token: string, audiences?: string[]): Promise<V1TokenReviewStatus | undefined> => {
    const kc = new KubeConfig();
    kc.loadFromFile(srv.kubeconfig);
    return (await kc.makeApiClient(AuthenticationV1Api).createTokenReview({ body: { spec: { token, ...(audiences ? { audiences } : {}) } } })).status;
  };

  const ok = async (args: string[]): Promise<string> => {
    const r = await kubectl(srv, args);
    if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };

  it('issues a token that authenticates as the ServiceAccount, held to RBAC on every request', async () => {
    await ok(['create', 'namespace', 'team-x']);
    await ok(['create', 'serviceaccount', 'viewer', '-n', 'team-x']);
    const token = (await ok(['create', 'token', 'viewer', '-n', 'team-x'])).trim();
    expect(token.split('.')).toHaveLength(3);
    const review = await reviewed(token);
    expect(review?.authenticated).toBe(true);
    expect(review?.user?.username).toBe('system:serviceaccount:team-x:viewer');
    expect(review?.user?.groups).toEqual(['system:serviceaccounts', 'system:serviceaccounts:team-x', 'system:authenticated']);

    const as = (args: string[]): ReturnType<typeof kubectl> => kubectl(srv, ['--token', token, ...args]);
    // Discovery and its own access it may check (kube's default roles); nothing else yet.
    expect((await as(['api-resources', '--api-group=networking.k8s.io'])).stdout).toMatch(/networkpolicies/);
    expect(await as(['auth', 'can-i', 'list', 'pods', '-n', 'team-x'])).toMatchObject({ code: 1, stdout: 'no\n' });
    const denied = await as(['get', 'pods', '-n', 'team-x']);
    expect(denied.code).toBe(1);
    expect(denied.stderr.trim()).toBe('Error from server (Forbidden): pods is forbidden: User "system:serviceaccount:team-x:viewer" cannot list resource "pods" in API group "" in the namespace "team-x"');

    await ok(['create', 'role', 'pod-reader', '--verb=get,list,watch', '--resource=pods', '-n', 'team-x']);
    await ok(['create', 'rolebinding', 'viewer', '--role=pod-reader', '--serviceaccount=team-x:viewer', '-n', 'team-x']);
    expect(await as(['get', 'pods', '-n', 'team-x'])).toMatchObject({ code: 0, stderr: 'No resources found in team-x namespace.\n' });
    expect(await as(['auth', 'can-i', 'list', 'pods', '-n', 'team-x'])).toMatchObject({ code: 0, stdout: 'yes\n' });
    expect((await as(['get', 'pods', '-n', 'default'])).stderr).toMatch(/cannot list resource "pods" in API group "" in the namespace "default"/);
    expect((await as(['delete', 'pod', 'web', '-n', 'team-x'])).stderr).toMatch(/pods "web" is forbidden: User "system:serviceaccount:team-x:viewer" cannot delete resource "pods" in API group "" in the namespace "team-x"/);
    expect((await as(['get', 'nodes'])).stderr).toMatch(/cannot list resource "nodes" in API group "" at the cluster scope/);
    expect((await as(['get', '--raw', '/logs/'])).stderr).toMatch(/forbidden: User "system:serviceaccount:team-x:viewer" cannot get path "\/logs\/"/);
    // It may not act as someone else.
    expect((await as(['get', 'pods', '-n', 'team-x', '--as', 'alice'])).stderr).toMatch(/users "alice" is forbidden: User "system:serviceaccount:team-x:viewer" cannot impersonate resource "users" in API group "" at the cluster scope/);
    // The admin may, and the impersonated user is held to RBAC too.
    expect((await kubectl(srv, ['get', 'pods', '-n', 'team-x', '--as', 'system:serviceaccount:team-x:viewer'])).code).toBe(0);
    expect((await kubectl(srv, ['get', 'secrets', '-n', 'team-x', '--as', 'system:serviceaccount:team-x:viewer'])).stderr).toMatch(/cannot list resource "secrets"/);

    // Deleting the ServiceAccount revokes its tokens; one of the same name is another ServiceAccount.
    await ok(['delete', 'serviceaccount', 'viewer', '-n', 'team-x']);
    await ok(['create', 'serviceaccount', 'viewer', '-n', 'team-x']);
    const revoked = await as(['get', 'pods', '-n', 'team-x']);
    expect(revoked.code).toBe(1);
    expect(revoked.stderr).toMatch(/Unauthorized/);
    expect((await reviewed(token))?.authenticated).toBeFalsy();
  });

  it('a token for another audience is good for that audience only; no token for a ServiceAccount that does not exist', async () => {
    await ok(['create', 'serviceaccount', 'agent', '-n', 'team-x']);
    const token = (await ok(['create', 'token', 'agent', '-n', 'team-x', '--audience', 'seine-controller'])).trim();
    expect((await kubectl(srv, ['--token', token, 'get', 'pods', '-n', 'team-x'])).stderr).toMatch(/Unauthorized/);
    expect(await reviewed(token, ['seine-controller'])).toMatchObject({ authenticated: true, audiences: ['seine-controller'], user: { username: 'system:serviceaccount:team-x:agent' } });
    expect((await reviewed(token))?.authenticated).toBeFalsy();
    const missing = await kubectl(srv, ['create', 'token', 'nobody', '-n', 'team-x']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/serviceaccounts "nobody" not found/);
    expect((await kubectl(srv, ['create', 'token', 'agent', '-n', 'team-x', '--duration', '1m'])).stderr).toMatch(/may not specify a duration less than 10 minutes/);
  });

  it('bootstraps kube\'s default roles for authenticated users', async () => {
    expect(await ok(['get', 'clusterrolebinding', 'system:discovery', 'system:basic-user', 'system:public-info-viewer', 'cluster-admin', '-o', 'name'])).toBe(
      'clusterrolebinding.rbac.authorization.k8s.io/system:discovery\nclusterrolebinding.rbac.authorization.k8s.io/system:basic-user\nclusterrolebinding.rbac.authorization.k8s.io/system:public-info-viewer\nclusterrolebinding.rbac.authorization.k8s.io/cluster-admin\n',
    );
  });
});

// TokenReview on the lab API server, through the clients that use it: kubectl (discovery finds the resource,
// create returns the review) and client-node's AuthenticationV1Api, as kube-apiserver answers them.
import { AuthenticationV1Api, KubeConfig } from '@kubernetes/client-node';
import { describe, expect, it } from '@jest/globals';
import { LAB_ADMIN_USER } from '../../../src/lab/apiserver/tokenreview.js';
import { call, kubectl, startServer, type TestServer } from './helpers.js';

describe('lab API server: TokenReview', () => {
  let srv: TestServer;
  let auth: AuthenticationV1Api;
  beforeAll(async () => {
    srv = await startServer();
    const kc = new KubeConfig();
    kc.loadFromFile(srv.kubeconfig);
    auth = kc.makeApiClient(AuthenticationV1Api);
  });
  afterAll(() => srv?.stop());

  it('is listed by discovery as a create-only, cluster-scoped resource', async () => {
    const r = await kubectl(srv, ['api-resources', '--api-group=authentication.k8s.io', '-o', 'wide']);
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/tokenreviews\s+authentication\.k8s\.io\/v1\s+false\s+TokenReview\s+create/);
  });

  it('authenticates the lab token as the lab admin, and refuses a token it does not know (kubectl)', async () => {
    const review = (token: string): string => JSON.stringify({ apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token } });
    const ok = await kubectl(srv, ['create', '-o', 'json', '-f', '-'], review(srv.api.token));
    expect(ok.stderr).toBe('');
    expect(JSON.parse(ok.stdout).status).toEqual({ authenticated: true, user: { username: LAB_ADMIN_USER, groups: ['system:masters', 'system:authenticated'] }, audiences: ['https://kubernetes.default.svc.cluster.local'] });
    const bad = await kubectl(srv, ['create', '-o', 'json', '-f', '-'], review('not-a-token'));
    expect(bad.code).toBe(0);
    const status = JSON.parse(bad.stdout).status;
    expect(status.authenticated).toBeUndefined();
    expect(status.error).toMatch(/invalid bearer token/);
  });

  it('answers client-node, checks audiences, and refuses a review without a token or by another method', async () => {
    const r = await auth.createTokenReview({ body: { spec: { token: srv.api.token } } });
    expect(r.status?.authenticated).toBe(true);
    expect(r.status?.user?.username).toBe(LAB_ADMIN_USER);
    const other = await auth.createTokenReview({ body: { spec: { token: srv.api.token, audiences: ['some-other-service'] } } });
    expect(other.status?.authenticated).toBeFalsy();
    expect(other.status?.error).toMatch(/audiences/);
    expect((await call(srv.api, 'POST', '/apis/authentication.k8s.io/v1/tokenreviews', { spec: {} })).status).toBe(400);
    expect((await call(srv.api, 'GET', '/apis/authentication.k8s.io/v1/tokenreviews')).status).toBe(405);
    // A review is itself an API request: it needs a token of its own.
    expect((await call(srv.api, 'POST', '/apis/authentication.k8s.io/v1/tokenreviews', { spec: { token: srv.api.token } }, { authorization: 'Bearer nope' })).status).toBe(401);
  });
});

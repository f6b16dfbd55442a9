// The controller's read API (GET /v1/policies) over real HTTPS, against the lab API server: the policy controller
// computes real NetworkPolicies and a ClusterNetworkPolicy, realization comes from agents' reports (PUT
// /v1/realized), users are authenticated by TokenReview and authorized by SubjectAccessReview over RBAC objects
// written with kubectl.
import { CoreV1Api, CustomObjectsApi, KubeConfig, NetworkingV1Api } from '@kubernetes/client-node';
import { describe, expect, it } from '@jest/globals';
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { request } from 'node:https';
import { MERGE_PATCH } from '../../src/k8s/api.js';
import { AccessReviewer } from '../../src/k8s/access-review.js';
import { LAB_ADMIN_USER } from '../../src/lab/apiserver/tokenreview.js';
import { controllerEndpointSource, type ControllerEndpoint } from '../../src/policy/channel/discovery.js';
import { startPolicyChannel, type PolicyChannel } from '../../src/policy/channel/server.js';
import { PolicyController } from '../../src/policy/controller/controller.js';
import { PolicyApi, type PolicyRealizationList } from '../../src/policy/controller/policy-api.js';
import { ShareServer } from '../../src/policy/controller/share-server.js';
import { selfSignedCert } from '../../src/util/certs.js';
import { logger } from '../../src/util/log.js';
import { repoRoot } from '../../src/util/paths.js';
import { eventually } from '../../src/util/wait.js';
import { kubectl, startServer, type Json, type TestServer } from '../lab/apiserver/helpers.js';

interface Reply {
  status: number;
  body: Json;
}

function https(method: string, url: string, ca: string, token?: string, body?: unknown): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = request(url, { method, ca, agent: false, headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(payload ? { 'content-type': 'application/json' } : {}) } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text && res.headers['content-type'] === 'application/json' ? (JSON.parse(text) as Json) : text }));
    });
    req.on('error', reject);
    req.end(payload);
  });
}

/** `seine get ...` from the build, as a user runs it. */
function seineGet(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [join(repoRoot(), 'dist/src/cli/main.js'), 'get', ...args], { timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

/** A kubectl-style table's rows as words, its AGE cells (which move with the clock) as <age>. */
function tableRows(stdout: string): string[] {
  const lines = stdout.trimEnd().split('\n').map((l) => l.trim().split(/\s+/));
  const at = lines[0]!.indexOf('AGE');
  return lines.map((cells, i) => (i > 0 && at >= 0 && /^(\d+[smhdy])+$/.test(cells[at] ?? '') ? cells.map((c, j) => (j === at ? '<age>' : c)) : cells).join(' '));
}

const RBAC = `
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: netpol-reader, namespace: team-a}
rules: [{apiGroups: [networking.k8s.io], resources: [networkpolicies], verbs: [get, list]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: alice, namespace: team-a}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: netpol-reader}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: alice}]
`;

describe('policy controller read API: where each policy is realized', () => {
  let srv: TestServer;
  let kc: KubeConfig;
  let controller: PolicyController;
  let channel: PolicyChannel | undefined;
  let endpoint: ControllerEndpoint;
  const uids: Record<string, string> = {};

  beforeAll(async () => {
    srv = await startServer();
    kc = new KubeConfig();
    kc.loadFromFile(srv.kubeconfig);
    const core = kc.makeApiClient(CoreV1Api);
    const net = kc.makeApiClient(NetworkingV1Api);
    const crd = await kubectl(srv, ['apply', '-f', join(repoRoot(), 'crds/clusternetworkpolicy.yaml')]);
    if (crd.code !== 0) throw new Error(`CRD: ${crd.stderr}`);
    for (const ns of ['team-a', 'team-b']) await core.createNamespace({ body: { metadata: { name: ns } } });
    const rbac = await kubectl(srv, ['apply', '-f', '-'], RBAC);
    if (rbac.code !== 0) throw new Error(`RBAC: ${rbac.stderr}`);
    for (const [namespace, name, node, ip] of [['team-a', 'web', 'n1', '10.0.0.1'], ['team-a', 'cl', 'n2', '10.0.0.2'], ['team-b', 'db', 'n1', '10.0.0.3']] as const) {
      await core.createNamespacedPod({ namespace, body: { metadata: { name, labels: { app: name } }, spec: { nodeName: node, containers: [{ name: 'main', image: 'lab' }] } } });
      await core.patchNamespacedPodStatus({ name, namespace, body: { status: { podIP: ip, phase: 'Running' } } }, MERGE_PATCH);
    }
    for (const [namespace, name, podSelector] of [['team-a', 'all', {}], ['team-a', 'web', { matchLabels: { app: 'web' } }], ['team-b', 'db', {}]] as const) {
      const p = await net.createNamespacedNetworkPolicy({ namespace, body: { metadata: { name }, spec: { podSelector, ingress: [{}] } } });
      uids[`${namespace}/${name}`] = p.metadata!.uid!;
    }
    const cnp = (await kc.makeApiClient(CustomObjectsApi).createClusterCustomObject({
      group: 'policy.networking.k8s.io',
      version: 'v1alpha2',
      plural: 'clusternetworkpolicies',
      body: { apiVersion: 'policy.networking.k8s.io/v1alpha2', kind: 'ClusterNetworkPolicy', metadata: { name: 'admin' }, spec: { tier: 'Admin', priority: 5, subject: { namespaces: {} }, ingress: [{ action: 'Deny', from: [{ namespaces: { matchLabels: { team: 'y' } } }] }] } },
    })) as { metadata: { uid: string } };
    uids.admin = cnp.metadata.uid;
    controller = new PolicyController({ kubeConfig: kc });
    await controller.start();
    channel = await startPolicyChannel({ kubeConfig: kc, controller, namespace: 'kube-system', bindAddress: '127.0.0.1', port: 0, advertiseAddress: '127.0.0.1', agentUsers: [LAB_ADMIN_USER] });
    endpoint = (await controllerEndpointSource(kc)())!;
  }, 60_000);
  afterAll(async () => {
    await channel?.close();
    await controller?.stop();
    await srv?.stop();
  });

  /** GET /v1/policies?query with the lab admin's token, another, or none (null). */
  const get = (query: string, token: string | null = srv.api.token, base = endpoint): Promise<Reply> => https('GET', `${base.url}/v1/policies?${query}`, base.ca, token ?? undefined);

  /**
   * A second server on the same controller, with users told apart by a stand-in authenticator (alice-token is alice);
   * what they may read is asked of the lab API server through `access`.
   */
  const standInServer = async (access: AccessReviewer): Promise<{ base: ControllerEndpoint; server: ShareServer }> => {
    const users: Record<string, { username: string; groups: string[] }> = { 'alice-token': { username: 'alice', groups: ['system:authenticated'] } };
    const tls = selfSignedCert({ commonName: 'seine-controller', ips: ['127.0.0.1'] });
    const server = new ShareServer({
      shares: controller.shares,
      tls,
      authenticate: async () => undefined,
      agentUsers: [],
      onChange: () => () => undefined,
      ready: () => true,
      policies: new PolicyApi({
        realizations: (which) => controller.realizations(which),
        lastReport: (n) => controller.lastReport(n),
        created: (uid) => controller.created(uid),
        ready: () => controller.isSynced,
        authenticate: async (token) => users[token],
        authorize: (user, what) => access.check(user, what),
        log: logger('test.policy-api'),
      }),
    });
    const port = await server.listen('127.0.0.1', 0);
    return { base: { url: `https://127.0.0.1:${port}`, ca: tls.cert }, server };
  };

  it('refuses a request without a token, or with one the API server does not know (401, a Status)', async () => {
    const none = await get('kind=NetworkPolicy', null);
    expect(none.status).toBe(401);
    expect(none.body).toMatchObject({ kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'Unauthorized', code: 401 });
    expect(none.body.message).toMatch(/bearer token is required/);
    const forged = await get('kind=NetworkPolicy', 'forged-token');
    expect(forged.status).toBe(401);
    expect(forged.body.message).toMatch(/does not accept this token/);
  });

  it('lists each policy\'s span and realized nodes, and follows the agents\' reports', async () => {
    const before = await get('kind=NetworkPolicy');
    expect(before.status).toBe(200);
    const list = before.body as PolicyRealizationList;
    expect(list.kind).toBe('PolicyRealizationList');
    expect(list.items).toEqual([
      { kind: 'NetworkPolicy', namespace: 'team-a', name: 'all', uid: uids['team-a/all'], generation: 1, creationTimestamp: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/), nodes: { desired: 2, realized: 0, pending: ['n1', 'n2'] } },
      { kind: 'NetworkPolicy', namespace: 'team-a', name: 'web', uid: uids['team-a/web'], generation: 1, creationTimestamp: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/), nodes: { desired: 1, realized: 0, pending: ['n1'] } },
      { kind: 'NetworkPolicy', namespace: 'team-b', name: 'db', uid: uids['team-b/db'], generation: 1, creationTimestamp: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/), nodes: { desired: 1, realized: 0, pending: ['n1'] } },
    ]);
    expect(list.nodes).toEqual({ n1: { lastReport: null }, n2: { lastReport: null } });

    // n1's agent reports both team-a policies installed (and an older generation of team-b's).
    const sentAt = Date.now();
    const put = await https('PUT', `${endpoint.url}/v1/realized/n1`, endpoint.ca, srv.api.token, { policies: { [uids['team-a/all']!]: 1, [uids['team-a/web']!]: 1, [uids['team-b/db']!]: 0 } });
    expect(put.status).toBe(204);
    const after = (await get('kind=NetworkPolicy')).body as PolicyRealizationList;
    expect(after.items.map((i) => [i.name, i.nodes])).toEqual([
      ['all', { desired: 2, realized: 1, pending: ['n2'] }],
      ['web', { desired: 1, realized: 1, pending: [] }],
      ['db', { desired: 1, realized: 0, pending: ['n1'] }],
    ]);
    expect(after.nodes.n2).toEqual({ lastReport: null });
    const reported = Date.parse(after.nodes.n1!.lastReport!);
    expect(reported).toBeGreaterThanOrEqual(sentAt - 1000);
    expect(reported).toBeLessThanOrEqual(Date.now());

    // One namespace, one policy, an unknown one, a bad question.
    const teamB = (await get('kind=NetworkPolicy&namespace=team-b')).body as PolicyRealizationList;
    expect(teamB.items.map((i) => i.name)).toEqual(['db']);
    expect(teamB.nodes).toEqual({ n1: { lastReport: after.nodes.n1!.lastReport } });
    expect(((await get('kind=NetworkPolicy&namespace=team-a&name=web')).body as PolicyRealizationList).items.map((i) => i.nodes.realized)).toEqual([1]);
    const missing = await get('kind=NetworkPolicy&namespace=team-a&name=nope');
    expect(missing.status).toBe(404);
    expect(missing.body).toMatchObject({ kind: 'Status', reason: 'NotFound', message: 'networkpolicies.networking.k8s.io "nope" not found' });
    expect((await get('kind=Pod')).status).toBe(400);
    expect((await get('kind=ClusterNetworkPolicy&namespace=team-a')).status).toBe(400);
  });

  it('seine get: kubectl-style tables from the controller, json, and one clear line for each failure', async () => {
    const k = ['--kubeconfig', srv.kubeconfig];
    const all = await seineGet(['netpol', '-A', ...k]);
    expect(all).toMatchObject({ code: 0, stderr: '' });
    expect(tableRows(all.stdout)).toEqual(['NAMESPACE NAME REALIZED AGE', 'team-a all 1/2 <age>', 'team-a web 1/1 <age>', 'team-b db 0/1 <age>']);
    // n2 reports too: everything team-a needs is in place.
    expect((await https('PUT', `${endpoint.url}/v1/realized/n2`, endpoint.ca, srv.api.token, { policies: { [uids['team-a/all']!]: 1 } })).status).toBe(204);
    const wide = await seineGet(['networkpolicies', '-n', 'team-a', '-o', 'wide', ...k]);
    expect(tableRows(wide.stdout)).toEqual(['NAME REALIZED AGE GENERATION PENDING', 'all 2/2 <age> 1 <none>', 'web 1/1 <age> 1 <none>']);
    expect((await seineGet(['netpol', '-n', 'team-b', '-o', 'wide', ...k])).stdout).toMatch(/^db\s+0\/1\s+(\d+[smhdy])+\s+1\s+n1$/m);
    const json = JSON.parse((await seineGet(['netpol', 'web', '-n', 'team-a', '-o', 'json', ...k])).stdout) as PolicyRealizationList;
    expect(json.items.map((i) => [i.name, i.nodes])).toEqual([['web', { desired: 1, realized: 1, pending: [] }]]);
    expect(Date.parse(json.items[0]!.creationTimestamp!)).toBeLessThanOrEqual(Date.now());
    expect(Object.keys(json.nodes)).toEqual(['n1']);
    expect(tableRows((await seineGet(['cnp', ...k])).stdout)).toEqual(['NAME REALIZED AGE', 'admin 0/2 <age>']);
    // The kubeconfig context's namespace is the default one.
    expect(await seineGet(['netpol', ...k])).toMatchObject({ code: 0, stdout: '', stderr: 'No resources found in default namespace.\n' });

    const failure = async (args: string[]): Promise<string> => {
      const r = await seineGet(args);
      expect(r.code).toBe(1);
      expect(r.stdout).toBe('');
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      return r.stderr.trim();
    };
    expect(await failure(['netpol', 'nope', '-n', 'team-a', ...k])).toBe('Error from server (NotFound): networkpolicies.networking.k8s.io "nope" not found');
    expect(await failure(['netpol', 'web', '-A', ...k])).toBe('error: a resource cannot be retrieved by name across all namespaces');
    expect(await failure(['bananas', ...k])).toMatch(/^error: unknown resource type "bananas"/);
    expect(await failure(['netpol', '--controller-namespace', 'elsewhere', ...k])).toBe('error: no policy controller endpoint: ConfigMap elsewhere/seine-controller-endpoint is missing or incomplete (is the Seine controller running with policy enabled? see --controller-namespace)');
    // A published endpoint nobody listens at.
    await kc.makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name: 'gone' } } });
    await kc.makeApiClient(CoreV1Api).createNamespacedConfigMap({ namespace: 'gone', body: { metadata: { name: 'seine-controller-endpoint' }, data: { endpoint: 'https://127.0.0.1:1', 'ca.crt': endpoint.ca } } });
    expect(await failure(['netpol', '--controller-namespace', 'gone', ...k])).toBe('error: cannot reach the policy controller at https://127.0.0.1:1: ECONNREFUSED');
    // Other users: a token the API server does not know, a client certificate.
    const config = parseYaml(readFileSync(srv.kubeconfig, 'utf8')) as { users: Array<{ user: Record<string, unknown> }> };
    const withUser = (file: string, user: Record<string, unknown>): string[] => {
      writeFileSync(join(srv.dir, file), stringifyYaml({ ...config, users: [{ ...config.users[0], user }] }), { mode: 0o600 });
      return ['--kubeconfig', join(srv.dir, file)];
    };
    expect(await failure(['netpol', ...withUser('forged', { token: 'forged' })])).toBe('error: cannot read ConfigMap kube-system/seine-controller-endpoint to find the policy controller: Unauthorized');
    const cert = selfSignedCert({ commonName: 'alice', dnsNames: ['alice'] });
    expect(await failure(['netpol', ...withUser('cert', { 'client-certificate-data': Buffer.from(cert.cert).toString('base64'), 'client-key-data': Buffer.from(cert.key).toString('base64') })])).toMatch(
      /^error: the kubeconfig user "seine-lab-admin" authenticates with a client certificate; the policy controller accepts bearer tokens only: use a user with a token \(e\.g\. one from `kubectl create token SERVICEACCOUNT`\)$/,
    );
  }, 120_000);

  it('a ServiceAccount token (TokenReview) that RBAC does not let list the policies gets 403, and the CLI says so; a RoleBinding lets it in', async () => {
    const ok = async (args: string[]): Promise<string> => {
      const r = await kubectl(srv, args);
      if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')}: ${r.stderr}`);
      return r.stdout;
    };
    await ok(['create', 'serviceaccount', 'viewer', '-n', 'team-a']);
    const token = (await ok(['create', 'token', 'viewer', '-n', 'team-a'])).trim();
    const user = 'system:serviceaccount:team-a:viewer';
    const direct = await get('kind=NetworkPolicy&namespace=team-a', token);
    expect(direct.status).toBe(403);
    expect(direct.body.message).toBe(`networkpolicies.networking.k8s.io is forbidden: User "${user}" cannot list resource "networkpolicies" in API group "networking.k8s.io" in the namespace "team-a"`);

    const config = parseYaml(readFileSync(srv.kubeconfig, 'utf8')) as { users: Array<{ user: Record<string, unknown> }> };
    writeFileSync(join(srv.dir, 'viewer'), stringifyYaml({ ...config, users: [{ ...config.users[0], user: { token } }] }), { mode: 0o600 });
    const k = ['--kubeconfig', join(srv.dir, 'viewer'), '-n', 'team-a'];
    // Finding the controller takes reading its endpoint ConfigMap, which this user may not yet.
    const noEndpoint = await seineGet(['netpol', ...k]);
    expect(noEndpoint).toMatchObject({ code: 1, stdout: '' });
    expect(noEndpoint.stderr).toBe(`error: cannot read ConfigMap kube-system/seine-controller-endpoint to find the policy controller: configmaps "seine-controller-endpoint" is forbidden: User "${user}" cannot get resource "configmaps" in API group "" in the namespace "kube-system"\n`);
    await ok(['create', 'role', 'endpoint-reader', '-n', 'kube-system', '--verb=get', '--resource=configmaps', '--resource-name=seine-controller-endpoint']);
    await ok(['create', 'rolebinding', 'viewer-endpoint', '-n', 'kube-system', '--role=endpoint-reader', `--serviceaccount=team-a:viewer`]);
    const refused = await seineGet(['netpol', ...k]);
    expect(refused).toMatchObject({ code: 1, stdout: '' });
    expect(refused.stderr).toBe(`Error from server (Forbidden): ${direct.body.message}\n`);

    // Allowed once RBAC says so (the controller keeps a decision up to 10 s).
    await ok(['create', 'rolebinding', 'viewer-netpol', '-n', 'team-a', '--role=netpol-reader', '--serviceaccount=team-a:viewer']);
    const table = await eventually('the viewer\'s table', async (saw) => {
      const r = await seineGet(['netpol', ...k]);
      saw(r);
      return r.code === 0 ? r.stdout : undefined;
    }, 60_000, 1000);
    expect(tableRows(table)).toEqual(['NAME REALIZED AGE', 'all 2/2 <age>', 'web 1/1 <age>']);
    expect((await seineGet(['netpol', '-A', '--kubeconfig', join(srv.dir, 'viewer')])).stderr).toMatch(/cannot list resource "networkpolicies" in API group "networking.k8s.io" at the cluster scope\n$/);

    // A controller whose own user may not create SubjectAccessReviews (its RBAC without them) cannot tell: 503.
    const weak = new KubeConfig();
    weak.loadFromFile(join(srv.dir, 'viewer'));
    const { base, server } = await standInServer(new AccessReviewer({ kubeConfig: weak }));
    try {
      const r = await get('kind=NetworkPolicy&namespace=team-a', 'alice-token', base);
      expect(r.status).toBe(503);
      expect(r.body).toMatchObject({ kind: 'Status', reason: 'ServiceUnavailable', message: `cannot ask the API server whether the user may read policies (SubjectAccessReview): subjectaccessreviews.authorization.k8s.io is forbidden: User "${user}" cannot create resource "subjectaccessreviews" in API group "authorization.k8s.io" at the cluster scope` });
    } finally {
      await server.close();
    }
  }, 120_000);

  it('lists ClusterNetworkPolicies the same way', async () => {
    const r = await get('kind=ClusterNetworkPolicy');
    expect(r.status).toBe(200);
    expect((r.body as PolicyRealizationList).items).toEqual([{ kind: 'ClusterNetworkPolicy', name: 'admin', uid: uids.admin, generation: 1, creationTimestamp: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/), nodes: { desired: 2, realized: 0, pending: ['n1', 'n2'] } }]);
  });

  it('serves a user only what RBAC lets them list (403 in kube\'s words otherwise), and follows a new RoleBinding', async () => {
    let clock = 0;
    const access = new AccessReviewer({ kubeConfig: kc, now: () => clock });
    const { base, server } = await standInServer(access);
    try {
      const own = await get('kind=NetworkPolicy&namespace=team-a', 'alice-token', base);
      expect(own.status).toBe(200);
      expect((own.body as PolicyRealizationList).items.map((i) => i.name)).toEqual(['all', 'web']);
      const other = await get('kind=NetworkPolicy&namespace=team-b', 'alice-token', base);
      expect(other.status).toBe(403);
      expect(other.body).toMatchObject({
        kind: 'Status',
        reason: 'Forbidden',
        code: 403,
        details: { group: 'networking.k8s.io', kind: 'networkpolicies' },
        message: 'networkpolicies.networking.k8s.io is forbidden: User "alice" cannot list resource "networkpolicies" in API group "networking.k8s.io" in the namespace "team-b"',
      });
      expect((await get('kind=NetworkPolicy', 'alice-token', base)).body.message).toMatch(/cannot list resource "networkpolicies" in API group "networking.k8s.io" at the cluster scope$/);
      expect((await get('kind=ClusterNetworkPolicy', 'alice-token', base)).body.message).toMatch(/User "alice" cannot list resource "clusternetworkpolicies" in API group "policy.networking.k8s.io" at the cluster scope$/);
      // The agents' share is not for users.
      expect((await https('GET', `${base.url}/v1/shares/n1`, base.ca, 'alice-token')).status).toBe(401);

      // Decisions are kept a while: asking again costs no review, until they expire.
      const reviews = access.reviews;
      await get('kind=NetworkPolicy&namespace=team-b', 'alice-token', base);
      expect(access.reviews).toBe(reviews);
      const bound = await kubectl(srv, ['create', 'rolebinding', 'alice', '-n', 'team-b', '--clusterrole=view-netpol', '--user=alice']);
      expect(bound.code).toBe(0);
      expect((await kubectl(srv, ['create', 'clusterrole', 'view-netpol', '--verb=list', '--resource=networkpolicies.networking.k8s.io'])).code).toBe(0);
      expect((await get('kind=NetworkPolicy&namespace=team-b', 'alice-token', base)).status).toBe(403);
      clock += 60_000;
      const now = await eventually('team-b readable by alice', async (saw) => {
        const r = await get('kind=NetworkPolicy&namespace=team-b', 'alice-token', base);
        saw(r);
        return r.status === 200 ? r : undefined;
      }, 10_000);
      expect((now.body as PolicyRealizationList).items.map((i) => i.name)).toEqual(['db']);
      expect(access.reviews).toBe(reviews + 1);
    } finally {
      await server.close();
    }
  });
});

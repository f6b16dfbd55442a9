// `seine get pods|services`: the tables, and the whole path from the CLI through the (in-process) lab API server's
// node proxy to stand-in agents serving the real API handler: merged nodes, filters, an unreachable node warned
// about, the API server's refusal reported as kubectl would.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { AGENT_API_PREFIX, agentApi } from '../../src/agent/api.js';
import { AGENT_API_PORT, type PodInfo, type PolicyRuleInfo, type ServiceFrontendInfo } from '../../src/agent/api-types.js';
import type { FeatureInspection, InspectedInterface } from '../../src/agent/feature.js';
import { AgentMetrics } from '../../src/agent/metrics.js';
import { podTable, ruleTable, serviceTable } from '../../src/cli/get-pods.js';
import { getResources, NoResources, type GetOptions } from '../../src/cli/get.js';
import { HealthServer } from '../../src/util/health-server.js';
import { call, startServer, type TestServer } from '../lab/apiserver/helpers.js';

const web: PodInfo = {
  node: 'n1',
  namespace: 'team-a',
  name: 'web',
  uid: 'u1',
  containerId: '0123456789abcdef0123',
  netns: '/proc/42/ns/net',
  interfaces: [
    { ifname: 'eth0', kind: 'pod-network', network: 'seine', ips: ['10.244.1.2'], mac: '02:00:00:00:00:02', bridge: 'br-int', port: 'web-6f7e8d', ofport: 4 },
    { ifname: 'net1', kind: 'seine', network: 'team-a/vlan100', ips: ['192.168.10.2'], mac: '02:00:00:00:01:01', bridge: 'br-vlan', port: 'web-n1', ofport: 7 },
    { ifname: 'net2', kind: 'delegated', network: 'team-a/macvlan', ips: [] },
  ],
};

const svc = (over: Partial<ServiceFrontendInfo>): ServiceFrontendInfo => ({
  node: 'n1',
  namespace: 'team-a',
  name: 'web',
  portName: 'http',
  kind: 'ClusterIP',
  address: '10.96.0.20',
  port: 80,
  protocol: 'TCP',
  endpoints: { local: 1, remote: 2 },
  reject: false,
  endpointList: [
    { ip: '10.244.1.5', port: 8080, local: true },
    { ip: '10.244.2.5', port: 8080, local: false },
  ],
  ...over,
});

const rule = (node: string, over: Partial<PolicyRuleInfo>): PolicyRuleInfo => ({
  node,
  kind: 'NetworkPolicy',
  namespace: 'team-a',
  name: 'web-8080-only',
  network: '',
  rule: 'ingress-0',
  direction: 'Ingress',
  action: 'Accept',
  packets: 1,
  bytes: 74,
  ...over,
});

describe('seine get pods|services: tables', () => {
  it('pods: one row per interface, the pod network first; wide adds the sandbox', () => {
    const lines = podTable([web], { allNamespaces: true, wide: true }).split('\n');
    expect(lines[0]).toMatch(/^NAMESPACE\s+NAME\s+NODE\s+INTERFACE\s+NETWORK\s+IPS\s+MAC\s+BRIDGE\s+PORT\s+OFPORT\s+CONTAINER\s+NETNS$/);
    expect(lines[1]).toMatch(/^team-a\s+web\s+n1\s+eth0\s+pod network\s+10\.244\.1\.2\s+02:00:00:00:00:02\s+br-int\s+web-6f7e8d\s+4\s+0123456789abc\s+\/proc\/42\/ns\/net$/);
    expect(lines[2]).toMatch(/^team-a\s+web\s+n1\s+net1\s+team-a\/vlan100\s+192\.168\.10\.2\s+02:00:00:00:01:01\s+br-vlan\s+web-n1\s+7\s/);
    expect(lines[3]).toMatch(/^team-a\s+web\s+n1\s+net2\s+team-a\/macvlan \(delegated\)\s+<none>\s+<none>\s+<none>\s+<none>\s+<none>\s/);
    expect(podTable([web], { allNamespaces: false, wide: false }).split('\n')[0]).toMatch(/^NAME\s+NODE\s+INTERFACE\s+NETWORK\s+IPS\s+MAC\s+BRIDGE\s+PORT\s+OFPORT$/);
  });

  it('services: one row per frontend and node with its endpoints here and elsewhere; wide adds external traffic\'s, affinity, the endpoints', () => {
    const rows = [
      svc({}),
      svc({ kind: 'NodePort', address: '10.0.0.11', port: 30080, externalEndpoints: { local: 1, remote: 0 }, affinitySeconds: 600 }),
      svc({ name: 'dns', portName: '', address: '10.96.0.10', port: 53, protocol: 'UDP', endpoints: { local: 0, remote: 0 }, reject: true, endpointList: [] }),
    ];
    const lines = serviceTable(rows, { allNamespaces: false, wide: true }).split('\n');
    expect(lines[0]).toMatch(/^NAME\s+PORT NAME\s+NODE\s+TYPE\s+ADDRESS\s+LOCAL\s+REMOTE\s+EXTERNAL LOCAL\/REMOTE\s+AFFINITY\s+ENDPOINTS$/);
    expect(lines[1]).toMatch(/^web\s+http\s+n1\s+ClusterIP\s+10\.96\.0\.20:80\/TCP\s+1\s+2\s+<none>\s+<none>\s+10\.244\.1\.5:8080\(local\),10\.244\.2\.5:8080$/);
    expect(lines[2]).toMatch(/^web\s+http\s+n1\s+NodePort\s+10\.0\.0\.11:30080\/TCP\s+1\s+2\s+1\/0\s+600s\s/);
    expect(lines[3]).toMatch(/^dns\s+<none>\s+n1\s+ClusterIP\s+10\.96\.0\.10:53\/UDP\s+0\s+0\s+<none>\s+<none>\s+<none>$/);
  });
});

/** A stand-in agent: the real API handler and health server over fixed views. */
async function standInAgent(node: string, features: FeatureInspection[]): Promise<HealthServer> {
  const server = new HealthServer({ live: () => true, ready: () => true, registry: new AgentMetrics().registry });
  server.mount(AGENT_API_PREFIX, agentApi(node, () => features));
  await server.listen({ port: 0, host: '127.0.0.1' });
  return server;
}

const itf = (containerId: string, podNamespace: string, podName: string, ip: string, ofport: number): InspectedInterface => ({
  containerId,
  netns: `/proc/${ofport}/ns/net`,
  podNamespace,
  podName,
  podUid: `uid-${podName}`,
  ifname: 'eth0',
  kind: 'pod-network',
  network: 'seine',
  ips: [ip],
  mac: '02:00:00:00:00:01',
  bridge: 'br-int',
  port: `${podName}-p`,
  ofport,
});

describe('seine get rules: table', () => {
  it('one row per rule with its counters summed over the nodes; wide adds the network and the nodes', () => {
    const rules = [
      rule('n1', { packets: 3, bytes: 222 }),
      rule('n1', { rule: 'isolation-ingress', action: 'Drop', packets: 2, bytes: 148 }),
      rule('n2', { packets: 4, bytes: 296 }),
      rule('n2', { kind: 'MultiNetworkPolicy', name: 'vlan-guard', network: 'team-a/vlan100', direction: 'Egress', rule: 'egress-1', action: 'Accept', packets: 0, bytes: 0 }),
    ];
    const lines = ruleTable(rules, { allNamespaces: true, wide: true }).split('\n');
    expect(lines[0]).toMatch(/^NAMESPACE\s+POLICY\s+KIND\s+DIRECTION\s+RULE\s+ACTION\s+PACKETS\s+BYTES\s+NETWORK\s+NODES$/);
    expect(lines.slice(1).map((l) => l.split(/\s+/).join(' '))).toEqual([
      'team-a web-8080-only NetworkPolicy Ingress ingress-0 Accept 7 518 <none> n1,n2',
      'team-a web-8080-only NetworkPolicy Ingress isolation-ingress Drop 2 148 <none> n1',
      'team-a vlan-guard MultiNetworkPolicy Egress egress-1 Accept 0 0 team-a/vlan100 n2',
    ]);
    expect(ruleTable(rules, { allNamespaces: false, wide: false }).split('\n')[0]).toMatch(/^POLICY\s+KIND\s+DIRECTION\s+RULE\s+ACTION\s+PACKETS\s+BYTES$/);
  });
});

describe('seine get pods|services through the API server\'s node proxy', () => {
  let srv: TestServer;
  const agents: HealthServer[] = [];
  let out: { warnings: string[]; get(resource: string, o?: Partial<GetOptions>, name?: string): Promise<string> };

  beforeAll(async () => {
    agents.push(
      await standInAgent('n1', [
        { podInterfaces: () => [itf('c1', 'default', 'web-1', '10.244.1.2', 4), itf('c3', 'team-a', 'api', '10.244.1.3', 5)] },
        { serviceFrontends: () => [(({ node: _node, ...frontend }) => frontend)(svc({}))] },
      ]),
      await standInAgent('n2', [
        { podInterfaces: () => [itf('c2', 'default', 'web-2', '10.244.2.2', 6)] },
        { policyRules: async () => [(({ node: _node, ...r }) => r)(rule('n2', { packets: 5, bytes: 370 })), (({ node: _node, ...r }) => r)(rule('n2', { namespace: 'default', name: 'deny-all', rule: 'isolation-ingress', action: 'Drop' }))] },
      ]),
    );
    const urls = new Map([
      ['n1', `http://127.0.0.1:${agents[0]!.port}`],
      ['n2', `http://127.0.0.1:${agents[1]!.port}`],
    ]);
    srv = await startServer({ nodeProxy: (node, port) => (port === AGENT_API_PORT ? urls.get(node) : undefined) });
    for (const [name, ip] of [['n1', '10.0.0.11'], ['n2', '10.0.0.12'], ['n3', '10.0.0.13']] as const) {
      srv.api.resource('v1', 'nodes').create({ apiVersion: 'v1', kind: 'Node', metadata: { name }, status: { addresses: [{ type: 'InternalIP', address: ip }] } });
    }
    const warnings: string[] = [];
    out = {
      warnings,
      get: (resource, o = {}, name) => getResources(resource, name, { kubeconfig: srv.kubeconfig, controllerNamespace: 'kube-system', ...o }, (l) => warnings.push(l)),
    };
  });
  afterAll(async () => {
    await srv?.stop();
    await Promise.all(agents.map((a) => a.close()));
  });
  beforeEach(() => out.warnings.splice(0));

  it('merges every node\'s pods, warns about a node whose agent cannot be reached', async () => {
    const lines = (await out.get('pods')).trimEnd().split('\n');
    expect(lines.map((l) => l.split(/\s+/).slice(0, 3).join(' '))).toEqual(['NAME NODE INTERFACE', 'web-1 n1 eth0', 'web-2 n2 eth0']);
    expect(out.warnings).toEqual([`warning: node n3: error trying to reach service: dial tcp 10.0.0.13:${AGENT_API_PORT}: connect: connection refused\n`]);
    const all = JSON.parse(await out.get('po', { allNamespaces: true, output: 'json' })) as { items: PodInfo[] };
    expect(all.items.map((p) => `${p.namespace}/${p.name}@${p.node}`)).toEqual(['default/web-1@n1', 'default/web-2@n2', 'team-a/api@n1']);
    expect(all.items[0]!.interfaces[0]).toMatchObject({ ifname: 'eth0', ips: ['10.244.1.2'], bridge: 'br-int', port: 'web-1-p', ofport: 4 });
  });

  it('one node, one namespace, one pod by name', async () => {
    expect((await out.get('pods', { node: 'n1', namespace: 'team-a' })).split('\n')[1]).toMatch(/^api\s+n1\s+eth0\s+pod network\s+10\.244\.1\.3\s/);
    expect(out.warnings).toEqual([]);
    expect((await out.get('pods', { node: 'n2' }, 'web-2')).split('\n')).toHaveLength(3);
    await expect(out.get('pods', { node: 'n2' }, 'web-1')).rejects.toThrow('Error from server (NotFound): pods "web-1" not found');
    await expect(out.get('pods', { node: 'n9' })).rejects.toThrow('Error from server (NotFound): nodes "n9" not found');
    await expect(out.get('pods', { node: 'n2', namespace: 'empty' })).rejects.toThrow(NoResources);
    await expect(out.get('pods', { node: 'n3' })).rejects.toThrow('no node\'s agent could be reached (1 node)');
    await expect(out.get('pods', { node: 'n1', agentPort: 9100 })).rejects.toThrow(/no node's agent could be reached/);
  });

  it('services: each node\'s frontends', async () => {
    const lines = (await out.get('svc', { namespace: 'team-a' })).trimEnd().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[1]).toMatch(/^web\s+http\s+n1\s+ClusterIP\s+10\.96\.0\.20:80\/TCP\s+1\s+2$/);
    const yaml = parseYaml(await out.get('services', { allNamespaces: true, output: 'yaml' })) as { items: ServiceFrontendInfo[] };
    expect(yaml.items.map((f) => `${f.node} ${f.kind} ${f.address}`)).toEqual(['n1 ClusterIP 10.96.0.20']);
  });

  it('rules: each rule\'s counters from every node that has it, by policy name', async () => {
    const lines = (await out.get('rules', { namespace: 'team-a' })).trimEnd().split('\n');
    expect(lines.map((l) => l.split(/\s+/).join(' '))).toEqual(['POLICY KIND DIRECTION RULE ACTION PACKETS BYTES', 'web-8080-only NetworkPolicy Ingress ingress-0 Accept 5 370']);
    const json = JSON.parse(await out.get('policy-rules', { allNamespaces: true, output: 'json' }, undefined)) as { items: PolicyRuleInfo[] };
    expect(json.items.map((r) => `${r.node} ${r.namespace}/${r.name} ${r.rule}`)).toEqual(['n2 default/deny-all isolation-ingress', 'n2 team-a/web-8080-only ingress-0']);
    expect((await out.get('rules', { namespace: 'default' }, 'deny-all')).split('\n')[1]).toMatch(/^deny-all\s+NetworkPolicy\s+Ingress\s+isolation-ingress\s+Drop\s+1\s+74$/);
    await expect(out.get('rules', { namespace: 'default', node: 'n2' }, 'web')).rejects.toThrow('Error from server (NotFound): rules of policy "web" not found');
  });

  it('a user without get on nodes/proxy is refused as kubectl reports it', async () => {
    await call(srv.api, 'POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'ops' } });
    await call(srv.api, 'POST', '/api/v1/namespaces/ops/serviceaccounts', { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'viewer' } });
    const rbac = '/apis/rbac.authorization.k8s.io/v1';
    await call(srv.api, 'POST', `${rbac}/clusterroles`, { metadata: { name: 'node-reader' }, rules: [{ apiGroups: [''], resources: ['nodes'], verbs: ['get', 'list'] }] });
    await call(srv.api, 'POST', `${rbac}/clusterrolebindings`, { metadata: { name: 'viewer' }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'node-reader' }, subjects: [{ kind: 'ServiceAccount', name: 'viewer', namespace: 'ops' }] });
    const token = (await call(srv.api, 'POST', '/api/v1/namespaces/ops/serviceaccounts/viewer/token', { spec: {} })).body.status.token as string;
    const config = parseYaml(srv.api.kubeconfig()) as { users: Array<{ user: { token: string } }> };
    config.users[0]!.user.token = token;
    const kubeconfig = join(srv.dir, 'viewer.kubeconfig');
    writeFileSync(kubeconfig, stringifyYaml(config));
    await expect(out.get('pods', { kubeconfig })).rejects.toThrow(
      `Error from server (Forbidden): nodes "n1:${AGENT_API_PORT}" is forbidden: User "system:serviceaccount:ops:viewer" cannot get resource "nodes/proxy" in API group "" at the cluster scope`,
    );
    await call(srv.api, 'POST', `${rbac}/clusterroles`, { metadata: { name: 'node-proxy' }, rules: [{ apiGroups: [''], resources: ['nodes/proxy'], verbs: ['get'] }] });
    await call(srv.api, 'POST', `${rbac}/clusterrolebindings`, { metadata: { name: 'viewer-proxy' }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'node-proxy' }, subjects: [{ kind: 'ServiceAccount', name: 'viewer', namespace: 'ops' }] });
    expect(await out.get('pods', { kubeconfig, node: 'n2' })).toMatch(/web-2\s+n2/);
  });
});

// The agent's read-only API (src/agent/api.ts): the features' views merged per pod sandbox and per Service
// frontend, in a stable order, served as JSON beside the health endpoints; and what each feature shows of itself.
import { AgentMetrics } from '../../src/agent/metrics.js';
import { agentApi, AGENT_API_PREFIX } from '../../src/agent/api.js';
import type { PodInfo, PolicyRuleInfo, ServiceFrontendInfo } from '../../src/agent/api-types.js';
import type { FeatureInspection, InspectedInterface } from '../../src/agent/feature.js';
import { inspectedInterface } from '../../src/primary/interfacestore/store.js';
import { inspectedAttachments, type AttachmentRecord } from '../../src/secondary/agent/records.js';
import { frontendInfo } from '../../src/services/agent/feature.js';
import { HealthServer } from '../../src/util/health-server.js';

const sandbox = (containerId: string, podNamespace: string, podName: string): Pick<InspectedInterface, 'containerId' | 'netns' | 'podNamespace' | 'podName' | 'podUid'> => ({
  containerId,
  netns: `/var/run/netns/${containerId}`,
  podNamespace,
  podName,
  podUid: `uid-${podName}`,
});

const podNetwork: FeatureInspection = {
  podInterfaces: () => [
    { ...sandbox('c2', 'team-b', 'db'), ifname: 'eth0', kind: 'pod-network', network: 'seine', ips: ['10.244.1.3'], mac: '02:00:00:00:00:03', bridge: 'br-int', port: 'db-abc', ofport: 5 },
    { ...sandbox('c1', 'team-a', 'web'), ifname: 'eth0', kind: 'pod-network', network: 'seine', ips: ['10.244.1.2'], mac: '02:00:00:00:00:02', bridge: 'br-int', port: 'web-abc', ofport: 4 },
  ],
};
const secondary: FeatureInspection = {
  podInterfaces: () => [
    { ...sandbox('c1', 'team-a', 'web'), ifname: 'net10', kind: 'seine', network: 'team-a/overlay', ips: ['192.168.20.2'], mac: '02:00:00:00:01:10', bridge: 'br-ovl-5001', port: 'web-n10', ofport: 2 },
    { ...sandbox('c1', 'team-a', 'web'), ifname: 'net2', kind: 'delegated', network: 'team-a/macvlan', ips: [] },
    { ...sandbox('c1', 'team-a', 'web'), ifname: 'net1', kind: 'seine', network: 'team-a/vlan100', ips: ['192.168.10.2'], mac: '02:00:00:00:01:01', bridge: 'br-vlan', port: 'web-n1', ofport: 7 },
  ],
};
const frontend = (namespace: string, name: string, kind: ServiceFrontendInfo['kind'], address: string, port: number): Omit<ServiceFrontendInfo, 'node'> => ({
  namespace,
  name,
  portName: 'http',
  kind,
  address,
  port,
  protocol: 'TCP',
  endpoints: { local: 1, remote: 1 },
  reject: false,
  endpointList: [],
});
const services: FeatureInspection = {
  serviceFrontends: () => [
    frontend('team-a', 'web', 'External', '172.18.0.100', 80),
    frontend('team-a', 'web', 'NodePort', '10.0.0.11', 30080),
    frontend('team-a', 'web', 'ClusterIP', '10.96.0.20', 80),
    frontend('default', 'kubernetes', 'ClusterIP', '10.96.0.1', 443),
  ],
};

describe('agent read-only API', () => {
  it('merges every feature\'s interfaces per sandbox: pods by namespace and name, eth0 first, then by interface name', async () => {
    const api = agentApi('n1', () => [podNetwork, secondary, services]);
    const answer = await api('/v1/pods', new URLSearchParams());
    expect(answer.status).toBe(200);
    const body = answer.body as { node: string; items: PodInfo[] };
    expect(body.node).toBe('n1');
    expect(body.items.map((p) => [p.node, p.namespace, p.name, p.containerId, p.interfaces.map((i) => i.ifname)])).toEqual([
      ['n1', 'team-a', 'web', 'c1', ['eth0', 'net1', 'net2', 'net10']],
      ['n1', 'team-b', 'db', 'c2', ['eth0']],
    ]);
    expect(body.items[0]!).toMatchObject({ uid: 'uid-web', netns: '/var/run/netns/c1' });
    expect(body.items[0]!.interfaces[1]).toEqual({ ifname: 'net1', kind: 'seine', network: 'team-a/vlan100', ips: ['192.168.10.2'], mac: '02:00:00:00:01:01', bridge: 'br-vlan', port: 'web-n1', ofport: 7 });
    const filtered = (await api('/v1/pods', new URLSearchParams({ namespace: 'team-b' }))).body as { items: PodInfo[] };
    expect(filtered.items.map((p) => p.name)).toEqual(['db']);
  });

  it('lists the Service frontends by Service, port and kind (ClusterIP, NodePort, External)', async () => {
    const api = agentApi('n1', () => [podNetwork, services]);
    const body = (await api('/v1/services', new URLSearchParams())).body as { node: string; items: ServiceFrontendInfo[] };
    expect(body.items.map((f) => `${f.node} ${f.namespace}/${f.name} ${f.kind} ${f.address}:${f.port}`)).toEqual([
      'n1 default/kubernetes ClusterIP 10.96.0.1:443',
      'n1 team-a/web ClusterIP 10.96.0.20:80',
      'n1 team-a/web NodePort 10.0.0.11:30080',
      'n1 team-a/web External 172.18.0.100:80',
    ]);
    // A node without the Service proxy has no frontends.
    expect((await agentApi('n1', () => [podNetwork])('/v1/services', new URLSearchParams())).body).toEqual({ node: 'n1', items: [] });
  });

  it('lists the policy rules\' counters by policy, direction and rule, filtered by namespace', async () => {
    const rule = (namespace: string, name: string, direction: PolicyRuleInfo['direction'], rule: string, packets: number): Omit<PolicyRuleInfo, 'node'> => ({
      kind: namespace ? 'NetworkPolicy' : 'ClusterNetworkPolicy',
      namespace,
      name,
      network: '',
      rule,
      direction,
      action: rule.startsWith('isolation') ? 'Drop' : 'Accept',
      packets,
      bytes: packets * 60,
    });
    let reads = 0;
    const policy: FeatureInspection = {
      policyRules: async () => {
        reads++;
        return [rule('team-a', 'web', 'Egress', 'egress-0', 1), rule('team-a', 'web', 'Ingress', 'ingress-10', 2), rule('', 'baseline', 'Ingress', 'deny-all', 3), rule('team-a', 'web', 'Ingress', 'ingress-2', 4), rule('team-a', 'web', 'Ingress', 'isolation-ingress', 5)];
      },
    };
    const api = agentApi('n1', () => [podNetwork, policy]);
    const body = (await api('/v1/policy-rules', new URLSearchParams())).body as { node: string; items: PolicyRuleInfo[] };
    expect(body.items.map((r) => `${r.node} ${r.namespace}/${r.name} ${r.direction} ${r.rule} ${r.packets}/${r.bytes}`)).toEqual([
      'n1 /baseline Ingress deny-all 3/180',
      'n1 team-a/web Ingress ingress-2 4/240',
      'n1 team-a/web Ingress ingress-10 2/120',
      'n1 team-a/web Ingress isolation-ingress 5/300',
      'n1 team-a/web Egress egress-0 1/60',
    ]);
    expect(((await api('/v1/policy-rules', new URLSearchParams({ namespace: 'team-a' }))).body as { items: PolicyRuleInfo[] }).items).toHaveLength(4);
    expect(reads).toBe(2);
    // Pods and Services do not read the switch.
    await api('/v1/pods', new URLSearchParams());
    expect(reads).toBe(2);
  });

  it('answers 503 while the features start, 404 for any other path', async () => {
    const agent: { started?: FeatureInspection[] } = {};
    const api = agentApi('n1', () => agent.started);
    expect(await api('/v1/pods', new URLSearchParams())).toEqual({ status: 503, body: { message: 'the agent is starting' } });
    agent.started = [podNetwork];
    expect((await api('/v1/pods', new URLSearchParams())).status).toBe(200);
    expect(await api('/v1/nodes', new URLSearchParams())).toMatchObject({ status: 404, body: { message: expect.stringMatching(/^no such path: \/v1\/nodes/) } });
  });

  it('is served beside the health endpoints: JSON, GET only, a failing view a 500', async () => {
    let failing = false;
    const flaky: FeatureInspection = {
      podInterfaces: () => {
        if (failing) throw new Error('store unreadable');
        return podNetwork.podInterfaces!();
      },
    };
    const server = new HealthServer({ live: () => true, ready: () => true, registry: new AgentMetrics().registry });
    server.mount(AGENT_API_PREFIX, agentApi('n1', () => [flaky]));
    try {
      await server.listen({ port: 0, host: '127.0.0.1' });
      const base = `http://127.0.0.1:${server.port}`;
      const pods = await fetch(`${base}/v1/pods?namespace=team-a`);
      expect(pods.status).toBe(200);
      expect(pods.headers.get('content-type')).toBe('application/json');
      expect(((await pods.json()) as { items: PodInfo[] }).items.map((p) => p.name)).toEqual(['web']);
      const post = await fetch(`${base}/v1/pods`, { method: 'POST' });
      expect(post.status).toBe(405);
      expect(post.headers.get('allow')).toBe('GET');
      const unknown = await fetch(`${base}/v1/whatever`);
      expect(unknown.status).toBe(404);
      expect(((await unknown.json()) as { message: string }).message).toMatch(/no such path/);
      failing = true;
      const broken = await fetch(`${base}/v1/pods`);
      expect(broken.status).toBe(500);
      expect(await broken.json()).toEqual({ message: 'store unreadable' });
      // The health endpoints are as they were.
      expect((await fetch(`${base}/healthz`)).status).toBe(200);
      expect((await fetch(`${base}/nope`)).status).toBe(404);
    } finally {
      await server.close();
    }
  });
});

describe('what each feature shows on the API', () => {
  it('the pod network: its interface store\'s ports on br-int', () => {
    const itf = { containerId: 'c1', ifname: 'eth0', podNamespace: 'team-a', podName: 'web', podUid: 'u1', ip: '10.244.1.2', mac: '02:00:00:00:00:02', netns: '/proc/1/ns/net', portName: 'web-abc', ofport: 4 };
    expect(inspectedInterface(itf, 'br-int', 'seine')).toEqual({
      containerId: 'c1',
      netns: '/proc/1/ns/net',
      podNamespace: 'team-a',
      podName: 'web',
      podUid: 'u1',
      ifname: 'eth0',
      kind: 'pod-network',
      network: 'seine',
      ips: ['10.244.1.2'],
      mac: '02:00:00:00:00:02',
      bridge: 'br-int',
      port: 'web-abc',
      ofport: 4,
    });
    expect(inspectedInterface({ ...itf, network: 'aws-cni' }, 'br-int', 'seine').network).toBe('aws-cni');
  });

  it('secondary networks: each record with its port\'s bridge and ofport as OVS has them; a delegated one with what its plugin returned', () => {
    const base = { containerId: 'c1', podNamespace: 'team-a', podName: 'web', podUid: 'u1', netns: '/proc/1/ns/net' };
    const records: AttachmentRecord[] = [
      {
        ...base,
        network: 'team-a/vlan100',
        ifname: 'net1',
        kind: 'seine',
        hostIfname: 'web-n1',
        ipam: 'pool:vlan100',
        result: { cniVersion: '1.0.0', interfaces: [{ name: 'web-n1' }, { name: 'net1', mac: '02:00:00:00:01:01', sandbox: '/proc/1/ns/net' }], ips: [{ address: '192.168.10.2/24', interface: 1 }] },
      },
      {
        ...base,
        network: 'team-a/macvlan',
        ifname: 'net2',
        kind: 'delegated',
        cniNetwork: 'macvlan',
        result: { cniVersion: '1.0.0', interfaces: [{ name: 'net2', mac: '02:00:00:00:02:02', sandbox: '/proc/1/ns/net' }], ips: [{ address: '172.30.0.5/16', interface: 0 }] },
      },
      // Its port is being made: OVS has no ofport for it yet.
      { ...base, network: 'cnf/fn', ifname: 'net3', kind: 'seine', hostIfname: 'web-n3', result: { cniVersion: '1.0.0', interfaces: [{ name: 'web-n3' }, { name: 'net3', mac: '02:00:00:00:03:03', sandbox: '/proc/1/ns/net' }] } },
    ];
    const ports = [
      { hostIfname: 'web-n1', ofport: 7, bridge: 'br-vlan', externalIds: {} },
      { hostIfname: 'web-n3', ofport: -1, bridge: 'br-int', externalIds: {} },
    ];
    expect(inspectedAttachments(records, ports).map(({ ifname, kind, network, ips, mac, bridge, port, ofport }) => ({ ifname, kind, network, ips, mac, bridge, port, ofport }))).toEqual([
      { ifname: 'net1', kind: 'seine', network: 'team-a/vlan100', ips: ['192.168.10.2'], mac: '02:00:00:00:01:01', bridge: 'br-vlan', port: 'web-n1', ofport: 7 },
      { ifname: 'net2', kind: 'delegated', network: 'team-a/macvlan', ips: ['172.30.0.5'], mac: '02:00:00:00:02:02', bridge: undefined, port: undefined, ofport: undefined },
      { ifname: 'net3', kind: 'seine', network: 'cnf/fn', ips: [], mac: '02:00:00:00:03:03', bridge: 'br-int', port: 'web-n3', ofport: undefined },
    ]);
  });

  it('Services: a frontend with its endpoints counted here and elsewhere, a node port on the node\'s address', () => {
    const endpoints = [
      { ip: '10.244.1.5', port: 8080, local: true },
      { ip: '10.244.2.5', port: 8080, local: false },
      { ip: '10.244.3.5', port: 8080, local: false },
    ];
    const nodePort = { service: 'team-a/web:http', kind: 'NodePort' as const, ip: '169.254.169.110', protocol: 'TCP' as const, port: 30080, endpoints, reject: false, externalEndpoints: [endpoints[0]!], affinitySeconds: 600 };
    expect(frontendInfo(nodePort, '10.0.0.11')).toEqual({
      namespace: 'team-a',
      name: 'web',
      portName: 'http',
      kind: 'NodePort',
      address: '10.0.0.11',
      port: 30080,
      protocol: 'TCP',
      endpoints: { local: 1, remote: 2 },
      externalEndpoints: { local: 1, remote: 0 },
      reject: false,
      affinitySeconds: 600,
      endpointList: endpoints,
    });
    const unnamed = frontendInfo({ service: 'default/dns:', kind: 'ClusterIP', ip: '10.96.0.10', protocol: 'UDP', port: 53, endpoints: [], reject: true }, '10.0.0.11');
    expect(unnamed).toEqual({ namespace: 'default', name: 'dns', portName: '', kind: 'ClusterIP', address: '10.96.0.10', port: 53, protocol: 'UDP', endpoints: { local: 0, remote: 0 }, reject: true, endpointList: [] });
  });
});

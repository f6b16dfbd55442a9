// Operating a lab started by the CLI. Metrics scraped from the machine at the URLs `seine lab status --json`
// lists, while pods are created and traffic runs: CNI requests, pod and secondary interfaces, OVS flows, Service
// endpoints, IPPool usage, policy rule counters that move with allowed and denied connections, health endpoints.
// Every metric family follows the Prometheus naming rules and is documented in docs/metrics.md, and the Grafana
// dashboard uses only documented metrics. `kubectl seine get networks|ippools` (the CLI as a kubectl plugin)
// shows the same networks and pools.
import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { V1Pod } from '@kubernetes/client-node';
import type { PodInfo, PolicyRuleInfo, ServiceFrontendInfo } from '../../src/agent/api-types.js';
import type { LabStatus } from '../../src/lab/lab.js';
import { netnsPath } from '../../src/host/netns.js';
import { podNetnsName } from '../../src/lab/kubelet.js';
import { eventually } from '../../src/util/wait.js';
import { connect, SERVER } from '../harness/answering.js';
import { runCommand } from '../harness/command.js';
import { TEST_LEDGER_ROOT } from '../harness/sandbox.js';

const SEINE = join(process.cwd(), 'bin', 'seine');
const name = `m${randomBytes(3).toString('hex')}`;
const common = ['--name', name, '--state-root', TEST_LEDGER_ROOT];
const cache = join(TEST_LEDGER_ROOT, `${name}-kcache`);
/** Bound on anything the lab does on a busy two-core machine (pods Running, counters read every 5 s). */
const SETTLE_MS = 120_000;

const run = runCommand;

/** One sample of the Prometheus text format. */
interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The families (name -> type) and samples of a scrape. */
function parseExposition(text: string): { types: Map<string, string>; samples: Sample[] } {
  const types = new Map<string, string>();
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type) types.set(type[1]!, type[2]!);
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)/.exec(line);
    if (!m) throw new Error(`not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return { types, samples };
}

async function scrape(url: string): Promise<ReturnType<typeof parseExposition>> {
  const res = await fetch(url);
  if (res.status !== 200) throw new Error(`${url}: HTTP ${res.status}`);
  return parseExposition(await res.text());
}

/** The sum of the samples of `metric` whose labels include `labels`. */
function value(s: ReturnType<typeof parseExposition>, metric: string, labels: Record<string, string> = {}): number {
  return s.samples.filter((x) => x.name === metric && Object.entries(labels).every(([k, v]) => x.labels[k] === v)).reduce((a, x) => a + x.value, 0);
}

const manifest = (node1: string, node2: string): string => {
  const server = (pod: string, node: string): string => `---
apiVersion: v1
kind: Pod
metadata:
  name: ${pod}
  namespace: default
  labels: {app: web}
  annotations: {k8s.v1.cni.cncf.io/networks: vlan100}
spec:
  nodeName: ${node}
  containers:
    - name: serve
      image: lab
      command: [${JSON.stringify(process.execPath)}, -e, ${JSON.stringify(SERVER)}]
      env: [{name: POD_NAME, value: ${pod}}]
      ports: [{name: http, containerPort: 8080}]
      readinessProbe: {exec: {command: [nc, -z, -w, '2', 127.0.0.1, '8080']}, periodSeconds: 1, timeoutSeconds: 3, failureThreshold: 30}
`;
  const sleeper = (pod: string, app: string): string => `---
apiVersion: v1
kind: Pod
metadata: {name: ${pod}, namespace: default, labels: {app: ${app}}}
spec:
  nodeName: ${node2}
  containers: [{name: main, image: lab, command: [sleep, infinity]}]
`;
  return `${server('web1', node1)}${server('web2', node2)}${sleeper('client', 'client')}${sleeper('intruder', 'intruder')}---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-from-clients, namespace: default}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress: [{from: [{podSelector: {matchLabels: {app: client}}}], ports: [{port: 8080}]}]
`;
};

describe('operating a lab started by the CLI: metrics and kubectl seine', () => {
  let status: LabStatus;
  let kubeconfig = '';
  const kubectl = (args: string[], input?: string): ReturnType<typeof run> => run('kubectl', ['--kubeconfig', kubeconfig, '--cache-dir', cache, ...args], input);
  const readStatus = async (): Promise<LabStatus> => JSON.parse((await run(SEINE, ['lab', 'status', '--json', ...common])).stdout) as LabStatus;
  const podNetns = async (pod: string): Promise<string> => {
    const uid = (await kubectl(['get', 'pod', pod, '-o', 'jsonpath={.metadata.uid}'])).stdout;
    return netnsPath(podNetnsName(name, uid));
  };

  beforeAll(async () => {
    const up = await run(SEINE, ['lab', 'up', '--nodes', '2', ...common]);
    expect(up.stdout).toMatch(/is up with 2 nodes/);
    kubeconfig = (await run(SEINE, ['lab', 'kubeconfig', ...common])).stdout.trim();
    status = await readStatus();
  }, 180_000);
  afterAll(async () => {
    await run(SEINE, ['lab', 'down', ...common]);
    rmSync(cache, { recursive: true, force: true });
  }, 150_000);

  it('lists a metrics URL for the controller and every agent, reachable from the machine, with health endpoints beside them', async () => {
    const urls = [status.controllerMetrics, ...status.nodes.map((n) => n.agentMetrics)];
    expect(urls).toHaveLength(3);
    for (const url of urls) {
      expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
      await eventually(`${url} ready`, async () => ((await fetch(url!.replace(/metrics$/, 'readyz')).catch(() => undefined))?.status === 200 ? true : undefined), SETTLE_MS, 500);
      expect((await fetch(url!.replace(/metrics$/, 'healthz'))).status).toBe(200);
      expect((await fetch(url!.replace(/metrics$/, 'livez'))).status).toBe(200);
    }
    const human = await run(SEINE, ['lab', 'status', ...common]);
    expect(human.stdout).toContain(`seine-controller metrics: ${status.controllerMetrics}`);
    for (const n of status.nodes) expect(human.stdout).toContain(n.agentMetrics!);
  }, 180_000);

  it('counts what the pods, their networks, Services and policies make on each node, and moves with traffic', async () => {
    const [node1, node2] = status.nodes.map((n) => n.name) as [string, string];
    const agent1 = status.nodes[0]!.agentMetrics!;
    const agent2 = status.nodes[1]!.agentMetrics!;
    const before = [await scrape(agent1), await scrape(agent2)];

    expect((await kubectl(['apply', '-f', join(process.cwd(), 'manifests', 'examples', 'secondary-networks.yaml')])).code).toBe(0);
    const applied = await kubectl(['apply', '-f', '-'], manifest(node1, node2));
    expect(applied.stderr).toBe('');
    const wait = await kubectl(['wait', '--for=condition=Ready', 'pod/web1', 'pod/web2', 'pod/client', 'pod/intruder', '--timeout=150s']);
    expect(wait.code).toBe(0);

    // One successful ADD for each pod of the node (a retried ADD would count more, never fewer).
    const pods = { [node1]: 1, [node2]: 3 };
    for (const [i, node] of [node1, node2].entries()) {
      const url = status.nodes[i]!.agentMetrics!;
      await eventually(`${node}: ADDs, pod and secondary interfaces, OVS flows and ports, Service endpoints`, async (saw) => {
        const m = await scrape(url);
        const seen = {
          adds: value(m, 'seine_agent_cni_requests_total', { command: 'ADD', result: 'ok' }) - value(before[i]!, 'seine_agent_cni_requests_total', { command: 'ADD', result: 'ok' }),
          addDurations: value(m, 'seine_agent_cni_request_duration_seconds_count', { command: 'ADD' }),
          podInterfaces: value(m, 'seine_agent_pod_interfaces'),
          vlan100: value(m, 'seine_agent_secondary_attachments', { network: 'default/vlan100', kind: 'seine' }),
          brIntFlows: value(m, 'seine_agent_ovs_flows', { bridge: 'br-int' }),
          brVlanFlows: value(m, 'seine_agent_ovs_flows', { bridge: 'br-vlan' }),
          brIntPorts: value(m, 'seine_agent_ovs_ports', { bridge: 'br-int' }),
          endpoints: value(m, 'seine_agent_service_endpoints', { service: 'default/web:http' }),
          localEndpoints: value(m, 'seine_agent_service_endpoints', { service: 'default/web:http', locality: 'local' }),
          clusterIps: value(m, 'seine_agent_service_frontends', { kind: 'ClusterIP' }),
          peers: value(m, 'seine_agent_peer_nodes'),
          round: value(m, 'seine_agent_flow_round'),
        };
        saw(seen);
        const ok =
          seen.adds >= pods[node]! &&
          seen.addDurations >= seen.adds &&
          seen.podInterfaces === pods[node] &&
          seen.vlan100 === 1 &&
          seen.brIntFlows > 0 &&
          seen.brVlanFlows > 0 &&
          seen.brIntPorts > pods[node]! &&
          seen.endpoints === 2 &&
          seen.localEndpoints === 1 &&
          // The kubernetes Service and web.
          seen.clusterIps >= 2 &&
          seen.peers === 1 &&
          seen.round >= 1;
        return ok || undefined;
      }, SETTLE_MS, 1000);
    }

    await eventually('the controller: leader, the vlan100 pool holding the two servers, the policy spanning both nodes', async (saw) => {
      const m = await scrape(status.controllerMetrics!);
      const seen = {
        leader: value(m, 'seine_controller_leader'),
        allocated: value(m, 'seine_ippool_allocated_addresses', { pool: 'vlan100' }),
        size: value(m, 'seine_ippool_addresses', { pool: 'vlan100' }),
        span: value(m, 'seine_policy_span_nodes', { policy: 'web-from-clients' }),
        realized: value(m, 'seine_policy_realized_nodes', { policy: 'web-from-clients' }),
      };
      saw(seen);
      // 10.100.0.0/24 less network, broadcast, gateway and one exclusion.
      return (seen.leader === 1 && seen.allocated === 2 && seen.size === 252 && seen.span === 2 && seen.realized === 2) || undefined;
    }, SETTLE_MS, 1000);

    // Traffic to web1 on node 1: the client's connections are accepted by the policy's rule, the intruder's dropped by isolation.
    const web1 = (await kubectl(['get', 'pod', 'web1', '-o', 'jsonpath={.status.podIP}'])).stdout;
    const policyLabels = { policy_kind: 'NetworkPolicy', namespace: 'default', policy: 'web-from-clients' };
    const start = await scrape(agent1);
    const accepted0 = value(start, 'seine_policy_rule_packets_total', { ...policyLabels, rule: 'ingress-0', action: 'Accept' });
    const isolated0 = value(start, 'seine_policy_rule_packets_total', { ...policyLabels, rule: 'isolation-ingress' });
    const allowed = await connect(await podNetns('client'), 'tcp', web1, 8080, 5);
    expect(allowed.map((a) => a.pod)).toEqual(['web1', 'web1', 'web1', 'web1', 'web1']);
    const denied = await connect(await podNetns('intruder'), 'tcp', web1, 8080, 2);
    expect(denied.map((a) => a.failure)).toEqual(['timeout', 'timeout']);
    await eventually('node 1\'s policy counters moved: 5 accepted connections, the intruder\'s dropped', async (saw) => {
      const m = await scrape(agent1);
      const seen = {
        accepted: value(m, 'seine_policy_rule_packets_total', { ...policyLabels, rule: 'ingress-0', action: 'Accept' }) - accepted0,
        acceptedBytes: value(m, 'seine_policy_rule_bytes_total', { ...policyLabels, rule: 'ingress-0', action: 'Accept' }),
        isolated: value(m, 'seine_policy_rule_packets_total', { ...policyLabels, rule: 'isolation-ingress' }) - isolated0,
      };
      saw(seen);
      // A new connection's first packet passes its rule (its other packets are established traffic); the
      // dropped SYNs are retransmitted, so at least one per attempt.
      return (seen.accepted >= 5 && seen.acceptedBytes > 0 && seen.isolated >= 2) || undefined;
    }, SETTLE_MS, 1000);
  }, 400_000);

  it('kubectl seine get networks and ippools: each network with its pods per node, each pool with its usage', async () => {
    const [node1, node2] = status.nodes.map((n) => n.name) as [string, string];
    // kubectl passes a plugin's flags through; its own flags may not come before the plugin's name.
    // kubectl finds its plugins on PATH: bin/kubectl-seine.
    const env = { ...process.env, PATH: `${join(process.cwd(), 'bin')}:${process.env.PATH ?? ''}` };
    const get = (...args: string[]): ReturnType<typeof run> => run('kubectl', ['seine', 'get', ...args, '--kubeconfig', kubeconfig], undefined, 60_000, env);
    const networks = await get('networks');
    expect(networks).toMatchObject({ code: 0, stderr: '' });
    expect(networks.stdout).toMatch(/^NAME\s+TYPE\s+SEGMENT\s+BRIDGE\s+IPAM\s+PODS\s+AGE$/m);
    expect(networks.stdout).toMatch(/^vlan100\s+vlan\s+vlan 100\s+br-vlan\s+pools vlan100\s+2\s+\S+$/m);
    expect(networks.stdout).toMatch(/^blue\s+overlay\s+vni 5001\s+\S+\s+pools blue\s+0\s+\S+$/m);
    expect(networks.stdout).toMatch(/^mgmt\s+vlan\s+vlan 300\s+br-vlan\s+static\s+0\s+\S+$/m);
    const wide = await get('nad', 'vlan100', '-o', 'wide');
    expect(wide.stdout).toMatch(new RegExp(`^vlan100\\s+vlan\\s+vlan 100\\s+br-vlan\\s+pools vlan100\\s+2\\s+\\S+\\s+${node1}=1,${node2}=1\\s+<none>$`, 'm'));
    const json = JSON.parse((await get('networks', '-A', '-o', 'json')).stdout) as { items: Array<{ namespace: string; name: string; pods: Record<string, number> }> };
    expect(json.items.find((i) => i.namespace === 'default' && i.name === 'vlan100')?.pods).toEqual({ [node1]: 1, [node2]: 1 });

    const pools = await get('ippools');
    expect(pools).toMatchObject({ code: 0, stderr: '' });
    expect(pools.stdout).toMatch(/^NAME\s+RANGES\s+USED\s+TOTAL\s+USAGE\s+AGE$/m);
    expect(pools.stdout).toMatch(/^vlan100\s+10\.100\.0\.0\/24\s+2\s+252\s+1%\s+\S+$/m);
    const poolWide = await get('ipp', 'vlan100', '-o', 'wide');
    // Each node's pod holds an address of the block claimed for its node.
    expect(poolWide.stdout).toMatch(new RegExp(`^vlan100\\s+10\\.100\\.0\\.0/24\\s+2\\s+252\\s+1%\\s+\\S+\\s+10\\.100\\.0\\.1\\s+100\\s+${node1}=1,${node2}=1\\s+${node1}=1,${node2}=1$`, 'm'));
    const missing = await get('ippools', 'nope');
    expect(missing).toMatchObject({ code: 1, stdout: '', stderr: 'Error from server (NotFound): ippools.crd.seine.dev "nope" not found\n' });
    const unknown = await get('bananas');
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/^error: unknown resource type "bananas"/);
  }, 120_000);

  it('seine get pods, services and rules: each node\'s interfaces, ports, Service frontends and policy rule counters, from its agent through the API server', async () => {
    const [node1, node2] = status.nodes.map((n) => n.name) as [string, string];
    const get = (...args: string[]): ReturnType<typeof run> => run(SEINE, ['get', ...args, '--kubeconfig', kubeconfig], undefined, 60_000);
    const pods = JSON.parse((await kubectl(['get', 'pods', '-n', 'default', '-o', 'json'])).stdout) as { items: V1Pod[] };
    const listed = await get('pods', '-A', '-o', 'json');
    expect(listed.stderr).toBe('');
    const items = (JSON.parse(listed.stdout) as { items: PodInfo[] }).items;
    for (const pod of pods.items) {
      const seen = items.filter((i) => i.namespace === 'default' && i.name === pod.metadata!.name);
      expect(seen).toHaveLength(1);
      const [info] = seen as [PodInfo];
      expect(info.node).toBe(pod.spec!.nodeName);
      expect(info.interfaces[0]).toEqual(expect.objectContaining({ ifname: 'eth0', kind: 'pod-network', ips: [pod.status!.podIP], bridge: 'br-int', ofport: expect.any(Number) }));
      // A pod on vlan100 has its second interface there, as its network-status says.
      const status = JSON.parse(pod.metadata?.annotations?.['k8s.v1.cni.cncf.io/network-status'] ?? '[]') as Array<{ name: string; interface?: string; ips?: string[]; mac?: string }>;
      const vlan = status.find((n) => n.name === 'default/vlan100');
      if (vlan) expect(info.interfaces).toContainEqual(expect.objectContaining({ ifname: vlan.interface, kind: 'seine', network: 'default/vlan100', ips: vlan.ips, mac: vlan.mac, bridge: 'br-vlan', ofport: expect.any(Number) }));
    }
    const table = await get('pods', '-n', 'default', '--node', node1);
    expect(table.stdout).toMatch(/^NAME\s+NODE\s+INTERFACE\s+NETWORK\s+IPS\s+MAC\s+BRIDGE\s+PORT\s+OFPORT$/m);
    expect(table.stdout).toMatch(new RegExp(`^web1\\s+${node1}\\s+eth0\\s`, 'm'));
    expect(table.stdout).toMatch(/^\S*\s+\S*\s*net1\s+default\/vlan100\s/m);
    expect(table.stdout).not.toMatch(/^web2\s/m);
    // What the CLI read: the agent's answer through the API server's node proxy, as kubectl gets it.
    const raw = JSON.parse((await kubectl(['get', '--raw', `/api/v1/nodes/${node2}:10361/proxy/v1/pods`])).stdout) as { node: string; items: PodInfo[] };
    expect(raw.node).toBe(node2);
    expect(raw.items.map((i) => i.name).sort()).toEqual(pods.items.filter((p) => p.spec!.nodeName === node2).map((p) => p.metadata!.name).sort());
    expect((await kubectl(['get', '--raw', '/api/v1/nodes/nope:10361/proxy/v1/pods'])).stderr).toMatch(/NotFound.*nodes "nope" not found/);

    const services = (JSON.parse((await get('services', '-A', '-o', 'json')).stdout) as { items: ServiceFrontendInfo[] }).items;
    for (const node of [node1, node2]) {
      expect(services).toContainEqual(expect.objectContaining({ node, namespace: 'default', name: 'kubernetes', kind: 'ClusterIP', port: 443, protocol: 'TCP' }));
      // web1 and web2 run on the two nodes: one endpoint here, one there.
      expect(services).toContainEqual(expect.objectContaining({ node, namespace: 'default', name: 'web', kind: 'ClusterIP', port: 80, endpoints: { local: 1, remote: 1 } }));
    }

    // The policy rules' counters: the connections of the test before (5 accepted by web-from-clients' rule on
    // web1's node, the intruder's dropped there by isolation), per node in JSON and summed in the table.
    const rules = (JSON.parse((await get('rules', '-n', 'default', '-o', 'json')).stdout) as { items: PolicyRuleInfo[] }).items;
    const counted = (rule: string): PolicyRuleInfo[] => rules.filter((r) => r.kind === 'NetworkPolicy' && r.name === 'web-from-clients' && r.direction === 'Ingress' && r.rule === rule);
    expect(counted('ingress-0').find((r) => r.node === node1)).toEqual(expect.objectContaining({ action: 'Accept', network: '', packets: expect.any(Number) }));
    expect(counted('ingress-0').find((r) => r.node === node1)!.packets).toBeGreaterThanOrEqual(5);
    expect(counted('isolation-ingress').find((r) => r.node === node1)!.packets).toBeGreaterThanOrEqual(2);
    const sum = counted('ingress-0').reduce((a, r) => a + r.packets, 0);
    const ruleTable = await get('rules', '-n', 'default', 'web-from-clients');
    expect(ruleTable.stdout).toMatch(/^POLICY\s+KIND\s+DIRECTION\s+RULE\s+ACTION\s+PACKETS\s+BYTES$/m);
    expect(ruleTable.stdout).toMatch(new RegExp(`^web-from-clients\\s+NetworkPolicy\\s+Ingress\\s+ingress-0\\s+Accept\\s+${sum}\\s+\\d+$`, 'm'));
  }, 120_000);

  it('names every family by the Prometheus rules and documents it; the dashboard uses documented metrics only', async () => {
    const doc = readFileSync(join(process.cwd(), 'docs', 'metrics.md'), 'utf8');
    const documented = new Set([...doc.matchAll(/^\| `(seine_[a-z_]+)`/gm)].map((m) => m[1]!));
    const families = new Map<string, string>();
    for (const url of [status.controllerMetrics!, ...status.nodes.map((n) => n.agentMetrics!)]) for (const [n, t] of (await scrape(url)).types) families.set(n, t);
    const own = [...families].filter(([n]) => !/^seine_(agent|controller)_(process|nodejs)_/.test(n));
    expect(own.length).toBeGreaterThan(20);
    // The process and Node.js families are prom-client's standard ones, named as every Node.js exporter names them.
    for (const [n, type] of own) {
      expect(n).toMatch(/^seine_[a-z]+_[a-z0-9_]+$/);
      if (type === 'counter') expect(n).toMatch(/_total$/);
      else expect(n).not.toMatch(/_total$/);
    }
    expect(own.map(([n]) => n).filter((n) => !documented.has(n))).toEqual([]);
    // Chain counters appear with the chain feature's first chain; everything else documented is served here.
    expect([...documented].filter((n) => !families.has(n) && !n.startsWith('seine_chain_') )).toEqual([]);
    const dashboard = readFileSync(join(process.cwd(), 'manifests', 'grafana-dashboard.json'), 'utf8');
    JSON.parse(dashboard);
    const used = new Set([...dashboard.matchAll(/seine_[a-z_]+/g)].map((m) => m[0].replace(/_(bucket|count|sum)$/, '')));
    expect([...used].filter((n) => !documented.has(n) && !/^seine_(agent|controller)_(process|nodejs)_/.test(n))).toEqual([]);
  }, 60_000);
});

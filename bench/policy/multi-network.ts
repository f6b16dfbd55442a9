/**
 * MultiNetworkPolicy enforcement against NetworkPolicy's, in one run on a 3-node lab: 8 pods per node (3
 * namespaces, varied labels), every one on the pod network, a VLAN network (default/vlan100, on the trunk bridge)
 * and an overlay network (default/blue, VNI 5001, a bridge of its own). The same POLICIES policy shapes (as
 * enforce.ts: ingress and egress, pod, namespace and combined selectors, ipBlocks, one or two ports) are written
 * as NetworkPolicies and as MultiNetworkPolicies (half for the VLAN network, half for the overlay), each with a
 * port of its own in its first rule (its marker; the two kinds' markers in different ranges). Measured:
 *   - the NetworkPolicies created -> installed in br-int on every node that enforces them; then the
 *     MultiNetworkPolicies (the NetworkPolicies in place) -> installed on the secondary bridges;
 *   - CHANGES single-policy changes of each kind (a new marker), alternating between the kinds so that both see the
 *     same load: write -> the new marker in the flows of every node enforcing the policy, p50/p99/max, the ratio
 *     MultiNetworkPolicy/NetworkPolicy, and each against its watch floor (write -> the watch event at a client);
 *   - flows per rule on each secondary bridge and on br-int (the policy-owned flows over the rules the agent's
 *     last sync of that bridge logged).
 * "Installed" is seen by OpenFlow flow monitors (`ovs-ofctl monitor BRIDGE watch:`), one per node and bridge; the
 * nodes that enforce a policy come from the policy model computed in-process (the controller's computation and
 * the agents' flow code) from the objects in the API server.
 * Build, then: node dist/bench/policy/multi-network.js   (env POLICIES=60 CHANGES=30 PODS_PER_NODE=8)
 */
import '../primary/quiet.js';
import { CustomObjectsApi, NetworkingV1Api, Watch, type V1NetworkPolicy, type V1NetworkPolicyPort, type V1Pod } from '@kubernetes/client-node';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { Lab } from '../../src/lab/lab.js';
import { decodeCookie } from '../../src/ovs/openflow/cookie.js';
import { FlowWriter } from '../../src/ovs/openflow/writer.js';
import { resolveShare, RuleIds, type NodeShare } from '../../src/policy/agent/resolve.js';
import { MNP_GROUP, MNP_KIND, MNP_PLURAL, MNP_VERSION_V1BETA2, POLICY_FOR_ANNOTATION, type MultiNetworkPolicy, type MultiNetworkPolicySpec } from '../../src/policy/api/multinetworkpolicy.js';
import { PolicyComputation } from '../../src/policy/controller/compute.js';
import { policyPod } from '../../src/policy/controller/controller.js';
import { MultiNetworkPolicies } from '../../src/policy/controller/multi-network.js';
import { policyFlows } from '../../src/policy/datapath/flows.js';
import { policyScope } from '../../src/policy/datapath/layout.js';
import { secondaryPolicyFlows } from '../../src/policy/datapath/secondary.js';
import { compileNetworkPolicy } from '../../src/policy/model/networkpolicy.js';
import { NETWORK_STATUS_ANNOTATION, NETWORKS_ANNOTATION, parseNetworkStatus } from '../../src/secondary/annotations/index.js';
import { defaultBridge } from '../../src/secondary/nad/bridges.js';
import type { NetworkAttachmentDefinition } from '../../src/secondary/nad/index.js';
import { BENCH_ROOT, benchMain, benchName, eventually, sleep, stats, waitAgentReady, withCleanup, type Stats } from '../primary/common.js';

const NODES = 3;
const PODS_PER_NODE = Number(process.env.PODS_PER_NODE ?? 8);
const POLICIES = Number(process.env.POLICIES ?? 60);
const CHANGES = Number(process.env.CHANGES ?? 30);
const NAMESPACES = 3;
const APPS = ['web', 'api', 'db'] as const;
const LABEL = 'seine.dev/bench-mnp';
const IN_FLIGHT = 8;

const VLAN_NET = 'default/vlan100';
const OVERLAY_NET = 'default/blue';
const VNI = 5001;
const NETWORKS = [VLAN_NET, OVERLAY_NET] as const;
const BRIDGE: Record<string, string> = { [VLAN_NET]: defaultBridge({ networkType: 'vlan' }), [OVERLAY_NET]: defaultBridge({ networkType: 'overlay', vni: VNI }) };
const PRIMARY_BRIDGE = 'br-int';
const NAD = { group: 'k8s.cni.cncf.io', version: 'v1', plural: 'network-attachment-definitions' } as const;
const MNP = { group: MNP_GROUP, version: MNP_VERSION_V1BETA2, plural: MNP_PLURAL } as const;

type Kind = 'np' | 'mnp';
const KINDS: readonly Kind[] = ['np', 'mnp'];
const TITLE: Record<Kind, string> = { np: 'NetworkPolicies', mnp: 'MultiNetworkPolicies' };
/** Policy i's marker port is base + i; change k gives it change + k. Every marker is at least MARKER_MIN. */
const MARKERS: Record<Kind, { base: number; change: number }> = { np: { base: 10_000, change: 40_000 }, mnp: { base: 20_000, change: 50_000 } };
const MARKER_MIN = 10_000;

const NETWORKS_MANIFEST: object[] = [
  { apiVersion: 'crd.seine.dev/v1alpha1', kind: 'IPPool', metadata: { name: 'bmnp-vlan100' }, spec: { ipRanges: [{ cidr: '10.100.0.0/24' }], subnetInfo: { gateway: '10.100.0.1', prefixLength: 24, vlan: 100 } } },
  { apiVersion: 'crd.seine.dev/v1alpha1', kind: 'IPPool', metadata: { name: 'bmnp-blue' }, spec: { ipRanges: [{ cidr: '10.50.0.0/24' }], subnetInfo: { gateway: '10.50.0.1', prefixLength: 24 } } },
  { apiVersion: 'k8s.cni.cncf.io/v1', kind: 'NetworkAttachmentDefinition', metadata: { name: 'vlan100', namespace: 'default' }, spec: { config: JSON.stringify({ cniVersion: '1.0.0', type: 'seine', networkType: 'vlan', vlan: 100, ipam: { type: 'seine', ippools: ['bmnp-vlan100'] } }) } },
  { apiVersion: 'k8s.cni.cncf.io/v1', kind: 'NetworkAttachmentDefinition', metadata: { name: 'blue', namespace: 'default' }, spec: { config: JSON.stringify({ cniVersion: '1.0.0', type: 'seine', networkType: 'overlay', vni: VNI, ipam: { type: 'seine', ippools: ['bmnp-blue'] } }) } },
];

const nsName = (k: number): string => `mnp-${k}`;

/**
 * Pod j: node j mod 3, namespace (j/3) mod 3, shard (j/3) mod 2; apps rotate over the nodes so that a namespace has
 * two or three apps on each node (policy i's app is i's namespace's, so a plain rotation would put them all on one).
 */
function podPlan(lab: Lab): Array<{ name: string; namespace: string; node: string; labels: Record<string, string> }> {
  return Array.from({ length: NODES * PODS_PER_NODE }, (_, j) => {
    const node = j % NODES;
    const triple = Math.floor(j / NODES);
    return {
      name: `p${j}`,
      namespace: nsName(triple % NAMESPACES),
      node: lab.plan.nodes[node]!.name,
      labels: { [LABEL]: 'yes', app: APPS[(node + Math.floor(triple / NAMESPACES)) % APPS.length]!, shard: `s${triple % 2}` },
    };
  });
}

/** Policy i's spec (enforce.ts's four shapes, in the JSON form: `from`), its marker port first in its first rule. */
function spec(i: number, marker: number): MultiNetworkPolicySpec {
  const app = (k: number): { app: string } => ({ app: APPS[(i + k) % APPS.length]! });
  const team = { team: `t${i % 2}` };
  const shard = { shard: `s${i % 2}` };
  const tcp = (port: number): V1NetworkPolicyPort => ({ protocol: 'TCP', port });
  const udp = (port: number): V1NetworkPolicyPort => ({ protocol: 'UDP', port });
  return [
    { podSelector: { matchLabels: app(0) }, policyTypes: ['Ingress'], ingress: [{ from: [{ podSelector: { matchLabels: app(1) } }], ports: [tcp(marker)] }] },
    { podSelector: { matchLabels: app(0) }, policyTypes: ['Egress'], egress: [{ to: [{ namespaceSelector: { matchLabels: team } }], ports: [udp(marker)] }] },
    { podSelector: {}, policyTypes: ['Ingress'], ingress: [{ from: [{ namespaceSelector: { matchLabels: team }, podSelector: { matchLabels: shard } }], ports: [tcp(marker), tcp(80)] }] },
    {
      podSelector: { matchLabels: shard },
      policyTypes: ['Ingress', 'Egress'],
      ingress: [{ from: [{ podSelector: { matchLabels: app(2) } }], ports: [tcp(marker)] }],
      egress: [{ to: [{ ipBlock: { cidr: `198.18.${i % 256}.0/24`, except: [`198.18.${i % 256}.128/25`] } }], ports: [udp(53)] }],
    },
  ][i % 4]!;
}

/** Shapes alternate between the networks in fours, so that each network gets every shape. */
const networkOf = (i: number): string => NETWORKS[Math.floor(i / 4) % NETWORKS.length]!;

const metadata = (kind: Kind, i: number): { name: string; namespace: string; labels: Record<string, string> } => ({ name: `${kind}-${i}`, namespace: nsName(i % NAMESPACES), labels: { [LABEL]: 'yes' } });

function npBody(i: number, marker = MARKERS.np.base + i): V1NetworkPolicy {
  const s = spec(i, marker);
  // client-node serializes a NetworkPolicy's `from` from `_from`.
  const ingress = s.ingress?.map(({ from, ...r }) => ({ ...r, ...(from ? { _from: from } : {}) }));
  return { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: metadata('np', i), spec: { ...s, ...(ingress ? { ingress } : {}) } };
}

function mnpBody(i: number, marker = MARKERS.mnp.base + i): MultiNetworkPolicy {
  const meta = metadata('mnp', i);
  return { apiVersion: `${MNP_GROUP}/${MNP_VERSION_V1BETA2}`, kind: MNP_KIND, metadata: { ...meta, annotations: { [POLICY_FOR_ANNOTATION]: networkOf(i) } }, spec: spec(i, marker) };
}

/** The marker port of a policy of either kind as the API returns it (its first rule's first port). */
function markerOf(o: { spec?: { ingress?: Array<{ ports?: V1NetworkPolicyPort[] }>; egress?: Array<{ ports?: V1NetworkPolicyPort[] }> } }): number | undefined {
  const rule = o.spec?.ingress?.[0] ?? o.spec?.egress?.[0];
  const port = rule?.ports?.[0]?.port;
  return typeof port === 'number' ? port : undefined;
}

/** A node's bridge, as the monitors and the expected markers key it. */
const target = (node: string, bridge: string): string => `${node} ${bridge}`;

/**
 * One `ovs-ofctl monitor` per node and bridge: which marker-range ports are in the bridge's flows now, and when each
 * was first added. ovs-ofctl writes flow-monitor updates unbuffered on stderr; stdout is read too, in case.
 */
class FlowMonitors {
  private readonly procs: ChildProcess[] = [];
  /** target -> port -> count of flows matching it (a port may be in several flows). */
  readonly present = new Map<string, Map<number, number>>();
  /** `${target}/${port}` -> when a flow with that port was first added. */
  private readonly added = new Map<string, number>();
  private readonly waiters = new Map<string, Array<(t: number) => void>>();

  constructor(private readonly lab: Lab) {}

  async start(bridges: readonly string[]): Promise<void> {
    for (const node of this.lab.nodes) {
      for (const bridge of bridges) {
        const key = target(node.plan.name, bridge);
        const ports = new Map<number, number>();
        this.present.set(key, ports);
        const proc = spawn('ovs-ofctl', ['monitor', node.ovs.bridgeMgmt(bridge), 'watch:!initial,!actions'], { env: node.ovs.env, stdio: ['ignore', 'pipe', 'pipe'] });
        if (proc.pid !== undefined) this.lab.ledger.process(proc.pid, `flow monitor of ${key} (MultiNetworkPolicy bench)`);
        this.procs.push(proc);
        const onLine = (line: string): void => {
          const m = /event=(ADDED|DELETED|MODIFIED)\b.*\btp_dst=(\d+)$/.exec(line.trim());
          if (!m || m[1] === 'MODIFIED') return;
          const port = Number(m[2]);
          if (port < MARKER_MIN) return;
          const n = (ports.get(port) ?? 0) + (m[1] === 'ADDED' ? 1 : -1);
          if (n > 0) ports.set(port, n);
          else ports.delete(port);
          if (m[1] !== 'ADDED') return;
          const k = `${key}/${port}`;
          if (this.added.has(k)) return;
          const t = performance.now();
          this.added.set(k, t);
          for (const w of this.waiters.get(k) ?? []) w(t);
          this.waiters.delete(k);
        };
        createInterface({ input: proc.stderr! }).on('line', onLine);
        createInterface({ input: proc.stdout! }).on('line', onLine);
      }
    }
    // The monitors are registered with ovs-vswitchd once each has printed its (empty) initial reply.
    await sleep(500);
    for (const p of this.procs) if (p.exitCode !== null) throw new Error(`ovs-ofctl monitor exited (${p.exitCode}): ${p.spawnargs.join(' ')}`);
  }

  /** When `port` was first added on the target (waits for it). */
  addedAt(key: string, port: number, timeoutMs = 30_000): Promise<number> {
    const k = `${key}/${port}`;
    const t = this.added.get(k);
    if (t !== undefined) return Promise.resolve(t);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`port ${port} not in the flows of ${key} after ${timeoutMs} ms`)), timeoutMs);
      const list = this.waiters.get(k) ?? [];
      list.push((at) => {
        clearTimeout(timer);
        resolve(at);
      });
      this.waiters.set(k, list);
    });
  }

  stop(): void {
    for (const p of this.procs) {
      p.kill('SIGTERM');
      if (p.pid !== undefined) this.lab.ledger.forgetProcess(p.pid);
    }
  }
}

/** When each policy's write reached a watching client (by the marker it was written with), one watch per kind. */
class PolicyWatch {
  private readonly seen = new Map<number, number>();
  private readonly aborts: AbortController[] = [];

  constructor(private readonly lab: Lab) {}

  async start(): Promise<void> {
    for (const path of ['/apis/networking.k8s.io/v1/networkpolicies', `/apis/${MNP.group}/${MNP.version}/${MNP.plural}`]) {
      this.aborts.push(
        await new Watch(this.lab.kubeConfig).watch(
          path,
          { labelSelector: LABEL },
          (type: string, o: Parameters<typeof markerOf>[0]) => {
            const marker = type === 'MODIFIED' || type === 'ADDED' ? markerOf(o) : undefined;
            if (marker !== undefined && !this.seen.has(marker)) this.seen.set(marker, performance.now());
          },
          () => undefined,
        ),
      );
    }
  }

  seenAt(marker: number): Promise<number> {
    return eventually(`watch event of marker ${marker}`, async () => this.seen.get(marker), 30_000, 1);
  }

  stop(): void {
    for (const a of this.aborts) a.abort();
  }
}

/**
 * The policy model, computed in-process from the objects in the API server: per node and bridge, the marker
 * ports its flows must hold (the agents' flow code on the node's share, every applied pod given a port).
 */
async function expectedMarkers(lab: Lab): Promise<Map<string, Set<number>>> {
  const c = new PolicyComputation();
  const multi = new MultiNetworkPolicies(c);
  const custom = lab.kubeConfig.makeApiClient(CustomObjectsApi);
  const net = lab.kubeConfig.makeApiClient(NetworkingV1Api);
  for (const ns of (await lab.core.listNamespace()).items) c.upsertNamespace(ns.metadata!.name!, ns.metadata?.labels ?? {});
  // NADs before the policies that name them, as the controller does.
  for (const nad of ((await custom.listCustomObjectForAllNamespaces(NAD)) as { items: NetworkAttachmentDefinition[] }).items) multi.upsertNad(nad);
  for (const p of (await lab.core.listPodForAllNamespaces()).items) {
    const pp = policyPod(p);
    if (pp) c.upsertPod(pp);
    multi.upsertPod(p, pp);
  }
  for (const np of (await net.listNetworkPolicyForAllNamespaces({ labelSelector: LABEL })).items) {
    const compiled = compileNetworkPolicy(np);
    c.upsertPolicy(compiled.policy, compiled.groups);
  }
  for (const mnp of ((await custom.listCustomObjectForAllNamespaces({ ...MNP, labelSelector: LABEL })) as { items: MultiNetworkPolicy[] }).items) multi.upsertPolicy(mnp);
  c.drain();
  const markers = new Map<string, Set<number>>();
  const ports = (flows: ReadonlyArray<{ match?: { tp_dst?: unknown } }>): Set<number> =>
    new Set(flows.map((f) => f.match?.tp_dst).filter((p): p is number => typeof p === 'number' && p >= MARKER_MIN));
  for (const node of lab.plan.nodes.map((n) => n.name)) {
    const policies = c.policiesOf(node).map((policy) => ({ policy, pods: c.appliedOn(policy.ref.uid, node) }));
    const share = (network: string | undefined): NodeShare => ({ policies: policies.filter((p) => p.policy.network === network), groups: c.peerGroupsOf(node) });
    markers.set(target(node, PRIMARY_BRIDGE), ports(policyFlows(resolveShare(share(undefined), () => [1], new RuleIds(), 1))));
    for (const network of NETWORKS) {
      // A trunk's rule flows are an overlay's: only the entry differs, which carries no port.
      const state = resolveShare(share(network), () => [1], new RuleIds(), 1);
      markers.set(target(node, BRIDGE[network]!), ports(secondaryPolicyFlows({ kind: 'overlay', zone: 1, ports: [{ ofport: 1 }], ...state })));
    }
  }
  return markers;
}

/** The agent's last flow sync of a bridge: its rule, isolation and flow counts (br-int: "policy flows synced"). */
function lastSync(lab: Lab, node: number, bridge: string): { rules: number; isolations: number; flows: number } {
  const log = join(lab.nodes[node]!.dirs.logDir, 'seine-agent.log');
  const lines = readFileSync(log, 'utf8')
    .split('\n')
    .filter((l) => (bridge === PRIMARY_BRIDGE ? l.includes('"msg":"policy flows synced"') : l.includes('"msg":"secondary network policy flows synced"') && l.includes(`"bridge":"${bridge}"`)));
  const last = JSON.parse(lines[lines.length - 1] ?? '{}') as { rules?: number; isolations?: number; flows?: number };
  return { rules: last.rules ?? NaN, isolations: last.isolations ?? NaN, flows: last.flows ?? NaN };
}

/** Every pod of the plan Running, with an address on the pod network and on each secondary network. */
async function waitPods(lab: Lab, count: number): Promise<V1Pod[]> {
  return eventually(
    `${count} bench pods Running on every network`,
    async () => {
      const pods = (await lab.core.listPodForAllNamespaces({ labelSelector: LABEL })).items.filter((p) => {
        if (p.status?.phase !== 'Running' || !p.status.podIP) return false;
        const status = parseNetworkStatus(p.metadata?.annotations?.[NETWORK_STATUS_ANNOTATION]);
        return NETWORKS.every((n) => status.some((s) => s.name === n && s.ips?.length));
      });
      return pods.length === count ? pods : undefined;
    },
    300_000,
    500,
  );
}

/** A write that lost to another (the controller's status of a MultiNetworkPolicy, say) is read and written again. */
const conflict = (e: unknown): boolean => (e as { code?: number }).code === 409;

const ms = (x: number): string => x.toFixed(1).padStart(8);
const ratio = (a: number, b: number): string => `${(a / b).toFixed(2)}x`.padStart(8);
const row = (label: string, s: Stats): string => `  ${label.padEnd(58)}${ms(s.p50)}  ${ms(s.p99)}  ${ms(s.max)}`;
const ratioRow = (label: string, a: Stats, b: Stats): string => `  ${label.padEnd(58)}${ratio(a.p50, b.p50)}  ${ratio(a.p99, b.p99)}  ${ratio(a.max, b.max)}`;

async function main(): Promise<void> {
  const t = performance.now();
  const lab = await Lab.up({ name: benchName('bm'), nodes: NODES, stateRoot: BENCH_ROOT });
  await withCleanup(() => lab.down(), async () => {
    for (let i = 0; i < NODES; i++) await waitAgentReady(lab, i, 120_000);
    const controllerLog = join(lab.stateDir, 'seine-controller.log');
    await eventually('every agent connected to the policy channel', async () => {
      const lines = existsSync(controllerLog) ? readFileSync(controllerLog, 'utf8').split('\n').filter((l) => l.includes('"msg":"agent connected; share sent"')) : [];
      const connected = new Set(lines.map((l) => (JSON.parse(l) as { node?: string }).node));
      return lab.plan.nodes.every((n) => connected.has(n.name)) ? true : undefined;
    }, 120_000, 250);
    const custom = lab.kubeConfig.makeApiClient(CustomObjectsApi);
    const net = lab.kubeConfig.makeApiClient(NetworkingV1Api);
    for (const o of NETWORKS_MANIFEST as Array<{ apiVersion: string; kind: string; metadata: { namespace?: string } }>) {
      const [group, version] = o.apiVersion.split('/') as [string, string];
      if (o.kind === 'IPPool') await custom.createClusterCustomObject({ group, version, plural: 'ippools', body: o });
      else await custom.createNamespacedCustomObject({ group, version, plural: NAD.plural, namespace: o.metadata.namespace!, body: o });
    }
    for (let k = 0; k < NAMESPACES; k++) await lab.core.createNamespace({ body: { metadata: { name: nsName(k), labels: { team: `t${k % 2}` } } } });
    const plan = podPlan(lab);
    for (const p of plan) {
      await lab.core.createNamespacedPod({
        namespace: p.namespace,
        body: {
          apiVersion: 'v1',
          kind: 'Pod',
          metadata: { name: p.name, namespace: p.namespace, labels: p.labels, annotations: { [NETWORKS_ANNOTATION]: NETWORKS.join(',') } },
          spec: { nodeName: p.node, containers: [{ name: 'main', image: 'lab' }] },
        },
      });
    }
    await waitPods(lab, plan.length);
    console.log(`lab ${lab.plan.name}: ${NODES} nodes, ${plan.length} pods in ${NAMESPACES} namespaces, each on the pod network, ${VLAN_NET} (${BRIDGE[VLAN_NET]}) and ${OVERLAY_NET} (${BRIDGE[OVERLAY_NET]}); up in ${((performance.now() - t) / 1000).toFixed(1)} s`);
    await sleep(3000); // the pods' own syncs settle

    const monitors = new FlowMonitors(lab);
    const watch = new PolicyWatch(lab);
    try {
      await monitors.start([PRIMARY_BRIDGE, ...NETWORKS.map((n) => BRIDGE[n]!)]);
      await watch.start();
      const bridgesOf: Record<Kind, string[]> = { np: [PRIMARY_BRIDGE], mnp: NETWORKS.map((n) => BRIDGE[n]!) };
      const targetsOf = (kind: Kind): string[] => lab.plan.nodes.flatMap((n) => bridgesOf[kind].map((b) => target(n.name, b)));

      // One policy of each kind that selects no pod, written and deleted first: the clients' first connections and
      // the controller's first pass of each kind stay out of the figures.
      const idle: MultiNetworkPolicySpec = { podSelector: { matchLabels: { app: 'none' } }, policyTypes: ['Ingress'] };
      const warm = { name: 'warm-up', namespace: nsName(0) };
      await net.createNamespacedNetworkPolicy({ namespace: warm.namespace, body: { metadata: warm, spec: idle } });
      await custom.createNamespacedCustomObject({ ...MNP, namespace: warm.namespace, body: { apiVersion: `${MNP_GROUP}/${MNP_VERSION_V1BETA2}`, kind: MNP_KIND, metadata: { ...warm, annotations: { [POLICY_FOR_ANNOTATION]: VLAN_NET } }, spec: idle } });
      await sleep(1000);
      await net.deleteNamespacedNetworkPolicy(warm);
      await custom.deleteNamespacedCustomObject({ ...MNP, ...warm });
      await sleep(1000);

      // Creation: the NetworkPolicies, installed everywhere; then the MultiNetworkPolicies.
      let exp = new Map<string, Set<number>>();
      const created = {} as Record<Kind, { written: number; installed: number; perNode: number[] }>;
      for (const kind of KINDS) {
        const create = (i: number): Promise<unknown> => {
          if (kind === 'np') {
            const body = npBody(i);
            return net.createNamespacedNetworkPolicy({ namespace: body.metadata!.namespace!, body });
          }
          const body = mnpBody(i);
          return custom.createNamespacedCustomObject({ ...MNP, namespace: body.metadata.namespace!, body });
        };
        let next = 0;
        const t0 = performance.now();
        await Promise.all(
          Array.from({ length: IN_FLIGHT }, async () => {
            while (next < POLICIES) await create(next++);
          }),
        );
        const written = performance.now() - t0;
        exp = await expectedMarkers(lab);
        const at = new Map<string, number>();
        await Promise.all(targetsOf(kind).map(async (k) => at.set(k, Math.max(t0, ...(await Promise.all([...exp.get(k)!].map((m) => monitors.addedAt(k, m, 240_000))))))));
        const perNode = lab.plan.nodes.map((n) => Math.max(...bridgesOf[kind].map((b) => at.get(target(n.name, b))!)) - t0);
        created[kind] = { written, installed: Math.max(...perNode), perNode };
        const enforced = lab.plan.nodes.map((n) => bridgesOf[kind].map((b) => `${exp.get(target(n.name, b))!.size}${kind === 'mnp' ? ` on ${b}` : ''}`).join(' + '));
        console.log(`\n${POLICIES} ${TITLE[kind]} created (${IN_FLIGHT} in flight)${kind === 'mnp' ? `, half for ${VLAN_NET}, half for ${OVERLAY_NET}, the NetworkPolicies in place` : ''}; enforced per node: ${enforced.join(' | ')}`);
        await sleep(3000);
      }
      console.log(`\ncreated -> installed on every node that enforces them (flow monitors on ${bridgesOf.np.join(', ')} and ${bridgesOf.mnp.join(', ')}):`);
      console.log(`  ${''.padEnd(58)}${'NetworkPolicy'.padStart(14)}  ${'MultiNetworkPolicy'.padStart(18)}  MNP / NP`);
      const sRow = (label: string, f: (k: Kind) => number): string => `  ${label.padEnd(58)}${(f('np') / 1000).toFixed(2).padStart(12)} s  ${(f('mnp') / 1000).toFixed(2).padStart(16)} s  ${(f('mnp') / f('np')).toFixed(2).padStart(8)}x`;
      console.log(sRow(`the ${POLICIES} writes, first to last`, (k) => created[k].written));
      console.log(sRow('first write -> installed on every node', (k) => created[k].installed));
      console.log(sRow('last write -> installed on every node', (k) => created[k].installed - created[k].written));
      for (const [j, n] of lab.plan.nodes.entries()) console.log(sRow(`  first write -> installed on ${n.name}`, (k) => created[k].perNode[j]!));

      // Single-policy changes, one at a time, the kinds alternating: a new marker port in the policy's first rule.
      const latencies: Record<Kind, number[]> = { np: [], mnp: [] };
      const floors: Record<Kind, number[]> = { np: [], mnp: [] };
      const writes: Record<Kind, number[]> = { np: [], mnp: [] };
      const byNetwork = new Map<string, number[]>(NETWORKS.map((n) => [n, []]));
      /** Each policy's marker as last written. */
      const current = new Map<string, number>();
      for (let k = 0; k < CHANGES; k++) {
        const i = (k * 37 + 11) % POLICIES;
        for (const kind of KINDS) {
          const old = current.get(`${kind}-${i}`) ?? MARKERS[kind].base + i;
          const targets = targetsOf(kind).filter((x) => exp.get(x)!.has(old));
          if (!targets.length) continue;
          const marker = MARKERS[kind].change + k;
          let w0 = 0;
          for (;;) {
            try {
              if (kind === 'np') {
                const body = npBody(i, marker);
                const { name, namespace } = body.metadata as { name: string; namespace: string };
                const current = await net.readNamespacedNetworkPolicy({ name, namespace });
                body.metadata!.resourceVersion = current.metadata!.resourceVersion!;
                w0 = performance.now();
                await net.replaceNamespacedNetworkPolicy({ name, namespace, body });
              } else {
                const body = mnpBody(i, marker);
                const { name, namespace } = body.metadata as { name: string; namespace: string };
                const current = (await custom.getNamespacedCustomObject({ ...MNP, namespace, name })) as MultiNetworkPolicy;
                body.metadata.resourceVersion = current.metadata.resourceVersion!;
                w0 = performance.now();
                await custom.replaceNamespacedCustomObject({ ...MNP, namespace, name, body });
              }
              break;
            } catch (e) {
              if (!conflict(e)) throw e;
            }
          }
          writes[kind].push(performance.now() - w0);
          const [seen, ...added] = await Promise.all([watch.seenAt(marker), ...targets.map((x) => monitors.addedAt(x, marker))]);
          floors[kind].push(seen! - w0);
          latencies[kind].push(Math.max(...added) - w0);
          if (kind === 'mnp') byNetwork.get(networkOf(i))!.push(Math.max(...added) - w0);
          // The old marker leaves every node before the next change.
          await eventually(`${kind}-${i}'s old port gone`, async () => (targets.every((x) => !monitors.present.get(x)!.has(old)) ? true : undefined), 30_000, 5);
          current.set(`${kind}-${i}`, marker);
          for (const x of targets) exp.get(x)!.add(marker);
          await sleep(100);
        }
      }
      const s = { np: stats(latencies.np), mnp: stats(latencies.mnp) };
      const f = { np: stats(floors.np), mnp: stats(floors.mnp) };
      const w = { np: stats(writes.np), mnp: stats(writes.mnp) };
      console.log(`\n${s.np.n} NetworkPolicy and ${s.mnp.n} MultiNetworkPolicy changes (a new port in one rule), one at a time, the kinds alternating; write -> in the flows of every node enforcing it:`);
      console.log(`  ${''.padEnd(58)}  p50 ms    p99 ms    max ms`);
      console.log(row('NetworkPolicy: in br-int (flow monitors)', s.np));
      console.log(row('  its floor: write -> watch event at a client', f.np));
      console.log(row('  (the write\'s own round trip)', w.np));
      console.log(row(`MultiNetworkPolicy: in the secondary bridge (flow monitors)`, s.mnp));
      for (const n of NETWORKS) if (byNetwork.get(n)!.length) console.log(row(`  of which ${n} (${BRIDGE[n]}), ${byNetwork.get(n)!.length} changes`, stats(byNetwork.get(n)!)));
      console.log(row('  its floor: write -> watch event at a client', f.mnp));
      console.log(row('  (the write\'s own round trip)', w.mnp));
      console.log(`  ${''.padEnd(58)}     p50       p99       max`);
      console.log(ratioRow('MultiNetworkPolicy / NetworkPolicy', s.mnp, s.np));
      console.log(ratioRow('NetworkPolicy / its watch floor', s.np, f.np));
      console.log(ratioRow('MultiNetworkPolicy / its watch floor', s.mnp, f.mnp));
      console.log(ratioRow('(watch floors: MultiNetworkPolicy / NetworkPolicy)', f.mnp, f.np));
      console.log(`  (with ${s.np.n} samples p99 is the largest; resolution: the monitor line reaching this process, under 1 ms)`);

      // Flows per rule, every policy in place.
      await sleep(2000);
      console.log(`\nflows per rule (the bridge's policy-owned flows over the rules of the agent's last sync of it; "own": without the pipeline's flows (entry, conntrack, per-port destination, defaults; cookie object 0) and the isolation drops):`);
      console.log(`  ${'node'.padEnd(18)}${'bridge'.padEnd(14)}${'rules'.padStart(6)}${'isolations'.padStart(12)}${'flows'.padStart(7)}${'(agent)'.padStart(9)}${'pipeline'.padStart(10)}${'per rule'.padStart(10)}${'own per rule'.padStart(14)}`);
      const per = new Map<string, { rules: number; flows: number; own: number }>();
      for (let n = 0; n < NODES; n++) {
        const node = lab.nodes[n]!;
        for (const bridge of [PRIMARY_BRIDGE, ...bridgesOf.mnp]) {
          const dumped = await FlowWriter.forBridge(node.ovs, bridge).dumpFlows({ cookie: policyScope() });
          const sync = lastSync(lab, n, bridge);
          const pipeline = dumped.filter((x) => decodeCookie(x.cookie).object === 0n).length;
          const own = dumped.length - pipeline - sync.isolations;
          const acc = per.get(bridge) ?? { rules: 0, flows: 0, own: 0 };
          per.set(bridge, { rules: acc.rules + sync.rules, flows: acc.flows + dumped.length, own: acc.own + own });
          console.log(`  ${node.plan.name.padEnd(18)}${bridge.padEnd(14)}${String(sync.rules).padStart(6)}${String(sync.isolations).padStart(12)}${String(dumped.length).padStart(7)}${String(sync.flows).padStart(9)}${String(pipeline).padStart(10)}${(dumped.length / sync.rules).toFixed(2).padStart(10)}${(own / sync.rules).toFixed(2).padStart(14)}`);
        }
      }
      const all = per.get(PRIMARY_BRIDGE)!;
      console.log('  over the nodes:');
      for (const [bridge, x] of per) {
        const vs = bridge === PRIMARY_BRIDGE ? '' : `   ${(x.flows / x.rules / (all.flows / all.rules)).toFixed(2)}x / ${(x.own / x.rules / (all.own / all.rules)).toFixed(2)}x br-int's`;
        console.log(`  ${'all'.padEnd(18)}${bridge.padEnd(14)}${String(x.rules).padStart(6)}${''.padStart(12)}${String(x.flows).padStart(7)}${''.padStart(9)}${''.padStart(10)}${(x.flows / x.rules).toFixed(2).padStart(10)}${(x.own / x.rules).toFixed(2).padStart(14)}${vs}`);
      }
    } finally {
      watch.stop();
      monitors.stop();
    }
  });
}

await benchMain(`Seine MultiNetworkPolicy enforcement against NetworkPolicy: ${POLICIES} of each on ${NODES} nodes`, main);

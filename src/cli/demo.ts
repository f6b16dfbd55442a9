import { CoreV1Api, CustomObjectsApi, type V1Pod } from '@kubernetes/client-node';
import { join } from 'node:path';
import { CHAIN_GROUP, CHAIN_PLURAL, CHAIN_VERSION, type ServiceChain } from '../chaining/api/types.js';
import { loadKubeConfig } from '../k8s/kubeconfig.js';
import { CNP_GROUP, CNP_PLURAL, CNP_VERSION, type ClusterNetworkPolicy } from '../policy/api/clusternetworkpolicy.js';
import { REALIZED_CONDITION } from '../policy/controller/controller.js';
import { run } from '../host/exec.js';
import { netnsPath } from '../host/netns.js';
import { podNetnsName } from '../lab/kubelet.js';
import type { LabStatus } from '../lab/lab.js';
import { repoRoot } from '../util/paths.js';
import { DEFAULT_ENDPOINT_NAMESPACE } from '../policy/channel/discovery.js';
import type { PolicyRealizationList } from '../policy/controller/policy-api.js';
import { showMetrics, showSecondaryNetworks } from './demo-networks.js';
import type { DemoSteps } from './demo-steps.js';
import { getResources } from './get.js';
import { renderTable } from './table.js';
import { showTrace } from './demo-trace.js';

export interface DemoContext {
  status: LabStatus;
  say: (line: string) => void;
  /** Times each part of the demo. */
  steps: DemoSteps;
}

const NAMESPACE = 'seine-demo';

async function waitRunning(core: CoreV1Api, names: string[], timeoutMs = 60_000): Promise<V1Pod[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const pods = (await core.listNamespacedPod({ namespace: NAMESPACE })).items;
    const ready = names.map((n) => pods.find((p) => p.metadata?.name === n && p.status?.phase === 'Running' && p.status.podIP));
    if (ready.every((p) => p)) return ready as V1Pod[];
    if (Date.now() > deadline) throw new Error(`pods not Running after ${timeoutMs / 1000}s: ${names.filter((_, i) => !ready[i]).join(', ')}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/**
 * The lab demo: one iperf3 server pod per node, all-pairs ping between them, TCP throughput across nodes,
 * traffic from a pod to the external host, pods on a VLAN and an overlay network, a Service, the example network
 * policies taking effect, the example service chain carrying web traffic through three hops, and the metrics.
 * Prints what it sees; throws if any traffic fails.
 */
export async function runDemo({ status, say, steps }: DemoContext): Promise<void> {
  await steps.run('pod network', () => showPodNetwork(status, say));
  await steps.run('secondary networks', () => showSecondaryNetworks(status, say));
  await steps.run('Service', () => showService(status, say));
  await steps.run('network policy and traces', () => showNetworkPolicy(status, say));
  await steps.run('service chain', () => showServiceChain(status, say));
  await steps.run('metrics', () => showMetrics(status, say));
}

/** One iperf3 server pod per node: ping between every pair, TCP across nodes, a pod reaching the external host. */
async function showPodNetwork(status: LabStatus, say: (line: string) => void): Promise<void> {
  const kc = loadKubeConfig(status.kubeconfig);
  const core = kc.makeApiClient(CoreV1Api);
  await core.createNamespace({ body: { metadata: { name: NAMESPACE } } });
  const names = status.nodes.map((_, i) => `pod${i + 1}`);
  for (const [i, node] of status.nodes.entries()) {
    await core.createNamespacedPod({
      namespace: NAMESPACE,
      body: {
        metadata: { name: names[i], labels: { app: 'seine-demo' } },
        spec: { nodeName: node.name, containers: [{ name: 'iperf3', image: 'lab', command: ['iperf3', '-s'] }] },
      },
    });
  }
  say(`created ${names.length} pods (one per node, each running iperf3 -s)`);
  const pods = await waitRunning(core, names);
  say(renderTable(['pod', 'node', 'ip', 'phase'], pods.map((p) => [p.metadata!.name, p.spec!.nodeName, p.status!.podIP, p.status!.phase])));

  const inPod = podRunner(status);

  say('\nping between every pair of pods (3 packets each):');
  let failures = 0;
  // Every pair at once: the pings of one pair do not disturb another's.
  const rows = await Promise.all(
    pods.map(async (src) => [
      src.metadata!.name!,
      ...(await Promise.all(
        pods.map(async (dst) => {
          if (src === dst) return '-';
          try {
            const { stdout } = await inPod(src, ['ping', '-c', '3', '-i', '0.2', '-W', '2', dst.status!.podIP!]);
            return `ok ${/= [\d.]+\/([\d.]+)/.exec(stdout)?.[1] ?? '?'} ms`;
          } catch {
            failures++;
            return 'FAILED';
          }
        }),
      )),
    ]),
  );
  say(renderTable(['from \\ to', ...names], rows));

  if (pods.length > 1) {
    const [a, b] = pods as [V1Pod, V1Pod];
    const { stdout } = await inPod(a, ['iperf3', '-c', b.status!.podIP!, '-t', '2', '-J']);
    say(`\nTCP ${a.metadata!.name} (${a.spec!.nodeName}) -> ${b.metadata!.name} (${b.spec!.nodeName}): ${iperfGbps(stdout)} Gbit/s (iperf3, 2 s)`);
  }

  try {
    await inPod(pods[0]!, ['ping', '-c', '2', '-W', '2', status.externalIp]);
    say(`\n${pods[0]!.metadata!.name} reaches the external host ${status.externalIp}`);
  } catch {
    say(`\n${pods[0]!.metadata!.name} cannot reach the external host ${status.externalIp}`);
    failures++;
  }
  if (failures) throw new Error(`${failures} traffic checks failed`);
}

/** Runs a command in a lab pod's network namespace. */
const podRunner =
  (status: LabStatus) =>
  (p: V1Pod, argv: string[], timeoutMs = 30_000): Promise<{ stdout: string }> =>
    run(argv[0]!, argv.slice(1), { netns: netnsPath(podNetnsName(status.name, p.metadata!.uid!)), timeoutMs });

const SERVICE_NAME = 'iperf';
/** The lab's EndpointSlice controller and every agent follow a new Service: generous on a busy machine. */
const SERVICE_TIMEOUT_MS = 60_000;

/** iperf3's received rate in Gbit/s from its JSON; its own error when the test did not run (it may still exit 0). */
function iperfGbps(stdout: string): string {
  const r = JSON.parse(stdout) as { error?: string; end?: { sum_received?: { bits_per_second?: number } } };
  const bps = r.end?.sum_received?.bits_per_second;
  if (bps === undefined) throw new Error(`iperf3: ${r.error ?? 'no result'}`);
  return (bps / 1e9).toFixed(2);
}

/**
 * A NodePort Service over the iperf3 pods, served by Seine's proxy in OVS: its endpoints as the EndpointSlice
 * controller lists them, then iperf3 through the ClusterIP from a pod and through the node port from outside.
 */
async function showService(status: LabStatus, say: (line: string) => void): Promise<void> {
  const core = loadKubeConfig(status.kubeconfig).makeApiClient(CoreV1Api);
  const inPod = podRunner(status);
  const pods = (await core.listNamespacedPod({ namespace: NAMESPACE, labelSelector: 'app=seine-demo' })).items.sort((a, b) => a.metadata!.name!.localeCompare(b.metadata!.name!));
  const svc = await core.createNamespacedService({
    namespace: NAMESPACE,
    // iperf3 opens a control and a data connection, which must reach the same server: client affinity.
    body: { metadata: { name: SERVICE_NAME }, spec: { type: 'NodePort', sessionAffinity: 'ClientIP', selector: { app: 'seine-demo' }, ports: [{ name: 'iperf', port: 5201 }] } },
  });
  const clusterIp = svc.spec!.clusterIP!;
  const nodePort = svc.spec!.ports![0]!.nodePort!;
  say(`
Service ${NAMESPACE}/${SERVICE_NAME} (NodePort): ClusterIP ${clusterIp}:5201, node port ${nodePort}, load balanced by Seine in OVS with client affinity (no kube-proxy)`);
  const client = pods[0]!;
  const deadline = Date.now() + SERVICE_TIMEOUT_MS;
  // The first test is retried until the Service is realized on the client's node (iperf3 refused until then); an
  // attempt that hangs is cut short (a 1 s test takes about 2 s).
  for (;;) {
    try {
      const { stdout } = await inPod(client, ['iperf3', '-c', clusterIp, '-t', '1', '--connect-timeout', '2000', '-J'], 15_000);
      say(`TCP ${client.metadata!.name} -> ClusterIP ${clusterIp}: ${iperfGbps(stdout)} Gbit/s (iperf3, 1 s)`);
      break;
    } catch (e) {
      if (Date.now() > deadline) throw new Error(`the Service's ClusterIP did not answer within ${SERVICE_TIMEOUT_MS / 1000} s`, { cause: e });
      say(`  (no answer through the ClusterIP yet: ${e instanceof Error ? e.message.split('\n')[0] : String(e)}; trying again)`);
      await new Promise((r) => setTimeout(r, 500));
    }
  }
  const node = status.nodes[status.nodes.length - 1]!;
  const { stdout } = await run('iperf3', ['-c', node.ip, '-p', String(nodePort), '-t', '1', '-J'], { netns: netnsPath(status.externalNetns), timeoutMs: 30_000 });
  say(`TCP external host -> ${node.name} ${node.ip}:${nodePort}: ${iperfGbps(stdout)} Gbit/s (iperf3, 1 s)`);
}

const POLICY_EXAMPLE = 'manifests/examples/network-policy.yaml';
const POLICY_NAMESPACE = 'shop';
/** Pods start, the controller computes, each agent installs: generous on a busy machine. */
const POLICY_TIMEOUT_MS = 120_000;

/**
 * Applies the example policies (only the client may reach the web server; an Admin-tier ClusterNetworkPolicy cuts
 * off quarantined pods), shows who can connect, then quarantines the client by labelling it and shows the Admin
 * tier overriding the namespace's own policy.
 */
async function showNetworkPolicy(status: LabStatus, say: (line: string) => void): Promise<void> {
  const kc = loadKubeConfig(status.kubeconfig);
  const core = kc.makeApiClient(CoreV1Api);
  const custom = kc.makeApiClient(CustomObjectsApi);
  const kubectl = (args: string[]): Promise<unknown> => run('kubectl', ['--kubeconfig', status.kubeconfig, '--cache-dir', join(status.stateDir, 'kube-cache'), ...args], { timeoutMs: 60_000 });
  say(`\nnetwork policy: kubectl apply -f ${POLICY_EXAMPLE}`);
  say('  NetworkPolicy shop/web-from-clients: only pods labelled role=client may reach the web server, on its port named http (80);');
  say('  ClusterNetworkPolicy quarantine (tier Admin): no pod may talk to or from a pod labelled quarantine=true');
  await kubectl(['apply', '-f', join(repoRoot(), POLICY_EXAMPLE)]);
  const started = Date.now();
  const pods = async (): Promise<V1Pod[]> => (await core.listNamespacedPod({ namespace: POLICY_NAMESPACE })).items;
  let web: V1Pod | undefined;
  for (;;) {
    const list = await pods();
    web = list.find((p) => p.metadata?.name === 'web');
    if (list.length === 3 && list.every((p) => p.status?.phase === 'Running' && p.status.podIP)) break;
    if (Date.now() - started > POLICY_TIMEOUT_MS) throw new Error(`the ${POLICY_NAMESPACE} pods are not Running after ${POLICY_TIMEOUT_MS / 1000} s`);
    await new Promise((r) => setTimeout(r, 250));
  }
  const webIp = web!.status!.podIP!;
  const connects = async (from: string): Promise<boolean> => {
    const pod = (await pods()).find((p) => p.metadata?.name === from)!;
    try {
      await run('nc', ['-z', '-n', '-w', '2', webIp, '80'], { netns: netnsPath(podNetnsName(status.name, pod.metadata!.uid!)), timeoutMs: 10_000 });
      return true;
    } catch {
      return false;
    }
  };
  const expectations = async (want: Record<string, boolean>, what: string): Promise<void> => {
    const from = Date.now();
    for (;;) {
      const seen = Object.fromEntries(await Promise.all(Object.keys(want).map(async (p) => [p, await connects(p)] as const)));
      if (Object.entries(want).every(([p, ok]) => seen[p] === ok)) {
        say(`  ${what} (seen after ${((Date.now() - from) / 1000).toFixed(1)} s; a dropped attempt gives up after 2 s):`);
        say(renderTable(['from', 'to', 'TCP 80'], Object.entries(seen).map(([p, ok]) => [`${POLICY_NAMESPACE}/${p}`, `${POLICY_NAMESPACE}/web`, ok ? 'connects' : 'refused (dropped)'])));
        return;
      }
      if (Date.now() - from > POLICY_TIMEOUT_MS) throw new Error(`${what}: expected ${JSON.stringify(want)}, saw ${JSON.stringify(seen)} after ${POLICY_TIMEOUT_MS / 1000} s`);
      await new Promise((r) => setTimeout(r, 500));
    }
  };
  await expectations({ client: true, other: false }, 'the NetworkPolicy lets the client in and keeps the other pod out');
  await showTrace(kc, say, POLICY_NAMESPACE, 'other', 'web', 'the other pod\'s packet, dropped by the rule that isolates the web server');
  say('\n  kubectl label -n shop pod client quarantine=true');
  await kubectl(['label', '-n', POLICY_NAMESPACE, 'pod', 'client', 'quarantine=true']);
  await expectations({ client: false, other: false }, 'the Admin tier denies the quarantined client, whatever the NetworkPolicy allows');
  await showTrace(kc, say, POLICY_NAMESPACE, 'client', 'web', 'the quarantined client\'s packet, dropped by the Admin tier');
  const cnp = (await custom.getClusterCustomObject({ group: CNP_GROUP, version: CNP_VERSION, plural: CNP_PLURAL, name: 'quarantine' })) as ClusterNetworkPolicy;
  const realized = cnp.status?.conditions?.find((c) => c.type === REALIZED_CONDITION);
  say(`  ClusterNetworkPolicy quarantine: ${realized ? `${realized.type}=${realized.status} (${realized.message})` : 'no status yet'}`);
  // NetworkPolicies have no status: the controller tells where each is realized, through the seine CLI.
  const get = { namespace: POLICY_NAMESPACE, kubeconfig: status.kubeconfig, controllerNamespace: DEFAULT_ENDPOINT_NAMESPACE };
  const from = Date.now();
  for (;;) {
    const list = JSON.parse(await getResources('networkpolicies', undefined, { ...get, output: 'json' })) as PolicyRealizationList;
    if (list.items.length && list.items.every((i) => i.nodes.realized === i.nodes.desired)) break;
    if (Date.now() - from > POLICY_TIMEOUT_MS) throw new Error(`the ${POLICY_NAMESPACE} NetworkPolicies are not realized everywhere after ${POLICY_TIMEOUT_MS / 1000} s: ${JSON.stringify(list.items.map((i) => i.nodes))}`);
    await new Promise((r) => setTimeout(r, 500));
  }
  say(`\n  seine get networkpolicies -n ${POLICY_NAMESPACE} -o wide   (nodes with a pod each policy applies to, and those that installed it)`);
  say((await getResources('networkpolicies', undefined, { ...get, output: 'wide' })).trimEnd());
}

const CHAIN_EXAMPLE = 'manifests/examples/service-chain.yaml';
const CHAIN_NAME = 'web';
const CHAIN_NAMESPACE = 'default';
/** The CNF pods start, the agents probe each replica, the controller aggregates: generous on a busy machine. */
const CHAIN_READY_TIMEOUT_MS = 240_000;
/** Agents report every 5 s; the controller writes a chain's first traffic at once. */
const COUNTERS_TIMEOUT_MS = 60_000;

function chainSummary(c: ServiceChain | undefined): string {
  const ready = c?.status?.conditions?.find((x) => x.type === 'Ready');
  return ready ? `${ready.reason}, ${c?.status?.readyReplicas ?? '?'} replicas healthy` : 'no status yet';
}

/** Polls until the chain is Ready with every replica healthy, saying what changed on the way. */
async function waitChainHealthy(readChain: () => Promise<ServiceChain>, listPods: () => Promise<V1Pod[]>, say: (line: string) => void): Promise<ServiceChain> {
  const started = Date.now();
  let shown = '';
  for (;;) {
    const chain = await readChain().catch(() => undefined);
    const pods = await listPods();
    const line = `pods Running ${pods.filter((p) => p.status?.phase === 'Running').length}/${pods.length}; chain ${chainSummary(chain)}`;
    if (line !== shown) say(`  ${Math.round((Date.now() - started) / 1000)} s: ${line}`);
    shown = line;
    const replicas = chain?.status?.hops?.flatMap((h) => h.replicas ?? []) ?? [];
    const ready = chain?.status?.conditions?.some((x) => x.type === 'Ready' && x.status === 'True');
    if (chain && ready && replicas.length && replicas.every((r) => r.healthy)) return chain;
    if (Date.now() - started > CHAIN_READY_TIMEOUT_MS) throw new Error(`chain ${CHAIN_NAME} not Ready with every replica healthy after ${CHAIN_READY_TIMEOUT_MS / 1000} s: ${chainSummary(chain)}`);
    await new Promise((r) => setTimeout(r, 1000));
  }
}

/**
 * Applies the example chain (firewall, router and inspector CNFs, two replicas each, a client sending to port 80
 * of two web servers), waits until every replica is healthy, and shows the chain's path with its counters and
 * the DSCP mark the last hop set, as counted by the web servers.
 */
async function showServiceChain(status: LabStatus, say: (line: string) => void): Promise<void> {
  const kc = loadKubeConfig(status.kubeconfig);
  const core = kc.makeApiClient(CoreV1Api);
  const custom = kc.makeApiClient(CustomObjectsApi);
  const readChain = async (): Promise<ServiceChain> =>
    (await custom.getNamespacedCustomObject({ group: CHAIN_GROUP, version: CHAIN_VERSION, namespace: CHAIN_NAMESPACE, plural: CHAIN_PLURAL, name: CHAIN_NAME })) as ServiceChain;

  say(`\nservice chain: kubectl apply -f ${CHAIN_EXAMPLE}`);
  say('  web traffic (TCP 80) from the client to web-1/web-2 goes through firewall (Transparent), router (Routed) and inspector (one-armed Routed);');
  say('  each hop marks what it forwards with DSCP 8, 16, 24 and the next accepts only the previous mark');
  await run('kubectl', ['--kubeconfig', status.kubeconfig, '--cache-dir', join(status.stateDir, 'kube-cache'), 'apply', '-f', join(repoRoot(), CHAIN_EXAMPLE)], { timeoutMs: 60_000 });

  const started = Date.now();
  let chain = await waitChainHealthy(readChain, async () => (await core.listNamespacedPod({ namespace: CHAIN_NAMESPACE })).items, say);
  say(`  chain ${CHAIN_NAME} Ready after ${Math.round((Date.now() - started) / 1000)} s`);
  await showTrace(kc, say, CHAIN_NAMESPACE, 'client', 'web-1', 'one packet through the chain: each hop and the replica it was steered to');
  say('\n  the chain\'s counters, once the client\'s traffic shows in both directions (agents report every 5 s):');

  const countersFrom = Date.now();
  while (!chain.status?.packets?.forward || !chain.status.packets.reverse) {
    if (Date.now() - countersFrom > COUNTERS_TIMEOUT_MS) throw new Error(`chain ${CHAIN_NAME}: no chained packets counted within ${COUNTERS_TIMEOUT_MS / 1000} s of becoming Ready`);
    await new Promise((r) => setTimeout(r, 500));
    chain = await readChain();
  }

  const modes = new Map(chain.spec.hops.map((h) => [h.name, `${h.mode ?? 'Transparent'}${h.interfaces.ingress === h.interfaces.egress ? ', one-armed' : ''}`]));
  const rows: Array<Array<string | number | undefined>> = [];
  for (const [i, hop] of (chain.status?.hops ?? []).entries()) {
    for (const [j, r] of (hop.replicas ?? []).entries()) {
      rows.push([j ? '' : `${i + 1} ${hop.name}`, j ? '' : modes.get(hop.name), `${r.pod}@${r.node ?? '?'}`, r.healthy ? 'yes' : `no (${r.reason ?? '?'})`, r.packets?.forward ?? 0, r.packets?.reverse ?? 0]);
    }
  }
  rows.push(['chain', '', '', '', chain.status?.packets?.forward ?? 0, chain.status?.packets?.reverse ?? 0]);
  say(renderTable(['hop', 'mode', 'replica', 'healthy', 'fwd packets', 'rev packets'], rows));

  const webs = (await core.listNamespacedPod({ namespace: CHAIN_NAMESPACE, labelSelector: 'role=web' })).items;
  let marked = 0;
  const seen: string[] = [];
  for (const web of webs) {
    const { stdout } = await run('nft', ['list', 'table', 'ip', 'web'], { netns: netnsPath(podNetnsName(status.name, web.metadata!.uid!)), timeoutMs: 30_000 });
    const packets = Number(/counter packets (\d+)/.exec(stdout)?.[1] ?? 0);
    marked += packets;
    seen.push(`${web.metadata!.name}@${web.spec!.nodeName} ${packets}`);
  }
  say(`\npackets to port 80 that arrived with DSCP 24 (the inspector's mark, so they passed all three hops in order): ${seen.join(', ')}`);
  if (!marked) throw new Error('the web servers received no packet with the last hop\'s DSCP mark');
}

// The demo's secondary-network and metrics steps: two pods with a VLAN and an overlay network besides eth0, their
// network-status, traffic on each network, a trace on the VLAN network, `seine get networks`; then what an agent's
// Prometheus endpoint says.
import { CoreV1Api, type V1Pod } from '@kubernetes/client-node';
import { join } from 'node:path';
import { run } from '../host/exec.js';
import { netnsPath } from '../host/netns.js';
import { loadKubeConfig } from '../k8s/kubeconfig.js';
import { podNetnsName } from '../lab/kubelet.js';
import type { LabStatus } from '../lab/lab.js';
import { NETWORK_STATUS_ANNOTATION, NETWORKS_ANNOTATION, parseNetworkStatus } from '../secondary/annotations/index.js';
import { repoRoot } from '../util/paths.js';
import { DEFAULT_ENDPOINT_NAMESPACE } from '../policy/channel/discovery.js';
import { getResources } from './get.js';
import { showTrace } from './demo-trace.js';
import { renderTable } from './table.js';

const EXAMPLE = 'manifests/examples/secondary-networks.yaml';
const NAMESPACE = 'seine-demo';
const NETWORKS = ['default/vlan100', 'default/blue'];
/** Pods with two extra networks, on a busy machine. */
const TIMEOUT_MS = 90_000;

/** Two pods (on different nodes when there are two) on vlan100 and blue; throws if a network does not carry traffic. */
export async function showSecondaryNetworks(status: LabStatus, say: (line: string) => void): Promise<void> {
  const kc = loadKubeConfig(status.kubeconfig);
  const core = kc.makeApiClient(CoreV1Api);
  say(`\nsecondary networks: kubectl apply -f ${EXAMPLE}   (NetworkAttachmentDefinitions and their IPPools)`);
  await run('kubectl', ['--kubeconfig', status.kubeconfig, '--cache-dir', join(status.stateDir, 'kube-cache'), 'apply', '-f', join(repoRoot(), EXAMPLE)], { timeoutMs: 60_000 });
  const names = ['multi-a', 'multi-b'];
  for (const [i, name] of names.entries()) {
    const node = status.nodes[i % status.nodes.length]!.name;
    await core.createNamespacedPod({
      namespace: NAMESPACE,
      body: { metadata: { name, annotations: { [NETWORKS_ANNOTATION]: NETWORKS.join(', ') } }, spec: { nodeName: node, containers: [{ name: 'main', image: 'lab', command: ['sleep', 'infinity'] }] } },
    });
  }
  say(`  pods ${names.join(' and ')} with the annotation ${NETWORKS_ANNOTATION}: ${NETWORKS.join(', ')}`);
  const started = Date.now();
  let pods: V1Pod[];
  for (;;) {
    const list = (await core.listNamespacedPod({ namespace: NAMESPACE })).items.filter((p) => names.includes(p.metadata?.name ?? ''));
    if (list.length === names.length && list.every((p) => p.status?.phase === 'Running' && parseNetworkStatus(p.metadata?.annotations?.[NETWORK_STATUS_ANNOTATION]).length === 3)) {
      pods = names.map((n) => list.find((p) => p.metadata?.name === n)!);
      break;
    }
    if (Date.now() - started > TIMEOUT_MS) throw new Error(`pods ${names.join(', ')} not Running with their networks after ${TIMEOUT_MS / 1000} s`);
    await new Promise((r) => setTimeout(r, 250));
  }
  const statuses = pods.map((p) => parseNetworkStatus(p.metadata!.annotations![NETWORK_STATUS_ANNOTATION]));
  say(`  Running after ${((Date.now() - started) / 1000).toFixed(1)} s; their network-status annotation:`);
  say(
    renderTable(
      ['pod', 'node', 'network', 'interface', 'ips', 'mac'],
      pods.flatMap((p, i) => statuses[i]!.map((s) => [p.metadata!.name, p.spec!.nodeName, s.name, s.interface, (s.ips ?? []).join(','), s.mac])),
    ),
  );
  const [a, b] = pods as [V1Pod, V1Pod];
  const rows: string[][] = [];
  let failures = 0;
  for (const network of NETWORKS) {
    const target = statuses[1]!.find((s) => s.name === network);
    const ip = target?.ips?.[0];
    try {
      const { stdout } = await run('ping', ['-c', '3', '-i', '0.2', '-W', '2', ip ?? ''], { netns: netnsPath(podNetnsName(status.name, a.metadata!.uid!)), timeoutMs: 30_000 });
      rows.push([network, `${a.metadata!.name} -> ${b.metadata!.name} ${target?.interface} ${ip}`, `ok ${/= [\d.]+\/([\d.]+)/.exec(stdout)?.[1] ?? '?'} ms`]);
    } catch {
      rows.push([network, `${a.metadata!.name} -> ${b.metadata!.name} ${target?.interface} ${ip}`, 'FAILED']);
      failures++;
    }
  }
  say('  ping on each network (3 packets):');
  say(renderTable(['network', 'path', 'result'], rows));
  if (!failures) await showTrace(kc, say, NAMESPACE, a.metadata!.name!, b.metadata!.name!, "one packet on the VLAN network: the trunk bridges and uplink it crosses", NETWORKS[0]);
  say('\n  seine get networks -n default -o wide   (each network with its pods per node, from their network-status)');
  say((await getResources('networks', undefined, { namespace: 'default', output: 'wide', kubeconfig: status.kubeconfig, controllerNamespace: DEFAULT_ENDPOINT_NAMESPACE })).trimEnd());
  say('\n  seine get ippools');
  say((await getResources('ippools', undefined, { kubeconfig: status.kubeconfig, controllerNamespace: DEFAULT_ENDPOINT_NAMESPACE })).trimEnd());
  for (const name of names) await core.deleteNamespacedPod({ name, namespace: NAMESPACE, gracePeriodSeconds: 0 });
  if (failures) throw new Error(`${failures} secondary network checks failed`);
}

/** A few lines of the first agent's and the controller's Prometheus endpoints, reachable from the machine. */
export async function showMetrics(status: LabStatus, say: (line: string) => void): Promise<void> {
  const agent = status.nodes[0]?.agentMetrics;
  if (!agent || !status.controllerMetrics) return;
  const pick = async (url: string, names: RegExp): Promise<string[]> => {
    const text = await (await fetch(url)).text();
    return text.split('\n').filter((l) => names.test(l) && !l.startsWith('#'));
  };
  say(`\nmetrics (docs/metrics.md): ${status.nodes[0]!.name}'s agent at ${agent}, the controller at ${status.controllerMetrics}`);
  const lines = await pick(agent, /^seine_agent_(cni_requests_total|pod_interfaces|secondary_attachments|ovs_flows|service_endpoints)\b|^seine_policy_rule_packets_total.*action="Deny"/);
  for (const l of lines.slice(0, 16)) say(`  ${l}`);
  for (const l of await pick(status.controllerMetrics, /^seine_(controller_leader|ippool_allocated_addresses|chain_replica_healthy)\b/)) say(`  ${l}`);
}

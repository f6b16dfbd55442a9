// kill -9 of the agent while 20 pods (a third of them with a VLAN secondary network) are created and
// deleted on one lab node. The kubelet retries failed sandboxes with the same container id and namespace
// path, and its DELs during the outage find no agent. Within 30 s of the agent's return: every OVS port,
// node IPAM address and IPPool address of the node belongs to a pod that exists, and every Running pod has
// every interface its network-status lists, with the addresses listed. Then the churn completes (it may
// take longer: the kubelet's backoff reaches 20 s) and deleting every pod leaves the node empty.
import type { V1Pod } from '@kubernetes/client-node';
import { join } from 'node:path';
import { run } from '../../src/host/exec.js';
import type { Lab } from '../../src/lab/lab.js';
import type { LabNode } from '../../src/lab/node.js';
import { NETWORK_STATUS_ANNOTATION, NETWORKS_ANNOTATION, type NetworkStatus } from '../../src/secondary/annotations/index.js';
import { eventually, kubectl, podNetns, simplePod, startTestLab } from '../harness/lab.js';
import { agentLogLines, agentReadyAfter, nodeIpam, ovsPorts, poolHoldings } from '../primary/agent/node-probe.js';

const EXAMPLES = join(process.cwd(), 'manifests', 'examples', 'secondary-networks.yaml');
const NS = 'default';
/** The bound, measured from the agent's "agent ready". */
const CONVERGE_MS = 30_000;
/** Pod creation and deletion with the kubelet's backoff (up to 20 s between tries) on a busy 2-core machine. */
const CHURN_MS = 240_000;

const names = Array.from({ length: 20 }, (_, i) => `churn-${i}`);
const withVlan = (name: string): boolean => Number(name.split('-')[1]) % 3 === 0;

describe('agent kill -9 under pod churn (1 node, 20 pods)', () => {
  let lab: Lab;
  let node: LabNode;

  beforeAll(async () => {
    lab = await startTestLab({ nodes: 1 });
    node = lab.nodes[0]!;
    await kubectl(lab, ['apply', '-f', EXAMPLES]);
  }, 180_000);
  afterAll(async () => {
    await lab?.down();
  }, 120_000);

  const create = (name: string): Promise<V1Pod> =>
    lab.core.createNamespacedPod({ namespace: NS, body: simplePod(name, { node: node.plan.name, annotations: withVlan(name) ? { [NETWORKS_ANNOTATION]: 'vlan100' } : {} }) });
  const remove = (name: string): Promise<unknown> => lab.core.deleteNamespacedPod({ name, namespace: NS });
  const pods = async (): Promise<V1Pod[]> => (await lab.core.listNamespacedPod({ namespace: NS })).items;

  /** Interfaces in a pod's namespace with their IPv4 addresses and MAC. */
  async function interfaces(pod: V1Pod): Promise<Map<string, { ips: string[]; mac: string }>> {
    const { stdout } = await run('ip', ['-json', 'addr', 'show'], { netns: podNetns(lab, pod) });
    const links = JSON.parse(stdout || '[]') as Array<{ ifname: string; address: string; addr_info: Array<{ family: string; local: string }> }>;
    return new Map(links.map((l) => [l.ifname, { mac: l.address, ips: l.addr_info.filter((a) => a.family === 'inet').map((a) => a.local) }]));
  }

  /**
   * What is wrong on the node now; empty when consistent. Pods are listed before and after the node is read:
   * a pod in either list may own what was seen.
   */
  async function problems(): Promise<string[]> {
    const before = await pods();
    const ports = await ovsPorts(node);
    const ipam = nodeIpam(node);
    const pool = (await poolHoldings(lab)).filter((h) => h.owner.node === node.plan.name);
    const after = await pods();
    const exists = new Set([...before, ...after].map((p) => p.metadata!.uid!));
    const out: string[] = [];
    for (const p of ports) if (p.ids['container-id'] && !exists.has(p.ids['pod-uid'] ?? '')) out.push(`OVS port ${p.bridge}/${p.name} of vanished pod ${p.ids['pod-name']}`);
    for (const a of ipam) if (!exists.has(a.podUid ?? '')) out.push(`node IPAM ${a.ip} of vanished container ${a.containerId.slice(0, 12)}`);
    for (const h of pool) if (!exists.has(h.owner.podUID ?? '')) out.push(`IPPool ${h.pool} ${h.ip} of vanished pod ${h.owner.podName}`);
    for (const pod of after) {
      if (pod.status?.phase !== 'Running' || pod.metadata?.deletionTimestamp) continue;
      const name = pod.metadata!.name!;
      const status = JSON.parse(pod.metadata?.annotations?.[NETWORK_STATUS_ANNOTATION] ?? '[]') as NetworkStatus[];
      const wanted = withVlan(name) ? ['eth0', 'net1'] : ['eth0'];
      if (withVlan(name) && status.map((s) => s.interface).join() !== wanted.join()) out.push(`${name}: network-status lists ${JSON.stringify(status.map((s) => s.interface))}`);
      const have = await interfaces(pod).catch(() => new Map<string, { ips: string[]; mac: string }>());
      for (const s of status) {
        const itf = have.get(s.interface ?? '');
        if (!itf) out.push(`${name}: ${s.interface} listed in network-status, missing in the pod`);
        else if ((s.ips ?? []).some((ip) => !itf.ips.includes(ip))) out.push(`${name}: ${s.interface} has ${itf.ips.join(',')}, network-status lists ${(s.ips ?? []).join(',')}`);
      }
      if (!have.get('eth0')?.ips.includes(pod.status.podIP ?? '')) out.push(`${name}: eth0 lacks podIP ${pod.status.podIP}`);
    }
    return out;
  }

  async function consistentWithin(what: string, timeoutMs: number): Promise<void> {
    let last: string[] = [];
    await eventually(
      what,
      async () => {
        last = await problems();
        return last.length ? undefined : true;
      },
      timeoutMs,
      500,
    ).catch((e: unknown) => {
      throw new Error(`${String(e)}; still wrong: ${last.join('; ')}`);
    });
  }

  it('within 30 s of the agent\'s return everything on the node belongs to a live pod and Running pods have their interfaces', async () => {
    const first = names.slice(0, 10);
    const second = names.slice(10);
    const doomed = first.slice(0, 6);
    for (const n of first) await create(n);
    await eventually('the first 10 pods Running', async () => ((await pods()).filter((p) => p.status?.phase === 'Running').length === first.length ? true : undefined), CHURN_MS, 500);

    // The churn: 10 creations, the agent killed while the node works on them, 6 deletions 1.5 s later.
    const lines = agentLogLines(node).length;
    const agent = lab.agents.get(node.plan.name)!;
    const oldPid = agent.pid;
    const creations = Promise.all(second.map(create));
    await new Promise((r) => setTimeout(r, 800));
    agent.crash();
    // Deletions while the restarted agent starts up: their DELs find no agent yet.
    await new Promise((r) => setTimeout(r, 1500));
    await Promise.all([creations, ...doomed.map(remove)]);
    const back = await agentReadyAfter(node, lines);
    expect(agent.pid).not.toBe(oldPid);
    // The wait's own bound is what is left of the 30 s since the agent's return.
    await consistentWithin('a consistent node within 30 s of the agent\'s return', CONVERGE_MS - (Date.now() - back));

    // The churn completes: the survivors and the new pods run with every interface; the deleted are gone.
    const survivors = [...first.slice(6), ...second];
    await eventually(
      'every surviving pod Running and every deleted pod gone',
      async () => {
        const now = await pods();
        const running = now.filter((p) => p.status?.phase === 'Running').map((p) => p.metadata!.name!);
        return survivors.every((n) => running.includes(n)) && now.length === survivors.length ? true : undefined;
      },
      CHURN_MS,
      1000,
    );
    await consistentWithin('a consistent node once the churn is over', CONVERGE_MS);
    for (const pod of await pods()) expect([...(await interfaces(pod)).keys()].sort()).toEqual(withVlan(pod.metadata!.name!) ? ['eth0', 'lo', 'net1'] : ['eth0', 'lo']);

    // Deleting every pod leaves nothing of any of them.
    await Promise.all(survivors.map(remove));
    await eventually('every pod gone', async () => ((await pods()).length === 0 ? true : undefined), CHURN_MS, 1000);
    await eventually(
      'no pod port, node IPAM or IPPool address left on the node',
      async () => {
        const left = [
          ...(await ovsPorts(node)).filter((p) => p.ids['container-id']).map((p) => `port ${p.name}`),
          ...nodeIpam(node).map((a) => `ipam ${a.ip}`),
          ...(await poolHoldings(lab)).filter((h) => h.owner.node === node.plan.name).map((h) => `pool ${h.ip}`),
        ];
        return left.length ? undefined : true;
      },
      CONVERGE_MS,
    );
  }, 600_000);
});

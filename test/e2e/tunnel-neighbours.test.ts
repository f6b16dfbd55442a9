// No first packet lost between pods on different nodes. In the userspace datapath ovs-vswitchd resolves a
// tunnel's next hop on the first packet and drops that packet meanwhile; the agents seed OVS's tunnel neighbour
// table before pod traffic needs it, put it back after ovs-vswitchd restarts, and follow a peer's MAC change.
// Every ping here is a single packet with no retry (generous -W: a slow reply still counts, a lost one not).
import type { V1Pod } from '@kubernetes/client-node';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Lab } from '../../src/lab/lab.js';
import { parseTunnelNeighbours } from '../../src/primary/bridge/tunnel-neighbours.js';
import { eventually, podExec, simplePod, startTestLab, waitRunning } from '../harness/lab.js';

const NODES = 3;
const PER_NODE = 2;

async function neighbours(lab: Lab, node: number): Promise<Map<string, string>> {
  return parseTunnelNeighbours(await lab.nodes[node]!.ovs.appctl('ovs-vswitchd', ['tnl/neigh/show']), 'br-phy');
}

/** Waits until node `i`'s OVS holds a tunnel next hop for every other node (no pod traffic has run yet). */
async function seeded(lab: Lab, i: number, macOf: (ip: string) => string | undefined = () => undefined): Promise<void> {
  const peers = lab.plan.nodes.filter((_, j) => j !== i).map((n) => n.ip);
  await eventually(
    `node ${i + 1}'s tunnel neighbour table to hold ${peers.join(', ')}`,
    async (saw) => {
      const table = await neighbours(lab, i);
      saw([...table].map(([ip, mac]) => `${ip} ${mac}`));
      return peers.every((p) => table.has(p) && (macOf(p) === undefined || table.get(p) === macOf(p))) ? true : undefined;
    },
    60_000,
  );
}

/** One echo request, no retry: true when its reply came back. */
async function onePing(lab: Lab, from: V1Pod, to: string): Promise<boolean> {
  const out = await podExec(lab, from, ['ping', '-c', '1', '-W', '5', to]).catch((e: unknown) => String(e));
  return / 1 received/.test(out);
}

function agentLogLines(lab: Lab, node: number): string[] {
  return readFileSync(join(lab.nodes[node]!.dirs.logDir, 'seine-agent.log'), 'utf8').split('\n');
}

/** SYNs the pod's TCP stack sent again (its netns's TcpExt counters). */
async function synRetransmits(lab: Lab, pod: V1Pod): Promise<number> {
  const text = await podExec(lab, pod, ['cat', '/proc/net/netstat']);
  const [names, values] = text.split('\n').filter((l) => l.startsWith('TcpExt:'));
  const i = names!.split(/\s+/).indexOf('TCPSynRetrans');
  return Number(values!.split(/\s+/)[i]);
}

describe('tunnel next hops are resolved before pod traffic needs them', () => {
  let lab: Lab;
  let pods: V1Pod[];
  const nodeOf = (p: V1Pod): number => lab.plan.nodes.findIndex((n) => n.name === p.spec!.nodeName);
  const remotePairs = (): Array<[V1Pod, V1Pod]> => pods.flatMap((a) => pods.filter((b) => nodeOf(b) !== nodeOf(a)).map((b) => [a, b] as [V1Pod, V1Pod]));
  const failedPings = async (pairs: Array<[V1Pod, V1Pod]>): Promise<string[]> => {
    const failed: string[] = [];
    await Promise.all(
      pairs.map(async ([a, b]) => {
        if (!(await onePing(lab, a, b.status!.podIP!))) failed.push(`${a.metadata!.name} -> ${b.metadata!.name}`);
      }),
    );
    return failed.sort();
  };

  beforeAll(async () => {
    lab = await startTestLab({ nodes: NODES });
    const names: string[] = [];
    for (const n of lab.plan.nodes) {
      for (let i = 1; i <= PER_NODE; i++) {
        const name = `${n.name.split('-').pop()}-p${i}`;
        names.push(name);
        await lab.core.createNamespacedPod({ namespace: 'default', body: simplePod(name, { node: n.name, command: ['iperf3', '-s'] }) });
      }
    }
    pods = await Promise.all(names.map((n) => waitRunning(lab, n)));
  }, 240_000);
  afterAll(async () => {
    await lab?.down();
  }, 120_000);

  it('the first TCP connection between two nodes needs no SYN retransmission', async () => {
    // Before any pod traffic between nodes: the agents seeded every next hop by themselves.
    for (let i = 0; i < NODES; i++) await seeded(lab, i);
    const client = pods.find((p) => nodeOf(p) === 0)!;
    const server = pods.find((p) => nodeOf(p) === 1)!;
    const before = await synRetransmits(lab, client);
    await podExec(lab, client, ['nc', '-z', '-w', '10', server.status!.podIP!, '5201']);
    expect((await synRetransmits(lab, client)) - before).toBe(0);
  }, 120_000);

  it('the very first single ping from each pod to each pod on another node is answered', async () => {
    expect(await failedPings(remotePairs())).toEqual([]);
  }, 120_000);

  it('after an ovs-vswitchd restart the table is seeded again; first pings are answered', async () => {
    const lines = agentLogLines(lab, 0).length;
    await lab.nodes[0]!.ovs.restartVswitchd({ flowRestoreWait: true });
    await eventually('node 1 agent restored the datapath', async () => (agentLogLines(lab, 0).slice(lines).some((l) => l.includes('"datapath restored"')) ? true : undefined), 60_000);
    await seeded(lab, 0);
    // The other nodes still know node 1; its pods' first packets out must not wait on ARP either.
    expect(await failedPings(remotePairs().filter(([a]) => nodeOf(a) === 0))).toEqual([]);
  }, 180_000);

  it("a peer's new MAC is learnt without pod traffic: the first ping after the change is answered", async () => {
    const node2 = lab.nodes[1]!;
    const newMac = '02:5e:1e:00:00:02';
    await node2.ovs.vsctl(['set', 'bridge', 'br-phy', `other_config:hwaddr=${newMac}`]);
    // Node 2's agent announces its new MAC; nodes 1 and 3 take it.
    const macOf = (ip: string): string | undefined => (ip === node2.plan.ip ? newMac : undefined);
    await seeded(lab, 0, macOf);
    await seeded(lab, 2, macOf);
    expect(await failedPings(remotePairs().filter(([a, b]) => nodeOf(a) !== 1 && nodeOf(b) === 1))).toEqual([]);
  }, 180_000);
});

// The agent reconciles what exists, on a one-node lab with its real agent and Open vSwitch:
//  - a DEL lost while the agent was down: once the sandbox's network namespace is gone, or replaced by
//    another one at the same path, its port, flows and address go within seconds, without any CNI call;
//    a container whose namespace still exists (here one that is not a Kubernetes pod) keeps everything;
//  - a pod deleted 1.5 s after a kill -9 of the agent leaves nothing, within 30 s of the agent's return;
//  - CNI GC touches only the attachments of the network it names.
import type { V1Pod } from '@kubernetes/client-node';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { run } from '../../../src/host/exec.js';
import { createNetns, deleteNetns, netnsPath } from '../../../src/host/netns.js';
import type { Lab } from '../../../src/lab/lab.js';
import type { LabNode } from '../../../src/lab/node.js';
import { NETWORKS_ANNOTATION } from '../../../src/secondary/annotations/index.js';
import { eventually, kubectl, podNetns, simplePod, startTestLab, waitRunning } from '../../harness/lab.js';
import {
  agentLogLines,
  agentReadyAfter,
  cniCall,
  labSandboxId,
  linksIn,
  nodeIpam,
  ovsPorts,
  pluginConf,
  podArgs,
  podFlowCounts,
  poolHoldings,
  seineCni,
  type CniTarget,
} from './node-probe.js';

const EXAMPLES = join(process.cwd(), 'manifests', 'examples', 'secondary-networks.yaml');
/** Generous: the reconciler looks every 3 s; a busy 2-core machine may be slow to run its spawns. */
const RELEASE_WAIT_MS = 30_000;

interface Sandbox extends CniTarget {
  netnsName: string;
}

/** What the node holds for one container: its OVS ports (any bridge), node IPAM entries, pod flows. */
interface Held {
  ports: string[];
  ips: string[];
  flows: number;
}

describe('agent: attachments of vanished sandboxes are released; GC keeps to its network', () => {
  let lab: Lab;
  let node: LabNode;
  let made = 0;

  beforeAll(async () => {
    lab = await startTestLab({ nodes: 1 });
    node = lab.nodes[0]!;
    await kubectl(lab, ['apply', '-f', EXAMPLES]);
    await eventually('the agent answers STATUS', async () => ((await seineCni(node, { CNI_COMMAND: 'STATUS' }, pluginConf(node, { cniVersion: '1.1.0' }))).exitCode === 0 ? true : undefined), 90_000);
  }, 180_000);
  afterAll(async () => {
    await lab?.down();
  }, 120_000);

  /** A container stand-in with its own namespace (in the lab's ledger: lab.down removes it). */
  async function newSandbox(pod: boolean): Promise<Sandbox> {
    const n = ++made;
    const netnsName = `${lab.plan.name}-r${n}`;
    lab.ledger.netns(netnsName);
    await createNetns(netnsName);
    const containerId = randomBytes(16).toString('hex');
    // A pod that does not exist in the API: nothing claims the attachment once its namespace goes.
    const args = pod ? podArgs('default', `ghost-${n}`, `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`, containerId) : 'IgnoreUnknown=1';
    return { containerId, netns: netnsPath(netnsName), netnsName, args };
  }

  async function removeSandbox(sb: Sandbox): Promise<void> {
    await deleteNetns(sb.netnsName);
    lab.ledger.forgetNetns(sb.netnsName);
  }

  async function attach(sb: Sandbox): Promise<{ port: string; ip: string }> {
    const out = await cniCall(node, 'ADD', sb);
    expect({ exitCode: out.exitCode, error: out.json?.msg as unknown }).toEqual({ exitCode: 0, error: undefined });
    return { port: out.json.interfaces[0].name as string, ip: (out.json.ips[0].address as string).split('/')[0]! };
  }

  async function held(containerId: string): Promise<Held> {
    const ports = (await ovsPorts(node)).filter((p) => p.ids['container-id'] === containerId);
    const flows = await podFlowCounts(node);
    let n = 0;
    for (const p of ports.filter((x) => x.bridge === 'br-int')) n += flows.get(Number((await node.ovs.vsctl(['get', 'Interface', p.name, 'ofport'])).trim())) ?? 0;
    return { ports: ports.map((p) => `${p.bridge}/${p.name}`).sort(), ips: nodeIpam(node).filter((a) => a.containerId === containerId).map((a) => a.ip), flows: n };
  }

  const nothing: Held = { ports: [], ips: [], flows: 0 };

  async function expectReleased(sb: Sandbox, what: string): Promise<void> {
    let last: Held | undefined;
    await eventually(
      `${what}: the port, flows and address of ${sb.containerId.slice(0, 12)} released`,
      async () => {
        last = await held(sb.containerId);
        return last.ports.length + last.ips.length + last.flows === 0 ? true : undefined;
      },
      RELEASE_WAIT_MS,
    ).catch((e: unknown) => {
      throw new Error(`${String(e)}; still held: ${JSON.stringify(last)}`);
    });
  }

  it('a DEL lost while the agent was down: released once the namespace is gone or replaced; a live namespace keeps its attachment', async () => {
    const gone = await newSandbox(true);
    const replaced = await newSandbox(true);
    const noPod = await newSandbox(false);
    await attach(gone);
    await attach(replaced);
    const kept = await attach(noPod);
    const keptBefore = await held(noPod.containerId);
    expect(keptBefore).toEqual({ ports: [`br-int/${kept.port}`], ips: [kept.ip], flows: expect.any(Number) as number });
    expect(keptBefore.flows).toBeGreaterThan(0);

    // The outage: both DELs find no agent, which the plugin reports as done (kubelet must not hang).
    const agent = lab.agents.get(node.plan.name)!;
    await agent.stop();
    try {
      for (const sb of [gone, replaced]) expect((await cniCall(node, 'DEL', sb)).exitCode).toBe(0);
    } finally {
      const lines = agentLogLines(node).length;
      agent.start();
      await agentReadyAfter(node, lines);
    }
    // The namespaces still exist: the restarted agent keeps their attachments.
    expect(await held(gone.containerId)).not.toEqual(nothing);
    // The runtime removes the namespaces only now, after the agent's start-up: nothing at start sees it.
    // One path is re-used at once for another namespace (same path, another inode). The other namespace is made
    // while the old one lives: the kernel gives a namespace made after the old one's end that one's inode again.
    await removeSandbox(gone);
    const other = `${replaced.netnsName}n`;
    await createNetns(other);
    try {
      await deleteNetns(replaced.netnsName);
      const path = netnsPath(replaced.netnsName);
      await run('sh', ['-ec', 'touch "$1" && mount --bind "$2" "$1"', 'sh', path, netnsPath(other)]);
    } finally {
      await deleteNetns(other);
    }

    await expectReleased(gone, 'namespace deleted');
    await expectReleased(replaced, 'namespace replaced');
    // The container without a pod, whose namespace exists, was looked at by the same passes and kept.
    expect(await held(noPod.containerId)).toEqual(keptBefore);
    expect((await linksIn(noPod.netns)).map((l) => l.ifname).sort()).toEqual(['eth0', 'lo']);

    expect((await cniCall(node, 'DEL', noPod)).exitCode).toBe(0);
    expect(await held(noPod.containerId)).toEqual(nothing);
    await removeSandbox(noPod);
    await removeSandbox(replaced);
  }, 240_000);

  it('a pod deleted 1.5 s after kill -9 of the agent leaves nothing within 30 s of its return', async () => {
    await lab.core.createNamespacedPod({ namespace: 'default', body: simplePod('killdel', { node: node.plan.name, annotations: { [NETWORKS_ANNOTATION]: 'vlan100' } }) });
    const pod = await waitRunning(lab, 'killdel', 'default', 90_000);
    const containerId = labSandboxId(pod.metadata!.uid!);
    expect((await held(containerId)).ports).toHaveLength(2);
    expect((await poolHoldings(lab)).filter((h) => h.owner.podUID === pod.metadata!.uid)).toHaveLength(1);

    const lines = agentLogLines(node).length;
    lab.agents.get(node.plan.name)!.crash();
    await new Promise((r) => setTimeout(r, 1500));
    await lab.core.deleteNamespacedPod({ name: 'killdel', namespace: 'default' });
    await eventually('pod killdel gone from the API', async () => ((await lab.core.listNamespacedPod({ namespace: 'default' })).items.some((p) => p.metadata?.uid === pod.metadata!.uid) ? undefined : true), 90_000);
    await agentReadyAfter(node, lines);
    let last: unknown;
    await eventually(
      'nothing of pod killdel left on the node (ports, node IPAM, IPPool)',
      async () => {
        const h = await held(containerId);
        const pool = (await poolHoldings(lab)).filter((x) => x.owner.podUID === pod.metadata!.uid);
        last = { ...h, pool };
        return h.ports.length + h.ips.length + h.flows + pool.length === 0 ? true : undefined;
      },
      RELEASE_WAIT_MS,
    ).catch((e: unknown) => {
      throw new Error(`${String(e)}; left: ${JSON.stringify(last)}`);
    });
  }, 240_000);

  it('CNI GC removes only attachments of the network it names', async () => {
    await lab.core.createNamespacedPod({ namespace: 'default', body: simplePod('gckeep', { node: node.plan.name, annotations: { [NETWORKS_ANNOTATION]: 'vlan100' } }) });
    const pod: V1Pod = await waitRunning(lab, 'gckeep', 'default', 90_000);
    const podSandbox = labSandboxId(pod.metadata!.uid!);
    const stray = await newSandbox(true);
    await attach(stray);
    const podHeld = await held(podSandbox);
    const strayHeld = await held(stray.containerId);
    const podPool = (await poolHoldings(lab)).filter((h) => h.owner.podUID === pod.metadata!.uid);
    expect(podHeld.ports).toHaveLength(2);
    expect(podPool).toHaveLength(1);
    const gc = (network: string, valid: Array<{ containerID: string; ifname: string }>) =>
      seineCni(node, { CNI_COMMAND: 'GC' }, pluginConf(node, { cniVersion: '1.1.0', name: network, 'cni.dev/valid-attachments': valid }));

    // Another network's GC, listing nothing as valid: nothing of this network is its to remove.
    const other = await gc('some-other-network', []);
    expect({ exitCode: other.exitCode, out: other.stdout }).toEqual({ exitCode: 0, out: '' });
    expect(await held(podSandbox)).toEqual(podHeld);
    expect(await held(stray.containerId)).toEqual(strayHeld);
    expect((await poolHoldings(lab)).filter((h) => h.owner.podUID === pod.metadata!.uid)).toEqual(podPool);
    expect((await linksIn(podNetns(lab, pod))).map((l) => l.ifname).sort()).toEqual(['eth0', 'lo', 'net1']);

    // This network's GC: the pod is valid and keeps everything (its secondary interface too); the stray goes.
    const own = await gc(JSON.parse(pluginConf(node)).name as string, [{ containerID: podSandbox, ifname: 'eth0' }]);
    expect(own.exitCode).toBe(0);
    expect(await held(podSandbox)).toEqual(podHeld);
    expect(await held(stray.containerId)).toEqual(nothing);
    expect((await poolHoldings(lab)).filter((h) => h.owner.podUID === pod.metadata!.uid)).toEqual(podPool);
    expect((await linksIn(podNetns(lab, pod))).map((l) => l.ifname).sort()).toEqual(['eth0', 'lo', 'net1']);
    await removeSandbox(stray);
    await lab.core.deleteNamespacedPod({ name: 'gckeep', namespace: 'default' });
  }, 180_000);
});

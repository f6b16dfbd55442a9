import type { V1Pod } from '@kubernetes/client-node';
import { run } from '../../src/host/exec.js';
import type { Lab } from '../../src/lab/lab.js';
import { startCapture } from '../harness/capture.js';
import { podExec, simplePod, startTestLab, waitRunning } from '../harness/lab.js';

/** Ping succeeds with no duplicates (a duplicate means a packet bypassed or looped around the switch). */
async function expectPing(run: (argv: string[]) => Promise<string>, ip: string): Promise<void> {
  // The first packet to a new tunnel peer may be lost while OVS resolves its ARP entry.
  const out = await run(['ping', '-c', '3', '-i', '0.2', '-W', '2', ip]);
  expect(out).toMatch(/ [123] received/);
  expect(out).not.toMatch(/DUP!/);
}

async function podsOnEveryNode(lab: Lab, perNode: number, command: string[] = ['iperf3', '-s']): Promise<V1Pod[]> {
  const names: string[] = [];
  for (const n of lab.plan.nodes) {
    for (let i = 1; i <= perNode; i++) {
      const name = `${n.name.split('-').pop()}-p${i}`;
      names.push(name);
      await lab.core.createNamespacedPod({ namespace: 'default', body: simplePod(name, { node: n.name, command }) });
    }
  }
  return Promise.all(names.map((n) => waitRunning(lab, n, 'default', 60_000)));
}

describe.each([
  { encap: 'vxlan' as const, nodes: 3, perNode: 3 },
  { encap: 'geneve' as const, nodes: 2, perNode: 2 },
  { encap: 'noEncap' as const, nodes: 2, perNode: 2 },
])('primary network, $encap, $nodes nodes x $perNode pods', ({ encap, nodes, perNode }) => {
  let lab: Lab;
  let pods: V1Pod[];
  beforeAll(async () => {
    lab = await startTestLab({ nodes, encap });
    pods = await podsOnEveryNode(lab, perNode);
  }, 180_000);
  afterAll(async () => {
    await lab?.down();
  }, 120_000);

  it('gives every pod an address from its node pod CIDR', async () => {
    const nodes = (await lab.core.listNode()).items;
    for (const p of pods) {
      const cidr = nodes.find((n) => n.metadata!.name === p.spec!.nodeName)!.spec!.podCIDR!;
      expect(p.status!.podIP!.startsWith(cidr.split('.').slice(0, 3).join('.') + '.')).toBe(true);
    }
    expect(new Set(pods.map((p) => p.status!.podIP)).size).toBe(pods.length);
  });

  it('all pairs of pods reach each other', async () => {
    await Promise.all(
      pods.map(async (src) => {
        for (const dst of pods) if (dst !== src) await expectPing((argv) => podExec(lab, src, argv), dst.status!.podIP!);
      }),
    );
  }, 180_000);

  it('carries TCP across nodes (iperf3)', async () => {
    const a = pods[0]!;
    const b = pods.find((p) => p.spec!.nodeName !== a.spec!.nodeName)!;
    const out = JSON.parse(await podExec(lab, a, ['iperf3', '-c', b.status!.podIP!, '-t', '2', '-J'], 30_000));
    expect(out.end.sum_received.bits_per_second).toBeGreaterThan(10e6);
  });

  it('node to pod and pod to node', async () => {
    const [n1] = lab.nodes;
    const remote = pods.find((p) => p.spec!.nodeName !== n1!.plan.name)!;
    const local = pods.find((p) => p.spec!.nodeName === n1!.plan.name)!;
    const inNode = (argv: string[]): Promise<string> => run(argv[0]!, argv.slice(1), { netns: n1!.netns, timeoutMs: 20_000 }).then((r) => r.stdout);
    await expectPing(inNode, local.status!.podIP!);
    await expectPing(inNode, remote.status!.podIP!);
    await expectPing((argv) => podExec(lab, local, argv), n1!.plan.ip);
    await expectPing((argv) => podExec(lab, remote, argv), n1!.plan.ip);
  });

  it('pod to the external host, which sees the node IP as source', async () => {
    const pod = pods[pods.length - 1]!;
    const nodeIp = lab.plan.nodes.find((n) => n.name === pod.spec!.nodeName)!.ip;
    const capture = startCapture(lab.externalNetns, ['-c', '1', '-i', 'eth0', 'icmp and icmp[icmptype] == icmp-echo']);
    await capture.ready;
    await expectPing((argv) => podExec(lab, pod, argv), lab.plan.externalIp);
    const stdout = await capture.done;
    expect(stdout).toContain(`${nodeIp} > ${lab.plan.externalIp}`);
    expect(stdout).not.toContain(pod.status!.podIP!);
  });

  it('a pod cannot spoof another IP or MAC', async () => {
    const [a, b] = pods as [V1Pod, V1Pod];
    const spoofIp = b.status!.podIP!.replace(/\d+$/, '250');
    // A second address on eth0: packets sourced from it are dropped by the spoof guard.
    await podExec(lab, a, ['ip', 'addr', 'add', `${spoofIp}/32`, 'dev', 'eth0']);
    await expect(podExec(lab, a, ['ping', '-c', '2', '-W', '1', '-I', spoofIp, b.status!.podIP!])).rejects.toThrow();
    await podExec(lab, a, ['ip', 'addr', 'del', `${spoofIp}/32`, 'dev', 'eth0']);
    // The spoofed attempts left the neighbour entries unresolved; start clean.
    await podExec(lab, a, ['ip', 'neigh', 'flush', 'dev', 'eth0']);
    await expectPing((argv) => podExec(lab, a, argv), b.status!.podIP!);
    // A different MAC: dropped too; the real one works again.
    // (sysfs under nsenter --net is the root namespace's: ask iproute2.)
    const mac = (JSON.parse(await podExec(lab, a, ['ip', '-json', 'link', 'show', 'eth0'])) as Array<{ address: string }>)[0]!.address;
    try {
      await podExec(lab, a, ['ip', 'link', 'set', 'eth0', 'address', '02:de:ad:be:ef:01']);
      await expect(podExec(lab, a, ['ping', '-c', '2', '-W', '1', b.status!.podIP!])).rejects.toThrow();
    } finally {
      await podExec(lab, a, ['ip', 'link', 'set', 'eth0', 'address', mac]);
      await podExec(lab, a, ['ip', 'neigh', 'flush', 'dev', 'eth0']);
    }
    await expectPing((argv) => podExec(lab, a, argv), b.status!.podIP!);
  });
});

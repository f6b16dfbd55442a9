import { run } from '../../../src/host/exec.js';
import { IpBatch } from '../../../src/host/ip.js';
import { CookieOwner } from '../../../src/ovs/openflow/index.js';
import { pipelineSync, podSync, Priority, Table } from '../../../src/primary/pipeline/index.js';
import { ping, replyTtl, startNode, state, tcpTransfer, type TestNode } from './harness.js';

/** One node: three pods, the gateway and the whole pipeline on a real userspace bridge. */
describe('primary pipeline on one node', () => {
  let n: TestNode;
  let pod1: TestNode['pods'][number];
  let pod2: TestNode['pods'][number];
  let pod3: TestNode['pods'][number];

  /** Packets the SpoofGuard table-miss flow dropped so far. */
  const spoofDrops = async (): Promise<bigint> => {
    const [miss] = await n.w.dumpFlows({ table: Table.SpoofGuard, match: {} }, { fresh: true }).then((fs) => fs.filter((f) => f.priority === Priority.miss));
    return miss!.nPackets;
  };

  beforeAll(async () => {
    n = await startNode({ nodeIp: '192.168.77.1', podCidr: '10.244.1.0/24', mode: 'encap', podCount: 3 });
    [pod1, pod2, pod3] = n.pods as [typeof pod1, typeof pod2, typeof pod3];
  });
  afterAll(async () => {
    await n?.sb.close();
  });

  it('installs the whole pipeline in one sync, and a second sync of the same state changes nothing', async () => {
    const first = await n.w.sync(pipelineSync(state(n)));
    expect(first.added).toBe(pipelineSync(state(n)).flows.length);
    expect(first.deleted + first.modified).toBe(0);
    const again = await n.w.sync(pipelineSync(state(n)));
    expect(again.changes).toEqual([]);
  });

  it('carries ping and TCP between pods, with ARP answered by OVS', async () => {
    expect(await ping(pod1.netns, pod2.addr)).toBe(true);
    expect(await ping(pod2.netns, pod3.addr)).toBe(true);
    expect(await ping(pod3.netns, pod1.addr)).toBe(true);
    // Switched, not routed.
    expect(await replyTtl(pod1.netns, pod2.addr)).toBe(64);
    const t = await tcpTransfer(pod1.netns, pod2.netns, pod2.addr, 5001);
    expect(t.received).toBe(t.sent);
    // pod1 learnt pod2's real MAC from the ARP responder.
    const { stdout } = await run('ip', ['-json', 'neigh', 'show', pod2.addr], { netns: pod1.netns });
    expect((JSON.parse(stdout) as { lladdr?: string }[])[0]?.lladdr).toBe(pod2.mac);
  });

  it('lets pods reach the gateway and the node reach pods (kubelet probes)', async () => {
    expect(await ping(pod1.netns, n.node.gatewayIp)).toBe(true);
    for (const p of n.pods) expect(await ping(n.sb.netns, p.addr)).toBe(true);
    const t = await tcpTransfer(n.sb.netns, pod3.netns, pod3.addr, 5002);
    expect(t.received).toBe(t.sent);
  });

  it('gets no answer for an address nobody has', async () => {
    expect(await ping(pod1.netns, '10.244.1.77', { count: 2 })).toBe(false);
  });

  it('drops what a pod sends from an IP that is not its own', async () => {
    expect(await ping(pod1.netns, pod2.addr)).toBe(true);
    await pod1.ip.apply(new IpBatch().addAddr('eth0', '10.244.1.99/24'));
    try {
      const before = await spoofDrops();
      expect(await ping(pod1.netns, pod2.addr, { from: '10.244.1.99', count: 2 })).toBe(false);
      expect(await spoofDrops()).toBeGreaterThan(before);
      expect(await ping(pod1.netns, pod2.addr, { from: pod1.addr })).toBe(true);
    } finally {
      await pod1.ip.apply(new IpBatch().command('addr', 'del', '10.244.1.99/24', 'dev', 'eth0'));
    }
  });

  it('drops what a pod sends from a MAC that is not its own', async () => {
    await pod1.ip.apply(new IpBatch().setLink('eth0', { mac: '02:00:00:00:99:99' }));
    try {
      const before = await spoofDrops();
      expect(await ping(pod1.netns, pod2.addr, { count: 2 })).toBe(false);
      expect(await spoofDrops()).toBeGreaterThan(before);
    } finally {
      await pod1.ip.apply(new IpBatch().setLink('eth0', { mac: pod1.mac }));
    }
    expect(await ping(pod1.netns, pod2.addr)).toBe(true);
  });

  it('cuts off a pod whose flows a sync removes, and only that pod', async () => {
    const res = await n.w.sync(pipelineSync(state(n, [pod1, pod2])));
    expect(res.deleted).toBe(podSync(n.node, pod3.local).flows.length);
    expect(res.added + res.modified).toBe(0);
    expect(await ping(pod3.netns, pod1.addr, { count: 2 })).toBe(false);
    expect(await ping(n.sb.netns, pod3.addr, { count: 2 })).toBe(false);
    expect(await ping(pod1.netns, pod2.addr)).toBe(true);
    expect(await ping(n.sb.netns, pod1.addr)).toBe(true);

    // The pod's own sync brings it back.
    const back = await n.w.sync(podSync(n.node, pod3.local));
    expect(back.added).toBe(podSync(n.node, pod3.local).flows.length);
    expect(await ping(pod3.netns, pod1.addr)).toBe(true);
    expect((await n.w.sync(pipelineSync(state(n)))).changes).toEqual([]);
  });

  it('moves every flow to a new round in place when the agent restarts', async () => {
    const total = pipelineSync(state(n)).flows.length;
    n.node = { ...n.node, round: n.node.round + 1 };
    const res = await n.w.sync(pipelineSync(state(n)));
    expect([res.added, res.modified, res.deleted]).toEqual([0, total, 0]);
    expect(await n.w.deleteOlderRounds(CookieOwner.primary, n.node.round)).toBe(0);
    expect(await ping(pod1.netns, pod3.addr)).toBe(true);
  });
});

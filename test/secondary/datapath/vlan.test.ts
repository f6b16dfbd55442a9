import { IpBatch } from '../../../src/host/ip.js';
import type { NetworkRealization } from '../../../src/secondary/datapath/index.js';
import { attachPod, captureBoth, link, neighbourMac, ping, reaches, startNode, stopNode, tcpTransfer, type TestNode, type TestPod } from './harness.js';

const TRUNK = 'trunk0';
const net = (vlan: number): NetworkRealization => ({ networkType: 'vlan', bridge: 'br-vlan', uplink: TRUNK, vlan });

/**
 * Two nodes whose second NICs (trunk0) are joined directly by a veth pair: the VLAN fabric. Each node also
 * has a primary address on eth0 (a second veth pair between them). Pods on VLANs 100 and 200 on both
 * nodes, all in ONE subnet, so only the VLAN keeps them apart.
 */
describe('secondary datapath: VLAN networks across two nodes', () => {
  let a: TestNode;
  let b: TestNode;
  const pods: Record<string, TestPod> = {};

  beforeAll(async () => {
    a = await startNode('192.168.50.1');
    b = await startNode('192.168.50.2');
    await link(a.sb.ip, TRUNK, b.sb.ip, TRUNK, b.sb.netns);
    await link(a.sb.ip, 'eth0', b.sb.ip, 'eth0', b.sb.netns);
    for (const n of [a, b]) await n.sb.ip.apply(new IpBatch().addAddr('eth0', `${n.nodeIp}/24`));
    for (const n of [a, b]) for (const v of [100, 200]) await n.dp.ensureNetwork(net(v));
    pods.a100 = await attachPod(a, net(100), '10.50.0.1/24');
    pods.b100 = await attachPod(b, net(100), '10.50.0.2/24');
    pods.a200 = await attachPod(a, net(200), '10.50.0.3/24');
    pods.b200 = await attachPod(b, net(200), '10.50.0.4/24');
  });
  afterAll(async () => {
    await Promise.allSettled([stopNode(a), stopNode(b)]);
  });

  it('shares one trunk bridge and one uplink between VLANs', () => {
    for (const n of [a, b]) {
      const ports = n.vs.cache.portsOf('br-vlan');
      const uplink = ports.find((p) => p.name === TRUNK);
      expect(uplink).toEqual(expect.objectContaining({ vlanMode: 'trunk', tag: undefined, trunks: [] }));
      expect(ports.filter((p) => p.externalIds['seine-owner'] === 'secondary').map((p) => p.tag).sort()).toEqual([100, 200]);
      expect(n.vs.cache.bridge('br-vlan')).toEqual(expect.objectContaining({ datapathType: 'netdev', failMode: 'standalone' }));
    }
  });

  it('ensureNetwork is idempotent', async () => {
    const before = a.vs.cache.portsOf('br-vlan').map((p) => p.uuid).sort();
    await a.dp.ensureNetwork(net(100));
    await a.dp.ensureNetwork(net(300));
    expect(a.vs.cache.portsOf('br-vlan').map((p) => p.uuid).sort()).toEqual(before);
  });

  it('pods on the same VLAN reach each other across nodes (ICMP and TCP)', async () => {
    expect(await reaches(pods.a100!.netns, pods.b100!.addr)).toBe(true);
    expect(await reaches(pods.b200!.netns, pods.a200!.addr)).toBe(true);
    const r = await ping(pods.a100!.netns, pods.b100!.addr, 5);
    expect(r.received).toBe(5);
    expect(r.duplicates).toBe(0);
    const t1 = await tcpTransfer(pods.a100!.netns, pods.b100!.netns, pods.b100!.addr, 5401);
    expect(t1.received).toBe(t1.sent);
    const t2 = await tcpTransfer(pods.b200!.netns, pods.a200!.netns, pods.a200!.addr, 5402);
    expect(t2.received).toBe(t2.sent);
  });

  it('pods on different VLANs cannot reach each other, on one node or across nodes', async () => {
    expect(await reaches(pods.a100!.netns, pods.b200!.addr)).toBe(false);
    expect(await reaches(pods.a100!.netns, pods.a200!.addr)).toBe(false);
    expect(await reaches(pods.b200!.netns, pods.a100!.addr)).toBe(false);
  });

  it('carries the VLANs tagged 100 and 200 on the trunk', async () => {
    const lines = await captureBoth(a.sb.netns, TRUNK, ['vlan'], async () => {
      await ping(pods.a100!.netns, pods.b100!.addr, 2);
      await ping(pods.a200!.netns, pods.b200!.addr, 2);
    });
    const vlan100 = lines.filter((l) => /vlan 100,.*10\.50\.0\.1 > 10\.50\.0\.2: ICMP echo request/.test(l));
    const vlan200 = lines.filter((l) => /vlan 200,.*10\.50\.0\.3 > 10\.50\.0\.4: ICMP echo request/.test(l));
    expect(vlan100.length).toBeGreaterThanOrEqual(2);
    expect(vlan200.length).toBeGreaterThanOrEqual(2);
    expect(lines.some((l) => /vlan 100,.*10\.50\.0\.[34]/.test(l))).toBe(false);
  });

  it("keeps pods away from the nodes' own addresses (isolation from the host stack)", async () => {
    // The pod takes an address in the nodes' subnet, so it ARPs for them directly on its VLAN interface:
    // only a kernel answering on OVS-owned devices (pod veth, uplink) could reply.
    const pod = pods.a100!;
    await pod.ip.apply(new IpBatch().addAddr('net1', '192.168.50.10/24'));
    expect(await reaches(pod.netns, a.nodeIp)).toBe(false);
    expect(await reaches(pod.netns, b.nodeIp)).toBe(false);
    // Not even ARP is answered.
    expect(await neighbourMac(pod.ip, a.nodeIp)).toBeUndefined();
    expect(await neighbourMac(pod.ip, b.nodeIp)).toBeUndefined();
    // The nodes themselves still reach each other on their primary network.
    expect(await reaches(a.sb.netns, b.nodeIp)).toBe(true);

    // Control: with the pod's host end given back to the kernel's stack, node A's kernel answers its ARP.
    const host = pod.att.hostIfname;
    const isolate = (on: boolean): Promise<void> => a.sb.ip.sysctl({ [`net.ipv4.conf.${host}.arp_ignore`]: on ? 8 : 0, [`net.ipv4.conf.${host}.rp_filter`]: on ? 1 : 0 });
    await isolate(false);
    try {
      await ping(pod.netns, a.nodeIp, 1);
      expect(await neighbourMac(pod.ip, a.nodeIp)).toBe((await a.sb.ip.link(host))?.address);
    } finally {
      await isolate(true);
      await pod.ip.apply(new IpBatch().command('neigh', 'flush', 'dev', 'net1').command('addr', 'del', '192.168.50.10/24', 'dev', 'net1'));
    }
  });

  it('forwards again after ovs-vswitchd restarted (the daemon restores NORMAL itself; restore() is harmless)', async () => {
    await a.sb.ovs.restartVswitchd();
    await a.dp.restore();
    expect(await reaches(pods.a100!.netns, pods.b100!.addr)).toBe(true);
    expect(await reaches(pods.b200!.netns, pods.a200!.addr)).toBe(true);
    expect(await reaches(pods.a100!.netns, pods.b200!.addr)).toBe(false);
  });

  it('refuses an uplink that carries the host addresses', async () => {
    await expect(a.dp.ensureNetwork({ networkType: 'vlan', bridge: 'br-vlan2', uplink: 'eth0', vlan: 10 })).rejects.toThrow(/has addresses/);
    expect(a.vs.cache.port('eth0')).toBeUndefined();
  });
});

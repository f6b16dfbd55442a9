import { IpBatch, IpRoute } from '../../../src/host/ip.js';
import { createNetns } from '../../../src/host/netns.js';
import { decodeCookie } from '../../../src/ovs/openflow/cookie.js';
import { FlowWriter } from '../../../src/ovs/openflow/writer.js';
import { OVERLAY_VXLAN_PORT, type NetworkRealization } from '../../../src/secondary/datapath/index.js';
import { attachPod, captureBoth, neighbourMac, ping, reaches, startNode, stopNode, tcpTransfer, tunnels, type TestNode, type TestPod } from './harness.js';

const BR_PHY = 'br-phy';
const ovl = (vni: number): NetworkRealization => ({ networkType: 'overlay', bridge: `br-ovl-${vni}`, vni });

/**
 * Three nodes on an underlay (a Linux bridge in a fabric namespace); each node's uplink is on br-phy with
 * the node IP, as userspace tunnels need. VNI 5001 has pods on all three nodes, VNI 5002 on A and B, and
 * both VNIs use the SAME subnet and addresses, so only the VNI keeps them apart.
 */
describe('secondary datapath: overlay networks across three nodes', () => {
  let a: TestNode;
  let b: TestNode;
  let c: TestNode;
  const nodes = (): TestNode[] => [a, b, c];
  const p: Record<string, TestPod> = {};

  /** What the agents do: each node's peers on a VNI are the other nodes that report local pods on it. */
  async function publishPeers(): Promise<void> {
    for (const n of nodes()) {
      for (const vni of [5001, 5002]) {
        const peers = nodes().filter((m) => m !== n && m.dp.localVnis().includes(vni));
        await n.dp.setOverlayPeers(vni, peers.map((m) => m.nodeIp));
      }
    }
  }

  beforeAll(async () => {
    a = await startNode('192.168.91.1');
    b = await startNode('192.168.91.2');
    c = await startNode('192.168.91.3');
    // The underlay switch lives in its own namespace, recorded in A's ledger (removed with A).
    const fabricName = `${a.sb.id}-fab`;
    a.sb.ledger.netns(fabricName);
    const fabric = new IpRoute(await createNetns(fabricName));
    await fabric.apply(new IpBatch().addLink('fab', 'bridge', 'stp_state', '0', 'forward_delay', '0').setLink('fab', { up: true }));
    for (const [i, n] of nodes().entries()) {
      await fabric.apply(new IpBatch().addVeth(`fab${i}`, 'uplink', { peerNetns: n.sb.netns }).setLink(`fab${i}`, { master: 'fab', up: true }));
      await n.sb.ip.txOffloadOff('uplink');
      await n.sb.ip.apply(new IpBatch().setLink('uplink', { up: true }));
      await n.sb.ovs.vsctl(['add-br', BR_PHY, '--', 'set', 'bridge', BR_PHY, 'datapath_type=netdev', '--', 'add-port', BR_PHY, 'uplink']);
      await n.sb.ip.apply(new IpBatch().addAddr(BR_PHY, `${n.nodeIp}/24`).setLink(BR_PHY, { up: true }));
      await n.sb.ip.isolateFromHostStack('uplink');
    }
    for (const n of nodes()) await n.dp.ensureNetwork(ovl(5001));
    for (const n of [a, b]) await n.dp.ensureNetwork(ovl(5002));
    p.a1 = await attachPod(a, ovl(5001), '10.60.0.1/24');
    p.b1 = await attachPod(b, ovl(5001), '10.60.0.2/24');
    p.c1 = await attachPod(c, ovl(5001), '10.60.0.3/24');
    p.a2 = await attachPod(a, ovl(5002), '10.60.0.1/24');
    p.b2 = await attachPod(b, ovl(5002), '10.60.0.2/24');
    await publishPeers();
  });
  afterAll(async () => {
    await Promise.allSettled([stopNode(a), stopNode(b), stopNode(c)]);
  });

  it('has tunnels only to the nodes with pods on the VNI', () => {
    expect(Object.keys(tunnels(a, 'br-ovl-5001')).sort()).toEqual([b.nodeIp, c.nodeIp]);
    expect(Object.keys(tunnels(b, 'br-ovl-5001')).sort()).toEqual([a.nodeIp, c.nodeIp]);
    expect(Object.keys(tunnels(c, 'br-ovl-5001')).sort()).toEqual([a.nodeIp, b.nodeIp]);
    expect(Object.keys(tunnels(a, 'br-ovl-5002'))).toEqual([b.nodeIp]);
    expect(Object.keys(tunnels(b, 'br-ovl-5002'))).toEqual([a.nodeIp]);
    expect(c.vs.cache.bridge('br-ovl-5002')).toBeUndefined();
    expect(c.dp.localVnis()).toEqual([5001]);
    expect(a.dp.localVnis()).toEqual([5001, 5002]);
    const name = tunnels(a, 'br-ovl-5001')[c.nodeIp]!;
    expect(name).toBe('v001389c0a85b03');
    expect(a.vs.cache.iface(name)).toEqual(
      expect.objectContaining({ type: 'vxlan', options: { remote_ip: c.nodeIp, local_ip: a.nodeIp, key: '5001', dst_port: String(OVERLAY_VXLAN_PORT) } }),
    );
    expect(a.vs.cache.bridge('br-ovl-5001')).toEqual(expect.objectContaining({ datapathType: 'netdev', failMode: 'secure' }));
  });

  it('converges idempotently: the same state again sends no flow changes and no OVSDB changes', async () => {
    const w = a.dp.writer('br-ovl-5001');
    const bundles = w.stats.bundles;
    const ports = a.vs.cache.ports().map((x) => x.uuid).sort();
    await a.dp.ensureNetwork(ovl(5001));
    await a.dp.setOverlayPeers(5001, [c.nodeIp, b.nodeIp, a.nodeIp]);
    await a.dp.restore();
    expect(w.stats.bundles).toBe(bundles);
    expect(a.vs.cache.ports().map((x) => x.uuid).sort()).toEqual(ports);
  });

  it('pods on one VNI reach each other across nodes, without duplicates (ICMP and TCP)', async () => {
    for (const [from, to] of [['a1', 'b1'], ['a1', 'c1'], ['b1', 'c1'], ['a2', 'b2']] as const) {
      expect(await reaches(p[from]!.netns, p[to]!.addr)).toBe(true);
    }
    for (const [from, to] of [['a1', 'b1'], ['b1', 'c1'], ['c1', 'a1'], ['b2', 'a2']] as const) {
      const r = await ping(p[from]!.netns, p[to]!.addr, 5);
      expect({ from, to, received: r.received, duplicates: r.duplicates }).toEqual({ from, to, received: 5, duplicates: 0 });
    }
    for (const [i, [from, to]] of ([['a1', 'c1'], ['c1', 'b1'], ['a2', 'b2']] as const).entries()) {
      const t = await tcpTransfer(p[from]!.netns, p[to]!.netns, p[to]!.addr, 5501 + i);
      expect(t.received).toBe(t.sent);
    }
  });

  it('learns MACs: known unicast goes to the learned port only', async () => {
    await ping(p.a1!.netns, p.b1!.addr, 2);
    const learned = await a.dp.writer('br-ovl-5001').dumpFlows({ table: 10 });
    const entry = (mac: string): string | undefined => learned.find((f) => f.fields.dl_dst === mac)?.actions;
    const toB = a.vs.cache.iface(tunnels(a, 'br-ovl-5001')[b.nodeIp]!)!.ofport!;
    // B's pod behind the tunnel to B (reg1[16] marks a tunnel), A's own pod on its port.
    expect(entry(p.b1!.mac)).toMatch(new RegExp(`^set_field:0x${toB.toString(16)}/0xffff->reg1,set_field:0x10000/0x10000->reg1$`));
    expect(entry(p.a1!.mac)).toBe(`set_field:0x${p.a1!.att.ofport.toString(16)}/0xffff->reg1`);
    expect(learned.every((f) => f.idleTimeout === 300)).toBe(true);
    // C sees none of A's unicast to B.
    const atC = await captureBoth(p.c1!.netns, 'net1', ['icmp'], async () => void (await ping(p.a1!.netns, p.b1!.addr, 3)));
    expect(atC).toEqual([]);
  });

  it('keeps VNIs apart even with the same addresses on both', async () => {
    // 10.60.0.2 is B's pod on each VNI: each side resolves its own VNI's pod.
    await ping(p.a1!.netns, '10.60.0.2', 1);
    await ping(p.a2!.netns, '10.60.0.2', 1);
    expect(await neighbourMac(p.a1!.ip, '10.60.0.2')).toBe(p.b1!.mac);
    expect(await neighbourMac(p.a2!.ip, '10.60.0.2')).toBe(p.b2!.mac);
    // 10.60.0.3 exists on VNI 5001 only.
    expect(await reaches(p.a2!.netns, '10.60.0.3')).toBe(false);
    expect(await reaches(p.b2!.netns, '10.60.0.3')).toBe(false);
  });

  it('floods a broadcast to every pod of the VNI exactly once (split horizon) and to no other VNI', async () => {
    // ARP requests for an address nobody has: broadcasts that keep coming for the whole ping.
    let atA: string[] = [];
    let atC: string[] = [];
    let atB2: string[] = [];
    const who = /Request who-has 10\.60\.0\.99/;
    const atB = await captureBoth(p.b1!.netns, 'net1', ['arp'], async () => {
      atC = await captureBoth(p.c1!.netns, 'net1', ['arp'], async () => {
        atB2 = await captureBoth(p.b2!.netns, 'net1', ['arp'], async () => {
          atA = await captureBoth(p.a1!.netns, 'net1', ['arp'], async () => void (await ping(p.a1!.netns, '10.60.0.99', 3, { interval: 1 })));
        });
      });
    });
    const sent = atA.filter((l) => who.test(l)).length;
    expect(sent).toBeGreaterThanOrEqual(2);
    expect(atB.filter((l) => who.test(l)).length).toBe(sent);
    expect(atC.filter((l) => who.test(l)).length).toBe(sent);
    expect(atB2.filter((l) => who.test(l)).length).toBe(0);
  });

  it('works next to a flow-based VXLAN port on 4789 (the primary network) on the same ovs-vswitchd', async () => {
    // Primary-style: br-int with remote_ip=flow key=flow on the default port, one pod each on A and B.
    const prim: Array<{ netns: string; addr: string }> = [];
    for (const [i, [n, peer]] of ([[a, b], [b, a]] as const).entries()) {
      await n.sb.ovs.vsctl(['add-br', 'br-int', '--', 'set', 'bridge', 'br-int', 'datapath_type=netdev', 'protocols=OpenFlow10,OpenFlow13,OpenFlow15', 'fail_mode=secure']);
      const pod = await n.sb.addPod(`10.244.0.${i + 1}/24`);
      await pod.ip.apply(new IpBatch().setLink('eth0', { mtu: 1450 }));
      await n.sb.ovs.vsctl(['add-port', 'br-int', pod.hostIf, '--', 'set', 'interface', pod.hostIf, 'ofport_request=10']);
      await n.sb.ovs.vsctl(['add-port', 'br-int', 'tun0', '--', 'set', 'interface', 'tun0', 'type=vxlan', 'options:remote_ip=flow', 'options:key=flow', 'ofport_request=1']);
      const w = FlowWriter.forBridge(n.sb.ovs, 'br-int');
      await w.submit([
        { kind: 'flow', op: 'add', flow: { match: { in_port: 10 }, actions: [{ type: 'set_tunnel_dst', ip: peer.nodeIp }, { type: 'set_tunnel_id', id: 77 }, { type: 'output', port: 1 }] } },
        { kind: 'flow', op: 'add', flow: { match: { in_port: 1, tun_id: 77 }, actions: [{ type: 'output', port: 10 }] } },
      ]);
      prim.push({ netns: pod.netns, addr: pod.addr });
    }
    const ports = await a.sb.ovs.appctl('ovs-vswitchd', ['tnl/ports/show']);
    // The datapath listens on both UDP ports, one tunnel vport each.
    expect(ports).toMatch(/^vxlan_sys_4789 /m);
    expect(ports).toMatch(new RegExp(`^vxlan_sys_${OVERLAY_VXLAN_PORT} `, 'm'));
    // Both at once.
    const [primary, overlay] = await Promise.all([ping(prim[0]!.netns, prim[1]!.addr, 10), ping(p.a1!.netns, p.b1!.addr, 10)]);
    expect(primary.received).toBeGreaterThanOrEqual(9);
    expect(overlay).toEqual(expect.objectContaining({ received: 10, duplicates: 0 }));
    const t = await tcpTransfer(prim[1]!.netns, prim[0]!.netns, prim[0]!.addr, 5601);
    expect(t.received).toBe(t.sent);
    const t2 = await tcpTransfer(p.b1!.netns, p.a1!.netns, p.a1!.addr, 5602);
    expect(t2.received).toBe(t2.sent);
  });

  it('restore() brings traffic back after ovs-vswitchd restarted', async () => {
    await a.sb.ovs.restartVswitchd();
    // What the primary agent does: br-phy's tap device came back without the node IP.
    await a.sb.ip.apply(new IpBatch().addAddr(BR_PHY, `${a.nodeIp}/24`).setLink(BR_PHY, { up: true }));
    expect(await reaches(p.a1!.netns, p.b1!.addr)).toBe(false);
    await a.dp.restore();
    expect(await reaches(p.a1!.netns, p.b1!.addr)).toBe(true);
    expect(await reaches(p.c1!.netns, p.a1!.addr)).toBe(true);
    const r = await ping(p.a2!.netns, p.b2!.addr, 5);
    expect(r).toEqual(expect.objectContaining({ received: 5, duplicates: 0 }));
    const flows = await a.dp.writer('br-ovl-5001').dumpFlows({ table: 0 });
    expect(new Set(flows.map((f) => decodeCookie(f.cookie).owner))).toEqual(new Set([2]));
  });

  it('removes the tunnels of a VNI when its last local pod leaves and peers are updated', async () => {
    await b.dp.detach(p.b2!.att.hostIfname);
    expect(b.dp.localVnis()).toEqual([5001]);
    // B has no pod on 5002 left: its own tunnels go at once; A's once it learns B left.
    expect(tunnels(b, 'br-ovl-5002')).toEqual({});
    expect(Object.keys(tunnels(a, 'br-ovl-5002'))).toEqual([b.nodeIp]);
    await publishPeers();
    expect(tunnels(a, 'br-ovl-5002')).toEqual({});
    expect(Object.keys(tunnels(a, 'br-ovl-5001')).sort()).toEqual([b.nodeIp, c.nodeIp]);
    // A pod on 5002 again: tunnels come back and carry traffic.
    p.b3 = await attachPod(b, ovl(5002), '10.60.0.12/24');
    await publishPeers();
    expect(Object.keys(tunnels(a, 'br-ovl-5002'))).toEqual([b.nodeIp]);
    expect(await reaches(p.a2!.netns, p.b3.addr)).toBe(true);
    expect(await neighbourMac(p.a2!.ip, p.b3.addr)).toBe(p.b3.mac);
  });
});

import { IpBatch } from '../../../src/host/ip.js';
import { Table, pipelineSync } from '../../../src/primary/pipeline/index.js';
import { BR_INT, BR_PHY, GW, TUN, TUN_OFPORT, ping, replyTtl, startNode, state, tcpTransfer, type TestNode } from './harness.js';

const UPLINK = 'uplink';

/**
 * Two nodes joined by a veth underlay. Each has br-phy holding its uplink with the node IP on the
 * br-phy internal port (userspace tunnels resolve routes and ARP through it), and br-int with the pipeline.
 */
describe('primary pipeline across two nodes', () => {
  let a: TestNode;
  let b: TestNode;

  /** Packets the Classifier took in from the tunnel port so far. */
  const fromTunnel = async (n: TestNode): Promise<bigint> => {
    const flows = await n.w.dumpFlows({ table: Table.Classifier, match: { in_port: TUN_OFPORT } }, { fresh: true });
    return flows.reduce((sum, f) => sum + f.nPackets, 0n);
  };

  /** Points each node at the other and installs its pipeline. */
  async function configure(mode: 'vxlan' | 'geneve' | 'noEncap'): Promise<void> {
    for (const [n, peer] of [
      [a, b],
      [b, a],
    ] as const) {
      if (mode === 'noEncap') {
        await n.sb.ovs.vsctl(['--if-exists', 'del-port', BR_INT, TUN]);
        await n.sb.ip.apply(new IpBatch().replaceRoute(peer.node.podCidr, { via: peer.nodeIp, dev: BR_PHY }));
      } else {
        await n.sb.ovs.vsctl([
          '--if-exists', 'del-port', BR_INT, TUN, '--',
          'add-port', BR_INT, TUN, '--',
          'set', 'interface', TUN, `type=${mode}`, 'options:remote_ip=flow', 'options:key=flow', `ofport_request=${TUN_OFPORT}`,
        ]);
        expect((await n.sb.ovs.vsctl(['get', 'interface', TUN, 'ofport'])).trim()).toBe(String(TUN_OFPORT));
        await n.sb.ip.apply(new IpBatch().replaceRoute(peer.node.podCidr, { via: peer.node.gatewayIp, dev: GW, onlink: true }));
      }
      n.node = { ...n.node, mode: mode === 'noEncap' ? 'noEncap' : 'encap' };
      n.peers = [{ index: peer === b ? 2 : 1, nodeIp: peer.nodeIp, podCidr: peer.node.podCidr, gatewayIp: peer.node.gatewayIp }];
      await n.w.sync(pipelineSync(state(n)));
    }
  }

  /** Pod-to-pod ping both ways, node-to-remote-pod and pod-to-own-node pings, and a TCP transfer between pods on different nodes. */
  async function crossTraffic(port: number): Promise<void> {
    const [a1, a2] = a.pods as [TestNode['pods'][number], TestNode['pods'][number]];
    const [b1] = b.pods as [TestNode['pods'][number]];
    // The first packet to a new tunnel peer may go while OVS resolves its ARP entry: ping's
    // success needs one reply of three.
    expect(await ping(a1.netns, b1.addr)).toBe(true);
    expect(await ping(b1.netns, a2.addr)).toBe(true);
    expect(await ping(a.sb.netns, b1.addr)).toBe(true);
    expect(await ping(b.sb.netns, a1.addr)).toBe(true);
    // The own node's IP is reached through the gateway. (A peer node's IP needs the egress SNAT of the
    // route module: without it the reply takes the tunnel and the peer's conntrack finds it invalid.)
    expect(await ping(a1.netns, a.nodeIp)).toBe(true);
    // Each node routes once per direction: OVS (dec_ttl) in encap mode, the kernel in noEncap mode.
    expect(await replyTtl(a1.netns, b1.addr)).toBe(62);
    const t = await tcpTransfer(a1.netns, b1.netns, b1.addr, port);
    expect(t.received).toBe(t.sent);
    const back = await tcpTransfer(b1.netns, a2.netns, a2.addr, port + 1);
    expect(back.received).toBe(back.sent);
  }

  beforeAll(async () => {
    a = await startNode({ nodeIp: '192.168.77.1', podCidr: '10.244.1.0/24', mode: 'encap', podCount: 2 });
    b = await startNode({ nodeIp: '192.168.77.2', podCidr: '10.244.2.0/24', mode: 'encap', podCount: 1 });
    await a.sb.ip.apply(new IpBatch().addVeth(UPLINK, UPLINK, { peerNetns: b.sb.netns }));
    for (const n of [a, b]) {
      await n.sb.ip.txOffloadOff(UPLINK);
      await n.sb.ip.apply(new IpBatch().setLink(UPLINK, { up: true }));
      // Standalone fail mode: br-phy is a plain learning switch.
      await n.sb.ovs.vsctl(['add-br', BR_PHY, '--', 'set', 'bridge', BR_PHY, 'datapath_type=netdev', '--', 'add-port', BR_PHY, UPLINK]);
      await n.sb.ip.apply(new IpBatch().addAddr(BR_PHY, `${n.nodeIp}/24`).setLink(BR_PHY, { up: true }));
      await n.sb.ip.sysctl({ 'net.ipv4.ip_forward': 1 });
    }
  });
  afterAll(async () => {
    await Promise.allSettled([a?.sb.close(), b?.sb.close()]);
  });

  it('carries pod traffic through a VXLAN tunnel', async () => {
    await configure('vxlan');
    const before = await fromTunnel(b);
    await crossTraffic(5101);
    expect(await fromTunnel(b)).toBeGreaterThan(before);
  });

  it('carries pod traffic through a Geneve tunnel with the same flows', async () => {
    const flows = pipelineSync(state(a)).flows;
    await configure('geneve');
    expect(pipelineSync(state(a)).flows).toEqual(flows);
    const before = await fromTunnel(a);
    await crossTraffic(5201);
    expect(await fromTunnel(a)).toBeGreaterThan(before);
  });

  it('carries pod traffic routed by the node kernels in noEncap mode', async () => {
    await configure('noEncap');
    expect(await a.w.dumpFlows({ table: Table.Classifier, match: { in_port: TUN_OFPORT } })).toEqual([]);
    await crossTraffic(5301);
  });
});

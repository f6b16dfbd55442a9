import { run } from '../../../src/host/exec.js';
import { IpBatch, IpRoute } from '../../../src/host/ip.js';
import { Vswitch } from '../../../src/ovs/ovsdb/index.js';
import type { NetworkRealization } from '../../../src/secondary/datapath/index.js';
import { attachPod, newDatapath, ping, podNetns, startNode, stopNode, testMac, type TestNode } from './harness.js';

const VLAN: NetworkRealization = { networkType: 'vlan', bridge: 'br-vlan', vlan: 300 };
const OVERLAY: NetworkRealization = { networkType: 'overlay', bridge: 'br-ovl-7001', vni: 7001 };

/** One node, node-local networks: the pod interface itself, atomicity, idempotent detach, restart. */
describe('secondary datapath: pod interfaces on one node', () => {
  let n: TestNode;

  beforeAll(async () => {
    n = await startNode('192.168.93.1');
  });
  afterAll(async () => {
    await stopNode(n);
  });

  const links = async (ip: IpRoute): Promise<string[]> => (await ip.links()).map((l) => l.ifname);
  const defaults = async (ip: IpRoute): Promise<Array<{ gateway?: string; dev?: string }>> => (await ip.routes()).filter((r) => r.dst === 'default');

  /** A pod namespace with eth0 (the primary network stand-in) and a default route through it. */
  async function podWithEth0(): Promise<IpRoute> {
    const ns = await podNetns(n);
    const pod = new IpRoute(ns);
    const peer = `${n.sb.id}e${n.pods}`;
    await n.sb.ip.apply(new IpBatch().addVeth(peer, 'eth0', { peerNetns: ns }).setLink(peer, { up: true }));
    await pod.apply(new IpBatch().addAddr('eth0', '10.244.1.5/24').setLink('eth0', { up: true }).replaceRoute('default', { via: '10.244.1.1', dev: 'eth0' }));
    return pod;
  }

  it('creates the interface with its MAC, MTU, addresses and routes; default-route replaces the default via eth0', async () => {
    // The "gateway" is another pod on the VLAN that owns 10.99.0.1, so traffic through the default route gets an answer.
    const gw = await attachPod(n, VLAN, '10.70.0.1/24');
    await gw.ip.apply(new IpBatch().addAddr('lo', '10.99.0.1/32'));
    const pod = await podWithEth0();
    // The primary plugin may have appended two default routes; both must go.
    await pod.apply(new IpBatch().command('route', 'append', 'default', 'via', '10.244.1.254', 'dev', 'eth0'));
    expect(await defaults(pod)).toHaveLength(2);
    const mac = testMac();
    const att = await n.dp.attach({
      network: VLAN,
      netns: pod.netns!,
      ifname: 'net1',
      hostIfname: `${n.sb.id}dr`,
      mac,
      mtu: 1400,
      addresses: ['10.70.0.5/24', 'fd00:70::5/64'],
      routes: [
        { dst: '0.0.0.0/0', gw: '10.70.0.1' },
        { dst: '10.80.0.0/16', gw: '10.70.0.1' },
      ],
      externalIds: { 'pod-name': 'dr' },
    });
    const net1 = await pod.link('net1');
    expect(net1?.address).toBe(mac);
    expect(net1?.mtu).toBe(1400);
    const [addrs] = await pod.addrs('net1');
    expect(addrs!.addr_info.map((a) => `${a.local}/${a.prefixlen}`)).toEqual(expect.arrayContaining(['10.70.0.5/24', 'fd00:70::5/64']));
    expect(await defaults(pod)).toEqual([expect.objectContaining({ gateway: '10.70.0.1', dev: 'net1' })]);
    expect((await pod.routes()).find((r) => r.dst === '10.80.0.0/16')).toEqual(expect.objectContaining({ gateway: '10.70.0.1', dev: 'net1' }));
    // The default route carries traffic: 10.99.0.1 is only behind the gateway pod.
    expect((await ping(pod.netns!, '10.99.0.1')).received).toBeGreaterThan(0);

    // Host end: on br-vlan as an access port, TX offload off, away from the host stack.
    expect(n.vs.cache.bridgeOf(att.hostIfname)?.name).toBe('br-vlan');
    expect(n.vs.cache.port(att.hostIfname)?.tag).toBe(300);
    expect(att.ofport).toBe(n.vs.cache.iface(att.hostIfname)?.ofport);
    const { stdout: sysctl } = await run('sysctl', ['-n', `net.ipv4.conf.${att.hostIfname}.arp_ignore`, `net.ipv4.conf.${att.hostIfname}.rp_filter`], { netns: n.sb.netns });
    expect(sysctl.trim().split('\n')).toEqual(['8', '1']);
    const { stdout: features } = await run('ethtool', ['-k', 'net1'], { netns: pod.netns });
    expect(features).toMatch(/tx-checksumming: off/);

    // A second attachment without a default route leaves the pod's default alone.
    await n.dp.attach({ network: VLAN, netns: pod.netns!, ifname: 'net2', hostIfname: `${n.sb.id}d2`, mac: testMac(), mtu: 1500, addresses: ['10.71.0.5/24'], routes: [], externalIds: {} });
    expect(await defaults(pod)).toEqual([expect.objectContaining({ gateway: '10.70.0.1', dev: 'net1' })]);
  });

  it('leaves nothing when the host interface name is taken, and does not touch the existing one', async () => {
    const busy = `${n.sb.id}by`;
    await n.sb.ip.apply(new IpBatch().addVeth(busy, `${busy}p`));
    const ns = await podNetns(n);
    await expect(
      n.dp.attach({ network: VLAN, netns: ns, ifname: 'net1', hostIfname: busy, mac: testMac(), mtu: 1500, addresses: ['10.70.0.9/24'], routes: [], externalIds: {} }),
    ).rejects.toThrow(/File exists|exists/);
    expect(await n.sb.ip.link(busy)).toBeDefined();
    expect(n.vs.cache.port(busy)).toBeUndefined();
    expect(await links(new IpRoute(ns))).toEqual(['lo']);
  });

  it('leaves nothing and keeps the old default route when a route cannot be added', async () => {
    const pod = await podWithEth0();
    const host = `${n.sb.id}rf`;
    await expect(
      n.dp.attach({
        network: VLAN,
        netns: pod.netns!,
        ifname: 'net1',
        hostIfname: host,
        mac: testMac(),
        mtu: 1500,
        addresses: ['10.70.0.10/24'],
        // The gateway is on no subnet of the pod: the kernel refuses it after the old default was deleted.
        routes: [{ dst: '0.0.0.0/0', gw: '10.98.0.1' }],
        externalIds: {},
      }),
    ).rejects.toThrow(/net1/);
    expect(await defaults(pod)).toEqual([expect.objectContaining({ gateway: '10.244.1.1', dev: 'eth0' })]);
    expect(await links(pod)).not.toContain('net1');
    expect(await n.sb.ip.link(host)).toBeUndefined();
    expect(n.vs.cache.port(host)).toBeUndefined();
  });

  it('leaves nothing when the interface name is taken in the pod', async () => {
    const pod = await podWithEth0();
    const host = `${n.sb.id}if`;
    await expect(
      n.dp.attach({ network: VLAN, netns: pod.netns!, ifname: 'eth0', hostIfname: host, mac: testMac(), mtu: 1500, addresses: ['10.70.0.11/24'], routes: [], externalIds: {} }),
    ).rejects.toThrow();
    expect(await n.sb.ip.link(host)).toBeUndefined();
    expect(n.vs.cache.port(host)).toBeUndefined();
    expect((await pod.addrs('eth0'))[0]!.addr_info.filter((a) => a.family === 'inet').map((a) => a.local)).toEqual(['10.244.1.5']);
  });

  it('removes the port and the veth when the flows cannot be written after the port was added', async () => {
    await n.dp.ensureNetwork(OVERLAY);
    // An instance whose OpenFlow sockets are elsewhere: its flow sync fails after the port exists.
    const broken = newDatapath(n.sb, n.vs, n.nodeIp, 1, '/nonexistent');
    const ns = await podNetns(n);
    const host = `${n.sb.id}fl`;
    await expect(
      broken.attach({ network: OVERLAY, netns: ns, ifname: 'net1', hostIfname: host, mac: testMac(), mtu: 1450, addresses: ['10.72.0.2/24'], routes: [], externalIds: {} }),
    ).rejects.toThrow();
    expect(n.vs.cache.port(host)).toBeUndefined();
    expect(await n.sb.ip.link(host)).toBeUndefined();
    expect(await links(new IpRoute(ns))).toEqual(['lo']);
  });

  it('refuses bridges that belong to something else', async () => {
    await expect(n.dp.ensureNetwork({ networkType: 'overlay', bridge: 'br-other', vni: 7001 })).rejects.toThrow(/already on bridge br-ovl-7001/);
    await expect(n.dp.ensureNetwork({ networkType: 'overlay', bridge: 'br-vlan', vni: 7002 })).rejects.toThrow(/carries a vlan network/);
    await expect(n.dp.ensureNetwork({ networkType: 'vlan', bridge: 'br-int', vlan: 5 })).rejects.toThrow(/primary network/);
    await n.sb.ovs.vsctl(['add-br', 'br-foreign', '--', 'set', 'bridge', 'br-foreign', 'datapath_type=netdev']);
    await n.vs.cache.waitForBridge('br-foreign');
    await expect(n.dp.ensureNetwork({ networkType: 'vlan', bridge: 'br-foreign', vlan: 5 })).rejects.toThrow(/not a Seine secondary/);
    expect(n.vs.cache.bridge('br-other')).toBeUndefined();
  });

  it('detaches idempotently', async () => {
    const p = await attachPod(n, OVERLAY, '10.72.0.3/24');
    expect(n.dp.localVnis()).toEqual([7001]);
    await n.dp.detach(p.att.hostIfname);
    await n.dp.detach(p.att.hostIfname);
    await n.dp.detach('never-there');
    expect(n.vs.cache.port(p.att.hostIfname)).toBeUndefined();
    expect(await n.sb.ip.link(p.att.hostIfname)).toBeUndefined();
    expect(await links(p.ip)).toEqual(['lo']);
    expect(n.dp.localVnis()).toEqual([]);
    // Only pod ports of secondary networks are detached.
    await expect(n.dp.detach('br-vlan')).rejects.toThrow(/not a secondary attachment/);
  });

  it('a new instance on the same OVSDB finds every attachment (agent restart)', async () => {
    const p = await attachPod(n, OVERLAY, '10.72.0.4/24', { externalIds: { 'container-id': 'c0ffee', 'pod-name': 'restart-me' } });
    const vs2 = await Vswitch.connect({ remote: n.sb.ovs.dbRemote });
    try {
      const dp2 = newDatapath(n.sb, vs2, n.nodeIp, 2);
      const found = dp2.attachments();
      expect(found).toEqual(expect.arrayContaining(n.dp.attachments()));
      expect(found).toHaveLength(n.dp.attachments().length);
      const mine = found.find((a) => a.hostIfname === p.att.hostIfname);
      expect(mine).toEqual(p.att);
      expect(mine?.externalIds).toEqual(
        expect.objectContaining({
          'container-id': 'c0ffee',
          'pod-name': 'restart-me',
          'seine-owner': 'secondary',
          'seine-bridge': 'br-ovl-7001',
          'seine-network-type': 'overlay',
          'seine-vni': '7001',
          'seine-netns': p.netns,
          'seine-ifname': 'net1',
          'seine-mac': p.mac,
          'seine-addresses': '10.72.0.4/24',
        }),
      );
      expect(dp2.localVnis()).toEqual([7001]);
      // The new round takes the flows over in place.
      await dp2.restore();
      const flows = await dp2.writer('br-ovl-7001').dumpFlows({ table: 0 });
      expect(flows.length).toBeGreaterThan(0);
      expect(flows.every((f) => (f.cookie >> 40n) % 0x10000n === 2n)).toBe(true);
    } finally {
      await vs2.close();
    }
  });
});

import { run } from '../../../src/host/exec.js';
import { IpBatch, IpRoute } from '../../../src/host/ip.js';
import { decodeCookie } from '../../../src/ovs/openflow/cookie.js';
import { functionPorts, type AttachedInterface, type NetworkRealization, type SecondaryAttachment } from '../../../src/secondary/datapath/index.js';
import { attachPod, capture, newDatapath, ping, podNetns, startNode, stopNode, testMac, tunnels, type TestNode, type TestPod } from './harness.js';

const TRUNK_BRIDGE = 'br-vlan';
const VLAN100: NetworkRealization = { networkType: 'vlan', bridge: TRUNK_BRIDGE, vlan: 100 };
const VLAN200: NetworkRealization = { networkType: 'vlan', bridge: TRUNK_BRIDGE, vlan: 200 };
const OVERLAY: NetworkRealization = { networkType: 'overlay', bridge: 'br-ovl-7100', vni: 7100 };
const bound = (to: NetworkRealization): NetworkRealization => ({ networkType: 'function', bridge: to.bridge, boundTo: to });
/** A flow of the service chains' owner (cookie owner 3) that a fail_mode change must not lose. */
const CHAIN_FLOW = 'table=66,priority=7,cookie=0x0300000000000042,ip,nw_dst=192.0.2.1,actions=drop';

interface FunctionIf {
  netns: string;
  ifname: string;
  mac: string;
  att: AttachedInterface;
}

/**
 * Function ports (CNF interfaces of service chains) bound to a Seine VLAN and an overlay network, on one node
 * with real OVS: they sit on the network's bridge but take no part in its switching. A Transparent CNF (a Linux
 * bridge between in0 and out0) would loop every broadcast if the trunk's NORMAL flooded into it.
 */
describe('secondary datapath: function ports bound to VLAN and overlay networks', () => {
  let n: TestNode;
  const pods: Record<string, TestPod> = {};
  let transparent: { in0: FunctionIf; out0: FunctionIf };
  let sender: FunctionIf;

  const target = (bridge: string): string => `unix:${n.sb.ovs.rundir}/${bridge}.mgmt`;
  /** The OpenFlow 1.0 port config flags (e.g. NO_FLOOD) of each port of a bridge, by port name. */
  async function portConfigs(bridge: string): Promise<Record<string, string[]>> {
    const { stdout } = await run('ovs-ofctl', ['-O', 'OpenFlow10', 'show', target(bridge)]);
    const out: Record<string, string[]> = {};
    let port: string | undefined;
    for (const line of stdout.split('\n')) {
      const head = /^\s*(?:\d+|LOCAL)\(([^)]+)\):/.exec(line);
      if (head) port = head[1];
      const config = /^\s+config:\s+(.*)$/.exec(line);
      if (config && port) out[port] = config[1]!.trim() === '0' ? [] : config[1]!.trim().split(/\s+/);
    }
    return out;
  }

  async function attachFunction(netns: string, ifname: string, network: NetworkRealization, over: Partial<SecondaryAttachment> = {}): Promise<FunctionIf> {
    const mac = testMac();
    const att = await n.dp.attach({
      network,
      netns,
      ifname,
      hostIfname: `${n.sb.id}f${++n.pods}`,
      mac,
      mtu: 1500,
      addresses: [],
      routes: [],
      externalIds: { 'container-id': `c${n.pods}`, 'pod-namespace': 'telco', 'pod-name': `cnf${n.pods}`, 'pod-uid': `uid${n.pods}`, 'seine-function-network': 'telco/vlan100' },
      ...over,
    });
    return { netns, ifname, mac, att };
  }

  /** Frames from `mac` seen arriving at each interface while `fn` runs. */
  async function seenFrom(mac: string, at: Array<{ netns: string; ifname: string }>, fn: () => Promise<void>): Promise<string[][]> {
    const out: string[][] = at.map(() => []);
    const nest = async (i: number): Promise<void> => {
      if (i === at.length) return fn();
      out[i] = await capture(at[i]!.netns, at[i]!.ifname, ['ether', 'src', mac], () => nest(i + 1));
    };
    await nest(0);
    return out;
  }

  /** Broadcast ARP and flooded unknown unicast from `pod` (to an address whose MAC nobody has). */
  async function floodFrom(pod: TestPod, target: string): Promise<void> {
    await pod.ip.apply(new IpBatch().command('neigh', 'replace', '10.61.0.99', 'lladdr', '02:00:00:99:99:99', 'dev', 'net1'));
    await run('arping', ['-c', '2', '-w', '2', '-I', 'net1', target], { netns: pod.netns }).catch(() => undefined);
    await ping(pod.netns, '10.61.0.99', 2);
  }

  /** The CNF's stack sends broadcast ARP and unicast IP to `to` (its MAC set by hand) on its only interface. */
  async function sendFromFunction(f: FunctionIf, to: TestPod): Promise<void> {
    await run('arping', ['-c', '2', '-w', '2', '-I', f.ifname, to.addr], { netns: f.netns }).catch(() => undefined);
    await ping(f.netns, to.addr, 2);
  }

  /** What a pod broadcast reaches, what a function port sends reaches, and whether pods still talk. */
  async function expectIsolatedFunctionPorts(): Promise<void> {
    const [atP2, atIn0, atOut0, atSender] = await seenFrom(
      pods.p1!.mac,
      [
        { netns: pods.p2!.netns, ifname: 'net1' },
        { netns: transparent.in0.netns, ifname: 'in0' },
        { netns: transparent.out0.netns, ifname: 'out0' },
        { netns: sender.netns, ifname: 'arm0' },
      ],
      () => floodFrom(pods.p1!, pods.p2!.addr),
    );
    expect(atP2!.some((l) => /ARP.*Request who-has 10\.61\.0\.2 /.test(l))).toBe(true);
    expect(atP2!.some((l) => /10\.61\.0\.1 > 10\.61\.0\.99: ICMP echo request/.test(l))).toBe(true);
    expect({ atIn0, atOut0, atSender }).toEqual({ atIn0: [], atOut0: [], atSender: [] });

    const [atPort, atP1, atP2b, atOther] = await seenFrom(
      sender.mac,
      [
        { netns: n.sb.netns, ifname: sender.att.hostIfname },
        { netns: pods.p1!.netns, ifname: 'net1' },
        { netns: pods.p2!.netns, ifname: 'net1' },
        { netns: pods.p3!.netns, ifname: 'net1' },
      ],
      () => sendFromFunction(sender, pods.p1!),
    );
    // Sent into the bridge (seen on the port's host end), received by nobody.
    expect(atPort!.some((l) => /ARP/.test(l))).toBe(true);
    expect(atPort!.some((l) => /ICMP echo request/.test(l))).toBe(true);
    expect({ atP1, atP2b, atOther }).toEqual({ atP1: [], atP2b: [], atOther: [] });

    // Pods still talk, and no frame comes back twice through the Transparent CNF.
    const r = await ping(pods.p1!.netns, pods.p2!.addr, 5);
    expect(r).toEqual(expect.objectContaining({ received: 5, duplicates: 0 }));
  }

  beforeAll(async () => {
    n = await startNode('192.168.61.1');
    await n.dp.ensureNetwork(VLAN100);
    pods.p1 = await attachPod(n, VLAN100, '10.61.0.1/24');
    pods.p2 = await attachPod(n, VLAN100, '10.61.0.2/24');
    pods.p3 = await attachPod(n, VLAN200, '10.61.0.3/24');
  });
  afterAll(async () => {
    await stopNode(n);
  });

  it('turns the trunk bridge secure with its own NORMAL flow, keeping the flows of others, when the first function port comes', async () => {
    expect(n.vs.cache.bridge(TRUNK_BRIDGE)?.failMode).toBe('standalone');
    await run('ovs-ofctl', ['-O', 'OpenFlow15', 'add-flow', target(TRUNK_BRIDGE), CHAIN_FLOW]);

    // A Transparent CNF: a Linux bridge between its two function ports.
    const cnf = await podNetns(n);
    transparent = { in0: await attachFunction(cnf, 'in0', bound(VLAN100)), out0: await attachFunction(cnf, 'out0', bound(VLAN100)) };
    await new IpRoute(cnf).apply(new IpBatch().command('link', 'add', 'br0', 'type', 'bridge').command('link', 'set', 'in0', 'master', 'br0').command('link', 'set', 'out0', 'master', 'br0').setLink('br0', { up: true }));
    // A CNF that sends on its one function port (a test-only address and neighbour entry).
    sender = await attachFunction(await podNetns(n), 'arm0', bound(VLAN100));
    await new IpRoute(sender.netns).apply(new IpBatch().addAddr('arm0', '10.61.0.200/24').command('neigh', 'replace', pods.p1!.addr, 'lladdr', pods.p1!.mac, 'dev', 'arm0'));

    expect(n.vs.cache.bridge(TRUNK_BRIDGE)?.failMode).toBe('secure');
    const fns = [transparent.in0, transparent.out0, sender];
    for (const f of fns) {
      const port = n.vs.cache.port(f.att.hostIfname)!;
      expect(port).toEqual(expect.objectContaining({ tag: 100, vlanMode: 'access' }));
      expect(port.externalIds).toEqual(expect.objectContaining({ 'seine-network-type': 'function', 'seine-vlan': '100', 'seine-function-network': 'telco/vlan100', 'seine-bridge': TRUNK_BRIDGE }));
    }
    const configs = await portConfigs(TRUNK_BRIDGE);
    for (const f of fns) expect(configs[f.att.hostIfname]).toContain('NO_FLOOD');
    for (const p of [pods.p1!, pods.p2!]) expect(configs[p.att.hostIfname]).toEqual([]);

    const flows = await n.dp.writer(TRUNK_BRIDGE).dumpFlows();
    const ours = flows.filter((f) => decodeCookie(f.cookie).owner === 2);
    expect(ours.map((f) => `${f.priority} ${f.match} ${f.actions}`).sort()).toEqual(
      ['0  NORMAL', ...fns.map((f) => `100 in_port=${f.att.ofport} drop`)].sort(),
    );
    // The chain's flow came back after the fail_mode change flushed the bridge.
    expect(flows.filter((f) => decodeCookie(f.cookie).owner === 3).map((f) => `${f.table} ${f.priority} ${f.match}`)).toEqual(['66 7 ip,nw_dst=192.0.2.1']);

    expect(functionPorts(n.vs, TRUNK_BRIDGE).map((f) => [f.ifname, f.network])).toEqual(
      expect.arrayContaining([
        ['in0', 'telco/vlan100'],
        ['out0', 'telco/vlan100'],
        ['arm0', 'telco/vlan100'],
      ]),
    );
    // Not its switching's: the VLAN's pods are not function ports.
    expect(functionPorts(n.vs, TRUNK_BRIDGE).map((f) => f.hostIfname)).not.toContain(pods.p1!.att.hostIfname);
  });

  it('floods a pod broadcast to the other pod and not into function ports; what a function port sends reaches nobody', async () => {
    await expectIsolatedFunctionPorts();
  });

  it('holds after ovs-vswitchd restarted: the bridge forwards nothing until restore(), then the same', async () => {
    await n.sb.ovs.restartVswitchd();
    // The restarted daemon has the secure bridge from OVSDB and no flow: nothing is switched, nothing flooded.
    await n.vs.cache.waitUntil((c) => ((c.iface(sender.att.hostIfname)?.ofport ?? 0) > 0 ? true : undefined), { timeoutMs: 30_000, description: 'function port numbered again' });
    expect(await n.dp.writer(TRUNK_BRIDGE).dumpFlows()).toEqual([]);
    expect((await ping(pods.p1!.netns, pods.p2!.addr, 2)).received).toBe(0);

    await n.dp.restore();
    expect(n.vs.cache.bridge(TRUNK_BRIDGE)?.failMode).toBe('secure');
    await expectIsolatedFunctionPorts();
  });

  it('a new datapath instance (agent restart) keeps the bridge secure when it ensures the VLAN network', async () => {
    const dp2 = newDatapath(n.sb, n.vs, n.nodeIp, 9);
    await dp2.ensureNetwork(VLAN200);
    expect(n.vs.cache.bridge(TRUNK_BRIDGE)?.failMode).toBe('secure');
    const flows = await dp2.writer(TRUNK_BRIDGE).dumpFlows({ cookie: { value: 2n << 56n, mask: 0xffn << 56n } });
    expect(new Set(flows.map((f) => decodeCookie(f.cookie).round))).toEqual(new Set([9]));
    expect(flows.filter((f) => f.priority === 100)).toHaveLength(3);
    await expectIsolatedFunctionPorts();
  });

  it('detaching a function port removes its drop flow; the bridge stays secure and pods keep talking', async () => {
    const port = sender.att;
    await n.dp.detach(port.hostIfname);
    expect(n.vs.cache.port(port.hostIfname)).toBeUndefined();
    expect(await n.sb.ip.link(port.hostIfname)).toBeUndefined();
    const flows = await n.dp.writer(TRUNK_BRIDGE).dumpFlows({ table: 0 });
    expect(flows.filter((f) => f.match === `in_port=${port.ofport}`)).toEqual([]);
    expect(flows.filter((f) => f.priority === 100)).toHaveLength(2);
    expect(n.vs.cache.bridge(TRUNK_BRIDGE)?.failMode).toBe('secure');
    const r = await ping(pods.p1!.netns, pods.p2!.addr, 3);
    expect(r).toEqual(expect.objectContaining({ received: 3, duplicates: 0 }));
  });

  it('refuses a bound function port without its NAD, on another bridge, or bound to a function network, leaving nothing', async () => {
    const netns = await podNetns(n);
    const refused = async (network: NetworkRealization, why: RegExp, over: Partial<SecondaryAttachment> = {}): Promise<void> => {
      const hostIfname = `${n.sb.id}x${++n.pods}`;
      await expect(attachFunction(netns, 'in0', network, { hostIfname, ...over })).rejects.toThrow(why);
      expect(n.vs.cache.port(hostIfname)).toBeUndefined();
      expect(await n.sb.ip.link(hostIfname)).toBeUndefined();
    };
    await refused(bound(VLAN100), /lack its NAD \(seine-function-network\)/, { externalIds: { 'container-id': 'c', 'pod-namespace': 'telco', 'pod-name': 'x', 'pod-uid': 'u' } });
    await refused({ ...bound(VLAN100), bridge: 'br-other' }, /goes on its bridge br-vlan/);
    await refused({ ...bound(VLAN100), boundTo: bound(VLAN100) }, /not to another function network/);
    await refused({ ...bound(VLAN100), vlan: 100 }, /no VLAN, VNI or uplink of its own/);
    await expect(n.dp.ensureNetwork({ networkType: 'function', bridge: TRUNK_BRIDGE })).rejects.toThrow(/must be bound to that network/);
    expect((await new IpRoute(netns).links()).map((l) => l.ifname)).toEqual(['lo']);
  });

  it('on an overlay bridge: no flooding into a function port, nothing from it forwarded, and it keeps the VNI and its tunnels', async () => {
    const o1 = await attachPod(n, OVERLAY, '10.62.0.1/24');
    const o2 = await attachPod(n, OVERLAY, '10.62.0.2/24');
    const fn = await attachFunction(await podNetns(n), 'in0', bound(OVERLAY), { externalIds: { 'container-id': 'co', 'pod-namespace': 'telco', 'pod-name': 'cnf-o', 'pod-uid': 'uo', 'seine-function-network': 'telco/blue' } });
    expect(n.vs.cache.port(fn.att.hostIfname)?.externalIds).toEqual(expect.objectContaining({ 'seine-vni': '7100', 'seine-function-network': 'telco/blue' }));
    expect(n.vs.cache.port(fn.att.hostIfname)?.tag).toBeUndefined();
    expect(functionPorts(n.vs, OVERLAY.bridge).map((f) => [f.ifname, f.network])).toEqual([['in0', 'telco/blue']]);
    const flows = await n.dp.writer(OVERLAY.bridge).dumpFlows();
    expect(flows.filter((f) => f.match.includes(`in_port=${fn.att.ofport}`) || f.actionList.includes(`output:${fn.att.ofport}`))).toEqual([]);

    await new IpRoute(fn.netns).apply(new IpBatch().addAddr('in0', '10.62.0.200/24').command('neigh', 'replace', o1.addr, 'lladdr', o1.mac, 'dev', 'in0'));
    const [atO2, atFn] = await seenFrom(
      o1.mac,
      [
        { netns: o2.netns, ifname: 'net1' },
        { netns: fn.netns, ifname: 'in0' },
      ],
      () => run('arping', ['-c', '2', '-w', '2', '-I', 'net1', o2.addr], { netns: o1.netns }).then(() => undefined, () => undefined),
    );
    expect(atO2!.some((l) => /ARP.*Request who-has 10\.62\.0\.2 /.test(l))).toBe(true);
    expect(atFn).toEqual([]);
    const [atPort, atO1] = await seenFrom(
      fn.mac,
      [
        { netns: n.sb.netns, ifname: fn.att.hostIfname },
        { netns: o1.netns, ifname: 'net1' },
      ],
      () => sendFromFunction(fn, o1),
    );
    expect(atPort!.some((l) => /ICMP echo request/.test(l))).toBe(true);
    expect(atO1).toEqual([]);
    expect((await ping(o1.netns, o2.addr, 3)).received).toBe(3);

    // With only the function port left, the node still has the VNI: published, and tunnels to its peers.
    await n.dp.detach(o1.att.hostIfname);
    await n.dp.detach(o2.att.hostIfname);
    expect(n.dp.localVnis()).toContain(7100);
    await n.dp.setOverlayPeers(7100, ['192.168.61.9']);
    expect(Object.keys(tunnels(n, OVERLAY.bridge))).toEqual(['192.168.61.9']);
    await n.dp.detach(fn.att.hostIfname);
    expect(n.dp.localVnis()).not.toContain(7100);
    expect(tunnels(n, OVERLAY.bridge)).toEqual({});
  });
});

import { run } from '../../../src/host/exec.js';
import { IpBatch, IpRoute } from '../../../src/host/ip.js';
import { createNetns } from '../../../src/host/netns.js';
import { Vswitch } from '../../../src/ovs/ovsdb/index.js';
import { pipelineSync } from '../../../src/primary/pipeline/index.js';
import { functionPorts, type NetworkRealization, type OvsSecondaryDatapath, type SecondaryAttachment } from '../../../src/secondary/datapath/index.js';
import { captureWhile } from '../../harness/capture.js';
import { BR_INT, POD_MTU, startNode, state, type TestNode } from '../../primary/pipeline/harness.js';
import { newDatapath, testMac } from './harness.js';

const FUNCTION: NetworkRealization = { networkType: 'function', bridge: BR_INT };

/**
 * Function ports (CNF interfaces of service chains) on a real br-int that runs the primary pipeline: they
 * get no flows of their own, so the pipeline's table-miss drops everything they send.
 */
describe('secondary datapath: function ports on the pod network bridge', () => {
  let n: TestNode;
  let vs: Vswitch;
  let dp: OvsSecondaryDatapath;
  let seq = 0;

  beforeAll(async () => {
    n = await startNode({ nodeIp: '192.168.94.1', podCidr: '10.244.9.0/24', mode: 'noEncap', podCount: 2 });
    vs = await Vswitch.connect({ remote: n.sb.ovs.dbRemote });
    await vs.cache.waitForBridge(BR_INT);
    dp = newDatapath(n.sb, vs, n.nodeIp);
    await n.w.sync(pipelineSync(state(n)));
  });
  afterAll(async () => {
    await vs?.close().catch(() => undefined);
    await n?.sb.close();
  });

  /** An empty pod namespace, recorded in the sandbox's ledger. */
  function newPod(): Promise<string> {
    const name = `${n.sb.id}-c${++seq}`;
    n.sb.ledger.netns(name);
    return createNetns(name);
  }

  function functionAttachment(netns: string, ifname: string, over: Partial<SecondaryAttachment> = {}): SecondaryAttachment {
    return {
      network: FUNCTION,
      netns,
      ifname,
      hostIfname: `${n.sb.id}f${++seq}`,
      mac: testMac(),
      mtu: POD_MTU,
      addresses: [],
      routes: [],
      externalIds: { 'container-id': 'cafe01', 'pod-namespace': 'telco', 'pod-name': 'cnf-a', 'pod-uid': 'uid-a', network: 'telco/chain-port', ifname },
      ...over,
    };
  }

  /** Every flow of br-int that names `ofport` (as in_port or output). */
  async function flowsNaming(ofport: number): Promise<string[]> {
    const { stdout } = await run('ovs-ofctl', ['-O', 'OpenFlow15', 'dump-flows', `unix:${n.sb.ovs.rundir}/${BR_INT}.mgmt`], { netns: n.sb.netns });
    return stdout.split('\n').filter((l) => new RegExp(`in_port=${ofport}\\b|output:${ofport}\\b`).test(l));
  }

  it('gives the pod two up interfaces with MAC and MTU, no IPv4 address, on br-int untagged and without flows', async () => {
    const netns = await newPod();
    const in0 = functionAttachment(netns, 'in0');
    const out0 = functionAttachment(netns, 'out0');
    const a = await dp.attach(in0);
    const b = await dp.attach(out0);
    const pod = new IpRoute(netns);
    for (const [att, spec] of [
      [a, in0],
      [b, out0],
    ] as const) {
      const link = await pod.link(spec.ifname);
      expect(link).toEqual(expect.objectContaining({ address: spec.mac, mtu: POD_MTU }));
      expect(link?.flags).toContain('UP');
      // No address at all: not even an IPv6 link-local one, so the kernel sends nothing by itself.
      const [addrs] = await pod.addrs(spec.ifname);
      expect(addrs!.addr_info).toEqual([]);
      const { stdout: features } = await run('ethtool', ['-k', spec.ifname], { netns });
      expect(features).toMatch(/tx-checksumming: off/);

      expect(vs.cache.bridgeOf(att.hostIfname)?.name).toBe(BR_INT);
      expect(vs.cache.port(att.hostIfname)?.tag).toBeUndefined();
      expect(vs.cache.port(att.hostIfname)?.externalIds).toEqual(
        expect.objectContaining({
          'seine-owner': 'secondary',
          'seine-network-type': 'function',
          'seine-bridge': BR_INT,
          'seine-ifname': spec.ifname,
          'seine-mac': spec.mac,
          'seine-netns': netns,
          'container-id': 'cafe01',
          'pod-namespace': 'telco',
          'pod-name': 'cnf-a',
          'pod-uid': 'uid-a',
        }),
      );
      expect(vs.cache.port(att.hostIfname)?.externalIds['seine-vlan']).toBeUndefined();
      expect(await flowsNaming(att.ofport)).toEqual([]);
    }

    // The chain feature's lookup, from the cache alone.
    const found = functionPorts(vs, BR_INT);
    expect(found).toEqual([
      { ofport: a.ofport, hostIfname: a.hostIfname, podNamespace: 'telco', podName: 'cnf-a', podUid: 'uid-a', ifname: 'in0', mac: in0.mac, netns, containerId: 'cafe01', network: '' },
      { ofport: b.ofport, hostIfname: b.hostIfname, podNamespace: 'telco', podName: 'cnf-a', podUid: 'uid-a', ifname: 'out0', mac: out0.mac, netns, containerId: 'cafe01', network: '' },
    ]);
    // Pod network ports are not function ports.
    expect(found.map((f) => f.hostIfname)).not.toContain(n.pods[0]!.hostIf);
    // A second primary sync (the pod network's own convergence) leaves them alone.
    await n.w.sync(pipelineSync(state(n)));
    expect(functionPorts(vs, BR_INT)).toEqual(found);

    await dp.detach(a.hostIfname);
    await dp.detach(b.hostIfname);
    expect(functionPorts(vs, BR_INT)).toEqual([]);
    expect(await n.sb.ip.link(a.hostIfname)).toBeUndefined();
    expect(await n.sb.ip.link(b.hostIfname)).toBeUndefined();
    expect((await pod.links()).map((l) => l.ifname)).toEqual(['lo']);
  });

  it('forwards nothing a function interface sends: the pipeline table-miss drops it', async () => {
    const netns = await newPod();
    const spec = functionAttachment(netns, 'in0');
    const att = await dp.attach(spec);
    const [pod1, pod2] = n.pods as [TestNode['pods'][number], TestNode['pods'][number]];
    // A test-only address and neighbour so the CNF stack emits both broadcast ARP and unicast IP to pod1.
    const pod = new IpRoute(netns);
    await pod.apply(new IpBatch().addAddr('in0', '10.244.9.200/24').command('neigh', 'replace', pod2.addr, 'lladdr', pod2.mac, 'dev', 'in0'));
    const filter = ['ether', 'src', spec.mac];
    const send = async (): Promise<void> => {
      await run('arping', ['-c', '3', '-w', '3', '-I', 'in0', pod1.addr], { netns }).catch(() => undefined);
      await run('ping', ['-c', '3', '-i', '0.2', '-W', '1', pod2.addr], { netns }).catch(() => undefined);
    };
    let atPod1: string[] = [];
    let atPod2: string[] = [];
    let atGateway: string[] = [];
    // The frames reach the bridge (seen on the port's host end), and nobody behind it.
    const atPort = await captureWhile(n.sb.netns, ['-i', att.hostIfname, '-e', '-nn', '-Q', 'in', ...filter], async () => {
      atGateway = await captureWhile(n.sb.netns, ['-i', 'seine-gw0', '-e', '-nn', ...filter], async () => {
        atPod2 = await captureWhile(pod2.netns, ['-i', 'eth0', '-e', '-nn', ...filter], async () => {
          atPod1 = await captureWhile(pod1.netns, ['-i', 'eth0', '-e', '-nn', ...filter], send);
        });
      });
    });
    expect(atPort.some((l) => /ARP/.test(l))).toBe(true);
    expect(atPort.some((l) => /ICMP echo request/.test(l))).toBe(true);
    expect({ atPod1, atPod2, atGateway }).toEqual({ atPod1: [], atPod2: [], atGateway: [] });
    await dp.detach(att.hostIfname);
  });

  it('a new instance finds function ports among the attachments (agent restart) and restore() leaves them flowless', async () => {
    const netns = await newPod();
    const att = await dp.attach(functionAttachment(netns, 'in0'));
    const vs2 = await Vswitch.connect({ remote: n.sb.ovs.dbRemote });
    try {
      const dp2 = newDatapath(n.sb, vs2, n.nodeIp, 2);
      expect(dp2.attachments()).toEqual([att]);
      await dp2.restore();
      expect(functionPorts(vs2, BR_INT).map((f) => f.hostIfname)).toEqual([att.hostIfname]);
      expect(await flowsNaming(att.ofport)).toEqual([]);
      expect(dp2.localVnis()).toEqual([]);
      await dp2.detach(att.hostIfname);
    } finally {
      await vs2.close();
    }
    expect(vs.cache.port(att.hostIfname)).toBeUndefined();
  });

  it('refuses addresses, routes, a missing pod identity, a missing bridge and secondary bridges, leaving nothing', async () => {
    const netns = await newPod();
    const refused = async (att: SecondaryAttachment, why: RegExp): Promise<void> => {
      await expect(dp.attach(att)).rejects.toThrow(why);
      expect(vs.cache.port(att.hostIfname)).toBeUndefined();
      expect(await n.sb.ip.link(att.hostIfname)).toBeUndefined();
    };
    await refused(functionAttachment(netns, 'in0', { addresses: ['10.1.0.5/24'] }), /has addresses/);
    await refused(functionAttachment(netns, 'in0', { routes: [{ dst: '10.2.0.0/16' }] }), /has routes/);
    await refused(functionAttachment(netns, 'in0', { externalIds: { 'pod-name': 'cnf-a' } }), /pod identity \(container-id, pod-namespace, pod-uid\)/);
    await refused(functionAttachment(netns, 'in0', { network: { networkType: 'function', bridge: 'br-none' } }), /br-none .*does not exist/);
    await refused(functionAttachment(netns, 'in0', { network: { networkType: 'function', bridge: BR_INT, vlan: 10 } }), /no VLAN, VNI or uplink of its own/);
    await dp.ensureNetwork({ networkType: 'vlan', bridge: 'br-vlan', vlan: 10 });
    await refused(functionAttachment(netns, 'in0', { network: { networkType: 'function', bridge: 'br-vlan' } }), /secondary network's: a function port there must be bound to that network/);
    await expect(dp.ensureNetwork({ networkType: 'function', bridge: 'br-vlan' })).rejects.toThrow(/must be bound to that network/);
    // Unbound, it records no bound network.
    await refused(functionAttachment(netns, 'in0', { externalIds: { ...functionAttachment(netns, 'in0').externalIds, 'seine-function-network': 'telco/vlan100' } }), /records seine-function-network=telco\/vlan100 but is not bound/);
    // Ensuring the function "network" neither makes nor changes the pod network's bridge.
    const before = vs.cache.bridge(BR_INT);
    await dp.ensureNetwork(FUNCTION);
    expect(vs.cache.bridge(BR_INT)).toEqual(before);
    expect((await new IpRoute(netns).links()).map((l) => l.ifname)).toEqual(['lo']);
  });
});

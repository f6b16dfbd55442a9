import type { V1Pod } from '@kubernetes/client-node';
import { run } from '../../src/host/exec.js';
import type { Lab } from '../../src/lab/lab.js';
import { Vswitch } from '../../src/ovs/ovsdb/index.js';
import { NETWORK_STATUS_ANNOTATION, NETWORKS_ANNOTATION, type NetworkStatus } from '../../src/secondary/annotations/index.js';
import { functionPorts } from '../../src/secondary/datapath/index.js';
import { captureWhile } from '../harness/capture.js';
import { eventually, podExec, podNetns, simplePod, startTestLab, waitRunning } from '../harness/lab.js';

const NS = 'default';
const BR_INT = 'br-int';
const BR_VLAN = 'br-vlan';
const FUNCTION_NAD = `
apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata: {name: chain-port, namespace: ${NS}}
spec:
  config: '{"cniVersion":"1.0.0","type":"seine","networkType":"function"}'
---
apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata: {name: chain-port-ipam, namespace: ${NS}}
spec:
  config: '{"cniVersion":"1.0.0","type":"seine","networkType":"function","ipam":{"type":"static"}}'
---
# A VLAN network (node-local: no uplink), and function ports bound to it, to a missing NAD and to a delegated one.
apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata: {name: fn-vlan, namespace: ${NS}}
spec:
  config: '{"cniVersion":"1.0.0","type":"seine","networkType":"vlan","vlan":100,"mtu":1400,"ipam":{"type":"static"}}'
---
apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata: {name: chain-port-vlan, namespace: ${NS}}
spec:
  config: '{"cniVersion":"1.0.0","type":"seine","networkType":"function","network":"${NS}/fn-vlan"}'
---
apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata: {name: chain-port-missing, namespace: ${NS}}
spec:
  config: '{"cniVersion":"1.0.0","type":"seine","networkType":"function","network":"${NS}/no-such-network"}'
---
apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata: {name: fn-macvlan, namespace: ${NS}}
spec:
  config: '{"cniVersion":"1.0.0","type":"macvlan","master":"mv0","mode":"bridge","ipam":{"type":"host-local","ranges":[[{"subnet":"10.77.0.0/24"}]]}}'
---
apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata: {name: chain-port-macvlan, namespace: ${NS}}
spec:
  config: '{"cniVersion":"1.0.0","type":"seine","networkType":"function","network":"${NS}/fn-macvlan"}'
`;

interface Link {
  ifname: string;
  address: string;
  mtu: number;
  flags: string[];
  addr_info: Array<{ family: string; local: string }>;
}

/** CNF pods get function interfaces through the networks annotation: ports on br-int that carry nothing until a chain steers. */
describe('function ports (networkType function) in the lab', () => {
  let lab: Lab;
  let vs: Vswitch | undefined;

  const links = async (pod: V1Pod): Promise<Link[]> => JSON.parse(await podExec(lab, pod, ['ip', '-json', 'addr', 'show'])) as Link[];
  const read = (name: string): Promise<V1Pod> => lab.core.readNamespacedPod({ name, namespace: NS });
  const make = async (name: string, networks?: string): Promise<void> => {
    await lab.core.createNamespacedPod({ namespace: NS, body: simplePod(name, { node: lab.plan.nodes[0]!.name, ...(networks ? { annotations: { [NETWORKS_ANNOTATION]: networks } } : {}) }) });
  };
  const nodeLink = (ifname: string): Promise<boolean> =>
    run('ip', ['link', 'show', 'dev', ifname], { netns: lab.nodes[0]!.netns }).then(
      () => true,
      () => false,
    );

  beforeAll(async () => {
    lab = await startTestLab({ nodes: 1 });
    await run('kubectl', ['--kubeconfig', lab.kubeconfigPath, 'apply', '-f', '-'], { input: FUNCTION_NAD, timeoutMs: 60_000 });
    vs = await Vswitch.connect({ remote: lab.nodes[0]!.ovs.dbRemote });
  }, 180_000);
  afterAll(async () => {
    await vs?.close().catch(() => undefined);
    await lab?.down();
  }, 120_000);

  it('gives a CNF pod in0 and out0 on br-int (no address, up, pod MTU), finds them from OVSDB, forwards nothing from them, and removes them with the pod', async () => {
    await make('peer');
    await make('cnf', JSON.stringify([{ name: 'chain-port', interface: 'in0' }, { name: 'chain-port', interface: 'out0' }]));
    const peer = await waitRunning(lab, 'peer', NS, 60_000);
    const cnf = await waitRunning(lab, 'cnf', NS, 60_000);

    // Inside the CNF: up, the pod network's MTU (eth0's), no address at all (not even IPv6 link-local).
    const inPod = await links(cnf);
    const eth0 = inPod.find((l) => l.ifname === 'eth0')!;
    for (const ifname of ['in0', 'out0']) {
      const l = inPod.find((x) => x.ifname === ifname);
      expect(l).toBeDefined();
      expect(l!.flags).toContain('UP');
      expect(l!.mtu).toBe(eth0.mtu);
      expect(l!.addr_info).toEqual([]);
      expect(await podExec(lab, cnf, ['ethtool', '-k', ifname])).toMatch(/tx-checksumming: off/);
    }
    expect((await podExec(lab, cnf, ['ip', '-json', 'route', 'show'])).includes('in0')).toBe(false);

    // On br-int, with what a chain needs, found from the cache alone.
    const found = await eventually('both function ports numbered in the OVSDB cache', async (saw) => {
      const f = functionPorts(vs!, BR_INT);
      saw(f);
      return f.length === 2 ? f : undefined;
    });
    const byIf = Object.fromEntries(inPod.map((l) => [l.ifname, l]));
    expect(found).toEqual(
      ['in0', 'out0'].map((ifname) =>
        expect.objectContaining({ podNamespace: NS, podName: 'cnf', podUid: cnf.metadata!.uid, ifname, mac: byIf[ifname]!.address, netns: podNetns(lab, cnf), containerId: expect.stringMatching(/./) }),
      ),
    );
    for (const f of found) {
      expect(vs!.cache.bridgeOf(f.hostIfname)?.name).toBe(BR_INT);
      expect(vs!.cache.port(f.hostIfname)?.externalIds).toEqual(expect.objectContaining({ 'seine-owner': 'secondary', 'seine-network-type': 'function', network: `${NS}/chain-port`, ipam: 'none' }));
      // No flow of any table names the port: the chain feature owns them.
      const { stdout: flows } = await run('ovs-ofctl', ['-O', 'OpenFlow15', 'dump-flows', `unix:${lab.nodes[0]!.ovs.rundir}/${BR_INT}.mgmt`], { netns: lab.nodes[0]!.netns });
      expect(flows.split('\n').filter((l) => new RegExp(`in_port=${f.ofport}\\b|output:${f.ofport}\\b`).test(l))).toEqual([]);
    }

    // network-status lists them like any attachment, without addresses.
    const st = await eventually('network-status with eth0, in0 and out0', async (saw) => {
      const raw = (await read('cnf')).metadata?.annotations?.[NETWORK_STATUS_ANNOTATION];
      saw(raw);
      const s = raw ? (JSON.parse(raw) as NetworkStatus[]) : [];
      return s.length === 3 ? s : undefined;
    });
    expect(st.slice(1).map((e) => [e.name, e.interface, e.mac, e.ips ?? []])).toEqual([
      [`${NS}/chain-port`, 'in0', byIf.in0!.address, []],
      [`${NS}/chain-port`, 'out0', byIf.out0!.address, []],
    ]);

    // What in0 sends reaches the bridge and nobody behind it: broadcast ARP probes, and unicast IP to the
    // peer's MAC (with a test-only address and neighbour entry in the CNF).
    const peerIp = peer.status!.podIP!;
    const peerMac = (await links(peer)).find((l) => l.ifname === 'eth0')!.address;
    const in0 = found.find((f) => f.ifname === 'in0')!;
    await podExec(lab, cnf, ['ip', 'addr', 'add', '192.0.2.10/32', 'dev', 'in0']);
    await podExec(lab, cnf, ['ip', 'route', 'add', `${peerIp}/32`, 'dev', 'in0']);
    await podExec(lab, cnf, ['ip', 'neigh', 'replace', peerIp, 'lladdr', peerMac, 'dev', 'in0']);
    const filter = ['ether', 'src', in0.mac];
    const send = async (): Promise<void> => {
      await podExec(lab, cnf, ['arping', '-D', '-c', '3', '-w', '3', '-I', 'in0', peerIp]).catch(() => undefined);
      await podExec(lab, cnf, ['ping', '-c', '3', '-i', '0.2', '-W', '1', peerIp]).catch(() => undefined);
    };
    let atPeer: string[] = [];
    let atGateway: string[] = [];
    const atPort = await captureWhile(lab.nodes[0]!.netns, ['-i', in0.hostIfname, '-e', '-nn', '-Q', 'in', ...filter], async () => {
      atGateway = await captureWhile(lab.nodes[0]!.netns, ['-i', 'seine-gw0', '-e', '-nn', ...filter], async () => {
        atPeer = await captureWhile(podNetns(lab, peer), ['-i', 'eth0', '-e', '-nn', ...filter], send);
      });
    });
    expect(atPort.some((l) => /ARP/.test(l))).toBe(true);
    expect(atPort.some((l) => /ICMP echo request/.test(l))).toBe(true);
    expect({ atPeer, atGateway }).toEqual({ atPeer: [], atGateway: [] });

    // Deleting the pod removes both ports and both veths.
    await lab.core.deleteNamespacedPod({ name: 'cnf', namespace: NS });
    await eventually('function ports and veths removed', async (saw) => {
      const left = [...functionPorts(vs!, BR_INT).map((f) => `port ${f.hostIfname}`)];
      for (const f of found) if (await nodeLink(f.hostIfname)) left.push(`veth ${f.hostIfname}`);
      saw(left);
      return left.length ? undefined : true;
    }, 60_000);
    expect(vs!.cache.portsOf(BR_INT).map((p) => p.name)).not.toEqual(expect.arrayContaining([found[0]!.hostIfname]));
  }, 240_000);

  /** The NetworkAttachmentFailed Events of a pod. */
  const failures = async (pod: string): Promise<string[]> =>
    (await lab.core.listNamespacedEvent({ namespace: NS })).items.filter((e) => e.involvedObject.name === pod && e.reason === 'NetworkAttachmentFailed').map((e) => e.message ?? '');

  it('refuses a function NAD with ipam: a NetworkAttachmentFailed Event with the reason, the pod not Running, nothing left', async () => {
    await make('bad-cnf', JSON.stringify([{ name: 'chain-port-ipam', interface: 'in0' }]));
    const events = (): Promise<string[]> => failures('bad-cnf');
    const message = await eventually('NetworkAttachmentFailed Event on bad-cnf', async (saw) => {
      const m = await events();
      saw(m);
      return m.find((x) => /ipam: not allowed for networkType function \(a function port has no addresses/.test(x));
    }, 60_000);
    expect(message).toContain(`${NS}/chain-port-ipam`);
    expect((await read('bad-cnf')).status?.phase ?? 'Pending').not.toBe('Running');
    // The refusal comes before any function port is made. The kubelet keeps retrying the sandbox, and each retry
    // attaches eth0 for a moment before the refusal rolls it back: what is left is checked once the pod is gone.
    expect(functionPorts(vs!, BR_INT)).toEqual([]);
    await lab.core.deleteNamespacedPod({ name: 'bad-cnf', namespace: NS });
    await eventually('no port of bad-cnf left once it is deleted', async (saw) => {
      const left = vs!.cache.findPorts({ 'pod-name': 'bad-cnf' }).map((p) => p.name);
      saw(left);
      return left.length ? undefined : true;
    }, 60_000);
    expect(functionPorts(vs!, BR_INT)).toEqual([]);
  }, 120_000);

  it('puts a CNF bound to a VLAN network on its trunk bridge: access port of the VLAN with its MTU, the bridge secure, VLAN pods flooded past it', async () => {
    const vlanPod = (ip: string): string => JSON.stringify([{ name: 'fn-vlan', interface: 'net1', ips: [ip] }]);
    await make('vlan-a', vlanPod('10.99.0.1/24'));
    await make('vlan-b', vlanPod('10.99.0.2/24'));
    await make('vlan-cnf', JSON.stringify([{ name: 'chain-port-vlan', interface: 'in0' }, { name: 'chain-port-vlan', interface: 'out0' }]));
    const a = await waitRunning(lab, 'vlan-a', NS, 60_000);
    const b = await waitRunning(lab, 'vlan-b', NS, 60_000);
    const cnf = await waitRunning(lab, 'vlan-cnf', NS, 60_000);
    expect(cnf.status?.conditions?.find((c) => c.type === 'Ready')?.status).toBe('True');

    const found = await eventually('both function ports of vlan-cnf numbered on br-vlan', async (saw) => {
      const f = functionPorts(vs!, BR_VLAN).filter((p) => p.podName === 'vlan-cnf');
      saw(f);
      return f.length === 2 ? f : undefined;
    });
    expect(found.map((f) => [f.ifname, f.network])).toEqual([
      ['in0', `${NS}/fn-vlan`],
      ['out0', `${NS}/fn-vlan`],
    ]);
    for (const f of found) {
      expect(vs!.cache.port(f.hostIfname)).toEqual(expect.objectContaining({ tag: 100, vlanMode: 'access' }));
      expect(vs!.cache.port(f.hostIfname)?.externalIds).toEqual(
        expect.objectContaining({ 'seine-network-type': 'function', 'seine-function-network': `${NS}/fn-vlan`, network: `${NS}/chain-port-vlan`, 'seine-vlan': '100' }),
      );
    }
    expect(functionPorts(vs!, BR_INT).filter((p) => p.podName === 'vlan-cnf')).toEqual([]);
    expect(vs!.cache.bridge(BR_VLAN)?.failMode).toBe('secure');
    const inPod = await links(cnf);
    for (const ifname of ['in0', 'out0']) expect(inPod.find((l) => l.ifname === ifname)).toEqual(expect.objectContaining({ mtu: 1400, addr_info: [] }));

    // A Transparent CNF: a Linux bridge between in0 and out0. A broadcast on the VLAN reaches the other pod
    // once, and neither function interface.
    await podExec(lab, cnf, ['sh', '-ec', 'ip link add br0 type bridge && ip link set in0 master br0 && ip link set out0 master br0 && ip link set br0 up']);
    const aMac = (await links(a)).find((l) => l.ifname === 'net1')!.address;
    const filter = ['ether', 'src', aMac];
    let atIn0: string[] = [];
    let atOut0: string[] = [];
    const atB = await captureWhile(podNetns(lab, b), ['-i', 'net1', '-e', '-nn', '-Q', 'in', ...filter], async () => {
      atIn0 = await captureWhile(podNetns(lab, cnf), ['-i', 'in0', '-e', '-nn', '-Q', 'in', ...filter], async () => {
        atOut0 = await captureWhile(podNetns(lab, cnf), ['-i', 'out0', '-e', '-nn', '-Q', 'in', ...filter], async () => {
          await podExec(lab, a, ['arping', '-c', '2', '-w', '2', '-I', 'net1', '10.99.0.2']).catch(() => undefined);
        });
      });
    });
    expect(atB.some((l) => /Request who-has 10\.99\.0\.2 /.test(l))).toBe(true);
    expect({ atIn0, atOut0 }).toEqual({ atIn0: [], atOut0: [] });
    const pinged = await podExec(lab, a, ['ping', '-c', '3', '-i', '0.2', '-W', '2', '10.99.0.2']);
    expect(pinged).toMatch(/3 packets transmitted, 3 received/);
    expect(pinged).not.toMatch(/DUP!/);

    // Deleting the CNF removes its ports and veths; the trunk bridge stays secure and the VLAN pods keep talking.
    await lab.core.deleteNamespacedPod({ name: 'vlan-cnf', namespace: NS });
    await eventually('vlan-cnf function ports and veths removed', async (saw) => {
      const left = [...functionPorts(vs!, BR_VLAN).filter((p) => p.podName === 'vlan-cnf').map((f) => `port ${f.hostIfname}`)];
      for (const f of found) if (await nodeLink(f.hostIfname)) left.push(`veth ${f.hostIfname}`);
      saw(left);
      return left.length ? undefined : true;
    }, 60_000);
    expect(vs!.cache.bridge(BR_VLAN)?.failMode).toBe('secure');
    expect(await podExec(lab, b, ['ping', '-c', '2', '-i', '0.2', '-W', '2', '10.99.0.1'])).toMatch(/2 packets transmitted, 2 received/);
  }, 240_000);

  it.each([
    ['missing', 'chain-port-missing', `is bound to ${NS}/no-such-network, which does not exist`],
    ['delegated', 'chain-port-macvlan', `is bound to ${NS}/fn-macvlan, which is not a Seine VLAN or overlay network (it is delegated to the CNI plugin macvlan)`],
  ])('refuses a function NAD bound to a %s network: the sandbox fails with the reason, no port or veth left', async (_what, nad, why) => {
    const pod = `cnf-${nad}`;
    const nodeLinks = async (): Promise<string[]> => (JSON.parse((await run('ip', ['-json', 'link', 'show'], { netns: lab.nodes[0]!.netns })).stdout) as Array<{ ifname: string }>).map((l) => l.ifname);
    const before = new Set(await nodeLinks());
    await make(pod, JSON.stringify([{ name: nad, interface: 'in0' }]));
    const message = await eventually(`NetworkAttachmentFailed Event on ${pod}`, async (saw) => {
      const m = await failures(pod);
      saw(m);
      return m.find((x) => x.includes(why));
    }, 60_000);
    expect(message).toContain(`attaching ${NS}/${nad} as in0: function network ${NS}/${nad}`);
    expect((await read(pod)).status?.phase ?? 'Pending').not.toBe('Running');
    // Refused before anything of the port is made, on any bridge.
    const fnPorts = (): string[] => vs!.cache.findPorts({ 'pod-name': pod, 'seine-network-type': 'function' }).map((p) => p.name);
    expect(fnPorts()).toEqual([]);
    await lab.core.deleteNamespacedPod({ name: pod, namespace: NS });
    await eventually(`no port or veth of ${pod} left once it is deleted`, async (saw) => {
      const ports = vs!.cache.findPorts({ 'pod-name': pod }).map((p) => `port ${p.name}`);
      const links = (await nodeLinks()).filter((l) => !before.has(l)).map((l) => `link ${l}`);
      const left = [...ports, ...links];
      saw(left);
      return left.length ? undefined : true;
    }, 60_000);
  }, 120_000);
});

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

  it('refuses a function NAD with ipam: a NetworkAttachmentFailed Event with the reason, the pod not Running, nothing left', async () => {
    await make('bad-cnf', JSON.stringify([{ name: 'chain-port-ipam', interface: 'in0' }]));
    const events = async (): Promise<string[]> =>
      (await lab.core.listNamespacedEvent({ namespace: NS })).items.filter((e) => e.involvedObject.name === 'bad-cnf' && e.reason === 'NetworkAttachmentFailed').map((e) => e.message ?? '');
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
});

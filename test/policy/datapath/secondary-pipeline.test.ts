// The MultiNetworkPolicy pipeline on real Open vSwitch bridges of the secondary datapath (one node, userspace
// datapath, pods in namespaces): a new pod port under a policy is held down until its gate has installed the
// flows; then only the allowed peer reaches it, its own connections' replies come back (conntrack), and other
// pods of the network are untouched. On a VLAN trunk bridge (NORMAL switching) and on an overlay bridge (its own
// learning pipeline, entered at its policy seam).
import { run } from '../../../src/host/exec.js';
import { PortAdmission, type AdmittedPort } from '../../../src/agent/port-admission.js';
import { FlowWriter } from '../../../src/ovs/openflow/index.js';
import { PolicyPriority, policyScope } from '../../../src/policy/datapath/layout.js';
import { overlayZone, secondaryPolicyFlows, type SecondaryBridgePolicy } from '../../../src/policy/datapath/secondary.js';
import type { DatapathRule } from '../../../src/policy/datapath/state.js';
import type { NetworkRealization } from '../../../src/secondary/datapath/index.js';
import { attachPod, newDatapath, ping, reaches, startNode, stopNode, type TestNode, type TestPod } from '../../secondary/datapath/harness.js';

/** Ingress to `ofport` from `peer` only (any protocol); the pod is isolated otherwise. */
function ingressFrom(ofport: number, peer: string): { rules: DatapathRule[]; isolations: Array<{ direction: 'Ingress'; ofport: number; ruleId: number }> } {
  return {
    rules: [{ id: 1, direction: 'Ingress', tier: 'NetworkPolicy', action: 'Accept', priority: PolicyPriority.networkPolicy, applied: [{ ofport, namedPorts: [] }], peers: { any: false, cidrs: [], pods: [{ ip: peer, namedPorts: [] }] }, ports: [] }],
    isolations: [{ direction: 'Ingress', ofport, ruleId: 2 }],
  };
}

async function hostLinkUp(n: TestNode, ifname: string): Promise<boolean> {
  const { stdout } = await run('ip', ['-json', 'link', 'show', 'dev', ifname], { netns: n.sb.netns });
  return ((JSON.parse(stdout) as Array<{ flags: string[] }>)[0]?.flags ?? []).includes('UP');
}

describe.each([
  ['a VLAN trunk bridge', { networkType: 'vlan', bridge: 'br-vlan', vlan: 100 } as NetworkRealization],
  ['an overlay bridge', { networkType: 'overlay', bridge: 'br-ovl-5001', vni: 5001 } as NetworkRealization],
])('secondary network policy pipeline on %s', (_what, net) => {
  let n: TestNode;
  const pods: Record<string, TestPod> = {};
  const gated: Array<{ port: AdmittedPort; up: boolean }> = [];

  beforeAll(async () => {
    n = await startNode('192.168.60.1');
    await n.dp.ensureNetwork(net);
    pods.allowed = await attachPod(n, net, '10.60.0.1/24');
    pods.other = await attachPod(n, net, '10.60.0.2/24');
    // From now on new ports pass the gate: it notes whether the port was down, then installs its policy.
    const admission = new PortAdmission();
    admission.register({ holds: () => true, open: async (port) => {
      const hostIfname = n.vs.cache.portsOf(net.bridge).find((p) => n.vs.cache.iface(p.name)?.ofport === port.ofport)?.name;
      gated.push({ port, up: hostIfname ? await hostLinkUp(n, hostIfname) : true });
      const { rules, isolations } = ingressFrom(port.ofport, pods.allowed!.addr);
      const ports = [pods.allowed!, pods.other!].map((p) => ({ ofport: p.att.ofport, mac: p.mac })).concat([{ ofport: port.ofport, mac: port.externalIds['seine-mac']! }]);
      const state: SecondaryBridgePolicy =
        net.networkType === 'vlan' ? { kind: 'trunk', round: 1, segments: [{ vlan: 100, ports }], rules, isolations } : { kind: 'overlay', round: 1, zone: overlayZone(5001), ports, rules, isolations };
      await new FlowWriter({ target: `unix:${n.sb.ovs.rundir}/${net.bridge}.mgmt`, bridge: net.bridge }).sync({ cookie: policyScope(), flows: secondaryPolicyFlows(state) });
    } });
    n.dp = newDatapath(n.sb, n.vs, n.nodeIp, 1, n.sb.ovs.rundir, admission);
    pods.guarded = await attachPod(n, net, '10.60.0.9/24');
  });
  afterAll(async () => {
    await stopNode(n);
  });

  it('holds the new port down until its gate has run', () => {
    expect(gated).toHaveLength(1);
    expect(gated[0]!.port.ofport).toBe(pods.guarded!.att.ofport);
    expect(gated[0]!.up).toBe(false);
  });

  it('lets the allowed peer in and keeps the other out', async () => {
    expect(await reaches(pods.allowed!.netns, pods.guarded!.addr)).toBe(true);
    expect((await ping(pods.other!.netns, pods.guarded!.addr, 3)).received).toBe(0);
  });

  it('brings the replies of the guarded pod\'s own connections back in, and leaves the others\' traffic alone', async () => {
    expect((await ping(pods.guarded!.netns, pods.other!.addr, 3)).received).toBeGreaterThan(0);
    expect((await ping(pods.other!.netns, pods.allowed!.addr, 3)).received).toBeGreaterThan(0);
  });
});

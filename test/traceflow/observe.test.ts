// What one packet-in of a trace says about the node (pure: a fake view of the node, registers as OVS reports them).
import type { PacketInPipeline } from '../../src/ovs/openflow/wire/messages.js';
import { OutPortFound, PacketDestinationField, ToGateway, ToLocalPod, ToTunnel } from '../../src/primary/pipeline/marks.js';
import type { TrafficMode } from '../../src/primary/pipeline/state.js';
import { EgressRuleField, IngressRuleField } from '../../src/policy/datapath/layout.js';
import type { PolicyRef, TracePacket } from '../../src/traceflow/api/types.js';
import { ObservationPoint } from '../../src/traceflow/datapath/flows.js';
import { tag, TAG_REG } from '../../src/chaining/datapath/layout.js';
import { observe, type NodeView } from '../../src/traceflow/datapath/observe.js';
import { buildFrame, parseFrame, type ParsedFrame } from '../../src/traceflow/model/frame.js';

const TUNNEL = 1;
const GATEWAY = 2;
const CLIENT_PORT = 5;
const SERVER_PORT = 6;

const NODES = [
  { name: 'node-a', ip: '192.168.0.1', subnet: '10.244.1.' },
  { name: 'node-b', ip: '192.168.0.2', subnet: '10.244.2.' },
];

const RULES = new Map<number, PolicyRef>([
  [7, { kind: 'NetworkPolicy', namespace: 'default', name: 'deny-egress', rule: 'egress-0' }],
  [8, { kind: 'NetworkPolicy', namespace: 'default', name: 'allow-web', rule: 'ingress-0' }],
  [9, { kind: 'ClusterNetworkPolicy', name: 'isolate', rule: 'ingress-1' }],
]);

/** The agent's view of one node: two local pods, the gateway and (encap) the tunnel. */
function viewOf(node: string, mode: TrafficMode = 'encap'): NodeView {
  const prefix = node === 'node-a' ? 'a' : 'b';
  const pods = new Map([
    [CLIENT_PORT, { pod: `default/${prefix}-client`, portName: `${prefix}-client-eth0` }],
    [SERVER_PORT, { pod: `default/${prefix}-server`, portName: `${prefix}-server-eth0` }],
  ]);
  return {
    node,
    mode,
    gatewayOfport: GATEWAY,
    ...(mode === 'encap' ? { tunnelOfport: TUNNEL } : {}),
    podByOfport: (ofport) => pods.get(ofport),
    nodeByIp: (ip) => NODES.find((n) => n.ip === ip)?.name,
    nodeByPodIp: (ip) => NODES.find((n) => ip.startsWith(n.subnet))?.name,
    rule: (id) => RULES.get(id),
  };
}

const nodeA = viewOf('node-a');
const nodeB = viewOf('node-b');

const toServerB: TracePacket = { sourceIP: '10.244.1.5', destinationIP: '10.244.2.6', protocol: 'TCP', sourcePort: 40000, destinationPort: 80, tcpFlags: 2, ttl: 64 };
const toServerA: TracePacket = { ...toServerB, destinationIP: '10.244.1.6' };
const toService: TracePacket = { ...toServerB, destinationIP: '10.96.0.10', destinationPort: 80 };
const fromA = (packet: TracePacket): { packet: TracePacket; sourceNode: string } => ({ packet, sourceNode: 'node-a' });

/** The packet as the datapath hands it back: built and read by the trace's own frame code. */
function frameOf(p: TracePacket, changes: Partial<TracePacket> = {}): ParsedFrame {
  const parsed = parseFrame(buildFrame({ ...p, ...changes }, { tag: 5, sourceMac: '02:00:00:00:00:05', destinationMac: '02:00:00:00:00:06', sequence: 1, ipId: 1, icmpId: 1 }));
  if (!parsed) throw new Error('the frame did not parse');
  return parsed;
}

/** Registers as L2ForwardingCalc and the policy stage leave them: reg0 port found and its kind, reg1 the port, reg5/reg6 the rules. */
function regs(r: { kind?: number; ofport?: number; egressRule?: number; ingressRule?: number }): number[] {
  const out = new Array<number>(16).fill(0);
  if (r.kind !== undefined) out[0] = (OutPortFound.value << 8) | (r.kind << PacketDestinationField.start);
  out[1] = r.ofport ?? 0;
  out[EgressRuleField.reg] = r.egressRule ?? 0;
  out[IngressRuleField.reg] = r.ingressRule ?? 0;
  return out;
}

const pipeline = (inPort: number, r: Parameters<typeof regs>[0] = {}, tunnel: Pick<PacketInPipeline, 'tunSrc' | 'tunDst'> = {}): PacketInPipeline => ({ inPort, regs: regs(r), ...tunnel });

describe('a trace packet observed on the sending node', () => {
  it('is forwarded by SpoofGuard and delivered to the local pod, naming the pod and its port', () => {
    const r = observe(nodeA, fromA(toServerA), ObservationPoint.output, pipeline(CLIENT_PORT, { kind: ToLocalPod.value, ofport: SERVER_PORT }), frameOf(toServerA));
    expect(r).toEqual({
      role: 'Sender',
      verdict: 'Delivered',
      observations: [
        { component: 'SpoofGuard', action: 'Forwarded', table: 'SpoofGuard' },
        { component: 'Forwarding', action: 'Delivered', table: 'Output', outputPort: 'a-server-eth0', pod: 'default/a-server' },
      ],
    });
  });

  it('names the port by number when no local pod holds it', () => {
    const r = observe(nodeA, fromA(toServerA), ObservationPoint.output, pipeline(CLIENT_PORT, { kind: ToLocalPod.value, ofport: 42 }), frameOf(toServerA));
    expect(r.observations.at(-1)).toEqual({ component: 'Forwarding', action: 'Delivered', table: 'Output', outputPort: '42' });
    expect(r.verdict).toBe('Delivered');
  });

  it("reports the Service's translation and the tunnel it was forwarded into, with no verdict (the peer has the rest)", () => {
    const frame = frameOf(toService, { destinationIP: '10.244.2.6', destinationPort: 8080 });
    const r = observe(nodeA, fromA(toService), ObservationPoint.output, pipeline(CLIENT_PORT, { kind: ToTunnel.value, ofport: TUNNEL }, { tunDst: '192.168.0.2' }), frame);
    expect(r).toEqual({
      role: 'Sender',
      observations: [
        { component: 'SpoofGuard', action: 'Forwarded', table: 'SpoofGuard' },
        { component: 'LoadBalancing', action: 'Translated', table: 'Service', translatedDestination: '10.244.2.6:8080' },
        { component: 'Forwarding', action: 'Forwarded', table: 'Output', outputPort: 'tunnel', tunnelDestination: '192.168.0.2', peerNode: 'node-b' },
      ],
    });
    expect('verdict' in r).toBe(false);
  });

  it('reports a translation of the port alone, and of an ICMP packet as the address alone', () => {
    const portOnly = observe(nodeA, fromA(toServerA), ObservationPoint.output, pipeline(CLIENT_PORT, { kind: ToLocalPod.value, ofport: SERVER_PORT }), frameOf(toServerA, { destinationPort: 8080 }));
    expect(portOnly.observations[1]).toEqual({ component: 'LoadBalancing', action: 'Translated', table: 'Service', translatedDestination: '10.244.1.6:8080' });
    const ping: TracePacket = { sourceIP: '10.244.1.5', destinationIP: '10.96.0.10', protocol: 'ICMP', ttl: 64 };
    const icmp = observe(nodeA, fromA(ping), ObservationPoint.output, pipeline(CLIENT_PORT, { kind: ToLocalPod.value, ofport: SERVER_PORT }), frameOf(ping, { destinationIP: '10.244.1.6' }));
    expect(icmp.observations[1]).toEqual({ component: 'LoadBalancing', action: 'Translated', table: 'Service', translatedDestination: '10.244.1.6' });
  });

  it('reports no translation when the frame still has the destination it was sent with, or there is no frame', () => {
    for (const frame of [frameOf(toServerB), undefined]) {
      const r = observe(nodeA, fromA(toServerB), ObservationPoint.output, pipeline(CLIENT_PORT, { kind: ToTunnel.value, ofport: TUNNEL }, { tunDst: '192.168.0.2' }), frame);
      expect(r.observations.map((o) => o.component)).toEqual(['SpoofGuard', 'Forwarding']);
    }
  });

  it('finds the peer of a tunnel without a tunnel destination by the pod subnet holding the destination', () => {
    const r = observe(nodeA, fromA(toServerB), ObservationPoint.output, pipeline(CLIENT_PORT, { kind: ToTunnel.value, ofport: TUNNEL }), frameOf(toServerB));
    expect(r.observations.at(-1)).toEqual({ component: 'Forwarding', action: 'Forwarded', table: 'Output', outputPort: 'tunnel', peerNode: 'node-b' });
  });

  it('reports an egress rule that allowed the packet before its forwarding', () => {
    const r = observe(nodeA, fromA(toServerA), ObservationPoint.output, pipeline(CLIENT_PORT, { kind: ToLocalPod.value, ofport: SERVER_PORT, egressRule: 8 }), frameOf(toServerA));
    expect(r.observations[1]).toEqual({ component: 'NetworkPolicy', action: 'Allowed', table: 'EgressPolicy', direction: 'Egress', policy: RULES.get(8) });
    expect(r.verdict).toBe('Delivered');
  });
});

describe('a trace packet observed on the receiving node', () => {
  it('is received from the tunnel, allowed by the ingress rule and delivered', () => {
    const r = observe(nodeB, fromA(toServerB), ObservationPoint.output, pipeline(TUNNEL, { kind: ToLocalPod.value, ofport: SERVER_PORT, ingressRule: 8 }, { tunSrc: '192.168.0.1' }), frameOf(toServerB));
    expect(r).toEqual({
      role: 'Receiver',
      verdict: 'Delivered',
      observations: [
        { component: 'Forwarding', action: 'Received', table: 'Classifier', peerNode: 'node-a', message: 'through the tunnel' },
        { component: 'NetworkPolicy', action: 'Allowed', table: 'IngressPolicy', direction: 'Ingress', policy: RULES.get(8) },
        { component: 'Forwarding', action: 'Delivered', table: 'Output', outputPort: 'b-server-eth0', pod: 'default/b-server' },
      ],
    });
  });

  it('names no peer for a tunnel source no node has', () => {
    const r = observe(nodeB, fromA(toServerB), ObservationPoint.output, pipeline(TUNNEL, { kind: ToLocalPod.value, ofport: SERVER_PORT }, { tunSrc: '203.0.113.9' }), frameOf(toServerB));
    expect(r.observations[0]).toEqual({ component: 'Forwarding', action: 'Received', table: 'Classifier', message: 'through the tunnel' });
  });

  it('is dropped by an ingress rule, naming the rule', () => {
    const r = observe(nodeB, fromA(toServerB), ObservationPoint.ingressDrop, pipeline(TUNNEL, { ofport: SERVER_PORT, ingressRule: 9 }, { tunSrc: '192.168.0.1' }), frameOf(toServerB));
    expect(r).toEqual({
      role: 'Receiver',
      verdict: 'Dropped',
      observations: [
        { component: 'Forwarding', action: 'Received', table: 'Classifier', peerNode: 'node-a', message: 'through the tunnel' },
        { component: 'NetworkPolicy', action: 'Dropped', table: 'IngressPolicy', direction: 'Ingress', policy: RULES.get(9) },
      ],
    });
  });

  it('is received from the gateway in noEncap mode and delivered', () => {
    const r = observe(viewOf('node-b', 'noEncap'), fromA(toServerB), ObservationPoint.output, pipeline(GATEWAY, { kind: ToLocalPod.value, ofport: SERVER_PORT }), frameOf(toServerB));
    expect(r).toEqual({
      role: 'Receiver',
      verdict: 'Delivered',
      observations: [
        { component: 'Forwarding', action: 'Received', table: 'Classifier', peerNode: 'node-a', message: "through the node's routing" },
        { component: 'Forwarding', action: 'Delivered', table: 'Output', outputPort: 'b-server-eth0', pod: 'default/b-server' },
      ],
    });
  });

  it('is a transit node when it forwards a packet from the tunnel into the tunnel', () => {
    const r = observe(nodeB, fromA(toServerA), ObservationPoint.output, pipeline(TUNNEL, { kind: ToTunnel.value, ofport: TUNNEL }, { tunSrc: '192.168.0.1', tunDst: '192.168.0.1' }), frameOf(toServerA));
    expect(r.role).toBe('Transit');
    expect(r.verdict).toBeUndefined();
    expect(r.observations.at(-1)).toMatchObject({ action: 'Forwarded', outputPort: 'tunnel', peerNode: 'node-a' });
  });

  it('is not a sender on the source node when the packet comes back in from the tunnel', () => {
    const r = observe(nodeA, fromA(toServerA), ObservationPoint.output, pipeline(TUNNEL, { kind: ToLocalPod.value, ofport: SERVER_PORT }, { tunSrc: '192.168.0.2' }), frameOf(toServerA));
    expect(r.role).toBe('Receiver');
    expect(r.observations.some((o) => o.component === 'SpoofGuard')).toBe(false);
  });
});

describe('a trace packet dropped by a policy', () => {
  it('is dropped on egress, naming the rule from the egress register', () => {
    const r = observe(nodeA, fromA(toServerB), ObservationPoint.egressDrop, pipeline(CLIENT_PORT, { egressRule: 7 }), frameOf(toServerB));
    expect(r).toEqual({
      role: 'Sender',
      verdict: 'Dropped',
      observations: [
        { component: 'SpoofGuard', action: 'Forwarded', table: 'SpoofGuard' },
        { component: 'NetworkPolicy', action: 'Dropped', table: 'EgressPolicy', direction: 'Egress', policy: RULES.get(7) },
      ],
    });
  });

  it('is dropped on ingress on the sending node after an egress rule allowed it', () => {
    const r = observe(nodeA, fromA(toServerA), ObservationPoint.ingressDrop, pipeline(CLIENT_PORT, { ofport: SERVER_PORT, egressRule: 8, ingressRule: 9 }), frameOf(toServerA));
    expect(r.observations).toEqual([
      { component: 'SpoofGuard', action: 'Forwarded', table: 'SpoofGuard' },
      { component: 'NetworkPolicy', action: 'Allowed', table: 'EgressPolicy', direction: 'Egress', policy: RULES.get(8) },
      { component: 'NetworkPolicy', action: 'Dropped', table: 'IngressPolicy', direction: 'Ingress', policy: RULES.get(9) },
    ]);
    expect(r).toMatchObject({ role: 'Sender', verdict: 'Dropped' });
  });

  it('names a rule the node no longer knows by its id, of kind Unknown', () => {
    const r = observe(nodeA, fromA(toServerB), ObservationPoint.egressDrop, pipeline(CLIENT_PORT, { egressRule: 42 }), frameOf(toServerB));
    expect(r.observations.at(-1)).toEqual({ component: 'NetworkPolicy', action: 'Dropped', table: 'EgressPolicy', direction: 'Egress', policy: { kind: 'Unknown', name: 'rule 42', rule: '42' } });
    // A rule id with the top bit set reads as the unsigned id.
    const high = observe(nodeB, fromA(toServerB), ObservationPoint.ingressDrop, pipeline(TUNNEL, { ingressRule: 0x8000_0001 }), frameOf(toServerB));
    expect(high.observations.at(-1)!.policy).toEqual({ kind: 'Unknown', name: `rule ${0x8000_0001}`, rule: String(0x8000_0001) });
  });
});

describe('a trace packet dropped by the pipeline', () => {
  it("is dropped by SpoofGuard on the sending node, before anything else is reported", () => {
    const r = observe(nodeA, fromA(toService), ObservationPoint.spoofGuard, pipeline(CLIENT_PORT, { egressRule: 7 }), frameOf(toService, { destinationIP: '10.244.2.6' }));
    expect(r).toEqual({
      role: 'Sender',
      verdict: 'Dropped',
      observations: [{ component: 'SpoofGuard', action: 'Dropped', table: 'SpoofGuard', message: "the source MAC or address is not the pod port's" }],
    });
  });

  it.each([
    [ObservationPoint.noRoute, 'L3Forwarding', "no node's pod subnet holds 10.244.9.9"],
    [ObservationPoint.noPort, 'L2ForwardingCalc', 'no port of the bridge has the destination MAC'],
    [ObservationPoint.invalid, 'ConntrackState', 'conntrack found the packet invalid'],
    [ObservationPoint.noOutput, 'Output', 'no output port was found'],
  ])('is dropped at observation point %i in %s, saying why', (point, table, message) => {
    const packet: TracePacket = { ...toServerB, destinationIP: '10.244.9.9' };
    const r = observe(nodeA, fromA(packet), point, pipeline(CLIENT_PORT), frameOf(packet));
    expect(r).toEqual({
      role: 'Sender',
      verdict: 'Dropped',
      observations: [
        { component: 'SpoofGuard', action: 'Forwarded', table: 'SpoofGuard' },
        { component: 'Forwarding', action: 'Dropped', table, message },
      ],
    });
  });

  it('names the translated destination that has no route, or the packet\'s own without a frame', () => {
    const translated = observe(nodeA, fromA(toService), ObservationPoint.noRoute, pipeline(CLIENT_PORT), frameOf(toService, { destinationIP: '10.244.7.7' }));
    expect(translated.observations.at(-1)!.message).toBe("no node's pod subnet holds 10.244.7.7");
    const noFrame = observe(nodeA, fromA(toService), ObservationPoint.noRoute, pipeline(CLIENT_PORT), undefined);
    expect(noFrame.observations.at(-1)!.message).toBe("no node's pod subnet holds 10.96.0.10");
  });

  it('reports an unknown observation point as a drop', () => {
    const r = observe(nodeA, fromA(toServerA), 99, pipeline(CLIENT_PORT, { kind: ToLocalPod.value, ofport: SERVER_PORT }), frameOf(toServerA));
    expect(r.observations.at(-1)).toEqual({ component: 'Forwarding', action: 'Dropped', message: 'unknown observation point 99' });
    expect(r.verdict).toBe('Dropped');
  });
});

describe('a trace packet leaving by the gateway', () => {
  const external: TracePacket = { ...toServerB, destinationIP: '192.0.2.1' };

  it("goes to the node's network stack in encap mode", () => {
    const r = observe(nodeA, fromA(external), ObservationPoint.output, pipeline(CLIENT_PORT, { kind: ToGateway.value, ofport: GATEWAY }), frameOf(external));
    expect(r).toEqual({
      role: 'Sender',
      verdict: 'ForwardedToNode',
      observations: [
        { component: 'SpoofGuard', action: 'Forwarded', table: 'SpoofGuard' },
        { component: 'Forwarding', action: 'Forwarded', table: 'Output', outputPort: 'gateway', message: "to the node's network stack" },
      ],
    });
  });

  it("is forwarded to the peer whose pod subnet holds the destination in noEncap mode, with no verdict", () => {
    const r = observe(viewOf('node-a', 'noEncap'), fromA(toServerB), ObservationPoint.output, pipeline(CLIENT_PORT, { kind: ToGateway.value, ofport: GATEWAY }), frameOf(toServerB));
    expect(r).toEqual({
      role: 'Sender',
      observations: [
        { component: 'SpoofGuard', action: 'Forwarded', table: 'SpoofGuard' },
        { component: 'Forwarding', action: 'Forwarded', table: 'Output', outputPort: 'gateway', peerNode: 'node-b' },
      ],
    });
    expect('verdict' in r).toBe(false);
  });

  it("goes to the node's network stack in noEncap mode when the destination is outside every peer's pod subnet or in the node's own", () => {
    for (const packet of [external, toServerA]) {
      const r = observe(viewOf('node-a', 'noEncap'), fromA(packet), ObservationPoint.output, pipeline(CLIENT_PORT, { kind: ToGateway.value, ofport: GATEWAY }), frameOf(packet));
      expect(r.verdict).toBe('ForwardedToNode');
      expect(r.observations.at(-1)).toEqual({ component: 'Forwarding', action: 'Forwarded', table: 'Output', outputPort: 'gateway', message: "to the node's network stack" });
    }
  });

  it('chained: hands a packet for a pod of the cluster to the node\'s routing, naming the pod\'s node when a subnet says it', () => {
    const out = pipeline(CLIENT_PORT, { kind: ToGateway.value, ofport: GATEWAY });
    const named = observe(viewOf('node-a', 'chained'), fromA(toServerB), ObservationPoint.output, out, frameOf(toServerB));
    expect(named.verdict).toBeUndefined();
    expect(named.observations.at(-1)).toMatchObject({ action: 'Forwarded', outputPort: 'gateway', peerNode: 'node-b' });
    // The cloud's pods have no per-node subnet: the pod's node is not known, and the packet goes on all the same.
    const cloud: NodeView = { ...viewOf('node-a', 'chained'), nodeByPodIp: () => undefined, inCluster: (ip) => ip.startsWith('10.244.') };
    const unnamed = observe(cloud, fromA(toServerB), ObservationPoint.output, out, frameOf(toServerB));
    expect(unnamed.verdict).toBeUndefined();
    expect(unnamed.role).toBe('Sender');
    expect(unnamed.observations.at(-1)).toEqual({ component: 'Forwarding', action: 'Forwarded', table: 'Output', outputPort: 'gateway', message: "to the node's routing, toward the pod's node" });
    // Outside the cluster: the node's own stack.
    expect(observe(cloud, fromA(external), ObservationPoint.output, out, frameOf(external)).verdict).toBe('ForwardedToNode');
  });

  it('names the port by number when the destination kind is none the pipeline sets', () => {
    const r = observe(nodeA, fromA(external), ObservationPoint.output, pipeline(CLIENT_PORT, { kind: 0, ofport: 9 }), frameOf(external));
    expect(r.observations.at(-1)).toEqual({ component: 'Forwarding', action: 'Forwarded', table: 'Output', outputPort: '9' });
    expect(r.verdict).toBe('ForwardedToNode');
  });
});

describe('the role of a node', () => {
  it('is never Sender when the trace does not say which node sent it', () => {
    const r = observe(nodeA, { packet: toServerA }, ObservationPoint.output, pipeline(CLIENT_PORT, { kind: ToLocalPod.value, ofport: SERVER_PORT }), frameOf(toServerA));
    expect(r.role).toBe('Receiver');
    expect(r.observations.map((o) => o.component)).toEqual(['Forwarding']);
  });
});

describe('a trace packet in a service chain', () => {
  const FUNCTION_PORT = 9;
  const chainView = (node: string): NodeView => ({
    ...viewOf(node),
    chainTarget: (chain, hop, replica) => (chain === 3 ? { namespace: 'default', name: 'sfc', hop: ['fw', 'ids'][hop] ?? `h${hop}`, replica: `default/cnf-${hop}-${replica}`, node: hop === 0 ? 'node-a' : 'node-b' } : undefined),
  });
  const withTag = (p: PacketInPipeline, t: { chain: number; hop: number; target?: number; from?: number; exit?: boolean }): PacketInPipeline => {
    const r = [...p.regs];
    r[TAG_REG] = tag({ chain: t.chain, hop: t.hop, direction: 0, target: t.target ?? 0, from: t.from ?? 0, ...(t.exit !== undefined ? { exit: t.exit } : {}) }).value;
    return { ...p, regs: r };
  };
  const fromClient = { ...fromA(toServerB), sourceOfport: CLIENT_PORT };

  it('is steered by the sender to a local replica of the first hop, after its own checks, and goes on', () => {
    const r = observe(chainView('node-a'), fromClient, ObservationPoint.chainTarget, withTag(pipeline(CLIENT_PORT), { chain: 3, hop: 0, target: 2 }), frameOf(toServerB));
    expect(r.role).toBe('Sender');
    expect(r.verdict).toBeUndefined();
    expect(r.observations.map((o) => `${o.component} ${o.action}`)).toEqual(['SpoofGuard Forwarded', 'ServiceChain Steered']);
    expect(r.observations[1]).toEqual(expect.objectContaining({ table: 'ChainTarget', chain: { namespace: 'default', name: 'sfc', hop: 'fw', replica: 'default/cnf-0-2' } }));
    expect(r.observations[1]!.peerNode).toBeUndefined();
  });

  it('is received back from the CNF (its port is not the source\'s) and steered to the next hop\'s replica on another node', () => {
    const r = observe(chainView('node-a'), fromClient, ObservationPoint.chainTarget, withTag(pipeline(FUNCTION_PORT), { chain: 3, hop: 1, target: 1, from: 2 }), frameOf(toServerB));
    expect(r.role).toBe('Transit');
    expect(r.observations).toEqual([
      expect.objectContaining({ component: 'ServiceChain', action: 'Received', chain: expect.objectContaining({ hop: 'fw', replica: 'default/cnf-0-2' }) }),
      expect.objectContaining({ component: 'ServiceChain', action: 'Steered', peerNode: 'node-b', chain: expect.objectContaining({ hop: 'ids', replica: 'default/cnf-1-1' }) }),
    ]);
  });

  it('leaves the chain after the last hop and is delivered: the hop it came back from is the tag\'s own', () => {
    const p = withTag(pipeline(FUNCTION_PORT, { kind: ToLocalPod.value, ofport: SERVER_PORT }), { chain: 3, hop: 1, from: 1, exit: true });
    const r = observe(chainView('node-b'), { ...fromA(toServerB) }, ObservationPoint.output, p, frameOf(toServerB));
    expect(r.role).toBe('Receiver');
    expect(r.verdict).toBe('Delivered');
    expect(r.observations[0]).toEqual(expect.objectContaining({ component: 'ServiceChain', action: 'Received', chain: expect.objectContaining({ hop: 'ids', replica: 'default/cnf-1-1' }) }));
  });

  it('names an unknown chain by its index', () => {
    const r = observe(chainView('node-a'), fromClient, ObservationPoint.chainTarget, withTag(pipeline(CLIENT_PORT), { chain: 7, hop: 0, target: 1 }), frameOf(toServerB));
    expect(r.observations.at(-1)!.chain).toEqual({ namespace: '', name: 'chain 7', hop: '0', replica: '1' });
  });
});

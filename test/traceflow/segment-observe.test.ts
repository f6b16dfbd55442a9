// What one packet-in of a trace on a secondary network's bridge says, and where the agent sends the packet on (pure:
// a fake view of the node's bridge, registers as OVS reports them).
import { tag, TAG_REG } from '../../src/chaining/datapath/layout.js';
import type { PacketInPipeline } from '../../src/ovs/openflow/wire/messages.js';
import { SECONDARY_VERDICTS } from '../../src/policy/datapath/secondary.js';
import type { BridgePorts } from '../../src/secondary/datapath/types.js';
import type { PolicyRef, TracePacket, TraceNetwork } from '../../src/traceflow/api/types.js';
import { ObservationPoint } from '../../src/traceflow/datapath/flows.js';
import { observeSegment, type SegmentView } from '../../src/traceflow/datapath/segment-observe.js';
import { buildFrame, parseFrame, type ParsedFrame } from '../../src/traceflow/model/frame.js';

const CLIENT_MAC = '0a:00:00:00:00:05';
const SERVER_MAC = '0a:00:00:00:00:06';
const UPLINK = 1;
const CLIENT = 5;
const SERVER = 6;
const TUNNEL_B = 11;
const TUNNEL_C = 12;

const VLAN: TraceNetwork = { name: 'default/vlan100', type: 'vlan', bridge: 'br-vlan', vlan: 100, interface: 'net1', destinationNode: 'node-b' };
const BLUE: TraceNetwork = { name: 'default/blue', type: 'overlay', bridge: 'br-ovl-5001', vni: 5001, interface: 'net2', destinationNode: 'node-b' };
const RULES = new Map<number, PolicyRef>([[3, { kind: 'MultiNetworkPolicy', namespace: 'default', name: 'server-only-8080', rule: 'isolation-ingress' }]]);
const NODE_IPS = new Map([
  ['192.168.0.2', 'node-b'],
  ['192.168.0.3', 'node-c'],
]);

const trunk = (pods: BridgePorts['pods'], uplink = true): BridgePorts => ({ kind: 'trunk', ...(uplink ? { uplink: { name: 'eth1', ofport: UPLINK } } : {}), tunnels: [], pods });
const overlay = (pods: BridgePorts['pods'], tunnels = [{ name: 'v-b', ofport: TUNNEL_B, remoteIp: '192.168.0.2' }, { name: 'v-c', ofport: TUNNEL_C, remoteIp: '192.168.0.3' }]): BridgePorts => ({ kind: 'overlay', tunnels, pods });
const clientPort = { name: 'client-net1', ofport: CLIENT, mac: CLIENT_MAC, vlan: 100, pod: 'default/client', ifname: 'net1' };
const serverPort = { name: 'server-net1', ofport: SERVER, mac: SERVER_MAC, vlan: 100, pod: 'default/server', ifname: 'net1' };

const view = (node: string, network: TraceNetwork, ports: BridgePorts): SegmentView => ({ node, network, ports, nodeByIp: (ip) => NODE_IPS.get(ip), rule: (id) => RULES.get(id) });

const packet: TracePacket = { sourceIP: '10.100.0.5', destinationIP: '10.100.0.6', sourceMAC: CLIENT_MAC, destinationMAC: SERVER_MAC, protocol: 'TCP', sourcePort: 40000, destinationPort: 80, tcpFlags: 2, ttl: 64 };
const fromA = (sourceOfport?: number): { packet: TracePacket; sourceNode: string; sourceOfport?: number } => ({ packet, sourceNode: 'node-a', ...(sourceOfport !== undefined ? { sourceOfport } : {}) });
const frame = (): ParsedFrame => parseFrame(buildFrame(packet, { tag: 5, sourceMac: CLIENT_MAC, destinationMac: SERVER_MAC, sequence: 1, ipId: 1, icmpId: 1 }))!;

/** The pipeline at the packet-in: the input port, reg1 (an overlay's learned port; bit 16 a tunnel), the rules in reg4/reg5. */
function pipeline(inPort: number, r: { learned?: number; egressRule?: number; ingressRule?: number } = {}): PacketInPipeline {
  const regs = new Array<number>(16).fill(0);
  regs[1] = r.learned ?? 0;
  regs[SECONDARY_VERDICTS.ruleField.Egress.reg] = r.egressRule ?? 0;
  regs[SECONDARY_VERDICTS.ruleField.Ingress.reg] = r.ingressRule ?? 0;
  return { inPort, regs };
}

describe('a trace on a VLAN network', () => {
  it('is delivered at the port of a local pod with the destination MAC on the VLAN, and sent nowhere', () => {
    const out = observeSegment(view('node-a', { ...VLAN, destinationNode: 'node-a' }, trunk([clientPort, serverPort])), fromA(CLIENT), ObservationPoint.output, pipeline(CLIENT), frame());
    expect(out).toEqual({
      result: { role: 'Sender', verdict: 'Delivered', observations: [{ component: 'Forwarding', action: 'Delivered', table: 'Normal', outputPort: 'server-net1', pod: 'default/server', message: 'to net1 of the pod' }] },
    });
  });

  it('leaves a port with the MAC on another VLAN alone: out of the uplink, tagged, toward the destination\'s node', () => {
    const out = observeSegment(view('node-a', VLAN, trunk([clientPort, { ...serverPort, vlan: 200 }])), fromA(CLIENT), ObservationPoint.output, pipeline(CLIENT), frame());
    expect(out.sendOut).toEqual({ ofports: [UPLINK], vlan: 100 });
    expect(out.result).toEqual({ role: 'Sender', observations: [{ component: 'Forwarding', action: 'Forwarded', table: 'Normal', outputPort: 'eth1', peerNode: 'node-b', message: 'out of the uplink, tagged VLAN 100' }] });
  });

  it('is dropped at the sender when the MAC is on no local port and the bridge has no uplink', () => {
    const out = observeSegment(view('node-a', VLAN, trunk([clientPort], false)), fromA(CLIENT), ObservationPoint.output, pipeline(CLIENT), frame());
    expect(out.sendOut).toBeUndefined();
    expect(out.result?.verdict).toBe('Dropped');
    expect(out.result?.observations[0]?.message).toMatch(/no port of VLAN 100 on node-a has 0a:00:00:00:00:06, and the bridge has no uplink/);
  });

  it('received from the uplink: delivered on the node that has the MAC, nothing from a node that does not', () => {
    const b = observeSegment(view('node-b', VLAN, trunk([serverPort])), fromA(), ObservationPoint.output, pipeline(UPLINK), frame());
    expect(b).toEqual({
      result: {
        role: 'Receiver',
        verdict: 'Delivered',
        observations: [
          { component: 'Forwarding', action: 'Received', table: 'Classifier', peerNode: 'node-a', message: 'from the uplink eth1, tagged VLAN 100' },
          { component: 'Forwarding', action: 'Delivered', table: 'Normal', outputPort: 'server-net1', pod: 'default/server', message: 'to net1 of the pod' },
        ],
      },
    });
    // Flooded to a third node: not the trace's path, and never sent on from there.
    expect(observeSegment(view('node-c', VLAN, trunk([])), fromA(), ObservationPoint.output, pipeline(UPLINK), frame())).toEqual({});
  });

  it('names the MultiNetworkPolicy rule that dropped it on the receiver', () => {
    const out = observeSegment(view('node-b', VLAN, trunk([serverPort])), fromA(), ObservationPoint.ingressDrop, pipeline(UPLINK, { ingressRule: 3 }), frame());
    expect(out.result?.verdict).toBe('Dropped');
    expect(out.result?.observations.at(-1)).toEqual({ component: 'NetworkPolicy', action: 'Dropped', table: 'IngressPolicy', direction: 'Ingress', policy: RULES.get(3) });
    // A rule id the node does not know (any more) is still shown.
    const unknown = observeSegment(view('node-b', VLAN, trunk([serverPort])), fromA(), ObservationPoint.egressDrop, pipeline(UPLINK, { egressRule: 99 }), frame());
    expect(unknown.result?.observations.at(-1)?.policy).toEqual({ kind: 'Unknown', name: 'rule 99', rule: '99' });
  });

  it('ignores a packet-in from a pod port that is not the source\'s', () => {
    expect(observeSegment(view('node-a', VLAN, trunk([clientPort, serverPort])), fromA(CLIENT), ObservationPoint.output, pipeline(SERVER), frame())).toEqual({});
  });
});

describe('a trace on an overlay network', () => {
  it('goes into the tunnel the bridge learned for the MAC, naming the node', () => {
    const out = observeSegment(view('node-a', BLUE, overlay([clientPort])), fromA(CLIENT), ObservationPoint.output, pipeline(CLIENT, { learned: 0x10000 | TUNNEL_C }), frame());
    expect(out.sendOut).toEqual({ ofports: [TUNNEL_C] });
    expect(out.result).toEqual({ role: 'Sender', observations: [{ component: 'Forwarding', action: 'Forwarded', table: 'Forward', outputPort: 'tunnel', tunnelDestination: '192.168.0.3', peerNode: 'node-c' }] });
  });

  it('is flooded into every tunnel while the MAC is not learned, toward the destination\'s node', () => {
    const out = observeSegment(view('node-a', BLUE, overlay([clientPort])), fromA(CLIENT), ObservationPoint.output, pipeline(CLIENT), frame());
    expect(out.sendOut).toEqual({ ofports: [TUNNEL_B, TUNNEL_C] });
    expect(out.result?.observations).toEqual([expect.objectContaining({ action: 'Forwarded', outputPort: 'tunnel', peerNode: 'node-b', message: expect.stringMatching(/not learned yet: flooded into the tunnels to 2 node\(s\)/) })]);
  });

  it('is dropped when no other node has pods on the VNI', () => {
    const out = observeSegment(view('node-a', BLUE, overlay([clientPort], [])), fromA(CLIENT), ObservationPoint.output, pipeline(CLIENT), frame());
    expect(out.result?.verdict).toBe('Dropped');
    expect(out.result?.observations[0]?.message).toMatch(/no other node has pods on it/);
  });

  it('received through a tunnel: from the tunnel\'s node, an allowing rule named, delivered', () => {
    const out = observeSegment(view('node-b', BLUE, overlay([serverPort], [{ name: 'v-a', ofport: TUNNEL_B, remoteIp: '192.168.0.1' }])), fromA(), ObservationPoint.output, pipeline(TUNNEL_B, { ingressRule: 3 }), frame());
    expect(out.result?.role).toBe('Receiver');
    expect(out.result?.verdict).toBe('Delivered');
    expect(out.result?.observations.map((o) => [o.component, o.action])).toEqual([
      ['Forwarding', 'Received'],
      ['NetworkPolicy', 'Allowed'],
      ['Forwarding', 'Delivered'],
    ]);
    // The tunnel's remote IP is no node the agent knows: received, without a name.
    expect(out.result?.observations[0]).toEqual({ component: 'Forwarding', action: 'Received', table: 'Classifier', message: 'through the tunnel of VNI 5001' });
  });

  it('reports conntrack\'s invalid verdict as a drop', () => {
    const out = observeSegment(view('node-a', BLUE, overlay([clientPort])), fromA(CLIENT), ObservationPoint.invalid, pipeline(CLIENT), frame());
    expect(out.result).toEqual({ role: 'Sender', verdict: 'Dropped', observations: [{ component: 'Forwarding', action: 'Dropped', table: 'ConntrackState', message: 'conntrack found the packet invalid' }] });
  });
});

describe('a trace through a service chain on a secondary network', () => {
  const FUNCTION_PORT = 20;
  const CHAIN_TUNNEL = 30;
  const withChain = (ports: BridgePorts): BridgePorts => ({ ...ports, chainTunnel: { name: 'sc0123', ofport: CHAIN_TUNNEL } });
  const chainView = (node: string, ports: BridgePorts): SegmentView => ({
    ...view(node, VLAN, withChain(ports)),
    chainTarget: (chain, hop, replica) => (chain === 4 ? { namespace: 'default', name: 'vlan-sfc', hop: ['fw', 'nat'][hop] ?? `h${hop}`, replica: `default/cnf-${hop}-${replica}`, node: hop === 0 ? 'node-a' : 'node-b' } : undefined),
  });
  const tagged = (p: PacketInPipeline, t: { hop: number; target?: number; from?: number; exit?: boolean }, tunSrc?: string): PacketInPipeline => {
    const regs = [...p.regs];
    regs[TAG_REG] = tag({ chain: 4, hop: t.hop, direction: 0, target: t.target ?? 0, from: t.from ?? 0, ...(t.exit !== undefined ? { exit: t.exit } : {}) }).value;
    return { ...p, regs, ...(tunSrc ? { tunSrc } : {}) };
  };

  it('is steered by the sender into a local replica\'s port, and goes on (no verdict, nothing sent by the agent)', () => {
    const out = observeSegment(chainView('node-a', trunk([clientPort])), fromA(CLIENT), ObservationPoint.chainTarget, tagged(pipeline(CLIENT), { hop: 0, target: 1 }), frame());
    expect(out).toEqual({ result: { role: 'Sender', observations: [{ component: 'ServiceChain', action: 'Steered', table: 'ChainTarget', chain: { namespace: 'default', name: 'vlan-sfc', hop: 'fw', replica: 'default/cnf-0-1' }, message: "into the replica's port" }] } });
  });

  it('back from the CNF, steered to the next hop\'s replica on another node through the chain tunnel', () => {
    const out = observeSegment(chainView('node-a', trunk([clientPort])), fromA(CLIENT), ObservationPoint.chainTarget, tagged(pipeline(FUNCTION_PORT), { hop: 1, target: 2, from: 1 }), frame());
    expect(out.result?.role).toBe('Transit');
    expect(out.result?.observations).toEqual([
      { component: 'ServiceChain', action: 'Received', table: 'Classifier', chain: { namespace: 'default', name: 'vlan-sfc', hop: 'fw', replica: 'default/cnf-0-1' }, message: 'back from the CNF' },
      { component: 'ServiceChain', action: 'Steered', table: 'ChainTarget', chain: { namespace: 'default', name: 'vlan-sfc', hop: 'nat', replica: 'default/cnf-1-2' }, peerNode: 'node-b', message: "through the chain tunnel to the replica's node" },
    ]);
  });

  it('on the replica\'s node: received through the chain tunnel from the node that sent it', () => {
    const out = observeSegment(chainView('node-b', trunk([serverPort])), fromA(), ObservationPoint.chainTarget, tagged(pipeline(CHAIN_TUNNEL), { hop: 1, target: 2 }, '192.168.0.3'), frame());
    expect(out.result?.observations[0]).toEqual({ component: 'Forwarding', action: 'Received', table: 'Classifier', peerNode: 'node-c', message: 'through the chain tunnel of VLAN 100' });
  });

  it('leaves the chain toward the destination\'s node, or to the destination\'s port here (the end)', () => {
    const away = observeSegment(chainView('node-a', trunk([clientPort])), fromA(CLIENT), ObservationPoint.chainExit, tagged(pipeline(FUNCTION_PORT), { hop: 1, from: 2, exit: true }), frame());
    expect(away.sendOut).toBeUndefined();
    expect(away.result?.observations.at(-1)).toEqual({ component: 'Forwarding', action: 'Forwarded', table: 'ChainExit', outputPort: 'chain tunnel', peerNode: 'node-b', message: "out of the chain, toward the destination pod's node" });
    expect(away.result?.verdict).toBeUndefined();
    const here = observeSegment(chainView('node-b', trunk([serverPort])), fromA(), ObservationPoint.chainDelivered, tagged(pipeline(CHAIN_TUNNEL), { hop: 1, exit: true }, '192.168.0.2'), frame());
    expect(here.result).toEqual({
      role: 'Receiver',
      verdict: 'Delivered',
      observations: [
        { component: 'Forwarding', action: 'Received', table: 'Classifier', peerNode: 'node-b', message: 'through the chain tunnel of VLAN 100' },
        { component: 'Forwarding', action: 'Delivered', table: 'ChainExit', outputPort: 'server-net1', pod: 'default/server', message: 'out of the chain to net1 of the pod' },
      ],
    });
  });

  it('ignores a port that is neither the source\'s, a tunnel, the uplink nor a CNF\'s with a chained packet', () => {
    expect(observeSegment(chainView('node-a', trunk([clientPort])), fromA(CLIENT), ObservationPoint.chainTarget, pipeline(FUNCTION_PORT), frame())).toEqual({});
  });
});

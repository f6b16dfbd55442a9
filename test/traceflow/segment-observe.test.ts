// What one packet-in of a trace on a secondary network's bridge says, and where the agent sends the packet on (pure:
// a fake view of the node's bridge, registers as OVS reports them).
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

// What one packet-in of a trace on a secondary network's bridge says, and where the agent sends the packet on: the
// node's observations (received from the uplink or a tunnel, MultiNetworkPolicy verdicts from the registers the
// policy stage left, forwarding), where the bridge would send it (a local pod's port with the destination MAC, on
// the trace's VLAN for a trunk bridge; else the uplink, or the overlay's learned tunnel, or every tunnel while the
// MAC is not learned), and, for a packet that leaves the node, the ports to send it out of. A service chain on the
// network: the replica it is steered to, back from the CNF, and where it leaves the chain.
import type { PacketInPipeline } from '../../ovs/openflow/wire/messages.js';
import { SECONDARY_VERDICTS } from '../../policy/datapath/secondary.js';
import type { BridgePorts } from '../../secondary/datapath/types.js';
import type { Observation, PolicyRef, TracePacket, TraceNetwork } from '../api/types.js';
import type { ParsedFrame } from '../model/frame.js';
import { ObservationPoint } from './flows.js';
import { backFromCnf, chainTagOf, INVALID_DROP, policyVerdicts, steered, type ChainRef, type NodeObservations } from './observe.js';

/** What the agent knows of its node's bridge of the network and of the cluster. */
export interface SegmentView {
  node: string;
  network: TraceNetwork;
  ports: BridgePorts;
  /** A node by one of its addresses. */
  nodeByIp(ip: string): string | undefined;
  /** A MultiNetworkPolicy rule of this bridge by its id. */
  rule(ruleId: number): PolicyRef | undefined;
  /** The chain, hop and replica a chain tag names on this network, with the replica's node. */
  chainTarget?(chain: number, hop: number, replica: number): ChainRef | undefined;
}

export interface SegmentTrace {
  packet: TracePacket;
  sourceNode?: string;
  /** The source pod's port on this bridge, on the source's node. */
  sourceOfport?: number;
  /** The DSCP tag it was injected with. */
  tag?: number;
}

export interface SegmentOutcome {
  /** This node's observations; none when the packet is not the trace's path here (flooded to a node without the destination). */
  result?: NodeObservations;
  /** Ports the agent sends the packet out of (into the uplink, tagged with `vlan`; into tunnels). */
  sendOut?: { ofports: number[]; vlan?: number };
}

/** An overlay bridge's MAC table result in reg1: the port in bits 0..15, bit 16 set for a tunnel. */
const LEARNED_PORT_MASK = 0xffff;

export function observeSegment(view: SegmentView, trace: SegmentTrace, point: number, pipeline: PacketInPipeline, frame: ParsedFrame | undefined): SegmentOutcome {
  const { ports, network } = view;
  const inPort = pipeline.inPort;
  const uplink = ports.uplink && ports.uplink.ofport === inPort ? ports.uplink : undefined;
  const tunnel = ports.tunnels.find((t) => t.ofport === inPort);
  const chainTunnel = ports.chainTunnel && ports.chainTunnel.ofport === inPort ? ports.chainTunnel : undefined;
  const sender = view.node === trace.sourceNode && inPort === trace.sourceOfport;
  const chainTag = chainTagOf(pipeline);
  const fromCnf = !sender && !uplink && !tunnel && !chainTunnel && chainTag.chained && chainTag.from > 0;
  if (!sender && !uplink && !tunnel && !chainTunnel && !fromCnf) return {};
  const obs: Observation[] = [];
  const end = (verdict: NodeObservations['verdict']): SegmentOutcome => ({ result: { role: sender ? 'Sender' : 'Receiver', observations: obs, ...(verdict ? { verdict } : {}) } });
  const segment = network.type === 'vlan' ? `VLAN ${network.vlan}` : `VNI ${network.vni}`;

  if (uplink) {
    const from = trace.sourceNode && trace.sourceNode !== view.node ? { peerNode: trace.sourceNode } : {};
    obs.push({ component: 'Forwarding', action: 'Received', table: 'Classifier', ...from, message: `from the uplink ${uplink.name}, tagged ${segment}` });
  } else if (tunnel) {
    const peer = view.nodeByIp(tunnel.remoteIp);
    obs.push({ component: 'Forwarding', action: 'Received', table: 'Classifier', ...(peer ? { peerNode: peer } : {}), message: `through the tunnel of ${segment}` });
  } else if (chainTunnel) {
    const peer = pipeline.tunSrc ? view.nodeByIp(pipeline.tunSrc) : undefined;
    obs.push({ component: 'Forwarding', action: 'Received', table: 'Classifier', ...(peer ? { peerNode: peer } : {}), message: `through the chain tunnel of ${segment}` });
  } else if (fromCnf) {
    obs.push(backFromCnf(view, pipeline, trace, frame));
  }

  const regs = pipeline.regs;
  const rules = { egress: (regs[SECONDARY_VERDICTS.ruleField.Egress.reg] ?? 0) >>> 0, ingress: (regs[SECONDARY_VERDICTS.ruleField.Ingress.reg] ?? 0) >>> 0 };
  if (policyVerdicts(view, point, rules, obs)) return end('Dropped');
  if (point === ObservationPoint.invalid) {
    obs.push(INVALID_DROP);
    return end('Dropped');
  }
  const toNode = network.destinationNode && network.destinationNode !== view.node ? { peerNode: network.destinationNode } : {};
  const going = (): SegmentOutcome => ({ result: { role: sender ? 'Sender' : 'Transit', observations: obs } });
  if (point === ObservationPoint.chainTarget) {
    obs.push(steered(view, pipeline, 'the chain tunnel'));
    return going();
  }
  if (point === ObservationPoint.chainExit) {
    obs.push({ component: 'Forwarding', action: 'Forwarded', table: 'ChainExit', outputPort: 'chain tunnel', ...toNode, message: "out of the chain, toward the destination pod's node" });
    return going();
  }
  if (point === ObservationPoint.chainDelivered) {
    const to = ports.pods.find((p) => p.mac === trace.packet.destinationMAC);
    obs.push({ component: 'Forwarding', action: 'Delivered', table: 'ChainExit', outputPort: to?.name ?? '', ...(to ? { pod: to.pod } : {}), message: `out of the chain${to ? ` to ${to.ifname} of the pod` : ''}` });
    return end('Delivered');
  }
  if (point !== ObservationPoint.output) {
    obs.push({ component: 'Forwarding', action: 'Dropped', message: `unknown observation point ${point}` });
    return end('Dropped');
  }

  const table = ports.kind === 'trunk' ? 'Normal' : 'Forward';
  const mac = (frame?.destinationMac ?? trace.packet.destinationMAC ?? '').toLowerCase();
  const local = ports.pods.find((p) => p.mac === mac && p.ofport !== inPort && (ports.kind === 'overlay' || p.vlan === network.vlan));
  if (local) {
    obs.push({ component: 'Forwarding', action: 'Delivered', table, outputPort: local.name, pod: local.pod, message: `to ${local.ifname} of the pod` });
    return end('Delivered');
  }
  // Flooded here from another node, which has the destination: not this node's part of the path.
  if (!sender) return {};
  if (ports.kind === 'trunk') {
    if (!ports.uplink) {
      obs.push({ component: 'Forwarding', action: 'Dropped', table, message: `no port of ${segment} on ${view.node} has ${mac}, and the bridge has no uplink to other nodes` });
      return end('Dropped');
    }
    obs.push({ component: 'Forwarding', action: 'Forwarded', table, outputPort: ports.uplink.name, ...toNode, message: `out of the uplink, tagged ${segment}` });
    return { ...end(undefined), sendOut: { ofports: [ports.uplink.ofport], vlan: network.vlan! } };
  }
  const learned = (regs[1] ?? 0) & LEARNED_PORT_MASK;
  const learnedTunnel = ports.tunnels.find((t) => t.ofport === learned);
  if (learnedTunnel) {
    const peer = view.nodeByIp(learnedTunnel.remoteIp);
    obs.push({ component: 'Forwarding', action: 'Forwarded', table, outputPort: 'tunnel', tunnelDestination: learnedTunnel.remoteIp, ...(peer ? { peerNode: peer } : toNode) });
    return { ...end(undefined), sendOut: { ofports: [learnedTunnel.ofport] } };
  }
  if (!ports.tunnels.length) {
    obs.push({ component: 'Forwarding', action: 'Dropped', table, message: `no port of ${segment} on ${view.node} has ${mac}, and no other node has pods on it` });
    return end('Dropped');
  }
  obs.push({ component: 'Forwarding', action: 'Forwarded', table, outputPort: 'tunnel', ...toNode, message: `${mac} not learned yet: flooded into the tunnels to ${ports.tunnels.length} node(s)` });
  return { ...end(undefined), sendOut: { ofports: ports.tunnels.map((t) => t.ofport) } };
}

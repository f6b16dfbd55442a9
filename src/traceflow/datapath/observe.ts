// What one packet-in of a trace says: the node's observations in pipeline order (spoof guard, Service load balancing,
// egress policy, forwarding, ingress policy, output), read from where the flow that sent it sits (its cookie), the
// registers the pipeline and the policy stage left (output port and kind, deciding rules), the tunnel metadata and
// the packet itself (translated by the Service stage).
import { PacketDestinationField, ToGateway, ToLocalPod, ToTunnel, type RegField } from '../../primary/pipeline/marks.js';
import type { PacketInPipeline } from '../../ovs/openflow/wire/messages.js';
import type { TrafficMode } from '../../primary/pipeline/state.js';
import { EgressRuleField, IngressRuleField } from '../../policy/datapath/layout.js';
import type { NodeRole, Observation, PolicyRef, TracePacket, TraceVerdict } from '../api/types.js';
import type { ParsedFrame } from '../model/frame.js';
import { decodeTag, Tag, TAG_BITS, TAG_REG } from '../../chaining/datapath/layout.js';
import { ObservationPoint } from './flows.js';

/** What the agent knows of its node and the cluster, to name what the registers hold. */
export interface NodeView {
  node: string;
  mode: TrafficMode;
  gatewayOfport: number;
  tunnelOfport?: number;
  /** The local pod on this port, and the port's name. */
  podByOfport(ofport: number): { pod: string; portName: string } | undefined;
  /** A node by one of its addresses. */
  nodeByIp(ip: string): string | undefined;
  /** The node whose pod subnet holds the address. */
  nodeByPodIp(ip: string): string | undefined;
  /** The address is in the cluster's pod block (what the observation flows send on through the node's routes). */
  inCluster?(ip: string): boolean;
  /** A rule of the policy stage by its id. */
  rule(ruleId: number): PolicyRef | undefined;
  /** The chain, hop and replica a chain tag names on the pod network, with the replica's node. */
  chainTarget?(chain: number, hop: number, replica: number): ChainRef | undefined;
}

export interface ChainRef {
  namespace: string;
  name: string;
  hop: string;
  replica: string;
  node: string;
}

/** What observe() needs of the trace: its packet, and where it was injected (the port, on the source's node). */
export interface TraceRef {
  packet: TracePacket;
  sourceNode?: string;
  sourceOfport?: number;
  /** The DSCP tag it was injected with. */
  tag?: number;
}

export interface NodeObservations {
  role: NodeRole;
  observations: Observation[];
  /** Set where the packet's path ends on this node. */
  verdict?: TraceVerdict;
}

const field = (regs: readonly number[], f: RegField): number => {
  const v = regs[f.reg] ?? 0;
  const width = f.end - f.start + 1;
  return width === 32 ? v >>> 0 : Math.floor(v / 2 ** f.start) % 2 ** width;
};

/** What a rule id names: the policy's rule, or the id when the node no longer knows it. */
function ruleRef(view: Pick<NodeView, 'rule'>, ruleId: number): PolicyRef {
  return view.rule(ruleId) ?? { kind: 'Unknown', name: `rule ${ruleId}`, rule: String(ruleId) };
}

/**
 * The policy stage's verdicts on the packet, from the deciding rules it recorded: egress then ingress, each allowed
 * or, at its drop point, dropped (true: the packet ends there).
 */
export function policyVerdicts(view: Pick<NodeView, 'rule'>, point: number, rules: { egress: number; ingress: number }, obs: Observation[]): boolean {
  if (point === ObservationPoint.egressDrop) {
    obs.push({ component: 'NetworkPolicy', action: 'Dropped', table: 'EgressPolicy', direction: 'Egress', policy: ruleRef(view, rules.egress) });
    return true;
  }
  if (rules.egress) obs.push({ component: 'NetworkPolicy', action: 'Allowed', table: 'EgressPolicy', direction: 'Egress', policy: ruleRef(view, rules.egress) });
  if (point === ObservationPoint.ingressDrop) {
    obs.push({ component: 'NetworkPolicy', action: 'Dropped', table: 'IngressPolicy', direction: 'Ingress', policy: ruleRef(view, rules.ingress) });
    return true;
  }
  if (rules.ingress) obs.push({ component: 'NetworkPolicy', action: 'Allowed', table: 'IngressPolicy', direction: 'Ingress', policy: ruleRef(view, rules.ingress) });
  return false;
}

/** Conntrack found the packet invalid (it drops). */
export const INVALID_DROP: Observation = { component: 'Forwarding', action: 'Dropped', table: 'ConntrackState', message: 'conntrack found the packet invalid' };

export function observe(view: NodeView, trace: TraceRef, point: number, pipeline: PacketInPipeline, frame: ParsedFrame | undefined): NodeObservations {
  const obs: Observation[] = [];
  const fromTunnel = view.tunnelOfport !== undefined && pipeline.inPort === view.tunnelOfport;
  const fromGateway = pipeline.inPort === view.gatewayOfport;
  const sender = view.node === trace.sourceNode && (trace.sourceOfport !== undefined ? pipeline.inPort === trace.sourceOfport : !fromTunnel && !fromGateway);
  const chainTag = chainTagOf(pipeline);
  const end = (verdict: TraceVerdict): NodeObservations => ({ role: sender ? 'Sender' : 'Receiver', observations: obs, verdict });

  if (fromTunnel) obs.push({ component: 'Forwarding', action: 'Received', table: 'Classifier', ...peer(view, pipeline.tunSrc), message: 'through the tunnel' });
  else if (fromGateway) {
    // noEncap: a peer's pod routed here by the node; its subnet names the node it came from.
    const from = view.nodeByPodIp(trace.packet.sourceIP);
    obs.push({ component: 'Forwarding', action: 'Received', table: 'Classifier', ...(from && from !== view.node ? { peerNode: from } : {}), message: "through the node's routing" });
  } else if (!sender && chainTag.chained && chainTag.from) {
    obs.push(backFromCnf(view, pipeline, trace, frame));
  }
  if (sender) {
    if (point === ObservationPoint.spoofGuard) {
      obs.push({ component: 'SpoofGuard', action: 'Dropped', table: 'SpoofGuard', message: "the source MAC or address is not the pod port's" });
      return end('Dropped');
    }
    obs.push({ component: 'SpoofGuard', action: 'Forwarded', table: 'SpoofGuard' });
    const translated = frame && translation(trace.packet, frame);
    if (translated) obs.push({ component: 'LoadBalancing', action: 'Translated', table: 'Service', translatedDestination: translated });
  }

  if (policyVerdicts(view, point, { egress: field(pipeline.regs, EgressRuleField), ingress: field(pipeline.regs, IngressRuleField) }, obs)) return end('Dropped');

  const dst = frame?.destinationIP ?? trace.packet.destinationIP;
  if (point === ObservationPoint.chainTarget) {
    obs.push(steered(view, pipeline));
    return { role: sender ? 'Sender' : 'Transit', observations: obs };
  }
  switch (point) {
    case ObservationPoint.noRoute:
      obs.push({ component: 'Forwarding', action: 'Dropped', table: 'L3Forwarding', message: `no node's pod subnet holds ${dst}` });
      return end('Dropped');
    case ObservationPoint.noPort:
      obs.push({ component: 'Forwarding', action: 'Dropped', table: 'L2ForwardingCalc', message: 'no port of the bridge has the destination MAC' });
      return end('Dropped');
    case ObservationPoint.invalid:
      obs.push(INVALID_DROP);
      return end('Dropped');
    case ObservationPoint.noOutput:
      obs.push({ component: 'Forwarding', action: 'Dropped', table: 'Output', message: 'no output port was found' });
      return end('Dropped');
    case ObservationPoint.output:
      break;
    default:
      obs.push({ component: 'Forwarding', action: 'Dropped', message: `unknown observation point ${point}` });
      return end('Dropped');
  }

  const kind = field(pipeline.regs, PacketDestinationField);
  const ofport = pipeline.regs[1] ?? 0;
  if (kind === ToLocalPod.value) {
    const pod = view.podByOfport(ofport);
    obs.push({ component: 'Forwarding', action: 'Delivered', table: 'Output', outputPort: pod?.portName ?? String(ofport), ...(pod ? { pod: pod.pod } : {}) });
    return end('Delivered');
  }
  if (kind === ToTunnel.value) {
    const to = pipeline.tunDst ?? undefined;
    const peerNode = (to && view.nodeByIp(to)) || view.nodeByPodIp(dst);
    obs.push({ component: 'Forwarding', action: 'Forwarded', table: 'Output', outputPort: 'tunnel', ...(to ? { tunnelDestination: to } : {}), ...(peerNode ? { peerNode } : {}) });
    return { role: sender ? 'Sender' : 'Transit', observations: obs };
  }
  if (kind === ToGateway.value) {
    const peerNode = view.mode === 'noEncap' || view.mode === 'chained' ? view.nodeByPodIp(dst) : undefined;
    if (peerNode && peerNode !== view.node) {
      obs.push({ component: 'Forwarding', action: 'Forwarded', table: 'Output', outputPort: 'gateway', peerNode });
      return { role: sender ? 'Sender' : 'Transit', observations: obs };
    }
    // Chained: pods have no per-node subnet; a pod address is routed to its node by the cloud's network.
    if (view.mode === 'chained' && !peerNode && view.inCluster?.(dst)) {
      obs.push({ component: 'Forwarding', action: 'Forwarded', table: 'Output', outputPort: 'gateway', message: "to the node's routing, toward the pod's node" });
      return { role: sender ? 'Sender' : 'Transit', observations: obs };
    }
    obs.push({ component: 'Forwarding', action: 'Forwarded', table: 'Output', outputPort: 'gateway', message: "to the node's network stack" });
    return end('ForwardedToNode');
  }
  obs.push({ component: 'Forwarding', action: 'Forwarded', table: 'Output', outputPort: String(ofport) });
  return end('ForwardedToNode');
}

/** The chain tag in the packet-in's registers. */
export function chainTagOf(pipeline: PacketInPipeline): ReturnType<typeof decodeTag> & { exiting: boolean } {
  const reg = pipeline.regs[TAG_REG] ?? 0;
  return { ...decodeTag(reg % 2 ** TAG_BITS), exiting: Math.floor(reg / 2 ** Tag.exit.start) % 2 === 1 };
}

type ChainView = Pick<NodeView, 'node' | 'chainTarget'>;

/**
 * Back out of a CNF: the Classifier put the hop and the replica it came from in the tag; the chain stage has moved
 * the hop on since, unless the packet is leaving the chain.
 */
export function backFromCnf(view: ChainView, pipeline: PacketInPipeline, trace: Pick<TraceRef, 'tag'>, frame: ParsedFrame | undefined): Observation {
  const t = chainTagOf(pipeline);
  const hop = t.exiting ? t.hop : t.hop - 1;
  const remarked = frame && trace.tag !== undefined && frame.dscp !== trace.tag ? `, DSCP re-marked to ${frame.dscp}` : '';
  return { component: 'ServiceChain', action: 'Received', table: 'Classifier', ...chainObservation(view, t.chain, hop, t.from), message: `back from the CNF${remarked}` };
}

/** The chain stage's Target table steers the packet to the replica its tag names: into its port, or to its node. */
export function steered(view: ChainView, pipeline: PacketInPipeline, tunnel = 'the tunnel'): Observation {
  const t = chainTagOf(pipeline);
  const c = chainObservation(view, t.chain, t.hop, t.target);
  return { component: 'ServiceChain', action: 'Steered', table: 'ChainTarget', ...c, message: c.peerNode !== undefined ? `through ${tunnel} to the replica's node` : "into the replica's port" };
}

/** A chain observation's chain and replica, and the replica's node when it is another. */
function chainObservation(view: ChainView, chain: number, hop: number, replica: number): Pick<Observation, 'chain' | 'peerNode'> {
  const c = view.chainTarget?.(chain, hop, replica);
  if (!c) return { chain: { namespace: '', name: `chain ${chain}`, hop: String(hop), replica: String(replica) } };
  return { chain: { namespace: c.namespace, name: c.name, hop: c.hop, replica: c.replica }, ...(c.node !== view.node ? { peerNode: c.node } : {}) };
}

function peer(view: NodeView, ip: string | undefined): Pick<Observation, 'peerNode'> {
  const name = ip ? view.nodeByIp(ip) : undefined;
  return name ? { peerNode: name } : {};
}

/** The Service stage's translation, as `address:port`, when the packet no longer has the destination it was sent with. */
function translation(sent: TracePacket, now: ParsedFrame): string | undefined {
  const port = sent.protocol === 'ICMP' ? undefined : now.destinationPort;
  if (now.destinationIP === sent.destinationIP && port === sent.destinationPort) return undefined;
  return port === undefined ? now.destinationIP : `${now.destinationIP}:${port}`;
}

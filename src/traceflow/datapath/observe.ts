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
  /** A rule of the policy stage by its id. */
  rule(ruleId: number): PolicyRef | undefined;
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
function ruleRef(view: NodeView, ruleId: number): PolicyRef {
  return view.rule(ruleId) ?? { kind: 'Unknown', name: `rule ${ruleId}`, rule: String(ruleId) };
}

export function observe(view: NodeView, trace: { packet: TracePacket; sourceNode?: string }, point: number, pipeline: PacketInPipeline, frame: ParsedFrame | undefined): NodeObservations {
  const obs: Observation[] = [];
  const fromTunnel = view.tunnelOfport !== undefined && pipeline.inPort === view.tunnelOfport;
  const fromGateway = pipeline.inPort === view.gatewayOfport;
  const sender = view.node === trace.sourceNode && !fromTunnel && !fromGateway;
  const end = (verdict: TraceVerdict): NodeObservations => ({ role: sender ? 'Sender' : 'Receiver', observations: obs, verdict });

  if (fromTunnel) obs.push({ component: 'Forwarding', action: 'Received', table: 'Classifier', ...peer(view, pipeline.tunSrc), message: 'through the tunnel' });
  else if (fromGateway) {
    // noEncap: a peer's pod routed here by the node; its subnet names the node it came from.
    const from = view.nodeByPodIp(trace.packet.sourceIP);
    obs.push({ component: 'Forwarding', action: 'Received', table: 'Classifier', ...(from && from !== view.node ? { peerNode: from } : {}), message: "through the node's routing" });
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

  const egressRule = field(pipeline.regs, EgressRuleField);
  const ingressRule = field(pipeline.regs, IngressRuleField);
  if (point === ObservationPoint.egressDrop) {
    obs.push({ component: 'NetworkPolicy', action: 'Dropped', table: 'EgressPolicy', direction: 'Egress', policy: ruleRef(view, egressRule) });
    return end('Dropped');
  }
  if (egressRule) obs.push({ component: 'NetworkPolicy', action: 'Allowed', table: 'EgressPolicy', direction: 'Egress', policy: ruleRef(view, egressRule) });
  if (point === ObservationPoint.ingressDrop) {
    obs.push({ component: 'NetworkPolicy', action: 'Dropped', table: 'IngressPolicy', direction: 'Ingress', policy: ruleRef(view, ingressRule) });
    return end('Dropped');
  }
  if (ingressRule) obs.push({ component: 'NetworkPolicy', action: 'Allowed', table: 'IngressPolicy', direction: 'Ingress', policy: ruleRef(view, ingressRule) });

  const dst = frame?.destinationIP ?? trace.packet.destinationIP;
  switch (point) {
    case ObservationPoint.noRoute:
      obs.push({ component: 'Forwarding', action: 'Dropped', table: 'L3Forwarding', message: `no node's pod subnet holds ${dst}` });
      return end('Dropped');
    case ObservationPoint.noPort:
      obs.push({ component: 'Forwarding', action: 'Dropped', table: 'L2ForwardingCalc', message: 'no port of the bridge has the destination MAC' });
      return end('Dropped');
    case ObservationPoint.invalid:
      obs.push({ component: 'Forwarding', action: 'Dropped', table: 'ConntrackState', message: 'conntrack found the packet invalid' });
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
    const peerNode = view.mode === 'noEncap' ? view.nodeByPodIp(dst) : undefined;
    if (peerNode && peerNode !== view.node) {
      obs.push({ component: 'Forwarding', action: 'Forwarded', table: 'Output', outputPort: 'gateway', peerNode });
      return { role: sender ? 'Sender' : 'Transit', observations: obs };
    }
    obs.push({ component: 'Forwarding', action: 'Forwarded', table: 'Output', outputPort: 'gateway', message: "to the node's network stack" });
    return end('ForwardedToNode');
  }
  obs.push({ component: 'Forwarding', action: 'Forwarded', table: 'Output', outputPort: String(ofport) });
  return end('ForwardedToNode');
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

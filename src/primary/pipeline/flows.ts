import type { Action, Flow, Match, SyncRequest } from '../../ovs/openflow/index.js';
import { PipelineCookies, baseScope, peerScope, pipelineScope, podScope } from './cookies.js';
import {
  FromGateway,
  FromLocalPod,
  FromTunnel,
  Hairpin,
  OutPortFound,
  SERVICE_CT_MARK,
  RewriteMac,
  TargetOfportField,
  ToGateway,
  ToLocalPod,
  ToTunnel,
  loadField,
  loadMark,
  matchMarks,
  subfieldOf,
  type RegMark,
} from './marks.js';
import { checkNode, checkPeer, checkPod, checkState, type LocalPod, type NodeConfig, type PeerNode, type PipelineState } from './state.js';
import { CT_SNAT_ZONE, CT_ZONE, GLOBAL_VIRTUAL_MAC, HAIRPIN_VIRTUAL_IP, NODEPORT_VIRTUAL_IP, Priority, SEAMS, Table } from './tables.js';

const ARP_REQUEST = 1;
const ARP_REPLY = 2;

const goto = (table: number): Action => ({ type: 'goto_table', table });

/** Builds flows that share one cookie. */
function maker(cookie: bigint) {
  return (table: number, priority: number, match: Match, actions: Action[]): Flow => ({ table, priority, cookie, match, actions });
}

/** Turns an ARP request into a reply from `mac`, with `answer` setting the protocol addresses, sent back where it came from. */
function arpReplyFrom(mac: string, answer: Action[]): Action[] {
  return [
    { type: 'move', src: 'eth_src', dst: 'eth_dst' },
    { type: 'set_field', field: 'eth_src', value: mac },
    { type: 'load', value: ARP_REPLY, dst: 'arp_op' },
    { type: 'move', src: 'arp_sha', dst: 'arp_tha' },
    { type: 'set_field', field: 'arp_sha', value: mac },
    ...answer,
    { type: 'output', port: 'IN_PORT' },
  ];
}

/** The reply "`ip` is at `mac`". */
function arpReply(ip: string, mac: string): Action[] {
  return arpReplyFrom(mac, [
    { type: 'move', src: 'arp_spa', dst: 'arp_tpa' },
    { type: 'set_field', field: 'arp_spa', value: ip },
  ]);
}

const arpRequestFor = (ip: string): Match => ({ protocol: 'arp', arp_op: ARP_REQUEST, arp_tpa: ip });

/** The reply "whatever was asked for is at `mac`". */
function arpReplyAny(mac: string): Action[] {
  return arpReplyFrom(mac, [
    // Swap the protocol addresses, through reg1: an ARP packet ends here, before L2ForwardingCalc sets it.
    { type: 'move', src: 'arp_spa', dst: subfieldOf(TargetOfportField) },
    { type: 'move', src: 'arp_tpa', dst: 'arp_spa' },
    { type: 'move', src: subfieldOf(TargetOfportField), dst: 'arp_tpa' },
  ]);
}

/** L2ForwardingCalc's verdict: the output port and what kind of port it is. */
function toPort(ofport: number, kind: RegMark): Action[] {
  return [loadField(TargetOfportField, ofport), loadMark(kind), loadMark(OutPortFound), goto(Table.IngressPolicy)];
}

// Established and related packets of a connection a policy already allowed skip the policy stages.
const ESTABLISHED: Match = { protocol: 'ip', ct_state: { new: false, trk: true } };

const mac = (m: string): string => m.toLowerCase();

/**
 * Node-wide flows (cookie object 0): the tables' default flows, the gateway's and tunnel's flows and the
 * seams' pass-through flows.
 */
export function baseFlows(node: NodeConfig): Flow[] {
  checkNode(node);
  const f = maker(new PipelineCookies(node.round).base());
  const gw = node.gatewayOfport;
  const gwMac = mac(node.gatewayMac);
  const encap = node.mode === 'encap';
  const flows: Flow[] = [
    f(Table.Classifier, Priority.normal, { in_port: gw }, [loadMark(FromGateway), goto(Table.SpoofGuard)]),
    f(Table.Classifier, Priority.miss, {}, []),

    // The node's kernel may send anything: it is trusted, only split by protocol.
    f(Table.SpoofGuard, Priority.normal, { in_port: gw, protocol: 'ip' }, [goto(Table.Conntrack)]),
    f(Table.SpoofGuard, Priority.normal, { in_port: gw, protocol: 'arp' }, [goto(Table.ARPResponder)]),
    f(Table.SpoofGuard, Priority.miss, {}, []),

    f(Table.ARPResponder, Priority.normal, arpRequestFor(node.gatewayIp), arpReply(node.gatewayIp, gwMac)),
    f(Table.ARPResponder, Priority.miss, {}, []),

    // nat: replies and later packets of connections a Service table DNATed are translated here.
    f(Table.Conntrack, Priority.normal, { protocol: 'ip' }, [{ type: 'ct', table: Table.ConntrackState, zone: CT_ZONE, nat: true }]),
    // A reply to a pod's connection to itself: its source translation is undone first; the Service stage does the rest.
    f(Table.Conntrack, Priority.specific, { protocol: 'ip', nw_dst: HAIRPIN_VIRTUAL_IP }, [{ type: 'ct', table: Table.ConntrackState, zone: CT_SNAT_ZONE, nat: true }]),
    f(Table.Conntrack, Priority.miss, {}, []),

    f(Table.ConntrackState, Priority.normal, { protocol: 'ip', ct_state: { inv: true, trk: true } }, []),
    f(Table.ConntrackState, Priority.miss, {}, [goto(Table.Service)]),

    f(Table.Service, Priority.miss, {}, [goto(SEAMS.service.exit)]),

    f(Table.EgressPolicy, Priority.establishedBypass, ESTABLISHED, [goto(SEAMS.egressPolicy.exit)]),
    f(Table.EgressPolicy, Priority.miss, {}, [goto(SEAMS.egressPolicy.exit)]),

    f(Table.ServiceChain, Priority.miss, {}, [goto(SEAMS.serviceChain.exit)]),

    // From a tunnel the destination MAC is the virtual one: the gateway needs its own.
    f(Table.L3Forwarding, Priority.normal, { protocol: 'ip', nw_dst: node.gatewayIp }, [{ type: 'mod_dl_dst', mac: gwMac }, goto(Table.L2ForwardingCalc)]),
    // Node IPs, Services, the outside world: the node's kernel routes them.
    f(Table.L3Forwarding, Priority.miss, {}, [{ type: 'mod_dl_dst', mac: gwMac }, goto(Table.L2ForwardingCalc)]),
    // A node port's reply, translated back by the Service stage: the kernel undoes its own translation first.
    f(Table.L3Forwarding, Priority.overriding, { protocol: 'ip', nw_src: NODEPORT_VIRTUAL_IP }, [{ type: 'mod_dl_dst', mac: gwMac }, goto(Table.L2ForwardingCalc)]),

    f(Table.L2ForwardingCalc, Priority.normal, { dl_dst: gwMac }, toPort(gw, ToGateway)),
    f(Table.L2ForwardingCalc, Priority.miss, {}, []),

    f(Table.IngressPolicy, Priority.establishedBypass, ESTABLISHED, [goto(SEAMS.ingressPolicy.exit)]),
    f(Table.IngressPolicy, Priority.miss, {}, [goto(SEAMS.ingressPolicy.exit)]),

    f(Table.ConntrackCommit, Priority.normal, { protocol: 'ip', ct_state: { new: true, trk: true } }, [{ type: 'ct', commit: true, zone: CT_ZONE }, goto(Table.Output)]),
    // The Service stage committed its translated connections itself.
    f(Table.ConntrackCommit, Priority.specific, { protocol: 'ip', ct_state: { new: true, trk: true }, ct_mark: SERVICE_CT_MARK }, [goto(Table.Output)]),
    f(Table.ConntrackCommit, Priority.miss, {}, [goto(Table.Output)]),

    f(Table.Output, Priority.normal, matchMarks(OutPortFound), [{ type: 'output', port: { field: subfieldOf(TargetOfportField) } }]),
    // OpenFlow never sends a packet back by its input port unless told to.
    f(Table.Output, Priority.specific, matchMarks(OutPortFound, Hairpin), [{ type: 'output', port: 'IN_PORT' }]),
    // The node's kernel sent it and gets it back translated: a Service endpoint it routes elsewhere, or a reply on
    // its way to the node port's own translation. Only Service connections: anything else would loop.
    f(Table.Output, Priority.specific, { in_port: gw, ct_mark: SERVICE_CT_MARK, ...matchMarks(OutPortFound, ToGateway) }, [{ type: 'output', port: 'IN_PORT' }]),
    f(Table.Output, Priority.miss, {}, []),
  ];
  if (node.podCidr !== undefined) {
    // Within the local subnet the sender already addressed the pod's MAC (ARPResponder gave it out).
    flows.push(f(Table.L3Forwarding, Priority.subnet, { protocol: 'ip', nw_dst: node.podCidr }, [goto(Table.L2ForwardingCalc)]));
  }
  if (encap) {
    const tun = node.tunnelOfport;
    flows.push(
      // Tunnel traffic was routed and checked by the sending node: no spoof guard, no ARP.
      f(Table.Classifier, Priority.normal, { in_port: tun }, [loadMark(FromTunnel), loadMark(RewriteMac), goto(Table.Conntrack)]),
      // A cluster address of no known node is not leaked to the node's default route.
      f(Table.L3Forwarding, Priority.cluster, { protocol: 'ip', nw_dst: node.clusterCidr }, []),
      f(Table.L2ForwardingCalc, Priority.normal, { dl_dst: GLOBAL_VIRTUAL_MAC }, toPort(tun, ToTunnel)),
    );
  }
  return flows;
}

/** One local pod's flows (cookie object: its ofport). */
export function podFlows(node: NodeConfig, pod: LocalPod): Flow[] {
  checkPod(node, pod);
  const f = maker(new PipelineCookies(node.round).pod(pod.ofport));
  const podMac = mac(pod.mac);
  return [
    f(Table.Classifier, Priority.normal, { in_port: pod.ofport }, [loadMark(FromLocalPod), goto(Table.SpoofGuard)]),
    f(Table.SpoofGuard, Priority.normal, { in_port: pod.ofport, protocol: 'ip', dl_src: podMac, nw_src: pod.ip }, [goto(Table.Conntrack)]),
    f(Table.SpoofGuard, Priority.normal, { in_port: pod.ofport, protocol: 'arp', dl_src: podMac, arp_spa: pod.ip, arp_sha: podMac }, [goto(Table.ARPResponder)]),
    f(Table.ARPResponder, Priority.normal, arpRequestFor(pod.ip), arpReply(pod.ip, podMac)),
    ...(node.mode === 'chained'
      ? // A pod of a routed CNI resolves its one next hop (169.254.1.1 on EKS and AKS), or anything else it asks for,
        // to the MAC its CNI gave it: every packet it sends is routed by L3Forwarding, whatever MAC it addressed.
        [f(Table.ARPResponder, Priority.cluster, { protocol: 'arp', arp_op: ARP_REQUEST, in_port: pod.ofport }, arpReplyAny(mac(pod.nextHopMac ?? node.gatewayMac)))]
      : []),
    ...podRouting(node, pod, f),
    f(Table.L2ForwardingCalc, Priority.normal, { dl_dst: podMac }, toPort(pod.ofport, ToLocalPod)),
  ];
}

/**
 * L3Forwarding to a local pod. Seine's own subnet is switched: only routed packets (from a tunnel, or DNATed to
 * the pod) get its MAC. Chained, every pod is a routed link and addresses its next hop, never its neighbour: every
 * packet gets the pod's MAC; the TTL is not decremented twice for what the node's kernel routed already.
 */
function podRouting(node: NodeConfig, pod: LocalPod, f: ReturnType<typeof maker>): Flow[] {
  const rewrite = (ttl: boolean): Action[] => [{ type: 'mod_dl_src', mac: mac(node.gatewayMac) }, { type: 'mod_dl_dst', mac: mac(pod.mac) }, ...(ttl ? [{ type: 'dec_ttl' } as const] : []), goto(Table.L2ForwardingCalc)];
  if (node.mode !== 'chained') return [f(Table.L3Forwarding, Priority.normal, { protocol: 'ip', ...matchMarks(RewriteMac), nw_dst: pod.ip }, rewrite(true))];
  return [
    f(Table.L3Forwarding, Priority.specific, { protocol: 'ip', ...matchMarks(FromGateway), nw_dst: pod.ip }, rewrite(false)),
    f(Table.L3Forwarding, Priority.normal, { protocol: 'ip', nw_dst: pod.ip }, rewrite(true)),
  ];
}

/** One peer node's flows (cookie object: kind peer, its index). */
export function peerFlows(node: NodeConfig, peer: PeerNode): Flow[] {
  checkPeer(node, peer);
  const f = maker(new PipelineCookies(node.round).peer(peer.index));
  const gwMac = mac(node.gatewayMac);
  if (node.mode === 'noEncap') {
    // The node's kernel has a route to the peer's pods over the underlay.
    return [f(Table.L3Forwarding, Priority.normal, { protocol: 'ip', nw_dst: peer.podCidr }, [{ type: 'mod_dl_dst', mac: gwMac }, goto(Table.L2ForwardingCalc)])];
  }
  const tunnel: Action[] = [
    { type: 'mod_dl_src', mac: gwMac },
    { type: 'mod_dl_dst', mac: GLOBAL_VIRTUAL_MAC },
    { type: 'set_tunnel_dst', ip: peer.nodeIp },
  ];
  return [
    // The node's kernel routes the peer's pods via the peer's gateway IP, on link.
    f(Table.ARPResponder, Priority.normal, arpRequestFor(peer.gatewayIp), arpReply(peer.gatewayIp, GLOBAL_VIRTUAL_MAC)),
    // The kernel already decremented the TTL of what it forwards.
    f(Table.L3Forwarding, Priority.specific, { protocol: 'ip', ...matchMarks(FromGateway), nw_dst: peer.podCidr }, [...tunnel, goto(Table.L2ForwardingCalc)]),
    f(Table.L3Forwarding, Priority.normal, { protocol: 'ip', nw_dst: peer.podCidr }, [...tunnel, { type: 'dec_ttl' }, goto(Table.L2ForwardingCalc)]),
  ];
}

/** The whole desired pipeline: base flows, every local pod's and every peer's. */
export function pipelineFlows(state: PipelineState): Flow[] {
  checkState(state);
  return [...baseFlows(state.node), ...state.pods.flatMap((p) => podFlows(state.node, p)), ...state.peers.flatMap((p) => peerFlows(state.node, p))];
}

/** A FlowWriter.sync request making the bridge's pipeline flows exactly `state`'s (and dropping older rounds'). */
export function pipelineSync(state: PipelineState): SyncRequest {
  return { cookie: pipelineScope(), flows: pipelineFlows(state) };
}

export function baseSync(node: NodeConfig): SyncRequest {
  return { cookie: baseScope(), flows: baseFlows(node) };
}

/** Installs or updates one pod's flows; `podRemoval` deletes them. */
export function podSync(node: NodeConfig, pod: LocalPod): SyncRequest {
  return { cookie: podScope(pod.ofport), flows: podFlows(node, pod) };
}

export function podRemoval(ofport: number): SyncRequest {
  return { cookie: podScope(ofport), flows: [] };
}

export function peerSync(node: NodeConfig, peer: PeerNode): SyncRequest {
  return { cookie: peerScope(peer.index), flows: peerFlows(node, peer) };
}

export function peerRemoval(index: number): SyncRequest {
  return { cookie: peerScope(index), flows: [] };
}

// A trace's observation flows on the integration bridge. Each matches only the trace's packet (its DSCP tag, its
// source address and port) and sits above the flows it observes, at the points where the packet leaves the pipeline:
// the Output table (a port was found), the policy drop tables, and the tables whose misses drop. Each sends the packet
// to the agent as a packet-in (cookie: the trace's tag and the point); a packet bound for another node's pipeline
// (a tunnel, or the node's routing in noEncap mode) is also sent on. An injected packet is never handed to a pod; a
// live one is, with its DSCP back to 0 (only packets with DSCP 0 are taken).
import { CookieOwner, makeCookie, type Action, type CookieSelector, type Flow, type Match, type SyncRequest } from '../../ovs/openflow/index.js';
import { matchMarks, OutPortFound, subfieldOf, TargetOfportField, ToGateway, ToTunnel, type RegField } from '../../primary/pipeline/marks.js';
import type { TrafficMode } from '../../primary/pipeline/state.js';
import { HAIRPIN_VIRTUAL_IP, Priority, Table } from '../../primary/pipeline/tables.js';
import { PRIMARY_VERDICTS } from '../../policy/datapath/layout.js';
import { ChainTable, fieldMask, fieldValue, Tag, TAG_REG } from '../../chaining/datapath/layout.js';
import { MAX_TAG, MIN_TAG, type TracePacket } from '../api/types.js';

/** Where an observation flow sits; the packet-in's cookie carries it. */
export const ObservationPoint = {
  /** Output: a port was found (reg0 says which kind, reg1 which port). */
  output: 1,
  egressDrop: 2,
  ingressDrop: 3,
  /** SpoofGuard's miss: the source address or MAC is not the port's. */
  spoofGuard: 4,
  /** L3Forwarding: an address of the cluster's pod block that no node holds. */
  noRoute: 5,
  /** L2ForwardingCalc's miss: no port has the destination MAC. */
  noPort: 6,
  /** ConntrackState: conntrack found the packet invalid. */
  invalid: 7,
  /** Output's miss (no port was found). */
  noOutput: 8,
  /** The chain stage's Target table: a service chain steers the packet to a hop's replica (reg8 says which). */
  chainTarget: 9,
  /** Live traffic, Classifier: a packet of the source pod's that the trace may take; the agent tags one. */
  sample: 10,
  /** A secondary bridge's chain exit (table 70): the packet leaves the chain toward another node's pod. */
  chainExit: 11,
  /** A secondary bridge's chain exit: the packet leaves the chain to the destination pod's port on this node. */
  chainDelivered: 12,
} as const;
export type ObservationPointId = (typeof ObservationPoint)[keyof typeof ObservationPoint];

const TAG_SHIFT = 8n;
const OWNER_MASK = 0xffn << 56n;
const TAG_MASK = 0xffn << TAG_SHIFT;

/** Above every flow of the tables observed (the pipeline's own stay below 300; policy drops have one flow). */
export const OBSERVE_PRIORITY = 60_000;

export function traceCookie(round: number, tag: number, point: ObservationPointId): bigint {
  checkTag(tag);
  return makeCookie(CookieOwner.traceflow, round, (BigInt(tag) << TAG_SHIFT) | BigInt(point));
}

/** The tag and point of a traceflow cookie; undefined for anyone else's. */
export function decodeTraceCookie(cookie: bigint): { tag: number; point: number } | undefined {
  if ((cookie & OWNER_MASK) >> 56n !== BigInt(CookieOwner.traceflow)) return undefined;
  return { tag: Number((cookie & TAG_MASK) >> TAG_SHIFT), point: Number(cookie & 0xffn) };
}

/** One trace's flows, any round. */
export function tagScope(tag: number): CookieSelector {
  checkTag(tag);
  return { value: (BigInt(CookieOwner.traceflow) << 56n) | (BigInt(tag) << TAG_SHIFT), mask: OWNER_MASK | TAG_MASK };
}

/** Every trace's flows. */
export function traceScope(): CookieSelector {
  return { value: BigInt(CookieOwner.traceflow) << 56n, mask: OWNER_MASK };
}

function checkTag(tag: number): void {
  if (!Number.isInteger(tag) || tag < MIN_TAG || tag > MAX_TAG) throw new RangeError(`trace tag ${tag} outside ${MIN_TAG}..${MAX_TAG}`);
}

/** What the flows need to know of the node. */
export interface TraceNode {
  round: number;
  mode: TrafficMode;
  /** The cluster's pod block (routed modes). */
  clusterCidr?: string;
}

/**
 * The trace's packet, as the flows match it: the tag, the source, and its source port (an echo request for ICMP).
 * A live trace may leave the port out: the tag, unique among running traces, is on one packet only.
 */
export function packetMatch(tag: number, p: TracePacket, source = p.sourceIP, live = false): Match {
  const base = { protocol: matchProtocol(p), ip_dscp: tag, nw_src: source };
  if (p.protocol === 'ICMP') return { ...base, icmp_type: 8 };
  if (p.sourcePort === undefined && !live) throw new RangeError(`a ${p.protocol} trace needs a source port`);
  return { ...base, ...(p.sourcePort !== undefined ? { tp_src: p.sourcePort } : {}) };
}

const matchProtocol = (p: TracePacket): 'icmp' | 'tcp' | 'udp' => (p.protocol === 'ICMP' ? 'icmp' : p.protocol === 'TCP' ? 'tcp' : 'udp');

/**
 * Live traffic: the source pod's packets the trace may take, as they enter the bridge at its port, untagged and
 * before anything rewrote them (the destination as the pod addressed it: a Service's ClusterIP). Each goes to the
 * agent, which removes this flow, sends the first back in tagged and any others as they were.
 */
export function samplingFlow(node: TraceNode, tag: number, p: TracePacket, sourceOfport: number): Flow {
  const ports = p.protocol === 'ICMP' ? { icmp_type: 8 } : { ...(p.sourcePort !== undefined ? { tp_src: p.sourcePort } : {}), ...(p.destinationPort !== undefined ? { tp_dst: p.destinationPort } : {}) };
  return {
    table: Table.Classifier,
    priority: OBSERVE_PRIORITY,
    cookie: traceCookie(node.round, tag, ObservationPoint.sample),
    match: { in_port: sourceOfport, protocol: matchProtocol(p), nw_src: p.sourceIP, nw_dst: p.destinationIP, ip_dscp: 0, ...ports },
    actions: [toController],
  };
}

/**
 * reg2[0]: the chain stage's Target table has reported this pass of the packet. The observation flow there reports
 * and sets it, then sends the packet through the table again, where the chain's own flow takes it: an observation
 * that does not stop the packet. A packet back from a CNF starts a new pass with the bit clear.
 */
export const ChainObservedField: RegField = { reg: 2, start: 0, end: 0 };
/** reg2[1]: a secondary bridge's chain exit has reported this pass (as ChainObservedField does for Target). */
export const ChainExitObservedField: RegField = { reg: 2, start: 1, end: 1 };

const toController: Action = { type: 'output', port: 'CONTROLLER' };

/** Reports the packet, marks `field` and sends it through `table` again, where the pipeline's own flow takes it. */
export function observeAndGoOn(field: RegField, table: number): Action[] {
  return [toController, { type: 'load', value: 1, dst: subfieldOf(field) }, { type: 'resubmit', table }];
}

/**
 * The chain stage's Target table, once the replica is chosen (a target bit set; the chain stage may enter the table
 * before choosing): the matches and actions of its observation flows, which do not stop the packet.
 */
export function chainTargetObservations(): Array<{ match: Match; actions: Action[] }> {
  return targetBits().map((bit) => ({
    match: { ...matchMarks({ field: ChainObservedField, value: 0 }), [`reg${TAG_REG}`]: { value: bit, mask: bit } },
    actions: observeAndGoOn(ChainObservedField, ChainTable.Target),
  }));
}

/** Each bit of the chain tag's target replica field: a chosen replica has at least one set. */
const targetBits = (): number[] => Array.from({ length: Tag.target.end - Tag.target.start + 1 }, (_, i) => 2 ** (Tag.target.start + i));
const sendOn: Action = { type: 'output', port: { field: subfieldOf(TargetOfportField) } };
/**
 * Output where a port was found and the packet leaves the pipeline (to a pod, or the node): an injected packet stops
 * at the agent; a live one goes on as the pod sent it, DSCP 0.
 */
const observeOutput = (live: boolean): Action[] => (live ? [toController, { type: 'set_field', field: 'ip_dscp', value: 0 }, sendOn] : [toController]);

export function traceFlows(node: TraceNode, tag: number, p: TracePacket, live = false): Flow[] {
  const m = packetMatch(tag, p, p.sourceIP, live);
  const flow = (table: number, point: ObservationPointId, priority: number, match: Match, actions: Action[] = [toController]): Flow => ({
    table,
    priority,
    cookie: traceCookie(node.round, tag, point),
    match: { ...match, ...m },
    actions,
  });
  const flows = [
    flow(Table.Output, ObservationPoint.output, OBSERVE_PRIORITY, matchMarks(OutPortFound), observeOutput(live)),
    flow(Table.Output, ObservationPoint.noOutput, Priority.miss + 1, {}),
    flow(PRIMARY_VERDICTS.dropTable.Egress, ObservationPoint.egressDrop, OBSERVE_PRIORITY, {}),
    flow(PRIMARY_VERDICTS.dropTable.Ingress, ObservationPoint.ingressDrop, OBSERVE_PRIORITY, {}),
    flow(Table.SpoofGuard, ObservationPoint.spoofGuard, Priority.miss + 1, {}),
    flow(Table.L2ForwardingCalc, ObservationPoint.noPort, Priority.miss + 1, {}),
    flow(Table.ConntrackState, ObservationPoint.invalid, OBSERVE_PRIORITY, { ct_state: { inv: true, trk: true } }),
    ...chainTargetObservations().map((o) => flow(ChainTable.Target, ObservationPoint.chainTarget, OBSERVE_PRIORITY, o.match, o.actions)),
  ];
  if (node.mode === 'encap') {
    // Into a tunnel: the next node's pipeline observes it too.
    flows.push(flow(Table.Output, ObservationPoint.output, OBSERVE_PRIORITY + 1, matchMarks(OutPortFound, ToTunnel), [toController, sendOn]));
    // Above the cluster block's drop, below every node's pod subnet.
    if (node.clusterCidr) flows.push(flow(Table.L3Forwarding, ObservationPoint.noRoute, Priority.cluster + 1, { nw_dst: node.clusterCidr }));
  } else if ((node.mode === 'noEncap' || node.mode === 'chained') && node.clusterCidr) {
    // To another node's pods by the node's routes (chained: the cloud's network): that node's pipeline observes it.
    flows.push(flow(Table.Output, ObservationPoint.output, OBSERVE_PRIORITY + 1, { ...matchMarks(OutPortFound, ToGateway), nw_dst: node.clusterCidr }, [toController, sendOn]));
  }
  return flows;
}

/**
 * A pod reaching itself through a Service leaves the Service stage with the hairpin source address: the observation
 * points after it (policy drops, Output) match the trace's packet with that source too.
 */
export function hairpinFlows(node: TraceNode, tag: number, p: TracePacket, live = false): Flow[] {
  const m = packetMatch(tag, p, HAIRPIN_VIRTUAL_IP, live);
  const flow = (table: number, point: ObservationPointId, match: Match, actions: Action[] = [toController]): Flow => ({ table, priority: OBSERVE_PRIORITY, cookie: traceCookie(node.round, tag, point), match: { ...match, ...m }, actions });
  return [
    flow(Table.Output, ObservationPoint.output, matchMarks(OutPortFound), observeOutput(live)),
    flow(PRIMARY_VERDICTS.dropTable.Egress, ObservationPoint.egressDrop, {}),
    flow(PRIMARY_VERDICTS.dropTable.Ingress, ObservationPoint.ingressDrop, {}),
  ];
}

/** Where a packet back from a CNF can be observed: the chain's next hops and everything after the chain stage. */
const PAST_A_CNF = new Set<number>([ObservationPoint.chainTarget, ObservationPoint.output, ObservationPoint.ingressDrop, ObservationPoint.noRoute, ObservationPoint.noPort, ObservationPoint.noOutput]);

/**
 * A CNF may re-mark DSCP (many do): past one, the trace's packet is known by its source address and port and the
 * chain tag's chained bit instead of its tag. The same observation points, for chained packets only. A live trace
 * has none: past a CNF that re-marks, its packet looks like the pod's other packets of the same connection.
 */
export function chainedFlows(node: TraceNode, tag: number, p: TracePacket, live = false): Flow[] {
  if (live) return [];
  const chained = { value: fieldValue(Tag.chained, 1), mask: fieldMask(Tag.chained) };
  return traceFlows(node, tag, p)
    .filter((f) => PAST_A_CNF.has(decodeTraceCookie(f.cookie!)!.point))
    .map((f) => {
      const { ip_dscp: _tag, ...match } = f.match!;
      const own = match[`reg${TAG_REG}`] as { value: number; mask: number } | undefined;
      const reg = own ? { value: own.value | chained.value, mask: own.mask | chained.mask } : chained;
      return { ...f, match: { ...match, [`reg${TAG_REG}`]: reg } };
    });
}

/** Every observation flow of one trace. */
export function observationFlows(node: TraceNode, tag: number, p: TracePacket, live = false): Flow[] {
  return [...traceFlows(node, tag, p, live), ...hairpinFlows(node, tag, p, live), ...chainedFlows(node, tag, p, live)];
}

/** What one trace has on this node: live traffic's sampling flow too while the source's node waits for a packet. */
export interface TraceFlowsWanted {
  packet: TracePacket;
  live?: boolean;
  /** The source pod's port, while its packets are being sampled. */
  samplingOfport?: number;
}

/** A FlowWriter.sync request installing (or, with nothing wanted, removing) one trace's flows. */
export function traceSync(node: TraceNode, tag: number, wanted: TraceFlowsWanted | undefined): SyncRequest {
  if (!wanted) return { cookie: tagScope(tag), flows: [] };
  const flows = observationFlows(node, tag, wanted.packet, wanted.live);
  if (wanted.samplingOfport !== undefined) flows.push(samplingFlow(node, tag, wanted.packet, wanted.samplingOfport));
  return { cookie: tagScope(tag), flows };
}

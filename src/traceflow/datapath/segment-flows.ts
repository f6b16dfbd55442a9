// A trace's observation flows on a secondary network's bridge (a VLAN trunk bridge or an overlay bridge). They match
// the trace's packet as on the integration bridge (its DSCP tag, source address and port) and send it to the agent
// where it would leave the bridge: a trunk bridge's NORMAL switching (table 0 below the policy entry, or the policy
// stage's commit), an overlay bridge's Forward table, and the MultiNetworkPolicy drop and invalid tables. The agent
// works out where the bridge would send it and sends it on itself to another node (into the uplink or a tunnel);
// the packet never reaches a pod. A service chain on the network is observed as on br-int where it steers the packet
// to a replica (the packet goes on into the CNF), and where the packet leaves the chain (table 70): toward another
// node it goes on through the chain tunnel, to the destination pod's port here it stops. Past a CNF, which may
// re-mark DSCP, the chained packet is known by its source address and port and the chain tag's chained bit.
import type { Action, Flow, Match, SyncRequest } from '../../ovs/openflow/index.js';
import { matchMarks } from '../../primary/pipeline/marks.js';
import { ChainTable, fieldMask, fieldValue, SEGMENT_EXIT_TABLE, Tag, TAG_REG } from '../../chaining/datapath/layout.js';
import { SecondaryPolicyTable as P } from '../../policy/datapath/secondary.js';
import { OverlayTable } from '../../secondary/datapath/overlay-flows.js';
import { TrunkPriority } from '../../secondary/datapath/trunk-flows.js';
import type { TracePacket } from '../api/types.js';
import { ChainExitObservedField, chainTargetObservations, ObservationPoint, OBSERVE_PRIORITY, observeAndGoOn, packetMatch, tagScope, traceCookie, type ObservationPointId } from './flows.js';

/**
 * Table 0 of a trunk bridge: above NORMAL (0), below the policy stage's entry (10), which takes a policed VLAN's
 * packets through the policy tables first, and below the function ports' drops (100) and the service chains (200+).
 */
export const TRUNK_OBSERVE_PRIORITY = TrunkPriority.Normal + 5;

const toController: Action = { type: 'output', port: 'CONTROLLER' };

export type SegmentBridgeKind = 'trunk' | 'overlay';

/** What the flows need to know of the bridge. */
export interface SegmentBridge {
  kind: SegmentBridgeKind;
  /** The destination pod's interface is on this node's bridge: a chain's exit here delivers the packet to it. */
  destinationHere?: boolean;
}

/** One trace's observation flows on a secondary bridge. */
export function segmentFlows(round: number, tag: number, p: TracePacket, bridge: SegmentBridge): Flow[] {
  const kind = bridge.kind;
  const m = packetMatch(tag, p);
  const flow = (table: number, point: ObservationPointId, priority: number, match: Match = {}, actions: Action[] = [toController]): Flow => ({
    table,
    priority,
    cookie: traceCookie(round, tag, point),
    match: { ...match, ...m },
    actions,
  });
  const exits =
    kind === 'trunk'
      ? [flow(0, ObservationPoint.output, TRUNK_OBSERVE_PRIORITY), flow(P.Commit, ObservationPoint.output, OBSERVE_PRIORITY)]
      : [flow(OverlayTable.Forward, ObservationPoint.output, OBSERVE_PRIORITY)];
  const chain = [
    ...chainTargetObservations().map((o) => flow(ChainTable.Target, ObservationPoint.chainTarget, OBSERVE_PRIORITY, o.match, o.actions)),
    bridge.destinationHere
      ? flow(SEGMENT_EXIT_TABLE, ObservationPoint.chainDelivered, OBSERVE_PRIORITY, { nw_dst: p.destinationIP })
      : flow(SEGMENT_EXIT_TABLE, ObservationPoint.chainExit, OBSERVE_PRIORITY, matchMarks({ field: ChainExitObservedField, value: 0 }), observeAndGoOn(ChainExitObservedField, SEGMENT_EXIT_TABLE)),
  ];
  return [
    ...exits,
    flow(P.ConntrackState, ObservationPoint.invalid, OBSERVE_PRIORITY, { ct_state: { inv: true, trk: true } }),
    flow(P.EgressDrop, ObservationPoint.egressDrop, OBSERVE_PRIORITY),
    flow(P.IngressDrop, ObservationPoint.ingressDrop, OBSERVE_PRIORITY),
    ...chain,
    ...chain.map(pastCnf),
  ];
}

/** The same observation past a CNF: without the tag (DSCP may be re-marked), for chained packets only. */
function pastCnf(f: Flow): Flow {
  const { ip_dscp: _tag, ...match } = f.match!;
  const chained = { value: fieldValue(Tag.chained, 1), mask: fieldMask(Tag.chained) };
  const own = match[`reg${TAG_REG}`] as { value: number; mask: number } | undefined;
  const reg = own ? { value: own.value | chained.value, mask: own.mask | chained.mask } : chained;
  return { ...f, match: { ...match, [`reg${TAG_REG}`]: reg } };
}

/** A FlowWriter.sync request of a secondary bridge installing (or, with no packet, removing) one trace's flows. */
export function segmentSync(round: number, tag: number, wanted: { packet: TracePacket; bridge: SegmentBridge } | undefined): SyncRequest {
  return { cookie: tagScope(tag), flows: wanted ? segmentFlows(round, tag, wanted.packet, wanted.bridge) : [] };
}

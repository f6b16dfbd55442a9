// A trace's observation flows on a secondary network's bridge (a VLAN trunk bridge or an overlay bridge). They match
// the trace's packet as on the integration bridge (its DSCP tag, source address and port) and send it to the agent
// where it would leave the bridge: a trunk bridge's NORMAL switching (table 0 below the policy entry, or the policy
// stage's commit), an overlay bridge's Forward table, and the MultiNetworkPolicy drop and invalid tables. The agent
// works out where the bridge would send it and sends it on itself to another node (into the uplink or a tunnel);
// the packet never reaches a pod.
import type { Action, Flow, Match, SyncRequest } from '../../ovs/openflow/index.js';
import { SecondaryPolicyTable as P } from '../../policy/datapath/secondary.js';
import { OverlayTable } from '../../secondary/datapath/overlay-flows.js';
import { TrunkPriority } from '../../secondary/datapath/trunk-flows.js';
import type { TracePacket } from '../api/types.js';
import { ObservationPoint, OBSERVE_PRIORITY, packetMatch, tagScope, traceCookie, type ObservationPointId } from './flows.js';

/**
 * Table 0 of a trunk bridge: above NORMAL (0), below the policy stage's entry (10), which takes a policed VLAN's
 * packets through the policy tables first, and below the function ports' drops (100) and the service chains (200+).
 */
export const TRUNK_OBSERVE_PRIORITY = TrunkPriority.Normal + 5;

const toController: Action = { type: 'output', port: 'CONTROLLER' };

export type SegmentBridgeKind = 'trunk' | 'overlay';

/** One trace's observation flows on a secondary bridge. */
export function segmentFlows(round: number, tag: number, p: TracePacket, kind: SegmentBridgeKind): Flow[] {
  const m = packetMatch(tag, p);
  const flow = (table: number, point: ObservationPointId, priority: number, match: Match = {}): Flow => ({
    table,
    priority,
    cookie: traceCookie(round, tag, point),
    match: { ...match, ...m },
    actions: [toController],
  });
  const exits =
    kind === 'trunk'
      ? [flow(0, ObservationPoint.output, TRUNK_OBSERVE_PRIORITY), flow(P.Commit, ObservationPoint.output, OBSERVE_PRIORITY)]
      : [flow(OverlayTable.Forward, ObservationPoint.output, OBSERVE_PRIORITY)];
  return [
    ...exits,
    flow(P.ConntrackState, ObservationPoint.invalid, OBSERVE_PRIORITY, { ct_state: { inv: true, trk: true } }),
    flow(P.EgressDrop, ObservationPoint.egressDrop, OBSERVE_PRIORITY),
    flow(P.IngressDrop, ObservationPoint.ingressDrop, OBSERVE_PRIORITY),
  ];
}

/** A FlowWriter.sync request of a secondary bridge installing (or, with no packet, removing) one trace's flows. */
export function segmentSync(round: number, tag: number, wanted: { packet: TracePacket; kind: SegmentBridgeKind } | undefined): SyncRequest {
  return { cookie: tagScope(tag), flows: wanted ? segmentFlows(round, tag, wanted.packet, wanted.kind) : [] };
}

// MultiNetworkPolicy on a secondary network's bridge: the same rule and isolation flows as the pod network's
// NetworkPolicy stage (flows.ts), in a stateful pipeline of their own that only the policed segments (a VLAN on a
// trunk bridge, an overlay bridge's VNI) go through. A bridge with nothing to enforce has no flow of policy.
//
//   entry   trunk: table 0, IP from an access port of a policed VLAN or tagged with one (from the uplink): its
//           VLAN's conntrack zone in reg6. overlay: table 11 (between the MAC lookup and forwarding), all IP.
//   12      conntrack in the segment's zone
//   13      established and related: out (replies of allowed connections); invalid: dropped
//   14      destination: a local pod's MAC on the segment -> its port in reg7 (what ingress rules match)
//   15, 16  egress rules (by input port), egress isolation
//   17, 18  ingress rules (by reg7), ingress isolation
//   19      commit of the new connection, then out: NORMAL on a trunk bridge, the overlay's forwarding table
//   21, 22  egress and ingress drops: a deciding rule's id is in reg4 (egress) or reg5 (ingress), so that a
//           Traceflow names the policy, as on the pod network's bridge
import type { Action, Flow, Match } from '../../ovs/openflow/index.js';
import { PolicyCookies, type DirectionTables, type PolicyStage, type VerdictRecord } from './layout.js';
import { stageFlows, type RuleProblem } from './flows.js';
import type { DatapathRule, Isolation } from './state.js';
import type { Direction } from '../model/types.js';

export const SecondaryPolicyTable = {
  /** Trunk bridges enter from table 0; this is the overlay bridge's entry, which the overlay pipeline passes through. */
  OverlayEntry: 11,
  Conntrack: 12,
  ConntrackState: 13,
  Destination: 14,
  EgressRules: 15,
  EgressIsolation: 16,
  IngressRules: 17,
  IngressIsolation: 18,
  Commit: 19,
  EgressDrop: 21,
  IngressDrop: 22,
} as const;

/** The overlay pipeline's forwarding table (src/secondary/datapath/overlay-flows.ts), where policed packets go on. */
export const OVERLAY_FORWARD_TABLE = 20;

const T = SecondaryPolicyTable;
const TABLES: Record<Direction, DirectionTables> = {
  // MultiNetworkPolicy has only the NetworkPolicy tier: Admin and Baseline rules never come here.
  Egress: { admin: T.EgressRules, networkPolicy: T.EgressRules, isolation: T.EgressIsolation, baseline: T.EgressIsolation, exit: T.IngressRules },
  Ingress: { admin: T.IngressRules, networkPolicy: T.IngressRules, isolation: T.IngressIsolation, baseline: T.IngressIsolation, exit: T.Commit },
};

/** reg6: the segment's conntrack zone (trunk bridges); reg7: the local destination port found in table 14. */
const ZONE_REG = 'reg6' as const;
const DESTINATION_REG = 'reg7' as const;

/** Where the secondary stage records verdicts (registers free on trunk and overlay bridges, tables past Forward). */
export const SECONDARY_VERDICTS: VerdictRecord = {
  ruleField: { Egress: { reg: 4, start: 0, end: 31 }, Ingress: { reg: 5, start: 0, end: 31 } },
  dropTable: { Egress: T.EgressDrop, Ingress: T.IngressDrop },
};

export const SECONDARY_STAGE: PolicyStage = {
  tables: TABLES,
  appliedMatch: (direction, ofport) => (direction === 'Egress' ? { in_port: ofport } : { [DESTINATION_REG]: ofport }),
  verdicts: SECONDARY_VERDICTS,
};

/**
 * Conntrack zones of policed secondary segments, apart from the pod network's (65520, 65521) and the service
 * chains' (0x1000..0x3fff): all the node's bridges share one conntrack table, and two segments may use the same
 * addresses. A VLAN's is 0xe000 + its id; an overlay network's 0xd000 + its VNI's low 12 bits (two policed VNIs on
 * a node that share those bits would share a zone: the agent refuses the second, see `overlayZone`'s callers).
 */
export const vlanZone = (vlan: number): number => 0xe000 + vlan;
export const overlayZone = (vni: number): number => 0xd000 + (vni & 0xfff);

/** Flow priorities of the entry: above the trunk's NORMAL (0), below its function-port drops (100) and chains (200+). */
export const ENTRY_PRIORITY = 10;

/** A local pod port on a policed segment. */
export interface SegmentPort {
  ofport: number;
  /** Its interface's MAC (ingress rules find the port by it). */
  mac?: string;
}

export type SecondaryBridgePolicy =
  | { kind: 'trunk'; round: number; segments: ReadonlyArray<{ vlan: number; ports: readonly SegmentPort[] }>; rules: readonly DatapathRule[]; isolations: readonly Isolation[] }
  | { kind: 'overlay'; round: number; zone: number; ports: readonly SegmentPort[]; rules: readonly DatapathRule[]; isolations: readonly Isolation[] };

const goto = (table: number): Action => ({ type: 'goto_table', table });

/** Every flow of the bridge's policy pipeline; none when it has no rule and no isolation. */
export function secondaryPolicyFlows(s: SecondaryBridgePolicy, problems: RuleProblem[] = []): Flow[] {
  if (!s.rules.length && !s.isolations.length) return [];
  const cookie = new PolicyCookies(s.round).cookie(0);
  const base: Flow[] = [];
  const f = (table: number, priority: number, match: Match, actions: Action[]): void => void base.push({ table, priority, cookie, match, actions });
  const out: Action[] = s.kind === 'trunk' ? [{ type: 'output', port: 'NORMAL' }] : [goto(OVERLAY_FORWARD_TABLE)];
  const zone: number | string = s.kind === 'trunk' ? `${ZONE_REG}[0..15]` : s.zone;
  const destination = (ports: readonly SegmentPort[], extra: Match): void => {
    for (const p of ports) if (p.mac) f(T.Destination, 100, { ...extra, dl_dst: p.mac.toLowerCase() }, [{ type: 'load', value: p.ofport, dst: `${DESTINATION_REG}[]` }, goto(T.EgressRules)]);
  };
  if (s.kind === 'trunk') {
    for (const seg of [...s.segments].sort((a, b) => a.vlan - b.vlan)) {
      const setZone: Action = { type: 'load', value: vlanZone(seg.vlan), dst: `${ZONE_REG}[]` };
      for (const p of seg.ports) f(0, ENTRY_PRIORITY, { protocol: 'ip', in_port: p.ofport }, [setZone, goto(T.Conntrack)]);
      // Tagged: from the uplink (pods of other nodes); access ports' frames are untagged in the pipeline.
      f(0, ENTRY_PRIORITY, { protocol: 'ip', dl_vlan: seg.vlan }, [setZone, goto(T.Conntrack)]);
      destination(seg.ports, { [ZONE_REG]: vlanZone(seg.vlan) });
    }
  } else {
    f(T.OverlayEntry, ENTRY_PRIORITY, { protocol: 'ip' }, [goto(T.Conntrack)]);
    destination(s.ports, {});
  }
  f(T.Conntrack, 100, { protocol: 'ip' }, [{ type: 'ct', zone, table: T.ConntrackState }]);
  f(T.ConntrackState, 200, { protocol: 'ip', ct_state: { trk: true, inv: true } }, []);
  f(T.ConntrackState, 100, { protocol: 'ip', ct_state: { trk: true, est: true } }, out);
  f(T.ConntrackState, 100, { protocol: 'ip', ct_state: { trk: true, rel: true } }, out);
  f(T.ConntrackState, 0, {}, [goto(T.Destination)]);
  f(T.Destination, 0, {}, [goto(T.EgressRules)]);
  f(T.EgressRules, 0, {}, [goto(T.EgressIsolation)]);
  f(T.EgressIsolation, 0, {}, [goto(T.IngressRules)]);
  f(T.IngressRules, 0, {}, [goto(T.IngressIsolation)]);
  f(T.IngressIsolation, 0, {}, [goto(T.Commit)]);
  f(T.Commit, 100, { protocol: 'ip', ct_state: { trk: true, new: true } }, [{ type: 'ct', commit: true, zone }, ...out]);
  f(T.Commit, 0, {}, out);
  f(T.EgressDrop, 0, {}, []);
  f(T.IngressDrop, 0, {}, []);
  return stageFlows(base, s, SECONDARY_STAGE, problems);
}

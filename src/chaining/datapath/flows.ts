// The chain stage of br-int, as desired flows computed from state (docs/service-chains.md, "Datapath").
import type { Action, Flow, Match, SyncRequest } from '../../ovs/openflow/index.js';
import { FromLocalPod, FromTunnel, RewriteMac, loadMark, matchMarks } from '../../primary/pipeline/marks.js';
import { Table } from '../../primary/pipeline/tables.js';
import { classifierClauses } from './classifier.js';
import {
  ARP_SCRATCH,
  ChainCookies,
  ChainTable,
  CookieKind,
  EXIT_LABEL_SHIFT,
  EXIT_TABLE,
  HOP_ENTRY_BIT,
  LABEL_VALID_BIT,
  MAX_CHAIN_INDEX,
  MAX_HOPS,
  MAX_REPLICA_ID,
  NETWORK_REG,
  PRIMARY_ZONE,
  SCRATCH_REG,
  SEGMENT_EXIT_TABLE,
  Scratch,
  TAG_BITS,
  TAG_REG,
  Tag,
  chainScope,
  chainingScope,
  fieldMask,
  fieldValue,
  hopZone,
  labelRef,
  regRef,
  tag,
  type TagField,
  type TagValues,
} from './layout.js';
import type { ChainNodeInfo, DatapathChain, DatapathHop, HopReplica, SegmentHook } from './state.js';

/** The MAC a Routed CNF's next hop answers with (locally administered, never a pod's: those come from the pod MAC scheme). */
export const NEXT_HOP_MAC = 'aa:bb:cc:dd:ee:fe';
/** The next-hop address given to Routed CNFs (link-local, never routed beyond the CNF's interface). */
export const NEXT_HOP_IP = '169.254.200.1';

/** Forwarding probes: UDP from PROBE_SRC to PROBE_DST:PROBE_PORT, link-local so they never leave a CNF elsewhere. */
export const PROBE_SRC = '169.254.200.2';
export const PROBE_DST = '169.254.200.3';
export const PROBE_PORT = 7;
export const PROBE_SRC_MAC = 'aa:bb:cc:dd:ee:fd';

const Priority = {
  /** Table 0: a probe coming back out of a replica, above the port's own flows. */
  probeReturn: 250,
  /** Table 0: chained packets from the tunnel, above the primary network's tunnel flow (200). */
  tunnelExit: 220,
  tunnelHop: 215,
  /** Table 0 of a secondary bridge: a pod's packet into the chain stage (pod ports are never function or tunnel ports). */
  podHook: 210,
  /** Table 0 of a secondary bridge: anything else from the chain tunnel. */
  tunnelOther: 205,
  /** Table 0: a function port (never a primary pod port, so no overlap with the pipeline's in_port flows). */
  functionPort: 200,
  /** Classify: packets that already left the chain elsewhere. */
  arrival: 64000,
  /** Classify: later packets and replies of chained connections. */
  established: 50000,
  /** Classify: new connections; chain precedence p gets classifyTop - p. */
  classifyTop: 40000,
  record: 300,
  exit: 200,
  choose: 200,
  hash: 100,
  target: 100,
  deliver: 100,
  returnNew: 110,
  returnFlow: 100,
  arrivedMiss: 10,
  chainedMiss: 5,
  /** Classify on a secondary bridge: a pod's packet no chain classified goes on as if never looked at. */
  pass: 1,
} as const;

const reg9 = (f: TagField): string => regRef(SCRATCH_REG, f);
const TAG_REF = `NXM_NX_REG${TAG_REG}[0..${TAG_BITS - 1}]`;
const TUN_REF = `NXM_NX_TUN_ID[0..${TAG_BITS - 1}]`;

const setTag = (v: TagValues): Action => {
  const t = tag(v);
  return { type: 'set_field', field: `reg${TAG_REG}`, value: t.value, mask: t.mask };
};
const setTagField = (f: TagField, v: number): Action => ({ type: 'set_field', field: `reg${TAG_REG}`, value: fieldValue(f, v), mask: fieldMask(f) });
const matchTag = (v: TagValues): Match => ({ [`reg${TAG_REG}`]: tag(v) });
const setScratch = (zone: number | undefined): Action => ({
  type: 'set_field',
  field: `reg${SCRATCH_REG}`,
  value: zone === undefined ? 0 : fieldValue(Scratch.recordZone, zone) + fieldValue(Scratch.mayRecord, 1),
  mask: 0xffffffff,
});
const resubmit = (table: number): Action => ({ type: 'resubmit', table });
const goto = (table: number): Action => ({ type: 'goto_table', table });
const moveBits = (src: string, dst: string): Action => ({ type: 'move', src, dst });

function checkChain(c: DatapathChain): void {
  if (!Number.isInteger(c.index) || c.index < 1 || c.index > MAX_CHAIN_INDEX) throw new RangeError(`chain index ${c.index} outside 1..${MAX_CHAIN_INDEX}`);
  if (!c.hops.length || c.hops.length > MAX_HOPS) throw new RangeError(`chain ${c.index}: ${c.hops.length} hops (1..${MAX_HOPS})`);
  if (!Number.isInteger(c.precedence) || c.precedence < 0 || c.precedence >= Priority.classifyTop - Priority.record) throw new RangeError(`chain ${c.index}: precedence ${c.precedence}`);
  for (const h of c.hops) {
    const ids = new Set<number>();
    for (const r of h.replicas) {
      if (!Number.isInteger(r.id) || r.id < 1 || r.id > MAX_REPLICA_ID) throw new RangeError(`chain ${c.index}: replica id ${r.id} outside 1..${MAX_REPLICA_ID}`);
      if (ids.has(r.id)) throw new RangeError(`chain ${c.index}: replica id ${r.id} twice in a hop`);
      ids.add(r.id);
    }
  }
}

/** Replicas new and existing connections may use: healthy, and local or reachable through the tunnel. */
export function usableReplicas(node: ChainNodeInfo, hop: DatapathHop): HopReplica[] {
  return hop.replicas.filter((r) => r.usable && (r.local !== undefined || node.tunnelOfport > 0));
}

/** Turns an ARP request for any address into the reply "it is at NEXT_HOP_MAC" (a Routed CNF's next hop). */
function nextHopArpReply(): Action[] {
  return [
    moveBits('eth_src', 'eth_dst'),
    { type: 'set_field', field: 'eth_src', value: NEXT_HOP_MAC },
    { type: 'load', value: 2, dst: 'arp_op' },
    moveBits('arp_sha', 'arp_tha'),
    { type: 'set_field', field: 'arp_sha', value: NEXT_HOP_MAC },
    moveBits('arp_tpa', ARP_SCRATCH),
    moveBits('arp_spa', 'arp_tpa'),
    moveBits(ARP_SCRATCH, 'arp_spa'),
    { type: 'output', port: 'IN_PORT' },
  ];
}

type FlowMaker = (table: number, priority: number, match: Match, actions: Action[]) => Flow;

function baseFlowMaker(node: ChainNodeInfo): FlowMaker {
  const cookie = new ChainCookies(node.round).cookie(0);
  return (table, priority, match, actions) => ({ table, priority, cookie, match, actions });
}

/** Replica selection and delivery, the same on every bridge with a chain stage. */
function steeringBaseFlows(f: FlowMaker): Flow[] {
  return [
    // A choice of replica is remembered in conntrack (zone in reg9) so later packets of the connection keep it.
    f(ChainTable.Target, Priority.record, { protocol: 'ip', [`reg${SCRATCH_REG}`]: { value: fieldValue(Scratch.record, 1), mask: fieldMask(Scratch.record) } }, [
      {
        type: 'ct',
        commit: true,
        zone: `NXM_NX_REG${SCRATCH_REG}[${Scratch.recordZone.start}..${Scratch.recordZone.end}]`,
        exec: [moveBits(`NXM_NX_REG${TAG_REG}[${Tag.target.start}..${Tag.chain.end}]`, labelRef(Tag.target.start, Tag.chain.end)), { type: 'load', value: 1, dst: `NXM_NX_CT_LABEL[${LABEL_VALID_BIT}]` }],
      },
      { type: 'load', value: 0, dst: reg9(Scratch.record) },
      resubmit(ChainTable.Target),
    ]),
    // Sent here for a local replica that this node does not (or no longer) have: never bounced on.
    f(ChainTable.Target, Priority.arrivedMiss, { [`reg${SCRATCH_REG}`]: { value: fieldValue(Scratch.arrived, 1), mask: fieldMask(Scratch.arrived) } }, []),
    // The target is not usable (gone, unhealthy) or not chosen yet: choose.
    f(ChainTable.Target, Priority.chainedMiss, { [`reg${TAG_REG}`]: { value: fieldValue(Tag.chained, 1), mask: fieldMask(Tag.chained) } }, [setTagField(Tag.target, 0), resubmit(ChainTable.Select)]),
    f(ChainTable.Select, 0, {}, []),
    f(ChainTable.Target, 0, {}, []),
    f(ChainTable.Deliver, 0, {}, []),
    f(ChainTable.Return, 0, {}, []),
  ];
}

/** The tunnel key of a chained packet for a replica on the receiving node (any chain). */
const CHAINED_KEY = { value: fieldValue(Tag.chained, 1), mask: fieldMask(Tag.chained) };

/** The tunnel key of a packet that left chain `chain` (any chain when absent) for a pod on the receiving node. */
function exitKey(chain?: number): { value: number; mask: number } {
  const t = tag(chain === undefined ? { target: 0 } : { chain, target: 0 });
  return { value: t.value & 0xffffff, mask: t.mask & 0xffffff };
}

/** Node-wide flows of br-int's chain stage (cookie chain 0). */
export function chainBaseFlows(node: ChainNodeInfo): Flow[] {
  const f = baseFlowMaker(node);
  const flows = steeringBaseFlows(f);
  if (node.tunnelOfport > 0) {
    const tun = node.tunnelOfport;
    flows.push(
      // Left the chain on another node, for a pod here (or a reply for a client here): routed like tunnel traffic.
      f(Table.Classifier, Priority.tunnelExit, { in_port: tun, tun_id: exitKey() }, [loadMark(FromTunnel), loadMark(RewriteMac), moveBits(TUN_REF, TAG_REF), goto(Table.Conntrack)]),
      tunnelHopFlow(f, tun),
      // Forward: the destination's node records where the connection left the chain, so replies go back through it.
      f(ChainTable.Classify, Priority.arrival, { protocol: 'ip', ...matchTag({ target: 0, direction: 0, exit: false }), ...matchMarks(FromTunnel) }, [
        { type: 'ct', commit: true, zone: PRIMARY_ZONE, exec: [moveBits(TAG_REF, labelRef(EXIT_LABEL_SHIFT, EXIT_LABEL_SHIFT + TAG_BITS - 1))] },
        goto(EXIT_TABLE),
      ]),
      f(ChainTable.Classify, Priority.arrival, { protocol: 'ip', ...matchTag({ target: 0, direction: 1, exit: false }), ...matchMarks(FromTunnel) }, [goto(EXIT_TABLE)]),
    );
  }
  return flows;
}

/** A chained packet from another node for a replica on this one. */
function tunnelHopFlow(f: FlowMaker, tun: number): Flow {
  return f(Table.Classifier, Priority.tunnelHop, { in_port: tun, tun_id: CHAINED_KEY }, [moveBits(TUN_REF, TAG_REF), { type: 'load', value: 1, dst: reg9(Scratch.arrived) }, goto(ChainTable.Target)]);
}

const passed = { [`reg${TAG_REG}`]: { value: 0, mask: fieldMask(Tag.passed) } };

/**
 * Node-wide flows of a secondary bridge's chain stage (cookie chain 0). The bridge has no pipeline of its own
 * around the stage (a VLAN trunk switches with NORMAL, an overlay bridge learns): the pod ports of every network
 * with a chain are taken into conntrack in their network's zone and to Classify; what no chain classifies
 * goes back to table 0, marked so that it passes on to the bridge's own flows as if never looked at.
 */
export function segmentBaseFlows(node: ChainNodeInfo, hooks: readonly SegmentHook[]): Flow[] {
  const f = baseFlowMaker(node);
  const flows = steeringBaseFlows(f);
  flows.push(
    f(ChainTable.Classify, Priority.pass, matchMarks(FromLocalPod), [
      { type: 'load', value: 0, dst: 'reg0[0..3]' },
      { type: 'load', value: 1, dst: regRef(TAG_REG, Tag.passed) },
      resubmit(Table.Classifier),
    ]),
    f(ChainTable.Classify, 0, {}, []),
    f(SEGMENT_EXIT_TABLE, 0, {}, []),
  );
  for (const h of hooks) {
    for (const port of [...new Set(h.podOfports)].sort((a, b) => a - b)) {
      flows.push(f(Table.Classifier, Priority.podHook, { in_port: port, protocol: 'ip', ...passed }, [
        loadMark(FromLocalPod),
        { type: 'load', value: h.zone, dst: `reg${NETWORK_REG}` },
        { type: 'ct', zone: h.zone, table: ChainTable.Classify },
      ]));
    }
  }
  if (node.tunnelOfport > 0) {
    flows.push(
      tunnelHopFlow(f, node.tunnelOfport),
      // The chain tunnel carries chained packets only: nothing from it reaches the bridge's switching.
      f(Table.Classifier, Priority.tunnelOther, { in_port: node.tunnelOfport }, []),
    );
  }
  return flows;
}

/** The flows of one chain on this node (cookie: the chain's index). */
export function chainFlows(node: ChainNodeInfo, chain: DatapathChain): Flow[] {
  checkChain(chain);
  const cookies = new ChainCookies(node.round);
  const C = chain.index;
  const last = chain.hops.length - 1;
  const directions: Array<0 | 1> = chain.symmetric ? [0, 1] : [0];
  const flows: Flow[] = [];
  const add = (table: number, priority: number, match: Match, actions: Action[], cookie = cookies.cookie(C)): void => {
    flows.push({ table, priority, cookie, match, actions });
  };

  // The connection's records live in the network's zone: br-int's primary zone, or a secondary network's.
  const seg = chain.segment;
  const netZone = seg ? seg.zone : PRIMARY_ZONE;
  const fromPod: Match = seg ? { ...matchMarks(FromLocalPod), [`reg${NETWORK_REG}`]: seg.zone } : matchMarks(FromLocalPod);

  // Classification of new connections from local pods: conjunctive over source, destination and ports.
  const entry: Action[] = [setTag({ chain: C, hop: 0, direction: 0, target: 0, from: 0, exit: false }), setScratch(netZone), goto(ChainTable.Select)];
  const entryCookie = cookies.cookie(C, CookieKind.entry, 0, 0);
  const { protocol, clauses, empty } = classifierClauses(chain.classifier);
  const priority = Priority.classifyTop - chain.precedence;
  const newFromPod: Match = { ct_state: { new: true, trk: true }, ...fromPod };
  if (!empty) {
    if (clauses.length >= 2) {
      clauses.forEach((alternatives, i) => {
        for (const m of alternatives) add(ChainTable.Classify, priority, { protocol, ...m }, [{ type: 'conjunction', id: C, clause: i + 1, clauses: clauses.length }]);
      });
      add(ChainTable.Classify, priority, { protocol, conj_id: C, ...newFromPod }, entry, entryCookie);
    } else {
      for (const m of clauses[0] ?? [{}]) add(ChainTable.Classify, priority, { protocol, ...m, ...newFromPod }, entry, entryCookie);
    }
  }
  const chainBits = (shift: number): { value: bigint; mask: bigint } => ({
    value: BigInt(fieldValue(Tag.chain, C) + fieldValue(Tag.chained, 1)) << BigInt(shift),
    mask: BigInt(fieldMask(Tag.chain) + fieldMask(Tag.chained)) << BigInt(shift),
  });
  // Later packets of a connection this node classified (conntrack still says +new until a reply): the hop-0
  // replica recorded in the entry record.
  add(ChainTable.Classify, Priority.established, { protocol: 'ip', ct_state: { trk: true, rpl: false }, ct_label: chainBits(0), ...fromPod }, [
    moveBits(labelRef(0, TAG_BITS - 1), TAG_REF),
    setScratch(netZone),
    goto(ChainTable.Target),
  ], entryCookie);
  if (chain.symmetric) {
    // Replies of a connection that left the chain towards a pod here: back into the last hop's replica it used.
    add(ChainTable.Classify, Priority.established, { protocol: 'ip', ct_state: { trk: true, rpl: true, inv: false }, ct_label: chainBits(EXIT_LABEL_SHIFT), ...fromPod }, [
      moveBits(labelRef(EXIT_LABEL_SHIFT, EXIT_LABEL_SHIFT + TAG_BITS - 1), TAG_REF),
      moveBits(`NXM_NX_REG${TAG_REG}[${Tag.from.start}..${Tag.from.end}]`, `NXM_NX_REG${TAG_REG}[${Tag.target.start}..${Tag.target.end}]`),
      setTagField(Tag.from, 0),
      setTagField(Tag.direction, 1),
      setScratch(undefined),
      goto(ChainTable.Target),
    ], cookies.cookie(C, CookieKind.entry, 0, 1));
  }

  // Leaving the chain on this node. On br-int: routed on from here as if it came through a tunnel (tun_id tells a
  // remote destination's node that the packet was chained; replies are steered back by the exit record). On a
  // secondary bridge: to the pod address's port or node (segment exit table).
  const leave: Action[] = seg
    ? [resubmit(SEGMENT_EXIT_TABLE)]
    : [{ type: 'set_tunnel_id', id: 0 }, moveBits(TAG_REF, TUN_REF), loadMark(RewriteMac), goto(EXIT_TABLE)];
  const recordExit: Action = { type: 'ct', commit: true, zone: netZone, exec: [moveBits(TAG_REF, labelRef(EXIT_LABEL_SHIFT, EXIT_LABEL_SHIFT + TAG_BITS - 1))] };
  add(ChainTable.Target, Priority.exit, { protocol: 'ip', ...matchTag({ chain: C, direction: 0, exit: true }) }, [setTagField(Tag.target, 0), recordExit, ...leave]);
  if (chain.symmetric) {
    // Replies leave the chain at a hop-0 replica, often on the client's own node: its primary zone must see them
    // (as it sees replies from the tunnel), or it tracks the connection one way and, once the client has sent a
    // window's worth, finds the client's packets out of window (invalid, dropped).
    add(ChainTable.Target, Priority.exit, { protocol: 'ip', ...matchTag({ chain: C, direction: 1, exit: true }) }, [setTagField(Tag.target, 0), { type: 'ct', zone: netZone }, ...leave]);
  }
  if (seg) addSegmentExit(node, chain, add);

  chain.hops.forEach((hop, h) => {
    const usable = usableReplicas(node, hop);
    const zone = hopZone(C, h);
    for (const d of directions) {
      const at = matchTag({ chain: C, hop: h, direction: d });
      if (usable.length) {
        // multipath hashes the connection (both directions alike) onto the usable replicas; a basis per hop keeps
        // the choices of successive hops independent.
        add(ChainTable.Select, Priority.hash, { ...at, [`reg${SCRATCH_REG}`]: { value: 0, mask: fieldMask(Scratch.selected) } }, [
          { type: 'raw', text: `multipath(symmetric_l3l4+udp,${C * MAX_HOPS + h},hrw,${usable.length},0,NXM_NX_REG${SCRATCH_REG}[${Scratch.index.start}..${Scratch.index.end}])` },
          { type: 'load', value: 1, dst: reg9(Scratch.selected) },
          resubmit(ChainTable.Select),
        ]);
        usable.forEach((r, i) => {
          const chosen = fieldValue(Scratch.selected, 1) + fieldValue(Scratch.index, i);
          add(ChainTable.Select, Priority.choose, { ...at, [`reg${SCRATCH_REG}`]: { value: chosen, mask: fieldMask(Scratch.selected) + fieldMask(Scratch.index) } }, [
            setTagField(Tag.target, r.id),
            { type: 'load', value: 0, dst: reg9(Scratch.selected) },
            ...(d === 0 ? [moveBits(`NXM_NX_REG${SCRATCH_REG}[${Scratch.mayRecord.start}]`, `NXM_NX_REG${SCRATCH_REG}[${Scratch.record.start}]`)] : []),
            resubmit(ChainTable.Target),
          ]);
        });
      } else if (hop.failurePolicy === 'FailOpen') {
        const next = d === 0 ? h + 1 : h - 1;
        add(ChainTable.Select, Priority.hash, at, next < 0 || next > last
          ? [setTagField(Tag.exit, 1), resubmit(ChainTable.Target)]
          // The choice made for the next hop is still recorded (with its hop in the tag), so later packets of the
          // connection keep skipping to the same replica instead of falling out of the chain.
          : [setTagField(Tag.hop, next), resubmit(ChainTable.Select)]);
      } else {
        add(ChainTable.Select, Priority.hash, at, []);
      }
    }

    for (const r of usable) {
      const at = matchTag({ chain: C, hop: h, target: r.id });
      if (r.local) {
        add(ChainTable.Target, Priority.target, at, [goto(ChainTable.Deliver)]);
        const l = r.local;
        const routed = hop.mode === 'Routed';
        add(ChainTable.Deliver, Priority.deliver, { protocol: 'ip', ...matchTag({ chain: C, hop: h, direction: 0, target: r.id }) }, [
          {
            type: 'ct',
            commit: true,
            zone,
            exec: [moveBits(`NXM_NX_REG${TAG_REG}[${Tag.from.start}..${Tag.from.end}]`, labelRef(0, Tag.from.end)), { type: 'load', value: 1, dst: `NXM_NX_CT_LABEL[${HOP_ENTRY_BIT}]` }],
          },
          ...(routed ? [{ type: 'mod_dl_dst', mac: l.ingressMac } as Action] : []),
          { type: 'output', port: l.ingressOfport },
        ], cookies.cookie(C, CookieKind.deliver, h, 0, r.id));
        if (chain.symmetric) {
          add(ChainTable.Deliver, Priority.deliver, matchTag({ chain: C, hop: h, direction: 1, target: r.id }), [
            ...(routed ? [{ type: 'mod_dl_dst', mac: l.egressMac } as Action] : []),
            { type: 'output', port: l.egressOfport },
          ], cookies.cookie(C, CookieKind.deliver, h, 1, r.id));
        }
      } else {
        // Not for packets that came from the tunnel: a node that disagrees about where a replica runs drops, never bounces.
        add(ChainTable.Target, Priority.target, { ...at, [`reg${SCRATCH_REG}`]: { value: 0, mask: fieldMask(Scratch.arrived) } }, [
          { type: 'set_tunnel_id', id: 0 },
          moveBits(TAG_REF, TUN_REF),
          { type: 'set_tunnel_dst', ip: r.nodeIp },
          { type: 'output', port: node.tunnelOfport },
        ]);
      }
    }

    // Out of the local replicas' ports (every local replica, usable or not: packets inside a failing CNF still go on).
    const locals = hop.replicas.filter((r) => r.local);
    for (const r of locals) {
      const l = r.local!;
      const oneArmed = l.ingressOfport === l.egressOfport;
      const hook = (port: number, d: 0 | 1): void => {
        add(Table.Classifier, Priority.functionPort, { in_port: port, protocol: 'ip' }, [
          setTag({ chain: C, hop: h, direction: d, target: 0, from: r.id, exit: false }),
          setScratch(undefined),
          { type: 'ct', zone, table: ChainTable.Return },
        ]);
        if (hop.mode === 'Routed') add(Table.Classifier, Priority.functionPort, { in_port: port, protocol: 'arp', arp_op: 1 }, nextHopArpReply());
      };
      hook(l.egressOfport, 0);
      if (!oneArmed) hook(l.ingressOfport, 1);
      if (hop.probe) {
        add(Table.Classifier, Priority.probeReturn, { in_port: l.egressOfport, protocol: 'udp', nw_src: PROBE_SRC, nw_dst: PROBE_DST, tp_dst: PROBE_PORT }, [
          { type: 'raw', text: 'controller(max_len=128)' },
        ], cookies.cookie(C, CookieKind.probe, h, 0, r.id));
      }
    }
    if (locals.length) {
      const forward: Action[] = h < last
        ? [moveBits(labelRef(Tag.target.start, Tag.target.end), `NXM_NX_REG${TAG_REG}[${Tag.target.start}..${Tag.target.end}]`), setTagField(Tag.hop, h + 1), setScratch(zone), resubmit(ChainTable.Target)]
        : [setTagField(Tag.exit, 1), resubmit(ChainTable.Target)];
      const reverse: Action[] = h > 0
        ? [moveBits(labelRef(0, Tag.from.end), `NXM_NX_REG${TAG_REG}[${Tag.target.start}..${Tag.target.end}]`), setTagField(Tag.hop, h - 1), setTagField(Tag.direction, 1), resubmit(ChainTable.Target)]
        : [setTagField(Tag.direction, 1), setTagField(Tag.exit, 1), resubmit(ChainTable.Target)];
      const oneArmed = locals.some((r) => r.local!.ingressOfport === r.local!.egressOfport);
      const at = (d: 0 | 1): Match => matchTag({ chain: C, hop: h, direction: d });
      if (oneArmed) {
        // One port both ways: conntrack tells. A connection without the entry committed on the way in lost its state
        // (ovs-vswitchd restarted): its direction is unknown, so the packet is dropped; the forward direction commits
        // again on its next packet. (Not ct_state +new: conntrack says new until it has seen a reply.)
        add(ChainTable.Return, Priority.returnNew, { ...at(0), ct_state: { trk: true }, ct_label: { value: 0n, mask: 1n << BigInt(HOP_ENTRY_BIT) } }, []);
        add(ChainTable.Return, Priority.returnFlow, { ...at(0), ct_state: { trk: true, inv: false, rpl: false } }, forward);
        if (chain.symmetric) add(ChainTable.Return, Priority.returnFlow, { ...at(0), ct_state: { trk: true, inv: false, rpl: true } }, reverse);
      } else {
        add(ChainTable.Return, Priority.returnFlow, { ...at(0), ct_state: { trk: true, inv: false } }, forward);
        if (chain.symmetric) add(ChainTable.Return, Priority.returnFlow, { ...at(1), ct_state: { trk: true, inv: false } }, reverse);
      }
    }
  });
  return flows;
}

/**
 * A chain on a secondary network, where packets leave it: arrivals from the chain tunnel (records the exit as
 * br-int's arrival flows do), and per pod address of the network, its local port (with its MAC: a Routed CNF
 * addressed its next hop) or the tunnel to its node. An address the chain does not know is dropped.
 */
function addSegmentExit(node: ChainNodeInfo, chain: DatapathChain, add: (table: number, priority: number, match: Match, actions: Action[]) => void): void {
  const seg = chain.segment!;
  const C = chain.index;
  const tun = node.tunnelOfport;
  const ofChain = { [`reg${TAG_REG}`]: { value: fieldValue(Tag.chain, C) + fieldValue(Tag.chained, 1), mask: fieldMask(Tag.chain) + fieldMask(Tag.chained) } };
  if (tun > 0) {
    add(Table.Classifier, Priority.tunnelExit, { in_port: tun, protocol: 'ip', tun_id: exitKey(C) }, [
      loadMark(FromTunnel),
      moveBits(TUN_REF, TAG_REF),
      { type: 'load', value: seg.zone, dst: `reg${NETWORK_REG}` },
      { type: 'ct', zone: seg.zone, table: ChainTable.Classify },
    ]);
    add(ChainTable.Classify, Priority.arrival, { protocol: 'ip', ...matchTag({ chain: C, target: 0, direction: 0, exit: false }), ...matchMarks(FromTunnel) }, [
      { type: 'ct', commit: true, zone: seg.zone, exec: [moveBits(TAG_REF, labelRef(EXIT_LABEL_SHIFT, EXIT_LABEL_SHIFT + TAG_BITS - 1))] },
      resubmit(SEGMENT_EXIT_TABLE),
    ]);
    if (chain.symmetric) add(ChainTable.Classify, Priority.arrival, { protocol: 'ip', ...matchTag({ chain: C, target: 0, direction: 1, exit: false }), ...matchMarks(FromTunnel) }, [resubmit(SEGMENT_EXIT_TABLE)]);
  }
  const seen = new Set<string>();
  for (const e of seg.endpoints) {
    if (seen.has(e.ip)) continue;
    seen.add(e.ip);
    const match: Match = { protocol: 'ip', nw_dst: e.ip, ...ofChain };
    if (e.ofport !== undefined && e.ofport > 0) add(SEGMENT_EXIT_TABLE, Priority.deliver, match, [{ type: 'mod_dl_dst', mac: e.mac }, { type: 'output', port: e.ofport }]);
    else if (e.nodeIp && tun > 0) {
      add(SEGMENT_EXIT_TABLE, Priority.deliver, match, [{ type: 'set_tunnel_id', id: 0 }, moveBits(TAG_REF, TUN_REF), { type: 'set_tunnel_dst', ip: e.nodeIp }, { type: 'output', port: tun }]);
    }
  }
}

/** Sync request making the chain's flows on this node exactly these (none: the chain is removed). */
export function chainSync(node: ChainNodeInfo, chain: DatapathChain): SyncRequest {
  return { cookie: chainScope(chain.index), flows: chainFlows(node, chain) };
}

export function chainRemoval(index: number): SyncRequest {
  return { cookie: chainScope(index), flows: [] };
}

/** A secondary bridge's whole chain stage: its base flows and its chains' (synced as one scope on that bridge). */
export function segmentSync(node: ChainNodeInfo, hooks: readonly SegmentHook[], chains: readonly DatapathChain[]): SyncRequest {
  return { cookie: chainingScope(), flows: [...segmentBaseFlows(node, hooks), ...chains.flatMap((c) => chainFlows(node, c))] };
}

/** The whole chain stage of the node: used at start (replacing every earlier round's flows) and after ovs-vswitchd restarts. */
export function chainingSync(node: ChainNodeInfo, chains: readonly DatapathChain[]): SyncRequest {
  return { cookie: chainingScope(), flows: [...chainBaseFlows(node), ...chains.flatMap((c) => chainFlows(node, c))] };
}

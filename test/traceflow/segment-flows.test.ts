// A trace's observation flows on a secondary network's bridge: where they sit against the bridge's own flows and the
// MultiNetworkPolicy stage's, what they match, and what their cookies tell the agent.
import { ChainTable, SEGMENT_EXIT_TABLE, TAG_REG } from '../../src/chaining/datapath/layout.js';
import { ENTRY_PRIORITY, SecondaryPolicyTable as P } from '../../src/policy/datapath/secondary.js';
import { OverlayTable } from '../../src/secondary/datapath/overlay-flows.js';
import { TrunkPriority } from '../../src/secondary/datapath/trunk-flows.js';
import type { TracePacket } from '../../src/traceflow/api/types.js';
import { decodeTraceCookie, ObservationPoint, OBSERVE_PRIORITY, tagScope } from '../../src/traceflow/datapath/flows.js';
import { segmentFlows, segmentSync, TRUNK_OBSERVE_PRIORITY } from '../../src/traceflow/datapath/segment-flows.js';

const packet: TracePacket = { sourceIP: '10.100.0.5', destinationIP: '10.100.0.6', sourceMAC: '0a:00:00:00:00:05', destinationMAC: '0a:00:00:00:00:06', protocol: 'UDP', sourcePort: 40000, destinationPort: 53, ttl: 64 };
const where = (flows: ReturnType<typeof segmentFlows>): Array<[number, number, number | undefined]> => flows.map((f) => [f.table!, f.priority!, decodeTraceCookie(f.cookie!)?.point]);
/** The flows of the bridge's own stages (the chain stage's come after, tagged and past a CNF). */
const ownStages = (flows: ReturnType<typeof segmentFlows>): ReturnType<typeof segmentFlows> => flows.filter((f) => f.table !== ChainTable.Target && f.table !== SEGMENT_EXIT_TABLE);

describe('observation flows on a secondary bridge', () => {
  it('on a trunk bridge: table 0 between NORMAL and the policy entry, the policy commit, drops and invalid', () => {
    const flows = segmentFlows(3, 7, packet, { kind: 'trunk' });
    expect(where(ownStages(flows))).toEqual([
      [0, TRUNK_OBSERVE_PRIORITY, ObservationPoint.output],
      [P.Commit, OBSERVE_PRIORITY, ObservationPoint.output],
      [P.ConntrackState, OBSERVE_PRIORITY, ObservationPoint.invalid],
      [P.EgressDrop, OBSERVE_PRIORITY, ObservationPoint.egressDrop],
      [P.IngressDrop, OBSERVE_PRIORITY, ObservationPoint.ingressDrop],
    ]);
    // A policed VLAN's packets enter the policy stage first; function ports' drops stay above.
    expect(TRUNK_OBSERVE_PRIORITY).toBeGreaterThan(TrunkPriority.Normal);
    expect(TRUNK_OBSERVE_PRIORITY).toBeLessThan(ENTRY_PRIORITY);
    expect(TRUNK_OBSERVE_PRIORITY).toBeLessThan(TrunkPriority.FunctionDrop);
  });

  it('on an overlay bridge: its Forward table instead, where the learned port is known', () => {
    expect(where(segmentFlows(3, 7, packet, { kind: 'overlay' }))[0]).toEqual([OverlayTable.Forward, OBSERVE_PRIORITY, ObservationPoint.output]);
    expect(segmentFlows(3, 7, packet, { kind: 'overlay' }).some((f) => f.table === 0 || f.table === P.Commit)).toBe(false);
  });

  it('matches only the trace\'s packet (its tag, source and port) and hands it to the agent', () => {
    for (const f of ownStages(segmentFlows(3, 7, packet, { kind: 'trunk' }))) {
      expect(f.match).toEqual(expect.objectContaining({ protocol: 'udp', ip_dscp: 7, nw_src: '10.100.0.5', tp_src: 40000 }));
      expect(f.actions).toEqual([{ type: 'output', port: 'CONTROLLER' }]);
      expect(decodeTraceCookie(f.cookie!)?.tag).toBe(7);
    }
  });

  it('observes a service chain: steering goes on into the CNF; the exit goes on to another node, or stops at the destination here', () => {
    const chained = (f: ReturnType<typeof segmentFlows>[number]): boolean => f.match!.ip_dscp === undefined;
    const away = segmentFlows(3, 7, packet, { kind: 'overlay' }).filter((f) => f.table === ChainTable.Target || f.table === SEGMENT_EXIT_TABLE);
    const target = away.filter((f) => f.table === ChainTable.Target);
    expect(target.length).toBeGreaterThan(0);
    for (const f of target) expect(f.actions).toEqual([{ type: 'output', port: 'CONTROLLER' }, { type: 'load', value: 1, dst: 'reg2[0]' }, { type: 'resubmit', table: ChainTable.Target }]);
    const exits = away.filter((f) => f.table === SEGMENT_EXIT_TABLE);
    expect(exits.map((f) => decodeTraceCookie(f.cookie!)?.point)).toEqual([ObservationPoint.chainExit, ObservationPoint.chainExit]);
    for (const f of exits) expect(f.actions).toEqual([{ type: 'output', port: 'CONTROLLER' }, { type: 'load', value: 1, dst: 'reg2[1]' }, { type: 'resubmit', table: SEGMENT_EXIT_TABLE }]);
    // Each twice: with the tag, and past a CNF without it but with the chain tag's chained bit.
    expect(away.filter(chained)).toHaveLength(away.length / 2);
    for (const f of away.filter(chained)) expect(f.match![`reg${TAG_REG}`]).toBeDefined();
    // On the destination's node the exit reports and stops: the packet is not handed to the pod.
    const here = segmentFlows(3, 7, packet, { kind: 'overlay', destinationHere: true }).filter((f) => f.table === SEGMENT_EXIT_TABLE);
    expect(here.map((f) => [decodeTraceCookie(f.cookie!)?.point, f.match!.nw_dst, f.actions])).toEqual([
      [ObservationPoint.chainDelivered, '10.100.0.6', [{ type: 'output', port: 'CONTROLLER' }]],
      [ObservationPoint.chainDelivered, '10.100.0.6', [{ type: 'output', port: 'CONTROLLER' }]],
    ]);
  });

  it('are removed by a sync of the trace\'s tag without a packet', () => {
    expect(segmentSync(3, 7, undefined)).toEqual({ cookie: tagScope(7), flows: [] });
    expect(segmentSync(3, 7, { packet, bridge: { kind: 'overlay' } }).flows).toEqual(segmentFlows(3, 7, packet, { kind: 'overlay' }));
  });
});

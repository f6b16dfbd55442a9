// A trace's observation flows and their cookies (pure: no OVS).
import { CookieOwner, decodeCookie, makeCookie, renderFlow, type Action, type Flow } from '../../src/ovs/openflow/index.js';
import { matchMarks, OutPortFound, ToGateway, ToTunnel } from '../../src/primary/pipeline/marks.js';
import { HAIRPIN_VIRTUAL_IP, Priority, Table } from '../../src/primary/pipeline/tables.js';
import { ChainTable } from '../../src/chaining/datapath/layout.js';
import { PolicyCookies, PRIMARY_VERDICTS } from '../../src/policy/datapath/layout.js';
import type { TracePacket } from '../../src/traceflow/api/types.js';
import {
  chainedFlows,
  decodeTraceCookie,
  hairpinFlows,
  OBSERVE_PRIORITY,
  ObservationPoint,
  packetMatch,
  samplingFlow,
  tagScope,
  traceCookie,
  traceFlows,
  traceScope,
  traceSync,
  type ObservationPointId,
  type TraceNode,
} from '../../src/traceflow/datapath/flows.js';

const CLUSTER = '10.244.0.0/16';
const tcp: TracePacket = { sourceIP: '10.244.1.2', destinationIP: '10.244.2.3', protocol: 'TCP', sourcePort: 40000, destinationPort: 80, tcpFlags: 2, ttl: 64 };
const udp: TracePacket = { sourceIP: '10.244.1.9', destinationIP: '10.96.0.10', protocol: 'UDP', sourcePort: 5353, destinationPort: 53, ttl: 64 };
const icmp: TracePacket = { sourceIP: '10.244.1.5', destinationIP: '192.0.2.1', protocol: 'ICMP', ttl: 64 };

const encap: TraceNode = { round: 3, mode: 'encap', clusterCidr: CLUSTER };
const noEncap: TraceNode = { round: 3, mode: 'noEncap', clusterCidr: CLUSTER };
const chained: TraceNode = { round: 3, mode: 'chained', clusterCidr: CLUSTER };

/** The points every trace observes on br-int (sampling is live traffic's, at the source only; the chain exits are secondary bridges'). */
const POINTS = (Object.values(ObservationPoint) as ObservationPointId[]).filter((p) => p !== ObservationPoint.sample && p !== ObservationPoint.chainExit && p !== ObservationPoint.chainDelivered);
const toController: Action = { type: 'output', port: 'CONTROLLER' };
const sendOn: Action = { type: 'output', port: { field: 'reg1[]' } };

const pointOf = (f: Flow): number | undefined => decodeTraceCookie(f.cookie!)?.point;
const at = (flows: Flow[], point: ObservationPointId): Flow[] => flows.filter((f) => pointOf(f) === point);

describe('trace cookies', () => {
  it('decode back to the tag and observation point they were made with, in any round', () => {
    for (const round of [0, 1, 0xffff]) {
      for (const tag of [1, 17, 63]) {
        for (const point of POINTS) {
          const cookie = traceCookie(round, tag, point);
          expect(decodeTraceCookie(cookie)).toEqual({ tag, point });
          expect(decodeCookie(cookie)).toMatchObject({ owner: CookieOwner.traceflow, round });
        }
      }
    }
  });

  it('are owned by traceflow, so that a cookie of another owner decodes to nothing', () => {
    expect(decodeTraceCookie(makeCookie(CookieOwner.policy, 3, (5n << 8n) | 1n))).toBeUndefined();
    expect(decodeTraceCookie(new PolicyCookies(3).cookie(0x501))).toBeUndefined();
    expect(decodeTraceCookie(makeCookie(CookieOwner.primary, 0))).toBeUndefined();
    expect(decodeTraceCookie(0n)).toBeUndefined();
  });

  it('refuse a tag outside 1..63', () => {
    for (const tag of [0, 64, -1, 1.5, Number.NaN]) expect(() => traceCookie(1, tag, ObservationPoint.output)).toThrow(RangeError);
  });
});

describe('the cookie scope of one trace', () => {
  it('selects every cookie of its tag, whatever the round and observation point', () => {
    const { value, mask } = tagScope(9);
    for (const round of [0, 2, 0xffff]) {
      for (const point of POINTS) expect(traceCookie(round, 9, point) & mask).toBe(value);
    }
  });

  it('selects no cookie of another tag, nor any cookie of another owner', () => {
    const { value, mask } = tagScope(9);
    for (const tag of [1, 8, 10, 41, 63]) {
      for (const point of POINTS) expect(traceCookie(2, tag, point) & mask).not.toBe(value);
    }
    // Another owner's cookie with the same bits where the tag would be.
    for (const owner of [CookieOwner.primary, CookieOwner.policy, CookieOwner.services, CookieOwner.serviceAffinity]) {
      expect(makeCookie(owner, 2, (9n << 8n) | 1n) & mask).not.toBe(value);
    }
  });

  it('refuses a tag outside 1..63', () => {
    expect(() => tagScope(0)).toThrow(RangeError);
    expect(() => tagScope(64)).toThrow(/trace tag 64 outside 1\.\.63/);
  });
});

describe('the scope of every trace', () => {
  it("selects every trace's cookies and no other owner's", () => {
    const { value, mask } = traceScope();
    for (const tag of [1, 30, 63]) expect(traceCookie(7, tag, ObservationPoint.noOutput) & mask).toBe(value);
    for (const owner of [CookieOwner.primary, CookieOwner.secondary, CookieOwner.chaining, CookieOwner.policy, CookieOwner.services, CookieOwner.serviceAffinity]) {
      expect(makeCookie(owner, 7, 0x501n) & mask).not.toBe(value);
    }
  });
});

describe("the match of a trace's packet", () => {
  it('is the TCP source port, the tag as DSCP and the source address for TCP', () => {
    expect(packetMatch(12, tcp)).toEqual({ protocol: 'tcp', ip_dscp: 12, nw_src: '10.244.1.2', tp_src: 40000 });
  });

  it('is the UDP source port, the tag as DSCP and the source address for UDP', () => {
    expect(packetMatch(63, udp)).toEqual({ protocol: 'udp', ip_dscp: 63, nw_src: '10.244.1.9', tp_src: 5353 });
  });

  it('is an echo request with the tag as DSCP from the source address for ICMP', () => {
    expect(packetMatch(1, icmp)).toEqual({ protocol: 'icmp', ip_dscp: 1, nw_src: '10.244.1.5', icmp_type: 8 });
  });

  it('refuses a TCP or UDP packet without a source port', () => {
    const { sourcePort: _tcpPort, ...noPortTcp } = tcp;
    const { sourcePort: _udpPort, ...noPortUdp } = udp;
    expect(() => packetMatch(5, noPortTcp)).toThrow('a TCP trace needs a source port');
    expect(() => packetMatch(5, noPortUdp)).toThrow('a UDP trace needs a source port');
  });
});

describe('the observation flows in encap mode', () => {
  const flows = traceFlows(encap, 5, tcp);
  const text = flows.map(renderFlow);

  it('observe a found output port in Output above every pipeline flow, sending the packet only to the agent', () => {
    const plain = at(flows, ObservationPoint.output).filter((f) => f.priority === OBSERVE_PRIORITY);
    expect(plain).toHaveLength(1);
    expect(plain[0]).toMatchObject({ table: Table.Output, match: matchMarks(OutPortFound), actions: [toController] });
    expect(text).toContain('table=110,priority=60000,cookie=0x700030000000501,tcp,nw_src=10.244.1.2,ip_dscp=5,tp_src=0x9c40,reg0=0x100/0x100,actions=CONTROLLER');
  });

  it('observe a packet into the tunnel one priority higher, and send it on by the port in reg1 as well', () => {
    const tunnel = at(flows, ObservationPoint.output).filter((f) => f.priority === OBSERVE_PRIORITY + 1);
    expect(tunnel).toHaveLength(1);
    expect(tunnel[0]).toMatchObject({ table: Table.Output, match: matchMarks(OutPortFound, ToTunnel), actions: [toController, sendOn] });
    expect(text).toContain('table=110,priority=60001,cookie=0x700030000000501,tcp,nw_src=10.244.1.2,ip_dscp=5,tp_src=0x9c40,reg0=0x120/0x1f0,actions=CONTROLLER,output:reg1[]');
  });

  it('observe the egress and ingress policy drop tables (54 and 94) above their drop', () => {
    expect(PRIMARY_VERDICTS.dropTable).toEqual({ Egress: 54, Ingress: 94 });
    expect(at(flows, ObservationPoint.egressDrop)).toEqual([{ table: 54, priority: OBSERVE_PRIORITY, cookie: traceCookie(3, 5, ObservationPoint.egressDrop), match: packetMatch(5, tcp), actions: [toController] }]);
    expect(at(flows, ObservationPoint.ingressDrop)).toEqual([{ table: 94, priority: OBSERVE_PRIORITY, cookie: traceCookie(3, 5, ObservationPoint.ingressDrop), match: packetMatch(5, tcp), actions: [toController] }]);
  });

  it('observe the misses of SpoofGuard, L2ForwardingCalc and Output one priority above the miss', () => {
    const miss = (point: ObservationPointId, table: number): void => {
      expect(at(flows, point)).toEqual([{ table, priority: Priority.miss + 1, cookie: traceCookie(3, 5, point), match: packetMatch(5, tcp), actions: [toController] }]);
    };
    miss(ObservationPoint.spoofGuard, Table.SpoofGuard);
    miss(ObservationPoint.noPort, Table.L2ForwardingCalc);
    miss(ObservationPoint.noOutput, Table.Output);
    expect(text).toContain('table=10,priority=1,cookie=0x700030000000504,tcp,nw_src=10.244.1.2,ip_dscp=5,tp_src=0x9c40,actions=CONTROLLER');
  });

  it('observe a packet conntrack finds invalid in ConntrackState', () => {
    expect(at(flows, ObservationPoint.invalid)).toEqual([{ table: Table.ConntrackState, priority: OBSERVE_PRIORITY, cookie: traceCookie(3, 5, ObservationPoint.invalid), match: { ...packetMatch(5, tcp), ct_state: { inv: true, trk: true } }, actions: [toController] }]);
    expect(text).toContain('table=31,priority=60000,cookie=0x700030000000507,tcp,nw_src=10.244.1.2,ip_dscp=5,tp_src=0x9c40,ct_state=+inv+trk,actions=CONTROLLER');
  });

  it("observe a cluster address no node holds in L3Forwarding, just above the cluster block's drop", () => {
    expect(at(flows, ObservationPoint.noRoute)).toEqual([{ table: Table.L3Forwarding, priority: Priority.cluster + 1, cookie: traceCookie(3, 5, ObservationPoint.noRoute), match: { ...packetMatch(5, tcp), nw_dst: CLUSTER }, actions: [toController] }]);
    expect(Priority.cluster + 1).toBeLessThan(Priority.subnet);
    expect(text).toContain('table=70,priority=181,cookie=0x700030000000505,tcp,nw_src=10.244.1.2,nw_dst=10.244.0.0/16,ip_dscp=5,tp_src=0x9c40,actions=CONTROLLER');
  });

  it('have one flow per observation point and table (five in the chain stage\'s Target), fourteen in all', () => {
    expect(flows).toHaveLength(14);
    expect(flows.map((f) => `${f.table}/${f.priority}`).sort()).toEqual(['10/1', '110/1', '110/60000', '110/60001', '31/60000', '54/60000', ...Array(5).fill('67/60000'), '70/181', '80/1', '94/60000'].sort());
    expect(new Set(text).size).toBe(text.length);
  });

  it('leave out the no-route flow when the node does not know the cluster block', () => {
    const without = traceFlows({ round: 3, mode: 'encap' }, 5, tcp);
    expect(at(without, ObservationPoint.noRoute)).toEqual([]);
    expect(without.filter((f) => f.priority === OBSERVE_PRIORITY + 1)).toHaveLength(1);
  });
});

describe('the observation flows in noEncap mode', () => {
  const flows = traceFlows(noEncap, 5, tcp);

  it('have no tunnel flow and no no-route flow', () => {
    expect(at(flows, ObservationPoint.noRoute)).toEqual([]);
    expect(flows.map(renderFlow).some((t) => t.includes('reg0=0x120/0x1f0'))).toBe(false);
  });

  it("observe a packet the node routes to the cluster block through the gateway, and send it on", () => {
    const gateway = flows.filter((f) => f.priority === OBSERVE_PRIORITY + 1);
    expect(gateway).toEqual([
      { table: Table.Output, priority: OBSERVE_PRIORITY + 1, cookie: traceCookie(3, 5, ObservationPoint.output), match: { ...matchMarks(OutPortFound, ToGateway), nw_dst: CLUSTER, ...packetMatch(5, tcp) }, actions: [toController, sendOn] },
    ]);
    expect(renderFlow(gateway[0]!)).toBe('table=110,priority=60001,cookie=0x700030000000501,tcp,nw_src=10.244.1.2,nw_dst=10.244.0.0/16,ip_dscp=5,tp_src=0x9c40,reg0=0x110/0x1f0,actions=CONTROLLER,output:reg1[]');
  });

  it('keep the observation points every mode has', () => {
    expect(flows).toHaveLength(13);
    for (const point of POINTS.filter((p) => p !== ObservationPoint.noRoute)) expect(at(flows, point).length).toBeGreaterThan(0);
  });

  it('send nothing on without the cluster block', () => {
    const without = traceFlows({ round: 3, mode: 'noEncap' }, 5, tcp);
    expect(without).toHaveLength(12);
    expect(without.filter((f) => f.table !== ChainTable.Target).every((f) => f.actions.length === 1)).toBe(true);
  });
});

describe('the observation flow of the chain stage', () => {
  it('reports the packet once per pass through the Target table, once a replica is chosen, and lets the chain\'s own flow take it', () => {
    const flows = at(traceFlows(encap, 5, tcp), ObservationPoint.chainTarget);
    expect(flows.every((f) => f.table === ChainTable.Target)).toBe(true);
    // One flow per bit of the target replica field (bits 5..9 of reg8): any chosen replica sets one of them.
    expect(flows.map((f) => f.match?.reg8)).toEqual([0x20, 0x40, 0x80, 0x100, 0x200].map((b) => ({ value: b, mask: b })));
    expect(renderFlow(flows[0]!)).toBe('table=67,priority=60000,cookie=0x700030000000509,tcp,nw_src=10.244.1.2,ip_dscp=5,tp_src=0x9c40,reg2=0x0/0x1,reg8=0x20/0x20,actions=CONTROLLER,load:0x1->reg2[0],resubmit(,67)');
  });
});

describe('the observation flows in chained mode', () => {
  const flows = traceFlows(chained, 5, tcp);

  it('send a packet to the cluster\'s pods on through the node\'s routes (the cloud\'s network), and have no no-route flow', () => {
    expect(flows).toHaveLength(13);
    expect(flows.filter((f) => f.priority === OBSERVE_PRIORITY + 1)).toEqual([
      expect.objectContaining({ table: Table.Output, match: expect.objectContaining({ ...matchMarks(OutPortFound, ToGateway), nw_dst: CLUSTER }), actions: [toController, sendOn] }),
    ]);
    expect(at(flows, ObservationPoint.noRoute)).toEqual([]);
  });

  it('without the cluster block, send nothing on', () => {
    const { clusterCidr: _cidr, ...bare } = chained;
    const none = traceFlows(bare, 5, tcp);
    expect(none.filter((f) => f.priority === OBSERVE_PRIORITY + 1)).toEqual([]);
    expect(none.filter((f) => f.table !== ChainTable.Target).every((f) => f.actions.length === 1 && f.actions[0]!.type === 'output')).toBe(true);
  });
});

describe('every observation flow', () => {
  const cases: [string, TraceNode, TracePacket][] = [
    ['encap TCP', encap, tcp],
    ['encap ICMP', encap, icmp],
    ['noEncap UDP', noEncap, udp],
    ['chained ICMP', chained, icmp],
  ];

  it.each(cases)("matches only the trace's packet: its tag and source (%s)", (_, node, packet) => {
    const flows = traceFlows(node, 17, packet);
    const own = packetMatch(17, packet);
    for (const f of flows) {
      expect(f.match).toMatchObject(own);
      const rendered = renderFlow(f);
      expect(rendered).toContain(`,nw_src=${packet.sourceIP},`);
      expect(rendered).toContain(',ip_dscp=17,');
      expect(decodeTraceCookie(f.cookie!)?.tag).toBe(17);
      expect(f.cookie! & tagScope(17).mask).toBe(tagScope(17).value);
      expect(decodeCookie(f.cookie!).round).toBe(node.round);
    }
  });

  it.each(cases)('sends the packet to the agent, and on only into a tunnel or through the gateway (%s)', (_, node, packet) => {
    for (const f of traceFlows(node, 17, packet)) {
      expect(f.actions[0]).toEqual(toController);
      if (f.actions.length === 1 || f.table === ChainTable.Target) continue;
      // Only the Output variants for the tunnel (encap) or the gateway (noEncap) send on, by reg1.
      expect(f.actions).toEqual([toController, sendOn]);
      expect(f.table).toBe(Table.Output);
      expect(f.priority).toBe(OBSERVE_PRIORITY + 1);
      const expected = node.mode === 'encap' ? matchMarks(OutPortFound, ToTunnel) : matchMarks(OutPortFound, ToGateway);
      expect(f.match?.reg0).toEqual(expected.reg0);
    }
  });

  it("leaves a packet for a local pod to the plain Output observation, which only sends it to the agent", () => {
    // reg0 as L2ForwardingCalc leaves it for a local pod: port found, destination kind 3.
    const reg0 = 0x100 | (3 << 4);
    for (const [, node, packet] of cases) {
      const matching = traceFlows(node, 17, packet).filter((f) => {
        if (f.table !== Table.Output || f.priority! < OBSERVE_PRIORITY) return false;
        const m = f.match!.reg0 as { value: number; mask: number };
        return (reg0 & m.mask) === m.value;
      });
      expect(matching).toHaveLength(1);
      expect(matching[0]!.actions).toEqual([toController]);
    }
  });
});

describe("a trace's sync request", () => {
  it("installs the trace's flows under its tag's scope", () => {
    expect(traceSync(encap, 5, { packet: tcp })).toEqual({ cookie: tagScope(5), flows: [...traceFlows(encap, 5, tcp), ...hairpinFlows(encap, 5, tcp), ...chainedFlows(encap, 5, tcp)] });
  });

  it('also observes a chained packet past a CNF, which may have re-marked its DSCP: by its source, source port and the chained bit', () => {
    const flows = chainedFlows(encap, 5, tcp);
    expect(flows.map((f) => decodeTraceCookie(f.cookie!)!.point).sort()).toEqual(
      [ObservationPoint.output, ObservationPoint.output, ObservationPoint.noOutput, ObservationPoint.ingressDrop, ObservationPoint.noPort, ...Array<number>(5).fill(ObservationPoint.chainTarget), ObservationPoint.noRoute].sort(),
    );
    for (const f of flows) {
      expect(f.match?.ip_dscp).toBeUndefined();
      expect(f.match).toMatchObject({ nw_src: tcp.sourceIP, tp_src: tcp.sourcePort });
      const reg8 = f.match!.reg8 as { value: number; mask: number };
      expect(reg8.value & reg8.mask & (1 << 23)).toBe(1 << 23);
    }
    // Before the chain stage nothing is observed without the tag.
    expect(flows.some((f) => [Table.SpoofGuard, Table.ConntrackState, PRIMARY_VERDICTS.dropTable.Egress].includes(f.table as never))).toBe(false);
  });

  it('also observes, after the Service stage, the packet of a pod that reached itself (its source is then the hairpin address)', () => {
    const flows = hairpinFlows(encap, 5, tcp);
    expect(flows.map((f) => [f.table, f.match?.nw_src, f.match?.tp_src, f.match?.ip_dscp])).toEqual([
      [Table.Output, HAIRPIN_VIRTUAL_IP, 40000, 5],
      [PRIMARY_VERDICTS.dropTable.Egress, HAIRPIN_VIRTUAL_IP, 40000, 5],
      [PRIMARY_VERDICTS.dropTable.Ingress, HAIRPIN_VIRTUAL_IP, 40000, 5],
    ]);
    for (const f of flows) expect(f.actions).toEqual([toController]);
  });

  it('removes them without a packet: no flows, the same scope', () => {
    expect(traceSync(encap, 5, undefined)).toEqual({ cookie: tagScope(5), flows: [] });
    expect(traceSync(chained, 5, undefined).cookie).toEqual(traceSync(noEncap, 5, { packet: icmp }).cookie);
  });

  it('refuses a tag outside 1..63, with or without a packet', () => {
    for (const tag of [0, 64]) {
      expect(() => traceSync(encap, tag, { packet: tcp })).toThrow(RangeError);
      expect(() => traceSync(encap, tag, undefined)).toThrow(RangeError);
      expect(() => traceFlows(encap, tag, tcp)).toThrow(RangeError);
    }
  });
});

describe('live traffic', () => {
  const { sourcePort: _port, ...anyPort } = udp;

  it('observes by the tag and the source (the tag is on one packet only), with the source port only when the trace names it', () => {
    expect(packetMatch(5, anyPort, anyPort.sourceIP, true)).toEqual({ protocol: 'udp', ip_dscp: 5, nw_src: udp.sourceIP });
    expect(packetMatch(5, udp, udp.sourceIP, true)).toEqual(packetMatch(5, udp));
  });

  it('hands the packet on where an injected one would stop: to the pod or the node, with its DSCP back to 0', () => {
    for (const flows of [traceFlows(encap, 5, anyPort, true), hairpinFlows(encap, 5, anyPort, true)]) {
      const out = flows.filter((f) => f.table === Table.Output && f.priority === OBSERVE_PRIORITY);
      expect(out).toHaveLength(1);
      expect(out[0]!.actions).toEqual([toController, { type: 'set_field', field: 'ip_dscp', value: 0 }, sendOn]);
    }
    // Into the tunnel it keeps the tag: the next node observes it.
    const tunnel = traceFlows(encap, 5, anyPort, true).find((f) => f.table === Table.Output && f.priority === OBSERVE_PRIORITY + 1)!;
    expect(tunnel.actions).toEqual([toController, sendOn]);
    // Drop points only report: the pipeline drops the packet as it would anyway.
    const drops = traceFlows(encap, 5, anyPort, true).filter((f) => f.table === PRIMARY_VERDICTS.dropTable.Ingress);
    expect(drops.map((f) => f.actions)).toEqual([[toController]]);
  });

  it('has no chained-packet flows: past a CNF that re-marks DSCP, the packet looks like the pod\'s others', () => {
    expect(chainedFlows(encap, 5, udp, true)).toEqual([]);
    expect(traceSync(encap, 5, { packet: anyPort, live: true }).flows).toEqual([...traceFlows(encap, 5, anyPort, true), ...hairpinFlows(encap, 5, anyPort, true)]);
  });

  it('samples at the source pod\'s port, in the Classifier above its flow: untagged packets to the destination, on the ports named', () => {
    const f = samplingFlow(encap, 5, anyPort, 7);
    expect(f).toEqual({
      table: Table.Classifier,
      priority: OBSERVE_PRIORITY,
      cookie: traceCookie(3, 5, ObservationPoint.sample),
      match: { in_port: 7, protocol: 'udp', nw_src: udp.sourceIP, nw_dst: udp.destinationIP, ip_dscp: 0, tp_dst: 53 },
      actions: [toController],
    });
    expect(samplingFlow(encap, 5, tcp, 7).match).toMatchObject({ protocol: 'tcp', tp_src: 40000, tp_dst: 80 });
    expect(samplingFlow(encap, 5, icmp, 7).match).toMatchObject({ protocol: 'icmp', icmp_type: 8 });
    expect(renderFlow(f)).toBe('table=0,priority=60000,cookie=0x70003000000050a,in_port=7,udp,nw_src=10.244.1.9,nw_dst=10.96.0.10,ip_dscp=0,tp_dst=0x35,actions=CONTROLLER');
    // In the sync request while sampling, under the trace's scope; gone once the agent took its packet.
    expect(traceSync(encap, 5, { packet: anyPort, live: true, samplingOfport: 7 }).flows.at(-1)).toEqual(f);
    expect(traceSync(encap, 5, { packet: anyPort, live: true }).flows).not.toContainEqual(f);
  });
});

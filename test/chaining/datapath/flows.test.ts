import { classifierClauses } from '../../../src/chaining/datapath/classifier.js';
import { portMasks } from '../../../src/ovs/openflow/index.js';
import { chainFlows, chainBaseFlows, usableReplicas } from '../../../src/chaining/datapath/flows.js';
import { ChainTable, decodeTag, tag, hopZone, chainObject, decodeChainObject, chainScope } from '../../../src/chaining/datapath/layout.js';
import type { DatapathChain } from '../../../src/chaining/datapath/state.js';
import { renderActions, renderMatch, selectorMatches, CookieOwner, makeCookie, type Masked } from '../../../src/ovs/openflow/index.js';

const covers = (masks: Masked[], port: number): boolean =>
  masks.some((m) => (typeof m === 'object' ? (port & Number(m.mask)) === Number(m.value) : port === Number(m)));

describe('port ranges as value/mask pairs', () => {
  it('cover exactly the range, for every range over a small space and some large ones', () => {
    const ranges: Array<[number, number]> = [[80, 80], [1, 65535], [0, 65535], [8000, 8080], [1024, 2047], [1023, 2048], [65535, 65535]];
    for (let a = 0; a < 40; a++) for (let b = a; b < 40; b++) ranges.push([a, b]);
    for (const [first, last] of ranges) {
      const masks = portMasks({ port: first, endPort: last });
      const lo = Math.max(0, first - 40);
      const hi = Math.min(65535, last + 40);
      for (let p = lo; p <= hi; p++) expect([first, last, p, covers(masks, p)]).toEqual([first, last, p, p >= first && p <= last]);
    }
    expect(portMasks({ port: 0, endPort: 65535 })).toEqual([{ value: 0, mask: 0 }]);
    expect(portMasks({ port: 8000, endPort: 8080 }).length).toBeLessThanOrEqual(4);
  });

  it('refuse a reversed range, and ports without a transport protocol', () => {
    expect(() => portMasks({ port: 90, endPort: 80 })).toThrow(RangeError);
    expect(() => classifierClauses({ source: ['0.0.0.0/0'], destination: ['0.0.0.0/0'], ports: [{ port: 80 }] })).toThrow(/TCP, UDP or SCTP/);
  });

  it('leave out clauses that match anything, and say when a selector matched nothing', () => {
    expect(classifierClauses({ source: ['0.0.0.0/0'], destination: ['10.0.0.0/8'], protocol: 'UDP', ports: [] }).clauses).toEqual([[{ nw_dst: '10.0.0.0/8' }]]);
    expect(classifierClauses({ source: [], destination: ['10.0.0.0/8'], ports: [] }).empty).toBe(true);
  });
});

describe('the chain tag and cookies', () => {
  it('round-trip', () => {
    const t = tag({ chain: 200, hop: 15, direction: 1, target: 31, from: 7 });
    expect(t.value).toBeLessThan(2 ** 24);
    expect(decodeTag(t.value)).toEqual({ chained: true, chain: 200, hop: 15, direction: 1, target: 31, from: 7 });
    expect(decodeChainObject(chainObject(9, 2, 3, 1, 17))).toEqual({ chain: 9, kind: 2, hop: 3, direction: 1, replica: 17 });
    expect(hopZone(1, 0)).toBe(0x1010);
    expect(() => hopZone(0, 0)).toThrow(RangeError);
    // A chain's scope selects its flows of any round and kind, and no other chain's.
    const scope = chainScope(9);
    expect(selectorMatches(scope, makeCookie(CookieOwner.chaining, 77, chainObject(9, 2, 3, 1, 17)))).toBe(true);
    expect(selectorMatches(scope, makeCookie(CookieOwner.chaining, 1, chainObject(10)))).toBe(false);
    expect(selectorMatches(scope, makeCookie(CookieOwner.primary, 1, chainObject(9)))).toBe(false);
  });
});

const node = { round: 3, tunnelOfport: 1 };
const local = { ingressOfport: 10, egressOfport: 11, ingressMac: '02:00:00:00:00:0a', egressMac: '02:00:00:00:00:0b' };
function chain(over: Partial<DatapathChain> = {}): DatapathChain {
  return {
    index: 5,
    precedence: 2,
    symmetric: true,
    classifier: { source: ['10.244.0.2/32', '10.244.1.0/24'], destination: ['10.244.2.3/32'], protocol: 'TCP', ports: [{ port: 80 }] },
    hops: [
      { mode: 'Transparent', failurePolicy: 'FailClosed', replicas: [{ id: 1, nodeIp: '192.168.0.1', usable: true, local }, { id: 2, nodeIp: '192.168.0.2', usable: true }] },
      { mode: 'Routed', failurePolicy: 'FailOpen', replicas: [{ id: 1, nodeIp: '192.168.0.2', usable: false }] },
    ],
    ...over,
  };
}
const inTable = (flows: ReturnType<typeof chainFlows>, table: number) => flows.filter((f) => f.table === table);

describe('chain flows', () => {
  it('render to valid ovs-ofctl syntax and share one cookie scope per chain', () => {
    const flows = [...chainBaseFlows(node), ...chainFlows(node, chain())];
    for (const f of flows) {
      expect(() => renderMatch(f.match)).not.toThrow();
      expect(() => renderActions(f.actions)).not.toThrow();
    }
    for (const f of chainFlows(node, chain())) expect(selectorMatches(chainScope(5), f.cookie!)).toBe(true);
  });

  it('classify with a conjunction over sources, destinations and ports, at the priority of the chain\'s precedence', () => {
    const cls = inTable(chainFlows(node, chain()), ChainTable.Classify);
    const conj = cls.filter((f) => f.actions.some((a) => a.type === 'conjunction'));
    expect(conj.map((f) => f.actions[0])).toEqual(expect.arrayContaining([{ type: 'conjunction', id: 5, clause: 1, clauses: 3 }, { type: 'conjunction', id: 5, clause: 3, clauses: 3 }]));
    expect(conj).toHaveLength(4);
    const other = chainFlows(node, chain({ index: 6, precedence: 3 }));
    expect(Math.max(...inTable(other, ChainTable.Classify).filter((f) => f.match?.conj_id).map((f) => f.priority!))).toBeLessThan(conj[0]!.priority!);
  });

  it('skip a FailOpen hop without usable replicas, and steer remote replicas through the tunnel only for packets not from it', () => {
    const c = chain();
    expect(usableReplicas(node, c.hops[1]!)).toEqual([]);
    const select = inTable(chainFlows(node, c), ChainTable.Select);
    const skip = select.filter((f) => f.match?.reg8 && (f.match.reg8 as { value: number }).value === tag({ chain: 5, hop: 1, direction: 0 }).value);
    expect(skip.flatMap((f) => f.actions.map((a) => a.type))).toContain('resubmit');
    const remote = inTable(chainFlows(node, c), ChainTable.Target).find((f) => f.actions.some((a) => a.type === 'set_tunnel_dst'));
    expect(remote?.match?.reg9).toEqual({ value: 0, mask: 1 << 9 });
    // Without a tunnel, remote replicas are not usable.
    expect(usableReplicas({ round: 3, tunnelOfport: 0 }, c.hops[0]!).map((r) => r.id)).toEqual([1]);
  });

  it('have no reverse steering for an asymmetric chain', () => {
    const flows = chainFlows(node, chain({ symmetric: false }));
    const rev = tag({ chain: 5, direction: 1 });
    expect(flows.filter((f) => f.match?.reg8 && (Number((f.match.reg8 as { value: number }).value) & rev.mask & ~tag({ chain: 5 }).mask) !== 0)).toEqual([]);
    expect(flows.some((f) => f.match?.ct_label !== undefined && f.match.ct_state && typeof f.match.ct_state === 'object' && f.match.ct_state.rpl)).toBe(false);
  });
});

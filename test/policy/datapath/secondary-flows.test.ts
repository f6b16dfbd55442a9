// The MultiNetworkPolicy pipeline of a secondary bridge as data (pure): nothing without something to enforce, only
// the policed VLANs enter it, each segment in its own conntrack zone, rules and isolation in its own tables, and a
// way out that is the bridge's own forwarding.
import { renderFlow } from '../../../src/ovs/openflow/flow.js';
import { PolicyPriority } from '../../../src/policy/datapath/layout.js';
import { overlayZone, SecondaryPolicyTable as T, secondaryPolicyFlows, vlanZone, type SecondaryBridgePolicy } from '../../../src/policy/datapath/secondary.js';
import type { DatapathRule } from '../../../src/policy/datapath/state.js';

const rule: DatapathRule = {
  id: 1,
  direction: 'Ingress',
  tier: 'NetworkPolicy',
  action: 'Accept',
  priority: PolicyPriority.networkPolicy,
  applied: [{ ofport: 3, namedPorts: [] }],
  peers: { any: false, cidrs: [], pods: [{ ip: '192.168.50.4', namedPorts: [] }] },
  ports: [{ protocol: 'TCP', port: 80 }],
};

const trunk = (over: Partial<Extract<SecondaryBridgePolicy, { kind: 'trunk' }>> = {}): SecondaryBridgePolicy => ({
  kind: 'trunk',
  round: 2,
  segments: [{ vlan: 100, ports: [{ ofport: 3, mac: '0A:00:00:00:00:03' }, { ofport: 4, mac: '0a:00:00:00:00:04' }] }],
  rules: [rule],
  isolations: [{ direction: 'Ingress', ofport: 3, ruleId: 2 }],
  ...over,
});

const text = (s: SecondaryBridgePolicy): string[] => secondaryPolicyFlows(s).map((f) => renderFlow(f));

describe('secondary network policy flows', () => {
  it('has no flow on a bridge with no rule and no isolation', () => {
    expect(secondaryPolicyFlows(trunk({ rules: [], isolations: [] }))).toEqual([]);
    expect(secondaryPolicyFlows({ kind: 'overlay', round: 1, zone: overlayZone(5001), ports: [], rules: [], isolations: [] })).toEqual([]);
  });

  it('takes a policed VLAN\'s IP into the pipeline from its access ports and tagged from the uplink, in the VLAN\'s zone', () => {
    const flows = text(trunk());
    const zone = vlanZone(100);
    const entry = flows.filter((f) => /table=0,/.test(f));
    expect(entry).toHaveLength(3);
    expect(entry.filter((f) => /in_port=(3|4)\b/.test(f) && f.includes(`load:0x${zone.toString(16)}->reg6[]`))).toHaveLength(2);
    expect(entry.some((f) => f.includes('dl_vlan=100'))).toBe(true);
    expect(flows.some((f) => f.includes(`table=${T.Conntrack},`) && f.includes('ct(table=13,zone=reg6[0..15])'))).toBe(true);
    // Out by NORMAL: after an established connection's packet, and after a new one's commit.
    expect(flows.filter((f) => f.includes('NORMAL'))).toHaveLength(4);
    // Ingress rules find the destination by its MAC (lower case) within the segment.
    expect(flows.some((f) => f.includes(`table=${T.Destination},`) && f.includes(`reg6=0x${zone.toString(16)}`) && f.includes('dl_dst=0a:00:00:00:00:03') && f.includes('load:0x3->reg7[]'))).toBe(true);
  });

  it('leaves the VLANs of other networks on the trunk to NORMAL', () => {
    const flows = text(trunk());
    expect(flows.some((f) => f.includes('dl_vlan=200'))).toBe(false);
    const two = text(trunk({ segments: [{ vlan: 100, ports: [{ ofport: 3 }] }, { vlan: 200, ports: [{ ofport: 7 }] }] }));
    expect(two.filter((f) => /dl_vlan=(100|200)\b/.test(f))).toHaveLength(2);
  });

  it('puts rules and isolation in the secondary tables, ingress by the destination register', () => {
    const flows = secondaryPolicyFlows(trunk());
    const ruleTables = new Set(flows.filter((f) => f.cookie !== undefined && (f.cookie & 0xffffffffn) === 1n).map((f) => f.table));
    expect([...ruleTables]).toEqual([T.IngressRules]);
    // A drop records the deciding rule (a Traceflow names it) and goes to the direction's drop table, which drops.
    const drop = flows.find((f) => f.table === T.IngressIsolation && f.match?.reg7 === 3);
    expect(drop?.actions).toEqual([expect.objectContaining({ type: 'load', dst: 'reg5[]' }), { type: 'goto_table', table: T.IngressDrop }]);
    expect(flows.filter((f) => f.table === T.IngressDrop || f.table === T.EgressDrop).map((f) => f.actions)).toEqual([[], []]);
    // An accepted packet goes on to the commit, its rule recorded too.
    const accept = flows.find((f) => f.table === T.IngressRules && f.match?.conj_id !== undefined);
    expect(accept?.actions).toEqual([{ type: 'load', value: 1, dst: 'reg5[]' }, { type: 'goto_table', table: T.Commit }]);
  });

  it('on an overlay bridge enters at its policy seam in the bridge\'s zone and leaves to its forwarding table', () => {
    const flows = text({ kind: 'overlay', round: 1, zone: overlayZone(5001), ports: [{ ofport: 3, mac: '0a:00:00:00:00:03' }], rules: [rule], isolations: [] });
    expect(flows.some((f) => f.includes(`table=${T.OverlayEntry},`) && f.includes(`goto_table:${T.Conntrack}`))).toBe(true);
    expect(flows.some((f) => f.includes(`ct(table=13,zone=${overlayZone(5001)})`))).toBe(true);
    expect(flows.filter((f) => f.includes('goto_table:20'))).toHaveLength(4);
    expect(flows.some((f) => f.includes('NORMAL'))).toBe(false);
  });

  it('gives VLANs and overlay networks zones of their own, apart from the pod network\'s and the chains\'', () => {
    expect(vlanZone(1)).toBe(0xe001);
    expect(vlanZone(4094)).toBeLessThan(65520);
    expect(overlayZone(0x1389)).toBe(0xd389);
    expect(overlayZone(0xffffff)).toBeLessThan(vlanZone(1));
  });
});

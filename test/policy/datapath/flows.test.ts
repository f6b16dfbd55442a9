// The policy flows as data (pure): peers as the fewest CIDRs, clauses shared by rules merged into one flow, and a
// rule whose flows cannot be written left out and reported.
import { renderFlow } from '../../../src/ovs/openflow/flow.js';
import { policyFlows, type RuleProblem } from '../../../src/policy/datapath/flows.js';
import { PolicyPriority } from '../../../src/policy/datapath/layout.js';
import type { DatapathRule } from '../../../src/policy/datapath/state.js';

const rule = (id: number, cidrs: string[], ofport = 5): DatapathRule => ({
  id,
  direction: 'Ingress',
  tier: 'NetworkPolicy',
  action: 'Accept',
  priority: PolicyPriority.networkPolicy,
  applied: [{ ofport, namedPorts: [] }],
  peers: { any: false, cidrs, pods: [{ ip: '10.1.0.1', namedPorts: [] }] },
  ports: [{ protocol: 'TCP', port: 80 }],
});

const peerFlows = (flows: ReturnType<typeof policyFlows>): string[] => flows.filter((f) => f.match?.nw_src !== undefined).map((f) => renderFlow(f));

describe('policy flows as data', () => {
  it('records the deciding rule in the direction\'s register, and sends drops through the drop table (whose only flow drops)', () => {
    const flows = policyFlows({ round: 1, rules: [rule(7, ['10.0.0.9/32']), { ...rule(8, []), tier: 'Admin', action: 'Deny', priority: 63_000, direction: 'Egress' }], isolations: [{ direction: 'Ingress', ofport: 5, ruleId: 9 }] }).map((f) => renderFlow(f));
    expect(flows).toContainEqual(expect.stringMatching(/conj_id=.*actions=load:0x7->reg6\[\],goto_table:105$/));
    expect(flows).toContainEqual(expect.stringMatching(/table=50,.*actions=load:0x8->reg5\[\],goto_table:54$/));
    expect(flows).toContainEqual(expect.stringMatching(/table=92,.*reg1=0x5.*actions=load:0x9->reg6\[\],goto_table:94$/));
    expect(flows.filter((f) => /table=(54|94),/.test(f))).toEqual([expect.stringMatching(/table=54,priority=0,cookie=\w+,actions=drop$/), expect.stringMatching(/table=94,priority=0,cookie=\w+,actions=drop$/)]);
  });

  it('writes a rule\'s peers (addresses and blocks, host bits and all) as the fewest CIDRs', () => {
    const flows = policyFlows({ round: 1, rules: [rule(1, ['10.0.0.0/32', '10.0.0.1/32', '10.0.0.6/30', '10.1.0.0/32'])], isolations: [] });
    expect(peerFlows(flows).map((f) => /nw_src=([^,]+)/.exec(f)![1])).toEqual(['10.0.0.0/31', '10.0.0.4/30', '10.1.0.0/31']);
  });

  it('merges a peer clause two rules share into one flow with both conjunctions; a pod two policies isolate gets one drop', () => {
    const flows = policyFlows({ round: 1, rules: [rule(1, ['10.0.0.9/32']), rule(2, ['10.0.0.9/32', '10.0.3.0/24'])], isolations: [] });
    const shared = flows.filter((f) => f.match?.nw_src === '10.0.0.9/32');
    expect(shared).toHaveLength(1);
    expect(shared[0]!.actions.filter((a) => a.type === 'conjunction')).toHaveLength(2);
    const isolated = policyFlows({ round: 1, rules: [], isolations: [{ direction: 'Ingress', ofport: 5, ruleId: 3 }, { direction: 'Ingress', ofport: 5, ruleId: 4 }] });
    expect(isolated.filter((f) => f.match?.reg1 === 5)).toHaveLength(1);
  });

  it('leaves out a rule whose flows cannot be written (an OpenFlow port beyond 32 bits) and reports it; the other rules stay', () => {
    const good = rule(1, ['10.0.0.9/32']);
    const problems: RuleProblem[] = [];
    const flows = policyFlows({ round: 1, rules: [good, rule(2, ['10.0.0.10/32'], 2 ** 32)], isolations: [] }, problems);
    expect(problems).toEqual([{ ruleId: 2, message: expect.stringContaining('reg1') }]);
    expect(flows).toEqual(policyFlows({ round: 1, rules: [good], isolations: [] }));
    // Every flow left can be written.
    for (const f of flows) expect(() => renderFlow(f)).not.toThrow();
  });
});

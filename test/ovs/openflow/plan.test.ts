import { makeCookie, ownerSelector } from '../../../src/ovs/openflow/cookie.js';
import { parseFlowLine, type InstalledFlow, type InstalledGroup } from '../../../src/ovs/openflow/dump.js';
import { renderChange, type Flow } from '../../../src/ovs/openflow/flow.js';
import { canonicalInput, planChanges, planFlows, planGroups } from '../../../src/ovs/openflow/sync.js';

const installed = (line: string): InstalledFlow => parseFlowLine(line)!;
const scope = ownerSelector(1);
const c = (obj: number, round = 1): bigint => makeCookie(1, round, obj);

describe('sync planning', () => {
  const desired: Flow[] = [
    { table: 0, priority: 100, cookie: c(1), match: { protocol: 'ip', nw_src: '10.0.0.1/32' }, actions: [{ type: 'output', port: 1 }] },
    { table: 0, priority: 100, cookie: c(2), match: { protocol: 'ip', nw_src: '10.0.0.2' }, actions: [{ type: 'output', port: 3 }] },
    { table: 0, priority: 100, cookie: c(3, 2), match: { protocol: 'ip', nw_src: '10.0.0.3' }, actions: [{ type: 'output', port: 1 }] },
    { table: 1, priority: 5, cookie: c(4), actions: [] },
  ];
  // What parse-flows printed for the desired flows.
  const canon = [
    { table: 0, priority: 100, match: 'ip,nw_src=10.0.0.1', actions: 'output:1' },
    { table: 0, priority: 100, match: 'ip,nw_src=10.0.0.2', actions: 'output:3' },
    { table: 0, priority: 100, match: 'ip,nw_src=10.0.0.3', actions: 'output:1' },
    { table: 1, priority: 5, match: '', actions: 'drop' },
  ];
  const onSwitch = [
    installed(' cookie=0x100010000000001, duration=1.0s, table=0, n_packets=0, n_bytes=0, idle_age=0, priority=100,ip,nw_src=10.0.0.1 actions=output:1'),
    installed(' cookie=0x100010000000002, duration=1.0s, table=0, n_packets=0, n_bytes=0, idle_age=0, priority=100,ip,nw_src=10.0.0.2 actions=output:2'),
    installed(' cookie=0x100010000000003, duration=1.0s, table=0, n_packets=0, n_bytes=0, idle_age=0, priority=100,ip,nw_src=10.0.0.3 actions=output:1'),
    installed(' cookie=0x100010000000009, duration=1.0s, table=0, n_packets=0, n_bytes=0, idle_age=0, priority=90,ip actions=drop'),
  ];

  it('adds missing, modifies changed actions, replaces a changed cookie, deletes stale', () => {
    const plan = planFlows(scope, desired, canon, onSwitch);
    expect(plan.add).toEqual([desired[3]]);
    expect(plan.modify).toEqual([desired[1]]);
    expect(plan.replace).toEqual([desired[2]]);
    expect(plan.remove).toEqual([onSwitch[3]]);
    const lines = planChanges(plan, { add: [], modify: [], remove: [] }).map((ch) => renderChange(ch).text);
    expect(lines).toEqual([
      'flow delete_strict table=0,priority=90,cookie=0x100010000000009/-1,ip',
      'flow add table=1,priority=5,cookie=0x100010000000004,actions=drop',
      'flow add table=0,priority=100,cookie=0x100020000000003,ip,nw_src=10.0.0.3,actions=output:1',
      'flow modify_strict table=0,priority=100,cookie=0x100010000000002,ip,nw_src=10.0.0.2,actions=output:3',
    ]);
  });

  it('plans nothing when the installed state is the desired one', () => {
    const same = canon.map((cf, i) =>
      installed(
        ` cookie=0x${desired[i]!.cookie!.toString(16)}, duration=1.0s, table=${cf.table}, n_packets=0, n_bytes=0, idle_age=0, priority=${cf.priority}${cf.match ? `,${cf.match}` : ''} actions=${cf.actions}`,
      ),
    );
    const plan = planFlows(scope, desired, canon, same);
    expect(planChanges(plan, { add: [], modify: [], remove: [] })).toEqual([]);
  });

  it('treats a timeout change as a replacement', () => {
    const plan = planFlows(scope, [{ ...desired[0]!, idleTimeout: 30 }], [canon[0]!], [onSwitch[0]!]);
    expect(plan.replace).toHaveLength(1);
  });

  it('refuses desired flows outside the scope and duplicate keys', () => {
    expect(() => planFlows(scope, [{ cookie: makeCookie(2, 0, 0), actions: [] }], [{ table: 0, priority: 32768, match: '', actions: 'drop' }], [])).toThrow(/scope/);
    expect(() => planFlows(scope, [desired[0]!, desired[0]!], [canon[0]!, canon[0]!], [])).toThrow(/share/);
  });

  it('asks parse-flows about match and actions only', () => {
    expect(canonicalInput(desired[0]!)).toBe('table=0,priority=100,ip,nw_src=10.0.0.1/32,actions=output:1');
  });

  it('plans groups and orders group changes around the flow changes', () => {
    const g = (id: number, text: string): InstalledGroup => ({ id, type: 'all', buckets: [], text });
    const want = [
      { id: 1, type: 'all' as const, buckets: [{ actions: [{ type: 'output' as const, port: 1 }] }] },
      { id: 2, type: 'all' as const, buckets: [{ actions: [{ type: 'output' as const, port: 2 }] }] },
      { id: 3, type: 'all' as const, buckets: [{ actions: [{ type: 'output' as const, port: 3 }] }] },
    ];
    const canonMap = new Map([
      [1, 'group_id=1,type=all,bucket=bucket_id:0,actions=output:1'],
      [2, 'group_id=2,type=all,bucket=bucket_id:0,actions=output:2'],
    ]);
    const plan = planGroups(want, canonMap, [
      g(1, 'group_id=1,type=all,bucket=bucket_id:0,actions=output:1'),
      g(2, 'group_id=2,type=all,bucket=bucket_id:0,actions=output:9'),
      g(4, 'group_id=4,type=all,bucket=bucket_id:0,actions=output:4'),
    ]);
    expect(plan).toEqual({ add: [want[2]], modify: [want[1]], remove: [4] });
    const flows = planFlows(scope, [desired[3]!], [canon[3]!], [onSwitch[3]!]);
    const ops = planChanges(flows, plan).map((ch) => renderChange(ch).text.split(' ').slice(0, 2).join(' '));
    expect(ops).toEqual(['group add', 'group modify', 'flow delete_strict', 'flow add', 'group delete']);
  });
});

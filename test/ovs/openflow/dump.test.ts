import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  parseDumpFlows,
  parseDumpGroups,
  parseGroupStats,
  parseOfctlFailure,
  parseParsedFlows,
  parseParsedGroup,
  splitTopLevel,
} from '../../../src/ovs/openflow/dump.js';
import { renderChange, addFlow, addGroup } from '../../../src/ovs/openflow/flow.js';
import { locateFailure } from '../../../src/ovs/openflow/writer.js';

// Captured from ovs-ofctl 3.1 (`-O OpenFlow15 --no-names`) against a userspace bridge after a ping.
const fixture = (name: string): string => readFileSync(join(dirname(fileURLToPath(import.meta.url)), 'fixtures', name), 'utf8');

describe('dump-flows parser', () => {
  const flows = parseDumpFlows(fixture('dump-flows.txt'));

  it('reads every flow with table, priority, cookie, counters and duration', () => {
    expect(flows).toHaveLength(10);
    expect(flows[0]).toMatchObject({
      cookie: 0x100000100000001n,
      durationSec: 0.834,
      table: 0,
      priority: 100,
      nPackets: 1n,
      nBytes: 42n,
      idleAge: 0,
      match: 'arp,in_port=1',
      fields: { arp: true, in_port: '1' },
      actions: 'output:2',
      actionList: ['output:2'],
    });
    expect(flows[3]).toMatchObject({ priority: 90, match: 'ip,in_port=1,nw_dst=10.77.0.0/24', actions: 'group:1', nPackets: 3n, nBytes: 294n });
  });

  it('handles the default priority, an empty match, timeouts, flags and nested actions', () => {
    const conj = flows.find((f) => f.cookie === 0x30002000000000an)!;
    expect(conj).toMatchObject({ table: 10, priority: 32768, match: 'ip,nw_src=10.77.0.2', actions: 'conjunction(5,1/2)' });
    const timed = flows.find((f) => f.cookie === 0x200010000000008n)!;
    expect(timed).toMatchObject({
      idleTimeout: 600,
      hardTimeout: 3600,
      importance: 3,
      flags: ['send_flow_rem'],
      priority: 200,
      match: 'reg0=0x5/0xff,reg2=0,reg3=0x10,tun_id=0x1234,metadata=0x7',
      actionList: ['set_field:0x1/0xf->reg1', 'move:NXM_NX_REG0[]->NXM_NX_REG2[]'],
    });
    expect(flows.find((f) => f.cookie === 0x200010000000007n)).toMatchObject({ match: 'ct_state=-trk,tcp', actions: 'ct(table=11,zone=7)' });
    expect(flows.find((f) => f.cookie === 0x300020000000009n)).toMatchObject({ priority: 5, match: '', actions: 'resubmit(,11)' });
    expect(flows.at(-1)).toMatchObject({ cookie: 0n, table: 12, priority: 32768, match: '', fields: {}, actions: 'drop' });
  });

  it('splits at top-level commas only', () => {
    expect(splitTopLevel('ct(commit,nat(src=1.1.1.1)),output:1,resubmit(,3),move:reg0[0..3]->reg1[]')).toEqual([
      'ct(commit,nat(src=1.1.1.1))',
      'output:1',
      'resubmit(,3)',
      'move:reg0[0..3]->reg1[]',
    ]);
    expect(splitTopLevel('')).toEqual([]);
  });
});

describe('group parsers', () => {
  it('reads group descriptions with buckets, weights and watch ports', () => {
    const groups = parseDumpGroups(fixture('dump-groups.txt'));
    expect(groups).toHaveLength(3);
    expect(groups[0]).toEqual({
      id: 1,
      type: 'select',
      selectionMethod: 'hash',
      fields: ['ip_src', 'ip_dst'],
      buckets: [
        { id: 0, weight: 10, watchPort: 2, actions: 'output:2' },
        { id: 1, weight: 20, watchPort: 2, actions: 'output:2' },
      ],
      text: 'group_id=1,type=select,selection_method=hash,fields(ip_src,ip_dst),bucket=bucket_id:0,weight:10,watch_port:2,actions=output:2,bucket=bucket_id:1,weight:20,watch_port:2,actions=output:2',
    });
    expect(groups[1]!.buckets).toEqual([
      { id: 0, watchPort: 1, actions: 'output:1' },
      { id: 1, watchPort: 2, actions: 'output:2' },
    ]);
    expect(groups[2]).toMatchObject({ id: 3, type: 'all', buckets: [{ id: 0, actions: 'note:73.65.69.6e.65.00,output:1' }] });
  });

  it('reads group and per-bucket counters', () => {
    const stats = parseGroupStats(fixture('dump-group-stats.txt'));
    expect(stats).toHaveLength(3);
    expect(stats[0]).toEqual({
      id: 1,
      durationSec: 0.846,
      refCount: 1,
      packets: 3n,
      bytes: 294n,
      buckets: [
        { packets: 0n, bytes: 0n },
        { packets: 3n, bytes: 294n },
      ],
    });
    expect(stats[2]!.buckets).toHaveLength(1);
  });
});

describe('canonical forms from parse-flows / parse-group', () => {
  it('reads one canonical flow per input line', () => {
    const flows = parseParsedFlows(fixture('parse-flows.txt'));
    expect(flows).toHaveLength(11);
    expect(flows[0]).toEqual({
      table: 5,
      priority: 10,
      match: 'ip,nw_src=10.0.0.1,nw_dst=10.1.0.0/16',
      actions: 'set_field:aa:bb:cc:00:00:01->eth_src,set_field:02:00:00:00:00:02->eth_dst,dec_ttl,output:1',
    });
    expect(flows[9]).toEqual({ table: 5, priority: 18, match: 'icmp,icmp_type=8', actions: 'group:1,LOCAL' });
  });

  it('reads the canonical group description', () => {
    expect(parseParsedGroup(fixture('parse-group.txt'))).toBe(
      'group_id=1,type=select,selection_method=hash,fields(ip_src,ip_dst),bucket=bucket_id:0,weight:10,watch_port:1,actions=set_field:aa:bb:cc:dd:ee:ff->eth_src,output:1,bucket=bucket_id:1,weight:20,actions=output:2',
    );
  });
});

describe('bundle failure reports', () => {
  const flow = (priority: number, actions = 'drop'): ReturnType<typeof renderChange> => ({
    kind: 'flow',
    op: 'add',
    table: 3,
    priority,
    text: `flow add table=3,priority=${priority},actions=${actions}`,
  });

  it('pins a switch-side flow error on its line', () => {
    const f = parseOfctlFailure(fixture('bundle-error-flow.txt'))!;
    expect(f).toMatchObject({ reason: 'OFPBAC_BAD_OUT_GROUP', kind: 'flow', op: 'add', table: 3, priority: 2, match: 'ip', xid: 3 });
    expect(locateFailure(f, [flow(1), flow(2, 'group:99'), flow(3)])).toBe(1);
    // Same table and priority elsewhere: the xid tells them apart.
    expect(locateFailure(f, [flow(2), flow(2, 'group:99'), flow(2)])).toBe(1);
    // The xid points at a line that does not fit: only a unique candidate is trusted.
    expect(locateFailure(f, [flow(2, 'group:99'), flow(1), flow(1)])).toBe(0);
    expect(locateFailure(f, [flow(1), flow(1), flow(2), flow(2)])).toBeUndefined();
  });

  it('pins a group error on its line', () => {
    const f = parseOfctlFailure(fixture('bundle-error-group.txt'))!;
    expect(f).toMatchObject({ reason: 'OFPGMFC_GROUP_EXISTS', kind: 'group', op: 'add', groupId: 1 });
    const lines = [
      renderChange(addFlow({ actions: [] })),
      renderChange(addGroup({ id: 1, type: 'all', buckets: [{ actions: [{ type: 'output', port: 1 }] }] })),
    ];
    expect(locateFailure(f, lines)).toBe(1);
  });

  it('pins a parse error on its input line', () => {
    const f = parseOfctlFailure(fixture('bundle-error-parse.txt'))!;
    expect(f).toEqual({ reason: 'unknown keyword foo', inputLine: 2 });
    expect(locateFailure(f, [flow(1), flow(2)])).toBe(1);
  });

  it('returns undefined for unrelated output', () => {
    expect(parseOfctlFailure('')).toBeUndefined();
  });
});

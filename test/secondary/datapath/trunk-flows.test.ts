import { decodeCookie } from '../../../src/ovs/openflow/cookie.js';
import { parseDumpFlows } from '../../../src/ovs/openflow/dump.js';
import { renderChange } from '../../../src/ovs/openflow/flow.js';
import { noFloodPorts, reinstallChanges, TRUNK_SYNC_SCOPE, trunkFlows } from '../../../src/secondary/datapath/trunk-flows.js';

describe('trunk bridge flows for function ports', () => {
  it('NORMAL at priority 0 and a drop per function port at 100, cookies of owner secondary in the round', () => {
    const flows = trunkFlows({ round: 7, functionPorts: [5, 3, 5, 0, -1] });
    expect(flows.map((f) => [f.table, f.priority, f.match, f.actions])).toEqual([
      [0, 0, undefined, [{ type: 'output', port: 'NORMAL' }]],
      [0, 100, { in_port: 3 }, []],
      [0, 100, { in_port: 5 }, []],
    ]);
    expect(flows.map((f) => decodeCookie(f.cookie!))).toEqual([
      { owner: 2, round: 7, object: 0n },
      { owner: 2, round: 7, object: 3n },
      { owner: 2, round: 7, object: 5n },
    ]);
    // Never the service chains' priorities (200..250 of table 0).
    expect(flows.every((f) => f.priority! < 200)).toBe(true);
  });

  it('puts back the flows of others after a fail_mode change, without the standalone NORMAL flow or its own', () => {
    const dump = [
      'OFPST_FLOW reply (OF1.5) (xid=0x2):',
      ' cookie=0x300000000000002, duration=0.007s, table=0, n_packets=0, n_bytes=0, idle_age=0, priority=210,ip,in_port=4 actions=ct(table=65,zone=8292)',
      ' cookie=0x0, duration=1.063s, table=0, n_packets=9, n_bytes=900, idle_age=1, priority=0 actions=NORMAL',
      ' cookie=0x200010000000000, duration=1.0s, table=0, n_packets=0, n_bytes=0, idle_age=1, priority=0 actions=NORMAL',
      ' cookie=0x300000000000001, duration=0.028s, table=65, n_packets=0, n_bytes=0, idle_timeout=30, idle_age=0, priority=10 actions=drop',
    ].join('\n');
    const changes = reinstallChanges(parseDumpFlows(dump), TRUNK_SYNC_SCOPE);
    expect(changes.map((c) => renderChange(c).text)).toEqual([
      'flow add table=0,priority=210,cookie=0x300000000000002,ip,in_port=4,actions=ct(table=65,zone=8292)',
      'flow add table=65,priority=10,cookie=0x300000000000001,idle_timeout=30,actions=drop',
    ]);
  });

  it('reads which ports are no-flood from ovs-ofctl show', () => {
    const show = [
      'OFPT_FEATURES_REPLY (xid=0x2): dpid:0000aabbccddeeff',
      'n_tables:254, n_buffers:0',
      ' 1(sab12s1): addr:52:8c:1e:00:00:01',
      '     config:     0',
      '     state:      0',
      ' 3(sab12f3): addr:52:8c:1e:00:00:03',
      '     config:     NO_FLOOD',
      '     state:      LINK_DOWN',
      ' 4(sab12f4): addr:52:8c:1e:00:00:04',
      '     config:     PORT_DOWN NO_FLOOD',
      '     state:      LINK_DOWN',
      ' LOCAL(br-vlan): addr:aa:bb:cc:dd:ee:ff',
      '     config:     NO_FLOOD',
      '     state:      0',
      'OFPT_GET_CONFIG_REPLY (xid=0x4): frags=normal miss_send_len=0',
    ].join('\n');
    expect([...noFloodPorts(show)].sort()).toEqual([3, 4]);
  });
});

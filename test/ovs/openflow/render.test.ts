import { renderActions } from '../../../src/ovs/openflow/actions.js';
import { makeCookie, roundSelector } from '../../../src/ovs/openflow/cookie.js';
import {
  addFlow,
  deleteFlow,
  deleteFlows,
  deleteGroup,
  modifyFlow,
  modifyFlows,
  renderChange,
  renderFlow,
  setGroup,
} from '../../../src/ovs/openflow/flow.js';
import { renderGroup } from '../../../src/ovs/openflow/group.js';
import { renderMatch } from '../../../src/ovs/openflow/match.js';

describe('match rendering', () => {
  it('renders fields in OVS syntax', () => {
    expect(renderMatch({})).toBe('');
    expect(
      renderMatch({
        in_port: 3,
        protocol: 'tcp',
        dl_src: '02:00:00:00:00:AA',
        dl_dst: '02:00:00:00:00:00/ff:ff:ff:00:00:00',
        nw_src: '10.0.0.0/24',
        nw_dst: '10.0.1.5',
        tp_dst: 80,
        tp_src: { value: 0x400, mask: 0xfc00 },
        ct_state: { trk: true, est: true, new: false },
        ct_zone: 7,
        ct_mark: { value: 1, mask: 1 },
        reg0: 5,
        reg15: { value: 0x10, mask: 0xff },
        xreg3: 0x1_0000_0000n,
        tun_id: 0x1234n,
        tun_dst: '192.168.1.1',
        metadata: { value: 1n, mask: 0xffn },
        vlan_tci: { value: 0x1000, mask: 0x1000 },
      }),
    ).toBe(
      'in_port=3,tcp,dl_src=02:00:00:00:00:aa,dl_dst=02:00:00:00:00:00/ff:ff:ff:00:00:00,vlan_tci=0x1000/0x1000,' +
        'nw_src=10.0.0.0/24,nw_dst=10.0.1.5,tp_src=0x400/0xfc00,tp_dst=0x50,ct_state=+trk+est-new,ct_zone=7,' +
        'ct_mark=0x1/0x1,reg0=0x5,reg15=0x10/0xff,xreg3=0x100000000,tun_id=0x1234,tun_dst=192.168.1.1,metadata=0x1/0xff',
    );
    expect(renderMatch({ protocol: 'arp', arp_op: 1, arp_tpa: '10.0.0.2', arp_spa: '10.0.0.0/24', in_port: 'LOCAL' })).toBe(
      'in_port=LOCAL,arp,arp_op=1,arp_spa=10.0.0.0/24,arp_tpa=10.0.0.2',
    );
    expect(renderMatch({ dl_type: 0x86dd, ipv6_src: 'fd00::/64', conj_id: 9, ct_state: '+trk+new' })).toBe(
      'dl_type=0x86dd,ipv6_src=fd00::/64,ct_state=+trk+new,conj_id=9',
    );
    expect(renderMatch({ protocol: 'ip', extra: { nw_frag: 'later', tun_metadata0: 5n } })).toBe('ip,nw_frag=later,tun_metadata0=0x5');
  });

  it('rejects values OVS would misread or that break the line', () => {
    expect(() => renderMatch({ reg0: 2 ** 32 })).toThrow(RangeError);
    expect(() => renderMatch({ tp_dst: -1 })).toThrow(RangeError);
    expect(() => renderMatch({ in_port: 1.5 })).toThrow(RangeError);
    expect(() => renderMatch({ nw_src: '10.0.0.300' })).toThrow(RangeError);
    expect(() => renderMatch({ nw_src: 'fd00::1' })).toThrow(RangeError);
    expect(() => renderMatch({ ipv6_dst: '10.0.0.1' })).toThrow(RangeError);
    expect(() => renderMatch({ dl_src: '02:00:00:00:00' })).toThrow(RangeError);
    expect(() => renderMatch({ ct_state: '+trk+bogus' })).toThrow(RangeError);
    expect(() => renderMatch({ protocol: 'ip', dl_type: 0x800 })).toThrow(RangeError);
    expect(() => renderMatch({ extra: { 'nw_src,actions': '1' } })).toThrow(RangeError);
    // ovs-ofctl reads flow files line by line and cuts each at '#': no value may end a line or start a comment.
    for (const v of ['1#', '1\nflow delete table=0', '1\r']) expect(() => renderMatch({ extra: { metadata: v } })).toThrow(RangeError);
    expect(() => renderMatch({ extra: { nw_tos: '1,actions=NORMAL' } })).toThrow(RangeError);
  });
});

describe('action rendering', () => {
  it('renders each action kind', () => {
    expect(renderActions([])).toBe('drop');
    expect(renderActions([{ type: 'drop' }])).toBe('drop');
    expect(
      renderActions([
        { type: 'output', port: 2 },
        { type: 'output', port: 'IN_PORT' },
        { type: 'output', port: 'NORMAL' },
        { type: 'output', port: 'LOCAL' },
        { type: 'output', port: { field: 'reg1[0..15]' } },
      ]),
    ).toBe('output:2,IN_PORT,NORMAL,LOCAL,output:reg1[0..15]');
    expect(
      renderActions([
        { type: 'mod_dl_src', mac: '02:00:00:00:00:AA' },
        { type: 'mod_dl_dst', mac: '02:00:00:00:00:bb' },
        { type: 'dec_ttl' },
        { type: 'load', value: 5, dst: 'reg0[0..7]' },
        { type: 'load', value: 1n, dst: 'NXM_NX_REG1' },
        { type: 'set_field', field: 'reg2', value: 0x10, mask: 0xff },
        { type: 'set_field', field: 'eth_dst', value: '02:00:00:00:00:01' },
        { type: 'move', src: 'reg0', dst: 'reg3[16..31]' },
        { type: 'resubmit', table: 4 },
        { type: 'resubmit', port: 'IN_PORT', table: 5 },
        { type: 'group', id: 7 },
        { type: 'conjunction', id: 10, clause: 2, clauses: 3 },
        { type: 'note', text: 'ab' },
        { type: 'goto_table', table: 9 },
      ]),
    ).toBe(
      'mod_dl_src:02:00:00:00:00:aa,mod_dl_dst:02:00:00:00:00:bb,dec_ttl,load:0x5->reg0[0..7],load:0x1->NXM_NX_REG1[],' +
        'set_field:0x10/0xff->reg2,set_field:02:00:00:00:00:01->eth_dst,move:reg0[]->reg3[16..31],resubmit(,4),' +
        'resubmit(IN_PORT,5),group:7,conjunction(10,2/3),note:61.62,goto_table:9',
    );
  });

  it('renders conntrack with zone, table, nat and exec', () => {
    expect(renderActions([{ type: 'ct' }])).toBe('ct');
    expect(renderActions([{ type: 'ct', table: 11, zone: 7 }])).toBe('ct(table=11,zone=7)');
    expect(renderActions([{ type: 'ct', commit: true, zone: 'reg0[0..15]', nat: { type: 'src', addr: ['10.0.0.1', '10.0.0.5'], port: [1000, 2000], flags: ['random'] } }])).toBe(
      'ct(commit,zone=reg0[0..15],nat(src=10.0.0.1-10.0.0.5:1000-2000,random))',
    );
    expect(renderActions([{ type: 'ct', nat: true, table: 3 }])).toBe('ct(table=3,nat)');
    expect(renderActions([{ type: 'ct', commit: true, nat: { type: 'dst', addr: 'fd00::1', port: 80 } }])).toBe('ct(commit,nat(dst=[fd00::1]:80))');
    expect(renderActions([{ type: 'ct', commit: true, force: true, exec: [{ type: 'set_field', field: 'ct_mark', value: 1 }], alg: 'ftp' }])).toBe(
      'ct(commit,force,exec(set_field:0x1->ct_mark),alg=ftp)',
    );
    expect(renderActions([{ type: 'ct_clear' }])).toBe('ct_clear');
  });

  it('renders tunnel and VLAN actions', () => {
    expect(renderActions([{ type: 'set_tunnel_dst', ip: '192.168.0.9' }, { type: 'set_tunnel_id', id: 100 }, { type: 'output', port: 5 }])).toBe(
      'set_field:192.168.0.9->tun_dst,set_field:0x64->tun_id,output:5',
    );
    expect(renderActions([{ type: 'push_vlan', vid: 10, pcp: 3 }, { type: 'output', port: 1 }])).toBe(
      'push_vlan:0x8100,set_field:4106->vlan_vid,set_field:3->vlan_pcp,output:1',
    );
    expect(renderActions([{ type: 'push_vlan', ethertype: 0x88a8 }, { type: 'pop_vlan' }])).toBe('push_vlan:0x88a8,pop_vlan');
    expect(renderActions([{ type: 'raw', text: 'learn(table=9,NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[])' }])).toBe('learn(table=9,NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[])');
  });

  it('rejects invalid action lists', () => {
    expect(() => renderActions([{ type: 'drop' }, { type: 'output', port: 1 }])).toThrow(/drop/);
    expect(() => renderActions([{ type: 'goto_table', table: 2 }, { type: 'output', port: 1 }])).toThrow(/last/);
    expect(() => renderActions([{ type: 'conjunction', id: 1, clause: 3, clauses: 2 }])).toThrow(RangeError);
    expect(() => renderActions([{ type: 'resubmit' }])).toThrow(RangeError);
    expect(() => renderActions([{ type: 'output', port: 'CONTROLLERX' as 'LOCAL' }])).toThrow(RangeError);
    expect(() => renderActions([{ type: 'move', src: 'reg0 ', dst: 'reg1' }])).toThrow(RangeError);
    expect(() => renderActions([{ type: 'ct', nat: { addr: '10.0.0.1' } }])).toThrow(RangeError);
    expect(() => renderActions([{ type: 'raw', text: 'output:1 ,drop' }])).toThrow(RangeError);
  });
});

describe('flow and change rendering', () => {
  const cookie = makeCookie(1, 2, 3);

  it('renders a flow with defaults and timeouts', () => {
    expect(renderFlow({ actions: [] })).toBe('table=0,priority=32768,cookie=0x0,actions=drop');
    expect(
      renderFlow({ table: 10, priority: 200, cookie, idleTimeout: 30, hardTimeout: 60, match: { protocol: 'ip', in_port: 1 }, actions: [{ type: 'output', port: 2 }] }),
    ).toBe('table=10,priority=200,cookie=0x100020000000003,idle_timeout=30,hard_timeout=60,in_port=1,ip,actions=output:2');
    expect(() => renderFlow({ table: 255, actions: [] })).toThrow(RangeError);
    expect(() => renderFlow({ priority: 65536, actions: [] })).toThrow(RangeError);
  });

  it('renders bundle lines for every change kind', () => {
    const flow = { table: 1, priority: 5, cookie, match: { protocol: 'ip' as const }, actions: [{ type: 'output' as const, port: 1 }] };
    expect(renderChange(addFlow(flow))).toEqual({
      kind: 'flow',
      op: 'add',
      table: 1,
      priority: 5,
      text: 'flow add table=1,priority=5,cookie=0x100020000000003,ip,actions=output:1',
    });
    expect(renderChange(modifyFlow(flow)).text).toBe('flow modify_strict table=1,priority=5,cookie=0x100020000000003,ip,actions=output:1');
    expect(renderChange(deleteFlow({ table: 1, priority: 5, match: { protocol: 'ip' } })).text).toBe('flow delete_strict table=1,priority=5,ip');
    expect(renderChange(deleteFlows({ cookie: roundSelector(1, 2) })).text).toBe('flow delete cookie=0x100020000000000/0xffffff0000000000');
    expect(renderChange(deleteFlows({ table: 3, match: { protocol: 'tcp' } })).text).toBe('flow delete table=3,tcp');
    expect(renderChange(modifyFlows({ table: 3 }, [{ type: 'output', port: 9 }])).text).toBe('flow modify table=3,actions=output:9');
    expect(() => renderChange(deleteFlows({}))).toThrow(/every flow/);
    expect(renderChange(deleteGroup(4))).toEqual({ kind: 'group', op: 'delete', groupId: 4, text: 'group delete group_id=4' });
    expect(renderChange(setGroup({ id: 4, type: 'indirect', buckets: [{ actions: [{ type: 'output', port: 1 }] }] })).text).toBe(
      'group add_or_mod group_id=4,type=indirect,bucket=actions=output:1',
    );
  });
});

describe('group rendering', () => {
  it('renders select groups with hash fields, weights and watch ports', () => {
    expect(
      renderGroup({
        id: 1,
        type: 'select',
        selectionMethod: 'hash',
        fields: ['ip_src', 'ip_dst', 'tcp_dst'],
        buckets: [
          { id: 0, weight: 10, watchPort: 1, actions: [{ type: 'output', port: 1 }] },
          { id: 1, weight: 20, watchPort: 2, actions: [{ type: 'mod_dl_dst', mac: '02:00:00:00:00:02' }, { type: 'output', port: 2 }] },
        ],
      }),
    ).toBe(
      'group_id=1,type=select,selection_method=hash,fields(ip_src,ip_dst,tcp_dst),' +
        'bucket=bucket_id:0,weight:10,watch_port:1,actions=output:1,bucket=bucket_id:1,weight:20,watch_port:2,actions=mod_dl_dst:02:00:00:00:00:02,output:2',
    );
  });

  it('renders all, indirect and fast-failover groups', () => {
    expect(renderGroup({ id: 2, type: 'all', buckets: [{ actions: [{ type: 'output', port: 1 }] }, { actions: [{ type: 'output', port: 2 }] }] })).toBe(
      'group_id=2,type=all,bucket=actions=output:1,bucket=actions=output:2',
    );
    expect(renderGroup({ id: 3, type: 'indirect', buckets: [{ actions: [{ type: 'group', id: 2 }] }] })).toBe('group_id=3,type=indirect,bucket=actions=group:2');
    expect(renderGroup({ id: 4, type: 'ff', buckets: [{ watchPort: 1, actions: [{ type: 'output', port: 1 }] }, { watchGroup: 3, actions: [{ type: 'group', id: 3 }] }] })).toBe(
      'group_id=4,type=ff,bucket=watch_port:1,actions=output:1,bucket=watch_group:3,actions=group:3',
    );
  });

  it('rejects inconsistent groups', () => {
    expect(() => renderGroup({ id: 1, type: 'all', fields: ['ip_src'], buckets: [] })).toThrow(RangeError);
    expect(() => renderGroup({ id: 1, type: 'select', fields: ['ip_src'], buckets: [] })).toThrow(/hash/);
    expect(() => renderGroup({ id: 1, type: 'indirect', buckets: [] })).toThrow(RangeError);
    expect(() => renderGroup({ id: 1, type: 'all', buckets: [{ actions: [{ type: 'goto_table', table: 1 }] }] })).toThrow(RangeError);
  });
});

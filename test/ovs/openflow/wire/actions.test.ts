// The OpenFlow 1.5 action encoder against OVS itself, offline: for each action list, OVS must decode our bytes to
// the canonical text of the same list as rendered for ovs-ofctl, re-encode them to the same bytes, and write the
// very same bytes when it encodes that text itself (captured from ovs-ofctl talking to a stand-in switch).
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chainBaseFlows, chainFlows, segmentBaseFlows } from '../../../../src/chaining/datapath/flows.js';
import type { DatapathChain } from '../../../../src/chaining/datapath/state.js';
import { run } from '../../../../src/host/exec.js';
import { renderActions, type Action } from '../../../../src/ovs/openflow/actions.js';
import type { Flow } from '../../../../src/ovs/openflow/flow.js';
import { renderMatch } from '../../../../src/ovs/openflow/match.js';
import { Ofctl } from '../../../../src/ovs/openflow/ofctl.js';
import { encodeActions } from '../../../../src/ovs/openflow/wire/actions.js';
import { UnencodableError } from '../../../../src/ovs/openflow/wire/fields.js';
import { policyBaseFlows, policyFlows } from '../../../../src/policy/datapath/flows.js';
import type { DatapathRule } from '../../../../src/policy/datapath/state.js';
import { pipelineFlows, type PipelineState } from '../../../../src/primary/pipeline/index.js';
import { overlayFlows } from '../../../../src/secondary/datapath/overlay-flows.js';
import { trunkFlows } from '../../../../src/secondary/datapath/trunk-flows.js';

/** An action list and a match that meets its prerequisites (ct needs IP, set_field of arp_op needs ARP...). */
interface Case {
  name: string;
  match?: string;
  table?: number;
  actions: Action[];
}

const REG_LABEL: Action = { type: 'move', src: 'NXM_NX_REG1[0..15]', dst: 'NXM_NX_CT_LABEL[64..79]' };

const CASES: Case[] = [
  // output
  { name: 'output to a port', actions: [{ type: 'output', port: 1 }] },
  { name: 'output to the highest ordinary port', actions: [{ type: 'output', port: 0xfeff }] },
  { name: 'output to port 0', actions: [{ type: 'output', port: 0 }] },
  { name: 'output to reserved ports', actions: (['IN_PORT', 'LOCAL', 'NORMAL', 'FLOOD', 'ALL'] as const).map((port): Action => ({ type: 'output', port })) },
  { name: 'output to LOCAL by its OpenFlow 1.1 number', actions: [{ type: 'output', port: 0xfffffffe }] },
  { name: 'output to LOCAL by its OpenFlow 1.0 number', actions: [{ type: 'output', port: 0xfffe }] },
  { name: 'output to TABLE by number', actions: [{ type: 'output', port: 0xfffffff9 }] },
  { name: 'output to CONTROLLER by number', actions: [{ type: 'output', port: 0xfffffffd }] },
  { name: 'output to a register subfield', actions: [{ type: 'output', port: { field: 'reg1[0..15]' } }] },
  { name: 'output to a whole register', actions: [{ type: 'output', port: { field: 'NXM_NX_REG2' } }] },
  { name: 'output to a packet register subfield', actions: [{ type: 'output', port: { field: 'xreg3[32..63]' } }] },
  { name: 'output to an OXM field (named by its NXM header)', actions: [{ type: 'output', port: { field: 'eth_src[0..15]' } }] },
  { name: 'output to tun_id bits (NXM header)', actions: [{ type: 'output', port: { field: 'tun_id[0..31]' } }] },
  { name: 'output to in_port', actions: [{ type: 'output', port: { field: 'in_port' } }] },
  // resubmit
  { name: 'resubmit to a table', actions: [{ type: 'resubmit', table: 3 }] },
  { name: 'resubmit with a port', actions: [{ type: 'resubmit', port: 5 }] },
  { name: 'resubmit with port and table', actions: [{ type: 'resubmit', port: 5, table: 7 }] },
  { name: 'resubmit from IN_PORT to a table', actions: [{ type: 'resubmit', port: 'IN_PORT', table: 254 }] },
  { name: 'resubmit with LOCAL by number', actions: [{ type: 'resubmit', port: 0xfffffffe, table: 1 }] },
  { name: 'resubmit to table 0', actions: [{ type: 'resubmit', table: 0 }, { type: 'resubmit', table: 1 }] },
  // load
  { name: 'load into register bits', actions: [{ type: 'load', value: 0x5, dst: 'reg0[0..15]' }] },
  { name: 'load into a whole register', actions: [{ type: 'load', value: 0xdeadbeef, dst: 'NXM_NX_REG1[]' }] },
  { name: 'load one bit', actions: [{ type: 'load', value: 1, dst: 'reg9[3]' }, { type: 'load', value: 0, dst: 'reg9[31]' }] },
  { name: 'load a bare field name', actions: [{ type: 'load', value: 2, dst: 'arp_op' }], match: 'arp' },
  { name: 'load into a packet register', actions: [{ type: 'load', value: 0xabcdef0123n, dst: 'xreg3[8..63]' }] },
  { name: 'load into metadata bits', actions: [{ type: 'load', value: 0x1ff, dst: 'metadata[4..12]' }] },
  { name: 'load into tun_id bits', actions: [{ type: 'load', value: 77, dst: 'tun_id[0..31]' }] },
  { name: 'load a MAC as a number', actions: [{ type: 'load', value: 0x0a0000000001, dst: 'eth_dst' }] },
  { name: 'load into in_port', actions: [{ type: 'load', value: 3, dst: 'in_port' }] },
  // set_field
  { name: 'set_field of register bits with a mask', actions: [{ type: 'set_field', field: 'reg3', value: 0x1, mask: 0xff }] },
  { name: 'set_field with an all-ones mask is exact', actions: [{ type: 'set_field', field: 'reg3', value: 0x1, mask: 0xffffffff }] },
  { name: 'set_field with a zero mask', actions: [{ type: 'set_field', field: 'reg4', value: 0, mask: 0 }] },
  { name: 'set_field of a register', actions: [{ type: 'set_field', field: 'reg0', value: 0x1234 }] },
  { name: 'set_field of a MAC', actions: [{ type: 'set_field', field: 'eth_src', value: '0A:00:00:00:00:01' }, { type: 'set_field', field: 'dl_dst', value: 'aa:bb:cc:dd:ee:ff' }] },
  { name: 'set_field of a MAC with a mask', actions: [{ type: 'set_field', field: 'eth_dst', value: '01:00:00:00:00:00/01:00:00:00:00:00' }] },
  { name: 'set_field of IPv4 addresses', actions: [{ type: 'set_field', field: 'ip_dst', value: '10.0.0.1' }, { type: 'set_field', field: 'nw_src', value: '10.0.0.0/8' }], match: 'ip' },
  { name: 'set_field of an IPv6 address', actions: [{ type: 'set_field', field: 'ipv6_dst', value: 'fd00::1' }, { type: 'set_field', field: 'ipv6_src', value: 'fd00::/64' }], match: 'ipv6' },
  { name: 'set_field of ARP fields', actions: [{ type: 'set_field', field: 'arp_sha', value: '02:00:00:00:00:02' }, { type: 'set_field', field: 'arp_spa', value: '10.1.1.1' }, { type: 'set_field', field: 'arp_op', value: 2 }], match: 'arp' },
  { name: 'set_field of tun_id (OXM_OF_TUNNEL_ID)', actions: [{ type: 'set_field', field: 'tun_id', value: 0x123456789n }] },
  { name: 'set_field of tun_id bits', actions: [{ type: 'set_field', field: 'tunnel_id', value: 0x10, mask: 0xff }] },
  { name: 'set_field of tun_dst', actions: [{ type: 'set_field', field: 'tun_dst', value: '192.168.1.2' }] },
  { name: 'set_field of a packet register', actions: [{ type: 'set_field', field: 'xreg7', value: 0xffffffffffffffffn }] },
  { name: 'set_field of metadata and pkt_mark', actions: [{ type: 'set_field', field: 'metadata', value: 0x8000000000000001n }, { type: 'set_field', field: 'pkt_mark', value: '0x10' }] },
  { name: 'set_field of transport ports', actions: [{ type: 'set_field', field: 'tcp_dst', value: 8080 }, { type: 'set_field', field: 'tcp_src', value: 0x100, mask: 0xff00 }], match: 'tcp' },
  { name: 'set_field of IP header fields', actions: [{ type: 'set_field', field: 'nw_ttl', value: 9 }, { type: 'set_field', field: 'ip_dscp', value: 46 }, { type: 'set_field', field: 'nw_tos', value: 0x28 }], match: 'ip' },
  { name: 'set_field of the VLAN', actions: [{ type: 'set_field', field: 'vlan_vid', value: 0x1005 }, { type: 'set_field', field: 'vlan_pcp', value: 7 }], match: 'dl_vlan=5' },
  // move
  { name: 'move between MACs', actions: [{ type: 'move', src: 'eth_src', dst: 'eth_dst' }] },
  { name: 'move between ARP fields', actions: [{ type: 'move', src: 'arp_sha', dst: 'arp_tha' }, { type: 'move', src: 'NXM_OF_ARP_SPA[]', dst: 'NXM_OF_ARP_TPA[]' }], match: 'arp' },
  { name: 'move between register bits', actions: [{ type: 'move', src: 'reg0[0..15]', dst: 'reg1[16..31]' }] },
  { name: 'move in_port into a register', actions: [{ type: 'move', src: 'in_port', dst: 'reg1[0..15]' }] },
  { name: 'move tun_id bits', actions: [{ type: 'move', src: 'tun_id[0..23]', dst: 'reg2[0..23]' }, { type: 'move', src: 'reg3[]', dst: 'NXM_NX_TUN_ID[32..63]' }] },
  { name: 'move tcp_flags (OXM_OF_TCP_FLAGS)', actions: [{ type: 'move', src: 'tcp_flags', dst: 'reg5[0..11]' }], match: 'tcp' },
  { name: 'move between packet registers', actions: [{ type: 'move', src: 'xreg0', dst: 'xreg1' }, { type: 'move', src: 'xreg2[0..31]', dst: 'reg7' }] },
  { name: 'move an IPv6 address into a packet register', actions: [{ type: 'move', src: 'ipv6_src[0..63]', dst: 'xreg4' }], match: 'ipv6' },
  // MAC rewrites, TTL
  { name: 'mod_dl_src and mod_dl_dst', actions: [{ type: 'mod_dl_src', mac: '0a:00:00:00:00:01' }, { type: 'mod_dl_dst', mac: 'AA:BB:CC:DD:EE:FF' }] },
  { name: 'dec_ttl', actions: [{ type: 'dec_ttl' }, { type: 'output', port: 2 }], match: 'ip' },
  // ct
  { name: 'plain ct', actions: [{ type: 'ct' }], match: 'ip' },
  { name: 'ct commit', actions: [{ type: 'ct', commit: true }], match: 'ip' },
  { name: 'ct commit force in a zone', actions: [{ type: 'ct', commit: true, force: true, zone: 0xfff0 }], match: 'ip' },
  { name: 'ct zone from a register', actions: [{ type: 'ct', zone: 'reg5[0..15]', table: 7 }], match: 'ip' },
  { name: 'ct zone from an OXM field', actions: [{ type: 'ct', zone: 'eth_type' }], match: 'ip' },
  { name: 'ct recirculating to table 0', actions: [{ type: 'ct', table: 0, zone: 1 }], match: 'ip' },
  { name: 'ct with plain nat', actions: [{ type: 'ct', table: 5, zone: 1, nat: true }], match: 'ip' },
  { name: 'ct with nat given as an empty object', actions: [{ type: 'ct', nat: {} }], match: 'ip' },
  { name: 'ct commit with plain nat', actions: [{ type: 'ct', commit: true, nat: true }], match: 'ip' },
  { name: 'ct snat without an address', actions: [{ type: 'ct', commit: true, nat: { type: 'src' } }], match: 'ip' },
  { name: 'ct snat to an address', actions: [{ type: 'ct', commit: true, nat: { type: 'src', addr: '10.0.0.1' } }], match: 'ip' },
  { name: 'ct snat to a range with ports and random', actions: [{ type: 'ct', commit: true, nat: { type: 'src', addr: ['10.0.0.1', '10.0.0.3'], port: [100, 200], flags: ['random'] } }], match: 'ip' },
  { name: 'ct dnat to one port, hash and persistent', actions: [{ type: 'ct', commit: true, zone: 9, table: 4, nat: { type: 'dst', addr: '10.96.0.10', port: 53, flags: ['hash', 'persistent'] } }], match: 'udp' },
  { name: 'ct dnat to an IPv6 range', actions: [{ type: 'ct', commit: true, nat: { type: 'dst', addr: ['fd00::1', 'fd00::ff'], port: [1, 65535] } }], match: 'ipv6' },
  { name: 'ct snat to one IPv6 address', actions: [{ type: 'ct', commit: true, nat: { type: 'src', addr: '2001:db8::1' } }], match: 'ipv6' },
  { name: 'ct exec set_field of ct_mark', actions: [{ type: 'ct', commit: true, exec: [{ type: 'set_field', field: 'ct_mark', value: 1 }] }], match: 'ip' },
  { name: 'ct exec set_field of ct_mark bits', actions: [{ type: 'ct', commit: true, exec: [{ type: 'set_field', field: 'ct_mark', value: 0x10, mask: 0xf0 }] }], match: 'ip' },
  { name: 'ct exec load and move into ct_label', actions: [{ type: 'ct', commit: true, zone: 3, exec: [{ type: 'load', value: 1, dst: 'NXM_NX_CT_LABEL[127]' }, REG_LABEL] }], match: 'ip' },
  { name: 'ct exec set_field of the whole ct_label', actions: [{ type: 'ct', commit: true, exec: [{ type: 'set_field', field: 'ct_label', value: (1n << 128n) - 2n }] }], match: 'ip' },
  { name: 'ct with nat, exec and alg together', actions: [{ type: 'ct', commit: true, table: 2, zone: 'NXM_NX_REG6[16..31]', nat: { type: 'src', addr: '192.168.0.1' }, exec: [{ type: 'set_field', field: 'ct_mark', value: 7 }], alg: 'ftp' }], match: 'tcp' },
  { name: 'ct with the tftp alg', actions: [{ type: 'ct', commit: true, alg: 'tftp' }], match: 'udp' },
  { name: 'ct with an empty exec', actions: [{ type: 'ct', zone: 2, exec: [] }], match: 'ip' },
  { name: 'ct_clear', actions: [{ type: 'ct_clear' }, { type: 'resubmit', table: 0 }] },
  // learn
  { name: 'learn a MAC with its port (field to field, field load, constant load)', actions: [{ type: 'learn', table: 10, idleTimeout: 300, priority: 100, cookie: 0x200010100000003n, specs: [{ match: 'NXM_OF_ETH_DST[]', from: 'NXM_OF_ETH_SRC[]' }, { load: 'NXM_NX_REG1[0..15]', from: 'NXM_OF_IN_PORT[]' }, { load: 'NXM_NX_REG1[16]', from: { value: 1 } }] }] },
  { name: 'learn with defaults (priority, timeouts, cookie)', actions: [{ type: 'learn', table: 1, specs: [{ match: 'NXM_OF_ETH_DST[]', from: 'NXM_OF_ETH_SRC[]' }] }] },
  {
    name: 'learn an affinity (constants matched, same-field matches, delete_learned, hard timeout)',
    match: 'tcp',
    actions: [
      {
        type: 'learn',
        table: 40,
        idleTimeout: 65535,
        hardTimeout: 10,
        priority: 200,
        deleteLearned: true,
        cookie: 0xa00000000000001n,
        specs: [
          { match: 'eth_type', from: { value: 0x800 } },
          { match: 'nw_proto', from: { value: 6 } },
          { match: 'NXM_OF_IP_SRC[]' },
          { match: 'NXM_OF_IP_DST[]' },
          { match: 'NXM_OF_TCP_DST[]' },
          { load: 'NXM_NX_REG3[]', from: 'NXM_NX_REG3[]' },
          { load: 'NXM_NX_REG4[0..15]', from: 'NXM_NX_REG4[0..15]' },
          { load: 'NXM_NX_REG4[16]', from: { value: 1 } },
        ],
      },
    ],
  },
  { name: 'learn an SCTP port (a field with no NXM header) and a wide constant', match: 'sctp', actions: [{ type: 'learn', table: 3, specs: [{ match: 'eth_type', from: { value: 0x800 } }, { match: 'nw_proto', from: { value: 132 } }, { match: 'OXM_OF_SCTP_DST[]' }, { load: 'NXM_NX_REG5[]', from: { value: 0xdeadbeef } }, { load: 'NXM_OF_ETH_DST[]', from: { value: 0x0a0000000001 } }] }] },
  // conjunction, group, tunnel, VLAN, note
  { name: 'conjunction clauses', actions: [{ type: 'conjunction', id: 1, clause: 1, clauses: 2 }, { type: 'conjunction', id: 0xffffffff, clause: 64, clauses: 64 }] },
  { name: 'group', actions: [{ type: 'group', id: 1 }] },
  { name: 'group with the largest id', actions: [{ type: 'group', id: 0xffffffff }] },
  { name: 'set_tunnel_dst and set_tunnel_id', actions: [{ type: 'set_tunnel_dst', ip: '192.168.77.2' }, { type: 'set_tunnel_id', id: 0 }, { type: 'set_tunnel_id', id: 0xffffffffffffffffn }] },
  { name: 'set_tunnel_dst with a prefix', actions: [{ type: 'set_tunnel_dst', ip: '192.168.0.0/16' }] },
  { name: 'push_vlan', actions: [{ type: 'push_vlan' }] },
  { name: 'push_vlan with a VID', actions: [{ type: 'push_vlan', vid: 100 }] },
  { name: 'push_vlan with VID 0, PCP and 802.1ad', actions: [{ type: 'push_vlan', ethertype: 0x88a8, vid: 0, pcp: 5 }] },
  { name: 'push_vlan with the largest VID', actions: [{ type: 'push_vlan', vid: 4095, pcp: 0 }, { type: 'output', port: 3 }] },
  { name: 'pop_vlan', actions: [{ type: 'pop_vlan' }, { type: 'output', port: 'NORMAL' }], match: 'dl_vlan=5' },
  { name: 'a one-byte note', actions: [{ type: 'note', text: 'a' }] },
  { name: 'a note that fills its action', actions: [{ type: 'note', text: 'abcdef' }] },
  { name: 'a note one byte longer', actions: [{ type: 'note', text: 'abcdefg' }] },
  { name: 'a UTF-8 note', actions: [{ type: 'note', text: 'Seine — flux ✓' }] },
  // lists
  { name: 'a long list', actions: [{ type: 'mod_dl_src', mac: '0a:00:00:00:00:01' }, { type: 'dec_ttl' }, { type: 'load', value: 1, dst: 'reg0[4]' }, { type: 'ct', commit: true, zone: 1 }, { type: 'output', port: 7 }, { type: 'output', port: { field: 'reg1[0..15]' } }], match: 'ip' },
];

/** The flows every datapath feature builds, from their own builders. */
function featureFlows(): Flow[] {
  const pipeline: PipelineState = {
    node: { mode: 'encap', round: 7, gatewayOfport: 2, tunnelOfport: 1, gatewayIp: '10.244.1.1', gatewayMac: '0a:00:c0:a8:4d:01', podCidr: '10.244.1.0/24', clusterCidr: '10.244.0.0/16' },
    pods: [{ ofport: 3, ip: '10.244.1.2', mac: '02:00:00:00:01:01' }],
    peers: [{ index: 0, nodeIp: '192.168.77.2', podCidr: '10.244.2.0/24', gatewayIp: '10.244.2.1' }],
  };
  // Three hops: local and remote replicas, a routed one here, and one with no usable replica (bypassed).
  const here = (n: number) => ({ ingressOfport: n, egressOfport: n + 1, ingressMac: `02:00:00:00:00:${n}`, egressMac: `02:00:00:00:01:${n}` });
  const chain: DatapathChain = {
    index: 9,
    precedence: 1,
    symmetric: true,
    classifier: { source: ['10.244.0.0/16'], destination: ['10.96.0.10/32', '10.244.3.0/24'], protocol: 'UDP', ports: [{ port: 53 }, { port: 5000, endPort: 5003 }] },
    hops: [
      { mode: 'Transparent', failurePolicy: 'FailClosed', replicas: [{ id: 1, nodeIp: '192.168.0.1', usable: true, local: here(10) }, { id: 2, nodeIp: '192.168.0.2', usable: true }] },
      { mode: 'Routed', failurePolicy: 'FailClosed', replicas: [{ id: 3, nodeIp: '192.168.0.1', usable: true, local: here(20) }] },
      { mode: 'Transparent', failurePolicy: 'FailOpen', replicas: [{ id: 4, nodeIp: '192.168.0.3', usable: false }] },
    ],
  };
  const chainNode = { round: 3, tunnelOfport: 1 };
  const rule = (id: number, direction: DatapathRule['direction'], tier: DatapathRule['tier'], action: DatapathRule['action']): DatapathRule => ({
    id,
    direction,
    tier,
    action,
    priority: id,
    applied: [{ ofport: 3, namedPorts: [{ name: 'web', protocol: 'TCP', port: 8080 }] }],
    peers: { any: false, cidrs: ['10.0.0.0/8'], pods: [{ ip: '10.244.1.9', namedPorts: [] }] },
    ports: [{ protocol: 'TCP', port: 80 }, { protocol: 'UDP', port: 1000, endPort: 1031 }, { protocol: 'TCP', name: 'web' }],
  });
  return [
    ...pipelineFlows(pipeline),
    ...pipelineFlows({ ...pipeline, node: { ...pipeline.node, mode: 'noEncap' } }),
    ...policyBaseFlows(1),
    ...policyFlows({
      round: 1,
      rules: [rule(1, 'Ingress', 'NetworkPolicy', 'Accept'), rule(2, 'Egress', 'Admin', 'Deny'), rule(3, 'Ingress', 'Baseline', 'Pass'), rule(4, 'Egress', 'Admin', 'Accept')],
      isolations: [{ direction: 'Ingress', ofport: 3, ruleId: 1 }, { direction: 'Egress', ofport: 3, ruleId: 2 }],
    }),
    ...chainBaseFlows(chainNode),
    ...chainFlows(chainNode, chain),
    ...segmentBaseFlows(chainNode, [{ zone: 0x2001, podOfports: [20, 21] }]),
    ...overlayFlows({ round: 7, localPorts: [4, 3], tunnelPorts: [9, 8] }),
    ...trunkFlows({ round: 7, functionPorts: [5, 3] }),
  ];
}

/** A feature flow as a case: its own match and table, its actions up to the goto_table the flow encoder writes. */
function flowCase(f: Flow, i: number): Case | undefined {
  const actions = f.actions.at(-1)?.type === 'goto_table' ? f.actions.slice(0, -1) : f.actions;
  if (actions.some((a) => a.type === 'raw' || (a.type === 'ct' && a.exec?.some((x) => x.type === 'raw')))) return undefined;
  return { name: `feature flow ${i}: table ${f.table ?? 0}, ${renderActions(f.actions)}`, match: renderMatch(f.match ?? {}), table: f.table ?? 0, actions };
}

const flowLine = (c: Case): string => `table=${c.table ?? 0},priority=1${c.match ? `,${c.match}` : ''},actions=${renderActions(c.actions)}`;

/** What `ovs-ofctl parse-actions OpenFlow15` makes of hex action lists: the decoded text and the re-encoding differences. */
async function ovsDecode(hex: readonly string[]): Promise<{ text: string; differences: string[] }[]> {
  const { stdout } = await run('ovs-ofctl', ['parse-actions', 'OpenFlow15'], { input: hex.join('\n') + '\n', timeoutMs: 60_000 });
  // One block per input line, each ended by an empty line.
  const blocks = stdout.split('\n\n').filter((b) => b.trim());
  if (blocks.length !== hex.length) throw new Error(`parse-actions answered ${blocks.length} blocks for ${hex.length} lines:\n${stdout}`);
  return blocks.map((b) => {
    const [text, ...differences] = b.trim().split('\n');
    return { text: text!, differences };
  });
}

/**
 * A stand-in switch on a Unix socket that answers ovs-ofctl's hello and barrier and keeps the action list of
 * every flow_mod it is sent: OVS's own encoding of a flow line, byte for byte.
 */
class CaptureSwitch {
  private constructor(
    private readonly dir: string,
    private readonly server: Server,
    private readonly sockets: Set<Socket>,
    private readonly flowMods: Buffer[],
  ) {}

  get target(): string {
    return `unix:${join(this.dir, 'switch.sock')}`;
  }

  static async start(): Promise<CaptureSwitch> {
    const dir = await mkdtemp(join(tmpdir(), 'seine-wire-actions-'));
    const sockets = new Set<Socket>();
    const flowMods: Buffer[] = [];
    const server = createServer((s) => {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => s.destroy());
      s.write(ofpHeader(0 /* HELLO */, 0));
      let pending = Buffer.alloc(0);
      s.on('data', (d) => {
        pending = Buffer.concat([pending, d]);
        while (pending.length >= 8 && pending.length >= pending.readUInt16BE(2)) {
          const msg = pending.subarray(0, pending.readUInt16BE(2));
          pending = pending.subarray(msg.length);
          const type = msg[1]!;
          const xid = msg.readUInt32BE(4);
          if (type === 2 /* ECHO_REQUEST */) s.write(ofpHeader(3, xid));
          else if (type === 14 /* FLOW_MOD */) flowMods.push(Buffer.from(msg));
          else if (type === 20 /* BARRIER_REQUEST */) s.write(ofpHeader(21, xid));
        }
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(join(dir, 'switch.sock'), resolve);
    });
    return new CaptureSwitch(dir, server, sockets, flowMods);
  }

  /** The apply-actions bytes of each flow line, as `ovs-ofctl add-flows` sends them. */
  async encode(lines: readonly string[]): Promise<Buffer[]> {
    this.flowMods.length = 0;
    // --no-names: with names, ovs-ofctl would first ask the switch for its table features.
    await run('ovs-ofctl', ['-O', 'OpenFlow15', '--no-names', 'add-flows', this.target, '-'], { input: lines.join('\n') + '\n', timeoutMs: 60_000 });
    if (this.flowMods.length !== lines.length) throw new Error(`the stand-in switch got ${this.flowMods.length} flow_mods for ${lines.length} lines`);
    return this.flowMods.map(applyActions);
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    await rm(this.dir, { recursive: true, force: true });
  }
}

function ofpHeader(type: number, xid: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt8(6, 0); // OpenFlow 1.5
  b.writeUInt8(type, 1);
  b.writeUInt16BE(8, 2);
  b.writeUInt32BE(xid, 4);
  return b;
}

/** The actions of an OpenFlow 1.5 flow_mod's apply-actions instruction (none when it has no such instruction). */
function applyActions(flowMod: Buffer): Buffer {
  const matchAt = 48; // ofp_header, cookie, mask, table, command, timeouts, priority, buffer, out port/group, flags, importance
  let at = matchAt + Math.ceil(flowMod.readUInt16BE(matchAt + 2) / 8) * 8;
  while (at < flowMod.length) {
    const type = flowMod.readUInt16BE(at);
    const len = flowMod.readUInt16BE(at + 2);
    if (type === 4 /* APPLY_ACTIONS */) return flowMod.subarray(at + 8, at + len);
    at += len;
  }
  return Buffer.alloc(0);
}

describe('OpenFlow 1.5 action encoding', () => {
  let sw: CaptureSwitch;
  const ofctl = new Ofctl('offline');

  beforeAll(async () => {
    sw = await CaptureSwitch.start();
  });
  afterAll(async () => {
    await sw?.close();
  });

  /** Checks every case against OVS's decoding, its re-encoding and its own encoding of the rendered text. */
  async function expectAsOvs(cases: readonly Case[]): Promise<void> {
    const ours = cases.map((c) => encodeActions(c.actions));
    const lines = cases.map(flowLine);
    const [decoded, canonical, theirs] = await Promise.all([ovsDecode(ours.map((b) => b.toString('hex'))), ofctl.parseFlows(lines), sw.encode(lines)]);
    const got = cases.map((c, i) => ({ name: c.name, text: decoded[i]!.text, differences: decoded[i]!.differences, bytes: ours[i]!.toString('hex') }));
    const want = cases.map((c, i) => ({ name: c.name, text: `actions=${canonical[i]!.actions}`, differences: [], bytes: theirs[i]!.toString('hex') }));
    expect(got).toEqual(want);
  }

  it('writes every action as OVS does, decoded to the rendered text and re-encoded to the same bytes', async () => {
    await expectAsOvs(CASES);
  }, 60_000);

  it("writes every action list the features build (but raw actions) as OVS does", async () => {
    const cases = featureFlows().map(flowCase).filter((c): c is Case => c !== undefined);
    const kinds = new Set(cases.flatMap((c) => c.actions.flatMap((a) => [a.type, ...(a.type === 'ct' ? (a.exec ?? []).map((x) => `ct exec ${x.type}`) : [])])));
    // The features' lists reach every kind of action they use, so a new kind they start using is covered here.
    expect([...kinds].sort()).toEqual(
      ['conjunction', 'ct', 'ct exec load', 'ct exec move', 'dec_ttl', 'learn', 'load', 'mod_dl_dst', 'mod_dl_src', 'move', 'output', 'resubmit', 'set_field', 'set_tunnel_dst', 'set_tunnel_id'].sort(),
    );
    await expectAsOvs(cases.filter((c) => c.actions.length));
    for (const c of cases.filter((x) => !x.actions.length)) expect(encodeActions(c.actions)).toHaveLength(0);
  }, 60_000);

  it('writes nothing for drop and for an empty list', () => {
    expect(encodeActions([])).toHaveLength(0);
    expect(encodeActions([{ type: 'drop' }])).toHaveLength(0);
  });

  it('leaves raw actions and fields it does not know to ovs-ofctl', () => {
    const unencodable: Action[][] = [
      [{ type: 'raw', text: 'controller(max_len=128)' }],
      [{ type: 'output', port: 1 }, { type: 'raw', text: 'learn(table=1,NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[])' }],
      [{ type: 'set_field', field: 'nsh_c1', value: 1 }],
      [{ type: 'load', value: 1, dst: 'NXM_NX_TUN_METADATA0[0..7]' }],
      [{ type: 'move', src: 'reg0[]', dst: 'ct_nw_src' }],
    ];
    for (const actions of unencodable) expect(() => encodeActions(actions)).toThrow(UnencodableError);
  });

  it('refuses invalid lists with RangeError, as renderActions or OVS would', () => {
    const invalid: [string, Action[]][] = [
      ['goto_table', [{ type: 'output', port: 1 }, { type: 'goto_table', table: 3 }]],
      ['drop with others', [{ type: 'drop' }, { type: 'output', port: 1 }]],
      ['port beyond 32 bits', [{ type: 'output', port: 2 ** 32 }]],
      ['port between the two numberings', [{ type: 'output', port: 70000 }]],
      ['port ANY', [{ type: 'output', port: 0xffffffff }]],
      ['reserved port 0xff00', [{ type: 'output', port: 0xff00 }]],
      ['unknown reserved port', [{ type: 'output', port: 'ANYWHERE' as 'LOCAL' }]],
      ['bad output field', [{ type: 'output', port: { field: 'reg1[0..' } }]],
      ['output bits beyond the field', [{ type: 'output', port: { field: 'reg1[16..32]' } }]],
      ['resubmit to nowhere', [{ type: 'resubmit' }]],
      ['resubmit from IN_PORT to nowhere', [{ type: 'resubmit', port: 'IN_PORT' }]],
      ['resubmit table 256', [{ type: 'resubmit', table: 256 }]],
      ['load too wide', [{ type: 'load', value: 0x10000, dst: 'reg0[0..15]' }]],
      ['load negative', [{ type: 'load', value: -1, dst: 'reg0' }]],
      ['load of ct_mark outside ct', [{ type: 'load', value: 1, dst: 'ct_mark' }]],
      ['load part of a non-maskable field', [{ type: 'load', value: 1, dst: 'arp_op[0]' }]],
      ['set_field value too large', [{ type: 'set_field', field: 'reg0', value: 0x100000000 }]],
      ['set_field value outside its mask', [{ type: 'set_field', field: 'reg0', value: 0xff, mask: 0xf }]],
      ['set_field mask too large', [{ type: 'set_field', field: 'reg0', value: 1, mask: 0x1ffffffff }]],
      ['set_field of a subfield', [{ type: 'set_field', field: 'reg0[0..3]', value: 1 }]],
      ['set_field of a bad MAC', [{ type: 'set_field', field: 'eth_src', value: '0a:00:00:00:00' }]],
      ['set_field of a bad address', [{ type: 'set_field', field: 'ipv6_dst', value: 'fd00:::1' }]],
      ['set_field text with a separate mask', [{ type: 'set_field', field: 'eth_src', value: '0a:00:00:00:00:01', mask: 1 }]],
      ['set_field of ct_label outside ct', [{ type: 'set_field', field: 'ct_label', value: 1 }]],
      ['set_field of vlan_vid beyond 13 bits', [{ type: 'set_field', field: 'vlan_vid', value: 0x2000 }]],
      ['move between widths', [{ type: 'move', src: 'reg0[0..15]', dst: 'reg1[0..7]' }]],
      ['move into ct_label outside ct', [{ type: 'move', src: 'reg0[]', dst: 'ct_label[0..31]' }]],
      ['mod_dl_src with a mask', [{ type: 'mod_dl_src', mac: '0a:00:00:00:00:01/ff:ff:ff:ff:ff:ff' }]],
      ['mod_dl_dst of a bad MAC', [{ type: 'mod_dl_dst', mac: 'nope' }]],
      ['ct force without commit', [{ type: 'ct', force: true }]],
      ['ct exec without commit', [{ type: 'ct', exec: [{ type: 'set_field', field: 'ct_mark', value: 1 }] }]],
      ['ct snat without commit', [{ type: 'ct', nat: { type: 'src', addr: '10.0.0.1' } }]],
      ['ct table 255', [{ type: 'ct', table: 255 }]],
      ['ct zone of 8 bits', [{ type: 'ct', zone: 'reg1[0..7]' }]],
      ['ct zone beyond 16 bits', [{ type: 'ct', zone: 0x10000 }]],
      ['ct exec output', [{ type: 'ct', commit: true, exec: [{ type: 'output', port: 1 }] }]],
      ['ct exec of a register', [{ type: 'ct', commit: true, exec: [{ type: 'load', value: 1, dst: 'reg0' }] }]],
      ['ct unknown alg', [{ type: 'ct', alg: 'sip' as 'ftp' }]],
      ['nat address without type', [{ type: 'ct', commit: true, nat: { addr: '10.0.0.1' } }]],
      ['nat port without address', [{ type: 'ct', commit: true, nat: { type: 'src', port: 80 } }]],
      ['nat port 0', [{ type: 'ct', commit: true, nat: { type: 'src', addr: '10.0.0.1', port: [0, 5] } }]],
      ['nat ports reversed', [{ type: 'ct', commit: true, nat: { type: 'src', addr: '10.0.0.1', port: [5, 1] } }]],
      ['nat addresses reversed', [{ type: 'ct', commit: true, nat: { type: 'src', addr: ['10.0.0.3', '10.0.0.1'] } }]],
      ['nat addresses of two families', [{ type: 'ct', commit: true, nat: { type: 'src', addr: ['10.0.0.1', 'fd00::1'] } }]],
      ['nat to 0.0.0.0', [{ type: 'ct', commit: true, nat: { type: 'src', addr: '0.0.0.0' } }]],
      ['nat to a name', [{ type: 'ct', commit: true, nat: { type: 'dst', addr: 'example' } }]],
      ['nat hash and random', [{ type: 'ct', commit: true, nat: { type: 'src', flags: ['hash', 'random'] } }]],
      ['conjunction of one clause', [{ type: 'conjunction', id: 1, clause: 1, clauses: 1 }]],
      ['conjunction clause beyond its count', [{ type: 'conjunction', id: 1, clause: 3, clauses: 2 }]],
      ['conjunction id beyond 32 bits', [{ type: 'conjunction', id: 2 ** 32, clause: 1, clauses: 2 }]],
      ['group id beyond 32 bits', [{ type: 'group', id: 2 ** 32 }]],
      ['set_tunnel_dst of IPv6', [{ type: 'set_tunnel_dst', ip: 'fd00::1' }]],
      ['set_tunnel_id beyond 64 bits', [{ type: 'set_tunnel_id', id: 1n << 64n }]],
      ['push_vlan of IPv4', [{ type: 'push_vlan', ethertype: 0x0800 }]],
      ['push_vlan VID beyond 12 bits', [{ type: 'push_vlan', vid: 4096 }]],
      ['push_vlan PCP beyond 3 bits', [{ type: 'push_vlan', pcp: 8 }]],
      ['empty note', [{ type: 'note', text: '' }]],
    ];
    const outcomes = invalid.map(([what, actions]) => {
      try {
        encodeActions(actions);
        return `${what}: encoded`;
      } catch (e) {
        return `${what}: ${(e as Error).name}`;
      }
    });
    expect(outcomes).toEqual(invalid.map(([what]) => `${what}: RangeError`));
  });

  it('encodes the same list to the same bytes on every call (no state carried over, even after an error)', () => {
    const list = CASES.find((c) => c.name === 'a long list')!.actions;
    const first = encodeActions(list);
    expect(() => encodeActions([{ type: 'ct', commit: true, zone: 1, exec: [{ type: 'output', port: 1 }] }])).toThrow(RangeError);
    expect(encodeActions(list)).toEqual(first);
    // The result is the caller's: a later call does not overwrite it.
    const copy = Buffer.from(first);
    encodeActions([{ type: 'output', port: 9 }]);
    expect(first).toEqual(copy);
  });
});

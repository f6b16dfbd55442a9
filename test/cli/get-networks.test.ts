import type { V1Pod } from '@kubernetes/client-node';
import { networkRows, networkTable, poolRows, poolTable } from '../../src/cli/get-networks.js';
import type { IPPool } from '../../src/secondary/ippool/types.js';

const nad = (namespace: string, name: string, config?: object | string) => ({
  metadata: { namespace, name, creationTimestamp: '2026-12-04T10:00:00Z' },
  spec: config === undefined ? {} : { config: typeof config === 'string' ? config : JSON.stringify(config) },
});

const pod = (name: string, node: string, phase: string, status: object[]): V1Pod => ({
  metadata: { name, namespace: 'default', annotations: { 'k8s.v1.cni.cncf.io/network-status': JSON.stringify(status) } },
  spec: { nodeName: node, containers: [] },
  status: { phase },
});

const NOW = Date.parse('2026-12-04T10:05:00Z');

describe('seine get networks', () => {
  const nads = [
    nad('default', 'vlan100', { cniVersion: '1.0.0', type: 'seine', networkType: 'vlan', vlan: 100, ipam: { type: 'seine', ippools: ['vlan100', 'spare'] } }),
    nad('default', 'blue', { cniVersion: '1.0.0', type: 'seine', networkType: 'overlay', vni: 5001, ipam: { type: 'seine', ippools: ['blue'] } }),
    nad('default', 'macvlan', { cniVersion: '1.0.0', type: 'macvlan', master: 'eth1', ipam: { type: 'host-local', subnet: '10.9.0.0/24' } }),
    nad('default', 'from-file'),
    nad('cnf', 'broken', '{"type": "seine", "networkType": "vlan", "vlan": 9999}'),
  ];
  const pods = [
    pod('a', 'node1', 'Running', [{ name: 'seine', default: true, ips: ['10.244.1.5'] }, { name: 'default/vlan100', interface: 'net1', ips: ['10.100.0.2'] }, { name: 'default/blue', interface: 'net2' }]),
    pod('b', 'node2', 'Running', [{ name: 'default/vlan100', interface: 'net1' }]),
    pod('c', 'node2', 'Running', [{ name: 'default/vlan100', interface: 'net1' }]),
    // Not running: its status is what it was.
    pod('d', 'node1', 'Succeeded', [{ name: 'default/vlan100', interface: 'net1' }]),
  ];

  it('describes each NAD as Seine reads it, with the running pods attached per node', () => {
    const rows = networkRows(nads, pods);
    expect(rows.map((r) => [r.namespace, r.name, r.type, r.segment, r.bridge, r.ipam, r.pods])).toEqual([
      ['cnf', 'broken', 'invalid', '', '', '', {}],
      ['default', 'blue', 'overlay', 'vni 5001', expect.any(String), 'pools blue', { node1: 1 }],
      ['default', 'from-file', 'node file', '', '', '', {}],
      ['default', 'macvlan', 'delegated (macvlan)', '', '', '', {}],
      ['default', 'vlan100', 'vlan', 'vlan 100', 'br-vlan', 'pools vlan100,spare', { node1: 1, node2: 2 }],
    ]);
    expect(rows[0]!.problem).toMatch(/vlan/);
  });

  it('prints kubectl-style tables: NAMESPACE with -A, per node and problems with wide', () => {
    const rows = networkRows(nads, pods);
    const table = networkTable(rows, { allNamespaces: true, wide: false, now: NOW });
    const lines = table.split('\n');
    expect(lines[0]).toMatch(/^NAMESPACE\s+NAME\s+TYPE\s+SEGMENT\s+BRIDGE\s+IPAM\s+PODS\s+AGE$/);
    expect(lines).toContainEqual(expect.stringMatching(/^default\s+vlan100\s+vlan\s+vlan 100\s+br-vlan\s+pools vlan100,spare\s+3\s+5m$/));
    expect(lines).toContainEqual(expect.stringMatching(/^default\s+macvlan\s+delegated \(macvlan\)\s+<none>\s+<none>\s+<none>\s+0\s+5m$/));
    const wide = networkTable(rows.filter((r) => r.name === 'vlan100' || r.name === 'broken'), { allNamespaces: false, wide: true, now: NOW }).split('\n');
    expect(wide[0]).toMatch(/^NAME\s+TYPE\s+SEGMENT\s+BRIDGE\s+IPAM\s+PODS\s+AGE\s+BY NODE\s+PROBLEM$/);
    expect(wide).toContainEqual(expect.stringMatching(/^vlan100\s+.*\s+3\s+5m\s+node1=1,node2=2\s+<none>$/));
    expect(wide).toContainEqual(expect.stringMatching(/^broken\s+invalid\s+.*<none>\s+\S.*vlan/));
  });
});

describe('seine get ippools', () => {
  const pool = (name: string, allocations: Array<{ ip: string; node?: string }>, usage?: { total: number; used: number }, blockNodes: string[] = []): IPPool => ({
    apiVersion: 'crd.seine.dev/v1alpha1',
    kind: 'IPPool',
    metadata: { name, creationTimestamp: '2026-12-04T09:05:00Z' },
    spec: { ipRanges: [{ cidr: '10.100.0.0/24' }, { start: '10.100.1.10', end: '10.100.1.20' }], subnetInfo: { gateway: '10.100.0.1', prefixLength: 24, vlan: 100 } },
    status: {
      allocations: allocations.map((a) => ({ ip: a.ip, allocatedAt: '2026-12-04T09:06:00Z', owner: { podNamespace: 'default', podName: 'p', containerID: 'c', interface: 'net1', ...(a.node ? { node: a.node } : {}) } })),
      ...(usage ? { usage } : {}),
      ...(blockNodes.length ? { blocks: blockNodes.map((node, i) => ({ start: `10.100.0.${2 + 16 * i}`, end: `10.100.0.${17 + 16 * i}`, node, version: 0 })) } : {}),
    },
  });

  it('shows the ranges, usage from the status, the holders and the blocks per node', () => {
    const held = [{ ip: '10.100.0.2', node: 'node1' }, { ip: '10.100.0.18', node: 'node2' }, { ip: '10.100.0.19', node: 'node2' }];
    const rows = poolRows([pool('vlan100', held, { total: 264, used: 3 }, ['node1', 'node2', 'node1']), pool('empty', [])]);
    expect(rows.map((r) => [r.name, r.ranges, r.used, r.total, r.byNode, r.blocksByNode])).toEqual([
      ['empty', ['10.100.0.0/24', '10.100.1.10-10.100.1.20'], 0, 0, {}, {}],
      ['vlan100', ['10.100.0.0/24', '10.100.1.10-10.100.1.20'], 3, 264, { node1: 1, node2: 2 }, { node1: 2, node2: 1 }],
    ]);
    // The allocations are counted, not status.usage, which is written a moment after them.
    expect(poolRows([pool('lagging', held, { total: 264, used: 1 })])[0]!.used).toBe(3);
    // No allocation yet, so no usage in the status: the size from the spec (a /24 less network, broadcast, gateway).
    const fresh: IPPool = { ...pool('fresh', []), spec: { ipRanges: [{ cidr: '10.7.0.0/24' }], subnetInfo: { gateway: '10.7.0.1', prefixLength: 24 } }, status: {} };
    expect(poolRows([fresh]).map((r) => [r.used, r.total])).toEqual([[0, 253]]);
    const lines = poolTable(rows, { wide: true, now: NOW }).split('\n');
    expect(lines[0]).toMatch(/^NAME\s+RANGES\s+USED\s+TOTAL\s+USAGE\s+AGE\s+GATEWAY\s+VLAN\s+BY NODE\s+BLOCKS$/);
    expect(lines[1]).toMatch(/^empty\s+10\.100\.0\.0\/24,10\.100\.1\.10-10\.100\.1\.20\s+0\s+0\s+<none>\s+60m\s+10\.100\.0\.1\s+100\s+<none>\s+<none>$/);
    expect(lines[2]).toMatch(/^vlan100\s+\S+\s+3\s+264\s+1%\s+60m\s+10\.100\.0\.1\s+100\s+node1=1,node2=2\s+node1=2,node2=1$/);
  });
});

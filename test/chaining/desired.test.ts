import type { ServiceChain } from '../../src/chaining/api/types.js';
import { desiredChains, nodeReports, peerAddresses } from '../../src/chaining/model/desired.js';
import { rangesToCidrs, subtractRanges, cidrRange } from '../../src/ipam/ipv4-set.js';
import { classifiersOverlap } from '../../src/chaining/model/overlap.js';
import { NODE_CHAIN_REPORT_ANNOTATION, type NodeChainReport } from '../../src/chaining/model/report.js';
import { chain, namespace, node, pod } from './fixtures.js';

const nodes = [node('node-1', '192.168.1.1'), node('node-2', '192.168.1.2')];
const namespaces = [namespace('default', { team: 'a' }), namespace('other', { team: 'b' }), namespace('third', { team: 'a' })];

function report(entries: Array<{ chain: string; hop: string; pod: string; healthy: boolean }>): NodeChainReport {
  const zero = { forward: 0, reverse: 0 };
  return { v: 1, at: '2025-01-01T00:00:00Z', replicas: entries.map((e) => ({ ...e, packets: zero, bytes: zero })), chains: [] };
}

/** A chain as the controller leaves it: an index, and ids for the named replica pods of hop fw. */
function assigned(c: ServiceChain, index: number, replicas: Array<[string, number]>): ServiceChain {
  return { ...c, status: { index, hops: [{ name: 'fw', replicas: replicas.map(([uid, id]) => ({ pod: uid, podUID: uid, id, healthy: false })) }] } };
}

describe('IPv4 set math', () => {
  it('subtracts excepts and writes the fewest CIDRs', () => {
    expect(rangesToCidrs(subtractRanges([cidrRange('10.0.0.0/24')], [cidrRange('10.0.0.128/25')]))).toEqual(['10.0.0.0/25']);
    expect(rangesToCidrs(subtractRanges([cidrRange('10.0.0.0/24')], [cidrRange('10.0.0.5/32')]))).toEqual([
      '10.0.0.0/30', '10.0.0.4/32', '10.0.0.6/31', '10.0.0.8/29', '10.0.0.16/28', '10.0.0.32/27', '10.0.0.64/26', '10.0.0.128/25',
    ]);
    expect(rangesToCidrs([cidrRange('0.0.0.0/0')])).toEqual(['0.0.0.0/0']);
    expect(rangesToCidrs(subtractRanges([cidrRange('0.0.0.0/0')], [cidrRange('128.0.0.0/1')]))).toEqual(['0.0.0.0/1']);
    // Host bits in a CIDR are ignored, touching ranges merged.
    expect(rangesToCidrs([cidrRange('10.0.0.7/24'), cidrRange('10.0.1.0/24')])).toEqual(['10.0.0.0/23']);
  });
});

describe('classifier peers resolve to addresses', () => {
  const pods = [
    pod('a1', { labels: { role: 'client' }, ip: '10.244.1.5' }),
    pod('a2', { labels: { role: 'client' }, ip: '10.244.1.4' }),
    pod('srv', { labels: { role: 'server' }, ip: '10.244.1.9' }),
    pod('b1', { ns: 'other', labels: { role: 'client' }, ip: '10.244.2.5' }),
    pod('c1', { ns: 'third', labels: { role: 'client' }, ip: '10.244.3.5' }),
    pod('done', { labels: { role: 'client' }, ip: '10.244.1.7', phase: 'Succeeded' }),
    pod('nonet', { labels: { role: 'client' } }),
  ];
  const peer = (p: Parameters<typeof peerAddresses>[0], network = ''): string[] => peerAddresses(p, 'default', network, pods, namespaces).cidrs;

  it('absent = any; ipBlock minus except', () => {
    expect(peer(undefined)).toEqual(['0.0.0.0/0']);
    expect(peer({ ipBlock: { cidr: '10.1.0.0/16', except: ['10.1.0.0/17'] } })).toEqual(['10.1.128.0/17']);
  });

  it('podSelector alone: pods of the chain namespace; finished pods and pods without an address count not', () => {
    expect(peer({ podSelector: { matchLabels: { role: 'client' } } })).toEqual(['10.244.1.4/31']);
    expect(peer({ podSelector: { matchLabels: { role: 'nobody' } } })).toEqual([]);
  });

  it('namespaceSelector alone: every pod of those namespaces; both: AND', () => {
    expect(peer({ namespaceSelector: { matchLabels: { team: 'a' } } })).toEqual(['10.244.1.4/31', '10.244.1.9/32', '10.244.3.5/32']);
    expect(peer({ namespaceSelector: { matchLabels: { team: 'a' } }, podSelector: { matchLabels: { role: 'client' } } })).toEqual(['10.244.1.4/31', '10.244.3.5/32']);
    expect(peer({ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'other' } } })).toEqual(['10.244.2.5/32']);
    expect(peer({ namespaceSelector: { matchExpressions: [{ key: 'team', operator: 'NotIn', values: ['a'] }] } })).toEqual(['10.244.2.5/32']);
  });

  it('on a secondary network: the address in network-status of that network, never the primary one', () => {
    const sec = [
      pod('v1', { labels: { role: 'client' }, ip: '10.244.1.20', networkStatus: [{ name: 'seine', ips: ['10.244.1.20'], default: true }, { name: 'default/vlan100', interface: 'net1', ips: ['10.10.0.5'] }] }),
      pod('v2', { labels: { role: 'client' }, ip: '10.244.1.21', networkStatus: [{ name: 'seine', ips: ['10.244.1.21'], default: true }, { name: 'default/vlan200', interface: 'net1', ips: ['10.20.0.5'] }] }),
      pod('bad', { labels: { role: 'client' }, ip: '10.244.1.22', networkStatus: 'not a list' }),
    ];
    expect(peerAddresses({ podSelector: {} }, 'default', 'default/vlan100', sec, namespaces).cidrs).toEqual(['10.10.0.5/32']);
  });
});

describe('desiredChains', () => {
  const fwPods = [pod('fw-1', { labels: { app: 'fw' }, node: 'node-1', ip: '10.244.1.10' }), pod('fw-2', { labels: { app: 'fw' }, node: 'node-2', ip: '10.244.2.10' })];
  const uid1 = fwPods[0]!.metadata!.uid!;
  const uid2 = fwPods[1]!.metadata!.uid!;

  it('includes only chains with an index, and replicas with an id; health needs Ready and a healthy report', () => {
    const c = assigned(chain('web'), 7, [[uid2, 2], [uid1, 1]]);
    const reports = new Map([['node-1', report([{ chain: 'uid-web', hop: 'fw', pod: uid1, healthy: true }])], ['node-2', report([{ chain: 'uid-web', hop: 'fw', pod: uid2, healthy: false }])]]);
    const { chains, problems } = desiredChains({ chains: [c, chain('pending')], pods: fwPods, namespaces, nodes, reports });
    expect(problems).toEqual([]);
    expect(chains).toEqual([
      {
        index: 7,
        key: 'default/web',
        uid: 'uid-web',
        precedence: 0,
        network: '',
        classifier: { source: { cidrs: ['0.0.0.0/0'] }, destination: { cidrs: ['10.0.0.0/8'] }, ports: [] },
        hops: [
          {
            index: 0,
            name: 'fw',
            mode: 'Transparent',
            failurePolicy: 'FailClosed',
            replicas: [
              { id: 1, podUid: uid1, pod: 'default/fw-1', node: 'node-1', nodeIp: '192.168.1.1', healthy: true, ingress: 'in0', egress: 'out0' },
              { id: 2, podUid: uid2, pod: 'default/fw-2', node: 'node-2', nodeIp: '192.168.1.2', healthy: false, ingress: 'in0', egress: 'out0' },
            ],
          },
        ],
        symmetric: true,
      },
    ]);
  });

  it('a pod without an id, a gone pod, one no longer selected: not replicas', () => {
    const relabelled = pod('fw-3', { labels: { app: 'other' } });
    const c = assigned(chain('web'), 1, [[uid1, 1], ['gone-uid', 2], [relabelled.metadata!.uid!, 3]]);
    const { chains } = desiredChains({ chains: [c], pods: [...fwPods, relabelled], namespaces, nodes, reports: new Map() });
    expect(chains[0]!.hops[0]!.replicas.map((r) => r.pod)).toEqual(['default/fw-1']);
  });

  it('terminating and not-Ready pods are unhealthy whatever their node reports', () => {
    const t = pod('fw-t', { labels: { app: 'fw' }, terminating: true });
    const nr = pod('fw-nr', { labels: { app: 'fw' }, ready: false });
    const c = assigned(chain('web'), 1, [[t.metadata!.uid!, 1], [nr.metadata!.uid!, 2]]);
    const healthyReport = report([t, nr].map((p) => ({ chain: 'uid-web', hop: 'fw', pod: p.metadata!.uid!, healthy: true })));
    const { chains } = desiredChains({ chains: [c], pods: [t, nr], namespaces, nodes, reports: new Map([['node-1', healthyReport]]) });
    expect(chains[0]!.hops[0]!.replicas.map((r) => [r.pod, r.healthy])).toEqual([['default/fw-t', false], ['default/fw-nr', false]]);
  });

  it('the reports are read from the Nodes, garbage included', () => {
    const r = report([{ chain: 'uid-web', hop: 'fw', pod: uid1, healthy: true }]);
    const reports = nodeReports([node('node-1', '192.168.1.1', { [NODE_CHAIN_REPORT_ANNOTATION]: JSON.stringify(r) }), node('node-2', '192.168.1.2', { [NODE_CHAIN_REPORT_ANNOTATION]: '{nope' })]);
    expect([...reports.keys()]).toEqual(['node-1']);
    const { chains } = desiredChains({ chains: [assigned(chain('web'), 1, [[uid1, 1]])], pods: fwPods, namespaces, nodes, reports });
    expect(chains[0]!.hops[0]!.replicas[0]!.healthy).toBe(true);
  });

  it('precedence: priority, then age, then namespace/name', () => {
    const cs = [
      assigned(chain('late', { priority: 100 }, { created: '2025-02-01T00:00:00Z' }), 1, []),
      assigned(chain('b-early', { priority: 100 }, { created: '2025-01-01T00:00:00Z' }), 2, []),
      assigned(chain('a-early', { priority: 100 }, { created: '2025-01-01T00:00:00Z' }), 3, []),
      assigned(chain('urgent', { priority: 5 }, { created: '2025-03-01T00:00:00Z' }), 4, []),
      assigned(chain('z', { priority: 100 }, { namespace: 'a', created: '2025-01-01T00:00:00Z' }), 5, []),
    ];
    const { chains } = desiredChains({ chains: cs, pods: [], namespaces, nodes, reports: new Map() });
    expect(chains.map((c) => [c.key, c.precedence])).toEqual([['default/urgent', 0], ['a/z', 1], ['default/a-early', 2], ['default/b-early', 3], ['default/late', 4]]);
  });

  it('leaves out invalid chains, chains the controller marked Invalid and a second chain on the same index', () => {
    const bad = assigned(chain('bad', { hops: [] }), 1, []);
    const marked = assigned(chain('marked'), 2, []);
    marked.status!.conditions = [{ type: 'Invalid', status: 'True', reason: 'NetworkNotFound', message: 'x', lastTransitionTime: '2025-01-01T00:00:00Z' }];
    const first = assigned(chain('first', {}, { created: '2025-01-01T00:00:00Z' }), 3, []);
    const dup = assigned(chain('dup', {}, { created: '2025-01-02T00:00:00Z' }), 3, []);
    const { chains, problems } = desiredChains({ chains: [bad, marked, dup, first], pods: [], namespaces, nodes, reports: new Map() });
    expect(chains.map((c) => c.key)).toEqual(['default/first']);
    expect(problems.map((p) => [p.chain, p.reason])).toEqual([['default/bad', 'Invalid'], ['default/marked', 'Invalid'], ['default/dup', 'IndexInUse']]);
  });

  it('a replica on a node without an address is a problem, not a replica', () => {
    const p = pod('fw-x', { labels: { app: 'fw' }, node: 'node-9' });
    const { chains, problems } = desiredChains({ chains: [assigned(chain('web'), 1, [[p.metadata!.uid!, 1]])], pods: [p], namespaces, nodes, reports: new Map() });
    expect(chains[0]!.hops[0]!.replicas).toEqual([]);
    expect(problems).toEqual([{ chain: 'default/web', hop: 'fw', reason: 'NoNodeAddress', message: 'replica fw-x is on node "node-9" without an InternalIP' }]);
  });
});

describe('overlap of classifiers', () => {
  const any = { cidrs: ['0.0.0.0/0'] };
  const c = (dst: string[], protocol?: 'TCP' | 'UDP', ports: Array<{ port: number; endPort?: number }> = []) => ({ source: any, destination: { cidrs: dst }, ...(protocol ? { protocol } : {}), ports });
  it('needs sources, destinations, protocol and ports to meet', () => {
    expect(classifiersOverlap(c(['10.0.0.0/8']), c(['10.1.0.0/16'], 'TCP', [{ port: 80 }]))).toBe(true);
    expect(classifiersOverlap(c(['10.0.0.0/8']), c(['11.0.0.0/8']))).toBe(false);
    expect(classifiersOverlap(c(['10.0.0.0/8'], 'TCP'), c(['10.0.0.0/8'], 'UDP'))).toBe(false);
    expect(classifiersOverlap(c(['10.0.0.0/8'], 'TCP', [{ port: 80, endPort: 90 }]), c(['10.0.0.0/8'], 'TCP', [{ port: 90 }]))).toBe(true);
    expect(classifiersOverlap(c(['10.0.0.0/8'], 'TCP', [{ port: 80, endPort: 89 }]), c(['10.0.0.0/8'], 'TCP', [{ port: 90 }]))).toBe(false);
    expect(classifiersOverlap(c([]), c(['0.0.0.0/0']))).toBe(false);
  });
});

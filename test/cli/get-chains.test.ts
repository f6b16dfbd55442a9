import type { ServiceChain } from '../../src/chaining/api/types.js';
import { chainRows, chainTable } from '../../src/cli/get-chains.js';

const NOW = Date.parse('2026-12-04T10:05:00Z');

const chain: ServiceChain = {
  metadata: { namespace: 'cnf', name: 'web-chain', creationTimestamp: '2026-12-04T10:00:00Z' as unknown as Date },
  spec: {
    classifier: {} as never,
    hops: [
      { name: 'firewall', podSelector: {}, interfaces: { ingress: 'net1', egress: 'net2' } },
      { name: 'dpi', podSelector: {}, interfaces: { ingress: 'net1', egress: 'net2' } },
    ],
  },
  status: {
    hops: [
      {
        name: 'firewall',
        replicas: [
          { pod: 'fw-1', podUID: 'u1', id: 1, healthy: true },
          { pod: 'fw-2', podUID: 'u2', id: 2, healthy: false, reason: 'ProbeFailed' },
        ],
      },
      { name: 'dpi', replicas: [{ pod: 'dpi-1', podUID: 'u3', id: 1, healthy: true }] },
    ],
    packets: { forward: 120, reverse: 118 },
    bytes: { forward: 9000, reverse: 150000 },
    conditions: [{ type: 'Ready', status: 'True', reason: 'Ready', message: '2 of 3 replicas healthy', lastTransitionTime: '2026-12-04T10:01:00Z' }],
  },
};

describe('seine get chains', () => {
  it('shows each hop in order with its healthy replicas, the chain counters, and (wide) who is unhealthy', () => {
    const fresh: ServiceChain = { metadata: { namespace: 'cnf', name: 'new' }, spec: { classifier: {} as never, hops: [{ name: 'nat', podSelector: {}, interfaces: { ingress: 'net1', egress: 'net1' } }] } };
    const rows = chainRows([chain, fresh]);
    expect(rows.map((r) => [r.name, r.ready, r.reason])).toEqual([
      ['new', '0/0', 'Pending'],
      ['web-chain', '2/3', 'Ready'],
    ]);
    const lines = chainTable(rows, { allNamespaces: true, wide: true, now: NOW }).split('\n');
    expect(lines[0]).toMatch(/^NAMESPACE\s+NAME\s+NETWORK\s+HOPS\s+REPLICAS\s+STATUS\s+PACKETS\s+AGE\s+BYTES\s+UNHEALTHY$/);
    expect(lines[1]).toMatch(/^cnf\s+new\s+pod network\s+nat\(0\/0\)\s+0\/0\s+Pending\s+0\/0\s+<unknown>\s+0\/0\s+<none>$/);
    expect(lines[2]).toMatch(/^cnf\s+web-chain\s+pod network\s+firewall\(1\/2\) -> dpi\(1\/1\)\s+2\/3\s+Ready\s+120\/118\s+5m\s+9000\/150000\s+firewall:fw-2 \(ProbeFailed\)$/);
  });
});

import type { V1Node, V1Pod } from '@kubernetes/client-node';
import { chooseNode } from '../../src/lab/scheduler.js';
import { planLab, validateLabName } from '../../src/lab/topology.js';

describe('lab plan', () => {
  it('derives names and addresses from the lab name', () => {
    const plan = planLab({ name: 'demo', nodes: 3 });
    expect(plan.nodes.map((n) => [n.name, n.netns, n.ip])).toEqual([
      ['demo-node1', 'demo-node1', '172.28.0.11'],
      ['demo-node2', 'demo-node2', '172.28.0.12'],
      ['demo-node3', 'demo-node3', '172.28.0.13'],
    ]);
    expect(plan.externalIp).toBe('172.28.0.254');
    expect(plan.fabricNetns).toBe('demo-fabric');
    // Interface names must fit in IFNAMSIZ.
    for (const n of plan.nodes) expect(n.fabricPort.length).toBeLessThanOrEqual(15);
  });

  it('rejects unusable names and node counts', () => {
    expect(() => validateLabName('Bad_Name')).toThrow(/must match/);
    expect(() => validateLabName('waytoolongname')).toThrow();
    expect(() => planLab({ name: 'x', nodes: 0 })).toThrow(/out of range/);
    expect(() => planLab({ name: 'x', nodes: 3, underlayCidr: '10.0.0.0/29' })).toThrow(/out of range/);
  });
});

describe('scheduler choice', () => {
  const node = (name: string, ready = true, labels: Record<string, string> = {}): V1Node => ({
    metadata: { name, labels: { 'kubernetes.io/hostname': name, ...labels } },
    status: { conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }] },
  });
  const pod = (nodeSelector?: Record<string, string>): V1Pod => ({ metadata: { name: 'p' }, spec: { containers: [], nodeSelector } });

  it('picks the least loaded ready node', () => {
    const nodes = [node('a'), node('b'), node('c', false)];
    expect(chooseNode(pod(), nodes, new Map([['a', 3], ['b', 1]]))).toBe('b');
    expect(chooseNode(pod(), nodes, new Map([['a', 0], ['b', 0]]))).toBe('a');
  });

  it('honours nodeSelector and reports no fit', () => {
    const nodes = [node('a'), node('b', true, { zone: 'x' })];
    expect(chooseNode(pod({ zone: 'x' }), nodes, new Map([['b', 9]]))).toBe('b');
    expect(chooseNode(pod({ 'kubernetes.io/hostname': 'c' }), nodes, new Map())).toBeUndefined();
  });
});

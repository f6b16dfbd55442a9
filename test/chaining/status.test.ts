import { assignReplicaIds, lowestFree } from '../../src/chaining/controller/ids.js';
import { chainStatus, counterWriteDelay, withoutCounters, type ChainStatusInput } from '../../src/chaining/controller/status.js';
import type { NodeChainReport } from '../../src/chaining/model/report.js';
import { chain, pod } from './fixtures.js';

const NOW = '2025-06-01T00:00:00.000Z';

describe('replica ids', () => {
  const pods = ['a', 'b', 'c', 'd'].map((n) => pod(n));
  const uid = (n: string): string => `pod-default-${n}`;

  it('lowest free first; a pod keeps its id while it exists; a freed id goes to the next new pod', () => {
    expect(lowestFree(new Set([1, 2, 4]), 31)).toBe(3);
    expect(lowestFree(new Set([1, 2]), 2)).toBeUndefined();
    const first = assignReplicaIds(new Map(), pods.slice(0, 3), new Set(pods.map((p) => p.metadata!.uid!)));
    expect([...first.ids]).toEqual([[uid('a'), 1], [uid('b'), 2], [uid('c'), 3]]);
    // b stops matching but exists: keeps 2; d is new and gets 4, not 2.
    const second = assignReplicaIds(first.ids, [pods[0]!, pods[2]!, pods[3]!], new Set(pods.map((p) => p.metadata!.uid!)));
    expect([...second.ids]).toEqual([[uid('a'), 1], [uid('b'), 2], [uid('c'), 3], [uid('d'), 4]]);
    // a is gone: its id 1 is free for the next new pod.
    const e = pod('e');
    const third = assignReplicaIds(second.ids, [pods[2]!, pods[3]!, e], new Set([uid('b'), uid('c'), uid('d'), uid('e')]));
    expect([...third.ids]).toEqual([[uid('b'), 2], [uid('c'), 3], [uid('d'), 4], [uid('e'), 1]]);
  });

  it('more candidates than ids: the rest stay unassigned', () => {
    const many = Array.from({ length: 5 }, (_, i) => pod(`p${i}`));
    const r = assignReplicaIds(new Map(), many, new Set(many.map((p) => p.metadata!.uid!)), 3);
    expect(r.ids.size).toBe(3);
    expect(r.unassigned.map((p) => p.metadata!.name)).toEqual(['p3', 'p4']);
  });
});

describe('chain status', () => {
  const fw1 = pod('fw-1', { labels: { app: 'fw' }, node: 'node-1' });
  const fw2 = pod('fw-2', { labels: { app: 'fw' }, node: 'node-2' });
  const c = chain('web', {
    hops: [
      { name: 'fw', podSelector: { matchLabels: { app: 'fw' } }, interfaces: { ingress: 'in0', egress: 'out0' } },
      { name: 'ids', podSelector: { matchLabels: { app: 'ids' } }, interfaces: { ingress: 'eth1', egress: 'eth1' }, failurePolicy: 'FailOpen' },
    ],
  });
  const counters = (f: number, r: number) => ({ forward: f, reverse: r });
  const report = (entries: Array<[string, boolean, number]>, chainPackets?: number): NodeChainReport => ({
    v: 1,
    at: NOW,
    replicas: entries.map(([p, healthy, n]) => ({ chain: 'uid-web', hop: 'fw', pod: p, healthy, since: '2025-05-01T00:00:00.000Z', packets: counters(n, n), bytes: counters(100 * n, 100 * n) })),
    chains: chainPackets === undefined ? [] : [{ chain: 'uid-web', packets: counters(chainPackets, 1), bytes: counters(chainPackets * 100, 100) }],
  });
  const base = (over: Partial<ChainStatusInput> = {}): ChainStatusInput => ({
    chain: c,
    index: 3,
    replicaIds: new Map([['fw', new Map([[fw1.metadata!.uid!, 1], [fw2.metadata!.uid!, 2]])], ['ids', new Map()]]),
    unassigned: new Map(),
    pods: new Map([fw1, fw2].map((p) => [p.metadata!.uid!, p])),
    reports: new Map([['node-1', report([[fw1.metadata!.uid!, true, 10]], 15)], ['node-2', report([[fw2.metadata!.uid!, false, 5]], 5)]]),
    now: NOW,
    ...over,
  });
  const cond = (s: ReturnType<typeof chainStatus>, type: string) => s.conditions!.find((x) => x.type === type)!;

  it('health and counters come from the replicas\' nodes; hops and chain sum them', () => {
    const s = chainStatus(base());
    expect(s).toMatchObject({ observedGeneration: 1, index: 3, hopCount: 2, readyReplicas: '1/2', packets: counters(20, 2), bytes: counters(2000, 200) });
    expect(s.hops![0]).toEqual({
      name: 'fw',
      replicas: [
        { pod: 'fw-1', podUID: fw1.metadata!.uid, node: 'node-1', id: 1, healthy: true, since: '2025-05-01T00:00:00.000Z', packets: counters(10, 10), bytes: counters(1000, 1000) },
        { pod: 'fw-2', podUID: fw2.metadata!.uid, node: 'node-2', id: 2, healthy: false, reason: 'ProbeFailed', since: '2025-05-01T00:00:00.000Z', packets: counters(5, 5), bytes: counters(500, 500) },
      ],
      packets: counters(15, 15),
      bytes: counters(1500, 1500),
    });
    // The FailOpen hop without pods degrades the chain but does not stop it.
    expect(cond(s, 'Ready')).toMatchObject({ status: 'True', reason: 'Ready' });
    expect(cond(s, 'Degraded')).toMatchObject({ status: 'True', reason: 'NoReplicas', message: 'hop ids: its podSelector matches no pod' });
    expect(cond(s, 'Invalid')).toMatchObject({ status: 'False', reason: 'Valid' });
  });

  it('a FailClosed hop without a healthy replica makes the chain not Ready, naming the hop', () => {
    const s = chainStatus(base({ reports: new Map() }));
    expect(cond(s, 'Ready')).toMatchObject({ status: 'False', reason: 'HopUnavailable', message: 'no healthy replica in FailClosed hop fw: classified traffic is dropped' });
    expect(s.hops![0]!.replicas!.map((r) => r.reason)).toEqual(['NotReported', 'NotReported']);
    expect(cond(s, 'Degraded').message).toMatch(/^hop fw: none of its 2 replicas is healthy \(traffic is dropped\); hop ids/);
  });

  it('Invalid carries the reason and message; Overlapping names the others and the winner', () => {
    const s = chainStatus(base({ invalid: { reason: 'NetworkNotFound', message: 'spec.network: NetworkAttachmentDefinition default/x does not exist' }, replicaIds: new Map() }));
    expect(cond(s, 'Invalid')).toMatchObject({ status: 'True', reason: 'NetworkNotFound', message: 'spec.network: NetworkAttachmentDefinition default/x does not exist' });
    expect(cond(s, 'Ready')).toMatchObject({ status: 'False', reason: 'Invalid' });
    const o = chainStatus(base({ overlap: { others: ['default/api'], order: ['default/api', 'default/web'] } }));
    expect(cond(o, 'Overlapping')).toMatchObject({ status: 'True', reason: 'Overlap', message: 'classifies some of the same packets as default/api; default/api wins (precedence order: default/api, default/web)' });
  });

  it('keeps lastTransitionTime while a condition stays; counters alone are told apart', () => {
    const first = chainStatus(base());
    const later = chainStatus(base({ previous: first, now: '2025-06-02T00:00:00.000Z' }));
    expect(cond(later, 'Ready').lastTransitionTime).toBe(NOW);
    const moreTraffic = chainStatus(base({ previous: first, reports: new Map([['node-1', report([[fw1.metadata!.uid!, true, 99]], 99)], ['node-2', report([[fw2.metadata!.uid!, false, 5]], 5)]]) }));
    expect(JSON.stringify(withoutCounters(moreTraffic))).toBe(JSON.stringify(withoutCounters(first)));
    expect(JSON.stringify(moreTraffic)).not.toBe(JSON.stringify(first));
  });

  it('writes counters at most once a period, but a chain\'s first traffic in either direction at once', () => {
    const first = chainStatus(base({ reports: new Map([['node-1', report([[fw1.metadata!.uid!, true, 3]], 3)]]) }));
    const idle = { ...first, packets: { forward: 0, reverse: 0 } };
    const more = chainStatus(base({ previous: first, reports: new Map([['node-1', report([[fw1.metadata!.uid!, true, 9]], 9)]]) }));
    expect(counterWriteDelay(idle, first, 1000, 10_000, 4000)).toBe(0);
    // Each direction's first packets count as first traffic.
    const forwardOnly = { ...first, packets: { forward: 3, reverse: 0 } };
    expect(counterWriteDelay(forwardOnly, first, 1000, 10_000, 4000)).toBe(0);
    expect(counterWriteDelay(first, { ...first, packets: { forward: 4, reverse: 1 } }, 1000, 10_000, 4000)).toBe(7000);
    expect(counterWriteDelay(first, more, 1000, 10_000, 4000)).toBe(7000);
    expect(counterWriteDelay(first, more, 1000, 10_000, 12_000)).toBe(0);
    // Never written by this controller, or more than counters changed: at once.
    expect(counterWriteDelay(first, more, undefined, 10_000, 4000)).toBe(0);
    const unhealthy = chainStatus(base({ previous: first, reports: new Map([['node-1', report([[fw1.metadata!.uid!, false, 9]], 9)]]) }));
    expect(counterWriteDelay(first, unhealthy, 1000, 10_000, 4000)).toBe(0);
  });

  it('more pods than ids: Degraded TooManyReplicas', () => {
    const s = chainStatus(base({ unassigned: new Map([['fw', 4]]), reports: new Map([['node-1', report([[fw1.metadata!.uid!, true, 1]])]]) }));
    expect(cond(s, 'Degraded').message).toMatch(/hop fw: 4 matching pods got no replica id \(a hop has at most 31\)/);
  });
});

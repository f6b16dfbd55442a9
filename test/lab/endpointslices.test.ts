import type { V1EndpointSlice, V1Pod, V1Service } from '@kubernetes/client-node';
import { endpointGroups, planSlices } from '../../src/lab/endpointslices.js';

// The EndpointSlice controller's planning, as pure functions: which endpoints a Service has, and how existing
// slices become the desired ones (kept in place, filled, split at the limit, placeholders).

const svc: V1Service = { metadata: { name: 'web', namespace: 'ns', uid: 'svc-uid', labels: { team: 'a' } }, spec: { selector: { app: 'web' }, ports: [{ name: 'http', port: 80, targetPort: 'http', protocol: 'TCP' }] } };

function pod(name: string, ip: string, opts: { port?: number; ready?: boolean; phase?: string; deleting?: boolean } = {}): V1Pod {
  return {
    metadata: { name, namespace: 'ns', uid: `${name}-uid`, labels: { app: 'web' }, ...(opts.deleting ? { deletionTimestamp: new Date() } : {}) },
    spec: { nodeName: 'n1', containers: [{ name: 'c', image: 'i', ports: [{ name: 'http', containerPort: opts.port ?? 8080, protocol: 'TCP' }] }] },
    status: { phase: opts.phase ?? 'Running', podIP: ip, conditions: [{ type: 'Ready', status: opts.ready === false ? 'False' : 'True' }] },
  };
}

describe('EndpointSlice planning', () => {
  it('lists selected pods with an IP that have not finished, with their conditions and resolved ports', () => {
    const groups = endpointGroups(svc, [pod('a', '10.0.0.1'), pod('b', '10.0.0.2', { port: 9090, ready: false }), pod('c', '10.0.0.3', { deleting: true }), pod('d', '10.0.0.4', { phase: 'Succeeded' }), { ...pod('e', ''), status: { phase: 'Pending' } }]);
    expect(groups.map((g) => [g.ports, g.endpoints.map((e) => [e.targetRef?.name, e.conditions])])).toEqual([
      [[{ name: 'http', port: 8080, protocol: 'TCP' }], [['a', { ready: true, serving: true, terminating: false }], ['c', { ready: false, serving: true, terminating: true }]]],
      [[{ name: 'http', port: 9090, protocol: 'TCP' }], [['b', { ready: false, serving: false, terminating: false }]]],
    ]);
  });

  it('creates slices of at most the limit, then updates in place and deletes what is left empty', () => {
    const pods = Array.from({ length: 5 }, (_, i) => pod(`p${i}`, `10.0.0.${i + 1}`));
    const first = planSlices(svc, endpointGroups(svc, pods), [], 2);
    expect(first.create.map((s) => s.endpoints?.length)).toEqual([2, 2, 1]);
    expect(first.create[0]!.metadata).toMatchObject({ generateName: 'web-', labels: { team: 'a', 'kubernetes.io/service-name': 'web', 'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io' } });
    expect(first.create[0]!.metadata!.ownerReferences).toEqual([{ apiVersion: 'v1', kind: 'Service', name: 'web', uid: 'svc-uid', controller: true, blockOwnerDeletion: true }]);
    const existing: V1EndpointSlice[] = first.create.map((s, i) => ({ ...s, metadata: { ...s.metadata, name: `web-${i}` } }));
    expect(planSlices(svc, endpointGroups(svc, pods), existing, 2)).toEqual({ create: [], update: [], delete: [] });
    // p0 goes not ready, p1 and p4 go away: web-0 is updated in place, web-2 is deleted; web-1 is untouched.
    const next = planSlices(svc, endpointGroups(svc, [pod('p0', '10.0.0.1', { ready: false }), pod('p2', '10.0.0.3'), pod('p3', '10.0.0.4')]), existing, 2);
    expect(next.create).toEqual([]);
    expect(next.update.map((s) => [s.metadata?.name, s.endpoints?.map((e) => [e.targetRef?.name, e.conditions?.ready])])).toEqual([['web-0', [['p0', false]]]]);
    expect(next.delete.map((s) => s.metadata?.name)).toEqual(['web-2']);
  });

  it('keeps one empty placeholder slice for a Service without endpoints', () => {
    const plan = planSlices(svc, [], []);
    expect(plan.create.map((s) => [s.endpoints, s.ports])).toEqual([[[], []]]);
    const existing = [{ ...plan.create[0]!, metadata: { ...plan.create[0]!.metadata, name: 'web-x' } }];
    expect(planSlices(svc, [], existing)).toEqual({ create: [], update: [], delete: [] });
  });
});

import { describe, expect, it } from '@jest/globals';
import type { V1NetworkPolicySpec } from '@kubernetes/client-node';
import { PolicyComputation, type PolicyPod } from '../../src/policy/controller/compute.js';
import { compileNetworkPolicy } from '../../src/policy/model/networkpolicy.js';

const pod = (uid: string, namespace: string, labels: Record<string, string>, node: string, ip = `10.0.0.${uid.replace(/\D/g, '') || 1}`): PolicyPod => ({ uid, namespace, name: uid, labels, ip, node, namedPorts: [] });
const np = (c: PolicyComputation, uid: string, namespace: string, spec: V1NetworkPolicySpec): string => {
  const compiled = compileNetworkPolicy({ metadata: { namespace, name: uid, uid }, spec });
  c.upsertPolicy(compiled.policy, compiled.groups);
  return compiled.policy.appliedTo;
};
const policyNames = (c: PolicyComputation, node: string): string[] => c.policiesOf(node).map((p) => p.ref.name).sort();
const peerIps = (c: PolicyComputation, node: string): Record<string, string[]> => Object.fromEntries([...c.peerGroupsOf(node)].map(([k, pods]) => [k, pods.map((p) => p.ip).sort()]));

describe('policy computation', () => {
  it('sends each node only the policies of its pods, with the peer groups they name', () => {
    const c = new PolicyComputation();
    c.upsertNamespace('x', { ns: 'x' });
    c.upsertNamespace('y', { ns: 'y' });
    c.upsertPod(pod('p1', 'x', { app: 'web' }, 'n1'));
    c.upsertPod(pod('p2', 'x', { app: 'db' }, 'n2'));
    c.upsertPod(pod('p3', 'y', { app: 'web' }, 'n3'));
    // Each node hears that its pods were taken into account.
    expect(c.drain().nodes).toEqual(new Set(['n1', 'n2', 'n3']));
    expect([...c.podsOn('n2')]).toEqual(['p2']);
    np(c, 'web', 'x', { podSelector: { matchLabels: { app: 'web' } }, ingress: [{ _from: [{ namespaceSelector: { matchLabels: { ns: 'y' } } }] }] });
    expect(c.drain().nodes).toEqual(new Set(['n1']));
    expect(policyNames(c, 'n1')).toEqual(['web']);
    expect(policyNames(c, 'n2')).toEqual([]);
    expect(Object.values(peerIps(c, 'n1'))).toEqual([['10.0.0.3']]);
    expect(c.appliedOn('web', 'n1').map((p) => p.uid)).toEqual(['p1']);
  });

  it('follows pod and namespace label changes, pod moves and deletions', () => {
    const c = new PolicyComputation();
    c.upsertNamespace('x', {});
    c.upsertNamespace('y', { team: 'a' });
    c.upsertPod(pod('p1', 'x', { app: 'web' }, 'n1'));
    c.upsertPod(pod('p2', 'y', {}, 'n2'));
    np(c, 'web', 'x', { podSelector: { matchLabels: { app: 'web' } }, ingress: [{ _from: [{ namespaceSelector: { matchLabels: { team: 'a' } } }] }] });
    c.drain();
    // The peer's namespace loses its label: n1 (which enforces the policy) hears, its peer group empties.
    c.upsertNamespace('y', {});
    expect(c.drain().nodes).toEqual(new Set(['n1']));
    expect(Object.values(peerIps(c, 'n1'))).toEqual([[]]);
    // Another pod becomes a web pod on n3: the policy spans n1 and n3.
    c.upsertPod(pod('p4', 'x', { app: 'web' }, 'n3'));
    expect(c.drain().nodes).toEqual(new Set(['n3']));
    expect(c.spanOf('web')).toEqual(new Set(['n1', 'n3']));
    // p1 stops being a web pod: n1 drops the policy.
    c.upsertPod(pod('p1', 'x', { app: 'other' }, 'n1'));
    expect(c.drain().nodes).toEqual(new Set(['n1']));
    expect(policyNames(c, 'n1')).toEqual([]);
    // p4 moves (deleted and recreated elsewhere): n3 drops it, n2 takes it.
    c.deletePod('p4');
    c.upsertPod(pod('p5', 'x', { app: 'web' }, 'n2'));
    expect(c.drain().nodes).toEqual(new Set(['n2', 'n3']));
    expect(c.spanOf('web')).toEqual(new Set(['n2']));
  });

  it('shares groups between policies, and forgets them with the last policy', () => {
    const c = new PolicyComputation();
    c.upsertNamespace('x', {});
    c.upsertPod(pod('p1', 'x', { app: 'web' }, 'n1'));
    const a = np(c, 'a', 'x', { podSelector: { matchLabels: { app: 'web' } } });
    const b = np(c, 'b', 'x', { podSelector: { matchLabels: { app: 'web' } }, policyTypes: ['Egress'] });
    expect(a).toBe(b);
    c.drain();
    expect(c.size.groups).toBe(1);
    c.deletePolicy('a');
    expect(c.drain().nodes).toEqual(new Set(['n1']));
    expect(policyNames(c, 'n1')).toEqual(['b']);
    c.deletePolicy('b');
    c.drain();
    expect(c.size.groups).toBe(0);
    expect(policyNames(c, 'n1')).toEqual([]);
  });

  it('leaves groups alone when a pod update changes neither its address nor its named ports', () => {
    const c = new PolicyComputation();
    c.upsertNamespace('x', {});
    c.upsertPod(pod('p1', 'x', { app: 'web' }, 'n1'));
    c.upsertPod(pod('p2', 'x', { app: 'client' }, 'n2', '10.0.0.2'));
    np(c, 'web', 'x', { podSelector: { matchLabels: { app: 'web' } }, ingress: [{ _from: [{ podSelector: { matchLabels: { app: 'client' } } }] }] });
    c.drain();
    // The same pod again (a status update, say), with equal but new named-port objects: nobody hears.
    c.upsertPod({ ...pod('p2', 'x', { app: 'client' }, 'n2', '10.0.0.2'), namedPorts: [] });
    expect(c.drain().nodes).toEqual(new Set());
    // Deleting a policy forgets its groups; the pod that was in them can still go without trouble.
    c.deletePolicy('web');
    c.deletePod('p2');
    expect(c.drain().nodes).toEqual(new Set(['n1', 'n2']));
    expect([...c.podsOn('n2')]).toEqual([]);
    expect(c.size.groups).toBe(0);
  });

  it('tells the nodes that use a peer group when a member changes address', () => {
    const c = new PolicyComputation();
    c.upsertNamespace('x', {});
    c.upsertPod(pod('p1', 'x', { app: 'web' }, 'n1'));
    c.upsertPod(pod('p2', 'x', { app: 'client' }, 'n2', ''));
    np(c, 'web', 'x', { podSelector: { matchLabels: { app: 'web' } }, ingress: [{ _from: [{ podSelector: { matchLabels: { app: 'client' } } }] }] });
    c.drain();
    expect(Object.values(peerIps(c, 'n1'))).toEqual([[]]);
    c.upsertPod(pod('p2', 'x', { app: 'client' }, 'n2', '10.0.0.2'));
    expect(c.drain().nodes).toEqual(new Set(['n1']));
    expect(Object.values(peerIps(c, 'n1'))).toEqual([['10.0.0.2']]);
  });

  it('gives the nodes that keep an updated policy its new peer groups, and takes the old ones away', () => {
    const c = new PolicyComputation();
    c.upsertNamespace('x', { ns: 'x' });
    c.upsertNamespace('y', { ns: 'y' });
    c.upsertNamespace('z', { ns: 'z' });
    c.upsertPod(pod('web', 'x', { app: 'web' }, 'n1'));
    c.upsertPod(pod('py', 'y', {}, 'n2', '10.0.0.2'));
    c.upsertPod(pod('pz', 'z', {}, 'n2', '10.0.0.3'));
    np(c, 'web', 'x', { podSelector: { matchLabels: { app: 'web' } }, ingress: [{ _from: [{ namespaceSelector: { matchLabels: { ns: 'y' } } }] }] });
    c.drain();
    expect(Object.values(peerIps(c, 'n1'))).toEqual([['10.0.0.2']]);
    np(c, 'web', 'x', { podSelector: { matchLabels: { app: 'web' } }, ingress: [{ _from: [{ namespaceSelector: { matchLabels: { ns: 'z' } } }] }] });
    expect(c.drain().nodes).toEqual(new Set(['n1']));
    expect(policyNames(c, 'n1')).toEqual(['web']);
    expect(Object.values(peerIps(c, 'n1'))).toEqual([['10.0.0.3']]);
  });
});

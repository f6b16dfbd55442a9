import { describe, expect, it } from '@jest/globals';
import type { V1NetworkPolicySpec } from '@kubernetes/client-node';
import { PolicyComputation, type PolicyPod } from '../../src/policy/controller/compute.js';
import { NodeShares, type EncodedShare, type ShareMessage } from '../../src/policy/controller/shares.js';
import { compileNetworkPolicy } from '../../src/policy/model/networkpolicy.js';

const pod = (uid: string, labels: Record<string, string>, node: string, ip: string): PolicyPod => ({ uid, namespace: 'x', name: uid, labels, ip, node, namedPorts: [] });
const summary = (share: EncodedShare): string[] =>
  (JSON.parse(share.json) as ShareMessage[]).map((m) =>
    m.kind === 'pods'
      ? `pods ${m.value.uids.join(',')}`
      : m.kind === 'group'
        ? `group ${m.value ? `= ${m.value.members.map((x) => x.ip).join(',')}` : 'removed'}`
        : `policy ${m.uid} ${m.value ? `on ${m.value.pods.map((p) => p.uid).join(',')}` : 'removed'}`,
  );

describe('node shares', () => {
  it('sends a full share, then only changes, groups before the policies that name them', () => {
    const c = new PolicyComputation();
    const shares = new NodeShares(c);
    c.upsertNamespace('x', {});
    c.upsertPod(pod('web', { app: 'web' }, 'n1', '10.0.0.1'));
    c.upsertPod(pod('client', { app: 'client' }, 'n2', '10.0.0.2'));
    const add = (uid: string, spec: V1NetworkPolicySpec): void => {
      const x = compileNetworkPolicy({ metadata: { namespace: 'x', name: uid, uid }, spec });
      c.upsertPolicy(x.policy, x.groups);
    };
    add('p', { podSelector: { matchLabels: { app: 'web' } }, ingress: [{ _from: [{ podSelector: { matchLabels: { app: 'client' } } }] }] });
    c.drain();
    expect(summary(shares.snapshot('n1'))).toEqual(['group = 10.0.0.2', 'policy p on web', 'pods web']);
    expect(summary(shares.snapshot('n2'))).toEqual(['pods client']);
    expect(summary(shares.update('n1'))).toEqual([]);
    // A new client: only the group changes for n1.
    c.upsertPod(pod('client2', { app: 'client' }, 'n2', '10.0.0.3'));
    c.drain();
    expect(summary(shares.update('n1'))).toEqual(['group = 10.0.0.2,10.0.0.3']);
    // The policy goes: the policy first, then its group.
    c.deletePolicy('p');
    c.drain();
    expect(summary(shares.update('n1'))).toEqual(['policy p removed', 'group removed']);
    // A reconnecting node gets everything it needs again (here: only its pod list).
    expect(summary(shares.snapshot('n1'))).toEqual(['pods web']);
    // A new pod on n1 that no policy applies to: n1 hears only that it was taken into account.
    c.upsertPod(pod('other', {}, 'n1', '10.0.0.4'));
    expect([...c.drain().nodes]).toEqual(['n1']);
    expect(summary(shares.update('n1'))).toEqual(['pods other,web']);
  });
});

import { describe, expect, it } from '@jest/globals';
import type { V1NetworkPolicySpec } from '@kubernetes/client-node';
import { PolicyComputation, type PolicyPod } from '../../src/policy/controller/compute.js';
import { NodeShares, type EncodedShare, type ShareMessage } from '../../src/policy/controller/shares.js';
import { compileNetworkPolicy } from '../../src/policy/model/networkpolicy.js';

const pod = (uid: string, labels: Record<string, string>, node: string, ip: string): PolicyPod => ({ uid, namespace: 'x', name: uid, labels, ip, node, namedPorts: [] });
const summary = (share: EncodedShare): string[] =>
  (JSON.parse(share.json) as ShareMessage[]).map((m) => (m.kind === 'group' ? `group ${m.value ? `= ${m.value.members.map((x) => x.ip).join(',')}` : 'removed'}` : `policy ${m.uid} ${m.value ? `on ${m.value.pods.map((p) => p.uid).join(',')}` : 'removed'}`));

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
    expect(summary(shares.snapshot('n1'))).toEqual(['group = 10.0.0.2', 'policy p on web']);
    expect(summary(shares.snapshot('n2'))).toEqual([]);
    expect(summary(shares.update('n1'))).toEqual([]);
    // A new client: only the group changes for n1.
    c.upsertPod(pod('client2', { app: 'client' }, 'n2', '10.0.0.3'));
    c.drain();
    expect(summary(shares.update('n1'))).toEqual(['group = 10.0.0.2,10.0.0.3']);
    // The policy goes: the policy first, then its group.
    c.deletePolicy('p');
    c.drain();
    expect(summary(shares.update('n1'))).toEqual(['policy p removed', 'group removed']);
    // A reconnecting node gets everything it needs again (here: nothing).
    expect(summary(shares.snapshot('n1'))).toEqual([]);
  });
});

// The controller's MultiNetworkPolicy part as data (pure): policies compiled per network Seine can enforce, the
// others said with why; pods' entries on their secondary networks with their addresses there; NADs that come,
// change or go recompile the policies that name them.
import type { V1Pod } from '@kubernetes/client-node';
import type { MultiNetworkPolicy } from '../../src/policy/api/multinetworkpolicy.js';
import { PolicyComputation } from '../../src/policy/controller/compute.js';
import { policyPod } from '../../src/policy/controller/controller.js';
import { enforcedCondition, MultiNetworkPolicies } from '../../src/policy/controller/multi-network.js';
import { networkMemberUid, networkPolicyUid } from '../../src/policy/model/network-uid.js';
import type { NetworkAttachmentDefinition } from '../../src/secondary/nad/index.js';

const nad = (name: string, config: object): NetworkAttachmentDefinition => ({ metadata: { name, namespace: 'default' }, spec: { config: JSON.stringify({ cniVersion: '1.0.0', ...config }) } });
const VLAN = nad('vlan100', { type: 'seine', networkType: 'vlan', vlan: 100, ipam: { type: 'static' } });
const MACVLAN = nad('mv', { type: 'macvlan', master: 'eth1', ipam: { type: 'host-local', ranges: [[{ subnet: '10.77.0.0/24' }]] } });

const policy = (policyFor: string | undefined, generation = 1): MultiNetworkPolicy => ({
  metadata: { name: 'p', namespace: 'x', uid: 'mnp-1', generation, ...(policyFor !== undefined ? { annotations: { 'k8s.v1.cni.cncf.io/policy-for': policyFor } } : {}) },
  spec: { podSelector: { matchLabels: { app: 'web' } }, policyTypes: ['Ingress'], ingress: [{ from: [{ podSelector: { matchLabels: { app: 'client' } } }] }] },
});

const pod = (name: string, app: string, networks: string | undefined, status: object[] = []): V1Pod => ({
  metadata: {
    name,
    namespace: 'x',
    uid: `uid-${name}`,
    labels: { app },
    annotations: { ...(networks ? { 'k8s.v1.cni.cncf.io/networks': networks } : {}), 'k8s.v1.cni.cncf.io/network-status': JSON.stringify(status) },
  },
  spec: { nodeName: 'n1', containers: [{ name: 'c' }] },
  status: { phase: 'Running', podIP: `10.244.0.${name.length}` },
});

function setup(): { c: PolicyComputation; m: MultiNetworkPolicies; add: (p: V1Pod) => void } {
  const c = new PolicyComputation();
  c.upsertNamespace('x', {});
  const m = new MultiNetworkPolicies(c);
  return { c, m, add: (p) => (c.upsertPod(policyPod(p)!), m.upsertPod(p, policyPod(p))) };
}

describe('controller: MultiNetworkPolicies', () => {
  it('compiles a part per enforceable network and says why the others are not enforced', () => {
    const { c, m } = setup();
    m.upsertNad(VLAN);
    m.upsertNad(MACVLAN);
    m.upsertPolicy(policy('default/vlan100, default/mv, default/missing'));
    const state = m.states.get('mnp-1')!;
    expect([...state.parts.keys()]).toEqual(['default/vlan100']);
    expect(c.policy(networkPolicyUid('mnp-1', 'default/vlan100'))?.network).toBe('default/vlan100');
    expect([...state.unenforced.keys()].sort()).toEqual(['default/missing', 'default/mv']);
    expect(state.unenforced.get('default/mv')).toMatch(/delegated macvlan network/);
    expect(state.unenforced.get('default/missing')).toMatch(/no such NetworkAttachmentDefinition/);
    const cond = enforcedCondition(state, undefined, new Date(0));
    expect(cond).toEqual(expect.objectContaining({ status: 'False', reason: 'NotEnforced', observedGeneration: 1 }));
    expect(cond.message).toMatch(/^enforced on default\/vlan100; not on: /);
  });

  it('a policy without policy-for applies to nothing, and says so', () => {
    const { m } = setup();
    m.upsertPolicy(policy(undefined));
    const state = m.states.get('mnp-1')!;
    expect(state.parts.size).toBe(0);
    expect(state.problems).toEqual([expect.stringContaining('no k8s.v1.cni.cncf.io/policy-for annotation')]);
  });

  it('a NAD that comes later is enforced then; one that goes takes its part away', () => {
    const { c, m } = setup();
    m.upsertPolicy(policy('default/vlan100'));
    expect(m.states.get('mnp-1')!.parts.size).toBe(0);
    m.upsertNad(VLAN);
    expect([...m.states.get('mnp-1')!.parts.keys()]).toEqual(['default/vlan100']);
    m.deleteNad(VLAN);
    expect(m.states.get('mnp-1')!.parts.size).toBe(0);
    expect(c.policy(networkPolicyUid('mnp-1', 'default/vlan100'))).toBeUndefined();
  });

  it('gives each pod an entry per secondary network it asks for, with its address there, in that network\'s groups only', () => {
    const { c, m, add } = setup();
    m.upsertNad(VLAN);
    m.upsertPolicy(policy('default/vlan100'));
    add(pod('web', 'web', 'default/vlan100', [{ name: 'seine', ips: ['10.244.0.3'], default: true }, { name: 'default/vlan100', interface: 'net1', ips: ['10.100.0.3'] }]));
    add(pod('client', 'client', 'default/vlan100', [{ name: 'default/vlan100', interface: 'net1', ips: ['10.100.0.4'] }]));
    add(pod('plain', 'client', undefined));
    c.drain();
    const part = networkPolicyUid('mnp-1', 'default/vlan100');
    expect(c.appliedOn(part, 'n1').map((p) => p.uid)).toEqual([networkMemberUid('uid-web', 'default/vlan100')]);
    const peers = c.peerGroupsOf('n1');
    expect([...peers.values()].flat().map((p) => p.ip)).toEqual(['10.100.0.4']);
    // The pod leaves the network: its entry goes.
    add(pod('client', 'client', undefined));
    c.drain();
    expect([...c.peerGroupsOf('n1').values()].flat()).toEqual([]);
  });

  it('refuses an invalid policy as a whole', () => {
    const { m } = setup();
    m.upsertNad(VLAN);
    const bad = policy('default/vlan100');
    bad.spec.ingress = [{ from: [{ ipBlock: { cidr: 'not-a-cidr' } }] }];
    m.upsertPolicy(bad);
    const state = m.states.get('mnp-1')!;
    expect(state.invalid).toBe(true);
    expect(state.parts.size).toBe(0);
    expect(enforcedCondition(state, undefined, new Date(0))).toEqual(expect.objectContaining({ reason: 'Invalid', message: expect.stringMatching(/^refused: /) }));
  });
});

import type { V1NetworkPolicy, V1NetworkPolicySpec } from '@kubernetes/client-node';
import { describe, expect, it } from '@jest/globals';
import { connectionVerdict, type Endpoint, type World, type WorldPod } from '../../src/policy/model/evaluate.js';
import { groupKey } from '../../src/policy/model/groups.js';
import type { ClusterNetworkPolicy } from '../../src/policy/api/clusternetworkpolicy.js';
import { compileClusterNetworkPolicy } from '../../src/policy/model/clusternetworkpolicy.js';
import { compileNetworkPolicy, policyTypes } from '../../src/policy/model/networkpolicy.js';
import type { PodGroupSpec, Protocol } from '../../src/policy/model/types.js';

// The standard model: namespaces x, y, z (label ns=<name>), pods a, b, c in each (label pod=<name>); pod a serves
// a named port "serve-80" (TCP 80).
const NAMESPACES = ['x', 'y', 'z'];
const PODS: WorldPod[] = NAMESPACES.flatMap((ns, i) =>
  ['a', 'b', 'c'].map((name, j) => ({
    namespace: ns,
    name,
    ip: `10.0.${i}.${j + 10}`,
    labels: { pod: name },
    ...(name === 'a' ? { namedPorts: [{ name: 'serve-80', protocol: 'TCP' as const, port: 80 }] } : {}),
  })),
);

function world(...policies: Array<{ ns: string; spec: V1NetworkPolicySpec } | ClusterNetworkPolicy>): World {
  const groups = new Map<string, PodGroupSpec>();
  const compiled = policies.map((p, i) => {
    const c = 'ns' in p ? compileNetworkPolicy({ metadata: { namespace: p.ns, name: `np-${i}`, uid: `u${i}` }, spec: p.spec }) : compileClusterNetworkPolicy(p);
    for (const [k, g] of c.groups) groups.set(k, g);
    return c.policy;
  });
  return { pods: PODS, namespaceLabels: new Map(NAMESPACES.map((n) => [n, { ns: n }])), policies: compiled, groups };
}

const pod = (id: string): Endpoint => ({ pod: PODS.find((p) => `${p.namespace}/${p.name}` === id)! });

/** The pairs (source -> destination) allowed for a port, as "x/a>y/b" strings, over the 72 pairs of different pods. */
function allowed(w: World, port = 80, protocol: Protocol = 'TCP'): string[] {
  const out: string[] = [];
  for (const s of PODS) for (const d of PODS) if (s !== d && connectionVerdict(w, { pod: s }, { pod: d }, protocol, port).allowed) out.push(`${s.namespace}/${s.name}>${d.namespace}/${d.name}`);
  return out;
}
const id = (p: WorldPod): string => `${p.namespace}/${p.name}`;
const ALL = PODS.flatMap((s) => PODS.filter((d) => d !== s).map((d) => `${id(s)}>${id(d)}`));
const to = (dst: string): string[] => PODS.filter((s) => id(s) !== dst).map((s) => `${id(s)}>${dst}`);
const from = (src: string): string[] => PODS.filter((d) => id(d) !== src).map((d) => `${src}>${id(d)}`);
const without = (all: string[], ...gone: string[][]): string[] => all.filter((p) => !gone.some((g) => g.includes(p)));

describe('policy model: NetworkPolicy', () => {
  it('allows everything without policies', () => {
    expect(allowed(world())).toEqual(ALL);
  });

  it('isolates selected pods for ingress (no rules: deny all), leaving egress and other namespaces alone', () => {
    const w = world({ ns: 'x', spec: { podSelector: {}, policyTypes: ['Ingress'] } });
    expect(allowed(w)).toEqual(without(ALL, to('x/a'), to('x/b'), to('x/c')));
    // A pod reaching its own address never leaves it: no policy sees that.
    expect(connectionVerdict(w, pod('x/a'), pod('x/a'), 'TCP', 80)).toEqual({ allowed: true, by: 'loopback' });
  });

  it('accepts a podSelector peer from its own namespace only, on the listed port', () => {
    const w = world({ ns: 'x', spec: { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ _from: [{ podSelector: { matchLabels: { pod: 'b' } } }], ports: [{ port: 80 }] }] } });
    expect(allowed(w)).toEqual(without(ALL, to('x/a').filter((p) => p !== 'x/b>x/a')));
    expect(allowed(w, 81)).toEqual(without(ALL, to('x/a')));
    // Protocol defaults to TCP: UDP 80 is not listed.
    expect(allowed(w, 80, 'UDP')).toEqual(without(ALL, to('x/a')));
  });

  it('ANDs podSelector and namespaceSelector in one peer, ORs separate peers', () => {
    const and = world({ ns: 'x', spec: { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ _from: [{ namespaceSelector: { matchLabels: { ns: 'y' } }, podSelector: { matchLabels: { pod: 'b' } } }] }] } });
    expect(allowed(and).filter((p) => p.endsWith('>x/a'))).toEqual(['y/b>x/a']);
    const or = world({ ns: 'x', spec: { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ _from: [{ namespaceSelector: { matchLabels: { ns: 'y' } } }, { podSelector: { matchLabels: { pod: 'b' } } }] }] } });
    expect(allowed(or).filter((p) => p.endsWith('>x/a'))).toEqual(['x/b>x/a', 'y/a>x/a', 'y/b>x/a', 'y/c>x/a']);
  });

  it('matches ipBlocks without their excepts, for pods and outside addresses', () => {
    const w = world({ ns: 'x', spec: { podSelector: {}, ingress: [{ _from: [{ ipBlock: { cidr: '10.0.1.0/24', except: ['10.0.1.11/32'] } }] }] } });
    expect(allowed(w).filter((p) => p.endsWith('>x/a'))).toEqual(['y/a>x/a', 'y/c>x/a']);
    expect(connectionVerdict(w, { ip: '10.0.1.99' }, pod('x/a'), 'TCP', 80).allowed).toBe(true);
    expect(connectionVerdict(w, { ip: '192.0.2.1' }, pod('x/a'), 'TCP', 80).allowed).toBe(false);
  });

  it('reads an ingress rule\'s peers as watch events carry them (`from`) and as typed calls return them (`_from`)', () => {
    const raw = { podSelector: {}, ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'b' } } }] }] } as unknown as V1NetworkPolicySpec;
    expect(allowed(world({ ns: 'x', spec: raw })).filter((p) => p.endsWith('>x/a'))).toEqual(['x/b>x/a']);
  });

  it('defaults policyTypes from the presence of egress rules, and resolves named ports on the destination', () => {
    const spec: V1NetworkPolicySpec = { podSelector: { matchLabels: { pod: 'c' } }, egress: [{ ports: [{ port: 'serve-80' }] }] };
    expect(policyTypes({ spec } as V1NetworkPolicy)).toEqual(['Ingress', 'Egress']);
    expect(policyTypes({ spec: { podSelector: {}, egress: [] } } as V1NetworkPolicy)).toEqual(['Ingress']);
    const w = world({ ns: 'z', spec });
    // z/c may reach port 80 only on pods that name it serve-80 (the a's); nobody may reach z/c (Ingress, no rules).
    expect(allowed(w).filter((p) => p.startsWith('z/c>'))).toEqual(['z/c>x/a', 'z/c>y/a', 'z/c>z/a']);
    expect(allowed(w).filter((p) => p.endsWith('>z/c'))).toEqual([]);
    expect(connectionVerdict(w, pod('z/c'), { ip: '192.0.2.1' }, 'TCP', 80).allowed).toBe(false);
  });

  it('adds up several policies on a pod, and an endPort range', () => {
    const w = world(
      { ns: 'x', spec: { podSelector: {}, ingress: [{ _from: [{ podSelector: { matchLabels: { pod: 'b' } } }] }] } },
      { ns: 'x', spec: { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ _from: [{ namespaceSelector: {} }], ports: [{ port: 80, endPort: 90 }] }] } },
    );
    expect(allowed(w, 85).filter((p) => p.endsWith('>x/a'))).toEqual(to('x/a'));
    expect(allowed(w, 91).filter((p) => p.endsWith('>x/a'))).toEqual(['x/b>x/a']);
  });

  it('names a group by its selectors, however they are written', () => {
    const a = groupKey({ namespaceSelector: { matchLabels: { b: '2', a: '1' } }, podSelector: { matchExpressions: [{ key: 'k', operator: 'In', values: ['v2', 'v1'] }] } });
    const b = groupKey({ namespaceSelector: { matchLabels: { a: '1', b: '2' } }, podSelector: { matchExpressions: [{ key: 'k', operator: 'In', values: ['v1', 'v2', 'v1'] }] } });
    expect(a).toBe(b);
    expect(groupKey({ namespace: 'x', podSelector: {} })).toBe(groupKey({ namespace: 'x' }));
    expect(groupKey({ namespaceSelector: {} })).not.toBe(groupKey({ namespace: 'x' }));
  });
});

const cnp = (name: string, spec: ClusterNetworkPolicy['spec']): ClusterNetworkPolicy => ({ metadata: { name, uid: name }, spec });
const nsSel = (ns: string) => ({ matchLabels: { ns } });

describe('policy model: ClusterNetworkPolicy tiers', () => {
  it('Admin Deny wins over a NetworkPolicy that accepts; Admin Accept over one that isolates', () => {
    const np = { ns: 'x', spec: { podSelector: {}, ingress: [{ _from: [{ namespaceSelector: {} }] }] } };
    const deny = cnp('deny-y', { tier: 'Admin', priority: 10, subject: { namespaces: nsSel('x') }, ingress: [{ action: 'Deny', from: [{ namespaces: nsSel('y') }] }] });
    expect(allowed(world(np, deny)).filter((p) => p.endsWith('>x/a'))).toEqual(without(to('x/a'), from('y/a'), from('y/b'), from('y/c')));
    const isolate = { ns: 'x', spec: { podSelector: {}, policyTypes: ['Ingress'] } };
    const accept = cnp('accept-z', { tier: 'Admin', priority: 10, subject: { namespaces: nsSel('x') }, ingress: [{ action: 'Accept', from: [{ pods: { namespaceSelector: nsSel('z'), podSelector: { matchLabels: { pod: 'a' } } } }] }] });
    expect(allowed(world(isolate, accept)).filter((p) => p.endsWith('>x/a'))).toEqual(['z/a>x/a']);
  });

  it('takes rules in priority order, then in written order; Pass hands over to NetworkPolicy, then Baseline', () => {
    const passY = cnp('pass-y', { tier: 'Admin', priority: 5, subject: { namespaces: {} }, ingress: [{ action: 'Pass', from: [{ namespaces: nsSel('y') }] }] });
    const denyAll = cnp('deny-all', { tier: 'Admin', priority: 6, subject: { namespaces: nsSel('x') }, ingress: [{ action: 'Accept', from: [{ pods: { namespaceSelector: {}, podSelector: { matchLabels: { pod: 'b' } } } }] }, { action: 'Deny', from: [{ namespaces: {} }] }] });
    const w = world(passY, denyAll);
    // y passes deny-all (higher precedence); everyone else's b is accepted by its first rule; the rest denied.
    expect(allowed(w).filter((p) => p.endsWith('>x/a'))).toEqual(['x/b>x/a', 'y/a>x/a', 'y/b>x/a', 'y/c>x/a', 'z/b>x/a']);
    // A Baseline Deny for x applies to what passed, as long as no NetworkPolicy selects the pod...
    const baseline = cnp('baseline', { tier: 'Baseline', priority: 0, subject: { namespaces: nsSel('x') }, ingress: [{ action: 'Deny', from: [{ namespaces: nsSel('y') }] }] });
    expect(allowed(world(passY, denyAll, baseline)).filter((p) => p.endsWith('>x/a'))).toEqual(['x/b>x/a', 'z/b>x/a']);
    // ...and a NetworkPolicy that selects it decides instead (here: accepts y/c only).
    const np = { ns: 'x', spec: { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ _from: [{ namespaceSelector: nsSel('y'), podSelector: { matchLabels: { pod: 'c' } } }] }] } };
    expect(allowed(world(passY, denyAll, baseline, np)).filter((p) => p.endsWith('>x/a'))).toEqual(['x/b>x/a', 'y/c>x/a', 'z/b>x/a']);
  });

  it('matches egress networks, protocols with ranges, and named destination ports', () => {
    const w = world(
      cnp('egress', {
        tier: 'Admin',
        priority: 1,
        subject: { pods: { namespaceSelector: nsSel('z'), podSelector: { matchLabels: { pod: 'c' } } } },
        egress: [
          { action: 'Accept', to: [{ networks: ['192.0.2.0/24'] }], protocols: [{ udp: { destinationPort: { range: { start: 50, end: 60 } } } }] },
          { action: 'Accept', to: [{ namespaces: {} }], protocols: [{ destinationNamedPort: 'serve-80' }] },
          { action: 'Deny', to: [{ networks: ['0.0.0.0/0'] }] },
        ],
      }),
    );
    expect(connectionVerdict(w, pod('z/c'), { ip: '192.0.2.7' }, 'UDP', 53).allowed).toBe(true);
    expect(connectionVerdict(w, pod('z/c'), { ip: '192.0.2.7' }, 'UDP', 61).allowed).toBe(false);
    expect(connectionVerdict(w, pod('z/c'), { ip: '192.0.2.7' }, 'TCP', 53).allowed).toBe(false);
    expect(allowed(w).filter((p) => p.startsWith('z/c>'))).toEqual(['z/c>x/a', 'z/c>y/a', 'z/c>z/a']);
    expect(connectionVerdict(w, pod('z/c'), pod('x/a'), 'UDP', 80).by).toBe('ClusterNetworkPolicy egress egress-2');
  });

  it('keys rules by direction and position: their own names are labels, which the API does not make unique', () => {
    const x = compileClusterNetworkPolicy(
      cnp('named', {
        tier: 'Admin',
        priority: 1,
        subject: { namespaces: {} },
        ingress: [
          { name: 'same', action: 'Deny', from: [{ namespaces: {} }] },
          { name: 'same', action: 'Accept', from: [{ namespaces: {} }] },
        ],
        egress: [{ name: 'ingress-0', action: 'Pass', to: [{ namespaces: {} }] }],
      }),
    );
    expect(x.policy.rules.map((r) => [r.name, r.label])).toEqual([
      ['ingress-0', 'same'],
      ['ingress-1', 'same'],
      ['egress-0', 'ingress-0'],
    ]);
  });
});


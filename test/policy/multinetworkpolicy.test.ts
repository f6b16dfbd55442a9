import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from '@jest/globals';
import { parse as parseYaml } from 'yaml';
import { POLICY_FOR_ANNOTATION, type MultiNetworkPolicy, type MultiNetworkPolicySpec } from '../../src/policy/api/multinetworkpolicy.js';
import { multiNetworkPolicySchema } from '../../src/policy/api/multinetworkpolicy-schema.js';
import { groupKey } from '../../src/policy/model/groups.js';
import { compileMultiNetworkPolicy, parsePolicyFor, validateMultiNetworkPolicy } from '../../src/policy/model/multinetworkpolicy.js';
import { networkMemberUid, networkPolicyUid, parseNetworkUid } from '../../src/policy/model/network-uid.js';
import { compileNetworkPolicy } from '../../src/policy/model/networkpolicy.js';

// MultiNetworkPolicy in the policy model: which networks a policy is for, the ids of its per-network parts, its
// compilation (NetworkPolicy's, with every group on the network) and the validation the controller runs.

// Schemas and objects as plain JSON; the checks poke at them freely.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;

const mnp = (spec: MultiNetworkPolicySpec, apiVersion = 'k8s.cni.cncf.io/v1beta2'): MultiNetworkPolicy => ({
  apiVersion,
  kind: 'MultiNetworkPolicy',
  metadata: { namespace: 'x', name: 'p', uid: 'u1', generation: 3, annotations: { [POLICY_FOR_ANNOTATION]: 'vlan100' } },
  spec,
});

describe('policy-for annotation', () => {
  it('names no network when absent, empty or only separators', () => {
    for (const v of [undefined, '', ' ', ' , ,']) expect(parsePolicyFor(v, 'x')).toEqual({ networks: [], problems: [] });
  });

  it('reads "name" as the policy namespace\'s, "ns/name" as given; spaces ignored, duplicates once, sorted', () => {
    expect(parsePolicyFor('macvlan-net1, macvlan-net3,ipvlan-net1', 'x')).toEqual({ networks: ['x/ipvlan-net1', 'x/macvlan-net1', 'x/macvlan-net3'], problems: [] });
    expect(parsePolicyFor(' net1 ,other/net2,  x/net1, net1 , other / net2 ', 'x')).toEqual({ networks: ['other/net2', 'x/net1'], problems: [] });
    expect(parsePolicyFor('vlan.100', 'default').networks).toEqual(['default/vlan.100']);
  });

  it('reports each item that is no network by name, and keeps the good ones', () => {
    const r = parsePolicyFor('good, a/b/c, Bad/net, ns/Net_1, /net, ns/, ns.dot/net', 'x');
    expect(r.networks).toEqual(['x/good']);
    expect(r.problems).toEqual([
      `${POLICY_FOR_ANNOTATION}: "a/b/c" is not a network: write "namespace/name" or "name" (a NetworkAttachmentDefinition of the policy's namespace)`,
      `${POLICY_FOR_ANNOTATION}: "Bad/net": "Bad" is not a valid namespace name (RFC 1123 label: lowercase letters, digits and "-", at most 63)`,
      `${POLICY_FOR_ANNOTATION}: "ns/Net_1": "Net_1" is not a valid NetworkAttachmentDefinition name (RFC 1123 subdomain: lowercase letters, digits, "-" and ".", at most 253)`,
      `${POLICY_FOR_ANNOTATION}: "/net": "" is not a valid namespace name (RFC 1123 label: lowercase letters, digits and "-", at most 63)`,
      `${POLICY_FOR_ANNOTATION}: "ns/": "" is not a valid NetworkAttachmentDefinition name (RFC 1123 subdomain: lowercase letters, digits, "-" and ".", at most 253)`,
      `${POLICY_FOR_ANNOTATION}: "ns.dot/net": "ns.dot" is not a valid namespace name (RFC 1123 label: lowercase letters, digits and "-", at most 63)`,
    ]);
  });
});

describe('per-network ids', () => {
  it('joins uid and network without a "/", and splits them again', () => {
    expect(networkPolicyUid('u1', 'x/vlan100')).toBe('u1@x.vlan100');
    expect(networkMemberUid('pod-uid', 'other/net.with.dots')).toBe('pod-uid@other.net.with.dots');
    // Agent rule keys are `${policyUid}/${rule}`, split at the first '/'.
    const key = `${networkPolicyUid('u1', 'x/vlan100')}/ingress-0`;
    expect(key.slice(0, key.indexOf('/'))).toBe('u1@x.vlan100');
    expect(parseNetworkUid('pod-uid@other.net.with.dots')).toEqual({ uid: 'pod-uid', network: 'other/net.with.dots' });
    expect(parseNetworkUid('0b3e5c1e-2f36-4a54-8d59-53f9d2f4a0c1')).toBeUndefined();
    expect(() => networkPolicyUid('u1', 'vlan100')).toThrow(/"vlan100" is not "namespace\/name"/);
  });
});

describe('compiling a MultiNetworkPolicy', () => {
  const spec: MultiNetworkPolicySpec = {
    podSelector: { matchLabels: { app: 'cnf' } },
    ingress: [{ from: [{ podSelector: { matchLabels: { app: 'client' } } }, { namespaceSelector: { matchLabels: { team: 'a' } } }, { ipBlock: { cidr: '192.168.10.0/24', except: ['192.168.10.1/32'] } }], ports: [{ protocol: 'UDP', port: 5000, endPort: 5010 }] }],
    egress: [{ ports: [{ port: 'sip' }] }],
  };

  it('puts every group, applied-to and peers, on the network, and names the part by policy and network', () => {
    const c = compileMultiNetworkPolicy(mnp(spec), 'x/vlan100');
    expect([...c.groups.values()]).toEqual([
      { network: 'x/vlan100', namespace: 'x', podSelector: { matchLabels: { app: 'cnf' } } },
      { network: 'x/vlan100', namespace: 'x', podSelector: { matchLabels: { app: 'client' } } },
      { network: 'x/vlan100', namespaceSelector: { matchLabels: { team: 'a' } } },
      // Egress to anywhere on a named port: every pod of the network, to resolve the name on.
      { network: 'x/vlan100' },
    ]);
    for (const [k, g] of c.groups) expect(groupKey(g)).toBe(k);
    expect(c.policy).toMatchObject({
      ref: { kind: 'MultiNetworkPolicy', namespace: 'x', name: 'p', uid: 'u1@x.vlan100', network: 'x/vlan100', generation: 3 },
      network: 'x/vlan100',
      tier: 'NetworkPolicy',
      priority: 0,
      isolates: ['Ingress', 'Egress'],
    });
    expect(c.policy.rules.map((r) => [r.name, r.peers, r.ports])).toEqual([
      ['ingress-0', { groups: [...c.groups.keys()].slice(1, 3), ipBlocks: [{ cidr: '192.168.10.0/24', except: ['192.168.10.1/32'] }] }, [{ protocol: 'UDP', port: 5000, endPort: 5010 }]],
      ['egress-0', { any: true, groups: [[...c.groups.keys()][3]], ipBlocks: [] }, [{ protocol: 'TCP', name: 'sip' }]],
    ]);
  });

  it('has group keys of its own: not the pod network\'s for the same selectors, nor another network\'s', () => {
    const onNet = compileMultiNetworkPolicy(mnp(spec), 'x/vlan100');
    const onOther = compileMultiNetworkPolicy(mnp(spec), 'y/vlan100');
    const podNet = compileNetworkPolicy({ metadata: { namespace: 'x', name: 'p', uid: 'u1' }, spec: { ...spec, ingress: [{ _from: spec.ingress![0]!.from, ports: spec.ingress![0]!.ports }] } });
    const keys = (c: typeof podNet): string[] => [...c.groups.keys()];
    expect(keys(podNet)).toHaveLength(4);
    expect(new Set([...keys(podNet), ...keys(onNet), ...keys(onOther)]).size).toBe(12);
    // The pod network's part is untouched: no network anywhere, the same rules.
    expect(JSON.stringify(podNet)).not.toContain('network');
    expect(podNet.policy.rules.map((r) => r.ports)).toEqual(onNet.policy.rules.map((r) => r.ports));
    expect(onOther.policy.ref.uid).toBe('u1@y.vlan100');
  });

  it('defaults policyTypes as NetworkPolicy does, and ignores the rules of a direction it does not isolate', () => {
    const ingressOnly = compileMultiNetworkPolicy(mnp({ podSelector: {}, ingress: [{}] }), 'x/n');
    expect([ingressOnly.policy.isolates, ingressOnly.policy.rules.map((r) => r.name)]).toEqual([['Ingress'], ['ingress-0']]);
    const egressOnly = compileMultiNetworkPolicy(mnp({ podSelector: {}, policyTypes: ['Egress'], ingress: [{}], egress: [{ to: [{ ipBlock: { cidr: '10.0.0.0/8' } }] }] }), 'x/n');
    expect([egressOnly.policy.isolates, egressOnly.policy.rules.map((r) => r.name)]).toEqual([['Egress'], ['egress-0']]);
    // No rules at all: isolated for ingress, everything on the network that selects pods is the applied-to group.
    const none = compileMultiNetworkPolicy(mnp({ podSelector: {} }), 'x/n');
    expect([none.policy.isolates, none.policy.rules, [...none.groups.values()]]).toEqual([['Ingress'], [], [{ network: 'x/n', namespace: 'x' }]]);
  });

  it('reads a numeric port given as a string, with its endPort', () => {
    const c = compileMultiNetworkPolicy(mnp({ podSelector: {}, ingress: [{ ports: [{ protocol: 'TCP', port: '8080', endPort: 8090 }, { protocol: 'SCTP' }] }] }), 'x/n');
    expect(c.policy.rules[0]!.ports).toEqual([{ protocol: 'TCP', port: 8080, endPort: 8090 }, { protocol: 'SCTP' }]);
  });
});

describe('validating a MultiNetworkPolicy', () => {
  const ok: MultiNetworkPolicySpec = {
    podSelector: { matchLabels: { app: 'cnf' }, matchExpressions: [{ key: 'tier', operator: 'In', values: ['a', 'b'] }] },
    policyTypes: ['Ingress', 'Egress'],
    ingress: [{ from: [{ podSelector: {}, namespaceSelector: { matchLabels: { team: 'a' } } }, { ipBlock: { cidr: 'fd00::/64', except: ['fd00::/80'] } }], ports: [{ protocol: 'TCP', port: 80, endPort: 90 }, { port: 'http' }] }],
    egress: [{ to: [{ ipBlock: { cidr: '10.0.0.0/8' } }], ports: [{ protocol: 'UDP' }] }],
  };
  const problemsOf = (spec: Json, apiVersion?: string): string[] => validateMultiNetworkPolicy({ ...mnp(spec, apiVersion), spec });
  const ingress = (rule: Json): Json => ({ podSelector: {}, ingress: [rule] });

  it('finds nothing wrong with a valid policy of either version', () => {
    expect(problemsOf(ok)).toEqual([]);
    const { ingress, ...rest } = ok;
    expect(problemsOf({ ...rest, ingress: [{ ...ingress![0], ports: [{ protocol: 'TCP', port: 80 }] }] }, 'k8s.cni.cncf.io/v1beta1')).toEqual([]);
    expect(problemsOf({ podSelector: {} })).toEqual([]);
  });

  it.each([
    ['no spec', undefined, 'spec: is required'],
    ['no podSelector', { ingress: [] }, 'spec.podSelector: is required'],
    ['an unknown policy type', { podSelector: {}, policyTypes: ['Ingress', 'Both'] }, 'spec.policyTypes[1]: must be one of "Ingress", "Egress" (got "Both")'],
    ['an unknown protocol', ingress({ ports: [{ protocol: 'ICMP' }] }), 'spec.ingress[0].ports[0].protocol: must be one of "TCP", "UDP", "SCTP" (got "ICMP")'],
    ['a port that is neither number nor name', ingress({ ports: [{ port: true }] }), 'spec.ingress[0].ports[0].port: must be integer or string (got true)'],
    ['an ipBlock without cidr', ingress({ from: [{ ipBlock: { except: ['10.0.0.0/8'] } }] }), 'spec.ingress[0].from[0].ipBlock.cidr: is required'],
    ['a selector expression without operator', { podSelector: { matchExpressions: [{ key: 'k' }] } }, 'spec.podSelector.matchExpressions[0].operator: is required'],
    ['a peer with neither selector nor ipBlock', ingress({ from: [{}] }), 'spec.ingress[0].from[0]: Required value: must specify a peer'],
    ['a peer with ipBlock and a selector', { podSelector: {}, egress: [{ to: [{ podSelector: {}, ipBlock: { cidr: '10.0.0.0/8' } }] }] }, 'spec.egress[0].to[0]: Forbidden: may not specify both ipBlock and another peer'],
    ['a cidr that is no CIDR', ingress({ from: [{ ipBlock: { cidr: '10.0.0.0/33' } }] }), 'spec.ingress[0].from[0].ipBlock.cidr: Invalid value: "10.0.0.0/33": must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)'],
    ['an address for a cidr', ingress({ from: [{ ipBlock: { cidr: '10.0.0.1' } }] }), 'spec.ingress[0].from[0].ipBlock.cidr: Invalid value: "10.0.0.1": must be a valid CIDR value'],
    ['an except outside cidr', ingress({ from: [{ ipBlock: { cidr: '10.0.0.0/8', except: ['11.0.0.0/16'] } }] }), 'spec.ingress[0].from[0].ipBlock.except[0]: Invalid value: "11.0.0.0/16": must be a strict subset of `cidr`'],
    ['an except as large as cidr', ingress({ from: [{ ipBlock: { cidr: '10.0.0.0/8', except: ['10.0.0.0/8'] } }] }), 'spec.ingress[0].from[0].ipBlock.except[0]: Invalid value: "10.0.0.0/8": must be a strict subset of `cidr`'],
    ['an except of the other family', ingress({ from: [{ ipBlock: { cidr: '10.0.0.0/8', except: ['fd00::/64'] } }] }), 'spec.ingress[0].from[0].ipBlock.except[0]: Invalid value: "fd00::/64": must be a strict subset of `cidr`'],
    ['endPort below port', ingress({ ports: [{ port: 90, endPort: 80 }] }), 'spec.ingress[0].ports[0].endPort: Invalid value: 80: must be greater than or equal to `port`'],
    ['endPort with a named port', ingress({ ports: [{ port: 'http', endPort: 80 }] }), 'spec.ingress[0].ports[0].endPort: Invalid value: 80: may not be specified when `port` is non-numeric'],
    ['endPort without port', ingress({ ports: [{ endPort: 80 }] }), 'spec.ingress[0].ports[0].endPort: Invalid value: 80: may not be specified when `port` is not specified'],
    ['port 0', ingress({ ports: [{ port: 0 }] }), 'spec.ingress[0].ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive'],
    ['a port name that is no IANA service name', ingress({ ports: [{ port: 'Not_A_Name' }] }), 'spec.ingress[0].ports[0].port: Invalid value: "Not_A_Name": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)'],
    ['an unknown selector operator', { podSelector: { matchExpressions: [{ key: 'k', operator: 'Has' }] } }, 'spec.podSelector.matchExpressions[0].operator: Invalid value: "Has": not a valid selector operator'],
    ['In without values', { podSelector: { matchExpressions: [{ key: 'k', operator: 'In' }] } }, "spec.podSelector.matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'"],
    ['a bad label key', { podSelector: { matchLabels: { 'bad key': 'v' } } }, 'spec.podSelector.matchLabels: Invalid value: "bad key"'],
  ])('refuses %s', (_what, spec, problem) => {
    const got = problemsOf(spec);
    expect(got.length).toBeGreaterThan(0);
    expect(got.some((p) => p.startsWith(problem))).toBe(true);
  });

  it('reports every schema problem at once', () => {
    expect(problemsOf({ policyTypes: ['X'], ingress: [{ ports: [{ protocol: 'ICMP' }] }] })).toEqual([
      'spec.podSelector: is required',
      'spec.policyTypes[0]: must be one of "Ingress", "Egress" (got "X")',
      'spec.ingress[0].ports[0].protocol: must be one of "TCP", "UDP", "SCTP" (got "ICMP")',
    ]);
  });
});

describe('the schema the controller validates with', () => {
  const withoutDescriptions = (v: Json): Json =>
    Array.isArray(v) ? v.map(withoutDescriptions) : v && typeof v === 'object' ? Object.fromEntries(Object.entries(v).filter(([k]) => k !== 'description').map(([k, x]) => [k, withoutDescriptions(x)])) : v;
  const crd = parseYaml(readFileSync(resolve('crds/multi-networkpolicy.yaml'), 'utf8')) as Json;

  it.each(['v1beta1', 'v1beta2'] as const)('is the CRD\'s %s schema', (version) => {
    const served = crd.spec.versions.find((v: Json) => v.name === version);
    expect(withoutDescriptions(served.schema.openAPIV3Schema)).toEqual(multiNetworkPolicySchema(version));
  });

  it('has endPort in v1beta2 only', () => {
    const text = (version: 'v1beta1' | 'v1beta2'): string => JSON.stringify(multiNetworkPolicySchema(version));
    expect(text('v1beta1')).not.toContain('endPort');
    expect(text('v1beta2').match(/"endPort"/g)).toHaveLength(2);
  });
});

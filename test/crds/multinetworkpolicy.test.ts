import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { CRDS_DIR, installCrds, kubectlOk, startCluster, type Cluster } from './helpers.js';

// The MultiNetworkPolicy CRD (crds/multi-networkpolicy.yaml) applied with the stock kubectl to the embedded API
// server: upstream's names, both versions served (v1beta2 the storage version, so an endPort written through it is
// kept), what each version refuses, and the status subresource Seine reports on.

// Objects straight from kubectl's JSON; the checks poke at them freely.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;

const POLICY_FOR = 'k8s.v1.cni.cncf.io/policy-for';
const mnp = (version: string, name: string, spec: unknown, networks = 'vlan100, other/net2'): string =>
  JSON.stringify({ apiVersion: `k8s.cni.cncf.io/${version}`, kind: 'MultiNetworkPolicy', metadata: { name, namespace: 'default', annotations: { [POLICY_FOR]: networks } }, ...(spec === undefined ? {} : { spec }) });

const V1BETA1_SPEC = {
  podSelector: { matchLabels: { app: 'cnf' } },
  policyTypes: ['Ingress', 'Egress'],
  ingress: [
    {
      from: [{ podSelector: { matchExpressions: [{ key: 'role', operator: 'In', values: ['client'] }] }, namespaceSelector: {} }, { ipBlock: { cidr: '192.168.10.0/24', except: ['192.168.10.1/32'] } }],
      ports: [{ protocol: 'UDP', port: 5000 }, { port: 'sip' }],
    },
  ],
  egress: [{ to: [{ ipBlock: { cidr: 'fd00::/64' } }], ports: [{ protocol: 'SCTP' }] }],
};
const V1BETA2_SPEC = { podSelector: {}, ingress: [{ ports: [{ protocol: 'TCP', port: 8000, endPort: 8100 }] }], egress: [{ ports: [{ port: 53, endPort: 54, protocol: 'UDP' }] }] };
const endPortIn = (): Json => ({ podSelector: {}, ingress: [{ ports: [{ port: 80, endPort: 90 }] }] });

describe('MultiNetworkPolicy CRD', () => {
  let c: Cluster;
  beforeAll(async () => {
    c = await startCluster('seine-mnp-');
    await installCrds(c);
  });
  afterAll(async () => {
    await c?.close();
  });

  const ok = (args: string[], input?: string): Promise<string> => kubectlOk(c, args, input);
  const getSpec = async (name: string, version: string): Promise<Json> => JSON.parse(await ok(['get', `multi-networkpolicies.${version}.k8s.cni.cncf.io`, name, '-o', 'json'])).spec;
  const refused = async (input: string): Promise<string> => {
    const r = await c.kubectl(['apply', '-f', '-'], input);
    expect([r.code, r.stdout]).toEqual([1, '']);
    return r.stderr;
  };

  it('is upstream\'s API: group, names, short name, scope; v1beta1 and v1beta2 served, v1beta2 stored', async () => {
    const crd = parseYaml(readFileSync(join(CRDS_DIR, 'multi-networkpolicy.yaml'), 'utf8')) as Json;
    expect(crd.metadata.name).toBe('multi-networkpolicies.k8s.cni.cncf.io');
    expect(crd.spec).toMatchObject({
      group: 'k8s.cni.cncf.io',
      scope: 'Namespaced',
      names: { kind: 'MultiNetworkPolicy', listKind: 'MultiNetworkPolicyList', plural: 'multi-networkpolicies', singular: 'multi-networkpolicy', shortNames: ['multi-policy'] },
      conversion: { strategy: 'None' },
      versions: [
        { name: 'v1beta1', served: true, storage: false, subresources: { status: {} } },
        { name: 'v1beta2', served: true, storage: true, subresources: { status: {} } },
      ],
    });
    const established = JSON.parse(await ok(['get', 'crd', 'multi-networkpolicies.k8s.cni.cncf.io', '-o', 'json']));
    expect(established.status.storedVersions).toEqual(['v1beta2']);
    expect(await ok(['api-resources', '--api-group=k8s.cni.cncf.io', '--no-headers'])).toMatch(/^multi-networkpolicies\s+multi-policy\s+k8s.cni.cncf.io\/v1beta2\s+true\s+MultiNetworkPolicy$/m);
  });

  it('accepts a v1beta1 policy, served the same at both versions', async () => {
    expect(await ok(['apply', '-f', '-'], mnp('v1beta1', 'beta1', V1BETA1_SPEC))).toBe('multinetworkpolicy.k8s.cni.cncf.io/beta1 created\n');
    expect(await getSpec('beta1', 'v1beta1')).toEqual(V1BETA1_SPEC);
    expect(await getSpec('beta1', 'v1beta2')).toEqual(V1BETA1_SPEC);
    expect(await ok(['apply', '-f', '-'], mnp('v1beta1', 'beta1', V1BETA1_SPEC))).toBe('multinetworkpolicy.k8s.cni.cncf.io/beta1 unchanged\n');
  });

  it('accepts a v1beta2 policy with endPort and keeps it; v1beta1 does not show it', async () => {
    expect(await ok(['apply', '-f', '-'], mnp('v1beta2', 'beta2', V1BETA2_SPEC, 'vlan100'))).toBe('multinetworkpolicy.k8s.cni.cncf.io/beta2 created\n');
    expect(await getSpec('beta2', 'v1beta2')).toEqual(V1BETA2_SPEC);
    // Conversion None, then pruning to the version's schema: endPort is not a v1beta1 field.
    expect(await getSpec('beta2', 'v1beta1')).toEqual({ podSelector: {}, ingress: [{ ports: [{ protocol: 'TCP', port: 8000 }] }], egress: [{ ports: [{ port: 53, protocol: 'UDP' }] }] });
    expect(await ok(['apply', '-f', '-'], mnp('v1beta2', 'beta2', V1BETA2_SPEC, 'vlan100'))).toBe('multinetworkpolicy.k8s.cni.cncf.io/beta2 unchanged\n');
  });

  it('v1beta1 has no endPort: kubectl\'s strict field validation refuses it, without it the field is pruned', async () => {
    expect(await refused(mnp('v1beta1', 'beta1-endport', endPortIn()))).toContain(
      'MultiNetworkPolicy in version "v1beta1" cannot be handled as a MultiNetworkPolicy: strict decoding error: unknown field "spec.ingress[0].ports[0].endPort"',
    );
    expect(await ok(['apply', '--validate=false', '-f', '-'], mnp('v1beta1', 'beta1-endport', endPortIn()))).toBe('multinetworkpolicy.k8s.cni.cncf.io/beta1-endport created\n');
    expect(await getSpec('beta1-endport', 'v1beta2')).toEqual({ podSelector: {}, ingress: [{ ports: [{ port: 80 }] }] });
  });

  it.each([
    ['no spec', undefined, 'spec: Required value'],
    ['no podSelector', { ingress: [] }, 'spec.podSelector: Required value'],
    ['an unknown policy type', { podSelector: {}, policyTypes: ['Ingress', 'Both'] }, 'spec.policyTypes[1]: Unsupported value: "Both": supported values: "Ingress", "Egress"'],
    ['an unknown protocol', { podSelector: {}, egress: [{ ports: [{ protocol: 'ICMP' }] }] }, 'spec.egress[0].ports[0].protocol: Unsupported value: "ICMP": supported values: "TCP", "UDP", "SCTP"'],
    ['an ipBlock without cidr', { podSelector: {}, ingress: [{ from: [{ ipBlock: { except: ['10.0.0.0/8'] } }] }] }, 'spec.ingress[0].from[0].ipBlock.cidr: Required value'],
    ['a selector expression without operator', { podSelector: { matchExpressions: [{ key: 'k' }] } }, 'spec.podSelector.matchExpressions[0].operator: Required value'],
    ['a port that is neither number nor name', { podSelector: {}, ingress: [{ ports: [{ port: true }] }] }, 'spec.ingress[0].ports[0].port'],
    ['a non-integer endPort', { podSelector: {}, ingress: [{ ports: [{ port: 80, endPort: '90' }] }] }, 'spec.ingress[0].ports[0].endPort: Invalid value: "string": spec.ingress[0].ports[0].endPort in body must be of type integer: "string"'],
  ])('refuses %s, at either version', async (_what, spec, line) => {
    for (const version of ['v1beta1', 'v1beta2']) {
      if (version === 'v1beta1' && JSON.stringify(spec ?? {}).includes('endPort')) continue;
      const err = await refused(mnp(version, 'refused', spec));
      expect(err).toMatch(/^The MultiNetworkPolicy "refused" is invalid: /);
      expect(err).toContain(line);
    }
  });

  it('lists with the Networks (policy-for) and Age columns, by plural, short name and versioned name', async () => {
    const [header, ...lines] = (await ok(['get', 'multi-networkpolicies'])).trim().split('\n');
    expect(header!.split(/\s{2,}/)).toEqual(['NAME', 'NETWORKS', 'AGE']);
    expect(lines.map((l) => l.split(/\s{2,}/).slice(0, 2))).toEqual([
      ['beta1', 'vlan100, other/net2'],
      ['beta1-endport', 'vlan100, other/net2'],
      ['beta2', 'vlan100'],
    ]);
    const names = 'multinetworkpolicy.k8s.cni.cncf.io/beta1\nmultinetworkpolicy.k8s.cni.cncf.io/beta1-endport\nmultinetworkpolicy.k8s.cni.cncf.io/beta2\n';
    expect(await ok(['get', 'multi-policy', '-o', 'name'])).toBe(names);
    expect(await ok(['get', 'multi-networkpolicies.v1beta2.k8s.cni.cncf.io', '-o', 'name'])).toBe(names);
    expect(await ok(['get', 'multi-networkpolicies.v1beta1.k8s.cni.cncf.io', '-o', 'name'])).toBe(names);
  });

  it('takes conditions through the status subresource, validated as metav1.Condition', async () => {
    const policies = c.api.resource('k8s.cni.cncf.io/v1beta2', 'multi-networkpolicies');
    const condition = { type: 'Enforced', status: 'False', reason: 'NetworkNotFound', message: 'default/vlan100: enforced; other/net2: no such NetworkAttachmentDefinition', lastTransitionTime: '2025-01-01T00:00:00Z', observedGeneration: 1 };
    const updated = policies.updateStatus({ ...(policies.get('beta1', 'default') as Json), status: { conditions: [condition] } }) as Json;
    expect(updated.status.conditions).toEqual([condition]);
    expect(JSON.parse(await ok(['get', 'multi-policy', 'beta1', '-o', 'json'])).status.conditions).toEqual([condition]);
    const bad = (status: unknown): string => {
      try {
        policies.updateStatus({ ...(policies.get('beta1', 'default') as Json), status });
        return 'accepted';
      } catch (e) {
        return (e as Error).message;
      }
    };
    expect(bad({ conditions: [{ ...condition, status: 'Maybe' }] })).toContain('status.conditions[0].status: Unsupported value: "Maybe": supported values: "True", "False", "Unknown"');
    expect(bad({ conditions: [{ ...condition, reason: '' }] })).toContain('status.conditions[0].reason');
    expect(bad({ conditions: [{ ...condition, lastTransitionTime: 'yesterday' }] })).toContain('status.conditions[0].lastTransitionTime');
    expect(bad({ conditions: [condition, { ...condition, status: 'True' }] })).toContain('status.conditions[1]: Duplicate value: map[string]interface {}{"type":"Enforced"}');
    // Status is not writable through the main resource.
    const spec = await getSpec('beta1', 'v1beta2');
    expect(await ok(['apply', '-f', '-'], JSON.stringify({ ...JSON.parse(mnp('v1beta1', 'beta1', spec)), status: { conditions: [] } }))).toMatch(/unchanged|configured/);
    expect(JSON.parse(await ok(['get', 'multi-policy', 'beta1', '-o', 'json'])).status.conditions).toEqual([condition]);
  });

  it('a status written through v1beta1 rewrites the object as v1beta1 sees it: endPort is lost, as in kube', async () => {
    const old = c.api.resource('k8s.cni.cncf.io/v1beta1', 'multi-networkpolicies');
    const condition = { type: 'Enforced', status: 'True', reason: 'Enforced', message: 'enforced', lastTransitionTime: '2025-01-01T00:00:00Z' };
    old.updateStatus({ ...(old.get('beta2', 'default') as Json), status: { conditions: [condition] } });
    expect(await getSpec('beta2', 'v1beta2')).toEqual({ podSelector: {}, ingress: [{ ports: [{ protocol: 'TCP', port: 8000 }] }], egress: [{ ports: [{ port: 53, protocol: 'UDP' }] }] });
  });
});

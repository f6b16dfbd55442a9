import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { CRDS_DIR, installCrds, kubectlOk, startCluster, type Cluster } from './helpers.js';

// The ClusterNetworkPolicy CRD (crds/clusternetworkpolicy.yaml) accepts and refuses what the upstream
// network-policy-api v0.2.0 standard CRD does: each policy is applied with the stock kubectl to the embedded
// API server, which enforces the schema and its CEL rules as kube-apiserver does, and the test checks the
// acceptance or the refusal a user would read. The cases follow the API's validation markers.

// Objects straight from kubectl's JSON; the checks poke at them freely.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;

const API = 'policy.networking.k8s.io/v1alpha2';
const cnp = (name: string, spec: unknown): string => JSON.stringify({ apiVersion: API, kind: 'ClusterNetworkPolicy', metadata: { name }, spec });

const ALL_PODS = { pods: { namespaceSelector: {}, podSelector: {} } };
const SUBJECT = { namespaces: { matchLabels: { 'kubernetes.io/metadata.name': 'sensitive-ns' } } };
/** A minimal valid policy; each case changes one thing. */
const BASE = { tier: 'Admin', priority: 10, subject: SUBJECT };
const ingress = (rule: Json): Json => ({ ...BASE, ingress: [{ action: 'Deny', from: [ALL_PODS], ...rule }] });
const egress = (rule: Json): Json => ({ ...BASE, egress: [{ action: 'Accept', to: [ALL_PODS], ...rule }] });
const tcpPort = (destinationPort: Json): Json => ingress({ protocols: [{ tcp: { destinationPort } }] });
const networks = (nets: Json): Json => egress({ to: [{ networks: nets }] });

const VALID: Array<[string, Json]> = [
  [
    'cluster-wide-deny',
    { tier: 'Admin', priority: 0, subject: SUBJECT, ingress: [{ action: 'Deny', name: 'select-all-deny-all', from: [{ pods: { namespaceSelector: { matchLabels: {} }, podSelector: { matchLabels: {} } } }] }] },
  ],
  [
    'deny-with-ports',
    ingress({
      protocols: [
        { tcp: { destinationPort: { number: 8080 } } },
        { tcp: { destinationPort: { range: { start: 8080, end: 9090 } } } },
        { udp: { destinationPort: { number: 53 } } },
        { sctp: { destinationPort: { range: { start: 1, end: 65535 } } } },
        { destinationNamedPort: 'http' },
      ],
    }),
  ],
  ['baseline-egress-networks', { ...egress({ to: [{ networks: ['10.0.0.0/8', '192.168.1.1/32', 'fd00::/8', '0.0.0.0/0', '::/0'] }] }), tier: 'Baseline', priority: 1000 }],
  ['pass-to-namespaces', { ...BASE, subject: { pods: { podSelector: { matchLabels: { app: 'db' } } } }, egress: [{ action: 'Pass', to: [{ namespaces: { matchExpressions: [{ key: 'team', operator: 'In', values: ['a', 'b'] }] } }] }] }],
  ['subject-all-namespaces', { tier: 'Baseline', priority: 0, subject: { namespaces: {} } }],
  ['rule-name-of-100', ingress({ name: 'r'.repeat(100) })],
  ['most-rules-and-peers', { ...BASE, ingress: Array.from({ length: 25 }, () => ({ action: 'Deny', from: Array.from({ length: 25 }, () => ALL_PODS) })) }],
  ['most-networks', networks(Array.from({ length: 25 }, (_, i) => `10.${i}.0.0/16`))],
  ['host-bits-set', networks(['10.1.2.3/8'])],
];

const INVALID: Array<[string, Json, string]> = [
  ['an unknown action', ingress({ action: 'Invalid' }), 'spec.ingress[0].action: Unsupported value: "Invalid": supported values: "Accept", "Deny", "Pass"'],
  ['no tier', { priority: 1, subject: SUBJECT }, 'spec.tier: Required value'],
  ['an unknown tier', { ...BASE, tier: 'Developer' }, 'spec.tier: Unsupported value: "Developer": supported values: "Admin", "Baseline"'],
  ['no priority', { tier: 'Admin', subject: SUBJECT }, 'spec.priority: Required value'],
  ['priority above 1000', { ...BASE, priority: 1001 }, 'spec.priority: Invalid value: 1001: spec.priority in body should be less than or equal to 1000'],
  ['a negative priority', { ...BASE, priority: -1 }, 'spec.priority: Invalid value: -1: spec.priority in body should be greater than or equal to 0'],
  ['no subject', { tier: 'Admin', priority: 1 }, 'spec.subject: Required value'],
  ['an empty subject', { ...BASE, subject: {} }, 'spec.subject: Invalid value: "object": spec.subject in body should have at least 1 properties'],
  ['a subject with both fields', { ...BASE, subject: { ...SUBJECT, ...ALL_PODS } }, 'spec.subject: Too many: must have at most 1 items'],
  ['pods without podSelector', { ...BASE, subject: { pods: { namespaceSelector: {} } } }, 'spec.subject.pods.podSelector: Required value'],
  ['an ingress rule without from', { ...BASE, ingress: [{ action: 'Deny' }] }, 'spec.ingress[0].from: Required value'],
  ['an ingress rule with no peers', ingress({ from: [] }), 'spec.ingress[0].from: Invalid value: []interface {}: spec.ingress[0].from in body should have at least 1 items'],
  ['an empty peer', ingress({ from: [{}] }), 'spec.ingress[0].from[0]: Invalid value: "object": spec.ingress[0].from[0] in body should have at least 1 properties'],
  ['a peer with two fields', ingress({ from: [{ ...ALL_PODS, namespaces: {} }] }), 'spec.ingress[0].from[0]: Too many: must have at most 1 items'],
  ['an egress rule without to', { ...BASE, egress: [{ action: 'Accept' }] }, 'spec.egress[0].to: Required value'],
  ['26 ingress rules', { ...BASE, ingress: Array.from({ length: 26 }, () => ({ action: 'Deny', from: [ALL_PODS] })) }, 'spec.ingress: Too many: must have at most 25 items'],
  ['26 peers', ingress({ from: Array.from({ length: 26 }, () => ALL_PODS) }), 'spec.ingress[0].from: Too many: must have at most 25 items'],
  ['a rule name of 101 characters', ingress({ name: 'r'.repeat(101) }), 'spec.ingress[0].name: Too long: may not be more than 100 bytes'],
  ['empty protocols', ingress({ protocols: [] }), 'spec.ingress[0].protocols: Invalid value: []interface {}: spec.ingress[0].protocols in body should have at least 1 items'],
  ['a protocol with two fields', ingress({ protocols: [{ tcp: { destinationPort: { number: 80 } }, udp: { destinationPort: { number: 80 } } }] }), 'spec.ingress[0].protocols[0]: Too many: must have at most 1 items'],
  ['an empty tcp match', ingress({ protocols: [{ tcp: {} }] }), 'spec.ingress[0].protocols[0].tcp: Invalid value: "object": spec.ingress[0].protocols[0].tcp in body should have at least 1 properties'],
  ['port 0', tcpPort({ number: 0 }), 'spec.ingress[0].protocols[0].tcp.destinationPort.number: Invalid value: 0: spec.ingress[0].protocols[0].tcp.destinationPort.number in body should be greater than or equal to 1'],
  ['port 65536', tcpPort({ number: 65536 }), 'spec.ingress[0].protocols[0].tcp.destinationPort.number: Invalid value: 65536: spec.ingress[0].protocols[0].tcp.destinationPort.number in body should be less than or equal to 65535'],
  ['a port with number and range', tcpPort({ number: 80, range: { start: 80, end: 90 } }), 'spec.ingress[0].protocols[0].tcp.destinationPort: Too many: must have at most 1 items'],
  ['a range whose start is its end', tcpPort({ range: { start: 80, end: 80 } }), 'spec.ingress[0].protocols[0].tcp.destinationPort.range: Invalid value: "object": Start port must be less than End port'],
  ['a range that runs backwards', egress({ protocols: [{ udp: { destinationPort: { range: { start: 9090, end: 8080 } } } }] }), 'spec.egress[0].protocols[0].udp.destinationPort.range: Invalid value: "object": Start port must be less than End port'],
  ['a range without end', tcpPort({ range: { start: 80 } }), 'spec.ingress[0].protocols[0].tcp.destinationPort.range.end: Required value'],
  ['a network that is an address', networks(['10.0.0.1']), 'spec.egress[0].to[0].networks[0]: Invalid value: "string": Invalid CIDR format provided'],
  ['a network with prefix 33', networks(['10.0.0.0/8', '10.0.0.0/33']), 'spec.egress[0].to[0].networks[1]: Invalid value: "string": Invalid CIDR format provided'],
  ['a network with leading zeros', networks(['010.0.0.0/8']), 'spec.egress[0].to[0].networks[0]: Invalid value: "string": Invalid CIDR format provided'],
  ['an IPv6 network with prefix 129', networks(['fd00::/129']), 'spec.egress[0].to[0].networks[0]: Invalid value: "string": Invalid CIDR format provided'],
  ['a network longer than 43 characters', networks([`${'0:'.repeat(21)}0/64`]), 'spec.egress[0].to[0].networks[0]: Too long: may not be more than 43 bytes'],
  ['a network listed twice', networks(['10.0.0.0/8', 'fd00::/8', '10.0.0.0/8']), 'spec.egress[0].to[0].networks[2]: Duplicate value: "10.0.0.0/8"'],
  ['no networks', networks([]), 'spec.egress[0].to[0].networks: Invalid value: []interface {}: spec.egress[0].to[0].networks in body should have at least 1 items'],
  ['26 networks', networks(Array.from({ length: 26 }, (_, i) => `10.${i}.0.0/16`)), 'spec.egress[0].to[0].networks: Too many: must have at most 25 items'],
  ['a selector expression without operator', { ...BASE, subject: { namespaces: { matchExpressions: [{ key: 'team' }] } } }, 'spec.subject.namespaces.matchExpressions[0].operator: Required value'],
];

describe('ClusterNetworkPolicy CRD', () => {
  let c: Cluster;
  beforeAll(async () => {
    c = await startCluster('seine-cnp-');
    await installCrds(c);
  });
  afterAll(async () => {
    await c?.close();
  });

  const ok = (args: string[], input?: string): Promise<string> => kubectlOk(c, args, input);

  it('is the upstream API: group, version, names, scope, status subresource, provenance', () => {
    const crd = parseYaml(readFileSync(join(CRDS_DIR, 'clusternetworkpolicy.yaml'), 'utf8')) as Json;
    expect(crd.metadata.annotations).toMatchObject({ 'policy.networking.k8s.io/bundle-version': 'v0.2.0', 'policy.networking.k8s.io/channel': 'standard' });
    expect(crd.spec).toMatchObject({
      group: 'policy.networking.k8s.io',
      scope: 'Cluster',
      names: { kind: 'ClusterNetworkPolicy', listKind: 'ClusterNetworkPolicyList', plural: 'clusternetworkpolicies', singular: 'clusternetworkpolicy', shortNames: ['cnp'] },
      versions: [{ name: 'v1alpha2', served: true, storage: true, subresources: { status: {} } }],
    });
  });

  it.each(VALID)('accepts %s', async (name, spec) => {
    expect(await ok(['apply', '-f', '-'], cnp(name, spec))).toBe(`clusternetworkpolicy.policy.networking.k8s.io/${name} created\n`);
    const got = JSON.parse(await ok(['get', 'cnp', name, '-o', 'json']));
    expect(got.spec).toEqual(spec);
  });

  it.each(INVALID)('refuses %s', async (_what, spec, line) => {
    const r = await c.kubectl(['apply', '-f', '-'], cnp('refused', spec));
    expect([r.code, r.stdout]).toEqual([1, '']);
    expect(r.stderr).toMatch(/^The ClusterNetworkPolicy "refused" is invalid: /);
    expect(r.stderr).toContain(line);
  });

  it('refuses the experimental channel\'s peers and fields of other peers, as unknown fields', async () => {
    const r = await c.kubectl(['apply', '-f', '-'], cnp('refused', egress({ to: [{ nodes: {} }, { domainNames: ['example.com'] }] })));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('strict decoding error: unknown field "spec.egress[0].to[0].nodes", unknown field "spec.egress[0].to[1].domainNames"');
    const ing = await c.kubectl(['apply', '-f', '-'], cnp('refused', ingress({ from: [{ networks: ['10.0.0.0/8'] }] })));
    expect(ing.stderr).toContain('unknown field "spec.ingress[0].from[0].networks"');
  });

  it('a port range refused by its CEL rule is refused on update too, and nothing invalid was stored', async () => {
    const spec = JSON.parse(await ok(['get', 'cnp', 'deny-with-ports', '-o', 'json'])).spec;
    spec.ingress[0].protocols[1].tcp.destinationPort.range = { start: 9090, end: 8080 };
    const r = await c.kubectl(['apply', '-f', '-'], cnp('deny-with-ports', spec));
    expect(r.stderr).toContain('spec.ingress[0].protocols[1].tcp.destinationPort.range: Invalid value: "object": Start port must be less than End port');
    expect((await ok(['get', 'cnp', '-o', 'name'])).trim().split('\n')).toEqual(VALID.map(([n]) => `clusternetworkpolicy.policy.networking.k8s.io/${n}`).sort());
  });

  it('lists with the Tier, Priority and Age columns', async () => {
    const [header, ...lines] = (await ok(['get', 'cnp'])).trim().split('\n');
    expect(header!.split(/\s+/)).toEqual(['NAME', 'TIER', 'PRIORITY', 'AGE']);
    expect(lines.find((l) => l.startsWith('baseline-egress-networks '))!.split(/\s+/).slice(0, 3)).toEqual(['baseline-egress-networks', 'Baseline', '1000']);
  });

  it('validates status conditions through the status subresource', async () => {
    const cnps = c.api.resource(API, 'clusternetworkpolicies');
    const obj = cnps.get('cluster-wide-deny') as Json;
    const condition = { type: 'Ready', status: 'True', reason: 'Enforced', message: 'enforced on every node', lastTransitionTime: '2025-01-01T00:00:00Z' };
    expect((cnps.updateStatus({ ...obj, status: { conditions: [condition] } }) as Json).status.conditions).toEqual([condition]);
    const bad = (status: unknown): string => {
      try {
        cnps.updateStatus({ ...(cnps.get('cluster-wide-deny') as Json), status });
        return 'accepted';
      } catch (e) {
        return (e as Error).message;
      }
    };
    expect(bad({})).toContain('status.conditions: Required value');
    expect(bad({ conditions: [{ ...condition, status: 'Maybe' }] })).toContain('status.conditions[0].status: Unsupported value: "Maybe": supported values: "True", "False", "Unknown"');
    expect(bad({ conditions: [{ ...condition, reason: '' }] })).toContain('status.conditions[0].reason');
    expect(bad({ conditions: [{ ...condition, lastTransitionTime: 'yesterday' }] })).toContain('status.conditions[0].lastTransitionTime');
    expect(bad({ conditions: [condition, { ...condition, status: 'False' }] })).toContain('status.conditions[1]: Duplicate value: map[string]interface {}{"type":"Ready"}');
  });
});

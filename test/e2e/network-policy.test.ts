// NetworkPolicy and ClusterNetworkPolicy conformance on the standard model (namespaces x, y, z; pods a, b, c in
// each; TCP and UDP on 80 and 81) in a 3-node lab: each case is applied with kubectl as a user would, the full
// 9x9 table on both ports and protocols is probed with real packets and compared with the policy model, then the
// case is deleted and everything must be allowed again before the next one.
// Namespace names and labels are quoted in the YAML: kubectl reads YAML 1.1, where a bare y is a boolean.
import { PolicyMatrix, type PodKey } from '../harness/policy-matrix.js';

/** YAML documents as one manifest. */
const manifests = (...docs: string[]): string => docs.join('\n---\n');

/** A case applies, checks, changes and deletes: several rounds of probing, each waiting for agreement. */
const CASE_TIMEOUT_MS = 300_000;

describe('network policy conformance matrix (3 nodes, 9 pods, TCP and UDP on 80 and 81)', () => {
  let m: PolicyMatrix;
  const ip = (key: PodKey): string => m.pod(key).ip;

  beforeAll(async () => {
    m = await PolicyMatrix.start();
  }, 300_000);

  afterAll(async () => {
    await m?.close();
  }, 120_000);

  /**
   * Applies `manifest`, expects the model's table for it (which must deny something, or the case proves nothing),
   * runs `then` (further changes, each checked by it), deletes the manifest's objects and expects everything
   * allowed again. The objects are deleted also when a check fails, so the next case starts clean.
   */
  async function policyCase(manifest: string, then?: () => Promise<void>): Promise<void> {
    await m.apply(manifest);
    try {
      expect(await m.expectMatrix(manifest)).toBeGreaterThan(0);
      await then?.();
    } finally {
      await m.delete(manifest);
    }
    await m.expectMatrix('', 'no policies after the case was deleted');
  }

  /** Sets labels (`key=value`, or `key-` to remove) on an object, then runs `check`; the labels are removed after, also on failure. */
  async function withLabels(kind: 'pod' | 'namespace', target: string[], labels: string[], check: () => Promise<void>): Promise<void> {
    await m.kubectl(['label', '--overwrite', kind, ...target, ...labels]);
    try {
      await check();
    } finally {
      await m.kubectl(['label', kind, ...target, ...labels.map((l) => `${l.split('=')[0]!.replace(/-$/, '')}-`)]);
    }
  }

  it('without policies every pod reaches every pod on every port', async () => {
    expect(await m.expectMatrix('', 'no policies')).toBe(0);
  }, CASE_TIMEOUT_MS);

  it('isolation: an empty podSelector with policyTypes defaulted to Ingress, and Egress with no rules', async () => {
    await policyCase(`
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: deny-ingress, namespace: "x" }
spec:
  podSelector: {}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: deny-egress, namespace: "y" }
spec:
  podSelector: {}
  policyTypes: [Egress]
`);
  }, CASE_TIMEOUT_MS);

  it('policyTypes: both given with only ingress rules, Ingress given with egress rules, defaulted with egress rules', async () => {
    await policyCase(`
# z/a: egress isolated (listed) with no egress rules; ingress open to all.
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: both-types, namespace: "z" }
spec:
  podSelector: { matchLabels: { pod: a } }
  policyTypes: [Ingress, Egress]
  ingress:
    - {}
---
# z/b: only Ingress isolated (no rules: nothing gets in); its egress rule is ignored.
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: ingress-only, namespace: "z" }
spec:
  podSelector: { matchLabels: { pod: b } }
  policyTypes: [Ingress]
  egress:
    - to: [{ namespaceSelector: { matchLabels: { ns: "x" } } }]
---
# z/c: policyTypes defaulted to Ingress and Egress (it has egress rules): nothing in, out only to x on TCP 80.
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: defaulted-types, namespace: "z" }
spec:
  podSelector: { matchLabels: { pod: c } }
  egress:
    - to: [{ namespaceSelector: { matchLabels: { ns: "x" } } }]
      ports: [{ port: 80 }]
`);
  }, CASE_TIMEOUT_MS);

  it('ingress peers: podSelector (empty and not), namespaceSelector (empty and not), both in one peer (AND), separate (OR)', async () => {
    await policyCase(`
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: from-pod-b, namespace: "x" }
spec:
  podSelector: { matchLabels: { pod: a } }
  ingress:
    - from: [{ podSelector: { matchLabels: { pod: b } } }]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: from-ns-y, namespace: "x" }
spec:
  podSelector: { matchLabels: { pod: b } }
  ingress:
    - from: [{ namespaceSelector: { matchLabels: { ns: "y" } } }]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: from-z-and-a, namespace: "x" }
spec:
  podSelector: { matchLabels: { pod: c } }
  ingress:
    - from: [{ namespaceSelector: { matchLabels: { ns: "z" } }, podSelector: { matchLabels: { pod: a } } }]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: from-z-or-c, namespace: "y" }
spec:
  podSelector: { matchLabels: { pod: a } }
  ingress:
    - from: [{ namespaceSelector: { matchLabels: { ns: "z" } } }, { podSelector: { matchLabels: { pod: c } } }]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: from-own-namespace, namespace: "y" }
spec:
  podSelector: { matchLabels: { pod: b } }
  ingress:
    - from: [{ podSelector: {} }]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: from-every-namespace-b, namespace: "z" }
spec:
  podSelector: { matchLabels: { pod: c } }
  ingress:
    - from: [{ namespaceSelector: {}, podSelector: { matchLabels: { pod: b } } }]
`);
  }, CASE_TIMEOUT_MS);

  it('egress peers: both selectors in one peer (AND), an empty podSelector, and an empty to', async () => {
    await policyCase(`
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: to-y-b, namespace: "x" }
spec:
  podSelector: { matchLabels: { pod: a } }
  policyTypes: [Egress]
  egress:
    - to: [{ namespaceSelector: { matchLabels: { ns: "y" } }, podSelector: { matchLabels: { pod: b } } }]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: to-own-namespace, namespace: "x" }
spec:
  podSelector: { matchLabels: { pod: b } }
  policyTypes: [Egress]
  egress:
    - to: [{ podSelector: {} }]
---
# y/c: anywhere, but only on UDP.
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: udp-anywhere, namespace: "y" }
spec:
  podSelector: { matchLabels: { pod: c } }
  policyTypes: [Egress]
  egress:
    - ports: [{ protocol: UDP }]
`);
  }, CASE_TIMEOUT_MS);

  it('ports: TCP by default, UDP, a protocol without a port, an empty from, endPort', async () => {
    await policyCase(`
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: tcp-80-from-y, namespace: "x" }
spec:
  podSelector: { matchLabels: { pod: a } }
  ingress:
    - from: [{ namespaceSelector: { matchLabels: { ns: "y" } } }]
      ports: [{ port: 80 }]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: udp-81-from-anyone, namespace: "x" }
spec:
  podSelector: { matchLabels: { pod: b } }
  ingress:
    - ports: [{ protocol: UDP, port: 81 }]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: any-udp-from-z, namespace: "x" }
spec:
  podSelector: { matchLabels: { pod: c } }
  ingress:
    - from: [{ namespaceSelector: { matchLabels: { ns: "z" } } }]
      ports: [{ protocol: UDP }]
---
# 79..80 covers 80 and not 81; UDP 81..90 covers 81.
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: ranges, namespace: "y" }
spec:
  podSelector: { matchLabels: { pod: b } }
  ingress:
    - ports: [{ port: 79, endPort: 80 }, { protocol: UDP, port: 81, endPort: 90 }]
`);
  }, CASE_TIMEOUT_MS);

  it('named ports, in ingress and in egress to anywhere (only the pods a name their ports)', async () => {
    await policyCase(`
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: named-ingress, namespace: "z" }
spec:
  podSelector: {}
  ingress:
    - ports: [{ port: serve-80-tcp }, { protocol: UDP, port: serve-81-udp }]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: named-egress, namespace: "x" }
spec:
  podSelector: { matchLabels: { pod: c } }
  policyTypes: [Egress]
  egress:
    - ports: [{ protocol: UDP, port: serve-80-udp }]
`);
  }, CASE_TIMEOUT_MS);

  it('ipBlock peers with except, in ingress and egress', async () => {
    // x/a admits the cluster's pods but y/b and the pods of z/c's node; y/c may reach z/a, and the pods of x/b's
    // node other than x/b.
    const [zcNode, xbNode] = [await m.nodeCidr('z/c'), await m.nodeCidr('x/b')];
    await policyCase(`
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: from-block, namespace: "x" }
spec:
  podSelector: { matchLabels: { pod: a } }
  ingress:
    - from: [{ ipBlock: { cidr: ${m.lab.plan.clusterCidr}, except: [${ip('y/b')}/32, ${zcNode}] } }]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: to-blocks, namespace: "y" }
spec:
  podSelector: { matchLabels: { pod: c } }
  policyTypes: [Egress]
  egress:
    - to: [{ ipBlock: { cidr: ${ip('z/a')}/32 } }, { ipBlock: { cidr: ${xbNode}, except: [${ip('x/b')}/32] } }]
`);
  }, CASE_TIMEOUT_MS);

  it('several policies on one pod add up, and deleting one leaves the others', async () => {
    const fromY = `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: a-from-y-80, namespace: "x" }
spec:
  podSelector: { matchLabels: { pod: a } }
  ingress:
    - from: [{ namespaceSelector: { matchLabels: { ns: "y" } } }]
      ports: [{ port: 80 }]
`;
    const fromC = `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: a-from-c, namespace: "x" }
spec:
  podSelector: { matchLabels: { pod: a } }
  ingress:
    - from: [{ podSelector: { matchLabels: { pod: c } } }]
`;
    const fromZ = `
# Every pod of x from z on UDP: x/a gets it too.
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: all-from-z-udp, namespace: "x" }
spec:
  podSelector: {}
  ingress:
    - from: [{ namespaceSelector: { matchLabels: { ns: "z" } } }]
      ports: [{ protocol: UDP }]
`;
    await policyCase(manifests(fromY, fromC, fromZ), async () => {
      await m.delete(fromC);
      expect(await m.expectMatrix(manifests(fromY, fromZ), 'the policies left after deleting x/a-from-c')).toBeGreaterThan(0);
    });
  }, CASE_TIMEOUT_MS);

  it('a policy updated with kubectl apply: new peers, ports and pods', async () => {
    const before = `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: changing, namespace: "x" }
spec:
  podSelector: { matchLabels: { pod: b } }
  ingress:
    - from: [{ namespaceSelector: { matchLabels: { ns: "y" } } }]
`;
    const after = `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: changing, namespace: "x" }
spec:
  podSelector: { matchExpressions: [{ key: pod, operator: In, values: [b, c] }] }
  ingress:
    - from: [{ namespaceSelector: { matchLabels: { ns: "z" } } }]
      ports: [{ port: 81 }, { protocol: UDP, port: 80 }]
`;
    await policyCase(before, async () => {
      await m.apply(after);
      expect(await m.expectMatrix(after, 'the updated policy')).toBeGreaterThan(0);
    });
  }, CASE_TIMEOUT_MS);

  it('pod label changes move pods into and out of a policy, as subjects and as peers', async () => {
    const manifest = `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: web, namespace: "x" }
spec:
  podSelector: { matchLabels: { role: web } }
  ingress:
    - from: [{ namespaceSelector: {}, podSelector: { matchLabels: { access: granted } } }]
`;
    // No pod is labelled role=web yet: the policy selects nobody.
    await m.apply(manifest);
    try {
      expect(await m.expectMatrix(manifest, 'a policy selecting no pod')).toBe(0);
      await withLabels('pod', ['-n', 'x', 'b'], ['role=web'], async () => {
        expect(await m.expectMatrix(manifest, 'x/b labelled role=web')).toBeGreaterThan(0);
        await withLabels('pod', ['-n', 'y', 'c'], ['access=granted'], async () => {
          expect(await m.expectMatrix(manifest, 'y/c labelled access=granted')).toBeGreaterThan(0);
        });
        expect(await m.expectMatrix(manifest, 'access=granted removed from y/c')).toBeGreaterThan(0);
      });
      expect(await m.expectMatrix(manifest, 'role=web removed from x/b')).toBe(0);
    } finally {
      await m.delete(manifest);
    }
    await m.expectMatrix('', 'no policies after the case was deleted');
  }, CASE_TIMEOUT_MS);

  it('namespace label changes move namespaces into and out of a peer', async () => {
    const manifest = `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: from-blue, namespace: "y" }
spec:
  podSelector: { matchLabels: { pod: a } }
  ingress:
    - from: [{ namespaceSelector: { matchLabels: { team: blue } } }]
`;
    await policyCase(manifest, async () => {
      await withLabels('namespace', ['z'], ['team=blue'], async () => {
        expect(await m.expectMatrix(manifest, 'namespace z labelled team=blue')).toBeGreaterThan(0);
        await withLabels('namespace', ['x'], ['team=blue'], async () => {
          expect(await m.expectMatrix(manifest, 'namespaces x and z labelled team=blue')).toBeGreaterThan(0);
        });
      });
      expect(await m.expectMatrix(manifest, 'team=blue removed from x and z')).toBeGreaterThan(0);
    });
  }, CASE_TIMEOUT_MS);

  it('Admin Deny wins over a NetworkPolicy that allows', async () => {
    await policyCase(`
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: allow-all-in, namespace: "x" }
spec:
  podSelector: {}
  ingress:
    - {}
---
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: { name: deny-y-to-x-tcp-80 }
spec:
  tier: Admin
  priority: 10
  subject: { namespaces: { matchLabels: { ns: "x" } } }
  ingress:
    - action: Deny
      from: [{ namespaces: { matchLabels: { ns: "y" } } }]
      protocols: [{ tcp: { destinationPort: { number: 80 } } }]
`);
  }, CASE_TIMEOUT_MS);

  it('Admin Pass hands over to NetworkPolicy, skipping the Admin rules after it', async () => {
    await policyCase(`
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: { name: pass-y }
spec:
  tier: Admin
  priority: 5
  subject: { namespaces: { matchLabels: { ns: "x" } } }
  ingress:
    - action: Pass
      from: [{ namespaces: { matchLabels: { ns: "y" } } }]
---
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: { name: deny-all-to-x }
spec:
  tier: Admin
  priority: 10
  subject: { namespaces: { matchLabels: { ns: "x" } } }
  ingress:
    - action: Deny
      from: [{ namespaces: {} }]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: a-from-y-80, namespace: "x" }
spec:
  podSelector: { matchLabels: { pod: a } }
  ingress:
    - from: [{ namespaceSelector: { matchLabels: { ns: "y" } } }]
      ports: [{ port: 80 }]
`);
  }, CASE_TIMEOUT_MS);

  it('Admin Pass with no NetworkPolicy falls through to Baseline Deny', async () => {
    await policyCase(`
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: { name: pass-z }
spec:
  tier: Admin
  priority: 1
  subject: { namespaces: { matchLabels: { ns: "y" } } }
  ingress:
    - action: Pass
      from: [{ namespaces: { matchLabels: { ns: "z" } } }]
---
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: { name: accept-all-to-y }
spec:
  tier: Admin
  priority: 2
  subject: { namespaces: { matchLabels: { ns: "y" } } }
  ingress:
    - action: Accept
      from: [{ namespaces: {} }]
---
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: { name: baseline-deny-to-y }
spec:
  tier: Baseline
  priority: 1
  subject: { namespaces: { matchLabels: { ns: "y" } } }
  ingress:
    - action: Deny
      from: [{ namespaces: {} }]
`);
  }, CASE_TIMEOUT_MS);

  it('Baseline Accept does not re-open what NetworkPolicy isolates', async () => {
    await policyCase(`
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: a-from-x, namespace: "z" }
spec:
  podSelector: { matchLabels: { pod: a } }
  ingress:
    - from: [{ namespaceSelector: { matchLabels: { ns: "x" } } }]
---
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: { name: baseline-accept-y }
spec:
  tier: Baseline
  priority: 1
  subject: { namespaces: { matchLabels: { ns: "z" } } }
  ingress:
    - action: Accept
      from: [{ namespaces: { matchLabels: { ns: "y" } } }]
---
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: { name: baseline-deny-rest }
spec:
  tier: Baseline
  priority: 2
  subject: { namespaces: { matchLabels: { ns: "z" } } }
  ingress:
    - action: Deny
      from: [{ namespaces: {} }]
`);
  }, CASE_TIMEOUT_MS);

  it('priorities order Admin policies, and changing one reorders them', async () => {
    const deny = `
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: { name: deny-x-tcp }
spec:
  tier: Admin
  priority: 20
  subject: { namespaces: { matchLabels: { ns: "z" } } }
  ingress:
    - action: Deny
      from: [{ pods: { namespaceSelector: { matchLabels: { ns: "x" } }, podSelector: {} } }]
      protocols: [{ tcp: { destinationPort: { range: { start: 80, end: 81 } } } }]
`;
    const accept = (priority: number): string => `
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: { name: accept-x-a }
spec:
  tier: Admin
  priority: ${priority}
  subject: { namespaces: { matchLabels: { ns: "z" } } }
  ingress:
    - action: Accept
      from: [{ pods: { namespaceSelector: { matchLabels: { ns: "x" } }, podSelector: { matchLabels: { pod: a } } } }]
`;
    // First x/a's Accept (10) comes before the Deny (20); then after it (30).
    await policyCase(manifests(deny, accept(10)), async () => {
      await m.apply(accept(30));
      expect(await m.expectMatrix(manifests(deny, accept(30)), 'accept-x-a moved after deny-x-tcp')).toBeGreaterThan(0);
    });
  }, CASE_TIMEOUT_MS);

  it('subjects by pods, peers by pods and networks, ports by number, range and name, in both tiers', async () => {
    await policyCase(`
# The pods b may not send UDP 80-81 to x/a's address nor to the pods of z/c's node.
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: { name: b-egress-networks }
spec:
  tier: Admin
  priority: 10
  subject: { pods: { namespaceSelector: {}, podSelector: { matchLabels: { pod: b } } } }
  egress:
    - action: Deny
      to: [{ networks: [${ip('x/a')}/32, ${await m.nodeCidr('z/c')}] }]
      protocols: [{ udp: { destinationPort: { range: { start: 80, end: 81 } } } }]
---
# z/c may not reach y's "serve-81-tcp" (only y/a names it).
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: { name: y-named-port }
spec:
  tier: Admin
  priority: 20
  subject: { namespaces: { matchLabels: { ns: "y" } } }
  ingress:
    - action: Deny
      from: [{ pods: { namespaceSelector: { matchLabels: { ns: "z" } }, podSelector: { matchLabels: { pod: c } } } }]
      protocols: [{ destinationNamedPort: serve-81-tcp }]
---
# Below NetworkPolicy (there is none in x): z may not reach x on TCP 80.
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: { name: x-baseline }
spec:
  tier: Baseline
  priority: 10
  subject: { namespaces: { matchLabels: { ns: "x" } } }
  ingress:
    - action: Deny
      from: [{ namespaces: { matchLabels: { ns: "z" } } }]
      protocols: [{ tcp: { destinationPort: { number: 80 } } }]
`);
  }, CASE_TIMEOUT_MS);
});

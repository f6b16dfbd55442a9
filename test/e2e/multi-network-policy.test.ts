// MultiNetworkPolicy on Seine's secondary networks, on the standard policy model (namespaces x, y, z; pods a, b,
// c in each, over 3 nodes; TCP and UDP on 80 and 81), every pod also on a VLAN network and an overlay network. Each
// case is applied with kubectl, and the full 9x9 table is probed with real packets on the network the policies
// are for, compared with the policy model, while the same pods' other networks stay as open as before (and a
// NetworkPolicy leaves the secondary networks alone). Then: hot-plug under a policy, an agent restart, and no flow
// left behind once the policies are gone.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { run } from '../../src/host/exec.js';
import { repoRoot } from '../../src/util/paths.js';
import { CookieOwner, decodeCookie } from '../../src/ovs/openflow/cookie.js';
import { NETWORK_STATUS_ANNOTATION, NETWORKS_ANNOTATION, parseNetworkStatus } from '../../src/secondary/annotations/index.js';
import { eventually } from '../harness/lab.js';
import { PolicyMatrix, type PodKey } from '../harness/policy-matrix.js';

const VLAN = 'default/vlan100';
const OVERLAY = 'default/blue';
/** A third network, hot-plugged during the test. */
const HOTPLUG = 'default/red';

const NETWORKS = `
apiVersion: crd.seine.dev/v1alpha1
kind: IPPool
metadata: { name: mnp-vlan100 }
spec: { ipRanges: [{ cidr: 10.100.0.0/24 }], subnetInfo: { gateway: 10.100.0.1, prefixLength: 24, vlan: 100 } }
---
apiVersion: crd.seine.dev/v1alpha1
kind: IPPool
metadata: { name: mnp-blue }
spec: { ipRanges: [{ cidr: 10.50.0.0/24 }], subnetInfo: { gateway: 10.50.0.1, prefixLength: 24 } }
---
apiVersion: crd.seine.dev/v1alpha1
kind: IPPool
metadata: { name: mnp-red }
spec: { ipRanges: [{ cidr: 10.51.0.0/24 }], subnetInfo: { gateway: 10.51.0.1, prefixLength: 24 } }
---
apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata: { name: vlan100, namespace: default }
spec: { config: '{"cniVersion":"1.0.0","type":"seine","networkType":"vlan","vlan":100,"ipam":{"type":"seine","ippools":["mnp-vlan100"]}}' }
---
apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata: { name: blue, namespace: default }
spec: { config: '{"cniVersion":"1.0.0","type":"seine","networkType":"overlay","vni":5001,"ipam":{"type":"seine","ippools":["mnp-blue"]}}' }
---
apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata: { name: red, namespace: default }
spec: { config: '{"cniVersion":"1.0.0","type":"seine","networkType":"overlay","vni":5002,"ipam":{"type":"seine","ippools":["mnp-red"]}}' }
---
apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata: { name: macvlan, namespace: default }
spec: { config: '{"cniVersion":"1.0.0","type":"macvlan","master":"eth0","ipam":{"type":"host-local","ranges":[[{"subnet":"10.77.0.0/24"}]]}}' }
`;

/** A case applies, checks and deletes: several rounds of probing on three networks, each waiting for agreement. */
const CASE_TIMEOUT_MS = 400_000;
/** A change made through the API reaches every agent and OVS in seconds; this leaves ample room on a busy machine. */
const CHANGE_TIMEOUT_MS = 60_000;

const manifests = (...docs: string[]): string => docs.join('\n---\n');

describe('MultiNetworkPolicy on VLAN and overlay networks (3 nodes, 9 pods, TCP and UDP on 80 and 81)', () => {
  let m: PolicyMatrix;
  const ipOn = (key: PodKey, network: string): string => m.ipOn(key, network);

  beforeAll(async () => {
    m = await PolicyMatrix.start({ secondary: { manifest: NETWORKS, networks: [VLAN, OVERLAY] } });
  }, 300_000);

  afterAll(async () => {
    await m?.close();
  }, 120_000);

  /**
   * Applies `manifest`; on `network` the probes must agree with the model, which must deny something; on every
   * network in `open` (undefined: the pod network) nothing may be denied. Deleted after, also on failure, and
   * everything must be open again on `network`.
   */
  async function policyCase(manifest: string, network: string | undefined, open: Array<string | undefined>, then?: () => Promise<void>): Promise<void> {
    await m.apply(manifest);
    try {
      expect(await m.expectMatrix(manifest, 'the policies', network)).toBeGreaterThan(0);
      for (const other of open) expect(await m.expectMatrix(manifest, `the policies of ${network ?? 'the pod network'}`, other)).toBe(0);
      await then?.();
    } finally {
      await m.delete(manifest);
    }
    await m.expectMatrix('', 'no policies after the case was deleted', network);
  }

  it('without policies every pod reaches every pod on both secondary networks', async () => {
    expect(await m.expectMatrix('', 'no policies', VLAN)).toBe(0);
    expect(await m.expectMatrix('', 'no policies', OVERLAY)).toBe(0);
  }, CASE_TIMEOUT_MS);

  it('VLAN: ingress by pod, by namespace and pod, by ipBlock and port; egress to a namespace and to anywhere on a port', async () => {
    await policyCase(
      manifests(
        `
apiVersion: k8s.cni.cncf.io/v1beta1
kind: MultiNetworkPolicy
metadata: { name: a-ingress, namespace: "x", annotations: { k8s.v1.cni.cncf.io/policy-for: default/vlan100 } }
spec:
  podSelector: { matchLabels: { pod: a } }
  policyTypes: [Ingress]
  ingress:
    - from: [{ podSelector: { matchLabels: { pod: b } } }]
    - from: [{ namespaceSelector: { matchLabels: { ns: "y" } }, podSelector: { matchLabels: { pod: c } } }]
      ports: [{ protocol: TCP, port: 80 }]
    - from: [{ ipBlock: { cidr: "${ipOn('z/c', VLAN)}/32" } }]
      ports: [{ protocol: UDP, port: 81 }]`,
        `
apiVersion: k8s.cni.cncf.io/v1beta1
kind: MultiNetworkPolicy
metadata: { name: b-egress, namespace: "y", annotations: { k8s.v1.cni.cncf.io/policy-for: vlan100 } }
spec:
  podSelector: { matchLabels: { pod: b } }
  policyTypes: [Egress]
  egress:
    - to: [{ namespaceSelector: { matchLabels: { ns: "z" } } }]
    - ports: [{ protocol: UDP, port: 80 }]`,
      ).replace('policy-for: vlan100', 'policy-for: default/vlan100'),
      VLAN,
      [OVERLAY, undefined],
    );
  }, CASE_TIMEOUT_MS);

  it('overlay (v1beta2): a port range, an ipBlock with except, both directions on one pod', async () => {
    const block = ipOn('y/a', OVERLAY).replace(/\.\d+$/, '.0/24');
    await policyCase(
      `
apiVersion: k8s.cni.cncf.io/v1beta2
kind: MultiNetworkPolicy
metadata: { name: c-both, namespace: "z", annotations: { k8s.v1.cni.cncf.io/policy-for: " default/blue " } }
spec:
  podSelector: { matchLabels: { pod: c } }
  policyTypes: [Ingress, Egress]
  ingress:
    - from: [{ ipBlock: { cidr: "${block}", except: ["${ipOn('y/a', OVERLAY)}/32"] } }]
      ports: [{ protocol: TCP, port: 80, endPort: 81 }]
  egress:
    - to: [{ podSelector: { matchLabels: { pod: a } }, namespaceSelector: {} }]
      ports: [{ protocol: UDP, port: 81 }]`,
      OVERLAY,
      [VLAN, undefined],
    );
  }, CASE_TIMEOUT_MS);

  it('a NetworkPolicy isolates the pod network only; the secondary networks stay open', async () => {
    await policyCase(
      `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: deny-ingress, namespace: "x" }
spec:
  podSelector: {}
  policyTypes: [Ingress]`,
      undefined,
      [VLAN, OVERLAY],
    );
  }, CASE_TIMEOUT_MS);

  it('a network Seine cannot enforce is reported in the status and an Event, the others are enforced', async () => {
    const policy = `
apiVersion: k8s.cni.cncf.io/v1beta1
kind: MultiNetworkPolicy
metadata: { name: mixed, namespace: "x", annotations: { k8s.v1.cni.cncf.io/policy-for: "default/vlan100,default/macvlan,default/missing" } }
spec:
  podSelector: { matchLabels: { pod: a } }
  policyTypes: [Ingress]`;
    await m.apply(policy);
    try {
      const condition = await eventually('the NetworksEnforced condition', async (saw) => {
        const o = JSON.parse(await m.kubectl(['get', 'multi-networkpolicy', '-n', 'x', 'mixed', '-o', 'json'])) as { status?: { conditions?: Array<{ type: string; status: string; reason: string; message: string }> } };
        saw(o.status);
        return o.status?.conditions?.find((c) => c.type === 'NetworksEnforced' && c.status === 'False');
      }, CHANGE_TIMEOUT_MS, 500);
      expect(condition.reason).toBe('NotEnforced');
      expect(condition.message).toContain('enforced on default/vlan100');
      expect(condition.message).toContain('default/macvlan: a delegated macvlan network');
      expect(condition.message).toContain('default/missing: no such NetworkAttachmentDefinition');
      const events = await eventually('the Warning Events', async (saw) => {
        const text = await m.kubectl(['get', 'events', '-n', 'x', '--field-selector', 'involvedObject.name=mixed', '-o', 'jsonpath={range .items[*]}{.type} {.reason} {.message}{"\\n"}{end}']);
        saw(text);
        return text.includes('default/macvlan') && text.includes('default/missing') ? text : undefined;
      }, CHANGE_TIMEOUT_MS, 500);
      expect(events).toMatch(/^Warning NetworkNotEnforced default\/macvlan: /m);
      // The CLI: a row per network, the enforced one realized on x/a's node, the others NOT ENFORCED (wide: why).
      const seine = join(repoRoot(), 'bin', 'seine');
      const table = await eventually('seine get mnp to show the policy realized on vlan100', async (saw) => {
        const { stdout } = await run(process.execPath, [seine, 'get', 'mnp', '-n', 'x', '-o', 'wide', '--kubeconfig', m.lab.kubeconfigPath], { timeoutMs: 60_000 });
        saw(stdout);
        return /^mixed\s+default\/vlan100\s+1\/1\s/m.test(stdout) ? stdout : undefined;
      }, CHANGE_TIMEOUT_MS, 1000);
      expect(table).toMatch(/^NAME\s+NETWORK\s+REALIZED\s+AGE\s+GENERATION\s+PENDING\s+PROBLEM$/m);
      expect(table).toMatch(/^mixed\s+default\/macvlan\s+NOT ENFORCED\s.*a delegated macvlan network/m);
      expect(table).toMatch(/^mixed\s+default\/missing\s+NOT ENFORCED\s.*no such NetworkAttachmentDefinition/m);
      // The network it can enforce, it does.
      expect(await m.expectMatrix(policy, 'the policy', VLAN)).toBeGreaterThan(0);
    } finally {
      await m.delete(policy);
    }
  }, CASE_TIMEOUT_MS);

  it('two policed overlay networks whose VNIs share the conntrack zone bits on a node: the second is refused there and said', async () => {
    const node = m.pod('x/a').node;
    // In a namespace of their own: the matrix's namespaces hold its pods only.
    const objects = `
apiVersion: v1
kind: Namespace
metadata: { name: zones }
---
apiVersion: crd.seine.dev/v1alpha1
kind: IPPool
metadata: { name: mnp-zone }
spec: { ipRanges: [{ cidr: 10.52.0.0/24 }], subnetInfo: { gateway: 10.52.0.1, prefixLength: 24 } }
---
apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata: { name: zone-a, namespace: default }
spec: { config: '{"cniVersion":"1.0.0","type":"seine","networkType":"overlay","vni":5003,"ipam":{"type":"seine","ippools":["mnp-zone"]}}' }
---
apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata: { name: zone-b, namespace: default }
spec: { config: '{"cniVersion":"1.0.0","type":"seine","networkType":"overlay","vni":${5003 + 4096},"ipam":{"type":"seine","ippools":["mnp-zone"]}}' }
---
apiVersion: v1
kind: Pod
metadata: { name: zone-pod, namespace: zones, labels: { zone: "yes" }, annotations: { k8s.v1.cni.cncf.io/networks: "default/zone-a,default/zone-b" } }
spec: { nodeName: ${node}, containers: [{ name: main, image: lab, command: ["sleep", "infinity"] }] }
---
apiVersion: k8s.cni.cncf.io/v1beta1
kind: MultiNetworkPolicy
metadata: { name: zone-a, namespace: zones, annotations: { k8s.v1.cni.cncf.io/policy-for: default/zone-a } }
spec: { podSelector: { matchLabels: { zone: "yes" } }, policyTypes: [Ingress] }
---
apiVersion: k8s.cni.cncf.io/v1beta1
kind: MultiNetworkPolicy
metadata: { name: zone-b, namespace: zones, annotations: { k8s.v1.cni.cncf.io/policy-for: default/zone-b } }
spec: { podSelector: { matchLabels: { zone: "yes" } }, policyTypes: [Ingress] }`;
    await m.apply(objects);
    try {
      const event = await eventually('the agent\'s Warning Event on zone-b', async (saw) => {
        const text = await m.kubectl(['get', 'events', '-n', 'zones', '--field-selector', 'involvedObject.name=zone-b', '-o', 'jsonpath={range .items[*]}{.reason} {.message}{"\\n"}{end}']);
        saw(text);
        return text.split('\n').find((l) => l.startsWith('NetworkNotEnforced default/zone-b: not enforced on node'));
      }, CHANGE_TIMEOUT_MS, 500);
      expect(event).toContain('default/zone-a is policed too');
      // zone-a is enforced on that node; zone-b stays pending there.
      const realized = async (name: string): Promise<string | undefined> => {
        const o = JSON.parse(await m.kubectl(['get', 'multi-networkpolicy', '-n', 'zones', name, '-o', 'json'])) as { status?: { conditions?: Array<{ type: string; message: string }> } };
        return o.status?.conditions?.find((c) => c.type === 'Realized')?.message;
      };
      await eventually('zone-a realized on 1 of 1 nodes', async () => ((await realized('zone-a')) === 'realized on 1 of 1 nodes' ? true : undefined), CHANGE_TIMEOUT_MS, 500);
      // The node's report for zone-b may come after zone-a's (each policy's realization is written as it changes).
      await eventually('zone-b pending on that node', async (saw) => {
        const said = await realized('zone-b');
        saw(said);
        return /^realized on 0 of 1 nodes; waiting for /.test(said ?? '') ? true : undefined;
      }, CHANGE_TIMEOUT_MS, 500);
    } finally {
      await m.delete(objects);
    }
  }, CASE_TIMEOUT_MS);

  it('hot-plug: a network attached to a running pod a policy selects is under the policy as soon as the pod has it', async () => {
    const policy = `
apiVersion: k8s.cni.cncf.io/v1beta1
kind: MultiNetworkPolicy
metadata: { name: a-red-from-c, namespace: "x", annotations: { k8s.v1.cni.cncf.io/policy-for: default/red } }
spec:
  podSelector: { matchLabels: { pod: a } }
  policyTypes: [Ingress]
  ingress:
    - from: [{ podSelector: { matchLabels: { pod: c } } }]`;
    const plug = (key: PodKey, networks: string[]): Promise<string> => {
      const [ns, name] = key.split('/');
      return m.kubectl(['annotate', '--overwrite', 'pod', '-n', ns!, name!, `${NETWORKS_ANNOTATION}=${networks.join(',')}`]);
    };
    const addressOn = async (key: PodKey, network: string): Promise<string | undefined> => {
      const [namespace, name] = key.split('/');
      const pod = await m.lab.core.readNamespacedPod({ namespace: namespace!, name: name! });
      return parseNetworkStatus(pod.metadata?.annotations?.[NETWORK_STATUS_ANNOTATION]).find((s) => s.name === network)?.ips?.[0];
    };
    const probe = async (from: PodKey, to: string): Promise<string> => {
      const { stdout } = await run(process.execPath, ['-e', `const s=require('net').connect({host:${JSON.stringify(to)},port:80});s.setEncoding('utf8');let a='';s.on('data',d=>a+=d);s.on('end',()=>{process.stdout.write(a);process.exit(0)});s.on('error',e=>{process.stdout.write('error:'+e.code);process.exit(0)});setTimeout(()=>{process.stdout.write('timeout');process.exit(0)},3000)`], { netns: m.pod(from).netns, timeoutMs: 60_000 });
      return stdout;
    };
    await m.apply(policy);
    try {
      // Peers on the new network first (nothing selects them), then the pod the policy selects.
      for (const key of ['x/c', 'y/b'] as PodKey[]) await plug(key, [VLAN, OVERLAY, HOTPLUG]);
      const peers = await eventually('the peers attached to red', async (saw) => {
        const got = await Promise.all((['x/c', 'y/b'] as PodKey[]).map((k) => addressOn(k, HOTPLUG)));
        saw(got);
        return got.every(Boolean) ? got : undefined;
      }, CHANGE_TIMEOUT_MS, 300);
      expect(await eventually('x/c reaches y/b on red', async () => ((await probe('x/c', peers[1]!)) === 'y/b' ? true : undefined), CHANGE_TIMEOUT_MS, 500)).toBe(true);
      await plug('x/a', [VLAN, OVERLAY, HOTPLUG]);
      const ip = await eventually('x/a attached to red', async () => addressOn('x/a', HOTPLUG), CHANGE_TIMEOUT_MS, 100);
      // The moment the pod reports the interface, the policy is in force on it: y/b is refused, x/c let in.
      expect(await probe('y/b', ip)).toBe('timeout');
      expect(await eventually('x/c reaches x/a on red', async () => ((await probe('x/c', ip)) === 'x/a' ? true : undefined), CHANGE_TIMEOUT_MS, 500)).toBe(true);
      expect(await probe('y/b', ip)).toBe('timeout');
    } finally {
      for (const key of ['x/a', 'x/c', 'y/b'] as PodKey[]) await plug(key, [VLAN, OVERLAY]);
      await m.delete(policy);
    }
    // Unplugged again: the matrix's networks are as they were.
    expect(await m.expectMatrix('', 'no policies after hot-unplug', OVERLAY)).toBe(0);
  }, CASE_TIMEOUT_MS);

  it('an agent restart keeps enforcing; deleting the policies leaves no flow of them on any secondary bridge', async () => {
    const policy = `
apiVersion: k8s.cni.cncf.io/v1beta1
kind: MultiNetworkPolicy
metadata: { name: isolate-x, namespace: "x", annotations: { k8s.v1.cni.cncf.io/policy-for: "default/vlan100, default/blue" } }
spec:
  podSelector: {}
  policyTypes: [Ingress]
  ingress:
    - from: [{ namespaceSelector: { matchLabels: { ns: "y" } } }]`;
    await m.apply(policy);
    try {
      expect(await m.expectMatrix(policy, 'the policy', VLAN)).toBeGreaterThan(0);
      // The agent of x/a's node restarts: once it is back, the same table on both networks.
      const node = m.pod('x/a').node;
      const i = m.lab.plan.nodes.findIndex((n) => n.name === node);
      const logFile = join(m.lab.nodes[i]!.dirs.logDir, 'seine-agent.log');
      const ready = (): number => readFileSync(logFile, 'utf8').split('\n').filter((l) => l.includes('"agent ready"')).length;
      const before = ready();
      m.lab.agents.get(node)!.crash();
      await eventually(`the agent on ${node} ready again`, async () => (ready() > before ? true : undefined), 90_000, 500);
      expect(await m.expectMatrix(policy, 'the policy after the agent restarted', VLAN)).toBeGreaterThan(0);
      expect(await m.expectMatrix(policy, 'the policy after the agent restarted', OVERLAY)).toBeGreaterThan(0);
    } finally {
      await m.delete(policy);
    }
    await eventually('no policy flow on any secondary bridge', async (saw) => {
      const left: string[] = [];
      for (const n of m.lab.nodes) {
        const { stdout: bridges } = await run('ovs-vsctl', ['list-br'], { env: n.ovs.env, timeoutMs: 30_000 });
        for (const bridge of bridges.split('\n').filter((b) => b && b !== 'br-int')) {
          const { stdout } = await run('ovs-ofctl', ['-O', 'OpenFlow15', 'dump-flows', n.ovs.bridgeMgmt(bridge)], { env: n.ovs.env, timeoutMs: 30_000 });
          for (const l of stdout.split('\n')) {
            const c = /cookie=(0x[0-9a-f]+)/.exec(l);
            if (c && decodeCookie(BigInt(c[1]!)).owner === CookieOwner.policy) left.push(`${n.plan.name} ${bridge}: ${l.trim()}`);
          }
        }
      }
      saw(left.slice(0, 5));
      return left.length ? undefined : true;
    }, CHANGE_TIMEOUT_MS, 1000);
    expect(await m.expectMatrix('', 'no policies', VLAN)).toBe(0);
  }, CASE_TIMEOUT_MS);
});

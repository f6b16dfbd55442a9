// Traceflow on secondary networks, on a lab started by the CLI: `seine trace --network` injects a tagged packet at
// the source pod's port on a VLAN or overlay network's bridge and prints the path the real bridges gave it: out of
// the trunk's uplink tagged and in at the other node's, through the overlay's tunnel, delivered at the destination's
// port and not to the pod, dropped by a named MultiNetworkPolicy rule, and an address no pod has on the network.
// Bad input fails with its reason, and finished traces leave no flow on the secondary bridges.
import type { Traceflow } from '../../src/traceflow/api/types.js';
import { eventually } from '../../src/util/wait.js';
import { SETTLE_MS, TraceLab } from '../harness/trace-lab.js';

const NETWORKS = `
apiVersion: crd.seine.dev/v1alpha1
kind: IPPool
metadata: {name: tf-vlan100}
spec: {ipRanges: [{cidr: 10.130.0.0/24}], subnetInfo: {gateway: 10.130.0.1, prefixLength: 24, vlan: 100}}
---
apiVersion: crd.seine.dev/v1alpha1
kind: IPPool
metadata: {name: tf-blue}
spec: {ipRanges: [{cidr: 10.131.0.0/24}], subnetInfo: {gateway: 10.131.0.1, prefixLength: 24}}
---
apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata: {name: vlan100, namespace: default}
spec: {config: '{"cniVersion":"1.0.0","type":"seine","networkType":"vlan","vlan":100,"ipam":{"type":"seine","ippools":["tf-vlan100"]}}'}
---
apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata: {name: blue, namespace: default}
spec: {config: '{"cniVersion":"1.0.0","type":"seine","networkType":"overlay","vni":7001,"ipam":{"type":"seine","ippools":["tf-blue"]}}'}
`;

const pod = (podName: string, node: string, networks: string, app: string): string => `
apiVersion: v1
kind: Pod
metadata: {name: ${podName}, namespace: default, labels: {app: ${app}}, annotations: {k8s.v1.cni.cncf.io/networks: "${networks}"}}
spec: {nodeName: ${node}, containers: [{name: main, image: lab, command: [sleep, infinity]}]}`;

const POLICY = `
apiVersion: k8s.cni.cncf.io/v1beta1
kind: MultiNetworkPolicy
metadata: {name: server-8080-only, namespace: default, annotations: {k8s.v1.cni.cncf.io/policy-for: default/blue}}
spec:
  podSelector: {matchLabels: {app: server}}
  policyTypes: [Ingress]
  ingress: [{ports: [{port: 8080, protocol: TCP}]}]
`;

/** On the VLAN: the trunk bridge's policy stage (entered from table 0, out by NORMAL) instead of the overlay's. */
const VLAN_POLICY = `
apiVersion: k8s.cni.cncf.io/v1beta1
kind: MultiNetworkPolicy
metadata: {name: server-udp-53-only, namespace: default, annotations: {k8s.v1.cni.cncf.io/policy-for: default/vlan100}}
spec:
  podSelector: {matchLabels: {app: server}}
  policyTypes: [Ingress]
  ingress: [{ports: [{port: 53, protocol: UDP}]}]
`;

describe('Traceflow on secondary networks: seine trace --network follows a packet over VLAN and overlay bridges', () => {
  let lab: TraceLab;
  let node1 = '';
  let node2 = '';
  /** What reached the server's network stack: the trace packet must not. */
  const received = (): Promise<number> => lab.ipv4Received('default/server');
  const ipOn = async (pod: string, ifname: string): Promise<string> => (await lab.exec(`default/${pod}`, ['ip', '-4', '-o', 'addr', 'show', ifname])).stdout.match(/inet (\S+)\//)![1]!;

  beforeAll(async () => {
    lab = await TraceLab.start(2, 's');
    [node1, node2] = lab.nodes as [string, string];
    expect((await lab.kubectl(['apply', '-f', '-'], NETWORKS)).code).toBe(0);
    const pods = [pod('client', node1, 'vlan100,blue', 'client'), pod('server', node2, 'vlan100,blue', 'server'), pod('local', node1, 'vlan100', 'local'), pod('plain', node2, '', 'plain')];
    expect((await lab.kubectl(['apply', '-f', '-'], pods.join('\n---\n'))).code).toBe(0);
    expect((await lab.kubectl(['wait', '--for=condition=Ready', 'pod/client', 'pod/server', 'pod/local', 'pod/plain', '--timeout=150s'])).code).toBe(0);
  }, 330_000);
  afterAll(async () => {
    await lab?.close();
  }, 150_000);

  it('VLAN: out of the trunk uplink tagged, in at the other node\'s, delivered at the port and not to the pod', async () => {
    const before = await received();
    const r = await lab.trace(['default/client', 'default/server', '--network', 'vlan100']);
    expect(r.code).toBe(0);
    const lines = r.stdout.split('\n');
    expect(lines[1]).toMatch(/^Network: default\/vlan100 \(VLAN 100, bridge br-vlan\), from net1 to [0-9a-f:]{17}$/);
    const sender = lines.indexOf(`node ${node1} (Sender)`);
    const receiver = lines.indexOf(`node ${node2} (Receiver)`);
    expect(sender).toBeGreaterThan(0);
    expect(receiver).toBeGreaterThan(sender);
    expect(r.stdout).toMatch(new RegExp(`Forwarded to port \\S+, toward ${node2} \\[Normal\\]: out of the uplink, tagged VLAN 100`));
    expect(r.stdout).toMatch(new RegExp(`Received from ${node1} \\[Classifier\\]: from the uplink \\S+, tagged VLAN 100`));
    expect(r.stdout).toMatch(/Delivered to pod default\/server \(port \S+\) \[Normal\]: to net1 of the pod/);
    expect(lines.filter(Boolean).at(-1)).toBe('Verdict: Delivered');
    expect(await received()).toBe(before);

    // A pod of the same VLAN on the same node: delivered there, nothing sent to the other node.
    const local = await lab.traceJson(['default/client', 'default/local', '--network', 'default/vlan100', '--protocol', 'UDP', '--port', '53']);
    expect(local.status?.verdict).toBe('Delivered');
    expect(local.status!.results!.map((x) => x.node)).toEqual([node1]);
    expect(local.status!.results![0]!.observations.at(-1)).toEqual(expect.objectContaining({ action: 'Delivered', pod: 'default/local' }));
  }, 240_000);

  it('overlay: through the tunnel to the other node, delivered at the port', async () => {
    const before = await received();
    const tf = await lab.traceJson(['default/client', 'default/server', '--network', 'blue', '--protocol', 'ICMP']);
    expect(tf.status?.phase).toBe('Succeeded');
    expect(tf.status?.network).toEqual(expect.objectContaining({ name: 'default/blue', type: 'overlay', vni: 7001, bridge: 'br-ovl-7001', interface: 'net2', destinationNode: node2 }));
    const [first, second] = tf.status!.results!;
    expect(first).toEqual(expect.objectContaining({ node: node1, role: 'Sender' }));
    expect(first!.observations.at(-1)).toEqual(expect.objectContaining({ component: 'Forwarding', action: 'Forwarded', outputPort: 'tunnel', peerNode: node2 }));
    expect(second).toEqual(expect.objectContaining({ node: node2, role: 'Receiver' }));
    expect(second!.observations[0]).toEqual(expect.objectContaining({ action: 'Received', peerNode: node1 }));
    expect(second!.observations.at(-1)).toEqual(expect.objectContaining({ action: 'Delivered', pod: 'default/server' }));
    expect(await received()).toBe(before);
  }, 240_000);

  it('names the MultiNetworkPolicy rule that dropped a packet on the overlay and on the VLAN, and the one that allowed another', async () => {
    expect((await lab.kubectl(['apply', '-f', '-'], POLICY)).code).toBe(0);
    let dropped: Traceflow | undefined;
    // The policy is in place once a trace to port 80 is dropped (agents realize it asynchronously).
    await eventually('a trace to port 80 on blue dropped by the policy', async (saw) => {
      const tf = await lab.traceJson(['default/client', 'default/server', '--network', 'blue']);
      saw(tf.status);
      if (tf.status?.verdict !== 'Dropped') return undefined;
      dropped = tf;
      return true;
    }, SETTLE_MS, 1000);
    const drop = dropped!.status!.results!.find((x) => x.node === node2)!.observations.at(-1);
    expect(drop).toEqual(expect.objectContaining({ component: 'NetworkPolicy', action: 'Dropped', direction: 'Ingress', policy: expect.objectContaining({ namespace: 'default', name: 'server-8080-only', rule: 'isolation-ingress' }) }));
    const text = await lab.trace(['default/client', 'default/server', '--network', 'blue']);
    expect(text.stdout).toMatch(/Verdict: Dropped by MultiNetworkPolicy default\/server-8080-only rule isolation-ingress/);

    const allowed = await lab.traceJson(['default/client', 'default/server', '--network', 'blue', '--port', '8080']);
    expect(allowed.status?.verdict).toBe('Delivered');
    expect(allowed.status!.results!.at(-1)!.observations).toContainEqual(expect.objectContaining({ component: 'NetworkPolicy', action: 'Allowed', direction: 'Ingress', policy: expect.objectContaining({ name: 'server-8080-only', rule: 'ingress-0' }) }));
    // The VLAN network is not policed: the same packet on it is delivered.
    expect((await lab.traceJson(['default/client', 'default/server', '--network', 'vlan100'])).status?.verdict).toBe('Delivered');

    // Policed on the VLAN too: the tagged packet from the uplink goes through the trunk's policy stage on the server's node.
    expect((await lab.kubectl(['apply', '-f', '-'], VLAN_POLICY)).code).toBe(0);
    let vlanDropped: Traceflow | undefined;
    await eventually('a TCP trace on vlan100 dropped by the policy', async (saw) => {
      const tf = await lab.traceJson(['default/client', 'default/server', '--network', 'vlan100']);
      saw(tf.status);
      if (tf.status?.verdict !== 'Dropped') return undefined;
      vlanDropped = tf;
      return true;
    }, SETTLE_MS, 1000);
    expect(vlanDropped!.status!.results!.map((x) => x.node)).toEqual([node1, node2]);
    expect(vlanDropped!.status!.results![1]!.observations.at(-1)).toEqual(expect.objectContaining({ action: 'Dropped', policy: expect.objectContaining({ name: 'server-udp-53-only', rule: 'isolation-ingress' }) }));
    const udp = await lab.traceJson(['default/client', 'default/server', '--network', 'vlan100', '--protocol', 'UDP', '--port', '53']);
    expect(udp.status?.verdict).toBe('Delivered');
    expect(udp.status!.results!.at(-1)!.observations).toEqual([
      expect.objectContaining({ action: 'Received', peerNode: node1 }),
      expect.objectContaining({ component: 'NetworkPolicy', action: 'Allowed', policy: expect.objectContaining({ name: 'server-udp-53-only', rule: 'ingress-0' }) }),
      expect.objectContaining({ action: 'Delivered', pod: 'default/server' }),
    ]);
    expect((await lab.kubectl(['delete', 'multi-networkpolicy', 'server-8080-only', 'server-udp-53-only'])).code).toBe(0);
  }, 400_000);

  it('drops a packet to an address no pod has on the network: the ARP request goes unanswered', async () => {
    const unknown = '10.130.0.250';
    const r = await lab.trace(['default/client', unknown, '--network', 'vlan100']);
    expect(r.stdout).toContain(`Dropped [ARP]: no pod on default/vlan100 has ${unknown}: the source's ARP request for it goes unanswered`);
    expect(r.stdout).toMatch(/^Verdict: Dropped/m);
    // An address a pod has on the network is found by it: the server's on the overlay.
    const known = await lab.traceJson(['default/client', await ipOn('server', 'net2'), '--network', 'blue', '--protocol', 'UDP']);
    expect(known.status?.verdict).toBe('Delivered');
    expect(known.status?.network?.destinationNode).toBe(node2);
  }, 180_000);

  it('fails with the reason for a pod not on the network, an unknown network and a Service; leaves no flow behind', async () => {
    const notOn = await lab.traceJson(['default/plain', 'default/server', '--network', 'vlan100']);
    expect(notOn.status).toEqual(expect.objectContaining({ phase: 'Failed', reason: 'SourceNotAttached' }));
    const localNotOnBlue = await lab.traceJson(['default/local', 'default/server', '--network', 'blue']);
    expect(localNotOnBlue.status).toEqual(expect.objectContaining({ phase: 'Failed', reason: 'SourceNotAttached' }));
    const toPlain = await lab.traceJson(['default/client', 'default/plain', '--network', 'blue']);
    expect(toPlain.status).toEqual(expect.objectContaining({ phase: 'Failed', reason: 'DestinationNotAttached' }));
    const unknown = await lab.traceJson(['default/client', 'default/server', '--network', 'green']);
    expect(unknown.status).toEqual(expect.objectContaining({ phase: 'Failed', reason: 'NetworkNotFound' }));
    const svc = await lab.trace(['default/client', 'svc/kubernetes', '--network', 'blue']);
    expect(svc.code).not.toBe(0);
    expect(svc.stderr).toMatch(/Services are on the pod network/);
    await lab.noTraceFlowsLeft(['br-vlan', 'br-ovl-7001']);
  }, 240_000);
});

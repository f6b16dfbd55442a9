// Traceflow on a lab started by the CLI: `seine trace` injects a tagged packet at the source pod's port and prints
// the path the real datapath gave it, node by node: across nodes through the tunnel, through a Service's load
// balancing, allowed or dropped by a named NetworkPolicy rule, to an address no node holds, out of the cluster.
// Several traces run at once with their own tags; the packet never reaches the destination pod; a trace of an
// unknown pod fails with its reason; finished traces leave no flow behind. A live trace follows a datagram the client
// itself sends, which its server still answers.
import type { Traceflow } from '../../src/traceflow/api/types.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { eventually } from '../../src/util/wait.js';
import { CLIENT, SERVER, WAIT_MS } from '../harness/answering.js';
import { SETTLE_MS, TraceLab } from '../harness/trace-lab.js';

const manifest = (node1: string, node2: string): string => `
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: default, labels: {app: client}}
spec: {nodeName: ${node1}, containers: [{name: main, image: lab, command: [sleep, infinity]}]}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: default, labels: {app: web}}
spec: {nodeName: ${node2}, containers: [{name: main, image: lab, command: [sleep, infinity]}]}
---
apiVersion: v1
kind: Pod
metadata: {name: web-local, namespace: default, labels: {app: web}}
spec: {nodeName: ${node1}, containers: [{name: main, image: lab, command: [sleep, infinity]}]}
---
apiVersion: v1
kind: Pod
metadata: {name: answer, namespace: default, labels: {app: answer}}
spec:
  nodeName: ${node2}
  containers:
  - name: main
    image: lab
    command: [${JSON.stringify(process.execPath)}, -e, ${JSON.stringify(SERVER)}]
    env: [{name: POD_NAME, value: answer}]
    # Ready once it listens; a busy machine may be slow to start node.
    readinessProbe: {exec: {command: [nc, -z, -w, '2', 127.0.0.1, '8080']}, periodSeconds: 1, timeoutSeconds: 3, failureThreshold: 60}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  selector: {app: web, role: remote}
  ports: [{port: 8080, targetPort: 80}]
`;

const policy = `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-8080-only, namespace: default}
spec:
  podSelector: {matchLabels: {app: web}}
  policyTypes: [Ingress]
  ingress: [{ports: [{port: 8080, protocol: TCP}]}]
`;

describe('Traceflow: seine trace follows a packet through the real datapath', () => {
  let lab: TraceLab;
  let node1 = '';
  let node2 = '';
  const rxPackets = (pod: string): Promise<number> => lab.rxPackets(`default/${pod}`);

  beforeAll(async () => {
    lab = await TraceLab.start(2, 't');
    [node1, node2] = lab.nodes as [string, string];
    expect((await lab.kubectl(['apply', '-f', '-'], manifest(node1, node2))).code).toBe(0);
    expect((await lab.kubectl(['label', 'pod', 'web', 'role=remote'])).code).toBe(0);
    expect((await lab.kubectl(['wait', '--for=condition=Ready', 'pod/client', 'pod/web', 'pod/web-local', 'pod/answer', '--timeout=150s'])).code).toBe(0);
  }, 330_000);
  afterAll(async () => {
    await lab?.close();
  }, 150_000);

  it('follows a packet to a pod on another node: sender, tunnel, receiver, delivered at the port and not to the pod', async () => {
    const before = await rxPackets('web');
    const r = await lab.trace(['default/client', 'default/web']);
    expect(r.code).toBe(0);
    const lines = r.stdout.split('\n');
    const sender = lines.findIndex((l) => l === `node ${node1} (Sender)`);
    const receiver = lines.findIndex((l) => l === `node ${node2} (Receiver)`);
    expect(sender).toBeGreaterThanOrEqual(0);
    expect(receiver).toBeGreaterThan(sender);
    expect(r.stdout).toMatch(/SpoofGuard\s+Forwarded/);
    expect(r.stdout).toMatch(new RegExp(`Forwarded into tunnel to ${node2}`));
    expect(r.stdout).toMatch(new RegExp(`Received from ${node1} \\[Classifier\\]: through the tunnel`));
    expect(r.stdout).toMatch(/Delivered to pod default\/web /);
    expect(lines.filter(Boolean).at(-1)).toBe('Verdict: Delivered');
    // The trace's packet stopped at the pod's port: nothing arrived on the pod's interface.
    expect(await rxPackets('web')).toBe(before);
  }, 180_000);

  it('shows a Service\'s load balancing: the endpoint it chose, then the path to it', async () => {
    const web = JSON.parse((await lab.kubectl(['get', 'pod', 'web', '-o', 'json'])).stdout) as { status: { podIP: string } };
    const tf = await lab.traceJson(['default/client', 'svc/web']);
    expect(tf.status?.phase).toBe('Succeeded');
    expect(tf.status?.verdict).toBe('Delivered');
    const [first, second] = tf.status!.results!;
    expect(first!.node).toBe(node1);
    expect(first!.observations).toContainEqual(expect.objectContaining({ component: 'LoadBalancing', action: 'Translated', translatedDestination: `${web.status.podIP}:80` }));
    expect(second!.observations.at(-1)).toEqual(expect.objectContaining({ component: 'Forwarding', action: 'Delivered', pod: 'default/web' }));

    // The endpoint itself as the client: the hairpin path, translated at both ends, back to its own port.
    const self = await lab.traceJson(['default/web', 'svc/web']);
    expect(self.status?.verdict).toBe('Delivered');
    expect(self.status!.results!.map((r) => r.node)).toEqual([node2]);
    expect(self.status!.results![0]!.observations.at(-1)).toEqual(expect.objectContaining({ action: 'Delivered', pod: 'default/web' }));
  }, 180_000);

  it('names the NetworkPolicy rule that dropped a packet, and the one that allowed another', async () => {
    expect((await lab.kubectl(['apply', '-f', '-'], policy)).code).toBe(0);
    // The policy is in place once a trace to port 80 is dropped (agents realize it asynchronously).
    let dropped: Traceflow | undefined;
    await eventually('a trace to port 80 dropped by the policy', async (saw) => {
      const tf = await lab.traceJson(['default/client', 'default/web']);
      saw(tf.status);
      if (tf.status?.verdict !== 'Dropped') return undefined;
      dropped = tf;
      return true;
    }, SETTLE_MS, 1000);
    const drop = dropped!.status!.results!.find((r) => r.node === node2)!.observations.at(-1);
    expect(drop).toEqual(expect.objectContaining({ component: 'NetworkPolicy', action: 'Dropped', direction: 'Ingress', policy: { kind: 'NetworkPolicy', namespace: 'default', name: 'web-8080-only', rule: 'isolation-ingress' } }));
    const text = await lab.trace(['default/client', 'default/web']);
    expect(text.stdout).toContain('Verdict: Dropped by NetworkPolicy default/web-8080-only rule isolation-ingress');

    const allowed = await lab.traceJson(['default/client', 'default/web-local', '--port', '8080']);
    expect(allowed.status?.verdict).toBe('Delivered');
    expect(allowed.status!.results![0]!.observations).toContainEqual(expect.objectContaining({ component: 'NetworkPolicy', action: 'Allowed', direction: 'Ingress', policy: expect.objectContaining({ name: 'web-8080-only', rule: 'ingress-0' }) }));
    expect((await lab.kubectl(['delete', 'networkpolicy', 'web-8080-only'])).code).toBe(0);
  }, 300_000);

  it('drops a packet to a cluster address no node holds, and hands one to an outside address to the node', async () => {
    const [, , third] = (lab.status.nodes[0]!.podCIDR ?? '10.244.0.0/24').split('.');
    const unknown = `10.244.${Number(third) + 200}.9`;
    const nowhere = await lab.trace(['default/client', unknown]);
    expect(nowhere.stdout).toMatch(new RegExp(`Dropped \\[L3Forwarding\\]: no node's pod subnet holds ${unknown.replace(/\./g, '\\.')}`));
    expect(nowhere.stdout).toMatch(/^Verdict: Dropped/m);
    const outside = await lab.traceJson(['default/client', lab.status.externalIp, '--protocol', 'UDP', '--port', '53']);
    expect(outside.status?.verdict).toBe('ForwardedToNode');
    expect(outside.status!.results![0]!.observations.at(-1)).toEqual(expect.objectContaining({ outputPort: 'gateway' }));
  }, 180_000);

  it('runs several traces at once, each with its own tag, and removes every observation flow once they end', async () => {
    const runs = await Promise.all([lab.traceJson(['default/client', 'default/web']), lab.traceJson(['default/web', 'default/client', '--protocol', 'ICMP']), lab.traceJson(['default/web-local', 'svc/web'])]);
    for (const tf of runs) expect(tf.status?.phase).toBe('Succeeded');
    expect(runs.map((t) => t.status!.verdict)).toEqual(['Delivered', 'Delivered', 'Delivered']);
    // Traces that ran at the same time (from the start to the last node's report) never shared a tag.
    const span = (t: Traceflow): [number, number] => [Date.parse(t.status!.startTime!), Math.max(...t.status!.results!.map((r) => Date.parse(r.timestamp!)))];
    for (const [i, a] of runs.entries()) {
      for (const b of runs.slice(i + 1)) {
        const [as, ae] = span(a);
        const [bs, be] = span(b);
        if (as <= be && bs <= ae) expect(a.status!.tag).not.toBe(b.status!.tag);
      }
    }
    await lab.noTraceFlowsLeft();
  }, 240_000);

  it('follows live traffic: the next matching datagram the client sends, still answered by the server', async () => {
    const ips = JSON.parse((await lab.kubectl(['get', 'pod', 'client', 'answer', '-o', 'json'])).stdout) as { items: Array<{ status: { podIP: string } }> };
    const [clientIP, answerIP] = ips.items.map((p) => p.status.podIP) as [string, string];
    const traced = lab.traceJson(['default/client', 'default/answer', '--live', '--protocol', 'UDP', '--port', '8081']);
    let ended = false;
    void traced.finally(() => (ended = true)).catch(() => undefined);
    // One exchange after another until the trace has ended: the trace takes whichever datagram comes once every
    // node is ready. Each must be answered, the one it took included (it is delivered, not stopped at the port).
    const answers: string[] = [];
    while (!ended) {
      const r = await lab.exec('default/client', [process.execPath, '-e', CLIENT, 'udp', answerIP, '8081', '1', String(WAIT_MS), '0']);
      answers.push(...(JSON.parse(r.stdout) as string[]));
      await sleep(300);
    }
    const tf = await traced;
    expect(tf.status).toMatchObject({ phase: 'Succeeded', verdict: 'Delivered' });
    expect(tf.status?.capturedPacket).toMatchObject({ protocol: 'UDP', sourceIP: clientIP, destinationIP: answerIP, destinationPort: 8081 });
    expect(tf.status!.results!.map((r) => [r.node, r.role])).toEqual([[node1, 'Sender'], [node2, 'Receiver']]);
    expect(tf.status!.results![1]!.observations.at(-1)).toEqual(expect.objectContaining({ component: 'Forwarding', action: 'Delivered', pod: 'default/answer' }));
    expect(answers.length).toBeGreaterThan(0);
    expect(answers).toEqual(answers.map(() => `answer ${clientIP}`));
    await lab.noTraceFlowsLeft();
  }, 240_000);

  it('fails a trace of a pod that does not exist, with the reason, and the command exits 1', async () => {
    const r = await lab.trace(['default/ghost', 'default/web']);
    expect(r.code).toBe(1);
    expect(r.stdout + r.stderr).toMatch(/Failed \(SourceNotFound\): pod default\/ghost not found/);
  }, 120_000);
});

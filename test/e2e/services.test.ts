// Seine's Service proxy in a 3-node lab, with real connections: ClusterIP over TCP and UDP from pods and nodes,
// a pod reaching itself, a Service without endpoints, node ports with both external traffic policies from outside,
// from pods and from nodes, LoadBalancer ingress and external IPs, and endpoints scaled down and up while a client
// connects in a loop. Endpoints come from the lab's EndpointSlice controller, as in a cluster.
import type { V1EndpointSlice } from '@kubernetes/client-node';
import { DiscoveryV1Api } from '@kubernetes/client-node';
import { run } from '../../src/host/exec.js';
import { netnsPath } from '../../src/host/netns.js';
import { CookieOwner, decodeCookie } from '../../src/ovs/openflow/cookie.js';
import type { Lab } from '../../src/lab/lab.js';
import { eventually, podNetns, startTestLab, waitRunning } from '../harness/lab.js';
import { kubectlIn } from '../harness/policy-matrix.js';
import { connect, SERVER, SETTLE_MS, type Answer } from '../harness/answering.js';
import { agentLogLines } from '../primary/agent/node-probe.js';

describe('Services in OVS (3 nodes)', () => {
  let lab: Lab;
  let nodeIps: string[];
  let ext: string;

  const manifest = (docs: object[]): string => docs.map((d) => `---\n${JSON.stringify(d)}\n`).join('');
  const server = (name: string, node: string): object => ({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, labels: { app: 'web', pod: name } },
    spec: {
      nodeName: node,
      terminationGracePeriodSeconds: 60,
      containers: [
        {
          name: 'serve',
          image: 'lab',
          command: [process.execPath, '-e', SERVER],
          // A deleted server keeps serving 20 s: the scale-down case's terminating endpoint.
          env: [{ name: 'POD_NAME', value: name }, { name: 'TERM_LINGER_MS', value: '20000' }],
          ports: [{ name: 'http', containerPort: 8080 }],
          // Ready once it listens (Running comes before that): an endpoint added before would refuse connections.
          // Probed from inside the pod, so the NetworkPolicy case does not make it unready; failures are
          // tolerated long, as a busy machine may be slow to answer.
          readinessProbe: { exec: { command: ['nc', '-z', '-w', '2', '127.0.0.1', '8080'] }, periodSeconds: 1, timeoutSeconds: 3, failureThreshold: 30 },
        },
      ],
    },
  });

  const podNs = async (name: string): Promise<string> => podNetns(lab, await lab.core.readNamespacedPod({ name, namespace: 'default' }));
  const nodeNs = (i: number): string => netnsPath(lab.plan.nodes[i]!.netns);
  const externalNs = (): string => netnsPath(lab.plan.externalNetns);

  /** Waits until `count` connections all succeed and reach exactly the pods `pods` (each at least once). */
  async function expectReaches(what: string, netns: string, proto: 'tcp' | 'udp', host: string, port: number, pods: string[], count = 30): Promise<Answer[]> {
    return eventually(
      what,
      async (saw) => {
        const answers = await connect(netns, proto, host, port, count);
        const reached = [...new Set(answers.map((a) => a.pod ?? a.failure))].sort();
        saw(reached);
        return JSON.stringify(reached) === JSON.stringify([...pods].sort()) ? answers : undefined;
      },
      SETTLE_MS,
    );
  }

  /** Waits until connections from `netns` to host:port time out: dropped, not refused. */
  async function expectDropped(what: string, netns: string, host: string, port: number): Promise<void> {
    await eventually(what, async (saw) => {
      const answers = await connect(netns, 'tcp', host, port, 2);
      saw(answers);
      return answers.every((a) => a.failure === 'timeout') || undefined;
    }, SETTLE_MS);
  }

  /**
   * Runs `body` while a client connects in a loop (rounds of `perRound` connections 100 ms apart; `body` sees the
   * rounds so far); every answer once the loop has ended.
   */
  async function whileConnecting(netns: string, host: string, port: number, perRound: number, body: (rounds: readonly Answer[][]) => Promise<void>): Promise<Answer[]> {
    const rounds: Answer[][] = [];
    let looping = true;
    const loop = (async () => {
      while (looping) rounds.push(await connect(netns, 'tcp', host, port, perRound, 100));
    })();
    try {
      await body(rounds);
    } finally {
      looping = false;
      await loop;
    }
    return rounds.flat();
  }

  async function clusterIp(name: string): Promise<string> {
    return (await lab.core.readNamespacedService({ name, namespace: 'default' })).spec!.clusterIP!;
  }

  async function slicePods(service: string): Promise<string[]> {
    const api = lab.kubeConfig.makeApiClient(DiscoveryV1Api);
    const list = await api.listNamespacedEndpointSlice({ namespace: 'default', labelSelector: `kubernetes.io/service-name=${service}` });
    return list.items
      .flatMap((s: V1EndpointSlice) => s.endpoints ?? [])
      .filter((e) => e.conditions?.ready)
      .map((e) => e.targetRef?.name ?? '')
      .sort();
  }

  beforeAll(async () => {
    lab = await startTestLab({ nodes: 3 });
    nodeIps = lab.plan.nodes.map((n) => n.ip);
    ext = lab.plan.externalIp;
    const nodes = lab.plan.nodes.map((n) => n.name);
    await kubectlIn(
      lab,
      ['apply', '-f', '-'],
      manifest([
        server('web-1', nodes[0]!),
        server('web-2', nodes[1]!),
        server('web-3', nodes[2]!),
        { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'client' }, spec: { nodeName: nodes[0], containers: [{ name: 'c', image: 'lab', command: ['sleep', 'infinity'] }] } },
        { apiVersion: 'v1', kind: 'Service', metadata: { name: 'web' }, spec: { selector: { app: 'web' }, ports: [{ name: 'tcp', port: 80, targetPort: 'http' }, { name: 'udp', port: 53, targetPort: 8081, protocol: 'UDP' }] } },
        { apiVersion: 'v1', kind: 'Service', metadata: { name: 'nobody' }, spec: { selector: { app: 'nobody' }, ports: [{ name: 'tcp', port: 80, targetPort: 8080 }, { name: 'udp', port: 53, targetPort: 8081, protocol: 'UDP' }] } },
        { apiVersion: 'v1', kind: 'Service', metadata: { name: 'np' }, spec: { type: 'NodePort', selector: { app: 'web' }, ports: [{ name: 'tcp', port: 80, targetPort: 8080, nodePort: 30080 }, { name: 'udp', port: 53, targetPort: 8081, protocol: 'UDP', nodePort: 30053 }] } },
        { apiVersion: 'v1', kind: 'Service', metadata: { name: 'np-local' }, spec: { type: 'NodePort', externalTrafficPolicy: 'Local', selector: { app: 'web' }, ports: [{ port: 80, targetPort: 8080, nodePort: 30081 }] } },
        { apiVersion: 'v1', kind: 'Service', metadata: { name: 'lb' }, spec: { type: 'LoadBalancer', selector: { app: 'web' }, externalIPs: ['192.0.2.10'], ports: [{ port: 80, targetPort: 8080 }] } },
      ]),
    );
    for (const p of ['web-1', 'web-2', 'web-3', 'client']) await waitRunning(lab, p, 'default', 120_000);
    await eventually('the web EndpointSlice lists the three servers ready', async (saw) => {
      const pods = await slicePods('web');
      saw(pods);
      return pods.length === 3 || undefined;
    }, SETTLE_MS);
  }, 300_000);

  afterAll(async () => {
    await lab?.down();
  }, 120_000);

  it('ClusterIP: TCP and UDP from a pod reach every endpoint on every node, with the client address kept', async () => {
    const ip = await clusterIp('web');
    const client = await podNs('client');
    const clientIp = (await lab.core.readNamespacedPod({ name: 'client', namespace: 'default' })).status!.podIP!;
    const tcp = await expectReaches('TCP to the ClusterIP reaches web-1..3', client, 'tcp', ip, 80, ['web-1', 'web-2', 'web-3']);
    expect(new Set(tcp.map((a) => a.client))).toEqual(new Set([clientIp]));
    await expectReaches('UDP to the ClusterIP reaches web-1..3', client, 'udp', ip, 53, ['web-1', 'web-2', 'web-3']);
  }, 180_000);

  it('ClusterIP from a node itself, and from an endpoint to itself (hairpin)', async () => {
    const ip = await clusterIp('web');
    await expectReaches('TCP from node 2 reaches web-1..3', nodeNs(1), 'tcp', ip, 80, ['web-1', 'web-2', 'web-3']);
    // web-1 reaching itself sees the hairpin address as its client; reaching the others, its own address.
    const answers = await expectReaches('TCP from web-1 reaches web-1..3', await podNs('web-1'), 'tcp', ip, 80, ['web-1', 'web-2', 'web-3']);
    for (const a of answers) expect([a.pod, a.client]).toEqual([a.pod, a.pod === 'web-1' ? '169.254.0.254' : expect.stringMatching(/^10\.244\./)]);
    await expectReaches('UDP from web-1 reaches web-1..3', await podNs('web-1'), 'udp', ip, 53, ['web-1', 'web-2', 'web-3']);
  }, 180_000);

  it('a Service without endpoints refuses connections at once (TCP reset, ICMP port unreachable)', async () => {
    const ip = await clusterIp('nobody');
    const client = await podNs('client');
    await eventually('tcp to a Service without endpoints is refused', async (saw) => {
      const answers = await connect(client, 'tcp', ip, 80, 3);
      saw(answers);
      return answers.every((a) => a.failure === 'error:ECONNREFUSED') || undefined;
    }, SETTLE_MS);
    // The same rule refuses UDP, from the first datagram on (ICMP redirects from the gateway once used up the
    // pod's ICMP rate limit, and UDP was refused only after half a minute).
    expect((await connect(client, 'udp', ip, 53, 3)).map((a) => a.failure)).toEqual(['error:ECONNREFUSED', 'error:ECONNREFUSED', 'error:ECONNREFUSED']);
  }, 180_000);

  it('NodePort (externalTrafficPolicy Cluster) from outside, from a pod and from a node, on every node', async () => {
    for (const [i, nodeIp] of nodeIps.entries()) {
      // From outside: masqueraded to the receiving node's gateway, so replies come back through it.
      const answers = await expectReaches(`TCP from outside to node ${i + 1}:30080`, externalNs(), 'tcp', nodeIp, 30080, ['web-1', 'web-2', 'web-3']);
      expect(answers.every((a) => a.client !== ext)).toBe(true);
    }
    await expectReaches('UDP from outside to node 2:30053', externalNs(), 'udp', nodeIps[1]!, 30053, ['web-1', 'web-2', 'web-3']);
    await expectReaches('TCP from a pod on node 1 to node 3:30080', await podNs('client'), 'tcp', nodeIps[2]!, 30080, ['web-1', 'web-2', 'web-3']);
    await expectReaches('TCP from node 1 to its own 30080', nodeNs(0), 'tcp', nodeIps[0]!, 30080, ['web-1', 'web-2', 'web-3']);
  }, 240_000);

  it('NodePort (externalTrafficPolicy Local): only the node\'s own endpoint, with the client address kept', async () => {
    for (const [i, nodeIp] of nodeIps.entries()) {
      const answers = await expectReaches(`TCP from outside to node ${i + 1}:30081`, externalNs(), 'tcp', nodeIp, 30081, [`web-${i + 1}`], 10);
      expect(new Set(answers.map((a) => a.client))).toEqual(new Set([ext]));
    }
  }, 180_000);

  it('LoadBalancer ingress IPs and external IPs reach the endpoints where they are routed to a node', async () => {
    // What a load balancer controller writes once it has an address for the Service.
    await kubectlIn(lab, ['patch', 'service', 'lb', '--subresource=status', '--type=merge', '-p', JSON.stringify({ status: { loadBalancer: { ingress: [{ ip: '192.0.2.20' }] } } })]);
    // The external host routes each address to a node, as a load balancer or the network would.
    await run('ip', ['route', 'replace', '192.0.2.10/32', 'via', nodeIps[1]!], { netns: externalNs() });
    await run('ip', ['route', 'replace', '192.0.2.20/32', 'via', nodeIps[2]!], { netns: externalNs() });
    await expectReaches('TCP from outside to the external IP (via node 2)', externalNs(), 'tcp', '192.0.2.10', 80, ['web-1', 'web-2', 'web-3']);
    await expectReaches('TCP from outside to the LoadBalancer IP (via node 3)', externalNs(), 'tcp', '192.0.2.20', 80, ['web-1', 'web-2', 'web-3']);
    await expectReaches('TCP from a pod to the LoadBalancer IP', await podNs('client'), 'tcp', '192.0.2.20', 80, ['web-1', 'web-2', 'web-3']);
  }, 240_000);

  it('internalTrafficPolicy Local: a pod reaches only its own node\'s endpoints; with none there, its connections are dropped', async () => {
    await kubectlIn(
      lab,
      ['apply', '-f', '-'],
      manifest([
        { apiVersion: 'v1', kind: 'Service', metadata: { name: 'itp' }, spec: { selector: { app: 'web' }, internalTrafficPolicy: 'Local', ports: [{ port: 80, targetPort: 8080 }] } },
        { apiVersion: 'v1', kind: 'Service', metadata: { name: 'itp-elsewhere' }, spec: { selector: { pod: 'web-2' }, internalTrafficPolicy: 'Local', ports: [{ port: 80, targetPort: 8080 }] } },
      ]),
    );
    try {
      const client = await podNs('client');
      await expectReaches('the client on node 1 reaches only web-1', client, 'tcp', await clusterIp('itp'), 80, ['web-1'], 10);
      const elsewhere = await clusterIp('itp-elsewhere');
      // Its only endpoint is on node 2: dropped on node 1 (a timeout), not refused as a Service without endpoints is.
      await expectDropped('the client\'s connections to a Service with endpoints only elsewhere time out', client, elsewhere, 80);
      await expectReaches('web-2 itself reaches it', await podNs('web-2'), 'tcp', elsewhere, 80, ['web-2'], 3);
    } finally {
      await kubectlIn(lab, ['delete', 'service', 'itp', 'itp-elsewhere', '--ignore-not-found']);
    }
  }, 180_000);

  it('sessionAffinity ClientIP: a client sticks to one endpoint while it keeps connecting, and the affinity is forgotten after the timeout', async () => {
    // 10 s of affinity: each new connection renews it (OVS's idle timeout), so connections a second apart keep it
    // however slow the machine (a connection gives up after WAIT_MS).
    await kubectlIn(lab, ['apply', '-f', '-'], manifest([{ apiVersion: 'v1', kind: 'Service', metadata: { name: 'sticky' }, spec: { selector: { app: 'web' }, sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 10 } }, ports: [{ port: 80, targetPort: 8080 }] } }]));
    try {
      const ip = await clusterIp('sticky');
      const client = await podNs('client');
      const clientIp = (await lab.core.readNamespacedPod({ name: 'client', namespace: 'default' })).status!.podIP!;
      // What the client's node learned for it: the flows its learn action added (their own cookie owner).
      const learned = async (): Promise<string[]> =>
        (await run('ovs-ofctl', ['-O', 'OpenFlow15', 'dump-flows', lab.nodes[0]!.ovs.bridgeMgmt('br-int')])).stdout
          .split('\n')
          .filter((l) => l.includes(`nw_src=${clientIp},`) && l.includes(`nw_dst=${ip},`))
          .filter((l) => decodeCookie(BigInt(/cookie=(0x[0-9a-f]+)/.exec(l)?.[1] ?? '0')).owner === CookieOwner.serviceAffinity);
      await eventually('the sticky Service answering', async (saw) => {
        const [a] = await connect(client, 'tcp', ip, 80, 1);
        saw(a);
        return a?.pod !== undefined || undefined;
      }, SETTLE_MS);
      for (const round of [1, 2]) {
        const answers = await connect(client, 'tcp', ip, 80, round === 1 ? 8 : 4, 1000);
        // Every connection of the round to the one endpoint the first was given.
        expect([round, [...new Set(answers.map((a) => a.pod ?? a.failure))]]).toEqual([round, [answers[0]!.pod]]);
        expect(await learned()).toHaveLength(1);
        // Idle for longer than the timeout: OVS removes the learned flow, and the next connection is balanced anew.
        if (round === 1) await eventually('the affinity forgotten after its timeout', async (saw) => ((await learned()).length === 0 ? true : (saw(await learned()), undefined)), SETTLE_MS, 1000);
      }
    } finally {
      await kubectlIn(lab, ['delete', 'service', 'sticky', '--ignore-not-found']);
    }
  }, 360_000);

  it('the health check node port of an externalTrafficPolicy Local Service: 200 where it has an endpoint, 503 elsewhere', async () => {
    await kubectlIn(lab, ['apply', '-f', '-'], manifest([{ apiVersion: 'v1', kind: 'Service', metadata: { name: 'lb-local' }, spec: { type: 'LoadBalancer', externalTrafficPolicy: 'Local', selector: { pod: 'web-1' }, ports: [{ port: 80, targetPort: 8080 }] } }]));
    const port = (await lab.core.readNamespacedService({ name: 'lb-local', namespace: 'default' })).spec!.healthCheckNodePort!;
    expect(port).toBeGreaterThanOrEqual(30000);
    // The body and the status code; " 000" when nothing answers.
    const probe = (nodeIp: string): Promise<string> =>
      run('curl', ['-s', '--max-time', '5', '-w', ' %{http_code}', `http://${nodeIp}:${port}/`], { netns: externalNs() }).then(
        (r) => r.stdout,
        () => ' 000',
      );
    await eventually('node 1 answers 200 (one local endpoint), node 2 503 (none)', async (saw) => {
      const [one, two] = [await probe(nodeIps[0]!), await probe(nodeIps[1]!)];
      saw({ one, two });
      return one.endsWith(' 200') && JSON.parse(one.slice(0, -4)).localEndpoints === 1 && two.endsWith(' 503') ? true : undefined;
    }, SETTLE_MS);
    await lab.core.deleteNamespacedService({ name: 'lb-local', namespace: 'default' });
    await eventually('the health check node port closed with its Service', async (saw) => {
      const answer = await probe(nodeIps[0]!);
      saw(answer);
      return answer === ' 000' || undefined;
    }, SETTLE_MS);
  }, 180_000);

  it('NetworkPolicy applies to the endpoint behind the ClusterIP (after the translation)', async () => {
    await kubectlIn(
      lab,
      ['apply', '-f', '-'],
      manifest([
        { apiVersion: 'v1', kind: 'Service', metadata: { name: 'only-2' }, spec: { selector: { pod: 'web-2' }, ports: [{ port: 80, targetPort: 8080 }] } },
        { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name: 'web-2-from-allowed' }, spec: { podSelector: { matchLabels: { pod: 'web-2' } }, ingress: [{ from: [{ podSelector: { matchLabels: { role: 'allowed' } } }] }] } },
      ]),
    );
    try {
      const ip = await clusterIp('only-2');
      const client = await podNs('client');
      await expectDropped('the client, not allowed by web-2\'s policy, cannot reach it through the ClusterIP', client, ip, 80);
      await kubectlIn(lab, ['label', 'pod', 'client', 'role=allowed']);
      await expectReaches('the client, now allowed, reaches web-2 through the ClusterIP', client, 'tcp', ip, 80, ['web-2'], 5);
    } finally {
      await kubectlIn(lab, ['label', 'pod', 'client', 'role-']);
      await kubectlIn(lab, ['delete', 'networkpolicy', 'web-2-from-allowed', '--ignore-not-found']);
      await kubectlIn(lab, ['delete', 'service', 'only-2', '--ignore-not-found']);
    }
  }, 180_000);

  it('the agent killed and restarted: new connections through the ClusterIP keep working throughout', async () => {
    const ip = await clusterIp('web');
    const client = await podNs('client');
    const node = lab.nodes[0]!;
    const agent = lab.agents.get(node.plan.name)!;
    const pid = agent.pid;
    const line = agentLogLines(node).length;
    const all = await whileConnecting(client, ip, 80, 10, async (rounds) => {
      agent.crash();
      await eventually('the restarted agent of node 1 synced the Services', async () => agentLogLines(node).slice(line).some((l) => l.includes('"services started"')) || undefined, SETTLE_MS, 200);
      expect(agent.pid).not.toBe(pid);
      // A few more rounds after the restarted agent's first sync.
      const after = rounds.length;
      await eventually('two rounds of connections after the sync', async () => rounds.length >= after + 2 || undefined, SETTLE_MS);
    });
    expect(all.filter((a) => a.failure)).toEqual([]);
  }, 240_000);

  it('ovs-vswitchd restarted (its flows and groups lost): the agent puts the Services back', async () => {
    const ip = await clusterIp('web');
    const node = lab.nodes[0]!;
    const line = agentLogLines(node).length;
    await node.ovs.restartVswitchd({ flowRestoreWait: true });
    await eventually('node 1\'s agent restored the datapath', async () => agentLogLines(node).slice(line).some((l) => l.includes('"datapath restored"')) || undefined, SETTLE_MS, 200);
    await expectReaches('TCP from node 1\'s client reaches web-1..3 again', await podNs('client'), 'tcp', ip, 80, ['web-1', 'web-2', 'web-3']);
    await expectReaches('the hairpin works again', await podNs('web-1'), 'tcp', ip, 80, ['web-1', 'web-2', 'web-3']);
  }, 180_000);

  it('endpoints scaled down and up while a client connects in a loop: no connection lost, none to a gone endpoint', async () => {
    const ip = await clusterIp('web');
    const client = await podNs('client');
    // Each round: 20 connections 100 ms apart, running while the endpoints change.
    const all = await whileConnecting(client, ip, 80, 20, async () => {
      // web-3 terminates: it keeps serving for its grace while the proxy takes it out of the Service.
      await lab.core.deleteNamespacedPod({ name: 'web-3', namespace: 'default' });
      await eventually('web-3 is out of the web EndpointSlice', async (saw) => {
        const pods = await slicePods('web');
        saw(pods);
        return !pods.includes('web-3') || undefined;
      }, SETTLE_MS);
      await expectReaches('connections reach only web-1 and web-2', client, 'tcp', ip, 80, ['web-1', 'web-2']);
      await kubectlIn(lab, ['apply', '-f', '-'], manifest([server('web-4', lab.plan.nodes[2]!.name)]));
      await waitRunning(lab, 'web-4', 'default', 120_000);
      await expectReaches('connections reach web-4 too', client, 'tcp', ip, 80, ['web-1', 'web-2', 'web-4']);
    });
    expect(all.length).toBeGreaterThan(0);
    expect(all.filter((a) => a.failure)).toEqual([]);
  }, 300_000);

  it('deleting the Services leaves no flow, group, route or nft entry of theirs behind', async () => {
    await kubectlIn(lab, ['delete', 'service', 'web', 'nobody', 'np', 'np-local', 'lb']);
    // What stays is the kubernetes Service's: one frontend, its group and its one endpoint.
    for (const node of lab.nodes) {
      await eventually(`node ${node.plan.name} holds only the kubernetes Service`, async (saw) => {
        const flows = (await run('ovs-ofctl', ['-O', 'OpenFlow15', 'dump-flows', node.ovs.bridgeMgmt('br-int'), 'table=42'])).stdout;
        const groups = (await run('ovs-ofctl', ['-O', 'OpenFlow15', 'dump-groups', node.ovs.bridgeMgmt('br-int')])).stdout;
        const nft = (await run('nft', ['list', 'table', 'ip', 'seine-services'], { netns: node.netns })).stdout;
        const routes = (await run('ip', ['route', 'show', 'proto', '118'], { netns: node.netns })).stdout;
        const frontends = flows.split('\n').filter((l) => l.includes('nw_dst='));
        const seen = { frontends: frontends.length, groups: groups.split('\n').filter((l) => l.includes('group_id=')).length, nodePorts: /3008[01]|30053/.test(nft), externals: /192\.0\.2\./.test(nft + routes) };
        saw(seen);
        return JSON.stringify(seen) === JSON.stringify({ frontends: 1, groups: 1, nodePorts: false, externals: false }) || undefined;
      }, SETTLE_MS);
    }
  }, 180_000);
});

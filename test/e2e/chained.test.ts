// Seine chained after a cloud's CNI (the lab's EKS and AKS stand-ins): pods run on the cloud CNI first, Seine is
// installed and takes them over without a restart while a ping keeps going, NetworkPolicy and Services apply to
// them (and Traceflow follows a packet through them), a new pod is taken over at its ADD, a rewritten cloud conflist
// is followed, DEL and uninstall give the node back exactly as the cloud CNI had it.
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { commandLine, run } from '../../src/host/exec.js';
import { netnsPath } from '../../src/host/netns.js';
import ipaddr from 'ipaddr.js';
import { INTERNET_IP, type CloudProfile } from '../../src/lab/cloud/plan.js';
import type { Lab } from '../../src/lab/lab.js';
import type { Traceflow } from '../../src/traceflow/api/types.js';
import { repoRoot } from '../../src/util/paths.js';
import { connect, SERVER, SETTLE_MS, type Answer } from '../harness/answering.js';
import { eventually, podNetns, startTestLab, waitRunning } from '../harness/lab.js';
import { kubectlIn } from '../harness/policy-matrix.js';

/** Longest run of lost echoes (at 0.2 s each) a take-over may cost: none in principle, 2 s for a loaded machine's stalls. */
const MAX_LOST_IN_A_ROW = 10;

/** The VPC CNI's DaemonSet as EKS installs it with its network policy agent on (the lab runs no DaemonSets: the object only). */
const awsNodeWithPolicyAgent = {
  apiVersion: 'apps/v1',
  kind: 'DaemonSet',
  metadata: { name: 'aws-node', namespace: 'kube-system' },
  spec: {
    selector: { matchLabels: { 'k8s-app': 'aws-node' } },
    template: {
      metadata: { labels: { 'k8s-app': 'aws-node' } },
      spec: {
        containers: [
          { name: 'aws-node', image: 'amazon-k8s-cni' },
          { name: 'aws-eks-nodeagent', image: 'aws-network-policy-agent', args: ['--enable-ipv6=false', '--enable-network-policy=true'] },
        ],
      },
    },
  },
};

interface Ping {
  child: ChildProcess;
  out: string[];
}

/** A ping every 0.2 s from a namespace until stopped. */
function startPing(netns: string, to: string): Ping {
  const argv = commandLine('ping', ['-n', '-i', '0.2', '-W', '1', to], netns);
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  const out: string[] = [];
  child.stdout!.on('data', (d: Buffer) => out.push(d.toString()));
  return { child, out };
}

/** Stops it; the sequence numbers answered, and the longest run of unanswered ones between the first and the last. */
async function stopPing(p: Ping): Promise<{ answered: number; longestLoss: number }> {
  const exited = new Promise((r) => p.child.once('exit', r));
  p.child.kill('SIGINT');
  await exited;
  const seqs = [...p.out.join('').matchAll(/icmp_seq=(\d+)/g)].map((m) => Number(m[1])).sort((a, b) => a - b);
  let longestLoss = 0;
  for (let i = 1; i < seqs.length; i++) longestLoss = Math.max(longestLoss, seqs[i]! - seqs[i - 1]! - 1);
  return { answered: seqs.length, longestLoss };
}

const normalizeIptables = (text: string): string =>
  text
    .split('\n')
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => l.replace(/\[\d+:\d+\]/, ''))
    .join('\n');

function chained(profile: CloudProfile, conflist: string): void {
  describe(`Seine chained after the ${profile} stand-in (2 nodes)`, () => {
    let lab: Lab;
    const nodeNs = (i: number): string => netnsPath(lab.plan.nodes[i]!.netns);
    const ns = async (pod: string): Promise<string> => podNetns(lab, await lab.core.readNamespacedPod({ name: pod, namespace: 'default' }));
    const ip = async (pod: string): Promise<string> => (await lab.core.readNamespacedPod({ name: pod, namespace: 'default' })).status!.podIP!;
    const apply = (docs: object[]): Promise<string> => kubectlIn(lab, ['apply', '-f', '-'], docs.map((d) => `---\n${JSON.stringify(d)}\n`).join(''));

    const server = (name: string, node: number, labels: Record<string, string>): object => ({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name, labels: { ...labels, pod: name } },
      spec: { nodeName: lab.plan.nodes[node]!.name, containers: [{ name: 'serve', image: 'lab', command: [process.execPath, '-e', SERVER], env: [{ name: 'POD_NAME', value: name }] }] },
    });
    const client = (name: string, node: number, labels: Record<string, string>): object => ({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name, labels: { ...labels, pod: name } },
      spec: { nodeName: lab.plan.nodes[node]!.name, containers: [{ name: 'main', image: 'lab', command: ['sleep', 'infinity'] }] },
    });
    const policy = {
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: { name: 'web-from-clients', namespace: 'default' },
      spec: { podSelector: { matchLabels: { app: 'web' } }, ingress: [{ from: [{ podSelector: { matchLabels: { role: 'client' } } }], ports: [{ port: 8080 }] }] },
    };

    /** Waits until a connection from `from` to `to`:8080 gets the answer expected: the server's name, or a drop. */
    async function expectTcp(from: string, to: string, reached: boolean): Promise<void> {
      const target = await ip(to);
      await eventually(
        `${from} -> ${to} (${target}:8080) ${reached ? 'answered by ' + to : 'dropped'}`,
        async (saw) => {
          const [a] = await connect(await ns(from), 'tcp', target, 8080, 1);
          saw(a);
          return (reached ? a?.pod === to : a?.failure === 'timeout') ? true : undefined;
        },
        SETTLE_MS,
      );
    }

    /** The node's routes, ip rules, iptables rules and nft tables: what the cloud CNI (and Seine) set up. */
    async function hostState(i: number): Promise<string> {
      const routes = (await run('ip', ['-4', 'route', 'show', 'table', 'all'], { netns: nodeNs(i) })).stdout.split('\n').filter((l) => l && !/ table local /.test(l)).sort();
      const rules = (await run('ip', ['-4', 'rule', 'show'], { netns: nodeNs(i) })).stdout;
      const iptables = normalizeIptables((await run('iptables-save', [], { netns: nodeNs(i) })).stdout);
      const nftTables = (await run('nft', ['list', 'tables'], { netns: nodeNs(i) })).stdout;
      return [...routes, rules, iptables, nftTables].join('\n');
    }

    /** Whether a pod's host veth is a port of the node's br-int. */
    async function takenOver(pod: string): Promise<boolean> {
      const p = await lab.core.readNamespacedPod({ name: pod, namespace: 'default' });
      const node = lab.nodes.find((n) => n.plan.name === p.spec!.nodeName)!;
      const routes = (await run('ip', ['-4', 'route', 'show', `${p.status!.podIP}/32`], { netns: node.netns })).stdout;
      return /dev seine-gw0/.test(routes);
    }

    let before: string[] = [];

    beforeAll(async () => {
      lab = await startTestLab({ profile, seine: false, nodes: 2 });
      await apply([server('web', 0, { app: 'web' }), server('web2', 1, { app: 'web' }), client('client', 0, { role: 'client' }), client('other', 1, {}), client('lost', 1, {})]);
      for (const p of ['web', 'web2', 'client', 'other', 'lost']) await waitRunning(lab, p, 'default', 120_000);
      // A pod Seine cannot take over: the runtime's record of its ADD is gone.
      const lost = await lab.core.readNamespacedPod({ name: 'lost', namespace: 'default' });
      const results = join(lab.nodes[1]!.dirs.cniCacheDir, 'results');
      for (const f of readdirSync(results)) if (readFileSync(join(results, f), 'utf8').includes(`"K8S_POD_NAME","lost"`)) rmSync(join(results, f));
      expect(lost.status?.podIP).toBeDefined();
      before = [await hostState(0), await hostState(1)];
    }, 300_000);

    afterAll(async () => {
      await lab?.down();
    }, 120_000);

    it('takes over running pods without restarting them, while a ping across nodes keeps going', async () => {
      const uids = await Promise.all(['web', 'web2', 'client', 'other'].map(async (p) => (await lab.core.readNamespacedPod({ name: p, namespace: 'default' })).metadata!.uid));
      // EKS: aws-node as a cluster with the VPC CNI's network policy agent turned on has it.
      if (profile === 'eks') await apply([awsNodeWithPolicyAgent]);
      const ping = startPing(await ns('client'), await ip('web2'));
      try {
        await lab.installSeine();
        for (const p of ['web', 'web2', 'client', 'other']) await eventually(`pod ${p} taken over`, async () => ((await takenOver(p)) ? true : undefined), SETTLE_MS);
        // A few more seconds of ping through OVS.
        await new Promise((r) => setTimeout(r, 3000));
      } finally {
        const report = await stopPing(ping);
        expect(report.answered).toBeGreaterThan(0);
        expect(report.longestLoss).toBeLessThanOrEqual(MAX_LOST_IN_A_ROW);
      }
      const after = await Promise.all(['web', 'web2', 'client', 'other'].map(async (p) => (await lab.core.readNamespacedPod({ name: p, namespace: 'default' })).metadata!.uid));
      expect(after).toEqual(uids);
      const events = await kubectlIn(lab, ['get', 'events', '-A', '--field-selector', 'reason=PodsTakenOver', '-o', 'jsonpath={.items[*].message}']);
      expect(events).toMatch(/default\/web/);
      // The one it could not take over is named, with why, and left as the cloud's CNI made it.
      const warning = await eventually('the PodsNotTakenOver Event', async (saw) => {
        const text = await kubectlIn(lab, ['get', 'events', '-A', '--field-selector', 'reason=PodsNotTakenOver', '-o', 'jsonpath={.items[*].message}']);
        saw(text);
        return text.includes('default/lost') ? text : undefined;
      }, SETTLE_MS);
      expect(warning).toMatch(/default\/lost \(.*cached CNI result/);
      expect(await takenOver('lost')).toBe(false);
      if (profile === 'eks') {
        const text = await eventually('the AwsNetworkPolicyAgentEnabled Event', async (saw) => {
          const t = await kubectlIn(lab, ['get', 'events', '-A', '--field-selector', 'reason=AwsNetworkPolicyAgentEnabled', '-o', 'jsonpath={.items[*].message}']);
          saw(t);
          return t || undefined;
        }, SETTLE_MS);
        expect(text).toMatch(/--enable-network-policy=true/);
        await kubectlIn(lab, ['-n', 'kube-system', 'delete', 'daemonset', 'aws-node']);
      }
    }, 300_000);

    if (profile === 'eks') {
      it('keeps the AWS VPC CNI\'s egress working for pods on the secondary ENI (its connmark rules, now through the gateway)', async () => {
        // A pod on each ENI: the second pod of a node lands on the secondary one.
        const onEni = async (eni: number): Promise<string> => {
          for (const name of ['web', 'web2', 'client', 'other']) {
            const p = await lab.core.readNamespacedPod({ name, namespace: 'default' });
            const node = lab.plan.nodes.find((n) => n.name === p.spec!.nodeName)!;
            const cidr = node.cloud!.enis[eni]!.podCidr;
            if (ipaddr.IPv4.parse(p.status!.podIP!).match(ipaddr.IPv4.parseCIDR(cidr))) return name;
          }
          throw new Error(`no pod on ENI ${eni}`);
        };
        for (const name of [await onEni(0), await onEni(1)]) {
          // Outside the VPC: SNATed to the primary ENI's address, so it must leave by the primary ENI (the VPC
          // drops it elsewhere): the connection mark set for the gateway's traffic routes it there.
          await eventually(`${name} reaches the internet stand-in ${INTERNET_IP}`, async (saw) => {
            const ok = await run('ping', ['-c', '1', '-W', '2', INTERNET_IP], { netns: await ns(name), timeoutMs: 10_000 }).then(() => true, (e: Error) => (saw(e.message), false));
            return ok ? true : undefined;
          }, SETTLE_MS);
        }
      }, 300_000);
    }

    it('enforces NetworkPolicy on the taken-over pods', async () => {
      await expectTcp('other', 'web', true);
      await apply([policy]);
      await expectTcp('client', 'web', true);
      await expectTcp('client', 'web2', true);
      await expectTcp('other', 'web', false);
      await expectTcp('other', 'web2', false);
    }, 300_000);

    it('traces a packet across the cloud\'s network to a taken-over pod, and names the policy that drops another', async () => {
      const trace = async (from: string, to: string): Promise<Traceflow> => {
        const { stdout } = await run(process.execPath, [join(repoRoot(), 'bin', 'seine'), 'trace', '--kubeconfig', lab.kubeconfigPath, '--timeout', '60', `default/${from}`, `default/${to}`, '--port', '8080', '-o', 'json'], { timeoutMs: 150_000 });
        return JSON.parse(stdout) as Traceflow;
      };
      const [node1, node2] = lab.plan.nodes.map((n) => n.name) as [string, string];
      // client (node 1) -> web2 (node 2): out by the gateway to the node's routing, in by the gateway on web2's node.
      const across = await trace('client', 'web2');
      expect(across.status).toMatchObject({ phase: 'Succeeded', verdict: 'Delivered' });
      expect(across.status!.results!.map((r) => [r.node, r.role])).toEqual([[node1, 'Sender'], [node2, 'Receiver']]);
      expect(across.status!.results![0]!.observations.at(-1)).toMatchObject({ component: 'Forwarding', action: 'Forwarded', outputPort: 'gateway' });
      expect(across.status!.results![1]!.observations).toEqual([
        expect.objectContaining({ component: 'Forwarding', action: 'Received', table: 'Classifier' }),
        expect.objectContaining({ component: 'NetworkPolicy', action: 'Allowed', direction: 'Ingress' }),
        expect.objectContaining({ component: 'Forwarding', action: 'Delivered', pod: 'default/web2' }),
      ]);
      // other (node 2) -> web (node 1): dropped on web's node by the policy's isolation.
      const dropped = await trace('other', 'web');
      expect(dropped.status).toMatchObject({ phase: 'Succeeded', verdict: 'Dropped' });
      expect(dropped.status!.results!.at(-1)).toMatchObject({ node: node1, role: 'Receiver' });
      expect(dropped.status!.results!.at(-1)!.observations.at(-1)).toMatchObject({ component: 'NetworkPolicy', action: 'Dropped', policy: { kind: 'NetworkPolicy', namespace: 'default', name: 'web-from-clients', rule: 'isolation-ingress' } });
    }, 300_000);

    it('serves a NodePort Service over them: ClusterIP from a pod, the node port from outside', async () => {
      await apply([{ apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: 'default' }, spec: { type: 'NodePort', selector: { app: 'web' }, ports: [{ port: 80, targetPort: 8080 }] } }]);
      // The policy lets clients in only; the node port's traffic comes from elsewhere: allow it for this case.
      await apply([{ ...policy, metadata: { name: 'web-from-all', namespace: 'default' }, spec: { podSelector: { matchLabels: { app: 'web' } }, ingress: [{}] } }]);
      const svc = await lab.core.readNamespacedService({ name: 'web', namespace: 'default' });
      const reachesBoth = async (what: string, netns: string, host: string, port: number): Promise<void> => {
        await eventually(what, async (saw) => {
          const answers: Answer[] = await connect(netns, 'tcp', host, port, 20);
          const got = [...new Set(answers.map((a) => a.pod ?? a.failure))].sort();
          saw(got);
          return JSON.stringify(got) === '["web","web2"]' ? true : undefined;
        }, SETTLE_MS);
      };
      await reachesBoth('ClusterIP from client reaches web and web2', await ns('client'), svc.spec!.clusterIP!, 80);
      for (const node of lab.plan.nodes) await reachesBoth(`node port on ${node.name} from the external host`, netnsPath(lab.plan.externalNetns), node.ip, svc.spec!.ports![0]!.nodePort!);
      await kubectlIn(lab, ['delete', 'networkpolicy', 'web-from-all']);
    }, 300_000);

    it('gives taken-over pods a VLAN secondary network, and steers their traffic through a service chain', async () => {
      const vlan = profile === 'eks' ? 301 : 302;
      const annotated = (name: string, node: number, networks: string, labels: Record<string, string>, command: string[]): object => ({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name, labels: { ...labels, pod: name }, annotations: { 'k8s.v1.cni.cncf.io/networks': networks } },
        spec: { nodeName: lab.plan.nodes[node]!.name, containers: [{ name: 'main', image: 'lab', command }] },
      });
      // The firewall CNF bridges its two function ports and counts the web traffic it forwards.
      const firewall = `ip link add br0 type bridge 2>/dev/null; ip link set in0 master br0 && ip link set out0 master br0 && ip link set br0 up && printf 'table bridge cnf { chain cnfchain { type filter hook forward priority 0; tcp dport 8080 counter; }; }\\n' | nft -f - && exec sleep infinity`;
      await apply([
        { apiVersion: 'crd.seine.dev/v1alpha1', kind: 'IPPool', metadata: { name: 'lan' }, spec: { ipRanges: [{ cidr: '10.31.0.0/24' }], subnetInfo: { gateway: '10.31.0.1', prefixLength: 24, vlan } } },
        { apiVersion: 'k8s.cni.cncf.io/v1', kind: 'NetworkAttachmentDefinition', metadata: { name: 'lan', namespace: 'default' }, spec: { config: JSON.stringify({ cniVersion: '1.0.0', type: 'seine', networkType: 'vlan', vlan, mtu: 1500, ipam: { type: 'seine', ippools: ['lan'] } }) } },
        { apiVersion: 'k8s.cni.cncf.io/v1', kind: 'NetworkAttachmentDefinition', metadata: { name: 'chain-port', namespace: 'default' }, spec: { config: '{"cniVersion": "1.0.0", "type": "seine", "networkType": "function"}' } },
        annotated('lan-a', 0, 'lan', {}, ['sleep', 'infinity']),
        annotated('lan-b', 1, 'lan', {}, ['sleep', 'infinity']),
        annotated('fw', 0, '[{"name": "chain-port", "interface": "in0"}, {"name": "chain-port", "interface": "out0"}]', { cnf: 'fw' }, ['sh', '-c', firewall]),
        server('chained-web', 0, { role: 'chained-web' }),
        client('chained-client', 0, { role: 'chained-client' }),
        {
          apiVersion: 'crd.seine.dev/v1alpha1',
          kind: 'ServiceChain',
          metadata: { name: 'fw', namespace: 'default' },
          spec: {
            classifier: { source: { podSelector: { matchLabels: { role: 'chained-client' } } }, destination: { podSelector: { matchLabels: { role: 'chained-web' } } }, protocol: 'TCP', ports: [{ port: 8080 }] },
            hops: [{ name: 'firewall', podSelector: { matchLabels: { cnf: 'fw' } }, interfaces: { ingress: 'in0', egress: 'out0' }, mode: 'Transparent', failurePolicy: 'FailClosed' }],
          },
        },
      ]);
      try {
        for (const p of ['lan-a', 'lan-b', 'fw', 'chained-web', 'chained-client']) await waitRunning(lab, p, 'default', 120_000);
        expect(await takenOver('lan-a')).toBe(true);
        const lanB = (await run('ip', ['-4', '-o', 'addr', 'show', 'net1'], { netns: await ns('lan-b') })).stdout;
        const target = /inet (\S+)\//.exec(lanB)?.[1];
        expect(target).toMatch(/^10\.31\.0\./);
        await eventually(`lan-a reaches lan-b on VLAN ${vlan} (${target})`, async (saw) => {
          const ok = await run('ping', ['-c', '1', '-W', '2', target!], { netns: await ns('lan-a'), timeoutMs: 10_000 }).then(() => true, (e: Error) => (saw(e.message), false));
          return ok ? true : undefined;
        }, SETTLE_MS);
        // The policy of the earlier cases admits clients only; this case's pods are not web.
        await eventually('the chain Ready', async (saw) => {
          const chain = JSON.parse(await kubectlIn(lab, ['get', 'servicechain', 'fw', '-o', 'json'])) as { status?: { conditions?: Array<{ type: string; status: string }> } };
          saw(chain.status);
          return chain.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ? true : undefined;
        }, 120_000);
        await expectTcp('chained-client', 'chained-web', true);
        const counted = (await run('nft', ['list', 'table', 'bridge', 'cnf'], { netns: await ns('fw') })).stdout;
        expect(Number(/counter packets (\d+)/.exec(counted)?.[1] ?? 0)).toBeGreaterThan(0);
      } finally {
        // Also after a failure: the later cases count what is left on the nodes.
        await kubectlIn(lab, ['delete', 'servicechain', 'fw', '--ignore-not-found']);
        await kubectlIn(lab, ['delete', 'pod', 'lan-a', 'lan-b', 'fw', 'chained-web', 'chained-client', '--ignore-not-found', '--wait=true']);
      }
    }, 300_000);

    it('takes a new pod over at its ADD, and follows a rewritten cloud conflist for the next one', async () => {
      await apply([server('web3', 0, { app: 'web' })]);
      await waitRunning(lab, 'web3', 'default', 120_000);
      expect(await takenOver('web3')).toBe(true);
      await expectTcp('other', 'web3', false);
      await expectTcp('client', 'web3', true);
      // What a restart of the cloud's node agent does: its conflist written again (here with one key changed).
      const node = lab.nodes[0]!;
      const path = join(node.dirs.cniConfDir, conflist);
      const cloud = JSON.parse(readFileSync(path, 'utf8')) as { plugins: Array<Record<string, unknown>> };
      cloud.plugins[0]!.rewrittenBy = 'restart';
      writeFileSync(path, JSON.stringify(cloud, null, 2));
      // install-cni promises 2 s; a loaded machine gets far more before this counts as missed.
      await eventually('05-seine.conflist re-derived', async (saw) => {
        const derived = readFileSync(join(node.dirs.cniConfDir, '05-seine.conflist'), 'utf8');
        saw(derived);
        return derived.includes('"rewrittenBy"') ? true : undefined;
      }, 30_000);
      await apply([server('web4', 0, { app: 'web' })]);
      await waitRunning(lab, 'web4', 'default', 120_000);
      expect(await takenOver('web4')).toBe(true);
      await expectTcp('other', 'web4', false);
      await expectTcp('client', 'web4', true);
    }, 300_000);

    it('DEL gives a pod\'s link back: nothing of Seine is left for it', async () => {
      const target = await ip('web4');
      await kubectlIn(lab, ['delete', 'pod', 'web3', 'web4', '--wait=true']);
      const routes = (await run('ip', ['-4', 'route', 'show', 'proto', '119'], { netns: nodeNs(0) })).stdout;
      expect(routes).not.toContain(target);
      const ports = (await run('ovs-vsctl', ['--db', `unix:${lab.nodes[0]!.ovs.dbSocket}`, 'list-ports', 'br-int'])).stdout.split('\n').filter(Boolean);
      // The pods' veths on node 0: web's and client's remain.
      expect(ports.filter((p) => /^(eni|azv)/.test(p)).length).toBe(2);
    }, 300_000);

    it('uninstall gives every node back exactly as the cloud CNI had it, pods running throughout', async () => {
      await kubectlIn(lab, ['delete', 'networkpolicy', 'web-from-clients']);
      await kubectlIn(lab, ['delete', 'service', 'web']);
      const ping = startPing(await ns('client'), await ip('web2'));
      try {
        await lab.uninstallSeine();
      } finally {
        const report = await stopPing(ping);
        expect(report.longestLoss).toBeLessThanOrEqual(MAX_LOST_IN_A_ROW);
      }
      expect(await hostState(0)).toBe(before[0]);
      expect(await hostState(1)).toBe(before[1]);
      await expectTcp('other', 'web', true);
    }, 300_000);
  });
}

chained('eks', '10-aws.conflist');
chained('aks', '10-azure.conflist');

describe('Seine chained after Azure CNI in bridge mode (1 node)', () => {
  let lab: Lab;
  afterAll(async () => {
    await lab?.down();
  }, 120_000);

  it('refuses every pod with a clear error, leaving the node as the cloud CNI has it', async () => {
    lab = await startTestLab({ profile: 'aks', azureMode: 'bridge', nodes: 1 });
    const node = netnsPath(lab.plan.nodes[0]!.netns);
    await kubectlIn(lab, ['run', 'bridged', '--image', 'lab', '--restart', 'Never', '--overrides', JSON.stringify({ spec: { nodeName: lab.plan.nodes[0]!.name } }), '--', 'sleep', 'infinity']);
    // The kubelet retries the sandbox: the Event of an attempt that reached Seine's agent.
    const message = await eventually('the FailedCreatePodSandBox Event of Seine\'s refusal', async (saw) => {
      const text = await kubectlIn(lab, ['get', 'events', '--field-selector', 'reason=FailedCreatePodSandBox', '-o', 'jsonpath={.items[*].message}']);
      saw(text);
      return /enslaved/.test(text) ? text : undefined;
    }, SETTLE_MS);
    expect(message).toMatch(/enslaved to azure0/);
    expect(message).toMatch(/transparent/);
    const pod = await lab.core.readNamespacedPod({ name: 'bridged', namespace: 'default' });
    expect(pod.status?.phase).toBe('Pending');
    // Nothing of Seine for it: no port but the gateway, no moved route.
    const ports = (await run('ovs-vsctl', ['--db', `unix:${lab.nodes[0]!.ovs.dbSocket}`, 'list-ports', 'br-int'])).stdout.split('\n').filter(Boolean);
    expect(ports).toEqual(['seine-gw0']);
    expect((await run('ip', ['-4', 'route', 'show', 'proto', '119'], { netns: node })).stdout.trim()).toBe('');
  }, 300_000);
});

import type { V1Pod } from '@kubernetes/client-node';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { HopSpec, ServiceChain, ServiceChainSpec, ServiceChainStatus } from '../../src/chaining/api/types.js';
import { run } from '../../src/host/exec.js';
import type { Lab } from '../../src/lab/lab.js';
import { NETWORK_STATUS_ANNOTATION, type NetworkStatus } from '../../src/secondary/annotations/index.js';
import { overlayBridgeName, VLAN_BRIDGE } from '../../src/secondary/nad/index.js';
import type { Traceflow } from '../../src/traceflow/api/types.js';
import { captureWhile } from '../harness/capture.js';
import { runCommand } from '../harness/command.js';
import { ipv4InReceives } from '../harness/trace-lab.js';
import { cnfConnections, cnfCounters, cnfPod, threeHops, type HopPlan } from '../harness/cnf.js';
import { eventually, kubectl, podExec, podNetns, simplePod, startTestLab, waitRunning } from '../harness/lab.js';
import { longestStall, startOpenStream } from '../harness/open-stream.js';

const NS = 'default';
const EXAMPLES = join(process.cwd(), 'manifests', 'examples', 'secondary-networks.yaml');
const VLAN_CHAIN_EXAMPLE = join(process.cwd(), 'manifests', 'examples', 'service-chain-vlan.yaml');
const WEB = 80;
const DIRECT = 81;
const INITIAL_TTL = 64;
/** Cookie owner byte of the chain stage's flows (CookieOwner.chaining). */
const CHAINING_OWNER = 3n;
const VLAN_NET = `${NS}/vlan100`;
const BLUE_NET = `${NS}/blue`;
const BLUE_VNI = 5001;


// The chain of the primary network's end-to-end test, on VLAN 100: a Transparent, a Routed and a one-armed Routed
// hop, 2 replicas each on different nodes. Servers on nodes 1 and 2, clients on nodes 0 and 2.
const VLAN_HOPS: HopPlan[] = threeHops(WEB);
// One Transparent hop on the overlay network "blue".
const BLUE_HOPS: HopPlan[] = [{ name: 'scrubber', mode: 'Transparent', interfaces: ['in0', 'out0'], marking: { family: 'bridge', port: WEB, mark: 10 }, replicas: [['scrubber-1', 1], ['scrubber-2', 2]] }];

const functionNad = (name: string, network: string): object => ({
  apiVersion: 'k8s.cni.cncf.io/v1',
  kind: 'NetworkAttachmentDefinition',
  metadata: { name, namespace: NS },
  spec: { config: JSON.stringify({ cniVersion: '1.0.0', type: 'seine', networkType: 'function', network }) },
});
const SERVER = `nc -lk -n -p ${WEB} </dev/null >/dev/null & nc -lk -n -p ${DIRECT} </dev/null >/dev/null & wait`;
const hopSpec = (h: HopPlan): HopSpec => ({
  name: h.name,
  podSelector: { matchLabels: { cnf: h.name } },
  interfaces: { ingress: h.interfaces[0]!, egress: h.interfaces[h.interfaces.length - 1]! },
  mode: h.mode,
  failurePolicy: 'FailClosed',
});
const chain = (name: string, spec: ServiceChainSpec): ServiceChain => ({ apiVersion: 'crd.seine.dev/v1alpha1', kind: 'ServiceChain', metadata: { name, namespace: NS }, spec });
const webClassifier: ServiceChainSpec['classifier'] = { source: { podSelector: { matchLabels: { role: 'client' } } }, destination: { podSelector: { matchLabels: { role: 'web' } } }, protocol: 'TCP', ports: [{ port: WEB }] };
const range = (from: number, n: number): number[] => Array.from({ length: n }, (_, i) => from + i);

/**
 * Service chains on Seine's secondary networks, end to end on 3 nodes: the 3-hop chain on a VLAN network and a
 * 1-hop chain on an overlay network, CNF ports bound to those networks, proven by the packets (DSCP marks, TTL,
 * connections recorded inside every replica in both directions) while the pods' unchained traffic and their primary
 * network stay as they were.
 */
describe('service chains on secondary networks (3 nodes)', () => {
  let lab: Lab;
  const pods: Record<string, V1Pod> = {};
  const nodeName = (i: number): string => lab.plan.nodes[i]!.name;
  const apply = async (objects: object[]): Promise<void> => {
    await run('kubectl', ['--kubeconfig', lab.kubeconfigPath, 'apply', '-f', '-'], { input: objects.map((o) => `---\n${JSON.stringify(o)}\n`).join(''), timeoutMs: 60_000 });
  };
  /** A pod's address and interface on a secondary network, from its network-status. */
  const on = (pod: string, network: string): { ip: string; ifname: string } => {
    const s = (JSON.parse(pods[pod]!.metadata!.annotations![NETWORK_STATUS_ANNOTATION]!) as NetworkStatus[]).find((e) => e.name === network);
    return { ip: s!.ips![0]!, ifname: s!.interface! };
  };
  const chainStatus = async (name: string): Promise<ServiceChainStatus | undefined> => (JSON.parse(await kubectl(lab, ['get', 'sc', name, '-n', NS, '-o', 'json'])) as ServiceChain).status;
  const waitChain = (name: string, what: string, ok: (s: ServiceChainStatus) => boolean, timeoutMs = 120_000): Promise<ServiceChainStatus> =>
    eventually(`chain ${name}: ${what}`, async (saw) => {
      const s = await chainStatus(name);
      saw({ index: s?.index, ready: s?.readyReplicas, conditions: s?.conditions?.map((c) => `${c.type}=${c.status} ${c.reason}: ${c.message}`) });
      return s && ok(s) ? s : undefined;
    }, timeoutMs, 1000);
  const ready = (s: ServiceChainStatus, replicas: string): boolean => s.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true && s.readyReplicas === replicas;
  /** `nc -z` connections from `from` to `to`'s address on `network`, one per source port; the source ports that failed. */
  const connect = async (from: string, to: string, network: string, port: number, sports: number[]): Promise<number[]> => {
    const out = await podExec(lab, pods[from]!, ['sh', '-c', `for p in ${sports.join(' ')}; do nc -z -n -w 3 -p $p ${on(to, network).ip} ${port} || echo failed $p; done; true`], 30_000 + sports.length * 7_000);
    return [...out.matchAll(/failed (\d+)/g)].map((m) => Number(m[1]));
  };
  /** The SYNs a server saw on its interface of `network` while `fn` ran, by client port: DSCP and TTL. */
  const synsAt = async (server: string, network: string, fn: () => Promise<void>): Promise<Map<number, Array<{ tos: number; ttl: number }>>> => {
    const lines = await captureWhile(podNetns(lab, pods[server]!), ['-i', on(server, network).ifname, '-v', '-nn', `tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn and (dst port ${WEB} or dst port ${DIRECT})`], fn);
    const syns = new Map<number, Array<{ tos: number; ttl: number }>>();
    for (const m of lines.join('\n').matchAll(/tos (0x[0-9a-f]+), ttl (\d+),[^\n]*\n\s+[\d.]+\.(\d+) > /g)) syns.set(Number(m[3]), [...(syns.get(Number(m[3])) ?? []), { tos: Number(m[1]), ttl: Number(m[2]) }]);
    return syns;
  };
  const cnfNetns = (pod: string): string => podNetns(lab, pods[pod]!);
  /** The client side of the connections each replica of a hop carried, forward and reverse. */
  const carried = (h: HopPlan): Promise<Array<{ pod: string; forward: string[]; reverse: string[] }>> =>
    Promise.all(h.replicas.map(async ([p]) => ({ pod: p, forward: [...(await cnfConnections(cnfNetns(p), h.marking.family, 'conns_fw'))].sort(), reverse: [...(await cnfConnections(cnfNetns(p), h.marking.family, 'conns_rv'))].sort() })));
  const tcpCounts = async (hops: HopPlan[]): Promise<Record<string, number>> =>
    Object.fromEntries(await Promise.all(hops.flatMap((h) => h.replicas.map(async ([p]) => [p, (await cnfCounters(cnfNetns(p), h.marking.family)).c_tcp!.packets] as const))));
  /** Chain-stage flows and chain tunnel ports on every node's secondary bridges. */
  const chainLeftovers = async (): Promise<string[]> => {
    const out: string[] = [];
    for (const n of lab.nodes) {
      for (const bridge of [VLAN_BRIDGE, overlayBridgeName(BLUE_VNI)]) {
        const { stdout } = await run('ovs-ofctl', ['-O', 'OpenFlow15', 'dump-flows', `unix:${n.ovs.rundir}/${bridge}.mgmt`], { netns: n.netns });
        const ours = [...stdout.matchAll(/cookie=0x([0-9a-f]+)/g)].filter((m) => BigInt(`0x${m[1]}`) >> 56n === CHAINING_OWNER).length;
        if (ours) out.push(`${n.plan.name} ${bridge}: ${ours} chain flows`);
      }
      const tunnels = (await n.ovs.vsctl(['--columns=name', '--format=csv', '--no-headings', 'find', 'Port', 'external_ids:seine-owner=chain-tunnel'])).trim();
      if (tunnels) out.push(`${n.plan.name}: chain tunnels ${tunnels}`);
    }
    return out;
  };

  beforeAll(async () => {
    lab = await startTestLab({ nodes: 3 });
    await kubectl(lab, ['apply', '-f', EXAMPLES]);
    // VLAN 100 with room for the chain tunnel's 50 bytes in the lab's 1500-byte underlay (replicas on other nodes).
    const vlan100 = { apiVersion: 'k8s.cni.cncf.io/v1', kind: 'NetworkAttachmentDefinition', metadata: { name: 'vlan100', namespace: NS }, spec: { config: JSON.stringify({ cniVersion: '1.0.0', type: 'seine', networkType: 'vlan', vlan: 100, mtu: 1450, ipam: { type: 'seine', ippools: ['vlan100'] } }) } };
    await apply([vlan100, functionNad('vlan100-fn', VLAN_NET), functionNad('blue-fn', BLUE_NET)]);
    const plain: Array<[string, number, Record<string, string>, string, string]> = [
      ['client', 0, { role: 'client' }, 'vlan100,blue', 'exec sleep infinity'],
      ['client-b', 2, { role: 'client' }, 'vlan100', 'exec sleep infinity'],
      ['outsider', 0, {}, 'vlan100', 'exec sleep infinity'],
      ['web-1', 1, { role: 'web' }, 'vlan100,blue', SERVER],
      ['web-2', 2, { role: 'web' }, 'vlan100', SERVER],
      // A classified iperf3 server (the chain takes port 80) for the restart test.
      ['sink', 1, { role: 'web' }, 'vlan100', `exec iperf3 -s -p ${WEB}`],
    ];
    const bodies: V1Pod[] = plain.map(([name, node, labels, networks, script]) => {
      const p = simplePod(name, { node: nodeName(node), command: ['sh', '-c', script], annotations: { 'k8s.v1.cni.cncf.io/networks': networks } });
      p.metadata!.labels = labels;
      return p;
    });
    const cnfs = (hops: HopPlan[], nad: string): void => {
      for (const h of hops) {
        const networks = JSON.stringify(h.interfaces.map((i) => ({ name: nad, interface: i })));
        for (const [name, node] of h.replicas) bodies.push(cnfPod({ name, node: nodeName(node), labels: { cnf: h.name }, networks, marking: h.marking, interfaces: h.interfaces }));
      }
    };
    cnfs(VLAN_HOPS, 'vlan100-fn');
    cnfs(BLUE_HOPS, 'blue-fn');
    for (const body of bodies) await lab.core.createNamespacedPod({ namespace: NS, body });
    for (const body of bodies) pods[body.metadata!.name!] = await waitRunning(lab, body.metadata!.name!, NS, 120_000);
    await apply([
      chain('web-vlan', { network: 'vlan100', classifier: webClassifier, hops: VLAN_HOPS.map(hopSpec) }),
      chain('web-blue', { network: BLUE_NET, classifier: webClassifier, hops: BLUE_HOPS.map(hopSpec) }),
    ]);
    await waitChain('web-vlan', 'Ready with 6/6 replicas healthy', (s) => ready(s, '6/6')).catch(async (e: unknown) => {
      // What the agents said about chains, to tell a datapath refusal from a health problem.
      for (const n of lab.nodes) {
        const { stdout } = await run('sh', ['-c', `grep -E '"component":"chain' ${n.dirs.logDir}/seine-agent.log | tail -20`], { netns: n.netns });
        console.log(n.plan.name, stdout);
      }
      throw e;
    });
    await waitChain('web-blue', 'Ready with 2/2 replicas healthy', (s) => ready(s, '2/2'));
  }, 420_000);
  afterAll(async () => {
    await lab?.down();
  }, 180_000);

  it('takes port 80 on the VLAN network through firewall, router and inspector in order, one replica per hop both ways; port 81 goes direct', async () => {
    const chained = range(42000, 8);
    const direct = range(42100, 4);
    const syns = await synsAt('web-1', VLAN_NET, async () => {
      expect(await connect('client', 'web-1', VLAN_NET, WEB, chained)).toEqual([]);
      expect(await connect('client', 'web-1', VLAN_NET, DIRECT, direct)).toEqual([]);
    });
    // On a VLAN nothing routes: unchained, the TTL arrives as sent; each Routed hop takes one. DSCP 24 (TOS 0x60) is
    // the inspector's mark, which it sets only on what carries the router's, which sets it only on the firewall's.
    const routedHops = VLAN_HOPS.filter((h) => h.mode === 'Routed').length;
    expect({ chained: chained.map((p) => syns.get(p)), direct: direct.map((p) => syns.get(p)) }).toEqual({
      chained: chained.map((p) => syns.get(p)?.map(() => ({ tos: 24 << 2, ttl: INITIAL_TTL - routedHops })) ?? 'a SYN'),
      direct: direct.map((p) => syns.get(p)?.map(() => ({ tos: 0, ttl: INITIAL_TTL })) ?? 'a SYN'),
    });
    const client = on('client', VLAN_NET).ip;
    const all = chained.map((p) => `${client}:${p}`).sort();
    // A replica that failed its probes moves its connections: say so, should the paths below differ.
    const flaps = await kubectl(lab, ['get', 'events', '-n', NS, '--field-selector', 'reason=ReplicaUnhealthy', '-o', 'custom-columns=TIME:.lastTimestamp,MESSAGE:.message', '--no-headers']);
    const failed = flaps.split('\n').filter((l) => l.includes('ProbeFailed'));
    if (failed.length) console.log(`replicas out of rotation during the test:\n${failed.join('\n')}`);
    for (const h of VLAN_HOPS) {
      const seen = (await carried(h)).map((r) => ({ ...r, forward: r.forward.filter((c) => all.includes(c)), reverse: r.reverse.filter((c) => all.includes(c)) }));
      // Each connection through exactly one replica of the hop, and its replies back through the same one.
      expect({ hop: h.name, connections: seen.flatMap((r) => r.forward).sort() }).toEqual({ hop: h.name, connections: all });
      for (const r of seen) expect({ hop: h.name, pod: r.pod, reverse: r.reverse }).toEqual({ hop: h.name, pod: r.pod, reverse: r.forward });
    }
    for (const h of VLAN_HOPS) for (const [p] of h.replicas) expect({ pod: p, dropped: (await cnfCounters(cnfNetns(p), h.marking.family)).c_drop!.packets }).toEqual({ pod: p, dropped: 0 });
  }, 180_000);

  it('carries full-size frames of the VLAN network through the chain across nodes', async () => {
    // 2 MB from client (node 0) to web-2 (node 2): each hop has a replica on another node than the one before, so
    // full-size frames (MTU 1450) cross the chain tunnel; a transfer that stalls would mean they do not fit.
    const inspected = async (): Promise<number> => (await Promise.all(VLAN_HOPS[2]!.replicas.map(async ([p]) => (await cnfCounters(cnfNetns(p), 'ip')).c_fw!.packets))).reduce((a, b) => a + b, 0);
    const before = await inspected();
    const out = await podExec(lab, pods.client!, ['sh', '-c', `head -c 2000000 /dev/zero | timeout 60 nc -N -n -w 10 ${on('web-2', VLAN_NET).ip} ${WEB} && echo sent`], 90_000);
    expect(out).toContain('sent');
    // It went through the last hop: 2 MB is at least 1,000 segments of 1,410 bytes or less.
    expect(await inspected()).toBeGreaterThanOrEqual(before + 1000);
  }, 120_000);

  it('steers a client on the servers\' node to a server on another (every node hooks its own pods), and leaves unclassified pods alone', async () => {
    const before = await tcpCounts(VLAN_HOPS);
    expect(await connect('client-b', 'web-1', VLAN_NET, WEB, range(42200, 4))).toEqual([]);
    const afterChained = await tcpCounts(VLAN_HOPS);
    for (const h of VLAN_HOPS) {
      const grew = h.replicas.reduce((n, [p]) => n + afterChained[p]! - before[p]!, 0);
      expect({ hop: h.name, grew: grew >= 4 * 3 }).toEqual({ hop: h.name, grew: true });
    }
    const syns = await synsAt('web-2', VLAN_NET, async () => {
      expect(await connect('outsider', 'web-2', VLAN_NET, WEB, range(42300, 4))).toEqual([]);
    });
    expect(await tcpCounts(VLAN_HOPS)).toEqual(afterChained);
    expect([...syns.values()].flat().map((s) => s.tos)).toEqual([0, 0, 0, 0]);
  }, 120_000);

  it('takes port 80 on the overlay network through its own chain, and the same pods\' VLAN traffic through the VLAN chain only', async () => {
    const vlanBefore = await tcpCounts(VLAN_HOPS);
    const ports = range(42400, 6);
    const syns = await synsAt('web-1', BLUE_NET, async () => {
      expect(await connect('client', 'web-1', BLUE_NET, WEB, ports)).toEqual([]);
    });
    // DSCP 10 = TOS 0x28: the scrubber's mark; nothing else marked it.
    expect(ports.map((p) => syns.get(p))).toEqual(ports.map((p) => syns.get(p)?.map(() => ({ tos: 10 << 2, ttl: INITIAL_TTL })) ?? 'a SYN'));
    const client = on('client', BLUE_NET).ip;
    const all = ports.map((p) => `${client}:${p}`).sort();
    const seen = await carried(BLUE_HOPS[0]!);
    expect(seen.flatMap((r) => r.forward.filter((c) => all.includes(c))).sort()).toEqual(all);
    for (const r of seen) expect(r.reverse.filter((c) => all.includes(c))).toEqual(r.forward.filter((c) => all.includes(c)));
    expect(await tcpCounts(VLAN_HOPS)).toEqual(vlanBefore);
  }, 120_000);

  it('keeps a chained VLAN connection through kill -9 of the agents on the client\'s and a replica\'s node and an ovs-vswitchd restart on another replica\'s node', async () => {
    const logLines = (i: number): string[] => readFileSync(join(lab.nodes[i]!.dirs.logDir, 'seine-agent.log'), 'utf8').split('\n');
    const logged = (i: number, from: number, msg: string): Promise<boolean> =>
      eventually(`agent on node ${i} logs "${msg}"`, async () => (logLines(i).slice(from).some((l) => l.includes(`"${msg}"`)) ? true : undefined), 90_000, 500);
    const before = await tcpCounts(VLAN_HOPS);
    // A stream with no set length: the disruptions take as long as they take on a busy machine, and the stream is
    // ended only once it is seen carrying data through every hop again after the last of them.
    const stream = startOpenStream(lab, pods.client!, on('sink', VLAN_NET).ip, '20M', WEB);
    try {
      await eventually('the iperf3 connections through the chain', async () => {
        const now = await tcpCounts(VLAN_HOPS);
        return VLAN_HOPS.every((h) => h.replicas.some(([p]) => now[p]! - before[p]! > 100)) ? true : undefined;
      }, 30_000, 500);
      const t0 = Date.now();
      const killed = [0, 1].map((i) => ({ i, agent: lab.agents.get(lab.plan.nodes[i]!.name)!, from: logLines(i).length }));
      for (const k of killed) k.agent.crash();
      for (const k of killed) await logged(k.i, k.from, 'agent ready');
      const from = logLines(2).length;
      await lab.nodes[2]!.ovs.restartVswitchd({ flowRestoreWait: true });
      await logged(2, from, 'datapath restored');
      const restored = Date.now();
      // The same connections carry data through every hop again (iperf3 opens no new ones; TCP's retransmission
      // backoff after the outages can take tens of seconds on a busy machine, hence the long wait).
      const after = await tcpCounts(VLAN_HOPS);
      await eventually('the iperf3 connections through every hop again', async () => {
        const now = await tcpCounts(VLAN_HOPS);
        return VLAN_HOPS.every((h) => h.replicas.some(([p]) => now[p]! - after[p]! > 100)) ? true : undefined;
      }, 120_000, 500);
      const resumed = Date.now();
      await new Promise((r) => setTimeout(r, 3000));
      const report = await stream.end();
      console.log(`chain restarts: disruptions over after ${restored - t0} ms, data through every hop ${resumed - restored} ms later; iperf3 ${report.intervals.length} s, ${report.retransmits} retransmits, longest stall ${longestStall(report.intervals)} s`);
      // The stream was never reset, and its last whole seconds (the very last may be cut short by the end) carried data.
      expect(report.intervals.slice(-3, -1).map((i) => i.sum.bytes > 0)).toEqual([true, true]);
    } finally {
      stream.kill();
    }
    await waitChain('web-vlan', 'Ready with 6/6 replicas healthy again', (s) => ready(s, '6/6'));
    expect(await connect('client', 'web-1', VLAN_NET, WEB, range(42700, 2))).toEqual([]);
  }, 360_000);

  it('traces a packet through the VLAN chain: each hop\'s replica it was steered to, back from each CNF, delivered at the server\'s port', async () => {
    const seine = join(process.cwd(), 'bin', 'seine');
    // IPv4 packets web-1's stack received (not its interface's counter, which other pods' IPv6 and ARP multicast move).
    const rx = async (): Promise<number> => ipv4InReceives(await podExec(lab, pods['web-1']!, ['cat', '/proc/net/snmp']));
    const before = await rx();
    const r = await runCommand(seine, ['trace', '--kubeconfig', lab.kubeconfigPath, '--timeout', '60', `${NS}/client`, `${NS}/web-1`, '--network', 'vlan100', '--port', String(WEB), '-o', 'json']);
    const tf = JSON.parse(r.stdout) as Traceflow;
    expect({ phase: tf.status?.phase, verdict: tf.status?.verdict, message: tf.status?.message }).toEqual({ phase: 'Succeeded', verdict: 'Delivered', message: expect.any(String) });
    const observations = tf.status!.results!.flatMap((x) => x.observations);
    // Steered to one replica of each hop in order (seen again on the replica's node when it is another, after the
    // chain tunnel), and back out of each CNF (which re-marked the DSCP).
    const steering = tf.status!.results!.flatMap((x) => x.observations.filter((o) => o.component === 'ServiceChain' && o.action === 'Steered').map((o) => ({ node: x.node, o })));
    const steered = steering.filter((s, i) => i === 0 || steering[i - 1]!.o.chain?.replica !== s.o.chain?.replica);
    expect(steered.map((s) => [s.o.chain?.name, s.o.chain?.hop])).toEqual(VLAN_HOPS.map((h) => ['web-vlan', h.name]));
    steering.forEach((s, i) => {
      const again = steering[i + 1];
      if (again && again.o.chain?.replica === s.o.chain?.replica) expect({ to: s.o.peerNode, seenOn: again.node, again: again.o.message }).toEqual({ to: again.node, seenOn: again.node, again: "into the replica's port" });
    });
    const back = observations.filter((o) => o.component === 'ServiceChain' && o.action === 'Received').map((o) => o.chain?.hop);
    expect(back).toEqual(VLAN_HOPS.map((h) => h.name));
    for (const o of observations.filter((x) => x.component === 'ServiceChain')) expect(VLAN_HOPS.find((h) => h.name === o.chain?.hop)?.replicas.map(([p]) => `${NS}/${p}`)).toContain(o.chain?.replica);
    // It ends at web-1's port on its node, not in the pod.
    const last = tf.status!.results!.at(-1)!;
    expect(last.node).toBe(nodeName(1));
    expect(last.observations.at(-1)).toEqual(expect.objectContaining({ component: 'Forwarding', action: 'Delivered', pod: `${NS}/web-1`, table: 'ChainExit' }));
    expect(await rx()).toBe(before);
  }, 120_000);

  it('counts in the status, and deleting the chains leaves no flow or tunnel behind while traffic goes direct again', async () => {
    await waitChain('web-vlan', 'forward and reverse packets counted', (s) => (s.packets?.forward ?? 0) > 0 && (s.packets?.reverse ?? 0) > 0 && (s.hops ?? []).every((h) => (h.packets?.forward ?? 0) > 0), 60_000);
    await waitChain('web-blue', 'forward packets counted', (s) => (s.packets?.forward ?? 0) > 0, 60_000);
    expect(await chainLeftovers()).not.toEqual([]);
    await kubectl(lab, ['delete', 'sc', 'web-vlan', 'web-blue', '-n', NS]);
    await eventually('no chain flow or chain tunnel on any node', async (saw) => {
      const left = await chainLeftovers();
      saw(left);
      return left.length === 0;
    }, 60_000);
    const before = await tcpCounts([...VLAN_HOPS, ...BLUE_HOPS]);
    const syns = await synsAt('web-1', VLAN_NET, async () => {
      expect(await connect('client', 'web-1', VLAN_NET, WEB, range(42500, 3))).toEqual([]);
    });
    expect(await connect('client', 'web-1', BLUE_NET, WEB, range(42600, 3))).toEqual([]);
    expect([...syns.values()].flat()).toEqual([0, 1, 2].map(() => ({ tos: 0, ttl: INITIAL_TTL })));
    expect(await tcpCounts([...VLAN_HOPS, ...BLUE_HOPS])).toEqual(before);
  }, 180_000);

  it('runs manifests/examples/service-chain-vlan.yaml as written: Ready, and its servers receive the inspector\'s mark', async () => {
    await kubectl(lab, ['apply', '-f', VLAN_CHAIN_EXAMPLE]);
    const ex = 'vlan-chain';
    await eventually('the example chain Ready with 4/4 replicas', async (saw) => {
      const s = (JSON.parse(await kubectl(lab, ['get', 'sc', 'web', '-n', ex, '-o', 'json'])) as ServiceChain).status;
      saw({ ready: s?.readyReplicas, conditions: s?.conditions?.map((c) => `${c.type}=${c.status} ${c.reason}`) });
      return s && ready(s, '4/4') ? true : undefined;
    }, 180_000, 1000);
    // The client sends every second; each server counts what reaches port 80 with DSCP 24.
    for (const name of ['web-1', 'web-2']) {
      await eventually(`${ex}/${name} receives DSCP 24 on port 80`, async (saw) => {
        const pod = await lab.core.readNamespacedPod({ name, namespace: ex });
        const { stdout } = await run('nft', ['-j', 'list', 'table', 'ip', 'web'], { netns: podNetns(lab, pod) });
        const packets = [...stdout.matchAll(/"packets":\s*(\d+)/g)].reduce((n, m) => n + Number(m[1]), 0);
        saw(packets);
        return packets > 0 ? true : undefined;
      }, 90_000, 1000);
    }
  }, 300_000);
});

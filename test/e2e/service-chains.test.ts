import type { V1Pod } from '@kubernetes/client-node';
import { join } from 'node:path';
import type { HopSpec, ReplicaStatus, ServiceChain, ServiceChainSpec, ServiceChainStatus } from '../../src/chaining/api/types.js';
import { run } from '../../src/host/exec.js';
import type { Lab } from '../../src/lab/lab.js';
import type { Traceflow } from '../../src/traceflow/api/types.js';
import { captureWhile } from '../harness/capture.js';
import { cnfConnections, cnfCounters, cnfPod, threeHops, type CnfMarking, type HopPlan, type NftCounter } from '../harness/cnf.js';
import { eventually, kubectl, podExec, podNetns, simplePod, startTestLab, waitRunning } from '../harness/lab.js';

const NS = 'default';
/** The chained service port; DIRECT is the same servers' unchained one. */
const WEB = 80;
const DIRECT = 81;
/** Linux's initial TTL (net.ipv4.ip_default_ttl) in every pod. */
const INITIAL_TTL = 64;
/** OVS counts whole frames, nftables counts from the IP header: an Ethernet header apart per packet. */
const ETH_HEADER = 14;
/** Cookie owner byte of the chain stage's flows (CookieOwner.chaining). */
const CHAINING_OWNER = 3n;


// Server web-1 is on node 1; the inspectors (the last hop, where packets leave the chain) on nodes 1 and 2, so
// both ways of leaving the chain, on the server's node and on another one, happen.
const HOPS: HopPlan[] = threeHops(WEB);
const CHAIN_PORT_NAD = { apiVersion: 'k8s.cni.cncf.io/v1', kind: 'NetworkAttachmentDefinition', metadata: { name: 'chain-port', namespace: NS }, spec: { config: '{"cniVersion":"1.0.0","type":"seine","networkType":"function"}' } };
const MACVLAN_NAD = { apiVersion: 'k8s.cni.cncf.io/v1', kind: 'NetworkAttachmentDefinition', metadata: { name: 'macvlan', namespace: NS }, spec: { config: '{"cniVersion":"1.0.0","type":"macvlan","master":"mv0","mode":"bridge","ipam":{"type":"host-local","ranges":[[{"subnet":"10.77.0.0/24"}]]}}' } };
const SERVER = `nc -lk -n -p ${WEB} </dev/null >/dev/null & nc -lk -n -p ${DIRECT} </dev/null >/dev/null & wait`;

const networksFor = (interfaces: string[]): string => JSON.stringify(interfaces.map((i) => ({ name: 'chain-port', interface: i })));
const hopSpec = (h: { name: string; mode: 'Transparent' | 'Routed'; interfaces: string[]; selector: string }): HopSpec => ({
  name: h.name,
  podSelector: { matchLabels: { cnf: h.selector } },
  interfaces: { ingress: h.interfaces[0]!, egress: h.interfaces[h.interfaces.length - 1]! },
  mode: h.mode,
  failurePolicy: 'FailClosed',
});
const chain = (name: string, spec: ServiceChainSpec): ServiceChain => ({ apiVersion: 'crd.seine.dev/v1alpha1', kind: 'ServiceChain', metadata: { name, namespace: NS }, spec });
const webChain = chain('web', {
  classifier: { source: { podSelector: { matchLabels: { role: 'client' } } }, destination: { podSelector: { matchLabels: { role: 'web' } } }, protocol: 'TCP', ports: [{ port: WEB }] },
  hops: HOPS.map((h) => hopSpec({ ...h, selector: h.name })),
});
const fromLonely = (port: number): ServiceChainSpec['classifier'] => ({ source: { podSelector: { matchLabels: { role: 'lonely' } } }, destination: { podSelector: { matchLabels: { role: 'web' } } }, protocol: 'TCP', ports: [{ port }] });

const range = (from: number, n: number): number[] => Array.from({ length: n }, (_, i) => from + i);
const within1Percent = (a: number, b: number): boolean => Math.abs(a - b) <= 0.01 * Math.max(a, b);

/**
 * Service chains end to end on 3 nodes: a chain of a Transparent, a Routed and a one-armed Routed hop, 2 replicas
 * each on different nodes, proven by the packets themselves (DSCP marks, TTL, connections recorded inside every
 * replica), by the chain's status counters against the CNFs' own, and by what bad input leaves behind.
 */
describe('service chains in the lab (3 nodes)', () => {
  let lab: Lab;
  const pods: Record<string, V1Pod> = {};
  const nodeName = (i: number): string => lab.plan.nodes[i]!.name;
  const ip = (pod: string): string => pods[pod]!.status!.podIP!;
  // YAML documents in JSON's flow style (a leading '{' would make kubectl read one JSON object only).
  const apply = async (objects: object[]): Promise<void> => {
    await run('kubectl', ['--kubeconfig', lab.kubeconfigPath, 'apply', '-f', '-'], { input: objects.map((o) => `---\n${JSON.stringify(o)}\n`).join(''), timeoutMs: 60_000 });
  };
  const chainStatus = async (name: string): Promise<ServiceChainStatus | undefined> => (JSON.parse(await kubectl(lab, ['get', 'sc', name, '-n', NS, '-o', 'json'])) as ServiceChain).status;
  const condition = (s: ServiceChainStatus | undefined, type: string): { status: string; reason: string; message: string } | undefined => s?.conditions?.find((c) => c.type === type);
  const waitChain = (name: string, what: string, ok: (s: ServiceChainStatus) => boolean, timeoutMs = 90_000): Promise<ServiceChainStatus> =>
    eventually(`chain ${name}: ${what}`, async (saw) => {
      const s = await chainStatus(name);
      saw({
        index: s?.index,
        ready: s?.readyReplicas,
        conditions: s?.conditions?.map((c) => `${c.type}=${c.status} ${c.reason}: ${c.message}`),
        replicas: s?.hops?.flatMap((h) => (h.replicas ?? []).map((r) => `${h.name}/${r.pod}@${r.node} healthy=${r.healthy} ${r.reason ?? ''}`)),
      });
      return s && ok(s) ? s : undefined;
    }, timeoutMs, 1000);

  /** `nc -z` connections from `from` to ip:port, one per source port; the source ports that failed. */
  const connect = async (from: string, to: string, port: number, sports: number[]): Promise<number[]> => {
    const out = await podExec(lab, pods[from]!, ['sh', '-c', `for p in ${sports.join(' ')}; do nc -z -n -w 3 -p $p ${ip(to)} ${port} || echo failed $p; done; true`], 30_000 + sports.length * 7_000);
    return [...out.matchAll(/failed (\d+)/g)].map((m) => Number(m[1]));
  };
  const cnfNetns = (pod: string): string => podNetns(lab, pods[pod]!);
  const familyOf = (pod: string): 'bridge' | 'ip' => HOPS.find((h) => h.replicas.some(([p]) => p === pod))?.marking.family ?? 'bridge';
  const counters = (pod: string): Promise<Record<string, NftCounter>> => cnfCounters(cnfNetns(pod), familyOf(pod));
  const allCnfs = (): string[] => HOPS.flatMap((h) => h.replicas.map(([p]) => p));
  /** Every CNF's count of forwarded TCP packets (any port). */
  const tcpCounts = async (): Promise<Record<string, number>> => Object.fromEntries(await Promise.all(allCnfs().map(async (p) => [p, (await counters(p)).c_tcp!.packets] as const)));
  /** The chain index of every chain-stage flow on a node's br-int (0: the node-wide flows). */
  const chainFlowIndexes = async (node: number): Promise<number[]> => {
    const n = lab.nodes[node]!;
    const { stdout } = await run('ovs-ofctl', ['-O', 'OpenFlow15', 'dump-flows', `unix:${n.ovs.rundir}/br-int.mgmt`], { netns: n.netns });
    return [...stdout.matchAll(/cookie=0x([0-9a-f]+)/g)].map((m) => BigInt(`0x${m[1]}`)).filter((c) => c >> 56n === CHAINING_OWNER).map((c) => Number((c >> 16n) & 0xffn));
  };

  beforeAll(async () => {
    lab = await startTestLab({ nodes: 3 });
    await apply([CHAIN_PORT_NAD]);
    const plain: Array<[string, number, Record<string, string>, string]> = [
      ['client', 0, { role: 'client' }, 'exec sleep infinity'],
      ['client-b', 2, { role: 'client' }, 'exec sleep infinity'],
      ['outsider', 0, {}, 'exec sleep infinity'],
      ['lonely', 0, { role: 'lonely' }, 'exec sleep infinity'],
      ['web-1', 1, { role: 'web' }, SERVER],
      ['web-2', 2, { role: 'web' }, SERVER],
    ];
    const bodies: V1Pod[] = plain.map(([name, node, labels, script]) => {
      const p = simplePod(name, { node: nodeName(node), command: ['sh', '-c', script] });
      p.metadata!.labels = labels;
      return p;
    });
    for (const h of HOPS) {
      for (const [name, node] of h.replicas) bodies.push(cnfPod({ name, node: nodeName(node), labels: { cnf: h.name }, networks: networksFor(h.interfaces), marking: h.marking, interfaces: h.interfaces }));
    }
    // For the bad-input test: a working replica, and one whose interfaces have other names than the hop's.
    const spare: CnfMarking = { family: 'bridge', port: WEB, mark: 8 };
    bodies.push(cnfPod({ name: 'spare-good', node: nodeName(1), labels: { cnf: 'spare' }, networks: networksFor(['in0', 'out0']), marking: spare, interfaces: ['in0', 'out0'] }));
    bodies.push(cnfPod({ name: 'spare-bad', node: nodeName(2), labels: { cnf: 'spare' }, networks: networksFor(['a0', 'b0']), marking: spare, interfaces: ['a0', 'b0'] }));
    for (const body of bodies) await lab.core.createNamespacedPod({ namespace: NS, body });
    for (const body of bodies) pods[body.metadata!.name!] = await waitRunning(lab, body.metadata!.name!, NS, 120_000);
    await apply([webChain]);
    await waitChain('web', 'Ready with 6/6 replicas healthy', (s) => condition(s, 'Ready')?.status === 'True' && s.readyReplicas === '6/6', 120_000);
  }, 360_000);
  afterAll(async () => {
    await lab?.down();
  }, 180_000);

  it('takes port 80 through firewall, router and inspector in order (DSCP 8, 16, 24), each Routed hop taking one from the TTL', async () => {
    const chained = range(40000, 8);
    const direct = range(40100, 4);
    // The server's view of every SYN (tcpdump -v prints "tos 0x60, ttl 61, ..." and, on the next line, the ports).
    const lines = await captureWhile(podNetns(lab, pods['web-1']!), ['-i', 'eth0', '-v', '-nn', `tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn and (dst port ${WEB} or dst port ${DIRECT})`], async () => {
      expect(await connect('client', 'web-1', WEB, chained)).toEqual([]);
      expect(await connect('client', 'web-1', DIRECT, direct)).toEqual([]);
    });
    const syns = new Map<number, Array<{ tos: number; ttl: number }>>();
    for (const m of lines.join('\n').matchAll(/tos (0x[0-9a-f]+), ttl (\d+),[^\n]*\n\s+[\d.]+\.(\d+) > /g)) {
      const sport = Number(m[3]);
      syns.set(sport, [...(syns.get(sport) ?? []), { tos: Number(m[1]), ttl: Number(m[2]) }]);
    }
    // Where each chained connection left the chain: the inspector replica that carried it.
    const carriedBy = new Map<number, number>();
    for (const [pod, node] of HOPS[2]!.replicas) {
      for (const c of await cnfConnections(cnfNetns(pod), 'ip', 'conns_fw')) {
        const [addr, port] = c.split(':');
        if (addr === ip('client') && chained.includes(Number(port))) carriedBy.set(Number(port), node);
      }
    }
    expect([...carriedBy.keys()].sort()).toEqual(chained);

    // Unchained, client (node 0) to web-1 (node 1): node 0 routes it into the tunnel (-1), node 1 routes it out of
    // the tunnel to the pod (-1): 64 - 2 = 62. Chained: node 0 does not route it (it enters the chain as it is),
    // the Transparent firewall bridges it (0), the router and the one-armed inspector forward it by IP (-1 each),
    // and the node where it leaves the chain routes it on like a tunnel arrival: to the local pod (-1) when that
    // is web-1's node 1, else into the tunnel (-1) and node 1 out of it (-1): 64 - 2 - 1 = 61 or 64 - 2 - 2 = 60.
    const unchainedTtl = INITIAL_TTL - 2;
    const routedHops = HOPS.filter((h) => h.mode === 'Routed').length;
    const serverNode = 1;
    const seen = {
      direct: direct.map((p) => syns.get(p)),
      chained: chained.map((p) => syns.get(p)),
    };
    const expected = {
      direct: direct.map((p) => syns.get(p)?.map(() => ({ tos: 0, ttl: unchainedTtl })) ?? 'a SYN'),
      // DSCP 24 = TOS 0x60: the inspector's mark, which it sets only on what carries the router's, which sets it
      // only on what carries the firewall's.
      chained: chained.map((p) => syns.get(p)?.map(() => ({ tos: 24 << 2, ttl: unchainedTtl - routedHops + (carriedBy.get(p) === serverNode ? 1 : 0) })) ?? 'a SYN'),
    };
    expect(seen).toEqual(expected);
    // Both ways of leaving the chain were seen (with 8 connections over 2 inspectors, one missing is 1 in 128).
    expect(new Set(carriedBy.values()).size).toBe(2);
    // No CNF dropped anything for a wrong mark: the order held for every packet.
    for (const pod of allCnfs()) expect({ pod, dropped: (await counters(pod)).c_drop!.packets }).toEqual({ pod, dropped: 0 });
  }, 120_000);

  it('steers only classified traffic: port 81 and a pod outside the classifier go direct', async () => {
    const before = await tcpCounts();
    expect(await connect('client', 'web-2', WEB, range(40200, 4))).toEqual([]);
    const afterChained = await tcpCounts();
    // Every hop forwarded the 4 connections (on one replica or the other).
    for (const h of HOPS) {
      const grew = h.replicas.reduce((n, [p]) => n + afterChained[p]! - before[p]!, 0);
      expect({ hop: h.name, grew: grew >= 4 * 3 }).toEqual({ hop: h.name, grew: true });
    }
    const lines = await captureWhile(podNetns(lab, pods['web-2']!), ['-i', 'eth0', '-v', '-nn', `tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn`], async () => {
      expect(await connect('client', 'web-2', DIRECT, range(40300, 4))).toEqual([]);
      expect(await connect('outsider', 'web-2', WEB, range(40400, 4))).toEqual([]);
    });
    expect(await tcpCounts()).toEqual(afterChained);
    // They arrived unmarked.
    const tos = [...lines.join('\n').matchAll(/tos (0x[0-9a-f]+),/g)].map((m) => m[1]);
    expect(tos.length).toBeGreaterThanOrEqual(8);
    expect(new Set(tos)).toEqual(new Set(['0x0']));
  }, 120_000);

  it('spreads 100 connections over every replica of every hop (at least 20 % each), one replica per hop in both directions', async () => {
    const ports = range(41000, 50);
    const [failedA, failedB] = await Promise.all([
      connect('client', 'web-1', WEB, ports.filter((p) => p % 2 === 0)).then(async (f) => [...f, ...(await connect('client', 'web-2', WEB, ports.filter((p) => p % 2 === 1)))]),
      connect('client-b', 'web-1', WEB, ports.filter((p) => p % 2 === 1)).then(async (f) => [...f, ...(await connect('client-b', 'web-2', WEB, ports.filter((p) => p % 2 === 0)))]),
    ]);
    expect({ failedA, failedB }).toEqual({ failedA: [], failedB: [] });
    const all = [...ports.map((p) => `${ip('client')}:${p}`), ...ports.map((p) => `${ip('client-b')}:${p}`)].sort();
    const ours = (s: Set<string>): string[] => [...s].filter((c) => all.includes(c)).sort();
    for (const h of HOPS) {
      const seen = await Promise.all(h.replicas.map(async ([p]) => ({ pod: p, forward: ours(await cnfConnections(cnfNetns(p), h.marking.family, 'conns_fw')), reverse: ours(await cnfConnections(cnfNetns(p), h.marking.family, 'conns_rv')) })));
      // Replies went back through the replica that carried the connection.
      for (const r of seen) expect({ hop: h.name, pod: r.pod, reverse: r.reverse }).toEqual({ hop: h.name, pod: r.pod, reverse: r.forward });
      // Each connection through exactly one replica of the hop.
      expect({ hop: h.name, connections: seen.flatMap((r) => r.forward).sort() }).toEqual({ hop: h.name, connections: all });
      for (const r of seen) expect({ hop: h.name, pod: r.pod, atLeast20Percent: r.forward.length >= 20 }).toEqual({ hop: h.name, pod: r.pod, atLeast20Percent: true });
    }
  }, 240_000);

  it("agrees with the CNFs' own counters within 1 % in the chain's status", async () => {
    const payload = 1_000_000;
    /**
     * The chain's status and every CNF's counters, once the status has caught up (the agents report every 5 s, the
     * controller writes counters at most every 10 s): each replica's status counts the packets its node delivered into
     * the CNF, the CNF counts the same packets as it forwards them, so they are equal then.
     */
    const settled = (when: string): Promise<{ status: ServiceChainStatus; cnf: Record<string, Record<string, NftCounter>> }> =>
      eventually(`every replica's status counters equal to its CNF's own (${when})`, async (saw) => {
        const status = await chainStatus('web');
        const cnf = Object.fromEntries(await Promise.all(allCnfs().map(async (p) => [p, await counters(p)] as const)));
        const off = HOPS.flatMap((h) =>
          h.replicas.flatMap(([p]) => {
            const r = status?.hops?.find((x) => x.name === h.name)?.replicas?.find((x) => x.pod === p);
            const c = cnf[p]!;
            return r?.packets?.forward === c.c_fw!.packets + c.c_drop!.packets && r.packets.reverse === c.c_rv!.packets ? [] : [{ pod: p, status: r?.packets, cnf: { forward: c.c_fw!.packets + c.c_drop!.packets, reverse: c.c_rv!.packets } }];
          }),
        );
        saw(off);
        return status && !off.length ? { status, cnf } : undefined;
      }, 90_000, 2000);

    const before = await settled('before the transfers');
    const send = (from: string, to: string): Promise<string> => podExec(lab, pods[from]!, ['sh', '-c', `head -c ${payload} /dev/zero | nc -N -n -w 10 ${ip(to)} ${WEB}`], 60_000);
    await Promise.all([send('client', 'web-1'), send('client', 'web-2'), send('client-b', 'web-1'), send('client-b', 'web-2')]);
    const after = await settled('after the transfers');

    // What the transfers added, by the status and by the CNFs. The CNFs count IP packets, the chain the frames it
    // delivered to them: an Ethernet header more each.
    const rows: Array<[string, number, number]> = [];
    const statusDelta = (f: (s: ServiceChainStatus) => number | undefined): number => (f(after.status) ?? 0) - (f(before.status) ?? 0);
    const cnfDelta = (pod: string, f: (c: Record<string, NftCounter>) => number): number => f(after.cnf[pod]!) - f(before.cnf[pod]!);
    const withHeaders = (c: NftCounter): number => c.bytes + ETH_HEADER * c.packets;
    for (const h of HOPS) {
      for (const [p] of h.replicas) {
        const replica = (s: ServiceChainStatus): ReplicaStatus | undefined => s.hops?.find((x) => x.name === h.name)?.replicas?.find((x) => x.pod === p);
        rows.push([`${p} bytes forward`, statusDelta((s) => replica(s)?.bytes?.forward), cnfDelta(p, (c) => withHeaders(c.c_fw!) + withHeaders(c.c_drop!))]);
        rows.push([`${p} bytes reverse`, statusDelta((s) => replica(s)?.bytes?.reverse), cnfDelta(p, (c) => withHeaders(c.c_rv!))]);
      }
    }
    // The chain counts forward packets where it classifies them (on the clients' nodes) and replies where they enter
    // it (on the servers' nodes). A packet lost after that (the busy machine's userspace datapath drops some of a
    // bulk transfer now and then; TCP sends them again) was counted there and never reached the hop, so the chain's
    // counters are at least what went into its first hop (forward) and its last hop (reverse), not equal to it.
    const sum = (hop: HopPlan, f: (c: Record<string, NftCounter>) => number): number => hop.replicas.reduce((n, [p]) => n + cnfDelta(p, f), 0);
    const chainLevel = {
      forward: { chain: statusDelta((s) => s.packets?.forward), firstHop: sum(HOPS[0]!, (c) => c.c_fw!.packets) },
      reverse: { chain: statusDelta((s) => s.packets?.reverse), firstHop: sum(HOPS[HOPS.length - 1]!, (c) => c.c_rv!.packets) },
    };
    expect({ forward: chainLevel.forward.chain >= chainLevel.forward.firstHop, reverse: chainLevel.reverse.chain >= chainLevel.reverse.firstHop, chainLevel }).toEqual({ forward: true, reverse: true, chainLevel });
    // Each hop's counters (its replicas' summed by the controller) against its CNFs'.
    for (const h of HOPS) rows.push([`hop ${h.name} packets forward`, statusDelta((s) => s.hops?.find((x) => x.name === h.name)?.packets?.forward), sum(h, (c) => c.c_fw!.packets + c.c_drop!.packets)]);

    // The known amount went through (4 payloads, plus headers), and status and CNFs agree on it within 1 %.
    expect(sum(HOPS[0]!, (c) => c.c_fw!.bytes)).toBeGreaterThan(4 * payload);
    expect(rows.filter(([, status, own]) => !within1Percent(status, own))).toEqual([]);
  }, 240_000);

  it('seine get chains shows the hops in order with every replica healthy and the counters; the metrics export both', async () => {
    const seineGet = async (...args: string[]): Promise<string> => (await run(process.execPath, [join(process.cwd(), 'bin', 'seine'), 'get', ...args, '--kubeconfig', lab.kubeconfigPath], { timeoutMs: 60_000 })).stdout;
    await eventually('seine get chains: web, its three hops with 2/2 replicas each, Ready, packets both ways', async (saw) => {
      const table = await seineGet('chains', '-n', NS);
      saw(table);
      const row = /^web\s+pod network\s+firewall\(2\/2\) -> router\(2\/2\) -> inspector\(2\/2\)\s+6\/6\s+Ready\s+(\d+)\/(\d+)\s+\S+$/m.exec(table);
      return row && Number(row[1]) > 0 && Number(row[2]) > 0 ? true : undefined;
    }, 60_000, 1000);
    const json = JSON.parse(await seineGet('sc', 'web', '-n', NS, '-o', 'json')) as { items: Array<{ name: string; hops: Array<{ name: string; healthy: number; replicas: number }> }> };
    expect(json.items.map((i) => [i.name, i.hops.map((h) => `${h.name} ${h.healthy}/${h.replicas}`)])).toEqual([['web', ['firewall 2/2', 'router 2/2', 'inspector 2/2']]]);

    const scrape = async (url: string | undefined): Promise<string> => (url ? (await fetch(url)).text() : '');
    // Eventually: a probe lost on a busy machine may flip a replica for a moment.
    await eventually('the controller exports the six replicas of web as healthy', async (saw) => {
      const healthy = (await scrape(lab.metricsUrl('controller'))).split('\n').filter((l) => l.startsWith('seine_chain_replica_healthy{') && l.includes('chain="web"'));
      const seen = healthy.map((l) => l.replace(/.*replica="([^"]+)".* (\d+)$/, '$1 $2')).sort();
      saw(seen);
      return JSON.stringify(seen) === JSON.stringify(['firewall-1 1', 'firewall-2 1', 'inspector-1 1', 'inspector-2 1', 'router-1 1', 'router-2 1']) || undefined;
    }, 60_000, 1000);
    // The client's node classifies the connections into the chain: its entry counter has counted them.
    const entries = (await Promise.all(lab.plan.nodes.map((n) => scrape(lab.metricsUrl(n.name)))))
      .flatMap((t) => t.split('\n'))
      .filter((l) => l.startsWith('seine_chain_packets_total{') && l.includes('replica="entry"') && l.includes('direction="forward"') && /chain="[^"]*web"/.test(l));
    expect(entries.reduce((a, l) => a + Number(l.split(' ').pop()), 0)).toBeGreaterThan(0);
  }, 120_000);

  it('seine trace follows a classified packet through every hop, in order and across nodes, to the server\'s port (not to the server)', async () => {
    const out = await run(process.execPath, [join(process.cwd(), 'bin', 'seine'), 'trace', `${NS}/client`, `${NS}/web-1`, '--port', String(WEB), '--timeout', '60', '-o', 'json', '--kubeconfig', lab.kubeconfigPath], { timeoutMs: 150_000 });
    const tf = JSON.parse(out.stdout) as Traceflow;
    expect(tf.status?.phase).toBe('Succeeded');
    expect(tf.status?.verdict).toBe('Delivered');
    const observations = tf.status!.results!.flatMap((r) => r.observations.map((o) => ({ ...o, node: r.node })));
    // Into each replica's port on its own node (a replica on another node is also seen steered there, into the tunnel).
    const steered = observations.filter((o) => o.component === 'ServiceChain' && o.action === 'Steered' && !o.peerNode);
    expect(steered.map((o) => o.chain?.hop)).toEqual(['firewall', 'router', 'inspector']);
    for (const o of steered) expect(o.node).toBe(pods[o.chain!.replica.split('/')[1]!]!.spec!.nodeName);
    for (const o of steered) expect(o.chain).toEqual(expect.objectContaining({ namespace: NS, name: 'web', replica: expect.stringMatching(new RegExp(`^${NS}/${o.chain!.hop}-[12]$`)) }));
    // Each replica that got it handed it back (the CNFs re-mark DSCP: the packet is still recognized).
    expect(observations.filter((o) => o.component === 'ServiceChain' && o.action === 'Received').map((o) => o.chain?.hop)).toEqual(['firewall', 'router', 'inspector']);
    expect(new Set(tf.status!.results!.map((r) => r.node)).size).toBeGreaterThan(1);
    expect(observations.at(-1)).toEqual(expect.objectContaining({ component: 'Forwarding', action: 'Delivered', pod: `${NS}/web-1`, node: nodeName(1) }));
  }, 180_000);

  it('reports bad input (no replicas, missing interfaces, a delegated network) and leaves no chain flow behind', async () => {
    // Before any of the chains below: lonely reaches web-1 on both ports.
    expect(await connect('lonely', 'web-1', DIRECT, [42000])).toEqual([]);
    await apply([
      MACVLAN_NAD,
      chain('nobody', { classifier: fromLonely(DIRECT), hops: [hopSpec({ name: 'ghost', mode: 'Transparent', interfaces: ['in0', 'out0'], selector: 'nobody' })] }),
      chain('spare', { classifier: fromLonely(WEB), hops: [hopSpec({ name: 'spare', mode: 'Transparent', interfaces: ['in0', 'out0'], selector: 'spare' })] }),
      chain('on-macvlan', { network: 'macvlan', classifier: fromLonely(WEB), hops: [hopSpec({ name: 'fw', mode: 'Transparent', interfaces: ['in0', 'out0'], selector: 'firewall' })] }),
    ]);

    // A hop whose selector matches no pod: Degraded naming it, not Ready, an Event; FailClosed drops what it classifies.
    const nobody = await waitChain('nobody', 'Degraded (NoReplicas) and not Ready', (s) => condition(s, 'Degraded')?.reason === 'NoReplicas' && condition(s, 'Ready')?.status === 'False' && s.index !== undefined);
    expect(condition(nobody, 'Degraded')).toEqual(expect.objectContaining({ status: 'True', message: expect.stringContaining('ghost') }));
    await eventually('a NoReplicas Event on chain nobody', async (saw) => {
      const events = (await lab.core.listNamespacedEvent({ namespace: NS })).items.filter((e) => e.involvedObject.kind === 'ServiceChain' && e.involvedObject.name === 'nobody');
      saw(events.map((e) => `${e.type} ${e.reason}: ${e.message}`));
      return events.some((e) => e.type === 'Warning' && e.reason === 'NoReplicas' && e.message?.includes('ghost')) ? true : undefined;
    });
    // A fresh source port per attempt: a connection that got through leaves its port in TIME_WAIT.
    let sport = 42010;
    await eventually('lonely -> web-1:81 dropped by the chain without replicas', async (saw) => {
      const failed = await connect('lonely', 'web-1', DIRECT, [++sport]);
      saw({ failed });
      return failed.length ? true : undefined;
    });

    // A selected replica without the hop's interfaces: unhealthy (InterfacesMissing); the other replica carries it all.
    const spare = await waitChain('spare', 'spare-good healthy, spare-bad InterfacesMissing', (s) => {
      const r = s.hops?.[0]?.replicas ?? [];
      return r.find((x) => x.pod === 'spare-good')?.healthy === true && r.find((x) => x.pod === 'spare-bad')?.reason === 'InterfacesMissing';
    });
    expect(spare.readyReplicas).toBe('1/2');
    expect(condition(spare, 'Ready')?.status).toBe('True');
    const sparePorts = range(42100, 10);
    expect(await connect('lonely', 'web-1', WEB, sparePorts)).toEqual([]);
    const expected = sparePorts.map((p) => `${ip('lonely')}:${p}`).sort();
    const carried = async (pod: string, set: 'conns_fw' | 'conns_rv'): Promise<string[]> => [...(await cnfConnections(cnfNetns(pod), 'bridge', set))].filter((c) => expected.includes(c)).sort();
    expect({ forward: await carried('spare-good', 'conns_fw'), reverse: await carried('spare-good', 'conns_rv') }).toEqual({ forward: expected, reverse: expected });
    expect((await cnfCounters(cnfNetns('spare-bad'), 'bridge')).c_tcp!.packets).toBe(0);

    // A chain on a network delegated to another plugin: Invalid, never given an index, so never realized.
    const macvlan = await waitChain('on-macvlan', 'Invalid (UnsupportedNetwork)', (s) => condition(s, 'Invalid')?.status === 'True');
    expect(condition(macvlan, 'Invalid')).toEqual(expect.objectContaining({ reason: 'UnsupportedNetwork', message: expect.stringContaining('spec.network') }));
    expect(macvlan.index).toBeUndefined();

    // Deleting the chains removes every flow of theirs on every node; the chain stage's node-wide flows (chain 0) stay.
    const indexes = await Promise.all(['web', 'nobody', 'spare'].map(async (n) => (await chainStatus(n))!.index!));
    for (const node of [0, 1, 2]) expect({ node, realized: [...new Set(await chainFlowIndexes(node))].filter((i) => indexes.includes(i)).sort() }).toEqual({ node, realized: [...indexes].sort() });
    // The agent's policy routing in the Routed CNFs (src/chaining/agent/cnf-routing.ts) is there while they serve the chain.
    const seineRules = async (pod: string): Promise<number> => {
      const rules = JSON.parse((await run('ip', ['-j', 'rule', 'show'], { netns: cnfNetns(pod) })).stdout || '[]') as Array<{ table?: string | number }>;
      return rules.filter((r) => Number(r.table) >= 0x5e000 && Number(r.table) <= 0x5efff).length;
    };
    expect({ router: await seineRules('router-1'), inspector: await seineRules('inspector-1') }).toEqual({ router: 2, inspector: 1 });
    // The chains go while the agent of router-1's node is down: the restarted agent finds the plumbing nobody wants.
    const routerNode = lab.plan.nodes.findIndex((n) => n.name === pods['router-1']!.spec!.nodeName);
    const agent = lab.agents.get(lab.plan.nodes[routerNode]!.name)!;
    await agent.stop();
    try {
      await kubectl(lab, ['delete', 'sc', '--all', '-n', NS]);
      for (const node of [0, 1, 2].filter((n) => n !== routerNode)) {
        await eventually(`no chain flow left on node ${node}`, async (saw) => {
          const left = (await chainFlowIndexes(node)).filter((i) => i !== 0);
          saw({ left });
          return left.length ? undefined : true;
        }, 60_000);
      }
      expect(await seineRules('router-1')).toBe(2);
    } finally {
      agent.start();
    }
    await eventually('the Routed CNFs without Seine\'s rules', async (saw) => {
      const left = { router: await seineRules('router-1'), inspector: await seineRules('inspector-1') };
      saw(left);
      return left.router + left.inspector === 0 ? true : undefined;
    }, 90_000);
    for (const node of [0, 1, 2]) {
      await eventually(`no chain flow left on node ${node}`, async (saw) => {
        const left = (await chainFlowIndexes(node)).filter((i) => i !== 0);
        saw({ left });
        return left.length ? undefined : true;
      }, 60_000);
    }
    // Nothing drops lonely's port 81 any more.
    sport = 42050;
    await eventually('lonely -> web-1:81 direct again', async (saw) => {
      const failed = await connect('lonely', 'web-1', DIRECT, [++sport]);
      saw({ failed });
      return failed.length ? undefined : true;
    });
  }, 300_000);
});

/**
 * Service chains in a 3-node lab (VXLAN), every figure against a baseline measured in the same run. A client
 * pod per path on node 1 sends to one server pod on node 2: `direct` (no chain), through a 1-hop chain (a
 * Transparent CNF, a Linux bridge, on node 3) and through a 3-hop chain (Transparent on node 2, Routed on node 3,
 * one-armed Routed on node 1, so every hop crosses to another node). The chains classify all IP traffic from
 * their client to the server, so TCP and ICMP take the same CNFs. Throughput: iperf3 (one TCP stream, SECS
 * seconds), the paths alternating in every round, medians, printed as ratios to direct. Latency: ping p50/p99
 * over PINGS echoes per path, taken in alternating slices. Failover: a 1-hop chain whose Routed hop has two
 * replicas (Forwarding health check, period 1 s, threshold 2) while a client opens a new TCP connection every
 * 50 ms (900 ms timeout); one replica stops forwarding (ip_forward=0 in its pod) and the time is taken from then
 * to the first success after the first failure, and to the first moment every new connection succeeds again;
 * FAILOVERS repetitions, alternating the replica, recovered in between. Flows: a chain of H hops x R replicas
 * (one-armed CNFs on nodes 2 and 3, Readiness health) is realized for each size; its flows are counted by the
 * chaining cookie (owner 0x03, the chain's index) on the client's node and on a replica node once the count is
 * stable, with the bridge's groups. Figures depend on a machine that may be busy with other work: they are noisy.
 * Build, then: node dist/bench/chaining/chaining.js   (env SECS=4 ROUNDS=4 PINGS=200 FAILOVERS=10
 * SCALE_HOPS=1,3,8,16 SCALE_REPLICAS=1,2,4)
 */
import '../primary/quiet.js';
import { CustomObjectsApi, type V1Pod } from '@kubernetes/client-node';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';
import { CHAIN_GROUP, CHAIN_PLURAL, CHAIN_VERSION, type HopSpec, type ServiceChain } from '../../src/chaining/api/types.js';
import { chainScope } from '../../src/chaining/datapath/layout.js';
import { run } from '../../src/host/exec.js';
import { Lab } from '../../src/lab/lab.js';
import type { LabNode } from '../../src/lab/node.js';
import type { CookieSelector } from '../../src/ovs/openflow/index.js';
import { NETWORKS_ANNOTATION } from '../../src/secondary/annotations/index.js';
import { BENCH_ROOT, benchMain, benchName, eventually, median, podNetns, sleep, stats, withCleanup } from '../primary/common.js';

const SECS = Number(process.env.SECS ?? 4);
const ROUNDS = Number(process.env.ROUNDS ?? 4);
const PINGS = Number(process.env.PINGS ?? 200);
const FAILOVERS = Number(process.env.FAILOVERS ?? 10);
const numbers = (s: string): number[] => s.split(',').filter(Boolean).map(Number);
const SCALE_HOPS = numbers(process.env.SCALE_HOPS ?? '1,3,8,16');
const SCALE_REPLICAS = numbers(process.env.SCALE_REPLICAS ?? '1,2,4');

const NS = 'default';
const FUNCTION_NAD = 'chain-port';
const FAILOVER_PORT = 7000;
const CONNECT_EVERY_MS = 50;
const CONNECT_TIMEOUT_MS = 900;
/** How long after a replica stops forwarding the connection attempts are judged. */
const FAILOVER_WINDOW_MS = 10_000;
/** Generous: a busy 2-core machine runs three nodes' OVS, agents, the API server and the pods. */
const WAIT_MS = 180_000;

type PathName = 'direct' | '1 hop' | '3 hops';

interface PodSpec {
  name: string;
  node: string;
  labels?: Record<string, string>;
  /** Function interfaces (names inside the pod) from the function-port NAD. */
  functionIfs?: string[];
  command: string[];
}

function podBody(p: PodSpec): V1Pod {
  const networks = p.functionIfs?.map((i) => ({ name: FUNCTION_NAD, interface: i }));
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: p.name, namespace: NS, labels: p.labels ?? {}, ...(networks ? { annotations: { [NETWORKS_ANNOTATION]: JSON.stringify(networks) } } : {}) },
    spec: { nodeName: p.node, containers: [{ name: 'main', image: 'lab', command: p.command }] },
  };
}

const sh = (script: string): string[] => ['sh', '-c', script];
const bridgeCnf = sh('ip link add br0 type bridge && ip link set in0 master br0 && ip link set out0 master br0 && ip link set br0 up && exec sleep infinity');
const routedCnf = sh('sysctl -qw net.ipv4.ip_forward=1 && exec sleep infinity');
/** Accepts and closes TCP connections: what the failover client connects to. */
const acceptor = `require("net").createServer((s) => s.end()).listen(${FAILOVER_PORT})`;
/** Opens a connection every CONNECT_EVERY_MS; one line per attempt: start time (ms since epoch) and outcome. */
const connector = `
const net = require("net");
const [host, port, every, timeout] = [process.env.HOST, Number(process.env.PORT), Number(process.env.EVERY), Number(process.env.TIMEOUT)];
setInterval(() => {
  const t = Date.now();
  const s = net.connect({ host, port });
  let done = false;
  const end = (ok) => { if (done) return; done = true; s.destroy(); process.stdout.write(t + " " + (ok ? 1 : 0) + "\\n"); };
  s.setTimeout(timeout, () => end(false));
  s.on("connect", () => end(true));
  s.on("error", () => end(false));
}, every);
`;

function hop(name: string, selector: Record<string, string>, mode: 'Transparent' | 'Routed', oneArmed = false, extra: Partial<HopSpec> = {}): HopSpec {
  return {
    name,
    podSelector: { matchLabels: selector },
    interfaces: oneArmed ? { ingress: 'arm0', egress: 'arm0' } : { ingress: 'in0', egress: 'out0' },
    mode,
    failurePolicy: 'FailClosed',
    ...extra,
  };
}

function chainBody(name: string, source: Record<string, string>, hops: HopSpec[], classifier: Partial<ServiceChain['spec']['classifier']> = {}): ServiceChain {
  return {
    apiVersion: `${CHAIN_GROUP}/${CHAIN_VERSION}`,
    kind: 'ServiceChain',
    metadata: { name, namespace: NS },
    spec: { classifier: { source: { podSelector: { matchLabels: source } }, destination: { podSelector: { matchLabels: { role: 'server' } } }, ...classifier }, hops },
  };
}

class Bench {
  readonly custom: CustomObjectsApi;
  readonly node: [LabNode, LabNode, LabNode];
  private readonly pods = new Map<string, V1Pod>();

  constructor(readonly lab: Lab) {
    this.custom = lab.kubeConfig.makeApiClient(CustomObjectsApi);
    this.node = lab.nodes as [LabNode, LabNode, LabNode];
  }

  nodeName(i: 0 | 1 | 2): string {
    return this.node[i].plan.name;
  }

  async createNad(): Promise<void> {
    await this.custom.createNamespacedCustomObject({
      group: 'k8s.cni.cncf.io',
      version: 'v1',
      namespace: NS,
      plural: 'network-attachment-definitions',
      body: { apiVersion: 'k8s.cni.cncf.io/v1', kind: 'NetworkAttachmentDefinition', metadata: { name: FUNCTION_NAD }, spec: { config: '{"cniVersion":"1.0.0","type":"seine","networkType":"function"}' } },
    });
  }

  /** Creates the pods and waits until all are Running (pods with an address: with their IP). */
  async runPods(specs: readonly PodSpec[]): Promise<void> {
    for (const p of specs) await this.lab.core.createNamespacedPod({ namespace: NS, body: podBody(p) });
    const names = new Set(specs.map((p) => p.name));
    await eventually(
      `${specs.length} pods Running`,
      async (saw) => {
        const items = (await this.lab.core.listNamespacedPod({ namespace: NS })).items.filter((p) => names.has(p.metadata!.name!));
        const running = items.filter((p) => p.status?.phase === 'Running' && p.status.podIP);
        saw(`${running.length}/${names.size} Running; not yet: ${items.filter((p) => !running.includes(p)).map((p) => `${p.metadata!.name}=${p.status?.phase}`).slice(0, 8).join(', ')}`);
        if (running.length < names.size) return undefined;
        for (const p of running) this.pods.set(p.metadata!.name!, p);
        return true;
      },
      WAIT_MS,
      500,
    );
  }

  netns(pod: string): string {
    return podNetns(this.lab, this.pods.get(pod)!);
  }

  ip(pod: string): string {
    return this.pods.get(pod)!.status!.podIP!;
  }

  async deletePods(names: readonly string[]): Promise<void> {
    for (const name of names) await this.lab.core.deleteNamespacedPod({ name, namespace: NS });
    const gone = new Set(names);
    await eventually(`${names.length} pods deleted`, async () => ((await this.lab.core.listNamespacedPod({ namespace: NS })).items.some((p) => gone.has(p.metadata!.name!)) ? undefined : true), WAIT_MS, 500);
    for (const n of names) this.pods.delete(n);
  }

  async createChain(c: ServiceChain): Promise<void> {
    await this.custom.createNamespacedCustomObject({ group: CHAIN_GROUP, version: CHAIN_VERSION, namespace: NS, plural: CHAIN_PLURAL, body: c });
  }

  async readChain(name: string): Promise<ServiceChain> {
    return (await this.custom.getNamespacedCustomObject({ group: CHAIN_GROUP, version: CHAIN_VERSION, namespace: NS, plural: CHAIN_PLURAL, name })) as ServiceChain;
  }

  async deleteChain(name: string): Promise<void> {
    await this.custom.deleteNamespacedCustomObject({ group: CHAIN_GROUP, version: CHAIN_VERSION, namespace: NS, plural: CHAIN_PLURAL, name });
  }

  /** Waits until the chain is Ready with every replica healthy; returns it (with its index). */
  async chainReady(name: string): Promise<ServiceChain> {
    return eventually(
      `chain ${name} Ready with every replica healthy`,
      async (saw) => {
        const c = await this.readChain(name);
        const ready = c.status?.conditions?.find((x) => x.type === 'Ready');
        const replicas = c.status?.hops?.flatMap((h) => h.replicas ?? []) ?? [];
        saw({ ready: ready?.reason, replicas: replicas.map((r) => `${r.pod}:${r.healthy ? 'ok' : (r.reason ?? 'no')}`) });
        return ready?.status === 'True' && replicas.length && replicas.every((r) => r.healthy) && c.status?.index ? c : undefined;
      },
      WAIT_MS,
      500,
    );
  }
}

// ---- throughput and latency ------------------------------------------------------------------------------

interface Path {
  name: PathName;
  client: string;
  /** Where the packets go, for the output. */
  route: string;
}

interface IperfResult {
  bps: number;
  bytes: number;
  retransmits: number;
  /** CPU seconds each node's ovs-vswitchd spent during the run (lab node order). */
  vswitchdCpu: number[];
  /** CPU seconds the whole machine was busy during the run. */
  machineCpu: number;
}

const CLOCK_TICKS = 100;

/** utime + stime of a process, in seconds. */
function processCpu(pid: number | undefined): number {
  if (!pid) return 0;
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  } catch {
    return 0;
  }
}

/** Seconds of CPU time the machine spent busy (all cores), from /proc/stat. */
function machineBusy(): number {
  const [, ...t] = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/);
  const n = t.map(Number);
  return (n.reduce((a, x) => a + x, 0) - n[3]! - n[4]!) / CLOCK_TICKS;
}

async function iperf3(b: Bench, client: string, server: string): Promise<IperfResult> {
  const pids = b.lab.nodes.map((n) => n.ovs.pid('ovs-vswitchd'));
  const cpu0 = pids.map(processCpu);
  const busy0 = machineBusy();
  const { stdout } = await run('iperf3', ['-c', b.ip(server), '-t', String(SECS), '-J'], { netns: b.netns(client), timeoutMs: (SECS + 30) * 1000 });
  const machineCpu = machineBusy() - busy0;
  const vswitchdCpu = pids.map((p, i) => processCpu(p) - cpu0[i]!);
  const j = JSON.parse(stdout) as { end: { sum_received: { bits_per_second: number; bytes: number }; sum_sent: { retransmits?: number } } };
  return { bps: j.end.sum_received.bits_per_second, bytes: j.end.sum_received.bytes, retransmits: j.end.sum_sent.retransmits ?? 0, vswitchdCpu, machineCpu };
}

/** Round-trip times in ms of `count` echoes (lost ones left out) and the TTL of the replies. */
async function ping(b: Bench, client: string, server: string, count: number): Promise<{ rtts: number[]; ttl: number; lost: number }> {
  const { stdout } = await run('ping', ['-c', String(count), '-i', '0.01', '-W', '1', b.ip(server)], { netns: b.netns(client), timeoutMs: count * 1000 + 30_000 });
  const rtts = [...stdout.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1]));
  const ttl = Number(/ttl=(\d+)/.exec(stdout)?.[1] ?? NaN);
  return { rtts, ttl, lost: count - rtts.length };
}

async function throughputAndLatency(b: Bench, paths: readonly Path[], server: string): Promise<void> {
  for (const p of paths) {
    await eventually(`${p.name}: ${p.client} pings the server`, async () => ((await ping(b, p.client, server, 1)).rtts.length ? true : undefined), WAIT_MS, 500);
    await eventually(`${p.name}: iperf3 from ${p.client}`, async () => (await iperf3(b, p.client, server), true), WAIT_MS, 1000);
  }
  const tput = new Map<PathName, IperfResult[]>();
  const lat = new Map<PathName, { rtts: number[]; ttl: number; lost: number }>();
  const slice = Math.max(1, Math.ceil(PINGS / ROUNDS));
  for (let r = 0; r < ROUNDS; r++) {
    for (const p of r % 2 ? [...paths].reverse() : paths) {
      tput.set(p.name, [...(tput.get(p.name) ?? []), await iperf3(b, p.client, server)]);
      const got = await ping(b, p.client, server, Math.min(slice, PINGS - r * slice));
      const acc = lat.get(p.name) ?? { rtts: [], ttl: got.ttl, lost: 0 };
      lat.set(p.name, { rtts: [...acc.rtts, ...got.rtts], ttl: got.ttl, lost: acc.lost + got.lost });
    }
  }
  const base = median(tput.get('direct')!.map((x) => x.bps));
  const baseLat = stats(lat.get('direct')!.rtts);
  console.log(`\nTCP throughput (iperf3 -t ${SECS}, one stream, ${ROUNDS} alternating rounds, median):`);
  for (const p of paths) {
    const xs = tput.get(p.name)!;
    const m = median(xs.map((x) => x.bps));
    const goal = p.name === '3 hops' ? `   (goal: at least 0.50x direct)` : '';
    console.log(`  ${p.name.padEnd(7)} ${(m / 1e9).toFixed(2)} Gbit/s  ${(m / base).toFixed(2)}x direct${goal} | runs ${xs.map((x) => (x.bps / 1e9).toFixed(2)).join(' / ')} Gbit/s; retransmits ${xs.map((x) => x.retransmits).join('/')}`);
    console.log(`  ${''.padEnd(7)} ${p.route}`);
  }
  // Where the machine's time goes: on 2 cores shared by 3 nodes, throughput is the machine's capacity divided by
  // the work each byte costs, so the work per byte explains the ratios.
  const work = (xs: IperfResult[]): { perNode: number[]; vswitchd: number; machine: number; busy: number } => {
    const gb = xs.reduce((a, x) => a + x.bytes, 0) / 1e9;
    const perNode = b.lab.nodes.map((_, i) => xs.reduce((a, x) => a + x.vswitchdCpu[i]!, 0) / gb);
    const machine = xs.reduce((a, x) => a + x.machineCpu, 0);
    return { perNode, vswitchd: perNode.reduce((a, x) => a + x, 0), machine: machine / gb, busy: machine / (xs.length * SECS) };
  };
  const baseWork = work(tput.get('direct')!);
  console.log(`\nCPU per gigabyte carried (ovs-vswitchd per node, ${b.lab.nodes.map((n) => n.plan.name).join(' / ')}; the whole machine), same runs:`);
  for (const p of paths) {
    const w = work(tput.get(p.name)!);
    console.log(
      `  ${p.name.padEnd(7)} ovs-vswitchd ${w.vswitchd.toFixed(1)} s/GB (${(w.vswitchd / baseWork.vswitchd).toFixed(2)}x direct; ${w.perNode.map((x) => x.toFixed(1)).join(' / ')})` +
        `  machine ${w.machine.toFixed(1)} s/GB (${(w.machine / baseWork.machine).toFixed(2)}x direct), ${w.busy.toFixed(2)} of ${cpus().length} cores busy`,
    );
  }
  console.log(`\nping round trip (${PINGS} echoes per path, 10 ms apart, in ${ROUNDS} alternating slices):`);
  for (const p of paths) {
    const l = lat.get(p.name)!;
    const s = stats(l.rtts);
    console.log(`  ${p.name.padEnd(7)} p50 ${s.p50.toFixed(3)} ms (${(s.p50 / baseLat.p50).toFixed(2)}x direct)  p99 ${s.p99.toFixed(3)} ms (${(s.p99 / baseLat.p99).toFixed(2)}x)  lost ${l.lost}; reply TTL ${l.ttl}`);
  }
}

// ---- failover --------------------------------------------------------------------------------------------

interface Attempt {
  t: number;
  ok: boolean;
}

/** The connector running in the client's namespace; its attempts are collected as they finish. */
class Connector {
  readonly attempts: Attempt[] = [];
  private readonly child;

  constructor(netns: string, host: string, port: number) {
    this.child = spawn('nsenter', [`--net=${netns}`, '--', process.execPath, '-e', connector], {
      env: { ...process.env, HOST: host, PORT: String(port), EVERY: String(CONNECT_EVERY_MS), TIMEOUT: String(CONNECT_TIMEOUT_MS) },
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    createInterface({ input: this.child.stdout }).on('line', (l) => {
      const [t, ok] = l.split(' ');
      this.attempts.push({ t: Number(t), ok: ok === '1' });
    });
  }

  /** Attempts started in [from, to), in order of their start. */
  between(from: number, to: number): Attempt[] {
    return this.attempts.filter((a) => a.t >= from && a.t < to).sort((a, b) => a.t - b.t);
  }

  /** Waits until the last `n` attempts started after `since` all succeeded. */
  async steady(since: number, n = 40): Promise<void> {
    await eventually(
      `${n} new connections in a row succeed`,
      async (saw) => {
        const xs = this.between(since, Infinity);
        const tail = xs.slice(-n);
        saw(`${xs.length} attempts since, last ${n}: ${tail.filter((a) => a.ok).length} ok`);
        return tail.length === n && tail.every((a) => a.ok) ? true : undefined;
      },
      WAIT_MS,
      250,
    );
  }

  stop(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGTERM');
  }
}

async function failover(b: Bench, client: string, server: string, replicas: readonly [string, string]): Promise<void> {
  const conn = new Connector(b.netns(client), b.ip(server), FAILOVER_PORT);
  try {
    await conn.steady(Date.now());
    const firstSuccess: number[] = [];
    const allSucceed: number[] = [];
    const failed: number[] = [];
    for (let i = 0; i < FAILOVERS; i++) {
      const victim = replicas[i % 2]!;
      const t0 = Date.now();
      await run('sysctl', ['-qw', 'net.ipv4.ip_forward=0'], { netns: b.netns(victim) });
      await sleep(FAILOVER_WINDOW_MS + CONNECT_TIMEOUT_MS);
      const xs = conn.between(t0, t0 + FAILOVER_WINDOW_MS);
      const firstFail = xs.findIndex((a) => !a.ok);
      const lastFail = xs.map((a) => a.ok).lastIndexOf(false);
      failed.push(xs.filter((a) => !a.ok).length);
      if (firstFail >= 0) {
        const after = xs.slice(firstFail).find((a) => a.ok);
        const again = xs.slice(lastFail).find((a) => a.ok);
        firstSuccess.push(after ? after.t - t0 : Infinity);
        allSucceed.push(again ? again.t - t0 : Infinity);
      } else {
        firstSuccess.push(0);
        allSucceed.push(0);
      }
      await run('sysctl', ['-qw', 'net.ipv4.ip_forward=1'], { netns: b.netns(victim) });
      await b.chainReady('failover');
      await conn.steady(Date.now());
    }
    const show = (xs: number[]): string => `median ${fmtSec(median(xs))}, worst ${fmtSec(Math.max(...xs))}  [${xs.map(fmtSec).join(' ')}]`;
    console.log(`\nfailover (${FAILOVERS} times, a replica of a 2-replica Routed hop stops forwarding; a new connection every ${CONNECT_EVERY_MS} ms, ${CONNECT_TIMEOUT_MS} ms timeout):`);
    console.log(`  first success after the first failure      ${show(firstSuccess)}`);
    console.log(`  every new connection succeeds again after   ${show(allSucceed)}`);
    console.log(`  failed connections per failover: ${failed.join(' ')} (of ${Math.round(FAILOVER_WINDOW_MS / CONNECT_EVERY_MS)} attempts in ${FAILOVER_WINDOW_MS / 1000} s; about half hash to the failed replica until it leaves the rotation)`);
  } finally {
    conn.stop();
  }
}

const fmtSec = (ms: number): string => (Number.isFinite(ms) ? `${(ms / 1000).toFixed(2)} s` : `> ${FAILOVER_WINDOW_MS / 1000} s`);

// ---- flows per chain -------------------------------------------------------------------------------------

async function countFlows(n: LabNode, sel: CookieSelector): Promise<number> {
  const { stdout } = await run('ovs-ofctl', ['-O', 'OpenFlow15', 'dump-flows', '--no-names', n.ovs.bridgeMgmt('br-int'), `cookie=0x${sel.value.toString(16)}/0x${sel.mask.toString(16)}`], { env: n.ovs.env });
  return stdout.split('\n').filter((l) => l.includes('cookie=')).length;
}

async function countGroups(n: LabNode): Promise<number> {
  const { stdout } = await run('ovs-ofctl', ['-O', 'OpenFlow15', 'dump-groups', n.ovs.bridgeMgmt('br-int')], { env: n.ovs.env });
  return stdout.split('\n').filter((l) => l.trim().startsWith('group_id=')).length;
}

/** The chain's flow counts on the given nodes, once they stayed the same over three reads a second apart. */
async function stableCounts(nodes: readonly LabNode[], sel: CookieSelector): Promise<number[]> {
  let last = '';
  let same = 0;
  return eventually(
    'the chain flow counts to settle',
    async (saw) => {
      const counts = await Promise.all(nodes.map((n) => countFlows(n, sel)));
      const key = counts.join(',');
      same = key === last ? same + 1 : 0;
      last = key;
      saw(key);
      return same >= 2 && counts.every((c) => c > 0) ? counts : undefined;
    },
    WAIT_MS,
    1000,
  );
}

async function flowScaling(b: Bench): Promise<void> {
  const maxHops = Math.max(...SCALE_HOPS);
  const maxReplicas = Math.max(...SCALE_REPLICAS);
  // One-armed CNFs, replicas alternating between node 2 and node 3; the client (classified source) is on node 1.
  const specs: PodSpec[] = [];
  for (let h = 0; h < maxHops; h++) {
    for (let r = 1; r <= maxReplicas; r++) {
      specs.push({ name: `scale-h${h}-r${r}`, node: b.nodeName(r % 2 ? 1 : 2), labels: { 'scale-hop': String(h), 'scale-replica': String(r) }, functionIfs: ['arm0'], command: routedCnf });
    }
  }
  console.log(`\nflows per chain: starting ${specs.length} one-armed CNF pods ...`);
  await b.runPods(specs);
  const [client, replicaNode] = [b.node[0], b.node[1]];
  const groupsBefore = await countGroups(client);
  const base = await countFlows(client, chainScope(0));
  const rows: string[] = [];
  for (const hops of SCALE_HOPS) {
    for (const replicas of SCALE_REPLICAS) {
      const name = `scale-${hops}x${replicas}`;
      const hopSpecs = Array.from({ length: hops }, (_, h): HopSpec => ({
        ...hop(`h${h}`, {}, 'Routed', true, { healthCheck: { type: 'Readiness' } }),
        podSelector: {
          matchLabels: { 'scale-hop': String(h) },
          matchExpressions: [{ key: 'scale-replica', operator: 'In', values: Array.from({ length: replicas }, (_, i) => String(i + 1)) }],
        },
      }));
      await b.createChain(chainBody(name, { path: 'direct' }, hopSpecs, { protocol: 'TCP', ports: [{ port: 9 }] }));
      const c = await b.chainReady(name);
      const sel = chainScope(c.status!.index!);
      const [onClient, onReplica] = await stableCounts([client, replicaNode], sel);
      const total = (await Promise.all(b.node.map((n) => countFlows(n, sel)))).reduce((x, y) => x + y, 0);
      const groups = (await countGroups(client)) - groupsBefore;
      rows.push(`  ${String(hops).padStart(4)} ${String(replicas).padStart(8)}   ${String(onClient).padStart(12)}   ${String(onReplica).padStart(13)}   ${String(total).padStart(9)}   ${String(groups).padStart(6)}`);
      await b.deleteChain(name);
      await eventually(`chain ${name}'s flows removed`, async () => ((await Promise.all(b.node.map((n) => countFlows(n, sel)))).every((x) => x === 0) ? true : undefined), WAIT_MS, 500);
    }
  }
  console.log(`flows per chain (cookie owner 0x03 and the chain's index; node-wide chain flows besides: ${base} on ${client.plan.name}):`);
  console.log(`  hops replicas   ${client.plan.name} (client)   ${replicaNode.plan.name} (replicas)   all nodes   groups`);
  for (const r of rows) console.log(r);
  console.log('  (replicas alternate between node 2 and node 3; the chain stage chooses replicas with multipath, not groups)');
  await b.deletePods(specs.map((s) => s.name));
}

// ---- main ------------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const id = benchName('bc');
  const lab = await Lab.up({ name: id, nodes: 3, stateRoot: BENCH_ROOT, encap: 'vxlan' });
  await withCleanup(() => lab.down(), async () => {
    const b = new Bench(lab);
    const [n1, n2, n3] = [b.nodeName(0), b.nodeName(1), b.nodeName(2)];
    await b.createNad();
    const server = sh(`iperf3 -s & exec ${process.execPath} -e '${acceptor}'`);
    await b.runPods([
      { name: 'server', node: n2, labels: { role: 'server' }, command: server },
      { name: 'client-direct', node: n1, labels: { path: 'direct' }, command: ['sleep', 'infinity'] },
      { name: 'client-1hop', node: n1, labels: { path: 'one' }, command: ['sleep', 'infinity'] },
      { name: 'client-3hop', node: n1, labels: { path: 'three' }, command: ['sleep', 'infinity'] },
      { name: 'client-failover', node: n1, labels: { path: 'failover' }, command: ['sleep', 'infinity'] },
      { name: 'one-bridge', node: n3, labels: { cnf: 'one-bridge' }, functionIfs: ['in0', 'out0'], command: bridgeCnf },
      { name: 'three-bridge', node: n2, labels: { cnf: 'three-bridge' }, functionIfs: ['in0', 'out0'], command: bridgeCnf },
      { name: 'three-router', node: n3, labels: { cnf: 'three-router' }, functionIfs: ['in0', 'out0'], command: routedCnf },
      { name: 'three-arm', node: n1, labels: { cnf: 'three-arm' }, functionIfs: ['arm0'], command: routedCnf },
      { name: 'failover-1', node: n2, labels: { cnf: 'failover' }, functionIfs: ['in0', 'out0'], command: routedCnf },
      { name: 'failover-2', node: n3, labels: { cnf: 'failover' }, functionIfs: ['in0', 'out0'], command: routedCnf },
    ]);
    const fastHealth = { healthCheck: { type: 'Forwarding' as const, periodSeconds: 1, failureThreshold: 2 } };
    await b.createChain(chainBody('one-hop', { path: 'one' }, [hop('bridge', { cnf: 'one-bridge' }, 'Transparent')]));
    await b.createChain(
      chainBody('three-hops', { path: 'three' }, [
        hop('bridge', { cnf: 'three-bridge' }, 'Transparent'),
        hop('router', { cnf: 'three-router' }, 'Routed'),
        hop('arm', { cnf: 'three-arm' }, 'Routed', true),
      ]),
    );
    await b.createChain(chainBody('failover', { path: 'failover' }, [hop('router', { cnf: 'failover' }, 'Routed', false, fastHealth)], { protocol: 'TCP', ports: [{ port: FAILOVER_PORT }] }));
    for (const c of ['one-hop', 'three-hops', 'failover']) await b.chainReady(c);
    console.log(`lab: 3 nodes (VXLAN); client pods on ${n1}, the server on ${n2}`);

    await throughputAndLatency(
      b,
      [
        { name: 'direct', client: 'client-direct', route: `${n1} -> server ${n2}` },
        { name: '1 hop', client: 'client-1hop', route: `${n1} -> bridge CNF ${n3} -> server ${n2}` },
        { name: '3 hops', client: 'client-3hop', route: `${n1} -> bridge CNF ${n2} -> router CNF ${n3} -> one-armed router CNF ${n1} -> server ${n2}` },
      ],
      'server',
    );
    const chained = await Promise.all(['one-hop', 'three-hops'].map(async (n) => `${n} ${(await b.readChain(n)).status?.packets?.forward ?? 0}`));
    console.log(`  chain status, forward packets so far (written at most every 10 s): ${chained.join(', ')}`);

    await failover(b, 'client-failover', 'server', ['failover-1', 'failover-2']);
    console.log(`  replicas: failover-1 on ${n2}, failover-2 on ${n3}; the client on ${n1}, the server on ${n2}`);

    await flowScaling(b);
  });
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await benchMain('Seine service chains: throughput, latency, failover and flows, against direct pod-to-pod traffic in the same run', main);

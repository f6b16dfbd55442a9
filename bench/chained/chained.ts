/**
 * Seine chained after the cloud's CNI, in a 2-node lab standing in for EKS (the AWS VPC CNI), every figure against
 * a baseline measured in the same run:
 *   1. the datapath cost of being taken over: pod to pod on one node and across nodes, iperf3 TCP throughput (one
 *      stream, SECS seconds, ROUNDS rounds alternating the two pairs, medians) and ping round trip (PINGS echoes
 *      10 ms apart, taken in slices after each iperf3 run, p50), first with the cloud's CNI alone (the baseline),
 *      then through OVS once Seine has taken the same pods over;
 *   2. pod ADD latency: ADDS pods created one at a time, nodes alternating, from the create call until a watch on
 *      the API server sees the pod Running with its IP, p50 and p95: with the cloud's CNI alone (the baseline,
 *      before Seine is installed) and with Seine chained after it;
 *   3. take-over: with PODS pods running on the cloud's CNI alone, the time from `installSeine()` returning (every
 *      node's 05-seine.conflist written, as a rollout would wait for) until each pod's host route goes through
 *      seine-gw0 (the nodes' routes read every POLL_MS from the call on: the agents start, and may take pods over,
 *      before it returns; also shown from the call), while a client pings a pod on its node and one across nodes
 *      every 0.2 s: the longest run of lost echoes. The baseline: PODS new pods created at once with Seine
 *      installed, until all are Running (their ADDs through the cloud's CNI and Seine).
 * Taken over, pod traffic goes through the lab's OVS, which runs the userspace datapath (docs/lab.md); the EKS
 * manifest runs OVS's kernel datapath. The pods taken over in 3 are those of 1 (a client, an iperf3 server on each
 * node) and idle ones, spread over the nodes. Before and after are one-way here (the same pods, once on the cloud's
 * CNI, then taken over), so they cannot alternate: a machine whose load changes between the two moves the ratios.
 * Build, then: node dist/bench/chained/chained.js   (env PODS=20 ADDS=10 SECS=4 ROUNDS=3 PINGS=200)
 */
import '../primary/quiet.js';
import { Watch, type V1Pod } from '@kubernetes/client-node';
import { spawn, type ChildProcess } from 'node:child_process';
import { renderTable } from '../../src/cli/table.js';
import { commandLine, run } from '../../src/host/exec.js';
import { Lab } from '../../src/lab/lab.js';
import { BENCH_ROOT, benchMain, benchName, eventually, fmtMs, labPod, median, podNetns, sleep, stats, withCleanup } from '../primary/common.js';
import { iperf, warm, type Pair } from '../primary/throughput.js';

const PODS = Number(process.env.PODS ?? 20);
const ADDS = Number(process.env.ADDS ?? 10);
const SECS = Number(process.env.SECS ?? 4);
const ROUNDS = Number(process.env.ROUNDS ?? 3);
const PINGS = Number(process.env.PINGS ?? 200);

const NS = 'default';
/** Every pod of the bench carries this label; its value names the pod's group. */
const LABEL = 'seine.dev/bench-chained';
/** How often the nodes' routes are read while Seine takes the pods over. */
const POLL_MS = 100;
/** Generous: a 2-core machine runs both nodes' OVS, the agents, the API server and the pods. */
const WAIT_MS = 180_000;
const GW = 'seine-gw0';

/** A progress line (stderr, so the figures stay together on stdout). */
const step = (what: string): void => void process.stderr.write(`  .. ${what}\n`);

/** Rows of the closing table: figure, Seine, baseline, ratio. */
const summary: string[][] = [];

/** Nearest-rank quantile. */
function quantile(xs: readonly number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))]!;
}

const secs = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;
const gbit = (bps: number): string => (bps / 1e9).toFixed(2);

/** When each pod of the namespace was first seen Running with an IP, through one watch. */
class RunningWatch {
  private readonly at = new Map<string, number>();
  private readonly waiting = new Map<string, Array<(t: number) => void>>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private abort?: AbortController;
  private stopped = false;

  constructor(private readonly lab: Lab) {}

  async start(): Promise<void> {
    this.abort = await new Watch(this.lab.kubeConfig).watch(
      `/api/v1/namespaces/${NS}/pods`,
      { labelSelector: LABEL },
      (_type: string, pod: V1Pod) => {
        if (pod.status?.phase === 'Running' && pod.status.podIP) this.saw(pod.metadata!.name!, performance.now());
      },
      // A watch the server ended: watch again, and take what became Running meanwhile from a list.
      () => {
        if (!this.stopped) void this.restart();
      },
    );
  }

  private async restart(): Promise<void> {
    try {
      await this.start();
      const now = performance.now();
      for (const p of (await this.lab.core.listNamespacedPod({ namespace: NS, labelSelector: LABEL })).items) {
        if (p.status?.phase === 'Running' && p.status.podIP) this.saw(p.metadata!.name!, now);
      }
    } catch (e) {
      if (!this.stopped) process.stderr.write(`pod watch: ${String(e)}\n`);
    }
  }

  private saw(name: string, t: number): void {
    if (this.at.has(name)) return;
    this.at.set(name, t);
    for (const resolve of this.waiting.get(name) ?? []) resolve(t);
    this.waiting.delete(name);
  }

  /** When the pod was first seen Running (performance.now()). */
  running(name: string): Promise<number> {
    const t = this.at.get(name);
    if (t !== undefined) return Promise.resolve(t);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => (this.timers.delete(timer), reject(new Error(`pod ${name} not Running within ${WAIT_MS / 1000} s`))), WAIT_MS);
      this.timers.add(timer);
      this.waiting.set(name, [...(this.waiting.get(name) ?? []), (t) => (clearTimeout(timer), this.timers.delete(timer), resolve(t))]);
    });
  }

  /** Ends the watch; pods still awaited are no longer (their promises stay pending). */
  stop(): void {
    this.stopped = true;
    this.abort?.abort();
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }
}

/** A ping every 0.2 s from a namespace, until stopped. */
class PingUnderChange {
  private readonly child: ChildProcess;
  private readonly exited: Promise<unknown>;
  private output = '';

  constructor(netns: string, to: string) {
    const argv = commandLine('ping', ['-n', '-i', '0.2', '-W', '1', to], netns);
    this.child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'ignore'] });
    this.child.stdout!.on('data', (d: Buffer) => (this.output += d.toString()));
    this.exited = new Promise((r) => this.child.once('exit', r));
  }

  /** Echoes sent and answered, and the longest run of unanswered ones up to the last answer. */
  async stop(): Promise<{ sent: number; answered: number; longestLoss: number }> {
    this.child.kill('SIGINT');
    await this.exited;
    const answered = new Set([...this.output.matchAll(/icmp_seq=(\d+)/g)].map((m) => Number(m[1])));
    const sent = Number(/(\d+) packets transmitted/.exec(this.output)?.[1] ?? 0);
    let longestLoss = 0;
    let lost = 0;
    for (let seq = 1; seq <= Math.max(0, ...answered); seq++) {
      lost = answered.has(seq) ? 0 : lost + 1;
      longestLoss = Math.max(longestLoss, lost);
    }
    return { sent, answered: answered.size, longestLoss };
  }
}

type PairName = 'across nodes' | 'one node';

interface PathFigures {
  bps: number[];
  retransmits: number[];
  rtts: number[];
  lost: number;
}

class Bench {
  readonly watch: RunningWatch;
  readonly nodeNames: [string, string];
  /** The pods of the datapath pairs and the idle ones: what Seine takes over. */
  running: V1Pod[] = [];

  constructor(readonly lab: Lab) {
    this.watch = new RunningWatch(lab);
    this.nodeNames = [lab.plan.nodes[0]!.name, lab.plan.nodes[1]!.name];
  }

  pod(name: string): V1Pod {
    return this.running.find((p) => p.metadata!.name === name)!;
  }

  /** The client on node 1 and the iperf3 server it measures against, on its node and on node 2. */
  pairs(): Array<[PairName, Pair]> {
    const clientNetns = podNetns(this.lab, this.pod('client'));
    return [
      ['across nodes', { clientNetns, serverIp: this.pod('server-2').status!.podIP! }],
      ['one node', { clientNetns, serverIp: this.pod('server-1').status!.podIP! }],
    ];
  }

  /** Creates the pods (nodes alternating from `first`) all at once; resolves with each one's create -> Running time. */
  async createPods(group: string, names: readonly string[], command?: (name: string) => string[] | undefined, first = 0): Promise<number[]> {
    return Promise.all(
      names.map(async (name, i) => {
        const body = labPod(name, this.nodeNames[(first + i) % 2]!, command?.(name));
        body.metadata!.labels = { [LABEL]: group };
        const t0 = performance.now();
        await this.lab.core.createNamespacedPod({ namespace: NS, body });
        return (await this.watch.running(name)) - t0;
      }),
    );
  }

  async deleteGroup(group: string): Promise<void> {
    const labelSelector = `${LABEL}=${group}`;
    await this.lab.core.deleteCollectionNamespacedPod({ namespace: NS, labelSelector });
    await eventually(`the ${group} pods deleted`, async () => ((await this.lab.core.listNamespacedPod({ namespace: NS, labelSelector })).items.length ? undefined : true), WAIT_MS, 250);
  }

  async listGroup(group: string): Promise<V1Pod[]> {
    return (await this.lab.core.listNamespacedPod({ namespace: NS, labelSelector: `${LABEL}=${group}` })).items;
  }

  /** Each node's host routes to single addresses: destination -> device. */
  async hostRoutes(): Promise<Map<string, string>> {
    const outputs = await Promise.all(this.lab.nodes.map(async (n) => (await run('ip', ['-4', 'route', 'show'], { netns: n.netns })).stdout));
    const routes = new Map<string, string>();
    for (const m of outputs.join('\n').matchAll(/^(\d+\.\d+\.\d+\.\d+) dev (\S+)/gm)) routes.set(m[1]!, m[2]!);
    return routes;
  }
}

// ---- 1: datapath -----------------------------------------------------------------------------------------------

/** Round-trip times (ms) of `count` echoes 10 ms apart; the lost ones are counted, not timed. */
async function rtts(pair: Pair, count: number): Promise<{ rtts: number[]; lost: number }> {
  const { stdout } = await run('ping', ['-n', '-c', String(count), '-i', '0.01', '-W', '1', pair.serverIp], { netns: pair.clientNetns, timeoutMs: count * 1000 + 30_000 });
  const got = [...stdout.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1]));
  return { rtts: got, lost: count - got.length };
}

async function datapath(b: Bench, label: string): Promise<Map<PairName, PathFigures>> {
  const pairs = b.pairs();
  for (const [name, pair] of pairs) {
    step(`${label}: warming up ${name} (${pair.serverIp})`);
    await warm(pair);
  }
  const figures = new Map<PairName, PathFigures>(pairs.map(([n]) => [n, { bps: [], retransmits: [], rtts: [], lost: 0 }]));
  const slice = Math.ceil(PINGS / ROUNDS);
  for (let r = 0; r < ROUNDS; r++) {
    for (const [name, pair] of r % 2 ? [...pairs].reverse() : pairs) {
      step(`${label}: iperf3 and ping, round ${r + 1}/${ROUNDS}: ${name}`);
      const f = figures.get(name)!;
      const t = await iperf(pair, SECS);
      f.bps.push(t.bps);
      f.retransmits.push(t.retransmits);
      const p = await rtts(pair, Math.min(slice, PINGS - r * slice));
      f.rtts.push(...p.rtts);
      f.lost += p.lost;
    }
  }
  return figures;
}

function printDatapath(b: Bench, cloud: Map<PairName, PathFigures>, seine: Map<PairName, PathFigures>): void {
  const [n1, n2] = b.nodeNames;
  console.log(`\n1. datapath: client pod on ${n1} -> iperf3 server pod on ${n2} (across nodes) and on ${n1} (one node); iperf3 -t ${SECS}, one stream, ${ROUNDS} rounds alternating, medians; ${PINGS} pings 10 ms apart per pair`);
  const rows: string[][] = [];
  for (const [name] of b.pairs()) {
    for (const [setup, f] of [["cloud's CNI alone", cloud.get(name)!], ['taken over by Seine', seine.get(name)!]] as const) {
      const s = stats(f.rtts);
      rows.push([name, setup, gbit(median(f.bps)), f.bps.map(gbit).join(' / '), f.retransmits.join('/'), s.p50.toFixed(3), s.p99.toFixed(3), String(f.lost)]);
    }
  }
  console.log(renderTable(['pair', 'path', 'Gbit/s', 'runs', 'retransmits', 'ping p50 ms', 'ping p99 ms', 'lost'], rows));
  console.log("  (taken over, packets go through the lab's OVS userspace datapath (netdev); the cloud's CNI alone, through the node kernel's routing only)");
  for (const [name] of b.pairs()) {
    const [c, s] = [cloud.get(name)!, seine.get(name)!];
    const tput = median(s.bps) / median(c.bps);
    const rtt = stats(s.rtts).p50 / stats(c.rtts).p50;
    console.log(`  => ${name}: throughput ${tput.toFixed(2)}x, ping p50 ${rtt.toFixed(2)}x the cloud's CNI alone`);
    summary.push([`iperf3 Gbit/s, ${name}`, gbit(median(s.bps)), gbit(median(c.bps)), tput.toFixed(2)]);
    summary.push([`ping p50 ms, ${name}`, stats(s.rtts).p50.toFixed(3), stats(c.rtts).p50.toFixed(3), rtt.toFixed(2)]);
  }
}

// ---- 2: pod ADD latency ----------------------------------------------------------------------------------------

/** ADDS pods one at a time, nodes alternating: each one's create -> Running time; then they are deleted. */
async function addLatency(b: Bench, group: string, label: string): Promise<number[]> {
  const samples: number[] = [];
  for (let i = 0; i < ADDS; i++) {
    step(`${label}: pod ADD ${i + 1}/${ADDS}`);
    samples.push(...(await b.createPods(group, [`${group}-${i}`], undefined, i)));
  }
  step(`${label}: deleting the ${ADDS} pods`);
  await b.deleteGroup(group);
  return samples;
}

function printAddLatency(cloud: number[], seine: number[]): void {
  console.log(`\n2. pod ADD latency: ${ADDS} pods created one at a time, nodes alternating, create -> Running (API watch)`);
  const row = (what: string, xs: number[]): string[] => [what, fmtMs(quantile(xs, 0.5)), fmtMs(quantile(xs, 0.95)), fmtMs(Math.min(...xs)), fmtMs(Math.max(...xs))];
  console.log(renderTable(['conflist', 'p50 ms', 'p95 ms', 'min ms', 'max ms'], [row("cloud's CNI alone (10-aws.conflist)", cloud), row('Seine chained (05-seine.conflist)', seine)]));
  for (const p of [0.5, 0.95]) {
    const [s, c] = [quantile(seine, p), quantile(cloud, p)];
    const what = `pod ADD p${p * 100} ms`;
    console.log(`  => ${what}: ${(s / c).toFixed(2)}x the cloud's CNI alone`);
    summary.push([what, fmtMs(s), fmtMs(c), (s / c).toFixed(2)]);
  }
}

// ---- 3: take-over --------------------------------------------------------------------------------------------

interface TakeOver {
  /** How long installSeine() took (until every node's 05-seine.conflist was written). */
  installMs: number;
  /** Per pod: from installSeine() being called until its host route went through seine-gw0. */
  takenMs: number[];
  pings: Array<[PairName, { sent: number; answered: number; longestLoss: number }]>;
}

/**
 * Installs Seine under the pings, reading the nodes' routes from the moment installSeine() is called: the agents
 * start while it waits for the conflists, and may take pods over before it returns.
 */
async function takeOver(b: Bench): Promise<TakeOver> {
  const pings = b.pairs().map(([name, pair]) => [name, new PingUnderChange(pair.clientNetns, pair.serverIp)] as const);
  const at = new Map<string, number>();
  let installMs: number;
  let stopped: TakeOver['pings'];
  try {
    await sleep(1000);
    step(`installing Seine (${b.running.length} pods running on the cloud's CNI)`);
    const t0 = performance.now();
    let failed = false;
    const install = b.lab.installSeine().then(() => performance.now() - t0, (e: unknown) => ((failed = true), Promise.reject(e)));
    const allTaken = eventually(
      `${b.running.length} pods taken over`,
      async (saw) => {
        if (failed) return false;
        const routes = await b.hostRoutes();
        const now = performance.now() - t0;
        for (const p of b.running) if (!at.has(p.metadata!.name!) && routes.get(p.status!.podIP!) === GW) at.set(p.metadata!.name!, now);
        saw(`${at.size}/${b.running.length} taken over`);
        return at.size === b.running.length ? true : undefined;
      },
      WAIT_MS,
      POLL_MS,
    );
    [installMs] = await Promise.all([install, allTaken]);
    step(`every pod taken over ${secs(Math.max(...at.values()) - installMs)} after installSeine() returned; 2 s more of pings through OVS`);
    await sleep(2000);
  } finally {
    stopped = await Promise.all(pings.map(async ([name, p]): Promise<TakeOver['pings'][number]> => [name, await p.stop()]));
  }
  return { installMs, takenMs: [...at.values()], pings: stopped };
}

/** The baseline of the take-over: as many new pods, created at once with Seine installed, until all are Running. */
async function createAtOnce(b: Bench): Promise<{ runningMs: number[]; throughSeine: number }> {
  const names = Array.from({ length: b.running.length }, (_, i) => `new-${i}`);
  step(`${names.length} new pods at once through the cloud's CNI and Seine`);
  const runningMs = await b.createPods('new', names);
  const routes = await b.hostRoutes();
  const throughSeine = (await b.listGroup('new')).filter((p) => routes.get(p.status!.podIP!) === GW).length;
  return { runningMs, throughSeine };
}

function printTakeOver(t: TakeOver, created: { runningMs: number[]; throughSeine: number }): void {
  const n = t.takenMs.length;
  const afterReturn = t.takenMs.map((x) => Math.max(0, x - t.installMs));
  const early = t.takenMs.filter((x) => x <= t.installMs).length;
  console.log(`\n3. take-over: ${n} pods running on the cloud's CNI, Seine installed; until each pod's host route goes through ${GW} (the nodes' routes read every ${POLL_MS} ms); installSeine() took ${secs(t.installMs)} (every node's 05-seine.conflist written), ${early} of the ${n} pods taken over before it returned (counted as 0 s after it)`);
  const row = (what: string, xs: number[]): string[] => [what, secs(Math.min(...xs)), secs(median(xs)), secs(Math.max(...xs))];
  console.log(renderTable(['', 'first', 'median', 'all'], [
    row(`${n} running pods taken over, from installSeine() returning`, afterReturn),
    row(`${n} running pods taken over, from installSeine() called`, t.takenMs),
    row(`${n} new pods Running (baseline; ${created.throughSeine}/${created.runningMs.length} through ${GW})`, created.runningMs),
  ]));
  for (const [name, p] of t.pings) {
    console.log(`  ping ${name} every 0.2 s meanwhile: ${p.answered} of ${p.sent} answered, longest run lost ${p.longestLoss} (${(p.longestLoss * 0.2).toFixed(1)} s)`);
  }
  const made = Math.max(...created.runningMs);
  for (const [from, xs] of [['returning', afterReturn], ['called', t.takenMs]] as const) {
    const taken = Math.max(...xs);
    console.log(`  => taking ${n} running pods over, from installSeine() ${from}: ${(taken / made).toFixed(2)}x the time ${n} new pods take to get Running`);
    summary.push([`take-over of ${n} running pods, s (from install ${from})`, (taken / 1000).toFixed(2), (made / 1000).toFixed(2), (taken / made).toFixed(2)]);
  }
  for (const [name, p] of t.pings) summary.push([`longest ping loss during it, ${name}`, `${p.longestLoss} of ${p.sent}`, '-', '-']);
}

// ---- main ----------------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  if (PODS < 3) throw new Error('PODS must be at least 3: the client and the two servers are among them');
  const t = performance.now();
  const lab = await Lab.up({ name: benchName('bk'), profile: 'eks', seine: false, nodes: 2, stateRoot: BENCH_ROOT, progress: (s) => step(s) });
  await withCleanup(() => lab.down(), async () => {
    const b = new Bench(lab);
    await b.watch.start();
    try {
      step(`${PODS} pods on the cloud's CNI alone`);
      const iperfServer = (): string[] => ['iperf3', '-s'];
      await Promise.all([
        b.createPods('datapath', ['client'], undefined, 0),
        b.createPods('datapath', ['server-1'], iperfServer, 0),
        b.createPods('datapath', ['server-2'], iperfServer, 1),
        b.createPods('idle', Array.from({ length: PODS - 3 }, (_, i) => `idle-${i}`)),
      ]);
      b.running = [...(await b.listGroup('datapath')), ...(await b.listGroup('idle'))];
      console.log(`lab ${lab.plan.name}: 2 nodes standing in for EKS (the AWS VPC CNI stand-in), Seine not installed; up with ${PODS} pods in ${secs(performance.now() - t)}`);

      const addCloud = await addLatency(b, 'add-cloud', "cloud's CNI alone");
      const dpCloud = await datapath(b, "cloud's CNI alone");
      const taken = await takeOver(b);
      const dpSeine = await datapath(b, 'taken over by Seine');
      printDatapath(b, dpCloud, dpSeine);
      const addSeine = await addLatency(b, 'add-seine', 'Seine chained');
      printAddLatency(addCloud, addSeine);
      printTakeOver(taken, await createAtOnce(b));
    } finally {
      b.watch.stop();
      // What was measured is shown even when a later step failed.
      console.log(`\nsummary (baseline measured in the same run: the cloud's CNI alone for the datapath and pod ADDs, as many new pods getting Running for the take-over)`);
      console.log(renderTable(['figure', 'seine', 'baseline', 'ratio'], summary));
    }
  });
}

await benchMain("Seine chained after the cloud's CNI (EKS stand-in, 2 nodes): datapath, pod ADD latency and take-over of running pods", main);

/**
 * Seine's Service proxy (tables 40-45 of br-int, dp_hash select groups) in a 3-node lab (VXLAN), every figure
 * against a baseline measured in the same run:
 *   1. connections per second: a client pod on node 1 opens and closes TCP connections (IN_FLIGHT at a time,
 *      CPS_SECS seconds, closing first) to a ClusterIP whose only endpoint is a server pod on node 2, and
 *      straight to the pod's IP; the paths alternate in every round, medians;
 *   2. TCP throughput: iperf3 (one stream, IPERF_SECS seconds) to the same ClusterIP and to the pod IP, alternating,
 *      medians, with the CPU both ovs-vswitchd spend per GB and the datapath passes per packet;
 *   3. endpoint change -> data plane: a Service without selector whose EndpointSlice the bench writes; one endpoint
 *      address added, then removed, CHANGES times; for each, the time from the API write until the endpoint's
 *      EndpointDNAT flow (table 44) is added (deleted) on every node, seen by OpenFlow flow monitors as the
 *      bundle commits; the baseline is the write -> watch event time of a client of the API server. Measured on
 *      an idle proxy and again with the SERVICES Services of step 4 installed;
 *   4. scale: SERVICES Services x ENDPOINTS endpoints (selectorless, slices written by the bench, addresses that
 *      need not exist): time until every node's flows are in place (baseline: until a watching client has seen
 *      every slice), flows per table and groups per node, the agents' VmRSS before and after; then node 1's agent
 *      is restarted while a connection through a ClusterIP is held: the time until it logs 'services started'
 *      (baseline: one list of every Service and EndpointSlice by a client), what changed in its flows and groups,
 *      and whether the held connection noticed;
 *   5. one Service with BIG endpoints (BIG/100 slices of 100): time from the first slice write until its group
 *      has every bucket on every node (baseline: until a watching client has seen the last slice), and that
 *      connections through it work: the endpoints are addresses of a /19 routed to the lab's external host,
 *      where one server answers every one of them with the address it was reached on.
 * Build, then: node dist/bench/services/services.js   (env CPS_SECS=3 CPS_ROUNDS=5 IPERF_SECS=4 ROUNDS=3 IN_FLIGHT=8
 * CHANGES=30 SERVICES=1000 ENDPOINTS=10 BIG=5000)
 */
import '../primary/quiet.js';
import { DiscoveryV1Api, type V1Container, type V1EndpointSlice, type V1Pod, type V1Service } from '@kubernetes/client-node';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { renderTable } from '../../src/cli/table.js';
import { run } from '../../src/host/exec.js';
import { Lab } from '../../src/lab/lab.js';
import type { LabNode } from '../../src/lab/node.js';
import type { InstalledFlow } from '../../src/ovs/openflow/dump.js';
import { FlowWriter } from '../../src/ovs/openflow/writer.js';
import { ownsGroup, ServiceTable } from '../../src/services/datapath/layout.js';
import { BENCH_ROOT, benchMain, benchName, eventually, fmtMs, median, podNetns, sleep, stats, timed, waitAgentReady, waitRunning, withCleanup, type Stats } from '../primary/common.js';
import { iperf, type Iperf } from '../primary/throughput.js';
import {
  ADDRESS_SERVER,
  agentRss,
  ANSWERS_CLIENT,
  CPS_CLIENT,
  EndpointFlowMonitors,
  HOLD_CLIENT,
  LABEL,
  nthAddress,
  selectorlessService,
  SERVER,
  SERVICE_TABLES,
  serviceFigures,
  slice,
  SliceWatch,
  type ServiceFigures,
} from './probes.js';

const CPS_SECS = Number(process.env.CPS_SECS ?? 3);
const IPERF_SECS = Number(process.env.IPERF_SECS ?? 4);
const ROUNDS = Number(process.env.ROUNDS ?? 3);
const CPS_ROUNDS = Number(process.env.CPS_ROUNDS ?? 5);
const IN_FLIGHT = Number(process.env.IN_FLIGHT ?? 8);
const CHANGES = Number(process.env.CHANGES ?? 30);
const SERVICES = Number(process.env.SERVICES ?? 1000);
const ENDPOINTS = Number(process.env.ENDPOINTS ?? 10);
const BIG = Number(process.env.BIG ?? 5000);

const NS = 'default';
/** Writes to the API server in flight at once (as a controller's workers). */
const WRITERS = 8;
/** Endpoints of the change Service that stay, and the ones that come and go (cluster CIDR, no pod there). */
const CHANGE_BASE = '10.244.200.1';
const CHANGE_ADDED = '10.244.201.0';
/** The scale Services' endpoints: distinct addresses of the cluster CIDR no node's pods use. */
const SCALE_BASE = '10.244.128.0';
/** The big Service's endpoints: a /19 routed to the external host (8,192 addresses). */
const BIG_NET = '198.18.0.0';
const BIG_PREFIX = 19;
const BIG_PORT = 9000;
const SLICE_SIZE = 100;
const WAIT_MS = 300_000;
/** The big Service gets this long to be installed everywhere before the bench reports it is not. */
const BIG_WAIT_MS = 60_000;
const MIB = 1024;

/** A progress line (stderr, so the figures stay together on stdout). */
const step = (what: string): void => void process.stderr.write(`  .. ${what}\n`);

/** Rows of the closing table: what, Seine, baseline, ratio, goal. */
const summary: string[][] = [];

/** Runs `body` over `items` with `n` workers. */
async function pool<T>(items: readonly T[], n: number, body: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: n }, async () => {
    while (next < items.length) await body(items[next++]!);
  }));
}

interface Cps {
  done: number;
  failed: number;
  errors: Record<string, number>;
  ms: number;
}

const cpsOf = (r: Cps): number => (r.done * 1000) / r.ms;

async function cps(netns: string, host: string, port: number, secs: number): Promise<Cps> {
  const { stdout } = await run(process.execPath, ['-e', CPS_CLIENT, host, String(port), String(secs), String(IN_FLIGHT)], { netns, timeoutMs: (secs + 30) * 1000 });
  return JSON.parse(stdout) as Cps;
}

class Bench {
  readonly discovery: DiscoveryV1Api;
  readonly writers: FlowWriter[];
  readonly nodes: [LabNode, LabNode, LabNode];
  client!: V1Pod;
  server!: V1Pod;
  clusterIp = '';

  constructor(readonly lab: Lab) {
    this.discovery = lab.kubeConfig.makeApiClient(DiscoveryV1Api);
    this.writers = lab.nodes.map((n) => FlowWriter.forBridge(n.ovs, 'br-int'));
    this.nodes = lab.nodes as [LabNode, LabNode, LabNode];
  }

  get clientNetns(): string {
    return podNetns(this.lab, this.client);
  }

  async createService(body: V1Service): Promise<string> {
    return (await this.lab.core.createNamespacedService({ namespace: NS, body })).spec!.clusterIP!;
  }

  async writeSlice(body: V1EndpointSlice, replace = false): Promise<void> {
    if (replace) await this.discovery.replaceNamespacedEndpointSlice({ name: body.metadata!.name!, namespace: NS, body });
    else await this.discovery.createNamespacedEndpointSlice({ namespace: NS, body });
  }

  /** Table `table`'s flow count on every node. */
  counts(table: number): Promise<number[]> {
    return Promise.all(this.writers.map(async (w) => (await w.countFlows({ table })).flows));
  }

  /**
   * Polls each node until `done(node)` holds; resolves with when each node got there (ms after `t0`). The
   * resolution is the poll period, POLL_MS.
   */
  async untilEveryNode(what: string, t0: number, done: (i: number) => Promise<boolean>, timeoutMs = WAIT_MS): Promise<number[]> {
    return Promise.all(this.writers.map((_, i) => eventually(`${what} on ${this.nodes[i].plan.name}`, async () => ((await done(i)) ? performance.now() - t0 : undefined), timeoutMs, POLL_MS)));
  }

  /** The last warning of the node's Service proxy in its agent's log, if any. */
  lastServiceWarning(i: number): string | undefined {
    const lines = readFileSync(join(this.nodes[i].dirs.logDir, 'seine-agent.log'), 'utf8').split('\n').filter((l) => l.includes('"component":"services"') && l.includes('"level":40'));
    const last = lines[lines.length - 1];
    if (!last) return undefined;
    const j = JSON.parse(last) as { msg?: string; err?: string };
    return `${j.msg ?? ''}${j.err ? `: ${j.err}` : ''} (${lines.length} such lines)`;
  }
}

const POLL_MS = 50;

// ---- 1, 2: connections per second and throughput --------------------------------------------------------

async function setUp(b: Bench): Promise<void> {
  const [n1, n2] = b.nodes;
  const pod = (name: string, node: LabNode, labels: Record<string, string>, containers: V1Container[]): V1Pod => ({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: NS, labels },
    spec: { nodeName: node.plan.name, containers },
  });
  await b.lab.core.createNamespacedPod({ namespace: NS, body: pod('server', n2, { app: 'bench-server' }, [
    { name: 'iperf', image: 'lab', command: ['iperf3', '-s'] },
    { name: 'tcp', image: 'lab', command: [process.execPath, '-e', SERVER] },
  ]) });
  await b.lab.core.createNamespacedPod({ namespace: NS, body: pod('client', n1, {}, [{ name: 'main', image: 'lab' }]) });
  b.clusterIp = await b.createService({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'server', namespace: NS, labels: { [LABEL]: 'yes' } },
    spec: {
      selector: { app: 'bench-server' },
      ports: [{ name: 'iperf', port: 5201, targetPort: 5201 }, { name: 'cps', port: 8080, targetPort: 8080 }, { name: 'hold', port: 8081, targetPort: 8081 }],
    },
  });
  [b.server, b.client] = await waitRunning(b.lab, ['server', 'client'], WAIT_MS);
  // As a load generator is set up: the whole port range, and ports in TIME_WAIT reused (the client closes first).
  await run('sysctl', ['-qw', 'net.ipv4.ip_local_port_range=1024 65535', 'net.ipv4.tcp_tw_reuse=1'], { netns: b.clientNetns });
}

async function connectionsPerSecond(b: Bench): Promise<void> {
  const paths = [['ClusterIP', b.clusterIp], ['pod IP', b.server.status!.podIP!]] as const;
  for (const [name, host] of paths) {
    step(`warming up ${name} (${host}:8080)`);
    await eventually(`connections to ${name}`, async (saw) => {
      const r = await cps(b.clientNetns, host, 8080, 1);
      saw(r);
      return r.done > 0 && r.failed === 0 ? true : undefined;
    }, WAIT_MS, 1000);
  }
  const results = new Map<string, Cps[]>(paths.map(([n]) => [n, []]));
  for (let r = 0; r < CPS_ROUNDS; r++) {
    for (const [name, host] of r % 2 ? [...paths].reverse() : paths) {
      step(`connections per second, round ${r + 1}/${CPS_ROUNDS}: ${name}`);
      results.get(name)!.push(await cps(b.clientNetns, host, 8080, CPS_SECS));
    }
  }
  console.log(`\n1. connections per second: client pod on ${b.nodes[0].plan.name} -> server pod on ${b.nodes[1].plan.name}, ${IN_FLIGHT} in flight, ${CPS_SECS} s per run, ${CPS_ROUNDS} rounds alternating; the client closes first`);
  const med = (n: string): number => median(results.get(n)!.map(cpsOf));
  for (const [name] of paths) {
    const xs = results.get(name)!;
    const failed = xs.reduce((a, x) => a + x.failed, 0);
    const errors = [...new Set(xs.flatMap((x) => Object.keys(x.errors)))].join(', ');
    console.log(`  ${name.padEnd(10)} median ${med(name).toFixed(0).padStart(6)} conn/s | runs ${xs.map((x) => cpsOf(x).toFixed(0)).join(' / ')}; failed ${failed}${errors ? ` (${errors})` : ''}`);
  }
  const ratio = med('ClusterIP') / med('pod IP');
  console.log(`  => ClusterIP / pod IP: ${ratio.toFixed(2)} (goal at least 0.9: ${ratio >= 0.9 ? 'met' : 'not met'})`);
  summary.push(['connections/s, ClusterIP vs pod IP', med('ClusterIP').toFixed(0), med('pod IP').toFixed(0), ratio.toFixed(2), '>= 0.9', ratio >= 0.9 ? 'met' : 'NOT MET']);
}

async function throughput(b: Bench): Promise<void> {
  const ovs: [LabNode['ovs'], LabNode['ovs']] = [b.nodes[0].ovs, b.nodes[1].ovs];
  const paths = [['ClusterIP', b.clusterIp], ['pod IP', b.server.status!.podIP!]] as const;
  for (const [name, host] of paths) {
    step(`warming up iperf3 to ${name} (${host})`);
    await eventually(`iperf3 to ${name}`, async () => (await iperf({ clientNetns: b.clientNetns, serverIp: host }, 1), true), WAIT_MS, 1000);
  }
  const results = new Map<string, Iperf[]>(paths.map(([n]) => [n, []]));
  for (let r = 0; r < ROUNDS; r++) {
    for (const [name, host] of r % 2 ? [...paths].reverse() : paths) {
      step(`iperf3, round ${r + 1}/${ROUNDS}: ${name}`);
      results.get(name)!.push(await iperf({ clientNetns: b.clientNetns, serverIp: host }, IPERF_SECS, ovs));
    }
  }
  console.log(`\n2. TCP throughput: iperf3 -t ${IPERF_SECS}, one stream, same pods, ${ROUNDS} rounds alternating`);
  const med = (n: string, f: (x: Iperf) => number): number => median(results.get(n)!.map(f));
  for (const [name] of paths) {
    const xs = results.get(name)!;
    console.log(
      `  ${name.padEnd(10)} median ${(med(name, (x) => x.bps) / 1e9).toFixed(2)} Gbit/s | runs ${xs.map((x) => (x.bps / 1e9).toFixed(2)).join(' / ')}; retransmits ${xs.map((x) => x.retransmits).join('/')}; ` +
        `ovs-vswitchd CPU ${(med(name, (x) => x.cpuPerGB) / 1000).toFixed(1)} s/GB; datapath passes/packet ${med(name, (x) => x.passes[0]).toFixed(2)} + ${med(name, (x) => x.passes[1]).toFixed(2)}`,
    );
  }
  const ratio = med('ClusterIP', (x) => x.bps) / med('pod IP', (x) => x.bps);
  const cpu = med('pod IP', (x) => x.cpuPerGB) / med('ClusterIP', (x) => x.cpuPerGB);
  console.log(`  => ClusterIP / pod IP: ${ratio.toFixed(2)} (goal at least 0.9: ${ratio >= 0.9 ? 'met' : 'not met'}); CPU efficiency ${cpu.toFixed(2)} of the pod IP path's`);
  summary.push(['iperf3 Gbit/s, ClusterIP vs pod IP', (med('ClusterIP', (x) => x.bps) / 1e9).toFixed(2), (med('pod IP', (x) => x.bps) / 1e9).toFixed(2), ratio.toFixed(2), '>= 0.9', ratio >= 0.9 ? 'met' : 'NOT MET']);
}

// ---- 3: endpoint changes -----------------------------------------------------------------------------------

interface ChangeFigures {
  add: Stats;
  remove: Stats;
  api: Stats;
  write: Stats;
}

/** The change Service: created once, with BASE endpoints that stay. */
async function changeService(b: Bench): Promise<string[]> {
  const base = [0, 1, 2].map((i) => nthAddress(CHANGE_BASE, i));
  await b.createService(selectorlessService('changes'));
  await b.writeSlice(slice('changes', 'changes-0', base, 8080));
  return base;
}

async function endpointChanges(b: Bench, base: string[], monitors: EndpointFlowMonitors, watch: SliceWatch, label: string, first: number): Promise<ChangeFigures> {
  const add: number[] = [];
  const remove: number[] = [];
  const api: number[] = [];
  const write: number[] = [];
  const nodes = b.nodes.map((n) => n.plan.name);
  for (let k = 0; k < CHANGES; k++) {
    const address = nthAddress(CHANGE_ADDED, first + k);
    for (const kind of ['ADDED', 'DELETED'] as const) {
      const addresses = kind === 'ADDED' ? [...base, address] : base;
      const w0 = performance.now();
      await b.writeSlice(slice('changes', 'changes-0', addresses, 8080), true);
      write.push(performance.now() - w0);
      const [seen, ...at] = await Promise.all([
        watch.seen(`the watch event of ${address} ${kind.toLowerCase()}`, w0, (e) => e.name === 'changes-0' && e.addresses.has(address) === (kind === 'ADDED')),
        ...nodes.map((n) => monitors.when(n, address, kind, w0)),
      ]);
      api.push(seen! - w0);
      (kind === 'ADDED' ? add : remove).push(Math.max(...at) - w0);
      await sleep(50);
    }
    if ((k + 1) % 10 === 0) step(`${label}: ${k + 1}/${CHANGES} endpoint changes`);
  }
  return { add: stats(add), remove: stats(remove), api: stats(api), write: stats(write) };
}

function printChanges(title: string, f: ChangeFigures): void {
  const ms = (x: number): string => x.toFixed(1).padStart(8);
  console.log(`\n${title}`);
  console.log('                                                       p50 ms    p99 ms    max ms');
  console.log(`  endpoint added: its flow on every node              ${ms(f.add.p50)}  ${ms(f.add.p99)}  ${ms(f.add.max)}   ${(f.add.p99 / f.api.p99).toFixed(1)}x the baseline's p99; goal p99 under 200 ms: ${f.add.p99 < 200 ? 'met' : 'not met'}`);
  console.log(`  endpoint removed: its flow gone from every node      ${ms(f.remove.p50)}  ${ms(f.remove.p99)}  ${ms(f.remove.max)}   ${(f.remove.p99 / f.api.p99).toFixed(1)}x the baseline's p99; goal p99 under 200 ms: ${f.remove.p99 < 200 ? 'met' : 'not met'}`);
  console.log(`  baseline: write -> watch event at a client         ${ms(f.api.p50)}  ${ms(f.api.p99)}  ${ms(f.api.max)}`);
  console.log(`  (the write's own round trip                        ${ms(f.write.p50)}  ${ms(f.write.p99)}  ${ms(f.write.max)})`);
  console.log(`  (${f.add.n} + ${f.remove.n} samples: p99 is the largest but one or the largest; resolution: the flow monitor's line reaching this process, under 1 ms)`);
}

function summarizeChanges(what: string, f: ChangeFigures): void {
  for (const [kind, s] of [['added', f.add], ['removed', f.remove]] as const) {
    summary.push([`${what}: endpoint ${kind}, p50 / p99 ms`, `${fmtMs(s.p50)} / ${fmtMs(s.p99)}`, `${fmtMs(f.api.p50)} / ${fmtMs(f.api.p99)}`, (s.p99 / f.api.p99).toFixed(1), 'p99 < 200 ms', s.p99 < 200 ? 'met' : 'NOT MET']);
  }
}

// ---- 4: scale and restart ----------------------------------------------------------------------------------

const scaleName = (i: number): string => `scale-${i}`;

function figuresLine(f: ServiceFigures): string {
  return `tables 40-45: ${f.tables.join(' / ')} flows (${f.tables.reduce((a, x) => a + x, 0)}); ${f.groups} groups, ${f.buckets} buckets`;
}

async function scale(b: Bench, watch: SliceWatch): Promise<{ before: ServiceFigures[]; t0: number }> {
  const before = await Promise.all(b.writers.map(serviceFigures));
  const rssBefore = await agentRss(b.lab);
  const lb0 = await b.counts(ServiceTable.ServiceLB);
  const dnat0 = await b.counts(ServiceTable.EndpointDNAT);
  step(`writing ${SERVICES} Services and their EndpointSlices (${ENDPOINTS} endpoints each, ${WRITERS} writers)`);
  const t0 = performance.now();
  let written = 0;
  await pool(Array.from({ length: SERVICES }, (_, i) => i), WRITERS, async (i) => {
    await b.createService(selectorlessService(scaleName(i)));
    await b.writeSlice(slice(scaleName(i), `${scaleName(i)}-0`, Array.from({ length: ENDPOINTS }, (_, j) => nthAddress(SCALE_BASE, i * ENDPOINTS + j)), 8080));
    if (++written % 200 === 0) step(`${written}/${SERVICES} Services written`);
  });
  const writtenMs = performance.now() - t0;
  step('waiting for every node\'s flows');
  const installed = await b.untilEveryNode('the scale Services\' flows', t0, async (i) => {
    const w = b.writers[i]!;
    const lb = (await w.countFlows({ table: ServiceTable.ServiceLB })).flows;
    const dnat = (await w.countFlows({ table: ServiceTable.EndpointDNAT })).flows;
    return lb >= lb0[i]! + SERVICES && dnat >= dnat0[i]! + SERVICES * ENDPOINTS;
  });
  const names = new Set(Array.from({ length: SERVICES }, (_, i) => `${scaleName(i)}-0`));
  const seen = new Map<string, number>();
  for (const e of watch.events) if (e.t >= t0 && names.has(e.name) && !seen.has(e.name)) seen.set(e.name, e.t);
  const apiMs = seen.size === names.size ? Math.max(...seen.values()) - t0 : NaN;
  const allMs = Math.max(...installed);
  await sleep(3000);
  const after = await Promise.all(b.writers.map(serviceFigures));
  const rssAfter = await agentRss(b.lab);

  console.log(`\n4. scale: ${SERVICES} Services x ${ENDPOINTS} endpoints (selectorless; ${SERVICES} Services and ${SERVICES} EndpointSlices written in ${(writtenMs / 1000).toFixed(2)} s, ${WRITERS} writers)`);
  console.log(`  first write -> flows in place on every node: ${(allMs / 1000).toFixed(2)} s (per node ${installed.map((x) => (x / 1000).toFixed(2)).join(', ')} s; polled every ${POLL_MS} ms), ${((allMs - writtenMs) / 1000).toFixed(2)} s after the last write`);
  console.log(`  baseline: first write -> a watching client has seen every slice: ${(apiMs / 1000).toFixed(2)} s  => ${(allMs / apiMs).toFixed(2)}x`);
  for (const [i, n] of b.nodes.entries()) {
    console.log(`  ${n.plan.name}: before ${figuresLine(before[i]!)}`);
    console.log(`  ${' '.repeat(n.plan.name.length)}  after  ${figuresLine(after[i]!)}`);
    const dt = after[i]!.tables.map((x, k) => x - before[i]!.tables[k]!);
    console.log(`  ${' '.repeat(n.plan.name.length)}  per Service: ${(dt.reduce((a, x) => a + x, 0) / SERVICES).toFixed(2)} flows (ServiceLB ${(dt[2]! / SERVICES).toFixed(2)}, EndpointDNAT ${(dt[4]! / SERVICES).toFixed(2)}), ${((after[i]!.groups - before[i]!.groups) / SERVICES).toFixed(2)} groups`);
  }
  console.log(`  agent VmRSS (median of 3 readings, as read: V8 collects when it likes), before -> after:`);
  for (const [i, n] of b.nodes.entries()) {
    console.log(`  ${n.plan.name}: ${(rssBefore[i]! / MIB).toFixed(1)} MiB -> ${(rssAfter[i]! / MIB).toFixed(1)} MiB (+${((rssAfter[i]! - rssBefore[i]!) / MIB).toFixed(1)} MiB, ${(rssAfter[i]! / rssBefore[i]!).toFixed(2)}x; ${(((rssAfter[i]! - rssBefore[i]!) * 1024) / (SERVICES * ENDPOINTS)).toFixed(0)} bytes per endpoint)`);
  }
  summary.push([`${SERVICES} x ${ENDPOINTS}: writes -> flows on every node, s`, (allMs / 1000).toFixed(2), (apiMs / 1000).toFixed(2), (allMs / apiMs).toFixed(2), '', '']);
  summary.push([`${SERVICES} x ${ENDPOINTS}: flows / groups per node`, `${after[0]!.tables.reduce((a, x) => a + x, 0)} / ${after[0]!.groups}`, `${before[0]!.tables.reduce((a, x) => a + x, 0)} / ${before[0]!.groups}`, '', '', '']);
  const rb = median(rssBefore);
  const ra = median(rssAfter);
  summary.push([`${SERVICES} x ${ENDPOINTS}: agent VmRSS MiB (median node)`, (ra / MIB).toFixed(1), (rb / MIB).toFixed(1), (ra / rb).toFixed(2), '', '']);
  return { before, t0 };
}

const flowKey = (f: InstalledFlow): string => `${f.table}/${f.priority}/${f.match}`;

async function serviceFlows(w: FlowWriter): Promise<InstalledFlow[]> {
  return (await Promise.all(SERVICE_TABLES.map((table) => w.dumpFlows({ table })))).flat();
}

/** Node 1's agent restarted while a connection through the ClusterIP is held. */
async function restart(b: Bench): Promise<void> {
  const node = b.nodes[0];
  const agent = b.lab.agents.get(node.plan.name)!;
  const w = b.writers[0]!;
  const log = join(node.dirs.logDir, 'seine-agent.log');
  const flowsBefore = await serviceFlows(w);
  const groupsBefore = new Map((await w.dumpGroups()).filter((g) => ownsGroup(g.id)).map((g) => [g.id, g.text]));
  const probe = (flows: InstalledFlow[]): InstalledFlow | undefined => flows.find((f) => f.table === ServiceTable.ServiceLB && f.fields.nw_dst === b.clusterIp && f.fields.tp_dst === '8081');

  const hold = spawn('nsenter', [`--net=${b.clientNetns}`, '--', process.execPath, '-e', HOLD_CLIENT, b.clusterIp, '8081'], { stdio: ['ignore', 'pipe', 'ignore'] });
  b.lab.ledger.process(hold.pid!, 'held connection (services bench)');
  let holdOut = '';
  hold.stdout!.on('data', (d: Buffer) => (holdOut += d.toString()));
  const holdExit = new Promise<void>((r) => hold.on('exit', () => r()));
  await sleep(1000);

  step(`restarting the agent of ${node.plan.name}`);
  const lines = readFileSync(log, 'utf8').split('\n').length;
  const dumpedAt = Date.now();
  const [, stopMs] = await timed(() => agent.stop());
  const started = Date.now();
  agent.start();
  const logged = (msg: string): Promise<{ time: number; services?: number; slices?: number }> =>
    eventually(`'${msg}' in the restarted agent's log`, async () => {
      const line = readFileSync(log, 'utf8').split('\n').slice(lines - 1).find((l) => l.includes(`"msg":"${msg}"`));
      return line ? (JSON.parse(line) as { time: number; services?: number; slices?: number }) : undefined;
    }, WAIT_MS, 20);
  const [ready, synced] = await Promise.all([logged('agent ready'), logged('services started')]);
  // The floor of any restart: one list of what the agent must realize, by a client of the API server.
  const [, listMs] = await timed(() => Promise.all([b.lab.core.listServiceForAllNamespaces(), b.discovery.listEndpointSliceForAllNamespaces()]));
  await sleep(2000);
  hold.kill('SIGTERM');
  await holdExit;
  b.lab.ledger.forgetProcess(hold.pid!);
  const held = JSON.parse(holdOut || '{}') as { sent?: number; echoed?: number; maxGapMs?: number; error?: string | null };

  const flowsAfter = await serviceFlows(w);
  const groupsAfter = new Map((await w.dumpGroups()).filter((g) => ownsGroup(g.id)).map((g) => [g.id, g.text]));
  const since = (Date.now() - dumpedAt) / 1000;
  const old = new Map(flowsBefore.map((f) => [flowKey(f), f]));
  let kept = 0, replaced = 0, actions = 0;
  for (const f of flowsAfter) {
    const o = old.get(flowKey(f));
    if (!o) continue;
    if (o.actions !== f.actions) actions++;
    else if (o.cookie !== f.cookie || f.durationSec < since) replaced++;
    else kept++;
  }
  const afterKeys = new Set(flowsAfter.map(flowKey));
  const added = flowsAfter.filter((f) => !old.has(flowKey(f))).length;
  const removed = flowsBefore.filter((f) => !afterKeys.has(flowKey(f))).length;
  let groupsSame = 0;
  for (const [id, text] of groupsAfter) if (groupsBefore.get(id) === text) groupsSame++;
  const pb = probe(flowsBefore);
  const pa = probe(flowsAfter);
  const syncMs = synced.time - started;

  console.log(`\n   restart of ${node.plan.name}'s agent with ${synced.services} Services and ${synced.slices} EndpointSlices (stopped in ${fmtMs(stopMs)} ms):`);
  console.log(`  start -> 'agent ready' ${((ready.time - started) / 1000).toFixed(2)} s; start -> 'services started' (listed and synced) ${(syncMs / 1000).toFixed(2)} s`);
  console.log(`  baseline: one list of every Service and EndpointSlice by a client: ${fmtMs(listMs)} ms  => ${(syncMs / listMs).toFixed(1)}x`);
  console.log(`  its Service flows (${flowsBefore.length} before, ${flowsAfter.length} after): ${kept} untouched, ${replaced} replaced with the same actions (new cookie), ${actions} with other actions, ${added} new, ${removed} gone`);
  console.log(`  its groups (${groupsBefore.size} before, ${groupsAfter.size} after): ${groupsSame} unchanged, ${groupsAfter.size - groupsSame} changed or new`);
  console.log(`  the held connection's Service (${b.clusterIp}:8081): ServiceLB flow ${pb?.actions ?? 'none'} -> ${pa?.actions ?? 'none'}${pb && pa && pb.actions === pa.actions && pb.cookie === pa.cookie ? ' (unchanged)' : ''}`);
  console.log(`  the held connection: ${held.echoed ?? 0} of ${held.sent ?? 0} lines echoed, longest wait ${held.maxGapMs ?? NaN} ms, ${held.error ? `broken (${held.error})` : 'never broken'}`);
  summary.push([`agent restart (${synced.services} Services): start -> synced, s`, (syncMs / 1000).toFixed(2), (listMs / 1000).toFixed(2), (syncMs / listMs).toFixed(1), '', held.error ? 'conn broken' : 'conn kept']);
}

async function removeScale(b: Bench, before: ServiceFigures[]): Promise<void> {
  step(`deleting the ${SERVICES} Services and their slices`);
  const t0 = performance.now();
  await pool(Array.from({ length: SERVICES }, (_, i) => i), WRITERS, async (i) => {
    await b.discovery.deleteNamespacedEndpointSlice({ name: `${scaleName(i)}-0`, namespace: NS });
    await b.lab.core.deleteNamespacedService({ name: scaleName(i), namespace: NS });
  });
  const writtenMs = performance.now() - t0;
  const gone = await b.untilEveryNode('the scale Services removed', t0, async (i) => (await b.writers[i]!.countFlows({ table: ServiceTable.EndpointDNAT })).flows <= before[i]!.tables[4]!);
  console.log(`  deleted in ${(writtenMs / 1000).toFixed(2)} s; first delete -> flows removed on every node ${(Math.max(...gone) / 1000).toFixed(2)} s`);
}

// ---- 5: one Service with BIG endpoints ------------------------------------------------------------------------

async function bigService(b: Bench, watch: SliceWatch): Promise<void> {
  const ext = b.lab.externalNetns;
  await run('ip', ['route', 'add', 'local', `${BIG_NET}/${BIG_PREFIX}`, 'dev', 'lo'], { netns: ext });
  const server = spawn('nsenter', [`--net=${ext}`, '--', process.execPath, '-e', ADDRESS_SERVER, String(BIG_PORT)], { stdio: 'ignore' });
  b.lab.ledger.process(server.pid!, 'address server on the external host (services bench)');
  try {
    const dnat0 = await b.counts(ServiceTable.EndpointDNAT);
    const ip = await b.createService(selectorlessService('big'));
    const slices = Math.ceil(BIG / SLICE_SIZE);
    const bodies = Array.from({ length: slices }, (_, k) =>
      slice('big', `big-${k}`, Array.from({ length: Math.min(SLICE_SIZE, BIG - k * SLICE_SIZE) }, (_, j) => nthAddress(BIG_NET, k * SLICE_SIZE + j)), BIG_PORT),
    );
    step(`writing ${slices} EndpointSlices of ${SLICE_SIZE} endpoints for one Service`);
    const t0 = performance.now();
    await pool(bodies, WRITERS, (s) => b.writeSlice(s));
    const writtenMs = performance.now() - t0;
    /** Whether the Service's frontend on node i points at a group. */
    const grouped = async (i: number): Promise<boolean> => {
      const lb = await b.writers[i]!.dumpFlows({ table: ServiceTable.ServiceLB, match: { protocol: 'tcp', nw_dst: ip, tp_dst: 80 } });
      return /group:\d+/.test(lb[0]?.actions ?? '');
    };
    // Flows and group change in one bundle: all the endpoints' flows there means the whole group is. (The group
    // itself cannot be read back: OVS describes a group in at most 64 KiB, and this one is larger.)
    const installing = b.untilEveryNode(`the group of ${BIG} buckets`, t0, async (i) =>
      (await b.writers[i]!.countFlows({ table: ServiceTable.EndpointDNAT })).flows >= dnat0[i]! + BIG && (await grouped(i)), BIG_WAIT_MS);
    // A proxy that cannot install the group is a figure too: what it logged, and the connections, are still shown.
    const installed = await installing.catch((e: unknown) => (step(String(e)), undefined));
    const names = new Set(bodies.map((s) => s.metadata!.name!));
    const seen = new Map<string, number>();
    for (const e of watch.events) if (e.t >= t0 && names.has(e.name) && !seen.has(e.name)) seen.set(e.name, e.t);
    const apiMs = seen.size === names.size ? Math.max(...seen.values()) - t0 : NaN;
    const allMs = installed ? Math.max(...installed) : NaN;
    step(`connecting to the ${BIG}-endpoint Service`);
    const tries = 40;
    const { stdout } = await run(process.execPath, ['-e', ANSWERS_CLIENT, ip, '80', String(tries)], { netns: b.clientNetns, timeoutMs: tries * 4000 + 30_000 });
    const answers = JSON.parse(stdout) as string[];
    const ok = answers.filter((a) => a.startsWith('198.18.'));
    const distinct = new Set(ok).size;

    console.log(`\n5. one Service with ${BIG} endpoints (${slices} EndpointSlices of ${SLICE_SIZE}, written in ${(writtenMs / 1000).toFixed(2)} s, ${WRITERS} writers)`);
    if (installed) console.log(`  first slice write -> all ${BIG} endpoints (flows and group, one bundle) on every node: ${(allMs / 1000).toFixed(2)} s (per node ${installed.map((x) => (x / 1000).toFixed(2)).join(', ')} s; polled every ${POLL_MS} ms)`);
    else {
      const seen = await Promise.all(b.nodes.map(async (_, i) => (await b.writers[i]!.countFlows({ table: ServiceTable.EndpointDNAT })).flows - dnat0[i]!));
      console.log(`  NOT INSTALLED: ${BIG_WAIT_MS / 1000} s after the first slice write the endpoints are not all in the flows of every node (endpoint flows now: ${b.nodes.map((n, i) => `${n.plan.name} ${seen[i]}`).join(', ')})`);
      b.nodes.forEach((n, i) => console.log(`  ${n.plan.name}'s agent last logged: ${b.lastServiceWarning(i) ?? 'no warning'}`));
    }
    console.log(`  baseline: first write -> a watching client has seen the last slice: ${(apiMs / 1000).toFixed(2)} s${installed ? `  => ${(allMs / apiMs).toFixed(2)}x` : ''}`);
    console.log(`  ${tries} connections from the client pod to ${ip}:80: ${ok.length} answered, by ${distinct} different endpoints${ok.length < tries ? `; others: ${[...new Set(answers.filter((a) => !a.startsWith('198.18.')))].join(', ')}` : ''}`);
    summary.push([`1 Service x ${BIG}: writes -> group on every node, s`, installed ? (allMs / 1000).toFixed(2) : `NOT INSTALLED (${BIG_WAIT_MS / 1000} s)`, (apiMs / 1000).toFixed(2), installed ? (allMs / apiMs).toFixed(2) : '', '', `${ok.length}/${tries} conns ok`]);
  } finally {
    server.kill('SIGTERM');
    b.lab.ledger.forgetProcess(server.pid!);
  }
}

async function main(): Promise<void> {
  const t = performance.now();
  const lab = await Lab.up({ name: benchName('bs'), nodes: 3, stateRoot: BENCH_ROOT, progress: (s) => step(s) });
  await withCleanup(() => lab.down(), async () => {
    for (let i = 0; i < lab.nodes.length; i++) await waitAgentReady(lab, i, 120_000);
    const b = new Bench(lab);
    step('server and client pods');
    await setUp(b);
    console.log(`lab ${lab.plan.name}: 3 nodes (VXLAN), up with its pods in ${((performance.now() - t) / 1000).toFixed(1)} s; ClusterIP ${b.clusterIp} -> server pod ${b.server.status!.podIP}`);
    await connectionsPerSecond(b);
    await throughput(b);

    const monitors = new EndpointFlowMonitors(lab);
    const watch = new SliceWatch(lab);
    await monitors.start();
    await watch.start();
    try {
      const base = await changeService(b);
      await Promise.all(b.nodes.map((n) => monitors.when(n.plan.name, base[2]!, 'ADDED', 0)));
      const idle = await endpointChanges(b, base, monitors, watch, 'idle proxy', 0);
      printChanges(`3. endpoint changes, one at a time (${CHANGES} added and removed), API write -> the endpoint's EndpointDNAT flow on every node (flow monitors), idle proxy:`, idle);
      summarizeChanges('changes, idle', idle);

      const { before } = await scale(b, watch);
      const loaded = await endpointChanges(b, base, monitors, watch, `with ${SERVICES} Services`, CHANGES);
      printChanges(`   the same with the ${SERVICES} Services x ${ENDPOINTS} endpoints installed:`, loaded);
      summarizeChanges(`changes, ${SERVICES} Services`, loaded);
      await restart(b);
      await removeScale(b, before);
      await bigService(b, watch);
    } finally {
      watch.stop();
      monitors.stop();
      // What was measured is shown even when a later step failed.
      console.log(`\nsummary (baseline measured in the same run: pod IP for the data path, the API server's own watch or list for the control path)`);
      console.log(renderTable(['figure', 'seine', 'baseline', 'ratio', 'goal', ''], summary));
    }
  });
}

await benchMain('Seine Service proxy: connections, throughput, endpoint changes and scale in a 3-node lab', main);

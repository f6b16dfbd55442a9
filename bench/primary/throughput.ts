/**
 * Pod-to-pod TCP throughput (iperf3) through Seine, same node and across nodes (VXLAN), in a 2-node lab, as a
 * ratio to a hand-built minimal OVS setup measured in the same run (the recipe of ENVIRONMENT.md):
 *   two node namespaces joined by a veth underlay; in each, a netdev `br-phy` holding the underlay veth with
 *   the node IP on its internal port, and a netdev `br-int` with one `NORMAL` flow and a VXLAN port whose
 *   remote_ip is the peer node; pods are namespaces with veths into br-int, MTU 1450, TX offload off on every
 *   veth end. Like Seine's br-phy it takes the uplink's MAC and keeps the kernel off the uplink, so the
 *   kernel does not answer ARP or ICMP for the node IP behind OVS's back.
 * The setups run alternately (A/B, then B/A) in every round; figures are medians. With each: the CPU time of
 * both ovs-vswitchd per GB received (kernel time in their context included: veth and bridge forwarding run
 * there), which a busy machine disturbs far less than bit/s, and the datapath passes per packet
 * (1 + recirculations / packets, dpif-netdev/pmd-stats-show) of each node.
 * Diagnostic setups (VARIANTS, comma separated; default "fabric"):
 *   fabric  the baseline's nodes attached to the lab's underlay bridge instead of one veth (cross-node only):
 *           tells the lab's underlay apart from Seine;
 *   ct      the baseline's bridges with conntrack on every IP packet (ct(zone,nat) + recirculation, commit
 *           new connections) as Seine's pipeline does: tells the cost of conntrack apart.
 * Build, then: node dist/bench/primary/throughput.js   (env SECS=5 ROUNDS=4 VARIANTS=fabric)
 */
import './quiet.js';
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { run } from '../../src/host/exec.js';
import { IpBatch, IpRoute } from '../../src/host/ip.js';
import { ResourceLedger } from '../../src/host/ledger.js';
import { createNetns, netnsPath } from '../../src/host/netns.js';
import { Lab } from '../../src/lab/lab.js';
import { UNDERLAY_BRIDGE } from '../../src/lab/topology.js';
import { OvsDaemons } from '../../src/ovs/daemons.js';
import { BENCH_ROOT, benchMain, benchName, eventually, labPod, median, podNetns, waitRunning, withCleanup } from './common.js';

const SECS = Number(process.env.SECS ?? 5);
const ROUNDS = Number(process.env.ROUNDS ?? 4);
/** Diagnostic setups besides Seine and the baseline: ct (baseline + conntrack), fabric (baseline over the lab's underlay bridge). */
const VARIANTS = new Set((process.env.VARIANTS ?? 'fabric').split(',').filter(Boolean));
const SCENARIOS = ['same', 'cross'] as const;
type Scenario = (typeof SCENARIOS)[number];
const POD_MTU = 1450;
const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

/** A client namespace and the server address it measures against. */
export interface Pair {
  clientNetns: string;
  serverIp: string;
}

export interface Setup {
  label: string;
  same: Pair;
  cross: Pair;
  /** Node 1's and node 2's Open vSwitch. */
  ovs: [OvsDaemons, OvsDaemons];
  /** What it is measured in (default both). */
  scenarios?: readonly Scenario[];
  /** Makes the bridges this setup's (setups may share bridges and differ in flows). */
  prepare?: () => Promise<void>;
}

export interface Iperf {
  bps: number;
  retransmits: number;
  /** Datapath passes per packet on node 1 and node 2 during the run. */
  passes: [number, number];
  /** CPU time of both ovs-vswitchd processes per GB received, in ms: less sensitive to a busy machine than bit/s. */
  cpuPerGB: number;
}

async function clearDpStats(ovs: readonly OvsDaemons[]): Promise<void> {
  await Promise.all(ovs.map((o) => o.appctl('ovs-vswitchd', ['dpif-netdev/pmd-stats-clear'])));
}

/** 1 + recirculations per received packet, over every datapath thread of this vswitchd. */
async function dpPasses(o: OvsDaemons): Promise<number> {
  const out = await o.appctl('ovs-vswitchd', ['dpif-netdev/pmd-stats-show']);
  const sum = (re: RegExp): number => [...out.matchAll(re)].reduce((a, m) => a + Number(m[1]), 0);
  const rx = sum(/packets received: (\d+)/g);
  return rx ? 1 + sum(/packet recirculations: (\d+)/g) / rx : NaN;
}

/** utime + stime in ms (all threads) of a process, from /proc/PID/stat. */
function cpuMs(pid: number | undefined): number {
  if (pid === undefined) return NaN;
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(f[11]) + Number(f[12])) * 1000) / CLK_TCK;
}

export async function iperf(pair: Pair, secs: number, ovs?: [OvsDaemons, OvsDaemons]): Promise<Iperf> {
  if (ovs) await clearDpStats(ovs);
  const cpu = (): number => (ovs ? ovs.reduce((a, o) => a + cpuMs(o.pid('ovs-vswitchd')), 0) : NaN);
  const cpu0 = cpu();
  const { stdout } = await run('iperf3', ['-c', pair.serverIp, '-t', String(secs), '-J'], { netns: pair.clientNetns, timeoutMs: (secs + 20) * 1000 });
  const cpuUsed = cpu() - cpu0;
  const passes: [number, number] = ovs ? [await dpPasses(ovs[0]), await dpPasses(ovs[1])] : [NaN, NaN];
  const j = JSON.parse(stdout) as { end: { sum_received: { bits_per_second: number; bytes: number }; sum_sent: { retransmits?: number } } };
  return { bps: j.end.sum_received.bits_per_second, retransmits: j.end.sum_sent.retransmits ?? 0, passes, cpuPerGB: cpuUsed / (j.end.sum_received.bytes / 1e9) };
}

/** Ping until the path answers (the first packet to a tunnel peer may be lost while OVS resolves ARP). */
export async function warm(pair: Pair): Promise<void> {
  await eventually(`${pair.serverIp} reachable`, async () => ((await run('ping', ['-c', '1', '-W', '1', pair.serverIp], { netns: pair.clientNetns }).then(() => true, () => false)) ? true : undefined), 30_000, 300);
  await eventually(`iperf3 server on ${pair.serverIp}`, async () => (await iperf(pair, 1), true), 30_000, 500);
}

export async function mtuOf(netns: string, dev: string): Promise<number> {
  return (await new IpRoute(netns).link(dev))?.mtu ?? NaN;
}

const NORMAL_FLOWS = 'priority=0,actions=NORMAL\n';
// Every IP packet through conntrack and back (as Seine's Conntrack table does), new connections committed.
const CT_FLOWS = [
  'table=0,priority=10,ip,actions=ct(table=1,zone=65520,nat)',
  'table=0,priority=0,actions=NORMAL',
  'table=1,priority=10,ct_state=+new+trk,ip,actions=ct(commit,zone=65520),NORMAL',
  'table=1,priority=0,actions=NORMAL',
].join('\n');

async function replaceFlows(o: OvsDaemons, flows: string): Promise<void> {
  await run('ovs-ofctl', ['-O', 'OpenFlow13', 'replace-flows', o.bridgeMgmt('br-int'), '-'], { env: o.env, input: `${flows}\n` });
}

export interface HandBuiltOptions {
  /** Short tag in namespace and interface names, so that several hand-built setups can coexist. */
  tag: string;
  /** Third octet of the node and pod subnets (192.168.N.0/24, 10.N.0.0/24). */
  subnet: number;
  /** Attach the nodes to this Linux bridge (e.g. the lab's fabric) instead of one veth between them. */
  fabric?: { netns: string; bridge: string };
}

/** The minimal hand-built equivalent: 2 nodes, pods a and b on node 1, pod c on node 2. */
export async function handBuilt(ledger: ResourceLedger, id: string, opts: HandBuiltOptions = { tag: 'h', subnet: 250 }): Promise<Setup> {
  const { tag, subnet } = opts;
  const nodeIps = [`192.168.${subnet}.1`, `192.168.${subnet}.2`];
  const podIps = { a: `10.${subnet}.0.1`, b: `10.${subnet}.0.2`, c: `10.${subnet}.0.3` };
  const nodes: string[] = [];
  for (const n of [1, 2]) {
    ledger.netns(`${id}-${tag}${n}`);
    nodes.push(await createNetns(`${id}-${tag}${n}`));
  }
  const [n1, n2] = nodes as [string, string];
  const ip1 = new IpRoute(n1);
  const ip2 = new IpRoute(n2);
  if (opts.fabric) {
    const fabric = new IpRoute(opts.fabric.netns);
    for (const [i, ns] of nodes.entries()) {
      const port = `${tag}${i + 1}-eth0`;
      await fabric.apply(new IpBatch().addVeth(port, 'eth0', { peerNetns: ns }).setLink(port, { master: opts.fabric.bridge, up: true }));
    }
  } else {
    await ip1.apply(new IpBatch().addVeth('eth0', 'eth0', { peerNetns: n2 }));
  }
  const ovs: OvsDaemons[] = [];
  for (const [i, ip] of [ip1, ip2].entries()) {
    await ip.apply(new IpBatch().setLink('eth0', { up: true }));
    await ip.txOffloadOff('eth0');
    await ip.isolateFromHostStack('eth0');
    const o = new OvsDaemons({ rundir: join(ledger.dir, `ovs-${tag}${i + 1}`), netns: nodes[i], ledger });
    await o.start();
    const mac = (await ip.link('eth0'))!.address!;
    await o.vsctl(['add-br', 'br-phy', '--', 'set', 'bridge', 'br-phy', 'datapath_type=netdev', `other_config:hwaddr=${mac}`, '--', 'add-port', 'br-phy', 'eth0']);
    await ip.apply(new IpBatch().setLink('br-phy', { up: true }).addAddr('br-phy', `${nodeIps[i]}/24`));
    await o.vsctl([
      'add-br', 'br-int', '--', 'set', 'bridge', 'br-int', 'datapath_type=netdev', 'fail_mode=secure', 'protocols=OpenFlow13',
      '--', 'add-port', 'br-int', 'vx0', '--', 'set', 'interface', 'vx0', 'type=vxlan', `options:remote_ip=${nodeIps[1 - i]}`,
    ]);
    await replaceFlows(o, NORMAL_FLOWS);
    ovs.push(o);
  }
  const podNs: Record<string, string> = {};
  for (const [pod, node, o] of [['a', ip1, ovs[0]!], ['b', ip1, ovs[0]!], ['c', ip2, ovs[1]!]] as const) {
    ledger.netns(`${id}-${tag}${pod}`);
    const ns = await createNetns(`${id}-${tag}${pod}`);
    podNs[pod] = ns;
    const host = `${tag}${pod}0`;
    await node.apply(new IpBatch().addVeth(host, 'eth0', { peerNetns: ns, mtu: POD_MTU }).setLink(host, { up: true }));
    const p = new IpRoute(ns);
    await p.apply(new IpBatch().addAddr('eth0', `${podIps[pod]}/24`).setLink('eth0', { up: true }));
    await node.txOffloadOff(host);
    await p.txOffloadOff('eth0');
    await o.vsctl(['add-port', 'br-int', host]);
    // The server, recorded by pid (nsenter execs iperf3 in place) so the ledger ends it.
    const child = spawn('nsenter', [`--net=${ns}`, '--', 'iperf3', '-s'], { stdio: 'ignore', detached: true });
    if (child.pid === undefined) throw new Error('cannot start iperf3');
    ledger.process(child.pid, `iperf3 -s in ${ns}`);
    child.unref();
  }
  const pair = ovs as [OvsDaemons, OvsDaemons];
  return {
    label: opts.fabric ? 'hand-built/lab-fabric' : 'hand-built',
    same: { clientNetns: podNs.a!, serverIp: podIps.b },
    cross: { clientNetns: podNs.a!, serverIp: podIps.c },
    ovs: pair,
    prepare: async () => {
      for (const o of pair) await replaceFlows(o, NORMAL_FLOWS);
    },
  };
}

/** The hand-built setup with conntrack on every IP packet. */
export function withConntrack(hand: Setup): Setup {
  return {
    ...hand,
    label: 'hand-built+ct',
    prepare: async () => {
      for (const o of hand.ovs) await replaceFlows(o, CT_FLOWS);
    },
  };
}

export async function seineSetup(lab: Lab): Promise<Setup> {
  const [n1, n2] = lab.nodes as [(typeof lab.nodes)[0], (typeof lab.nodes)[0]];
  const specs = [['sa', n1.plan.name], ['sb', n1.plan.name], ['sc', n2.plan.name]] as const;
  for (const [name, node] of specs) await lab.core.createNamespacedPod({ namespace: 'default', body: labPod(name, node, ['iperf3', '-s']) });
  const [a, b, c] = await waitRunning(lab, specs.map(([n]) => n));
  const client = podNetns(lab, a!);
  return {
    label: 'seine',
    same: { clientNetns: client, serverIp: b!.status!.podIP! },
    cross: { clientNetns: client, serverIp: c!.status!.podIP! },
    ovs: [n1.ovs, n2.ovs],
  };
}

const gbps = (bps: number): string => (bps / 1e9).toFixed(2);

async function main(): Promise<void> {
  const id = benchName('bt');
  const ledger = ResourceLedger.create(join(BENCH_ROOT, `${id}-hand`));
  await withCleanup(() => ledger.release(), async () => {
    const lab = await Lab.up({ name: id, nodes: 2, stateRoot: BENCH_ROOT, encap: 'vxlan' });
    await withCleanup(() => lab.down(), async () => {
      const seine = await seineSetup(lab);
      const hand = await handBuilt(ledger, id);
      const setups = [seine, hand];
      if (VARIANTS.has('ct')) setups.push(withConntrack(hand));
      if (VARIANTS.has('fabric')) setups.push({ ...(await handBuilt(ledger, id, { tag: 'f', subnet: 249, fabric: { netns: netnsPath(lab.plan.fabricNetns), bridge: UNDERLAY_BRIDGE } })), scenarios: ['cross'] });
      for (const s of setups) {
        await s.prepare?.();
        for (const sc of s.scenarios ?? SCENARIOS) await warm(s[sc]);
      }
      console.log(`pod MTU: seine ${await mtuOf(seine.same.clientNetns, 'eth0')}, hand-built ${await mtuOf(hand.same.clientNetns, 'eth0')}; iperf3 -t ${SECS}, single TCP stream (paths warmed up first), ${ROUNDS} rounds`);

      const results = new Map<string, Iperf[]>();
      const key = (s: Setup, scenario: Scenario): string => `${s.label}/${scenario}`;
      for (let r = 0; r < ROUNDS; r++) {
        for (const scenario of SCENARIOS) {
          for (const s of r % 2 ? [...setups].reverse() : setups) {
            if (!(s.scenarios ?? SCENARIOS).includes(scenario)) continue;
            await s.prepare?.();
            const res = await iperf(s[scenario], SECS, s.ovs);
            results.set(key(s, scenario), [...(results.get(key(s, scenario)) ?? []), res]);
          }
        }
      }
      for (const scenario of SCENARIOS) {
        console.log(scenario === 'same' ? 'same node:' : 'across nodes (VXLAN):');
        const base = results.get(key(hand, scenario))!;
        const baseBps = median(base.map((x) => x.bps));
        const baseCpu = median(base.map((x) => x.cpuPerGB));
        for (const s of setups) {
          const xs = results.get(key(s, scenario));
          if (!xs) continue;
          const m = median(xs.map((x) => x.bps));
          const cpu = median(xs.map((x) => x.cpuPerGB));
          const passes = (i: 0 | 1): string => median(xs.map((x) => x.passes[i])).toFixed(2);
          const dp = scenario === 'same' ? passes(0) : `${passes(0)} + ${passes(1)}`;
          const ratio = s === hand ? 'baseline  ' : `ratio ${(m / baseBps).toFixed(2)}`;
          console.log(
            `  ${s.label.padEnd(22)} median ${gbps(m)} Gbit/s  ${ratio.padEnd(10)} | runs ${xs.map((x) => gbps(x.bps)).join(' / ')}; retransmits ${xs.map((x) => x.retransmits).join('/')}`,
          );
          console.log(
            `  ${''.padEnd(22)} ovs-vswitchd CPU ${(cpu / 1000).toFixed(1)} s per GB received${s === hand ? '' : ` (${(baseCpu / cpu).toFixed(2)} of the baseline's efficiency)`}; datapath passes/packet ${dp}`,
          );
        }
        const ratio = median(results.get(key(seine, scenario))!.map((x) => x.bps)) / baseBps;
        console.log(`  => seine / hand-built: ${ratio.toFixed(2)}${ratio >= 0.9 ? '' : ' (below the 0.9 aim)'}`);
      }
    });
  });
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await benchMain('Seine pod-to-pod TCP throughput vs. a hand-built minimal OVS (userspace datapath)', main);

/**
 * CNI ADD/DEL latency as the container runtime sees it: each operation is timed around CniRuntime's
 * addNetworkList/delNetworkList, i.e. `nsenter` into the node + the plugin process start + its work + the
 * result cache, against one node of a 1-node lab.
 *   - Seine: the node's own conflist (the `seine` shim, forwarding to the node agent);
 *   - baseline, same run, same node, same kind of pod namespaces: the reference `bridge` + `host-local`
 *     plugins (a Linux bridge `bench0` in the node namespace, its own subnet).
 * Phases: N sequential ADDs (Seine and bridge interleaved one by one), then rounds of C concurrent ADDs
 * (the two alternating which goes first); each followed by the DELs, timed the same way. Pod namespaces are
 * created before and removed after each phase, untimed. Every ADD is for a Pod object that exists in the API
 * (Seine's agent reads a pod's annotations when secondary networks are on) but that no node runs: its
 * nodeSelector matches nothing, so the lab's scheduler and kubelets leave it alone. The agent's informer only
 * caches pods bound to its node, so it reads these from the API server: one GET per ADD.
 * Build, then: node dist/bench/primary/cni-add.js   (env N=50 C=20 ROUNDS=3)
 */
import './quiet.js';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { k8sCniArgs } from '../../src/cni/args.js';
import { loadDefaultConfList, parseConfList } from '../../src/cni/conf.js';
import { CniRuntime, type RuntimeConf } from '../../src/cni/runtime.js';
import type { NetConfList } from '../../src/cni/types.js';
import { createNetns, deleteNetns, netnsPath } from '../../src/host/netns.js';
import { Lab } from '../../src/lab/lab.js';
import { SYSTEM_CNI_BIN } from '../../src/lab/pod-network.js';
import { BENCH_ROOT, benchMain, benchName, eventually, fmtMs, stats, timed, withCleanup, type Stats } from './common.js';

const N = Number(process.env.N ?? 50);
const C = Number(process.env.C ?? 20);
const ROUNDS = Number(process.env.ROUNDS ?? 3);
const VERSION_SAMPLES = 20;
const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

interface Attachment {
  netnsName: string;
  rt: RuntimeConf;
}

/**
 * CPU ms of a process: its own, and its reaped children's; with `living`, also its running children's with
 * everything they reaped (the agent's seine-exec, which reaps the commands it runs for the agent).
 */
function cpuOf(pid: number | undefined, living = false): { self: number; children: number } {
  if (pid === undefined) return { self: NaN, children: NaN };
  const times = (p: number): number[] => {
    const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
    return stat
      .slice(stat.lastIndexOf(')') + 2)
      .split(' ')
      .slice(11, 15)
      .map((x) => (Number(x) * 1000) / CLK_TCK);
  };
  const [utime, stime, cutime, cstime] = times(pid) as [number, number, number, number];
  let children = cutime + cstime;
  const running = living ? readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim() : '';
  for (const c of running ? running.split(' ').map(Number) : []) {
    try {
      children += times(c).reduce((a, b) => a + b, 0);
    } catch {
      // It ended meanwhile: counted in cutime from now on.
    }
  }
  return { self: utime + stime, children };
}

interface CpuSplit {
  caller: number;
  agent: number;
  agentChildren: number;
  ovs: number;
}

interface Subject {
  label: string;
  cpu: CpuSplit;
  list: NetConfList;
  plugin: string;
  add: number[];
  del: number[];
  concAdd: number[];
  concDel: number[];
  roundWall: number[];
  version: number[];
}

async function main(): Promise<void> {
  const lab = await Lab.up({ name: benchName('bc'), nodes: 1, stateRoot: BENCH_ROOT });
  await withCleanup(() => lab.down(), async () => {
    const node = lab.nodes[0]!;
    const runtime = new CniRuntime({ cniPath: [node.dirs.cniBinDir, SYSTEM_CNI_BIN], cacheDir: join(node.dirs.cniCacheDir, 'bench'), pluginNetns: node.netns });
    const seineList = (await loadDefaultConfList(node.dirs.cniConfDir)).list;
    // What the lab's pre-Seine network uses, on a subnet of its own so it cannot meet Seine's routes.
    const bridgeList = parseConfList({
      cniVersion: '1.0.0',
      name: 'bench-bridge',
      plugins: [
        {
          type: 'bridge',
          bridge: 'bench0',
          isGateway: true,
          ipMasq: false,
          hairpinMode: true,
          mtu: 1500,
          ipam: { type: 'host-local', ranges: [[{ subnet: '10.250.0.0/24' }]], routes: [{ dst: '0.0.0.0/0' }], dataDir: join(lab.stateDir, 'bench-host-local') },
        },
      ],
    });
    const seine: Subject = { label: 'seine', list: seineList, plugin: 'seine', cpu: { caller: 0, agent: 0, agentChildren: 0, ovs: 0 }, add: [], del: [], concAdd: [], concDel: [], roundWall: [], version: [] };
    const bridge: Subject = { label: 'bridge+host-local', list: bridgeList, plugin: 'bridge', cpu: { caller: 0, agent: 0, agentChildren: 0, ovs: 0 }, add: [], del: [], concAdd: [], concDel: [], roundWall: [], version: [] };

    let serial = 0;
    const made = new Set<string>();
    async function attachments(subject: Subject, n: number): Promise<Attachment[]> {
      const out: Attachment[] = [];
      for (let i = 0; i < n; i++) {
        const k = serial++;
        const netnsName = `${lab.plan.name}-p${k}`;
        lab.ledger.netns(netnsName);
        made.add(netnsName);
        await createNetns(netnsName);
        const containerId = randomBytes(32).toString('hex');
        const name = `bench-${subject.plugin}-${k}`;
        const pod = await lab.core.createNamespacedPod({
          namespace: 'default',
          body: { metadata: { name }, spec: { nodeSelector: { 'seine.dev/bench': 'nowhere' }, containers: [{ name: 'c', image: 'lab' }] } },
        });
        out.push({ netnsName, rt: { containerId, netns: netnsPath(netnsName), ifname: 'eth0', args: k8sCniArgs({ namespace: 'default', name, infraContainerId: containerId, uid: pod.metadata!.uid! }) } });
      }
      return out;
    }
    async function dropNetns(as: Attachment[]): Promise<void> {
      for (const a of as) {
        await deleteNetns(a.netnsName);
        made.delete(a.netnsName);
        lab.ledger.forgetNetns(a.netnsName);
      }
    }
    const add = (s: Subject, a: Attachment): Promise<number> => timed(() => runtime.addNetworkList(s.list, a.rt)).then(([, ms]) => ms);
    // Where a sequential ADD's CPU goes: this process's children (nsenter + plugin), the agent and what it
    // spawns (ip, ethtool, sysctl, ovs-ofctl), the node's OVS daemons. Clock ticks, so summed over the phase.
    const agentPid = (): number | undefined => lab.agents.get(node.plan.name)?.pid;
    const ovsCpu = (): number => cpuOf(node.ovs.pid('ovs-vswitchd')).self + cpuOf(node.ovs.pid('ovsdb-server')).self;
    const addCounted = async (s: Subject, a: Attachment): Promise<number> => {
      const [c0, a0, o0] = [cpuOf(process.pid).children, cpuOf(agentPid(), true), ovsCpu()];
      const ms = await add(s, a);
      const [c1, a1, o1] = [cpuOf(process.pid).children, cpuOf(agentPid(), true), ovsCpu()];
      s.cpu.caller += c1 - c0;
      s.cpu.agent += a1.self - a0.self;
      s.cpu.agentChildren += a1.children - a0.children;
      s.cpu.ovs += o1 - o0;
      return ms;
    };
    const del = (s: Subject, a: Attachment): Promise<number> => timed(() => runtime.delNetworkList(s.list, a.rt)).then(([, ms]) => ms);

    // The agent answers "try again later" (11) until its bridge and flows are up; the first ADD of each
    // plugin also warms the page cache. Untimed.
    for (const s of [seine, bridge]) {
      const [a] = await attachments(s, 1);
      // Retried on any error, the last one reported on time-out.
      await eventually(`${s.label} ADD to succeed`, () => runtime.addNetworkList(s.list, a!.rt), 60_000, 250);
      await runtime.delNetworkList(s.list, a!.rt);
      await dropNetns([a!]);
    }

    // The plugin process alone (VERSION never reaches the agent), through the same nsenter: the floor of any call.
    for (let i = 0; i < VERSION_SAMPLES; i++) {
      for (const s of [seine, bridge]) s.version.push((await timed(() => runtime.version(s.plugin)))[1]);
    }

    // 1. Sequential, interleaved one by one so that load changes on the machine hit both alike.
    const seqS = await attachments(seine, N);
    const seqB = await attachments(bridge, N);
    for (let i = 0; i < N; i++) {
      seine.add.push(await addCounted(seine, seqS[i]!));
      bridge.add.push(await addCounted(bridge, seqB[i]!));
    }
    for (let i = 0; i < N; i++) {
      seine.del.push(await del(seine, seqS[i]!));
      bridge.del.push(await del(bridge, seqB[i]!));
    }
    await dropNetns([...seqS, ...seqB]);

    // 2. Rounds of C concurrent ADDs, then their C concurrent DELs; who goes first alternates by round.
    for (let r = 0; r < ROUNDS; r++) {
      for (const s of r % 2 ? [bridge, seine] : [seine, bridge]) {
        const as = await attachments(s, C);
        const [addMs, wall] = await timed(() => Promise.all(as.map((a) => add(s, a))));
        s.concAdd.push(...addMs);
        s.roundWall.push(wall);
        s.concDel.push(...(await Promise.all(as.map((a) => del(s, a)))));
        await dropNetns(as);
      }
    }
    if (made.size) throw new Error(`${made.size} pod namespaces left`);

    const row = (what: string, s: Stats, base: Stats): string =>
      `  ${what.padEnd(34)} p50 ${fmtMs(s.p50).padStart(6)} ms  p99 ${fmtMs(s.p99).padStart(6)} ms  (min ${fmtMs(s.min)}, mean ${fmtMs(s.mean)})  ratio p50 ${(s.p50 / base.p50).toFixed(2)}x, p99 ${(s.p99 / base.p99).toFixed(2)}x`;
    const section = (title: string, pick: (s: Subject) => number[]): void => {
      console.log(title);
      const b = stats(pick(bridge));
      console.log(row(`${seine.label} (n=${pick(seine).length})`, stats(pick(seine)), b));
      console.log(row(`baseline ${bridge.label} (n=${pick(bridge).length})`, b, b));
    };
    console.log(`Lab ${lab.plan.name}: 1 node, Seine agent + reference plugins from ${SYSTEM_CNI_BIN}, plugins run under nsenter into the node namespace`);
    section('plugin process alone (VERSION, answered by the binary itself):', (s) => s.version);
    section(`ADD, ${N} sequential:`, (s) => s.add);
    console.log(`  seine ADD p50 above its own process floor (VERSION p50): ${fmtMs(stats(seine.add).p50 - stats(seine.version).p50)} ms; bridge: ${fmtMs(stats(bridge.add).p50 - stats(bridge.version).p50)} ms`);
    const per = (x: number): string => `${(x / N).toFixed(1)} ms`;
    console.log(
      `  CPU per sequential ADD: seine: caller side (nsenter + seine-cni) ${per(seine.cpu.caller)}, agent ${per(seine.cpu.agent)} + its children ${per(seine.cpu.agentChildren)}, ` +
        `OVS daemons ${per(seine.cpu.ovs)}; bridge: caller side (nsenter + bridge + host-local) ${per(bridge.cpu.caller)}, OVS daemons ${per(bridge.cpu.ovs)} (background: OVS has no part in it)`,
    );
    section(`DEL, ${N} sequential:`, (s) => s.del);
    section(`ADD, ${ROUNDS} rounds of ${C} concurrent (latency of each):`, (s) => s.concAdd);
    section(`DEL, ${ROUNDS} rounds of ${C} concurrent (latency of each):`, (s) => s.concDel);
    const wall = (s: Subject): string => s.roundWall.map((w) => fmtMs(w)).join(' / ');
    const rate = (s: Subject): number => (C * s.roundWall.length * 1000) / s.roundWall.reduce((a, b) => a + b, 0);
    console.log(`  round wall time for ${C} ADDs: seine ${wall(seine)} ms (${rate(seine).toFixed(1)} ADD/s); bridge ${wall(bridge)} ms (${rate(bridge).toFixed(1)} ADD/s); throughput ratio ${(rate(seine) / rate(bridge)).toFixed(2)}x`);
    console.log(`  (p99 is nearest-rank: with 100 samples or fewer it is the maximum)`);
  });
}

await benchMain('Seine CNI ADD/DEL latency, measured by the caller (CniRuntime: nsenter + plugin process + work + result cache)', main);

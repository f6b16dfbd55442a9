// Secondary-network benchmark on a 3-node lab, each figure with a baseline measured in the same run:
//  - pod-ready latency (create -> Running, as the API reports it through a watch) with 0, 1 and 3 secondary
//    networks; the configurations are interleaved pod by pod so that load drifts hit them alike; ratios to 0;
//  - IPPool allocations per second against the lab's API server: 3 IPPoolAllocator instances, each in a worker
//    thread with its own clients and event loop (3 agents), contending for one pool, against 1 allocator (in a
//    worker too) doing the same number alone; one request at a time per allocator, and 8 at a time (where each
//    allocator's group commit batches them).
// Environment: PODS (per configuration, default 20), CONCURRENCY (pods in flight, default 1),
// ALLOCS (allocations per scenario, default 300).
import '../primary/quiet.js';
import { CustomObjectsApi, Watch, type V1Pod } from '@kubernetes/client-node';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { cpus, loadavg, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { parseAllDocuments } from 'yaml';
import { reapStaleLedgers } from '../../src/host/ledger.js';
import { Lab } from '../../src/lab/lab.js';
import { NETWORKS_ANNOTATION } from '../../src/secondary/annotations/index.js';
import { repoRoot } from '../../src/util/paths.js';
import { eventually as poll, sleep } from '../../src/util/wait.js';
import type { AllocatorJob, AllocatorPhase, AllocatorReport } from './pool-allocator-worker.js';

/** Benchmark waits are long: the whole lab may be busy. */
const eventually = <T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 120_000, everyMs = 200): Promise<T> => poll(what, check, timeoutMs, everyMs);

const ROOT = '/run/seine-bench';
const NODES = 3;
const PODS = Number(process.env.PODS ?? 20);
const CONCURRENCY = Number(process.env.CONCURRENCY ?? 1);
const ALLOCS = Number(process.env.ALLOCS ?? 300);
const NS = 'default';
const LABEL = 'seine.dev/bench-secondary';

const CONFIGS = [
  { label: '0 secondary networks', networks: '' },
  { label: '1 (vlan100)', networks: 'vlan100' },
  { label: '3 (vlan100, blue, vlan200)', networks: 'vlan100,blue,vlan200' },
] as const;

/** Clean-ups of what exists now, for a signal arriving mid-run. */
const cleanups = new Set<() => Promise<void>>();
/** A signal arrived: clean-ups run, nothing new may start. */
let stopping = false;


function machine(): string {
  const cpu = cpus();
  const ovs = execFileSync('ovs-vswitchd', ['--version'], { encoding: 'utf8' }).split('\n')[0]!.trim();
  const load = loadavg().map((l) => l.toFixed(2)).join(' ');
  return `CPU: ${cpu[0]?.model.trim() ?? 'unknown'} × ${cpu.length} cores, ${(totalmem() / 2 ** 30).toFixed(1)} GiB; ${ovs}; node ${process.version}; kernel ${release()}; load average at start ${load}`;
}

/** Nearest-rank quantile. */
function quantile(xs: readonly number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))]!;
}

/** The example IPPools and NADs, as `kubectl apply -f manifests/examples/secondary-networks.yaml` creates them. */
async function applyExamples(lab: Lab): Promise<void> {
  const custom = lab.kubeConfig.makeApiClient(CustomObjectsApi);
  const text = readFileSync(join(repoRoot(), 'manifests', 'examples', 'secondary-networks.yaml'), 'utf8');
  for (const doc of parseAllDocuments(text)) {
    const obj = doc.toJS() as { apiVersion: string; kind: string; metadata: { name: string; namespace?: string } } | null;
    if (!obj) continue;
    const [group, version] = obj.apiVersion.split('/') as [string, string];
    if (obj.kind === 'IPPool') await custom.createClusterCustomObject({ group, version, plural: 'ippools', body: obj });
    else if (obj.kind === 'NetworkAttachmentDefinition') {
      await custom.createNamespacedCustomObject({ group, version, plural: 'network-attachment-definitions', namespace: obj.metadata.namespace ?? NS, body: obj });
    }
  }
}

/** When each pod was first seen Running (with an IP) through one watch on the namespace. */
class RunningWatch {
  private readonly seen = new Map<string, number>();
  private readonly waiters = new Map<string, (t: number) => void>();
  private abort?: AbortController;
  private stopped = false;

  constructor(private readonly lab: Lab) {}

  async start(): Promise<void> {
    const w = new Watch(this.lab.kubeConfig);
    this.abort = await w.watch(
      `/api/v1/namespaces/${NS}/pods`,
      { labelSelector: LABEL },
      (type: string, pod: V1Pod) => {
        if (type !== 'ADDED' && type !== 'MODIFIED') return;
        if (pod.status?.phase === 'Running' && pod.status.podIP) this.mark(pod.metadata!.name!, performance.now());
      },
      () => {
        // A dropped watch: start again, and catch up with a list (those pods get the time of the catch-up).
        // Not when stopping (the lab may be going down under it).
        if (this.stopped || stopping) return;
        void sleep(100)
          .then(() => (this.stopped || stopping ? undefined : this.start().then(() => this.catchUp())))
          .catch((e: unknown) => console.error(`pod watch failed: ${String(e)}`));
      },
    );
  }

  private mark(name: string, t: number): void {
    if (this.seen.has(name)) return;
    this.seen.set(name, t);
    this.waiters.get(name)?.(t);
    this.waiters.delete(name);
  }

  private async catchUp(): Promise<void> {
    const t = performance.now();
    for (const p of (await this.lab.core.listNamespacedPod({ namespace: NS, labelSelector: LABEL })).items) {
      if (p.status?.phase === 'Running' && p.status.podIP) this.mark(p.metadata!.name!, t);
    }
  }

  /** Resolves with the time the pod was seen Running. */
  running(name: string, timeoutMs = 120_000): Promise<number> {
    const t = this.seen.get(name);
    if (t !== undefined) return Promise.resolve(t);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`pod ${name} not Running after ${timeoutMs} ms`)), timeoutMs);
      this.waiters.set(name, (at) => {
        clearTimeout(timer);
        resolve(at);
      });
    });
  }

  stop(): void {
    this.stopped = true;
    this.abort?.abort();
  }
}

function pod(name: string, node: string, networks: string): V1Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: NS, labels: { [LABEL]: 'yes' }, ...(networks ? { annotations: { [NETWORKS_ANNOTATION]: networks } } : {}) },
    spec: { nodeName: node, containers: [{ name: 'main', image: 'lab', command: ['sleep', 'infinity'] }] },
  };
}

async function deleteBenchPods(lab: Lab): Promise<void> {
  await lab.core.deleteCollectionNamespacedPod({ namespace: NS, labelSelector: LABEL });
  await eventually('bench pods deleted', async () => ((await lab.core.listNamespacedPod({ namespace: NS, labelSelector: LABEL })).items.length ? undefined : true), 180_000, 250);
}

async function podReadyLatency(lab: Lab): Promise<void> {
  const watch = new RunningWatch(lab);
  await watch.start();
  const node = (i: number): string => lab.plan.nodes[i % NODES]!.name;
  try {
    // Warm-up, not measured: one pod per configuration and node makes the bridges, uplinks and tunnels.
    const warm = CONFIGS.flatMap((c, k) => Array.from({ length: NODES }, (_, n) => ({ name: `warm${k}-${n}`, node: node(n), networks: c.networks })));
    await Promise.all(warm.map((w) => lab.core.createNamespacedPod({ namespace: NS, body: pod(w.name, w.node, w.networks) })));
    await Promise.all(warm.map((w) => watch.running(w.name)));

    // The jobs: pod r of each configuration, configurations rotated per round, nodes round-robin.
    const jobs: Array<{ config: number; name: string; node: string }> = [];
    for (let r = 0; r < PODS; r++) {
      for (let j = 0; j < CONFIGS.length; j++) {
        const k = (r + j) % CONFIGS.length;
        jobs.push({ config: k, name: `lat${k}-${r}`, node: node(r + j) });
      }
    }
    const samples: number[][] = CONFIGS.map(() => []);
    let next = 0;
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (next < jobs.length) {
          const job = jobs[next++]!;
          const t0 = performance.now();
          await lab.core.createNamespacedPod({ namespace: NS, body: pod(job.name, job.node, CONFIGS[job.config]!.networks) });
          samples[job.config]!.push((await watch.running(job.name)) - t0);
        }
      }),
    );
    const base = { p50: quantile(samples[0]!, 0.5), p90: quantile(samples[0]!, 0.9) };
    console.log(`\nPod-ready latency, create -> Running (API watch), ${PODS} pods per configuration, ${CONCURRENCY} in flight, interleaved, nodes round-robin:`);
    console.log('  secondary networks               p50 ms   p90 ms   mean ms  max ms   p50 ratio  p90 ratio');
    CONFIGS.forEach((c, k) => {
      const s = samples[k]!;
      const p50 = quantile(s, 0.5);
      const p90 = quantile(s, 0.9);
      const mean = s.reduce((a, b) => a + b, 0) / s.length;
      const max = Math.max(...s);
      const cols = [p50, p90, mean, max].map((v) => v.toFixed(0).padStart(6)).join('   ');
      console.log(`  ${c.label.padEnd(30)} ${cols}   ${(p50 / base.p50).toFixed(2).padStart(6)}x    ${(p90 / base.p90).toFixed(2).padStart(6)}x`);
    });
  } finally {
    watch.stop();
    await deleteBenchPods(lab);
  }
}

interface AllocResult {
  allocators: number;
  inFlight: number;
  allocMs: number;
  releaseMs: number;
  writes: number;
  reads: number;
  conflicts: number;
}

/**
 * `allocators` allocators, each in a worker thread with its own KubeConfig and clients (an agent each), allocate
 * ALLOCS addresses in a fresh pool, then release them.
 */
async function allocationRun(lab: Lab, allocators: number, inFlight: number, run: number): Promise<AllocResult> {
  const custom = lab.kubeConfig.makeApiClient(CustomObjectsApi);
  const poolName = `bench-${run}`;
  await custom.createClusterCustomObject({
    group: 'crd.seine.dev',
    version: 'v1alpha1',
    plural: 'ippools',
    body: { apiVersion: 'crd.seine.dev/v1alpha1', kind: 'IPPool', metadata: { name: poolName }, spec: { ipRanges: [{ cidr: `10.${160 + run}.0.0/22` }], subnetInfo: { gateway: `10.${160 + run}.0.1`, prefixLength: 22 } } },
  });
  const per = Math.floor(ALLOCS / allocators);
  const workers = Array.from({ length: allocators }, (_, index) => {
    const job: AllocatorJob = { kubeconfig: lab.kubeconfigPath, pool: poolName, index, run, count: per, inFlight };
    return new Worker(new URL('./pool-allocator-worker.js', import.meta.url), { workerData: job });
  });
  /** Every worker's next report (a worker that fails or dies fails the run). */
  const reports = (): Promise<AllocatorReport[]> =>
    Promise.all(
      workers.map(
        (w) =>
          new Promise<AllocatorReport>((resolve, reject) => {
            const off = (): void => void (w.off('message', onMessage), w.off('error', reject), w.off('exit', onExit));
            const onMessage = (r: AllocatorReport): void => (off(), r.phase === 'failed' ? reject(new Error(r.error)) : resolve(r));
            const onExit = (code: number): void => (off(), reject(new Error(`allocator worker exited (${code})`)));
            w.on('message', onMessage).on('error', reject).on('exit', onExit);
          }),
      ),
    );
  const phase = async (p: AllocatorPhase): Promise<{ ms: number; reports: AllocatorReport[] }> => {
    const t = performance.now();
    const done = reports();
    for (const w of workers) w.postMessage(p);
    const r = await done;
    return { ms: performance.now() - t, reports: r };
  };
  try {
    await reports();
    const alloc = await phase('allocate');
    const sum = (k: 'writes' | 'reads' | 'conflicts'): number => alloc.reports.reduce((s, r) => s + ('stats' in r ? r.stats[k] : 0), 0);
    const allocStats = { writes: sum('writes'), reads: sum('reads'), conflicts: sum('conflicts') };
    // Correctness: every address recorded once.
    const pool = (await custom.getClusterCustomObject({ group: 'crd.seine.dev', version: 'v1alpha1', plural: 'ippools', name: poolName })) as { status?: { allocations?: Array<{ ip: string }> } };
    const ips = (pool.status?.allocations ?? []).map((x) => x.ip);
    if (ips.length !== per * allocators || new Set(ips).size !== ips.length) throw new Error(`pool ${poolName}: ${ips.length} allocations, ${new Set(ips).size} distinct, expected ${per * allocators}`);
    const release = await phase('release');
    return { allocators, inFlight, allocMs: alloc.ms, releaseMs: release.ms, ...allocStats };
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
    await custom.deleteClusterCustomObject({ group: 'crd.seine.dev', version: 'v1alpha1', plural: 'ippools', name: poolName });
  }
}

async function poolThroughput(lab: Lab): Promise<void> {
  console.log(`\nIPPool allocations against the lab API server: ${ALLOCS} per run in a fresh /22 pool (split evenly between the allocators), then released:`);
  console.log('  allocators  in flight each   alloc/s   ratio to 1   release/s   (allocation phase: writes   reads   refused writes)');
  let run = 0;
  for (const inFlight of [1, 8]) {
    const base = await allocationRun(lab, 1, inFlight, run++);
    const three = await allocationRun(lab, 3, inFlight, run++);
    for (const r of [base, three]) {
      const rate = ALLOCS / (r.allocMs / 1000);
      const ratio = base.allocMs / r.allocMs;
      console.log(
        `  ${String(r.allocators).padStart(10)}  ${String(r.inFlight).padStart(14)}   ${rate.toFixed(0).padStart(7)}   ${ratio.toFixed(2).padStart(9)}x   ${(ALLOCS / (r.releaseMs / 1000)).toFixed(0).padStart(9)}                       ${String(r.writes).padStart(6)}   ${String(r.reads).padStart(5)}   ${String(r.conflicts).padStart(13)}`,
      );
    }
  }
}

async function main(): Promise<void> {
  await reapStaleLedgers(ROOT);
  console.log('Seine secondary-network benchmark');
  console.log(machine());
  const t = performance.now();
  const lab = await Lab.up({ name: `bs${randomBytes(3).toString('hex')}`, nodes: NODES, stateRoot: ROOT });
  const down = (): Promise<void> => lab.down();
  cleanups.add(down);
  try {
    // Agents serve CNI once their log says so; pods created before would only measure the kubelet's backoff.
    for (const n of lab.nodes) {
      const log = join(n.dirs.logDir, 'seine-agent.log');
      await eventually(`agent of ${n.plan.name} ready`, async () => (existsSync(log) && readFileSync(log, 'utf8').includes('"agent ready"') ? true : undefined), 120_000);
    }
    console.log(`lab up (${NODES} nodes, agents ready): ${((performance.now() - t) / 1000).toFixed(1)} s`);
    await applyExamples(lab);
    await podReadyLatency(lab);
    await poolThroughput(lab);
  } finally {
    cleanups.delete(down);
    await lab.down();
  }
}

const onSignal = (): void => {
  stopping = true;
  void Promise.allSettled([...cleanups].map((c) => c())).finally(() => process.exit(130));
};
process.once('SIGINT', onSignal);
process.once('SIGTERM', onSignal);
try {
  await main();
} catch (e) {
  console.error(e instanceof Error ? (e.stack ?? e.message) : e);
  process.exitCode = 1;
}

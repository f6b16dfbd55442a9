// Shared bits of the primary-network benchmarks: the machine line, quantiles, clean-up on signals, waiting
// for pods. Benchmarks must not import from test/, so the few helpers they need live here.
import type { V1Pod } from '@kubernetes/client-node';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { cpus, release } from 'node:os';
import { join } from 'node:path';
import { netnsPath } from '../../src/host/netns.js';
import { reapStaleLedgers } from '../../src/host/ledger.js';
import { podNetnsName } from '../../src/lab/kubelet.js';
import type { Lab } from '../../src/lab/lab.js';

/** Every benchmark ledger and lab lives here; a crashed run's leftovers are reaped by the next one. */
export const BENCH_ROOT = '/run/seine-bench';

export function machine(): string {
  const cpu = cpus();
  const ovs = execFileSync('ovs-vswitchd', ['--version'], { encoding: 'utf8' }).split('\n')[0]!.trim();
  return `CPU: ${cpu[0]?.model.trim() ?? 'unknown'} × ${cpu.length} cores; ${ovs}; node ${process.version}; kernel ${release()}`;
}

/** Lab names are at most 10 chars, lowercase, starting with a letter. */
export function benchName(prefix: string): string {
  return `${prefix}${randomBytes(3).toString('hex')}`;
}

export interface Stats {
  n: number;
  min: number;
  p50: number;
  p99: number;
  max: number;
  mean: number;
}

/** Nearest-rank quantiles (with 50 samples p99 is the maximum). */
export function stats(xs: readonly number[]): Stats {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p: number): number => s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))]!;
  return { n: s.length, min: s[0]!, p50: q(0.5), p99: q(0.99), max: s[s.length - 1]!, mean: s.reduce((a, b) => a + b, 0) / s.length };
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}


export async function timed<T>(f: () => Promise<T>): Promise<[T, number]> {
  const t = performance.now();
  const v = await f();
  return [v, performance.now() - t];
}

import { eventually, sleep } from '../../src/util/wait.js';

export { eventually, sleep };

/** Clean-ups of what exists now, run by a signal arriving mid-run. */
const cleanups = new Set<() => Promise<void>>();

/** Runs `body` with `cleanup` registered for SIGINT/SIGTERM, and runs `cleanup` afterwards in any case. */
export async function withCleanup<T>(cleanup: () => Promise<void>, body: () => Promise<T>): Promise<T> {
  let done: Promise<void> | undefined;
  const once = (): Promise<void> => (done ??= cleanup());
  cleanups.add(once);
  try {
    return await body();
  } finally {
    cleanups.delete(once);
    await once();
  }
}

/** The entry point: reap crashed runs, print the title and machine, run, exit 130 on a signal after cleaning up. */
export async function benchMain(title: string, body: () => Promise<void>): Promise<void> {
  const onSignal = (): void => {
    void Promise.allSettled([...cleanups].map((c) => c())).finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    await reapStaleLedgers(BENCH_ROOT);
    console.log(title);
    console.log(machine());
    await body();
  } catch (e) {
    console.error(e instanceof Error ? (e.stack ?? e.message) : e);
    process.exitCode = 1;
  }
}

export function labPod(name: string, node: string, command?: string[]): V1Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: 'default' },
    spec: { nodeName: node, containers: [{ name: 'main', image: 'lab', ...(command ? { command } : {}) }] },
  };
}

/** Waits until every named pod in `default` is Running with an IP; returns them in the order given. */
export async function waitRunning(lab: Lab, names: readonly string[], timeoutMs = 120_000): Promise<V1Pod[]> {
  return eventually(
    `${names.length} pods Running`,
    async () => {
      const pods = (await lab.core.listNamespacedPod({ namespace: 'default' })).items;
      const byName = new Map(pods.map((p) => [p.metadata!.name!, p]));
      const ready = names.map((n) => byName.get(n)).filter((p): p is V1Pod => p?.status?.phase === 'Running' && !!p.status.podIP);
      return ready.length === names.length ? ready : undefined;
    },
    timeoutMs,
    250,
  );
}

/** Deletes every pod in `default` and waits until they are gone (kubelet ran CNI DEL). */
export async function deleteAllPods(lab: Lab, timeoutMs = 120_000): Promise<void> {
  await lab.core.deleteCollectionNamespacedPod({ namespace: 'default' });
  await eventually('pods deleted', async () => ((await lab.core.listNamespacedPod({ namespace: 'default' })).items.length ? undefined : true), timeoutMs, 250);
}

export function podNetns(lab: Lab, pod: V1Pod): string {
  return netnsPath(podNetnsName(lab.plan.name, pod.metadata!.uid!));
}

/** The agent of `node` has logged that it serves CNI requests (bridge, flows and socket in place). */
export async function waitAgentReady(lab: Lab, nodeIndex = 0, timeoutMs = 60_000): Promise<void> {
  const log = join(lab.nodes[nodeIndex]!.dirs.logDir, 'seine-agent.log');
  await eventually(`agent ${lab.nodes[nodeIndex]!.plan.name} ready`, async () => (existsSync(log) && readFileSync(log, 'utf8').includes('"msg":"agent ready"') ? true : undefined), timeoutMs);
}

export function fmtMs(ms: number): string {
  return ms >= 100 ? ms.toFixed(0) : ms.toFixed(1);
}

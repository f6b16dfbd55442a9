/**
 * Seine agent memory with many pods on its node: VmRSS (and RssAnon, the part pods can grow) of the node's
 * agent process from /proc/PID/status, in a 1-node lab:
 *   - baseline, same run: an idle bare node process (`node -e 'setInterval(...)'`), the floor of any Node agent;
 *   - the agent ready, no pods;
 *   - the agent with N pods Running (created through the API, pinned by spec.nodeName, set up by the kubelet);
 *   - after the pods are deleted.
 * Each point is read twice: as it is (median of 5 samples 1 s apart), and right after a full GC forced through
 * the agent's inspector (SIGUSR1, 127.0.0.1:9229), with its V8 heap in use. Only the second pair compares:
 * V8 collects when it likes, so raw readings differ by garbage (an idle agent's RSS drops ~35 MiB some 20 s
 * after start-up, and 100 pods' worth of work may or may not have been collected yet).
 * Build, then: node dist/bench/primary/memory.js   (env PODS=100)
 */
import './quiet.js';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { Lab } from '../../src/lab/lab.js';
import { CdpSession, INSPECTOR_PORT, portFree } from './inspector.js';
import { BENCH_ROOT, benchMain, benchName, deleteAllPods, labPod, median, sleep, timed, waitAgentReady, waitRunning, withCleanup } from './common.js';

const PODS = Number(process.env.PODS ?? 100);

interface Mem {
  rss: number;
  anon: number;
  hwm: number;
}

/** kB figures from /proc/PID/status. */
function status(pid: number): Mem {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string): number => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(s)?.[1] ?? NaN);
  return { rss: kb('VmRSS'), anon: kb('RssAnon'), hwm: kb('VmHWM') };
}

async function sample(pid: number): Promise<Mem> {
  const xs: Mem[] = [];
  for (let i = 0; i < 5; i++) {
    if (i) await sleep(1000);
    xs.push(status(pid));
  }
  return { rss: median(xs.map((x) => x.rss)), anon: median(xs.map((x) => x.anon)), hwm: Math.max(...xs.map((x) => x.hwm)) };
}

interface Point {
  raw: Mem;
  /** After a forced full GC, with the V8 heap in use (kB); undefined without the inspector. */
  gc?: Mem & { heapUsed: number };
}

const mib = (kb: number): string => `${(kb / 1024).toFixed(1)} MiB`;

async function main(): Promise<void> {
  const lab = await Lab.up({ name: benchName('bm'), nodes: 1, stateRoot: BENCH_ROOT });
  await withCleanup(() => lab.down(), async () => {
    const node = lab.nodes[0]!;
    const agent = lab.agents.get(node.plan.name)!;
    await waitAgentReady(lab, 0);
    const pid = agent.pid!;

    // The floor: what a Node process holds doing nothing. Recorded in the lab's ledger in case we die first.
    const bare = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
    lab.ledger.process(bare.pid!, 'bare node (memory baseline)');
    await sleep(2000);
    const floor = await sample(bare.pid!);
    bare.kill('SIGTERM');
    lab.ledger.forgetProcess(bare.pid!);

    let cdp: CdpSession | undefined;
    let why = '';
    const read = async (): Promise<Point> => {
      const raw = await sample(pid);
      if (!cdp) return { raw };
      await cdp.collectGarbage();
      await sleep(500);
      const heapUsed = (await cdp.evaluate<{ heapUsed: number }>('process.memoryUsage()')).heapUsed / 1024;
      return { raw, gc: { ...status(pid), heapUsed } };
    };
    await sleep(3000); // start-up work settles
    const rawBefore = await sample(pid);
    if (await portFree(INSPECTOR_PORT)) {
      cdp = await CdpSession.attach(pid).catch((e: unknown) => ((why = String(e)), undefined));
    } else why = `127.0.0.1:${INSPECTOR_PORT} is in use, so the agent's inspector cannot open`;
    // The inspector's own allocations are in every forced-GC reading alike.
    const before = { ...(await read()), raw: rawBefore };

    const names = Array.from({ length: PODS }, (_, i) => `mem-${i}`);
    const [, upMs] = await timed(async () => {
      for (const n of names) await lab.core.createNamespacedPod({ namespace: 'default', body: labPod(n, node.plan.name) });
      await waitRunning(lab, names, 300_000);
    });
    await sleep(3000);
    const loaded = await read();
    if (agent.pid !== pid) throw new Error(`the agent restarted (pid ${pid} -> ${agent.pid}); its figures would mix two processes`);

    const [, downMs] = await timed(() => deleteAllPods(lab, 300_000));
    await sleep(3000);
    const emptied = await read();
    cdp?.close();

    const row = (what: string, m: Mem, note = ''): void =>
      console.log(`  ${what.padEnd(32)} VmRSS ${mib(m.rss).padStart(10)}  RssAnon ${mib(m.anon).padStart(10)}${note}`);
    console.log(`Lab ${lab.plan.name}: 1 node; agent pid ${pid}, restarts ${agent.restarts}; ${PODS} pods up in ${(upMs / 1000).toFixed(1)} s, deleted in ${(downMs / 1000).toFixed(1)} s`);
    console.log('as read (median of 5 samples, whatever V8 has not collected yet included):');
    row('bare node process (baseline)', floor);
    row('agent, ready, 0 pods', before.raw, `  (${(before.raw.rss / floor.rss).toFixed(2)}x the bare process)`);
    row(`agent, ${PODS} pods Running`, loaded.raw, `  (${(loaded.raw.rss / floor.rss).toFixed(2)}x the bare process)`);
    row('agent, pods deleted', emptied.raw, `  (VmHWM ${mib(emptied.raw.hwm)})`);
    console.log(`  => per pod: VmRSS ${((loaded.raw.rss - before.raw.rss) / PODS).toFixed(1)} KiB (not meaningful: see below)`);
    if (!before.gc || !loaded.gc || !emptied.gc) {
      console.log(`after a forced full GC: not measured (${why})`);
      return;
    }
    const heap = (p: Point): string => `  V8 heap used ${mib(p.gc!.heapUsed).padStart(9)}`;
    console.log('after a forced full GC (inspector attached):');
    row('agent, ready, 0 pods', before.gc, heap(before));
    row(`agent, ${PODS} pods Running`, loaded.gc, heap(loaded));
    row('agent, pods deleted', emptied.gc, heap(emptied));
    const per = (a: number, b: number): string => `${((b - a) / PODS).toFixed(1)} KiB`;
    console.log(
      `  => per pod: VmRSS ${per(before.gc.rss, loaded.gc.rss)}, RssAnon ${per(before.gc.anon, loaded.gc.anon)}, V8 heap used ${per(before.gc.heapUsed, loaded.gc.heapUsed)}; ` +
        `${PODS} pods: ${(loaded.gc.rss / before.gc.rss).toFixed(2)}x the 0-pod RSS; agent over the bare process with 0 pods: ${mib(before.gc.rss - floor.rss)}`,
    );
  });
}

await benchMain(`Seine agent memory with ${PODS} pods on its node`, main);

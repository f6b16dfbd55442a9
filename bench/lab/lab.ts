// Lab benchmark: time for `lab up --nodes 3`, and pods per second through the scheduler + kubelet stand-ins.
// Each figure is printed with a baseline measured in the same run:
//  - lab up vs. the bare minimum it wraps (3 namespaces + 3 OVS instances started by hand);
//  - pods/s vs. the same pod sandboxes made directly (netns + the node's conflist through the CNI runtime, same concurrency).
import { cpus } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { k8sCniArgs } from '../../src/cni/args.js';
import { loadDefaultConfList } from '../../src/cni/conf.js';
import { CniRuntime } from '../../src/cni/runtime.js';
import { run } from '../../src/host/exec.js';
import { ResourceLedger, reapStaleLedgers } from '../../src/host/ledger.js';
import { createNetns, deleteNetns, netnsPath } from '../../src/host/netns.js';
import { Lab } from '../../src/lab/lab.js';
import { SYSTEM_CNI_BIN } from '../../src/lab/pod-network.js';
import { OvsDaemons } from '../../src/ovs/daemons.js';

const ROOT = '/run/seine-bench';
const NODES = 3;
const PODS = Number(process.env.PODS ?? 60);

/** Clean-ups of what is running now, for a signal arriving mid-run. */
const cleanups = new Set<() => Promise<void>>();

const secs = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;

async function timed<T>(f: () => Promise<T>): Promise<[T, number]> {
  const t = performance.now();
  const v = await f();
  return [v, performance.now() - t];
}

async function baselineNodes(): Promise<number> {
  const ledger = ResourceLedger.create(join(ROOT, `base-${randomBytes(3).toString('hex')}`));
  const release = (): Promise<void> => ledger.release();
  cleanups.add(release);
  try {
    const [, ms] = await timed(async () => {
      for (let i = 0; i < NODES; i++) {
        const name = `bb${process.pid}n${i}`;
        ledger.netns(name);
        const ns = await createNetns(name);
        await new OvsDaemons({ rundir: join(ledger.dir, `ovs${i}`), netns: ns, ledger }).start();
      }
    });
    return ms;
  } finally {
    cleanups.delete(release);
    await ledger.release();
  }
}

async function podsThroughLab(lab: Lab): Promise<number> {
  const [, ms] = await timed(async () => {
    await Promise.all(
      Array.from({ length: PODS }, (_, i) =>
        lab.core.createNamespacedPod({ namespace: 'default', body: { metadata: { name: `bench-${i}` }, spec: { containers: [{ name: 'c', image: 'lab' }] } } }),
      ),
    );
    for (;;) {
      const pods = (await lab.core.listNamespacedPod({ namespace: 'default' })).items;
      if (pods.filter((p) => p.status?.phase === 'Running').length === PODS) break;
      await new Promise((r) => setTimeout(r, 100));
    }
  });
  return ms;
}

/** The same sandboxes without API server, scheduler or kubelet: netns + CNI ADD, spread over the nodes. */
async function podsDirect(lab: Lab): Promise<number> {
  const made: Array<{ ns: string; rt: CniRuntime; list: Awaited<ReturnType<typeof loadDefaultConfList>>['list']; id: string }> = [];
  const [, ms] = await timed(async () => {
    await Promise.all(
      Array.from({ length: PODS }, async (_, i) => {
        const node = lab.nodes[i % lab.nodes.length]!;
        const rt = new CniRuntime({ cniPath: [SYSTEM_CNI_BIN], cacheDir: join(node.dirs.cniCacheDir, 'bench'), pluginNetns: node.netns });
        const name = `${lab.plan.name}-direct${i}`;
        lab.ledger.netns(name);
        await createNetns(name);
        const { list } = await loadDefaultConfList(node.dirs.cniConfDir);
        const id = `direct${i}`;
        await rt.addNetworkList(list, { containerId: id, netns: netnsPath(name), ifname: 'eth0', args: k8sCniArgs({ namespace: 'bench', name, infraContainerId: id }) });
        made.push({ ns: name, rt, list, id });
      }),
    );
  });
  for (const m of made) {
    await m.rt.delNetworkList(m.list, { containerId: m.id, netns: netnsPath(m.ns), ifname: 'eth0' });
    await deleteNetns(m.ns);
  }
  return ms;
}

async function main(): Promise<void> {
  await reapStaleLedgers(ROOT);
  const { stdout: ovsVersion } = await run('ovs-vswitchd', ['--version']);
  console.log('Seine lab benchmark');
  console.log(`CPU: ${cpus()[0]?.model.trim()} x ${cpus().length}; ${ovsVersion.split('\n')[0]}; node ${process.version}`);

  const base = await baselineNodes();
  const [lab, upMs] = await timed(() => Lab.up({ name: `b${randomBytes(3).toString('hex')}`, nodes: NODES, stateRoot: ROOT }));
  const down = (): Promise<void> => lab.down();
  cleanups.add(down);
  try {
    console.log(`- lab up --nodes ${NODES}:                 ${secs(upMs)}  (baseline: ${NODES} netns + OVS by hand ${secs(base)}; ratio ${(upMs / base).toFixed(2)}x)`);
    const direct = await podsDirect(lab);
    const viaLab = await podsThroughLab(lab);
    const rate = (ms: number): string => `${(PODS / (ms / 1000)).toFixed(1)} pods/s`;
    console.log(`- ${PODS} pods to Running via scheduler+kubelet: ${secs(viaLab)}, ${rate(viaLab)}  (baseline: direct netns + CNI ADD ${secs(direct)}, ${rate(direct)}; ratio ${(direct / viaLab).toFixed(2)} of direct rate)`);
    const [, delMs] = await timed(async () => {
      await lab.core.deleteCollectionNamespacedPod({ namespace: 'default' });
      while ((await lab.core.listNamespacedPod({ namespace: 'default' })).items.length) await new Promise((r) => setTimeout(r, 100));
    });
    console.log(`- ${PODS} pods deleted (CNI DEL, netns removed):  ${secs(delMs)}, ${rate(delMs)}`);
  } finally {
    cleanups.delete(down);
    await lab.down();
  }
}

const onSignal = (): void => {
  void Promise.allSettled([...cleanups].map((c) => c())).finally(() => process.exit(130));
};
process.on('SIGINT', onSignal);
process.on('SIGTERM', onSignal);
await main();

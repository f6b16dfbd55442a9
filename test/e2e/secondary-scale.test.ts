// Secondary networks at scale on a 3-node lab: 120 pods (SECONDARY_SCALE_PODS=200 for more), each on a VLAN
// network (vlan100) and an overlay (blue), created at once and pinned round-robin to the nodes, so the three
// agents allocate from the same two IPPools concurrently. All must run; no address is handed out twice
// (checked against the pools' status and every pod's network-status); after deleting them all, every address
// is back in its pool and no port, veth, node IPAM entry or network namespace of theirs is left.
import { CustomObjectsApi, type V1Pod } from '@kubernetes/client-node';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { run } from '../../src/host/exec.js';
import { listNetns } from '../../src/host/netns.js';
import type { Lab } from '../../src/lab/lab.js';
import { NETWORK_STATUS_ANNOTATION, NETWORKS_ANNOTATION, type NetworkStatus } from '../../src/secondary/annotations/index.js';
import { eventually, kubectl, podExec, simplePod, startTestLab } from '../harness/lab.js';

const EXAMPLES = join(process.cwd(), 'manifests', 'examples', 'secondary-networks.yaml');
const PODS = Number(process.env.SECONDARY_SCALE_PODS ?? 120);
const NS = 'default';
const LABEL = 'seine.dev/secondary-scale';
/** Pods in flight towards the API server at once while creating. */
const CREATE_CONCURRENCY = 25;
/**
 * Bound on all pods Running, and on all deleted. Under a minute on a quiet two-core machine; a busy CI machine
 * takes several times that (each agent works through about 40 ADDs, 4 at a time; an ADD whose time runs out
 * in the queue is retried by the kubelet with backoff), so the bound is far beyond both.
 */
const SETTLE_MS = 600_000;

interface PoolAllocation {
  ip: string;
  owner: { podNamespace: string; podName: string; podUID?: string; containerID: string; interface: string; node?: string };
}
interface PoolObject {
  metadata: { name: string };
  status?: { allocations?: PoolAllocation[]; usage?: { used: number } };
}

interface NodeState {
  ports: string[];
  veths: string[];
  ipam: string[];
}

async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (x: T, i: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array<R>(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]!, i);
      }
    }),
  );
  return out;
}

function duplicates(xs: readonly string[]): string[] {
  const seen = new Set<string>();
  return xs.filter((x) => (seen.has(x) ? true : (seen.add(x), false)));
}

describe(`secondary networks at scale: ${PODS} pods × 2 networks on 3 nodes`, () => {
  let lab: Lab;
  let custom: CustomObjectsApi;
  let baseline: NodeState[];
  let baseNetns: string[];

  const pools = async (): Promise<Map<string, PoolObject>> =>
    new Map(((await custom.listClusterCustomObject({ group: 'crd.seine.dev', version: 'v1alpha1', plural: 'ippools' })) as { items: PoolObject[] }).items.map((p) => [p.metadata.name, p]));
  const listPods = async (): Promise<V1Pod[]> => (await lab.core.listNamespacedPod({ namespace: NS, labelSelector: LABEL })).items;

  const nodeState = async (i: number): Promise<NodeState> => {
    const n = lab.nodes[i]!;
    const ports: string[] = [];
    for (const br of (await n.ovs.vsctl(['list-br'])).split('\n').filter(Boolean)) {
      for (const p of (await n.ovs.vsctl(['list-ports', br])).split('\n').filter(Boolean)) ports.push(`${br}/${p}`);
    }
    // sysfs under nsenter --net is the root namespace's: ask iproute2.
    const { stdout } = await run('ip', ['-json', 'link', 'show', 'type', 'veth'], { netns: n.netns });
    const veths = (JSON.parse(stdout || '[]') as Array<{ ifname: string }>).map((l) => l.ifname);
    const ipamFile = join(n.dirs.stateDir, 'ipam-ipv4.json');
    const ipam = existsSync(ipamFile) ? (JSON.parse(readFileSync(ipamFile, 'utf8')) as { allocations: Array<{ ip: string; containerId: string }> }).allocations.map((a) => `${a.ip} ${a.containerId}`) : [];
    return { ports: ports.sort(), veths: veths.sort(), ipam: ipam.sort() };
  };

  beforeAll(async () => {
    lab = await startTestLab({ nodes: 3 });
    custom = lab.kubeConfig.makeApiClient(CustomObjectsApi);
    await kubectl(lab, ['apply', '-f', EXAMPLES]);
    // The agents have made br-int and its ports before the baseline is taken.
    for (const n of lab.nodes) {
      const log = join(n.dirs.logDir, 'seine-agent.log');
      await eventually(`agent of ${n.plan.name} ready`, async () => (existsSync(log) && readFileSync(log, 'utf8').includes('"agent ready"') ? true : undefined), 60_000);
    }
    baseNetns = listNetns().filter((n) => n.startsWith(`${lab.plan.name}-`)).sort();
  }, 180_000);
  afterAll(async () => {
    await lab?.down();
  }, 180_000);

  it('all Running, every address unique and recorded; all deleted, everything returned', async () => {
    // What the nodes hold before any pod.
    baseline = await Promise.all(lab.nodes.map((_, i) => nodeState(i)));
    const names = Array.from({ length: PODS }, (_, i) => `sc-${i}`);
    const nodeOf = (i: number): string => lab.plan.nodes[i % lab.nodes.length]!.name;
    const t0 = Date.now();
    await mapLimit(names, CREATE_CONCURRENCY, (name, i) =>
      lab.core.createNamespacedPod({
        namespace: NS,
        body: { ...simplePod(name, { node: nodeOf(i), annotations: { [NETWORKS_ANNOTATION]: 'vlan100,blue' } }), metadata: { name, namespace: NS, labels: { [LABEL]: 'yes' }, annotations: { [NETWORKS_ANNOTATION]: 'vlan100,blue' } } },
      }),
    );
    const created = Date.now() - t0;
    const running = await eventually(
      `${PODS} pods Running`,
      async () => {
        const pods = await listPods();
        return pods.filter((p) => p.status?.phase === 'Running' && p.status.podIP).length === PODS ? pods : undefined;
      },
      SETTLE_MS,
    ).catch(async (e: unknown) => {
      const pods = await listPods();
      const stuck = new Set(pods.filter((p) => p.status?.phase !== 'Running').map((p) => p.metadata!.uid!));
      // Why: the stuck pods' Events, grouped by reason and message (addresses and names masked).
      const why = new Map<string, number>();
      for (const ev of (await lab.core.listNamespacedEvent({ namespace: NS })).items) {
        if (!stuck.has(ev.involvedObject.uid ?? '')) continue;
        const key = `${ev.reason}: ${(ev.message ?? '').replace(/\d+(\.\d+){3}/g, 'IP').replace(/sc-\d+/g, 'sc-N').replace(/[0-9a-f]{8,}/g, 'ID').slice(0, 300)}`;
        why.set(key, (why.get(key) ?? 0) + (ev.count ?? 1));
      }
      const top = [...why].sort((a, b) => b[1] - a[1]).slice(0, 6).map(([k, n]) => `${n}× ${k}`);
      throw new Error(`${String(e)}; not Running: ${stuck.size}; their events:\n${top.join('\n')}`);
    });
    const allRunning = Date.now() - t0;
    console.log(`secondary scale: ${PODS} pods × 2 networks created in ${(created / 1000).toFixed(1)} s, all Running after ${(allRunning / 1000).toFixed(1)} s`);

    // network-status of every pod: eth0, vlan100 as net1, blue as net2, one address each.
    const byName = new Map(running.map((p) => [p.metadata!.name!, p]));
    const statusOf = new Map<string, NetworkStatus[]>();
    for (const p of running) {
      const st = JSON.parse(p.metadata?.annotations?.[NETWORK_STATUS_ANNOTATION] ?? '[]') as NetworkStatus[];
      expect(st.map((e) => [e.name, e.interface, e.ips?.length])).toEqual([
        ['seine', 'eth0', 1],
        ['default/vlan100', 'net1', 1],
        ['default/blue', 'net2', 1],
      ]);
      statusOf.set(p.metadata!.name!, st);
    }
    const vlanIps = [...statusOf.values()].map((s) => s[1]!.ips![0]!);
    const blueIps = [...statusOf.values()].map((s) => s[2]!.ips![0]!);
    expect(duplicates(vlanIps)).toEqual([]);
    expect(duplicates(blueIps)).toEqual([]);
    expect(duplicates(running.map((p) => p.status!.podIP!))).toEqual([]);
    for (const ip of vlanIps) expect(ip).toMatch(/^10\.100\.0\./);
    for (const ip of blueIps) expect(ip).toMatch(/^10\.50\.0\./);

    // The pools: exactly one allocation per pod and network, matching the pod, its node and its status. Their
    // usage is written just after the allocations: moments, but give a busy machine time.
    for (const pool of ['vlan100', 'blue']) await eventually(`${pool}'s usage`, async () => ((await pools()).get(pool)!.status?.usage?.used === PODS ? true : undefined), 30_000);
    const ps = await pools();
    for (const [pool, ifname, index] of [
      ['vlan100', 'net1', 1],
      ['blue', 'net2', 2],
    ] as const) {
      const allocs = ps.get(pool)!.status?.allocations ?? [];
      expect(allocs).toHaveLength(PODS);
      expect(duplicates(allocs.map((a) => a.ip))).toEqual([]);
      expect(duplicates(allocs.map((a) => a.owner.podName))).toEqual([]);
      const mismatched = allocs.filter((a) => {
        const pod = byName.get(a.owner.podName);
        return (
          !pod ||
          a.owner.podUID !== pod.metadata!.uid ||
          a.owner.interface !== ifname ||
          a.owner.node !== pod.spec!.nodeName ||
          statusOf.get(a.owner.podName)![index]!.ips![0] !== a.ip
        );
      });
      expect(mismatched).toEqual([]);
    }

    // A sample of pods: the interfaces really carry those addresses, and the networks work across nodes.
    const sample = running.filter((_, i) => i % 20 === 0);
    for (const p of sample) {
      const links = JSON.parse(await podExec(lab, p, ['ip', '-json', 'addr', 'show'])) as Array<{ ifname: string; addr_info: Array<{ family: string; local: string }> }>;
      const ipOf = (ifname: string): string | undefined => links.find((l) => l.ifname === ifname)?.addr_info.find((a) => a.family === 'inet')?.local;
      const st = statusOf.get(p.metadata!.name!)!;
      expect([ipOf('net1'), ipOf('net2')]).toEqual([st[1]!.ips![0], st[2]!.ips![0]]);
    }
    const [a, b] = [byName.get('sc-0')!, byName.get('sc-1')!]; // nodes 1 and 2
    for (const ip of [statusOf.get('sc-1')![1]!.ips![0]!, statusOf.get('sc-1')![2]!.ips![0]!]) {
      await eventually(`sc-0 reaches ${ip} on ${b.spec!.nodeName}`, async () => {
        await podExec(lab, a, ['ping', '-c', '1', '-W', '1', ip]);
        return true;
      }, 60_000);
    }

    // All deleted: every address back in the pools, nothing of the pods left on the nodes.
    const t1 = Date.now();
    await lab.core.deleteCollectionNamespacedPod({ namespace: NS, labelSelector: LABEL });
    await eventually('all pods deleted', async (saw) => {
      const left = await listPods();
      saw(`${left.length} pods left`);
      return left.length === 0 ? true : undefined;
    }, SETTLE_MS);
    const allDeleted = Date.now() - t1;
    console.log(`secondary scale: ${PODS} pods deleted in ${(allDeleted / 1000).toFixed(1)} s`);
    const after = await pools();
    expect(after.get('vlan100')!.status?.allocations ?? []).toEqual([]);
    expect(after.get('blue')!.status?.allocations ?? []).toEqual([]);
    const now = await Promise.all(lab.nodes.map((_, i) => nodeState(i)));
    for (const [i, s] of now.entries()) {
      const base = baseline[i]!;
      // The secondary bridges stay (with their uplink; tunnels follow the VNI's pods); no pod port may.
      const brInt = (st: NodeState): string[] => st.ports.filter((p) => p.startsWith('br-int/'));
      const podPorts = s.ports.filter((p) => p.split('/')[1]!.startsWith('sc'));
      expect({ node: i, brInt: brInt(s), podPorts, veths: s.veths, ipam: s.ipam }).toEqual({ node: i, brInt: brInt(base), podPorts: [], veths: base.veths, ipam: base.ipam });
    }
    expect(listNetns().filter((n) => n.startsWith(`${lab.plan.name}-`)).sort()).toEqual(baseNetns);
  }, 2 * SETTLE_MS + 120_000);
});

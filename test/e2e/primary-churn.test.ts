// Pod churn on one node through the API (the lab's kubelet runs the CNI as containerd would): 120 pods in
// 6 waves of 20 (PRIMARY_CHURN_WAVES=10 makes it 200), each wave's deletion overlapping the next wave's
// creation. While it runs no two Running pods ever share an address; afterwards nothing of any pod is left on
// the node: no address in IPAM, no OVS port, no veth, no flow, no network namespace.
import { Watch, type V1Pod } from '@kubernetes/client-node';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { run } from '../../src/host/exec.js';
import { listNetns, netnsExists } from '../../src/host/netns.js';
import { podNetnsName } from '../../src/lab/kubelet.js';
import type { Lab } from '../../src/lab/lab.js';
import type { LabNode } from '../../src/lab/node.js';
import { CookieOwner, decodeCookie } from '../../src/ovs/openflow/cookie.js';
import { eventually, simplePod, startTestLab, waitRunning } from '../harness/lab.js';

const WAVES = Number(process.env.PRIMARY_CHURN_WAVES ?? 6);
const PER_WAVE = 20;
const SAMPLE_MS = 200;
/**
 * A wave's 20 ADDs or DELs take a few seconds on a quiet machine and up to about 20 s on a loaded two-core CI
 * machine (the API server shares this process); the bound leaves room well beyond that.
 */
const WAVE_WAIT_MS = 180_000;
const NAMESPACE = 'default';
const LABEL = 'seine.dev/churn';

interface NodeSnapshot {
  ports: string[];
  veths: string[];
  allocations: Array<{ ip: string; containerId: string }>;
  flows: number;
  /** Flows whose cookie names a pod (kind 0, id = ofport). */
  podFlows: number;
  labNetns: string[];
  cniCache: string[];
}

async function snapshot(lab: Lab, node: LabNode): Promise<NodeSnapshot> {
  const ports = (await node.ovs.vsctl(['list-ports', 'br-int'])).split('\n').filter(Boolean).sort();
  // sysfs under nsenter --net is the root namespace's: ask iproute2.
  const { stdout: linkJson } = await run('ip', ['-json', 'link', 'show', 'type', 'veth'], { netns: node.netns });
  const veths = (JSON.parse(linkJson || '[]') as Array<{ ifname: string }>).map((l) => l.ifname).sort();
  const ipamFile = join(node.dirs.stateDir, 'ipam-ipv4.json');
  const allocations = existsSync(ipamFile) ? (JSON.parse(readFileSync(ipamFile, 'utf8')) as { allocations: Array<{ ip: string; containerId: string }> }).allocations : [];
  const { stdout: flowText } = await run('ovs-ofctl', ['-O', 'OpenFlow15', 'dump-flows', node.ovs.bridgeMgmt('br-int')]);
  // The pipeline's pod flows (other features number their cookies' objects their own way).
  const cookies = [...flowText.matchAll(/cookie=(0x[0-9a-f]+)/g)].map((m) => decodeCookie(BigInt(m[1]!)));
  const podFlows = cookies.filter((c) => c.owner === CookieOwner.primary && c.object >> 32n === 0n && (c.object & 0xffffffffn) !== 0n).length;
  const labNetns = listNetns().filter((n) => n.startsWith(`${lab.plan.name}-`)).sort();
  const resultsDir = join(node.dirs.cniCacheDir, 'results');
  const cniCache = existsSync(resultsDir) ? readdirSync(resultsDir).sort() : [];
  return { ports, veths, allocations, flows: cookies.length, podFlows, labNetns, cniCache };
}

interface PodView {
  name: string;
  ip?: string;
  running: boolean;
}

/**
 * Watches the Running pods' IPs and records any address two Running pods hold at once. Checked on every
 * watch event (every state of the API, in resourceVersion order), on the watch's view every 200 ms, and on
 * an independent list every ~200 ms (as often as the API server, which shares the test process, answers).
 */
class RunningIpMonitor {
  events = 0;
  samples = 0;
  lists = 0;
  watchRestarts = 0;
  maxRunning = 0;
  readonly duplicates = new Set<string>();
  /** Uid -> IP of every pod seen Running. */
  readonly everRunning = new Map<string, string>();
  private readonly view = new Map<string, PodView>();
  private stopped = false;
  private abort?: AbortController;
  private timer?: NodeJS.Timeout;
  private lister?: Promise<void>;

  constructor(private readonly lab: Lab) {}

  private check(pods: Iterable<PodView>, source: string): void {
    const holders = new Map<string, string[]>();
    let running = 0;
    for (const p of pods) {
      if (!p.running || !p.ip) continue;
      running++;
      holders.set(p.ip, [...(holders.get(p.ip) ?? []), p.name]);
    }
    this.maxRunning = Math.max(this.maxRunning, running);
    for (const [ip, names] of holders) if (names.length > 1) this.duplicates.add(`${source}: ${ip} held by ${names.sort().join(', ')}`);
  }

  private static viewOf(p: V1Pod): PodView {
    return { name: p.metadata!.name!, ip: p.status?.podIP, running: p.status?.phase === 'Running' };
  }

  private async startWatch(): Promise<void> {
    this.view.clear();
    this.abort = await new Watch(this.lab.kubeConfig).watch(
      `/api/v1/namespaces/${NAMESPACE}/pods`,
      { labelSelector: LABEL },
      (type: string, obj: V1Pod) => {
        const uid = obj.metadata?.uid;
        if (!uid) return;
        if (type === 'DELETED') this.view.delete(uid);
        else if (type === 'ADDED' || type === 'MODIFIED') this.view.set(uid, RunningIpMonitor.viewOf(obj));
        else return;
        this.events++;
        const v = this.view.get(uid);
        if (v?.running && v.ip) this.everRunning.set(uid, v.ip);
        this.check(this.view.values(), 'watch');
      },
      () => {
        if (this.stopped) return;
        // The stream ended: a new watch starts with the current objects.
        this.watchRestarts++;
        void this.startWatch().catch(() => undefined);
      },
    );
  }

  async start(): Promise<void> {
    await this.startWatch();
    this.timer = setInterval(() => {
      this.samples++;
      this.check(this.view.values(), 'sample');
    }, SAMPLE_MS);
    this.lister = (async () => {
      while (!this.stopped) {
        const t0 = Date.now();
        try {
          const pods = (await this.lab.core.listNamespacedPod({ namespace: NAMESPACE, labelSelector: LABEL })).items;
          this.lists++;
          this.check(pods.map(RunningIpMonitor.viewOf), 'list');
        } catch {
          /* a failed list is no sample */
        }
        await new Promise((r) => setTimeout(r, Math.max(0, SAMPLE_MS - (Date.now() - t0))));
      }
    })();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.abort?.abort();
    await this.lister;
  }
}

describe(`primary network under pod churn: ${WAVES * 20} pods on one node, 20 at a time`, () => {
  let lab: Lab;
  let node: LabNode;
  let before: NodeSnapshot;

  beforeAll(async () => {
    lab = await startTestLab({ nodes: 2 });
    node = lab.nodes[0]!;
    // One pod through its whole life: the agent is ready and every peer flow is in before the baseline.
    await lab.core.createNamespacedPod({ namespace: NAMESPACE, body: simplePod('warmup', { node: node.plan.name }) });
    await waitRunning(lab, 'warmup', NAMESPACE, 60_000);
    await lab.core.deleteNamespacedPod({ name: 'warmup', namespace: NAMESPACE });
    await eventually('warmup pod gone', async () => ((await lab.core.listNamespacedPod({ namespace: NAMESPACE })).items.length === 0 ? true : undefined), 60_000);
    before = await snapshot(lab, node);
  }, 180_000);

  afterAll(async () => {
    await lab?.down();
  }, 180_000);

  it('never gives two Running pods one address, and leaves nothing behind', async () => {
    expect(before.allocations).toEqual([]);
    expect(before.podFlows).toBe(0);
    const monitor = new RunningIpMonitor(lab);
    await monitor.start();
    const uids: string[] = [];
    const started = Date.now();
    const timings: string[] = [];
    try {
      let previous: string[] = [];
      for (let w = 0; w < WAVES; w++) {
        const t0 = Date.now();
        const names = Array.from({ length: PER_WAVE }, (_, i) => `churn-w${w}-${i}`);
        // At most 20 pods are being created while the previous 20 are being deleted.
        const created = await Promise.all(
          names.map((name) => {
            const pod: V1Pod = simplePod(name, { node: node.plan.name });
            pod.metadata!.labels = { [LABEL]: String(w) };
            return lab.core.createNamespacedPod({ namespace: NAMESPACE, body: pod });
          }),
        );
        uids.push(...created.map((p) => p.metadata!.uid!));
        await eventually(
          `wave ${w}: ${PER_WAVE} pods Running`,
          async (saw) => {
            const pods = (await lab.core.listNamespacedPod({ namespace: NAMESPACE, labelSelector: `${LABEL}=${w}` })).items;
            const pending = pods.filter((p) => !(p.status?.phase === 'Running' && p.status.podIP));
            saw(`${pods.length - pending.length} Running; not yet: ${pending.map((p) => `${p.metadata!.name} (${p.status?.phase ?? 'no status'})`).join(', ')}`);
            return pods.length === PER_WAVE && !pending.length ? true : undefined;
          },
          WAVE_WAIT_MS,
        );
        const t1 = Date.now();
        // The wave before must be gone by now (its DELs ran while this wave was set up).
        await waitGone(previous, `wave ${w - 1}`);
        await Promise.all(names.map((name) => lab.core.deleteNamespacedPod({ name, namespace: NAMESPACE })));
        previous = names;
        timings.push(`wave ${w}: running in ${t1 - t0} ms`);
      }
      await waitGone(previous, `wave ${WAVES - 1}`);
    } finally {
      await monitor.stop();
    }
    const m = monitor;
    console.log(
      `churn: ${WAVES * PER_WAVE} pods in ${Date.now() - started} ms; ${m.events} watch events, ${m.samples} samples, ${m.lists} lists, ` +
        `${m.watchRestarts} watch restarts; at most ${m.maxRunning} Running at once; ${new Set(m.everRunning.values()).size} distinct IPs\n${timings.join('\n')}`,
    );

    expect([...m.duplicates]).toEqual([]);
    // Every pod was seen Running, each with its own address while it ran.
    expect(uids.filter((u) => !m.everRunning.has(u))).toEqual([]);
    // The monitor ran on all three sources (how often depends on the machine's speed, so no count is asserted).
    expect(m.samples).toBeGreaterThan(0);
    expect(m.lists).toBeGreaterThan(0);
    expect(m.maxRunning).toBeGreaterThanOrEqual(PER_WAVE);

    // No ADD or DEL failed on the way (the kubelet would have retried it and recorded an event).
    const failures = (await lab.core.listNamespacedEvent({ namespace: NAMESPACE })).items.filter(
      (e) => e.involvedObject.name?.startsWith('churn-') && (e.reason === 'FailedCreatePodSandBox' || e.reason === 'FailedKillPod'),
    );
    expect(failures.map((e) => `${e.involvedObject.name}: ${e.reason}: ${e.message}`)).toEqual([]);

    // Every DEL has run before its pod left the API; the agent's state must be back to the baseline.
    const after = await snapshot(lab, node);
    expect(after.allocations).toEqual([]);
    expect(after.ports).toEqual(before.ports);
    expect(after.veths).toEqual(before.veths);
    expect(after.podFlows).toBe(0);
    expect(after.flows).toBe(before.flows);
    expect(after.labNetns).toEqual(before.labNetns);
    expect(uids.map((u) => podNetnsName(lab.plan.name, u)).filter((n) => netnsExists(n))).toEqual([]);
    expect(after.cniCache).toEqual(before.cniCache);
  }, 900_000);

  async function waitGone(names: readonly string[], what: string): Promise<void> {
    if (!names.length) return;
    const wanted = new Set(names);
    await eventually(
      `${what} deleted`,
      async (saw) => {
        const pods = (await lab.core.listNamespacedPod({ namespace: NAMESPACE, labelSelector: LABEL })).items;
        const left = pods.filter((p) => wanted.has(p.metadata!.name!));
        // The kubelet's side too: whether it still holds the sandbox (and in which state) or already let it go.
        const sandboxes = new Map(lab.status().nodes.flatMap((n) => n.pods.map((s) => [s.name, s.state] as const)));
        saw(`${left.length} left: ${left.map((p) => `${p.metadata!.name} (${p.status?.phase ?? 'no status'}${p.metadata!.deletionTimestamp ? ', terminating' : ''}; kubelet: ${sandboxes.get(p.metadata!.name!) ?? 'no sandbox'})`).join(', ')}`);
        return left.length ? undefined : true;
      },
      WAVE_WAIT_MS,
    );
  }
});

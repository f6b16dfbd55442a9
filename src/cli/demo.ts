import { CoreV1Api, type V1Pod } from '@kubernetes/client-node';
import { loadKubeConfig } from '../k8s/kubeconfig.js';
import { run } from '../host/exec.js';
import { netnsPath } from '../host/netns.js';
import { podNetnsName } from '../lab/kubelet.js';
import type { LabStatus } from '../lab/lab.js';
import { renderTable } from './table.js';

export interface DemoContext {
  status: LabStatus;
  say: (line: string) => void;
}

const NAMESPACE = 'seine-demo';

async function waitRunning(core: CoreV1Api, names: string[], timeoutMs = 60_000): Promise<V1Pod[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const pods = (await core.listNamespacedPod({ namespace: NAMESPACE })).items;
    const ready = names.map((n) => pods.find((p) => p.metadata?.name === n && p.status?.phase === 'Running' && p.status.podIP));
    if (ready.every((p) => p)) return ready as V1Pod[];
    if (Date.now() > deadline) throw new Error(`pods not Running after ${timeoutMs / 1000}s: ${names.filter((_, i) => !ready[i]).join(', ')}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/**
 * The lab demo: one iperf3 server pod per node, all-pairs ping between them, TCP throughput across nodes, and
 * traffic from a pod to the external host. Prints what it sees; throws if any traffic fails.
 */
export async function runDemo({ status, say }: DemoContext): Promise<void> {
  const kc = loadKubeConfig(status.kubeconfig);
  const core = kc.makeApiClient(CoreV1Api);
  await core.createNamespace({ body: { metadata: { name: NAMESPACE } } });
  const names = status.nodes.map((_, i) => `pod${i + 1}`);
  for (const [i, node] of status.nodes.entries()) {
    await core.createNamespacedPod({
      namespace: NAMESPACE,
      body: {
        metadata: { name: names[i], labels: { app: 'seine-demo' } },
        spec: { nodeName: node.name, containers: [{ name: 'iperf3', image: 'lab', command: ['iperf3', '-s'] }] },
      },
    });
  }
  say(`created ${names.length} pods (one per node, each running iperf3 -s)`);
  const pods = await waitRunning(core, names);
  say(renderTable(['pod', 'node', 'ip', 'phase'], pods.map((p) => [p.metadata!.name, p.spec!.nodeName, p.status!.podIP, p.status!.phase])));

  const inPod = (p: V1Pod, argv: string[], timeoutMs = 30_000): Promise<{ stdout: string }> =>
    run(argv[0]!, argv.slice(1), { netns: netnsPath(podNetnsName(status.name, p.metadata!.uid!)), timeoutMs });

  say('\nping between every pair of pods (3 packets each):');
  const rows: string[][] = [];
  let failures = 0;
  for (const src of pods) {
    const row = [src.metadata!.name!];
    for (const dst of pods) {
      if (src === dst) {
        row.push('-');
        continue;
      }
      try {
        const { stdout } = await inPod(src, ['ping', '-c', '3', '-i', '0.2', '-W', '2', dst.status!.podIP!]);
        row.push(`ok ${/= [\d.]+\/([\d.]+)/.exec(stdout)?.[1] ?? '?'} ms`);
      } catch {
        row.push('FAILED');
        failures++;
      }
    }
    rows.push(row);
  }
  say(renderTable(['from \\ to', ...names], rows));

  if (pods.length > 1) {
    const [a, b] = pods as [V1Pod, V1Pod];
    const { stdout } = await inPod(a, ['iperf3', '-c', b.status!.podIP!, '-t', '3', '-J']);
    const bps = (JSON.parse(stdout) as { end: { sum_received: { bits_per_second: number } } }).end.sum_received.bits_per_second;
    say(`\nTCP ${a.metadata!.name} (${a.spec!.nodeName}) -> ${b.metadata!.name} (${b.spec!.nodeName}): ${(bps / 1e9).toFixed(2)} Gbit/s (iperf3, 3 s)`);
  }

  try {
    await inPod(pods[0]!, ['ping', '-c', '2', '-W', '2', status.externalIp]);
    say(`\n${pods[0]!.metadata!.name} reaches the external host ${status.externalIp}`);
  } catch {
    say(`\n${pods[0]!.metadata!.name} cannot reach the external host ${status.externalIp}`);
    failures++;
  }
  if (failures) throw new Error(`${failures} traffic checks failed`);
}

import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run } from '../../src/host/exec.js';
import { listNetns } from '../../src/host/netns.js';
import type { Lab } from '../../src/lab/lab.js';
import { eventually, kubectl, podExec, podNetns, simplePod, startTestLab, waitRunning } from '../harness/lab.js';

describe('lab: a 2-node cluster with the reference bridge plugin', () => {
  let lab: Lab;
  beforeAll(async () => {
    lab = await startTestLab({ nodes: 2 });
  }, 120_000);
  afterAll(async () => {
    await lab?.down();
  }, 120_000);

  it('registers Ready nodes with pod CIDRs, visible to kubectl', async () => {
    await eventually('nodes Ready', async () => {
      const out = await kubectl(lab, ['get', 'nodes', '-o', 'wide']);
      return (out.match(/\bReady\b/g) ?? []).length === 2 ? out : undefined;
    });
    const json = JSON.parse(await kubectl(lab, ['get', 'nodes', '-o', 'json']));
    expect(json.items.map((n: { spec: { podCIDR: string } }) => n.spec.podCIDR)).toEqual(['10.244.0.0/24', '10.244.1.0/24']);
  });

  it('runs pods with IPs on each node and carries traffic between them', async () => {
    const [n1, n2] = lab.plan.nodes;
    await lab.core.createNamespacedPod({ namespace: 'default', body: simplePod('a', { node: n1!.name }) });
    await lab.core.createNamespacedPod({ namespace: 'default', body: simplePod('b', { node: n2!.name }) });
    await lab.core.createNamespacedPod({ namespace: 'default', body: simplePod('c') });
    const a = await waitRunning(lab, 'a');
    const b = await waitRunning(lab, 'b');
    const c = await waitRunning(lab, 'c');
    expect(a.status!.podIP).toMatch(/^10\.244\.0\./);
    expect(b.status!.podIP).toMatch(/^10\.244\.1\./);
    expect(c.spec!.nodeName).toBeTruthy();
    await podExec(lab, a, ['ping', '-c', '2', '-W', '2', b.status!.podIP!]);
    await podExec(lab, b, ['ping', '-c', '2', '-W', '2', c.status!.podIP!]);
    const wide = await kubectl(lab, ['get', 'pods', '-o', 'wide']);
    expect(wide).toContain(a.status!.podIP!);
  });

  it('deleting a pod removes its namespace, processes and the object', async () => {
    const a = await lab.core.readNamespacedPod({ name: 'a', namespace: 'default' });
    const ns = podNetns(lab, a);
    expect(existsSync(ns)).toBe(true);
    await kubectl(lab, ['delete', 'pod', 'a', '--wait=true', '--timeout=30s']);
    expect(existsSync(ns)).toBe(false);
    await expect(lab.core.readNamespacedPod({ name: 'a', namespace: 'default' })).rejects.toThrow();
  });

  it('deleting a pod ends every process in it, also what its command put in the background', async () => {
    await lab.core.createNamespacedPod({ namespace: 'default', body: simplePod('bg', { command: ['sh', '-c', 'sleep 3001 & exec sleep 3002'] }) });
    const bg = await waitRunning(lab, 'bg');
    const netnsName = podNetns(lab, bg).split('/').pop()!;
    const pids = await eventually('both sleeps in the pod', async () => {
      const found = (await run('ip', ['netns', 'pids', netnsName])).stdout.split('\n').filter(Boolean).map(Number);
      return found.length >= 2 ? found : undefined;
    });
    await kubectl(lab, ['delete', 'pod', 'bg', '--wait=true', '--timeout=60s']);
    expect(pids.filter((pid) => existsSync(`/proc/${pid}`) && !readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z '))).toEqual([]);
  });

  it('a failing CNI ADD records FailedCreatePodSandBox, leaves no namespace, and is retried until it works', async () => {
    const node = lab.nodes[0]!;
    // Lexically first, so the runtime picks it, as containerd would.
    const broken = join(node.dirs.cniConfDir, '00-broken.conflist');
    writeFileSync(broken, JSON.stringify({ cniVersion: '1.0.0', name: 'broken', plugins: [{ type: 'no-such-plugin' }] }));
    try {
      await lab.core.createNamespacedPod({ namespace: 'default', body: simplePod('retry', { node: node.plan.name }) });
      const event = await eventually('FailedCreatePodSandBox event', async () => {
        const evs = await lab.core.listNamespacedEvent({ namespace: 'default', fieldSelector: 'involvedObject.name=retry' });
        return evs.items.find((e) => e.reason === 'FailedCreatePodSandBox');
      });
      expect(event.message).toMatch(/no-such-plugin/);
      const pod = await lab.core.readNamespacedPod({ name: 'retry', namespace: 'default' });
      expect(pod.status?.phase ?? 'Pending').toBe('Pending');
      expect(existsSync(podNetns(lab, pod))).toBe(false);
    } finally {
      rmSync(broken);
    }
    const running = await waitRunning(lab, 'retry', 'default', 45_000);
    expect(running.status!.podIP).toMatch(/^10\.244\.0\./);
  }, 90_000);

  it('down leaves nothing behind', async () => {
    const prefix = `${lab.plan.name}-`;
    await lab.down();
    expect(listNetns().filter((n) => n.startsWith(prefix))).toEqual([]);
    expect(existsSync(lab.stateDir)).toBe(false);
  });
});

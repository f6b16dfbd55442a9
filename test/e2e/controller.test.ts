import type { Lab } from '../../src/lab/lab.js';
import { eventually, podExec, simplePod, startTestLab, waitRunning } from '../harness/lab.js';

describe('Seine controller in the lab: node pod CIDRs for a cluster that does not allocate them', () => {
  let lab: Lab;
  beforeAll(async () => {
    lab = await startTestLab({ nodes: 2, podCidrs: 'seine' });
  }, 120_000);
  afterAll(async () => {
    await lab?.down();
  }, 120_000);

  it('gives every node a distinct podCIDR from the cluster CIDR, holding the leader lease', async () => {
    const cidrs = await eventually('podCIDRs assigned', async () => {
      const nodes = (await lab.core.listNode()).items;
      const c = nodes.map((n) => n.spec?.podCIDR);
      return c.every(Boolean) ? c : undefined;
    });
    expect(new Set(cidrs).size).toBe(2);
    for (const c of cidrs) expect(c).toMatch(/^10\.244\.\d+\.0\/24$/);
    const { CoordinationV1Api } = await import('@kubernetes/client-node');
    const lease = await lab.kubeConfig.makeApiClient(CoordinationV1Api).readNamespacedLease({ name: 'seine-controller', namespace: 'kube-system' });
    expect(lease.spec?.holderIdentity).toBeTruthy();
  });

  it('agents start on the allocated CIDRs and pods get addresses from them', async () => {
    const [n1, n2] = lab.plan.nodes;
    await lab.core.createNamespacedPod({ namespace: 'default', body: simplePod('a', { node: n1!.name }) });
    await lab.core.createNamespacedPod({ namespace: 'default', body: simplePod('b', { node: n2!.name }) });
    const a = await waitRunning(lab, 'a', 'default', 60_000);
    const b = await waitRunning(lab, 'b', 'default', 60_000);
    const node1 = await lab.core.readNode({ name: n1!.name });
    expect(a.status!.podIP!.startsWith(node1.spec!.podCIDR!.replace(/0\/24$/, ''))).toBe(true);
    await podExec(lab, a, ['ping', '-c', '3', '-i', '0.2', '-W', '2', b.status!.podIP!]);
  }, 90_000);
});

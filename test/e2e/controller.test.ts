import { NetworkingV1Api } from '@kubernetes/client-node';
import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Lab } from '../../src/lab/lab.js';
import { ShareClient } from '../../src/policy/agent/share-client.js';
import { ShareStore } from '../../src/policy/agent/share-store.js';
import { bearerTokenSource, controllerEndpointSource } from '../../src/policy/channel/discovery.js';
import { eventually, podExec, simplePod, startTestLab, waitRunning } from '../harness/lab.js';

describe('Seine controller in the lab: node pod CIDRs for a cluster that does not allocate them, the policy channel', () => {
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

  it('publishes the policy channel; a client that pins its certificate and sends the lab token gets its node\'s share', async () => {
    const kc = lab.kubeConfig;
    const endpoint = await eventually('the controller\'s endpoint ConfigMap', async (saw) => {
      const e = await controllerEndpointSource(kc)();
      saw(e ?? 'no ConfigMap kube-system/seine-controller-endpoint yet');
      return e;
    }, 60_000);
    expect(endpoint.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    // Without a token the controller refuses.
    const anonymous = await new Promise<number | string>((resolve) => {
      const req = request(`${endpoint.url}/v1/shares/${lab.plan.nodes[0]!.name}`, { ca: endpoint.ca, agent: false }, (res) => (res.destroy(), resolve(res.statusCode ?? 0)));
      req.on('error', (e) => resolve(e.message));
      req.end();
    });
    expect(anonymous).toBe(401);

    // A policy on pod a (node 1), allowing what it allows anyway: the node's share carries it.
    await kc.makeApiClient(NetworkingV1Api).createNamespacedNetworkPolicy({
      namespace: 'default',
      body: { metadata: { name: 'channel-probe' }, spec: { podSelector: {}, ingress: [{ _from: [{ podSelector: {} }] }] } },
    });
    const dir = mkdtempSync(join(tmpdir(), 'seine-e2e-channel-'));
    const store = new ShareStore(join(dir, 'share.json'));
    const client = new ShareClient({ endpoint: controllerEndpointSource(kc), token: bearerTokenSource(kc), node: lab.plan.nodes[0]!.name, store, onShare: () => undefined });
    try {
      client.start();
      await eventually('node 1\'s share with the policy', async (saw) => (saw({ snapshots: client.snapshots, size: store.size }), store.size.policies >= 1 ? true : undefined), 60_000);
    } finally {
      client.stop();
      rmSync(dir, { recursive: true, force: true });
      await kc.makeApiClient(NetworkingV1Api).deleteNamespacedNetworkPolicy({ name: 'channel-probe', namespace: 'default' });
    }
  }, 150_000);
});

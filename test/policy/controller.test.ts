// The policy controller against the lab's API server (no nodes, no OVS): objects created through the API reach
// the computation, and each node's share follows pods, labels and policies; the ClusterNetworkPolicy CRD may be
// installed after the controller started.
import { CoreV1Api, CustomObjectsApi, KubeConfig, NetworkingV1Api } from '@kubernetes/client-node';
import { describe, expect, it } from '@jest/globals';
import { join, resolve } from 'node:path';
import { MERGE_PATCH } from '../../src/k8s/api.js';
import { PolicyController } from '../../src/policy/controller/controller.js';
import type { ShareMessage } from '../../src/policy/controller/shares.js';
import { Registry } from 'prom-client';
import type { ClusterNetworkPolicy } from '../../src/policy/api/clusternetworkpolicy.js';
import { eventually } from '../../src/util/wait.js';
import { kubectl, startServer, type TestServer } from '../lab/apiserver/helpers.js';

describe('policy controller', () => {
  let srv: TestServer;
  let controller: PolicyController;
  let core: CoreV1Api;
  let net: NetworkingV1Api;
  const changes: string[] = [];
  const registry = new Registry();

  beforeAll(async () => {
    srv = await startServer();
    const kc = new KubeConfig();
    kc.loadFromFile(srv.kubeconfig);
    core = kc.makeApiClient(CoreV1Api);
    net = kc.makeApiClient(NetworkingV1Api);
    for (const ns of ['x', 'y']) await core.createNamespace({ body: { metadata: { name: ns, labels: { team: ns } } } });
    controller = new PolicyController({ kubeConfig: kc, registry });
    controller.onChange((nodes) => changes.push(...nodes));
    await controller.start();
    (globalThis as { customApi?: CustomObjectsApi }).customApi = kc.makeApiClient(CustomObjectsApi);
  }, 60_000);

  afterAll(async () => {
    await controller?.stop();
    await srv?.stop();
  });

  async function pod(ns: string, name: string, node: string, ip: string, labels: Record<string, string>): Promise<void> {
    await core.createNamespacedPod({ namespace: ns, body: { metadata: { name, labels }, spec: { nodeName: node, containers: [{ name: 'main', image: 'lab', ports: [{ name: 'web', containerPort: 8080 }] }] } } });
    await core.patchNamespacedPodStatus({ name, namespace: ns, body: { status: { podIP: ip, phase: 'Running' } } }, MERGE_PATCH);
  }

  /** What a node would be sent on connecting, as "policy <name> on <pods>" and "group <ips>". */
  const share = (node: string): string[] =>
    (JSON.parse(controller.shares.snapshot(node).json) as ShareMessage[]).flatMap((m) =>
      m.kind === 'pods' ? [] :
      m.kind === 'policy' ? `policy ${m.value!.policy.ref.name} on ${m.value!.pods.map((p) => `${p.uid.length ? 'pod' : ''}:${p.namedPorts.map((n) => n.port).join(',')}`).join(' ')}` : `group ${m.value!.members.map((x) => x.ip).join(',')}`,
    );

  it('gives each node the policies of its pods and the peers they name, following changes', async () => {
    await pod('x', 'web', 'n1', '10.0.0.1', { app: 'web' });
    await pod('y', 'client', 'n2', '10.0.1.1', { app: 'client' });
    await net.createNamespacedNetworkPolicy({
      namespace: 'x',
      body: { metadata: { name: 'web' }, spec: { podSelector: { matchLabels: { app: 'web' } }, ingress: [{ _from: [{ namespaceSelector: { matchLabels: { team: 'y' } } }], ports: [{ port: 'web' }] }] } },
    });
    await eventually('n1 gets the policy and the group of y', async (saw) => {
      const s = share('n1');
      saw({ s, size: controller.computation.size });
      return s.join(' | ') === 'group 10.0.1.1 | policy web on pod:8080' ? true : undefined;
    }, 10_000, 50);
    expect(share('n2')).toEqual([]);
    expect(changes).toContain('n1');
    // y loses its label: the group empties; a pod of the other team joins it once labelled.
    await core.patchNamespace({ name: 'y', body: { metadata: { labels: { team: 'z' } } } }, MERGE_PATCH);
    await eventually('the group of y empty', async () => (share('n1').join(' | ') === 'group  | policy web on pod:8080' ? true : undefined), 10_000, 50);
    await core.patchNamespace({ name: 'y', body: { metadata: { labels: { team: 'y' } } } }, MERGE_PATCH);
    await eventually('the group of y back', async () => (share('n1')[0] === 'group 10.0.1.1' ? true : undefined), 10_000, 50);
    // The policy goes: n1's share is empty.
    await net.deleteNamespacedNetworkPolicy({ name: 'web', namespace: 'x' });
    await eventually('n1 without policies', async () => (share('n1').length === 0 ? true : undefined), 10_000, 50);
  });

  it('takes ClusterNetworkPolicies once their CRD is installed', async () => {
    const r = await kubectl(srv, ['apply', '-f', join(resolve('crds'), 'clusternetworkpolicy.yaml')]);
    expect(r.code).toBe(0);
    const custom = (globalThis as { customApi?: CustomObjectsApi }).customApi!;
    await eventually('the CRD served', async () =>
      custom.createClusterCustomObject({
        group: 'policy.networking.k8s.io',
        version: 'v1alpha2',
        plural: 'clusternetworkpolicies',
        body: { apiVersion: 'policy.networking.k8s.io/v1alpha2', kind: 'ClusterNetworkPolicy', metadata: { name: 'admin' }, spec: { tier: 'Admin', priority: 5, subject: { namespaces: {} }, ingress: [{ action: 'Deny', from: [{ namespaces: { matchLabels: { team: 'y' } } }] }] } },
      }).then(() => true, () => undefined), 10_000, 200);
    // It applies to every pod: both nodes get it; both need the group of y's pods.
    await eventually('both nodes get the ClusterNetworkPolicy', async () => (share('n1').includes('policy admin on pod:8080') && share('n2').includes('policy admin on pod:8080') ? true : undefined), 15_000, 100);
  });

  it('keeps a Realized condition on each ClusterNetworkPolicy from the agents\' reports, and realization metrics', async () => {
    const custom = (globalThis as { customApi?: CustomObjectsApi }).customApi!;
    const ref = { group: 'policy.networking.k8s.io', version: 'v1alpha2', plural: 'clusternetworkpolicies', name: 'admin' };
    const read = async (): Promise<ClusterNetworkPolicy> => (await custom.getClusterCustomObject(ref)) as ClusterNetworkPolicy;
    const condition = async (message: string, status: string) => {
      const cnp = await read();
      const c = cnp.status?.conditions?.find((x) => x.type === 'Realized');
      return c?.message === message && c.status === status && c.observedGeneration === cnp.metadata.generation ? cnp : undefined;
    };
    const cnp = await eventually('pending on both nodes', () => condition('realized on 0 of 2 nodes; waiting for n1, n2', 'False'), 15_000, 100);
    const { uid, generation } = cnp.metadata;
    controller.reportRealized('n1', { [uid!]: generation! });
    await eventually('realized on n1', () => condition('realized on 1 of 2 nodes; waiting for n2', 'False'), 15_000, 100);
    controller.reportRealized('n2', { [uid!]: generation! });
    await eventually('realized on both', () => condition('realized on 2 of 2 nodes', 'True'), 15_000, 100);
    const metrics = await registry.metrics();
    expect(metrics).toContain('seine_policy_span_nodes{kind="ClusterNetworkPolicy",namespace="",policy="admin"} 2');
    expect(metrics).toContain('seine_policy_realized_nodes{kind="ClusterNetworkPolicy",namespace="",policy="admin"} 2');
    // A new spec is a new generation: pending again until the agents say they have it.
    await custom.patchClusterCustomObject({ ...ref, body: { spec: { priority: 6 } } }, MERGE_PATCH);
    await eventually('pending again after a spec change', () => condition('realized on 0 of 2 nodes; waiting for n1, n2', 'False'), 15_000, 100);
  });
});

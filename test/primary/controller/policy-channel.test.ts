// `seine controller` with the policy channel: only the leader serves it and publishes its endpoint; when the
// leader goes, the next one publishes a new certificate and an agent's client follows it.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LAB_ADMIN_USER } from '../../../src/lab/apiserver/tokenreview.js';
import { ShareClient } from '../../../src/policy/agent/share-client.js';
import { ShareStore } from '../../../src/policy/agent/share-store.js';
import { bearerTokenSource, controllerEndpointSource, type ControllerEndpoint } from '../../../src/policy/channel/discovery.js';
import { Controller } from '../../../src/primary/controller/controller.js';
import { eventually, startApi, testConfig, type TestApi } from './helpers.js';

describe('seine controller: the policy channel follows the lease', () => {
  let t: TestApi;
  const controllers: Controller[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'seine-controller-channel-'));
  beforeAll(async () => {
    t = await startApi();
  });
  afterAll(async () => {
    for (const c of controllers.splice(0)) await c.stop();
    await t?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('the leader publishes the channel and serves the share; the next leader replaces the certificate and the client follows', async () => {
    const policy = { bindAddress: '127.0.0.1', port: 0, advertiseAddress: '127.0.0.1', agentUsers: [LAB_ADMIN_USER] };
    for (const identity of ['replica-a', 'replica-b']) {
      const c = new Controller({ config: testConfig({ policy }), kubeConfig: t.kubeConfig(), identity });
      controllers.push(c);
      await c.start();
    }
    const [a, b] = controllers as [Controller, Controller];
    const leader = await eventually(() => (a.isLeader ? a : b.isLeader ? b : undefined), 30_000, 'a leader');
    const standby = leader === a ? b : a;
    expect(standby.policyController).toBeUndefined();
    const kc = t.kubeConfig();
    const endpoint = controllerEndpointSource(kc);
    const first = await eventually(() => endpoint(), 30_000, 'the leader\'s endpoint published');

    // A pod on n1 that a policy selects: n1's share has it.
    t.api.resource('v1', 'namespaces').create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'x' } });
    const pod = t.api.resource('v1', 'pods').create({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'web', namespace: 'x', labels: { app: 'web' } }, spec: { nodeName: 'n1', containers: [{ name: 'main', image: 'lab' }] } });
    t.api.resource('v1', 'pods').patch('web', { status: { podIP: '10.244.0.5', phase: 'Running' } }, { namespace: 'x', subresource: 'status' });
    t.api.resource('networking.k8s.io/v1', 'networkpolicies').create({ apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name: 'web', namespace: 'x' }, spec: { podSelector: { matchLabels: { app: 'web' } } } });
    expect(pod.metadata.uid).toBeTruthy();

    const store = new ShareStore(join(dir, 'share.json'));
    const client = new ShareClient({ endpoint, token: bearerTokenSource(kc), node: 'n1', store, onShare: () => undefined, silenceMs: 5000 });
    try {
      client.start();
      await eventually(() => (store.size.policies === 1 ? true : undefined), 30_000, 'n1\'s share from the first leader');

      await leader.stop();
      controllers.splice(controllers.indexOf(leader), 1);
      await eventually(() => standby.isLeader, 30_000, 'failover');
      const second = await eventually(async (): Promise<ControllerEndpoint | undefined> => {
        const e = await endpoint();
        return e && e.ca !== first.ca ? e : undefined;
      }, 30_000, 'the new leader\'s certificate published');
      expect(second.url).not.toBe(first.url);
      await eventually(() => (client.snapshots >= 2 && store.size.policies === 1 ? true : undefined), 30_000, 'a snapshot from the new leader');
    } finally {
      client.stop();
    }
  }, 120_000);
});

import { execFile } from 'node:child_process';
import { CoreV1Api, type CoreV1Event } from '@kubernetes/client-node';
import type { Lab } from '../../src/lab/lab.js';
import { MERGE_PATCH } from '../../src/k8s/api.js';
import type { ServiceChain } from '../../src/chaining/api/types.js';
import { nodeChainReportPatch, type NodeChainReport } from '../../src/chaining/model/report.js';
import { eventually, kubectl, simplePod, startTestLab, waitRunning } from '../harness/lab.js';

// The chain controller inside `seine controller` in the lab, driven with the stock kubectl: the API server
// refuses schema-invalid chains naming the field; the controller assigns index and replica ids, validates
// what the schema cannot, turns node reports (written here as an agent would) into health and counters.

// Objects straight from kubectl's JSON; the checks poke at them freely.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;

const HOLD = 'test.seine.dev/hold';
const NS = 'default';

const hop = (name: string, app: string, extra: Record<string, unknown> = {}): Json => ({ name, podSelector: { matchLabels: { app } }, interfaces: { ingress: 'in0', egress: 'out0' }, ...extra });
const chainDoc = (name: string, spec: Json): string => JSON.stringify({ apiVersion: 'crd.seine.dev/v1alpha1', kind: 'ServiceChain', metadata: { name, namespace: NS }, spec });
const WEB_SPEC = { classifier: { destination: { podSelector: { matchLabels: { role: 'server' } } }, protocol: 'TCP', ports: [{ port: 80 }] }, hops: [hop('fw', 'fw')] };

/** kubectl, keeping its exit code and stderr (the refusals are what is tested). */
function kubectlRaw(lab: Lab, args: string[], input?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((done) => {
    const child = execFile('kubectl', ['--kubeconfig', lab.kubeconfigPath, '--cache-dir', `${lab.stateDir}/kube-cache`, ...args], { timeout: 60_000 }, (err, stdout, stderr) => {
      done({ code: err ? Number((err as { code?: unknown }).code) || 1 : 0, stdout: String(stdout), stderr: String(stderr) });
    });
    // A command that exits before reading its input makes the write fail with EPIPE: its exit code tells.
    if (input !== undefined) child.stdin?.on('error', () => undefined).end(input);
  });
}

describe('chain controller in the lab', () => {
  let lab: Lab;
  const held = new Set<string>();
  const chainJson = async (name: string): Promise<ServiceChain> => JSON.parse(await kubectl(lab, ['get', 'sc', name, '-n', NS, '-o', 'json'])) as ServiceChain;
  const condition = (c: ServiceChain, type: string) => c.status?.conditions?.find((x) => x.type === type);
  const replicas = (c: ServiceChain, hopName = 'fw') => (c.status?.hops?.find((h) => h.name === hopName)?.replicas ?? []).map((r) => ({ pod: r.pod, id: r.id, healthy: r.healthy, reason: r.reason }));
  const makePod = async (name: string, labels: Record<string, string>, node: number): Promise<void> => {
    const body = simplePod(name, { node: lab.plan.nodes[node]!.name });
    body.metadata!.labels = labels;
    await lab.core.createNamespacedPod({ namespace: NS, body });
    await waitRunning(lab, name, NS, 90_000);
  };
  const release = async (pod: string): Promise<void> => {
    await lab.core.patchNamespacedPod({ name: pod, namespace: NS, body: { metadata: { finalizers: null } } }, MERGE_PATCH);
    held.delete(pod);
  };
  const chainEvents = async (): Promise<CoreV1Event[]> =>
    (await lab.kubeConfig.makeApiClient(CoreV1Api).listNamespacedEvent({ namespace: NS })).items.filter((e) => e.involvedObject.kind === 'ServiceChain');
  const report = async (node: string, r: NodeChainReport): Promise<void> => {
    await lab.core.patchNode({ name: node, body: nodeChainReportPatch(r) }, MERGE_PATCH);
  };

  beforeAll(async () => {
    // The agents' chain feature is off: this test writes their node reports itself.
    lab = await startTestLab({ nodes: 2, serviceChains: false });
    await makePod('fw-1', { app: 'fw' }, 0);
    await makePod('fw-2', { app: 'fw' }, 1);
    // The destination of the chains under test: selected by label, resolved to its address.
    await makePod('srv', { role: 'server' }, 0);
  }, 240_000);
  afterAll(async () => {
    // A pod held by a finalizer would keep its deletion waiting.
    for (const p of held) await release(p).catch(() => undefined);
    await lab?.down();
  }, 120_000);

  it.each([
    ['a mode that does not exist', { ...WEB_SPEC, hops: [hop('fw', 'fw', { mode: 'Bridged' })] }, /spec\.hops\[0\]\.mode: Unsupported value: "Bridged"/],
    ['priority above 1000', { ...WEB_SPEC, priority: 2000 }, /spec\.priority: Invalid value: 2000/],
    ['a classifier with neither source nor destination', { ...WEB_SPEC, classifier: { protocol: 'TCP' } }, /spec\.classifier: Invalid value: .*anyOf/],
    ['17 hops', { ...WEB_SPEC, hops: Array.from({ length: 17 }, (_, i) => hop(`h${i}`, 'fw')) }, /spec\.hops: Too many: .*must have at most 16 items/],
    ['no hops', { ...WEB_SPEC, hops: [] }, /spec\.hops: Invalid value: .*at least 1 items/],
    ['a hop name that is not a DNS label', { ...WEB_SPEC, hops: [hop('Fire_Wall', 'fw')] }, /spec\.hops\[0\]\.name: Invalid value: "Fire_Wall"/],
    ['port 70000', { ...WEB_SPEC, classifier: { ...WEB_SPEC.classifier, ports: [{ port: 70000 }] } }, /spec\.classifier\.ports\[0\]\.port: Invalid value: 70000/],
    ['an ipBlock that is not a CIDR', { ...WEB_SPEC, classifier: { source: { ipBlock: { cidr: '10.0.0.0/33' } } } }, /spec\.classifier\.source\.ipBlock\.cidr: Invalid value: "10\.0\.0\.0\/33"/],
    ['a health check period of 0', { ...WEB_SPEC, hops: [hop('fw', 'fw', { healthCheck: { periodSeconds: 0 } })] }, /spec\.hops\[0\]\.healthCheck\.periodSeconds: Invalid value: 0/],
    ['an interface name with a slash', { ...WEB_SPEC, hops: [hop('fw', 'fw', { interfaces: { ingress: 'a/b', egress: 'out0' } })] }, /spec\.hops\[0\]\.interfaces\.ingress: Invalid value: "a\/b"/],
  ])('the API server refuses %s, naming the field', async (_what, spec, field) => {
    const r = await kubectlRaw(lab, ['apply', '-f', '-'], chainDoc('bad', spec));
    expect([r.code, r.stdout]).toEqual([1, '']);
    expect(r.stderr).toMatch(field);
  });

  it('a valid chain gets its index, replica ids and conditions; defaults are filled in', async () => {
    const applied = await kubectlRaw(lab, ['apply', '-f', '-'], chainDoc('web', WEB_SPEC));
    expect([applied.code, applied.stdout.trim()]).toEqual([0, 'servicechain.crd.seine.dev/web created']);
    const c = await eventually('web to get its index and two replicas', async (saw) => {
      const got = await chainJson('web');
      saw(got.status);
      return got.status?.index !== undefined && replicas(got).length === 2 ? got : undefined;
    });
    expect(c.spec).toMatchObject({ priority: 100, symmetric: true, hops: [{ mode: 'Transparent', failurePolicy: 'FailClosed', healthCheck: { type: 'Forwarding', periodSeconds: 1, failureThreshold: 2 } }] });
    expect(c.status).toMatchObject({ index: 1, hopCount: 1, readyReplicas: '0/2', observedGeneration: 1 });
    // Nobody reported yet: the replicas exist but do not count as healthy.
    expect(replicas(c)).toEqual([
      { pod: 'fw-1', id: 1, healthy: false, reason: 'NotReported' },
      { pod: 'fw-2', id: 2, healthy: false, reason: 'NotReported' },
    ]);
    expect(condition(c, 'Invalid')).toMatchObject({ status: 'False', reason: 'Valid' });
    expect(condition(c, 'Ready')).toMatchObject({ status: 'False', reason: 'HopUnavailable' });
    expect(condition(c, 'Degraded')).toMatchObject({ status: 'True', reason: 'NoHealthyReplica' });
    expect(condition(c, 'Overlapping')).toMatchObject({ status: 'False' });
  });

  it('node reports (as agents write them) become replica health and counters, summed per hop and chain', async () => {
    const c = await chainJson('web');
    const uid = (p: string): Promise<string> => lab.core.readNamespacedPod({ name: p, namespace: NS }).then((x) => x.metadata!.uid!);
    const entry = (pod: string, healthy: boolean, n: number) => ({ chain: c.metadata.uid!, hop: 'fw', pod, healthy, ...(healthy ? {} : { reason: 'ProbeLost' }), since: '2025-01-01T00:00:00Z', packets: { forward: n, reverse: n + 1 }, bytes: { forward: 100 * n, reverse: 100 * n } });
    const [n1, n2] = lab.plan.nodes.map((n) => n.name) as [string, string];
    await report(n1, { v: 1, at: new Date().toISOString(), replicas: [entry(await uid('fw-1'), true, 10)], chains: [{ chain: c.metadata.uid!, packets: { forward: 7, reverse: 6 }, bytes: { forward: 700, reverse: 600 } }] });
    await report(n2, { v: 1, at: new Date().toISOString(), replicas: [entry(await uid('fw-2'), false, 3)], chains: [{ chain: c.metadata.uid!, packets: { forward: 5, reverse: 4 }, bytes: { forward: 500, reverse: 400 } }] });
    const got = await eventually('web Ready with fw-1 healthy', async (saw) => {
      const x = await chainJson('web');
      saw(x.status);
      return condition(x, 'Ready')?.status === 'True' ? x : undefined;
    });
    expect(replicas(got)).toEqual([
      { pod: 'fw-1', id: 1, healthy: true, reason: undefined },
      { pod: 'fw-2', id: 2, healthy: false, reason: 'ProbeLost' },
    ]);
    expect(got.status).toMatchObject({ readyReplicas: '1/2', packets: { forward: 12, reverse: 10 }, bytes: { forward: 1200, reverse: 1000 } });
    expect(got.status!.hops![0]).toMatchObject({ packets: { forward: 13, reverse: 15 }, bytes: { forward: 1300, reverse: 1300 } });
    expect(got.status!.hops![0]!.replicas![0]).toMatchObject({ node: n1, since: '2025-01-01T00:00:00Z', packets: { forward: 10, reverse: 11 } });
    // Counters alone change: written within the 10 s counter period (plus generous slack for a busy machine).
    await report(n1, { v: 1, at: new Date().toISOString(), replicas: [entry(await uid('fw-1'), true, 50)], chains: [{ chain: c.metadata.uid!, packets: { forward: 47, reverse: 6 }, bytes: { forward: 4700, reverse: 600 } }] });
    await eventually('web counters to follow the new report', async (saw) => {
      const x = await chainJson('web');
      saw(x.status?.packets);
      return x.status?.packets?.forward === 52 ? x : undefined;
    }, 45_000);
    await eventually('a ChainReady Event on web', async (saw) => {
      const reasons = (await chainEvents()).filter((e) => e.involvedObject.name === 'web').map((e) => e.reason);
      saw(reasons);
      return reasons.includes('ChainReady') ? reasons : undefined;
    });
  }, 90_000);

  it('a deleted replica keeps its id until the pod is gone; then the id is free for the next pod', async () => {
    await lab.core.patchNamespacedPod({ name: 'fw-1', namespace: NS, body: { metadata: { finalizers: [HOLD] } } }, MERGE_PATCH);
    held.add('fw-1');
    await lab.core.deleteNamespacedPod({ name: 'fw-1', namespace: NS });
    const terminating = await eventually('fw-1 reported as terminating', async (saw) => {
      const x = await chainJson('web');
      saw(replicas(x));
      return replicas(x).find((r) => r.pod === 'fw-1')?.reason === 'PodTerminating' ? x : undefined;
    });
    expect(replicas(terminating).map((r) => [r.pod, r.id])).toEqual([['fw-1', 1], ['fw-2', 2]]);
    // A new replica while fw-1 still exists must not take its id.
    await makePod('fw-3', { app: 'fw' }, 1);
    const withThird = await eventually('fw-3 to get an id', async (saw) => {
      const x = await chainJson('web');
      saw(replicas(x));
      return replicas(x).some((r) => r.pod === 'fw-3') ? x : undefined;
    });
    expect(replicas(withThird).map((r) => [r.pod, r.id])).toEqual([['fw-1', 1], ['fw-2', 2], ['fw-3', 3]]);
    await release('fw-1');
    await eventually('fw-1 gone from the chain', async (saw) => {
      const x = await chainJson('web');
      saw(replicas(x));
      return replicas(x).every((r) => r.pod !== 'fw-1') ? x : undefined;
    });
    await makePod('fw-4', { app: 'fw' }, 0);
    const reused = await eventually('fw-4 to get an id', async (saw) => {
      const x = await chainJson('web');
      saw(replicas(x));
      return replicas(x).some((r) => r.pod === 'fw-4') ? x : undefined;
    });
    expect(replicas(reused).map((r) => [r.pod, r.id])).toEqual([['fw-4', 1], ['fw-2', 2], ['fw-3', 3]]);
  }, 240_000);

  it('what the schema cannot see: Invalid (with an Event), a hop without pods Degraded, overlaps name the winner', async () => {
    const nad = (name: string, config: unknown): string => JSON.stringify({ apiVersion: 'k8s.cni.cncf.io/v1', kind: 'NetworkAttachmentDefinition', metadata: { name, namespace: NS }, spec: { config: JSON.stringify(config) } });
    for (const doc of [
      nad('macvlan', { cniVersion: '1.0.0', type: 'macvlan', master: 'eth0', ipam: { type: 'host-local', subnet: '10.99.0.0/24' } }),
      chainDoc('dup', { ...WEB_SPEC, hops: [hop('fw', 'fw'), hop('fw', 'fw')] }),
      chainDoc('nowhere', { ...WEB_SPEC, network: 'absent' }),
      chainDoc('delegated', { ...WEB_SPEC, network: `${NS}/macvlan` }),
      chainDoc('lonely', { classifier: { source: { ipBlock: { cidr: '192.168.0.0/16' } }, protocol: 'UDP' }, hops: [hop('ids', 'nothing-matches', { failurePolicy: 'FailOpen' })] }),
      // Any TCP to anything, priority 10: classifies web's packets too, and wins.
      chainDoc('all-tcp', { priority: 10, classifier: { destination: { ipBlock: { cidr: '0.0.0.0/0' } }, protocol: 'TCP' }, hops: [hop('fw', 'fw')] }),
    ]) {
      const r = await kubectlRaw(lab, ['apply', '-f', '-'], doc);
      expect([r.code, r.stderr]).toEqual([0, '']);
    }
    const settled = async (name: string, type: string, status: string): Promise<ServiceChain> =>
      eventually(`${name} ${type}=${status}`, async (saw) => {
        const x = await chainJson(name);
        saw(x.status?.conditions);
        return condition(x, type)?.status === status ? x : undefined;
      });
    const dup = await settled('dup', 'Invalid', 'True');
    expect(condition(dup, 'Invalid')).toMatchObject({ reason: 'InvalidSpec', message: 'spec.hops[1].name: duplicate hop name "fw" (also spec.hops[0])' });
    expect(dup.status?.index).toBeUndefined();
    expect(condition(await settled('nowhere', 'Invalid', 'True'), 'Invalid')).toMatchObject({ reason: 'NetworkNotFound', message: `spec.network: NetworkAttachmentDefinition ${NS}/absent does not exist` });
    expect(condition(await settled('delegated', 'Invalid', 'True'), 'Invalid')).toMatchObject({ reason: 'UnsupportedNetwork' });
    const lonely = await settled('lonely', 'Degraded', 'True');
    expect(condition(lonely, 'Degraded')).toMatchObject({ reason: 'NoReplicas', message: 'hop ids: its podSelector matches no pod' });
    // FailOpen: a hop without replicas is skipped, so the chain still works.
    expect(condition(lonely, 'Ready')).toMatchObject({ status: 'True' });
    const web = await settled('web', 'Overlapping', 'True');
    expect(condition(web, 'Overlapping')!.message).toBe(`classifies some of the same packets as ${NS}/all-tcp; ${NS}/all-tcp wins (precedence order: ${NS}/all-tcp, ${NS}/web)`);
    expect(condition(lonely, 'Overlapping')).toMatchObject({ status: 'False' });
    // Indexes are unique; the invalid chains hold none.
    const indexes = await Promise.all(['web', 'lonely', 'all-tcp'].map(async (n) => (await chainJson(n)).status?.index));
    expect(new Set(indexes).size).toBe(3);

    const events = await eventually('Invalid Events on dup and nowhere', async (saw) => {
      const list = await chainEvents();
      const got = list.map((e) => `${e.involvedObject.name} ${e.type} ${e.reason}`);
      saw(got);
      return got.includes('dup Warning InvalidSpec') && got.includes('nowhere Warning NetworkNotFound') && got.includes('lonely Warning NoReplicas') ? list : undefined;
    });
    // Once per change: the controller's later passes over the same chain add none.
    expect(events.filter((e) => e.involvedObject.name === 'dup' && e.reason === 'InvalidSpec').map((e) => e.count)).toEqual([1]);
  }, 120_000);

  it('kubectl get sc prints hops, ready replicas, status and packets', async () => {
    const out = await kubectl(lab, ['get', 'sc', '-n', NS]);
    const [header, ...lines] = out.trim().split('\n');
    expect(header!.split(/\s+/)).toEqual(['NAME', 'HOPS', 'READY', 'STATUS', 'PACKETS', 'AGE']);
    const web = lines.find((l) => l.startsWith('web '))!.split(/\s+/);
    expect(web.slice(0, 5)).toEqual(['web', '1', expect.stringMatching(/^\d+\/3$/), expect.any(String), '52']);
    const wide = (await kubectl(lab, ['get', 'servicechains', 'nowhere', '-n', NS, '-o', 'wide'])).trim().split('\n');
    expect(wide[0]!.split(/\s+/)).toEqual(['NAME', 'NETWORK', 'INDEX', 'HOPS', 'READY', 'STATUS', 'PACKETS', 'AGE']);
    expect(wide[1]!.split(/\s+/).slice(0, 2)).toEqual(['nowhere', 'absent']);
  });
});

import type { V1Pod } from '@kubernetes/client-node';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../../src/host/exec.js';
import { MERGE_PATCH } from '../../src/k8s/api.js';
import { API_RELAY_PORT, type Lab } from '../../src/lab/lab.js';
import { eventually, startTestLab, waitRunning } from '../harness/lab.js';

// The lab's control plane for Services, on one lab: the kubernetes Service reachable from a node through the relay,
// and EndpointSlices following pods as kube-controller-manager keeps them (readiness probes flipping, a pod
// terminating within its grace period, named ports resolved per pod, scale, slices of at most 100 endpoints).

interface Slice {
  metadata: { name: string; labels?: Record<string, string> };
  endpoints?: Array<{ addresses: string[]; conditions: { ready?: boolean; serving?: boolean; terminating?: boolean }; targetRef?: { name: string }; nodeName?: string }>;
  ports?: Array<{ name?: string; port?: number; protocol?: string }>;
}

describe('lab: the Service control plane', () => {
  let lab: Lab;
  // Readiness probes test for files here (pods share the machine's filesystem).
  const flags = mkdtempSync(join(tmpdir(), 'seine-readiness-'));
  beforeAll(async () => {
    lab = await startTestLab({ nodes: 2, network: 'bridge' });
  }, 180_000);
  afterAll(async () => {
    await lab?.down();
    rmSync(flags, { recursive: true, force: true });
  }, 120_000);

  const slicesOf = (service: string): Slice[] =>
    lab.api.resource('discovery.k8s.io/v1', 'endpointslices').list({ namespace: 'default', labelSelector: `kubernetes.io/service-name=${service}` }).items as unknown as Slice[];
  const endpointsOf = (service: string): Array<{ pod: string; port: number | undefined; ready?: boolean; serving?: boolean; terminating?: boolean }> =>
    slicesOf(service)
      .flatMap((s) => (s.endpoints ?? []).map((e) => ({ pod: e.targetRef?.name ?? '', port: s.ports?.[0]?.port, ...e.conditions })))
      .sort((a, b) => a.pod.localeCompare(b.pod));

  const webPod = (name: string, port: number, command: string[], grace?: number): V1Pod => ({
    metadata: { name, namespace: 'default', labels: { app: 'web' } },
    spec: {
      ...(grace !== undefined ? { terminationGracePeriodSeconds: grace } : {}),
      containers: [
        {
          name: 'main',
          image: 'lab',
          command,
          ports: [{ name: 'http', containerPort: port }],
          readinessProbe: { exec: { command: ['test', '-f', join(flags, name)] }, periodSeconds: 1, failureThreshold: 1 },
        },
      ],
    },
  });

  it('serves the kubernetes Service, whose endpoint a node reaches over TCP', async () => {
    const svc = await lab.core.readNamespacedService({ name: 'kubernetes', namespace: 'default' });
    expect(svc.spec?.clusterIP).toBe('10.96.0.1');
    expect(svc.spec?.ports).toEqual([{ name: 'https', port: 443, protocol: 'TCP', targetPort: API_RELAY_PORT }]);
    const [slice] = slicesOf('kubernetes');
    expect(slice?.endpoints?.[0]?.addresses).toEqual([lab.plan.externalIp]);
    const version = await eventually('the API server through the relay, from node1', async (saw) => {
      const url = `https://${lab.plan.externalIp}:${API_RELAY_PORT}/version`;
      const r = await run('curl', ['-sk', '--max-time', '5', '-H', `Authorization: Bearer ${lab.api.token}`, url], { netns: lab.nodes[0]!.netns }).catch((e: unknown) => saw(e));
      if (r) saw(r.stdout);
      const body = r ? (JSON.parse(r.stdout) as { gitVersion?: string }) : undefined;
      return body?.gitVersion ? body : undefined;
    });
    expect(version.gitVersion).toMatch(/^v1\./);
  });

  it('follows readiness probes and resolves named ports per pod', async () => {
    await lab.core.createNamespacedService({ namespace: 'default', body: { metadata: { name: 'web' }, spec: { selector: { app: 'web' }, ports: [{ port: 80, targetPort: 'http' }] } } });
    await lab.core.createNamespacedPod({ namespace: 'default', body: webPod('web-a', 8080, ['sleep', 'infinity']) });
    await lab.core.createNamespacedPod({ namespace: 'default', body: webPod('web-b', 8081, ['sleep', 'infinity']) });
    // Running but not ready: listed, not ready. web-a's "http" is 8080, web-b's 8081: two slices.
    await eventually('web-a and web-b listed not ready, each with its own port', async (saw) => {
      const eps = endpointsOf('web');
      saw(eps);
      return JSON.stringify(eps) === JSON.stringify([
        { pod: 'web-a', port: 8080, ready: false, serving: false, terminating: false },
        { pod: 'web-b', port: 8081, ready: false, serving: false, terminating: false },
      ]) ? eps : undefined;
    }, 90_000);
    expect(slicesOf('web').map((s) => s.metadata.labels?.['endpointslice.kubernetes.io/managed-by'])).toEqual(['endpointslice-controller.k8s.io', 'endpointslice-controller.k8s.io']);
    writeFileSync(join(flags, 'web-a'), '');
    await eventually('web-a ready once its probe passes', async (saw) => {
      const a = endpointsOf('web').find((e) => e.pod === 'web-a');
      saw(a);
      return a?.ready === true && a.serving === true ? a : undefined;
    });
    const pod = await lab.core.readNamespacedPod({ name: 'web-a', namespace: 'default' });
    expect(pod.status?.conditions?.find((c) => c.type === 'Ready')?.status).toBe('True');
    rmSync(join(flags, 'web-a'));
    await eventually('web-a not ready once its probe fails', async (saw) => {
      const a = endpointsOf('web').find((e) => e.pod === 'web-a');
      saw(a);
      return a?.ready === false ? a : undefined;
    });
  }, 150_000);

  it('probes tcpSocket and httpGet from the node to the pod', async () => {
    const probed = (name: string, readinessProbe: object, command: string[]): V1Pod => ({
      metadata: { name, namespace: 'default' },
      spec: { containers: [{ name: 'main', image: 'lab', command, ports: [{ name: 'srv', containerPort: 9000 }], readinessProbe: { periodSeconds: 1, ...readinessProbe } }] },
    });
    await lab.core.createNamespacedPod({ namespace: 'default', body: probed('tcp-ok', { tcpSocket: { port: 'srv' } }, ['nc', '-lk', '9000']) });
    await lab.core.createNamespacedPod({ namespace: 'default', body: probed('http-none', { httpGet: { port: 9000, path: '/healthz' } }, ['sleep', 'infinity']) });
    const ready = async (name: string): Promise<string | undefined> => (await lab.core.readNamespacedPod({ name, namespace: 'default' })).status?.containerStatuses?.[0]?.ready === true ? name : undefined;
    await eventually('tcp-ok ready once its port accepts', () => ready('tcp-ok'), 90_000);
    // Nothing answers HTTP in http-none: running, never ready.
    const pod = await waitRunning(lab, 'http-none');
    expect(pod.status?.conditions?.find((c) => c.type === 'Ready')?.status).toBe('False');
    expect(await ready('http-none')).toBeUndefined();
  }, 120_000);

  it('lists a pod terminating within its grace period as terminating and serving, then drops it', async () => {
    writeFileSync(join(flags, 'web-c'), '');
    // The container ignores SIGTERM: it stays for the pod's grace period, as kubelet gives it.
    await lab.core.createNamespacedPod({ namespace: 'default', body: webPod('web-c', 8080, ['sh', '-c', 'trap "" TERM; sleep 1000'], 8) });
    await eventually('web-c ready', async (saw) => {
      const c = endpointsOf('web').find((e) => e.pod === 'web-c');
      saw(c);
      return c?.ready ? c : undefined;
    }, 90_000);
    await lab.core.deleteNamespacedPod({ name: 'web-c', namespace: 'default' });
    const terminating = await eventually('web-c terminating', async (saw) => {
      const c = endpointsOf('web').find((e) => e.pod === 'web-c');
      saw(c);
      return c?.terminating ? c : undefined;
    });
    expect(terminating).toMatchObject({ ready: false, serving: true, terminating: true });
    await eventually('web-c gone from the slices after its grace period', async (saw) => {
      const pods = endpointsOf('web').map((e) => e.pod);
      saw(pods);
      return pods.includes('web-c') ? undefined : pods;
    }, 60_000);
  }, 150_000);

  it('splits more than 100 endpoints into slices, follows scale-down, and leaves slices it does not manage alone', async () => {
    // Pods bound to a node without a kubelet, their status written here: the controller only reads the API.
    const names = Array.from({ length: 105 }, (_, i) => `many-${String(i).padStart(3, '0')}`);
    for (const [i, name] of names.entries()) {
      await lab.core.createNamespacedPod({ namespace: 'default', body: { metadata: { name, labels: { app: 'many' } }, spec: { nodeName: 'no-kubelet', containers: [{ name: 'c', image: 'lab' }] } } });
      await lab.core.patchNamespacedPodStatus(
        { name, namespace: 'default', body: { status: { phase: 'Running', podIP: `10.250.${Math.floor(i / 200)}.${(i % 200) + 1}`, conditions: [{ type: 'Ready', status: 'True' }] } } },
        MERGE_PATCH,
      );
    }
    const foreign = { metadata: { name: 'many-by-hand', namespace: 'default', labels: { 'kubernetes.io/service-name': 'many' } }, addressType: 'IPv4', endpoints: [{ addresses: ['10.251.0.1'] }], ports: [] };
    lab.api.resource('discovery.k8s.io/v1', 'endpointslices').create(foreign);
    await lab.core.createNamespacedService({ namespace: 'default', body: { metadata: { name: 'many' }, spec: { selector: { app: 'many' }, ports: [{ port: 80 }] } } });
    const managed = (): Slice[] => slicesOf('many').filter((s) => s.metadata.name !== 'many-by-hand');
    const sizes = (): number[] => managed().map((s) => s.endpoints?.length ?? 0).sort((a, b) => b - a);
    const until = (what: string, want: string, value: () => unknown): Promise<unknown> =>
      eventually(what, async (saw) => {
        const v = value();
        saw(v);
        return JSON.stringify(v) === want ? v : undefined;
      }, 60_000);
    await until('105 endpoints in slices of 100 and 5', '[100,5]', sizes);
    expect(managed().every((s) => s.metadata.name.startsWith('many-'))).toBe(true);
    for (const name of names.slice(0, 10)) await lab.core.deleteNamespacedPod({ name, namespace: 'default', gracePeriodSeconds: 0 });
    await until('95 endpoints after scale-down', '95', () => sizes().reduce((a, b) => a + b, 0));
    // A Service losing its selector loses its managed slices; the one made by hand stays.
    await lab.core.patchNamespacedService({ name: 'many', namespace: 'default', body: { spec: { selector: null } } }, MERGE_PATCH);
    await until('only the hand-made slice left', '["many-by-hand"]', () => slicesOf('many').map((s) => s.metadata.name));
    for (const name of names.slice(10)) await lab.core.deleteNamespacedPod({ name, namespace: 'default', gracePeriodSeconds: 0 });
  }, 240_000);
});

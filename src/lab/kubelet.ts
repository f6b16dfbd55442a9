import { CoreV1Api, type KubeConfig, type V1Container, type V1ContainerStatus, type V1Pod, type V1PodCondition, type V1Probe } from '@kubernetes/client-node';
import { join } from 'node:path';
import { run } from '../host/exec.js';
import { createNetns, deleteNetns, netnsPath } from '../host/netns.js';
import type { ResourceLedger } from '../host/ledger.js';
import { apiMessage, isConflict, isNotFound, MERGE_PATCH } from '../k8s/api.js';
import { EventRecorder } from '../k8s/events.js';
import { ResilientInformer } from '../k8s/informer.js';
import { logger } from '../util/log.js';
import { SupervisedProcess } from './supervisor.js';

/** The pod identity a sandbox network needs (what CRI passes to the CNI plugin via CNI_ARGS). */
export interface PodIdentity {
  namespace: string;
  name: string;
  uid: string;
  /** The sandbox ("infra container") id, used as CNI_CONTAINERID. */
  sandboxId: string;
}

/** How the kubelet wires a pod sandbox into the network: the node's CNI conflist, run like containerd does. */
export interface PodSandboxNetwork {
  /** CNI ADD; resolves to the pod's IPs (first is the primary). */
  setUp(pod: PodIdentity, netns: string): Promise<string[]>;
  /** CNI DEL; must succeed when nothing is left. */
  tearDown(pod: PodIdentity, netns: string): Promise<void>;
}

interface PodRuntime {
  identity: PodIdentity;
  netnsName: string;
  state: 'creating' | 'running' | 'backoff' | 'terminating';
  containers: SupervisedProcess[];
  /** Readiness probers by container name (containers with a readinessProbe only). */
  probers: Map<string, ReadinessProber>;
  ips: string[];
  startedAt?: Date;
  backoffMs: number;
  retry?: NodeJS.Timeout;
  /** Serializes every operation on this pod. */
  chain: Promise<void>;
}

export interface KubeletOptions {
  kubeConfig: KubeConfig;
  nodeName: string;
  nodeIp: string;
  /** The node's network namespace: tcpSocket and httpGet probes connect from there, as kubelet does from the host. */
  nodeNetns: string;
  /** Pod netns names are `${netnsPrefix}-${uid prefix}`. */
  netnsPrefix: string;
  network: PodSandboxNetwork;
  ledger: ResourceLedger;
  /** Container logs go under here. */
  logDir: string;
}

/** The network namespace name the kubelet gives a pod sandbox. */
export function podNetnsName(prefix: string, uid: string): string {
  return `${prefix}-${uid.slice(0, 13)}`;
}

function isTerminating(rt: PodRuntime): boolean {
  return rt.state === 'terminating';
}

const MIN_BACKOFF_MS = 1000;
const MAX_BACKOFF_MS = 20_000;
/** When the lab shuts down (or a pod vanishes from the API), containers get this long to stop. */
const SHUTDOWN_GRACE_MS = 5000;

/** How one probe attempt is made; true when it succeeded. */
type ProbeCheck = (timeoutMs: number) => Promise<boolean>;

/**
 * A container's readiness, as kubelet's prober keeps it: not ready until `successThreshold` consecutive successes,
 * ready until `failureThreshold` consecutive failures; the first attempt after `initialDelaySeconds`, then one
 * every `periodSeconds`, each given `timeoutSeconds`. `onChange` hears every flip.
 */
export class ReadinessProber {
  ready = false;
  private successes = 0;
  private failures = 0;
  private timer?: NodeJS.Timeout;
  private stopped = false;
  private generation = 0;

  constructor(
    private readonly probe: V1Probe,
    private readonly check: ProbeCheck,
    private readonly onChange: () => void,
  ) {}

  start(): void {
    this.stopped = false;
    this.schedule((this.probe.initialDelaySeconds ?? 0) * 1000);
  }

  /** A restarted container starts over: not ready, counted afresh. */
  reset(): void {
    const was = this.ready;
    this.ready = false;
    this.successes = 0;
    this.failures = 0;
    this.generation++;
    if (this.timer) clearTimeout(this.timer);
    if (!this.stopped) this.start();
    if (was) this.onChange();
  }

  stop(): void {
    this.stopped = true;
    this.generation++;
    if (this.timer) clearTimeout(this.timer);
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    const generation = this.generation;
    this.timer = setTimeout(() => void this.attempt(generation), ms);
  }

  private async attempt(generation: number): Promise<void> {
    const ok = await this.check(Math.max(1, this.probe.timeoutSeconds ?? 1) * 1000).catch(() => false);
    // Stopped or reset while the attempt ran: its result belongs to a container that is gone.
    if (generation !== this.generation) return;
    if (ok) {
      this.failures = 0;
      this.successes++;
      if (!this.ready && this.successes >= Math.max(1, this.probe.successThreshold ?? 1)) {
        this.ready = true;
        this.onChange();
      }
    } else {
      this.successes = 0;
      this.failures++;
      if (this.ready && this.failures >= Math.max(1, this.probe.failureThreshold ?? 3)) {
        this.ready = false;
        this.onChange();
      }
    }
    this.schedule(Math.max(1, this.probe.periodSeconds ?? 10) * 1000);
  }
}

/** A probe's port: a number, or the name of one of the container's ports. */
function probePort(port: number | string, container: V1Container): number | undefined {
  if (typeof port === 'number') return port;
  if (/^\d+$/.test(port)) return Number(port);
  return container.ports?.find((p) => p.name === port)?.containerPort;
}

/**
 * The lab's kubelet: for each pod bound to its node it creates the pod network namespace, runs the node's
 * CNI conflist (as containerd would), runs the containers' commands inside the namespace and reports status;
 * on deletion it stops them, runs CNI DEL, removes the namespace and completes the deletion.
 */
export class Kubelet {
  private readonly core: CoreV1Api;
  private readonly informer: ResilientInformer<V1Pod>;
  private readonly events: EventRecorder;
  private readonly pods = new Map<string, PodRuntime>();
  private readonly log;
  private stopped = false;

  constructor(private readonly opts: KubeletOptions) {
    this.core = opts.kubeConfig.makeApiClient(CoreV1Api);
    this.log = logger('kubelet', { node: opts.nodeName });
    this.events = new EventRecorder(this.core, { component: 'kubelet', host: opts.nodeName });
    const fieldSelector = `spec.nodeName=${opts.nodeName}`;
    this.informer = new ResilientInformer<V1Pod>({
      kubeConfig: opts.kubeConfig,
      name: `kubelet-${opts.nodeName}`,
      path: '/api/v1/pods',
      fieldSelector,
      list: () => this.core.listPodForAllNamespaces({ fieldSelector }),
    });
    this.informer.on('add', (p) => this.sync(p)).on('update', (p) => this.sync(p)).on('delete', (p) => this.forget(p));
  }

  async start(): Promise<void> {
    await this.informer.start();
  }

  /** Stops watching; with `teardownPods`, also removes every pod sandbox it made (lab shutdown). */
  async stop(teardownPods: boolean): Promise<void> {
    this.stopped = true;
    await this.informer.stop();
    const all = [...this.pods.values()];
    for (const rt of all) if (rt.retry) clearTimeout(rt.retry);
    await Promise.all(all.map((rt) => rt.chain));
    if (teardownPods) await Promise.all(all.map((rt) => this.teardown(rt, SHUTDOWN_GRACE_MS).catch(() => undefined)));
  }

  /** Pods this kubelet runs, by uid, with their netns (for `lab status` and `lab exec`). */
  sandboxes(): Array<{ namespace: string; name: string; netns: string; state: string; pids: number[] }> {
    return [...this.pods.values()].map((rt) => ({
      namespace: rt.identity.namespace,
      name: rt.identity.name,
      netns: rt.netnsName,
      state: rt.state,
      pids: rt.containers.map((c) => c.pid).filter((p): p is number => p !== undefined),
    }));
  }

  private enqueue(rt: PodRuntime, op: () => Promise<void>): void {
    rt.chain = rt.chain.then(op).catch((e: unknown) => this.log.error({ pod: `${rt.identity.namespace}/${rt.identity.name}`, err: String(e) }, 'pod operation failed'));
  }

  private sync(pod: V1Pod): void {
    if (this.stopped) return;
    const uid = pod.metadata!.uid!;
    let rt = this.pods.get(uid);
    if (pod.metadata?.deletionTimestamp) {
      if (!rt) {
        // Never started here (or already torn down): just complete the deletion.
        void this.finalizeDeletion(pod);
        return;
      }
      if (rt.state === 'terminating') return;
      if (rt.retry) clearTimeout(rt.retry);
      rt.state = 'terminating';
      const rtc = rt;
      // As kubelet: the containers get the grace period the deletion set (SIGTERM, then SIGKILL).
      const graceMs = Math.max(0, pod.metadata.deletionGracePeriodSeconds ?? 30) * 1000;
      this.enqueue(rt, async () => {
        await this.teardown(rtc, graceMs);
        await this.finalizeDeletion(pod);
      });
      return;
    }
    if (rt) return;
    const phase = pod.status?.phase;
    if (phase === 'Succeeded' || phase === 'Failed') return;
    rt = {
      identity: { namespace: pod.metadata!.namespace!, name: pod.metadata!.name!, uid, sandboxId: `lab${uid.replaceAll('-', '')}` },
      netnsName: podNetnsName(this.opts.netnsPrefix, uid),
      state: 'creating',
      containers: [],
      probers: new Map(),
      ips: [],
      backoffMs: MIN_BACKOFF_MS,
      chain: Promise.resolve(),
    };
    this.pods.set(uid, rt);
    const rtc = rt;
    this.enqueue(rt, () => this.createSandbox(rtc));
  }

  /** The pod was removed from the API (completed or force-deleted): make sure nothing of it remains. */
  private forget(pod: V1Pod): void {
    const rt = this.pods.get(pod.metadata!.uid!);
    if (!rt || rt.state === 'terminating') return;
    if (rt.retry) clearTimeout(rt.retry);
    rt.state = 'terminating';
    this.enqueue(rt, () => this.teardown(rt, SHUTDOWN_GRACE_MS));
  }

  private podRef(rt: PodRuntime): { kind: string; apiVersion: string; name: string; namespace: string; uid: string } {
    return { kind: 'Pod', apiVersion: 'v1', name: rt.identity.name, namespace: rt.identity.namespace, uid: rt.identity.uid };
  }

  private async createSandbox(rt: PodRuntime): Promise<void> {
    if (rt.state === 'terminating' || this.stopped) return;
    const current = this.informer.get(rt.identity.name, rt.identity.namespace);
    if (!current || current.metadata?.uid !== rt.identity.uid) return;
    const netns = netnsPath(rt.netnsName);
    try {
      this.opts.ledger.netns(rt.netnsName);
      await deleteNetns(rt.netnsName);
      await createNetns(rt.netnsName);
      rt.ips = await this.opts.network.setUp(rt.identity, netns);
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      this.log.warn({ pod: `${rt.identity.namespace}/${rt.identity.name}`, err: msg }, 'sandbox creation failed');
      await this.events.record(
        this.podRef(rt),
        'Warning',
        'FailedCreatePodSandBox',
        `Failed to create pod sandbox: plugin type="cni" failed (add): failed to set up sandbox network for pod "${rt.identity.name}": ${msg}`,
      );
      // Undo what was done, as containerd does when the network setup of a sandbox fails.
      await this.opts.network.tearDown(rt.identity, netns).catch(() => undefined);
      await deleteNetns(rt.netnsName);
      this.opts.ledger.forgetNetns(rt.netnsName);
      // A deletion may have arrived while the network was being set up.
      if (isTerminating(rt) || this.stopped) return;
      rt.state = 'backoff';
      const delay = rt.backoffMs;
      rt.backoffMs = Math.min(rt.backoffMs * 2, MAX_BACKOFF_MS);
      rt.retry = setTimeout(() => {
        rt.retry = undefined;
        if (rt.state !== 'backoff') return;
        rt.state = 'creating';
        this.enqueue(rt, () => this.createSandbox(rt));
      }, delay);
      return;
    }
    // Deleted meanwhile: the queued teardown undoes the setup.
    if (isTerminating(rt)) return;
    rt.startedAt = new Date();
    rt.state = 'running';
    this.startContainers(rt, current);
    void this.events.record(this.podRef(rt), 'Normal', 'Started', `Pod sandbox started with IP ${rt.ips.join(', ') || 'none'}`);
    await this.reportStatus(rt);
  }

  private startContainers(rt: PodRuntime, pod: V1Pod): void {
    const policy = pod.spec?.restartPolicy ?? 'Always';
    const restart = policy === 'Always' ? 'always' : policy === 'OnFailure' ? 'on-failure' : 'never';
    for (const c of pod.spec?.containers ?? []) {
      const argv = [...(c.command ?? []), ...(c.args ?? [])];
      if (argv.length === 0) continue;
      const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOSTNAME: rt.identity.name, POD_NAME: rt.identity.name, POD_NAMESPACE: rt.identity.namespace };
      for (const e of c.env ?? []) if (e.value !== undefined) env[e.name] = e.value;
      const proc = new SupervisedProcess(
        {
          name: `${rt.identity.namespace}/${rt.identity.name}/${c.name}`,
          command: argv[0]!,
          args: argv.slice(1),
          env,
          netns: netnsPath(rt.netnsName),
          logFile: join(this.opts.logDir, `${rt.identity.namespace}_${rt.identity.name}_${rt.identity.uid.slice(0, 8)}`, `${c.name}.log`),
          restart,
        },
        this.opts.ledger,
        () => {
          rt.probers.get(c.name)?.reset();
          if (rt.state === 'running') this.enqueue(rt, () => this.reportStatus(rt));
        },
      );
      proc.start();
      rt.containers.push(proc);
    }
    for (const c of pod.spec?.containers ?? []) {
      const check = c.readinessProbe ? this.probeCheck(rt, c, c.readinessProbe) : undefined;
      if (!check) continue;
      const prober = new ReadinessProber(c.readinessProbe!, check, () => {
        if (rt.state === 'running') this.enqueue(rt, () => this.reportStatus(rt));
      });
      rt.probers.set(c.name, prober);
      prober.start();
    }
  }

  /** How a readiness probe is made: exec inside the pod's namespace, tcpSocket and httpGet from the node's. */
  private probeCheck(rt: PodRuntime, c: V1Container, probe: V1Probe): ProbeCheck | undefined {
    const podIp = (): string => rt.ips[0] ?? '';
    if (probe.exec?.command?.length) {
      const [cmd, ...args] = probe.exec.command;
      return (timeoutMs) => run(cmd!, args, { netns: netnsPath(rt.netnsName), timeoutMs }).then(() => true);
    }
    if (probe.tcpSocket) {
      const { host, port } = probe.tcpSocket;
      return async (timeoutMs) => {
        const n = probePort(port, c);
        if (n === undefined) return false;
        const seconds = String(Math.ceil(timeoutMs / 1000));
        await run('nc', ['-z', '-w', seconds, host || podIp(), String(n)], { netns: this.opts.nodeNetns, timeoutMs: timeoutMs + 1000 });
        return true;
      };
    }
    if (probe.httpGet) {
      const { host, port, path, scheme, httpHeaders } = probe.httpGet;
      return async (timeoutMs) => {
        const n = probePort(port, c);
        if (n === undefined) return false;
        const target = host || podIp();
        const url = `${(scheme ?? 'HTTP').toLowerCase()}://${target.includes(':') ? `[${target}]` : target}:${n}${path?.startsWith('/') ? path : `/${path ?? ''}`}`;
        const headers = (httpHeaders ?? []).flatMap((h) => ['-H', `${h.name}: ${h.value}`]);
        const { stdout } = await run('curl', ['-s', '-k', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', String(timeoutMs / 1000), ...headers, url], {
          netns: this.opts.nodeNetns,
          timeoutMs: timeoutMs + 1000,
        });
        // kubelet: any status from 200 up to (not including) 400 is a success.
        const code = Number(stdout.trim());
        return code >= 200 && code < 400;
      };
    }
    // gRPC probes are not run by the lab: such a container is never ready.
    return probe.grpc ? async () => false : undefined;
  }

  private containerStatuses(rt: PodRuntime, pod: V1Pod | undefined): V1ContainerStatus[] {
    const startedAt = rt.startedAt ?? new Date();
    return (pod?.spec?.containers ?? []).map((c) => {
      const proc = rt.containers.find((p) => p.spec.name.endsWith(`/${c.name}`));
      const running = proc ? proc.running : true;
      const prober = rt.probers.get(c.name);
      const status: V1ContainerStatus = {
        name: c.name,
        image: c.image ?? '',
        imageID: '',
        containerID: `lab://${rt.identity.uid.slice(0, 8)}-${c.name}`,
        ready: running && (prober ? prober.ready : true),
        started: running,
        restartCount: proc?.restarts ?? 0,
        state: running
          ? { running: { startedAt } }
          : { terminated: { exitCode: proc?.lastExit?.code ?? 137, reason: proc?.lastExit?.code === 0 ? 'Completed' : 'Error', startedAt, finishedAt: new Date() } },
      };
      return status;
    });
  }

  private async reportStatus(rt: PodRuntime): Promise<void> {
    if (rt.state !== 'running') return;
    const pod = this.informer.get(rt.identity.name, rt.identity.namespace);
    const statuses = this.containerStatuses(rt, pod);
    const allReady = statuses.every((s) => s.ready);
    const allDone = statuses.length > 0 && statuses.every((s) => s.state?.terminated);
    const policy = pod?.spec?.restartPolicy ?? 'Always';
    let phase = 'Running';
    if (allDone && policy !== 'Always') phase = statuses.every((s) => s.state?.terminated?.exitCode === 0) ? 'Succeeded' : 'Failed';
    const now = new Date();
    const cond = (type: string, ok: boolean): V1PodCondition => ({ type, status: ok ? 'True' : 'False', lastTransitionTime: now, lastProbeTime: undefined as unknown as Date });
    const body = {
      status: {
        phase,
        hostIP: this.opts.nodeIp,
        hostIPs: [{ ip: this.opts.nodeIp }],
        podIP: rt.ips[0],
        podIPs: rt.ips.map((ip) => ({ ip })),
        startTime: rt.startedAt,
        conditions: [cond('PodReadyToStartContainers', true), cond('Initialized', true), cond('Ready', allReady), cond('ContainersReady', allReady), cond('PodScheduled', true)],
        containerStatuses: statuses,
      },
    };
    try {
      await this.core.patchNamespacedPodStatus({ name: rt.identity.name, namespace: rt.identity.namespace, body }, MERGE_PATCH);
    } catch (e) {
      if (!isNotFound(e)) this.log.warn({ pod: `${rt.identity.namespace}/${rt.identity.name}`, err: apiMessage(e) }, 'status update failed');
    }
  }

  /** Stops containers (SIGTERM, SIGKILL after `graceMs`), runs CNI DEL (retrying until it succeeds) and removes the pod netns. */
  private async teardown(rt: PodRuntime, graceMs: number): Promise<void> {
    if (rt.retry) clearTimeout(rt.retry);
    for (const p of rt.probers.values()) p.stop();
    rt.probers.clear();
    await Promise.all(rt.containers.map((c) => c.stop(graceMs)));
    rt.containers = [];
    const netns = netnsPath(rt.netnsName);
    for (let delay = MIN_BACKOFF_MS; ; delay = Math.min(delay * 2, MAX_BACKOFF_MS)) {
      try {
        await this.opts.network.tearDown(rt.identity, netns);
        break;
      } catch (e) {
        this.log.warn({ pod: `${rt.identity.namespace}/${rt.identity.name}`, err: String(e) }, 'CNI DEL failed; retrying');
        await this.events.record(this.podRef(rt), 'Warning', 'FailedKillPod', `error killing pod: failed to destroy network for sandbox: ${String(e)}`);
        if (this.stopped) break;
        await new Promise((r) => setTimeout(r, delay));
      }
    }
    await deleteNetns(rt.netnsName);
    this.opts.ledger.forgetNetns(rt.netnsName);
    this.pods.delete(rt.identity.uid);
  }

  /**
   * Completes a graceful deletion, as kubelet does once the pod's containers are gone; retried (as kubelet's sync
   * loop would) while the API server refuses or times out, or the pod would stay Terminating for good.
   */
  private async finalizeDeletion(pod: V1Pod): Promise<void> {
    const ref = `${pod.metadata!.namespace}/${pod.metadata!.name}`;
    for (let delay = MIN_BACKOFF_MS; !this.stopped; delay = Math.min(delay * 2, MAX_BACKOFF_MS)) {
      try {
        await this.core.deleteNamespacedPod({
          name: pod.metadata!.name!,
          namespace: pod.metadata!.namespace!,
          gracePeriodSeconds: 0,
          body: { gracePeriodSeconds: 0, preconditions: { uid: pod.metadata!.uid } },
        });
        return;
      } catch (e) {
        // Gone already, or another pod now has the name (the uid precondition failed): nothing left to complete.
        if (isNotFound(e) || isConflict(e) || this.stopped) return;
        this.log.warn({ pod: ref, err: apiMessage(e) }, 'final delete failed; retrying');
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }
}

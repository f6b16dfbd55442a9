import { CoreV1Api, type KubeConfig, type V1ContainerStatus, type V1Pod, type V1PodCondition } from '@kubernetes/client-node';
import { join } from 'node:path';
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
/** A Terminating pod's containers get at most this long to stop, whatever its grace period. */
const MAX_GRACE_MS = 5000;

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
    if (teardownPods) await Promise.all(all.map((rt) => this.teardown(rt).catch(() => undefined)));
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
      this.enqueue(rt, async () => {
        await this.teardown(rtc);
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
    this.enqueue(rt, () => this.teardown(rt));
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
          if (rt.state === 'running') this.enqueue(rt, () => this.reportStatus(rt));
        },
      );
      proc.start();
      rt.containers.push(proc);
    }
  }

  private containerStatuses(rt: PodRuntime, pod: V1Pod | undefined): V1ContainerStatus[] {
    const startedAt = rt.startedAt ?? new Date();
    return (pod?.spec?.containers ?? []).map((c) => {
      const proc = rt.containers.find((p) => p.spec.name.endsWith(`/${c.name}`));
      const running = proc ? proc.running : true;
      const status: V1ContainerStatus = {
        name: c.name,
        image: c.image ?? '',
        imageID: '',
        containerID: `lab://${rt.identity.uid.slice(0, 8)}-${c.name}`,
        ready: running,
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

  /** Stops containers, runs CNI DEL (retrying until it succeeds) and removes the pod netns. */
  private async teardown(rt: PodRuntime): Promise<void> {
    if (rt.retry) clearTimeout(rt.retry);
    await Promise.all(rt.containers.map((c) => c.stop(MAX_GRACE_MS)));
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

import { CoreV1Api, type KubeConfig, type V1Node, type V1Pod } from '@kubernetes/client-node';
import { apiMessage, isConflict, isNotFound } from '../k8s/api.js';
import { EventRecorder } from '../k8s/events.js';
import { ResilientInformer } from '../k8s/informer.js';
import { logger } from '../util/log.js';

function nodeReady(node: V1Node): boolean {
  return !node.spec?.unschedulable && (node.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');
}

function matchesNodeSelector(pod: V1Pod, node: V1Node): boolean {
  const labels = node.metadata?.labels ?? {};
  return Object.entries(pod.spec?.nodeSelector ?? {}).every(([k, v]) => labels[k] === v);
}

/** Chooses the Ready node that matches the pod's nodeSelector and runs the fewest pods (name breaks ties). */
export function chooseNode(pod: V1Pod, nodes: readonly V1Node[], podsPerNode: ReadonlyMap<string, number>): string | undefined {
  const candidates = nodes.filter((n) => nodeReady(n) && matchesNodeSelector(pod, n)).map((n) => n.metadata!.name!);
  candidates.sort((a, b) => (podsPerNode.get(a) ?? 0) - (podsPerNode.get(b) ?? 0) || a.localeCompare(b));
  return candidates[0];
}

/** The lab's kube-scheduler stand-in: binds every pod without a nodeName to the least loaded node. */
export class Scheduler {
  private readonly core: CoreV1Api;
  private readonly pods: ResilientInformer<V1Pod>;
  private readonly nodes: ResilientInformer<V1Node>;
  private readonly events: EventRecorder;
  private readonly log = logger('scheduler');
  /** Pods bound by us whose binding the informer may not show yet. */
  private readonly assumed = new Map<string, string>();
  private queue = Promise.resolve();
  private retryTimer?: NodeJS.Timeout;

  constructor(kc: KubeConfig) {
    this.core = kc.makeApiClient(CoreV1Api);
    this.events = new EventRecorder(this.core, { component: 'default-scheduler' });
    this.pods = new ResilientInformer<V1Pod>({
      kubeConfig: kc,
      name: 'scheduler-pods',
      path: '/api/v1/pods',
      list: () => this.core.listPodForAllNamespaces(),
    });
    this.nodes = new ResilientInformer<V1Node>({ kubeConfig: kc, name: 'scheduler-nodes', path: '/api/v1/nodes', list: () => this.core.listNode() });
    this.pods.on('add', (p) => this.enqueue(p)).on('update', (p) => this.enqueue(p));
    this.nodes.on('add', () => this.retryPending()).on('update', () => this.retryPending());
  }

  async start(): Promise<void> {
    await this.nodes.start();
    await this.pods.start();
    this.retryPending();
  }

  async stop(): Promise<void> {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    await Promise.all([this.pods.stop(), this.nodes.stop()]);
    await this.queue;
  }

  private podsPerNode(): Map<string, number> {
    const counts = new Map<string, number>();
    const seen = new Set<string>();
    for (const p of this.pods.list()) {
      const uid = p.metadata!.uid!;
      seen.add(uid);
      const node = p.spec?.nodeName ?? this.assumed.get(uid);
      if (node && !['Succeeded', 'Failed'].includes(p.status?.phase ?? '')) counts.set(node, (counts.get(node) ?? 0) + 1);
    }
    for (const uid of this.assumed.keys()) if (!seen.has(uid)) this.assumed.delete(uid);
    return counts;
  }

  private needsScheduling(p: V1Pod): boolean {
    return !p.spec?.nodeName && !p.metadata?.deletionTimestamp && !this.assumed.has(p.metadata!.uid!);
  }

  private enqueue(pod: V1Pod): void {
    if (!this.needsScheduling(pod)) return;
    this.queue = this.queue.then(() => this.schedule(pod)).catch((e: unknown) => this.log.error({ err: String(e) }, 'schedule failed'));
  }

  private retryPending(): void {
    for (const p of this.pods.list()) this.enqueue(p);
  }

  private async schedule(pod: V1Pod): Promise<void> {
    if (!this.needsScheduling(pod)) return;
    const { name, namespace, uid } = pod.metadata!;
    const node = chooseNode(pod, this.nodes.list(), this.podsPerNode());
    if (!node) {
      await this.events.record({ kind: 'Pod', apiVersion: 'v1', name: name!, namespace, uid }, 'Warning', 'FailedScheduling', '0 nodes are available: no Ready node matches the pod');
      // Nodes may become ready later; a node event also retries.
      this.retryTimer ??= setTimeout(() => {
        this.retryTimer = undefined;
        this.retryPending();
      }, 2000);
      return;
    }
    try {
      await this.core.createNamespacedPodBinding({
        name: name!,
        namespace: namespace!,
        body: { apiVersion: 'v1', kind: 'Binding', metadata: { name, namespace, uid }, target: { apiVersion: 'v1', kind: 'Node', name: node } },
      });
      this.assumed.set(uid!, node);
      this.log.debug({ pod: `${namespace}/${name}`, node }, 'bound');
      // Best effort and off the scheduling path, as the real scheduler's event broadcaster is.
      void this.events.record({ kind: 'Pod', apiVersion: 'v1', name: name!, namespace, uid }, 'Normal', 'Scheduled', `Successfully assigned ${namespace}/${name} to ${node}`);
    } catch (e) {
      // Already bound (conflict) or deleted meanwhile: nothing to do.
      if (isConflict(e) || isNotFound(e)) return;
      this.log.warn({ pod: `${namespace}/${name}`, err: apiMessage(e) }, 'binding failed');
    }
  }
}

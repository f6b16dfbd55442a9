// The policy part of `seine controller`: NetworkPolicies, ClusterNetworkPolicies, namespaces and pods from the
// API server, fed to the computation; after each burst of changes, the nodes whose share changed are told to
// the listeners (the distribution to agents).
import { CoreV1Api, CustomObjectsApi, NetworkingV1Api, type KubeConfig, type KubernetesListObject, type V1Condition, type V1Namespace, type V1NetworkPolicy, type V1Pod } from '@kubernetes/client-node';
import { Gauge, type Registry } from 'prom-client';
import { apiMessage, isNotFound, MERGE_PATCH } from '../../k8s/api.js';
import { ResilientInformer } from '../../k8s/informer.js';
import { logger, type Logger } from '../../util/log.js';
import { CNP_GROUP, CNP_PLURAL, CNP_VERSION, type ClusterNetworkPolicy } from '../api/clusternetworkpolicy.js';
import { compileClusterNetworkPolicy } from '../model/clusternetworkpolicy.js';
import { compileNetworkPolicy } from '../model/networkpolicy.js';
import type { PolicyRef, Protocol } from '../model/types.js';
import { PolicyComputation, type PolicyPod } from './compute.js';
import { Realization, type PolicyRealization, type RealizedPolicies } from './realization.js';
import { NodeShares } from './shares.js';

/** The ClusterNetworkPolicy condition Seine keeps: whether every node that needs the policy has installed it. */
export const REALIZED_CONDITION = 'Realized';
/** Statuses are brought up to date at most this often (reports come in bursts after a change). */
const STATUS_DELAY_MS = 500;

/** The Realized condition for a realization (lastTransitionTime kept while the status stays). */
export function realizedCondition(r: PolicyRealization, generation: number, previous: V1Condition | undefined, now: Date): V1Condition {
  const done = r.realized === r.desired;
  const message = r.desired === 0 ? 'applies to no pod' : `realized on ${r.realized} of ${r.desired} nodes${done ? '' : `; waiting for ${r.pending.join(', ')}${r.desired - r.realized > r.pending.length ? ', ...' : ''}`}`;
  const status = done ? 'True' : 'False';
  return {
    type: REALIZED_CONDITION,
    status,
    observedGeneration: generation,
    lastTransitionTime: previous?.status === status && previous.lastTransitionTime ? previous.lastTransitionTime : now,
    reason: r.desired === 0 ? 'NoPods' : done ? 'Realized' : 'Pending',
    message,
  };
}

export interface PolicyControllerOptions {
  kubeConfig: KubeConfig;
  log?: Logger;
  /** How long a burst of changes is gathered before the computation is drained (default 20 ms). */
  batchMs?: number;
  /** Where the realization metrics are registered (none: no metrics). */
  registry?: Registry;
}

const POLICY_LABELS = ['kind', 'namespace', 'policy'] as const;

/** A pod as policy sees it; undefined for pods policy ignores (host network, finished, unscheduled). */
export function policyPod(pod: V1Pod): PolicyPod | undefined {
  const phase = pod.status?.phase;
  if (pod.spec?.hostNetwork || phase === 'Succeeded' || phase === 'Failed' || !pod.spec?.nodeName) return undefined;
  const namedPorts = (pod.spec.containers ?? []).flatMap((c) =>
    (c.ports ?? []).filter((p) => p.name).map((p) => ({ name: p.name!, protocol: (p.protocol ?? 'TCP') as Protocol, port: p.containerPort })),
  );
  return {
    uid: pod.metadata!.uid!,
    namespace: pod.metadata!.namespace!,
    name: pod.metadata!.name!,
    labels: pod.metadata?.labels ?? {},
    ip: pod.status?.podIP ?? '',
    node: pod.spec.nodeName,
    namedPorts,
  };
}

export class PolicyController {
  readonly computation = new PolicyComputation();
  readonly shares = new NodeShares(this.computation);
  readonly realization = new Realization();
  private registry?: Registry;
  private readonly log: Logger;
  private readonly custom: CustomObjectsApi;
  private statusTimer: NodeJS.Timeout | undefined;
  private statusRunning = false;
  private readonly informers: {
    namespaces: ResilientInformer<V1Namespace>;
    pods: ResilientInformer<V1Pod>;
    networkPolicies: ResilientInformer<V1NetworkPolicy>;
    clusterPolicies: ResilientInformer<ClusterNetworkPolicy & { apiVersion?: string; kind?: string }>;
  };
  private readonly listeners = new Set<(nodes: ReadonlySet<string>) => void>();
  private readonly createdAt = new Map<string, Date>();
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private synced = false;

  constructor(private readonly opts: PolicyControllerOptions) {
    this.log = opts.log ?? logger('controller.policy');
    const kc = opts.kubeConfig;
    const core = kc.makeApiClient(CoreV1Api);
    const net = kc.makeApiClient(NetworkingV1Api);
    const custom = kc.makeApiClient(CustomObjectsApi);
    this.custom = custom;
    this.informers = {
      namespaces: new ResilientInformer<V1Namespace>({ kubeConfig: kc, name: 'policy-namespaces', path: '/api/v1/namespaces', list: () => core.listNamespace() }),
      pods: new ResilientInformer<V1Pod>({ kubeConfig: kc, name: 'policy-pods', path: '/api/v1/pods', list: () => core.listPodForAllNamespaces() }),
      networkPolicies: new ResilientInformer<V1NetworkPolicy>({ kubeConfig: kc, name: 'policy-networkpolicies', path: '/apis/networking.k8s.io/v1/networkpolicies', list: () => net.listNetworkPolicyForAllNamespaces() }),
      clusterPolicies: new ResilientInformer({
        kubeConfig: kc,
        name: 'policy-clusternetworkpolicies',
        path: `/apis/${CNP_GROUP}/${CNP_VERSION}/${CNP_PLURAL}`,
        list: () => custom.listClusterCustomObject({ group: CNP_GROUP, version: CNP_VERSION, plural: CNP_PLURAL }) as Promise<KubernetesListObject<ClusterNetworkPolicy>>,
      }),
    };
    if (opts.registry) this.registerMetrics(opts.registry);
    const c = this.computation;
    const { namespaces, pods, networkPolicies, clusterPolicies } = this.informers;
    const ns = (n: V1Namespace): void => this.changed(() => c.upsertNamespace(n.metadata!.name!, n.metadata?.labels ?? {}));
    namespaces.on('add', ns).on('update', ns).on('delete', (n) => this.changed(() => c.deleteNamespace(n.metadata!.name!)));
    const pod = (p: V1Pod): void =>
      this.changed(() => {
        const pp = policyPod(p);
        if (pp) c.upsertPod(pp);
        else c.deletePod(p.metadata!.uid!);
      });
    pods.on('add', pod).on('update', pod).on('delete', (p) => this.changed(() => c.deletePod(p.metadata!.uid!)));
    const np = (p: V1NetworkPolicy): void =>
      this.changed(() => {
        const x = compileNetworkPolicy(p);
        c.upsertPolicy(x.policy, x.groups);
      });
    networkPolicies.on('add', np).on('update', np).on('delete', (p) => this.changed(() => c.deletePolicy(p.metadata!.uid!)));
    // When each policy was created (for the CLI's AGE); the computation keeps only what enforcement needs.
    const created = (m: { uid?: string; creationTimestamp?: Date | string } | undefined): void => {
      if (m?.uid && m.creationTimestamp) this.createdAt.set(m.uid, new Date(m.creationTimestamp));
    };
    const forget = (m: { uid?: string } | undefined): void => void (m?.uid && this.createdAt.delete(m.uid));
    networkPolicies.on('add', (p) => created(p.metadata)).on('delete', (p) => forget(p.metadata));
    const cnp = (p: ClusterNetworkPolicy): void => {
      // Status writes (ours among them) do not change the spec: nothing to compute.
      const generation = p.metadata.generation ?? 0;
      if (generation > 0 && c.policy(p.metadata.uid!)?.ref.generation === generation) return;
      this.changed(() => {
        const x = compileClusterNetworkPolicy(p);
        c.upsertPolicy(x.policy, x.groups);
      });
    };
    clusterPolicies.on('add', cnp).on('update', cnp).on('delete', (p) => this.changed(() => c.deletePolicy(p.metadata.uid!)));
    clusterPolicies.on('add', (p) => created(p.metadata)).on('delete', (p) => forget(p.metadata));
  }

  /** Per policy, computed when scraped: the nodes that need it and those that have installed its current generation. */
  private registerMetrics(registry: Registry): void {
    const policies = (): Array<{ ref: PolicyRef; r: PolicyRealization }> =>
      [...this.computation.allPolicies()].flatMap((p) => {
        const r = this.realizationOf(p.ref.uid);
        return r ? [{ ref: p.ref, r }] : [];
      });
    const perPolicy = (name: string, help: string, value: (r: PolicyRealization) => number): Gauge =>
      new Gauge({
        name,
        help,
        labelNames: POLICY_LABELS,
        registers: [registry],
        collect(this: Gauge) {
          this.reset();
          for (const { ref, r } of policies()) this.set({ kind: ref.kind, namespace: ref.namespace ?? '', policy: ref.name }, value(r));
        },
      });
    perPolicy('seine_policy_span_nodes', 'Nodes with a pod the policy applies to', (r) => r.desired);
    perPolicy('seine_policy_realized_nodes', 'Nodes of the span that have installed the policy\'s current generation', (r) => r.realized);
    this.registry = registry;
  }

  /** Takes the metrics off the registry (a controller that stops leading). */
  unregisterMetrics(): void {
    for (const name of ['seine_policy_span_nodes', 'seine_policy_realized_nodes']) this.registry?.removeSingleMetric(name);
  }

  /** An agent's report of what it has installed. */
  reportRealized(node: string, realized: RealizedPolicies): void {
    if (this.realization.report(node, realized)) this.scheduleStatus();
  }

  /** How far a policy is realized (for NetworkPolicies, which have no status, through the CLI and metrics). */
  realizationOf(uid: string): PolicyRealization | undefined {
    const entry = this.computation.policy(uid);
    return entry ? this.realization.of(uid, entry.ref.generation, this.computation.spanOf(uid)) : undefined;
  }

  /** The computed policies `which` picks, each with its span and realization, all pending nodes named (the CLI's view). */
  realizations(which: (ref: PolicyRef) => boolean = () => true): Array<{ ref: PolicyRef; span: ReadonlySet<string>; realization: PolicyRealization }> {
    return [...this.computation.allPolicies()].filter((p) => which(p.ref)).map((p) => {
      const span = this.computation.spanOf(p.ref.uid);
      return { ref: p.ref, span, realization: this.realization.of(p.ref.uid, p.ref.generation, span, Infinity) };
    });
  }

  /** When a policy was created (its creationTimestamp), by uid. */
  created(uid: string): Date | undefined {
    return this.createdAt.get(uid);
  }

  /** When a node last reported what it has installed (undefined: not to this controller). */
  lastReport(node: string): Date | undefined {
    return this.realization.lastReport(node);
  }

  private scheduleStatus(): void {
    if (this.stopped || this.statusTimer || !this.synced) return;
    this.statusTimer = setTimeout(() => {
      this.statusTimer = undefined;
      void this.writeStatuses();
    }, STATUS_DELAY_MS);
  }

  /** Brings every ClusterNetworkPolicy's Realized condition up to date (only those that changed are written). */
  private async writeStatuses(): Promise<void> {
    if (this.statusRunning) return this.scheduleStatus();
    this.statusRunning = true;
    try {
      for (const cnp of this.informers.clusterPolicies.list()) {
        if (this.stopped) return;
        const uid = cnp.metadata.uid!;
        const r = this.realizationOf(uid);
        const generation = cnp.metadata.generation ?? 0;
        // Not computed yet (refused, or not seen): nothing to say.
        if (!r || this.computation.policy(uid)?.ref.generation !== generation) continue;
        const conditions = cnp.status?.conditions ?? [];
        const previous = conditions.find((x) => x.type === REALIZED_CONDITION);
        const next = realizedCondition(r, generation, previous, new Date());
        if (previous && previous.status === next.status && previous.reason === next.reason && previous.message === next.message && previous.observedGeneration === next.observedGeneration) continue;
        // A merge patch replaces the list: other implementations' conditions are kept in it.
        const body = { status: { conditions: [...conditions.filter((x) => x.type !== REALIZED_CONDITION), next] } };
        try {
          await this.custom.patchClusterCustomObjectStatus({ group: CNP_GROUP, version: CNP_VERSION, plural: CNP_PLURAL, name: cnp.metadata.name!, body }, MERGE_PATCH);
        } catch (e) {
          if (!isNotFound(e)) this.log.warn({ policy: cnp.metadata.name, err: apiMessage(e) }, 'cannot write ClusterNetworkPolicy status; retrying');
          if (!isNotFound(e)) this.scheduleStatus();
        }
      }
    } finally {
      this.statusRunning = false;
    }
  }

  /**
   * Resolves once every informer has listed. Agents are served only then: a share without the ClusterNetworkPolicies
   * would replace the one they enforce and drop its Admin rules. Only a CRD that is not installed (no such policy can
   * exist) lets the controller go on without them, watching for the CRD meanwhile.
   */
  async start(): Promise<void> {
    const { namespaces, pods, networkPolicies, clusterPolicies } = this.informers;
    for (const inf of [namespaces, pods, networkPolicies] as Array<ResilientInformer<never>>) await inf.start();
    for (let attempt = 0; ; attempt++) {
      if (this.stopped) return;
      try {
        await clusterPolicies.start();
        break;
      } catch (e) {
        await clusterPolicies.stop();
        if (isNotFound(e)) {
          this.log.warn('the ClusterNetworkPolicy CRD is not installed; going on without ClusterNetworkPolicies and checking every second');
          void clusterPolicies.startRetrying({ everyMs: 1000, cancelled: () => this.stopped, onFirstFailure: () => undefined });
          break;
        }
        if (attempt === 0) this.log.warn({ err: apiMessage(e) }, 'cannot list ClusterNetworkPolicies; agents are not served until it can');
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
    this.synced = true;
    this.flush();
    this.log.info(this.computation.size, 'policy controller synced');
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.statusTimer) clearTimeout(this.statusTimer);
    await Promise.all(Object.values(this.informers).map((i) => i.stop()));
  }

  /** Called with the nodes whose share changed, after each burst of changes. */
  onChange(listener: (nodes: ReadonlySet<string>) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  get isSynced(): boolean {
    return this.synced;
  }

  /** Applies a change now; drains the computation once the burst is over. */
  private changed(apply: () => void): void {
    if (this.stopped) return;
    try {
      apply();
    } catch (e) {
      this.log.error({ err: String(e) }, 'policy computation refused a change');
    }
    if (!this.synced || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.flush();
    }, this.opts.batchMs ?? 20);
  }

  private flush(): void {
    const { nodes } = this.computation.drain();
    if (!nodes.size) return;
    for (const l of this.listeners) l(nodes);
    // Spans or generations may have moved.
    this.scheduleStatus();
  }
}

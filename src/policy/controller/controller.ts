// The policy part of `seine controller`: NetworkPolicies, ClusterNetworkPolicies, namespaces and pods from the
// API server, fed to the computation; after each burst of changes, the nodes whose share changed are told to
// the listeners (the distribution to agents).
import { CoreV1Api, CustomObjectsApi, NetworkingV1Api, type KubeConfig, type KubernetesListObject, type V1Condition, type V1Namespace, type V1NetworkPolicy, type V1Pod } from '@kubernetes/client-node';
import { Gauge, type Registry } from 'prom-client';
import { apiMessage, isNotFound, MERGE_PATCH } from '../../k8s/api.js';
import { EventRecorder } from '../../k8s/events.js';
import { ResilientInformer } from '../../k8s/informer.js';
import type { NetworkAttachmentDefinition } from '../../secondary/nad/index.js';
import { logger, type Logger } from '../../util/log.js';
import { CNP_GROUP, CNP_PLURAL, CNP_VERSION, type ClusterNetworkPolicy } from '../api/clusternetworkpolicy.js';
import { MNP_GROUP, MNP_KIND, MNP_PLURAL, MNP_VERSION_V1BETA2, POLICY_FOR_ANNOTATION, type MultiNetworkPolicy } from '../api/multinetworkpolicy.js';
import { compileClusterNetworkPolicy } from '../model/clusternetworkpolicy.js';
import { compileNetworkPolicy } from '../model/networkpolicy.js';
import type { PolicyRef, Protocol } from '../model/types.js';
import { PolicyComputation, type PolicyPod } from './compute.js';
import type { Unenforced } from './policy-api.js';
import { ENFORCED_CONDITION, enforcedCondition, MultiNetworkPolicies } from './multi-network.js';
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
  readonly multiNetwork = new MultiNetworkPolicies(this.computation);
  private readonly events: EventRecorder;
  /** Per MultiNetworkPolicy uid: the problems last told in Events (each told once per change). */
  private readonly toldProblems = new Map<string, string>();
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
    multiNetworkPolicies: ResilientInformer<MultiNetworkPolicy>;
    nads: ResilientInformer<NetworkAttachmentDefinition & { apiVersion?: string; kind?: string }>;
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
      // Read at v1beta2: a v1beta1 read would prune endPort.
      multiNetworkPolicies: new ResilientInformer({
        kubeConfig: kc,
        name: 'policy-multinetworkpolicies',
        path: `/apis/${MNP_GROUP}/${MNP_VERSION_V1BETA2}/${MNP_PLURAL}`,
        list: () => custom.listClusterCustomObject({ group: MNP_GROUP, version: MNP_VERSION_V1BETA2, plural: MNP_PLURAL }) as Promise<KubernetesListObject<MultiNetworkPolicy>>,
      }),
      nads: new ResilientInformer({
        kubeConfig: kc,
        name: 'policy-nads',
        path: '/apis/k8s.cni.cncf.io/v1/network-attachment-definitions',
        list: () => custom.listClusterCustomObject({ group: 'k8s.cni.cncf.io', version: 'v1', plural: 'network-attachment-definitions' }) as Promise<KubernetesListObject<NetworkAttachmentDefinition & { metadata: { name: string } }>>,
      }),
    };
    this.events = new EventRecorder(core, { component: 'seine-controller' });
    if (opts.registry) this.registerMetrics(opts.registry);
    const c = this.computation;
    const { namespaces, pods, networkPolicies, clusterPolicies, multiNetworkPolicies, nads } = this.informers;
    const ns = (n: V1Namespace): void => this.changed(() => c.upsertNamespace(n.metadata!.name!, n.metadata?.labels ?? {}));
    namespaces.on('add', ns).on('update', ns).on('delete', (n) => this.changed(() => c.deleteNamespace(n.metadata!.name!)));
    const pod = (p: V1Pod): void =>
      this.changed(() => {
        const pp = policyPod(p);
        if (pp) c.upsertPod(pp);
        else c.deletePod(p.metadata!.uid!);
        this.multiNetwork.upsertPod(p, pp);
      });
    pods.on('add', pod).on('update', pod).on('delete', (p) =>
      this.changed(() => {
        c.deletePod(p.metadata!.uid!);
        this.multiNetwork.deletePod(p.metadata!.uid!);
      }),
    );
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
    const mnp = (p: MultiNetworkPolicy): void => {
      const generation = p.metadata.generation ?? 0;
      const state = this.multiNetwork.states.get(p.metadata.uid!);
      // Status writes do not change the spec, but an annotation change (policy-for) keeps the generation.
      if (generation > 0 && state?.generation === generation && state.annotation === (p.metadata.annotations?.[POLICY_FOR_ANNOTATION] ?? '')) return;
      this.changed(() => this.multiNetwork.upsertPolicy(p));
    };
    multiNetworkPolicies.on('add', mnp).on('update', mnp).on('delete', (p) =>
      this.changed(() => {
        this.multiNetwork.deletePolicy(p.metadata.uid!);
        this.toldProblems.delete(p.metadata.uid!);
      }),
    );
    multiNetworkPolicies.on('add', (p) => created(p.metadata)).on('delete', (p) => forget(p.metadata));
    const nad = (n: NetworkAttachmentDefinition): void => this.changed(() => this.multiNetwork.upsertNad(n));
    nads.on('add', nad).on('update', nad).on('delete', (n) => this.changed(() => this.multiNetwork.deleteNad(n)));
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

  /** The MultiNetworkPolicies `which` picks: each network they name that is not enforced, and their other problems. */
  unenforced(which: (ref: { namespace?: string; name: string }) => boolean): Unenforced[] {
    return this.multiNetwork.all().flatMap(({ policy, state }) => {
      const meta = policy.metadata;
      if (!which({ namespace: meta.namespace, name: meta.name ?? '' })) return [];
      const base = { namespace: meta.namespace ?? 'default', name: meta.name ?? '', uid: meta.uid!, generation: state.generation };
      const out: Unenforced[] = [...state.unenforced].map(([network, problem]) => ({ ...base, network, problem }));
      const networkProblems = new Set(state.unenforced.values());
      const other = state.problems.filter((p) => !networkProblems.has(p));
      if (other.length) out.push({ ...base, problem: other.join('; ') });
      return out;
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
      await this.writeMultiNetworkStatuses();
    } finally {
      this.statusRunning = false;
    }
  }

  /** A MultiNetworkPolicy's realization over its networks: a node counts once every part it needs is installed there. */
  private multiNetworkRealization(parts: Iterable<string>): PolicyRealization {
    const need = new Map<string, string[]>();
    for (const uid of parts) for (const node of this.computation.spanOf(uid)) need.set(node, [...(need.get(node) ?? []), uid]);
    const pending: string[] = [];
    let realized = 0;
    for (const [node, uids] of need) {
      const done = uids.every((uid) => this.realization.of(uid, this.computation.policy(uid)?.ref.generation ?? -1, new Set([node])).realized === 1);
      if (done) realized++;
      else pending.push(node);
    }
    pending.sort();
    return { desired: need.size, realized, pending: pending.slice(0, 3) };
  }

  /** Each MultiNetworkPolicy's Realized and NetworksEnforced conditions; a Warning Event for what is not enforced. */
  private async writeMultiNetworkStatuses(): Promise<void> {
    for (const { policy, state } of this.multiNetwork.all()) {
      if (this.stopped) return;
      const meta = policy.metadata;
      if ((meta.generation ?? 0) !== state.generation) continue;
      const told = state.problems.join('\n');
      if (this.toldProblems.get(meta.uid!) !== told) {
        this.toldProblems.set(meta.uid!, told);
        for (const problem of state.problems) {
          void this.events.record({ kind: MNP_KIND, apiVersion: `${MNP_GROUP}/${MNP_VERSION_V1BETA2}`, name: meta.name!, namespace: meta.namespace, uid: meta.uid }, 'Warning', state.invalid ? 'InvalidPolicy' : 'NetworkNotEnforced', problem);
        }
      }
      const conditions = policy.status?.conditions ?? [];
      const now = new Date();
      const next = [
        realizedCondition(this.multiNetworkRealization(state.parts.values()), state.generation, conditions.find((x) => x.type === REALIZED_CONDITION), now),
        enforcedCondition(state, conditions.find((x) => x.type === ENFORCED_CONDITION), now),
      ];
      const same = next.every((n) => {
        const p = conditions.find((x) => x.type === n.type);
        return p && p.status === n.status && p.reason === n.reason && p.message === n.message && p.observedGeneration === n.observedGeneration;
      });
      if (same) continue;
      const body = { status: { conditions: [...conditions.filter((x) => x.type !== REALIZED_CONDITION && x.type !== ENFORCED_CONDITION), ...next] } };
      try {
        await this.custom.patchNamespacedCustomObjectStatus({ group: MNP_GROUP, version: MNP_VERSION_V1BETA2, namespace: meta.namespace!, plural: MNP_PLURAL, name: meta.name!, body }, MERGE_PATCH);
      } catch (e) {
        if (!isNotFound(e)) this.log.warn({ policy: `${meta.namespace}/${meta.name}`, err: apiMessage(e) }, 'cannot write MultiNetworkPolicy status; retrying');
        if (!isNotFound(e)) this.scheduleStatus();
      }
    }
  }

  /**
   * Resolves once every informer has listed. Agents are served only then: a share without the ClusterNetworkPolicies
   * would replace the one they enforce and drop its Admin rules. Only a CRD that is not installed (no such policy can
   * exist) lets the controller go on without them, watching for the CRD meanwhile.
   */
  async start(): Promise<void> {
    const { namespaces, pods, networkPolicies, clusterPolicies, nads, multiNetworkPolicies } = this.informers;
    for (const inf of [namespaces, pods, networkPolicies] as Array<ResilientInformer<never>>) await inf.start();
    // NADs before MultiNetworkPolicies: a policy compiled before its networks are known would be told it names none.
    for (const [inf, what] of [
      [clusterPolicies, 'ClusterNetworkPolicies'],
      [nads, 'NetworkAttachmentDefinitions'],
      [multiNetworkPolicies, 'MultiNetworkPolicies'],
    ] as Array<[ResilientInformer<never>, string]>) {
      await this.startOptional(inf, what);
    }
    this.synced = true;
    this.flush();
    this.log.info(this.computation.size, 'policy controller synced');
  }

  /**
   * Lists a kind whose CRD may be missing. Only a CRD that is not installed (no such object can exist) lets the
   * controller go on without it, watching for the CRD meanwhile; otherwise it retries until it can list: a share
   * without them would replace the one agents enforce and drop their rules.
   */
  private async startOptional(inf: ResilientInformer<never>, what: string): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      if (this.stopped) return;
      try {
        await inf.start();
        return;
      } catch (e) {
        await inf.stop();
        if (isNotFound(e)) {
          this.log.warn(`the CRD of ${what} is not installed; going on without them and checking every second`);
          void inf.startRetrying({ everyMs: 1000, cancelled: () => this.stopped, onFirstFailure: () => undefined });
          return;
        }
        if (attempt === 0) this.log.warn({ err: apiMessage(e) }, `cannot list ${what}; agents are not served until it can`);
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
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

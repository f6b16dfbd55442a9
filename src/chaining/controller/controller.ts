// The chain controller, run by `seine controller` while it leads: gives every valid ServiceChain its datapath
// index and its replicas their ids, validates what the schema cannot (spec rules, the network), finds
// overlapping chains, and turns the agents' node reports into each chain's status (conditions, health,
// counters). It is the only writer of ServiceChain status; agents read it.
import { CoreV1Api, CustomObjectsApi, type KubeConfig, type KubernetesListObject, type V1Namespace, type V1Node, type V1Pod } from '@kubernetes/client-node';
import { apiMessage, isNotFound, MERGE_PATCH } from '../../k8s/api.js';
import type { EventRecorder } from '../../k8s/events.js';
import { ResilientInformer } from '../../k8s/informer.js';
import { WorkQueue } from '../../primary/controller/queue.js';
import type { NetworkAttachmentDefinition } from '../../secondary/nad/index.js';
import { logger, type Logger } from '../../util/log.js';
import {
  CHAIN_API_VERSION,
  CHAIN_GROUP,
  CHAIN_KIND,
  CHAIN_PLURAL,
  CHAIN_VERSION,
  ChainConditionType,
  chainKey,
  chainNetwork,
  MAX_CHAIN_INDEX,
  type ServiceChain,
  type ServiceChainStatus,
} from '../api/types.js';
import { describeProblems, validateChainSpec } from '../api/validate.js';
import { chainClassifier, comparePrecedence, hopCandidates, nodeReports, type ChainClassifier } from '../model/desired.js';
import { classifiersOverlap } from '../model/overlap.js';
import { chainNetworkOf } from '../model/network.js';
import { assignReplicaIds, lowestFree } from './ids.js';
import { chainStatus, ChainReason, counterWriteDelay, type Verdict } from './status.js';

/** Counters alone are written at most this often per chain. */
export const COUNTER_WRITE_PERIOD_MS = 10_000;

export interface ChainControllerOptions {
  kubeConfig: KubeConfig;
  events: EventRecorder;
  log?: Logger;
  /** Overrides COUNTER_WRITE_PERIOD_MS (tests). */
  counterPeriodMs?: number;
}

type Nad = NetworkAttachmentDefinition & { apiVersion?: string; kind?: string; metadata: { name?: string; namespace?: string; uid?: string } };

/** What was last written for a chain, to write only changes and to pace counter updates. */
interface Written {
  status: ServiceChainStatus;
  at: number;
}

const NAD_PATH = '/apis/k8s.cni.cncf.io/v1/network-attachment-definitions';

export class ChainController {
  private readonly log: Logger;
  private readonly core: CoreV1Api;
  private readonly custom: CustomObjectsApi;
  private readonly chains: ResilientInformer<ServiceChain & { apiVersion?: string; kind?: string }>;
  private readonly pods: ResilientInformer<V1Pod>;
  private readonly namespaces: ResilientInformer<V1Namespace>;
  private readonly nodes: ResilientInformer<V1Node>;
  private readonly nads: ResilientInformer<Nad>;
  private readonly queue = new WorkQueue();
  private readonly counterPeriodMs: number;
  /** Chain uid -> index: authoritative while leading (seeded from status at start, ahead of the cache after writes). */
  private readonly indexes = new Map<string, number>();
  /** Chain uid -> hop name -> pod uid -> replica id (seeded from status when a chain is first seen). */
  private readonly replicaIds = new Map<string, Map<string, Map<string, number>>>();
  private readonly written = new Map<string, Written>();
  /** Chain key -> uid, so a deleted chain's index and ids are freed. */
  private readonly uids = new Map<string, string>();
  private synced = false;
  private stopped = false;

  constructor(private readonly opts: ChainControllerOptions) {
    this.log = opts.log ?? logger('controller.chains');
    this.counterPeriodMs = opts.counterPeriodMs ?? COUNTER_WRITE_PERIOD_MS;
    const kc = opts.kubeConfig;
    this.core = kc.makeApiClient(CoreV1Api);
    this.custom = kc.makeApiClient(CustomObjectsApi);
    this.chains = new ResilientInformer({
      kubeConfig: kc,
      name: 'chains',
      path: `/apis/${CHAIN_GROUP}/${CHAIN_VERSION}/${CHAIN_PLURAL}`,
      list: () => this.custom.listClusterCustomObject({ group: CHAIN_GROUP, version: CHAIN_VERSION, plural: CHAIN_PLURAL }) as Promise<KubernetesListObject<ServiceChain>>,
    });
    this.pods = new ResilientInformer<V1Pod>({ kubeConfig: kc, name: 'chains-pods', path: '/api/v1/pods', list: () => this.core.listPodForAllNamespaces() });
    this.namespaces = new ResilientInformer<V1Namespace>({ kubeConfig: kc, name: 'chains-namespaces', path: '/api/v1/namespaces', list: () => this.core.listNamespace() });
    this.nodes = new ResilientInformer<V1Node>({ kubeConfig: kc, name: 'chains-nodes', path: '/api/v1/nodes', list: () => this.core.listNode() });
    this.nads = new ResilientInformer<Nad>({
      kubeConfig: kc,
      name: 'chains-nads',
      path: NAD_PATH,
      list: () => this.custom.listClusterCustomObject({ group: 'k8s.cni.cncf.io', version: 'v1', plural: 'network-attachment-definitions' }) as Promise<KubernetesListObject<Nad>>,
    });
    // Any change can change any chain (selectors, overlaps, reports): every chain is looked at again; the
    // queue folds repeats into one pass per chain.
    const all = (): void => this.enqueueAll();
    for (const inf of [this.pods, this.namespaces, this.nodes, this.nads] as Array<ResilientInformer<never>>) inf.on('add', all).on('update', all).on('delete', all);
    this.chains.on('add', all).on('update', all).on('delete', (c: ServiceChain) => {
      this.queue.add(chainKey(c));
      all();
    });
  }

  /** Resolves once every informer has listed and chains are being synced (or when stopped first). */
  async start(): Promise<void> {
    for (const inf of [this.nodes, this.namespaces, this.pods, this.nads, this.chains] as Array<ResilientInformer<never>>) {
      // Until the CRDs are installed the list fails: keep trying, as the informer does for watches.
      await inf.startRetrying({ everyMs: 1000, cancelled: () => this.stopped, onFirstFailure: (e) => this.log.warn({ err: apiMessage(e) }, 'informer did not start; retrying every second') });
    }
    if (this.stopped) return;
    this.seed();
    this.synced = true;
    this.queue.start(
      (key) => this.sync(key),
      (key, err) => this.log.warn({ chain: key, err: apiMessage(err) }, 'chain sync failed; retrying'),
    );
    this.enqueueAll();
    this.log.info({ chains: this.chains.list().length, indexes: this.indexes.size }, 'chain controller synced');
  }

  /** Every replica of every chain with its health, as the chains' status last said (for the metrics). */
  replicaHealth(): Array<{ namespace: string; chain: string; hop: string; replica: string; healthy: boolean }> {
    return this.chains.list().flatMap((c) =>
      (c.status?.hops ?? []).flatMap((h) =>
        (h.replicas ?? []).map((r) => ({ namespace: c.metadata.namespace ?? '', chain: c.metadata.name ?? '', hop: h.name, replica: r.pod, healthy: r.healthy })),
      ),
    );
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.queue.stop();
    await Promise.all([this.chains, this.pods, this.namespaces, this.nodes, this.nads].map((i) => i.stop()));
  }

  get isSynced(): boolean {
    return this.synced;
  }

  private enqueueAll(): void {
    if (!this.synced) return;
    for (const c of this.chains.list()) this.queue.add(chainKey(c));
  }

  /** Takes over the indexes and ids in status; of two chains claiming one index, the older keeps it. */
  private seed(): void {
    const age = (c: ServiceChain): number => new Date(String(c.metadata.creationTimestamp ?? 0)).getTime() || 0;
    const byAge = [...this.chains.list()].sort((a, b) => age(a) - age(b) || chainKey(a).localeCompare(chainKey(b)));
    const taken = new Set<number>();
    for (const c of byAge) {
      const uid = c.metadata.uid ?? '';
      this.uids.set(chainKey(c), uid);
      const index = c.status?.index;
      if (index !== undefined && index >= 1 && index <= MAX_CHAIN_INDEX && !taken.has(index)) {
        taken.add(index);
        this.indexes.set(uid, index);
      }
      this.seedReplicaIds(c);
    }
  }

  private seedReplicaIds(c: ServiceChain): void {
    const uid = c.metadata.uid ?? '';
    if (this.replicaIds.has(uid)) return;
    const hops = new Map<string, Map<string, number>>();
    for (const h of c.status?.hops ?? []) hops.set(h.name, new Map((h.replicas ?? []).map((r) => [r.podUID, r.id])));
    this.replicaIds.set(uid, hops);
  }

  private forget(key: string): void {
    const uid = this.uids.get(key);
    this.uids.delete(key);
    if (uid === undefined) return;
    const index = this.indexes.get(uid);
    this.indexes.delete(uid);
    this.replicaIds.delete(uid);
    this.written.delete(uid);
    if (index !== undefined) this.log.info({ chain: key, index }, 'chain deleted; index freed');
  }

  /** The network's verdict: undefined when the chain may live there. */
  private networkProblem(chain: ServiceChain): Verdict | undefined {
    const network = chainNetwork(chain);
    if (network === '') return undefined;
    const [ns, name] = network.split('/') as [string, string];
    const nad = this.nads.get(name, ns);
    if (!nad) return { reason: ChainReason.NetworkNotFound, message: `spec.network: NetworkAttachmentDefinition ${network} does not exist` };
    const net = chainNetworkOf(nad);
    if ('problem' in net) return { reason: ChainReason.UnsupportedNetwork, message: `spec.network: ${net.problem} (chains need Seine's datapath)` };
    return undefined;
  }

  private specValid(chain: ServiceChain): boolean {
    return validateChainSpec(chain.spec).length === 0;
  }

  private async sync(key: string): Promise<void> {
    if (this.stopped) return;
    const [ns, name] = key.split('/') as [string, string];
    const chain = this.chains.get(name, ns);
    const knownUid = this.uids.get(key);
    if (!chain || (knownUid !== undefined && knownUid !== chain.metadata.uid)) this.forget(key);
    if (!chain) return;
    const uid = chain.metadata.uid ?? '';
    this.uids.set(key, uid);
    this.seedReplicaIds(chain);

    const problems = validateChainSpec(chain.spec);
    let invalid: Verdict | undefined = problems.length ? { reason: ChainReason.InvalidSpec, message: describeProblems(problems) } : this.networkProblem(chain);
    let index = this.indexes.get(uid);
    if (!invalid && index === undefined) {
      index = lowestFree(new Set(this.indexes.values()), MAX_CHAIN_INDEX);
      if (index === undefined) invalid = { reason: ChainReason.NoIndex, message: `all ${MAX_CHAIN_INDEX} chain indexes are in use by other chains` };
      else {
        this.indexes.set(uid, index);
        this.log.info({ chain: key, index }, 'chain index assigned');
      }
    }

    const pods = this.pods.list();
    const podsByUid = new Map(pods.map((p) => [p.metadata?.uid ?? '', p]));
    const hopIds = new Map<string, Map<string, number>>();
    const unassigned = new Map<string, number>();
    if (!problems.length) {
      const previous = this.replicaIds.get(uid)!;
      const existing = new Set([...podsByUid.values()].filter((p) => p.metadata?.namespace === ns).map((p) => p.metadata?.uid ?? ''));
      for (const hop of chain.spec.hops) {
        const assigned = assignReplicaIds(previous.get(hop.name) ?? new Map(), hopCandidates(chain, hop, pods), existing);
        hopIds.set(hop.name, assigned.ids);
        if (assigned.unassigned.length) unassigned.set(hop.name, assigned.unassigned.length);
      }
      this.replicaIds.set(uid, hopIds);
    }

    const status = chainStatus({
      chain,
      ...(index !== undefined ? { index } : {}),
      ...(invalid ? { invalid } : {}),
      replicaIds: hopIds,
      unassigned,
      pods: podsByUid,
      reports: nodeReports(this.nodes.list()),
      ...(invalid ? {} : { overlap: this.overlapOf(chain) }),
      previous: this.written.get(uid)?.status ?? chain.status,
      now: new Date().toISOString(),
    });
    await this.write(chain, status);
  }

  /** The valid chains on the same network that classify some of the same packets as `chain`. */
  private overlapOf(chain: ServiceChain): { others: string[]; order: string[] } {
    const network = chainNetwork(chain);
    const namespaces = this.namespaces.list();
    const pods = this.pods.list();
    const mine: ChainClassifier = chainClassifier(chain, pods, namespaces);
    const others = this.chains
      .list()
      .filter((c) => c.metadata.uid !== chain.metadata.uid && chainNetwork(c) === network && this.specValid(c))
      .filter((c) => classifiersOverlap(mine, chainClassifier(c, pods, namespaces)));
    return { others: others.map(chainKey).sort(), order: [chain, ...others].sort(comparePrecedence).map(chainKey) };
  }

  private async write(chain: ServiceChain, status: ServiceChainStatus): Promise<void> {
    const uid = chain.metadata.uid ?? '';
    const key = chainKey(chain);
    const last = this.written.get(uid);
    const before = last?.status ?? chain.status;
    const same = JSON.stringify(before) === JSON.stringify(status);
    if (same) return;
    const wait = counterWriteDelay(before, status, last?.at, this.counterPeriodMs, Date.now());
    if (wait > 0) {
      this.queue.addAfter(key, wait);
      return;
    }
    // A merge patch replaces lists whole; fields this status has not are removed with null.
    const body = { status: { ...status, index: status.index ?? null } };
    try {
      await this.custom.patchNamespacedCustomObjectStatus(
        { group: CHAIN_GROUP, version: CHAIN_VERSION, namespace: chain.metadata.namespace!, plural: CHAIN_PLURAL, name: chain.metadata.name!, body },
        MERGE_PATCH,
      );
    } catch (e) {
      if (isNotFound(e)) return;
      throw e;
    }
    this.written.set(uid, { status, at: Date.now() });
    this.reportChanges(chain, before, status);
  }

  /** Events for conditions that changed: Invalid and Degraded as warnings, Ready as news. */
  private reportChanges(chain: ServiceChain, before: ServiceChainStatus | undefined, after: ServiceChainStatus): void {
    const ref = { kind: CHAIN_KIND, apiVersion: CHAIN_API_VERSION, name: chain.metadata.name!, namespace: chain.metadata.namespace!, uid: chain.metadata.uid };
    const cond = (s: ServiceChainStatus | undefined, type: string) => s?.conditions?.find((c) => c.type === type);
    for (const type of [ChainConditionType.Invalid, ChainConditionType.Degraded, ChainConditionType.Ready]) {
      const a = cond(before, type);
      const b = cond(after, type);
      if (!b || (a && a.status === b.status && a.reason === b.reason && a.message === b.message)) continue;
      if (type === ChainConditionType.Ready) {
        if (b.status === 'True' && a?.status !== 'True') void this.opts.events.record(ref, 'Normal', 'ChainReady', b.message);
        continue;
      }
      if (b.status === 'True') {
        this.log.warn({ chain: chainKey(chain), condition: type, reason: b.reason }, b.message);
        void this.opts.events.record(ref, 'Warning', b.reason, b.message);
      } else if (a?.status === 'True') void this.opts.events.record(ref, 'Normal', type === ChainConditionType.Invalid ? 'ChainValid' : 'ChainRecovered', b.message);
    }
  }
}

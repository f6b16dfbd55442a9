// The controller's part of Traceflow: a new trace gets its packet resolved from the objects it names (or fails with
// the reason), a DSCP tag no other running trace holds, its source node and a start time, and runs; a trace that has
// not ended within its timeout fails, saying which nodes never got ready or that no node saw the packet's end.
import { CoreV1Api, CustomObjectsApi, type KubeConfig, type KubernetesListObject } from '@kubernetes/client-node';
import { unlessNotFound } from '../../k8s/api.js';
import { ResilientInformer } from '../../k8s/informer.js';
import { WorkQueue } from '../../primary/controller/queue.js';
import { logger } from '../../util/log.js';
import { updateTraceStatus } from '../api/status.js';
import { DEFAULT_TIMEOUT_SECONDS, isFinished, MAX_TAG, TRACEFLOW_GROUP, TRACEFLOW_PLURAL, TRACEFLOW_VERSION, type Traceflow, type TraceflowStatus, type TraceNetwork, type TracePacket } from '../api/types.js';
import { isFailure, resolvePacket } from '../model/packet.js';
import { networkRef, resolveSecondaryPacket } from '../model/secondary.js';
import type { NetworkAttachmentDefinition } from '../../secondary/nad/index.js';
import { freeTag, tagConflicts } from '../model/tags.js';

const NAD_GROUP = 'k8s.cni.cncf.io';
const NAD_PLURAL = 'network-attachment-definitions';

/** How often a missing Traceflow CRD is looked for again. */
const CRD_RETRY_MS = 5000;

export class TraceflowController {
  private readonly log = logger('traceflow-controller');
  private readonly core: CoreV1Api;
  private readonly custom: CustomObjectsApi;
  private readonly traces: ResilientInformer<Traceflow>;
  private readonly queue = new WorkQueue();
  private readonly timers = new Map<string, NodeJS.Timeout>();
  /** Tags given out by this controller that the informer may not show yet. */
  private readonly given = new Map<string, number>();
  private stopped = false;

  constructor(opts: { kubeConfig: KubeConfig }) {
    this.core = opts.kubeConfig.makeApiClient(CoreV1Api);
    this.custom = opts.kubeConfig.makeApiClient(CustomObjectsApi);
    this.traces = new ResilientInformer<Traceflow>({
      kubeConfig: opts.kubeConfig,
      name: 'traceflows',
      path: `/apis/${TRACEFLOW_GROUP}/${TRACEFLOW_VERSION}/${TRACEFLOW_PLURAL}`,
      list: () => this.custom.listClusterCustomObject({ group: TRACEFLOW_GROUP, version: TRACEFLOW_VERSION, plural: TRACEFLOW_PLURAL }) as Promise<KubernetesListObject<Traceflow>>,
    });
    const changed = (tf: Traceflow): void => this.queue.add(tf.metadata.name!);
    this.traces.on('add', changed).on('update', changed).on('delete', changed);
  }

  async start(): Promise<void> {
    this.queue.start(
      async (name) => {
        await this.sync(name);
        this.queue.forget(name);
      },
      (name, e) => this.log.warn({ trace: name, err: String(e) }, 'trace not handled; retrying'),
    );
    await this.traces.startRetrying({ everyMs: CRD_RETRY_MS, cancelled: () => this.stopped, onFirstFailure: (e) => this.log.warn({ err: String(e) }, 'cannot list Traceflows (CRD not installed?); retrying') });
    // After a restart: two running traces that a race gave one tag cannot both be observed.
    const runningNow = this.traces.list().filter((t) => t.status?.phase === 'Running').sort((a, b) => String(a.metadata.creationTimestamp).localeCompare(String(b.metadata.creationTimestamp)));
    for (const loser of tagConflicts(runningNow.map((t) => ({ name: t.metadata.name!, tag: t.status?.tag })))) {
      await this.finish(loser, 'TagConflict', 'another running trace holds the same tag; create the trace again');
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
    await this.queue.stop();
    await this.traces.stop();
  }

  private async sync(name: string): Promise<void> {
    if (this.stopped) return;
    const tf = this.traces.get(name);
    if (!tf || isFinished(tf)) {
      clearTimeout(this.timers.get(name));
      this.timers.delete(name);
      this.given.delete(name);
      return;
    }
    if (tf.status?.phase === 'Running') return this.armTimeout(tf);
    await this.begin(tf);
  }

  /** Resolves the packet, gives out a tag and starts the trace; or fails it with the reason. */
  private async begin(tf: Traceflow): Promise<void> {
    const name = tf.metadata.name!;
    const spec = tf.spec;
    const source = await unlessNotFound(() => this.core.readNamespacedPod({ namespace: spec.source.namespace, name: spec.source.pod }));
    const dstNamespace = spec.destination.namespace ?? spec.source.namespace;
    const { pod, service: svc } = spec.destination;
    const destinationPod = pod !== undefined ? await unlessNotFound(() => this.core.readNamespacedPod({ namespace: dstNamespace, name: pod })) : undefined;
    const service = svc !== undefined ? await unlessNotFound(() => this.core.readNamespacedService({ namespace: dstNamespace, name: svc })) : undefined;
    let packet: TracePacket;
    let network: TraceNetwork | undefined;
    if (spec.network !== undefined) {
      const ref = networkRef(spec);
      const nad = (await unlessNotFound(() => this.custom.getNamespacedCustomObject({ group: NAD_GROUP, version: 'v1', plural: NAD_PLURAL, ...ref }))) as NetworkAttachmentDefinition | undefined;
      const pods = spec.destination.ip !== undefined ? (await this.core.listPodForAllNamespaces()).items : undefined;
      const r = resolveSecondaryPacket(spec, { ...(source ? { source } : {}), ...(destinationPod ? { destinationPod } : {}), ...(nad ? { nad } : {}), ...(pods ? { pods } : {}) });
      if ('reason' in r) return this.finish(name, r.reason, r.message);
      ({ packet, network } = r);
    } else {
      const r = resolvePacket(spec, { ...(source ? { source } : {}), ...(destinationPod ? { destinationPod } : {}), ...(service ? { service } : {}) });
      if (isFailure(r)) return this.finish(name, r.reason, r.message);
      packet = r;
    }
    const held = [...this.traces.list().filter((t) => t.status?.phase === 'Running' && t.metadata.name !== name).map((t) => t.status!.tag!), ...[...this.given].filter(([n]) => n !== name).map(([, t]) => t)];
    const tag = freeTag(held);
    if (tag === undefined) return this.finish(name, 'TooManyTraces', `all ${MAX_TAG} tags are held by running traces; try again when one has ended`);
    this.given.set(name, tag);
    const written = await updateTraceStatus(this.custom, name, (cur): TraceflowStatus | undefined =>
      cur.status?.phase ? undefined : { phase: 'Running', tag, startTime: new Date().toISOString(), sourceNode: source!.spec!.nodeName!, ...(network ? { network } : {}), packet, readyNodes: [], message: 'waiting for every node to install the observation flows' },
    );
    this.log.info({ trace: name, tag, packet }, 'trace started');
    if (written) this.armTimeout(written);
  }

  private armTimeout(tf: Traceflow): void {
    const name = tf.metadata.name!;
    if (this.timers.has(name)) return;
    const started = Date.parse(tf.status?.startTime ?? '') || Date.now();
    const due = started + (tf.spec.timeoutSeconds ?? DEFAULT_TIMEOUT_SECONDS) * 1000;
    const t = setTimeout(() => {
      this.timers.delete(name);
      void this.timeOut(name).catch((e: unknown) => this.log.error({ trace: name, err: String(e) }, 'cannot time a trace out'));
    }, Math.max(0, due - Date.now()));
    this.timers.set(name, t);
  }

  private async timeOut(name: string): Promise<void> {
    await updateTraceStatus(this.custom, name, (cur) => {
      const s = cur.status;
      if (s?.phase !== 'Running') return undefined;
      const ready = new Set(s.readyNodes ?? []);
      const message = s.verdict
        ? `the packet's end was seen (${s.verdict}) but not the source node ${s.sourceNode}'s observations`
        : (s.results ?? []).length
          ? `no node saw where the packet's path ended (seen on ${[...new Set(s.results!.map((r) => r.node))].join(', ')})`
          : cur.spec.liveTraffic && !s.capturedPacket && ready.size
            ? `${cur.spec.source.namespace}/${cur.spec.source.pod} sent no matching packet (ready: ${[...ready].join(', ')})`
            : ready.size
            ? `no node saw the packet (ready: ${[...ready].join(', ')}; every node must be ready before it is sent)`
            : 'no node installed the observation flows (is the Seine agent running?)';
      return { ...s, phase: 'Failed', reason: 'Timeout', message: `timed out after ${cur.spec.timeoutSeconds ?? DEFAULT_TIMEOUT_SECONDS}s: ${message}` };
    });
  }

  private async finish(name: string, reason: string, message: string): Promise<void> {
    this.log.info({ trace: name, reason, message }, 'trace failed');
    await updateTraceStatus(this.custom, name, (cur) => (isFinished(cur) ? undefined : { ...(cur.status ?? {}), phase: 'Failed', reason, message }));
  }
}

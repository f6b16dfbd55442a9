import {
  CoreV1Api,
  DiscoveryV1Api,
  type KubeConfig,
  type V1Endpoint,
  type DiscoveryV1EndpointPort as V1EndpointPort,
  type V1EndpointSlice,
  type V1Pod,
  type V1Service,
  type V1ServicePort,
} from '@kubernetes/client-node';
import { isDeepStrictEqual } from 'node:util';
import { apiMessage, isNotFound } from '../k8s/api.js';
import { ResilientInformer } from '../k8s/informer.js';
import { logger } from '../util/log.js';

// The lab's stand-in for kube-controller-manager's EndpointSlice controller (pkg/controller/endpointslice and
// staging/src/k8s.io/endpointslice): each Service with a selector gets discovery.k8s.io/v1 EndpointSlices listing
// the pods it selects, with their readiness, serving and terminating conditions and ports resolved per pod.

export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';
export const MANAGED_BY_LABEL = 'endpointslice.kubernetes.io/managed-by';
export const CONTROLLER_NAME = 'endpointslice-controller.k8s.io';
const HEADLESS_LABEL = 'service.kubernetes.io/headless';
/** kube-controller-manager's --max-endpoints-per-slice default. */
export const MAX_ENDPOINTS_PER_SLICE = 100;

/** Endpoints that share one set of ports; pods whose named ports resolve differently land in different groups. */
export interface EndpointGroup {
  ports: V1EndpointPort[];
  endpoints: V1Endpoint[];
}

/** A slice to write: `name` unset means create (with generateName). */
export interface SlicePlan {
  create: V1EndpointSlice[];
  update: V1EndpointSlice[];
  delete: V1EndpointSlice[];
}

function podReady(pod: V1Pod): boolean {
  return (pod.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');
}

/** ShouldPodBeInEndpoints with terminating pods included, as EndpointSlices carry them. */
function podHasEndpoint(pod: V1Pod): boolean {
  const phase = pod.status?.phase;
  return phase !== 'Succeeded' && phase !== 'Failed' && !!pod.status?.podIP;
}

/** FindPort: a numeric targetPort as is, a named one from the pod's container ports of the same protocol. */
function findPort(pod: V1Pod, sp: V1ServicePort): number | undefined {
  const target = sp.targetPort ?? sp.port;
  if (typeof target === 'number') return target;
  const protocol = sp.protocol ?? 'TCP';
  for (const c of [...(pod.spec?.containers ?? []), ...(pod.spec?.initContainers ?? [])]) {
    for (const p of c.ports ?? []) if (p.name === target && (p.protocol ?? 'TCP') === protocol) return p.containerPort;
  }
  return undefined;
}

function selects(selector: Record<string, string>, pod: V1Pod): boolean {
  const labels = pod.metadata?.labels ?? {};
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}

/** Whether the controller keeps slices for this Service at all. */
export function hasManagedEndpoints(svc: V1Service): boolean {
  return svc.spec?.type !== 'ExternalName' && !!svc.spec?.selector && Object.keys(svc.spec.selector).length > 0;
}

/** The endpoints of a Service, grouped by the ports they resolve to (pure). */
export function endpointGroups(svc: V1Service, pods: readonly V1Pod[]): EndpointGroup[] {
  const groups = new Map<string, EndpointGroup>();
  const selector = svc.spec?.selector ?? {};
  const publishNotReady = svc.spec?.publishNotReadyAddresses === true;
  for (const pod of pods) {
    if (pod.metadata?.namespace !== svc.metadata?.namespace || !selects(selector, pod) || !podHasEndpoint(pod)) continue;
    const ports: V1EndpointPort[] = [];
    for (const sp of svc.spec?.ports ?? []) {
      const port = findPort(pod, sp);
      // A pod without the named port serves the Service's other ports only, as upstream.
      if (port === undefined) continue;
      ports.push({ name: sp.name ?? '', port, protocol: sp.protocol ?? 'TCP', ...(sp.appProtocol ? { appProtocol: sp.appProtocol } : {}) });
    }
    const ready = podReady(pod);
    const terminating = !!pod.metadata?.deletionTimestamp;
    const endpoint: V1Endpoint = {
      addresses: [pod.status!.podIP!],
      // "ready" is never true for a terminating pod unless the Service publishes not-ready addresses.
      conditions: { ready: publishNotReady || (ready && !terminating), serving: ready, terminating },
      targetRef: { kind: 'Pod', namespace: pod.metadata!.namespace, name: pod.metadata!.name, uid: pod.metadata!.uid },
      ...(pod.spec?.nodeName ? { nodeName: pod.spec.nodeName } : {}),
      ...(pod.spec?.hostname && pod.spec.subdomain === svc.metadata?.name ? { hostname: pod.spec.hostname } : {}),
    };
    const key = JSON.stringify(ports);
    const group = groups.get(key) ?? { ports, endpoints: [] };
    group.endpoints.push(endpoint);
    groups.set(key, group);
  }
  for (const g of groups.values()) g.endpoints.sort((a, b) => (a.targetRef!.name! < b.targetRef!.name! ? -1 : a.targetRef!.name! > b.targetRef!.name! ? 1 : 0));
  return [...groups.values()];
}

function sliceLabels(svc: V1Service): Record<string, string> {
  const labels: Record<string, string> = { ...(svc.metadata?.labels ?? {}) };
  delete labels[HEADLESS_LABEL];
  if (svc.spec?.clusterIP === 'None') labels[HEADLESS_LABEL] = '';
  labels[SERVICE_NAME_LABEL] = svc.metadata!.name!;
  labels[MANAGED_BY_LABEL] = CONTROLLER_NAME;
  return labels;
}

/** Plain JSON, so objects decoded by the client and ones built here compare by content. */
const plain = (v: unknown): unknown => JSON.parse(JSON.stringify(v ?? null)) as unknown;

/**
 * How to turn the existing managed slices into the desired ones (pure): endpoints stay in the slice that holds
 * them, new ones fill slices with room (at most MAX_ENDPOINTS_PER_SLICE), then new slices; emptied and
 * mismatched slices go. A Service with no endpoints keeps one empty placeholder slice, as upstream.
 */
export function planSlices(svc: V1Service, groups: readonly EndpointGroup[], existing: readonly V1EndpointSlice[], max = MAX_ENDPOINTS_PER_SLICE): SlicePlan {
  const plan: SlicePlan = { create: [], update: [], delete: [] };
  const labels = sliceLabels(svc);
  const owner = { apiVersion: 'v1', kind: 'Service', name: svc.metadata!.name!, uid: svc.metadata!.uid!, controller: true, blockOwnerDeletion: true };
  const wanted = groups.length > 0 ? groups : [{ ports: [], endpoints: [] }];
  const byKey = new Map<string, V1EndpointSlice[]>();
  for (const s of [...existing].sort((a, b) => (a.metadata!.name! < b.metadata!.name! ? -1 : 1))) {
    const key = JSON.stringify(plain(s.ports ?? []));
    byKey.set(key, [...(byKey.get(key) ?? []), s]);
  }
  for (const group of wanted) {
    const key = JSON.stringify(plain(group.ports));
    const slices = byKey.get(key) ?? [];
    byKey.delete(key);
    const desired = new Map(group.endpoints.map((e) => [e.addresses[0]!, e]));
    const filled = slices.map((s) => {
      const kept: V1Endpoint[] = [];
      for (const e of s.endpoints ?? []) {
        const want = desired.get(e.addresses?.[0] ?? '');
        if (want && kept.length < max) {
          kept.push(want);
          desired.delete(want.addresses[0]!);
        }
      }
      return { slice: s, endpoints: kept };
    });
    const rest = [...desired.values()];
    for (const f of filled) while (f.endpoints.length < max && rest.length > 0) f.endpoints.push(rest.shift()!);
    const placeholder = group.endpoints.length === 0;
    filled.forEach((f, i) => {
      if (f.endpoints.length === 0 && !(placeholder && i === 0)) return void plan.delete.push(f.slice);
      const next: V1EndpointSlice = {
        ...f.slice,
        metadata: { ...f.slice.metadata, labels, ownerReferences: [owner] },
        addressType: 'IPv4',
        endpoints: f.endpoints,
        ports: group.ports,
      };
      const same = isDeepStrictEqual(plain([f.slice.metadata?.labels, f.slice.metadata?.ownerReferences, f.slice.addressType, f.slice.endpoints ?? [], f.slice.ports ?? []]), plain([labels, [owner], 'IPv4', f.endpoints, group.ports]));
      if (!same) plan.update.push(next);
    });
    const fresh = (endpoints: V1Endpoint[]): V1EndpointSlice => ({
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { generateName: `${svc.metadata!.name!}-`, namespace: svc.metadata!.namespace!, labels, ownerReferences: [owner] },
      addressType: 'IPv4',
      endpoints,
      ports: group.ports,
    });
    for (let i = 0; i < rest.length; i += max) plan.create.push(fresh(rest.slice(i, i + max)));
    if (placeholder && filled.length === 0) plan.create.push(fresh([]));
  }
  for (const leftover of byKey.values()) plan.delete.push(...leftover);
  return plan;
}

export interface EndpointSliceControllerOptions {
  /** Changes arriving within this window are handled in one pass per Service (default 100 ms). */
  batchDelayMs?: number;
}

const RETRY_MS = 1000;

/** Keeps the managed EndpointSlices of every Service in step with its pods; reacts through informers. */
export class EndpointSliceController {
  private readonly core: CoreV1Api;
  private readonly discovery: DiscoveryV1Api;
  private readonly services: ResilientInformer<V1Service>;
  private readonly pods: ResilientInformer<V1Pod>;
  private readonly slices: ResilientInformer<V1EndpointSlice>;
  private readonly log = logger('endpointslice-controller');
  private readonly pending = new Set<string>();
  private timer?: NodeJS.Timeout;
  private readonly retries = new Set<NodeJS.Timeout>();
  private running: Promise<void> = Promise.resolve();
  private stopped = true;
  private readonly batchDelayMs: number;

  constructor(kc: KubeConfig, opts: EndpointSliceControllerOptions = {}) {
    this.batchDelayMs = opts.batchDelayMs ?? 100;
    this.core = kc.makeApiClient(CoreV1Api);
    this.discovery = kc.makeApiClient(DiscoveryV1Api);
    this.services = new ResilientInformer<V1Service>({ kubeConfig: kc, name: 'endpointslice-services', path: '/api/v1/services', list: () => this.core.listServiceForAllNamespaces() });
    this.pods = new ResilientInformer<V1Pod>({ kubeConfig: kc, name: 'endpointslice-pods', path: '/api/v1/pods', list: () => this.core.listPodForAllNamespaces() });
    const managed = `${MANAGED_BY_LABEL}=${CONTROLLER_NAME}`;
    this.slices = new ResilientInformer<V1EndpointSlice>({
      kubeConfig: kc,
      name: 'endpointslice-slices',
      path: '/apis/discovery.k8s.io/v1/endpointslices',
      labelSelector: managed,
      list: () => this.discovery.listEndpointSliceForAllNamespaces({ labelSelector: managed }),
    });
    const onService = (s: V1Service): void => this.enqueue(`${s.metadata!.namespace}/${s.metadata!.name}`);
    this.services.on('add', onService).on('update', onService).on('delete', onService);
    // A pod may have left a Service's selector as well as joined one: every Service of its namespace looks again.
    const onPod = (p: V1Pod): void => {
      for (const s of this.services.list(p.metadata!.namespace)) if (hasManagedEndpoints(s)) onService(s);
    };
    this.pods.on('add', onPod).on('update', onPod).on('delete', onPod);
    // Someone else changed or removed a managed slice: put it right.
    const onSlice = (s: V1EndpointSlice): void => {
      const svc = s.metadata?.labels?.[SERVICE_NAME_LABEL];
      if (svc) this.enqueue(`${s.metadata!.namespace}/${svc}`);
    };
    this.slices.on('update', onSlice).on('delete', onSlice);
  }

  async start(): Promise<void> {
    this.stopped = false;
    await this.services.start();
    await this.pods.start();
    await this.slices.start();
    // The initial sync: every Service, and every Service some managed slice names (it may be gone).
    for (const s of this.services.list()) this.enqueue(`${s.metadata!.namespace}/${s.metadata!.name}`);
    for (const s of this.slices.list()) {
      const svc = s.metadata?.labels?.[SERVICE_NAME_LABEL];
      if (svc) this.enqueue(`${s.metadata!.namespace}/${svc}`);
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    for (const t of this.retries) clearTimeout(t);
    this.retries.clear();
    await Promise.all([this.services.stop(), this.pods.stop(), this.slices.stop()]);
    await this.running;
  }

  private enqueue(key: string): void {
    if (this.stopped) return;
    this.pending.add(key);
    this.timer ??= setTimeout(() => {
      this.timer = undefined;
      const keys = [...this.pending];
      this.pending.clear();
      this.running = this.running.then(() => this.syncAll(keys));
    }, this.batchDelayMs);
  }

  private async syncAll(keys: string[]): Promise<void> {
    for (const key of keys) {
      if (this.stopped) return;
      try {
        await this.sync(key);
      } catch (e) {
        this.log.warn({ service: key, err: apiMessage(e) }, 'endpointslice sync failed; retrying');
        const t = setTimeout(() => {
          this.retries.delete(t);
          this.enqueue(key);
        }, RETRY_MS);
        this.retries.add(t);
      }
    }
  }

  private async sync(key: string): Promise<void> {
    const [namespace, name] = key.split('/') as [string, string];
    const svc = this.services.get(name, namespace);
    // Slices are read from the server, not the informer: serialized syncs then always see their own writes.
    const existing = (await this.discovery.listNamespacedEndpointSlice({ namespace, labelSelector: `${SERVICE_NAME_LABEL}=${name},${MANAGED_BY_LABEL}=${CONTROLLER_NAME}` })).items;
    const plan: SlicePlan =
      svc && hasManagedEndpoints(svc) ? planSlices(svc, endpointGroups(svc, this.pods.list(namespace)), existing) : { create: [], update: [], delete: [...existing] };
    for (const s of plan.delete) {
      try {
        await this.discovery.deleteNamespacedEndpointSlice({ name: s.metadata!.name!, namespace });
      } catch (e) {
        if (!isNotFound(e)) throw e;
      }
    }
    for (const s of plan.update) await this.discovery.replaceNamespacedEndpointSlice({ name: s.metadata!.name!, namespace, body: s });
    for (const s of plan.create) await this.discovery.createNamespacedEndpointSlice({ namespace, body: s });
    if (plan.create.length + plan.update.length + plan.delete.length > 0) {
      this.log.debug({ service: key, created: plan.create.length, updated: plan.update.length, deleted: plan.delete.length }, 'endpointslices synced');
    }
  }
}

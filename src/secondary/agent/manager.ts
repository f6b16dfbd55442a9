import { CoreV1Api, CustomObjectsApi, type KubeConfig, type V1Node, type V1Pod } from '@kubernetes/client-node';
import { k8sCniArgs } from '../../cni/args.js';
import { parseConfList } from '../../cni/conf.js';
import { cachedConfig } from '../../cni/cache.js';
import { CniCode, CniError } from '../../cni/errors.js';
import { invokeAdd, invokeNoResult } from '../../cni/invoke.js';
import { CniRuntime } from '../../cni/runtime.js';
import type { CniResult, CniRoute, NetConfList } from '../../cni/types.js';
import { MERGE_PATCH, apiMessage, isNotFound } from '../../k8s/api.js';
import { EventRecorder } from '../../k8s/events.js';
import { ResilientInformer } from '../../k8s/informer.js';
import type { NewSandbox, PodSandbox, SandboxRef } from '../../agent/feature.js';
import { logger } from '../../util/log.js';
import { IpRoute } from '../../host/ip.js';
import { hostInterfaceName, randomMac } from '../../podif/interface.js';
import {
  NETWORK_STATUS_ANNOTATION,
  NETWORKS_ANNOTATION,
  NetworksAnnotationError,
  buildNetworkStatus,
  capabilityArgs,
  diffAttachments,
  keepInterfaceNames,
  parseNetworksAnnotation,
  requestFingerprint,
  serializeNetworkStatus,
  type NetworkSelection,
} from '../annotations/index.js';
import { EXT } from '../datapath/names.js';
import type { SecondaryDatapath, NetworkRealization } from '../datapath/types.js';
import { IPPoolAllocator } from '../ippool/index.js';
import {
  NODE_UPLINKS_ANNOTATION,
  checkCapabilities,
  loadNodeNetworkConfig,
  parseNad,
  parseNodeUplinksAnnotation,
  resolveUplink,
  type NadNetwork,
  type NadRef,
  type NetworkAttachmentDefinition,
  type SegmentNetwork,
} from '../nad/index.js';
import { SEC, attachmentId, recordFromPort, type AttachmentRecord } from './records.js';

/** Node annotation listing the overlay VNIs with pods on the node: peers tunnel to exactly those nodes. */
export const NODE_OVERLAYS_ANNOTATION = 'seine.dev/overlay-vnis';

export interface SecondaryManagerOptions {
  kubeConfig: KubeConfig;
  nodeName: string;
  /** The node's host network namespace for delegated plugins (absent: this process's). */
  hostNetns?: string;
  datapath: SecondaryDatapath;
  /** Where delegated plugin results are cached (libcni layout). */
  delegateCacheDir: string;
  /** The node's CNI config directory (NADs without spec.config name a config there). */
  cniConfDir: string;
  /** The default network's name in network-status. */
  defaultNetworkName: string;
  /** Agent-config uplinks of VLAN bridges (bridge -> interface). */
  uplinks: Record<string, string>;
  mtu: { vlan: number; overlay: number };
  /** The pod network's bridge and pod MTU: unbound function ports (CNF interfaces of service chains) go there. */
  podNetwork: { bridge: string; mtu: number };
}

function cniFailure(e: unknown, what: string): CniError {
  if (e instanceof CniError) return new CniError(e.code, `${what}: ${e.msg}`, e.details);
  return new CniError(CniCode.Internal, what, e instanceof Error ? e.message : String(e));
}

const podKey = (p: V1Pod): string => `${p.metadata?.namespace}/${p.metadata?.name}`;

/** How long a stopping agent waits for its IP pools' usage writes. */
const USAGE_SETTLE_MS = 2000;

/**
 * Secondary networks of this node's pods: reads the networks annotation, resolves each NetworkAttachmentDefinition,
 * attaches Seine's own VLAN/overlay networks through the secondary datapath (cluster-wide IP pools, static or
 * plugin IPAM) and delegates every other network to its CNI plugins; writes network-status; follows annotation
 * changes on running pods (hot-plug).
 */
export class SecondaryNetworkManager {
  private readonly log = logger('secondary');
  private readonly core: CoreV1Api;
  private readonly custom: CustomObjectsApi;
  private readonly events: EventRecorder;
  readonly allocator: IPPoolAllocator;
  private readonly delegates: CniRuntime;
  private readonly nads: ResilientInformer<NetworkAttachmentDefinition & { apiVersion?: string; kind?: string }>;
  private readonly nodes: ResilientInformer<V1Node>;
  /** Attachments by sandbox, in attachment order. */
  private readonly byContainer = new Map<string, AttachmentRecord[]>();
  /** Sandboxes whose pods this node runs: what hot-plug needs to act. */
  private readonly sandboxes = new Map<string, PodSandbox>();
  /** Sandboxes whose interfaces attachAlongside made: attachPod only publishes them. */
  private readonly attachedAlongside = new Set<string>();
  private publishedVnis = '';

  constructor(private readonly o: SecondaryManagerOptions) {
    this.core = o.kubeConfig.makeApiClient(CoreV1Api);
    this.custom = o.kubeConfig.makeApiClient(CustomObjectsApi);
    this.events = new EventRecorder(this.core, { component: 'seine-agent', host: o.nodeName });
    this.allocator = new IPPoolAllocator({ kubeConfig: o.kubeConfig });
    this.delegates = new CniRuntime({ cniPath: [], cacheDir: o.delegateCacheDir, pluginNetns: o.hostNetns });
    this.nads = new ResilientInformer({
      kubeConfig: o.kubeConfig,
      name: 'secondary-nads',
      path: '/apis/k8s.cni.cncf.io/v1/network-attachment-definitions',
      list: () => this.custom.listClusterCustomObject({ group: 'k8s.cni.cncf.io', version: 'v1', plural: 'network-attachment-definitions' }) as never,
    });
    this.nodes = new ResilientInformer<V1Node>({ kubeConfig: o.kubeConfig, name: 'secondary-nodes', path: '/api/v1/nodes', list: () => this.core.listNode() });
    this.nodes.on('add', () => void this.syncOverlayPeers()).on('update', () => void this.syncOverlayPeers()).on('delete', () => void this.syncOverlayPeers());
  }

  /** Loads what exists (OVS ports, delegated results) so DEL, hot-plug and status work across agent restarts. */
  async start(): Promise<void> {
    // The CRD may not be installed yet; the informer keeps retrying and pods without secondary networks still work.
    await Promise.race([this.nads.start(), new Promise((r) => setTimeout(r, 3000))]);
    await this.nodes.start();
    for (const port of this.o.datapath.attachments()) {
      const rec = recordFromPort(port);
      if (rec) this.remember(rec);
    }
    for (const entry of await this.delegates.cachedAttachments()) {
      const args = new Map(entry.cniArgs ?? []);
      this.remember({
        containerId: entry.containerId,
        podNamespace: args.get('K8S_POD_NAMESPACE') ?? '',
        podName: args.get('K8S_POD_NAME') ?? '',
        podUid: args.get('K8S_POD_UID') ?? '',
        network: args.get('SEINE_NETWORK') ?? entry.networkName,
        ifname: entry.ifName,
        netns: entry.netns ?? '',
        kind: 'delegated',
        cniNetwork: entry.networkName,
        result: entry.result ?? { cniVersion: '1.0.0' },
        request: args.get('SEINE_REQUEST'),
      });
    }
    // Addresses taken by an ADD that died before its port was made (the agent was killed): no record names
    // them. Nothing else allocates for this node while the agent starts, so they are safe to free now.
    const recorded = [...this.byContainer.values()].flat().filter((r) => r.ipam?.startsWith('pool:')).map((r) => ({ containerID: r.containerId, interface: r.ifname }));
    const freed = await this.allocator.releaseUnrecorded(this.o.nodeName, recorded).catch((e: unknown) => {
      this.log.warn({ err: String(e) }, 'cannot free pool addresses of unfinished attachments');
      return [];
    });
    if (freed.length) this.log.info({ freed: freed.map((a) => `${a.pool}/${a.ip}`) }, 'freed pool addresses of attachments never completed');
    await this.syncOverlayPeers();
    this.log.info({ sandboxes: this.byContainer.size, attachments: [...this.byContainer.values()].flat().length }, 'secondary networks loaded');
  }

  async stop(): Promise<void> {
    // The pools' usage writes in flight finish (the next agent need not redo them), but an unreachable API server
    // does not hold the agent up: a later write brings usage in line anyway.
    let timer: NodeJS.Timeout | undefined;
    const bounded = new Promise<void>((resolve) => (timer = setTimeout(resolve, USAGE_SETTLE_MS)));
    await Promise.all([this.nads.stop(), this.nodes.stop(), Promise.race([this.allocator.settled(), bounded])]);
    clearTimeout(timer);
  }

  private remember(rec: AttachmentRecord): void {
    const list = this.byContainer.get(rec.containerId) ?? [];
    if (!list.some((r) => attachmentId(r) === attachmentId(rec))) list.push(rec);
    this.byContainer.set(rec.containerId, list);
  }

  attachmentsOf(containerId: string): readonly AttachmentRecord[] {
    return this.byContainer.get(containerId) ?? [];
  }

  /** Every secondary attachment on this node. */
  attachments(): AttachmentRecord[] {
    return [...this.byContainer.values()].flat();
  }

  /** Attachments on this node by network (NAD namespace/name) and kind: what the metrics show. */
  attachmentCounts(): Array<{ network: string; kind: AttachmentRecord['kind']; count: number }> {
    const counts = new Map<string, { network: string; kind: AttachmentRecord['kind']; count: number }>();
    for (const rec of this.attachments()) {
      const key = `${rec.network}\0${rec.kind}`;
      const c = counts.get(key) ?? { network: rec.network, kind: rec.kind, count: 0 };
      c.count++;
      counts.set(key, c);
    }
    return [...counts.values()];
  }

  /** Every sandbox with secondary attachments on this node. */
  sandboxesWithAttachments(): SandboxRef[] {
    return [...this.byContainer].map(([containerId, recs]) => {
      const netnsId = recs.find((r) => r.netnsId)?.netnsId;
      return { containerId, netns: recs.find((r) => r.netns)?.netns ?? '', podUid: recs.find((r) => r.podUid)?.podUid ?? '', ...(netnsId ? { netnsId } : {}) };
    });
  }

  /** The pod's requested networks; an invalid annotation is reported as an Event and a CNI error. */
  private selections(pod: V1Pod): NetworkSelection[] {
    const value = pod.metadata?.annotations?.[NETWORKS_ANNOTATION];
    if (!value) return [];
    try {
      return parseNetworksAnnotation(value, pod.metadata!.namespace!);
    } catch (e) {
      if (e instanceof NetworksAnnotationError) {
        void this.events.record(this.ref(pod), 'Warning', 'InvalidNetworksAnnotation', e.message);
        throw new CniError(CniCode.InvalidNetworkConfig, `invalid ${NETWORKS_ANNOTATION} annotation`, e.message);
      }
      throw e;
    }
  }

  /** The pod's selections with auto-named interfaces kept where its sandbox already has them (hot-plug). */
  private wanted(pod: V1Pod, containerId: string): NetworkSelection[] {
    return keepInterfaceNames(this.selections(pod), this.attachmentsOf(containerId).map(selectionOf));
  }

  private ref(pod: V1Pod): { kind: string; apiVersion: string; name: string; namespace: string; uid?: string } {
    return { kind: 'Pod', apiVersion: 'v1', name: pod.metadata!.name!, namespace: pod.metadata!.namespace!, uid: pod.metadata?.uid };
  }

  /**
   * CNI ADD, once eth0 is there: every requested attachment attachAlongside did not make already, then the pod's
   * network-status.
   */
  async attachPod(ctx: PodSandbox): Promise<void> {
    const made = this.attachedAlongside.delete(ctx.containerId);
    this.sandboxes.set(ctx.containerId, ctx);
    if (!made) await this.attachInterfaces(ctx);
    await this.writeStatus(ctx);
    await this.refreshOverlays();
  }

  /**
   * While the pod network makes eth0: the pod's interfaces, when nothing in them depends on eth0. That is, VLAN
   * and overlay networks of Seine's own, with no default route over them (the pod's routes are eth0's first). Any
   * other pod's interfaces wait for attachPod, after eth0.
   */
  async attachAlongside(sandbox: NewSandbox): Promise<void> {
    const independent = (sel: NetworkSelection, net: NadNetwork | undefined): boolean =>
      net?.kind === 'seine' &&
      (net.network.networkType === 'vlan' || net.network.networkType === 'overlay') &&
      !sel.defaultRoute?.length &&
      (net.network.ipam.type === 'seine' || (net.network.ipam.type === 'static' && !net.network.ipam.routes.some((r) => r.dst === '0.0.0.0/0')));
    if (await this.attachInterfaces(sandbox, (todo, nets) => todo.every((sel, i) => independent(sel, nets[i])))) this.attachedAlongside.add(sandbox.containerId);
  }

  /**
   * Attaches what the pod's annotation asks for and is not attached yet; false without attaching anything when
   * `proceed` (given the selections and their resolved networks) says no. Any failure rolls back this call's
   * attachments and fails with the first failure in annotation order. Seine's own networks are attached at once:
   * each waits on processes, OVSDB and the API server rather than on the others, and the datapath and the pools
   * serialise what they share. With a delegated network among them, one by one in annotation order, as Multus
   * runs delegates (a plugin may rely on what came before it).
   */
  private async attachInterfaces(ctx: NewSandbox, proceed?: (todo: NetworkSelection[], nets: Array<NadNetwork | undefined>) => boolean): Promise<boolean> {
    const selections = this.wanted(ctx.pod, ctx.containerId);
    const pending = (): NetworkSelection[] => selections.filter((sel) => !this.attachmentsOf(ctx.containerId).some((r) => attachmentId(r) === `${sel.namespace}/${sel.name}@${sel.interface}`));
    // Each network resolved once (NAD, validated config): what decides how they are attached is what attaches them.
    const resolveAll = (list: NetworkSelection[]): Promise<Array<NadNetwork | undefined>> => Promise.all(list.map((sel) => this.resolve(sel).catch(() => undefined)));
    let todo = pending();
    let nets = await resolveAll(todo);
    if (proceed && !proceed(todo, nets)) return false;
    // A repeated ADD (runtimes retry with the same container id) trusts what exists, not the records.
    if (await this.dropVanished(ctx)) {
      todo = pending();
      nets = await resolveAll(todo);
    }
    const attach = (sel: NetworkSelection, i: number): Promise<PromiseSettledResult<AttachmentRecord>> =>
      this.attachOne(ctx, sel, nets[i]).then(
        (rec): PromiseSettledResult<AttachmentRecord> => {
          this.remember(rec);
          return { status: 'fulfilled', value: rec };
        },
        (reason: unknown): PromiseSettledResult<AttachmentRecord> => ({ status: 'rejected', reason }),
      );
    let outcomes: Array<PromiseSettledResult<AttachmentRecord>>;
    if (nets.every((n) => n !== undefined && n.kind !== 'delegated')) outcomes = await Promise.all(todo.map(attach));
    else {
      outcomes = [];
      for (const [i, sel] of todo.entries()) {
        const o = await attach(sel, i);
        outcomes.push(o);
        if (o.status === 'rejected') break;
      }
    }
    const added = outcomes.flatMap((o) => (o.status === 'fulfilled' ? [o.value] : []));
    const failed = outcomes.findIndex((o) => o.status === 'rejected');
    if (failed >= 0) {
      for (const rec of added.reverse()) await this.detachOne(rec).catch((err: unknown) => this.log.error({ err: String(err) }, 'rollback failed'));
      const sel = todo[failed]!;
      const err = cniFailure((outcomes[failed] as PromiseRejectedResult).reason, `attaching ${sel.namespace}/${sel.name} as ${sel.interface}`);
      void this.events.record(this.ref(ctx.pod), 'Warning', 'NetworkAttachmentFailed', `${err.msg}${err.details ? `: ${err.details}` : ''}`);
      throw err;
    }
    for (const rec of added) void this.events.record(this.ref(ctx.pod), 'Normal', 'AddedInterface', `Add ${rec.ifname} [${ipsOf(rec.result).join(', ')}] from ${rec.network}`);
    return true;
  }

  /**
   * Removes (with their addresses) the sandbox's recorded attachments that are no longer really there: made
   * in another namespace (the sandbox was re-made at the same path after a lost DEL), without their OVS port,
   * or without their interface in the pod. The ADD then makes them again. True when it removed any.
   */
  private async dropVanished(ctx: NewSandbox): Promise<boolean> {
    const recs = this.attachmentsOf(ctx.containerId);
    if (!recs.length) return false;
    const pod = new IpRoute(ctx.netns);
    const ports = new Set(this.o.datapath.attachments().map((p) => p.hostIfname));
    let dropped = false;
    for (const rec of [...recs].reverse()) {
      const why = await vanished(rec, ctx, pod, ports);
      if (!why) continue;
      this.log.info({ pod: podKey(ctx.pod), containerId: ctx.containerId, attachment: attachmentId(rec), why }, 'recorded attachment is gone; making it again');
      await this.detachOne(rec);
      dropped = true;
    }
    return dropped;
  }

  /** CNI DEL: tears down every attachment (reverse order), then reports any failures. */
  async detachPod(containerId: string): Promise<void> {
    const records = [...this.attachmentsOf(containerId)].reverse();
    const failures: string[] = [];
    for (const rec of records) {
      try {
        await this.detachOne(rec);
      } catch (e) {
        failures.push(`${attachmentId(rec)}: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
    this.sandboxes.delete(containerId);
    this.attachedAlongside.delete(containerId);
    if (failures.length) throw new CniError(CniCode.Internal, 'some secondary interfaces could not be removed', failures.join('; '));
    await this.refreshOverlays();
  }

  /**
   * Hot-plug: applies annotation changes of a running pod. Removals and the old side of changed requests
   * (new ips, mac, cni-args, ...) first, then additions and re-attachments in annotation order.
   */
  async reconcilePod(pod: V1Pod, containerId: string): Promise<void> {
    const ctx = this.sandboxes.get(containerId);
    if (!ctx) return;
    ctx.pod = pod;
    let selections: NetworkSelection[];
    try {
      selections = this.selections(pod);
    } catch {
      return; // reported as an Event; the pod keeps what it has
    }
    const attached = this.attachmentsOf(containerId).map((rec) => ({ ...selectionOf(rec), request: rec.request, rec }));
    const diff = diffAttachments(attached, selections);
    const toRemove = [...diff.remove, ...diff.changed.map((c) => c.from).reverse()].map((a) => a.rec);
    const toAdd = [...diff.add, ...diff.changed.map((c) => c.to)].sort((a, b) => a.index - b.index);
    if (!toRemove.length && !toAdd.length) return;
    for (const rec of toRemove) {
      try {
        await this.detachOne(rec);
        void this.events.record(this.ref(pod), 'Normal', 'RemovedInterface', `Removed ${rec.ifname} (${rec.network})`);
      } catch (e) {
        void this.events.record(this.ref(pod), 'Warning', 'NetworkDetachFailed', `${attachmentId(rec)}: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
    for (const sel of toAdd) {
      try {
        const rec = await this.attachOne(ctx, sel);
        this.remember(rec);
        void this.events.record(this.ref(pod), 'Normal', 'AddedInterface', `Add ${rec.ifname} [${ipsOf(rec.result).join(', ')}] from ${rec.network}`);
      } catch (e) {
        const err = cniFailure(e, `attaching ${sel.namespace}/${sel.name} as ${sel.interface}`);
        void this.events.record(this.ref(pod), 'Warning', 'NetworkAttachmentFailed', `${err.msg}${err.details ? `: ${err.details}` : ''}`);
      }
    }
    await this.writeStatus(ctx);
    await this.refreshOverlays();
  }

  /** After an agent restart: the sandboxes of running pods, so hot-plug and status keep working. */
  adoptSandbox(ctx: PodSandbox): void {
    this.sandboxes.set(ctx.containerId, ctx);
  }

  /** CNI GC: removes the attachments of the sandboxes `collect` picks, and frees their pool addresses. */
  async gc(collect: (containerId: string) => boolean): Promise<void> {
    for (const containerId of [...this.byContainer.keys()]) {
      if (collect(containerId)) await this.detachPod(containerId).catch((e: unknown) => this.log.warn({ err: String(e) }, 'GC detach failed'));
    }
  }

  private async resolve(sel: NadRef): Promise<NadNetwork> {
    const nad = await this.findNad(sel);
    if (!nad) throw new CniError(CniCode.InvalidNetworkConfig, `NetworkAttachmentDefinition ${sel.namespace}/${sel.name} not found`);
    return this.networkOf(nad);
  }

  private async findNad(sel: NadRef): Promise<NetworkAttachmentDefinition | undefined> {
    return this.nads.get(sel.name, sel.namespace) ?? (await this.fetchNad(sel));
  }

  /** A NAD's network; without spec.config, the node's configuration of that name. */
  private async networkOf(nad: NetworkAttachmentDefinition): Promise<NadNetwork> {
    const net = parseNad(nad);
    if (net.kind === 'node-file') return loadNodeNetworkConfig(this.o.cniConfDir, net.ref);
    return net;
  }

  /** The informer may lag behind a NAD created just before the pod. */
  private async fetchNad(sel: NadRef): Promise<NetworkAttachmentDefinition | undefined> {
    try {
      return (await this.custom.getNamespacedCustomObject({ group: 'k8s.cni.cncf.io', version: 'v1', plural: 'network-attachment-definitions', namespace: sel.namespace, name: sel.name })) as NetworkAttachmentDefinition;
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw e;
    }
  }

  /** `resolved`: the selection's network, when the caller has it already (else resolved here, with its error). */
  private async attachOne(ctx: NewSandbox, sel: NetworkSelection, resolved?: NadNetwork): Promise<AttachmentRecord> {
    const net = resolved ?? (await this.resolve(sel));
    if (net.kind === 'node-file') throw new CniError(CniCode.InvalidNetworkConfig, `no configuration for ${sel.namespace}/${sel.name}`);
    checkCapabilities(net, sel);
    const pod = ctx.pod.metadata!;
    const base = {
      containerId: ctx.containerId,
      podNamespace: pod.namespace!,
      podName: pod.name!,
      podUid: pod.uid ?? '',
      network: `${sel.namespace}/${sel.name}`,
      ifname: sel.interface,
      netns: ctx.netns,
      defaultRoute: sel.defaultRoute,
      request: requestFingerprint(sel),
      ...(ctx.netnsId ? { netnsId: ctx.netnsId } : {}),
    };
    const args = k8sCniArgs({ namespace: pod.namespace!, name: pod.name!, infraContainerId: ctx.containerId, uid: pod.uid });
    if (net.kind === 'delegated') {
      const list = withCniArgs(net.list, sel.cniArgs);
      const result = await new CniRuntime({ cniPath: ctx.cniPath, cacheDir: this.o.delegateCacheDir, pluginNetns: this.o.hostNetns }).addNetworkList(list, {
        containerId: ctx.containerId,
        netns: ctx.netns,
        ifname: sel.interface,
        args: [...args, ['SEINE_NETWORK', base.network], ['SEINE_REQUEST', base.request]],
        capabilityArgs: capabilityArgs(sel),
      });
      return { ...base, kind: 'delegated', cniNetwork: list.name, result };
    }

    const network = net.network;
    if (network.networkType === 'function' && sel.defaultRoute?.length) {
      throw new CniError(CniCode.InvalidNetworkConfig, `default-route via ${sel.namespace}/${sel.name}`, 'a function port has no addresses and no routes');
    }
    // A function port bound to a VLAN or overlay network joins that network's bridge, VLAN or VNI, and MTU.
    const bound = network.networkType === 'function' && network.network ? await this.boundNetwork(base.network, network.network) : undefined;
    const realization: NetworkRealization =
      network.networkType !== 'function'
        ? this.segmentRealization(network)
        : bound
          ? { networkType: 'function', bridge: bound.bridge, boundTo: this.segmentRealization(bound) }
          : { networkType: 'function', bridge: this.o.podNetwork.bridge };
    await this.o.datapath.ensureNetwork(realization);

    // Addresses.
    const owner = { podNamespace: pod.namespace!, podName: pod.name!, podUID: pod.uid, containerID: ctx.containerId, interface: sel.interface, node: this.o.nodeName };
    let addresses: string[] = [];
    let routes: CniRoute[] = [];
    let gateway: string | undefined;
    let ipam: string;
    let releaseIpam = async (): Promise<void> => undefined;
    let ipamConf: string | undefined;
    if (network.networkType === 'function') {
      ipam = 'none';
    } else if (network.ipam.type === 'seine') {
      const pools = network.ipam.ippools;
      const requested = sel.ips?.length ? sel.ips : [undefined];
      releaseIpam = async () => void (await this.allocator.release({ containerID: ctx.containerId, interface: sel.interface }, pools));
      try {
        for (const ip of requested) {
          const a = await this.allocator.allocate(pools, owner, ip ? { ip } : {});
          if (a.vlan !== undefined && network.vlan !== undefined && a.vlan !== network.vlan) {
            throw new CniError(CniCode.InvalidNetworkConfig, `IPPool ${a.pool} is for VLAN ${a.vlan}, not ${network.vlan}`);
          }
          addresses.push(a.address);
          gateway ??= a.gateway;
        }
      } catch (e) {
        await releaseIpam();
        throw e;
      }
      ipam = `pool:${pools.join(',')}`;
    } else if (network.ipam.type === 'static') {
      addresses = sel.ips?.length ? [...sel.ips] : network.ipam.addresses.map((a) => a.address);
      gateway = network.ipam.addresses.find((a) => a.gateway)?.gateway;
      routes = [...network.ipam.routes];
      ipam = 'static';
    } else {
      const plugin = network.ipam.plugin;
      const config = { cniVersion: net.list.cniVersion, name: net.list.name, type: 'seine', ipam: network.ipam.conf };
      ipamConf = JSON.stringify(config);
      const req = { containerId: ctx.containerId, netns: ctx.netns, ifname: sel.interface, args: buildArgs(args), config };
      const result = await invokeAdd(plugin, req, net.list.cniVersion, { cniPath: ctx.cniPath, pluginNetns: this.o.hostNetns });
      releaseIpam = () => invokeNoResult(plugin, { ...req, command: 'DEL' }, { cniPath: ctx.cniPath, pluginNetns: this.o.hostNetns });
      addresses = (result.ips ?? []).map((i) => i.address);
      gateway = result.ips?.find((i) => i.gateway)?.gateway;
      routes = [...(result.routes ?? [])];
      ipam = `plugin:${plugin}`;
    }
    if (sel.defaultRoute?.length) routes = [...routes.filter((r) => r.dst !== '0.0.0.0/0'), { dst: '0.0.0.0/0', gw: sel.defaultRoute[0] }];

    const mac = sel.mac ?? randomMac();
    const hostIfname = hostInterfaceName(pod.namespace!, pod.name!, ctx.containerId, sel.interface);
    const mtu = network.networkType !== 'function' ? this.segmentMtu(network) : bound ? this.segmentMtu(bound) : this.o.podNetwork.mtu;
    const externalIds: Record<string, string> = {
      [SEC.containerId]: ctx.containerId,
      [SEC.podNamespace]: pod.namespace!,
      [SEC.podName]: pod.name!,
      [SEC.podUid]: pod.uid ?? '',
      [SEC.network]: base.network,
      [SEC.ifname]: sel.interface,
      [SEC.ipam]: ipam,
      [SEC.ips]: addresses.join(','),
      [SEC.mac]: mac,
      [SEC.netns]: ctx.netns,
      [SEC.request]: base.request,
      ...(ctx.netnsId ? { [SEC.netnsId]: ctx.netnsId } : {}),
      ...(sel.defaultRoute?.length ? { [SEC.defaultRoute]: sel.defaultRoute.join(',') } : {}),
      ...(ipamConf ? { 'ipam-conf': ipamConf } : {}),
      ...(network.networkType === 'function' && network.network ? { [EXT.functionNetwork]: `${network.network.namespace}/${network.network.name}` } : {}),
    };
    try {
      await this.o.datapath.attach({ network: realization, netns: ctx.netns, ifname: sel.interface, hostIfname, mac, mtu, addresses, routes, externalIds });
    } catch (e) {
      await releaseIpam().catch(() => undefined);
      throw e;
    }
    const result: CniResult = {
      cniVersion: '1.0.0',
      interfaces: [{ name: hostIfname }, { name: sel.interface, mac, mtu, sandbox: ctx.netns }],
      ips: addresses.map((address) => ({ address, interface: 1, ...(gateway ? { gateway } : {}) })),
      routes,
    };
    return { ...base, kind: 'seine', hostIfname, ipam, result };
  }

  private async detachOne(rec: AttachmentRecord): Promise<void> {
    if (rec.kind === 'delegated') {
      const entry = (await this.delegates.cachedAttachments(rec.containerId)).find((e) => e.ifName === rec.ifname && e.networkName === rec.cniNetwork);
      if (entry) {
        const list: NetConfList = parseConfList(cachedConfig(entry) as object);
        await this.delegates.delNetworkList(list, { containerId: rec.containerId, ifname: rec.ifname, netns: rec.netns });
      }
    } else {
      await this.o.datapath.detach(rec.hostIfname!);
      if (rec.ipam?.startsWith('pool:')) {
        await this.allocator.release({ containerID: rec.containerId, interface: rec.ifname }, rec.ipam.slice(5).split(','));
      } else if (rec.ipam?.startsWith('plugin:')) {
        const port = this.o.datapath.attachments().find((p) => p.hostIfname === rec.hostIfname);
        const conf = port?.externalIds['ipam-conf'];
        if (conf) {
          await invokeNoResult(rec.ipam.slice(7), { command: 'DEL', containerId: rec.containerId, netns: rec.netns, ifname: rec.ifname, config: JSON.parse(conf) as Record<string, unknown> }, { cniPath: this.sandboxes.get(rec.containerId)?.cniPath ?? [], pluginNetns: this.o.hostNetns });
        }
      }
    }
    const list = (this.byContainer.get(rec.containerId) ?? []).filter((r) => attachmentId(r) !== attachmentId(rec));
    if (list.length) this.byContainer.set(rec.containerId, list);
    else this.byContainer.delete(rec.containerId);
  }

  /** How a VLAN or overlay network is realized on this node (the uplink of a VLAN bridge is per node). */
  private segmentRealization(n: SegmentNetwork): NetworkRealization {
    return n.networkType === 'vlan'
      ? { networkType: 'vlan', bridge: n.bridge, vlan: n.vlan, uplink: this.uplinkFor(n.bridge, n.uplink) }
      : { networkType: 'overlay', bridge: n.bridge, vni: n.vni };
  }

  /** The MTU of a VLAN or overlay network's interfaces: the NAD's, else the agent's default for the type. */
  private segmentMtu(n: SegmentNetwork): number {
    return n.mtu ?? (n.networkType === 'vlan' ? this.o.mtu.vlan : this.o.mtu.overlay);
  }

  /**
   * The Seine VLAN or overlay network a function NAD (`functionNad`, "ns/name") is bound to, looked up as a
   * pod's networks are; InvalidNetworkConfig naming both NADs when it is missing, invalid or of another kind.
   */
  private async boundNetwork(functionNad: string, ref: NadRef): Promise<SegmentNetwork> {
    const refText = `${ref.namespace}/${ref.name}`;
    const refuse = (why: string): never => {
      throw new CniError(CniCode.InvalidNetworkConfig, `function network ${functionNad} is bound to ${refText}, which ${why}`, 'a function port joins a Seine VLAN or overlay network ("network": "<namespace>/<name>" of its NetworkAttachmentDefinition), or the pod network without "network"');
    };
    const nad = await this.findNad(ref);
    if (!nad) return refuse('does not exist');
    let net: NadNetwork;
    try {
      net = await this.networkOf(nad);
    } catch (e) {
      if (!(e instanceof CniError)) throw e;
      return refuse(`cannot be used: ${e.msg}${e.details ? ` (${e.details})` : ''}`);
    }
    if (net.kind === 'node-file') return refuse('has no configuration');
    if (net.kind === 'delegated') return refuse(`is not a Seine VLAN or overlay network (it is delegated to the CNI plugin ${net.list.plugins[0]?.type ?? '?'})`);
    if (net.network.networkType === 'function') return refuse('is a function network itself, not a VLAN or overlay network');
    return net.network;
  }

  private uplinkFor(bridge: string, nadUplink?: string): string | undefined {
    const node = this.nodes.get(this.o.nodeName);
    let nodeMap: Map<string, string> | undefined;
    try {
      const raw = node?.metadata?.annotations?.[NODE_UPLINKS_ANNOTATION];
      nodeMap = raw ? parseNodeUplinksAnnotation(raw) : undefined;
    } catch (e) {
      this.log.warn({ err: String(e) }, `ignoring a bad ${NODE_UPLINKS_ANNOTATION} annotation`);
    }
    return resolveUplink(bridge, { node: nodeMap, nad: nadUplink, agent: new Map(Object.entries(this.o.uplinks)) })?.uplink;
  }

  /** Writes network-status: the default network first, then every attachment in order. */
  private async writeStatus(ctx: PodSandbox): Promise<void> {
    const records = this.attachmentsOf(ctx.containerId);
    const selections = (() => {
      try {
        return this.wanted(ctx.pod, ctx.containerId);
      } catch {
        return [];
      }
    })();
    // In the annotation's order: records are in the order they were made (hot-plug appends) or, after a
    // restart, in OVSDB's order. Stable: a record without a selection keeps its place among the others.
    const rank = (rec: AttachmentRecord): number => {
      const i = selections.findIndex((s) => `${s.namespace}/${s.name}@${s.interface}` === attachmentId(rec));
      return i < 0 ? Number.MAX_SAFE_INTEGER : i;
    };
    const outcomes = [...records]
      .sort((a, b) => rank(a) - rank(b))
      .map((rec) => ({
        selection: selections.find((s) => `${s.namespace}/${s.name}@${s.interface}` === attachmentId(rec)) ?? selectionOf(rec),
        result: rec.result,
      }));
    const status = buildNetworkStatus({ name: this.o.defaultNetworkName, interface: 'eth0', result: ctx.primary }, outcomes);
    try {
      await this.core.patchNamespacedPod(
        { name: ctx.pod.metadata!.name!, namespace: ctx.pod.metadata!.namespace!, body: { metadata: { annotations: { [NETWORK_STATUS_ANNOTATION]: serializeNetworkStatus(status) } } } },
        MERGE_PATCH,
      );
    } catch (e) {
      this.log.warn({ pod: podKey(ctx.pod), err: apiMessage(e) }, 'network-status update failed');
    }
  }

  /** Publishes this node's overlay VNIs on its Node object, for peers. */
  private async publishVnis(): Promise<void> {
    const vnis = this.o.datapath.localVnis().sort((a, b) => a - b).join(',');
    if (vnis === this.publishedVnis) return;
    try {
      await this.core.patchNode({ name: this.o.nodeName, body: { metadata: { annotations: { [NODE_OVERLAYS_ANNOTATION]: vnis || null } } } }, MERGE_PATCH);
      this.publishedVnis = vnis;
    } catch (e) {
      this.log.warn({ err: apiMessage(e) }, 'publishing overlay VNIs failed');
    }
  }

  /** Tunnels of each local overlay VNI to exactly the nodes that host it too. */
  private async syncOverlayPeers(): Promise<void> {
    const local = this.o.datapath.localVnis();
    if (!local.length) return;
    const byVni = new Map<number, string[]>(local.map((v) => [v, []]));
    for (const n of this.nodes.list()) {
      if (n.metadata?.name === this.o.nodeName) continue;
      const ip = n.status?.addresses?.find((a) => a.type === 'InternalIP')?.address;
      const vnis = (n.metadata?.annotations?.[NODE_OVERLAYS_ANNOTATION] ?? '').split(',').filter(Boolean).map(Number);
      for (const v of vnis) if (ip && byVni.has(v)) byVni.get(v)!.push(ip);
    }
    for (const [vni, peers] of byVni) {
      await this.o.datapath.setOverlayPeers(vni, peers).catch((e: unknown) => this.log.warn({ vni, err: String(e) }, 'overlay peer update failed'));
    }
  }

  /** Called when local VNIs change outside attach/detach (e.g. after restore). */
  refreshOverlays(): Promise<void> {
    return this.publishVnis().then(() => this.syncOverlayPeers());
  }
}

/** Why a recorded attachment is not really in the sandbox of this ADD, or undefined when it is. */
async function vanished(rec: AttachmentRecord, ctx: NewSandbox, pod: IpRoute, ports: ReadonlySet<string>): Promise<string | undefined> {
  if (rec.netns !== ctx.netns) return `made in ${rec.netns}`;
  if (rec.netnsId && ctx.netnsId && rec.netnsId !== ctx.netnsId) return 'made in a namespace since replaced';
  if (rec.kind === 'seine' && !ports.has(rec.hostIfname!)) return `OVS port ${rec.hostIfname} missing`;
  const mac = rec.result.interfaces?.find((i) => i.name === rec.ifname && i.sandbox !== undefined)?.mac;
  const link = await pod.link(rec.ifname).catch(() => undefined);
  if (!link) return `${rec.ifname} missing in the pod`;
  if (mac && link.address?.toLowerCase() !== mac.toLowerCase()) return `${rec.ifname} in the pod is another interface`;
  return undefined;
}

function ipsOf(r: CniResult): string[] {
  return (r.ips ?? []).map((i) => i.address);
}

function selectionOf(rec: AttachmentRecord): NetworkSelection {
  const [namespace, name] = rec.network.split('/') as [string, string];
  return { namespace, name, interface: rec.ifname, index: 0, ...(rec.defaultRoute ? { defaultRoute: rec.defaultRoute } : {}) };
}

/** `cni-args` of the selection go into each plugin's `args.cni`, as Multus does. */
function withCniArgs(list: NetConfList, cniArgs?: Record<string, unknown>): NetConfList {
  if (!cniArgs || !Object.keys(cniArgs).length) return list;
  return {
    ...list,
    plugins: list.plugins.map((p) => {
      const prev = (p as { args?: { cni?: Record<string, unknown> } }).args ?? {};
      return { ...p, args: { ...prev, cni: { ...(prev.cni ?? {}), ...cniArgs } } };
    }),
  };
}

function buildArgs(pairs: Array<[string, string]>): string {
  return ['IgnoreUnknown=1', ...pairs.map(([k, v]) => `${k}=${v}`)].join(';');
}

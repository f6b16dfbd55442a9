import { existsSync } from 'node:fs';
import type { V1Pod } from '@kubernetes/client-node';
import { CniCode, CniError } from '../../cni/errors.js';
import type { CniResult } from '../../cni/types.js';
import { IpRoute } from '../../host/ip.js';
import { addFlow, type FlowWriter } from '../../ovs/openflow/index.js';
import type { Vswitch } from '../../ovs/ovsdb/index.js';
import type { PodAttachment, PodNetwork } from '../../agent/feature.js';
import type { CniRequest, GcRequest } from '../../primary/cniserver/index.js';
import { portAndFlowProblems, SeineCode, staleAttachments } from '../../primary/agent/driver.js';
import { CHAINED_OWNER, type InterfaceStore, type PodInterface, portExternalIds } from '../../primary/interfacestore/store.js';
import { podFlows, podScope, type LocalPod, type NodeConfig } from '../../primary/pipeline/index.js';
import { sandboxIdentity } from '../../podif/sandbox.js';
import { logger } from '../../util/log.js';
import type { ChainedHost } from './host.js';
import { findHostEnd, inspectPodEnd, PodLinkError, resultIps, routesToMove, type MovedRoute } from './pod-link.js';
import { attemptEach } from '../../util/attempt.js';

/** external_ids key: the routes the port's veth had before Seine moved them (JSON), to give back exactly. */
export const EXT_MOVED_ROUTES = 'chained-routes';

export interface ChainedDriverDeps {
  bridge: string;
  vswitch: Vswitch;
  flows: FlowWriter;
  store: InterfaceStore;
  /** Moved routes per port name, as recorded on the port. */
  moved: Map<string, MovedRoute[]>;
  host: IpRoute;
  chainedHost: ChainedHost;
  node: () => NodeConfig;
  userspaceDatapath: boolean;
  ready: () => boolean;
  /** The primary CNI's network name, for attachments recorded without one. */
  defaultNetwork: () => string;
  /** Chained pods the agent could not take over, reported where an operator looks. */
  adopt?: (pods: readonly V1Pod[], serialize: <T>(containerId: string, fn: () => Promise<T>) => Promise<T>) => Promise<void>;
}

const log = logger('chained');

function asCni(e: unknown, code: number, what: string): CniError {
  if (e instanceof CniError) return e;
  return new CniError(code, what, e instanceof Error ? e.message : String(e));
}

/** What the pipeline knows of a taken-over pod. */
export function localPod(itf: PodInterface): LocalPod {
  return { ofport: itf.ofport, ip: itf.ip, mac: itf.mac, ...(itf.peerMac ? { nextHopMac: itf.peerMac } : {}) };
}

/** The routes recorded on a port: malformed records (hand-edited) give nothing to move back rather than fail. */
export function parseMovedRoutes(text: string | undefined): MovedRoute[] {
  if (!text) return [];
  try {
    const v = JSON.parse(text) as unknown;
    return Array.isArray(v) ? v.filter((r): r is MovedRoute => typeof r === 'object' && r !== null && typeof (r as MovedRoute).dst === 'string') : [];
  } catch {
    return [];
  }
}

/**
 * Seine after the primary CNI: ADD takes over the point-to-point link the primary made (its host veth into
 * OVS, its routes onto Seine's gateway) and answers with prevResult unchanged; DEL gives the link back exactly
 * as it was. Seine allocates nothing: addresses, the pod's routes and neighbours stay the primary's.
 */
export class ChainedPodNetwork implements PodNetwork {
  constructor(private readonly d: ChainedDriverDeps) {}

  get defaultNetwork(): string {
    return this.d.defaultNetwork();
  }

  private result(itf: PodInterface, cniVersion: string): CniResult {
    return {
      cniVersion,
      interfaces: [{ name: itf.ifname, mac: itf.mac, sandbox: itf.netns }],
      ips: [{ address: `${itf.ip}/32`, interface: 0 }],
    };
  }

  async add(req: CniRequest): Promise<CniResult> {
    if (!this.d.ready()) throw new CniError(CniCode.TryAgainLater, 'seine agent is not ready yet', 'the node bridge and base flows are still being set up');
    const prev = req.prevResult;
    if (!prev) {
      throw new CniError(
        CniCode.InvalidNetworkConfig,
        'seine runs chained: no prevResult',
        `the agent runs with mode: chained, after the primary CNI in one conflist (05-seine.conflist); this call has no result of a plugin before it (is seine first in the list, or the primary CNI's config missing?)`,
      );
    }
    if (!existsSync(req.netns)) throw new CniError(CniCode.UnknownContainer, 'network namespace not found', req.netns);
    const existing = this.d.store.get(req.containerId, req.ifname);
    if (existing) {
      if (existing.netns === req.netns && this.d.vswitch.cache.iface(existing.portName)?.ofport === existing.ofport) return prev;
      await this.detach(existing);
    }
    await this.attach(req, prev);
    return prev;
  }

  /** Takes the pod's link over; every step is undone if a later one fails. */
  private async attach(req: CniRequest, prev: CniResult): Promise<PodInterface> {
    let podEnd;
    let hostEnd;
    try {
      podEnd = await inspectPodEnd(req.netns, req.ifname);
      hostEnd = await findHostEnd(this.d.host, podEnd);
    } catch (e) {
      throw e instanceof PodLinkError ? new CniError(SeineCode.InterfaceFailure, 'cannot find the primary CNI\'s link of the pod', e.message) : asCni(e, SeineCode.InterfaceFailure, 'cannot inspect the pod\'s link');
    }
    if (hostEnd.master) {
      throw new CniError(
        CniCode.InvalidNetworkConfig,
        `the pod's host interface ${hostEnd.name} is enslaved to ${hostEnd.master}`,
        `Seine's chained mode takes over routed point-to-point links, not bridged ones (Azure CNI's bridge mode puts pods on ${hostEnd.master}); configure the primary CNI in transparent mode ("mode": "transparent" in its conflist; AKS: --network-plugin azure with transparent mode, the default of current versions)`,
      );
    }
    const claimed = resultIps(prev, req.ifname);
    const ip = podEnd.ips.find((a) => claimed.includes(a)) ?? podEnd.ips[0];
    if (!ip) throw new CniError(SeineCode.InterfaceFailure, 'the pod has no IPv4 address', `${req.ifname} in ${req.netns} has none (prevResult gave ${claimed.join(', ') || 'none'})`);
    const moved = routesToMove(await this.d.host.routes(), hostEnd.name, podEnd.ips);
    if (!moved.length) log.warn({ veth: hostEnd.name, ip }, 'no host route through the pod\'s veth to move; the pod is reached only as the primary CNI routes it');

    const netnsId = sandboxIdentity(req.netns);
    const pod = { namespace: req.pod?.namespace ?? '', name: req.pod?.name ?? req.containerId.slice(0, 12), uid: req.pod?.uid ?? '' };
    const base = {
      containerId: req.containerId,
      ifname: req.ifname,
      podNamespace: pod.namespace,
      podName: pod.name,
      podUid: pod.uid,
      ip,
      mac: podEnd.mac,
      netns: req.netns,
      network: req.config.name,
      ...(netnsId ? { netnsId } : {}),
      peerMac: hostEnd.mac,
    };
    const node = this.d.node();
    const undo: Array<() => Promise<unknown>> = [];
    try {
      let ofport: number;
      try {
        const added = await this.d.vswitch.addPort(this.d.bridge, { name: hostEnd.name, externalIds: { ...portExternalIds(base, CHAINED_OWNER), [EXT_MOVED_ROUTES]: JSON.stringify(moved) } });
        ofport = added.ofport!;
      } catch (e) {
        throw asCni(e, SeineCode.OvsFailure, 'attaching the pod\'s veth to the bridge failed');
      }
      undo.push(() => this.d.vswitch.removePort(hostEnd.name));
      if (this.d.userspaceDatapath) {
        await this.d.host.txOffloadOff(hostEnd.name);
        await new IpRoute(req.netns).txOffloadOff(req.ifname);
      }
      try {
        await this.d.flows.submit(podFlows(node, { ofport, ip, mac: podEnd.mac, nextHopMac: hostEnd.mac }).map(addFlow));
      } catch (e) {
        throw asCni(e, SeineCode.OvsFailure, 'installing the pod flows failed');
      }
      undo.push(() => this.d.flows.deleteWhere({ cookie: podScope(ofport) }));
      try {
        await this.d.chainedHost.takeOver(hostEnd.name, moved);
      } catch (e) {
        throw asCni(e, SeineCode.InterfaceFailure, 'moving the pod\'s routes onto the gateway failed');
      }
      undo.push(() => this.d.chainedHost.giveBack(hostEnd.name, moved, true));
      const itf: PodInterface = { ...base, portName: hostEnd.name, ofport };
      this.d.store.add(itf);
      this.d.moved.set(hostEnd.name, moved);
      log.info({ pod: `${pod.namespace}/${pod.name}`, container: req.containerId.slice(0, 12), ip, port: hostEnd.name, ofport, routes: moved.map((r) => r.dst) }, 'pod taken over');
      return itf;
    } catch (e) {
      for (const step of undo.reverse()) await step().catch((err: unknown) => log.error({ err: String(err) }, 'rollback step failed'));
      throw e;
    }
  }

  async del(req: CniRequest): Promise<void> {
    const itf = this.d.store.get(req.containerId, req.ifname);
    if (itf) {
      await this.detach(itf);
      return;
    }
    // An ADD that died half way may have moved a route: one on the gateway for the pod's address that no
    // attachment claims goes (the veth, and the primary's own route, are the primary's to remove).
    const ips = new Set(resultIps(req.prevResult, req.ifname).map((ip) => `${ip}/32`));
    const claimed = new Set(this.d.store.list().map((i) => `${i.ip}/32`));
    if (ips.size) await this.d.chainedHost.removeRoutes(await this.d.chainedHost.strayRoutes((dst) => !ips.has(dst) || claimed.has(dst)));
  }

  /** Gives one attachment's link back: routes first (the kernel reaches the pod directly again), then the port. */
  async detach(itf: PodInterface): Promise<void> {
    const moved = this.d.moved.get(itf.portName) ?? [];
    const present = (await this.d.host.link(itf.portName)) !== undefined;
    await this.d.chainedHost.giveBack(itf.portName, moved, present);
    await this.d.flows.deleteWhere({ cookie: podScope(itf.ofport) });
    await this.d.vswitch.removePort(itf.portName);
    this.d.store.remove(itf.containerId, itf.ifname);
    this.d.moved.delete(itf.portName);
    log.info({ pod: `${itf.podNamespace}/${itf.podName}`, container: itf.containerId.slice(0, 12), ip: itf.ip, port: itf.portName }, 'pod given back to the primary CNI');
  }

  async check(req: CniRequest): Promise<void> {
    const itf = this.d.store.get(req.containerId, req.ifname);
    if (!itf) throw new CniError(CniCode.UnknownContainer, 'unknown attachment', `${req.containerId}/${req.ifname} is not taken over on this node`);
    const problems = await portAndFlowProblems(this.d.vswitch, this.d.flows, itf, podFlows(this.d.node(), localPod(itf)).length);
    const link = await this.d.host.link(itf.portName);
    if (!link) problems.push(`host veth ${itf.portName} is gone`);
    else if (link.master && link.master !== 'ovs-system') problems.push(`host veth ${itf.portName} is enslaved to ${link.master}`);
    const routes = await this.d.host.routes();
    for (const r of this.d.moved.get(itf.portName) ?? []) {
      const dst = r.dst.replace(/\/32$/, '');
      if (!routes.some((x) => (x.dst === dst || x.dst === r.dst) && x.dev === this.d.chainedHost.gatewayIf)) problems.push(`route to ${r.dst} is not through ${this.d.chainedHost.gatewayIf}`);
    }
    if (problems.length) throw new CniError(SeineCode.InterfaceFailure, 'pod network is not as configured', problems.join('; '));
  }

  async gc(req: GcRequest): Promise<void> {
    for (const itf of staleAttachments(this.d.store, req, (i) => i.network ?? this.defaultNetwork)) await this.detach(itf);
  }

  async status(): Promise<void> {
    if (!this.d.ready()) throw new CniError(CniCode.PluginNotAvailable, 'seine agent is not ready', 'the node bridge and base flows are still being set up');
  }

  attachments(): PodAttachment[] {
    return this.d.store.list().map((i) => ({ ...i, network: i.network ?? this.defaultNetwork }));
  }

  resultOf(containerId: string, ifname: string, cniVersion: string): CniResult | undefined {
    const itf = this.d.store.get(containerId, ifname);
    return itf && this.result(itf, cniVersion);
  }

  async releaseSandbox(containerId: string): Promise<void> {
    const failure = await attemptEach(this.d.store.list().filter((i) => i.containerId === containerId), (itf) => this.detach(itf));
    if (failure) throw failure;
  }

  adopt(pods: readonly V1Pod[], serialize: <T>(containerId: string, fn: () => Promise<T>) => Promise<T>): Promise<void> {
    return this.d.adopt?.(pods, serialize) ?? Promise.resolve();
  }

  /** Takes over a running pod made before Seine came, as its ADD would have. */
  async adoptOne(req: CniRequest): Promise<PodInterface> {
    const existing = this.d.store.get(req.containerId, req.ifname);
    if (existing) return existing;
    return this.attach(req, req.prevResult ?? { cniVersion: req.cniVersion });
  }
}

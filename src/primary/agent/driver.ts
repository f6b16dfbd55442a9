import { existsSync } from 'node:fs';
import { CniCode, CniError } from '../../cni/errors.js';
import type { CniResult } from '../../cni/types.js';
import type { IpRoute } from '../../host/ip.js';
import { addFlow, type FlowWriter } from '../../ovs/openflow/index.js';
import type { Vswitch } from '../../ovs/ovsdb/index.js';
import { logger } from '../../util/log.js';
import type { PodAttachment, PodNetwork } from '../../agent/feature.js';
import type { CniRequest, GcRequest } from '../cniserver/index.js';
import { type InterfaceStore, type PodInterface, portExternalIds } from '../interfacestore/store.js';
import { IpamExhaustedError, type NodeIpam } from '../ipam/index.js';
import { podFlows, podScope, type RoutedNodeConfig } from '../pipeline/index.js';
import { checkPodInterface, hostInterfaceName, podInterfacePresent, randomMac, setUpPodInterface, tearDownPodInterface } from '../../podif/interface.js';
import { sandboxIdentity } from '../../podif/sandbox.js';
import { attemptEach } from '../../util/attempt.js';

/** Plugin-specific CNI error codes (>= 100). */
export const SeineCode = {
  IpamExhausted: 110,
  IpamFailure: 111,
  InterfaceFailure: 112,
  OvsFailure: 113,
} as const;

export interface DriverDeps {
  bridge: string;
  vswitch: Vswitch;
  flows: FlowWriter;
  ipam: NodeIpam;
  store: InterfaceStore;
  /** The node's host network. */
  host: IpRoute;
  node: () => RoutedNodeConfig;
  mtu: number;
  userspaceDatapath: boolean;
  /** False until the bridge, gateway and base flows are in place. */
  ready: () => boolean;
  /** The network of attachments and addresses recorded without one (made before networks were recorded). */
  defaultNetwork: string;
}

const log = logger('podnet');

/** What is wrong with an attachment's OVS side: its port gone or renumbered, its flows not all installed. */
export async function portAndFlowProblems(vswitch: Vswitch, flows: FlowWriter, itf: PodInterface, wantedFlows: number): Promise<string[]> {
  const problems: string[] = [];
  const iface = vswitch.cache.iface(itf.portName);
  if (!iface || iface.ofport !== itf.ofport) problems.push(`OVS port ${itf.portName} missing or renumbered`);
  const { flows: installed } = await flows.countFlows({ cookie: podScope(itf.ofport) });
  if (installed !== wantedFlows) problems.push(`${installed} of ${wantedFlows} pod flows installed`);
  return problems;
}

/** CNI GC: the attachments of the network the request names that the runtime no longer lists. */
export function staleAttachments(store: InterfaceStore, req: GcRequest, networkOf: (itf: PodInterface) => string): PodInterface[] {
  const valid = new Set(req.validAttachments.map((a) => `${a.containerID}/${a.ifname}`));
  return store.list().filter((itf) => networkOf(itf) === req.config.name && !valid.has(`${itf.containerId}/${itf.ifname}`));
}

function asCni(e: unknown, code: number, what: string): CniError {
  if (e instanceof CniError) return e;
  return new CniError(code, what, e instanceof Error ? e.message : String(e));
}

/**
 * Realizes primary pod attachments: IP from the node IPAM, a veth with eth0 in the pod, an OVS port whose
 * external_ids make it recoverable, and the pod's flows. ADD is idempotent and rolls back fully on failure.
 */
export class PodNetworkDriver implements PodNetwork {
  constructor(private readonly d: DriverDeps) {}

  /** The CNI result of an attachment (also rebuilt from the interface store after a restart). */
  private result(itf: PodInterface, cniVersion: string, hostMac?: string): CniResult {
    const node = this.d.node();
    const prefix = node.podCidr.split('/')[1];
    return {
      cniVersion,
      interfaces: [
        { name: itf.portName, ...(hostMac ? { mac: hostMac } : {}) },
        { name: itf.ifname, mac: itf.mac, mtu: this.d.mtu, sandbox: itf.netns },
      ],
      ips: [{ address: `${itf.ip}/${prefix}`, gateway: node.gatewayIp, interface: 1 }],
      routes: [{ dst: '0.0.0.0/0', gw: node.gatewayIp }],
    };
  }

  async add(req: CniRequest): Promise<CniResult> {
    if (!this.d.ready()) throw new CniError(CniCode.TryAgainLater, 'seine agent is not ready yet', 'the node bridge and base flows are still being set up');
    if (!existsSync(req.netns)) throw new CniError(CniCode.UnknownContainer, 'network namespace not found', req.netns);
    const netnsId = sandboxIdentity(req.netns);
    const existing = this.d.store.get(req.containerId, req.ifname);
    if (existing) {
      if (existing.netns !== req.netns) {
        throw new CniError(CniCode.InvalidNetworkConfig, 'attachment already exists', `${req.containerId}/${req.ifname} is attached in ${existing.netns}, not ${req.netns}`);
      }
      // A repeated ADD for the same attachment returns what is there, if it is still there: a namespace
      // deleted and re-created under the same path (its DEL lost) no longer holds the pod's interface.
      const sameSandbox = !existing.netnsId || !netnsId || existing.netnsId === netnsId;
      if (sameSandbox && (await podInterfacePresent(existing.netns, existing.ifname, existing.mac))) return this.result(existing, req.cniVersion);
      log.info({ pod: `${existing.podNamespace}/${existing.podName}`, container: req.containerId.slice(0, 12), netns: req.netns }, 'pod interface gone from its namespace; attaching again');
      await this.detach(existing);
    }
    const network = req.config.name;
    const pod = { namespace: req.pod?.namespace ?? '', name: req.pod?.name ?? req.containerId.slice(0, 12), uid: req.pod?.uid ?? '' };
    const node = this.d.node();
    const undo: Array<() => Promise<unknown>> = [];
    // How long each step took, in the log line of an attached pod (where an ADD's time goes).
    const took: Record<string, number> = {};
    let mark = performance.now();
    const lap = (step: string): void => {
      const now = performance.now();
      took[step] = Math.round((now - mark) * 10) / 10;
      mark = now;
    };
    try {
      let alloc;
      try {
        alloc = await this.d.ipam.allocate({ containerId: req.containerId, ifname: req.ifname, podNamespace: pod.namespace, podName: pod.name, podUid: pod.uid, network });
      } catch (e) {
        if (e instanceof IpamExhaustedError) throw new CniError(SeineCode.IpamExhausted, 'no free pod address on this node', e.message);
        throw asCni(e, SeineCode.IpamFailure, 'pod address allocation failed');
      }
      undo.push(() => this.d.ipam.release(req.containerId, req.ifname));
      lap('ipamMs');

      const hostIfname = hostInterfaceName(pod.namespace, pod.name, req.containerId, req.ifname);
      const mac = randomMac();
      try {
        await setUpPodInterface(this.d.host, {
          netns: req.netns,
          ifname: req.ifname,
          hostIfname,
          mac,
          cidr: `${alloc.ip}/${alloc.prefixLength}`,
          gateway: node.gatewayIp,
          mtu: this.d.mtu,
          userspaceDatapath: this.d.userspaceDatapath,
        });
      } catch (e) {
        throw asCni(e, SeineCode.InterfaceFailure, 'pod interface setup failed');
      }
      undo.push(() => tearDownPodInterface(this.d.host, hostIfname));
      lap('interfaceMs');

      const base = {
        containerId: req.containerId,
        ifname: req.ifname,
        podNamespace: pod.namespace,
        podName: pod.name,
        podUid: pod.uid,
        ip: alloc.ip,
        mac,
        netns: req.netns,
        network,
        ...(netnsId ? { netnsId } : {}),
      };
      let ofport: number;
      try {
        const added = await this.d.vswitch.addPort(this.d.bridge, { name: hostIfname, externalIds: portExternalIds(base) });
        ofport = added.ofport!;
      } catch (e) {
        throw asCni(e, SeineCode.OvsFailure, 'attaching the pod to the bridge failed');
      }
      undo.push(() => this.d.vswitch.removePort(hostIfname));
      lap('portMs');

      try {
        await this.d.flows.submit(podFlows(node, { ofport, ip: alloc.ip, mac }).map(addFlow));
      } catch (e) {
        throw asCni(e, SeineCode.OvsFailure, 'installing the pod flows failed');
      }
      undo.push(() => this.d.flows.deleteWhere({ cookie: podScope(ofport) }));
      lap('flowsMs');

      const itf: PodInterface = { ...base, portName: hostIfname, ofport };
      this.d.store.add(itf);
      log.info({ pod: `${pod.namespace}/${pod.name}`, container: req.containerId.slice(0, 12), ip: alloc.ip, port: hostIfname, ofport, ...took }, 'pod attached');
      return this.result(itf, req.cniVersion);
    } catch (e) {
      for (const step of undo.reverse()) {
        await step().catch((err: unknown) => log.error({ err: String(err) }, 'rollback step failed'));
      }
      throw e;
    }
  }

  async del(req: CniRequest): Promise<void> {
    const itf = this.d.store.get(req.containerId, req.ifname);
    if (itf) await this.detach(itf);
    else {
      // An ADD that died half way (agent crash) may have left a veth or port under the predictable name.
      const hostIfname = req.pod ? hostInterfaceName(req.pod.namespace, req.pod.name, req.containerId, req.ifname) : undefined;
      if (hostIfname) {
        if (this.d.vswitch.cache.port(hostIfname)) await this.d.vswitch.removePort(hostIfname);
        await tearDownPodInterface(this.d.host, hostIfname);
      }
    }
    await this.d.ipam.release(req.containerId, req.ifname);
  }

  /** Removes one attachment entirely: flows, port, veth and address (its DEL, when the runtime's never came). */
  async release(itf: PodInterface): Promise<void> {
    await this.detach(itf);
    await this.d.ipam.release(itf.containerId, itf.ifname);
  }

  /** Releases every attachment of the sandbox, each attempted; the first failure is thrown. */
  async releaseSandbox(containerId: string): Promise<void> {
    const failure = await attemptEach(this.d.store.list().filter((i) => i.containerId === containerId), (itf) => this.release(itf));
    if (failure) throw failure;
  }

  attachments(): PodAttachment[] {
    return this.d.store.list().map((i) => ({ ...i, network: this.networkOf(i) }));
  }

  get defaultNetwork(): string {
    return this.d.defaultNetwork;
  }

  resultOf(containerId: string, ifname: string, cniVersion: string): CniResult | undefined {
    const itf = this.d.store.get(containerId, ifname);
    return itf && this.result(itf, cniVersion);
  }

  /** The CNI network an attachment belongs to. */
  private networkOf(itf: Pick<PodInterface, 'network'>): string {
    return itf.network ?? this.d.defaultNetwork;
  }

  /** Removes one attachment's flows, port and veth (not its address). */
  async detach(itf: PodInterface): Promise<void> {
    await this.d.flows.deleteWhere({ cookie: podScope(itf.ofport) });
    await this.d.vswitch.removePort(itf.portName);
    await tearDownPodInterface(this.d.host, itf.portName);
    this.d.store.remove(itf.containerId, itf.ifname);
    log.info({ pod: `${itf.podNamespace}/${itf.podName}`, container: itf.containerId.slice(0, 12), ip: itf.ip }, 'pod detached');
  }

  async check(req: CniRequest): Promise<void> {
    const itf = this.d.store.get(req.containerId, req.ifname);
    if (!itf) throw new CniError(CniCode.UnknownContainer, 'unknown attachment', `${req.containerId}/${req.ifname} is not attached on this node`);
    const node = this.d.node();
    const problems = await checkPodInterface({ netns: req.netns || itf.netns, ifname: req.ifname, mac: itf.mac, cidr: `${itf.ip}/${node.podCidr.split('/')[1]}`, gateway: node.gatewayIp });
    problems.push(...(await portAndFlowProblems(this.d.vswitch, this.d.flows, itf, podFlows(node, { ofport: itf.ofport, ip: itf.ip, mac: itf.mac }).length)));
    if (problems.length) throw new CniError(SeineCode.InterfaceFailure, 'pod network is not as configured', problems.join('; '));
  }

  /** CNI GC: removes the attachments of the network the config names that are not among the valid ones; others' are not touched. */
  async gc(req: GcRequest): Promise<void> {
    const network = req.config.name;
    for (const itf of staleAttachments(this.d.store, req, (i) => this.networkOf(i))) await this.detach(itf);
    const released = await this.d.ipam.reconcile(
      req.validAttachments.map((a) => ({ containerId: a.containerID, ifname: a.ifname })),
      (owner) => this.networkOf(owner) === network,
    );
    if (released.length) log.info({ network, released: released.map((a) => a.ip) }, 'GC released addresses');
  }

  async status(): Promise<void> {
    if (!this.d.ready()) throw new CniError(CniCode.PluginNotAvailable, 'seine agent is not ready', 'the node bridge and base flows are still being set up');
  }
}

import { CoreV1Api, type V1Node, type V1Pod } from '@kubernetes/client-node';
import { Semaphore } from 'async-mutex';
import { statSync } from 'node:fs';
import { IpRoute } from '../../host/ip.js';
import { ResilientInformer } from '../../k8s/informer.js';
import { loadKubeConfig } from '../../k8s/kubeconfig.js';
import { FlowWriter, addFlow } from '../../ovs/openflow/index.js';
import { Vswitch } from '../../ovs/ovsdb/index.js';
import { logger } from '../../util/log.js';
import { SerialPass } from '../../util/serial.js';
import { TunnelNeighbours } from '../bridge/tunnel-neighbours.js';
import { GATEWAY_PORT, PHY_BRIDGE, discoverUplink, ensureIntegrationBridge, ensureUplinkBridge, gatewayMacFor, type IntegrationBridge } from '../bridge/bridge.js';
import { CniServer } from '../cniserver/index.js';
import { InterfaceStore } from '../interfacestore/store.js';
import { NodeIpam } from '../ipam/index.js';
import { gatewayIpOf, nodeInternalIp, peersFromNodes } from '../nodes/peers.js';
import { baseScope, peerRemoval, peerSync, pipelineFlows, pipelineSync, type NodeConfig, type PeerNode, type PipelineState } from '../pipeline/index.js';
import { HostNetwork } from '../route/host.js';
import type { AgentConfig } from './config.js';
import { PodNetworkDriver } from './driver.js';
import { PodDriver } from './pod-driver.js';
import { SandboxReconciler } from './reconciler.js';
import { NETWORK_NAME } from '../installcni/index.js';
import { SecondaryNetworkManager } from '../../secondary/agent/manager.js';
import { OvsSecondaryDatapath } from '../../secondary/datapath/index.js';
import { join } from 'node:path';
import { AgentMetrics, serveHealth } from './metrics.js';
import type { Server } from 'node:http';

/** VXLAN and Geneve (no options) both add 50 bytes over IPv4. */
const ENCAP_OVERHEAD = 50;
const WATCHDOG_MS = 2000;
/** Flows are read at least this often even when ovs-vswitchd's pidfile has not changed (every tick without one). */
const FLOW_CHECK_MS = 30_000;
/** Tunnel next hops are checked this often; sooner while one of them does not answer yet (a node coming up). */
const NEIGHBOUR_SYNC_MS = 15_000;
const NEIGHBOUR_RETRY_MS = 2000;
/** ADD/DEL/GC take one unit; re-realizing the whole node takes all of them. */
const LOCK_UNITS = 1024;

/**
 * The node agent: realizes the primary pod network of one node. Startup order: node object -> OVS bridge and
 * ports -> host gateway/routes/SNAT -> interface store and IPAM from what exists -> one atomic flow sync (a new
 * round replaces the old one in place, so traffic never stops) -> CNI server -> watch peers and the datapath.
 */
export class Agent {
  private readonly log = logger('agent');
  private readonly lock = new Semaphore(LOCK_UNITS);
  private readonly host: IpRoute;
  private readonly hostNet: HostNetwork;
  private nodesInformer?: ResilientInformer<V1Node>;
  private podsInformer?: ResilientInformer<V1Pod>;
  /** Set once the pods informer has delivered its first list. */
  private podsKnown = false;
  private reconciler?: SandboxReconciler;
  private vswitch?: Vswitch;
  private flows?: FlowWriter;
  private ipam?: NodeIpam;
  private store = new InterfaceStore();
  private server?: CniServer;
  private driver?: PodNetworkDriver;
  private secondary?: SecondaryNetworkManager;
  private secondaryDatapath?: OvsSecondaryDatapath;
  private ipamGcTimer?: NodeJS.Timeout;
  private bridge?: IntegrationBridge;
  private nodeConfig?: NodeConfig;
  private nodeIp = '';
  private mtu = 0;
  private peers = new Map<number, PeerNode>();
  private ready = false;
  private stopped = false;
  private watchdog?: NodeJS.Timeout;
  /** Which ovs-vswitchd (see vswitchdIdentity) last had its flows in place, and when that was seen. */
  private checkedVswitchd?: { id: string | undefined; at: number };
  private peerTimer?: NodeJS.Timeout;
  /** Userspace tunnels only: OVS's tunnel neighbour table, seeded so no first packet waits on ARP. */
  private neighbours?: TunnelNeighbours;
  private neighbourTimer?: NodeJS.Timeout;
  /** One sync at a time; a request meanwhile runs once more after it (peers may have changed). */
  private readonly neighbourSync = new SerialPass(() => this.syncNeighboursOnce(), () => this.stopped);
  private announcedMac?: string;
  private recovering?: Promise<void>;
  readonly metrics = new AgentMetrics({ pods: () => this.store.size, peers: () => this.peers.size });
  private health?: Server;

  constructor(readonly cfg: AgentConfig) {
    this.host = new IpRoute(cfg.hostNetns);
    this.hostNet = new HostNetwork(this.host, GATEWAY_PORT);
  }

  get isReady(): boolean {
    return this.ready;
  }

  /** Runs `fn` as one pod operation: many at once, but never during a whole-node re-realization. */
  private shared<T>(fn: () => Promise<T>): Promise<T> {
    return this.lock.runExclusive(fn, 1);
  }

  /** Runs `fn` as a pod operation in turn with the CNI calls of `containerId` (the same order of locks as they take). */
  private serialize<T>(containerId: string, fn: () => Promise<T>): Promise<T> {
    return this.server!.handler.scheduler.attachment(containerId, () => this.shared(fn));
  }

  /** UIDs of this node's pods that exist and are not being deleted; undefined until the pods are known. */
  private livePodUids(): ReadonlySet<string> | undefined {
    if (!this.podsKnown) return undefined;
    return new Set(this.podsInformer!.list().flatMap((p) => (p.metadata?.uid && !p.metadata.deletionTimestamp ? [p.metadata.uid] : [])));
  }

  async start(): Promise<void> {
    const cfg = this.cfg;
    // Served from the start: liveness while the node is set up, readiness once pods can be attached.
    if (cfg.metricsPort) {
      this.health = await serveHealth(cfg.metricsPort, cfg.metricsAddress, this.metrics, () => this.ready);
    }
    const kc = loadKubeConfig(cfg.kubeconfig);
    const core = kc.makeApiClient(CoreV1Api);
    this.nodesInformer = new ResilientInformer<V1Node>({ kubeConfig: kc, name: 'agent-nodes', path: '/api/v1/nodes', list: () => core.listNode() });
    this.nodesInformer.on('add', () => this.schedulePeerSync()).on('update', () => this.schedulePeerSync()).on('delete', () => this.schedulePeerSync());
    await this.nodesInformer.start();
    const self = await this.waitForOwnNode();
    const podCidr = self.spec!.podCIDR!;
    this.nodeIp = nodeInternalIp(self)!;
    this.log.info({ node: cfg.nodeName, podCidr, nodeIp: this.nodeIp }, 'node found');

    this.vswitch = await Vswitch.connect({ remote: `unix:${cfg.ovs.dbSocket}` });
    const encap = cfg.trafficEncapMode === 'encap';
    const uplink = await discoverUplink(this.vswitch, this.host, this.nodeIp);
    this.mtu = cfg.mtu ?? (encap ? uplink.mtu - ENCAP_OVERHEAD : uplink.mtu);
    const gatewayMac = gatewayMacFor(this.nodeIp);
    this.bridge = await ensureIntegrationBridge(this.vswitch, {
      bridge: cfg.ovs.bridge,
      datapathType: cfg.ovs.datapathType,
      gatewayMac,
      mtu: this.mtu,
      tunnel: encap ? cfg.tunnelType : undefined,
    });
    this.nodeConfig = {
      mode: cfg.trafficEncapMode,
      round: this.bridge.round,
      gatewayOfport: this.bridge.gatewayOfport,
      tunnelOfport: this.bridge.tunnelOfport ?? 0,
      gatewayIp: gatewayIpOf(podCidr),
      gatewayMac,
      podCidr,
      clusterCidr: cfg.clusterCIDR,
    };
    await this.realizeHost(uplink);

    this.flows = new FlowWriter({ target: `unix:${cfg.ovs.rundir}/${cfg.ovs.bridge}.mgmt`, bridge: cfg.ovs.bridge });
    this.ipam = await NodeIpam.open({ podCIDR: podCidr, stateDir: cfg.stateDir });
    const loaded = InterfaceStore.fromOvsdb(this.vswitch, cfg.ovs.bridge);
    this.store = loaded.store;
    for (const p of loaded.broken) {
      this.log.warn({ port: p.name }, 'removing a pod port that cannot be used');
      await this.vswitch.removePort(p.name);
    }
    this.driver = new PodNetworkDriver({
      bridge: cfg.ovs.bridge,
      vswitch: this.vswitch,
      flows: this.flows,
      ipam: this.ipam,
      store: this.store,
      host: this.host,
      node: () => this.nodeConfig!,
      mtu: this.mtu,
      userspaceDatapath: cfg.ovs.datapathType === 'netdev',
      ready: () => this.ready,
      defaultNetwork: NETWORK_NAME,
    });
    // Pods deleted while the agent was away (their DEL found nobody) are released by the reconciler once
    // the pods are known; addresses without a port (an ADD killed half way) go now.
    const released = await this.ipam.reconcile(this.store.list().map((i) => ({ containerId: i.containerId, ifname: i.ifname })));
    if (released.length) this.log.info({ released: released.map((a) => a.ip) }, 'reclaimed leaked addresses');

    this.peers = new Map(peersFromNodes(this.nodesInformer.list(), cfg.nodeName, cfg.clusterCIDR).map((p) => [p.index, p]));
    await this.hostNet.syncPeerRoutes([...this.peers.values()], cfg.trafficEncapMode);
    const result = await this.flows.sync(pipelineSync(this.state()));
    this.log.info({ round: this.bridge.round, pods: this.store.size, peers: this.peers.size, ...result, changes: undefined }, 'flows synced');
    await this.endFlowRestoreWait();
    if (cfg.ovs.datapathType === 'netdev' && encap) {
      this.neighbours = new TunnelNeighbours({ netns: cfg.hostNetns, ovsRundir: cfg.ovs.rundir, bridge: PHY_BRIDGE });
      await this.syncNeighbours();
    }
    this.ready = true;

    if (cfg.secondaryNetworks.enabled) await this.startSecondary(kc);
    const guarded = new PodDriver(this.driver, this.secondary, core, (ns, name) => this.podsInformer?.get(name, ns));
    this.server = new CniServer({
      socketPath: cfg.cniSocket,
      driver: this.metrics.instrument({
        add: (r) => this.shared(() => guarded.add(r)),
        del: (r) => this.shared(() => guarded.del(r)),
        check: (r) => this.shared(() => guarded.check(r)),
        gc: (r) => this.shared(() => guarded.gc(r)),
        status: (r) => guarded.status(r),
      }),
    });
    await this.server.start();
    this.metrics.round.set(this.bridge.round);
    this.watchdog = setInterval(() => void this.checkDatapath(), WATCHDOG_MS);
    this.reconciler = new SandboxReconciler({
      primary: this.driver,
      secondary: this.secondary,
      livePods: () => this.livePodUids(),
      serialize: (containerId, fn) => this.serialize(containerId, fn),
    });
    this.reconciler.start();
    this.startPodsInformer(kc, core);
    this.log.info({ socket: cfg.cniSocket, mtu: this.mtu, mode: cfg.trafficEncapMode, tunnel: encap ? cfg.tunnelType : 'none' }, 'agent ready');
  }

  /**
   * The OVS start script sets flow-restore-wait so that a restarted ovs-vswitchd keeps the kernel datapath's
   * flows and holds off until the agent has put the OpenFlow flows back; this is that signal.
   */
  private async endFlowRestoreWait(): Promise<void> {
    if (this.vswitch!.cache.openVSwitch()?.otherConfig['flow-restore-wait'] !== undefined) {
      await this.vswitch!.setOpenVSwitchOtherConfig({}, ['flow-restore-wait']);
      this.log.info('flow-restore-wait cleared');
    }
  }

  private state(): PipelineState {
    return {
      node: this.nodeConfig!,
      pods: this.store.list().map((i) => ({ ofport: i.ofport, ip: i.ip, mac: i.mac })),
      peers: [...this.peers.values()],
    };
  }

  private async waitForOwnNode(): Promise<V1Node> {
    for (let i = 0; ; i++) {
      const node = this.nodesInformer!.get(this.cfg.nodeName);
      if (node?.spec?.podCIDR && nodeInternalIp(node)) return node;
      if (this.stopped) throw new Error('agent stopped');
      if (i % 20 === 0) this.log.info({ node: this.cfg.nodeName }, 'waiting for the Node object to have a podCIDR and an InternalIP');
      await new Promise((r) => setTimeout(r, 500));
    }
  }

  /** The host side: br-phy (userspace tunnels), gateway address, forwarding, SNAT. */
  private async realizeHost(uplink?: Awaited<ReturnType<typeof discoverUplink>>): Promise<void> {
    const cfg = this.cfg;
    if (cfg.ovs.datapathType === 'netdev' && cfg.trafficEncapMode === 'encap') {
      const u = uplink ?? (await discoverUplink(this.vswitch, this.host, this.nodeIp));
      await ensureUplinkBridge(this.vswitch!, this.host, { uplink: u.uplink, nodeCidr: u.nodeCidr, defaultGateway: u.defaultGateway, mtu: u.mtu });
    }
    const node = this.nodeConfig!;
    await this.hostNet.ensureGateway(`${node.gatewayIp}/${node.podCidr.split('/')[1]}`, this.mtu);
    await this.hostNet.ensureForwarding();
    await this.hostNet.ensureSnat(node.podCidr, cfg.clusterCIDR, cfg.egressSNAT);
  }

  private schedulePeerSync(): void {
    if (!this.ready || this.stopped) return;
    if (this.peerTimer) clearTimeout(this.peerTimer);
    this.peerTimer = setTimeout(() => void this.syncPeers().catch((e: unknown) => this.log.error({ err: String(e) }, 'peer sync failed')), 100);
  }

  /** Applies Node changes: routes, then each added, changed or removed peer's flows in its own cookie scope. */
  private async syncPeers(): Promise<void> {
    const next = new Map(peersFromNodes(this.nodesInformer!.list(), this.cfg.nodeName, this.cfg.clusterCIDR).map((p) => [p.index, p]));
    await this.hostNet.syncPeerRoutes([...next.values()], this.cfg.trafficEncapMode);
    const node = this.nodeConfig!;
    for (const [index, peer] of next) {
      const old = this.peers.get(index);
      if (!old || old.nodeIp !== peer.nodeIp || old.podCidr !== peer.podCidr) await this.flows!.sync(peerSync(node, peer));
    }
    for (const index of this.peers.keys()) if (!next.has(index)) await this.flows!.sync(peerRemoval(index));
    if (next.size !== this.peers.size || [...next.keys()].some((k) => !this.peers.has(k))) this.log.info({ peers: [...next.values()].map((p) => p.nodeIp) }, 'peers updated');
    this.peers = next;
    await this.syncNeighbours();
  }

  /**
   * Seeds OVS's tunnel neighbour table for every peer (and so for the secondary overlays' tunnels, which go to
   * the same nodes), and announces this node's MAC when it is new or changed; then schedules the next check.
   * Never throws: a failure is retried on the next check.
   */
  private syncNeighbours(): Promise<void> {
    return this.neighbourSync.run();
  }

  private async syncNeighboursOnce(): Promise<void> {
    if (!this.neighbours || this.stopped) return;
    if (this.neighbourTimer) clearTimeout(this.neighbourTimer);
    let retry: boolean;
    try {
      const mac = this.vswitch!.cache.iface(PHY_BRIDGE)?.macInUse;
      if (mac && mac !== this.announcedMac) {
        await this.neighbours.announce(this.nodeIp);
        this.announcedMac = mac;
      }
      const { unresolved } = await this.neighbours.sync([...this.peers.values()].map((p) => p.nodeIp));
      retry = unresolved.length > 0;
    } catch (e) {
      retry = true;
      this.log.warn({ err: String(e) }, 'tunnel neighbour sync failed');
    }
    if (this.stopped) return;
    this.neighbourTimer = setTimeout(() => void this.syncNeighbours(), retry ? NEIGHBOUR_RETRY_MS : NEIGHBOUR_SYNC_MS);
  }

  /** Secondary networks: their own bridges on this node's OVS, driven by NADs and pod annotations. */
  private async startSecondary(kc: ReturnType<typeof loadKubeConfig>): Promise<void> {
    const cfg = this.cfg;
    this.secondaryDatapath = new OvsSecondaryDatapath({
      vswitch: this.vswitch!,
      ovsRundir: cfg.ovs.rundir,
      host: this.host,
      nodeIp: this.nodeIp,
      userspaceDatapath: cfg.ovs.datapathType === 'netdev',
      round: this.bridge!.round,
    });
    this.secondary = new SecondaryNetworkManager({
      kubeConfig: kc,
      nodeName: cfg.nodeName,
      hostNetns: cfg.hostNetns,
      datapath: this.secondaryDatapath,
      delegateCacheDir: join(cfg.stateDir, 'secondary-cni'),
      cniConfDir: cfg.cniConfDir,
      defaultNetworkName: 'seine',
      uplinks: cfg.secondaryNetworks.uplinks,
      mtu: { vlan: this.mtu + (cfg.trafficEncapMode === 'encap' ? ENCAP_OVERHEAD : 0), overlay: this.mtu },
    });
    await this.secondary.start();
  }

  /** Pods removed from the API while their DEL never reached us (or reached a dead agent). */
  private startPodsInformer(kc: ReturnType<typeof loadKubeConfig>, core: CoreV1Api): void {
    const fieldSelector = `spec.nodeName=${this.cfg.nodeName}`;
    this.podsInformer = new ResilientInformer<V1Pod>({ kubeConfig: kc, name: 'agent-pods', path: '/api/v1/pods', fieldSelector, list: () => core.listPodForAllNamespaces({ fieldSelector }) });
    // Hot-plug: a running pod's networks annotation changed.
    this.podsInformer.on('update', (pod) => {
      if (!this.secondary || pod.metadata?.deletionTimestamp) return;
      const itf = this.store.list().find((i) => i.podUid === pod.metadata?.uid && i.ifname === 'eth0');
      if (!itf) return;
      void this.serialize(itf.containerId, () => this.secondary!.reconcilePod(pod, itf.containerId)).catch((e: unknown) => this.log.error({ err: String(e) }, 'hot-plug failed'));
    });
    // A deleted pod's sandbox may have lost its DEL: the reconciler looks at once rather than at its next tick.
    this.podsInformer.on('delete', () => this.reconciler?.trigger());
    void this.podsInformer
      .start()
      .then(() => {
        this.podsKnown = true;
        this.reconciler?.trigger(0);
        this.adoptSandboxes();
      })
      .catch((e: unknown) => this.log.warn({ err: String(e) }, 'pods informer failed to start'));
  }

  /** After a restart: running pods' sandboxes, so hot-plug and network-status carry on; stale pool addresses freed. */
  private adoptSandboxes(): void {
    if (!this.secondary) return;
    for (const itf of this.store.list()) {
      const pod = this.podsInformer!.list().find((p) => p.metadata?.uid === itf.podUid);
      if (!pod || itf.ifname !== 'eth0') continue;
      this.secondary.adoptSandbox({ pod, containerId: itf.containerId, netns: itf.netns, ...(itf.netnsId ? { netnsId: itf.netnsId } : {}), cniPath: [this.cfg.cniBinDir], primary: this.driver!.result(itf, '1.0.0') });
      // The annotation may have changed while the agent was away.
      void this.serialize(itf.containerId, () => this.secondary!.reconcilePod(pod, itf.containerId)).catch((e: unknown) => this.log.error({ err: String(e) }, 'hot-plug after restart failed'));
    }
    const collect = (): void => {
      const pods = this.podsInformer!.list().map((p) => ({ namespace: p.metadata!.namespace!, name: p.metadata!.name!, uid: p.metadata!.uid }));
      void this.secondary!.allocator.gc({ pods }, { node: this.cfg.nodeName })
        .then((freed) => freed.length && this.log.info({ freed: freed.map((a) => `${a.pool}/${a.ip}`) }, 'freed pool addresses of vanished pods'))
        .catch((e: unknown) => this.log.warn({ err: String(e) }, 'IP pool GC failed'));
    };
    collect();
    this.ipamGcTimer = setInterval(collect, 60_000);
  }

  /**
   * Detects an ovs-vswitchd restart (its flows are gone, and in the userspace datapath its tap devices come back
   * without addresses) and puts everything back, exclusively: no pod operation runs meanwhile.
   */
  private async checkDatapath(): Promise<void> {
    if (!this.ready || this.stopped || this.recovering) return;
    // A stat is cheap; dumping flows spawns ovs-ofctl.
    const id = this.vswitchdIdentity();
    const last = this.checkedVswitchd;
    if (id !== undefined && last && last.id === id && Date.now() - last.at < FLOW_CHECK_MS) return;
    try {
      const base = await this.flows!.dumpFlows({ table: 0, cookie: baseScope() });
      if (base.length > 0) {
        this.checkedVswitchd = { id, at: Date.now() };
        return;
      }
    } catch (e) {
      this.log.warn({ err: String(e) }, 'cannot read flows (ovs-vswitchd down?)');
      return;
    }
    this.recovering = this.lock
      .runExclusive(async () => {
        this.log.warn('base flows missing (ovs-vswitchd restarted?); restoring host config and flows');
        await this.vswitch!.waitForOfport(GATEWAY_PORT);
        await this.realizeHost();
        await this.hostNet.syncPeerRoutes([...this.peers.values()], this.cfg.trafficEncapMode);
        await this.flows!.submit(pipelineFlows(this.state()).map(addFlow));
        await this.secondaryDatapath?.restore();
        // The new ovs-vswitchd starts with an empty tunnel neighbour table.
        this.announcedMac = undefined;
        await this.syncNeighbours();
        await this.endFlowRestoreWait();
        this.metrics.restores.inc();
        this.log.info({ pods: this.store.size }, 'datapath restored');
      }, LOCK_UNITS)
      .catch((e: unknown) => this.log.error({ err: String(e) }, 'datapath restore failed'))
      .finally(() => {
        this.recovering = undefined;
      });
  }

  /**
   * Every start of ovs-vswitchd writes its pidfile anew (a new inode and mtime). The file, not the pid: a
   * restarted OVS container often gets the same pid in its fresh pid namespace.
   */
  private vswitchdIdentity(): string | undefined {
    try {
      const st = statSync(join(this.cfg.ovs.rundir, 'ovs-vswitchd.pid'), { bigint: true });
      return `${st.ino}:${st.mtimeNs}`;
    } catch {
      return undefined;
    }
  }

  /** Stops serving and watching. Pods, ports and flows stay: forwarding continues without the agent. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.ready = false;
    if (this.watchdog) clearInterval(this.watchdog);
    if (this.peerTimer) clearTimeout(this.peerTimer);
    if (this.neighbourTimer) clearTimeout(this.neighbourTimer);
    if (this.ipamGcTimer) clearInterval(this.ipamGcTimer);
    await this.reconciler?.stop();
    await this.server?.close();
    await this.secondary?.stop();
    await this.nodesInformer?.stop();
    await this.podsInformer?.stop();
    await this.recovering;
    await this.neighbourSync.current;
    await this.vswitch?.close();
    await new Promise((r) => (this.health ? this.health.close(r) : r(undefined)));
  }
}


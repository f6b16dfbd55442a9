import type { NodeContext, Uplink } from '../../agent/context.js';
import type { AgentFeature, FeatureInspection } from '../../agent/feature.js';
import { addFlow } from '../../ovs/openflow/index.js';
import { logger } from '../../util/log.js';
import { SerialPass } from '../../util/serial.js';
import { GATEWAY_PORT, PHY_BRIDGE, discoverUplink, ensureUplinkBridge, gatewayMacFor } from '../bridge/bridge.js';
import { TunnelNeighbours } from '../bridge/tunnel-neighbours.js';
import { NETWORK_NAME } from '../installcni/index.js';
import { InterfaceStore, inspectedInterface, type PodInterface } from '../interfacestore/store.js';
import { NodeIpam } from '../ipam/index.js';
import { peersFromNodes } from '../nodes/peers.js';
import { peerRemoval, peerSync, pipelineFlows, pipelineSync, type RoutedNodeConfig, type PeerNode, type PipelineState } from '../pipeline/index.js';
import { HostNetwork } from '../route/host.js';
import { PodNetworkDriver } from './driver.js';

/** Tunnel next hops are checked this often; sooner while one of them does not answer yet (a node coming up). */
const NEIGHBOUR_SYNC_MS = 15_000;
const NEIGHBOUR_RETRY_MS = 2000;
/** Node events come in bursts: one peer sync after the burst. */
const PEER_SYNC_DELAY_MS = 100;

/** What of the peers the node's routes and flows depend on, in a stable order. */
const peerSignature = (peers: readonly PeerNode[]): string => JSON.stringify(peers.map((p) => [p.index, p.nodeIp, p.podCidr, p.gatewayIp]).sort((a, b) => Number(a[0]) - Number(b[0])));

/**
 * The primary pod network of the node: host gateway, routes and SNAT, node IPAM, the interface store, the
 * pipeline flows of the integration bridge, peers and their tunnel next hops; answers the CNI calls.
 * Start order: host side -> interface store and IPAM from what exists -> one atomic flow sync (a new round
 * replaces the old one in place, so traffic never stops) -> tunnel neighbours -> watch the Nodes.
 */
export class PrimaryNetworkFeature implements AgentFeature {
  readonly name = 'primary';
  private readonly log = logger('agent');
  private ctx?: NodeContext;
  private hostNet?: HostNetwork;
  private nodeConfig?: RoutedNodeConfig;
  private store = new InterfaceStore();
  private driver?: PodNetworkDriver;
  private peers = new Map<number, PeerNode>();
  private started = false;
  private stopped = false;
  private peerTimer?: NodeJS.Timeout;
  /** Userspace tunnels only: OVS's tunnel neighbour table, seeded so no first packet waits on ARP. */
  private neighbours?: TunnelNeighbours;
  private neighbourTimer?: NodeJS.Timeout;
  /** One sync at a time; a request meanwhile runs once more after it (peers may have changed). */
  private readonly neighbourSync = new SerialPass(() => this.syncNeighboursOnce(), () => this.stopped);
  private announcedMac?: string;

  /** The node's pod interfaces on the integration bridge (a Traceflow injects at one). */
  podInterfaces(): readonly PodInterface[] {
    return this.store.list();
  }

  get podNetwork(): PodNetworkDriver | undefined {
    return this.driver;
  }

  readonly inspection: FeatureInspection = {
    podInterfaces: () => this.store.list().map((i) => inspectedInterface(i, this.ctx?.config.ovs.bridge ?? '', NETWORK_NAME)),
  };

  async start(ctx: NodeContext): Promise<void> {
    this.ctx = ctx;
    const cfg = ctx.config;
    const podCidr = ctx.node.podCidr;
    if (cfg.mode !== 'primary' || podCidr === undefined) throw new Error('the primary pod network needs mode: primary and the node\'s podCIDR');
    this.hostNet = new HostNetwork(ctx.host, GATEWAY_PORT);
    this.nodeConfig = {
      mode: cfg.trafficEncapMode,
      round: ctx.bridge.round,
      gatewayOfport: ctx.bridge.gatewayOfport,
      tunnelOfport: ctx.bridge.tunnelOfport ?? 0,
      gatewayIp: ctx.node.gatewayIp,
      gatewayMac: gatewayMacFor(ctx.node.ip),
      podCidr,
      clusterCidr: cfg.clusterCIDR,
    };
    await this.realizeHost(ctx.uplink);

    const ipam = await NodeIpam.open({ podCIDR: podCidr, stateDir: cfg.stateDir });
    const loaded = InterfaceStore.fromOvsdb(ctx.vswitch, cfg.ovs.bridge);
    this.store = loaded.store;
    for (const p of loaded.broken) {
      this.log.warn({ port: p.name }, 'removing a pod port that cannot be used');
      await ctx.vswitch.removePort(p.name);
    }
    this.driver = new PodNetworkDriver({
      bridge: cfg.ovs.bridge,
      vswitch: ctx.vswitch,
      flows: ctx.flows,
      ipam,
      store: this.store,
      host: ctx.host,
      node: () => this.nodeConfig!,
      mtu: ctx.mtu.pod,
      userspaceDatapath: cfg.ovs.datapathType === 'netdev',
      ready: () => ctx.ready(),
      defaultNetwork: NETWORK_NAME,
    });
    // Pods deleted while the agent was away (their DEL found nobody) are released by the agent's reconciler
    // once the pods are known; addresses without a port (an ADD killed half way) go now.
    const released = await ipam.reconcile(this.store.list().map((i) => ({ containerId: i.containerId, ifname: i.ifname })));
    if (released.length) this.log.info({ released: released.map((a) => a.ip) }, 'reclaimed leaked addresses');

    this.peers = this.desiredPeers();
    await this.hostNet.syncPeerRoutes([...this.peers.values()], cfg.trafficEncapMode);
    const result = await ctx.flows.sync(pipelineSync(this.state()));
    this.log.info({ round: ctx.bridge.round, pods: this.store.size, peers: this.peers.size, ...result, changes: undefined }, 'flows synced');
    if (cfg.ovs.datapathType === 'netdev' && cfg.trafficEncapMode === 'encap') {
      this.neighbours = new TunnelNeighbours({ netns: cfg.hostNetns, ovsRundir: cfg.ovs.rundir, bridge: PHY_BRIDGE });
      await this.syncNeighbours();
    }
    ctx.metrics.gauge('seine_agent_pod_interfaces', 'Pod interfaces on the pod network attached to the integration bridge', () => this.store.size);
    ctx.metrics.gauge('seine_agent_peer_nodes', 'Peer nodes with a pod CIDR (each one tunnel or route)', () => this.peers.size);
    // Nodes change often for other reasons (status, other features' annotations): only a change of the peers
    // themselves is worth their routes, flows and neighbours (each sync spawns processes).
    const peersChanged = (): void => {
      if (peerSignature([...this.desiredPeers().values()]) !== peerSignature([...this.peers.values()])) this.schedulePeerSync();
    };
    ctx.nodes.on('add', peersChanged).on('update', peersChanged).on('delete', peersChanged);
    this.started = true;
  }

  /** Host addresses (gateway, `br-phy`), routes and every pipeline flow, after ovs-vswitchd lost them. */
  async restore(): Promise<void> {
    const ctx = this.ctx!;
    await ctx.vswitch.waitForOfport(GATEWAY_PORT);
    await this.realizeHost();
    await this.hostNet!.syncPeerRoutes([...this.peers.values()], ctx.config.trafficEncapMode);
    await ctx.flows.submit(pipelineFlows(this.state()).map(addFlow));
    // The new ovs-vswitchd starts with an empty tunnel neighbour table.
    this.announcedMac = undefined;
    await this.syncNeighbours();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.peerTimer) clearTimeout(this.peerTimer);
    if (this.neighbourTimer) clearTimeout(this.neighbourTimer);
    await this.neighbourSync.current;
  }

  private state(): PipelineState {
    return {
      node: this.nodeConfig!,
      pods: this.store.list().map((i) => ({ ofport: i.ofport, ip: i.ip, mac: i.mac })),
      peers: [...this.peers.values()],
    };
  }

  /** The host side: br-phy (userspace tunnels), gateway address, forwarding, SNAT. */
  private async realizeHost(uplink?: Uplink): Promise<void> {
    const ctx = this.ctx!;
    const cfg = ctx.config;
    if (cfg.ovs.datapathType === 'netdev' && cfg.trafficEncapMode === 'encap') {
      const u = uplink ?? (await discoverUplink(ctx.vswitch, ctx.host, ctx.node.ip));
      await ensureUplinkBridge(ctx.vswitch, ctx.host, { uplink: u.uplink, nodeCidr: u.nodeCidr, defaultGateway: u.defaultGateway, mtu: u.mtu });
    }
    const node = this.nodeConfig!;
    await this.hostNet!.ensureGateway(`${node.gatewayIp}/${node.podCidr.split('/')[1]}`, ctx.mtu.pod);
    await this.hostNet!.ensureForwarding();
    await this.hostNet!.ensureSnat(node.podCidr, cfg.clusterCIDR, cfg.egressSNAT);
  }

  private schedulePeerSync(): void {
    if (!this.started || this.stopped) return;
    if (this.peerTimer) clearTimeout(this.peerTimer);
    this.peerTimer = setTimeout(() => void this.syncPeers().catch((e: unknown) => this.log.error({ err: String(e) }, 'peer sync failed')), PEER_SYNC_DELAY_MS);
  }

  /** The peers the Node objects describe now, by index. */
  private desiredPeers(): Map<number, PeerNode> {
    const ctx = this.ctx!;
    return new Map(peersFromNodes(ctx.nodes.list(), ctx.node.name, ctx.config.clusterCIDR).map((p) => [p.index, p]));
  }

  /** Applies Node changes: routes, then each added, changed or removed peer's flows in its own cookie scope. */
  private async syncPeers(): Promise<void> {
    const ctx = this.ctx!;
    const next = this.desiredPeers();
    await this.hostNet!.syncPeerRoutes([...next.values()], ctx.config.trafficEncapMode);
    const node = this.nodeConfig!;
    for (const [index, peer] of next) {
      const old = this.peers.get(index);
      if (!old || old.nodeIp !== peer.nodeIp || old.podCidr !== peer.podCidr) await ctx.flows.sync(peerSync(node, peer));
    }
    for (const index of this.peers.keys()) if (!next.has(index)) await ctx.flows.sync(peerRemoval(index));
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
      const mac = this.ctx!.vswitch.cache.iface(PHY_BRIDGE)?.macInUse;
      if (mac && mac !== this.announcedMac) {
        await this.neighbours.announce(this.ctx!.node.ip);
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
}

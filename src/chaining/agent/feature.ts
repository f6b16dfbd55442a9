import { CoreV1Api, CustomObjectsApi, type KubernetesListObject, type V1Namespace, type V1Pod } from '@kubernetes/client-node';
import { Counter } from 'prom-client';
import type { NodeContext } from '../../agent/context.js';
import type { AgentFeature } from '../../agent/feature.js';
import { MERGE_PATCH } from '../../k8s/api.js';
import { EventRecorder } from '../../k8s/events.js';
import { ResilientInformer } from '../../k8s/informer.js';
import { decodeCookie, FlowWriter } from '../../ovs/openflow/index.js';
import { functionPorts, type FunctionPort } from '../../secondary/datapath/function-ports.js';
import type { NetworkAttachmentDefinition } from '../../secondary/nad/index.js';
import { logger } from '../../util/log.js';
import { SerialPass } from '../../util/serial.js';
import { CHAIN_API_VERSION, CHAIN_GROUP, CHAIN_KIND, CHAIN_PLURAL, CHAIN_VERSION, chainKey, hopDefaults, type Counters, type ServiceChain } from '../api/types.js';
import { chainRemoval, chainSync, chainingSync, segmentSync, usableReplicas } from '../datapath/flows.js';
import { CookieKind, chainingScope, decodeChainObject } from '../datapath/layout.js';
import type { ChainNodeInfo, ChainSegment, DatapathChain, DatapathHop, HopReplica, SegmentHook } from '../datapath/state.js';
import { desiredChains, isPodReady, isPodTerminating, nodeReports, type DesiredChain } from '../model/desired.js';
import { CounterTotals, type TrafficCounters } from './counter-totals.js';
import { NODE_CHAIN_REPORT_ANNOTATION, nodeChainReportPatch, parseNodeChainReport, type NodeChainReport, type ReplicaReport } from '../model/report.js';
import { ensureRoutedCnf, installedRoutedPairs, removeRoutedCnf } from './cnf-routing.js';
import { ReplicaHealth, type ReplicaCheck, type ReplicaVerdict } from './health.js';
import { sharedConnection } from '../../ovs/openflow/wire/connection.js';
import { ForwardingProber, probeDestinationMac, probeKey, type ProbeTarget } from './probe.js';
import { CHAIN_TUNNEL_OVERHEAD, CHAIN_TUNNEL_OWNER, chainNetworkOf, chainTunnel, deliverableDestinations, localPodPorts, segmentEndpoints, type ChainNetwork } from './segments.js';

/** Object events come in bursts: one realization after the burst. */
const REALIZE_DELAY_MS = 50;
/** Health is looked at (and probes sent) this often; the shortest probe period is 1 s. */
const TICK_MS = 250;
/** A secondary bridge whose chain stage could not be written is tried again after this long. */
const RETRY_MS = 2000;
/** Counters are reported at most this often (the controller writes a change of counters alone at most every 10 s, a chain's first traffic at once). */
const REPORT_MS = 5000;

/** A replica of a chain on this node, as health and reports see it. */
interface LocalReplica {
  key: string;
  chain: DesiredChain;
  hop: number;
  replicaId: number;
  podUid: string;
  pod: string;
  /** The bridge of the chain's network here (br-int, or the secondary network's). */
  bridge: string;
  ports?: { ingress: FunctionPort; egress: FunctionPort };
}

/** What a secondary bridge's chain stage was last synced from. */
interface SegmentBridgeState {
  /** JSON of the sync request's inputs. */
  inputs: string;
  /** Chain indexes realized there. */
  chains: number[];
}

const emptyCounters = (): Counters => ({ forward: 0, reverse: 0 });
const routedKey = (cnf: { netns: string; ingress: string; egress: string }): string => `${cnf.netns}|${cnf.ingress}|${cnf.egress}`;
const portsSignature = (ports: readonly FunctionPort[]): string => ports.map((p) => `${p.podUid}/${p.ifname}=${p.ofport}`).join(',');
const NAD_PATH = '/apis/k8s.cni.cncf.io/v1/network-attachment-definitions';
type Nad = NetworkAttachmentDefinition & { apiVersion?: string; kind?: string; metadata: { name?: string; namespace?: string; uid?: string } };

/**
 * Service chains on this node: watches chains, pods, namespaces and the Nodes' reports, computes the shared
 * desired state (src/chaining/model), realizes this node's part of it in br-int's chain stage (one cookie scope
 * per chain, atomic bundles) and, for chains on Seine VLAN and overlay networks, in the chain stage of those
 * networks' bridges (one scope per bridge), prepares Routed CNFs, probes the local replicas, and reports their
 * health and the flow counters on its Node for the controller and the other agents.
 */
export class ServiceChainsFeature implements AgentFeature {
  readonly name = 'service-chains';
  private readonly log = logger('chains');
  private ctx!: NodeContext;
  private chains?: ResilientInformer<ServiceChain>;
  private pods?: ResilientInformer<V1Pod>;
  private namespaces?: ResilientInformer<V1Namespace>;
  private nads?: ResilientInformer<Nad>;
  private events?: EventRecorder;
  private stopped = false;
  private started = false;
  private readonly pass = new SerialPass(() => this.realize(), () => this.stopped);
  private realizeTimer?: NodeJS.Timeout;
  private retryTimer?: NodeJS.Timeout;
  /** Chains already warned about a network MTU that does not fit the chain tunnel. */
  private readonly mtuWarned = new Set<string>();
  private tickTimer?: NodeJS.Timeout;
  private reportTimer?: NodeJS.Timeout;
  private readonly reportPass = new SerialPass(() => this.report(), () => this.stopped);
  private readonly health = new ReplicaHealth();
  /** Counters as running totals (flow statistics restart from zero with the flows). */
  private readonly totals = new CounterTotals();
  /** Forwarding probers by bridge (br-int's always runs; a secondary bridge's while it has local replicas). */
  private readonly probers = new Map<string, ForwardingProber>();
  private probeSeq = 0;
  /** What each chain's flows on br-int were last synced from (JSON), by chain index. */
  private realized = new Map<number, string>();
  /** Secondary bridges with a chain stage, by name. */
  private segmentBridges = new Map<string, SegmentBridgeState>();
  /** OpenFlow writers of secondary bridges. */
  private readonly writers = new Map<string, FlowWriter>();
  /** The secondary networks with chains at the last realization (their ports are watched). */
  private segmentNetworks: ChainNetwork[] = [];
  private locals: LocalReplica[] = [];
  /** The chains of the last realization (every network).  */
  private desired: DesiredChain[] = [];
  private checks: ReplicaCheck[] = [];
  private verdicts = new Map<string, ReplicaVerdict>();
  private routedReady = new Set<string>();
  /** Whether the Routed plumbing left from before this agent's start has been looked at (once the chains are listed). */
  private routingScanned = false;
  private chainsListed = false;
  private lastReport?: string;
  private fullSync = true;
  /** The function ports (pod/interface -> ofport) the last realization saw; a change means realizing again. */
  private portsSeen = '';
  private packets?: Counter;
  private bytes?: Counter;

  async start(ctx: NodeContext): Promise<void> {
    this.ctx = ctx;
    const kc = ctx.kubeConfig;
    const core = kc.makeApiClient(CoreV1Api);
    const custom = kc.makeApiClient(CustomObjectsApi);
    this.events = new EventRecorder(core, { component: 'seine-agent', host: ctx.node.name });
    this.chains = new ResilientInformer<ServiceChain>({
      kubeConfig: kc,
      name: 'agent-chains',
      path: `/apis/${CHAIN_GROUP}/${CHAIN_VERSION}/${CHAIN_PLURAL}`,
      list: () => custom.listClusterCustomObject({ group: CHAIN_GROUP, version: CHAIN_VERSION, plural: CHAIN_PLURAL }) as Promise<KubernetesListObject<ServiceChain>>,
    });
    this.pods = new ResilientInformer<V1Pod>({ kubeConfig: kc, name: 'agent-chain-pods', path: '/api/v1/pods', list: () => core.listPodForAllNamespaces() });
    this.namespaces = new ResilientInformer<V1Namespace>({ kubeConfig: kc, name: 'agent-chain-namespaces', path: '/api/v1/namespaces', list: () => core.listNamespace() });
    this.nads = new ResilientInformer<Nad>({
      kubeConfig: kc,
      name: 'agent-chain-nads',
      path: NAD_PATH,
      list: () => custom.listClusterCustomObject({ group: 'k8s.cni.cncf.io', version: 'v1', plural: 'network-attachment-definitions' }) as Promise<KubernetesListObject<Nad>>,
    });
    const changed = (): void => this.schedule();
    for (const inf of [this.chains, this.pods, this.namespaces, this.nads] as Array<ResilientInformer<never>>) inf.on('add', changed).on('update', changed).on('delete', changed);
    ctx.nodes.on('add', changed).on('update', changed).on('delete', changed);
    this.packets = new Counter({ name: 'seine_chain_packets_total', help: 'Packets steered into a chain replica (direction forward or reverse) or classified into a chain (replica "entry") on this node', labelNames: ['chain', 'hop', 'replica', 'direction'], registers: [ctx.metrics.registry] });
    this.bytes = new Counter({ name: 'seine_chain_bytes_total', help: 'Bytes, as seine_chain_packets_total', labelNames: ['chain', 'hop', 'replica', 'direction'], registers: [ctx.metrics.registry] });

    await this.pods.start();
    await this.namespaces.start();
    // Without the CRD (not installed yet) there are no chains: realize none and keep trying in the background.
    const chainsListed = await this.chains.start().then(() => true, (e: unknown) => {
      this.log.warn({ err: String(e) }, 'cannot list ServiceChains (CRD not installed?); retrying');
      void this.retryStart(this.chains!);
      return false;
    });
    this.chainsListed = chainsListed;
    await this.nads.start().catch((e: unknown) => {
      this.log.warn({ err: String(e) }, 'cannot list NetworkAttachmentDefinitions (CRD not installed?); retrying');
      void this.retryStart(this.nads!);
    });
    // Health as this node last reported it, until probes say otherwise: a restarted agent keeps the replicas in use.
    const own = parseNodeChainReport(ctx.nodes.get(ctx.node.name)?.metadata?.annotations?.[NODE_CHAIN_REPORT_ANNOTATION]).report;
    for (const r of own?.replicas ?? []) {
      this.health.seed(`${r.chain}/${r.hop}/${r.pod}`, r.healthy, r.since ? new Date(r.since) : new Date());
      this.totals.seed(`${r.chain}/${r.hop}/${r.pod}`, r);
    }
    for (const c of own?.chains ?? []) this.totals.seed(c.chain, c);
    this.proberOf(ctx.config.ovs.bridge);
    await this.pass.run();
    this.started = true;
    // After the poll phase: a probe's packet-in that arrived while the loop was busy is read before it is judged missed.
    this.tickTimer = setInterval(() => setImmediate(() => this.tick()), TICK_MS);
    this.reportTimer = setInterval(() => void this.reportPass.run(), REPORT_MS);
    this.log.info({ chains: chainsListed ? this.chains.list().length : 0, realized: this.realized.size }, 'service chains started');
  }

  private async retryStart(inf: ResilientInformer<ServiceChain> | ResilientInformer<Nad>): Promise<void> {
    while (!this.stopped) {
      await new Promise((r) => setTimeout(r, 2000));
      if (this.stopped) return;
      try {
        await inf.stop();
        await inf.start();
        if (inf === this.chains) this.chainsListed = true;
        this.schedule();
        return;
      } catch {
        /* still not there */
      }
    }
  }

  private schedule(): void {
    if (this.stopped || !this.started) return;
    if (this.realizeTimer) return;
    this.realizeTimer = setTimeout(() => {
      this.realizeTimer = undefined;
      void this.pass.run().catch((e: unknown) => this.log.error({ err: String(e) }, 'realizing chains failed'));
    }, REALIZE_DELAY_MS);
  }

  private nodeInfo(): ChainNodeInfo {
    const encap = this.ctx.config.trafficEncapMode === 'encap';
    return { round: this.ctx.bridge.round, tunnelOfport: encap ? (this.ctx.bridge.tunnelOfport ?? 0) : 0 };
  }

  private proberOf(bridge: string): ForwardingProber {
    let p = this.probers.get(bridge);
    if (!p) {
      p = new ForwardingProber({ connection: sharedConnection(`${this.ctx.config.ovs.rundir}/${bridge}.mgmt`, bridge), onReturn: (k) => this.probeReturned(k) });
      p.start();
      this.probers.set(bridge, p);
    }
    return p;
  }

  private writerOf(bridge: string): FlowWriter {
    let w = this.writers.get(bridge);
    if (!w) {
      w = new FlowWriter({ target: `unix:${this.ctx.config.ovs.rundir}/${bridge}.mgmt`, bridge });
      this.writers.set(bridge, w);
    }
    return w;
  }

  /** The secondary networks chains are on, as this node's NADs say (networks that cannot carry chains left out). */
  private chainNetworks(names: readonly string[]): Map<string, ChainNetwork> {
    const out = new Map<string, ChainNetwork>();
    const zones = new Map<number, string>();
    for (const name of [...new Set(names)].sort()) {
      const nad = this.nads?.list().find((n) => `${n.metadata.namespace}/${n.metadata.name}` === name);
      if (!nad) continue;
      const net = chainNetworkOf(nad);
      if ('problem' in net) {
        this.log.debug({ network: name, problem: net.problem }, 'chains on this network are not realized');
        continue;
      }
      const clash = zones.get(net.zone);
      if (clash) {
        this.log.warn({ network: name, other: clash, zone: net.zone }, 'two networks with chains map to one conntrack zone; chains on the second are not realized here');
        continue;
      }
      zones.set(net.zone, name);
      out.set(name, net);
    }
    return out;
  }

  private chainObject(key: string): ServiceChain | undefined {
    return this.chains?.list().find((c) => chainKey(c) === key);
  }

  /** Function ports and pod ports the chain stages depend on, as OVSDB has them now: a change means realizing again. */
  private observedPorts(networks: Iterable<ChainNetwork>): string {
    const vs = this.ctx.vswitch;
    const parts = [portsSignature(functionPorts(vs, this.ctx.config.ovs.bridge))];
    for (const net of networks) {
      if (!vs.cache.bridge(net.bridge)) continue;
      const pods = localPodPorts(vs, net.bridge, net.network).map((p) => `${p.ofport}=${p.mac}/${p.ips.join('+')}`);
      parts.push(net.network, portsSignature(functionPorts(vs, net.bridge)), pods.join(','));
    }
    return parts.join('|');
  }

  /** Computes the desired chains, this node's replicas and their health, and syncs what changed. */
  private async realize(): Promise<void> {
    if (this.stopped) return;
    const ctx = this.ctx;
    const vs = ctx.vswitch;
    const nodes = ctx.nodes.list();
    const pods = this.pods!.list();
    const { chains } = desiredChains({ chains: this.chains?.list() ?? [], pods, namespaces: this.namespaces!.list(), nodes, reports: nodeReports(nodes) });
    const brInt = ctx.config.ovs.bridge;
    const networks = this.chainNetworks(chains.filter((c) => c.network !== '').map((c) => c.network));
    // A chain on a secondary network has something to do here only where that network's bridge exists (a pod or CNF of it runs here).
    const bridgeOf = (c: DesiredChain): string | undefined => {
      if (c.network === '') return brInt;
      const net = networks.get(c.network);
      return net && vs.cache.bridge(net.bridge) ? net.bridge : undefined;
    };
    const here = chains.filter((c) => bridgeOf(c) !== undefined);
    const present = [...networks.values()].filter((n) => here.some((c) => c.network === n.network));
    this.segmentNetworks = present;
    this.portsSeen = this.observedPorts(present);
    const portsOn = new Map<string, FunctionPort[]>();
    const functionPortsOf = (bridge: string, network: string): Map<string, FunctionPort> => {
      if (!portsOn.has(bridge)) portsOn.set(bridge, functionPorts(vs, bridge));
      return new Map(portsOn.get(bridge)!.filter((p) => p.network === network).map((p) => [`${p.podUid}/${p.ifname}`, p]));
    };
    const podsByUid = new Map(pods.map((p) => [p.metadata?.uid ?? '', p]));
    const locals: LocalReplica[] = [];
    const checks: ReplicaCheck[] = [];
    const routed: Array<{ netns: string; ingress: string; egress: string }> = [];
    // A function port serves one hop of one chain: the chain of higher precedence keeps it.
    const claimed = new Set<string>();
    for (const chain of here) {
      const bridge = bridgeOf(chain)!;
      const ports = functionPortsOf(bridge, chain.network);
      const spec = this.chainObject(chain.key)?.spec;
      chain.hops.forEach((hop, h) => {
        const hc = spec?.hops[h] ? hopDefaults(spec.hops[h]!).healthCheck : undefined;
        for (const r of hop.replicas) {
          if (r.node !== ctx.node.name) continue;
          const key = `${chain.uid}/${hop.name}/${r.podUid}`;
          const ingress = ports.get(`${r.podUid}/${r.ingress}`);
          const egress = ports.get(`${r.podUid}/${r.egress}`);
          const free = ingress && egress && !claimed.has(`${bridge}/${ingress.ofport}`) && !claimed.has(`${bridge}/${egress.ofport}`);
          if (free) {
            claimed.add(`${bridge}/${ingress.ofport}`);
            claimed.add(`${bridge}/${egress.ofport}`);
          }
          const pod = podsByUid.get(r.podUid);
          locals.push({ key, chain, hop: h, replicaId: r.id, podUid: r.podUid, pod: r.pod, bridge, ...(free ? { ports: { ingress, egress } } : {}) });
          checks.push({
            key,
            podReady: !!pod && isPodReady(pod) && !isPodTerminating(pod),
            portsPresent: !!free,
            ...(hc?.type === 'Forwarding' ? { probe: { periodMs: hc.periodSeconds * 1000, failureThreshold: hc.failureThreshold } } : {}),
          });
          if (free && hop.mode === 'Routed') routed.push({ netns: ingress.netns, ingress: r.ingress, egress: r.egress });
        }
      });
    }
    this.locals = locals;
    this.checks = checks;
    this.desired = here;
    for (const [bridge, prober] of [...this.probers]) {
      if (bridge === brInt || locals.some((l) => l.bridge === bridge)) continue;
      prober.stop();
      this.probers.delete(bridge);
    }
    const { verdicts, changed } = this.health.evaluate(checks);
    this.verdicts = verdicts;
    if (!this.routingScanned && this.chainsListed) {
      this.routingScanned = true;
      await this.removeStaleRouting(routed);
    }
    for (const cnf of routed) await this.prepareRouted(cnf);
    const wanted = new Set(routed.map(routedKey));
    for (const key of [...this.routedReady]) {
      if (wanted.has(key)) continue;
      this.routedReady.delete(key);
      const [netns, ingress, egress] = key.split('|') as [string, string, string];
      await removeRoutedCnf(netns, ingress, egress);
      this.log.info({ netns, ingress, egress }, 'Routed CNF plumbing removed');
    }

    const localOf = new Map(locals.map((l) => [`${l.chain.index}/${l.hop}/${l.replicaId}`, l]));
    const toDatapath = (c: DesiredChain, segment?: ChainSegment, destination?: string[]): DatapathChain => ({
      index: c.index,
      precedence: c.precedence,
      symmetric: c.symmetric,
      classifier: { source: c.classifier.source.cidrs, destination: destination ?? c.classifier.destination.cidrs, ...(c.classifier.protocol ? { protocol: c.classifier.protocol } : {}), ports: c.classifier.ports },
      hops: c.hops.map((hop, h): DatapathHop => ({
        mode: hop.mode,
        failurePolicy: hop.failurePolicy,
        probe: this.forwardingCheck(c, h),
        replicas: hop.replicas.map((r): HopReplica => {
          const l = localOf.get(`${c.index}/${h}/${r.id}`);
          if (r.node !== ctx.node.name) return { id: r.id, nodeIp: r.nodeIp, usable: r.healthy };
          if (!l?.ports) return { id: r.id, nodeIp: r.nodeIp, usable: false };
          const { ingress, egress } = l.ports;
          return { id: r.id, nodeIp: r.nodeIp, usable: verdicts.get(l.key)?.healthy ?? false, local: { ingressOfport: ingress.ofport, egressOfport: egress.ofport, ingressMac: ingress.mac, egressMac: egress.mac } };
        }),
      })),
      ...(segment ? { segment } : {}),
    });
    const full = this.fullSync;
    await this.sync(here.filter((c) => c.network === '').map((c) => toDatapath(c)), full);

    const segments = new Map<string, { hooks: SegmentHook[]; chains: DatapathChain[] }>();
    for (const net of present) {
      const local = localPodPorts(vs, net.bridge, net.network);
      const s = segments.get(net.bridge) ?? { hooks: [], chains: [] };
      segments.set(net.bridge, s);
      s.hooks.push({ zone: net.zone, podOfports: local.map((p) => p.ofport) });
      const mtu = Math.max(0, ...local.map((p) => p.mtu));
      for (const c of here.filter((x) => x.network === net.network)) {
        const endpoints = segmentEndpoints({ network: net.network, nodeName: ctx.node.name, local, pods, nodes, cidrs: [...c.classifier.source.cidrs, ...c.classifier.destination.cidrs] });
        const crossesNodes = c.hops.some((h) => h.replicas.some((r) => r.node !== ctx.node.name)) || endpoints.some((e) => e.nodeIp);
        if (crossesNodes && mtu + CHAIN_TUNNEL_OVERHEAD > ctx.mtu.underlay) this.warnTunnelMtu(c, net.network, mtu);
        s.chains.push(toDatapath(c, { zone: net.zone, endpoints }, deliverableDestinations(c.classifier.destination.cidrs, endpoints)));
      }
    }
    await this.syncSegments(segments, full);
    this.fullSync = false;
    if (changed.length) {
      this.recordHealthEvents(changed);
      void this.reportPass.run();
    }
  }

  private forwardingCheck(chain: DesiredChain, hop: number): boolean {
    const spec = this.chainObject(chain.key)?.spec.hops[hop];
    return !!spec && hopDefaults(spec).healthCheck.type === 'Forwarding';
  }

  private async sync(datapath: DatapathChain[], full: boolean): Promise<void> {
    const info = this.nodeInfo();
    const next = new Map(datapath.map((c) => [c.index, JSON.stringify(c)]));
    if (full) {
      // First realization of this run (or after ovs-vswitchd restarted): one bundle replaces every earlier round's flows.
      const r = await this.ctx.flows.sync(chainingSync(info, datapath));
      this.realized = next;
      this.log.info({ chains: datapath.map((c) => c.index), added: r.added, deleted: r.deleted, modified: r.modified }, 'chain stage synced');
      return;
    }
    for (const c of datapath) {
      if (this.realized.get(c.index) === next.get(c.index)) continue;
      await this.ctx.flows.sync(chainSync(info, c));
      this.realized.set(c.index, next.get(c.index)!);
      this.log.info({ chain: c.index, usable: c.hops.map((h) => usableReplicas(info, h).map((r) => r.id)) }, 'chain realized');
    }
    for (const index of [...this.realized.keys()]) {
      if (next.has(index)) continue;
      await this.ctx.flows.sync(chainRemoval(index));
      this.realized.delete(index);
      this.log.info({ chain: index }, 'chain removed');
    }
  }

  /**
   * The chain stages of secondary bridges: each bridge's whole stage in one bundle when its inputs changed, its
   * chain tunnel while it has chains; bridges left without chains lose both. After a start or an ovs-vswitchd
   * restart every secondary bridge is synced, so flows of chains deleted meanwhile go too.
   */
  private async syncSegments(segments: Map<string, { hooks: SegmentHook[]; chains: DatapathChain[] }>, full: boolean): Promise<void> {
    const vs = this.ctx.vswitch;
    const ports = new Map<number, string>();
    for (const [bridge, want] of segments) {
      const { dstPort } = chainTunnel(bridge);
      const other = ports.get(dstPort);
      if (other) {
        this.log.warn({ bridge, other, dstPort }, 'two bridges with chains derive one chain tunnel port; chains on the second are not realized here');
        segments.delete(bridge);
        continue;
      }
      ports.set(dstPort, bridge);
      try {
        const tunnelOfport = await this.ensureChainTunnel(bridge);
        const info: ChainNodeInfo = { round: this.ctx.bridge.round, tunnelOfport };
        const inputs = JSON.stringify({ info, want });
        if (!full && this.segmentBridges.get(bridge)?.inputs === inputs) continue;
        const r = await this.writerOf(bridge).sync(segmentSync(info, want.hooks, want.chains));
        this.segmentBridges.set(bridge, { inputs, chains: want.chains.map((c) => c.index) });
        this.log.info({ bridge, chains: want.chains.map((c) => c.index), added: r.added, deleted: r.deleted, modified: r.modified }, 'chain stage of a secondary bridge synced');
      } catch (e) {
        this.segmentBridges.set(bridge, { inputs: '', chains: [] });
        this.log.error({ bridge, err: String(e) }, 'cannot realize the chains of a secondary bridge; retrying');
        this.retrySoon();
      }
    }
    const leftovers = new Set([...this.segmentBridges.keys()].filter((b) => !segments.has(b)));
    for (const p of vs.cache.findPorts({ 'seine-owner': CHAIN_TUNNEL_OWNER })) {
      const b = vs.cache.bridgeOf(p.name)?.name;
      if (b && !segments.has(b)) leftovers.add(b);
    }
    if (full) for (const b of vs.cache.bridges()) if (b.externalIds['seine-owner'] === 'secondary' && !segments.has(b.name)) leftovers.add(b.name);
    for (const bridge of leftovers) {
      try {
        if (vs.cache.bridge(bridge)) {
          const r = await this.writerOf(bridge).sync({ cookie: chainingScope(), flows: [] });
          if (r.deleted) this.log.info({ bridge, deleted: r.deleted }, 'chain stage of a secondary bridge removed');
          const { name } = chainTunnel(bridge);
          if (vs.cache.port(name)) await vs.removePort(name);
        }
        this.segmentBridges.delete(bridge);
      } catch (e) {
        this.log.error({ bridge, err: String(e) }, 'cannot remove the chain stage of a secondary bridge; retrying');
        this.retrySoon();
      }
    }
  }

  /**
   * Frames of a network whose MTU leaves no room for the chain tunnel cannot cross nodes inside a chain: the
   * underlay drops them (no fragmentation, no ICMP). Said once per chain and node, as a warning Event.
   */
  private warnTunnelMtu(chain: DesiredChain, network: string, mtu: number): void {
    const key = `${chain.uid}/${mtu}/${this.ctx.mtu.underlay}`;
    if (this.mtuWarned.has(key)) return;
    this.mtuWarned.add(key);
    const message = `network ${network} has MTU ${mtu} on node ${this.ctx.node.name}: with the chain tunnel's ${CHAIN_TUNNEL_OVERHEAD} bytes its full-size frames exceed the underlay's ${this.ctx.mtu.underlay} and are dropped between nodes; give the network an MTU of at most ${this.ctx.mtu.underlay - CHAIN_TUNNEL_OVERHEAD} (or a larger underlay MTU)`;
    this.log.warn({ chain: chain.key, network, mtu, underlay: this.ctx.mtu.underlay }, 'frames of the network do not fit the chain tunnel');
    const [namespace, name] = chain.key.split('/') as [string, string];
    void this.events?.record({ kind: CHAIN_KIND, apiVersion: CHAIN_API_VERSION, name, namespace, uid: chain.uid }, 'Warning', 'TunnelMtu', message);
  }

  /** One realization again in a while (however many bridges failed). */
  private retrySoon(): void {
    if (this.retryTimer || this.stopped) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.schedule();
    }, RETRY_MS);
  }

  /** The chain tunnel port of a secondary bridge (made or remade as chainTunnel says), its OpenFlow port. */
  private async ensureChainTunnel(bridge: string): Promise<number> {
    const vs = this.ctx.vswitch;
    const { name, dstPort } = chainTunnel(bridge);
    const iface = vs.cache.iface(name);
    const o = iface?.options ?? {};
    const current = iface?.type === 'vxlan' && vs.cache.bridgeOf(name)?.name === bridge && o.dst_port === String(dstPort) && o.local_ip === this.ctx.node.ip && o.key === 'flow' && o.remote_ip === 'flow';
    if (current) return (await vs.waitForOfport(name)).ofport ?? 0;
    if (vs.cache.port(name)) await vs.removePort(name);
    const added = await vs.addPort(bridge, {
      name,
      type: 'vxlan',
      tunnel: { remoteIp: 'flow', localIp: this.ctx.node.ip, key: 'flow', dstPort },
      externalIds: { 'seine-owner': CHAIN_TUNNEL_OWNER, 'seine-bridge': bridge },
    });
    this.log.info({ bridge, port: name, dstPort, ofport: added.ofport }, 'chain tunnel added');
    return added.ofport ?? 0;
  }

  /**
   * Once after start: Routed plumbing in local CNFs that no Routed hop wants any more (its chain was deleted or
   * changed while the agent was away) goes; what the agent set up later it tracks itself.
   */
  private async removeStaleRouting(wanted: ReadonlyArray<{ netns: string; ingress: string; egress: string }>): Promise<void> {
    const serves = (netns: string, a: string, b: string): boolean => wanted.some((w) => w.netns === netns && ((w.ingress === a && w.egress === b) || (w.ingress === b && w.egress === a)));
    const byNetns = new Map<string, Set<string>>();
    for (const bridge of this.ctx.vswitch.cache.bridges()) {
      for (const p of functionPorts(this.ctx.vswitch, bridge.name)) if (p.netns) byNetns.set(p.netns, (byNetns.get(p.netns) ?? new Set()).add(p.ifname));
    }
    for (const [netns, ifnames] of byNetns) {
      const removed = new Set<string>();
      for (const [a, b] of await installedRoutedPairs(netns, [...ifnames])) {
        if (serves(netns, a, b) || removed.has(`${b}|${a}`)) continue;
        removed.add(`${a}|${b}`);
        await removeRoutedCnf(netns, a, b);
        this.log.info({ netns, ingress: a, egress: b }, 'Routed CNF plumbing removed (no Routed hop wants it since the agent restarted)');
      }
    }
  }

  private async prepareRouted(cnf: { netns: string; ingress: string; egress: string }): Promise<void> {
    const key = routedKey(cnf);
    if (this.routedReady.has(key)) return;
    try {
      await ensureRoutedCnf(cnf.netns, cnf.ingress, cnf.egress);
      this.routedReady.add(key);
    } catch (e) {
      this.log.warn({ netns: cnf.netns, ingress: cnf.ingress, egress: cnf.egress, err: String(e) }, 'cannot prepare a Routed CNF');
    }
  }

  private probeReturned(key: string): void {
    const l = this.locals.find((x) => probeKey(x.chain.index, x.hop, x.replicaId) === key);
    if (l) this.health.returned(l.key);
  }

  /** Sends the probes that are due and applies health changes at once; notices function ports that came or went. */
  private tick(): void {
    if (this.stopped) return;
    // OVSDB, not the API, says when a CNF's port appears, disappears or is renumbered (e.g. after ovs-vswitchd restarted).
    if (this.observedPorts(this.segmentNetworks) !== this.portsSeen) this.schedule();
    // Each bridge's probes go out (and come back) on that bridge; a bridge not connected sends none.
    const seq = ++this.probeSeq;
    for (const bridge of new Set(this.locals.map((l) => l.bridge))) {
      const prober = this.proberOf(bridge);
      const mine = this.locals.filter((l) => l.bridge === bridge);
      const keys = new Set(mine.map((l) => l.key));
      const due = new Set(this.health.due(this.checks.filter((c) => keys.has(c.key)), prober.observing()));
      const targets: ProbeTarget[] = [];
      for (const l of mine) {
        if (!due.has(l.key) || !l.ports) continue;
        targets.push({ chain: l.chain.index, hop: l.hop, replica: l.replicaId, ingressOfport: l.ports.ingress.ofport, dstMac: probeDestinationMac(l.chain.hops[l.hop]!.mode, l.ports.ingress.mac) });
      }
      if (targets.length) void prober.send(targets, seq).catch((e: unknown) => this.log.warn({ bridge, err: String(e) }, 'sending probes failed'));
    }
    const { verdicts, changed } = this.health.evaluate(this.checks);
    if (!changed.length) return;
    // Local steering changes with the next realization; the other nodes learn it from the report, sent now.
    this.verdicts = verdicts;
    this.recordHealthEvents(changed);
    this.schedule();
    void this.reportPass.run();
  }

  private recordHealthEvents(keys: string[]): void {
    for (const key of keys) {
      const l = this.locals.find((x) => x.key === key);
      const v = this.verdicts.get(key);
      if (!l || !v) continue;
      const [namespace, name] = l.chain.key.split('/') as [string, string];
      const hop = l.chain.hops[l.hop]!.name;
      this.log.info({ chain: l.chain.key, hop, pod: l.pod, healthy: v.healthy, reason: v.reason }, 'replica health changed');
      void this.events?.record(
        { kind: CHAIN_KIND, apiVersion: CHAIN_API_VERSION, name, namespace, uid: l.chain.uid },
        v.healthy ? 'Normal' : 'Warning',
        v.healthy ? 'ReplicaHealthy' : 'ReplicaUnhealthy',
        `replica ${l.pod} of hop ${hop} on node ${this.ctx.node.name} is ${v.healthy ? 'healthy' : `out of rotation: ${v.reason ?? 'unhealthy'}`}`,
      );
    }
  }

  /** Publishes the local replicas' health and this node's counters on the Node (only when something changed). */
  private async report(): Promise<void> {
    if (this.stopped || !this.started) return;
    const counters = new Map<string, { packets: Counters; bytes: Counters }>();
    const at = (k: string): { packets: Counters; bytes: Counters } => {
      let c = counters.get(k);
      if (!c) counters.set(k, (c = { packets: emptyCounters(), bytes: emptyCounters() }));
      return c;
    };
    try {
      // No chain realized here: no counters to read (spares an ovs-ofctl spawn every REPORT_MS on chainless nodes).
      const flows = this.realized.size ? await this.ctx.flows.dumpFlows({ cookie: chainingScope() }) : [];
      for (const [bridge, st] of this.segmentBridges) if (st.chains.length) flows.push(...(await this.writerOf(bridge).dumpFlows({ cookie: chainingScope() })));
      for (const f of flows) {
        const o = decodeChainObject(decodeCookie(f.cookie).object);
        const dir = o.direction === 0 ? 'forward' : 'reverse';
        const k = o.kind === CookieKind.deliver ? `${o.chain}/${o.hop}/${o.replica}` : o.kind === CookieKind.entry ? `${o.chain}` : undefined;
        if (!k) continue;
        const c = at(k);
        c.packets[dir] += Number(f.nPackets);
        c.bytes[dir] += Number(f.nBytes);
      }
    } catch (e) {
      this.log.warn({ err: String(e) }, 'cannot read chain counters');
      return;
    }
    const none = (): TrafficCounters => ({ packets: emptyCounters(), bytes: emptyCounters() });
    const metrics: Array<{ labels: { chain: string; hop: string; replica: string }; c: TrafficCounters }> = [];
    const replicas: ReplicaReport[] = this.locals.map((l) => {
      const v = this.verdicts.get(l.key);
      const hop = l.chain.hops[l.hop]!.name;
      const c = this.totals.totals(`${l.chain.uid}/${hop}/${l.podUid}`, counters.get(`${l.chain.index}/${l.hop}/${l.replicaId}`) ?? none());
      metrics.push({ labels: { chain: l.chain.key, hop, replica: l.pod }, c });
      return { chain: l.chain.uid, hop, pod: l.podUid, healthy: v?.healthy ?? false, ...(v?.reason ? { reason: v.reason } : {}), since: (v?.since ?? new Date()).toISOString(), ...c };
    });
    const chains = [...new Map(this.locals.map((l) => [l.chain.index, l.chain])).values()]
      .concat(this.realizedChains().filter((c) => !this.locals.some((l) => l.chain.index === c.index)))
      .map((c) => {
        const t = this.totals.totals(c.uid, counters.get(`${c.index}`) ?? none());
        metrics.push({ labels: { chain: c.key, hop: '', replica: 'entry' }, c: t });
        return { chain: c.uid, ...t };
      })
      .filter((c) => c.packets.forward + c.packets.reverse > 0 || this.locals.some((l) => l.chain.uid === c.chain));
    this.totals.retain(new Set([...replicas.map((r) => `${r.chain}/${r.hop}/${r.pod}`), ...this.desired.map((c) => c.uid)]));
    this.exportMetrics(metrics);
    const body = { replicas, chains };
    const json = JSON.stringify(body);
    if (json === this.lastReport) return;
    const report: NodeChainReport | undefined = replicas.length || chains.length ? { v: 1, at: new Date().toISOString(), ...body } : undefined;
    try {
      await this.ctx.core.patchNode({ name: this.ctx.node.name, body: nodeChainReportPatch(report) }, MERGE_PATCH);
      this.lastReport = json;
    } catch (e) {
      this.log.warn({ err: String(e) }, 'cannot write the chain report on the Node');
    }
  }

  /** Chains realized on this node (for entry counters of chains without local replicas). */
  private realizedChains(): DesiredChain[] {
    const onSegments = new Set([...this.segmentBridges.values()].flatMap((b) => b.chains));
    return this.desired.filter((c) => this.realized.has(c.index) || onSegments.has(c.index));
  }

  private exportMetrics(metrics: ReadonlyArray<{ labels: { chain: string; hop: string; replica: string }; c: TrafficCounters }>): void {
    this.packets?.reset();
    this.bytes?.reset();
    for (const { labels, c } of metrics) {
      for (const direction of ['forward', 'reverse'] as const) {
        this.packets?.inc({ ...labels, direction }, c.packets[direction]);
        this.bytes?.inc({ ...labels, direction }, c.bytes[direction]);
      }
    }
  }

  /** The chain, hop and replica a chain tag of the pod network names (a Traceflow says where a packet was steered). */
  /** The chain tunnel of a secondary bridge on this node, when it has one. */
  chainTunnelOf(bridge: string): { name: string; ofport: number } | undefined {
    const { name } = chainTunnel(bridge);
    const ofport = this.ctx.vswitch.cache.iface(name)?.ofport;
    return ofport && ofport > 0 && this.ctx.vswitch.cache.bridgeOf(name)?.name === bridge ? { name, ofport } : undefined;
  }

  /** The chain, hop and replica a chain tag names, on the pod network ('') or a secondary network (namespace/name of its NAD). */
  chainTarget(index: number, hop: number, replica: number, network = ''): { namespace: string; name: string; hop: string; replica: string; node: string } | undefined {
    const chain = this.desired.find((c) => c.index === index && c.network === network);
    const h = chain?.hops[hop];
    const r = h?.replicas.find((x) => x.id === replica);
    if (!chain || !h || !r) return undefined;
    const [namespace, name] = chain.key.split('/') as [string, string];
    return { namespace, name, hop: h.name, replica: r.pod, node: r.node };
  }

  /** After ovs-vswitchd restarted: every chain flow again (ports may have new numbers), in one bundle. */
  async restore(): Promise<void> {
    this.fullSync = true;
    this.routedReady.clear();
    await this.pass.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.realizeTimer) clearTimeout(this.realizeTimer);
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.tickTimer) clearInterval(this.tickTimer);
    if (this.reportTimer) clearInterval(this.reportTimer);
    for (const p of this.probers.values()) p.stop();
    this.probers.clear();
    await this.pass.current;
    await this.reportPass.current;
    await this.chains?.stop();
    await this.pods?.stop();
    await this.namespaces?.stop();
    await this.nads?.stop();
    if (this.packets) this.ctx.metrics.registry.removeSingleMetric('seine_chain_packets_total');
    if (this.bytes) this.ctx.metrics.registry.removeSingleMetric('seine_chain_bytes_total');
  }
}

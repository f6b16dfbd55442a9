// The agent's part of Traceflow. Every node installs a running trace's observation flows and says so in the status
// (readyNodes); the source pod's node injects the packet once every node has, at the pod's port, as if the pod had
// sent it. For live traffic it takes the next matching packet the pod sends instead: a sampling flow hands the pod's
// packets to the agent, which removes the flow, sends the first back in tagged and any others as they were. Each
// packet-in of a trace becomes this node's observations in the status; the node where the path ends sets the
// verdict, and the trace has succeeded once the sender's observations are in as well. Flows go once the trace has
// finished or is deleted.
import { CustomObjectsApi, type KubernetesListObject, type V1Node } from '@kubernetes/client-node';
import ipaddr from 'ipaddr.js';
import type { AgentFeature } from '../../agent/feature.js';
import type { NodeContext } from '../../agent/context.js';
import { ResilientInformer } from '../../k8s/informer.js';
import { sharedConnection, type OfConnection } from '../../ovs/openflow/wire/connection.js';
import { packetInPipeline, type PacketIn } from '../../ovs/openflow/wire/messages.js';
import { gatewayMacFor } from '../../primary/bridge/bridge.js';
import type { PodInterface } from '../../primary/interfacestore/store.js';
import { logger } from '../../util/log.js';
import { updateTraceStatus } from '../api/status.js';
import { TRACEFLOW_GROUP, TRACEFLOW_PLURAL, TRACEFLOW_VERSION, type PolicyRef, type Traceflow, type TraceflowStatus, type TraceNetwork } from '../api/types.js';
import { decodeTraceCookie, ObservationPoint, traceScope, traceSync, type TraceFlowsWanted, type TraceNode } from '../datapath/flows.js';
import { observe, type ChainRef, type NodeView } from '../datapath/observe.js';
import { buildFrame, capturedPacket, parseFrame, withTag } from '../model/frame.js';
import { observeSegment, type SegmentView } from '../datapath/segment-observe.js';
import type { BridgePorts } from '../../secondary/datapath/types.js';
import { SegmentTracer, type SegmentSources } from './segments.js';
import { handoffsMatched, orderResults } from '../model/path.js';

/** How often a missing Traceflow CRD is looked for again. */
const CRD_RETRY_MS = 5000;

/** What the other features tell this one. */
export interface TraceflowSources {
  /** The pod network's interfaces on the integration bridge. */
  podInterfaces(): readonly PodInterface[];
  /** A policy rule of the pod network's stage, by id. */
  ruleOf?(ruleId: number): PolicyRef | undefined;
  /** The chain, hop and replica a chain tag of br-int names. */
  chainTarget?(chain: number, hop: number, replica: number): ChainRef | undefined;
  /** The secondary networks' bridges, for traces on a secondary network (none without the feature). */
  segments?: SegmentSources;
}

interface Local {
  tag: number;
  /** A trace on a secondary network: its flows are on that network's bridge. */
  network?: TraceNetwork;
  /** The flows' inputs, as installed. */
  installed: string;
  injected: boolean;
  /** Live traffic on the source's node: the sampling flow is in (armed), or has taken its packet (taken). */
  sampling?: 'armed' | 'taken';
  /** The source pod's port while sampling. */
  sourceOfport?: number;
  /** The pod's packets the sampling flow handed over, not yet sent back in. */
  held: Buffer[];
}

const running = (tf: Traceflow): boolean => tf.status?.phase === 'Running' && tf.status.tag !== undefined && tf.status.packet !== undefined;

export class TraceflowFeature implements AgentFeature {
  readonly name = 'traceflow';
  private readonly log = logger('traceflow');
  private ctx!: NodeContext;
  private api!: CustomObjectsApi;
  private traces?: ResilientInformer<Traceflow>;
  private connection?: OfConnection;
  private segments?: SegmentTracer;
  private unsubscribe?: () => void;
  private readonly local = new Map<string, Local>();
  /** One change at a time, in arrival order. */
  private queue: Promise<void> = Promise.resolve();
  private stopped = false;

  constructor(private readonly sources: TraceflowSources) {}

  async start(ctx: NodeContext): Promise<void> {
    this.ctx = ctx;
    this.api = ctx.kubeConfig.makeApiClient(CustomObjectsApi);
    this.connection = sharedConnection(`${ctx.config.ovs.rundir}/${ctx.config.ovs.bridge}.mgmt`, ctx.config.ovs.bridge);
    this.unsubscribe = this.connection.onPacketIn((p) => this.packetIn(p));
    if (this.sources.segments) this.segments = new SegmentTracer(this.sources.segments, (bridge, p) => this.segmentPacketIn(bridge, p));
    this.traces = new ResilientInformer<Traceflow>({
      kubeConfig: ctx.kubeConfig,
      name: 'agent-traceflows',
      path: `/apis/${TRACEFLOW_GROUP}/${TRACEFLOW_VERSION}/${TRACEFLOW_PLURAL}`,
      list: () => this.api.listClusterCustomObject({ group: TRACEFLOW_GROUP, version: TRACEFLOW_VERSION, plural: TRACEFLOW_PLURAL }) as Promise<KubernetesListObject<Traceflow>>,
    });
    const changed = (tf: Traceflow): void => this.enqueue(() => this.reconcile(tf.metadata.name!));
    this.traces.on('add', changed).on('update', changed).on('delete', changed);
    // A node that joins changes who must be ready before a packet goes out.
    ctx.nodes.on('add', () => this.enqueue(() => this.reconcileAll()));
    ctx.nodes.on('delete', () => this.enqueue(() => this.reconcileAll()));
    // Whatever an earlier run left: only the traces running now keep flows. The CRD may come later.
    void this.traces
      .startRetrying({ everyMs: CRD_RETRY_MS, cancelled: () => this.stopped, onFirstFailure: (e) => this.log.warn({ err: String(e) }, 'cannot list Traceflows (CRD not installed?); retrying') })
      .then(() => this.enqueue(() => this.syncAll()));
  }

  async restore(): Promise<void> {
    await this.syncAll();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.unsubscribe?.();
    this.segments?.stop();
    await this.traces?.stop();
    await this.queue;
  }

  private enqueue(fn: () => Promise<void>): void {
    this.queue = this.queue.then(fn).catch((e: unknown) => this.log.error({ err: e instanceof Error ? e.stack : String(e) }, 'traceflow change failed'));
  }

  private node(): TraceNode {
    const cfg = this.ctx.config;
    return { round: this.ctx.bridge.round, mode: cfg.mode === 'chained' ? 'chained' : cfg.trafficEncapMode, clusterCidr: cfg.clusterCIDR };
  }

  /** Every running trace's flows, and none of any other (one bundle). */
  private async syncAll(): Promise<void> {
    if (this.stopped || !this.traces) return;
    const runningNow = this.traces.list().filter(running);
    const onPodNetwork = runningNow.filter((tf) => !tf.status!.network);
    const wanted = onPodNetwork.map((tf) => this.wanted(tf, undefined));
    await this.ctx.flows.sync({ cookie: traceScope(), flows: onPodNetwork.flatMap((tf, i) => traceSync(this.node(), tf.status!.tag!, wanted[i]).flows) });
    const onSegments = runningNow.filter((tf) => tf.status!.network);
    await this.segments?.syncAll(
      this.ctx.bridge.round,
      onSegments.map((tf) => ({ tag: tf.status!.tag!, network: tf.status!.network!, packet: tf.status!.packet! })),
    );
    for (const l of this.local.values()) await this.sendIn(l.held.splice(0));
    this.local.clear();
    onPodNetwork.forEach((tf, i) => this.local.set(tf.metadata.name!, { tag: tf.status!.tag!, installed: JSON.stringify(wanted[i]), injected: false, held: [] }));
    for (const tf of onSegments) this.local.set(tf.metadata.name!, { tag: tf.status!.tag!, network: tf.status!.network!, installed: JSON.stringify(this.wanted(tf, undefined)), injected: false, held: [] });
    await this.reconcileAll();
  }

  private async reconcileAll(): Promise<void> {
    for (const name of new Set([...this.local.keys(), ...(this.traces?.list() ?? []).map((t) => t.metadata.name!)])) await this.reconcile(name);
  }

  /** The flows a running trace wants on this node. */
  private wanted(tf: Traceflow, local: Local | undefined): TraceFlowsWanted {
    const s = tf.status!;
    return { packet: s.packet!, live: tf.spec.liveTraffic === true, ...(local?.sampling === 'armed' && local.sourceOfport !== undefined ? { samplingOfport: local.sourceOfport } : {}) };
  }

  /** Installs what the trace wants now (no-op when it is installed). */
  private async install(name: string, tf: Traceflow, have: Local | undefined): Promise<Local> {
    const status = tf.status!;
    const wanted = this.wanted(tf, have);
    const installed = JSON.stringify(wanted);
    if (have && have.tag === status.tag && have.installed === installed) return have;
    if (have && have.tag !== status.tag) await this.removeFlows(have);
    if (status.network) {
      // A node without secondary networks has no bridge of the network: nothing there to observe, and ready.
      await this.segments?.sync(this.ctx.bridge.round, status.tag!, status.network, status.packet);
    } else {
      await this.ctx.flows.sync(traceSync(this.node(), status.tag!, wanted));
    }
    // The same object from here on: a sampled packet's handling holds it across awaits.
    const local: Local = have ?? { tag: status.tag!, installed, injected: false, held: [] };
    if (status.network) local.network = status.network;
    local.tag = status.tag!;
    local.installed = installed;
    this.local.set(name, local);
    return local;
  }

  private async reconcile(name: string): Promise<void> {
    if (this.stopped) return;
    const tf = this.traces?.get(name);
    const have = this.local.get(name);
    if (!tf || !running(tf)) {
      if (have) {
        await this.removeFlows(have);
        this.local.delete(name);
        await this.sendIn(have.held.splice(0));
      }
      return;
    }
    const status = tf.status!;
    const local = await this.install(name, tf, have);
    const me = this.ctx.node.name;
    if (!(status.readyNodes ?? []).includes(me)) {
      await updateTraceStatus(this.api, name, (cur) => {
        const s = cur.status;
        if (!s || s.phase !== 'Running' || s.tag !== status.tag || (s.readyNodes ?? []).includes(me)) return undefined;
        return { ...s, readyNodes: [...(s.readyNodes ?? []), me].sort() };
      });
      return; // the update comes back as an event
    }
    // Not again after an agent restart that came once the sender's observations were in.
    const sent = (status.results ?? []).some((r) => r.role === 'Sender') || status.capturedPacket !== undefined;
    if (status.sourceNode !== me || sent || !this.everyNodeReady(status)) return;
    if (tf.spec.liveTraffic) {
      if (!local.sampling) await this.armSampling(name, tf, local);
    } else if (!local.injected) {
      local.injected = true;
      await (status.network ? this.injectOnSegment(tf, status.network) : this.inject(tf));
    }
  }

  /** A trace's flows, wherever they are: br-int, or its secondary network's bridge. */
  private async removeFlows(l: Local): Promise<void> {
    if (l.network) await this.segments?.sync(this.ctx.bridge.round, l.tag, l.network, undefined);
    else await this.ctx.flows.sync(traceSync(this.node(), l.tag, undefined));
  }

  /** The source pod's port on the secondary network's bridge of this node. */
  private segmentSource(tf: Traceflow, network: TraceNetwork): BridgePorts['pods'][number] | undefined {
    const pod = `${tf.spec.source.namespace}/${tf.spec.source.pod}`;
    return this.segments?.sources.ports(network.bridge)?.pods.find((p) => p.pod === pod && p.ifname === network.interface);
  }

  /** A secondary network: the packet into the network's bridge at the source's port, addressed to the destination's MAC. */
  private async injectOnSegment(tf: Traceflow, network: TraceNetwork): Promise<void> {
    const status = tf.status!;
    const p = status.packet!;
    const name = tf.metadata.name!;
    const src = this.segmentSource(tf, network);
    if (!src) return this.fail(name, 'SourceNotAttached', `pod ${tf.spec.source.namespace}/${tf.spec.source.pod} has no ${network.interface} on ${this.ctx.node.name}'s bridge ${network.bridge}`);
    if (!p.destinationMAC) {
      // No pod's interface on the network has the address: the pod's ARP request for it would go unanswered.
      return this.report(name, status.tag!, { role: 'Sender', verdict: 'Dropped', observations: [{ component: 'Forwarding', action: 'Dropped', table: 'ARP', message: `no pod on ${network.name} has ${p.destinationIP}: the source's ARP request for it goes unanswered` }] });
    }
    const data = buildFrame(p, { tag: status.tag!, sourceMac: p.sourceMAC ?? src.mac, destinationMac: p.destinationMAC });
    this.log.info({ trace: name, tag: status.tag, bridge: network.bridge, port: src.name, packet: p }, 'injecting the trace packet on a secondary network');
    await this.segments!.inject(network.bridge, data, src.ofport);
  }

  /** A packet-in of a secondary bridge: a trace's observation there, and the packet sent on when it leaves the node. */
  private segmentPacketIn(bridge: string, p: PacketIn): void {
    const c = decodeTraceCookie(p.cookie);
    if (!c || !this.segments) return;
    const entry = this.localByTag(c.tag);
    const tf = entry && this.traces?.get(entry[0]);
    const network = tf?.status?.network;
    if (!tf || !running(tf) || !network || network.bridge !== bridge) return;
    const ports = this.segments.sources.ports(bridge);
    if (!ports) return;
    const status = tf.status!;
    const source = status.sourceNode === this.ctx.node.name ? this.segmentSource(tf, network) : undefined;
    const view: SegmentView = {
      node: this.ctx.node.name,
      network,
      ports,
      nodeByIp: this.view().nodeByIp,
      rule: (id) => this.sources.segments?.ruleOf?.(bridge, id),
      chainTarget: (chain, hop, replica) => this.sources.segments?.chainTarget?.(network.name, chain, hop, replica),
    };
    const trace = { packet: status.packet!, tag: c.tag, ...(status.sourceNode ? { sourceNode: status.sourceNode } : {}), ...(source ? { sourceOfport: source.ofport } : {}) };
    const out = observeSegment(view, trace, c.point, packetInPipeline(p), parseFrame(p.data));
    const seen = new Date().toISOString();
    const segments = this.segments;
    if (out.sendOut) {
      const sendOut = out.sendOut;
      this.enqueue(() => segments.sendOut(bridge, p.data, sendOut));
    }
    if (out.result) {
      const result = out.result;
      this.enqueue(() => this.report(tf.metadata.name!, c.tag, result, seen));
    }
  }

  /** Live traffic: the sampling flow at the source pod's port hands its next matching packets to this agent. */
  private async armSampling(name: string, tf: Traceflow, local: Local): Promise<void> {
    const src = this.sourceInterface(tf);
    if (!src) return this.fail(name, 'SourceNotAttached', `pod ${tf.spec.source.namespace}/${tf.spec.source.pod} has no interface on ${this.ctx.node.name}'s bridge`);
    local.sampling = 'armed';
    local.sourceOfport = src.ofport;
    await this.install(name, tf, local);
    this.log.info({ trace: name, tag: local.tag, port: src.portName, packet: tf.status!.packet }, 'waiting for a packet from the source pod');
    await updateTraceStatus(this.api, name, (cur) =>
      cur.status?.phase === 'Running' && cur.status.tag === local.tag && !cur.status.capturedPacket ? { ...cur.status, message: `waiting for ${tf.spec.source.namespace}/${tf.spec.source.pod} to send a matching packet` } : undefined,
    );
  }

  /**
   * A packet the sampling flow handed over. The first of a trace goes back in tagged, once the flow is gone (so that
   * nothing after it is taken); any that came with it go back in as they were, in the order they came.
   */
  private sampled(p: PacketIn, tag: number): void {
    const entry = this.localByTag(tag);
    if (!entry) {
      this.enqueue(() => this.sendIn([p.data]));
      return;
    }
    const [name, local] = entry;
    local.held.push(p.data);
    if (local.held.length === 1) this.enqueue(() => this.takeSampled(name, local));
  }

  private async takeSampled(name: string, local: Local): Promise<void> {
    const tf = this.traces?.get(name);
    const first = local.sampling === 'armed' && tf !== undefined && running(tf);
    if (first) {
      local.sampling = 'taken';
      await this.install(name, tf, local);
    }
    const held = local.held.splice(0);
    if (!first || held.length === 0) return this.sendIn(held);
    const [taken, ...rest] = held as [Buffer, ...Buffer[]];
    await this.sendIn([withTag(taken, local.tag), ...rest], local.sourceOfport);
    const parsed = parseFrame(taken);
    const captured = parsed && capturedPacket(parsed);
    this.log.info({ trace: name, tag: local.tag, packet: captured, alsoHeld: rest.length }, 'took a packet from the source pod');
    await updateTraceStatus(this.api, name, (cur) => (cur.status?.phase === 'Running' && cur.status.tag === local.tag ? { ...cur.status, ...(captured ? { capturedPacket: captured } : {}), message: 'following a packet the source pod sent' } : undefined));
  }

  /**
   * Frames into the pipeline as if the pod at `inPort` had sent them, in order, in one message; without a port, the
   * local pod whose address the first one comes from (a held packet whose trace is gone).
   */
  private async sendIn(frames: Buffer[], inPort?: number): Promise<void> {
    if (frames.length === 0 || !this.connection) return;
    const port = inPort ?? this.portOfSource(frames[0]!);
    if (port === undefined) return;
    await this.connection.packetOut(frames.map((data) => ({ data, inPort: port, actions: [{ type: 'output', port: 'TABLE' as const }] })));
  }

  /** This node's trace that holds the tag, by name. */
  private localByTag(tag: number): [string, Local] | undefined {
    return [...this.local.entries()].find(([, l]) => l.tag === tag);
  }

  /** The local pod port a held frame came from, by its source address. */
  private portOfSource(frame: Buffer): number | undefined {
    const f = parseFrame(frame);
    return f && this.sources.podInterfaces().find((i) => i.ip === f.sourceIP)?.ofport;
  }

  /** Every node of the cluster has the flows: the packet may go anywhere. */
  private everyNodeReady(status: TraceflowStatus): boolean {
    const ready = new Set(status.readyNodes ?? []);
    return this.ctx.nodes.list().every((n) => ready.has(n.metadata!.name!));
  }

  private async inject(tf: Traceflow): Promise<void> {
    const status = tf.status!;
    const p = status.packet!;
    const name = tf.metadata.name!;
    const src = this.sourceInterface(tf);
    if (!src) return this.fail(name, 'SourceNotAttached', `pod ${tf.spec.source.namespace}/${tf.spec.source.pod} has no interface on ${this.ctx.node.name}'s bridge`);
    const local = this.sources.podInterfaces().find((i) => i.ip === p.destinationIP);
    const podCidr = this.ctx.node.podCidr;
    if (!local && podCidr && p.destinationIP !== this.ctx.node.gatewayIp && inCidr(p.destinationIP, podCidr)) {
      // The pod's own ARP request for it would go unanswered: nothing would be sent.
      return this.report(name, status.tag!, { role: 'Sender', verdict: 'Dropped', observations: [{ component: 'Forwarding', action: 'Dropped', table: 'ARPResponder', message: `no pod on ${this.ctx.node.name} has ${p.destinationIP}: the source's ARP request for it goes unanswered` }] });
    }
    // Addressed as the pod addresses it: a pod of its own subnet by its MAC, anything else through the gateway;
    // chained, everything through its next hop (the primary CNI's host end of its link).
    const destinationMac = this.node().mode === 'chained' ? (src.peerMac ?? gatewayMacFor(this.ctx.node.ip)) : (local?.mac ?? gatewayMacFor(this.ctx.node.ip));
    const data = buildFrame(p, { tag: status.tag!, sourceMac: src.mac, destinationMac });
    this.log.info({ trace: name, tag: status.tag, port: src.portName, packet: p }, 'injecting the trace packet');
    await this.sendIn([data], src.ofport);
  }

  /** The source pod's interface on this node's bridge. */
  private sourceInterface(tf: Traceflow): PodInterface | undefined {
    return this.sources.podInterfaces().find((i) => i.podNamespace === tf.spec.source.namespace && i.podName === tf.spec.source.pod && i.ifname === 'eth0');
  }

  private packetIn(p: PacketIn): void {
    const c = decodeTraceCookie(p.cookie);
    if (!c) return;
    if (c.point === ObservationPoint.sample) return this.sampled(p, c.tag);
    const entry = this.localByTag(c.tag);
    const tf = entry && this.traces?.get(entry[0]);
    if (!tf || !running(tf)) return;
    const status = tf.status!;
    const source = status.sourceNode === this.ctx.node.name ? this.sourceInterface(tf) : undefined;
    const trace = { packet: status.packet!, tag: c.tag, ...(status.sourceNode ? { sourceNode: status.sourceNode } : {}), ...(source ? { sourceOfport: source.ofport } : {}) };
    const result = observe(this.view(), trace, c.point, packetInPipeline(p), parseFrame(p.data));
    const seen = new Date().toISOString();
    this.enqueue(() => this.report(tf.metadata.name!, c.tag, result, seen));
  }

  private async report(name: string, tag: number, r: ReturnType<typeof observe>, timestamp = new Date().toISOString()): Promise<void> {
    const node = this.ctx.node.name;
    await updateTraceStatus(this.api, name, (cur) => {
      const s = cur.status;
      if (!s || s.phase !== 'Running' || s.tag !== tag) return undefined;
      const results = orderResults([...(s.results ?? []), { node, role: r.role, timestamp, observations: r.observations }]);
      const next: TraceflowStatus = { ...s, results, ...(r.verdict ? { verdict: r.verdict } : {}) };
      if (next.verdict && results.some((x) => x.role === 'Sender') && handoffsMatched(results)) {
        next.phase = 'Succeeded';
        next.message = `${next.verdict} after ${results.length} node observation(s)`;
      }
      return next;
    });
    this.log.info({ trace: name, role: r.role, verdict: r.verdict }, 'trace observed');
  }

  private async fail(name: string, reason: string, message: string): Promise<void> {
    await updateTraceStatus(this.api, name, (cur) => (cur.status?.phase === 'Running' ? { ...cur.status, phase: 'Failed', reason, message } : undefined));
  }

  private view(): NodeView {
    const ctx = this.ctx;
    const nodes = ctx.nodes.list();
    const addresses = (n: V1Node): string[] => (n.status?.addresses ?? []).map((a) => a.address);
    return {
      node: ctx.node.name,
      mode: this.node().mode,
      gatewayOfport: ctx.bridge.gatewayOfport,
      ...(ctx.bridge.tunnelOfport !== undefined ? { tunnelOfport: ctx.bridge.tunnelOfport } : {}),
      podByOfport: (ofport) => {
        const i = this.sources.podInterfaces().find((x) => x.ofport === ofport);
        return i ? { pod: `${i.podNamespace}/${i.podName}`, portName: i.portName } : undefined;
      },
      nodeByIp: (ip) => nodes.find((n) => addresses(n).includes(ip))?.metadata?.name,
      nodeByPodIp: (ip) => nodes.find((n) => [n.spec?.podCIDR, ...(n.spec?.podCIDRs ?? [])].some((c) => !!c && inCidr(ip, c)))?.metadata?.name,
      inCluster: (ip) => !!this.ctx.config.clusterCIDR && inCidr(ip, this.ctx.config.clusterCIDR),
      rule: (id) => this.sources.ruleOf?.(id),
      chainTarget: (chain, hop, replica) => this.sources.chainTarget?.(chain, hop, replica),
    };
  }
}

function inCidr(ip: string, cidr: string): boolean {
  try {
    const a = ipaddr.parse(ip);
    const [net, bits] = ipaddr.parseCIDR(cidr);
    return a.kind() === net.kind() && a.match(net, bits);
  } catch {
    return false;
  }
}

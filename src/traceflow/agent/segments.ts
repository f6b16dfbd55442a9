// Traces on secondary networks, on this node: their observation flows on the network's bridge (when the node has
// it), the packet-ins of those bridges, and the packets the agent sends into them (the injected packet at the source
// pod's port; a packet going on to another node into the uplink or tunnels). Each bridge has its own OpenFlow
// connection, which the secondary networks' flow writer shares.
import type { FlowWriter } from '../../ovs/openflow/writer.js';
import type { OfConnection } from '../../ovs/openflow/wire/connection.js';
import type { PacketIn } from '../../ovs/openflow/wire/messages.js';
import type { BridgePorts } from '../../secondary/datapath/types.js';
import type { PolicyRef, TracePacket, TraceNetwork } from '../api/types.js';
import { traceScope } from '../datapath/flows.js';
import type { ChainRef } from '../datapath/observe.js';
import { segmentFlows, segmentSync, type SegmentBridge } from '../datapath/segment-flows.js';
import { withVlan } from '../model/frame.js';

/** What the secondary networks and policy features tell the tracer of a node's secondary bridges. */
export interface SegmentSources {
  /** The node's secondary bridges, by name. */
  bridges(): string[];
  /** A secondary bridge's ports now; undefined when the node has no bridge of that name. */
  ports(bridge: string): BridgePorts | undefined;
  writer(bridge: string): FlowWriter;
  connection(bridge: string): OfConnection;
  /** A MultiNetworkPolicy rule of the bridge's policy stage, by id. */
  ruleOf?(bridge: string, ruleId: number): PolicyRef | undefined;
  /** The chain, hop and replica a chain tag names on a secondary network (namespace/name of its NAD). */
  chainTarget?(network: string, chain: number, hop: number, replica: number): ChainRef | undefined;
}

export interface SegmentTraceFlows {
  tag: number;
  network: TraceNetwork;
  packet: TracePacket;
}

/** The bridge as a trace's flows see it: its kind, and whether the destination pod's interface is on it. */
function bridgeOf(ports: BridgePorts, packet: TracePacket): SegmentBridge {
  return { kind: ports.kind, destinationHere: !!packet.destinationMAC && ports.pods.some((p) => p.mac === packet.destinationMAC) };
}

export class SegmentTracer {
  private readonly listening = new Map<string, () => void>();

  constructor(
    readonly sources: SegmentSources,
    private readonly onPacketIn: (bridge: string, p: PacketIn) => void,
  ) {}

  /** Installs one trace's flows on its network's bridge (none without a packet); nothing when the node has no such bridge. */
  async sync(round: number, tag: number, network: TraceNetwork, packet: TracePacket | undefined): Promise<void> {
    const ports = this.sources.ports(network.bridge);
    if (!ports) return;
    if (packet) this.listen(network.bridge);
    await this.sources.writer(network.bridge).sync(segmentSync(round, tag, packet ? { packet, bridge: bridgeOf(ports, packet) } : undefined));
  }

  /** Every secondary bridge with the flows of these traces and of no other (one bundle per bridge). */
  async syncAll(round: number, traces: readonly SegmentTraceFlows[]): Promise<void> {
    for (const bridge of this.sources.bridges()) {
      const ports = this.sources.ports(bridge);
      if (!ports) continue;
      const mine = traces.filter((t) => t.network.bridge === bridge);
      if (mine.length) this.listen(bridge);
      await this.sources.writer(bridge).sync({ cookie: traceScope(), flows: mine.flatMap((t) => segmentFlows(round, t.tag, t.packet, bridgeOf(ports, t.packet))) });
    }
  }

  /** The injected packet into the bridge's pipeline, as if the pod's port had sent it. */
  async inject(bridge: string, frame: Buffer, inPort: number): Promise<void> {
    await this.sources.connection(bridge).packetOut([{ data: frame, inPort, actions: [{ type: 'output', port: 'TABLE' }] }]);
  }

  /** A packet going on to other nodes: out of the ports given, tagged for a trunk's uplink. */
  async sendOut(bridge: string, frame: Buffer, out: { ofports: readonly number[]; vlan?: number }): Promise<void> {
    const data = out.vlan !== undefined ? withVlan(frame, out.vlan) : frame;
    await this.sources.connection(bridge).packetOut([{ data, actions: out.ofports.map((port) => ({ type: 'output' as const, port })) }]);
  }

  stop(): void {
    for (const off of this.listening.values()) off();
    this.listening.clear();
  }

  private listen(bridge: string): void {
    if (this.listening.has(bridge)) return;
    this.listening.set(
      bridge,
      this.sources.connection(bridge).onPacketIn((p) => this.onPacketIn(bridge, p)),
    );
  }
}

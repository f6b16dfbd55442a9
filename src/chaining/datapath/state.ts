/** What one node's chain stage is computed from: the chains, with what this node knows of each replica. */

export interface ChainNodeInfo {
  /** Flow cookie round of this agent run. */
  round: number;
  /**
   * The OpenFlow port that carries chained packets to other nodes on the bridge being programmed: br-int's
   * tunnel (0 without encapsulation), or a secondary bridge's chain tunnel. Without one, replicas on other nodes
   * are unusable.
   */
  tunnelOfport: number;
}

/** A pod address on a secondary network: where a chained packet for it leaves the chain. */
export interface SegmentEndpoint {
  ip: string;
  /** The pod interface's MAC (a Routed CNF sent the frame to its next hop's). */
  mac: string;
  /** The pod's port, when it is on this node. */
  ofport?: number;
  /** Otherwise the underlay IP of its node. */
  nodeIp?: string;
}

/** What a chain on a Seine VLAN or overlay network needs on a node's secondary bridge. */
export interface ChainSegment {
  /** The network's conntrack zone (segmentZone). */
  zone: number;
  /** The pod addresses of the network the classifier can name (sources and destinations). */
  endpoints: SegmentEndpoint[];
}

/** A network with chains on a secondary bridge: its pods' packets pass the chain stage. */
export interface SegmentHook {
  zone: number;
  /** This network's pod ports on the bridge (not function ports). */
  podOfports: number[];
}

/** A replica's function ports on this node's bridge. One-armed: ingress and egress are the same port. */
export interface LocalFunction {
  ingressOfport: number;
  egressOfport: number;
  /** The pod-side MACs: a Routed hop's frames are addressed to them. */
  ingressMac: string;
  egressMac: string;
}

export interface HopReplica {
  /** 1..31, stable while the replica exists (from the chain's status). */
  id: number;
  /** Underlay IP of the replica's node. */
  nodeIp: string;
  /** Set when the replica runs on this node and its ports exist. */
  local?: LocalFunction;
  /** Healthy and reachable: new connections may choose it and existing ones keep it. */
  usable: boolean;
}

export interface DatapathHop {
  mode: 'Transparent' | 'Routed';
  failurePolicy: 'FailOpen' | 'FailClosed';
  /** Forwarding health checks: probes injected into local replicas come back to the agent from their egress port. */
  probe?: boolean;
  /** Sorted by id. */
  replicas: HopReplica[];
}

export interface PortRange {
  port: number;
  endPort?: number;
}

/** Which new connections enter the chain; an address list of ['0.0.0.0/0'] means any. */
export interface ClassifierSpec {
  source: string[];
  destination: string[];
  protocol?: 'TCP' | 'UDP' | 'SCTP' | 'ICMP';
  ports: PortRange[];
}

export interface DatapathChain {
  /** 1..255. */
  index: number;
  /** 0 = wins over every other chain; unique per chain. */
  precedence: number;
  classifier: ClassifierSpec;
  /** Replies go back through the same replicas, hops in reverse order. */
  symmetric: boolean;
  hops: DatapathHop[];
  /** Set for a chain on a secondary network (its flows go on that network's bridge); absent on the pod network. */
  segment?: ChainSegment;
}

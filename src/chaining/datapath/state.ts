/** What one node's chain stage is computed from: the chains, with what this node knows of each replica. */

export interface ChainNodeInfo {
  /** Flow cookie round of this agent run. */
  round: number;
  /** The primary tunnel's OpenFlow port; 0 without encapsulation (replicas on other nodes are then unusable). */
  tunnelOfport: number;
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
}

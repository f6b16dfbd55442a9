// What the policy datapath of one node is computed from: its rules resolved to ports, addresses and numbers.
import type { Direction, Protocol, RuleAction, RulePort, Tier } from '../model/types.js';

export interface NamedPort {
  name: string;
  protocol: Protocol;
  port: number;
}

/** A pod on this node a rule applies to. */
export interface AppliedPod {
  ofport: number;
  namedPorts: readonly NamedPort[];
}

/** A pod a rule names as a peer (its address; its named ports matter for egress named-port rules). */
export interface PeerPod {
  ip: string;
  namedPorts: readonly NamedPort[];
}

export interface DatapathRule {
  /** 1..MAX_RULE_ID, unique on the node; the flows' cookie and conjunction ids derive from it. */
  id: number;
  direction: Direction;
  tier: Tier;
  action: RuleAction;
  /** Flow priority within its tier's table (see `tieredPriority`; NetworkPolicy rules share one). */
  priority: number;
  applied: readonly AppliedPod[];
  peers: {
    any: boolean;
    /** Address blocks (ipBlocks and networks, excepts already taken out), as CIDRs. */
    cidrs: readonly string[];
    pods: readonly PeerPod[];
  };
  /** Empty: every port and protocol. */
  ports: readonly RulePort[];
}

/** A pod isolated in a direction by NetworkPolicy: what no rule accepts is dropped (counted under `ruleId`). */
export interface Isolation {
  direction: Direction;
  ofport: number;
  ruleId: number;
}

export interface PolicyDatapath {
  round: number;
  rules: readonly DatapathRule[];
  isolations: readonly Isolation[];
  /**
   * The node's own addresses (its gateway's, its IP): traffic from them through the gateway is the node's (kubelet
   * probes) and always reaches its pods. Other traffic from the gateway (pods of other nodes routed by the kernel:
   * no-encap and chained modes) meets the policies. Empty: nothing is exempt.
   */
  nodeAddresses?: readonly string[];
}

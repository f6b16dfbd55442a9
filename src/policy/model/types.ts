// The policy model every policy API is compiled into, and that the agents enforce: rules in tiers, each applied to
// a group of pods, with peers (groups of pods, address blocks) and ports. Groups are named by what selects their
// members, so that every rule with the same selectors shares one group (one computation, one set of flows).
import type { V1LabelSelector } from '@kubernetes/client-node';

/** Evaluation order: Admin, then NetworkPolicy, then Baseline (then the default: allow). */
export type Tier = 'Admin' | 'NetworkPolicy' | 'Baseline';
export const TIERS: readonly Tier[] = ['Admin', 'NetworkPolicy', 'Baseline'];

export type Direction = 'Ingress' | 'Egress';

/** Accept: allowed here, no later tier is asked. Deny: dropped. Pass: skip to the next tier. */
export type RuleAction = 'Accept' | 'Deny' | 'Pass';

export type Protocol = 'TCP' | 'UDP' | 'SCTP';

/**
 * A port of a rule: a number or a range (`port`..`endPort`), or a named port (resolved per pod: the
 * destination pod's container port of that name, and protocol if given). No port: every port of the protocol.
 * Only a named port may leave the protocol out (ClusterNetworkPolicy's destinationNamedPort: the container
 * port's own protocol).
 */
export interface RulePort {
  protocol?: Protocol;
  port?: number;
  endPort?: number;
  name?: string;
}

/**
 * Pods chosen by selectors: pods of `namespace` (one namespace) or of every namespace `namespaceSelector` matches
 * (none of both: every namespace), whose labels match `podSelector` (absent: every pod).
 */
export interface PodGroupSpec {
  /**
   * MultiNetworkPolicy: the secondary network (NAD as "namespace/name") whose interfaces the group's members are;
   * absent: the pod network. A group never mixes the two: its addresses are its members' on that one network.
   */
  network?: string;
  namespace?: string;
  namespaceSelector?: V1LabelSelector;
  podSelector?: V1LabelSelector;
}

/** An address block: `cidr` without the `except` blocks. */
export interface IpBlock {
  cidr: string;
  except?: string[];
}

export interface RulePeers {
  /** Any address at all (NetworkPolicy's empty `from`/`to`). */
  any?: boolean;
  /** Keys of pod groups (see `groupKey`). */
  groups: string[];
  ipBlocks: IpBlock[];
}

export interface PolicyRef {
  kind: 'NetworkPolicy' | 'ClusterNetworkPolicy' | 'MultiNetworkPolicy';
  namespace?: string;
  name: string;
  /** The object's uid; a MultiNetworkPolicy's per network: see `networkPolicyUid`. */
  uid: string;
  /** MultiNetworkPolicy: the network (NAD "namespace/name") this compiled part enforces. */
  network?: string;
  /** metadata.generation of the compiled spec: what agents report as realized. */
  generation: number;
}

export interface CompiledRule {
  /** Unique within its policy: direction and position (for counters and logs). */
  name: string;
  /** The rule's own name where the API has one (ClusterNetworkPolicy; not necessarily unique), for counters and logs. */
  label?: string;
  direction: Direction;
  action: RuleAction;
  peers: RulePeers;
  /** Empty: every port and protocol. */
  ports: RulePort[];
}

/** One policy as the datapath sees it. */
export interface CompiledPolicy {
  ref: PolicyRef;
  /**
   * MultiNetworkPolicy: the secondary network whose interfaces it applies to (NAD "namespace/name"); its applied-to
   * and peer groups are of that network. Absent: the pod network.
   */
  network?: string;
  tier: Tier;
  /** Order within the tier: lower first (NetworkPolicies: all 0, their rules only ever accept). */
  priority: number;
  /** Key of the pod group the policy applies to. */
  appliedTo: string;
  /**
   * Directions in which the applied-to pods are isolated by this policy (NetworkPolicy: its policyTypes): traffic
   * no NetworkPolicy rule accepts is dropped there, and the Baseline tier is not asked.
   */
  isolates: Direction[];
  rules: CompiledRule[];
}

/** A policy and the groups it refers to, by key. */
export interface Compiled {
  policy: CompiledPolicy;
  groups: Map<string, PodGroupSpec>;
}

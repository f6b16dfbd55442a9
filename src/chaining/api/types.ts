// The ServiceChain API (crd.seine.dev/v1alpha1, crds/servicechain.yaml) as TypeScript types. Optional fields
// with a schema default are optional here too: objects read back from the API server have them filled in, but
// code that builds chains (tests, tools) may leave them out; `hopDefaults` applies the same defaults.
import type { V1LabelSelector, V1ObjectMeta } from '@kubernetes/client-node';

export const CHAIN_GROUP = 'crd.seine.dev';
export const CHAIN_VERSION = 'v1alpha1';
export const CHAIN_PLURAL = 'servicechains';
export const CHAIN_KIND = 'ServiceChain';
export const CHAIN_API_VERSION = `${CHAIN_GROUP}/${CHAIN_VERSION}`;

export const MAX_HOPS = 16;
/** Chain indexes the datapath can carry (0 means "no chain"). */
export const MAX_CHAIN_INDEX = 255;
/** Replica ids per hop the datapath can carry (0 means "no replica"). */
export const MAX_REPLICA_ID = 31;
export const DEFAULT_PRIORITY = 100;

export type LabelSelector = V1LabelSelector;

export interface IpBlock {
  /** IPv4 CIDR. */
  cidr: string;
  /** CIDRs inside `cidr` that do not match. */
  except?: string[];
}

/** NetworkPolicyPeer semantics: ipBlock alone, or selectors (both given = both must match). */
export interface ChainPeer {
  podSelector?: LabelSelector;
  namespaceSelector?: LabelSelector;
  ipBlock?: IpBlock;
}

export type ChainProtocol = 'TCP' | 'UDP' | 'SCTP' | 'ICMP';
export const CHAIN_PROTOCOLS: readonly ChainProtocol[] = ['TCP', 'UDP', 'SCTP', 'ICMP'];

export interface PortRange {
  port: number;
  /** Inclusive end of a range; absent for a single port. */
  endPort?: number;
}

export interface ClassifierSpec {
  source?: ChainPeer;
  destination?: ChainPeer;
  protocol?: ChainProtocol;
  /** Destination ports; empty or absent = any. */
  ports?: PortRange[];
}

export type HopMode = 'Transparent' | 'Routed';
export type FailurePolicy = 'FailOpen' | 'FailClosed';
export type HealthCheckType = 'Forwarding' | 'Readiness';

export interface HealthCheck {
  type?: HealthCheckType;
  periodSeconds?: number;
  failureThreshold?: number;
}

export interface HopInterfaces {
  ingress: string;
  egress: string;
}

export interface HopSpec {
  name: string;
  /** CNF replicas in the chain's namespace. */
  podSelector: LabelSelector;
  interfaces: HopInterfaces;
  mode?: HopMode;
  failurePolicy?: FailurePolicy;
  healthCheck?: HealthCheck;
}

export interface ServiceChainSpec {
  /** '' or absent: the primary pod network; else "ns/name" or "name" of a NetworkAttachmentDefinition. */
  network?: string;
  priority?: number;
  classifier: ClassifierSpec;
  hops: HopSpec[];
  symmetric?: boolean;
}

export interface Counters {
  forward: number;
  reverse: number;
}

export interface ReplicaStatus {
  /** Pod name (in the chain's namespace). */
  pod: string;
  /** The pod's uid: a pod re-made under the same name is a new replica. */
  podUID: string;
  node?: string;
  /** 1..MAX_REPLICA_ID, unique in the hop while the pod exists. */
  id: number;
  healthy: boolean;
  reason?: string;
  /** When `healthy` last changed (RFC 3339). */
  since?: string;
  packets?: Counters;
  bytes?: Counters;
}

export interface HopStatus {
  name: string;
  replicas?: ReplicaStatus[];
  packets?: Counters;
  bytes?: Counters;
}

/** metav1.Condition. */
export interface ChainCondition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  observedGeneration?: number;
  lastTransitionTime: string;
  reason: string;
  message: string;
}

export const ChainConditionType = {
  Ready: 'Ready',
  Degraded: 'Degraded',
  Invalid: 'Invalid',
  Overlapping: 'Overlapping',
} as const;

export interface ServiceChainStatus {
  observedGeneration?: number;
  /** The chain's datapath id, 1..MAX_CHAIN_INDEX, unique in the cluster. */
  index?: number;
  /** For `kubectl get`: the number of hops. */
  hopCount?: number;
  /** For `kubectl get`: "healthy/all" replicas over all hops. */
  readyReplicas?: string;
  conditions?: ChainCondition[];
  hops?: HopStatus[];
  packets?: Counters;
  bytes?: Counters;
}

export interface ServiceChain {
  apiVersion?: string;
  kind?: string;
  metadata: V1ObjectMeta;
  spec: ServiceChainSpec;
  status?: ServiceChainStatus;
}

/** A hop with the schema's defaults applied. */
export interface ResolvedHop extends HopSpec {
  mode: HopMode;
  failurePolicy: FailurePolicy;
  healthCheck: Required<HealthCheck>;
}

export function hopDefaults(hop: HopSpec): ResolvedHop {
  return {
    ...hop,
    mode: hop.mode ?? 'Transparent',
    failurePolicy: hop.failurePolicy ?? 'FailClosed',
    healthCheck: { type: hop.healthCheck?.type ?? 'Forwarding', periodSeconds: hop.healthCheck?.periodSeconds ?? 1, failureThreshold: hop.healthCheck?.failureThreshold ?? 2 },
  };
}

/** "namespace/name" of a chain. */
export function chainKey(chain: ServiceChain): string {
  return `${chain.metadata.namespace ?? 'default'}/${chain.metadata.name ?? ''}`;
}

/** The chain's network as "namespace/name", or '' for the primary pod network. */
export function chainNetwork(chain: ServiceChain): string {
  const n = chain.spec?.network ?? '';
  if (n === '') return '';
  return n.includes('/') ? n : `${chain.metadata.namespace ?? 'default'}/${n}`;
}

export const zeroCounters = (): Counters => ({ forward: 0, reverse: 0 });

// The Traceflow API (crd.seine.dev/v1alpha1, crds/traceflow.yaml) as TypeScript types. Fields with a schema
// default are optional here: objects read back from the API server have them filled in.
import type { V1ObjectMeta } from '@kubernetes/client-node';

export const TRACEFLOW_GROUP = 'crd.seine.dev';
export const TRACEFLOW_VERSION = 'v1alpha1';
export const TRACEFLOW_PLURAL = 'traceflows';
export const TRACEFLOW_KIND = 'Traceflow';

/** DSCP values a trace's packet can carry (0 is ordinary traffic). */
export const MIN_TAG = 1;
export const MAX_TAG = 63;
export const DEFAULT_TIMEOUT_SECONDS = 20;
export const TCP_SYN = 2;
export const DEFAULT_TTL = 64;
export const DEFAULT_DESTINATION_PORT = 80;

export type TraceProtocol = 'TCP' | 'UDP' | 'ICMP';

export interface TraceflowSpec {
  source: { namespace: string; pod: string };
  /** Exactly one of pod, service or ip. */
  destination: { namespace?: string; pod?: string; service?: string; ip?: string };
  packet?: { protocol?: TraceProtocol; sourcePort?: number; destinationPort?: number; tcpFlags?: number; ttl?: number };
  /**
   * Trace the next real packet the source pod sends that matches the destination and packet (ports left out match
   * any), instead of injecting one. The packet is delivered as usual; tcpFlags and ttl are not matched.
   */
  liveTraffic?: boolean;
  timeoutSeconds?: number;
  /**
   * A secondary network (a Seine VLAN or overlay NAD), `name` or `namespace/name`: the packet leaves from the source
   * pod's interface on it, to the destination's address and MAC on it. Left out, the pod network.
   */
  network?: string;
}

export type TraceflowPhase = 'Pending' | 'Running' | 'Succeeded' | 'Failed';
/**
 * Delivered: it reached the destination pod's port (an injected packet is not handed to the pod; a live one is). Dropped: a policy or the
 * pipeline dropped it. ForwardedToNode: it left the pod network to the node's own network stack (an address outside
 * the cluster, a node address, a Service without endpoints that the node rejects).
 */
export type TraceVerdict = 'Delivered' | 'Dropped' | 'ForwardedToNode';
export type ObservationComponent = 'SpoofGuard' | 'ServiceChain' | 'LoadBalancing' | 'NetworkPolicy' | 'Forwarding';
export type ObservationAction = 'Received' | 'Forwarded' | 'Steered' | 'Translated' | 'Allowed' | 'Dropped' | 'Delivered';

export interface PolicyRef {
  /** NetworkPolicy, ClusterNetworkPolicy, AdminNetworkPolicy, BaselineAdminNetworkPolicy. */
  kind: string;
  namespace?: string;
  name: string;
  /** The rule, as the policy names it (e.g. ingress-0), or isolation-ingress / isolation-egress for an isolated pod's default drop. */
  rule: string;
}

export interface Observation {
  component: ObservationComponent;
  action: ObservationAction;
  /** The pipeline table that made the observation, by name. */
  table?: string;
  /** NetworkPolicy observations: the direction of the rule. */
  direction?: 'Egress' | 'Ingress';
  policy?: PolicyRef;
  chain?: { namespace: string; name: string; hop: string; replica: string };
  /** LoadBalancing: the endpoint chosen, as address:port (address for ICMP). */
  translatedDestination?: string;
  /** Forwarding: the bridge port it left by (a pod's interface, the gateway, the tunnel). */
  outputPort?: string;
  /** Forwarding to or from a pod on this node: the pod as namespace/name. */
  pod?: string;
  /** Forwarded into a tunnel: the node IP it was sent to, and that node's name. */
  tunnelDestination?: string;
  /** Received from a tunnel, or forwarded into one: the other node's name. */
  peerNode?: string;
  /** Why, in words (a drop without a policy: no route, no port). */
  message?: string;
}

export type NodeRole = 'Sender' | 'Receiver' | 'Transit';

export interface NodeResult {
  node: string;
  role: NodeRole;
  timestamp?: string;
  observations: Observation[];
}

/** The packet as injected, every field resolved; for live traffic, what a packet must match (ports may be left out). */
export interface TracePacket {
  sourceIP: string;
  destinationIP: string;
  /** A secondary network's trace: the source interface's MAC. */
  sourceMAC?: string;
  /** A secondary network's trace: the MAC of the interface that has the destination address, if any has. */
  destinationMAC?: string;
  protocol: TraceProtocol;
  sourcePort?: number;
  destinationPort?: number;
  tcpFlags?: number;
  ttl: number;
}

/** A trace on a secondary network, as the controller resolved it. */
export interface TraceNetwork {
  /** The NAD, namespace/name. */
  name: string;
  type: 'vlan' | 'overlay';
  /** The network's OVS bridge, the same on every node. */
  bridge: string;
  vlan?: number;
  vni?: number;
  /** The source pod's interface on the network. */
  interface: string;
  /** The node of the pod that has the destination address on the network. */
  destinationNode?: string;
}

export interface TraceflowStatus {
  phase?: TraceflowPhase;
  /** Why the trace failed, or waits: a CamelCase word. */
  reason?: string;
  message?: string;
  tag?: number;
  startTime?: string;
  /** The node of the source pod, where the packet is injected. */
  sourceNode?: string;
  /** A trace on a secondary network: which, and its bridge. */
  network?: TraceNetwork;
  /** Nodes whose agent has installed the trace's observation flows; the packet is injected once every node has. */
  readyNodes?: string[];
  verdict?: TraceVerdict;
  packet?: TracePacket;
  /** Live traffic: the packet the source pod sent that the trace followed, as it left the pod. */
  capturedPacket?: TracePacket;
  /** Per node, in the order the packet visited them. */
  results?: NodeResult[];
}

export interface Traceflow {
  apiVersion?: string;
  kind?: string;
  metadata: V1ObjectMeta;
  spec: TraceflowSpec;
  status?: TraceflowStatus;
}

export const isFinished = (tf: Traceflow): boolean => tf.status?.phase === 'Succeeded' || tf.status?.phase === 'Failed';

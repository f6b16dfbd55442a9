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
  timeoutSeconds?: number;
}

export type TraceflowPhase = 'Pending' | 'Running' | 'Succeeded' | 'Failed';
export type TraceVerdict = 'Delivered' | 'Dropped' | 'ForwardedOutOfCluster';
export type ObservationComponent = 'SpoofGuard' | 'Classification' | 'ServiceChain' | 'LoadBalancing' | 'NetworkPolicy' | 'Forwarding';
export type ObservationAction = 'Received' | 'Forwarded' | 'Steered' | 'Translated' | 'Allowed' | 'Dropped' | 'Delivered';

export interface Observation {
  component: ObservationComponent;
  action: ObservationAction;
  table?: string;
  policy?: { kind: string; namespace?: string; name: string; rule: string };
  chain?: { namespace: string; name: string; hop: string; replica: string };
  translatedDestination?: string;
  outputPort?: string;
  tunnelDestination?: string;
}

export interface NodeResult {
  node: string;
  role?: 'Sender' | 'Receiver' | 'Transit';
  timestamp?: string;
  observations: Observation[];
}

/** The packet as injected, every field resolved. */
export interface TracePacket {
  sourceIP: string;
  destinationIP: string;
  protocol: TraceProtocol;
  sourcePort?: number;
  destinationPort?: number;
  tcpFlags?: number;
  ttl: number;
}

export interface TraceflowStatus {
  phase?: TraceflowPhase;
  reason?: string;
  message?: string;
  tag?: number;
  startTime?: string;
  verdict?: TraceVerdict;
  packet?: TracePacket;
  results?: NodeResult[];
}

export interface Traceflow {
  apiVersion?: string;
  kind?: string;
  metadata: V1ObjectMeta;
  spec: TraceflowSpec;
  status?: TraceflowStatus;
}

// policy.networking.k8s.io/v1alpha2 ClusterNetworkPolicy (network-policy-api v0.2.0, standard channel) as
// TypeScript types; the schema the API server enforces is crds/clusternetworkpolicy.yaml.
import type { V1Condition, V1LabelSelector, V1ObjectMeta } from '@kubernetes/client-node';

export const CNP_GROUP = 'policy.networking.k8s.io';
export const CNP_VERSION = 'v1alpha2';
export const CNP_PLURAL = 'clusternetworkpolicies';
export const CNP_KIND = 'ClusterNetworkPolicy';

export type CnpTier = 'Admin' | 'Baseline';
export type CnpAction = 'Accept' | 'Deny' | 'Pass';

export interface NamespacedPod {
  namespaceSelector: V1LabelSelector;
  podSelector: V1LabelSelector;
}

/** Exactly one of its fields. */
export interface CnpPeer {
  namespaces?: V1LabelSelector;
  pods?: NamespacedPod;
  /** Egress only: CIDRs. */
  networks?: string[];
}

export interface CnpPort {
  number?: number;
  range?: { start: number; end: number };
}

/** Exactly one of its fields. */
export interface CnpProtocol {
  tcp?: { destinationPort?: CnpPort };
  udp?: { destinationPort?: CnpPort };
  sctp?: { destinationPort?: CnpPort };
  destinationNamedPort?: string;
}

export interface CnpIngressRule {
  name?: string;
  action: CnpAction;
  from: CnpPeer[];
  protocols?: CnpProtocol[];
}

export interface CnpEgressRule {
  name?: string;
  action: CnpAction;
  to: CnpPeer[];
  protocols?: CnpProtocol[];
}

export interface ClusterNetworkPolicy {
  apiVersion?: string;
  kind?: string;
  metadata: V1ObjectMeta;
  spec: {
    tier: CnpTier;
    /** 0..1000, lower first. */
    priority: number;
    /** Exactly one of its fields. */
    subject: { namespaces?: V1LabelSelector; pods?: NamespacedPod };
    ingress?: CnpIngressRule[];
    egress?: CnpEgressRule[];
  };
  status?: { conditions?: V1Condition[] };
}

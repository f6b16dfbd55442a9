// k8s.cni.cncf.io MultiNetworkPolicy (k8snetworkplumbingwg/multi-networkpolicy) as TypeScript types: NetworkPolicy's
// spec for the pods' interfaces on the secondary networks its policy-for annotation names. The schema the API
// server enforces is crds/multi-networkpolicy.yaml (the same as ./multinetworkpolicy-schema.ts).
import type { V1Condition, V1NetworkPolicyIngressRule, V1NetworkPolicyPeer, V1NetworkPolicySpec, V1ObjectMeta } from '@kubernetes/client-node';

export const MNP_GROUP = 'k8s.cni.cncf.io';
/** Upstream's version. A read at v1beta1 prunes endPort: read at MNP_VERSION_V1BETA2 to see every field. */
export const MNP_VERSION = 'v1beta1';
/** v1beta1 and endPort; the storage version. */
export const MNP_VERSION_V1BETA2 = 'v1beta2';
export const MNP_PLURAL = 'multi-networkpolicies';
export const MNP_KIND = 'MultiNetworkPolicy';
/** The NetworkAttachmentDefinitions a policy applies to: "ns/name" or "name" (the policy's namespace), comma separated. */
export const POLICY_FOR_ANNOTATION = 'k8s.v1.cni.cncf.io/policy-for';

/**
 * An ingress rule as the API's JSON has it: `from`. client-node's own type names it `_from` (for objects it
 * deserialized itself, which custom objects never are).
 */
export type MultiNetworkPolicyIngressRule = Omit<V1NetworkPolicyIngressRule, '_from'> & { from?: V1NetworkPolicyPeer[] };

/** NetworkPolicy's spec (v1beta2: ports may carry endPort). */
export type MultiNetworkPolicySpec = Omit<V1NetworkPolicySpec, 'ingress'> & { ingress?: MultiNetworkPolicyIngressRule[] };

export interface MultiNetworkPolicy {
  apiVersion?: string;
  kind?: string;
  metadata: V1ObjectMeta;
  spec: MultiNetworkPolicySpec;
  status?: { conditions?: V1Condition[] };
}

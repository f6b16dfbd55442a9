// networking.k8s.io/v1 NetworkPolicy compiled into the policy model: a policy in the NetworkPolicy tier that
// isolates its pods in its policyTypes and accepts what its rules list. MultiNetworkPolicy shares it, per network.
import type { V1NetworkPolicy, V1NetworkPolicyIngressRule, V1NetworkPolicyPeer, V1NetworkPolicyPort, V1NetworkPolicySpec } from '@kubernetes/client-node';
import { canonicalGroup, groupKey } from './groups.js';
import type { Compiled, CompiledRule, Direction, PodGroupSpec, PolicyRef, Protocol, RulePeers, RulePort } from './types.js';

/** policyTypes as the API server defaults them: Ingress, and Egress when there are egress rules. */
export function policyTypes(np: { spec?: V1NetworkPolicySpec }): Direction[] {
  const given = np.spec?.policyTypes;
  if (given?.length) return [...new Set(given.filter((t): t is Direction => t === 'Ingress' || t === 'Egress'))];
  return np.spec?.egress?.length ? ['Ingress', 'Egress'] : ['Ingress'];
}

function rulePorts(ports: V1NetworkPolicyPort[] | undefined): RulePort[] {
  return (ports ?? []).map((p) => {
    const protocol = (p.protocol ?? 'TCP') as Protocol;
    if (p.port === undefined || p.port === null) return { protocol };
    if (typeof p.port === 'string') {
      // An int-or-string may arrive as a numeric string.
      return /^\d+$/.test(p.port) ? { protocol, port: Number(p.port), ...(p.endPort ? { endPort: p.endPort } : {}) } : { protocol, name: p.port };
    }
    return { protocol, port: p.port, ...(p.endPort ? { endPort: p.endPort } : {}) };
  });
}

/**
 * The peers of a rule. No peers at all: any address. A peer with a namespaceSelector picks pods of the namespaces
 * it selects (with its podSelector, both must hold); a podSelector alone picks pods of the policy's namespace.
 */
function rulePeers(namespace: string, network: string | undefined, peers: V1NetworkPolicyPeer[] | undefined, groups: Map<string, PodGroupSpec>): RulePeers {
  if (!peers?.length) return { any: true, groups: [], ipBlocks: [] };
  const out: RulePeers = { groups: [], ipBlocks: [] };
  for (const peer of peers) {
    if (peer.ipBlock) {
      out.ipBlocks.push({ cidr: peer.ipBlock.cidr, ...(peer.ipBlock.except?.length ? { except: [...peer.ipBlock.except] } : {}) });
      continue;
    }
    if (!peer.podSelector && !peer.namespaceSelector) continue; // refused by validation; selects nothing here
    const g = canonicalGroup(peer.namespaceSelector ? { network, namespaceSelector: peer.namespaceSelector, podSelector: peer.podSelector } : { network, namespace, podSelector: peer.podSelector });
    const key = groupKey(g);
    groups.set(key, g);
    if (!out.groups.includes(key)) out.groups.push(key);
  }
  return out;
}

/**
 * An ingress rule's `from`. client-node names it `_from` in objects it deserialized (typed list calls) but watch
 * events carry the JSON as sent (`from`): both are read, or a watched policy would admit everyone.
 */
function fromOf(rule: V1NetworkPolicyIngressRule): V1NetworkPolicyPeer[] | undefined {
  return rule._from ?? (rule as { from?: V1NetworkPolicyPeer[] }).from;
}

export function compileNetworkPolicy(np: V1NetworkPolicy): Compiled {
  const namespace = np.metadata?.namespace ?? 'default';
  const ref: PolicyRef = { kind: 'NetworkPolicy', namespace, name: np.metadata?.name ?? '', uid: np.metadata?.uid ?? '', generation: np.metadata?.generation ?? 0 };
  return compileNetworkPolicySpec(namespace, np.spec, ref);
}

/**
 * NetworkPolicy semantics for a spec of `namespace`, as the policy `ref`. With `network` (a secondary network, NAD
 * "namespace/name"), every group is of that network: the policy applies to and admits the pods' interfaces there.
 */
export function compileNetworkPolicySpec(namespace: string, spec: V1NetworkPolicySpec | undefined, ref: PolicyRef, network?: string): Compiled {
  const groups = new Map<string, PodGroupSpec>();
  const appliedTo = canonicalGroup({ network, namespace, podSelector: spec?.podSelector });
  const appliedKey = groupKey(appliedTo);
  groups.set(appliedKey, appliedTo);
  const types = policyTypes({ spec });
  const rules: CompiledRule[] = [];
  // Rules of a direction the policy does not isolate are ignored, as the API says.
  if (types.includes('Ingress')) {
    (spec?.ingress ?? []).forEach((r, i) => rules.push({ name: `ingress-${i}`, direction: 'Ingress', action: 'Accept', peers: rulePeers(namespace, network, fromOf(r), groups), ports: rulePorts(r.ports) }));
  }
  if (types.includes('Egress')) {
    (spec?.egress ?? []).forEach((r, i) => {
      const peers = rulePeers(namespace, network, r.to, groups);
      const ports = rulePorts(r.ports);
      // To anywhere on a named port: the name resolves on the destination pods, so the datapath needs every pod
      // (the numeric ports still go anywhere).
      if (peers.any && ports.some((p) => p.name !== undefined)) {
        const all = canonicalGroup({ network });
        const key = groupKey(all);
        groups.set(key, all);
        peers.groups.push(key);
      }
      rules.push({ name: `egress-${i}`, direction: 'Egress', action: 'Accept', peers, ports });
    });
  }
  return {
    policy: { ref, ...(network ? { network } : {}), tier: 'NetworkPolicy', priority: 0, appliedTo: appliedKey, isolates: types, rules },
    groups,
  };
}

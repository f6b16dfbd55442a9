// ClusterNetworkPolicy compiled into the policy model: ordered Accept/Deny/Pass rules in the Admin or Baseline
// tier. It isolates nothing: traffic no rule matches goes on to the next tier.
import type { V1LabelSelector } from '@kubernetes/client-node';
import type { ClusterNetworkPolicy, CnpPeer, CnpProtocol } from '../api/clusternetworkpolicy.js';
import { canonicalGroup, groupKey } from './groups.js';
import type { Compiled, CompiledRule, PodGroupSpec, Protocol, RulePeers, RulePort } from './types.js';

function selectorGroup(selectors: { namespaces?: V1LabelSelector; pods?: { namespaceSelector?: V1LabelSelector; podSelector?: V1LabelSelector } }): PodGroupSpec | undefined {
  if (selectors.namespaces) return canonicalGroup({ namespaceSelector: selectors.namespaces });
  if (selectors.pods) return canonicalGroup({ namespaceSelector: selectors.pods.namespaceSelector, podSelector: selectors.pods.podSelector });
  return undefined;
}

function peers(list: readonly CnpPeer[], groups: Map<string, PodGroupSpec>): RulePeers {
  const out: RulePeers = { groups: [], ipBlocks: [] };
  for (const p of list) {
    const g = selectorGroup(p);
    if (g) {
      const key = groupKey(g);
      groups.set(key, g);
      if (!out.groups.includes(key)) out.groups.push(key);
    }
    for (const cidr of p.networks ?? []) out.ipBlocks.push({ cidr });
  }
  return out;
}

function ports(protocols: readonly CnpProtocol[] | undefined): RulePort[] {
  const out: RulePort[] = [];
  for (const p of protocols ?? []) {
    if (p.destinationNamedPort) {
      out.push({ name: p.destinationNamedPort });
      continue;
    }
    const entries: Array<[Protocol, CnpProtocol['tcp']]> = [
      ['TCP', p.tcp],
      ['UDP', p.udp],
      ['SCTP', p.sctp],
    ];
    for (const [protocol, spec] of entries) {
      if (!spec) continue;
      const d = spec.destinationPort;
      if (d?.range) out.push({ protocol, port: d.range.start, endPort: d.range.end });
      else if (d?.number) out.push({ protocol, port: d.number });
      else out.push({ protocol });
    }
  }
  return out;
}

export function compileClusterNetworkPolicy(cnp: ClusterNetworkPolicy): Compiled {
  const groups = new Map<string, PodGroupSpec>();
  // A subject with neither field is refused by the schema; should one get through, it selects nobody (no pod is
  // in the namespace "").
  const subject = selectorGroup(cnp.spec.subject) ?? { namespace: '' };
  const appliedTo = groupKey(subject);
  groups.set(appliedTo, subject);
  const rules: CompiledRule[] = [
    ...(cnp.spec.ingress ?? []).map((r, i): CompiledRule => ({ name: `ingress-${i}`, ...(r.name ? { label: r.name } : {}), direction: 'Ingress', action: r.action, peers: peers(r.from, groups), ports: ports(r.protocols) })),
    ...(cnp.spec.egress ?? []).map((r, i): CompiledRule => ({ name: `egress-${i}`, ...(r.name ? { label: r.name } : {}), direction: 'Egress', action: r.action, peers: peers(r.to, groups), ports: ports(r.protocols) })),
  ];
  return {
    policy: { ref: { kind: 'ClusterNetworkPolicy', name: cnp.metadata.name ?? '', uid: cnp.metadata.uid ?? '', generation: cnp.metadata.generation ?? 0 }, tier: cnp.spec.tier, priority: cnp.spec.priority, appliedTo, isolates: [], rules },
    groups,
  };
}

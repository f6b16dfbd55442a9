// Semantic validation of a ServiceChain beyond its CRD schema. The schema keeps shapes and ranges out at the
// API server; these rules span fields (or stand where no schema ran, e.g. a cluster without the CRD's
// validation) and end up in the Invalid condition, each naming its field.
import { isDnsLabel, isDnsSubdomain, isInterfaceName } from '../../secondary/annotations/validation.js';
import { cidrContains, cidrRange, isIpv4Cidr } from '../../ipam/ipv4-set.js';
import { CHAIN_PROTOCOLS, MAX_HOPS, type ChainPeer, type LabelSelector, type ServiceChainSpec } from './types.js';

export interface ChainFieldProblem {
  /** Dotted path as kube names fields, e.g. spec.hops[1].name. */
  field: string;
  reason: string;
}

const PORT_PROTOCOLS = new Set(['TCP', 'UDP', 'SCTP']);
const OPERATORS = new Set(['In', 'NotIn', 'Exists', 'DoesNotExist']);
const LABEL_NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const LABEL_VALUE = /^$|^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;

function isLabelKey(k: string): boolean {
  const slash = k.indexOf('/');
  if (slash < 0) return LABEL_NAME.test(k);
  return isDnsSubdomain(k.slice(0, slash)) && LABEL_NAME.test(k.slice(slash + 1));
}

function selectorProblems(sel: LabelSelector, field: string): ChainFieldProblem[] {
  const out: ChainFieldProblem[] = [];
  for (const [k, v] of Object.entries(sel.matchLabels ?? {})) {
    if (!isLabelKey(k)) out.push({ field: `${field}.matchLabels`, reason: `${JSON.stringify(k)} is not a valid label key` });
    else if (typeof v !== 'string' || !LABEL_VALUE.test(v)) out.push({ field: `${field}.matchLabels`, reason: `${JSON.stringify(v)} is not a valid value for label ${k}` });
  }
  (sel.matchExpressions ?? []).forEach((e, i) => {
    const f = `${field}.matchExpressions[${i}]`;
    if (!isLabelKey(e.key ?? '')) out.push({ field: `${f}.key`, reason: `${JSON.stringify(e.key)} is not a valid label key` });
    if (!OPERATORS.has(e.operator)) out.push({ field: `${f}.operator`, reason: `${JSON.stringify(e.operator)} is not one of In, NotIn, Exists, DoesNotExist` });
    const values = e.values ?? [];
    if ((e.operator === 'In' || e.operator === 'NotIn') && values.length === 0) out.push({ field: `${f}.values`, reason: `must be non-empty for operator ${e.operator}` });
    if ((e.operator === 'Exists' || e.operator === 'DoesNotExist') && values.length > 0) out.push({ field: `${f}.values`, reason: `must be empty for operator ${e.operator}` });
  });
  return out;
}

function peerProblems(peer: ChainPeer, field: string): ChainFieldProblem[] {
  const out: ChainFieldProblem[] = [];
  if (peer.ipBlock && (peer.podSelector || peer.namespaceSelector)) {
    out.push({ field: `${field}.ipBlock`, reason: 'ipBlock cannot be combined with podSelector or namespaceSelector' });
  }
  if (!peer.ipBlock && !peer.podSelector && !peer.namespaceSelector) {
    out.push({ field, reason: 'must give podSelector, namespaceSelector or ipBlock (leave the peer out to match any address)' });
  }
  if (peer.podSelector) out.push(...selectorProblems(peer.podSelector, `${field}.podSelector`));
  if (peer.namespaceSelector) out.push(...selectorProblems(peer.namespaceSelector, `${field}.namespaceSelector`));
  const block = peer.ipBlock;
  if (block) {
    if (!isIpv4Cidr(block.cidr ?? '')) out.push({ field: `${field}.ipBlock.cidr`, reason: `${JSON.stringify(block.cidr)} is not an IPv4 CIDR (IPv6 is not supported yet)` });
    (block.except ?? []).forEach((ex, i) => {
      const f = `${field}.ipBlock.except[${i}]`;
      if (!isIpv4Cidr(ex)) out.push({ field: f, reason: `${JSON.stringify(ex)} is not an IPv4 CIDR` });
      else if (isIpv4Cidr(block.cidr ?? '')) {
        const [clo, chi] = cidrRange(block.cidr);
        const [elo, ehi] = cidrRange(ex);
        if (!cidrContains(block.cidr, ex)) out.push({ field: f, reason: `${ex} is not inside cidr ${block.cidr}` });
        else if (elo === clo && ehi === chi) out.push({ field: f, reason: `${ex} excludes all of cidr ${block.cidr}` });
      }
    });
  }
  return out;
}

/** A chain's network reference: '' (primary), "name" or "namespace/name". */
export function isNetworkRef(n: string): boolean {
  if (n === '') return true;
  const parts = n.split('/');
  if (parts.length === 1) return isDnsSubdomain(parts[0]!);
  return parts.length === 2 && isDnsLabel(parts[0]!) && isDnsSubdomain(parts[1]!);
}

/** Every problem of a chain's spec, in field order; empty when valid. */
export function validateChainSpec(spec: ServiceChainSpec | undefined): ChainFieldProblem[] {
  if (!spec || typeof spec !== 'object') return [{ field: 'spec', reason: 'required' }];
  const out: ChainFieldProblem[] = [];
  const network = spec.network ?? '';
  if (typeof network !== 'string' || !isNetworkRef(network)) {
    out.push({ field: 'spec.network', reason: `${JSON.stringify(network)} is not "", "name" or "namespace/name" of a NetworkAttachmentDefinition` });
  }
  if (spec.priority !== undefined && (!Number.isInteger(spec.priority) || spec.priority < 0 || spec.priority > 1000)) {
    out.push({ field: 'spec.priority', reason: 'must be an integer from 0 to 1000' });
  }
  const c = spec.classifier;
  if (!c) out.push({ field: 'spec.classifier', reason: 'required' });
  else {
    if (!c.source && !c.destination) out.push({ field: 'spec.classifier', reason: 'must give source, destination or both' });
    if (c.source) out.push(...peerProblems(c.source, 'spec.classifier.source'));
    if (c.destination) out.push(...peerProblems(c.destination, 'spec.classifier.destination'));
    if (c.protocol !== undefined && !CHAIN_PROTOCOLS.includes(c.protocol)) out.push({ field: 'spec.classifier.protocol', reason: `${JSON.stringify(c.protocol)} is not one of ${CHAIN_PROTOCOLS.join(', ')}` });
    const ports = c.ports ?? [];
    if (ports.length && !PORT_PROTOCOLS.has(c.protocol ?? '')) {
      out.push({ field: 'spec.classifier.ports', reason: `ports need protocol TCP, UDP or SCTP${c.protocol ? `, not ${c.protocol}` : ''}` });
    }
    ports.forEach((p, i) => {
      const f = `spec.classifier.ports[${i}]`;
      if (!Number.isInteger(p.port) || p.port < 1 || p.port > 65535) out.push({ field: `${f}.port`, reason: 'must be from 1 to 65535' });
      if (p.endPort !== undefined) {
        if (!Number.isInteger(p.endPort) || p.endPort > 65535) out.push({ field: `${f}.endPort`, reason: 'must be at most 65535' });
        else if (p.endPort < p.port) out.push({ field: `${f}.endPort`, reason: `must not be less than port (${p.port})` });
      }
    });
  }
  const hops = spec.hops ?? [];
  if (!Array.isArray(hops) || hops.length === 0) out.push({ field: 'spec.hops', reason: 'at least one hop is required' });
  else if (hops.length > MAX_HOPS) out.push({ field: 'spec.hops', reason: `at most ${MAX_HOPS} hops` });
  const seen = new Map<string, number>();
  (Array.isArray(hops) ? hops : []).forEach((h, i) => {
    const f = `spec.hops[${i}]`;
    if (!isDnsLabel(h.name ?? '')) out.push({ field: `${f}.name`, reason: `${JSON.stringify(h.name)} is not a DNS label` });
    const first = seen.get(h.name);
    if (first !== undefined) out.push({ field: `${f}.name`, reason: `duplicate hop name ${JSON.stringify(h.name)} (also spec.hops[${first}])` });
    else seen.set(h.name, i);
    if (!h.podSelector) out.push({ field: `${f}.podSelector`, reason: 'required ({} selects every pod of the namespace)' });
    else out.push(...selectorProblems(h.podSelector, `${f}.podSelector`));
    for (const side of ['ingress', 'egress'] as const) {
      const name = h.interfaces?.[side];
      if (typeof name !== 'string' || !isInterfaceName(name)) out.push({ field: `${f}.interfaces.${side}`, reason: `${JSON.stringify(name)} is not an interface name` });
    }
  });
  return out;
}

/** One line naming every problem, for conditions and Events. */
export function describeProblems(problems: readonly ChainFieldProblem[]): string {
  return problems.map((p) => `${p.field}: ${p.reason}`).join('; ');
}

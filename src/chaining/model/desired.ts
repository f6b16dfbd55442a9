// The per-node desired state of service chains: one pure function of the cluster's objects that the agents
// (to program their datapath) and the controller (to compute status) share. Only what the controller has
// assigned counts: chains with status.index, replicas with an id in status; agents never assign.
import type { V1Namespace, V1Node, V1Pod } from '@kubernetes/client-node';
import { nodeInternalIp } from '../../primary/nodes/peers.js';
import { NETWORK_STATUS_ANNOTATION, parseNetworkStatus } from '../../secondary/annotations/index.js';
import {
  ChainConditionType,
  chainKey,
  chainNetwork,
  DEFAULT_PRIORITY,
  hopDefaults,
  type ChainPeer,
  type ChainProtocol,
  type HopSpec,
  type ServiceChain,
} from '../api/types.js';
import { describeProblems, validateChainSpec } from '../api/validate.js';
import { ANY_IPV4, cidrRange, cidrsToRanges, rangesToCidrs, subtractRanges } from '../../ipam/ipv4-set.js';
import { NODE_CHAIN_REPORT_ANNOTATION, parseNodeChainReport, type NodeChainReport } from './report.js';
import { selectorMatches } from '../../k8s/selector.js';

export interface ChainReplica {
  /** 1..31, unique in the hop. */
  id: number;
  podUid: string;
  /** "namespace/name". */
  pod: string;
  node: string;
  /** The node's InternalIP (tunnel endpoint). */
  nodeIp: string;
  healthy: boolean;
  /** Interface names inside the CNF pod. */
  ingress: string;
  egress: string;
}

export interface ChainHop {
  /** 0-based position in the chain. */
  index: number;
  name: string;
  mode: 'Transparent' | 'Routed';
  failurePolicy: 'FailOpen' | 'FailClosed';
  /** Sorted by id. */
  replicas: ChainReplica[];
}

export interface IpSet {
  /** IPv4 CIDRs, fewest and lowest first, after excepts are subtracted; ['0.0.0.0/0'] for any; [] for none. */
  cidrs: string[];
}

export interface ChainClassifier {
  source: IpSet;
  destination: IpSet;
  protocol?: ChainProtocol;
  /** Destination ports; empty = any. */
  ports: Array<{ port: number; endPort?: number }>;
}

export interface DesiredChain {
  /** The datapath id, 1..255. */
  index: number;
  /** "namespace/name". */
  key: string;
  uid: string;
  /** 0 = highest; the order of all chains by (priority, creationTimestamp, namespace/name). */
  precedence: number;
  /** '' = the primary pod network, else "namespace/name" of the NetworkAttachmentDefinition. */
  network: string;
  classifier: ChainClassifier;
  hops: ChainHop[];
  symmetric: boolean;
}

export interface ChainProblem {
  /** "namespace/name" of the chain. */
  chain: string;
  hop?: string;
  reason: string;
  message: string;
}

/** Node name -> that node's report. */
export type NodeReports = ReadonlyMap<string, NodeChainReport>;

export interface DesiredInput {
  chains: readonly ServiceChain[];
  pods: readonly V1Pod[];
  namespaces: readonly V1Namespace[];
  nodes: readonly V1Node[];
  reports: NodeReports;
}

const created = (c: ServiceChain): number => {
  const t = c.metadata.creationTimestamp;
  const ms = t ? new Date(t).getTime() : NaN;
  return Number.isNaN(ms) ? Number.MAX_SAFE_INTEGER : ms;
};

/** Precedence order: lower priority first, then the older chain, then namespace/name. */
export function comparePrecedence(a: ServiceChain, b: ServiceChain): number {
  const pa = a.spec?.priority ?? DEFAULT_PRIORITY;
  const pb = b.spec?.priority ?? DEFAULT_PRIORITY;
  if (pa !== pb) return pa - pb;
  const ta = created(a);
  const tb = created(b);
  if (ta !== tb) return ta - tb;
  const ka = chainKey(a);
  const kb = chainKey(b);
  return ka < kb ? -1 : ka > kb ? 1 : 0;
}

/** Every report found in the Nodes' annotations (malformed entries dropped). */
export function nodeReports(nodes: readonly V1Node[]): Map<string, NodeChainReport> {
  const out = new Map<string, NodeChainReport>();
  for (const n of nodes) {
    const { report } = parseNodeChainReport(n.metadata?.annotations?.[NODE_CHAIN_REPORT_ANNOTATION]);
    if (report && n.metadata?.name) out.set(n.metadata.name, report);
  }
  return out;
}

export function isPodTerminating(pod: V1Pod): boolean {
  return !!pod.metadata?.deletionTimestamp;
}

export function isPodReady(pod: V1Pod): boolean {
  return pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
}

/** Pods whose address may be reused by now. */
function isPodFinished(pod: V1Pod): boolean {
  return pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed';
}

const IPV4 = /^\d{1,3}(\.\d{1,3}){3}$/;

/** The pod's IPv4 addresses on a network ('' = primary: status.podIPs; else its network-status entry). */
export function podAddressesOn(pod: V1Pod, network: string): string[] {
  if (network === '') {
    const ips = pod.status?.podIPs?.map((p) => p.ip) ?? (pod.status?.podIP ? [pod.status.podIP] : []);
    return ips.filter((ip) => IPV4.test(ip));
  }
  let status;
  try {
    status = parseNetworkStatus(pod.metadata?.annotations?.[NETWORK_STATUS_ANNOTATION]);
  } catch {
    return [];
  }
  return status.filter((s) => s.name === network && !s.default).flatMap((s) => s.ips ?? []).filter((ip) => IPV4.test(ip));
}

function namespaceLabels(ns: V1Namespace): Record<string, string> {
  // As the API server does since 1.21, so a selector can name a namespace.
  return { ...(ns.metadata?.labels ?? {}), 'kubernetes.io/metadata.name': ns.metadata?.name ?? '' };
}

/** The addresses a classifier peer covers on `network`; an absent peer is any address. */
export function peerAddresses(peer: ChainPeer | undefined, chainNamespace: string, network: string, pods: readonly V1Pod[], namespaces: readonly V1Namespace[]): IpSet {
  if (!peer) return { cidrs: [ANY_IPV4] };
  if (peer.ipBlock) {
    const ranges = subtractRanges([cidrRange(peer.ipBlock.cidr)], (peer.ipBlock.except ?? []).map(cidrRange));
    return { cidrs: rangesToCidrs(ranges) };
  }
  let inNamespace: (ns: string) => boolean;
  if (peer.namespaceSelector) {
    const selected = new Set(namespaces.filter((n) => selectorMatches(peer.namespaceSelector, namespaceLabels(n))).map((n) => n.metadata?.name ?? ''));
    inNamespace = (ns) => selected.has(ns);
  } else inNamespace = (ns) => ns === chainNamespace;
  const addresses = pods
    .filter((p) => inNamespace(p.metadata?.namespace ?? '') && !isPodFinished(p) && selectorMatches(peer.podSelector, p.metadata?.labels))
    .flatMap((p) => podAddressesOn(p, network));
  return { cidrs: rangesToCidrs(cidrsToRanges(addresses)) };
}

/** The classifier of a (valid) chain, its selectors resolved to addresses on the chain's network. */
export function chainClassifier(chain: ServiceChain, pods: readonly V1Pod[], namespaces: readonly V1Namespace[]): ChainClassifier {
  const c = chain.spec.classifier;
  const ns = chain.metadata.namespace ?? 'default';
  const network = chainNetwork(chain);
  return {
    source: peerAddresses(c.source, ns, network, pods, namespaces),
    destination: peerAddresses(c.destination, ns, network, pods, namespaces),
    ...(c.protocol ? { protocol: c.protocol } : {}),
    ports: (c.ports ?? []).map((p) => (p.endPort !== undefined && p.endPort !== p.port ? { port: p.port, endPort: p.endPort } : { port: p.port })),
  };
}

/** Pods a hop's selector picks as replicas: in the chain's namespace, not finished, oldest first. */
export function hopCandidates(chain: ServiceChain, hop: HopSpec, pods: readonly V1Pod[]): V1Pod[] {
  const ns = chain.metadata.namespace ?? 'default';
  return pods
    .filter((p) => p.metadata?.namespace === ns && !isPodFinished(p) && selectorMatches(hop.podSelector, p.metadata?.labels))
    .sort((a, b) => {
      const ta = a.metadata?.creationTimestamp ? new Date(a.metadata.creationTimestamp).getTime() : 0;
      const tb = b.metadata?.creationTimestamp ? new Date(b.metadata.creationTimestamp).getTime() : 0;
      return ta - tb || (a.metadata?.name ?? '').localeCompare(b.metadata?.name ?? '');
    });
}

export interface ReplicaHealth {
  healthy: boolean;
  /** Why not healthy (or the agent's note). */
  reason?: string;
  /** When the agent saw the health change, if it reported it. */
  since?: string;
}

/** A replica is healthy while its pod is Ready and not terminating, and its node's agent reports it healthy. */
export function replicaHealth(pod: V1Pod, chainUid: string, hop: string, reports: NodeReports): ReplicaHealth {
  if (isPodTerminating(pod)) return { healthy: false, reason: 'PodTerminating' };
  if (!isPodReady(pod)) return { healthy: false, reason: 'PodNotReady' };
  const node = pod.spec?.nodeName;
  const entry = node ? reports.get(node)?.replicas.find((r) => r.chain === chainUid && r.hop === hop && r.pod === pod.metadata?.uid) : undefined;
  if (!entry) return { healthy: false, reason: 'NotReported' };
  return { healthy: entry.healthy, ...(entry.reason ? { reason: entry.reason } : entry.healthy ? {} : { reason: 'ProbeFailed' }), ...(entry.since ? { since: entry.since } : {}) };
}

const isInvalid = (c: ServiceChain): boolean => c.status?.conditions?.some((x) => x.type === ChainConditionType.Invalid && x.status === 'True') ?? false;

/**
 * The chains to realize: those with an index, valid, and not marked Invalid by the controller, in precedence
 * order; each hop with the replicas that have an id, still exist, still match, and run on a node with an
 * address. What is left out and why is in `problems`.
 */
export function desiredChains(input: DesiredInput): { chains: DesiredChain[]; problems: ChainProblem[] } {
  const problems: ChainProblem[] = [];
  const podsByUid = new Map(input.pods.map((p) => [p.metadata?.uid ?? '', p]));
  const nodeIps = new Map(input.nodes.map((n) => [n.metadata?.name ?? '', nodeInternalIp(n)]));
  const candidates = input.chains.filter((c) => c.status?.index !== undefined).sort(comparePrecedence);
  const usedIndexes = new Set<number>();
  const chains: DesiredChain[] = [];
  for (const chain of candidates) {
    const key = chainKey(chain);
    const index = chain.status!.index!;
    const invalid = validateChainSpec(chain.spec);
    if (invalid.length) {
      problems.push({ chain: key, reason: 'Invalid', message: describeProblems(invalid) });
      continue;
    }
    if (isInvalid(chain)) {
      problems.push({ chain: key, reason: 'Invalid', message: 'marked Invalid by the controller' });
      continue;
    }
    if (usedIndexes.has(index)) {
      problems.push({ chain: key, reason: 'IndexInUse', message: `index ${index} is also a chain of higher precedence's` });
      continue;
    }
    usedIndexes.add(index);
    const uid = chain.metadata.uid ?? '';
    const hops: ChainHop[] = chain.spec.hops.map((spec, i) => {
      const hop = hopDefaults(spec);
      const assigned = chain.status?.hops?.find((h) => h.name === hop.name)?.replicas ?? [];
      const replicas: ChainReplica[] = [];
      const ids = new Set<number>();
      for (const r of [...assigned].sort((a, b) => a.id - b.id)) {
        const pod = podsByUid.get(r.podUID);
        if (!pod || pod.metadata?.namespace !== chain.metadata.namespace || !selectorMatches(hop.podSelector, pod.metadata?.labels) || ids.has(r.id)) continue;
        const node = pod.spec?.nodeName ?? '';
        const nodeIp = nodeIps.get(node);
        if (!node || !nodeIp) {
          problems.push({ chain: key, hop: hop.name, reason: 'NoNodeAddress', message: `replica ${pod.metadata?.name} is on node ${JSON.stringify(node)} without an InternalIP` });
          continue;
        }
        ids.add(r.id);
        replicas.push({
          id: r.id,
          podUid: r.podUID,
          pod: `${pod.metadata?.namespace}/${pod.metadata?.name}`,
          node,
          nodeIp,
          healthy: replicaHealth(pod, uid, hop.name, input.reports).healthy,
          ingress: hop.interfaces.ingress,
          egress: hop.interfaces.egress,
        });
      }
      return { index: i, name: hop.name, mode: hop.mode, failurePolicy: hop.failurePolicy, replicas };
    });
    chains.push({
      index,
      key,
      uid,
      precedence: chains.length,
      network: chainNetwork(chain),
      classifier: chainClassifier(chain, input.pods, input.namespaces),
      hops,
      symmetric: chain.spec.symmetric ?? true,
    });
  }
  return { chains, problems };
}

import ipaddr from 'ipaddr.js';

/**
 * `encap`: peers' pods are reached through the tunnel port (VXLAN or Geneve: the flows are the same,
 * only the port type differs). `noEncap`: the node's kernel routes them over the underlay. `chained`: another
 * CNI owns addresses and routing (no pod CIDR, no peers); every pod is a routed point-to-point link, as that
 * CNI made it, and everything not for a local pod goes to the node's kernel.
 */
export type TrafficMode = 'encap' | 'noEncap' | 'chained';

/** What the pipeline needs to know about its own node. */
export interface NodeConfig {
  mode: TrafficMode;
  /** Agent round, stored in every cookie. */
  round: number;
  gatewayOfport: number;
  /** Ignored in noEncap mode (there is no tunnel port). */
  tunnelOfport: number;
  gatewayIp: string;
  gatewayMac: string;
  /** This node's pod CIDR (holds the gateway IP and every local pod IP); none in chained mode. */
  podCidr?: string;
  /** Every pod CIDR of the cluster: in encap mode, addresses in it with no known node are dropped. */
  clusterCidr?: string;
}

/** The node of Seine's own pod network: it has a pod CIDR inside the cluster CIDR. */
export type RoutedNodeConfig = NodeConfig & { mode: 'encap' | 'noEncap'; podCidr: string; clusterCidr: string };

export interface LocalPod {
  /** The pod port's ofport; also its cookie object id. */
  ofport: number;
  ip: string;
  mac: string;
  /**
   * Chained mode: the MAC the pod's ARP requests are answered with, the one its primary CNI gave its next hop (the
   * host end of its link). Given back, the pod still addresses a MAC the link's host end accepts. Default: the
   * gateway's.
   */
  nextHopMac?: string;
}

export interface PeerNode {
  /** Stable small number for the cookie object id (e.g. from the Node's position in an allocation table). */
  index: number;
  /** Underlay address: tunnel destination. */
  nodeIp: string;
  podCidr: string;
  /** The peer's gateway IP: the next hop the local kernel routes the peer's pods through in encap mode. */
  gatewayIp: string;
}

export interface PipelineState {
  node: NodeConfig;
  pods: readonly LocalPod[];
  peers: readonly PeerNode[];
}

const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;

function ipv4(what: string, v: string): ipaddr.IPv4 {
  if (!ipaddr.IPv4.isValidFourPartDecimal(v)) throw new RangeError(`${what}: bad IPv4 address ${v}`);
  return ipaddr.IPv4.parse(v);
}

function cidr(what: string, v: string): [ipaddr.IPv4, number] {
  if (!ipaddr.IPv4.isValidCIDR(v)) throw new RangeError(`${what}: bad IPv4 CIDR ${v}`);
  const [addr, len] = ipaddr.IPv4.parseCIDR(v);
  if (ipaddr.IPv4.networkAddressFromCIDR(v).toString() !== addr.toString()) throw new RangeError(`${what}: ${v} has host bits set`);
  return [addr, len];
}

function mac(what: string, v: string): void {
  if (!MAC_RE.test(v)) throw new RangeError(`${what}: bad MAC ${v}`);
  if (parseInt(v.slice(0, 2), 16) & 1) throw new RangeError(`${what}: ${v} is a multicast MAC`);
}

function ofport(what: string, v: number): void {
  // OpenFlow's physical port range: reserved ports start at 0xff00.
  if (!Number.isInteger(v) || v < 1 || v >= 0xff00) throw new RangeError(`${what}: ofport ${v} outside 1..65279`);
}

function within(range: [ipaddr.IPv4, number], a: ipaddr.IPv4): boolean {
  return a.match(range);
}

function bounds([addr, len]: [ipaddr.IPv4, number]): { first: number; last: number } {
  const first = addr.octets.reduce((acc, o) => acc * 256 + o, 0);
  return { first, last: first + 2 ** (32 - len) - 1 };
}

function overlaps(a: [ipaddr.IPv4, number], b: [ipaddr.IPv4, number]): boolean {
  return a[1] <= b[1] ? b[0].match(a) : a[0].match(b);
}

/** The node's pod CIDR; only chained mode has none. */
function podCidrOf(n: NodeConfig): [ipaddr.IPv4, number] | undefined {
  if (n.mode === 'chained') return undefined;
  if (n.podCidr === undefined) throw new RangeError(`node: ${n.mode} mode needs a pod CIDR`);
  return cidr('node pod CIDR', n.podCidr);
}

export function checkNode(n: NodeConfig): void {
  if (n.mode !== 'encap' && n.mode !== 'noEncap' && n.mode !== 'chained') throw new RangeError(`node: unknown traffic mode ${String(n.mode)}`);
  ofport('node gateway', n.gatewayOfport);
  if (n.mode === 'encap') {
    ofport('node tunnel', n.tunnelOfport);
    if (n.tunnelOfport === n.gatewayOfport) throw new RangeError('node: gateway and tunnel share an ofport');
  }
  mac('node gateway', n.gatewayMac);
  const pod = podCidrOf(n);
  if (!pod) {
    ipv4('node gateway', n.gatewayIp);
    return;
  }
  const cluster = cidr('node cluster CIDR', n.clusterCidr ?? '');
  if (!within(pod, ipv4('node gateway', n.gatewayIp))) throw new RangeError(`node: gateway ${n.gatewayIp} outside pod CIDR ${n.podCidr}`);
  if (!(cluster[1] <= pod[1] && within(cluster, pod[0]))) throw new RangeError(`node: pod CIDR ${n.podCidr} outside cluster CIDR ${n.clusterCidr}`);
}

export function checkPod(n: NodeConfig, p: LocalPod): void {
  const what = `pod on ofport ${p.ofport}`;
  ofport(what, p.ofport);
  if (p.ofport === n.gatewayOfport || (n.mode === 'encap' && p.ofport === n.tunnelOfport)) throw new RangeError(`${what}: ofport belongs to the gateway or tunnel`);
  mac(what, p.mac);
  if (p.mac.toLowerCase() === n.gatewayMac.toLowerCase()) throw new RangeError(`${what}: has the gateway MAC`);
  if (p.nextHopMac !== undefined) mac(`${what} next hop`, p.nextHopMac);
  const pod = podCidrOf(n);
  if (pod && !within(pod, ipv4(what, p.ip))) throw new RangeError(`${what}: ${p.ip} outside pod CIDR ${n.podCidr}`);
  if (!pod) ipv4(what, p.ip);
  if (p.ip === n.gatewayIp) throw new RangeError(`${what}: has the gateway IP`);
}

export function checkPeer(n: NodeConfig, p: PeerNode): void {
  const what = `peer ${p.index}`;
  const own = podCidrOf(n);
  if (!own) throw new RangeError(`${what}: chained mode has no peers (the primary CNI routes between nodes)`);
  ipv4(what, p.nodeIp);
  const range = cidr(what, p.podCidr);
  if (!within(range, ipv4(what, p.gatewayIp))) throw new RangeError(`${what}: gateway ${p.gatewayIp} outside its pod CIDR ${p.podCidr}`);
  if (overlaps(range, own)) throw new RangeError(`${what}: pod CIDR ${p.podCidr} overlaps this node's ${n.podCidr}`);
}

function unique<T>(items: readonly T[], key: (t: T) => string, what: string): void {
  const seen = new Set<string>();
  for (const t of items) {
    const k = key(t);
    if (seen.has(k)) throw new RangeError(`two ${what} ${k}`);
    seen.add(k);
  }
}

/** Throws RangeError when the state would give conflicting or invalid flows. */
export function checkState(s: PipelineState): void {
  checkNode(s.node);
  for (const p of s.pods) checkPod(s.node, p);
  for (const p of s.peers) checkPeer(s.node, p);
  unique(s.pods, (p) => String(p.ofport), 'pods on ofport');
  unique(s.pods, (p) => p.ip, 'pods with IP');
  unique(s.pods, (p) => p.mac.toLowerCase(), 'pods with MAC');
  unique(s.peers, (p) => String(p.index), 'peers with index');
  unique(s.peers, (p) => p.gatewayIp, 'peers with gateway');
  // Sorted by first address, a CIDR overlaps an earlier one exactly when it starts before their furthest end.
  const ranges = s.peers.map((p) => ({ p, ...bounds(cidr(`peer ${p.index}`, p.podCidr)) })).sort((a, b) => a.first - b.first);
  let furthest: { end: number; index: number } | undefined;
  for (const r of ranges) {
    if (furthest && r.first <= furthest.end) throw new RangeError(`peers ${furthest.index} and ${r.p.index} have overlapping pod CIDRs`);
    if (!furthest || r.last > furthest.end) furthest = { end: r.last, index: r.p.index };
  }
}

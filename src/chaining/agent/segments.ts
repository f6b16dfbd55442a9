// Chains on Seine VLAN and overlay networks: what a node's secondary bridge needs for them, read from the
// network's NetworkAttachmentDefinition, the bridge's ports (OVSDB) and the pods' network-status.
import { createHash } from 'node:crypto';
import type { V1Node, V1Pod } from '@kubernetes/client-node';
import ipaddr from 'ipaddr.js';
import type { Vswitch } from '../../ovs/ovsdb/index.js';
import { nodeInternalIp } from '../../primary/nodes/peers.js';
import { SEC } from '../../secondary/agent/records.js';
import { NETWORK_STATUS_ANNOTATION, parseNetworkStatus } from '../../secondary/annotations/index.js';
import { EXT, OWNER } from '../../secondary/datapath/names.js';
import type { SegmentEndpoint } from '../datapath/state.js';
import { cidrsToRanges, rangesToCidrs } from '../../ipam/ipv4-set.js';

export { chainNetworkOf, type ChainNetwork } from '../model/network.js';

/** UDP ports of the chain tunnels of secondary bridges: CHAIN_TUNNEL_PORT_BASE + a hash of the bridge name. */
export const CHAIN_TUNNEL_PORT_BASE = 4800;
export const CHAIN_TUNNEL_PORTS = 200;
/** seine-owner of a secondary bridge's chain tunnel port. */
export const CHAIN_TUNNEL_OWNER = 'chain-tunnel';

/**
 * The chain tunnel of a secondary bridge: VXLAN with the key and remote IP from the flows (the key carries the
 * chain tag, as on br-int's tunnel). Every node derives the same name and UDP port from the bridge name (NADs are
 * cluster-wide), so a sender knows where the receiver listens; each bridge needs its own port because a flow-keyed
 * tunnel takes every key arriving on its UDP port.
 */
export function chainTunnel(bridge: string): { name: string; dstPort: number } {
  const h = createHash('sha256').update(bridge).digest();
  return { name: `sc${h.subarray(0, 6).toString('hex')}`, dstPort: CHAIN_TUNNEL_PORT_BASE + (h.readUInt16BE(6) % CHAIN_TUNNEL_PORTS) };
}

/** A pod interface of a network on this node's bridge. */
export interface LocalPodPort {
  ofport: number;
  mac: string;
  ips: string[];
  /** The pod interface's MTU, as attached (0 when not recorded). */
  mtu: number;
}

/** What the chain tunnel adds to a frame: outer Ethernet, IPv4, UDP and VXLAN headers. */
export const CHAIN_TUNNEL_OVERHEAD = 50;

/** The pod ports (not function ports) of `network` on `bridge`, from the OVSDB cache. */
export function localPodPorts(vs: Pick<Vswitch, 'cache'>, bridge: string, network: string): LocalPodPort[] {
  const out: LocalPodPort[] = [];
  for (const p of vs.cache.portsOf(bridge)) {
    const x = p.externalIds;
    if (x[EXT.owner] !== OWNER.pod || x[EXT.networkType] === 'function' || x[SEC.network] !== network) continue;
    const ofport = vs.cache.iface(p.name)?.ofport;
    if (ofport === undefined || ofport <= 0) continue;
    const ips = (x[EXT.addresses] ?? '').split(',').filter(Boolean).map((a) => a.split('/')[0]!);
    out.push({ ofport, mac: (x[EXT.mac] ?? '').toLowerCase(), ips, mtu: Number(x[EXT.mtu] ?? 0) || 0 });
  }
  return out.sort((a, b) => a.ofport - b.ofport);
}

const inAny = (ip: string, cidrs: readonly string[]): boolean => {
  const addr = ipaddr.parse(ip);
  return cidrs.some((c) => {
    const [net, bits] = ipaddr.parseCIDR(c);
    return net.kind() === addr.kind() && addr.match(net, bits);
  });
};

/**
 * The pod addresses of `network` that a chain may deliver to (those its classifier names as source or
 * destination): local ones at their port, the others at their node. A local port is trusted over the API.
 */
export function segmentEndpoints(input: {
  network: string;
  nodeName: string;
  local: readonly LocalPodPort[];
  pods: readonly V1Pod[];
  nodes: readonly V1Node[];
  cidrs: readonly string[];
}): SegmentEndpoint[] {
  const out = new Map<string, SegmentEndpoint>();
  for (const p of input.local) {
    for (const ip of p.ips) if (ipaddr.IPv4.isValidFourPartDecimal(ip) && inAny(ip, input.cidrs)) out.set(ip, { ip, mac: p.mac, ofport: p.ofport });
  }
  const nodeIps = new Map(input.nodes.map((n) => [n.metadata?.name ?? '', nodeInternalIp(n)]));
  for (const pod of input.pods) {
    const node = pod.spec?.nodeName;
    if (!node || node === input.nodeName || pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed') continue;
    const nodeIp = nodeIps.get(node);
    if (!nodeIp) continue;
    let status;
    try {
      status = parseNetworkStatus(pod.metadata?.annotations?.[NETWORK_STATUS_ANNOTATION]);
    } catch {
      continue;
    }
    for (const s of status) {
      if (s.name !== input.network || s.default || !s.mac) continue;
      for (const ip of s.ips ?? []) {
        if (!ipaddr.IPv4.isValidFourPartDecimal(ip) || out.has(ip) || !inAny(ip, input.cidrs)) continue;
        out.set(ip, { ip, mac: s.mac.toLowerCase(), nodeIp });
      }
    }
  }
  return [...out.values()].sort((a, b) => (a.ip < b.ip ? -1 : a.ip > b.ip ? 1 : 0));
}

/**
 * A classifier's destinations narrowed to the network's pods: a chain on a secondary network delivers only to
 * them (Seine knows where they are); traffic to other addresses (a router or host behind a VLAN uplink) is not
 * classified and goes on as the network switches it.
 */
export function deliverableDestinations(destination: readonly string[], endpoints: readonly SegmentEndpoint[]): string[] {
  const ips = endpoints.filter((e) => inAny(e.ip, destination)).map((e) => e.ip);
  return rangesToCidrs(cidrsToRanges(ips));
}

import type { V1Node } from '@kubernetes/client-node';
import ipaddr from 'ipaddr.js';
import type { PeerNode } from '../pipeline/index.js';

export function nodeInternalIp(node: V1Node): string | undefined {
  return node.status?.addresses?.find((a) => a.type === 'InternalIP' && ipaddr.IPv4.isValidFourPartDecimal(a.address))?.address;
}

/** The first address of a pod CIDR: the node's gateway. */
export function gatewayIpOf(podCidr: string): string {
  const [net] = ipaddr.IPv4.parseCIDR(podCidr);
  const o = [...ipaddr.IPv4.networkAddressFromCIDR(`${net.toString()}/${podCidr.split('/')[1]}`).octets];
  o[3]! += 1;
  return o.join('.');
}

/**
 * A stable small number per peer for its cookie object id: the index of its pod CIDR within the cluster CIDR,
 * which never changes while the node exists and is unique among nodes.
 */
export function peerIndex(podCidr: string, clusterCidr: string): number {
  const [net, len] = ipaddr.IPv4.parseCIDR(podCidr);
  const [cnet] = ipaddr.IPv4.parseCIDR(clusterCidr);
  const toInt = (a: ipaddr.IPv4): number => a.octets.reduce((acc, x) => acc * 256 + x, 0);
  return Math.floor((toInt(net) - toInt(cnet)) / 2 ** (32 - len)) + 1;
}

/** Peer nodes (every node but this one with an InternalIP and a pod CIDR inside the cluster CIDR). */
export function peersFromNodes(nodes: readonly V1Node[], self: string, clusterCidr: string): PeerNode[] {
  const cluster = ipaddr.IPv4.parseCIDR(clusterCidr);
  const peers: PeerNode[] = [];
  for (const n of nodes) {
    const podCidr = n.spec?.podCIDR;
    const nodeIp = nodeInternalIp(n);
    if (n.metadata?.name === self || !podCidr || !nodeIp || !ipaddr.IPv4.isValidCIDR(podCidr)) continue;
    if (!ipaddr.IPv4.parseCIDR(podCidr)[0].match(cluster)) continue;
    peers.push({ index: peerIndex(podCidr, clusterCidr), nodeIp, podCidr, gatewayIp: gatewayIpOf(podCidr) });
  }
  return peers.sort((a, b) => a.index - b.index);
}

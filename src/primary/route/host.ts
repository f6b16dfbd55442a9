import { run } from '../../host/exec.js';
import { IpBatch, type IpRoute } from '../../host/ip.js';

/** Routes the agent owns carry this protocol number, so stale ones are found and removed exactly. */
export const SEINE_ROUTE_PROTO = 117;
export const NFT_TABLE = 'seine';

export interface PeerRoute {
  podCidr: string;
  nodeIp: string;
  gatewayIp: string;
}

/**
 * The node's host-network side of the primary network: the gateway interface's address, routes to peer
 * nodes' pod CIDRs, forwarding, and the egress SNAT rule. Every method converges to the desired state.
 */
export class HostNetwork {
  constructor(
    private readonly ip: IpRoute,
    private readonly gatewayIf: string,
  ) {}

  async ensureGateway(gatewayCidr: string, mtu: number): Promise<void> {
    await this.ip.apply(new IpBatch().setLink(this.gatewayIf, { mtu, up: true }).addAddr(this.gatewayIf, gatewayCidr));
  }

  async ensureForwarding(): Promise<void> {
    await this.ip.sysctl({
      'net.ipv4.ip_forward': 1,
      [`net.ipv4.conf.${this.gatewayIf}.rp_filter`]: 0,
      'net.ipv4.conf.all.rp_filter': 0,
      // A pod's packet to a ClusterIP comes in and goes out by the gateway: each would earn the pod an ICMP redirect,
      // and those use up its ICMP rate limit, so the port-unreachable that refuses UDP to a Service without
      // endpoints was not sent. The kernel sends redirects when `all` or the interface allows them: both off.
      [`net.ipv4.conf.${this.gatewayIf}.send_redirects`]: 0,
      'net.ipv4.conf.all.send_redirects': 0,
    });
  }

  /**
   * Encap: peer pod CIDRs via the peer's gateway IP on the gateway interface (onlink; OVS answers the ARP and
   * tunnels the packet). No-encap: via the peer's node IP on the underlay.
   */
  async syncPeerRoutes(peers: readonly PeerRoute[], mode: 'encap' | 'noEncap'): Promise<void> {
    const installed = await this.ip.routes();
    const ours = installed.filter((r) => r.protocol === String(SEINE_ROUTE_PROTO) || r.protocol === `${SEINE_ROUTE_PROTO}`);
    const desired = new Map(peers.map((p) => [p.podCidr, mode === 'encap' ? { via: p.gatewayIp, dev: this.gatewayIf } : { via: p.nodeIp, dev: undefined }]));
    const batch = new IpBatch();
    for (const r of ours) {
      const want = desired.get(r.dst);
      if (!want || want.via !== r.gateway || (want.dev && want.dev !== r.dev)) batch.delRoute(r.dst);
    }
    for (const [dst, want] of desired) {
      const have = ours.find((r) => r.dst === dst);
      if (have && have.gateway === want.via && (!want.dev || have.dev === want.dev)) continue;
      batch.command('route', 'replace', dst, 'via', want.via, ...(want.dev ? ['dev', want.dev, 'onlink'] : []), 'proto', String(SEINE_ROUTE_PROTO));
    }
    await this.ip.apply(batch);
  }

  /** Pod traffic leaving the cluster CIDR through any interface but the gateway is masqueraded to the node IP. */
  async ensureSnat(podCidr: string, clusterCidr: string, enabled: boolean): Promise<void> {
    const rules = enabled
      ? `  chain postrouting {\n    type nat hook postrouting priority srcnat; policy accept;\n    ip saddr ${podCidr} ip daddr != ${clusterCidr} oifname != "${this.gatewayIf}" masquerade\n  }\n`
      : '';
    // Declare, flush and refill in one transaction: idempotent, and never a moment without the rule.
    const script = `table ip ${NFT_TABLE} {}\nflush table ip ${NFT_TABLE}\ntable ip ${NFT_TABLE} {\n${rules}}\n`;
    await run('nft', ['-f', '-'], { netns: this.ip.netns, input: script });
  }
}

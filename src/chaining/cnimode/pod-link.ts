import ipaddr from 'ipaddr.js';
import { IpRoute, type Link, type Route } from '../../host/ip.js';
import type { CniResult } from '../../cni/types.js';

/** The pod's end of the primary CNI's point-to-point link, as found in the pod's namespace. */
export interface PodEnd {
  ifname: string;
  ifindex: number;
  mac: string;
  /** Its IPv4 addresses (the primary CNI's; EKS and AKS give one /32). */
  ips: string[];
  /** The host end's ifindex, when the link is a veth whose peer is in another namespace. */
  peerIfindex?: number;
}

/** The host end of the link, in the node's namespace. */
export interface HostEnd {
  name: string;
  ifindex: number;
  mac: string;
  /** The Linux bridge (or other master) it is enslaved to, if any: Seine cannot take such a link over. */
  master?: string;
  kind?: string;
}

/** Why a pod's link cannot be taken over; the message says what was found. */
export class PodLinkError extends Error {}

/** The pod's interface: where the primary CNI left it, whatever its prevResult says (some results are odd). */
export async function inspectPodEnd(netns: string, ifname: string): Promise<PodEnd> {
  const pod = new IpRoute(netns);
  const link = await pod.link(ifname);
  if (!link) throw new PodLinkError(`the pod has no interface ${ifname}: the primary CNI did not make it`);
  const [addrs] = await pod.addrs(ifname);
  const ips = (addrs?.addr_info ?? []).filter((a) => a.family === 'inet').map((a) => a.local);
  const veth = link.linkinfo?.info_kind === 'veth';
  return {
    ifname,
    ifindex: link.ifindex,
    mac: (link.address ?? '').toLowerCase(),
    ips,
    ...(veth && link.link_index !== undefined && link.link_netnsid !== undefined ? { peerIfindex: link.link_index } : {}),
  };
}

/**
 * The host end of the pod's veth: the node's link with the peer index the pod's end names, whose own peer is the
 * pod's end. Names are not trusted (prevResults mislabel them); indexes checked both ways are.
 */
export async function findHostEnd(host: IpRoute, pod: PodEnd): Promise<HostEnd> {
  if (pod.peerIfindex === undefined) throw new PodLinkError(`${pod.ifname} in the pod is not a veth with its peer in another namespace; Seine's chained mode takes over veth pairs only`);
  const links = await host.links();
  const candidate = links.find((l) => l.ifindex === pod.peerIfindex && l.linkinfo?.info_kind === 'veth' && l.link_index === pod.ifindex);
  if (!candidate) throw new PodLinkError(`no veth with index ${pod.peerIfindex} peered with the pod's ${pod.ifname} in the node's namespace`);
  return hostEndOf(candidate);
}

function hostEndOf(l: Link): HostEnd {
  return { name: l.ifname, ifindex: l.ifindex, mac: (l.address ?? '').toLowerCase(), ...(l.master ? { master: l.master } : {}), ...(l.linkinfo?.info_kind ? { kind: l.linkinfo.info_kind } : {}) };
}

/** A route of the main table through the host end, as it was before Seine moved it. */
export interface MovedRoute {
  dst: string;
  scope?: string;
  protocol?: string;
  metric?: number;
  src?: string;
}

/** The main table's IPv4 routes out of `dev` that Seine moves onto its gateway: the pod's own addresses. */
export function routesToMove(routes: readonly Route[], dev: string, podIps: readonly string[]): MovedRoute[] {
  const own = podIps.map((ip) => ipaddr.IPv4.parse(ip));
  return routes
    .filter((r) => r.dev === dev && !r.gateway && r.dst !== 'default')
    .filter((r) => {
      const [net, len] = r.dst.includes('/') ? ipaddr.IPv4.parseCIDR(r.dst) : [ipaddr.IPv4.parse(r.dst), 32];
      return len === 32 && own.some((ip) => ip.toString() === net.toString());
    })
    .map((r) => ({
      dst: r.dst.includes('/') ? r.dst : `${r.dst}/32`,
      // ip -json leaves a global scope out; ip route would give a device route scope link.
      scope: r.scope ?? 'global',
      ...(r.protocol ? { protocol: r.protocol } : {}),
      ...(r.metric !== undefined ? { metric: r.metric } : {}),
      ...(r.prefsrc ? { src: r.prefsrc } : {}),
    }));
}

/** IPv4 addresses a CNI result gives the interface `ifname` (or, when it names none, every one). */
export function resultIps(result: CniResult | undefined, ifname: string): string[] {
  if (!result?.ips?.length) return [];
  const index = (result.interfaces ?? []).findIndex((i) => i.name === ifname);
  const v4 = result.ips.filter((ip) => ipaddr.IPv4.isValidCIDR(ip.address) || ipaddr.IPv4.isValidFourPartDecimal(ip.address.split('/')[0] ?? ''));
  const mine = v4.filter((ip) => ip.interface === undefined || index < 0 || ip.interface === index);
  return (mine.length ? mine : v4).map((ip) => ip.address.split('/')[0]!);
}

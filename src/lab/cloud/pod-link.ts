// What both clouds' CNIs build for a pod in routed mode: a veth whose host end is a routed port of the node
// (no bridge), the pod's address, and a fake next hop 169.254.1.1 that resolves to the host end's MAC.
import { createHash } from 'node:crypto';
import { IpBatch, IpRoute, sysctlCommand, txOffloadOffCommand, type FollowUp } from '../../host/ip.js';

/** The next hop both clouds give pods: link-local, so it is never a real address anywhere. */
export const POD_GATEWAY = '169.254.1.1';

/**
 * Host veth names as both clouds derive them: a prefix and the first 11 hex digits of sha1 of the key
 * (`namespace.podname`; AWS appends `.N` to the pod name for its N-th extra interface, Azure's bridge mode keys on
 * network, container and interface instead).
 */
export function hostVethName(prefix: string, key: string): string {
  return prefix + createHash('sha1').update(key).digest('hex').slice(0, 11);
}

/** A random unicast, locally administered MAC (as aws-cni gives the host end). */
export function randomLocalMac(): string {
  const b = Buffer.from(Array.from({ length: 6 }, () => Math.floor(Math.random() * 256)));
  b[0] = (b[0]! | 2) & 0xfe;
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
}

export interface PodLinkSpec {
  /** The pod's network namespace (CNI_NETNS) and interface (CNI_IFNAME). */
  netns: string;
  ifname: string;
  /** The host end's name and MAC. */
  hostIf: string;
  hostMac: string;
  mtu: number;
  /** The pod's address as put on its interface: `/32` on AWS, the subnet's prefix on Azure. */
  address: string;
  /** IPv6 sysctls of the host end, set before it comes up. */
  hostSysctls: Record<string, number>;
  /**
   * How the pod routes. `fake-gateway`: via 169.254.1.1 whose neighbour entry is the host end's MAC, `permanent`
   * (AWS) or `probe` (Azure transparent: kept by proxy ARP afterwards), with the kernel's subnet route removed
   * when the address has a subnet prefix (Azure). `subnet`: on-link subnet and a default via the subnet's
   * gateway (Azure bridge mode).
   */
  routing: { kind: 'fake-gateway'; neighbour: 'permanent' | 'probe'; dropSubnetRoute?: string } | { kind: 'subnet'; gateway: string };
}

/** Creates the veth and configures its pod end; on failure removes the veth again. Returns the pod end's MAC. */
export async function createPodLink(spec: PodLinkSpec): Promise<{ podMac: string }> {
  const host = new IpRoute();
  // A host end left by an earlier, unfinished attempt (same pod name) is replaced, as both clouds do.
  if (await host.link(spec.hostIf)) await host.apply(new IpBatch().delLink(spec.hostIf));
  const up: FollowUp = ['ip', 'link', 'set', 'dev', spec.hostIf, 'up'];
  // The host end may later join a userspace OVS bridge, where TX checksum offload breaks TCP.
  // `-e`: a node without IPv6 has no such keys, which both clouds ignore.
  const [, ...sysctlArgs] = sysctlCommand(spec.hostSysctls);
  await host.apply(new IpBatch().addVeth(spec.hostIf, spec.ifname, { peerNetns: spec.netns, mtu: spec.mtu, mac: spec.hostMac }), ['sysctl', '-e', ...sysctlArgs], up, txOffloadOffCommand(spec.hostIf));
  try {
    const pod = new IpRoute(spec.netns);
    const batch = new IpBatch().setLink(spec.ifname, { up: true });
    const r = spec.routing;
    if (r.kind === 'fake-gateway') {
      // The link route to the gateway comes first: the default route needs it, and a /32 address adds none.
      batch.replaceRoute(`${POD_GATEWAY}/32`, { dev: spec.ifname, scope: 'link' }).replaceRoute('default', { via: POD_GATEWAY, dev: spec.ifname }).addAddr(spec.ifname, spec.address);
      if (r.dropSubnetRoute) batch.delRoute(r.dropSubnetRoute, { dev: spec.ifname });
      batch.command('neigh', 'replace', POD_GATEWAY, 'lladdr', spec.hostMac, 'dev', spec.ifname, 'nud', r.neighbour);
    } else {
      batch.addAddr(spec.ifname, spec.address).replaceRoute('default', { via: r.gateway, dev: spec.ifname });
    }
    await pod.apply(batch, txOffloadOffCommand(spec.ifname));
    const podMac = (await pod.link(spec.ifname))?.address;
    if (!podMac) throw new Error(`pod interface ${spec.ifname} vanished from ${spec.netns}`);
    return { podMac };
  } catch (e) {
    await host.applyBestEffort(new IpBatch().delLink(spec.hostIf));
    throw e;
  }
}

/** `ip rule` lines that are replaced, not duplicated: the kernel refuses an identical rule twice. */
export async function replaceRules(rules: ReadonlyArray<readonly string[]>): Promise<void> {
  const host = new IpRoute();
  const del = new IpBatch();
  for (const r of rules) del.command('rule', 'del', ...r);
  await host.applyBestEffort(del);
  const add = new IpBatch();
  for (const r of rules) add.command('rule', 'add', ...r);
  await host.apply(add);
}

/** Deletes rules and routes that may already be gone (DEL is idempotent). */
export async function deleteRulesAndRoutes(rules: ReadonlyArray<readonly string[]>, routes: ReadonlyArray<{ dst: string; dev?: string }>): Promise<void> {
  const batch = new IpBatch();
  for (const r of rules) batch.command('rule', 'del', ...r);
  for (const r of routes) batch.delRoute(r.dst, r.dev ? { dev: r.dev } : {});
  await new IpRoute().applyBestEffort(batch);
}

/** The pod's namespace and name from CNI_ARGS, as kubelet passes them. */
export function podOf(argPairs: ReadonlyArray<readonly [string, string]>): { namespace: string; name: string } {
  const get = (k: string): string => argPairs.find(([key]) => key === k)?.[1] ?? '';
  return { namespace: get('K8S_POD_NAMESPACE'), name: get('K8S_POD_NAME') };
}

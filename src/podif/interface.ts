import { createHash, randomBytes } from 'node:crypto';
import { CniCode, CniError } from '../cni/errors.js';
import { IpBatch, IpRoute, isolateFromHostStackCommand, txOffloadOffCommand, UnsafeArgumentError, type FollowUp } from '../host/ip.js';

export interface PodInterfaceSpec {
  /** Pod network namespace path. */
  netns: string;
  ifname: string;
  hostIfname: string;
  mac: string;
  /** Address with prefix, e.g. 10.244.1.5/24. */
  cidr: string;
  gateway: string;
  mtu: number;
  /**
   * Userspace datapath: TX checksum offload off on both ends (or TCP stalls), and the host end kept away from
   * the kernel's IP stack (see IpRoute.isolateFromHostStack).
   */
  userspaceDatapath: boolean;
}

/** Host-side veth name: readable prefix of the pod name plus a hash of the attachment, within IFNAMSIZ. */
export function hostInterfaceName(podNamespace: string, podName: string, containerId: string, ifname: string): string {
  const hash = createHash('sha1').update(`${podNamespace}/${podName}/${containerId}/${ifname}`).digest('hex').slice(0, 8);
  const prefix = podName.toLowerCase().replace(/[^a-z0-9]/g, '').slice(0, 6) || 'pod';
  return `${prefix}-${hash}`;
}

/** A random locally administered unicast MAC. */
export function randomMac(): string {
  const b = randomBytes(6);
  b[0] = (b[0]! & 0xfe) | 0x02;
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
}

/**
 * Creates the pod's veth (peer straight into the pod netns), addresses it, adds a default route via the
 * gateway on it, then brings the host end up: three steps (the veth, the pod side, the host side, each with
 * its offload/sysctl changes) in one process. On failure everything it made is removed. A value that cannot be
 * passed to iproute2 (e.g. a netns path with a newline) is refused with CNI code 4 before anything runs.
 */
export async function setUpPodInterface(host: IpRoute, spec: PodInterfaceSpec): Promise<void> {
  const userspace = spec.userspaceDatapath;
  // Everything is built first: an argument iproute2 cannot carry fails here, with nothing made.
  // Both ends get a MAC of ours, so a failed first step can tell its own links from ones that were there.
  const hostMac = randomMac();
  let veth: IpBatch, podSide: IpBatch, hostSide: IpBatch;
  let podFollowUps: FollowUp[], hostFollowUps: FollowUp[];
  try {
    veth = new IpBatch().addVeth(spec.hostIfname, spec.ifname, { peerNetns: spec.netns, mtu: spec.mtu, mac: hostMac, peerMac: spec.mac });
    podSide = new IpBatch()
      .setLink('lo', { up: true })
      .addAddr(spec.ifname, spec.cidr)
      .setLink(spec.ifname, { up: true })
      // Appended, not replaced: another attachment of this network in the pod keeps its default route
      // (the first one stays in use), and each interface's route goes with it when it is deleted.
      .command('route', 'append', 'default', 'via', spec.gateway, 'dev', spec.ifname);
    podFollowUps = userspace ? [txOffloadOffCommand(spec.ifname)] : [];
    hostSide = new IpBatch().setLink(spec.hostIfname, { up: true });
    hostFollowUps = userspace ? [txOffloadOffCommand(spec.hostIfname), isolateFromHostStackCommand(spec.hostIfname)] : [];
  } catch (e) {
    if (e instanceof UnsafeArgumentError) throw invalidArgument(e, spec);
    throw e;
  }
  try {
    // One process: the veth, then the pod end configured, then the host end up last (no frame reaches the
    // switch before the pod end is ready).
    await host.applySteps([{ batch: veth }, { netns: spec.netns, batch: podSide, followUps: podFollowUps }, { batch: hostSide, followUps: hostFollowUps }]);
  } catch (e) {
    // Whatever step failed (or the script died), what this attempt made carries its MAC: remove only that.
    await removeOwnVeth(host, spec, hostMac);
    throw e;
  }
}

/** The CNI error for a value iproute2 cannot be given: the runtime's CNI_NETNS or CNI_IFNAME. */
function invalidArgument(e: UnsafeArgumentError, spec: PodInterfaceSpec): CniError {
  const env = e.value === spec.netns ? 'CNI_NETNS' : e.value === spec.ifname ? 'CNI_IFNAME' : undefined;
  return new CniError(CniCode.InvalidEnvironment, env ? `invalid ${env}` : 'invalid pod interface parameter', e.message, { cause: e });
}

/**
 * Removes what a failed veth step may have made: the host end in the node and the pod end in the pod netns,
 * each only when it carries the MAC this attempt gave it (a link of that name that was already there is
 * left alone). Deleting either end of a veth deletes both.
 */
export async function removeOwnVeth(host: IpRoute, spec: PodInterfaceSpec, hostMac: string): Promise<void> {
  const ours = async (ip: IpRoute, name: string, mac: string): Promise<boolean> => {
    const link = await ip.link(name).catch(() => undefined);
    return link?.linkinfo?.info_kind === 'veth' && link.address?.toLowerCase() === mac.toLowerCase();
  };
  const pod = new IpRoute(spec.netns);
  if (await ours(host, spec.hostIfname, hostMac)) await tearDownPodInterface(host, spec.hostIfname);
  if (await ours(pod, spec.ifname, spec.mac)) await pod.applyBestEffort(new IpBatch().delLink(spec.ifname));
}

/** Removes the host end of a pod veth (the pod end goes with it). Already gone is fine. */
export async function tearDownPodInterface(host: IpRoute, hostIfname: string): Promise<void> {
  await host.applyBestEffort(new IpBatch().delLink(hostIfname));
}

/**
 * Whether the pod end of an attachment is still in its namespace (with its MAC). A namespace deleted and
 * re-created under the same path has lost it, though the path still exists.
 */
export async function podInterfacePresent(netns: string, ifname: string, mac: string): Promise<boolean> {
  try {
    const link = await new IpRoute(netns).link(ifname);
    return link?.address?.toLowerCase() === mac.toLowerCase();
  } catch {
    return false;
  }
}

/** Problems with a pod interface as CHECK sees them; empty when it is as configured. */
export async function checkPodInterface(spec: Omit<PodInterfaceSpec, 'hostIfname' | 'userspaceDatapath' | 'mtu'>): Promise<string[]> {
  const problems: string[] = [];
  const pod = new IpRoute(spec.netns);
  let link;
  try {
    link = await pod.link(spec.ifname);
  } catch (e) {
    return [`cannot inspect netns ${spec.netns}: ${e instanceof Error ? e.message : String(e)}`];
  }
  if (!link) return [`interface ${spec.ifname} missing in ${spec.netns}`];
  if (link.address?.toLowerCase() !== spec.mac.toLowerCase()) problems.push(`${spec.ifname} has MAC ${link.address}, expected ${spec.mac}`);
  const [addrs] = await pod.addrs(spec.ifname);
  const [ip, prefix] = spec.cidr.split('/');
  if (!addrs?.addr_info.some((a) => a.local === ip && String(a.prefixlen) === prefix)) problems.push(`${spec.ifname} lacks address ${spec.cidr}`);
  const routes = await pod.routes();
  if (!routes.some((r) => r.dst === 'default' && r.gateway === spec.gateway && r.dev === spec.ifname)) problems.push(`no default route via ${spec.gateway} on ${spec.ifname}`);
  return problems;
}


import { addressInCidr } from '../../ipam/subnets.js';

/**
 * The clouds the lab can stand in for: EKS (AWS VPC CNI) and AKS (Azure CNI). Their CNIs give pods addresses
 * from the cloud network itself and route them without an overlay; the lab reproduces that with pod blocks
 * routed by the fabric's router (the external host).
 */
export type CloudProfile = 'eks' | 'aks';

/** Azure CNI's modes: `transparent` (routed host veths, today's default) or the older `bridge` (host veths on `azure0`). */
export type AzureMode = 'transparent' | 'bridge';

/**
 * One network interface of a node in the cloud network (an ENI on EC2, a NIC on Azure). The primary one is the
 * node's `eth0`; EKS nodes also get a secondary ENI (`eth2`, its own underlay address and route table), as ipamd
 * attaches when the primary one's secondary IPs run out.
 */
export interface CloudEni {
  /** The device inside the node namespace. */
  name: string;
  /** Its peer on the fabric's underlay bridge (absent for eth0, which the fabric wires itself). */
  fabricPort?: string;
  /** Its own address on the underlay. */
  ip: string;
  /** EC2's device number (0 for the primary ENI). */
  deviceNumber: number;
  /** The route table of its pods' `from podIP` rules: 254 (main) for the primary ENI, device number + 1 otherwise, as ipamd numbers them. */
  routeTable: number;
  /** The pod addresses this interface carries (the lab's stand-in for ENI secondary IPs / delegated prefixes). */
  podCidr: string;
}

export interface CloudNodePlan {
  /** All the node's pod addresses (the union of its ENIs' podCidr). */
  podBlock: string;
  enis: CloudEni[];
}

export interface CloudPlan {
  profile: CloudProfile;
  /** The range every pod address comes from (VPC pod range / VNet subnet): Seine's clusterCIDR in chained mode. */
  podCidr: string;
  /** What the cloud counts as inside its network (AWS: the VPC CIDRs, not SNATed): the underlay and the pod range. */
  vpcCidrs: string[];
  /** Azure's subnet gateway (the first address of the VNet subnet), as its IPAM reports it. */
  gateway?: string;
  azureMode?: AzureMode;
}

export interface CloudPlanOptions {
  profile: CloudProfile;
  /** EKS: give each node a secondary ENI carrying the upper half of its pod block (default true). */
  secondaryEnis?: boolean;
  azureMode?: AzureMode;
}

export const EKS_POD_CIDR = '10.100.0.0/16';
export const AKS_POD_CIDR = '10.224.0.0/16';

/**
 * The internet, as far as the cloud network can tell: an address outside every VPC CIDR, on the external host.
 * Pods reach it through the cloud CNI's SNAT (AWS: to the primary ENI's address, out of the primary ENI).
 */
export const INTERNET_IP = '198.51.100.1';

/** AWS names the primary ENI's route table `main`. */
export const MAIN_TABLE = 254;

/** The cloud addressing of one lab: the pod range, and per node its block and interfaces. Pure values. */
export function planCloud(
  opts: CloudPlanOptions,
  underlayCidr: string,
  nodes: ReadonlyArray<{ index: number; ip: string; uplink: string }>,
): { cloud: CloudPlan; nodes: CloudNodePlan[] } {
  const podCidr = opts.profile === 'eks' ? EKS_POD_CIDR : AKS_POD_CIDR;
  const podBase = podCidr.split('.').slice(0, 2).join('.');
  const perNode = nodes.map((n): CloudNodePlan => {
    const podBlock = `${podBase}.${n.index}.0/24`;
    const primary: CloudEni = { name: n.uplink, ip: n.ip, deviceNumber: 0, routeTable: MAIN_TABLE, podCidr: podBlock };
    if (opts.profile !== 'eks' || opts.secondaryEnis === false) return { podBlock, enis: [primary] };
    return {
      podBlock,
      enis: [
        { ...primary, podCidr: `${podBase}.${n.index}.0/25` },
        { name: 'eth2', fabricPort: `n${n.index}-eth2`, ip: addressInCidr(underlayCidr, 110 + n.index), deviceNumber: 1, routeTable: 2, podCidr: `${podBase}.${n.index}.128/25` },
      ],
    };
  });
  const cloud: CloudPlan =
    opts.profile === 'eks'
      ? { profile: 'eks', podCidr, vpcCidrs: [underlayCidr, podCidr] }
      : { profile: 'aks', podCidr, vpcCidrs: [underlayCidr, podCidr], gateway: addressInCidr(podCidr, 1), azureMode: opts.azureMode ?? 'transparent' };
  return { cloud, nodes: perNode };
}

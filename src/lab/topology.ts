import ipaddr from 'ipaddr.js';
import { addressInCidr } from '../ipam/subnets.js';
import { planCloud, type CloudNodePlan, type CloudPlan, type CloudPlanOptions } from './cloud/plan.js';

/** The addressing and naming plan of one lab: pure values, derived from the lab name and node count. */
export interface LabPlan {
  name: string;
  /** Underlay (node) subnet on the primary fabric. */
  underlayCidr: string;
  /** The external host's address on the underlay: "outside the cluster", also the nodes' default gateway. */
  externalIp: string;
  clusterCidr: string;
  serviceCidr: string;
  nodeCidrMaskSize: number;
  underlayMtu: number;
  fabricNetns: string;
  externalNetns: string;
  nodes: NodePlan[];
  /** With a cloud profile: the cloud's pod range and addressing (nodes then carry their share in `cloud`). */
  cloud?: CloudPlan;
}

export interface NodePlan {
  index: number;
  /** Kubernetes Node name. */
  name: string;
  netns: string;
  /** Node IP on the underlay. */
  ip: string;
  /** The node's primary uplink (underlay) and its VLAN-fabric uplink, inside the node netns. */
  uplink: string;
  vlanUplink: string;
  /** The peer ends of those uplinks, inside the fabric netns. */
  fabricPort: string;
  vlanFabricPort: string;
  /** With a cloud profile: the node's pod block and its cloud interfaces (ENIs). */
  cloud?: CloudNodePlan;
}

export const UNDERLAY_BRIDGE = 'underlay';
export const VLAN_FABRIC_BRIDGE = 'vlanfab';

export interface PlanOptions {
  name: string;
  nodes: number;
  underlayCidr?: string;
  clusterCidr?: string;
  serviceCidr?: string;
  nodeCidrMaskSize?: number;
  /** Stand in for a cloud's network (EKS, AKS): its CNI, its addressing, no overlay. */
  cloud?: CloudPlanOptions;
}

const NAME_RE = /^[a-z][a-z0-9]{0,9}$/;

/** Lab names become prefixes of namespaces and Node names, so they are short and DNS-safe. */
export function validateLabName(name: string): void {
  if (!NAME_RE.test(name)) throw new Error(`lab name '${name}' must match ${NAME_RE} (lowercase, starts with a letter, at most 10 chars)`);
}

export function planLab(opts: PlanOptions): LabPlan {
  validateLabName(opts.name);
  const underlayCidr = opts.underlayCidr ?? '172.28.0.0/24';
  const [net, len] = ipaddr.IPv4.parseCIDR(underlayCidr);
  const hosts = 2 ** (32 - len) - 2;
  if (opts.nodes < 1 || opts.nodes > Math.min(hosts - 12, 50)) throw new Error(`node count ${opts.nodes} out of range 1..${Math.min(hosts - 12, 50)}`);
  const addr = (offset: number): string => addressInCidr(`${net.toString()}/${len}`, offset);
  const nodes: NodePlan[] = [];
  for (let i = 1; i <= opts.nodes; i++) {
    nodes.push({
      index: i,
      name: `${opts.name}-node${i}`,
      netns: `${opts.name}-node${i}`,
      ip: addr(10 + i),
      uplink: 'eth0',
      vlanUplink: 'eth1',
      fabricPort: `n${i}-eth0`,
      vlanFabricPort: `n${i}-eth1`,
    });
  }
  const cloud = opts.cloud ? planCloud(opts.cloud, underlayCidr, nodes) : undefined;
  if (cloud) nodes.forEach((n, i) => (n.cloud = cloud.nodes[i]));
  return {
    name: opts.name,
    underlayCidr,
    externalIp: addr(hosts),
    clusterCidr: opts.clusterCidr ?? '10.244.0.0/16',
    serviceCidr: opts.serviceCidr ?? '10.96.0.0/16',
    nodeCidrMaskSize: opts.nodeCidrMaskSize ?? 24,
    underlayMtu: 1500,
    fabricNetns: `${opts.name}-fabric`,
    externalNetns: `${opts.name}-external`,
    nodes,
    ...(cloud ? { cloud: cloud.cloud } : {}),
  };
}

export function underlayPrefixLength(plan: LabPlan): number {
  return ipaddr.IPv4.parseCIDR(plan.underlayCidr)[1];
}

// The IPPool custom resource (crds/ippool.yaml) as TypeScript sees it.

export const IPPOOL_GROUP = 'crd.seine.dev';
export const IPPOOL_VERSION = 'v1alpha1';
export const IPPOOL_PLURAL = 'ippools';
export const IPPOOL_KIND = 'IPPool';
export const IPPOOL_API_VERSION = `${IPPOOL_GROUP}/${IPPOOL_VERSION}`;

/** Either `cidr`, or `start` and `end` (inclusive). */
export interface IPRange {
  cidr?: string;
  start?: string;
  end?: string;
}

export interface SubnetInfo {
  gateway: string;
  prefixLength: number;
  /** 0 (untagged) .. 4094. */
  vlan?: number;
}

export interface IPPoolSpec {
  ipRanges: IPRange[];
  /** IPs or CIDRs never handed out. */
  exclude?: string[];
  subnetInfo: SubnetInfo;
}

/** Who holds an address: one interface of one pod sandbox (a CNI attachment). */
export interface PoolOwner {
  podNamespace: string;
  podName: string;
  podUID?: string;
  /** The sandbox (infra container) id, CNI_CONTAINERID. */
  containerID: string;
  /** The interface in the pod, CNI_IFNAME (e.g. net1). */
  interface: string;
  /** The node the pod runs on: lets an agent collect garbage of its own node only. */
  node?: string;
}

/** One entry of `status.allocations`. */
export interface StoredAllocation {
  ip: string;
  owner: PoolOwner;
  /** RFC 3339 time. */
  allocatedAt: string;
  /** The pod asked for this address. */
  requested?: boolean;
}

/**
 * One entry of `status.blocks`: a run of the pool's addresses a node allocates from first, so agents of
 * different nodes write to different blocks and never refuse each other's writes (see allocator.ts).
 */
export interface StoredBlock {
  /** First and last address of the run (inclusive). */
  start: string;
  end: string;
  node: string;
  /** Bumped by every write that allocates in the block: what such a write tests first. */
  version: number;
}

export interface IPPoolStatus {
  allocations?: StoredAllocation[];
  blocks?: StoredBlock[];
  /** Bumped by every block claim and every allocation outside all blocks: what such a write tests first. */
  poolVersion?: number;
  usage?: { total: number; used: number };
}

export interface IPPool {
  apiVersion: typeof IPPOOL_API_VERSION;
  kind: typeof IPPOOL_KIND;
  metadata: { name: string; resourceVersion?: string; generation?: number; uid?: string; [k: string]: unknown };
  spec: IPPoolSpec;
  status?: IPPoolStatus;
}

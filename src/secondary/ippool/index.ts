// Cluster-wide IPAM for secondary networks over IPPool objects (crds/ippool.yaml).
export { IPPoolAllocator, type AllocatorStats, type GcOptions, type IPPoolAllocatorOptions, type LiveOwners, type OwnerKey, type PoolAllocation, type PoolUsage } from './allocator.js';
export { IPPoolError, type IPPoolProblem } from './errors.js';
export { parseIpv4, parseIpv4Cidr, PoolLayout, PoolSpecError, type AddressClass } from './ranges.js';
export {
  IPPOOL_API_VERSION,
  IPPOOL_GROUP,
  IPPOOL_KIND,
  IPPOOL_PLURAL,
  IPPOOL_VERSION,
  type IPPool,
  type IPPoolSpec,
  type IPPoolStatus,
  type IPRange,
  type PoolOwner,
  type StoredAllocation,
  type SubnetInfo,
} from './types.js';

export { canonicalIp, PodCidr, type IpFamily } from './cidr.js';
export { IpamAddressError, IpamExhaustedError, IpamStateError, type IpamAddressProblem } from './errors.js';
export { NodeIpam, STATE_KIND, STATE_VERSION, type IpamAllocation, type IpamOwner, type IpamOwnerKey, type NodeIpamOptions } from './node-ipam.js';

import ipaddr from 'ipaddr.js';

export function ipv4ToInt(ip: string): number {
  return ipaddr.IPv4.parse(ip).octets.reduce((acc, o) => acc * 256 + o, 0);
}

export function intToIpv4(n: number): string {
  return ipaddr.fromByteArray([(n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255]).toString();
}

/** The address `offset` places after the network address of `cidr`. */
export function addressInCidr(cidr: string, offset: number): string {
  const [net, len] = ipaddr.IPv4.parseCIDR(cidr);
  if (offset < 0 || offset >= 2 ** (32 - len)) throw new RangeError(`offset ${offset} outside ${cidr}`);
  return intToIpv4(ipv4ToInt(net.toString()) + offset);
}

/** Normalizes a CIDR to its network address (10.1.2.3/24 -> 10.1.2.0/24). */
export function networkOf(cidr: string): string {
  const [addr, len] = ipaddr.IPv4.parseCIDR(cidr);
  return `${ipaddr.IPv4.networkAddressFromCIDR(`${addr.toString()}/${len}`).toString()}/${len}`;
}

/**
 * Hands out fixed-size subnets of a larger block in order, lowest free first, as kube-controller-manager's
 * node IPAM does for Node.spec.podCIDR.
 */
export class SubnetAllocator {
  private readonly base: number;
  private readonly count: number;
  private readonly used = new Set<number>();

  constructor(
    readonly blockCidr: string,
    readonly maskSize: number,
  ) {
    const len = ipaddr.IPv4.parseCIDR(blockCidr)[1];
    if (maskSize < len || maskSize > 30) throw new RangeError(`subnet size /${maskSize} does not fit in ${blockCidr}`);
    this.base = ipv4ToInt(ipaddr.IPv4.networkAddressFromCIDR(blockCidr).toString());
    this.count = 2 ** (maskSize - len);
  }

  private indexOf(cidr: string): number {
    const [addr, len] = ipaddr.IPv4.parseCIDR(cidr);
    if (len !== this.maskSize) throw new RangeError(`${cidr} is not a /${this.maskSize}`);
    const offset = ipv4ToInt(addr.toString()) - this.base;
    const size = 2 ** (32 - this.maskSize);
    if (offset < 0 || offset % size !== 0 || offset / size >= this.count) throw new RangeError(`${cidr} is not a subnet of ${this.blockCidr}`);
    return offset / size;
  }

  /** Marks an existing assignment as taken (e.g. found on a Node at startup). */
  occupy(cidr: string): void {
    this.used.add(this.indexOf(cidr));
  }

  release(cidr: string): void {
    this.used.delete(this.indexOf(cidr));
  }

  allocate(): string {
    const size = 2 ** (32 - this.maskSize);
    for (let i = 0; i < this.count; i++) {
      if (!this.used.has(i)) {
        this.used.add(i);
        return `${intToIpv4(this.base + i * size)}/${this.maskSize}`;
      }
    }
    throw new Error(`no free /${this.maskSize} left in ${this.blockCidr}`);
  }

  get free(): number {
    return this.count - this.used.size;
  }
}

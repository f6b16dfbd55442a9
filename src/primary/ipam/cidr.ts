// Address math over one pod CIDR, family-agnostic (offsets are bigints so that an IPv6 /64 fits).
import ipaddr from 'ipaddr.js';

export type IpFamily = 4 | 6;

function toBigInt(bytes: readonly number[]): bigint {
  let n = 0n;
  for (const b of bytes) n = (n << 8n) | BigInt(b);
  return n;
}

function fromBigInt(n: bigint, width: number): number[] {
  const out = new Array<number>(width);
  for (let i = width - 1; i >= 0; i--) {
    out[i] = Number(n & 0xffn);
    n >>= 8n;
  }
  return out;
}

/**
 * A plain address in canonical text (IPv4 dotted quad, IPv6 RFC 5952), or undefined when `text` is not
 * one. IPv4 shorthands ("10.1") and zone ids are refused: they never name a pod address.
 */
export function canonicalIp(text: string): { ip: string; family: IpFamily; value: bigint } | undefined {
  if (ipaddr.IPv4.isValidFourPartDecimal(text)) {
    const a = ipaddr.IPv4.parse(text);
    return { ip: a.toString(), family: 4, value: toBigInt(a.toByteArray()) };
  }
  if (text.includes(':') && !text.includes('%') && ipaddr.IPv6.isValid(text)) {
    const a = ipaddr.IPv6.parse(text);
    return { ip: a.toString(), family: 6, value: toBigInt(a.toByteArray()) };
  }
  return undefined;
}

/**
 * A node's pod CIDR. Offset 0 (network; the subnet-router anycast in IPv6) and offset 1 (the gateway,
 * `seine-gw0`) are never pod addresses, nor is the IPv4 broadcast address.
 */
export class PodCidr {
  /** Canonical "address/prefix", e.g. 10.244.1.0/24. */
  readonly cidr: string;
  /** Number of addresses in the CIDR, reserved ones included. */
  readonly size: bigint;
  readonly firstUsable = 2n;
  readonly lastUsable: bigint;
  private readonly base: bigint;
  private readonly width: number;

  private constructor(
    readonly family: IpFamily,
    readonly prefixLength: number,
    base: bigint,
  ) {
    this.width = family === 4 ? 4 : 16;
    const bits = family === 4 ? 32 : 128;
    this.base = base;
    this.size = 1n << BigInt(bits - prefixLength);
    this.lastUsable = family === 4 ? this.size - 2n : this.size - 1n;
    this.cidr = `${this.addressAt(0n)}/${prefixLength}`;
  }

  /** Throws RangeError for text that is not a CIDR, has host bits set, or leaves no pod address. */
  static parse(text: string): PodCidr {
    const slash = text.lastIndexOf('/');
    const addr = slash < 0 ? undefined : canonicalIp(text.slice(0, slash));
    const lenText = slash < 0 ? '' : text.slice(slash + 1);
    if (!addr || !/^\d{1,3}$/.test(lenText)) throw new RangeError(`pod CIDR ${JSON.stringify(text)} is not an address/prefix`);
    const bits = addr.family === 4 ? 32 : 128;
    const len = Number(lenText);
    if (len > bits) throw new RangeError(`pod CIDR ${text}: prefix length ${len} is longer than ${bits}`);
    const hostMask = (1n << BigInt(bits - len)) - 1n;
    if ((addr.value & hostMask) !== 0n) throw new RangeError(`pod CIDR ${text} has host bits set`);
    const cidr = new PodCidr(addr.family, len, addr.value);
    if (cidr.lastUsable < cidr.firstUsable) throw new RangeError(`pod CIDR ${text} is too small: no address left beside network, gateway and broadcast`);
    return cidr;
  }

  /** Address at `offset` from the network address. */
  addressAt(offset: bigint): string {
    if (offset < 0n || offset >= this.size) throw new RangeError(`offset ${offset} outside ${this.cidr}`);
    return ipaddr.fromByteArray(fromBigInt(this.base + offset, this.width)).toString();
  }

  /** Offset of a canonical or non-canonical address inside the CIDR; undefined when outside or not an address. */
  offsetOf(ip: string): bigint | undefined {
    const a = canonicalIp(ip);
    if (!a || a.family !== this.family) return undefined;
    const off = a.value - this.base;
    return off >= 0n && off < this.size ? off : undefined;
  }

  get gateway(): string {
    return this.addressAt(1n);
  }

  /** How many addresses pods can get. */
  get usable(): bigint {
    return this.lastUsable - this.firstUsable + 1n;
  }

  isUsable(offset: bigint): boolean {
    return offset >= this.firstUsable && offset <= this.lastUsable;
  }
}

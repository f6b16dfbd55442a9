// Peer addresses of the policy datapath as blocks: each CIDR or pod address is parsed once and kept (a policy
// may name ten thousand of them, resolving and flow building both need them, and every change of the share
// brings them all again), and a set of blocks is written as the fewest CIDRs that cover it.
import ipaddr from 'ipaddr.js';
import { rangesToCidrs } from '../../ipam/ipv4-set.js';
import { intToIpv4 } from '../../ipam/subnets.js';

/** An aligned IPv4 block: its first and last address as integers, and its CIDR (network address/prefix). */
export interface AddressBlock {
  readonly first: number;
  readonly last: number;
  readonly cidr: string;
}

function block(addr: ipaddr.IPv4, prefix: number): AddressBlock {
  const size = 2 ** (32 - prefix);
  const o = addr.octets;
  const n = ((o[0]! * 256 + o[1]!) * 256 + o[2]!) * 256 + o[3]!;
  const first = n - (n % size);
  return { first, last: first + size - 1, cidr: `${first === n ? addr.toString() : intToIpv4(first)}/${prefix}` };
}

/**
 * Parsed blocks by their text, in two generations: a lookup moves an entry to the recent one, which becomes the
 * older one when full. What is still named stays; memory is bounded by twice the limit.
 */
class BlockCache {
  private recent = new Map<string, AddressBlock>();
  private older = new Map<string, AddressBlock>();

  constructor(
    private readonly parse: (text: string) => AddressBlock,
    private readonly limit: number,
  ) {}

  get(text: string): AddressBlock {
    const hit = this.recent.get(text);
    if (hit) return hit;
    const b = this.older.get(text) ?? this.parse(text);
    if (this.recent.size >= this.limit) {
      this.older = this.recent;
      this.recent = new Map();
    }
    this.recent.set(text, b);
    return b;
  }
}

/** Distinct texts kept per generation: more than any node's policies name in practice, at about 150 bytes each. */
const CACHE_LIMIT = 50_000;
/** What ipaddr.js's parseCIDR splits a CIDR into: the address, and the prefix length. */
const CIDR_TEXT = /^(.+)\/(\d+)$/;

/**
 * ipaddr.js's parseCIDR, without its cost (it redefines `toString` on every result, slower than the parse): the
 * address is parsed by ipaddr.js; text it would refuse is handed to it, for its own error.
 */
function parseCidr(text: string): AddressBlock {
  const parts = CIDR_TEXT.exec(text);
  const prefix = parts ? parseInt(parts[2]!, 10) : NaN;
  if (!parts || !(prefix >= 0 && prefix <= 32)) {
    const [addr, length] = ipaddr.IPv4.parseCIDR(text);
    return block(addr, length);
  }
  return block(ipaddr.IPv4.parse(parts[1]!), prefix);
}

const cidrs = new BlockCache(parseCidr, CACHE_LIMIT);
const hosts = new BlockCache((text) => block(ipaddr.IPv4.parse(text), 32), CACHE_LIMIT);

/** The block of an IPv4 CIDR (host bits ignored); throws on anything else, as ipaddr.js's parseCIDR does. */
export function cidrBlock(cidr: string): AddressBlock {
  return cidrs.get(cidr);
}

/** The block of an IPv4 CIDR, or of one address (a /32). */
export function addressBlock(text: string): AddressBlock {
  return text.includes('/') ? cidrs.get(text) : hosts.get(text);
}

/** The fewest CIDRs that cover exactly the addresses of `blocks`, lowest first. */
export function coveringCidrs(blocks: readonly AddressBlock[]): string[] {
  const sorted = [...blocks].sort((a, b) => a.first - b.first);
  const out: string[] = [];
  for (let i = 0; i < sorted.length; ) {
    const start = sorted[i]!;
    let last = start.last;
    let j = i + 1;
    for (; j < sorted.length && sorted[j]!.first <= last + 1; j++) last = Math.max(last, sorted[j]!.last);
    // A block that overlaps or touches no other is its own CIDR; joined ones are cut again into the fewest.
    if (j === i + 1) out.push(start.cidr);
    else for (const cidr of rangesToCidrs([[start.first, last]])) out.push(cidr);
    i = j;
  }
  return out;
}

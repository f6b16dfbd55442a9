// IPv4 address sets as sorted, disjoint ranges, written out as the fewest CIDRs (ipBlocks with their excepts,
// gathered pod addresses).
import ipaddr from 'ipaddr.js';
import { intToIpv4, ipv4ToInt } from './subnets.js';

export const ANY_IPV4 = '0.0.0.0/0';

/** Inclusive [first, last] address as integers. */
export type Ipv4Range = readonly [number, number];

/** The range a CIDR covers (host bits ignored); throws on anything but an IPv4 CIDR. */
export function cidrRange(cidr: string): Ipv4Range {
  const [addr, len] = ipaddr.IPv4.parseCIDR(cidr);
  const lo = ipv4ToInt(ipaddr.IPv4.networkAddressFromCIDR(`${addr.toString()}/${len}`).toString());
  return [lo, lo + 2 ** (32 - len) - 1];
}

export function isIpv4Cidr(s: string): boolean {
  return ipaddr.IPv4.isValidCIDR(s);
}

/** Sorted and merged (touching ranges joined). */
export function normalizeRanges(ranges: readonly Ipv4Range[]): Ipv4Range[] {
  const sorted = [...ranges].sort((a, b) => a[0] - b[0]);
  const out: Array<[number, number]> = [];
  for (const [lo, hi] of sorted) {
    const last = out[out.length - 1];
    if (last && lo <= last[1] + 1) last[1] = Math.max(last[1], hi);
    else out.push([lo, hi]);
  }
  return out;
}

/** `ranges` without the addresses of `minus`. */
export function subtractRanges(ranges: readonly Ipv4Range[], minus: readonly Ipv4Range[]): Ipv4Range[] {
  let cur = normalizeRanges(ranges);
  for (const [mlo, mhi] of normalizeRanges(minus)) {
    const next: Ipv4Range[] = [];
    for (const [lo, hi] of cur) {
      if (mhi < lo || mlo > hi) {
        next.push([lo, hi]);
        continue;
      }
      if (lo < mlo) next.push([lo, mlo - 1]);
      if (hi > mhi) next.push([mhi + 1, hi]);
    }
    cur = next;
  }
  return cur;
}

/** The fewest CIDRs covering exactly `ranges`, lowest first. */
export function rangesToCidrs(ranges: readonly Ipv4Range[]): string[] {
  const out: string[] = [];
  for (const [first, last] of normalizeRanges(ranges)) {
    let lo = first;
    while (lo <= last) {
      // The largest block aligned at lo that does not pass last.
      let size = lo === 0 ? 2 ** 32 : 2 ** Math.min(32, countTrailingZeros(lo));
      while (lo + size - 1 > last) size /= 2;
      out.push(`${intToIpv4(lo)}/${32 - Math.log2(size)}`);
      lo += size;
    }
  }
  return out;
}

function countTrailingZeros(n: number): number {
  let z = 0;
  while (z < 32 && n % 2 ** (z + 1) === 0) z++;
  return z;
}

/** CIDRs (or plain addresses) as ranges. */
export function cidrsToRanges(cidrs: readonly string[]): Ipv4Range[] {
  return normalizeRanges(cidrs.map((c) => (c.includes('/') ? cidrRange(c) : cidrRange(`${c}/32`))));
}

/** Whether two CIDR lists share an address. */
export function cidrsIntersect(a: readonly string[], b: readonly string[]): boolean {
  const rb = cidrsToRanges(b);
  return cidrsToRanges(a).some(([lo, hi]) => rb.some(([blo, bhi]) => lo <= bhi && blo <= hi));
}

/** Whether every address of `inner` is in `outer`. */
export function cidrContains(outer: string, inner: string): boolean {
  const [olo, ohi] = cidrRange(outer);
  const [ilo, ihi] = cidrRange(inner);
  return olo <= ilo && ihi <= ohi;
}

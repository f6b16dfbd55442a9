// Address math of one IPPool, IPv4: which addresses it may hand out and which is the lowest free one.
// Pure: no API access, so it is unit tested on its own and shared by the allocator and status views.
import ipaddr from 'ipaddr.js';
import { intToIpv4, ipv4ToInt } from '../../ipam/subnets.js';
import type { IPPoolSpec } from './types.js';

/** Inclusive interval of IPv4 addresses as unsigned 32-bit numbers. */
export type Interval = [lo: number, hi: number];

/** Why an address cannot be handed out (`ok` when it can). */
export type AddressClass = 'ok' | 'invalid' | 'outside' | 'reserved' | 'excluded';

/** The pool's spec is unusable; `problems` name each field, as a Kubernetes Event should. */
export class PoolSpecError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(problems.join('; '));
    this.name = 'PoolSpecError';
  }
}

/** The integer value of a dotted quad, or undefined (shorthands like "10.1" and leading zeros are refused). */
export function parseIpv4(text: unknown): number | undefined {
  return typeof text === 'string' && ipaddr.IPv4.isValidFourPartDecimal(text) ? ipv4ToInt(text) : undefined;
}

/** An IPv4 CIDR as its interval; host bits are allowed (10.1.2.3/24 is 10.1.2.0-10.1.2.255). */
export function parseIpv4Cidr(text: unknown): Interval | undefined {
  if (typeof text !== 'string') return undefined;
  const slash = text.indexOf('/');
  if (slash < 0) return undefined;
  const base = parseIpv4(text.slice(0, slash));
  const lenText = text.slice(slash + 1);
  if (base === undefined || !/^\d{1,2}$/.test(lenText) || Number(lenText) > 32) return undefined;
  return cidrInterval(base, Number(lenText));
}

function cidrInterval(addr: number, len: number): Interval {
  const size = 2 ** (32 - len);
  const lo = Math.floor(addr / size) * size;
  return [lo, lo + size - 1];
}

/** Sorted, with touching or overlapping intervals merged. */
function merge(intervals: Interval[]): Interval[] {
  const sorted = [...intervals].sort((a, b) => a[0] - b[0]);
  const out: Interval[] = [];
  for (const [lo, hi] of sorted) {
    const last = out[out.length - 1];
    if (last && lo <= last[1] + 1) last[1] = Math.max(last[1], hi);
    else out.push([lo, hi]);
  }
  return out;
}

/** `from` minus `minus` (both merged). */
function subtract(from: Interval[], minus: Interval[]): Interval[] {
  const out: Interval[] = [];
  for (const [lo, hi] of from) {
    let cur = lo;
    for (const [mlo, mhi] of minus) {
      if (mhi < cur || mlo > hi) continue;
      if (mlo > cur) out.push([cur, mlo - 1]);
      cur = Math.max(cur, mhi + 1);
      if (cur > hi) break;
    }
    if (cur <= hi) out.push([cur, hi]);
  }
  return out;
}

function within(iv: Interval, outer: Interval): boolean {
  return iv[0] >= outer[0] && iv[1] <= outer[1];
}

function covers(list: readonly Interval[], n: number): boolean {
  return list.some(([lo, hi]) => n >= lo && n <= hi);
}

/**
 * What a pool may hand out: its ranges, minus the excluded addresses, minus the subnet's network and
 * broadcast addresses (for prefixes up to /30; /31 and /32 have none, RFC 3021) and the gateway.
 * Lowest address first, regardless of the order of the ranges in the spec.
 */
export class PoolLayout {
  /** The subnet as a canonical CIDR, e.g. 10.10.0.0/24. */
  readonly subnet: string;
  readonly gateway: string;
  readonly prefixLength: number;
  readonly vlan: number | undefined;
  /** How many addresses the pool can hand out. */
  readonly total: number;
  private readonly ranges: Interval[];
  private readonly excluded: Interval[];
  private readonly reserved: Set<number>;
  private readonly allowed: Interval[];

  private constructor(spec: IPPoolSpec, gw: number, ranges: Interval[], excluded: Interval[]) {
    const { prefixLength } = spec.subnetInfo;
    const [netLo, netHi] = cidrInterval(gw, prefixLength);
    this.prefixLength = prefixLength;
    this.gateway = intToIpv4(gw);
    this.subnet = `${intToIpv4(netLo)}/${prefixLength}`;
    this.vlan = spec.subnetInfo.vlan;
    this.ranges = merge(ranges);
    this.excluded = merge(excluded);
    this.reserved = new Set(prefixLength <= 30 ? [netLo, netHi, gw] : [gw]);
    this.allowed = subtract(
      subtract(this.ranges, this.excluded),
      merge([...this.reserved].map((n): Interval => [n, n])),
    );
    this.total = this.allowed.reduce((sum, [lo, hi]) => sum + hi - lo + 1, 0);
  }

  /**
   * Validates a spec beyond what the CRD schema can say (ranges inside the subnet, no overlaps, start not
   * after end, something left to hand out) and builds the layout. PoolSpecError names every problem.
   * The schema's checks are repeated: a pool may have been written before the CRD was.
   */
  static parse(spec: IPPoolSpec): PoolLayout {
    const problems: string[] = [];
    const info = (spec as Partial<IPPoolSpec> | undefined)?.subnetInfo;
    const gw = parseIpv4(info?.gateway);
    const len = info?.prefixLength;
    if (gw === undefined) problems.push(`subnetInfo.gateway: ${JSON.stringify(info?.gateway)} is not an IPv4 address`);
    if (typeof len !== 'number' || !Number.isInteger(len) || len < 1 || len > 32) problems.push(`subnetInfo.prefixLength: ${JSON.stringify(len)} is not an integer from 1 to 32`);
    const vlan = info?.vlan;
    if (vlan !== undefined && (typeof vlan !== 'number' || !Number.isInteger(vlan) || vlan < 0 || vlan > 4094)) problems.push(`subnetInfo.vlan: ${JSON.stringify(vlan)} is not an integer from 0 to 4094`);
    const subnet = gw !== undefined && problems.length === 0 ? cidrInterval(gw, len as number) : undefined;
    const subnetText = subnet ? `${intToIpv4(subnet[0])}/${String(len)}` : 'the subnet';

    const rawRanges: unknown = (spec as Partial<IPPoolSpec> | undefined)?.ipRanges;
    const ranges: Array<{ iv: Interval; at: string }> = [];
    if (!Array.isArray(rawRanges) || rawRanges.length === 0) problems.push('ipRanges: must list at least one range');
    else {
      rawRanges.forEach((r: unknown, i) => {
        const at = `ipRanges[${i}]`;
        const o = (typeof r === 'object' && r !== null ? r : {}) as { cidr?: unknown; start?: unknown; end?: unknown };
        let iv: Interval | undefined;
        if (o.cidr !== undefined && o.start === undefined && o.end === undefined) {
          iv = parseIpv4Cidr(o.cidr);
          if (!iv) problems.push(`${at}.cidr: ${JSON.stringify(o.cidr)} is not an IPv4 CIDR`);
        } else if (o.cidr === undefined && o.start !== undefined && o.end !== undefined) {
          const s = parseIpv4(o.start);
          const e = parseIpv4(o.end);
          if (s === undefined) problems.push(`${at}.start: ${JSON.stringify(o.start)} is not an IPv4 address`);
          if (e === undefined) problems.push(`${at}.end: ${JSON.stringify(o.end)} is not an IPv4 address`);
          if (s !== undefined && e !== undefined) {
            if (s > e) problems.push(`${at}: start ${String(o.start)} is after end ${String(o.end)}`);
            else iv = [s, e];
          }
        } else problems.push(`${at}: must have either cidr, or start and end`);
        if (iv && subnet && !within(iv, subnet)) problems.push(`${at}: ${describe(iv)} is not inside ${subnetText}`);
        if (iv) ranges.push({ iv, at });
      });
    }
    for (let i = 0; i < ranges.length; i++) {
      for (let j = i + 1; j < ranges.length; j++) {
        const a = ranges[i]!;
        const b = ranges[j]!;
        if (a.iv[0] <= b.iv[1] && b.iv[0] <= a.iv[1]) problems.push(`${b.at}: overlaps ${a.at}`);
      }
    }
    const excluded: Interval[] = [];
    const rawExclude: unknown = (spec as Partial<IPPoolSpec> | undefined)?.exclude;
    if (rawExclude !== undefined && !Array.isArray(rawExclude)) problems.push('exclude: must be a list');
    else {
      (rawExclude ?? []).forEach((x: unknown, i) => {
        const single = parseIpv4(x);
        const iv = single !== undefined ? ([single, single] as Interval) : parseIpv4Cidr(x);
        if (!iv) problems.push(`exclude[${i}]: ${JSON.stringify(x)} is not an IPv4 address or CIDR`);
        else excluded.push(iv);
      });
    }
    if (problems.length) throw new PoolSpecError(problems);
    const layout = new PoolLayout(spec, gw as number, ranges.map((r) => r.iv), excluded);
    if (layout.total === 0) throw new PoolSpecError([`ipRanges: no address left to hand out once exclusions, the gateway and ${subnetText}'s network and broadcast addresses are taken out`]);
    return layout;
  }

  /** Whether the address may be handed out, and if not, why. */
  classify(ip: string): AddressClass {
    const n = parseIpv4(ip);
    if (n === undefined) return 'invalid';
    if (!covers(this.ranges, n)) return 'outside';
    if (this.reserved.has(n)) return 'reserved';
    if (covers(this.excluded, n)) return 'excluded';
    return 'ok';
  }

  /** The pool's ranges as text, for messages ("10.10.0.10-10.10.0.99, 10.10.1.0/24"). */
  describeRanges(): string {
    return this.ranges.map(describe).join(', ');
  }

  /**
   * The lowest address that may be handed out and is not in `taken` (numbers from parseIpv4), or
   * undefined when the pool is full. Steps over taken addresses one by one: O(taken) at worst.
   */
  lowestFree(taken: ReadonlySet<number>): string | undefined {
    for (const [lo, hi] of this.allowed) {
      for (let n = lo; n <= hi; n++) if (!taken.has(n)) return intToIpv4(n);
    }
    return undefined;
  }

  /** Whether the address (a number from parseIpv4) may be handed out. */
  allows(n: number): boolean {
    return covers(this.allowed, n);
  }

  /**
   * The lowest run of up to `size` addresses the pool may hand out, none of them in `covered` (sorted,
   * disjoint intervals) and no covered interval between them, that holds an address `isFree` accepts; as
   * [first, last] (numbers), or undefined. What a node claims as a block of its own.
   */
  firstUncoveredRun(size: number, covered: readonly Interval[], isFree: (n: number) => boolean): Interval | undefined {
    let run: number[] = [];
    let k = 0; // the first covered interval not yet behind us
    const close = (): Interval | undefined => {
      const found = run.some(isFree) ? ([run[0]!, run[run.length - 1]!] as Interval) : undefined;
      run = [];
      return found;
    };
    for (const [lo, hi] of this.allowed) {
      for (let n = lo; n <= hi; n++) {
        while (k < covered.length && covered[k]![1] < n) {
          // A covered interval between the run and n (it holds no address the pool hands out) ends the run too.
          if (run.length && covered[k]![0] > run[run.length - 1]!) {
            const found = close();
            if (found) return found;
          }
          k++;
        }
        const next = covered[k];
        if (next && next[0] <= n) {
          // Inside a covered interval: the run ends before it; go on after it.
          const found = close();
          if (found) return found;
          n = next[1];
          continue;
        }
        run.push(n);
        if (run.length === size) {
          const found = close();
          if (found) return found;
        }
      }
    }
    return close();
  }

  /** How many of `taken` are addresses the pool may hand out (others are leftovers of an older spec). */
  countAllowed(taken: Iterable<number>): number {
    let n = 0;
    for (const t of taken) if (covers(this.allowed, t)) n++;
    return n;
  }
}

function describe([lo, hi]: Interval): string {
  if (lo === hi) return intToIpv4(lo);
  const size = hi - lo + 1;
  const len = 32 - Math.log2(size);
  // A whole aligned block reads best as a CIDR.
  if (Number.isInteger(len) && lo % size === 0) return `${intToIpv4(lo)}/${len}`;
  return `${intToIpv4(lo)}-${intToIpv4(hi)}`;
}

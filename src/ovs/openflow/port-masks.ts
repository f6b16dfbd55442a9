// Port ranges as OpenFlow matches: OVS matches transport ports by value and mask, not by range.
import type { Masked } from './match.js';

/** The fewest value/mask pairs that cover port..endPort exactly (as OVS matches ranges). */
export function portMasks(range: { port: number; endPort?: number }): Masked[] {
  const first = range.port;
  const last = range.endPort ?? range.port;
  if (!Number.isInteger(first) || !Number.isInteger(last) || first < 0 || last > 0xffff || first > last) throw new RangeError(`bad port range ${first}-${last}`);
  if (first === last) return [first];
  const out: Masked[] = [];
  let p = first;
  while (p <= last) {
    // The largest aligned block starting at p that stays within the range.
    let size = 1;
    while (p % (size * 2) === 0 && p + size * 2 - 1 <= last && size < 0x10000) size *= 2;
    out.push(size === 1 ? p : { value: p, mask: 0xffff - (size - 1) });
    p += size;
  }
  return out;
}

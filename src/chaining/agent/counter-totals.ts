// Chain counters that never go backwards. They come from flow statistics, which restart from zero whenever
// ovs-vswitchd restarts or a flow is replaced; the agent turns those readings into running totals, carried over
// its own restarts through the totals it last reported on its Node.
import type { Counters } from '../api/types.js';

export interface TrafficCounters {
  packets: Counters;
  bytes: Counters;
}

interface Track {
  /** What earlier flow lifetimes counted. */
  base: number;
  /** The last reading. */
  last: number;
}

const FIELDS = [
  ['packets', 'forward'],
  ['packets', 'reverse'],
  ['bytes', 'forward'],
  ['bytes', 'reverse'],
] as const;

export class CounterTotals {
  private readonly tracks = new Map<string, Track>();
  /** Totals reported before this agent started, by field key, until the first reading of that key. */
  private readonly seeds = new Map<string, number>();

  /** A total this node reported before the agent (re)started. */
  seed(id: string, reported: TrafficCounters): void {
    for (const [kind, dir] of FIELDS) this.seeds.set(`${id}|${kind}|${dir}`, reported[kind][dir]);
  }

  /** Running totals of the counters `id`, given the flows' current readings. */
  totals(id: string, reading: TrafficCounters): TrafficCounters {
    const out: TrafficCounters = { packets: { forward: 0, reverse: 0 }, bytes: { forward: 0, reverse: 0 } };
    for (const [kind, dir] of FIELDS) out[kind][dir] = this.total(`${id}|${kind}|${dir}`, reading[kind][dir]);
    return out;
  }

  /** Forgets every id not in `keep` (chains and replicas that are gone). */
  retain(keep: ReadonlySet<string>): void {
    for (const k of [...this.tracks.keys(), ...this.seeds.keys()]) {
      if (keep.has(k.slice(0, k.indexOf('|')))) continue;
      this.tracks.delete(k);
      this.seeds.delete(k);
    }
  }

  private total(key: string, raw: number): number {
    let t = this.tracks.get(key);
    if (!t) {
      // First reading since start: below what was reported, the flows restarted from zero meanwhile.
      const reported = this.seeds.get(key) ?? 0;
      this.seeds.delete(key);
      t = { base: raw < reported ? reported : 0, last: raw };
      this.tracks.set(key, t);
    } else if (raw < t.last) {
      // The flows were reinstalled (ovs-vswitchd restart, a replaced flow): what they had counted stays counted.
      t.base += t.last;
    }
    t.last = raw;
    return t.base + raw;
  }
}

// The DSCP tag of each running trace: unique among running traces, so that every observation flow matches one
// trace's packet. Tags of finished traces are free again; the controller keeps the assignment in the status.
import { MAX_TAG, MIN_TAG } from '../api/types.js';

/** The lowest tag no running trace holds, or undefined when all are taken (the trace waits or fails). */
export function freeTag(held: Iterable<number>): number | undefined {
  const taken = new Set(held);
  for (let t = MIN_TAG; t <= MAX_TAG; t++) if (!taken.has(t)) return t;
  return undefined;
}

/**
 * Running traces that hold the same tag (after a controller restart read two statuses that a race gave one
 * tag): all but the oldest must give theirs up. Input: name -> tag, in creation order.
 */
export function tagConflicts(running: ReadonlyArray<{ name: string; tag?: number }>): string[] {
  const owner = new Map<number, string>();
  const losers: string[] = [];
  for (const r of running) {
    if (r.tag === undefined) continue;
    if (owner.has(r.tag)) losers.push(r.name);
    else owner.set(r.tag, r.name);
  }
  return losers;
}

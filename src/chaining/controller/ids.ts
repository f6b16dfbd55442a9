// The ids the controller hands out: chain indexes (cluster-wide) and replica ids (per hop). Both are the
// lowest free number, and both stay with their owner for its life so the datapath never sees one move.
import type { V1Pod } from '@kubernetes/client-node';
import { MAX_REPLICA_ID } from '../api/types.js';

/** The lowest number in 1..max not in `used`, or undefined when all are taken. */
export function lowestFree(used: ReadonlySet<number>, max: number): number | undefined {
  for (let i = 1; i <= max; i++) if (!used.has(i)) return i;
  return undefined;
}

export interface ReplicaIdAssignment {
  /** Pod uid -> id: the previous ids of pods that still exist, and new ids for new candidates. */
  ids: Map<string, number>;
  /** Candidates left without an id (the hop is full). */
  unassigned: V1Pod[];
}

/**
 * Ids for a hop's replicas. A pod keeps its id while it exists (also while terminating, and if it stops
 * matching), so an id is never reused for another pod while connections may still use the old one; new
 * candidates get the lowest free ids, in the order given.
 */
export function assignReplicaIds(previous: ReadonlyMap<string, number>, candidates: readonly V1Pod[], existingPods: ReadonlySet<string>, max = MAX_REPLICA_ID): ReplicaIdAssignment {
  const ids = new Map<string, number>();
  const used = new Set<number>();
  for (const [uid, id] of previous) {
    if (!existingPods.has(uid) || used.has(id) || id < 1 || id > max) continue;
    ids.set(uid, id);
    used.add(id);
  }
  const unassigned: V1Pod[] = [];
  for (const pod of candidates) {
    const uid = pod.metadata?.uid ?? '';
    if (ids.has(uid)) continue;
    const id = lowestFree(used, max);
    if (id === undefined) {
      unassigned.push(pod);
      continue;
    }
    ids.set(uid, id);
    used.add(id);
  }
  return { ids, unassigned };
}

import { renderActions } from './actions.js';
import { hex, selectorMatches, type CookieSelector } from './cookie.js';
import type { CanonicalFlow, InstalledFlow, InstalledGroup } from './dump.js';
import { DEFAULT_PRIORITY, addFlow, addGroup, deleteGroup, modifyFlow, modifyGroup, renderFlowKey, type Change, type Flow } from './flow.js';
import type { Group } from './group.js';

/**
 * Planning of a full sync: which changes turn the installed flows (and groups) of one owner into the
 * desired ones. Flows are compared by OVS's canonical spelling (from `ovs-ofctl parse-flows` for the
 * desired side, from dump-flows for the installed side), so equal flows written differently compare
 * equal and a second sync of the same state plans nothing.
 */

/** What parse-flows is given to spell a desired flow canonically: no cookie or timeouts, which are compared as values. */
export function canonicalInput(f: Flow): string {
  return `${renderFlowKey(f)},actions=${renderActions(f.actions)}`;
}

export function flowKey(table: number, priority: number, match: string): string {
  return `${table}/${priority}/${match}`;
}

export interface FlowPlan {
  add: Flow[];
  /** Same key and cookie, new actions: modify_strict keeps the counters. */
  modify: Flow[];
  /** Same key, different cookie or timeouts: an add replaces the flow (modify cannot change these). */
  replace: Flow[];
  remove: InstalledFlow[];
}

export function planFlows(scope: CookieSelector, desired: readonly Flow[], canon: readonly CanonicalFlow[], installed: readonly InstalledFlow[]): FlowPlan {
  const want = new Map<string, { flow: Flow; canon: CanonicalFlow }>();
  desired.forEach((flow, i) => {
    const c = canon[i]!;
    const cookie = flow.cookie ?? 0n;
    if (!selectorMatches(scope, cookie)) throw new RangeError(`desired flow cookie ${hex(cookie)} is outside the synced cookie scope`);
    const key = flowKey(flow.table ?? 0, flow.priority ?? DEFAULT_PRIORITY, c.match);
    if (want.has(key)) throw new RangeError(`two desired flows share table ${flow.table ?? 0}, priority ${flow.priority ?? DEFAULT_PRIORITY} and match "${c.match}"`);
    want.set(key, { flow, canon: c });
  });
  const plan: FlowPlan = { add: [], modify: [], replace: [], remove: [] };
  const seen = new Set<string>();
  for (const f of installed) {
    const key = flowKey(f.table, f.priority, f.match);
    const w = want.get(key);
    if (!w || seen.has(key)) {
      plan.remove.push(f);
      continue;
    }
    seen.add(key);
    if ((w.flow.cookie ?? 0n) !== f.cookie || (w.flow.idleTimeout ?? 0) !== f.idleTimeout || (w.flow.hardTimeout ?? 0) !== f.hardTimeout) {
      plan.replace.push(w.flow);
    } else if (w.canon.actions !== f.actions) {
      plan.modify.push(w.flow);
    }
  }
  for (const [key, w] of want) if (!seen.has(key)) plan.add.push(w.flow);
  return plan;
}

export interface GroupPlan {
  add: Group[];
  modify: Group[];
  remove: number[];
}

/** `canon` holds the canonical description of each desired group that is also installed. */
export function planGroups(desired: readonly Group[], canon: ReadonlyMap<number, string>, installed: readonly InstalledGroup[]): GroupPlan {
  const want = new Map<number, Group>();
  for (const g of desired) {
    if (want.has(g.id)) throw new RangeError(`two desired groups have id ${g.id}`);
    want.set(g.id, g);
  }
  const have = new Map(installed.map((g) => [g.id, g]));
  const plan: GroupPlan = { add: [], modify: [], remove: [] };
  for (const [id, g] of want) {
    const h = have.get(id);
    if (!h) plan.add.push(g);
    else if (canon.get(id) !== h.text) plan.modify.push(g);
  }
  for (const id of have.keys()) if (!want.has(id)) plan.remove.push(id);
  return plan;
}

/**
 * Orders a plan into one bundle: groups must exist before flows point at them, and flows must be
 * gone before their groups are deleted (deleting a group also deletes flows that use it).
 */
export function planChanges(flows: FlowPlan, groups: GroupPlan): Change[] {
  return [
    ...groups.add.map(addGroup),
    ...groups.modify.map(modifyGroup),
    ...flows.remove.map(
      (f): Change => ({
        kind: 'flow',
        op: 'delete_strict',
        table: f.table,
        priority: f.priority,
        line: [`table=${f.table}`, `priority=${f.priority}`, `cookie=${hex(f.cookie)}/-1`, f.match].filter(Boolean).join(','),
      }),
    ),
    ...flows.add.map(addFlow),
    ...flows.replace.map(addFlow),
    ...flows.modify.map(modifyFlow),
    ...groups.remove.map(deleteGroup),
  ];
}

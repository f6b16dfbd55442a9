import { renderActions } from './actions.js';
import { hex, selectorMatches, type CookieSelector } from './cookie.js';
import type { CanonicalFlow, InstalledFlow, InstalledGroup } from './dump.js';
import { DEFAULT_PRIORITY, addFlow, addGroup, deleteFlow, deleteFlows, deleteGroup, modifyFlow, modifyGroup, renderFlowKey, type Change, type Flow } from './flow.js';
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
  /** Cookies none of whose installed flows stay: their flows of `remove` go by one non-strict delete each (see wholeCookies). */
  removeCookies: bigint[];
}

/**
 * The cookies of `removed` that no other installed flow carries. Deleting by cookie is one message where
 * deleting each flow strictly is one per flow; OVS takes about 0.1 ms for each strict delete in a bundle, a
 * second for a rule with ten thousand peers, and a few milliseconds for the delete by cookie.
 */
export function wholeCookies(installed: Iterable<{ cookie?: bigint }>, removed: readonly { cookie?: bigint }[]): Set<bigint> {
  const gone = new Map<bigint, number>();
  for (const f of removed) gone.set(f.cookie ?? 0n, (gone.get(f.cookie ?? 0n) ?? 0) + 1);
  const all = new Map<bigint, number>();
  for (const f of installed) {
    const c = f.cookie ?? 0n;
    if (gone.has(c)) all.set(c, (all.get(c) ?? 0) + 1);
  }
  // A single flow is as cheap to delete strictly, and says which flow went.
  return new Set([...gone].filter(([c, n]) => n > 1 && all.get(c) === n).map(([c]) => c));
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
  const plan: FlowPlan = { add: [], modify: [], replace: [], remove: [], removeCookies: [] };
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
  plan.removeCookies = [...wholeCookies(installed, plan.remove)];
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
  const whole = new Set(flows.removeCookies);
  return [
    ...groups.add.map(addGroup),
    ...groups.modify.map(modifyGroup),
    ...flows.removeCookies.map((value) => deleteFlows({ cookie: { value, mask: ALL_ONES } })),
    ...flows.remove.filter((f) => !whole.has(f.cookie)).map(
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

/**
 * Incremental planning. After a sync has made a scope exactly its desired flows, the next sync compares
 * the new desired state with that one in Seine's own rendering: no dump and no canonicalisation, just the
 * difference. Whatever could have changed the scope behind the writer's back forgets it (a lost OpenFlow
 * connection, a direct change with an overlapping cookie, a failed bundle), and so does age, so a full
 * sync against the switch still runs now and then.
 */
export interface RenderedFlow {
  flow: Flow;
  /** table, priority and match as rendered. */
  key: string;
  /** cookie, timeouts and actions as rendered. */
  sig: string;
}

export interface ScopeState {
  flows: Map<string, RenderedFlow>;
  /** Group id -> rendered description; undefined when the scope owns no groups. */
  groups?: Map<number, { group: Group; text: string }>;
  at: number;
}

/**
 * Rendered flows by object: a caller that hands the same (unchanged, never mutated) Flow objects to each sync
 * pays for rendering only the new ones.
 */
const renderedFlows = new WeakMap<Flow, RenderedFlow>();

export function renderDesired(scope: CookieSelector, flows: readonly Flow[]): Map<string, RenderedFlow> {
  const out = new Map<string, RenderedFlow>();
  for (const flow of flows) {
    const cookie = flow.cookie ?? 0n;
    if (!selectorMatches(scope, cookie)) throw new RangeError(`desired flow cookie ${hex(cookie)} is outside the synced cookie scope`);
    let r = renderedFlows.get(flow);
    if (!r) {
      const key = renderFlowKey(flow);
      r = { flow, key, sig: `${hex(cookie)}/${flow.idleTimeout ?? 0}/${flow.hardTimeout ?? 0}/${renderActions(flow.actions)}` };
      renderedFlows.set(flow, r);
    }
    if (out.has(r.key)) throw new RangeError(`two desired flows share table ${flow.table ?? 0}, priority ${flow.priority ?? DEFAULT_PRIORITY} and match of "${r.key}"`);
    out.set(r.key, r);
  }
  return out;
}

export interface IncrementalPlan {
  flows: { add: number; modified: number; deleted: number };
  groups: { add: number; modified: number; deleted: number };
  changes: Change[];
}

/** The changes that turn the installed state of a scope into the desired one (same order as planChanges). */
export function planIncremental(installed: ScopeState, flows: Map<string, RenderedFlow>, groups: Map<number, { group: Group; text: string }> | undefined): IncrementalPlan {
  const add: Flow[] = [];
  const replace: Flow[] = [];
  const modify: Flow[] = [];
  const remove: Flow[] = [];
  for (const [key, want] of flows) {
    const have = installed.flows.get(key);
    if (!have) add.push(want.flow);
    else if (have.sig !== want.sig) {
      const f = have.flow;
      const w = want.flow;
      if ((f.cookie ?? 0n) !== (w.cookie ?? 0n) || (f.idleTimeout ?? 0) !== (w.idleTimeout ?? 0) || (f.hardTimeout ?? 0) !== (w.hardTimeout ?? 0)) replace.push(w);
      else modify.push(w);
    }
  }
  for (const [key, have] of installed.flows) if (!flows.has(key)) remove.push(have.flow);
  const whole = wholeCookies(
    [...installed.flows.values()].map((f) => f.flow),
    remove,
  );
  const gAdd: Group[] = [];
  const gModify: Group[] = [];
  const gRemove: number[] = [];
  for (const [id, want] of groups ?? []) {
    const have = installed.groups?.get(id);
    if (!have) gAdd.push(want.group);
    else if (have.text !== want.text) gModify.push(want.group);
  }
  for (const id of installed.groups?.keys() ?? []) if (!groups?.has(id)) gRemove.push(id);
  const changes: Change[] = [
    ...gAdd.map(addGroup),
    ...gModify.map(modifyGroup),
    ...[...whole].map((value) => deleteFlows({ cookie: { value, mask: ALL_ONES } })),
    ...remove.filter((f) => !whole.has(f.cookie ?? 0n)).map((f) => deleteFlow({ table: f.table, priority: f.priority, match: f.match, cookie: f.cookie ?? 0n })),
    ...add.map(addFlow),
    ...replace.map(addFlow),
    ...modify.map(modifyFlow),
    ...gRemove.map(deleteGroup),
  ];
  return { flows: { add: add.length, modified: replace.length + modify.length, deleted: remove.length }, groups: { add: gAdd.length, modified: gModify.length, deleted: gRemove.length }, changes };
}

const ALL_ONES = (1n << 64n) - 1n;

function overlaps(a: CookieSelector, b: CookieSelector): boolean {
  return ((a.value ^ b.value) & a.mask & b.mask) === 0n;
}

/** The installed state of each sync scope of one writer, by cookie selector. */
export class InstalledCache {
  private readonly scopes = new Map<string, { selector: CookieSelector; state: ScopeState }>();

  constructor(
    /** A scope's state is trusted this long after the full sync that verified it against the switch (0: never). */
    private readonly maxAgeMs = 5 * 60_000,
  ) {}

  private static id(s: CookieSelector): string {
    return `${hex(s.value)}/${hex(s.mask)}`;
  }

  /** The scope's state, if trusted and kept with the same group ownership as asked now. */
  get(selector: CookieSelector, withGroups: boolean): ScopeState | undefined {
    if (this.maxAgeMs <= 0) return undefined;
    const e = this.scopes.get(InstalledCache.id(selector));
    if (!e || Date.now() - e.state.at > this.maxAgeMs || !!e.state.groups !== withGroups) return undefined;
    return e.state;
  }

  /** Records a scope's state; `verified` restarts its age (a full sync read the switch). */
  set(selector: CookieSelector, flows: Map<string, RenderedFlow>, groups: ScopeState['groups'], verified: boolean): void {
    const id = InstalledCache.id(selector);
    const at = verified ? Date.now() : (this.scopes.get(id)?.state.at ?? 0);
    this.scopes.set(id, { selector, state: { flows, groups, at } });
  }

  forget(selector: CookieSelector): void {
    this.scopes.delete(InstalledCache.id(selector));
  }

  /** Forgets every other scope that shares flows with this one (a pod's scope inside the pipeline's, say), or groups. */
  forgetOthersOverlapping(selector: CookieSelector, groupsChanged: boolean): void {
    const own = InstalledCache.id(selector);
    for (const [id, e] of this.scopes) if (id !== own && (overlaps(e.selector, selector) || (groupsChanged && e.state.groups))) this.scopes.delete(id);
  }

  /** Forgets every scope a direct change could have touched. */
  forgetChanges(changes: readonly Change[]): void {
    for (const c of changes) {
      if (c.kind === 'group') {
        for (const [id, e] of this.scopes) if (e.state.groups) this.scopes.delete(id);
        continue;
      }
      let sel: CookieSelector | undefined;
      if ('line' in c) sel = undefined;
      else if (c.op === 'add' || c.op === 'modify_strict') sel = { value: c.flow.cookie ?? 0n, mask: (1n << 64n) - 1n };
      else if (c.op === 'delete_strict') sel = typeof c.flow.cookie === 'bigint' ? { value: c.flow.cookie, mask: (1n << 64n) - 1n } : c.flow.cookie;
      else sel = c.filter.cookie;
      // Without a cookie a change may touch any scope. (A strict add is taken at its cookie: owners keep
      // their flows apart by table and priority, so one never replaces another's.)
      if (!sel) {
        this.clear();
        return;
      }
      for (const [id, e] of this.scopes) if (overlaps(e.selector, sel)) this.scopes.delete(id);
    }
  }

  clear(): void {
    this.scopes.clear();
  }
}

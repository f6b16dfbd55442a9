import { renderActions, type Action } from './actions.js';
import { exactSelector, hex, renderSelector, type CookieSelector } from './cookie.js';
import { checkUint, renderMatch, type Match } from './match.js';
import { renderGroup, type Group } from './group.js';

export const DEFAULT_PRIORITY = 32768;

export interface Flow {
  /** Default 0. */
  table?: number;
  /** Default 32768, as in OpenFlow. */
  priority?: number;
  /** Default 0. */
  cookie?: bigint;
  match?: Match;
  /** Empty drops. */
  actions: Action[];
  /** Seconds; 0 or absent means none. */
  idleTimeout?: number;
  hardTimeout?: number;
}

/**
 * What identifies one flow for a strict delete: table, priority and match. A cookie, when given
 * (exact value or selector), must match too; a whole Flow can be passed (its actions are ignored).
 */
export interface FlowKey {
  table?: number;
  priority?: number;
  match?: Match;
  cookie?: bigint | CookieSelector;
}

/** What a non-strict delete or modify selects: every flow whose match includes `match`. */
export interface FlowFilter {
  table?: number;
  cookie?: CookieSelector;
  match?: Match;
}

/** One change to a bridge's flow table or group table. */
export type Change =
  | { kind: 'flow'; op: 'add'; flow: Flow }
  /** Replaces the actions of the flow with the same table, priority and match; counters stay. */
  | { kind: 'flow'; op: 'modify_strict'; flow: Flow }
  /** Deletes the flow with the same table, priority and match (and cookie, when given). */
  | { kind: 'flow'; op: 'delete_strict'; flow: FlowKey }
  /**
   * Sets new actions on every flow selected by the filter. Like a non-strict delete, it must not
   * follow flow adds in one bundle: OVS 3.1 misses flows added earlier in the same bundle.
   */
  | { kind: 'flow'; op: 'modify'; filter: FlowFilter; actions: Action[] }
  /** Deletes every flow selected by the filter (see modify for its place in a bundle). */
  | { kind: 'flow'; op: 'delete'; filter: FlowFilter }
  /**
   * A pre-rendered strict flow op (`table=..,priority=..,MATCH[,actions=..]`), e.g. with a canonical
   * match read back from the switch; table and priority repeat what the line says.
   */
  | { kind: 'flow'; op: 'add' | 'modify_strict' | 'delete_strict'; line: string; table: number; priority: number }
  | { kind: 'group'; op: 'add' | 'modify' | 'add_or_mod'; group: Group }
  | { kind: 'group'; op: 'delete'; id: number };

export const addFlow = (flow: Flow): Change => ({ kind: 'flow', op: 'add', flow });
export const modifyFlow = (flow: Flow): Change => ({ kind: 'flow', op: 'modify_strict', flow });
export const deleteFlow = (flow: FlowKey): Change => ({
  kind: 'flow',
  op: 'delete_strict',
  flow,
});
export const modifyFlows = (filter: FlowFilter, actions: Action[]): Change => ({ kind: 'flow', op: 'modify', filter, actions });
export const deleteFlows = (filter: FlowFilter): Change => ({ kind: 'flow', op: 'delete', filter });
export const addGroup = (group: Group): Change => ({ kind: 'group', op: 'add', group });
export const modifyGroup = (group: Group): Change => ({ kind: 'group', op: 'modify', group });
/** Adds the group, or replaces it when it exists. */
export const setGroup = (group: Group): Change => ({ kind: 'group', op: 'add_or_mod', group });
export const deleteGroup = (id: number): Change => ({ kind: 'group', op: 'delete', id });

/** One line of an `ovs-ofctl bundle` file with what is needed to tie an error back to it. */
export interface BundleLine {
  text: string;
  kind: 'flow' | 'group';
  op: string;
  table?: number;
  priority?: number;
  groupId?: number;
}

/** Tables 0..254; 255 means "all tables" in OpenFlow. */
function tableOf(t: number | undefined): number {
  const n = Number(checkUint('table', t ?? 0, 8));
  if (n === 255) throw new RangeError('table 255 is not a flow table');
  return n;
}

function priorityOf(p: number | undefined): number {
  return Number(checkUint('priority', p ?? DEFAULT_PRIORITY, 16));
}

function join(parts: string[]): string {
  return parts.filter((p) => p !== '').join(',');
}

/** `table=..,priority=..,MATCH`: what identifies a flow for strict operations. */
export function renderFlowKey(flow: { table?: number; priority?: number; match?: Match }): string {
  const key = `table=${tableOf(flow.table)},priority=${priorityOf(flow.priority)}`;
  const match = renderMatch(flow.match);
  return match ? `${key},${match}` : key;
}

/** A full flow in add-flow syntax: `table=..,priority=..,cookie=..,[timeouts,]MATCH,actions=..`. */
export function renderFlow(flow: Flow): string {
  // Checked in this order so that a flow with several bad values is always refused for the same one.
  const idle = flow.idleTimeout ? `,idle_timeout=${checkUint('idle_timeout', flow.idleTimeout, 16)}` : '';
  const hard = flow.hardTimeout ? `,hard_timeout=${checkUint('hard_timeout', flow.hardTimeout, 16)}` : '';
  const head = `table=${tableOf(flow.table)},priority=${priorityOf(flow.priority)},cookie=${hex(checkUint('cookie', flow.cookie ?? 0n, 64))}${idle}${hard}`;
  const match = renderMatch(flow.match);
  return `${match ? `${head},${match}` : head},actions=${renderActions(flow.actions)}`;
}

function renderFilter(f: FlowFilter): string {
  const parts = [
    f.table === undefined ? '' : `table=${tableOf(f.table)}`,
    f.cookie ? `cookie=${renderSelector(f.cookie)}` : '',
    renderMatch(f.match),
  ];
  if (parts.every((p) => p === '')) throw new RangeError('a flow filter needs a table, a cookie or a match (refusing to select every flow)');
  return join(parts);
}

/** Renders one change as a line of an `ovs-ofctl bundle` file. */
export function renderChange(c: Change): BundleLine {
  if (c.kind === 'group') {
    if (c.op === 'delete') return { kind: 'group', op: 'delete', groupId: c.id, text: `group delete group_id=${checkUint('group_id', c.id, 32)}` };
    return { kind: 'group', op: c.op, groupId: c.group.id, text: `group ${c.op} ${renderGroup(c.group)}` };
  }
  if ('line' in c) {
    if (/[#\p{Cc}]/u.test(c.line) || !c.line.trim()) throw new RangeError(`pre-rendered flow line is empty, spans lines or holds a '#' comment: ${JSON.stringify(c.line)}`);
    return { kind: 'flow', op: c.op, table: c.table, priority: c.priority, text: `flow ${c.op} ${c.line}` };
  }
  switch (c.op) {
    case 'add':
    case 'modify_strict':
      return { kind: 'flow', op: c.op, table: tableOf(c.flow.table), priority: priorityOf(c.flow.priority), text: `flow ${c.op} ${renderFlow(c.flow)}` };
    case 'delete_strict': {
      const ck = c.flow.cookie;
      const cookie = ck === undefined ? '' : `cookie=${renderSelector(typeof ck === 'bigint' ? exactSelector(ck) : ck)}`;
      const key = join([`table=${tableOf(c.flow.table)}`, `priority=${priorityOf(c.flow.priority)}`, cookie, renderMatch(c.flow.match)]);
      return { kind: 'flow', op: c.op, table: tableOf(c.flow.table), priority: priorityOf(c.flow.priority), text: `flow delete_strict ${key}` };
    }
    case 'modify':
      return { kind: 'flow', op: c.op, table: c.filter.table, text: `flow modify ${renderFilter(c.filter)},actions=${renderActions(c.actions)}` };
    case 'delete':
      return { kind: 'flow', op: c.op, table: c.filter.table, text: `flow delete ${renderFilter(c.filter)}` };
  }
}

/** Non-strict operations select by overlap; see FlowWriter for why they start a fresh bundle. */
export function isNonStrict(c: Change): boolean {
  return c.kind === 'flow' && (c.op === 'modify' || c.op === 'delete');
}

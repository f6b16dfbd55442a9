// Hot-plug: what changes when a running pod's networks annotation is edited.
import { attachmentKey, type NetworkSelection } from './networks.js';

export interface SelectionDiff {
  /** New attachments, in annotation order (the order to attach them in). */
  add: NetworkSelection[];
  /** Attachments gone from the annotation, last first (the order to detach them in). */
  remove: NetworkSelection[];
  /** Same attachment, same request. */
  unchanged: NetworkSelection[];
  /**
   * Same attachment (NAD and interface), different request (ips, mac, cni-args, ...): an attached
   * interface cannot be changed in place; the caller decides (re-attach, or report).
   */
  changed: Array<{ from: NetworkSelection; to: NetworkSelection }>;
}

/** The request part of a selection, in a canonical form to compare (index and key excluded). */
function requestOf(s: NetworkSelection): string {
  const { index: _i, namespace: _ns, name: _n, interface: _if, ...rest } = s;
  return canonical(rest);
}

function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v && typeof v === 'object') {
    return `{${Object.keys(v)
      .filter((k) => (v as Record<string, unknown>)[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v);
}

/**
 * Compares two parsed annotations. An attachment is identified by namespace/name plus interface, so
 * moving a network to another interface is a removal and an addition, and so is an auto-named
 * interface whose position changed (net2 becoming net1): workloads that hot-plug should name their
 * interfaces. Apply removals before additions: an added attachment may reuse a freed interface name.
 */
export function diffSelections(oldSel: readonly NetworkSelection[], newSel: readonly NetworkSelection[]): SelectionDiff {
  const before = new Map(oldSel.map((s) => [attachmentKey(s), s]));
  const after = new Set(newSel.map(attachmentKey));
  const diff: SelectionDiff = { add: [], remove: [], unchanged: [], changed: [] };
  for (const s of newSel) {
    const prev = before.get(attachmentKey(s));
    if (!prev) diff.add.push(s);
    else if (requestOf(prev) === requestOf(s)) diff.unchanged.push(s);
    else diff.changed.push({ from: prev, to: s });
  }
  diff.remove = oldSel.filter((s) => !after.has(attachmentKey(s))).reverse();
  return diff;
}

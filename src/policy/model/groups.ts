// Pod groups: a canonical key per selector combination (so equal selectors written differently share a group),
// and the membership test the controller evaluates over pods and namespaces.
import type { V1LabelSelector, V1LabelSelectorRequirement } from '@kubernetes/client-node';
import { createHash } from 'node:crypto';
import { selectorMatches } from '../../k8s/selector.js';
import type { PodGroupSpec } from './types.js';

/** The selector in a canonical form; undefined for one that selects everything. */
export function canonicalSelector(s: V1LabelSelector | undefined): V1LabelSelector | undefined {
  if (!s) return undefined;
  const labels = Object.entries(s.matchLabels ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const exprs: V1LabelSelectorRequirement[] = (s.matchExpressions ?? [])
    .map((e) => ({ key: e.key, operator: e.operator, ...(e.values?.length ? { values: [...new Set(e.values)].sort() } : {}) }))
    .sort((a, b) => {
      const ka = JSON.stringify(a);
      const kb = JSON.stringify(b);
      return ka < kb ? -1 : ka > kb ? 1 : 0;
    });
  if (!labels.length && !exprs.length) return undefined;
  return { ...(labels.length ? { matchLabels: Object.fromEntries(labels) } : {}), ...(exprs.length ? { matchExpressions: exprs } : {}) };
}

/** The group in canonical form: selectors that select everything are left out. */
export function canonicalGroup(g: PodGroupSpec): PodGroupSpec {
  const podSelector = canonicalSelector(g.podSelector);
  const network = g.network ? { network: g.network } : {};
  if (g.namespace !== undefined) return { ...network, namespace: g.namespace, ...(podSelector ? { podSelector } : {}) };
  const namespaceSelector = canonicalSelector(g.namespaceSelector);
  return { ...network, ...(namespaceSelector ? { namespaceSelector } : {}), ...(podSelector ? { podSelector } : {}) };
}

/**
 * A stable key naming the group: equal for groups that select the same pods by the same selectors, the same on
 * every controller run, and short (it is sent to agents with every rule that names the group).
 */
export function groupKey(g: PodGroupSpec): string {
  const c = canonicalGroup(g);
  // The pod network's groups keep the key they always had (agents keep shares across upgrades).
  const text = JSON.stringify([c.namespace ?? null, c.namespaceSelector ?? null, c.podSelector ?? null, ...(c.network ? [c.network] : [])]);
  return createHash('sha256').update(text).digest('base64url').slice(0, 16);
}

/**
 * Whether a pod (its namespace, labels, and its namespace's labels) is a member of the group. A pod's entry on a
 * secondary network (`network`) is only ever a member of that network's groups, and a pod's own entry only of the
 * pod network's.
 */
export function groupMatches(g: PodGroupSpec, pod: { namespace: string; labels?: Record<string, string>; network?: string }, namespaceLabels: Record<string, string> | undefined): boolean {
  if ((g.network ?? '') !== (pod.network ?? '')) return false;
  if (g.namespace !== undefined) {
    if (pod.namespace !== g.namespace) return false;
  } else if (g.namespaceSelector && !selectorMatches(g.namespaceSelector, namespaceLabels)) {
    return false;
  }
  return selectorMatches(g.podSelector, pod.labels);
}

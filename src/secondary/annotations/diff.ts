// Hot-plug: what changes when a running pod's networks annotation is edited.
import { createHash } from 'node:crypto';
import { attachmentKey, type NetworkSelection } from './networks.js';

/** What is attached: the NAD, the interface and (when known) the fingerprint of the request that made it. */
export interface AttachedSelection {
  namespace: string;
  name: string;
  interface: string;
  request?: string;
}

export interface AttachmentDiff<A extends AttachedSelection> {
  /** New attachments, in annotation order (the order to attach them in). */
  add: NetworkSelection[];
  /** Attachments gone from the annotation, last first (the order to detach them in). */
  remove: A[];
  /** Same attachment, same request (or a request not recorded). */
  unchanged: NetworkSelection[];
  /**
   * Same attachment (NAD and interface), different request (ips, mac, cni-args, ...): an attached
   * interface cannot be changed in place, so the caller re-attaches it.
   */
  changed: Array<{ from: A; to: NetworkSelection }>;
}

/**
 * A short fingerprint of what an element asks for beyond NAD and interface (ips, mac, default-route,
 * cni-args, ...), independent of key order: kept with an attachment to notice a changed request. Made of
 * [A-Za-z0-9_-] so it can travel in CNI_ARGS and OVSDB external_ids.
 */
export function requestFingerprint(s: NetworkSelection): string {
  const { index: _i, namespace: _ns, name: _n, interface: _if, autoNamed: _a, ...rest } = s;
  return createHash('sha256').update(canonical(rest)).digest('base64url').slice(0, 22);
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

const AUTO_NAME = /^net(\d+)$/;

/**
 * Hot-plug keeps attached interfaces where they are. Positional names (net<N>) would shift when an
 * earlier element is removed and so tear down a live interface that did not change; instead an
 * auto-named element takes over the interface an attachment of the same network already has (the one
 * at its own position first, then the others in order), and a new auto-named element gets its
 * positional name if free, else the lowest free net<N>. Explicit names are never changed.
 */
export function keepInterfaceNames(
  wanted: readonly NetworkSelection[],
  attached: ReadonlyArray<Pick<NetworkSelection, 'namespace' | 'name' | 'interface'>>,
): NetworkSelection[] {
  const explicit = new Set(wanted.filter((s) => !s.autoNamed).map((s) => s.interface));
  const claimed = new Set(explicit);
  const available = attached.filter((a) => AUTO_NAME.test(a.interface) && !explicit.has(a.interface));
  const out = wanted.map((s) => ({ ...s }));
  const auto = out.filter((s) => s.autoNamed);
  const take = (s: NetworkSelection, pick: (a: (typeof available)[number]) => boolean): boolean => {
    const a = available.find((x) => !claimed.has(x.interface) && x.namespace === s.namespace && x.name === s.name && pick(x));
    if (!a) return false;
    s.interface = a.interface;
    claimed.add(a.interface);
    return true;
  };
  const settled = new Set<NetworkSelection>();
  // Same network at the same name first, so an unchanged annotation maps onto itself.
  for (const s of auto) if (take(s, (a) => a.interface === s.interface)) settled.add(s);
  for (const s of auto) if (!settled.has(s) && take(s, () => true)) settled.add(s);
  for (const s of auto) {
    if (settled.has(s)) continue;
    let name = s.interface;
    for (let n = 1; claimed.has(name); n++) name = `net${n}`;
    s.interface = name;
    claimed.add(name);
  }
  return out;
}

/**
 * Compares what is attached with what the annotation asks for. An attachment is identified by NAD plus
 * interface, so moving a network to another (explicit) interface is a removal and an addition;
 * auto-named interfaces keep their names (see keepInterfaceNames). Apply removals (and the old side of
 * changes) before additions: an added attachment may reuse a freed interface name.
 */
export function diffAttachments<A extends AttachedSelection>(attached: readonly A[], wantedRaw: readonly NetworkSelection[]): AttachmentDiff<A> {
  const wanted = keepInterfaceNames(wantedRaw, attached);
  const before = new Map(attached.map((a) => [attachmentKey(a), a]));
  const after = new Set(wanted.map(attachmentKey));
  const diff: AttachmentDiff<A> = { add: [], remove: [], unchanged: [], changed: [] };
  for (const s of wanted) {
    const prev = before.get(attachmentKey(s));
    if (!prev) diff.add.push(s);
    else if (prev.request === undefined || prev.request === requestFingerprint(s)) diff.unchanged.push(s);
    else diff.changed.push({ from: prev, to: s });
  }
  diff.remove = attached.filter((a) => !after.has(attachmentKey(a))).reverse();
  return diff;
}

// The order of a trace's node results: the path the packet took, whatever order the nodes wrote them in (a receiver
// may report before the sender's agent has). The path starts at the sender; each result is followed by the next
// result of the node it sent the packet to (into a tunnel, to a chain replica's node, through the node's routes),
// or, when it stayed (a CNF on the same node), by the same node's next result. Results that fit nowhere follow in
// the order they were made.
import type { NodeResult } from '../api/types.js';

const byTime = (a: NodeResult, b: NodeResult): number => String(a.timestamp ?? '').localeCompare(String(b.timestamp ?? ''));

/** The node a result handed the packet to, when it left the node. */
function handedTo(r: NodeResult): string | undefined {
  const last = r.observations.at(-1);
  return last && (last.action === 'Forwarded' || last.action === 'Steered') && last.peerNode && last.peerNode !== r.node ? last.peerNode : undefined;
}

export function orderResults(results: readonly NodeResult[]): NodeResult[] {
  const sorted = [...results].sort(byTime);
  const queues = new Map<string, NodeResult[]>();
  for (const r of sorted) queues.set(r.node, [...(queues.get(r.node) ?? []), r]);
  const out: NodeResult[] = [];
  const sender = sorted.find((r) => r.role === 'Sender');
  if (sender) {
    // The sender's node starts with the sender's own result.
    const q = queues.get(sender.node)!;
    q.splice(q.indexOf(sender), 1);
    q.unshift(sender);
  }
  let node = sender?.node;
  while (node !== undefined) {
    const r = queues.get(node)?.shift();
    if (!r) break;
    out.push(r);
    node = handedTo(r) ?? node;
  }
  const placed = new Set(out);
  return [...out, ...sorted.filter((r) => !placed.has(r))];
}

/**
 * Whether every node the packet was handed to has reported it: each hand-off (into a tunnel, to a chain replica's
 * node, through the node's routes) is matched by a result of that node that received it from the giver (or from a
 * node it could not name). Until then a trace whose end is known still waits for the nodes in between.
 */
export function handoffsMatched(results: readonly NodeResult[]): boolean {
  const given = new Map<string, number>();
  for (const r of results) {
    for (const o of r.observations) {
      if ((o.action === 'Forwarded' || o.action === 'Steered') && o.peerNode && o.peerNode !== r.node) {
        const k = `${r.node}>${o.peerNode}`;
        given.set(k, (given.get(k) ?? 0) + 1);
      }
    }
  }
  const anyFrom = new Map<string, number>();
  for (const r of results) {
    for (const o of r.observations) {
      if (o.component !== 'Forwarding' || o.action !== 'Received') continue;
      if (!o.peerNode) {
        anyFrom.set(r.node, (anyFrom.get(r.node) ?? 0) + 1);
        continue;
      }
      const k = `${o.peerNode}>${r.node}`;
      if ((given.get(k) ?? 0) > 0) given.set(k, given.get(k)! - 1);
    }
  }
  for (const [k, n] of given) {
    const to = k.slice(k.indexOf('>') + 1);
    const spare = Math.min(n, anyFrom.get(to) ?? 0);
    anyFrom.set(to, (anyFrom.get(to) ?? 0) - spare);
    if (n - spare > 0) return false;
  }
  return true;
}

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
 * Whether the path has no gap: every hand-off (into a tunnel, to a chain replica's node, through the node's routes) is
 * matched by a result of the node it was handed to that received it from the giver, and every such reception by the
 * giver's result. Until then a trace whose end is known still waits for the nodes in between, whichever reports
 * last. A hand-off or a reception whose other node could not be named matches any.
 */
export function handoffsMatched(results: readonly NodeResult[]): boolean {
  const given = new Map<string, number>();
  const givenToAny = new Map<string, number>();
  const received = new Map<string, number>();
  const receivedFromAny = new Map<string, number>();
  const add = (m: Map<string, number>, k: string): void => void m.set(k, (m.get(k) ?? 0) + 1);
  for (const r of results) {
    for (const o of r.observations) {
      if (o.action === 'Forwarded' && o.outputPort === 'tunnel' && !o.peerNode) add(givenToAny, r.node);
      else if ((o.action === 'Forwarded' || o.action === 'Steered') && o.peerNode && o.peerNode !== r.node) add(given, `${r.node}>${o.peerNode}`);
      else if (o.component === 'Forwarding' && o.action === 'Received') {
        if (o.peerNode) add(received, `${o.peerNode}>${r.node}`);
        else add(receivedFromAny, r.node);
      }
    }
  }
  for (const k of new Set([...given.keys(), ...received.keys()])) {
    const [from, to] = k.split('>') as [string, string];
    let g = given.get(k) ?? 0;
    let rcv = received.get(k) ?? 0;
    const both = Math.min(g, rcv);
    g -= both;
    rcv -= both;
    // A hand-off still unmatched takes a reception from an unnamed node; a reception, a hand-off to an unnamed one.
    const spareReception = Math.min(g, receivedFromAny.get(to) ?? 0);
    receivedFromAny.set(to, (receivedFromAny.get(to) ?? 0) - spareReception);
    const spareHandoff = Math.min(rcv, givenToAny.get(from) ?? 0);
    givenToAny.set(from, (givenToAny.get(from) ?? 0) - spareHandoff);
    if (g - spareReception > 0 || rcv - spareHandoff > 0) return false;
  }
  return true;
}

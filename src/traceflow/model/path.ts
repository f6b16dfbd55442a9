// The order of a trace's node results: the path the packet took, whatever order the nodes wrote them in (a receiver
// may report before the sender's agent has). The sender first, then each node that received it from the one before;
// results that link to nothing follow in the order they were made.
import type { NodeResult } from '../api/types.js';

const receivedFrom = (r: NodeResult): string | undefined => r.observations.find((o) => o.component === 'Forwarding' && o.action === 'Received')?.peerNode;

export function orderResults(results: readonly NodeResult[]): NodeResult[] {
  const left = [...results].sort((a, b) => String(a.timestamp ?? '').localeCompare(String(b.timestamp ?? '')));
  const out: NodeResult[] = [];
  const take = (i: number): void => void out.push(...left.splice(i, 1));
  const sender = left.findIndex((r) => r.role === 'Sender');
  if (sender >= 0) take(sender);
  while (left.length) {
    const last = out[out.length - 1];
    const next = last ? left.findIndex((r) => receivedFrom(r) === last.node) : -1;
    take(next >= 0 ? next : 0);
  }
  return out;
}

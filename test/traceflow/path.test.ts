// The path order of a trace's node results (pure).
import type { NodeResult } from '../../src/traceflow/api/types.js';
import { orderResults } from '../../src/traceflow/model/path.js';

const result = (node: string, role: NodeResult['role'], timestamp: string, from?: string): NodeResult => ({
  node,
  role,
  timestamp,
  observations: from ? [{ component: 'Forwarding', action: 'Received', peerNode: from }] : [{ component: 'SpoofGuard', action: 'Forwarded' }],
});

describe('the order of a trace\'s node results', () => {
  it('puts the sender first and then each node that received the packet from the one before, whatever the order they reported in', () => {
    const receiver = result('n3', 'Receiver', '2026-01-01T00:00:01Z', 'n2');
    const transit = result('n2', 'Transit', '2026-01-01T00:00:02Z', 'n1');
    const sender = result('n1', 'Sender', '2026-01-01T00:00:03Z');
    expect(orderResults([receiver, transit, sender]).map((r) => r.node)).toEqual(['n1', 'n2', 'n3']);
  });

  it('appends results that link to nothing in the order they were made', () => {
    const a = result('a', 'Receiver', '2026-01-01T00:00:05Z', 'elsewhere');
    const b = result('b', 'Transit', '2026-01-01T00:00:04Z', 'nowhere');
    expect(orderResults([a, b]).map((r) => r.node)).toEqual(['b', 'a']);
    expect(orderResults([])).toEqual([]);
  });
});

// The path order of a trace's node results (pure).
import type { NodeResult, Observation } from '../../src/traceflow/api/types.js';
import { handoffsMatched, orderResults } from '../../src/traceflow/model/path.js';

const at = (s: number): string => new Date(Date.UTC(2026, 0, 1, 0, 0, s)).toISOString();
const result = (node: string, role: NodeResult['role'], second: number, last: Observation): NodeResult => ({ node, role, timestamp: at(second), observations: [last] });
const tunnelTo = (peerNode: string): Observation => ({ component: 'Forwarding', action: 'Forwarded', outputPort: 'tunnel', peerNode });
const steer = (peerNode?: string): Observation => ({ component: 'ServiceChain', action: 'Steered', ...(peerNode ? { peerNode } : {}) });
const delivered: Observation = { component: 'Forwarding', action: 'Delivered' };

describe("the order of a trace's node results", () => {
  it('puts the sender first and then the node it handed the packet to, whatever the order they reported in', () => {
    const receiver = result('n2', 'Receiver', 1, delivered);
    const sender = result('n1', 'Sender', 2, tunnelTo('n2'));
    expect(orderResults([receiver, sender]).map((r) => r.node)).toEqual(['n1', 'n2']);
  });

  it('follows a chain: a local replica keeps the path on the node, a remote one moves it to the replica\'s node', () => {
    // n1: sender steers to a local firewall; back from it, steered to a router on n3; n3 sends it to the server on n2.
    const s = result('n1', 'Sender', 1, steer());
    const back = result('n1', 'Transit', 2, steer('n3'));
    const router = result('n3', 'Transit', 4, tunnelTo('n2'));
    const end = result('n2', 'Receiver', 3, delivered);
    expect(orderResults([end, router, back, s]).map((r) => `${r.node}:${r.role}`)).toEqual(['n1:Sender', 'n1:Transit', 'n3:Transit', 'n2:Receiver']);
  });

  it('appends what fits nowhere in the order it was made, and keeps everything', () => {
    const a = result('a', 'Receiver', 5, delivered);
    const b = result('b', 'Transit', 4, tunnelTo('c'));
    expect(orderResults([a, b]).map((r) => r.node)).toEqual(['b', 'a']);
    expect(orderResults([])).toEqual([]);
  });
});

describe('whether every node the packet was handed to has reported', () => {
  const received = (from?: string): Observation => ({ component: 'Forwarding', action: 'Received', ...(from ? { peerNode: from } : {}) });
  const withObs = (node: string, role: NodeResult['role'], ...observations: Observation[]): NodeResult => ({ node, role, observations });

  it('waits for a node in between: the sender handed to n3 (a chain replica), n3 has not reported yet', () => {
    const sender = withObs('n1', 'Sender', steer('n3'));
    const end = withObs('n2', 'Receiver', received('n3'), delivered);
    expect(handoffsMatched([sender, end])).toBe(false);
    expect(handoffsMatched([sender, end, withObs('n3', 'Transit', received('n1'), tunnelTo('n2'))])).toBe(true);
  });

  it('counts each hand-off: two trips to the same node need two receptions there', () => {
    const trips = [withObs('n1', 'Sender', steer('n2')), withObs('n2', 'Transit', received('n1'), steer('n1')), withObs('n1', 'Transit', received('n2'), steer('n2'))];
    expect(handoffsMatched(trips)).toBe(false);
    expect(handoffsMatched([...trips, withObs('n2', 'Receiver', received('n1'), delivered)])).toBe(true);
  });

  it('waits for the giver too: a node received it from n1, whose result handing it over is not written yet', () => {
    const sender = withObs('n1', 'Sender', steer());
    const end = withObs('n2', 'Receiver', received('n1'), delivered);
    expect(handoffsMatched([sender, end])).toBe(false);
    expect(handoffsMatched([sender, withObs('n1', 'Transit', steer('n2')), end])).toBe(true);
  });

  it('takes a reception from a node it could not name for any hand-off to that node', () => {
    expect(handoffsMatched([withObs('n1', 'Sender', tunnelTo('n2')), withObs('n2', 'Receiver', received(), delivered)])).toBe(true);
    expect(handoffsMatched([withObs('n1', 'Sender', delivered)])).toBe(true);
    // And a hand-off into a tunnel to a node it could not name, for a reception from it.
    expect(handoffsMatched([withObs('n1', 'Sender', { component: 'Forwarding', action: 'Forwarded', outputPort: 'tunnel' }), withObs('n2', 'Receiver', received('n1'), delivered)])).toBe(true);
  });
});

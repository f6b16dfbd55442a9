import { nodeChainReportPatch, NODE_CHAIN_REPORT_ANNOTATION, parseNodeChainReport, type NodeChainReport } from '../../src/chaining/model/report.js';

const good: NodeChainReport = {
  v: 1,
  at: '2025-01-01T00:00:00Z',
  replicas: [{ chain: 'c1', hop: 'fw', pod: 'p1', healthy: true, since: '2025-01-01T00:00:00Z', packets: { forward: 5, reverse: 4 }, bytes: { forward: 500, reverse: 400 } }],
  chains: [{ chain: 'c1', packets: { forward: 5, reverse: 4 }, bytes: { forward: 500, reverse: 400 } }],
};

describe('node chain report', () => {
  it('round-trips through the Node merge patch', () => {
    const patch = nodeChainReportPatch(good);
    expect(Object.keys(patch.metadata.annotations)).toEqual([NODE_CHAIN_REPORT_ANNOTATION]);
    expect(parseNodeChainReport(patch.metadata.annotations[NODE_CHAIN_REPORT_ANNOTATION]!)).toEqual({ report: good, problems: [] });
    expect(nodeChainReportPatch(undefined)).toEqual({ metadata: { annotations: { [NODE_CHAIN_REPORT_ANNOTATION]: null } } });
  });

  it.each([
    ['absent', undefined, []],
    ['not JSON', '{"v":1', [expect.stringMatching(/^not JSON/)]],
    ['a list', '[]', ['not a JSON object']],
    ['null', 'null', ['not a JSON object']],
    ['another version', '{"v":2}', ['version 2 is not 1']],
  ])('never throws: %s gives no report', (_what, value, problems) => {
    expect(parseNodeChainReport(value)).toEqual({ problems });
  });

  it('keeps the well-formed entries and names the dropped ones', () => {
    const raw = {
      v: 1,
      at: 'yesterday',
      replicas: [good.replicas[0], { chain: 'c1', hop: 'fw', pod: 'p2', healthy: 'yes' }, { chain: 'c1', hop: 'fw', pod: 'p3', healthy: false, packets: { forward: -1 } }, 7, { chain: 'c1', hop: 'fw', pod: 'p4', healthy: false, reason: 'ProbeLost' }],
      chains: 'many',
    };
    const { report, problems } = parseNodeChainReport(JSON.stringify(raw));
    expect(report!.replicas.map((r) => r.pod)).toEqual(['p1', 'p4']);
    expect(report!.replicas[1]).toEqual({ chain: 'c1', hop: 'fw', pod: 'p4', healthy: false, reason: 'ProbeLost', packets: { forward: 0, reverse: 0 }, bytes: { forward: 0, reverse: 0 } });
    expect(report!.chains).toEqual([]);
    expect(problems).toEqual(['at: not an RFC 3339 time', 'replicas[1]: malformed, dropped', 'replicas[2]: malformed, dropped', 'replicas[3]: malformed, dropped', 'chains: not a list']);
  });
});

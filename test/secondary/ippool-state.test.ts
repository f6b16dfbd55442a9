// The write an IPPool batch makes (pure logic): a JSON Patch that tests exactly what the batch relied on, or the
// whole status for a pool without blocks yet.
import { PoolLayout, type IPPoolStatus, type PoolOwner } from '../../src/secondary/ippool/index.js';
import { PoolState } from '../../src/secondary/ippool/state.js';

const layout = PoolLayout.parse({ ipRanges: [{ start: '10.10.0.10', end: '10.10.0.29' }], subnetInfo: { gateway: '10.10.0.1', prefixLength: 24 } });
const at = new Date('2030-01-01T00:00:00Z');
const owner = (n: number, node = 'a'): PoolOwner => ({ podNamespace: 'ns', podName: `p${n}`, containerID: `c${n}`, interface: 'net1', node });
const entry = (ip: string, n: number, node = 'a') => ({ ip, owner: owner(n, node), allocatedAt: at.toISOString() });
const state = (status?: IPPoolStatus): PoolState => new PoolState('pool', layout, status, () => at);

describe('IPPool batch writes', () => {
  const status: IPPoolStatus = {
    allocations: [entry('10.10.0.10', 1), entry('10.10.0.14', 2, 'b'), entry('10.10.0.11', 3)],
    blocks: [
      { start: '10.10.0.10', end: '10.10.0.13', node: 'a', version: 4 },
      { start: '10.10.0.14', end: '10.10.0.17', node: 'b', version: 1 },
    ],
    poolVersion: 2,
    usage: { total: 20, used: 3 },
  };

  it("allocates in the node's own block: tests and bumps that block's version, appends the entry", () => {
    const s = state(status);
    expect(s.allocateLowest(owner(4)).ip).toBe('10.10.0.12');
    expect(s.needsWholeWrite).toBe(false);
    expect(s.toPatch()).toEqual([
      { op: 'test', path: '/status/blocks/0', value: status.blocks![0] },
      { op: 'replace', path: '/status/blocks/0', value: { ...status.blocks![0], version: 5 } },
      { op: 'add', path: '/status/allocations/-', value: entry('10.10.0.12', 4) },
    ]);
  });

  it('claims a new block when its own are full: tests and bumps the pool version, appends the block', () => {
    const s = state(status);
    s.allocateLowest(owner(4));
    s.allocateLowest(owner(5));
    expect(s.allocateLowest(owner(6)).ip).toBe('10.10.0.18');
    expect(s.toPatch()).toEqual([
      { op: 'test', path: '/status/blocks/0', value: status.blocks![0] },
      { op: 'replace', path: '/status/blocks/0', value: { ...status.blocks![0], version: 5 } },
      { op: 'test', path: '/status/poolVersion', value: 2 },
      { op: 'replace', path: '/status/poolVersion', value: 3 },
      { op: 'add', path: '/status/blocks/-', value: { start: '10.10.0.18', end: '10.10.0.21', node: 'a', version: 0 } },
      { op: 'add', path: '/status/allocations/-', value: entry('10.10.0.12', 4) },
      { op: 'add', path: '/status/allocations/-', value: entry('10.10.0.13', 5) },
      { op: 'add', path: '/status/allocations/-', value: entry('10.10.0.18', 6) },
    ]);
  });

  it('removes entries highest index first, each guarded by a test of the entry; an entry added and removed in one batch is never written', () => {
    const s = state(status);
    s.allocateLowest(owner(7));
    expect(s.removeWhere((a) => ['c1', 'c3', 'c7'].includes(a.owner.containerID)).map((a) => a.ip).sort()).toEqual(['10.10.0.10', '10.10.0.11', '10.10.0.12']);
    expect(s.toPatch()).toEqual([
      { op: 'test', path: '/status/allocations/2', value: status.allocations![2] },
      { op: 'remove', path: '/status/allocations/2' },
      { op: 'test', path: '/status/allocations/0', value: status.allocations![0] },
      { op: 'remove', path: '/status/allocations/0' },
    ]);
  });

  it("reserves a requested address in another node's block under that block's test; outside every block under the pool version's", () => {
    const s = state(status);
    s.reserve('10.10.0.15', owner(8));
    s.reserve('10.10.0.25', owner(9));
    const ops = s.toPatch();
    expect(ops.slice(0, 4)).toEqual([
      { op: 'test', path: '/status/blocks/1', value: status.blocks![1] },
      { op: 'replace', path: '/status/blocks/1', value: { ...status.blocks![1], version: 2 } },
      { op: 'test', path: '/status/poolVersion', value: 2 },
      { op: 'replace', path: '/status/poolVersion', value: 3 },
    ]);
    expect(ops.slice(4).map((o) => (o as { value: { ip: string } }).value.ip)).toEqual(['10.10.0.15', '10.10.0.25']);
  });

  it('writes a pool without blocks whole, once: allocations sorted, its first block, versions and usage', () => {
    const s = state({ allocations: [entry('10.10.0.11', 1)] });
    expect(s.needsWholeWrite).toBe(true);
    s.allocateLowest(owner(2));
    expect(s.toStatus()).toEqual({
      allocations: [entry('10.10.0.10', 2), entry('10.10.0.11', 1)],
      blocks: [{ start: '10.10.0.10', end: '10.10.0.13', node: 'a', version: 0 }],
      poolVersion: 1,
      usage: { total: 20, used: 2 },
    });
  });
});

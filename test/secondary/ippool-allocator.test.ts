import { CniCode } from '../../src/cni/errors.js';
import { loadKubeConfig } from '../../src/k8s/kubeconfig.js';
import { IPPOOL_API_VERSION, IPPoolAllocator, IPPoolError, type IPPool, type IPPoolSpec, type PoolAllocation, type PoolOwner } from '../../src/secondary/ippool/index.js';
import { installCrds, startCluster, type Cluster } from '../crds/helpers.js';

// IPPoolAllocator against the embedded API server with the real CRD: each allocator has its own
// kubeconfig client, as separate agents would.

const owner = (n: number | string, extra: Partial<PoolOwner> = {}): PoolOwner => ({
  podNamespace: 'telco',
  podName: `pod-${n}`,
  podUID: `uid-${n}`,
  containerID: `ctr-${n}`,
  interface: 'net1',
  node: 'node-1',
  ...extra,
});

async function problemOf(p: Promise<unknown>): Promise<IPPoolError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof IPPoolError) return e;
    throw e;
  }
  throw new Error('expected an IPPoolError');
}

describe('IPPoolAllocator', () => {
  let c: Cluster;
  let seq = 0;
  const allocators: IPPoolAllocator[] = [];
  const allocator = (opts: { maxBatch?: number; maxAttempts?: number; now?: () => Date } = {}): IPPoolAllocator => {
    const a = new IPPoolAllocator({ kubeConfig: loadKubeConfig(c.kubeconfig), ...opts });
    allocators.push(a);
    return a;
  };
  const pools = () => c.api.resource(IPPOOL_API_VERSION, 'ippools');
  /** A fresh pool per test (unique name), created in-process. */
  const createPool = (spec: IPPoolSpec, name = `pool-${++seq}`): string => {
    pools().create({ apiVersion: IPPOOL_API_VERSION, kind: 'IPPool', metadata: { name }, spec } as never);
    return name;
  };
  const stored = (name: string): IPPool => pools().get(name) as unknown as IPPool;
  const range = (start: string, end: string, extra: Partial<IPPoolSpec> = {}): IPPoolSpec => ({ ipRanges: [{ start, end }], subnetInfo: { gateway: '10.10.0.1', prefixLength: 24 }, ...extra });

  beforeAll(async () => {
    c = await startCluster('seine-ippool-');
    await installCrds(c);
  });
  afterAll(async () => {
    await c?.close();
  });

  it('hands out the lowest free address and records it, with its owner, in the status', async () => {
    const name = createPool({ ipRanges: [{ cidr: '10.10.0.0/24' }], exclude: ['10.10.0.2'], subnetInfo: { gateway: '10.10.0.1', prefixLength: 24, vlan: 100 } });
    const a = allocator();
    const first = await a.allocate([name], owner(1));
    expect(first).toMatchObject({ pool: name, ip: '10.10.0.3', address: '10.10.0.3/24', gateway: '10.10.0.1', prefixLength: 24, vlan: 100, owner: owner(1), requested: false });
    expect(Date.now() - Date.parse(first.allocatedAt)).toBeLessThan(60_000);
    expect((await a.allocate([name], owner(2))).ip).toBe('10.10.0.4');
    // A retried ADD gets the same address.
    expect((await a.allocate([name], owner(1))).ip).toBe('10.10.0.3');
    const s = stored(name).status!;
    expect(s.allocations!.map((x) => [x.ip, x.owner.podName, x.owner.containerID, x.owner.interface, x.owner.podUID, x.owner.node])).toEqual([
      ['10.10.0.3', 'pod-1', 'ctr-1', 'net1', 'uid-1', 'node-1'],
      ['10.10.0.4', 'pod-2', 'ctr-2', 'net1', 'uid-2', 'node-1'],
    ]);
    // The usage follows in a write of its own.
    await a.settled();
    expect(stored(name).status!.usage).toEqual({ total: 252, used: 2 });
    expect(await a.usage(name)).toEqual({ pool: name, total: 252, used: 2, free: 250 });
    expect((await a.allocations(name)).map((x) => x.ip)).toEqual(['10.10.0.3', '10.10.0.4']);
    // Same container, another interface: another attachment.
    expect((await a.allocate([name], owner(1, { interface: 'net2' }))).ip).toBe('10.10.0.5');
  });

  it('release frees an attachment (idempotently), releaseAllOf a pod or a sandbox; freed addresses are reused lowest first', async () => {
    const name = createPool(range('10.10.0.10', '10.10.0.30'));
    const a = allocator();
    // Owners unique to this test: some calls below search every pool.
    for (let i = 1; i <= 4; i++) await a.allocate([name], owner(`rel-${i}`));
    await a.allocate([name], owner('rel-4', { interface: 'net2' }));
    const r = await a.release({ containerID: 'ctr-rel-2', interface: 'net1' }, [name]);
    expect(r.map((x) => x.ip)).toEqual(['10.10.0.11']);
    expect(await a.release({ containerID: 'ctr-rel-2', interface: 'net1' }, [name])).toEqual([]);
    // Without a pool list, every pool is searched.
    expect((await a.release({ containerID: 'ctr-rel-1', interface: 'net1' })).map((x) => [x.pool, x.ip])).toEqual([[name, '10.10.0.10']]);
    expect((await a.releaseAllOf({ podUID: 'uid-rel-4' })).map((x) => x.ip).sort()).toEqual(['10.10.0.13', '10.10.0.14']);
    expect((await a.releaseAllOf({ containerID: 'ctr-rel-3' }, [name])).map((x) => x.ip)).toEqual(['10.10.0.12']);
    await a.settled();
    expect(stored(name).status!.usage).toEqual({ total: 21, used: 0 });
    expect((await a.allocate([name], owner('rel-9'))).ip).toBe('10.10.0.10');
    await expect(a.releaseAllOf({})).rejects.toThrow(/podUID or a containerID/);
  });

  it('honours a requested address, and says why when it cannot', async () => {
    const name = createPool(range('10.10.0.1', '10.10.0.20', { exclude: ['10.10.0.15'] }));
    const a = allocator();
    const got = await a.allocate([name], owner(1), { ip: '10.10.0.12/24' });
    expect(got).toMatchObject({ ip: '10.10.0.12', address: '10.10.0.12/24', requested: true });
    expect(stored(name).status!.allocations![0]).toMatchObject({ ip: '10.10.0.12', requested: true });
    expect((await a.allocate([name], owner(1), { ip: '10.10.0.12' })).ip).toBe('10.10.0.12');
    // Dynamic allocation goes around it.
    expect((await a.allocate([name], owner(2))).ip).toBe('10.10.0.2');

    const inUse = await problemOf(a.allocate([name], owner(3), { ip: '10.10.0.12' }));
    expect([inUse.problem, inUse.code, inUse.pool, inUse.ip]).toEqual(['in-use', CniCode.TryAgainLater, name, '10.10.0.12']);
    expect(inUse.message).toBe(`requested IP address 10.10.0.12 is not available in IP pool ${name}: held by pod telco/pod-1 (container ctr-1, interface net1, node node-1)`);
    const outside = await problemOf(a.allocate([name], owner(3), { ip: '10.10.0.99' }));
    expect([outside.problem, outside.code]).toEqual(['outside', CniCode.InvalidNetworkConfig]);
    expect(outside.message).toBe(`requested IP address 10.10.0.99 is not in IP pool ${name}: ranges: ${name} (10.10.0.1-10.10.0.20)`);
    expect((await problemOf(a.allocate([name], owner(3), { ip: '10.10.0.15' }))).problem).toBe('excluded');
    const gw = await problemOf(a.allocate([name], owner(3), { ip: '10.10.0.1' }));
    expect([gw.problem, gw.message]).toEqual(['reserved', expect.stringContaining('the gateway, network or broadcast address of 10.10.0.0/24')]);
    expect((await problemOf(a.allocate([name], owner(3), { ip: '10.10.0.13/16' }))).problem).toBe('prefix-mismatch');
    expect((await problemOf(a.allocate([name], owner(3), { ip: '10.10.0.300' }))).problem).toBe('invalid-ip');
    expect((await problemOf(a.allocate([name], owner(2), { ip: '10.10.0.13' }))).problem).toBe('owner-has-other');
    await a.settled();
    expect(stored(name).status!.usage!.used).toBe(2);
  });

  it('tries pools in order, finds a requested address in the pool that has it, and stays idempotent across pools', async () => {
    const small = createPool(range('10.10.0.10', '10.10.0.11'));
    const big = createPool({ ipRanges: [{ cidr: '10.20.0.0/28' }], subnetInfo: { gateway: '10.20.0.1', prefixLength: 24 } });
    const a = allocator();
    const got = await Promise.all([1, 2, 3].map((i) => a.allocate([small, big], owner(`order-${i}`))));
    expect(got.map((x) => `${x.pool} ${x.ip}`).sort()).toEqual([`${small} 10.10.0.10`, `${small} 10.10.0.11`, `${big} 10.20.0.2`].sort());
    const third = got.find((x) => x.pool === big)!;
    await a.releaseAllOf({ podUID: got.find((x) => x.ip === '10.10.0.10')!.owner.podUID! });
    // The first pool has room again, but the owner keeps what it holds.
    expect(await a.allocate([small, big], third.owner)).toMatchObject({ pool: big, ip: '10.20.0.2' });
    expect(await a.allocate([small, big], owner('order-7'), { ip: '10.20.0.9' })).toMatchObject({ pool: big, ip: '10.20.0.9', requested: true });
    const outside = await problemOf(a.allocate([small, big], owner('order-8'), { ip: '10.30.0.9' }));
    expect(outside.message).toBe(`requested IP address 10.30.0.9 is not in IP pools ${small}, ${big}: ranges: ${small} (10.10.0.10/31); ${big} (10.20.0.0/28)`);
  });

  it('fails clearly when the pools are full, missing or invalid', async () => {
    const one = createPool(range('10.10.0.10', '10.10.0.10'));
    const two = createPool(range('10.10.0.20', '10.10.0.20'));
    const a = allocator();
    await a.allocate([one], owner(1));
    const full = await problemOf(a.allocate([one], owner(2)));
    expect([full.problem, full.code, full.message]).toEqual(['exhausted', CniCode.TryAgainLater, `no free IP address in IP pool ${one}: all 1 addresses of 10.10.0.10 are allocated`]);
    await a.allocate([one, two], owner(2));
    const bothFull = await problemOf(a.allocate([one, two], owner(3)));
    expect([bothFull.problem, bothFull.message]).toEqual(['exhausted', `no free IP address in IP pools ${one}, ${two}: every pool is fully allocated`]);
    const missing = await problemOf(a.allocate(['no-such-pool'], owner(3)));
    expect([missing.problem, missing.code, missing.message]).toEqual(['not-found', CniCode.InvalidNetworkConfig, 'IP pool no-such-pool does not exist']);
    // Valid for the schema, not for the allocator: the range is outside the subnet.
    const bad = createPool({ ipRanges: [{ cidr: '10.99.0.0/24' }], subnetInfo: { gateway: '10.10.0.1', prefixLength: 24 } });
    const invalid = await problemOf(a.allocate([bad], owner(3)));
    expect([invalid.problem, invalid.message]).toEqual(['invalid-pool', `IP pool ${bad} is invalid: ipRanges[0]: 10.99.0.0/24 is not inside 10.10.0.0/24`]);
    expect(await a.release({ containerID: 'ctr-1', interface: 'net1' }, ['no-such-pool'])).toEqual([]);
    await expect(a.allocate([], owner(3))).rejects.toThrow(/no IP pool/);
    await expect(a.allocate([one], { ...owner(3), containerID: '' })).rejects.toThrow(/containerID missing/);
  });

  it('re-reads and retries after a write conflict, and gives up with code 11 after maxAttempts', async () => {
    const name = createPool(range('10.10.0.10', '10.10.0.30'));
    const other = allocator();
    const once = allocator({ maxAttempts: 1 });
    const retrying = allocator({ maxAttempts: 3 });
    // Each remembers the object it wrote last; another agent's write makes that copy stale.
    await once.allocate([name], owner('cf-1'));
    await retrying.allocate([name], owner('cf-2'));
    await other.allocate([name], owner('cf-3'));
    const e = await problemOf(once.allocate([name], owner('cf-4')));
    expect([e.problem, e.code, e.message]).toEqual(['unavailable', CniCode.TryAgainLater, `cannot update IP pool ${name}: still conflicting after 1 attempts`]);
    expect(once.stats.conflicts).toBe(1);
    expect(await retrying.allocate([name], owner('cf-4'))).toMatchObject({ ip: '10.10.0.13' });
    // A refused write, a fresh read, a write that goes through (usage writes are counted apart).
    expect(retrying.stats).toMatchObject({ conflicts: 1, writes: 3 });
    expect((await other.allocations(name)).map((x) => x.ip)).toEqual(['10.10.0.10', '10.10.0.11', '10.10.0.12', '10.10.0.13']);
  });

  it('collects allocations whose pod or container is gone, sparing young ones and other nodes', async () => {
    const name = createPool(range('10.10.0.10', '10.10.0.40'));
    let now = new Date('2030-01-01T00:00:00Z');
    const a = allocator({ now: () => now });
    await a.allocate([name], owner(1));
    await a.allocate([name], owner(2));
    await a.allocate([name], owner(3));
    await a.allocate([name], owner(4, { node: 'node-2' }));
    now = new Date(now.getTime() + 10 * 60_000);
    await a.allocate([name], owner(5)); // young
    await expect(a.gc({})).rejects.toThrow(/live pods or the live containers/);
    // pod-2 exists again under another UID: a different pod.
    const freed = await a.gc({ pods: [{ namespace: 'telco', name: 'pod-1', uid: 'uid-1' }, { namespace: 'telco', name: 'pod-2', uid: 'other' }, { namespace: 'telco', name: 'pod-4' }] }, { pools: [name] });
    expect(freed.map((x) => x.owner.podName).sort()).toEqual(['pod-2', 'pod-3']);
    // An agent knowing only its own sandboxes collects on its own node only.
    expect((await a.gc({ containerIDs: ['ctr-5'] }, { pools: [name], node: 'node-1', minAgeMs: 0 })).map((x) => x.owner.podName)).toEqual(['pod-1']);
    expect((await a.allocations(name)).map((x) => x.owner.podName).sort()).toEqual(['pod-4', 'pod-5']);
    await a.settled();
    expect(stored(name).status!.usage!.used).toBe(2);
  });

  it('never hands out an address twice to three concurrent agents, and counts right', async () => {
    const measure = async (label: string, maxBatch?: number): Promise<void> => {
      const name = createPool({ ipRanges: [{ cidr: '10.50.0.0/24' }], subnetInfo: { gateway: '10.50.0.1', prefixLength: 24 } });
      const agents = [0, 1, 2].map(() => allocator({ ...(maxBatch ? { maxBatch } : {}) }));
      const t0 = performance.now();
      const got: PoolAllocation[] = await Promise.all(
        Array.from({ length: 150 }, (_, i) => agents[i % 3]!.allocate([name], owner(`${label}-${i}`, { node: `node-${i % 3}` }))),
      );
      const ms = performance.now() - t0;
      const ips = got.map((x) => x.ip);
      expect(new Set(ips).size).toBe(150);
      await Promise.all(agents.map((a) => a.settled()));
      const s = stored(name).status!;
      expect(s.usage).toEqual({ total: 253, used: 150 });
      expect(new Map(s.allocations!.map((x) => [x.ip, x.owner.containerID]))).toEqual(new Map(got.map((x) => [x.ip, x.owner.containerID])));
      // Each node allocated in blocks of its own (16 addresses each, none overlapping), lowest first in them:
      // 50 allocations per node fill 3 blocks and start a fourth.
      const last = (x: string): number => Number(x.split('.')[3]);
      const blocks = s.blocks!;
      expect(blocks).toHaveLength(12);
      const starts = blocks.map((b) => last(b.start)).sort((x, y) => x - y);
      expect(starts).toEqual(Array.from({ length: 12 }, (_, i) => 2 + 16 * i));
      for (const b of blocks) expect(last(b.end) - last(b.start)).toBe(15);
      for (let node = 0; node < 3; node++) {
        const mine = blocks.filter((b) => b.node === `node-${node}`).map((b) => [last(b.start), last(b.end)] as const);
        expect(mine).toHaveLength(4);
        const held = got.filter((x) => x.owner.node === `node-${node}`).map((x) => last(x.ip));
        for (const n of held) expect(mine.some(([lo, hi]) => n >= lo && n <= hi)).toBe(true);
        const inOrder = mine.flatMap(([lo, hi]) => Array.from({ length: hi - lo + 1 }, (_, i) => lo + i)).sort((x, y) => x - y);
        expect(held.sort((x, y) => x - y)).toEqual(inOrder.slice(0, 50));
      }
      const stats = agents.map((a) => a.stats);
      console.log(
        `IPPool ${label}: 150 allocations by 3 agents in ${ms.toFixed(0)} ms = ${((150 * 1000) / ms).toFixed(0)} allocations/s; ` +
          `writes ${stats.reduce((n, x) => n + x.writes, 0)}, conflicts ${stats.reduce((n, x) => n + x.conflicts, 0)}, reads ${stats.reduce((n, x) => n + x.reads, 0)}`,
      );
      const t1 = performance.now();
      const freed = await Promise.all(got.map((x, i) => agents[(i + 1) % 3]!.release(x.owner, [name])));
      const releaseMs = performance.now() - t1;
      expect(freed.flat().map((x) => x.ip).sort()).toEqual([...ips].sort());
      await Promise.all(agents.map((a) => a.settled()));
      expect(stored(name).status!.usage).toEqual({ total: 253, used: 0 });
      console.log(`IPPool ${label}: 150 releases by 3 agents in ${releaseMs.toFixed(0)} ms = ${((150 * 1000) / releaseMs).toFixed(0)} releases/s`);
    };
    await measure('batched');
    await measure('one-write-per-allocation', 1);
  });

  it("agents of different nodes write side by side: each in its own block, none refusing another's write", async () => {
    const name = createPool({ ipRanges: [{ cidr: '10.60.0.0/24' }], subnetInfo: { gateway: '10.60.0.1', prefixLength: 24 } });
    const [a, b] = [allocator(), allocator()];
    const onA = (i: number): PoolOwner => owner(`side-a-${i}`, { node: 'node-a' });
    const onB = (i: number): PoolOwner => owner(`side-b-${i}`, { node: 'node-b' });
    // The first write sets the pool up (blocks, versions) and claims node-a's first block; node-b claims the next.
    expect((await a.allocate([name], onA(0))).ip).toBe('10.60.0.2');
    expect((await b.allocate([name], onB(0))).ip).toBe('10.60.0.18');
    const before = { a: { ...a.stats }, b: { ...b.stats } };
    // Each writes from the copy it wrote last, which the other's writes made stale: no refusal, no re-read.
    for (let i = 1; i <= 5; i++) {
      expect((await a.allocate([name], onA(i))).ip).toBe(`10.60.0.${2 + i}`);
      expect((await b.allocate([name], onB(i))).ip).toBe(`10.60.0.${18 + i}`);
    }
    expect((await b.release(onB(1), [name])).map((x) => x.ip)).toEqual(['10.60.0.19']);
    expect((await a.allocate([name], onA(6))).ip).toBe('10.60.0.8');
    expect(a.stats.conflicts - before.a.conflicts + b.stats.conflicts - before.b.conflicts).toBe(0);
    expect(a.stats.reads - before.a.reads + b.stats.reads - before.b.reads).toBe(0);
    const s = stored(name).status!;
    expect(s.blocks).toEqual([
      { start: '10.60.0.2', end: '10.60.0.17', node: 'node-a', version: 6 },
      { start: '10.60.0.18', end: '10.60.0.33', node: 'node-b', version: 5 },
    ]);
    expect(s.poolVersion).toBe(2);
    expect(s.allocations!.map((x) => x.ip).sort()).toEqual(['2', '3', '4', '5', '6', '7', '8', '18', '20', '21', '22', '23'].map((n) => `10.60.0.${n}`).sort());
    // The freed address is the lowest free one of node-b's block again.
    expect((await b.allocate([name], onB(9))).ip).toBe('10.60.0.19');
    await Promise.all([a.settled(), b.settled()]);
    expect(stored(name).status!.usage).toEqual({ total: 253, used: 13 });
  });

  it('with every address in some block, a node takes over an empty block, or else borrows, and the owner then retries', async () => {
    // 12 addresses, blocks of 4: three blocks.
    const name = createPool(range('10.10.0.10', '10.10.0.21'));
    const [x, y, z] = [allocator(), allocator(), allocator()];
    const on = (node: string, i: number): PoolOwner => owner(`take-${node}-${i}`, { node });
    await x.allocate([name], on('x', 0));
    await y.allocate([name], on('y', 0));
    await z.allocate([name], on('z', 0));
    expect(stored(name).status!.blocks!.map((b) => `${b.start}-${b.end} ${b.node}`)).toEqual(['10.10.0.10-10.10.0.13 x', '10.10.0.14-10.10.0.17 y', '10.10.0.18-10.10.0.21 z']);
    // z's pod is gone: its block holds nothing, and node w takes it over.
    await z.release(on('z', 0), [name]);
    const w = allocator();
    expect((await w.allocate([name], on('w', 0))).ip).toBe('10.10.0.18');
    expect(stored(name).status!.blocks![2]).toMatchObject({ start: '10.10.0.18', node: 'w', version: 1 });
    // z again: no block to claim or take over, so it borrows the lowest free address (in x's block).
    expect((await z.allocate([name], on('z', 1))).ip).toBe('10.10.0.11');
    // x writes from its stale copy: its test of its block fails, it re-reads and goes on above the borrowed address.
    const refusedBefore = x.stats.conflicts;
    expect((await x.allocate([name], on('x', 1))).ip).toBe('10.10.0.12');
    expect(x.stats.conflicts - refusedBefore).toBe(1);
    const ips = stored(name).status!.allocations!.map((a) => a.ip);
    expect(new Set(ips).size).toBe(ips.length);
  });

  it('sets up blocks in a pool whose status has none, keeping what it holds', async () => {
    const name = createPool(range('10.10.0.10', '10.10.0.30'));
    const old = { ip: '10.10.0.10', owner: owner('legacy'), allocatedAt: '2030-01-01T00:00:00Z' };
    pools().updateStatus({ ...(stored(name) as never as object), status: { allocations: [old], usage: { total: 21, used: 1 } } } as never);
    const a = allocator();
    expect((await a.allocate([name], owner('legacy-2'))).ip).toBe('10.10.0.11');
    const s = stored(name).status!;
    expect(s.allocations).toEqual([old, expect.objectContaining({ ip: '10.10.0.11' })]);
    expect(s).toMatchObject({ blocks: [{ start: '10.10.0.10', end: '10.10.0.13', node: 'node-1', version: 0 }], poolVersion: 1, usage: { total: 21, used: 2 } });
    expect((await a.release(owner('legacy'), [name])).map((x) => x.ip)).toEqual(['10.10.0.10']);
  });

  it('three agents racing for a small pool: exactly its size succeeds, the rest is told it is full', async () => {
    const name = createPool(range('10.10.0.10', '10.10.0.19'));
    const agents = [0, 1, 2].map(() => allocator({ maxBatch: 1 }));
    const results = await Promise.allSettled(Array.from({ length: 25 }, (_, i) => agents[i % 3]!.allocate([name], owner(`race-${i}`))));
    const ok = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value.ip] : []));
    const failed = results.flatMap((r) => (r.status === 'rejected' ? [(r.reason as IPPoolError).problem] : []));
    expect(new Set(ok).size).toBe(10);
    expect(ok).toHaveLength(10);
    expect(failed).toEqual(Array(15).fill('exhausted'));
    await Promise.all(agents.map((a) => a.settled()));
    expect(stored(name).status!.usage).toEqual({ total: 10, used: 10 });
  });
});

import { run } from '../../../src/host/exec.js';
import { CookieOwner, makeCookie, ownerSelector } from '../../../src/ovs/openflow/cookie.js';
import { addFlow, addGroup, deleteFlows, type Change, type Flow } from '../../../src/ovs/openflow/flow.js';
import type { Group } from '../../../src/ovs/openflow/group.js';
import type { Exec } from '../../../src/ovs/openflow/ofctl.js';
import { BundleError, FlowWriter, forgetInstalledFlows } from '../../../src/ovs/openflow/writer.js';
import { OvsSandbox } from '../../harness/sandbox.js';

const BR = 'br0';

/** Wraps the real exec to count ovs-ofctl spawns and how many bundles run at once. */
/** Counts spawns and bundles; `hold` keeps the first bundle in flight until it resolves. */
function counting(hold?: Promise<void>): { exec: Exec; spawns: number; bundles: number; maxInFlight: number } {
  const c = {
    spawns: 0,
    bundles: 0,
    maxInFlight: 0,
    inFlight: 0,
    exec: (async (cmd, args, opts) => {
      c.spawns++;
      const bundle = args.includes('bundle');
      if (bundle) {
        c.bundles++;
        c.maxInFlight = Math.max(c.maxInFlight, ++c.inFlight);
        if (c.bundles === 1 && hold) await hold;
      }
      try {
        return await run(cmd, args, opts);
      } finally {
        if (bundle) c.inFlight--;
      }
    }) as Exec,
  };
  return c;
}

const out = (port: number): Flow['actions'] => [{ type: 'output', port }];
const ipFlow = (table: number, i: number, cookie = makeCookie(CookieOwner.primary, 1, i)): Flow => ({
  table,
  priority: 100,
  cookie,
  match: { protocol: 'ip', nw_dst: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}` },
  actions: out(1),
});
const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('FlowWriter on a real bridge', () => {
  let sb: OvsSandbox;
  let w: FlowWriter;

  beforeAll(async () => {
    sb = await OvsSandbox.start();
    await sb.addBridge(BR);
    w = FlowWriter.forBridge(sb.ovs, BR);
  });
  afterAll(async () => {
    await sb?.close();
  });
  beforeEach(async () => {
    await w.ofctl.run(['del-flows', w.ofctl.target]);
    await w.ofctl.run(['del-groups', w.ofctl.target]);
    // Deleted behind the writers' backs: their next syncs must read the switch.
    forgetInstalledFlows();
  });

  it('a bundle with one invalid flow installs nothing and names the failing line', async () => {
    const changes = [addFlow(ipFlow(5, 1)), addFlow({ ...ipFlow(5, 2), actions: [{ type: 'group', id: 99 }] }), addFlow(ipFlow(5, 3))];
    const err = await w.submit(changes).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BundleError);
    const be = err as BundleError;
    expect(be.reason).toBe('OFPBAC_BAD_OUT_GROUP');
    expect(be.failed?.index).toBe(1);
    expect(be.failed?.change).toBe(changes[1]);
    expect(be.failed?.text).toContain('actions=group:99');
    expect(be.message).toContain('OFPBAC_BAD_OUT_GROUP');
    expect(w.stats.ofctlBundles).toBe(0); // sent over the OpenFlow connection
    expect(await w.dumpFlows({ table: 5 })).toEqual([]);

    // An error ovs-ofctl finds while parsing is pinned on its line too.
    const bad = [addFlow(ipFlow(5, 1)), addFlow({ ...ipFlow(5, 2), actions: [{ type: 'raw', text: 'no_such_action:1' }] })];
    const perr = (await w.submit(bad).catch((e: unknown) => e)) as BundleError;
    expect(perr).toBeInstanceOf(BundleError);
    expect(perr.failed?.index).toBe(1);
    expect(perr.reason).toMatch(/no_such_action/);
    expect(await w.dumpFlows({ table: 5 })).toEqual([]);

    // A refusal that names no line is pinned by parsing the bundle's flows offline.
    const inexpressible = [...Array.from({ length: 9 }, (_, i) => addFlow(ipFlow(5, i))), addFlow({ table: 5, actions: [{ type: 'dec_ttl' }] })];
    const nerr = (await w.submit(inexpressible).catch((e: unknown) => e)) as BundleError;
    expect(nerr).toBeInstanceOf(BundleError);
    expect(nerr.failed?.index).toBe(9);
    // ovs-ofctl says it cannot express the flow; the switch, that the action does not fit the match.
    expect(nerr.reason).toMatch(/usable|OFPBAC_MATCH_INCONSISTENT/);
    expect(await w.dumpFlows({ table: 5 })).toEqual([]);
  });

  it('coalesces 200 concurrent single-flow adds into far fewer spawns, and all land', async () => {
    const c = counting();
    const cw = FlowWriter.forBridge(sb.ovs, BR, { exec: c.exec });
    await Promise.all(Array.from({ length: 200 }, (_, i) => cw.add(ipFlow(20, i))));
    expect(c.spawns).toBeLessThanOrEqual(2);
    expect(cw.stats.changes).toBe(200);
    const flows = await cw.dumpFlows({ table: 20 });
    expect(flows).toHaveLength(200);
    expect(new Set(flows.map((f) => f.cookie)).size).toBe(200);
  });

  it('coalesces changes that trickle in while a bundle is in flight', async () => {
    // The first bundle stays in flight until all 300 changes arrived, however fast the machine runs.
    let release!: () => void;
    const c = counting(new Promise<void>((r) => (release = r)));
    const cw = FlowWriter.forBridge(sb.ovs, BR, { exec: c.exec });
    const pending: Promise<void>[] = [];
    for (let i = 0; i < 300; i++) {
      pending.push(cw.add(ipFlow(21, i)));
      await tick();
    }
    release();
    await Promise.all(pending);
    // The first change alone, then the 299 that trickled in meanwhile in one bundle.
    expect(c.bundles).toBe(2);
    expect(await cw.dumpFlows({ table: 21 })).toHaveLength(300);
  });

  it('a bad change coalesced with good ones fails alone; the others land', async () => {
    const c = counting();
    const cw = FlowWriter.forBridge(sb.ovs, BR, { exec: c.exec });
    const bad = addFlow({ ...ipFlow(22, 2), actions: [{ type: 'group', id: 4242 }] });
    const results = await Promise.allSettled([cw.add(ipFlow(22, 1)), cw.submit(bad), cw.add(ipFlow(22, 3))]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    const err = (results[1] as PromiseRejectedResult).reason as BundleError;
    expect(err).toBeInstanceOf(BundleError);
    expect(err.failed).toEqual({ index: 0, text: expect.stringContaining('group:4242'), change: bad });
    expect(c.bundles).toBe(2);
    expect((await cw.dumpFlows({ table: 22 })).map((f) => f.match).sort()).toEqual(['ip,nw_dst=10.0.0.1', 'ip,nw_dst=10.0.0.3']);
  });

  it('cuts coalesced batches at the cap but never splits one submit', async () => {
    const c = counting();
    const cw = FlowWriter.forBridge(sb.ovs, BR, { exec: c.exec, maxBatchLines: 50 });
    await Promise.all(Array.from({ length: 120 }, (_, i) => cw.add(ipFlow(23, i))));
    expect(c.bundles).toBe(3);
    const big: Change[] = Array.from({ length: 120 }, (_, i) => addFlow(ipFlow(24, i)));
    big.push(addFlow({ ...ipFlow(24, 999), actions: [{ type: 'group', id: 4242 }] }));
    const err = (await cw.submit(big).catch((e: unknown) => e)) as BundleError;
    expect(err).toBeInstanceOf(BundleError);
    expect(err.failed?.index).toBe(120);
    expect(c.bundles).toBe(4);
    expect(await cw.dumpFlows({ table: 24 })).toEqual([]);
    expect(await cw.dumpFlows({ table: 23 })).toHaveLength(120);
  });

  it('never lets a non-strict delete share a bundle with earlier adds', async () => {
    const c = counting();
    const cw = FlowWriter.forBridge(sb.ovs, BR, { exec: c.exec });
    // In one OVS bundle the delete would miss the second add; coalesced, it must not.
    await Promise.all([cw.add(ipFlow(27, 1)), cw.add({ ...ipFlow(27, 2), priority: 101 }), cw.deleteWhere({ table: 27 }), cw.add(ipFlow(27, 3))]);
    expect(c.bundles).toBe(2);
    expect((await cw.dumpFlows({ table: 27 })).map((f) => f.match)).toEqual(['ip,nw_dst=10.0.0.3']);
    // Within one caller's bundle the order cannot be fixed up, so it is refused.
    await expect(cw.submit([addFlow(ipFlow(27, 4)), deleteFlows({ table: 27 })])).rejects.toThrow(/non-strict/);
    await cw.submit([deleteFlows({ table: 27 }), addFlow(ipFlow(27, 5))]);
    expect((await cw.dumpFlows({ table: 27 })).map((f) => f.match)).toEqual(['ip,nw_dst=10.0.0.5']);
  });

  it('serialises writers to the same bridge', async () => {
    const c = counting();
    const a = FlowWriter.forBridge(sb.ovs, BR, { exec: c.exec });
    const b = FlowWriter.forBridge(sb.ovs, BR, { exec: c.exec });
    const ops: Promise<unknown>[] = [];
    for (let i = 0; i < 40; i++) {
      ops.push(a.add(ipFlow(25, i)), b.add(ipFlow(26, i)));
      if (i % 10 === 0) ops.push(a.sync({ cookie: ownerSelector(CookieOwner.chaining), flows: [] }));
      await tick();
    }
    await Promise.all(ops);
    expect(c.maxInFlight).toBe(1);
    expect(await a.dumpFlows({ table: 25 })).toHaveLength(40);
    expect(await b.dumpFlows({ table: 26 })).toHaveLength(40);
  });

  it('rejects a change that cannot be rendered without sending anything', async () => {
    const before = w.spawns;
    await expect(w.add({ table: 1, match: { reg0: -1 }, actions: [] })).rejects.toThrow(RangeError);
    await expect(w.submit(deleteFlows({}))).rejects.toThrow(RangeError);
    expect(w.spawns).toBe(before);
  });

  describe('sync by cookie', () => {
    const P = CookieOwner.primary;
    const S = CookieOwner.secondary;
    const flow = (owner: number, round: number, obj: number, nwDst: string, port: number): Flow => ({
      table: 30,
      priority: 100,
      cookie: makeCookie(owner, round, obj),
      match: { protocol: 'ip', nw_dst: nwDst },
      actions: out(port),
    });
    const summary = (flows: { cookie: bigint; match: string; actions: string }[]): string[] =>
      flows.map((f) => `${f.cookie.toString(16)} ${f.match} ${f.actions}`).sort();

    it('adds missing, deletes stale, modifies changed actions, leaves other owners, and is idempotent', async () => {
      const others = [flow(S, 1, 1, '10.9.0.1', 7), flow(S, 1, 2, '10.9.0.2', 7)];
      await w.submit([
        ...others.map(addFlow),
        addFlow(flow(P, 1, 1, '10.0.0.1', 1)), // kept as is
        addFlow(flow(P, 1, 2, '10.0.0.2', 1)), // actions change
        addFlow(flow(P, 1, 3, '10.0.0.3', 1)), // stale
        addFlow(flow(P, 1, 4, '10.0.0.4', 1)), // cookie moves to round 2
      ]);
      const otherBefore = summary(await w.dumpFlows({ cookie: ownerSelector(S) }));
      const desired = [flow(P, 1, 1, '10.0.0.1', 1), flow(P, 1, 2, '10.0.0.2', 2), flow(P, 2, 4, '10.0.0.4', 1), flow(P, 1, 5, '10.0.0.5', 1)];

      const r1 = await w.sync({ cookie: ownerSelector(P), flows: desired });
      expect(r1).toMatchObject({ added: 1, modified: 2, deleted: 1 });
      expect(summary(await w.dumpFlows({ cookie: ownerSelector(P) }))).toEqual(
        summary(desired.map((f) => ({ cookie: f.cookie!, match: `ip,nw_dst=${f.match!.nw_dst}`, actions: `output:${(f.actions[0] as { port: number }).port}` }))),
      );
      expect(summary(await w.dumpFlows({ cookie: ownerSelector(S) }))).toEqual(otherBefore);

      const spawns = w.spawns;
      const r2 = await w.sync({ cookie: ownerSelector(P), flows: desired });
      expect(r2).toMatchObject({ added: 0, modified: 0, deleted: 0, changes: [] });
      // The writer knows what the first sync installed: the second reads nothing from the switch.
      expect(w.spawns - spawns).toBe(0);
      // A verified sync reads the switch; canonical forms are cached, so it only dumps.
      const r3 = await w.sync({ cookie: ownerSelector(P), flows: desired }, { verify: true });
      expect(r3).toMatchObject({ added: 0, modified: 0, deleted: 0, changes: [] });
      expect(w.spawns - spawns).toBe(1);
    });

    it('refuses a desired flow OVS would refuse, naming it, before changing anything', async () => {
      await w.add(flow(P, 1, 1, '10.0.0.1', 1));
      const bad: Flow = { table: 30, priority: 7, cookie: makeCookie(P, 1, 2), actions: [{ type: 'dec_ttl' }] };
      await expect(w.sync({ cookie: ownerSelector(P), flows: [bad] })).rejects.toThrow(/OVS refuses flow "table=30,priority=7,actions=dec_ttl": .*usable/);
      expect(await w.dumpFlows({ table: 30 })).toHaveLength(1);
    });

    it('keeps counters of flows whose actions it modifies', async () => {
      const f = flow(P, 1, 1, '10.0.0.1', 1);
      await w.add(f);
      const r = await w.sync({ cookie: ownerSelector(P), flows: [{ ...f, actions: out(3) }] });
      expect(r.modified).toBe(1);
      const [installed] = await w.dumpFlows({ cookie: ownerSelector(P) });
      expect(installed?.actions).toBe('output:3');
      expect(installed?.durationSec).toBeGreaterThanOrEqual(0);
      expect(r.changes.map((c) => c.op)).toEqual(['modify_strict']);
    });

    it('recognises flows written in different but equivalent syntax as equal', async () => {
      const cookie = makeCookie(P, 3, 77);
      // Installed by someone else with a different spelling of the same flows.
      const target = w.ofctl.target;
      await w.ofctl.run([
        'add-flow',
        target,
        `table=31,priority=50,cookie=${cookie},dl_type=0x0800,nw_src=10.1.0.1/255.255.255.255,nw_dst=10.2.0.0/255.255.0.0,actions=mod_dl_src:02:AA:BB:CC:DD:EE,load:0x7->NXM_NX_REG0[0..15],output:1`,
      ]);
      await w.ofctl.run([
        'add-flow',
        target,
        `table=31,priority=51,cookie=${cookie},xreg0=0x100000002,tcp,tp_dst=0x50,ct_state=+est+trk,actions=ct(table=32,zone=5,commit)`,
      ]);
      await w.submit(
        addFlow({
          table: 31,
          priority: 52,
          cookie,
          match: { dl_type: 0x0806, arp_tpa: '10.1.0.9/32', dl_dst: 'FF:FF:FF:FF:FF:FF' },
          actions: [{ type: 'mod_dl_dst', mac: '02:00:00:00:00:01' }, { type: 'output', port: 'IN_PORT' }],
        }),
      );
      const desired: Flow[] = [
        {
          table: 31,
          priority: 50,
          cookie,
          match: { protocol: 'ip', nw_src: '10.1.0.1', nw_dst: '10.2.0.0/16' },
          actions: [
            { type: 'set_field', field: 'eth_src', value: '02:aa:bb:cc:dd:ee' },
            { type: 'set_field', field: 'reg0', value: 7, mask: 0xffff },
            { type: 'output', port: 1 },
          ],
        },
        {
          table: 31,
          priority: 51,
          cookie,
          match: { protocol: 'tcp', reg0: 1, reg1: 2, tp_dst: { value: 80, mask: 0xffff }, ct_state: { trk: true, est: true } },
          actions: [{ type: 'ct', commit: true, zone: 5, table: 32 }],
        },
        {
          table: 31,
          priority: 52,
          cookie,
          match: { protocol: 'arp', arp_tpa: '10.1.0.9', dl_dst: 'ff:ff:ff:ff:ff:ff' },
          actions: [{ type: 'set_field', field: 'eth_dst', value: '02:00:00:00:00:01' }, { type: 'output', port: 'IN_PORT' }],
        },
      ];
      const r = await w.sync({ cookie: ownerSelector(P), flows: desired });
      expect(r).toMatchObject({ added: 0, modified: 0, deleted: 0, changes: [] });
    });

    it('syncs groups it owns and leaves other groups alone', async () => {
      const owns = (id: number): boolean => id >= 100 && id < 200;
      const g = (id: number, ports: number[]): Group => ({
        id,
        type: 'select',
        selectionMethod: 'hash',
        fields: ['ip_src', 'ip_dst'],
        buckets: ports.map((p) => ({ weight: 10, watchPort: p, actions: out(p) })),
      });
      await w.submit([addGroup(g(100, [1, 2])), addGroup(g(101, [1])), addGroup(g(102, [3])), addGroup(g(500, [4]))]);
      const desired = [g(100, [1, 2]), g(101, [1, 2]), g(103, [5])];
      const flows: Flow[] = [{ table: 40, priority: 10, cookie: makeCookie(P, 1, 9), match: { protocol: 'ip' }, actions: [{ type: 'group', id: 103 }] }];
      const r1 = await w.sync({ cookie: ownerSelector(P), flows, groups: { desired, owns } });
      expect(r1).toMatchObject({ added: 1, groupsAdded: 1, groupsModified: 1, groupsDeleted: 1 });
      const groups = await w.dumpGroups();
      expect(groups.map((x) => x.id).sort()).toEqual([100, 101, 103, 500]);
      expect(groups.find((x) => x.id === 101)?.buckets.map((b) => b.watchPort)).toEqual([1, 2]);
      const r2 = await w.sync({ cookie: ownerSelector(P), flows, groups: { desired, owns } });
      expect(r2.changes).toEqual([]);
    });

    it('deletes everything of older rounds of one owner only', async () => {
      await w.submit([
        addFlow(flow(P, 1, 1, '10.0.0.1', 1)),
        addFlow(flow(P, 1, 2, '10.0.0.2', 1)),
        addFlow(flow(P, 7, 3, '10.0.0.3', 1)),
        addFlow(flow(P, 8, 4, '10.0.0.4', 1)),
        addFlow(flow(S, 1, 1, '10.9.0.1', 1)),
      ]);
      expect(await w.deleteOlderRounds(P, 8)).toBe(3);
      const left = await w.dumpFlows({ table: 30 });
      expect(left.map((f) => f.cookie).sort()).toEqual([makeCookie(P, 8, 4), makeCookie(S, 1, 1)].sort());
      expect(await w.deleteOlderRounds(P, 8)).toBe(0);
    });
  });
});

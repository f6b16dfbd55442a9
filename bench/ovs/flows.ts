/**
 * Flow programming throughput on a private OVS (userspace datapath) in its own network namespace:
 *   1. 10,000 flows in one atomic bundle;
 *   2. 1,000 single-flow changes arriving one by one through the FlowWriter (coalesced);
 *   3. the same 1,000 changes with one ovs-ofctl spawn each (baseline, same run);
 *   4. a full sync of the 10,000 unchanged flows (must plan zero changes).
 * Everything it creates is recorded in a ledger and removed on exit, on failure and on SIGINT/SIGTERM.
 */
import { execFileSync } from 'node:child_process';
import { cpus } from 'node:os';
import { run, type RunOptions } from '../../src/host/exec.js';
import { OvsDaemons } from '../../src/ovs/daemons.js';
import { CookieOwner, makeCookie, ownerSelector } from '../../src/ovs/openflow/cookie.js';
import { addFlow, renderFlow, type Flow } from '../../src/ovs/openflow/flow.js';
import { FlowWriter } from '../../src/ovs/openflow/writer.js';
import { withPrivateOvs } from './private-ovs.js';

const BRIDGE = 'br0';
const BULK = 10_000;
const SINGLES = 1_000;

function flow(table: number, i: number): Flow {
  return {
    table,
    priority: 100,
    cookie: makeCookie(CookieOwner.primary, 1, table * 1_000_000 + i),
    match: { protocol: 'ip', in_port: 1 + (i % 8), nw_dst: `10.${table}.${(i >> 8) & 255}.${i & 255}` },
    actions: [{ type: 'mod_dl_dst', mac: '02:00:00:00:00:01' }, { type: 'output', port: 1 + ((i + 1) % 8) }],
  };
}

function machine(): string {
  const cpu = cpus();
  const ovs = execFileSync('ovs-vswitchd', ['--version'], { encoding: 'utf8' }).split('\n')[0]!.trim();
  return `CPU: ${cpu[0]?.model ?? 'unknown'} × ${cpu.length} cores; ${ovs}; node ${process.version}`;
}

async function flowCount(ovs: OvsDaemons, table: number): Promise<number> {
  const { stdout } = await run('ovs-ofctl', ['-O', 'OpenFlow15', 'dump-aggregate', ovs.bridgeMgmt(BRIDGE), `table=${table}`], { env: ovs.env });
  return Number(/flow_count=(\d+)/.exec(stdout)?.[1] ?? NaN);
}

async function expectCount(ovs: OvsDaemons, table: number, n: number): Promise<void> {
  const got = await flowCount(ovs, table);
  if (got !== n) throw new Error(`table ${table} holds ${got} flows, expected ${n}`);
}

const rate = (n: number, ms: number): string => `${Math.round((n * 1000) / ms).toLocaleString('en-US')} flows/s`;

async function bench(ovs: OvsDaemons): Promise<void> {
  let spawns = 0;
  const exec = (cmd: string, args: readonly string[], opts?: RunOptions) => {
    spawns++;
    return run(cmd, args, opts);
  };
  const writer = FlowWriter.forBridge(ovs, BRIDGE, { exec });

  // 1. One bundle of 10,000 flows.
  const bulk = Array.from({ length: BULK }, (_, i) => addFlow(flow(10, i)));
  let t0 = performance.now();
  await writer.submit(bulk);
  const bulkMs = performance.now() - t0;
  await expectCount(ovs, 10, BULK);

  // 2. 1,000 single-flow changes, each submitted on its own event-loop turn, not awaited one by one.
  const singles = Array.from({ length: SINGLES }, (_, i) => flow(20, i));
  spawns = 0;
  const bundlesBefore = writer.stats.bundles;
  t0 = performance.now();
  const pending: Promise<void>[] = [];
  for (const f of singles) {
    pending.push(writer.add(f));
    await new Promise((r) => setImmediate(r));
  }
  await Promise.all(pending);
  const batchedMs = performance.now() - t0;
  const batchedSpawns = spawns;
  const batchedBundles = writer.stats.bundles - bundlesBefore;
  await expectCount(ovs, 20, SINGLES);

  // 3. Baseline: the same changes, one `ovs-ofctl add-flow` each, on an emptied table.
  await run('ovs-ofctl', ['-O', 'OpenFlow15', 'del-flows', ovs.bridgeMgmt(BRIDGE), 'table=20'], { env: ovs.env });
  await expectCount(ovs, 20, 0);
  const lines = singles.map(renderFlow);
  t0 = performance.now();
  for (const line of lines) await writer.ofctl.run(['add-flow', writer.ofctl.target, line]);
  const baselineMs = performance.now() - t0;
  await expectCount(ovs, 20, SINGLES);

  // 4. Full sync of the unchanged 10,000 + 1,000 flows of this owner.
  const desired = [...bulk.map((c) => (c as { flow: Flow }).flow), ...singles];
  t0 = performance.now();
  const first = await writer.sync({ cookie: ownerSelector(CookieOwner.primary), flows: desired });
  const syncColdMs = performance.now() - t0;
  t0 = performance.now();
  const second = await writer.sync({ cookie: ownerSelector(CookieOwner.primary), flows: desired });
  const syncWarmMs = performance.now() - t0;
  if (first.changes.length || second.changes.length) throw new Error(`sync of an unchanged state planned ${first.changes.length}/${second.changes.length} changes`);

  // 5. The same over the agent's persistent OpenFlow connection, on emptied tables.
  await run('ovs-ofctl', ['-O', 'OpenFlow15', 'del-flows', ovs.bridgeMgmt(BRIDGE)], { env: ovs.env });
  const wire = FlowWriter.forBridge(ovs, BRIDGE);
  t0 = performance.now();
  await wire.submit(bulk);
  const wireBulkMs = performance.now() - t0;
  await expectCount(ovs, 10, BULK);
  t0 = performance.now();
  const wirePending: Promise<void>[] = [];
  for (const f of singles) {
    wirePending.push(wire.add(f));
    await new Promise((r) => setImmediate(r));
  }
  await Promise.all(wirePending);
  const wireBatchedMs = performance.now() - t0;
  await expectCount(ovs, 20, SINGLES);
  t0 = performance.now();
  const wireFirst = await wire.sync({ cookie: ownerSelector(CookieOwner.primary), flows: desired });
  const wireSyncColdMs = performance.now() - t0;
  t0 = performance.now();
  const wireSecond = await wire.sync({ cookie: ownerSelector(CookieOwner.primary), flows: desired });
  const wireSyncWarmMs = performance.now() - t0;
  if (wireFirst.changes.length || wireSecond.changes.length) throw new Error(`sync over the connection planned ${wireFirst.changes.length}/${wireSecond.changes.length} changes`);
  if (wire.stats.ofctlBundles) throw new Error(`${wire.stats.ofctlBundles} bundles went through ovs-ofctl`);

  const batchedRate = (SINGLES * 1000) / batchedMs;
  const baselineRate = (SINGLES * 1000) / baselineMs;
  console.log(`Seine flow programming benchmark (ovs-ofctl bundles and the OpenFlow 1.5 connection, userspace datapath)`);
  console.log(machine());
  const row = (what: string, n: number, ms: number, note: string): void =>
    console.log(`- ${what.padEnd(42)} ${ms.toFixed(0).padStart(6)} ms  ${rate(n, ms).padStart(15)}  ${note}`);
  row(`${BULK.toLocaleString('en-US')} flows in one bundle`, BULK, bulkMs, '(1 spawn)');
  row(`${SINGLES.toLocaleString('en-US')} single-flow changes via FlowWriter`, SINGLES, batchedMs, `(${batchedBundles} bundles, ${batchedSpawns} spawns)`);
  row(`${SINGLES.toLocaleString('en-US')} single-flow changes, one spawn each`, SINGLES, baselineMs, `(${SINGLES} spawns)`);
  console.log(`- batched / one-spawn-each: ${(batchedRate / baselineRate).toFixed(1)}x`);
  console.log(
    `- sync of ${desired.length.toLocaleString('en-US')} unchanged flows: ${syncColdMs.toFixed(0)} ms cold (canonicalises via parse-flows), ` +
      `${syncWarmMs.toFixed(0)} ms warm; 0 changes`,
  );
  console.log('over the persistent OpenFlow connection (no process per bundle):');
  row(`${BULK.toLocaleString('en-US')} flows in one bundle`, BULK, wireBulkMs, `(${(bulkMs / wireBulkMs).toFixed(2)}x faster than through ovs-ofctl)`);
  row(`${SINGLES.toLocaleString('en-US')} single-flow changes via FlowWriter`, SINGLES, wireBatchedMs, `(${(batchedMs / wireBatchedMs).toFixed(2)}x faster than through ovs-ofctl)`);
  console.log(
    `- sync of ${desired.length.toLocaleString('en-US')} unchanged flows: ${wireSyncColdMs.toFixed(0)} ms reading the switch, ` +
      `${wireSyncWarmMs.toFixed(0)} ms against what the writer installed; 0 changes`,
  );
}

async function main(): Promise<void> {
  await withPrivateOvs(BRIDGE, bench);
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? (e.stack ?? e.message) : e);
  process.exitCode = 1;
});

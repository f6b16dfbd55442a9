import { OvsdbClient } from '../../../src/ovs/ovsdb/client.js';
import { OvsdbClosedError, OvsdbConnectionLostError } from '../../../src/ovs/ovsdb/errors.js';
import { op } from '../../../src/ovs/ovsdb/operations.js';
import { ovsMap } from '../../../src/ovs/ovsdb/values.js';
import { Vswitch } from '../../../src/ovs/ovsdb/vswitch.js';
import { OvsSandbox } from '../../harness/sandbox.js';
import { nextEvent, rejection, sleep, unquote } from './helpers.js';

/** Count of live timers of this process (what would keep jest from exiting). */
function activeTimers(): number {
  return process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
}

describe('reconnect after ovsdb-server restarts', () => {
  let sb: OvsSandbox;
  let vs: Vswitch;
  /** Closed in afterAll too, so a failing test cannot leave a reconnecting client behind. */
  const extraClients: OvsdbClient[] = [];
  const vsctl = (...args: string[]): Promise<string> => sb.ovs.vsctl(args);

  beforeAll(async () => {
    sb = await OvsSandbox.start();
    // A fixed first retry delay long enough for the test to change the database while the client is away.
    vs = await Vswitch.connect({ remote: sb.ovs.dbRemote, backoff: { initialMs: 3000, maxMs: 3000, jitter: 0 } });
    await vs.ensureBridge('br0', { datapathType: 'netdev', failMode: 'secure' });
    await vsctl('add-port', 'br0', 'pold', '--', 'set', 'Interface', 'pold', 'type=internal');
    await vs.cache.waitForPort('pold', undefined, { timeoutMs: 10_000 });
  });
  afterAll(async () => {
    await Promise.all(extraClients.map((c) => c.close()));
    await vs?.close();
    await sb?.close();
  });

  it('resyncs the cache, keeps waiters, runs queued requests, re-sends reads and fails in-flight writes', async () => {
    const client = vs.client;
    expect(client.stats.connects).toBe(1);
    expect(vs.cache.raw.syncCount).toBe(1);

    // Registered before the restart, for a port that will only be created during the outage.
    const waiter = vs.cache.waitForInterface('pnew', (i) => (i.ofport ?? 0) > 0, { timeoutMs: 40_000 });
    // In flight when the server goes away, both blocked server-side until pnew exists:
    // a write (must fail typed, never be replayed) and a read (re-sent after reconnect).
    const blockedWrite = vs.transact(
      [op.wait('Port', [['name', '==', 'pnew']], ['name'], '!=', [], 20_000), op.mutate('Open_vSwitch', [], [['external_ids', 'insert', ovsMap({ replayed: 'yes' })]])],
      { timeoutMs: 40_000 },
    );
    const blockedRead = vs.transact([op.wait('Port', [['name', '==', 'pnew']], ['name'], '!=', [], 20_000)], { timeoutMs: 40_000 });
    const writeOutcome = blockedWrite.then(
      () => 'resolved',
      (e: unknown) => e,
    );
    // The server handles requests in order: once the echo is answered, both waits are registered.
    await client.echo();

    const disconnected = nextEvent(client, 'disconnected');
    const reconnected = disconnected.then(() => nextEvent(client, 'connected'));
    await sb.ovs.restartOvsdb();
    await disconnected;
    expect(client.state).toBe('backoff');

    // Issued during the outage: queued, sent after the reconnect.
    const queuedSelect = vs.transact([op.select('Port', [['name', '==', 'pnew']], ['name'])]);
    const queuedAdd = vs.addPort('br0', { name: 'pq', type: 'internal' }, { timeoutMs: 40_000 });
    // Changes by someone else while the client is away.
    await vsctl('--no-wait', 'add-port', 'br0', 'pnew', '--', 'set', 'Interface', 'pnew', 'type=internal');
    await vsctl('--no-wait', 'del-port', 'br0', 'pold');
    const changedAt = Date.now();
    expect(client.connected).toBe(false);

    const reconnectedAt = await reconnected;
    expect(reconnectedAt).toBeGreaterThanOrEqual(changedAt);
    expect(client.stats).toMatchObject({ connects: 2, disconnects: 1 });
    // The resync happened before 'connected': the cache already shows the outage's changes.
    expect(vs.cache.raw.syncCount).toBe(2);
    expect(vs.cache.port('pnew')).toBeDefined();
    expect(vs.cache.port('pold')).toBeUndefined();
    expect(vs.cache.iface('pold')).toBeUndefined();
    expect(vs.cache.portsOf('br0').map((p) => p.name)).not.toContain('pold');

    const iface = await waiter;
    expect(String(iface.ofport)).toBe(unquote(await vsctl('get', 'Interface', 'pnew', 'ofport')));

    expect(await writeOutcome).toBeInstanceOf(OvsdbConnectionLostError);
    expect(await blockedRead).toEqual([{}]);
    const [sel] = await queuedSelect;
    expect(sel.rows).toEqual([{ name: 'pnew' }]);
    const added = await queuedAdd;
    expect(added.ofport).toBeGreaterThan(0);
    expect((await vsctl('list-ports', 'br0')).split('\n').filter(Boolean).sort()).toEqual(['pnew', 'pq']);
    // The lost write was not silently replayed.
    expect(await vsctl('get', 'Open_vSwitch', '.', 'external_ids')).not.toMatch(/replayed/);
  }, 60_000);

  it('keeps retrying with backoff while the server is down, and close() leaves no timers', async () => {
    const timersBefore = activeTimers();
    const client = await OvsdbClient.connect({ remote: sb.ovs.dbRemote, backoff: { initialMs: 100, maxMs: 400 }, probeIntervalMs: 1000 });
    extraClients.push(client);
    try {
      let disconnected = nextEvent(client, 'disconnected');
      await sb.ovs.stopDaemon('ovsdb-server');
      await disconnected;
      const queued = client.echo('queued');
      await sleep(1500);
      expect(client.connected).toBe(false);
      await sb.ovs.startOvsdb();
      expect(await queued).toEqual(['queued']);
      expect(client.stats.connects).toBe(2);

      // Closing while disconnected (a retry timer pending) rejects queued work and clears every timer.
      disconnected = nextEvent(client, 'disconnected');
      await sb.ovs.stopDaemon('ovsdb-server');
      await disconnected;
      const stranded = client.listDbs();
      await client.close();
      expect(await rejection(stranded)).toBeInstanceOf(OvsdbClosedError);
      expect(activeTimers()).toBeLessThanOrEqual(timersBefore);
    } finally {
      await client.close();
      if (sb.ovs.pid('ovsdb-server') === undefined) await sb.ovs.startOvsdb();
    }
  }, 60_000);
});

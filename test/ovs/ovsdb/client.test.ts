import { run } from '../../../src/host/exec.js';
import { OvsdbCache, type RowChange } from '../../../src/ovs/ovsdb/cache.js';
import { OvsdbClient } from '../../../src/ovs/ovsdb/client.js';
import {
  CacheWaitTimeoutError,
  OvsdbClosedError,
  OvsdbConstraintViolationError,
  OvsdbReferentialIntegrityError,
  OvsdbRequestTimeoutError,
  OvsdbRpcError,
  OvsdbTransactError,
  OvsdbWaitTimeoutError,
} from '../../../src/ovs/ovsdb/errors.js';
import { op } from '../../../src/ovs/ovsdb/operations.js';
import { namedUuid, ovsMap, ovsSet, setValues, stringMap, uuid, uuidValue } from '../../../src/ovs/ovsdb/values.js';
import { OvsSandbox } from '../../harness/sandbox.js';
import { rejection, unquote } from './helpers.js';

const DB = 'Open_vSwitch';

describe('OvsdbClient against a real ovsdb-server', () => {
  let sb: OvsSandbox;
  let client: OvsdbClient;
  const vsctl = (...args: string[]): Promise<string> => sb.ovs.vsctl(args);

  beforeAll(async () => {
    sb = await OvsSandbox.start();
    await sb.addBridge('br0');
    client = await OvsdbClient.connect({ remote: sb.ovs.dbRemote, requestTimeoutMs: 10_000 });
  });
  afterAll(async () => {
    await client?.close();
    await sb?.close();
  });

  it('answers echo and list_dbs, and reports JSON-RPC errors typed', async () => {
    expect(await client.echo('a', 1)).toEqual(['a', 1]);
    expect(await client.listDbs()).toContain(DB);
    const unknownDb = await rejection(client.transact('Nope', [op.comment('x')]));
    expect(unknownDb).toBeInstanceOf(OvsdbRpcError);
    expect((unknownDb as OvsdbRpcError).error).toBe('unknown database');
    const unknownMethod = await rejection(client.request('no_such_method', []));
    expect(unknownMethod).toMatchObject({ name: 'OvsdbRpcError', error: 'unknown method' });
  });

  it('insert with uuid-name, select, update, mutate, delete, each read back from OVS', async () => {
    const [iface, port, attach] = await client.transact(DB, [
      op.insert('Interface', { name: 'tp1', type: 'internal' }, 'tp1_iface'),
      op.insert('Port', { name: 'tp1', interfaces: namedUuid('tp1_iface'), external_ids: ovsMap({ owner: 'test' }) }, 'tp1_port'),
      op.mutate('Bridge', [['name', '==', 'br0']], [['ports', 'insert', ovsSet([namedUuid('tp1_port')])]]),
    ]);
    expect(attach.count).toBe(1);
    expect(unquote(await vsctl('get', 'Port', 'tp1', '_uuid'))).toBe(port.uuid);
    expect(unquote(await vsctl('get', 'Interface', 'tp1', '_uuid'))).toBe(iface.uuid);
    expect((await vsctl('list-ports', 'br0')).split('\n')).toContain('tp1');

    const [sel] = await client.transact(DB, [op.select('Port', [['name', '==', 'tp1']], ['_uuid', 'interfaces', 'external_ids'])]);
    expect(sel.rows).toHaveLength(1);
    expect(uuidValue(sel.rows[0]!._uuid)).toBe(port.uuid);
    expect(setValues(sel.rows[0]!.interfaces!)).toEqual([iface.uuid]);
    expect(stringMap(sel.rows[0]!.external_ids!)).toEqual({ owner: 'test' });

    const [upd] = await client.transact(DB, [op.update('Port', [['name', '==', 'tp1']], { tag: 10 })]);
    expect(upd.count).toBe(1);
    expect(unquote(await vsctl('get', 'Port', 'tp1', 'tag'))).toBe('10');

    const [mut] = await client.transact(DB, [
      op.mutate('Port', [['name', '==', 'tp1']], [
        ['tag', '+=', 5],
        ['trunks', 'insert', ovsSet([100, 200, 300])],
        ['external_ids', 'insert', ovsMap({ extra: 'yes' })],
      ]),
    ]);
    expect(mut.count).toBe(1);
    expect(unquote(await vsctl('get', 'Port', 'tp1', 'tag'))).toBe('15');
    expect(unquote(await vsctl('get', 'Port', 'tp1', 'trunks'))).toBe('[100, 200, 300]');
    expect(unquote(await vsctl('get', 'Port', 'tp1', 'external_ids:extra'))).toBe('yes');
    await client.transact(DB, [op.mutate('Port', [['name', '==', 'tp1']], [['trunks', 'delete', 200]])]);
    expect(unquote(await vsctl('get', 'Port', 'tp1', 'trunks'))).toBe('[100, 300]');

    // A condition on a set column selects by membership.
    const [byTrunk] = await client.transact(DB, [op.select('Port', [['trunks', 'includes', 300]], ['name'])]);
    expect(byTrunk.rows.map((r) => r.name)).toEqual(['tp1']);

    const [detach, del] = await client.transact(DB, [
      op.mutate('Bridge', [['name', '==', 'br0']], [['ports', 'delete', uuid(port.uuid)]]),
      op.delete('Port', [['_uuid', '==', uuid(port.uuid)]]),
    ]);
    expect(detach.count).toBe(1);
    expect(del.count).toBe(1);
    expect((await vsctl('list-ports', 'br0')).split('\n')).not.toContain('tp1');
    // The interface went with its last reference.
    expect((await vsctl('--columns=name', 'find', 'Interface', 'name=tp1')).trim()).toBe('');
  });

  it('wait succeeds when the rows match and fails typed when they do not within its timeout', async () => {
    const [ok] = await client.transact(DB, [op.wait('Bridge', [['name', '==', 'br0']], ['name'], '==', [{ name: 'br0' }], 0)]);
    expect(ok).toEqual({});
    const started = Date.now();
    const err = await rejection(
      client.transact(DB, [op.comment('first'), op.wait('Bridge', [['name', '==', 'br0']], ['name'], '==', [], 400), op.insert('Bridge', { name: 'never' })]),
    );
    expect(Date.now() - started).toBeGreaterThanOrEqual(350);
    expect(err).toBeInstanceOf(OvsdbWaitTimeoutError);
    expect(err).toMatchObject({ opIndex: 1, error: 'timed out', commitFailed: false, op: { op: 'wait' } });
    expect((err as OvsdbTransactError).details).toMatch(/"wait" timed out after \d+ ms/);
    // The failed transaction did nothing.
    expect((await vsctl('list-br')).split('\n')).not.toContain('never');
  });

  it('comment is accepted and recorded in the database log', async () => {
    const marker = `seine-test-comment-${process.pid}`;
    const [res] = await client.transact(DB, [op.comment(marker), op.mutate('Open_vSwitch', [], [['external_ids', 'insert', ovsMap({ c: '1' })]])]);
    expect(res).toEqual({});
    const { stdout } = await run('ovsdb-tool', ['-m', 'show-log', sb.ovs.dbPath]);
    expect(stdout).toContain(marker);
  });

  it('surfaces per-operation and commit-time errors with their index, error and details', async () => {
    // Per operation: value outside the column's enum, at index 1; later ops are not run.
    const perOp = await rejection(
      client.transact(DB, [op.comment('x'), op.update('Bridge', [['name', '==', 'br0']], { protocols: 'OpenFlow99' }), op.comment('y')]),
    );
    expect(perOp).toBeInstanceOf(OvsdbConstraintViolationError);
    expect(perOp).toMatchObject({ opIndex: 1, error: 'constraint violation', commitFailed: false });
    expect((perOp as OvsdbTransactError).details).toMatch(/OpenFlow99/);

    // Commit: a duplicate indexed name is only found when committing (the trailing error element).
    const dup = await rejection(
      client.transact(DB, [
        op.insert('Interface', { name: 'br0' }, 'i'),
        op.insert('Port', { name: 'dup-port', interfaces: namedUuid('i') }, 'p'),
        op.mutate('Bridge', [['name', '==', 'br0']], [['ports', 'insert', namedUuid('p')]]),
      ]),
    );
    expect(dup).toBeInstanceOf(OvsdbConstraintViolationError);
    expect(dup).toMatchObject({ opIndex: undefined, commitFailed: true, error: 'constraint violation' });
    expect((dup as OvsdbTransactError).details).toMatch(/index on column "name"/);
    expect((await vsctl('list-ports', 'br0')).split('\n')).not.toContain('dup-port');

    // Commit: a strong reference to a row that does not exist.
    const dangling = await rejection(
      client.transact(DB, [op.mutate('Bridge', [['name', '==', 'br0']], [['ports', 'insert', uuid('285e1356-4550-41eb-b16f-95823bce46cc')]])]),
    );
    expect(dangling).toBeInstanceOf(OvsdbReferentialIntegrityError);
    expect(dangling).toMatchObject({ commitFailed: true, error: 'referential integrity violation' });

    // Syntax errors come back per operation too.
    const syntax = await rejection(client.transact(DB, [op.select('Bridge', [['no_such_column', '==', 1]])]));
    expect(syntax).toBeInstanceOf(OvsdbTransactError);
    expect(syntax).toMatchObject({ opIndex: 0 });
  });

  it('times out a request typed and stays usable', async () => {
    const err = await rejection(
      client.transact(DB, [op.wait('Bridge', [['name', '==', 'br0']], ['name'], '==', [], 3000)], { timeoutMs: 200 }),
    );
    expect(err).toBeInstanceOf(OvsdbRequestTimeoutError);
    expect(err).toMatchObject({ method: 'transact', timeoutMs: 200, sent: true });
    expect(await client.echo('still here')).toEqual(['still here']);
  });

  it('monitors started in the middle of a stream of changes end up identical to the database', async () => {
    await vsctl('--no-wait', 'add-port', 'br0', 'churn0', '--', 'set', 'Interface', 'churn0', 'type=internal');
    const watchers: { client: OvsdbClient; cache: OvsdbCache }[] = [];
    try {
      // 300 pipelined transactions, each adding a key; monitors start at staggered points meanwhile.
      const writes: Promise<unknown>[] = [];
      for (let i = 0; i < 300; i++) {
        writes.push(client.transact(DB, [op.mutate('Port', [['name', '==', 'churn0']], [['external_ids', 'insert', ovsMap({ [`k${i}`]: String(i) })]])]));
        if (i % 60 === 0) {
          const c = new OvsdbClient({ remote: sb.ovs.dbRemote });
          const cache = new OvsdbCache();
          watchers.push({ client: c, cache });
          c.monitor(DB, { Port: { columns: ['name', 'external_ids'] } }, cache);
          c.start();
        }
        if (i % 20 === 0) await new Promise((r) => setImmediate(r));
      }
      await Promise.all(writes);
      const [final] = await client.transact(DB, [op.select('Port', [['name', '==', 'churn0']], ['external_ids'])]);
      const expected = stringMap(final.rows[0]!.external_ids!);
      expect(Object.keys(expected)).toHaveLength(300);
      for (const w of watchers) {
        const row = await w.cache.waitFor('Port', (r) => r.name === 'churn0' && (r.external_ids as Map<string, string>).size >= 300, { timeoutMs: 10_000 });
        expect(Object.fromEntries(row.row.external_ids as Map<string, string>)).toEqual(expected);
      }
    } finally {
      await Promise.all(watchers.map((w) => w.client.close()));
      await vsctl('--no-wait', 'del-port', 'br0', 'churn0');
    }
  });

  describe.each(['monitor_cond', 'monitor'] as const)('cache fed by %s', (method) => {
    let mc: OvsdbClient;
    let cache: OvsdbCache;
    const changes: RowChange[] = [];
    const port = `mon-${method === 'monitor' ? 'v1' : 'v2'}`;

    beforeAll(async () => {
      mc = await OvsdbClient.connect({ remote: sb.ovs.dbRemote, monitorMethod: method });
      cache = new OvsdbCache();
      cache.onChange((batch) => changes.push(...batch));
      const handle = mc.monitor(DB, { Port: { columns: ['name', 'tag', 'trunks', 'external_ids', 'interfaces'] }, Interface: {} }, cache);
      await handle.ready;
      expect(handle.method).toBe(method);
    });
    afterAll(async () => {
      await mc?.close();
    });

    /** The cache value of a Port column, after waiting for `check` to hold. */
    const portWhen = async (check: (row: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> =>
      (await cache.waitFor('Port', (r) => r.name === port && check(r), { timeoutMs: 5000 })).row;

    it('replicates inserts, set/map/optional modifications and deletes like OVS reports them', async () => {
      expect(cache.syncCount).toBe(1);
      expect(cache.lookup('Interface', 'name', 'br0')?.row.type).toBe('internal');
      await vsctl('--no-wait', 'add-port', 'br0', port, 'tag=5', 'trunks=1,2', 'external_ids:a=1', 'external_ids:b=2', '--', 'set', 'Interface', port, 'type=internal');
      const inserted = await portWhen(() => true);
      expect(inserted.tag).toEqual([5]);
      expect(inserted.trunks).toEqual(expect.arrayContaining([1, 2]));
      expect(inserted.external_ids).toEqual(new Map([['a', '1'], ['b', '2']]));
      const portUuid = unquote(await vsctl('get', 'Port', port, '_uuid'));
      expect(cache.lookup('Port', 'name', port)?.uuid).toBe(portUuid);
      const ifaceUuid = unquote(await vsctl('get', 'Interface', port, '_uuid'));
      expect(inserted.interfaces).toEqual([ifaceUuid]);

      // Map: change b, add c, remove a. Set: add 3, remove 1. Optional: change tag.
      await vsctl('--no-wait', 'set', 'Port', port, 'external_ids:b=20', 'external_ids:c=3', 'tag=6', '--', 'remove', 'Port', port, 'external_ids', 'a',
        '--', 'add', 'Port', port, 'trunks', '3', '--', 'remove', 'Port', port, 'trunks', '1');
      const modified = await portWhen((r) => (r.tag as number[])[0] === 6);
      expect(modified.external_ids).toEqual(new Map([['b', '20'], ['c', '3']]));
      expect([...(modified.trunks as number[])].sort()).toEqual([2, 3]);
      expect(unquote(await vsctl('get', 'Port', port, 'trunks'))).toBe('[2, 3]');

      // Optional cleared; map emptied.
      await vsctl('--no-wait', 'clear', 'Port', port, 'tag', '--', 'clear', 'Port', port, 'external_ids');
      const cleared = await portWhen((r) => (r.tag as number[]).length === 0);
      expect(cleared.external_ids).toEqual(new Map());

      const modifies = changes.filter((c) => c.table === 'Port' && c.uuid === portUuid && c.kind === 'modify');
      expect(modifies.length).toBeGreaterThanOrEqual(2);
      expect(modifies[0]!.old!.tag).toEqual([5]);

      await vsctl('--no-wait', 'del-port', 'br0', port);
      await cache.waitUntil(() => (cache.lookup('Port', 'name', port) ? undefined : true), { timeoutMs: 5000 });
      expect(cache.get('Port', portUuid)).toBeUndefined();
      expect(cache.get('Interface', ifaceUuid)).toBeUndefined();
      expect(changes).toContainEqual(expect.objectContaining({ table: 'Port', uuid: portUuid, kind: 'delete' }));
      // The cache still agrees with the database on every port.
      const dbPorts = (await vsctl('--bare', '--columns=name', 'list', 'Port')).split(/\s+/).filter(Boolean).sort();
      expect([...cache.rows('Port').values()].map((r) => r.name).sort()).toEqual(dbPorts);
    });

    it('a waiter times out typed and close() rejects pending waiters', async () => {
      const err = await rejection(cache.waitFor('Port', (r) => r.name === 'never-there', { timeoutMs: 100 }));
      expect(err).toBeInstanceOf(CacheWaitTimeoutError);
      const pending = cache.waitFor('Port', (r) => r.name === 'never-either', { timeoutMs: 60_000 });
      const closing = mc.close();
      expect(await rejection(pending)).toBeInstanceOf(OvsdbClosedError);
      await closing;
      expect(mc.state).toBe('closed');
      expect(await rejection(mc.echo())).toBeInstanceOf(OvsdbClosedError);
    });
  });
});

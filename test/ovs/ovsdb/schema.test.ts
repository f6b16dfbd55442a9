import { readFileSync } from 'node:fs';
import { VSWITCH_SCHEMA } from '../../../src/ovs/daemons.js';
import { applyDiff, decodeRow, decodeValue, parseSchema, type ColumnSchema, type DbSchema } from '../../../src/ovs/ovsdb/schema.js';
import {
  atomsOf,
  mapEntries,
  namedUuid,
  optionalValue,
  ovsMap,
  ovsOptional,
  ovsSet,
  setValues,
  stringMap,
  uuid,
  uuidValue,
} from '../../../src/ovs/ovsdb/values.js';

const U1 = '36d3d9f7-1c1e-4195-a6c8-3392a9d269d2';
const U2 = '285e1356-4550-41eb-b16f-95823bce46cc';

describe('OVSDB values', () => {
  it('encodes atoms, uuids, sets and maps in wire form', () => {
    expect(uuid(U1)).toEqual(['uuid', U1]);
    expect(namedUuid('new_port')).toEqual(['named-uuid', 'new_port']);
    expect(ovsSet([uuid(U1), namedUuid('p')])).toEqual(['set', [['uuid', U1], ['named-uuid', 'p']]]);
    expect(ovsSet([])).toEqual(['set', []]);
    expect(ovsMap({ a: '1', b: '2' })).toEqual(['map', [['a', '1'], ['b', '2']]]);
    expect(ovsMap(new Map([[1, 'x']]))).toEqual(['map', [[1, 'x']]]);
    expect(ovsOptional(undefined)).toEqual(['set', []]);
    expect(ovsOptional(5)).toBe(5);
    expect(() => uuid('nope')).toThrow(TypeError);
    expect(() => namedUuid('1bad')).toThrow(TypeError);
  });

  it('decodes wire values back', () => {
    expect(atomsOf(['uuid', U1])).toEqual([['uuid', U1]]);
    expect(setValues(['set', [['uuid', U1], ['uuid', U2]]])).toEqual([U1, U2]);
    expect(setValues('x')).toEqual(['x']);
    expect(optionalValue(['set', []])).toBeUndefined();
    expect(optionalValue(7)).toBe(7);
    expect(mapEntries(['map', [[1, ['uuid', U1]]]])).toEqual([[1, U1]]);
    expect(stringMap(['map', [['k', 'v']]])).toEqual({ k: 'v' });
    expect(uuidValue(['uuid', U2])).toBe(U2);
    expect(() => stringMap('x')).toThrow(TypeError);
  });
});

describe('schema-driven decoding and update2 diffs', () => {
  let schema: DbSchema;
  const col = (table: string, name: string): ColumnSchema => schema.tables.get(table)!.columns.get(name)!;

  beforeAll(() => {
    schema = parseSchema(JSON.parse(readFileSync(VSWITCH_SCHEMA, 'utf8')));
  });

  it('parses column kinds and indexes from the vswitch schema', () => {
    expect(schema.name).toBe('Open_vSwitch');
    expect(col('Port', 'name').kind).toBe('scalar');
    expect(col('Port', 'tag').kind).toBe('set');
    expect(col('Port', 'tag').max).toBe(1);
    expect(col('Bridge', 'ports')).toMatchObject({ kind: 'set', max: Infinity, key: { type: 'uuid', refTable: 'Port', refType: 'strong' } });
    expect(col('Interface', 'options').kind).toBe('map');
    expect(schema.tables.get('Port')!.indexes).toEqual([['name']]);
    expect(schema.tables.get('Open_vSwitch')!.isRoot).toBe(true);
  });

  it('fills columns omitted from update2 initial rows with defaults', () => {
    const row = decodeRow(schema.tables.get('Interface')!, { name: 'br0', type: 'internal' }, ['name', 'type', 'ofport', 'options', 'admin_state']);
    expect(row).toEqual({ name: 'br0', type: 'internal', ofport: [], options: new Map(), admin_state: [] });
  });

  it('applies scalar, optional, set and map differences as ovsdb-server sends them', () => {
    // Diffs as observed from ovsdb-server for Interface ofport/options changes. Columns holding at
    // most one value (scalar or optional) carry the new value, not a difference.
    expect(applyDiff(col('Interface', 'type'), 'internal', 'patch')).toBe('patch');
    expect(applyDiff(col('Interface', 'ofport'), [], 5)).toEqual([5]);
    expect(applyDiff(col('Interface', 'ofport'), [5], 6)).toEqual([6]);
    expect(applyDiff(col('Interface', 'ofport'), [6], ['set', []])).toEqual([]);
    const opts = col('Interface', 'options');
    const v1 = applyDiff(opts, new Map(), ['map', [['a', '1'], ['b', '2']]]);
    expect(v1).toEqual(new Map([['a', '1'], ['b', '2']]));
    // b changes (new value sent), c is added, a unchanged (not sent).
    const v2 = applyDiff(opts, v1, ['map', [['b', '3'], ['c', '4']]]);
    expect(v2).toEqual(new Map([['a', '1'], ['b', '3'], ['c', '4']]));
    // Removing a and b: their current pairs are sent.
    expect(applyDiff(opts, v2, ['map', [['a', '1'], ['b', '3']]])).toEqual(new Map([['c', '4']]));
    // Set of references: elements toggle.
    const ports = col('Bridge', 'ports');
    expect(applyDiff(ports, [U1], ['set', [['uuid', U1], ['uuid', U2]]])).toEqual([U2]);
    expect(applyDiff(ports, [], ['uuid', U1])).toEqual([U1]);
    // The input is never mutated: rows are snapshots.
    const before = [U1];
    applyDiff(ports, before, ['uuid', U2]);
    expect(before).toEqual([U1]);
  });

  it('rejects values that do not fit the column', () => {
    expect(() => decodeValue(col('Interface', 'options'), 'x')).toThrow(/expected a map/);
    expect(() => decodeValue(col('Port', 'name'), ['set', []])).toThrow(/expected one value/);
  });
});

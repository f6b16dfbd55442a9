import { OvsdbProtocolError } from './errors.js';
import { atomValue, atomsOf, isWireMap, type JsAtom, type WireAtom, type WireRow, type WireValue } from './values.js';

export type AtomicType = 'integer' | 'real' | 'boolean' | 'string' | 'uuid';

export interface BaseType {
  type: AtomicType;
  refTable?: string;
  refType?: 'strong' | 'weak';
}

/** How a column's value is held: one atom, a set (also optional values), or a map. */
export type ColumnKind = 'scalar' | 'set' | 'map';

export interface ColumnSchema {
  name: string;
  key: BaseType;
  value?: BaseType;
  min: number;
  max: number;
  kind: ColumnKind;
  ephemeral: boolean;
  mutable: boolean;
}

export interface TableSchema {
  name: string;
  columns: ReadonlyMap<string, ColumnSchema>;
  indexes: readonly (readonly string[])[];
  isRoot: boolean;
}

export interface DbSchema {
  name: string;
  version: string;
  tables: ReadonlyMap<string, TableSchema>;
}

/** A column value as the cache holds it. */
export type DbValue = JsAtom | readonly JsAtom[] | ReadonlyMap<JsAtom, JsAtom>;
/** A row as the cache holds it: every monitored column present, decoded per the schema. */
export type DbRow = Readonly<Record<string, DbValue>>;

const ATOMIC_TYPES: readonly string[] = ['integer', 'real', 'boolean', 'string', 'uuid'];

function fail(what: string): never {
  throw new OvsdbProtocolError(`malformed schema: ${what}`);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function parseBaseType(json: unknown, where: string): BaseType {
  if (typeof json === 'string') {
    if (!ATOMIC_TYPES.includes(json)) fail(`${where}: unknown type ${json}`);
    return { type: json as AtomicType };
  }
  if (!isObject(json) || typeof json.type !== 'string' || !ATOMIC_TYPES.includes(json.type)) fail(`${where}: bad base type`);
  const base: BaseType = { type: json.type as AtomicType };
  if (typeof json.refTable === 'string') {
    base.refTable = json.refTable;
    base.refType = json.refType === 'weak' ? 'weak' : 'strong';
  }
  return base;
}

function parseColumn(name: string, json: unknown, where: string): ColumnSchema {
  if (!isObject(json)) fail(`${where}: column is not an object`);
  const t = json.type;
  let key: BaseType;
  let value: BaseType | undefined;
  let min = 1;
  let max = 1;
  if (typeof t === 'string') {
    key = parseBaseType(t, where);
  } else if (isObject(t)) {
    key = parseBaseType(t.key, `${where}.key`);
    if (t.value !== undefined) value = parseBaseType(t.value, `${where}.value`);
    if (t.min !== undefined) {
      if (typeof t.min !== 'number') fail(`${where}: bad min`);
      min = t.min;
    }
    if (t.max !== undefined) {
      if (t.max === 'unlimited') max = Infinity;
      else if (typeof t.max === 'number') max = t.max;
      else fail(`${where}: bad max`);
    }
  } else {
    fail(`${where}: bad type`);
  }
  const kind: ColumnKind = value ? 'map' : min === 1 && max === 1 ? 'scalar' : 'set';
  return { name, key, value, min, max, kind, ephemeral: json.ephemeral === true, mutable: json.mutable !== false };
}

/** Parses a <database-schema> as returned by get_schema. */
export function parseSchema(json: unknown): DbSchema {
  if (!isObject(json) || typeof json.name !== 'string' || !isObject(json.tables)) fail('not a database schema');
  const tables = new Map<string, TableSchema>();
  for (const [tname, tjson] of Object.entries(json.tables)) {
    if (!isObject(tjson) || !isObject(tjson.columns)) fail(`table ${tname}`);
    const columns = new Map<string, ColumnSchema>();
    for (const [cname, cjson] of Object.entries(tjson.columns)) columns.set(cname, parseColumn(cname, cjson, `${tname}.${cname}`));
    const indexes = Array.isArray(tjson.indexes) ? tjson.indexes.filter((ix): ix is string[] => Array.isArray(ix)) : [];
    tables.set(tname, { name: tname, columns, indexes, isRoot: tjson.isRoot === true });
  }
  return { name: json.name, version: typeof json.version === 'string' ? json.version : '', tables };
}

const ZERO_UUID = '00000000-0000-0000-0000-000000000000';

function defaultAtom(base: BaseType): JsAtom {
  switch (base.type) {
    case 'integer':
    case 'real':
      return 0;
    case 'boolean':
      return false;
    case 'string':
      return '';
    case 'uuid':
      return ZERO_UUID;
  }
}

/** The column's default value; ovsdb-server leaves such columns out of initial/insert rows in update2. */
export function defaultValue(col: ColumnSchema): DbValue {
  if (col.kind === 'map') return new Map();
  if (col.kind === 'set') return col.min === 0 ? [] : [defaultAtom(col.key)];
  return defaultAtom(col.key);
}

/** Decodes a wire value of this column into its cache form. */
export function decodeValue(col: ColumnSchema, wire: WireValue): DbValue {
  if (col.kind === 'map') {
    if (!isWireMap(wire)) throw new OvsdbProtocolError(`column ${col.name}: expected a map`);
    return new Map(wire[1].map(([k, v]) => [atomValue(k), atomValue(v)]));
  }
  const atoms = atomsOf(wire).map((a: WireAtom) => atomValue(a));
  if (col.kind === 'set') return atoms;
  if (atoms.length !== 1) throw new OvsdbProtocolError(`column ${col.name}: expected one value, got ${atoms.length}`);
  return atoms[0]!;
}

/**
 * Applies an update2 "modify" difference to a column value. A column holding at most one element
 * (scalar or optional) gets the new value itself. Otherwise set elements in the difference are toggled
 * (added if absent, removed if present); map keys absent are added, keys present with the same value
 * are removed, keys present with another value take the new value.
 */
export function applyDiff(col: ColumnSchema, current: DbValue, diff: WireValue): DbValue {
  if (col.max <= 1) return decodeValue(col, diff);
  if (col.kind === 'set') {
    const result = [...(current as readonly JsAtom[])];
    for (const atom of decodeValue(col, diff) as JsAtom[]) {
      const at = result.indexOf(atom);
      if (at >= 0) result.splice(at, 1);
      else result.push(atom);
    }
    return result;
  }
  const result = new Map(current as ReadonlyMap<JsAtom, JsAtom>);
  for (const [k, v] of decodeValue(col, diff) as ReadonlyMap<JsAtom, JsAtom>) {
    if (!result.has(k)) result.set(k, v);
    else if (result.get(k) === v) result.delete(k);
    else result.set(k, v);
  }
  return result;
}

/** Decodes a full row; monitored columns missing from it (defaults) get their default values. */
export function decodeRow(table: TableSchema, wire: WireRow, columns: readonly string[]): DbRow {
  const row: Record<string, DbValue> = {};
  for (const name of columns) {
    const col = table.columns.get(name);
    if (!col) continue;
    const v = wire[name];
    row[name] = v === undefined ? defaultValue(col) : decodeValue(col, v);
  }
  return row;
}

/** Structural equality of two cache values (sets compare as unordered). */
export function valuesEqual(a: DbValue, b: DbValue): boolean {
  if (a === b) return true;
  if (a instanceof Map && b instanceof Map) {
    if (a.size !== b.size) return false;
    for (const [k, v] of a) if (!b.has(k) || b.get(k) !== v) return false;
    return true;
  }
  if (Array.isArray(a) && Array.isArray(b)) {
    if (a.length !== b.length) return false;
    const bs = new Set(b);
    return a.every((x) => bs.has(x));
  }
  return false;
}

export function rowsEqual(a: DbRow, b: DbRow): boolean {
  const keys = Object.keys(a);
  if (keys.length !== Object.keys(b).length) return false;
  return keys.every((k) => b[k] !== undefined && valuesEqual(a[k]!, b[k]!));
}

/*
 * OVSDB values in their wire form (RFC 7047 section 5.1) and conversions to and from plain JS values.
 */

export type UuidRef = readonly ['uuid', string];
export type NamedUuidRef = readonly ['named-uuid', string];
export type WireAtom = string | number | boolean | UuidRef | NamedUuidRef;
export type WireSet = readonly ['set', readonly WireAtom[]];
export type WireMap = readonly ['map', readonly (readonly [WireAtom, WireAtom])[]];
/** A column value on the wire: a bare atom is also a one-element set. */
export type WireValue = WireAtom | WireSet | WireMap;
export type WireRow = Readonly<Record<string, WireValue>>;

/** An atom as the cache and typed rows hold it: UUIDs become their string form. */
export type JsAtom = string | number | boolean;

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** uuid-name syntax from RFC 7047: an identifier. */
const UUID_NAME_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;

export function isUuidString(s: string): boolean {
  return UUID_RE.test(s);
}

export function uuid(id: string): UuidRef {
  if (!isUuidString(id)) throw new TypeError(`not a UUID: ${id}`);
  return ['uuid', id];
}

/** Reference to a row inserted earlier in the same transaction under this uuid-name. */
export function namedUuid(name: string): NamedUuidRef {
  if (!UUID_NAME_RE.test(name)) throw new TypeError(`not a valid uuid-name: ${name}`);
  return ['named-uuid', name];
}

export function isUuidRef(v: unknown): v is UuidRef {
  return Array.isArray(v) && v.length === 2 && v[0] === 'uuid' && typeof v[1] === 'string';
}

export function isNamedUuidRef(v: unknown): v is NamedUuidRef {
  return Array.isArray(v) && v.length === 2 && v[0] === 'named-uuid' && typeof v[1] === 'string';
}

export function isWireSet(v: unknown): v is WireSet {
  return Array.isArray(v) && v.length === 2 && v[0] === 'set' && Array.isArray(v[1]);
}

export function isWireMap(v: unknown): v is WireMap {
  return Array.isArray(v) && v.length === 2 && v[0] === 'map' && Array.isArray(v[1]);
}

/** A set in its explicit form (always ["set", [...]], also for one element). */
export function ovsSet(items: Iterable<WireAtom>): WireSet {
  return ['set', [...items]];
}

/** An optional value (a set of at most one element): absent becomes the empty set. */
export function ovsOptional(item: WireAtom | undefined): WireValue {
  return item === undefined ? ['set', []] : item;
}

/** A map from a plain object, a Map, or [key, value] pairs. */
export function ovsMap(entries: Readonly<Record<string, WireAtom>> | ReadonlyMap<WireAtom, WireAtom> | Iterable<readonly [WireAtom, WireAtom]>): WireMap {
  let pairs: (readonly [WireAtom, WireAtom])[];
  if (entries instanceof Map) pairs = [...entries.entries()];
  else if (Symbol.iterator in entries) pairs = [...(entries as Iterable<readonly [WireAtom, WireAtom]>)];
  else pairs = Object.entries(entries as Record<string, WireAtom>);
  return ['map', pairs];
}

/** Converts one atom to its JS form; a UUID reference becomes its string. */
export function atomValue(a: WireAtom): JsAtom {
  if (typeof a === 'string' || typeof a === 'number' || typeof a === 'boolean') return a;
  if (isUuidRef(a) || isNamedUuidRef(a)) return a[1];
  throw new TypeError(`not an OVSDB atom: ${JSON.stringify(a)}`);
}

/** Elements of a set-typed value (a bare atom is a one-element set). */
export function atomsOf(v: WireValue): WireAtom[] {
  if (isWireSet(v)) return [...v[1]];
  if (isWireMap(v)) throw new TypeError('expected a set, got a map');
  return [v];
}

/** Elements of a set-typed value in JS form. */
export function setValues(v: WireValue): JsAtom[] {
  return atomsOf(v).map(atomValue);
}

/** The element of an optional (0 or 1 element) value, or undefined. */
export function optionalValue(v: WireValue): JsAtom | undefined {
  const atoms = atomsOf(v);
  if (atoms.length > 1) throw new TypeError(`expected at most one element, got ${atoms.length}`);
  return atoms.length ? atomValue(atoms[0]!) : undefined;
}

/** Key/value pairs of a map-typed value in JS form. */
export function mapEntries(v: WireValue): [JsAtom, JsAtom][] {
  if (!isWireMap(v)) throw new TypeError(`expected a map, got ${JSON.stringify(v)}`);
  return v[1].map(([k, val]) => [atomValue(k), atomValue(val)]);
}

/** A string-to-string map column (external_ids, other_config, options) as a plain object. */
export function stringMap(v: WireValue): Record<string, string> {
  return Object.fromEntries(mapEntries(v).map(([k, val]) => [String(k), String(val)]));
}

/** The UUID string of a UUID-typed value (as found in `_uuid` or an insert result). */
export function uuidValue(v: unknown): string {
  if (!isUuidRef(v)) throw new TypeError(`expected ["uuid", ...], got ${JSON.stringify(v)}`);
  return v[1];
}

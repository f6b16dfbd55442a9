import { cause, type StatusCause } from './errors.js';
import { deepEqual } from './meta.js';
import { isObject, type JsonObject } from './types.js';

// The invariants of x-kubernetes-list-type: a `set` holds no value twice and a `map` no two items with
// the same x-kubernetes-list-map-keys, as kube-apiserver checks them (structurallisttype).

/** Go's %#v of the key values of a map-list item, as kube shows a duplicate. */
function goKeys(keys: JsonObject): string {
  const entries = Object.keys(keys)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${JSON.stringify(keys[k])}`);
  return `map[string]interface {}{${entries.join(', ')}}`;
}

function checkList(schema: JsonObject, list: unknown[], path: string, out: StatusCause[]): void {
  if (schema['x-kubernetes-list-type'] === 'set') {
    list.forEach((v, i) => {
      if (list.slice(0, i).some((w) => deepEqual(v, w))) out.push(cause.duplicate(`${path}[${i}]`, v));
    });
  } else if (schema['x-kubernetes-list-type'] === 'map' && Array.isArray(schema['x-kubernetes-list-map-keys'])) {
    const names = (schema['x-kubernetes-list-map-keys'] as unknown[]).map(String);
    const keysOf = (v: unknown): JsonObject => Object.fromEntries(names.map((k) => [k, isObject(v) ? v[k] : undefined]));
    list.forEach((v, i) => {
      const keys = keysOf(v);
      if (list.slice(0, i).some((w) => deepEqual(keysOf(w), keys))) out.push({ reason: 'FieldValueDuplicate', message: `Duplicate value: ${goKeys(keys)}`, field: `${path}[${i}]` });
    });
  }
}

function walk(schema: unknown, value: unknown, path: string, out: StatusCause[]): void {
  if (!isObject(schema)) return;
  if (Array.isArray(value)) {
    checkList(schema, value, path, out);
    value.forEach((v, i) => walk(schema.items, v, `${path}[${i}]`, out));
  } else if (isObject(value)) {
    const props = isObject(schema.properties) ? schema.properties : {};
    for (const [k, v] of Object.entries(value)) {
      if (props[k] !== undefined) walk(props[k], v, path ? `${path}.${k}` : k, out);
      else if (isObject(schema.additionalProperties)) walk(schema.additionalProperties, v, `${path}[${k}]`, out);
    }
  }
}

/** Duplicates in the set and map lists of `value`, by the schema's list types. */
export function validateListTypes(schema: unknown, value: unknown): StatusCause[] {
  const out: StatusCause[] = [];
  walk(schema, value, '', out);
  return out;
}

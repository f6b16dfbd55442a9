import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import addFormats from 'ajv-formats';
import { compileValidationRules, type CelValidator } from './cel.js';
import { cause, formatValue, type StatusCause } from './errors.js';
import { clone } from './meta.js';
import { isObject, type JsonObject } from './types.js';

// Custom resources are validated against their CRD's structural openAPIV3Schema: the OpenAPI 3.0
// dialect is translated to the JSON Schema ajv runs, kube's x-kubernetes-* extensions are honoured,
// unknown fields are pruned and `default`s applied as the apiextensions-apiserver does.

const ajv = new Ajv({ allErrors: true, strict: false, logger: false, validateFormats: true });
addFormats.default(ajv);
// Kube's own formats; numeric widths are not range-checked by kube either.
for (const f of ['int32', 'int64', 'float', 'double', 'password']) ajv.addFormat(f, true);
ajv.addFormat('byte', /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/);
ajv.addFormat('duration', /^-?(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$|^0$/);
ajv.addFormat('cidr', /^(\d{1,3}(\.\d{1,3}){3}\/\d{1,2}|[0-9a-fA-F:]+\/\d{1,3})$/);
ajv.addFormat('mac', /^([0-9A-Fa-f]{2}[:-]){5}[0-9A-Fa-f]{2}$/);

const PASSTHROUGH = [
  'format', 'enum', 'maximum', 'minimum', 'maxLength', 'minLength', 'pattern', 'maxItems', 'minItems',
  'uniqueItems', 'multipleOf', 'maxProperties', 'minProperties', 'required',
] as const;

/** OpenAPI v3.0 (kube flavour) to draft-07 JSON Schema for ajv. */
export function toJsonSchema(s: unknown): JsonObject {
  if (!isObject(s)) return {};
  const out: JsonObject = {};
  for (const k of PASSTHROUGH) if (s[k] !== undefined) out[k] = s[k];
  if (s['x-kubernetes-int-or-string'] === true) out.type = ['integer', 'string'];
  else if (typeof s.type === 'string') out.type = s.nullable === true ? [s.type, 'null'] : s.type;
  if (s.nullable === true && Array.isArray(out.enum) && !out.enum.includes(null)) out.enum = [...out.enum, null];
  // OpenAPI 3.0 exclusive bounds are flags on maximum/minimum.
  if (s.exclusiveMaximum === true && typeof s.maximum === 'number') {
    delete out.maximum;
    out.exclusiveMaximum = s.maximum;
  }
  if (s.exclusiveMinimum === true && typeof s.minimum === 'number') {
    delete out.minimum;
    out.exclusiveMinimum = s.minimum;
  }
  if (isObject(s.properties)) {
    out.properties = Object.fromEntries(Object.entries(s.properties).map(([k, v]) => [k, toJsonSchema(v)]));
  }
  if (isObject(s.items)) out.items = toJsonSchema(s.items);
  if (isObject(s.additionalProperties)) out.additionalProperties = toJsonSchema(s.additionalProperties);
  else if (s.additionalProperties === false) out.additionalProperties = false;
  for (const k of ['allOf', 'anyOf', 'oneOf'] as const) {
    if (Array.isArray(s[k])) out[k] = (s[k] as unknown[]).map(toJsonSchema);
  }
  if (isObject(s.not)) out.not = toJsonSchema(s.not);
  if (s['x-kubernetes-embedded-resource'] === true) {
    // An embedded object must say what it is.
    const req = new Set<string>(Array.isArray(out.required) ? (out.required as string[]) : []);
    req.add('apiVersion');
    req.add('kind');
    out.required = [...req];
  }
  return out;
}

export interface CompiledSchema {
  schema: JsonObject;
  validate: ValidateFunction;
  /** The schema's x-kubernetes-validations, when it has any. */
  rules?: CelValidator;
}

export function compileSchema(openAPIV3Schema: unknown): CompiledSchema {
  const schema = isObject(openAPIV3Schema) ? openAPIV3Schema : {};
  const rules = compileValidationRules(schema).validator;
  return { schema, validate: ajv.compile(toJsonSchema(schema)), ...(rules ? { rules } : {}) };
}

/** Throws a readable message if a CRD's schema cannot be compiled. */
export function checkSchema(openAPIV3Schema: unknown): string | undefined {
  try {
    ajv.compile(toJsonSchema(openAPIV3Schema));
    return undefined;
  } catch (e) {
    return (e as Error).message;
  }
}

function goType(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v;
}

/** `/spec/items/0/name` as kube names fields: `spec.items[0].name`. */
function fieldPath(instancePath: string, data: unknown): { field: string; value: unknown } {
  let field = '';
  let cur: unknown = data;
  for (const raw of instancePath.split('/').slice(1)) {
    const seg = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (Array.isArray(cur)) {
      field += `[${seg}]`;
      cur = cur[Number(seg)];
    } else {
      field += field ? `.${seg}` : seg;
      cur = isObject(cur) ? cur[seg] : undefined;
    }
  }
  return { field, value: cur };
}

function join(field: string, child: string): string {
  return field ? `${field}.${child}` : child;
}

function causeFor(e: ErrorObject, data: unknown): StatusCause | undefined {
  const { field, value } = fieldPath(e.instancePath, data);
  const p = e.params as Record<string, unknown>;
  const shown = typeof value === 'string' ? value : value;
  switch (e.keyword) {
    case 'required':
      return cause.required(join(field, String(p.missingProperty)));
    case 'type': {
      const t = Array.isArray(p.type) ? (p.type as string[]).filter((x) => x !== 'null').join(',') : String(p.type);
      return { ...cause.invalid(field, goType(value), `${field} in body must be of type ${t}: ${JSON.stringify(goType(value))}`), reason: 'FieldValueTypeInvalid' };
    }
    case 'enum':
      return cause.notSupported(field, value, (p.allowedValues as unknown[]) ?? []);
    case 'minimum':
      return cause.invalid(field, shown, `${field} in body should be greater than or equal to ${String(p.limit)}`);
    case 'exclusiveMinimum':
      return cause.invalid(field, shown, `${field} in body should be greater than ${String(p.limit)}`);
    case 'maximum':
      return cause.invalid(field, shown, `${field} in body should be less than or equal to ${String(p.limit)}`);
    case 'exclusiveMaximum':
      return cause.invalid(field, shown, `${field} in body should be less than ${String(p.limit)}`);
    case 'multipleOf':
      return cause.invalid(field, shown, `${field} in body should be a multiple of ${String(p.multipleOf)}`);
    case 'pattern':
      return cause.invalid(field, shown, `${field} in body should match '${String(p.pattern)}'`);
    case 'maxLength':
      return { reason: 'FieldValueTooLong', message: `Too long: may not be more than ${String(p.limit)} bytes`, field };
    case 'minLength':
      return cause.invalid(field, shown, `${field} in body should be at least ${String(p.limit)} chars long`);
    case 'maxItems':
      return cause.tooMany(field, Number(p.limit));
    case 'minItems':
      return cause.invalid(field, shown, `${field} in body should have at least ${String(p.limit)} items`);
    case 'maxProperties':
      return { reason: 'FieldValueTooMany', message: `Too many: must have at most ${String(p.limit)} items`, field };
    case 'minProperties':
      return cause.invalid(field, shown, `${field} in body should have at least ${String(p.limit)} properties`);
    case 'uniqueItems':
      return cause.duplicate(`${field}[${String(p.j)}]`, Array.isArray(value) ? value[Number(p.j)] : value);
    case 'format':
      return cause.invalid(field, shown, `${field} in body must be of type ${String(p.format)}: ${formatValue(value)}`);
    case 'additionalProperties':
      return { reason: 'FieldValueForbidden', message: 'Forbidden: additional properties are not allowed', field: join(field, String(p.additionalProperty)) };
    case 'anyOf':
    case 'oneOf':
    case 'allOf':
    case 'not':
      return cause.invalid(field, shown, `${field} in body must ${e.keyword === 'not' ? 'not match the schema' : `match ${e.keyword === 'oneOf' ? 'exactly one' : 'at least one'} schema in ${e.keyword}`}`);
    case 'if':
    case 'then':
    case 'else':
      return undefined;
    default:
      return cause.invalid(field, shown, e.message ?? 'invalid');
  }
}

/** Validates `data` and returns kube-style causes (empty when valid). */
export function validateAgainst(compiled: CompiledSchema, data: unknown): StatusCause[] {
  if (compiled.validate(data)) return [];
  const errs = compiled.validate.errors ?? [];
  // Branch failures inside anyOf/oneOf are noise next to the combinator's own error.
  const combinators = errs.filter((e) => e.keyword === 'anyOf' || e.keyword === 'oneOf').map((e) => e.schemaPath);
  const out: StatusCause[] = [];
  const seen = new Set<string>();
  for (const e of errs) {
    if (combinators.some((c) => e.schemaPath.startsWith(`${c}/`))) continue;
    const c = causeFor(e, data);
    if (!c) continue;
    const id = `${c.field}|${c.message}`;
    if (seen.has(id)) continue;
    seen.add(id);
    out.push(c);
  }
  return out;
}

function childPath(path: string, key: string): string {
  return path ? `${path}.${key}` : key;
}

/**
 * Drops fields the structural schema does not specify (kept under x-kubernetes-preserve-unknown-fields),
 * returning the dotted paths dropped. apiVersion/kind/metadata at the root and in embedded resources
 * are always kept.
 */
export function prune(value: unknown, schema: unknown, path = '', isResource = true): string[] {
  const dropped: string[] = [];
  pruneInto(value, isObject(schema) ? schema : {}, path, isResource, dropped);
  return dropped;
}

function pruneInto(value: unknown, s: JsonObject, path: string, isResource: boolean, dropped: string[]): void {
  if (Array.isArray(value)) {
    const items = isObject(s.items) ? s.items : undefined;
    if (items) value.forEach((v, i) => pruneInto(v, items, `${path}[${i}]`, items['x-kubernetes-embedded-resource'] === true, dropped));
    return;
  }
  if (!isObject(value)) return;
  const props = isObject(s.properties) ? s.properties : undefined;
  const additional = isObject(s.additionalProperties) ? s.additionalProperties : undefined;
  const preserve = s['x-kubernetes-preserve-unknown-fields'] === true || s.additionalProperties === true;
  for (const k of Object.keys(value)) {
    if (isResource && (k === 'apiVersion' || k === 'kind' || k === 'metadata')) continue;
    const sub = props && isObject(props[k]) ? (props[k] as JsonObject) : additional;
    if (sub) pruneInto(value[k], sub, childPath(path, k), sub['x-kubernetes-embedded-resource'] === true, dropped);
    else if (!preserve) {
      dropped.push(childPath(path, k));
      delete value[k];
    }
  }
}

/** Fills in schema `default`s for absent fields, recursing into what is present. */
export function applyDefaults(value: unknown, schema: unknown): void {
  if (!isObject(schema)) return;
  if (Array.isArray(value)) {
    if (isObject(schema.items)) for (const v of value) applyDefaults(v, schema.items);
    return;
  }
  if (!isObject(value)) return;
  if (isObject(schema.properties)) {
    for (const [k, sub] of Object.entries(schema.properties)) {
      if (!isObject(sub)) continue;
      if (value[k] === undefined && sub.default !== undefined) value[k] = clone(sub.default);
      if (value[k] !== undefined) applyDefaults(value[k], sub);
    }
  }
  if (isObject(schema.additionalProperties)) {
    for (const k of Object.keys(value)) applyDefaults(value[k], schema.additionalProperties);
  }
}

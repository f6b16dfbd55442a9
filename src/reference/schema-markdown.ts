// A JSON Schema (ajv's dialect) or a CRD's openAPIV3Schema as a markdown table of its fields: one row per field,
// nested objects and arrays of objects flattened into dotted paths (`spec.hops[].name`).
import { code, prose, table } from './markdown.js';

/** The parts of JSON Schema and of Kubernetes' structural OpenAPI schemas that the reference shows. */
export interface JsonSchema {
  $id?: string;
  $ref?: string;
  type?: string | readonly string[];
  description?: string;
  properties?: Readonly<Record<string, JsonSchema | boolean>>;
  required?: readonly string[];
  additionalProperties?: JsonSchema | boolean;
  items?: JsonSchema | boolean;
  enum?: readonly unknown[];
  const?: unknown;
  default?: unknown;
  pattern?: string;
  format?: string;
  minimum?: number;
  maximum?: number;
  // A number in JSON Schema; a flag on minimum/maximum in OpenAPI v3.0.
  exclusiveMinimum?: number | boolean;
  exclusiveMaximum?: number | boolean;
  minLength?: number;
  maxLength?: number;
  minItems?: number;
  maxItems?: number;
  minProperties?: number;
  maxProperties?: number;
  uniqueItems?: boolean;
  nullable?: boolean;
  anyOf?: readonly JsonSchema[];
  oneOf?: readonly JsonSchema[];
  allOf?: readonly JsonSchema[];
  definitions?: Readonly<Record<string, JsonSchema>>;
  'x-kubernetes-int-or-string'?: boolean;
  'x-kubernetes-list-type'?: string;
  'x-kubernetes-list-map-keys'?: readonly string[];
  'x-kubernetes-preserve-unknown-fields'?: boolean;
  'x-kubernetes-validations'?: ReadonlyArray<{ rule: string; message?: string }>;
}

/** Where a `$ref` leads; with `link`, the target has a section of its own and is linked instead of expanded. */
export interface ResolvedRef {
  schema: JsonSchema;
  link?: { title: string; anchor: string };
}

export interface FieldOptions {
  /** Prefix of every path (`spec` for a CRD's spec). */
  pathPrefix?: string;
  /** Resolves `$ref`s; schemas without any need none. */
  resolveRef?: (ref: string) => ResolvedRef;
  /** Defaults kept in code rather than in the schema (a config's default values), looked up by field path. */
  defaults?: unknown;
}

export interface FieldRow {
  path: string;
  type: string;
  required: boolean;
  default: string;
  allowed: string;
  description: string;
}

// Deep enough for every schema here; stops a recursive $ref from looping.
const MAX_DEPTH = 24;

const isSchema = (s: JsonSchema | boolean | undefined): s is JsonSchema => typeof s === 'object' && s !== null;

/** A value as the reference shows it: strings bare in a code span, anything else as JSON. */
export function valueText(value: unknown): string {
  return code(typeof value === 'string' ? value : JSON.stringify(value));
}

interface Walk {
  options: FieldOptions;
  rows: FieldRow[];
  /** Object shapes already listed (as JSON), with the path that lists them. */
  listed: Map<string, string>;
}

// A shape with fewer fields is as short to repeat as to refer to.
const MIN_FIELDS_TO_SHARE = 2;

/** `$ref` and `allOf` folded into one schema; a linked `$ref` stays a link. */
function expand(node: JsonSchema, walk: Walk, depth: number): { schema: JsonSchema; link?: ResolvedRef['link'] } {
  if (depth > MAX_DEPTH) throw new Error('schema nests too deeply (a $ref cycle?)');
  let schema = node;
  let link: ResolvedRef['link'];
  if (node.$ref !== undefined) {
    if (!walk.options.resolveRef) throw new Error(`cannot resolve ${node.$ref}: no resolveRef given`);
    const target = walk.options.resolveRef(node.$ref);
    const { $ref: _ref, ...siblings } = node;
    const inner = expand(target.schema, walk, depth + 1);
    schema = { ...inner.schema, ...siblings };
    link = target.link;
  }
  if (schema.allOf) {
    // allOf's parts are always shown inline: they are this object's own fields.
    let merged: JsonSchema = { ...schema, allOf: undefined };
    for (const part of schema.allOf) {
      const p = expand(part, walk, depth + 1).schema;
      merged = {
        ...p,
        ...merged,
        properties: { ...p.properties, ...merged.properties },
        required: [...new Set([...(p.required ?? []), ...(merged.required ?? [])])],
        description: merged.description ?? p.description,
      };
    }
    schema = merged;
  }
  return { schema, ...(link ? { link } : {}) };
}

function typeOfBranches(branches: readonly JsonSchema[], walk: Walk, depth: number): string {
  return [...new Set(branches.map((b) => typeOf(expand(b, walk, depth + 1).schema, walk, depth + 1)))].join(' or ');
}

function typeOf(s: JsonSchema, walk: Walk, depth: number): string {
  if (s['x-kubernetes-int-or-string']) return 'integer or string';
  const types = typeof s.type === 'string' ? [s.type] : s.type ? [...s.type] : [];
  if (types.length === 0) {
    if (s.const !== undefined) types.push(jsonType(s.const));
    else if (s.enum) types.push(...new Set(s.enum.map(jsonType)));
    else if (s.anyOf ?? s.oneOf) {
      const typed = (s.anyOf ?? s.oneOf)!.filter((b) => b.type !== undefined || b.$ref !== undefined);
      if (typed.length) return typeOfBranches(typed, walk, depth);
    }
    if (types.length === 0 && (s.properties || s.additionalProperties !== undefined)) types.push('object');
  }
  if (types.length === 0) return 'any';
  return types
    .map((t) => {
      if (t === 'array') {
        if (!isSchema(s.items)) return 'array';
        return `array of ${typeOf(expand(s.items, walk, depth + 1).schema, walk, depth + 1)}`;
      }
      if (t === 'object' && !s.properties && isSchema(s.additionalProperties)) {
        return `map of ${typeOf(expand(s.additionalProperties, walk, depth + 1).schema, walk, depth + 1)}`;
      }
      return t;
    })
    .join(' or ');
}

function jsonType(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v;
}

function bounds(min: number | undefined, max: number | undefined, exclusiveMin: number | boolean | undefined, exclusiveMax: number | boolean | undefined): string | undefined {
  // JSON Schema's exclusive bound is a number of its own; OpenAPI 3.0's is a flag on minimum/maximum.
  const low = typeof exclusiveMin === 'number' ? { v: exclusiveMin, strict: true } : min !== undefined ? { v: min, strict: exclusiveMin === true } : undefined;
  const high = typeof exclusiveMax === 'number' ? { v: exclusiveMax, strict: true } : max !== undefined ? { v: max, strict: exclusiveMax === true } : undefined;
  if (low && high && !low.strict && !high.strict) return `${low.v} to ${high.v}`;
  const parts = [low && `${low.strict ? '>' : '≥'} ${low.v}`, high && `${high.strict ? '<' : '≤'} ${high.v}`].filter(Boolean);
  return parts.length ? parts.join(' and ') : undefined;
}

function counted(min: number | undefined, max: number | undefined, noun: string): string | undefined {
  const plural = (n: number): string => `${n} ${noun}${n === 1 ? '' : 's'}`;
  if (min !== undefined && max !== undefined) return min === max ? `exactly ${plural(min)}` : `${min} to ${plural(max)}`;
  if (min !== undefined && min > 0) return `at least ${plural(min)}`;
  if (max !== undefined) return `at most ${plural(max)}`;
  return undefined;
}

/** A combinator whose branches only require fields: which fields must be given together. */
function requiredChoice(branches: readonly JsonSchema[] | undefined, exactlyOne: boolean): string | undefined {
  if (!branches?.length || !branches.every((b) => b.required && !b.type && !b.properties && !b.$ref)) return undefined;
  const options = branches.map((b) => b.required!.map(code).join(' and '));
  return `${exactlyOne ? 'exactly one of' : 'at least one of'}: ${options.join(', ')}`;
}

/** What values the schema allows beyond its type, in short phrases. */
function allowedValues(s: JsonSchema, walk: Walk, depth: number): string[] {
  const out: string[] = [];
  if (s.const !== undefined) out.push(`only ${valueText(s.const)}`);
  if (s.enum) out.push(`one of ${s.enum.map(valueText).join(', ')}`);
  if (s.pattern !== undefined) out.push(`pattern ${code(s.pattern)}`);
  if (s.format !== undefined) out.push(`format ${code(s.format)}`);
  const range = bounds(s.minimum, s.maximum, s.exclusiveMinimum, s.exclusiveMaximum);
  if (range) out.push(range);
  const length = counted(s.minLength, s.maxLength, 'character');
  if (length) out.push(length);
  const items = counted(s.minItems, s.maxItems, 'item');
  if (items) out.push(items);
  const fields = counted(s.minProperties, s.maxProperties, 'field');
  if (fields) out.push(fields);
  if (s.uniqueItems) out.push('no duplicates');
  if (s['x-kubernetes-list-type'] === 'set') out.push('no duplicates');
  if (s['x-kubernetes-list-type'] === 'map' && s['x-kubernetes-list-map-keys']) out.push(`one item per ${s['x-kubernetes-list-map-keys'].map(code).join(' and ')}`);
  for (const v of s['x-kubernetes-validations'] ?? []) out.push(`rule ${code(v.rule)}${v.message ? ` (${v.message})` : ''}`);
  const choice = requiredChoice(s.oneOf, true) ?? requiredChoice(s.anyOf, false);
  if (choice) out.push(choice);
  // A union such as "boolean or string": each branch's own limits, named by its type.
  for (const branch of (s.anyOf ?? s.oneOf ?? []).filter((b) => b.type !== undefined || b.$ref !== undefined)) {
    const b = expand(branch, walk, depth + 1).schema;
    const limits = allowedValues(b, walk, depth + 1);
    if (limits.length) out.push(`${typeOf(b, walk, depth + 1)}: ${limits.join(', ')}`);
  }
  if (s.additionalProperties === false && s.properties) out.push('no other fields');
  // An array's or a map's own row says what its elements may be; an element object's fields get rows of their own.
  const element = s.type === 'array' ? s.items : !s.properties ? s.additionalProperties : undefined;
  if (isSchema(element)) {
    const limits = allowedValues(expand(element, walk, depth + 1).schema, walk, depth + 1);
    if (limits.length) out.push(`${s.type === 'array' ? 'each item' : 'each value'}: ${limits.join(', ')}`);
  }
  return out;
}

function defaultFromOptions(defaults: unknown, path: readonly string[]): unknown {
  let v = defaults;
  for (const key of path) {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return undefined;
    v = (v as Record<string, unknown>)[key];
  }
  return v;
}

function visit(node: JsonSchema, path: string, keys: readonly string[] | undefined, required: boolean, walk: Walk, depth: number): void {
  const { schema: s, link } = expand(node, walk, depth);
  const expandedItems = s.type === 'array' && isSchema(s.items) ? expand(s.items, walk, depth + 1) : undefined;
  const items = expandedItems?.schema;
  // Items with a section of their own are linked, as a field would be.
  const itemsLink = expandedItems?.link;
  // Defaults in code are looked up by key path; a field under an array has none of its own.
  const codeDefault = keys && walk.options.defaults !== undefined ? defaultFromOptions(walk.options.defaults, keys) : undefined;
  // A whole object of defaults says nothing its field rows do not.
  const shownCodeDefault = codeDefault !== undefined && !(s.properties && typeof codeDefault === 'object') ? codeDefault : undefined;
  const defaultValue = s.default !== undefined ? s.default : shownCodeDefault;
  let type = typeOf(s, walk, depth);
  const linked = link ?? itemsLink;
  if (linked) type += ` ([${linked.title}](#${linked.anchor}))`;
  // A shape the table already lists (a shared label selector, say) is referred to rather than listed again;
  // not where defaults from code apply, as they differ by path.
  const fields = linked ? undefined : s.properties ? { of: s, path } : items?.properties ? { of: items, path: `${path}[]` } : undefined;
  let listedAt: string | undefined;
  if (fields && Object.keys(fields.of.properties!).length >= MIN_FIELDS_TO_SHARE && walk.options.defaults === undefined) {
    const shape = JSON.stringify({ properties: fields.of.properties, required: fields.of.required, additionalProperties: fields.of.additionalProperties });
    listedAt = walk.listed.get(shape);
    if (listedAt !== undefined) type += ` (fields as ${code(listedAt)})`;
    else walk.listed.set(shape, fields.path);
  }
  walk.rows.push({
    path,
    type,
    // Whatever has a default need not be given.
    required: required && s.default === undefined && codeDefault === undefined,
    default: defaultValue !== undefined ? valueText(defaultValue) : '',
    allowed: allowedValues(s, walk, depth).join('; '),
    description: prose(s.description ?? items?.description ?? ''),
  });
  if (link || listedAt !== undefined) return;
  visitProperties(s, path, keys, walk, depth);
  if (items && !itemsLink) visitProperties(items, `${path}[]`, undefined, walk, depth + 1);
  if (!s.properties && isSchema(s.additionalProperties)) visitProperties(expand(s.additionalProperties, walk, depth + 1).schema, `${path}.<key>`, undefined, walk, depth + 1);
}

function visitProperties(s: JsonSchema, path: string, keys: readonly string[] | undefined, walk: Walk, depth: number): void {
  for (const [name, child] of Object.entries(s.properties ?? {})) {
    // `false` forbids a field and `true` allows anything: neither describes one.
    if (!isSchema(child)) continue;
    visit(child, path ? `${path}.${name}` : name, keys && [...keys, name], (s.required ?? []).includes(name), walk, depth + 1);
  }
}

/** Every field of an object schema, depth first in the schema's own order. */
export function schemaFields(schema: JsonSchema, options: FieldOptions = {}): FieldRow[] {
  const walk: Walk = { options, rows: [], listed: new Map() };
  const root = expand(schema, walk, 0).schema;
  visitProperties(root, options.pathPrefix ?? '', [], walk, 0);
  return walk.rows;
}

/** The rows as a table: path, type, required, default, allowed values, description. */
export function fieldTable(rows: readonly FieldRow[]): string {
  if (rows.length === 0) return '_No fields._';
  return table(
    ['Field', 'Type', 'Required', 'Default', 'Allowed values', 'Description'],
    rows.map((r) => [code(r.path), r.type, r.required ? 'yes' : '', r.default, r.allowed, r.description]),
  );
}

/** An object schema's fields as a markdown table. */
export function schemaMarkdown(schema: JsonSchema, options: FieldOptions = {}): string {
  return fieldTable(schemaFields(schema, options));
}

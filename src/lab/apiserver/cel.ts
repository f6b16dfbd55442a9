import { Environment, Optional, type ASTNode, type ParseResult } from '@marcbachmann/cel-js';
import { kubernetesEnvironment } from './cel-library.js';
import { cause, type StatusCause } from './errors.js';
import { deepEqual } from './meta.js';
import { isObject, type JsonObject } from './types.js';

// CRD validation rules (x-kubernetes-validations) as the apiextensions-apiserver runs them: each rule is
// compiled once per CRD version against the CEL type of its schema node (objects are typed by their
// properties, so a rule naming an unknown field does not compile), then evaluated with `self` bound to
// every value present at that node, and `oldSelf` to the correlated old value on updates (transition
// rules). A failed rule on a value an update left unchanged is only a warning (validation ratcheting).

export interface ValidationRule {
  rule: string;
  message?: string;
  messageExpression?: string;
  reason?: string;
  fieldPath?: string;
  optionalOldSelf?: boolean;
}

/** The CEL type of a schema node (kube's model.SchemaDeclType). */
type DeclType =
  | { kind: 'scalar'; cel: string }
  | { kind: 'list'; cel: string; elem: DeclType; set: boolean }
  | { kind: 'map'; cel: string; elem: DeclType }
  | {
      kind: 'object';
      cel: string;
      ctor: new () => Record<string, unknown>;
      fields: Map<string, { name: string; type: DeclType }>;
      /** Properties whose names CEL cannot spell: not fields, but their own rules still apply. */
      unnamed: Map<string, DeclType>;
    };

interface CompiledRule {
  rule: ValidationRule;
  program: ParseResult;
  /** optionalOldSelf: evaluated on create too, oldSelf being an optional. */
  optional: boolean;
  message?: ParseResult;
  usesOldSelf: boolean;
  /** fieldPath as a field path relative to the node (`spec.x` style), or ''. */
  fieldPath: string;
}

interface RuleNode {
  schema: JsonObject;
  type: DeclType;
  rules: CompiledRule[];
  properties: Map<string, RuleNode>;
  items?: RuleNode;
  additional?: RuleNode;
  /** Rules of the node's allOf branches. */
  allOf: RuleNode[];
  /** x-kubernetes-list-map-keys when items of this list correlate with the old list's. */
  listMapKeys?: string[];
}

const SUPPORTED_REASONS = ['FieldValueDuplicate', 'FieldValueForbidden', 'FieldValueInvalid', 'FieldValueRequired'];
const MAX_MESSAGE_EXPRESSION_BYTES = 5 * 1024;
/** Causes after which kube skips the rules: the object does not have the shape they were typed for. */
const BLOCKING_REASONS = new Set(['FieldValueNotSupported', 'FieldValueRequired', 'FieldValueTooLong', 'FieldValueTooMany', 'FieldValueTypeInvalid']);

// CEL's reserved words, and the escapes kube uses for property names that are not CEL identifiers.
const RESERVED = new Set(['true', 'false', 'null', 'in', 'as', 'break', 'const', 'continue', 'else', 'for', 'function', 'if', 'import', 'let', 'loop', 'package', 'namespace', 'return', 'var', 'void', 'while']);

/** A property name as CEL sees it (`foo-bar` is `foo__dash__bar`), or undefined if it cannot be named. */
export function escapeFieldName(name: string): string | undefined {
  if (name === '' || /^[0-9]/.test(name)) return undefined;
  if (RESERVED.has(name)) return `__${name}__`;
  let ok = true;
  const out = name.replace(/__|[-./]|[^a-zA-Z0-9\-./_]/g, (m) => {
    const escaped = ({ __: '__underscores__', '.': '__dot__', '-': '__dash__', '/': '__slash__' } as Record<string, string>)[m];
    if (escaped === undefined) ok = false;
    return escaped ?? '';
  });
  return ok ? out : undefined;
}

// The CEL library's names for CEL's timestamp and duration types.
const TIMESTAMP = 'google.protobuf.Timestamp';
const DURATION = 'google.protobuf.Duration';
const durationOf = new Environment({ unlistedVariablesAreDyn: true }).parse('duration(s)');

/** JSON without a schema (int-or-string, embedded unknowns): integers are CEL ints. */
function dynToCel(v: unknown): unknown {
  if (typeof v === 'number') return Number.isInteger(v) ? BigInt(v) : v;
  // Array.from, not map: the CEL library tells lists by constructor, and a cloned body may come from another realm.
  if (Array.isArray(v)) return Array.from(v, dynToCel);
  if (isObject(v)) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, dynToCel(x)]));
  return v;
}

/** A JSON value as a CEL value of the given type. */
function toCel(v: unknown, t: DeclType): unknown {
  if (v === null || v === undefined) return null;
  switch (t.kind) {
    case 'object': {
      const o = new t.ctor();
      if (!isObject(v)) return o;
      for (const [k, x] of Object.entries(v)) {
        const f = t.fields.get(k);
        if (f && x !== undefined) o[f.name] = toCel(x, f.type);
      }
      return o;
    }
    case 'map':
      return isObject(v) ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, toCel(x, t.elem)])) : {};
    case 'list':
      if (!Array.isArray(v)) return [];
      return t.set ? new Set(Array.from(v, (x) => toCel(x, t.elem))) : Array.from(v, (x) => toCel(x, t.elem));
    case 'scalar':
      switch (t.cel) {
        case 'int':
          return typeof v === 'number' && Number.isInteger(v) ? BigInt(v) : v;
        case 'bytes':
          return typeof v === 'string' ? new Uint8Array(Buffer.from(v, 'base64')) : v;
        case TIMESTAMP:
          return typeof v === 'string' ? new Date(v) : v;
        case DURATION:
          return typeof v === 'string' ? durationOf({ s: v }) : v;
        case 'dyn':
          return dynToCel(v);
        default:
          return v;
      }
  }
}

/** Deep equality of CEL values, for `==` on object types. */
function celEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  // Timestamps and durations compare by their value.
  const va: unknown = a.valueOf();
  if (va !== a) return a.constructor === b.constructor && va === b.valueOf();
  if (a instanceof Uint8Array || b instanceof Uint8Array) return a instanceof Uint8Array && b instanceof Uint8Array && Buffer.from(a).equals(b);
  if (Array.isArray(a) || Array.isArray(b)) return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((x, i) => celEqual(x, b[i]));
  if (a.constructor !== b.constructor) return false;
  const ka = Object.keys(a);
  const ra = a as Record<string, unknown>;
  const rb = b as Record<string, unknown>;
  return ka.length === Object.keys(b).length && ka.every((k) => Object.hasOwn(b, k) && celEqual(ra[k], rb[k]));
}

/** The schema a resource root is typed with: apiVersion, kind and metadata.name/generateName are always readable. */
function withTypeAndObjectMeta(s: JsonObject): JsonObject {
  const props = isObject(s.properties) ? s.properties : {};
  return {
    ...s,
    properties: {
      ...props,
      apiVersion: { type: 'string' },
      kind: { type: 'string' },
      metadata: { type: 'object', properties: { name: { type: 'string' }, generateName: { type: 'string' } } },
    },
  };
}

/** Registers the CEL types of a schema in one environment, naming object types uniquely. */
class TypeRegistry {
  private count = 0;
  constructor(private readonly env: Environment) {}

  declType(schema: JsonObject, resourceRoot: boolean): DeclType | undefined {
    if (schema['x-kubernetes-int-or-string'] === true) return { kind: 'scalar', cel: 'dyn' };
    const s = resourceRoot ? withTypeAndObjectMeta(schema) : schema;
    switch (s.type) {
      case 'array': {
        const elem = isObject(s.items) ? this.declType(s.items, s.items['x-kubernetes-embedded-resource'] === true) : undefined;
        // A set of scalars compares regardless of order, as kube's set lists do.
        return elem ? { kind: 'list', cel: `list<${elem.cel}>`, elem, set: s['x-kubernetes-list-type'] === 'set' && elem.kind === 'scalar' } : undefined;
      }
      case 'object': {
        if (isObject(s.additionalProperties)) {
          const elem = this.declType(s.additionalProperties, s.additionalProperties['x-kubernetes-embedded-resource'] === true);
          return elem ? { kind: 'map', cel: `map<string, ${elem.cel}>`, elem } : undefined;
        }
        const fields = new Map<string, { name: string; type: DeclType }>();
        const unnamed = new Map<string, DeclType>();
        for (const [k, p] of Object.entries(isObject(s.properties) ? s.properties : {})) {
          const name = escapeFieldName(k);
          const type = isObject(p) ? this.declType(p, p['x-kubernetes-embedded-resource'] === true) : undefined;
          if (type && name) fields.set(k, { name, type });
          else if (type) unnamed.set(k, type);
        }
        const cel = `object${this.count++}`;
        const ctor = { [cel]: class {} }[cel] as new () => Record<string, unknown>;
        this.env
          .registerType(cel, { ctor, fields: Object.fromEntries([...fields.values()].map((f) => [f.name, f.type.cel])) })
          .registerOperator(`${cel} == ${cel}`, celEqual);
        return { kind: 'object', cel, ctor, fields, unnamed };
      }
      case 'string':
        return { kind: 'scalar', cel: s.format === 'byte' ? 'bytes' : s.format === 'duration' ? DURATION : s.format === 'date' || s.format === 'date-time' ? TIMESTAMP : 'string' };
      case 'boolean':
        return { kind: 'scalar', cel: 'bool' };
      case 'number':
        return { kind: 'scalar', cel: 'double' };
      case 'integer':
        return { kind: 'scalar', cel: 'int' };
      default:
        return undefined;
    }
  }
}

function usesIdentifier(node: unknown, name: string): boolean {
  if (Array.isArray(node)) return node.some((n) => usesIdentifier(n, name));
  if (!isObject(node) || typeof node.op !== 'string') return false;
  if (node.op === 'id') return node.args === name;
  return usesIdentifier(node.args, name);
}

/**
 * A has() test of a field its object type does not declare (the CEL library checks has() arguments less strictly
 * than cel-go, which refuses them): the field, and where it is named. Only selections from `self`/`oldSelf` through
 * declared object fields are followed; a reserved word must be spelled escaped (`__namespace__`) there too.
 */
function undefinedHasField(node: unknown, roots: Record<string, DeclType>): { field: string; start: number } | undefined {
  if (Array.isArray(node)) {
    for (const n of node) {
      const found = undefinedHasField(n, roots);
      if (found) return found;
    }
    return undefined;
  }
  if (!isObject(node) || typeof node.op !== 'string') return undefined;
  if (node.op === 'call' && Array.isArray(node.args) && node.args[0] === 'has') {
    const arg = (node.args[1] as unknown[] | undefined)?.[0];
    const path: Array<{ field: string; end: number }> = [];
    let at: unknown = arg;
    while (isObject(at) && at.op === '.' && Array.isArray(at.args) && typeof at.args[1] === 'string') {
      path.unshift({ field: at.args[1], end: typeof at.end === 'number' ? at.end : 0 });
      at = at.args[0];
    }
    let type = isObject(at) && at.op === 'id' && typeof at.args === 'string' ? roots[at.args] : undefined;
    for (const { field, end } of path) {
      if (type?.kind !== 'object') break;
      const next = [...type.fields.values()].find((f) => f.name === field);
      if (!next) return { field, start: Math.max(0, end - field.length) };
      type = next.type;
    }
  }
  return undefinedHasField(node.args, roots);
}

/** The CEL library's compile errors in cel-go's words, where they differ for the common mistakes. */
function celGoWording(summary: string): string {
  return summary.replace(/^No such key: (.*)$/, "undefined field '$1'").replace(/^Unknown variable: (.*)$/, "undeclared reference to '$1' (in container '')");
}

/** cel-go's way of showing where an expression is wrong: `ERROR: <input>:1:6: msg` and a caret line. */
function celIssue(source: string, e: unknown): string {
  const err = e as { summary?: string; message?: string; range?: { start: number } };
  const raw = err.summary ?? String(err.message ?? e).split('\n')[0]!;
  const summary = celGoWording(raw);
  let start = err.range?.start ?? 0;
  // cel-go places a field selection at its dot, the CEL library at the field name.
  if (summary !== raw && source[start - 1] === '.') start--;
  const before = source.slice(0, start).split('\n');
  const line = before.length;
  const col = before[before.length - 1]!.length;
  const text = source.split('\n')[line - 1] ?? '';
  return `ERROR: <input>:${line}:${col + 1}: ${summary}\n | ${text}\n | ${'.'.repeat(col)}^`;
}

/** Go's %#v of the rule, as kube shows it in CRD errors. */
function goRule(r: ValidationRule): string {
  const q = (s: string | undefined): string => JSON.stringify(s ?? '');
  const reason = r.reason === undefined ? '(*apiextensions.FieldValueErrorReason)(nil)' : `(*apiextensions.FieldValueErrorReason)(${q(r.reason)})`;
  const old = r.optionalOldSelf === undefined ? '(*bool)(nil)' : `(*bool)(${String(r.optionalOldSelf)})`;
  return `apiextensions.ValidationRule{Rule:${q(r.rule)}, Message:${q(r.message)}, MessageExpression:${q(r.messageExpression)}, Reason:${reason}, FieldPath:${q(r.fieldPath)}, OptionalOldSelf:${old}}`;
}

function hasNewlines(s: string): boolean {
  return /[\n\r]/.test(s);
}

function child(path: string, name: string): string {
  return path ? `${path}.${name}` : name;
}

/**
 * A rule's fieldPath (`.a.b`, `.m['key']`) checked against the node's schema, as the field path it
 * names: properties are children, additionalProperties keys are `[key]`. Undefined when invalid.
 */
export function normalizeFieldPath(fieldPath: string, schema: JsonObject): string | undefined {
  const tokens = fieldPath.match(/'(?:[^'\\]|\\.)*'|[.[\]]|[^.[\]']+/g) ?? [];
  let out = '';
  let s: JsonObject = schema;
  const step = (name: string): boolean => {
    if (isObject(s.properties)) {
      const p = s.properties[name];
      if (!isObject(p)) return false;
      out = child(out, name);
      s = p;
      return true;
    }
    if (isObject(s.additionalProperties)) {
      out += `[${name}]`;
      s = s.additionalProperties;
      return true;
    }
    return false;
  };
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i];
    if (t === '.') {
      const name = tokens[++i];
      if (name === undefined || ['.', '[', ']'].includes(name) || !step(name)) return undefined;
    } else if (t === '[') {
      const quoted = tokens[++i];
      if (!quoted || !/^'.*'$/s.test(quoted) || tokens[++i] !== ']') return undefined;
      if (!step(quoted.slice(1, -1).replace(/\\(.)/g, '$1'))) return undefined;
    } else return undefined;
  }
  return out;
}

interface CompileContext {
  env: Environment;
  errors: StatusCause[];
}

function ruleField(schemaPath: string, i: number, what: string): string {
  return `${schemaPath}.x-kubernetes-validations[${i}].${what}`;
}

/** The kube-apiserver checks on a rule's fields that come before compiling it. */
function checkRuleFields(r: ValidationRule, i: number, schema: JsonObject, schemaPath: string): StatusCause[] {
  const out: StatusCause[] = [];
  const rule = (r.rule ?? '').trim();
  const message = (r.message ?? '').trim();
  if (rule === '') out.push(cause.required(ruleField(schemaPath, i, 'rule'), 'rule is not specified'));
  else if (r.message !== undefined && r.message !== '' && message === '') out.push(cause.invalid(ruleField(schemaPath, i, 'message'), r.message, 'message must be non-empty if specified'));
  else if ((r.message ?? '').length > 2048) out.push(cause.invalid(ruleField(schemaPath, i, 'message'), r.message, 'message must have a maximum length of 2048 characters'));
  else if (hasNewlines(message)) out.push(cause.invalid(ruleField(schemaPath, i, 'message'), r.message, 'message must not contain line breaks'));
  else if (hasNewlines(rule) && message === '') out.push(cause.required(ruleField(schemaPath, i, 'message'), 'message must be specified if rule contains line breaks'));
  if (r.messageExpression !== undefined && r.messageExpression !== '' && r.messageExpression.trim() === '') {
    out.push(cause.required(ruleField(schemaPath, i, 'messageExpression'), 'messageExpression must be non-empty if specified'));
  }
  if (r.reason !== undefined && !SUPPORTED_REASONS.includes(r.reason)) out.push(cause.notSupported(ruleField(schemaPath, i, 'reason'), r.reason, SUPPORTED_REASONS));
  if (r.fieldPath !== undefined && r.fieldPath !== '') {
    if (r.fieldPath.trim() === '') out.push(cause.invalid(ruleField(schemaPath, i, 'fieldPath'), r.fieldPath, 'fieldPath must be non-empty if specified'));
    else if (hasNewlines(r.fieldPath)) out.push(cause.invalid(ruleField(schemaPath, i, 'fieldPath'), r.fieldPath, 'fieldPath must not contain line breaks'));
    else if (normalizeFieldPath(r.fieldPath, schema) === undefined) out.push(cause.invalid(ruleField(schemaPath, i, 'fieldPath'), r.fieldPath, 'fieldPath must be a valid path'));
  }
  return out;
}

function compileRules(rules: ValidationRule[], schema: JsonObject, type: DeclType, schemaPath: string, uncorrelatable: string | undefined, ctx: CompileContext): CompiledRule[] {
  const fieldErrors = rules.flatMap((r, i) => checkRuleFields(r, i, schema, schemaPath));
  if (fieldErrors.length) {
    ctx.errors.push(...fieldErrors);
    return [];
  }
  const env = ctx.env.clone().registerVariable('self', type.cel).registerVariable('oldSelf', type.cel);
  let optionalEnv: Environment | undefined;
  const out: CompiledRule[] = [];
  const invalid = (i: number, what: string, detail: string): void => {
    ctx.errors.push({ reason: 'FieldValueInvalid', message: `Invalid value: ${goRule(rules[i]!)}: ${detail}`, field: ruleField(schemaPath, i, what) });
  };
  const compile = (e: Environment, source: string, want: string, prefix: string, wrongType: string): ParseResult | string => {
    try {
      const program = e.parse(source);
      const checked = program.check();
      if (!checked.valid) return `${prefix}${celIssue(source, checked.error)}`;
      const unknown = undefinedHasField(program.ast, { self: type, oldSelf: type });
      if (unknown) return `${prefix}${celIssue(source, { summary: `No such key: ${unknown.field}`, range: { start: unknown.start } })}`;
      return checked.type === want ? program : wrongType;
    } catch (err) {
      return `${prefix}${celIssue(source, err)}`;
    }
  };
  rules.forEach((r, i) => {
    // With optionalOldSelf, oldSelf is an optional (none on create) and the rule is typed so.
    const optional = r.optionalOldSelf === true;
    if (optional) optionalEnv ??= ctx.env.clone().registerVariable('self', type.cel).registerVariable('oldSelf', `optional<${type.cel}>`);
    const program = compile(optional ? optionalEnv! : env, r.rule, 'bool', 'compilation failed: ', 'cel expression must evaluate to a bool');
    if (typeof program === 'string') return invalid(i, 'rule', program);
    const usesOldSelf = usesIdentifier(program.ast as ASTNode, 'oldSelf');
    if (usesOldSelf && uncorrelatable !== undefined) {
      ctx.errors.push(cause.invalid(ruleField(schemaPath, i, 'rule'), r.rule, `oldSelf cannot be used on the uncorrelatable portion of the schema within ${uncorrelatable}`));
      return;
    }
    if (!usesOldSelf && r.optionalOldSelf !== undefined) {
      ctx.errors.push(cause.invalid(ruleField(schemaPath, i, 'optionalOldSelf'), r.optionalOldSelf, 'may not be set if oldSelf is not used in rule'));
      return;
    }
    let message: ParseResult | undefined;
    if (r.messageExpression?.trim()) {
      const m = compile(env, r.messageExpression, 'string', 'messageExpression compilation failed: ', 'must evaluate to a string');
      if (typeof m === 'string') return invalid(i, 'messageExpression', m);
      message = m;
    }
    out.push({ rule: r, program, optional, ...(message ? { message } : {}), usesOldSelf, fieldPath: r.fieldPath ? (normalizeFieldPath(r.fieldPath, schema) ?? '') : '' });
  });
  return out;
}

function rulesOf(schema: JsonObject): ValidationRule[] {
  const v = schema['x-kubernetes-validations'];
  return Array.isArray(v) ? v.filter(isObject).map((r) => r as unknown as ValidationRule) : [];
}

function hasRules(schema: unknown): boolean {
  if (!isObject(schema)) return false;
  if (rulesOf(schema).length) return true;
  if (hasRules(schema.items) || hasRules(schema.additionalProperties)) return true;
  if (Array.isArray(schema.allOf) && schema.allOf.some(hasRules)) return true;
  return isObject(schema.properties) && Object.values(schema.properties).some(hasRules);
}

const isEmbedded = (s: JsonObject): boolean => s['x-kubernetes-embedded-resource'] === true;

/**
 * The validator tree for a schema node; undefined where no rule lives at or below it. Rules come from
 * `v`, which is the node's schema `s` or one of its allOf branches: a branch's rules apply to the
 * node's values, typed by the node's schema (as kube does).
 */
function buildNode(v: JsonObject, s: JsonObject, type: DeclType, resourceRoot: boolean, schemaPath: string, uncorrelatable: string | undefined, ctx: CompileContext): RuleNode | undefined {
  if (!hasRules(v)) return undefined;
  const node: RuleNode = { schema: s, type, rules: compileRules(rulesOf(v), v, type, schemaPath, uncorrelatable, ctx), properties: new Map(), allOf: [] };
  if (type.kind === 'object' && isObject(v.properties) && isObject(s.properties)) {
    for (const [k, p] of Object.entries(v.properties)) {
      const sp = s.properties[k];
      const t = type.fields.get(k)?.type ?? type.unnamed.get(k);
      if (!isObject(p) || !isObject(sp) || !t || (resourceRoot && k === 'metadata')) continue;
      const sub = buildNode(p, sp, t, isEmbedded(sp), `${schemaPath}.properties[${k}]`, uncorrelatable, ctx);
      if (sub) node.properties.set(k, sub);
    }
  }
  if (type.kind === 'map' && isObject(v.additionalProperties) && isObject(s.additionalProperties)) {
    const sp = s.additionalProperties;
    node.additional = buildNode(v.additionalProperties, sp, type.elem, isEmbedded(sp), `${schemaPath}.additionalProperties`, uncorrelatable, ctx);
  }
  if (type.kind === 'list' && isObject(v.items) && isObject(s.items)) {
    const sp = s.items;
    const keyed = s['x-kubernetes-list-type'] === 'map' && Array.isArray(s['x-kubernetes-list-map-keys']);
    if (keyed) node.listMapKeys = (s['x-kubernetes-list-map-keys'] as unknown[]).map(String);
    node.items = buildNode(v.items, sp, type.elem, isEmbedded(sp), `${schemaPath}.items`, uncorrelatable ?? (keyed ? undefined : `${schemaPath}.items`), ctx);
  }
  (Array.isArray(v.allOf) ? v.allOf : []).forEach((branch, i) => {
    const sub = isObject(branch) ? buildNode(branch, s, type, resourceRoot, `${schemaPath}.allOf[${i}]`, uncorrelatable, ctx) : undefined;
    if (sub) node.allOf.push(sub);
  });
  return node;
}

interface Walk {
  causes: StatusCause[];
  warnings: string[];
}

function fieldError(r: CompiledRule, path: string, schemaType: string, detail: string): StatusCause {
  const field = r.fieldPath ? child(path, r.fieldPath) : path || '<nil>';
  switch (r.rule.reason) {
    case 'FieldValueForbidden':
      return cause.forbidden(field, detail);
    case 'FieldValueRequired':
      return cause.required(field, detail);
    case 'FieldValueDuplicate':
      return cause.duplicate(field, schemaType);
    default:
      return cause.invalid(field, schemaType, detail);
  }
}

function ruleErrorString(r: ValidationRule): string {
  return r.message?.trim() ? r.message.trim() : r.rule.trim();
}

function messageFor(r: CompiledRule, vars: Record<string, unknown>): string {
  if (r.message) {
    try {
      const m: unknown = r.message(vars);
      const trimmed = typeof m === 'string' ? m.trim() : '';
      if (trimmed && !hasNewlines(trimmed) && Buffer.byteLength(trimmed) <= MAX_MESSAGE_EXPRESSION_BYTES) return trimmed;
    } catch {
      // kube logs a failed messageExpression and falls back to the message.
    }
  }
  return r.rule.message?.trim() ? r.rule.message.trim() : `failed rule: ${ruleErrorString(r.rule)}`;
}

/** cel-go words its runtime errors in lower case (`no such key: x`). */
function evalError(e: unknown): string {
  const err = e as { summary?: string; message?: string };
  const text = err.summary ?? String(err.message ?? e).split('\n')[0] ?? '';
  return text.charAt(0).toLowerCase() + text.slice(1);
}

function evaluateRules(node: RuleNode, value: unknown, old: unknown, path: string, unchanged: boolean, out: Walk): void {
  if (node.rules.length === 0) return;
  const schemaType = typeof node.schema.type === 'string' ? node.schema.type : '';
  const self = toCel(value, node.type);
  const oldSelf = old === undefined || old === null ? undefined : toCel(old, node.type);
  for (const r of node.rules) {
    if (r.usesOldSelf && oldSelf === undefined && !r.optional) continue;
    const vars = r.optional ? { self, oldSelf: oldSelf === undefined ? Optional.none() : Optional.of(oldSelf) } : { self, oldSelf };
    let result: unknown;
    try {
      result = r.program(vars);
    } catch (e) {
      out.causes.push(cause.invalid(path || '<nil>', schemaType, `${evalError(e)} evaluating rule: ${ruleErrorString(r.rule)}`));
      continue;
    }
    if (result === true) continue;
    const err = fieldError(r, path, schemaType, messageFor(r, { self, oldSelf }));
    if (!r.usesOldSelf && unchanged) out.warnings.push(`${err.field}: ${err.message}`);
    else out.causes.push(err);
  }
}

function correlatedItem(node: RuleNode, item: unknown, oldList: unknown): unknown {
  if (!node.listMapKeys || !Array.isArray(oldList) || !isObject(item)) return undefined;
  const keys = node.listMapKeys;
  return oldList.find((o) => isObject(o) && keys.every((k) => deepEqual(o[k], item[k])));
}

function walk(node: RuleNode, value: unknown, old: unknown, path: string, ancestorUnchanged: boolean, out: Walk): void {
  if (value === undefined || value === null) return;
  // Ratcheting: a value equal to its old self (or inside an unchanged, uncorrelatable ancestor) keeps its errors as warnings.
  const unchanged = old !== undefined ? deepEqual(value, old) : ancestorUnchanged;
  evaluateRules(node, value, old, path, unchanged, out);
  for (const branch of node.allOf) walk(branch, value, old, path, ancestorUnchanged, out);
  if (Array.isArray(value) && node.items) {
    value.forEach((v, i) => walk(node.items!, v, correlatedItem(node, v, old), `${path}[${i}]`, unchanged, out));
  } else if (isObject(value)) {
    const oldObj = isObject(old) ? old : undefined;
    for (const [k, sub] of node.properties) walk(sub, value[k], oldObj?.[k], child(path, k), oldObj !== undefined && unchanged, out);
    if (node.additional) for (const k of Object.keys(value)) walk(node.additional, value[k], oldObj?.[k], `${path}[${k}]`, oldObj !== undefined && unchanged, out);
  }
}

export interface CelValidator {
  /**
   * Evaluates every rule on `obj` (with `old` on updates). Returns the violations; violations of
   * values an update left unchanged go to `warnings`. `prior` are the schema's own causes: if the
   * object does not have the declared shape, the rules are skipped as kube does.
   */
  validate(obj: unknown, old: unknown, prior: StatusCause[], warnings: string[]): StatusCause[];
}

export interface CompiledRules {
  validator?: CelValidator;
  /** Why the CRD must be refused (rules that do not compile, bad messages or field paths). */
  errors: StatusCause[];
}

const cache = new Map<string, CompiledRules>();
const CACHE_SIZE = 64;

/**
 * Compiles the x-kubernetes-validations of a CRD version's schema, once per distinct schema (the CRD's
 * validation and its serving share the result). Errors name fields from `openAPIV3Schema` on.
 */
export function compileValidationRules(openAPIV3Schema: unknown): CompiledRules {
  if (!hasRules(openAPIV3Schema)) return { errors: [] };
  const schemaPath = 'openAPIV3Schema';
  const key = JSON.stringify(openAPIV3Schema);
  const hit = cache.get(key);
  if (hit) return hit;
  const schema = openAPIV3Schema as JsonObject;
  const env = kubernetesEnvironment();
  const types = new TypeRegistry(env);
  const rootType = types.declType(schema, true);
  const ctx: CompileContext = { env, errors: [] };
  const root = rootType ? buildNode(schema, schema, rootType, true, schemaPath, undefined, ctx) : undefined;
  const compiled: CompiledRules = { errors: ctx.errors };
  if (root && ctx.errors.length === 0) {
    compiled.validator = {
      validate(obj, old, prior, warnings) {
        if (prior.some((c) => c.reason && BLOCKING_REASONS.has(c.reason))) {
          return [cause.invalid('<nil>', 'null', 'some validation rules were not checked because the object was invalid; correct the existing errors to complete validation')];
        }
        const out: Walk = { causes: [], warnings };
        walk(root, obj, old, '', false, out);
        return out.causes;
      },
    };
  }
  if (cache.size >= CACHE_SIZE) cache.delete(cache.keys().next().value!);
  cache.set(key, compiled);
  return compiled;
}

import { ApiError, errors } from './errors.js';
import { clone, deepEqual } from './meta.js';
import { isObject, type JsonObject } from './types.js';

/** RFC 7386 JSON merge patch: objects merge, null deletes, anything else replaces. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isObject(patch)) return clone(patch);
  const out: JsonObject = isObject(target) ? clone(target) : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

// RFC 6902 JSON patch. Malformed patches are 400s; operations that cannot apply (missing path,
// failed test) are 422s, matching the apiserver.

function parsePointer(path: string): string[] {
  if (path === '') return [];
  if (!path.startsWith('/')) throw errors.badRequest(`invalid JSON pointer "${path}"`);
  return path
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function unprocessable(msg: string): ApiError {
  return new ApiError(422, 'Invalid', msg);
}

function getAt(doc: unknown, tokens: string[], path: string): unknown {
  let cur = doc;
  for (const t of tokens) {
    if (Array.isArray(cur)) {
      const i = arrayIndex(t, cur.length, false, path);
      cur = cur[i];
    } else if (isObject(cur) && Object.prototype.hasOwnProperty.call(cur, t)) cur = cur[t];
    else throw unprocessable(`the server rejected our request due to an error in our request: doc is missing path: "${path}": missing value`);
  }
  return cur;
}

function arrayIndex(t: string, len: number, forAdd: boolean, path: string): number {
  if (forAdd && t === '-') return len;
  if (!/^(0|[1-9]\d*)$/.test(t)) throw unprocessable(`the server rejected our request due to an error in our request: invalid array index "${t}" in "${path}"`);
  const i = Number(t);
  if (i > len || (!forAdd && i >= len)) throw unprocessable(`the server rejected our request due to an error in our request: array index ${i} out of bounds in "${path}"`);
  return i;
}

function parentOf(doc: unknown, tokens: string[], path: string): { parent: unknown; last: string } {
  if (tokens.length === 0) throw unprocessable(`cannot operate on the document root in "${path}"`);
  const parent = getAt(doc, tokens.slice(0, -1), path);
  return { parent, last: tokens[tokens.length - 1]! };
}

function addAt(doc: unknown, path: string, value: unknown): unknown {
  const tokens = parsePointer(path);
  if (tokens.length === 0) return clone(value);
  const { parent, last } = parentOf(doc, tokens, path);
  if (Array.isArray(parent)) parent.splice(arrayIndex(last, parent.length, true, path), 0, clone(value));
  else if (isObject(parent)) parent[last] = clone(value);
  else throw unprocessable(`the server rejected our request due to an error in our request: doc is missing path: "${path}"`);
  return doc;
}

function removeAt(doc: unknown, path: string): { doc: unknown; removed: unknown } {
  const tokens = parsePointer(path);
  const { parent, last } = parentOf(doc, tokens, path);
  if (Array.isArray(parent)) {
    const i = arrayIndex(last, parent.length, false, path);
    return { doc, removed: parent.splice(i, 1)[0] };
  }
  if (isObject(parent) && Object.prototype.hasOwnProperty.call(parent, last)) {
    const removed = parent[last];
    delete parent[last];
    return { doc, removed };
  }
  throw unprocessable(`the server rejected our request due to an error in our request: doc is missing path: "${path}": missing value`);
}

export function jsonPatch(target: unknown, patch: unknown): unknown {
  if (!Array.isArray(patch)) throw errors.badRequest('json: cannot unmarshal object into Go value of type jsonpatch.Patch');
  let doc = clone(target);
  for (const op of patch) {
    if (!isObject(op) || typeof op.op !== 'string') throw errors.badRequest('invalid JSON patch operation: missing "op"');
    const path = op.path;
    if (typeof path !== 'string') throw errors.badRequest(`invalid JSON patch operation "${op.op}": missing "path"`);
    switch (op.op) {
      case 'add':
        if (!('value' in op)) throw errors.badRequest('invalid JSON patch "add": missing value');
        doc = addAt(doc, path, op.value);
        break;
      case 'remove':
        doc = removeAt(doc, path).doc;
        break;
      case 'replace': {
        if (!('value' in op)) throw errors.badRequest('invalid JSON patch "replace": missing value');
        const tokens = parsePointer(path);
        if (tokens.length === 0) {
          doc = clone(op.value);
          break;
        }
        getAt(doc, tokens, path);
        const { parent, last } = parentOf(doc, tokens, path);
        if (Array.isArray(parent)) parent[arrayIndex(last, parent.length, false, path)] = clone(op.value);
        else (parent as JsonObject)[last] = clone(op.value);
        break;
      }
      case 'move': {
        if (typeof op.from !== 'string') throw errors.badRequest('invalid JSON patch "move": missing from');
        const r = removeAt(doc, op.from);
        doc = addAt(r.doc, path, r.removed);
        break;
      }
      case 'copy': {
        if (typeof op.from !== 'string') throw errors.badRequest('invalid JSON patch "copy": missing from');
        doc = addAt(doc, path, getAt(doc, parsePointer(op.from), op.from));
        break;
      }
      case 'test': {
        const actual = getAt(doc, parsePointer(path), path);
        if (!deepEqual(actual, op.value)) throw unprocessable(`the server rejected our request due to an error in our request: testing value ${path} failed: test failed`);
        break;
      }
      default:
        throw errors.badRequest(`Unexpected kind: ${String(op.op)}`);
    }
  }
  return doc;
}

// Strategic merge patch: a merge patch that knows, per field, whether a list merges by a key
// (containers by name, ports by containerPort ...) and honours the `$patch`, `$retainKeys`,
// `$setElementOrder/` and `$deleteFromPrimitiveList/` directives kubectl sends.

export interface PatchField {
  /** Lists: merge elements on this key instead of replacing the list. */
  key?: string;
  /** 'merge' for keyed or primitive-set lists; 'retainKeys' for unions (volume sources, strategy). */
  strategy?: 'merge' | 'retainKeys' | 'merge,retainKeys';
  /** Metadata of the map, or of the list's elements. */
  fields?: PatchMeta;
}

export type PatchMeta = Record<string, PatchField>;

const DELETE = Symbol('delete');

function stripDirectives(v: unknown): unknown {
  if (Array.isArray(v)) return v.filter((e) => !(isObject(e) && Object.keys(e).length === 1 && '$patch' in e)).map(stripDirectives);
  if (!isObject(v)) return v;
  const out: JsonObject = {};
  for (const [k, x] of Object.entries(v)) {
    if (k === '$patch' || k === '$retainKeys' || k.startsWith('$setElementOrder/') || k.startsWith('$deleteFromPrimitiveList/')) continue;
    if (x === null) continue;
    out[k] = stripDirectives(x);
  }
  return out;
}

function mergeMap(orig: JsonObject, patch: JsonObject, meta: PatchMeta | undefined): JsonObject | typeof DELETE {
  if (patch.$patch === 'delete') return DELETE;
  if (patch.$patch === 'replace') return stripDirectives(patch) as JsonObject;
  if (patch.$patch !== undefined && patch.$patch !== 'merge') throw errors.badRequest(`Unknown patch type: ${String(patch.$patch)}`);
  const out = clone(orig);
  const orders: Record<string, unknown[]> = {};
  const deletions: Record<string, unknown[]> = {};
  for (const [k, v] of Object.entries(patch)) {
    if (k === '$patch' || k === '$retainKeys') continue;
    if (k.startsWith('$setElementOrder/')) {
      if (Array.isArray(v)) orders[k.slice('$setElementOrder/'.length)] = v;
      continue;
    }
    if (k.startsWith('$deleteFromPrimitiveList/')) {
      if (Array.isArray(v)) deletions[k.slice('$deleteFromPrimitiveList/'.length)] = v;
      continue;
    }
    if (v === null) {
      delete out[k];
      continue;
    }
    const fm = meta?.[k];
    if (isObject(v)) {
      const r = mergeMap(isObject(out[k]) ? (out[k] as JsonObject) : {}, v, fm?.fields);
      if (r === DELETE) delete out[k];
      else out[k] = r;
    } else if (Array.isArray(v)) {
      if (fm?.strategy?.includes('merge') && !fm.strategy.startsWith('retainKeys')) {
        out[k] = mergeList(Array.isArray(out[k]) ? (out[k] as unknown[]) : [], v, fm);
      } else out[k] = stripDirectives(v);
    } else out[k] = v;
  }
  for (const [f, values] of Object.entries(deletions)) {
    if (Array.isArray(out[f])) out[f] = (out[f] as unknown[]).filter((x) => !values.some((d) => deepEqual(d, x)));
  }
  for (const [f, order] of Object.entries(orders)) {
    if (Array.isArray(out[f])) out[f] = reorder(out[f] as unknown[], order, meta?.[f]?.key);
  }
  if (Array.isArray(patch.$retainKeys)) {
    const keep = new Set(patch.$retainKeys as string[]);
    for (const k of Object.keys(out)) if (!keep.has(k)) delete out[k];
  }
  return out;
}

function mergeList(orig: unknown[], patch: unknown[], fm: PatchField): unknown[] {
  if (patch.some((e) => isObject(e) && e.$patch === 'replace' && Object.keys(e).length === 1)) {
    return stripDirectives(patch.filter((e) => !(isObject(e) && e.$patch === 'replace' && Object.keys(e).length === 1))) as unknown[];
  }
  const out = clone(orig);
  const key = fm.key;
  for (const el of patch) {
    if (!key || !isObject(el)) {
      // A set of primitives: union, keeping the original order first.
      if (!out.some((o) => deepEqual(o, el))) out.push(clone(el));
      continue;
    }
    const idx = out.findIndex((o) => isObject(o) && deepEqual(o[key], el[key]));
    if (el.$patch === 'delete') {
      for (let i = out.length - 1; i >= 0; i--) {
        const o = out[i];
        if (isObject(o) && deepEqual(o[key], el[key])) out.splice(i, 1);
      }
      continue;
    }
    if (idx >= 0) {
      const r = mergeMap(out[idx] as JsonObject, el, fm.fields);
      if (r === DELETE) out.splice(idx, 1);
      else out[idx] = r;
    } else {
      const r = mergeMap({}, el, fm.fields);
      if (r !== DELETE) out.push(r);
    }
  }
  return out;
}

/** Puts the elements named by a `$setElementOrder` list first, in that order, the rest after. */
function reorder(list: unknown[], order: unknown[], key: string | undefined): unknown[] {
  const ident = (e: unknown): unknown => (key && isObject(e) ? e[key] : e);
  const orderIds = order.map(ident);
  const rank = (e: unknown): number => {
    const i = orderIds.findIndex((o) => deepEqual(o, ident(e)));
    return i < 0 ? Number.MAX_SAFE_INTEGER : i;
  };
  return list
    .map((e, i) => ({ e, i, r: rank(e) }))
    .sort((a, b) => a.r - b.r || a.i - b.i)
    .map((x) => x.e);
}

export function strategicMergePatch(target: unknown, patch: unknown, meta: PatchMeta): unknown {
  if (!isObject(patch)) throw errors.badRequest('strategic merge patch must be a JSON object');
  const r = mergeMap(isObject(target) ? target : {}, patch, meta);
  if (r === DELETE) throw errors.badRequest('a strategic merge patch may not delete the whole object');
  return r;
}

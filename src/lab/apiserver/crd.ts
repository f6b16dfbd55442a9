import { compileValidationRules } from './cel.js';
import { cause, errors, type StatusCause } from './errors.js';
import { validJsonPath, evalJsonPath } from './jsonpath.js';
import { validateListTypes } from './listtype.js';
import { deepEqual, timestamp, validateName } from './meta.js';
import { compareKubeVersions, type CrdVersion, type PrinterColumn, type ResourceType, type Strategy, type StrategyContext } from './registry.js';
import { applyDefaults, checkSchema, compileSchema, prune, validateAgainst } from './schema.js';
import { isObject, type JsonObject, type KubeObject } from './types.js';

// CustomResourceDefinitions: validation and status of the CRD object itself, and the ResourceType a
// CRD makes served (with the strategy that prunes, defaults and validates its objects).

export const CRD_GROUP = 'apiextensions.k8s.io';
export const CRD_RESOURCE = 'customresourcedefinitions';
export const CRD_CLEANUP_FINALIZER = 'customresourcecleanup.apiextensions.k8s.io';

function at(o: unknown, ...path: string[]): unknown {
  let cur = o;
  for (const p of path) cur = isObject(cur) ? cur[p] : undefined;
  return cur;
}

function names(crd: KubeObject): JsonObject {
  return (at(crd, 'spec', 'names') as JsonObject | undefined) ?? {};
}

function versionsOf(crd: KubeObject): JsonObject[] {
  const v = at(crd, 'spec', 'versions');
  return Array.isArray(v) ? v.filter(isObject) : [];
}

function defaultCrd(crd: KubeObject): void {
  if (!isObject(crd.spec)) return;
  const spec = crd.spec;
  const n = isObject(spec.names) ? spec.names : (spec.names = {});
  if (typeof n.kind === 'string') {
    n.singular ??= n.kind.toLowerCase();
    n.listKind ??= `${n.kind}List`;
  }
  spec.conversion ??= { strategy: 'None' };
  for (const v of versionsOf(crd)) {
    if (Array.isArray(v.additionalPrinterColumns)) {
      for (const c of v.additionalPrinterColumns) if (isObject(c)) c.priority ??= 0;
    }
  }
}

const LOWER_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const COLUMN_TYPES = ['integer', 'number', 'string', 'boolean', 'date'];

function validateCrd(crd: KubeObject, old: KubeObject | undefined): StatusCause[] {
  const out: StatusCause[] = [];
  const spec = crd.spec;
  if (!isObject(spec)) return [cause.required('spec')];
  const group = spec.group;
  if (typeof group !== 'string' || group === '') out.push(cause.required('spec.group'));
  else if (!group.includes('.') || validateName(group, 'subdomain', 'spec.group').length) out.push(cause.invalid('spec.group', group, 'should be a domain with at least one dot'));
  const n = names(crd);
  if (typeof n.plural !== 'string' || n.plural === '') out.push(cause.required('spec.names.plural'));
  else if (!LOWER_LABEL.test(n.plural)) out.push(cause.invalid('spec.names.plural', n.plural, 'a lowercase RFC 1123 label must consist of lower case alphanumeric characters or \'-\''));
  if (typeof n.kind !== 'string' || n.kind === '') out.push(cause.required('spec.names.kind'));
  else if (!/^[A-Za-z][A-Za-z0-9]*$/.test(n.kind)) out.push(cause.invalid('spec.names.kind', n.kind, 'must be a valid kind name'));
  if (typeof n.singular === 'string' && !LOWER_LABEL.test(n.singular)) out.push(cause.invalid('spec.names.singular', n.singular, 'a lowercase RFC 1123 label'));
  for (const [i, s] of (Array.isArray(n.shortNames) ? n.shortNames : []).entries()) {
    if (typeof s !== 'string' || !LOWER_LABEL.test(s)) out.push(cause.invalid(`spec.names.shortNames[${i}]`, s, 'a lowercase RFC 1123 label'));
  }
  if (typeof n.plural === 'string' && typeof group === 'string' && crd.metadata.name !== `${n.plural}.${group}`) {
    out.push(cause.invalid('metadata.name', crd.metadata.name, 'must be spec.names.plural+"."+spec.group'));
  }
  if (spec.scope !== 'Namespaced' && spec.scope !== 'Cluster') {
    out.push(spec.scope === undefined ? cause.required('spec.scope') : cause.notSupported('spec.scope', spec.scope, ['Cluster', 'Namespaced']));
  }
  const versions = versionsOf(crd);
  if (versions.length === 0) out.push(cause.required('spec.versions', 'must have exactly one version marked as storage version'));
  const seen = new Set<string>();
  let storage = 0;
  versions.forEach((v, i) => {
    const f = `spec.versions[${i}]`;
    if (typeof v.name !== 'string' || !LOWER_LABEL.test(v.name)) out.push(cause.invalid(`${f}.name`, v.name ?? '', 'must be a valid DNS label'));
    else if (seen.has(v.name)) out.push(cause.duplicate(`${f}.name`, v.name));
    else seen.add(v.name as string);
    if (typeof v.served !== 'boolean') out.push(cause.required(`${f}.served`));
    if (typeof v.storage !== 'boolean') out.push(cause.required(`${f}.storage`));
    if (v.storage === true) storage++;
    const schema = at(v, 'schema', 'openAPIV3Schema');
    if (!isObject(schema)) out.push(cause.required(`${f}.schema.openAPIV3Schema`, 'schemas are required'));
    else {
      if (schema.type !== 'object') out.push(cause.required(`${f}.schema.openAPIV3Schema.type`, 'must not be empty at the root'));
      const err = checkSchema(schema);
      if (err) out.push(cause.invalid(`${f}.schema.openAPIV3Schema`, '', err));
      else out.push(...compileValidationRules(schema).errors.map((c) => ({ ...c, field: `${f}.schema.${c.field ?? ''}` })));
    }
    const cols = Array.isArray(v.additionalPrinterColumns) ? v.additionalPrinterColumns : [];
    cols.forEach((c, j) => {
      const cf = `${f}.additionalPrinterColumns[${j}]`;
      if (!isObject(c)) return;
      if (!c.name) out.push(cause.required(`${cf}.name`));
      if (!COLUMN_TYPES.includes(c.type as string)) out.push(cause.notSupported(`${cf}.type`, c.type, COLUMN_TYPES));
      const jp = typeof c.jsonPath === 'string' ? validJsonPath(c.jsonPath) : 'must be a JSONPath';
      if (jp) out.push(cause.invalid(`${cf}.jsonPath`, c.jsonPath ?? '', jp));
    });
    const sel = Array.isArray(v.selectableFields) ? v.selectableFields : [];
    sel.forEach((s, j) => {
      const jp = isObject(s) && typeof s.jsonPath === 'string' ? validJsonPath(s.jsonPath) : 'must be a JSONPath';
      if (jp) out.push(cause.invalid(`${f}.selectableFields[${j}].jsonPath`, isObject(s) ? (s.jsonPath ?? '') : '', jp));
    });
  });
  if (versions.length > 0 && storage !== 1) out.push(cause.invalid('spec.versions', versions.map((v) => v.name).join(','), 'must have exactly one version marked as storage version'));
  if (old && at(old, 'spec', 'scope') !== spec.scope) out.push(cause.invalid('spec.scope', spec.scope ?? '', 'field is immutable'));
  if (old && at(old, 'spec', 'group') !== spec.group) out.push(cause.invalid('spec.group', spec.group ?? '', 'field is immutable'));
  return out;
}

function condition(type: string, status: string, reason: string, message: string, prev: unknown): JsonObject {
  const old = Array.isArray(prev) ? prev.find((c) => isObject(c) && c.type === type) : undefined;
  const lastTransitionTime = isObject(old) && old.status === status && typeof old.lastTransitionTime === 'string' ? old.lastTransitionTime : timestamp();
  return { type, status, lastTransitionTime, reason, message };
}

/** A names conflict with another CRD of the same group, or undefined. */
function namesConflict(crd: KubeObject, ctx: StrategyContext): string | undefined {
  const n = names(crd);
  const group = at(crd, 'spec', 'group');
  for (const other of ctx.list(CRD_GROUP, CRD_RESOURCE)) {
    if (other.metadata.name === crd.metadata.name || at(other, 'spec', 'group') !== group) continue;
    // Only names another CRD was granted count; a refused CRD claims nothing.
    const on = (at(other, 'status', 'acceptedNames') as JsonObject | undefined) ?? {};
    if (on.plural === n.plural) return `"${String(n.plural)}" is already in use`;
    if (on.kind === n.kind) return `"${String(n.kind)}" is already in use`;
    const shorts = Array.isArray(on.shortNames) ? on.shortNames : [];
    const mine = Array.isArray(n.shortNames) ? n.shortNames : [];
    const clash = mine.find((s) => shorts.includes(s) || s === on.plural || s === on.singular);
    if (clash) return `"${String(clash)}" is already in use`;
  }
  return undefined;
}

/** What the CRD controllers would settle on: accepted names, Established, stored versions. */
export function computeCrdStatus(crd: KubeObject, ctx: StrategyContext, prev: unknown): JsonObject {
  const n = names(crd);
  const prevStatus = isObject(prev) ? prev : {};
  const conflict = namesConflict(crd, ctx);
  const storage = versionsOf(crd).find((v) => v.storage === true)?.name;
  const stored = new Set<string>(Array.isArray(prevStatus.storedVersions) ? (prevStatus.storedVersions as string[]) : []);
  if (typeof storage === 'string') stored.add(storage);
  const prevConds = prevStatus.conditions;
  const conditions = conflict
    ? [
        condition('NamesAccepted', 'False', 'PluralConflict', conflict, prevConds),
        condition('Established', 'False', 'NotAccepted', 'not all names are accepted', prevConds),
      ]
    : [
        condition('NamesAccepted', 'True', 'NoConflicts', 'no conflicts found', prevConds),
        condition('Established', 'True', 'InitialNamesAccepted', 'the initial names have been accepted', prevConds),
      ];
  if (crd.metadata.deletionTimestamp) conditions.push(condition('Terminating', 'True', 'InstanceDeletionInProgress', 'CustomResource deletion is in progress', prevConds));
  const acceptedNames: JsonObject = conflict ? (isObject(prevStatus.acceptedNames) ? prevStatus.acceptedNames : { plural: '', kind: '' }) : {
    plural: n.plural,
    singular: n.singular,
    kind: n.kind,
    listKind: n.listKind,
    ...(Array.isArray(n.shortNames) && n.shortNames.length ? { shortNames: n.shortNames } : {}),
    ...(Array.isArray(n.categories) && n.categories.length ? { categories: n.categories } : {}),
  };
  return { acceptedNames, conditions, storedVersions: [...stored] };
}

export const crdStrategy: Strategy = {
  prepareForCreate(crd, ctx) {
    defaultCrd(crd);
    crd.metadata.finalizers = [...new Set([...(crd.metadata.finalizers ?? []), CRD_CLEANUP_FINALIZER])];
    if (validateCrd(crd, undefined).length === 0) crd.status = computeCrdStatus(crd, ctx, undefined);
    else delete crd.status;
  },
  prepareForUpdate(crd, old, ctx) {
    if (ctx.subresource === 'status') return;
    defaultCrd(crd);
    if (validateCrd(crd, old).length === 0) crd.status = computeCrdStatus(crd, ctx, old.status);
  },
  validate(crd, old, ctx) {
    return ctx.subresource === 'status' ? [] : validateCrd(crd, old);
  },
};

export function isEstablished(crd: KubeObject): boolean {
  const conds = at(crd, 'status', 'conditions');
  return Array.isArray(conds) && conds.some((c) => isObject(c) && c.type === 'Established' && c.status === 'True');
}

function printerColumns(v: JsonObject): PrinterColumn[] {
  const cols = Array.isArray(v.additionalPrinterColumns) ? v.additionalPrinterColumns.filter(isObject) : [];
  return cols.map((c) => ({
    name: String(c.name),
    type: String(c.type),
    jsonPath: String(c.jsonPath),
    ...(typeof c.format === 'string' ? { format: c.format } : {}),
    ...(typeof c.description === 'string' ? { description: c.description } : {}),
    priority: typeof c.priority === 'number' ? c.priority : 0,
  }));
}

/** The served resource for an established CRD; `previous` keeps identity across CRD updates. */
export function resourceTypeForCrd(crd: KubeObject): ResourceType {
  const spec = crd.spec as JsonObject;
  const n = names(crd);
  const versions = new Map<string, CrdVersion>();
  for (const v of versionsOf(crd)) {
    if (v.served !== true) continue;
    versions.set(String(v.name), {
      name: String(v.name),
      schema: compileSchema(at(v, 'schema', 'openAPIV3Schema')),
      status: isObject(at(v, 'subresources', 'status')),
      printerColumns: printerColumns(v),
      selectableFields: (Array.isArray(v.selectableFields) ? v.selectableFields : []).filter(isObject).map((s) => String(s.jsonPath)),
    });
  }
  const storageVersion = String(versionsOf(crd).find((v) => v.storage === true)?.name ?? [...versions.keys()][0]);
  const fields: ResourceType['fields'] = {};
  for (const v of versions.values()) {
    for (const jp of v.selectableFields) {
      fields[jp.replace(/^\./, '')] = (o) => {
        const r = evalJsonPath(o, jp)[0];
        return r === undefined || r === null ? undefined : typeof r === 'string' ? r : JSON.stringify(r);
      };
    }
  }
  const rt: ResourceType = {
    group: String(spec.group),
    versions: [...versions.keys()].sort(compareKubeVersions),
    storageVersion,
    resource: String(n.plural),
    singular: String(n.singular ?? String(n.kind).toLowerCase()),
    kind: String(n.kind),
    listKind: String(n.listKind ?? `${String(n.kind)}List`),
    namespaced: spec.scope === 'Namespaced',
    shortNames: Array.isArray(n.shortNames) ? n.shortNames.map(String) : [],
    categories: Array.isArray(n.categories) ? n.categories.map(String) : [],
    subresources: [],
    hasGeneration: true,
    allowCreateOnUpdate: false,
    requireResourceVersionOnUpdate: true,
    returnDeletedObject: true,
    gracefulDelete: false,
    keepStatusOnCreate: false,
    nameRule: 'subdomain',
    fields,
    strategy: {},
    crd: { name: crd.metadata.name!, versions, terminating: !!crd.metadata.deletionTimestamp },
  };
  rt.strategy = customResourceStrategy(rt);
  return rt;
}

function versionInfo(rt: ResourceType, version: string): CrdVersion {
  const v = rt.crd?.versions.get(version);
  if (!v) throw errors.noRoute();
  return v;
}

/** Prunes unknown fields (reporting them per fieldValidation), then applies schema defaults. */
function pruneAndDefault(rt: ResourceType, obj: KubeObject, ctx: StrategyContext): void {
  const v = versionInfo(rt, ctx.version);
  if (!v.schema) return;
  const dropped = prune(obj, v.schema.schema);
  if (dropped.length) {
    if (ctx.fieldValidation === 'Strict') {
      throw errors.badRequest(`${rt.kind} in version "${ctx.version}" cannot be handled as a ${rt.kind}: strict decoding error: ${dropped.map((d) => `unknown field "${d}"`).join(', ')}`);
    }
    if (ctx.fieldValidation === 'Warn') for (const d of dropped) ctx.warnings.push(`unknown field "${d}"`);
  }
  applyDefaults(obj, v.schema.schema);
}

function customResourceStrategy(rt: ResourceType): Strategy {
  return {
    prepareForCreate(obj, ctx) {
      if (versionInfo(rt, ctx.version).status) delete obj.status;
      pruneAndDefault(rt, obj, ctx);
    },
    prepareForUpdate(obj, _old, ctx) {
      pruneAndDefault(rt, obj, ctx);
    },
    validate(obj, old, ctx) {
      const v = versionInfo(rt, ctx.version);
      if (!v.schema) return [];
      // metadata is the apiserver's; only the rest is the schema's business.
      const { metadata: _m, ...rest } = obj;
      const causes = validateAgainst(v.schema, { ...rest, metadata: {} }).filter((c) => !c.field?.startsWith('metadata'));
      // Set and map lists must not repeat themselves; an update may keep what the old object already repeated.
      if (!old || validateListTypes(v.schema.schema, { ...old, metadata: {} }).length === 0) causes.push(...validateListTypes(v.schema.schema, rest));
      return v.schema.rules ? [...causes, ...v.schema.rules.validate(obj, old, causes, ctx.warnings)] : causes;
    },
  };
}

/**
 * A custom resource as another version sees it (conversion None): its apiVersion only, then pruned to that
 * version's schema, as kube's schemaCoercingConverter does; a field only the other version has is dropped.
 */
export function convertCustomResource(rt: ResourceType, obj: KubeObject, version: string): void {
  obj.apiVersion = `${rt.group}/${version}`;
  const schema = rt.crd?.versions.get(version)?.schema;
  if (schema) prune(obj, schema.schema);
}

/** Whether two CRD specs would serve differently (so the served type must be rebuilt). */
export function crdServingChanged(a: KubeObject | undefined, b: KubeObject): boolean {
  return !a || !deepEqual(a.spec, b.spec) || !deepEqual(at(a, 'status', 'acceptedNames'), at(b, 'status', 'acceptedNames')) || isEstablished(a) !== isEstablished(b) || !!a.metadata.deletionTimestamp !== !!b.metadata.deletionTimestamp;
}

import { errors } from './errors.js';
import { NETWORK_POLICY_DEFINITIONS } from './networkpolicy.js';
import type { Registry, ResourceType } from './registry.js';
import { isObject, type JsonObject } from './types.js';

// /openapi/v2, the Swagger document kubectl validates manifests against when it cannot leave that to
// the server: always for the items of a `kind: List` (and for kinds whose OpenAPI v3 PATCH lacks
// fieldValidation). kubectl asks only for gnostic's protobuf encoding
// (`application/com.github.proto-openapi.spec.v2@v1.0+protobuf`), so the document is served as that
// message too. Definitions: the built-in kinds the lab has schemas for, and every served CRD version,
// converted as kube-apiserver converts structural schemas to v2. Kinds without a definition are not
// validated by kubectl; the server still validates them. PATCH operations deliberately do not list
// strategic merge: kubectl then computes apply patches from its compiled-in types.

const OPENAPI_V2_PROTOBUF_ACCEPT = 'application/com.github.proto-openapi.spec.v2@v1.0+protobuf';
/** What the protobuf reply is labelled: Go's mime parser (client-go) refuses the `@` form kubectl asks with. */
export const OPENAPI_V2_PROTOBUF = 'application/com.github.proto-openapi.spec.v2.v1.0+protobuf';

/** The representation an Accept header asks for, or a 406 when it is neither protobuf nor JSON. */
export function openApiV2Format(accept: string | undefined): 'protobuf' | 'json' {
  const types = (accept ?? '*/*').split(',').map((t) => t.split(';')[0]!.trim().toLowerCase());
  for (const t of types) {
    if (t === OPENAPI_V2_PROTOBUF_ACCEPT || t === OPENAPI_V2_PROTOBUF) return 'protobuf';
    if (t === 'application/json' || t === '*/*' || t === 'application/*') return 'json';
  }
  throw errors.notAcceptable(['application/json', OPENAPI_V2_PROTOBUF_ACCEPT]);
}

// ---- the document

const ANY: JsonObject = {};
const STRING: JsonObject = { type: 'string' };
const STRING_MAP: JsonObject = { type: 'object', additionalProperties: STRING };
const OBJECT_META: JsonObject = { $ref: '#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta' };

/**
 * The other built-in kinds, by the top-level fields kube publishes for them (under upstream's
 * definition names). What lies below those fields is left to the server, so kubectl catches typos at
 * the top and in metadata; a kind missing here is simply not validated by kubectl.
 */
const TOP_LEVEL_FIELDS: Array<[group: string, kind: string, definition: string, fields: JsonObject]> = [
  ['', 'Namespace', 'io.k8s.api.core.v1.Namespace', { spec: ANY, status: ANY }],
  ['', 'Node', 'io.k8s.api.core.v1.Node', { spec: ANY, status: ANY }],
  ['', 'Pod', 'io.k8s.api.core.v1.Pod', { spec: ANY, status: ANY }],
  ['', 'Service', 'io.k8s.api.core.v1.Service', { spec: ANY, status: ANY }],
  ['', 'Endpoints', 'io.k8s.api.core.v1.Endpoints', { subsets: { type: 'array', items: ANY } }],
  [
    '',
    'Event',
    'io.k8s.api.core.v1.Event',
    {
      action: STRING,
      count: { type: 'integer', format: 'int32' },
      eventTime: STRING,
      firstTimestamp: STRING,
      involvedObject: ANY,
      lastTimestamp: STRING,
      message: STRING,
      reason: STRING,
      related: ANY,
      reportingComponent: STRING,
      reportingInstance: STRING,
      series: ANY,
      source: ANY,
      type: STRING,
    },
  ],
  ['', 'ConfigMap', 'io.k8s.api.core.v1.ConfigMap', { binaryData: STRING_MAP, data: STRING_MAP, immutable: { type: 'boolean' } }],
  ['', 'Secret', 'io.k8s.api.core.v1.Secret', { data: STRING_MAP, immutable: { type: 'boolean' }, stringData: STRING_MAP, type: STRING }],
  ['', 'ServiceAccount', 'io.k8s.api.core.v1.ServiceAccount', { automountServiceAccountToken: { type: 'boolean' }, imagePullSecrets: { type: 'array', items: ANY }, secrets: { type: 'array', items: ANY } }],
  ['discovery.k8s.io', 'EndpointSlice', 'io.k8s.api.discovery.v1.EndpointSlice', { addressType: STRING, endpoints: { type: 'array', items: ANY }, ports: { type: 'array', items: ANY } }],
  ['coordination.k8s.io', 'Lease', 'io.k8s.api.coordination.v1.Lease', { spec: ANY }],
  ['apps', 'Deployment', 'io.k8s.api.apps.v1.Deployment', { spec: ANY, status: ANY }],
  ['apps', 'DaemonSet', 'io.k8s.api.apps.v1.DaemonSet', { spec: ANY, status: ANY }],
  ['rbac.authorization.k8s.io', 'Role', 'io.k8s.api.rbac.v1.Role', { rules: { type: 'array', items: ANY } }],
  ['rbac.authorization.k8s.io', 'ClusterRole', 'io.k8s.api.rbac.v1.ClusterRole', { aggregationRule: ANY, rules: { type: 'array', items: ANY } }],
  ['rbac.authorization.k8s.io', 'RoleBinding', 'io.k8s.api.rbac.v1.RoleBinding', { roleRef: ANY, subjects: { type: 'array', items: ANY } }],
  ['rbac.authorization.k8s.io', 'ClusterRoleBinding', 'io.k8s.api.rbac.v1.ClusterRoleBinding', { roleRef: ANY, subjects: { type: 'array', items: ANY } }],
  ['apiextensions.k8s.io', 'CustomResourceDefinition', 'io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinition', { spec: ANY, status: ANY }],
];

function topLevelDefinitions(): JsonObject {
  const defs: JsonObject = {};
  for (const [group, kind, name, fields] of TOP_LEVEL_FIELDS) {
    defs[name] = {
      type: 'object',
      properties: { apiVersion: { type: 'string' }, kind: { type: 'string' }, metadata: OBJECT_META, ...fields },
      'x-kubernetes-group-version-kind': [{ group, version: 'v1', kind }],
    };
  }
  return defs;
}

/** Built-in kinds with a published schema: their definitions (one of them carries the kind's GVK). */
const BUILTIN_DEFINITIONS = [NETWORK_POLICY_DEFINITIONS, topLevelDefinitions()];

/** `crd.seine.dev` -> `dev.seine.crd`: kube names CRD definitions by the reversed group. */
function crdDefinitionName(rt: ResourceType, version: string): string {
  return `${rt.group.split('.').reverse().join('.')}.${version}.${rt.kind}`;
}

const V2_PRIMITIVES = new Set(['string', 'integer', 'number', 'boolean']);

/**
 * A structural OpenAPI v3 schema as kube-apiserver publishes it in v2: what v2 (and kubectl's parser)
 * cannot say is dropped. Preserved-unknown and int-or-string values become untyped (anything goes);
 * an object becomes a kind (with properties) or a map (with additionalProperties).
 */
export function toV2Schema(s: unknown): JsonObject {
  if (!isObject(s)) return {};
  const out: JsonObject = {};
  if (typeof s.description === 'string') out.description = s.description;
  for (const [k, v] of Object.entries(s)) {
    if (k.startsWith('x-kubernetes-') && k !== 'x-kubernetes-preserve-unknown-fields' && k !== 'x-kubernetes-int-or-string' && k !== 'x-kubernetes-validations') out[k] = v;
  }
  if (s['x-kubernetes-preserve-unknown-fields'] === true || s['x-kubernetes-int-or-string'] === true) return out;
  if (isObject(s.properties)) {
    out.type = 'object';
    out.properties = Object.fromEntries(Object.entries(s.properties).map(([k, v]) => [k, toV2Schema(v)]));
    if (Array.isArray(s.required) && s.required.length) out.required = s.required;
  } else if (s.type === 'object' && isObject(s.additionalProperties)) {
    out.type = 'object';
    out.additionalProperties = toV2Schema(s.additionalProperties);
  } else if (s.type === 'array' && isObject(s.items)) {
    out.type = 'array';
    out.items = toV2Schema(s.items);
  } else if (typeof s.type === 'string' && V2_PRIMITIVES.has(s.type)) {
    out.type = s.type;
    if (typeof s.format === 'string') out.format = s.format;
  }
  return out;
}

function crdDefinition(rt: ResourceType, version: string, schema: JsonObject): JsonObject {
  const def = toV2Schema(schema);
  const props = isObject(def.properties) ? def.properties : {};
  def.properties = { ...props, apiVersion: { type: 'string' }, kind: { type: 'string' }, metadata: OBJECT_META };
  def['x-kubernetes-group-version-kind'] = [{ group: rt.group, version, kind: rt.kind }];
  return def;
}

export function openApiV2Definitions(reg: Registry): JsonObject {
  const defs: JsonObject = {};
  for (const set of BUILTIN_DEFINITIONS) Object.assign(defs, set);
  for (const [group, versions] of [['', ['v1']] as const, ...reg.groups()]) {
    for (const version of versions) {
      for (const rt of reg.inGroupVersion(group, version)) {
        const schema = rt.crd?.versions.get(version)?.schema?.schema;
        if (schema) defs[crdDefinitionName(rt, version)] = crdDefinition(rt, version, schema);
      }
    }
  }
  return defs;
}

/** Converts one group/version's OpenAPI v3 paths to Swagger 2.0 operations. */
export function v2Paths(v3Paths: JsonObject): JsonObject {
  const paths: JsonObject = {};
  for (const [p, ops] of Object.entries(v3Paths)) {
    const converted: JsonObject = {};
    for (const [verb, op] of Object.entries(ops as JsonObject)) {
      const { requestBody, responses: _r, parameters, ...rest } = op as JsonObject;
      converted[verb] = {
        ...rest,
        ...(requestBody ? { consumes: Object.keys((requestBody as JsonObject).content as JsonObject) } : {}),
        produces: ['application/json', 'application/yaml'],
        parameters: ((parameters as JsonObject[] | undefined) ?? []).map((q) => ({ name: q.name, in: 'query', type: 'string', uniqueItems: true, ...(q.description ? { description: q.description } : {}) })),
        responses: { '200': { description: 'OK' } },
      };
    }
    paths[p] = converted;
  }
  return paths;
}

// ---- gnostic's openapi_v2.Document as protobuf (field numbers from gnostic's OpenAPIv2.proto)

/** A protobuf message under construction: fields appended in order, nested messages length-delimited. */
class Writer {
  private chunks: Buffer[] = [];

  private varint(n: number): void {
    const bytes: number[] = [];
    let v = n;
    while (v >= 0x80) {
      bytes.push((v % 0x80) | 0x80);
      v = Math.floor(v / 0x80);
    }
    bytes.push(v);
    this.chunks.push(Buffer.from(bytes));
  }

  private key(field: number, wire: 0 | 1 | 2): void {
    this.varint(field * 8 + wire);
  }

  bytes(field: number, b: Buffer): this {
    this.key(field, 2);
    this.varint(b.length);
    this.chunks.push(b);
    return this;
  }

  string(field: number, s: unknown): this {
    return typeof s === 'string' && s !== '' ? this.bytes(field, Buffer.from(s, 'utf8')) : this;
  }

  strings(field: number, list: unknown): this {
    if (Array.isArray(list)) for (const s of list) this.bytes(field, Buffer.from(String(s), 'utf8'));
    return this;
  }

  bool(field: number, b: unknown): this {
    if (b === true) {
      this.key(field, 0);
      this.varint(1);
    }
    return this;
  }

  int(field: number, n: unknown): this {
    if (typeof n === 'number' && Number.isInteger(n) && n > 0) {
      this.key(field, 0);
      this.varint(n);
    }
    return this;
  }

  double(field: number, n: unknown): this {
    if (typeof n !== 'number') return this;
    const b = Buffer.alloc(8);
    b.writeDoubleLE(n);
    this.key(field, 1);
    this.chunks.push(b);
    return this;
  }

  message(field: number, m: Writer | undefined): this {
    return m ? this.bytes(field, m.finish()) : this;
  }

  finish(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

/** Any{yaml}: gnostic keeps free-form values as YAML text; JSON is YAML. */
const anyValue = (v: unknown): Writer => new Writer().string(2, JSON.stringify(v));

/** NamedAny entries for the x-* keys of an object. */
function vendorExtensions(w: Writer, field: number, o: JsonObject): void {
  for (const [k, v] of Object.entries(o)) if (k.startsWith('x-')) w.message(field, new Writer().string(1, k).message(2, anyValue(v)));
}

function schemaMessage(s: JsonObject): Writer {
  const w = new Writer()
    .string(1, s.$ref)
    .string(2, s.format)
    .string(3, s.title)
    .string(4, s.description);
  if (s.default !== undefined) w.message(5, anyValue(s.default));
  w.double(7, s.maximum).double(9, s.minimum).int(11, s.maxLength).int(12, s.minLength).string(13, s.pattern).int(14, s.maxItems).int(15, s.minItems).bool(16, s.uniqueItems);
  w.strings(19, s.required);
  if (Array.isArray(s.enum)) for (const e of s.enum) w.message(20, anyValue(e));
  if (isObject(s.additionalProperties)) w.message(21, new Writer().message(1, schemaMessage(s.additionalProperties)));
  else if (typeof s.additionalProperties === 'boolean') w.message(21, new Writer().bool(2, s.additionalProperties));
  if (typeof s.type === 'string') w.message(22, new Writer().strings(1, [s.type]));
  if (isObject(s.items)) w.message(23, new Writer().message(1, schemaMessage(s.items)));
  if (isObject(s.properties)) {
    const props = new Writer();
    for (const [name, sub] of Object.entries(s.properties)) props.message(1, new Writer().string(1, name).message(2, schemaMessage(isObject(sub) ? sub : {})));
    w.message(25, props);
  }
  vendorExtensions(w, 31, s);
  return w;
}

function queryParameter(p: JsonObject): Writer {
  const sub = new Writer().bool(1, p.required).string(2, 'query').string(3, p.description).string(4, p.name).string(6, p.type).bool(20, p.uniqueItems);
  // ParametersItem{parameter: Parameter{non_body_parameter: NonBodyParameter{query_parameter_sub_schema}}}
  return new Writer().message(1, new Writer().message(2, new Writer().message(3, sub)));
}

function operationMessage(op: JsonObject): Writer {
  const w = new Writer().string(3, op.description).string(5, op.operationId).strings(6, op.produces).strings(7, op.consumes);
  for (const p of Array.isArray(op.parameters) ? op.parameters : []) if (isObject(p)) w.message(8, queryParameter(p));
  const responses = new Writer();
  for (const [code, r] of Object.entries(isObject(op.responses) ? op.responses : {})) {
    const response = new Writer().string(1, isObject(r) ? r.description : '');
    responses.message(1, new Writer().string(1, code).message(2, new Writer().message(1, response)));
  }
  w.message(9, responses);
  vendorExtensions(w, 13, op);
  return w;
}

const VERB_FIELDS: Record<string, number> = { get: 2, put: 3, post: 4, delete: 5, options: 6, head: 7, patch: 8 };

/** The document as gnostic's openapi_v2.Document message. */
export function encodeOpenApiV2(doc: JsonObject): Buffer {
  const info = isObject(doc.info) ? doc.info : {};
  const w = new Writer().string(1, doc.swagger).message(2, new Writer().string(1, info.title).string(2, info.version));
  const paths = new Writer();
  for (const [p, item] of Object.entries(isObject(doc.paths) ? doc.paths : {})) {
    const pw = new Writer();
    for (const [verb, op] of Object.entries(isObject(item) ? item : {})) {
      const field = VERB_FIELDS[verb];
      if (field && isObject(op)) pw.message(field, operationMessage(op));
    }
    paths.message(2, new Writer().string(1, p).message(2, pw));
  }
  w.message(8, paths);
  const defs = new Writer();
  for (const [name, s] of Object.entries(isObject(doc.definitions) ? doc.definitions : {})) defs.message(1, new Writer().string(1, name).message(2, schemaMessage(isObject(s) ? s : {})));
  w.message(9, defs);
  return w.finish();
}

// One encoding per registry generation: kubectl fetches the document on every validating apply.
const cache = new WeakMap<Registry, { generation: number; json: JsonObject; protobuf?: Buffer }>();

export function cachedOpenApiV2(reg: Registry, build: () => JsonObject, format: 'json' | 'protobuf'): JsonObject | Buffer {
  let c = cache.get(reg);
  if (!c || c.generation !== reg.generation) {
    c = { generation: reg.generation, json: build() };
    cache.set(reg, c);
  }
  if (format === 'json') return c.json;
  c.protobuf ??= encodeOpenApiV2(c.json);
  return c.protobuf;
}

import { networkPolicyValidationOptions, validateNetworkPolicySpec } from '../../k8s/networkpolicy-validation.js';
import { errors } from './errors.js';
import type { Strategy, StrategyContext } from './registry.js';
import { prune } from './schema.js';
import { isObject, type JsonObject, type KubeObject } from './types.js';

// networking.k8s.io/v1 NetworkPolicy as kube-apiserver serves it: the v1 defaults (port protocol TCP,
// policyTypes from the rules), its validation with the same field paths and messages (in src/k8s, which the
// controller shares), unknown fields handled per fieldValidation, and the OpenAPI definitions kubectl
// validates manifests against.

// service.ts imports it from here.
export { portNameErrors } from '../../k8s/names.js';

const META = 'io.k8s.apimachinery.pkg.apis.meta.v1';
const NET = 'io.k8s.api.networking.v1';
const ref = (name: string): JsonObject => ({ $ref: `#/definitions/${name}` });
const listOf = (items: JsonObject): JsonObject => ({ type: 'array', items });
const STRING = { type: 'string' };
const atomicList = (items: JsonObject, description: string): JsonObject => ({ ...listOf(items), description, 'x-kubernetes-list-type': 'atomic' });

/**
 * The definitions kube publishes for NetworkPolicy, with the shared meta types it refers to, named as
 * upstream names them (kubectl prints these names in its validation errors). `$ref`s point into this map.
 */
export const NETWORK_POLICY_DEFINITIONS: Record<string, JsonObject> = {
  [`${NET}.NetworkPolicy`]: {
    description: 'NetworkPolicy describes what network traffic is allowed for a set of Pods',
    type: 'object',
    properties: {
      apiVersion: STRING,
      kind: STRING,
      metadata: ref(`${META}.ObjectMeta`),
      spec: ref(`${NET}.NetworkPolicySpec`),
    },
    'x-kubernetes-group-version-kind': [{ group: 'networking.k8s.io', version: 'v1', kind: 'NetworkPolicy' }],
  },
  [`${NET}.NetworkPolicySpec`]: {
    description: 'NetworkPolicySpec provides the specification of a NetworkPolicy',
    type: 'object',
    properties: {
      podSelector: ref(`${META}.LabelSelector`),
      ingress: atomicList(ref(`${NET}.NetworkPolicyIngressRule`), 'ingress is a list of ingress rules to be applied to the selected pods.'),
      egress: atomicList(ref(`${NET}.NetworkPolicyEgressRule`), 'egress is a list of egress rules to be applied to the selected pods.'),
      policyTypes: atomicList(STRING, 'policyTypes is a list of rule types that the NetworkPolicy relates to: "Ingress", "Egress".'),
    },
  },
  [`${NET}.NetworkPolicyIngressRule`]: {
    type: 'object',
    properties: {
      ports: atomicList(ref(`${NET}.NetworkPolicyPort`), 'ports is a list of ports which should be made accessible on the pods selected for this rule.'),
      from: atomicList(ref(`${NET}.NetworkPolicyPeer`), 'from is a list of sources which should be able to access the pods selected for this rule.'),
    },
  },
  [`${NET}.NetworkPolicyEgressRule`]: {
    type: 'object',
    properties: {
      ports: atomicList(ref(`${NET}.NetworkPolicyPort`), 'ports is a list of destination ports for outgoing traffic.'),
      to: atomicList(ref(`${NET}.NetworkPolicyPeer`), 'to is a list of destinations for outgoing traffic of pods selected for this rule.'),
    },
  },
  [`${NET}.NetworkPolicyPort`]: {
    type: 'object',
    properties: {
      protocol: { type: 'string', description: 'protocol represents the protocol (TCP, UDP, or SCTP) which traffic must match. If not specified, this field defaults to TCP.' },
      port: ref('io.k8s.apimachinery.pkg.util.intstr.IntOrString'),
      endPort: { type: 'integer', format: 'int32' },
    },
  },
  [`${NET}.NetworkPolicyPeer`]: {
    type: 'object',
    properties: {
      podSelector: ref(`${META}.LabelSelector`),
      namespaceSelector: ref(`${META}.LabelSelector`),
      ipBlock: ref(`${NET}.IPBlock`),
    },
  },
  [`${NET}.IPBlock`]: {
    type: 'object',
    properties: { cidr: STRING, except: atomicList(STRING, 'except is a slice of CIDRs that should not be included within an IPBlock') },
    required: ['cidr'],
  },
  'io.k8s.apimachinery.pkg.util.intstr.IntOrString': { type: 'string', format: 'int-or-string' },
  [`${META}.LabelSelector`]: {
    type: 'object',
    properties: {
      matchLabels: { type: 'object', additionalProperties: STRING },
      matchExpressions: atomicList(ref(`${META}.LabelSelectorRequirement`), 'matchExpressions is a list of label selector requirements. The requirements are ANDed.'),
    },
    'x-kubernetes-map-type': 'atomic',
  },
  [`${META}.LabelSelectorRequirement`]: {
    type: 'object',
    properties: { key: STRING, operator: STRING, values: atomicList(STRING, 'values is an array of string values.') },
    required: ['key', 'operator'],
  },
  [`${META}.ObjectMeta`]: {
    type: 'object',
    properties: {
      annotations: { type: 'object', additionalProperties: STRING },
      creationTimestamp: ref(`${META}.Time`),
      deletionGracePeriodSeconds: { type: 'integer', format: 'int64' },
      deletionTimestamp: ref(`${META}.Time`),
      finalizers: { ...listOf(STRING), 'x-kubernetes-list-type': 'set', 'x-kubernetes-patch-strategy': 'merge' },
      generateName: STRING,
      generation: { type: 'integer', format: 'int64' },
      labels: { type: 'object', additionalProperties: STRING },
      managedFields: atomicList(ref(`${META}.ManagedFieldsEntry`), 'managedFields maps workflow-id and version to the set of fields that are managed by that workflow.'),
      name: STRING,
      namespace: STRING,
      ownerReferences: {
        ...listOf(ref(`${META}.OwnerReference`)),
        'x-kubernetes-list-map-keys': ['uid'],
        'x-kubernetes-list-type': 'map',
        'x-kubernetes-patch-merge-key': 'uid',
        'x-kubernetes-patch-strategy': 'merge',
      },
      resourceVersion: STRING,
      selfLink: STRING,
      uid: STRING,
    },
  },
  [`${META}.OwnerReference`]: {
    type: 'object',
    properties: {
      apiVersion: STRING,
      blockOwnerDeletion: { type: 'boolean' },
      controller: { type: 'boolean' },
      kind: STRING,
      name: STRING,
      uid: STRING,
    },
    required: ['apiVersion', 'kind', 'name', 'uid'],
    'x-kubernetes-map-type': 'atomic',
  },
  // Fields are managed by the server; their content is not the manifest author's business.
  [`${META}.ManagedFieldsEntry`]: {},
  [`${META}.Time`]: { type: 'string', format: 'date-time' },
};

/** A definition with its `$ref`s resolved in place (what pruning and JSON Schema validation need). */
export function inlineDefinition(name: string, defs: Record<string, JsonObject> = NETWORK_POLICY_DEFINITIONS): JsonObject {
  const resolve = (s: unknown): unknown => {
    if (Array.isArray(s)) return s.map(resolve);
    if (!isObject(s)) return s;
    if (typeof s.$ref === 'string') return inlineDefinition(s.$ref.replace('#/definitions/', ''), defs);
    return Object.fromEntries(Object.entries(s).map(([k, v]) => [k, k === 'x-kubernetes-group-version-kind' ? v : resolve(v)]));
  };
  const def = defs[name];
  if (!def) throw new Error(`no definition ${name}`);
  return resolve(def) as JsonObject;
}

const SPEC_SCHEMA = inlineDefinition(`${NET}.NetworkPolicySpec`);

// ---- unknown fields and wrong types, as kube's decoder reports them (400, not 422)

function jsonType(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return 'number';
  return typeof v;
}

/** The first value whose JSON type the schema does not allow, with its path. */
function typeMismatch(v: unknown, s: JsonObject, path: string): string | undefined {
  if (v === null || v === undefined) return undefined;
  if (s.format === 'int-or-string') {
    return typeof v === 'string' || (typeof v === 'number' && Number.isInteger(v)) ? undefined : `cannot unmarshal ${jsonType(v)} into Go struct field ${path} of type intstr.IntOrString`;
  }
  const want = typeof s.type === 'string' ? s.type : 'object';
  const ok =
    want === 'integer' ? typeof v === 'number' && Number.isInteger(v) : want === 'array' ? Array.isArray(v) : want === 'object' ? isObject(v) : want === 'number' ? typeof v === 'number' : typeof v === want;
  if (!ok) return `cannot unmarshal ${jsonType(v)} into Go struct field ${path} of type ${want === 'integer' ? 'int32' : want}`;
  if (Array.isArray(v) && isObject(s.items)) {
    for (const item of v) {
      const m = typeMismatch(item, s.items, path);
      if (m) return m;
    }
  }
  if (isObject(v)) {
    const props = isObject(s.properties) ? s.properties : {};
    for (const [k, child] of Object.entries(v)) {
      const sub = isObject(props[k]) ? props[k] : isObject(s.additionalProperties) ? s.additionalProperties : undefined;
      const m = sub ? typeMismatch(child, sub, `${path}.${k}`) : undefined;
      if (m) return m;
    }
  }
  return undefined;
}

function decode(np: KubeObject, ctx: StrategyContext): void {
  const notHandled = (why: string): Error => errors.badRequest(`NetworkPolicy in version "${ctx.version}" cannot be handled as a NetworkPolicy: ${why}`);
  const unknown = prune(np, { properties: { spec: SPEC_SCHEMA } });
  if (np.spec !== undefined && np.spec !== null) {
    const bad = typeMismatch(np.spec, SPEC_SCHEMA, 'spec');
    if (bad) throw notHandled(`json: ${bad}`);
  }
  if (unknown.length === 0) return;
  if (ctx.fieldValidation === 'Strict') throw notHandled(`strict decoding error: ${unknown.map((d) => `unknown field "${d}"`).join(', ')}`);
  if (ctx.fieldValidation === 'Warn') for (const d of unknown) ctx.warnings.push(`unknown field "${d}"`);
}

// ---- defaulting

/** Empty and null lists and maps are dropped on the way through Go types (all are omitempty there). */
function dropEmpty(v: unknown): void {
  if (Array.isArray(v)) return v.forEach(dropEmpty);
  if (!isObject(v)) return;
  for (const [k, child] of Object.entries(v)) {
    if (child === null || (Array.isArray(child) && child.length === 0) || (k === 'matchLabels' && isObject(child) && Object.keys(child).length === 0)) delete v[k];
    else dropEmpty(child);
  }
}

/** SetDefaults_NetworkPolicy and SetDefaults_NetworkPolicyPort of networking/v1. */
export function defaultNetworkPolicy(np: KubeObject): void {
  if (!isObject(np.spec)) np.spec = {};
  const spec = np.spec as JsonObject;
  dropEmpty(spec);
  // podSelector is a struct, not a pointer: absent reads back as the empty (select-all) selector.
  if (!isObject(spec.podSelector)) spec.podSelector = {};
  for (const [rules] of [['ingress'], ['egress']] as const) {
    if (!Array.isArray(spec[rules])) continue;
    for (const rule of spec[rules] as unknown[]) {
      if (!isObject(rule) || !Array.isArray(rule.ports)) continue;
      for (const port of rule.ports) if (isObject(port)) port.protocol ??= 'TCP';
    }
  }
  if (!Array.isArray(spec.policyTypes) || spec.policyTypes.length === 0) {
    // Ingress always; Egress only when there is at least one egress rule (an empty list is none).
    spec.policyTypes = Array.isArray(spec.egress) && spec.egress.length > 0 ? ['Ingress', 'Egress'] : ['Ingress'];
  }
}

export const networkPolicyStrategy: Strategy = {
  prepareForCreate(np, ctx) {
    decode(np, ctx);
    defaultNetworkPolicy(np);
  },
  prepareForUpdate(np, _old, ctx) {
    decode(np, ctx);
    defaultNetworkPolicy(np);
  },
  validate(np, old) {
    return validateNetworkPolicySpec(isObject(np.spec) ? np.spec : {}, networkPolicyValidationOptions(old?.spec));
  },
};

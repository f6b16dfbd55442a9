import ipaddr from 'ipaddr.js';
import { cause, errors, type StatusCause } from './errors.js';
import { validateLabelValue, validateQualifiedName } from './meta.js';
import type { Strategy, StrategyContext } from './registry.js';
import { prune } from './schema.js';
import { isObject, type JsonObject, type KubeObject } from './types.js';

// networking.k8s.io/v1 NetworkPolicy as kube-apiserver serves it: the v1 defaults (port protocol TCP,
// policyTypes from the rules), its validation with the same field paths and messages, unknown fields
// handled per fieldValidation, and the OpenAPI definitions kubectl validates manifests against.

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

// ---- validation (ValidateNetworkPolicySpec and the label selector rules it uses)

interface Options {
  /** An update may keep a pod selector that was already invalid (as kube allows). */
  allowInvalidLabelValues: boolean;
  /** CIDRs the old object had are not re-validated on update. */
  existingCIDRs: Set<string>;
}

const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);

export function validateLabelSelector(sel: unknown, field: string, allowInvalidLabelValues = false): StatusCause[] {
  if (!isObject(sel)) return [];
  const out: StatusCause[] = [];
  if (isObject(sel.matchLabels)) {
    for (const [k, v] of Object.entries(sel.matchLabels)) {
      out.push(...validateQualifiedName(k, `${field}.matchLabels`));
      if (typeof v === 'string') out.push(...validateLabelValue(v, `${field}.matchLabels`));
    }
  }
  list(sel.matchExpressions).forEach((req, i) => {
    const f = `${field}.matchExpressions[${i}]`;
    if (!isObject(req)) return;
    const values = list(req.values);
    switch (req.operator) {
      case 'In':
      case 'NotIn':
        if (values.length === 0) out.push(cause.required(`${f}.values`, "must be specified when `operator` is 'In' or 'NotIn'"));
        break;
      case 'Exists':
      case 'DoesNotExist':
        if (values.length > 0) out.push(cause.forbidden(`${f}.values`, "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"));
        break;
      default:
        out.push(cause.invalid(`${f}.operator`, req.operator ?? '', 'not a valid selector operator'));
    }
    out.push(...validateQualifiedName(typeof req.key === 'string' ? req.key : '', `${f}.key`));
    if (!allowInvalidLabelValues) values.forEach((v, j) => typeof v === 'string' && out.push(...validateLabelValue(v, `${f}.values[${j}]`)));
  });
  return out;
}

/** IsValidPortName: an IANA service name (what a named container port may be called). */
export function portNameErrors(name: string): string[] {
  const out: string[] = [];
  if (name.length > 15) out.push('must be no more than 15 characters');
  if (!/^[-a-z0-9]+$/.test(name)) out.push('must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)');
  if (!/[a-z]/.test(name)) out.push('must contain at least one letter (a-z)');
  if (name.includes('--')) out.push('must not contain consecutive hyphens');
  if (name.startsWith('-') || name.endsWith('-')) out.push('must not begin or end with a hyphen');
  return out;
}

const PORT_RANGE = 'must be between 1 and 65535, inclusive';
const validPort = (n: number): boolean => n >= 1 && n <= 65535;

function validatePort(p: JsonObject, f: string): StatusCause[] {
  const out: StatusCause[] = [];
  const protocols = ['TCP', 'UDP', 'SCTP'];
  if (p.protocol !== undefined && !protocols.includes(p.protocol as string)) out.push(cause.notSupported(`${f}.protocol`, p.protocol, protocols));
  const end = typeof p.endPort === 'number' ? p.endPort : undefined;
  if (typeof p.port === 'number') {
    if (!validPort(p.port)) out.push(cause.invalid(`${f}.port`, p.port, PORT_RANGE));
    if (end !== undefined) {
      if (end < p.port) out.push(cause.invalid(`${f}.endPort`, end, 'must be greater than or equal to `port`'));
      if (!validPort(end)) out.push(cause.invalid(`${f}.endPort`, end, PORT_RANGE));
    }
  } else if (typeof p.port === 'string') {
    if (end !== undefined) out.push(cause.invalid(`${f}.endPort`, end, 'may not be specified when `port` is non-numeric'));
    for (const msg of portNameErrors(p.port)) out.push(cause.invalid(`${f}.port`, p.port, msg));
  } else if (end !== undefined) {
    out.push(cause.invalid(`${f}.endPort`, end, 'may not be specified when `port` is not specified'));
  }
  return out;
}

/** A CIDR as kube's ParseCIDRSloppy reads it (leading zeros allowed), or undefined. */
function parseCidr(s: string): [ipaddr.IPv4 | ipaddr.IPv6, number] | undefined {
  const m = /^([^/]+)\/(\d{1,3})$/.exec(s);
  if (!m) return undefined;
  const bits = Number(m[2]);
  let addr = m[1]!;
  if (/^[0-9.]+$/.test(addr)) addr = addr.split('.').map((o) => (o === '' ? o : String(Number(o)))).join('.');
  if (!ipaddr.isValid(addr)) return undefined;
  const ip = ipaddr.parse(addr);
  if (ip.kind() === 'ipv4' && !ipaddr.IPv4.isValidFourPartDecimal(addr)) return undefined;
  if (bits > (ip.kind() === 'ipv4' ? 32 : 128)) return undefined;
  return [ip, bits];
}

const CIDR_INVALID = 'must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)';

function validateIpBlock(b: JsonObject, f: string, opts: Options): StatusCause[] {
  if (typeof b.cidr !== 'string' || b.cidr === '') return [cause.required(`${f}.cidr`)];
  const out: StatusCause[] = [];
  const cidr = parseCidr(b.cidr);
  if (!cidr) {
    if (!opts.existingCIDRs.has(b.cidr)) out.push(cause.invalid(`${f}.cidr`, b.cidr, CIDR_INVALID));
    return out;
  }
  list(b.except).forEach((e, i) => {
    const ef = `${f}.except[${i}]`;
    const ex = typeof e === 'string' ? parseCidr(e) : undefined;
    if (!ex) {
      if (typeof e !== 'string' || !opts.existingCIDRs.has(e)) out.push(cause.invalid(ef, e, CIDR_INVALID));
      return;
    }
    // A strict subset: same family, inside cidr, and a longer prefix.
    const inside = ex[0].kind() === cidr[0].kind() && (ex[0] as ipaddr.IPv4).match(cidr as [ipaddr.IPv4, number]);
    if (!inside || cidr[1] >= ex[1]) out.push(cause.invalid(ef, e, 'must be a strict subset of `cidr`'));
  });
  return out;
}

function validatePeer(peer: JsonObject, f: string, opts: Options): StatusCause[] {
  const out: StatusCause[] = [];
  let peers = 0;
  for (const sel of ['podSelector', 'namespaceSelector'] as const) {
    if (!isObject(peer[sel])) continue;
    peers++;
    out.push(...validateLabelSelector(peer[sel], `${f}.${sel}`, opts.allowInvalidLabelValues));
  }
  if (isObject(peer.ipBlock)) {
    peers++;
    out.push(...validateIpBlock(peer.ipBlock, `${f}.ipBlock`, opts));
  }
  if (peers === 0) out.push(cause.required(f, 'must specify a peer'));
  else if (peers > 1 && isObject(peer.ipBlock)) out.push(cause.forbidden(f, 'may not specify both ipBlock and another peer'));
  return out;
}

export function validateNetworkPolicySpec(spec: JsonObject, opts: Options): StatusCause[] {
  const out = validateLabelSelector(spec.podSelector, 'spec.podSelector', opts.allowInvalidLabelValues);
  for (const [rules, peersKey] of [['ingress', 'from'], ['egress', 'to']] as const) {
    list(spec[rules]).forEach((rule, i) => {
      if (!isObject(rule)) return;
      const f = `spec.${rules}[${i}]`;
      list(rule.ports).forEach((p, j) => isObject(p) && out.push(...validatePort(p, `${f}.ports[${j}]`)));
      list(rule[peersKey]).forEach((p, j) => isObject(p) && out.push(...validatePeer(p, `${f}.${peersKey}[${j}]`, opts)));
    });
  }
  const types = list(spec.policyTypes);
  if (types.length > 2) {
    // kube prints the Go value of the slice here.
    const shown = `[]networking.PolicyType{${types.map((t) => JSON.stringify(String(t))).join(', ')}}`;
    out.push({ reason: 'FieldValueInvalid', message: `Invalid value: ${shown}: may not specify more than two policyTypes`, field: 'spec.policyTypes' });
    return out;
  }
  types.forEach((t, i) => {
    if (t !== 'Ingress' && t !== 'Egress') out.push(cause.notSupported(`spec.policyTypes[${i}]`, t, ['Ingress', 'Egress']));
  });
  return out;
}

function cidrsOf(np: KubeObject): Set<string> {
  const out = new Set<string>();
  const spec = isObject(np.spec) ? np.spec : {};
  for (const [rules, peersKey] of [['ingress', 'from'], ['egress', 'to']] as const) {
    for (const rule of list(spec[rules])) {
      for (const peer of list(isObject(rule) ? rule[peersKey] : undefined)) {
        const b = isObject(peer) && isObject(peer.ipBlock) ? peer.ipBlock : undefined;
        if (!b) continue;
        if (typeof b.cidr === 'string') out.add(b.cidr);
        for (const e of list(b.except)) if (typeof e === 'string') out.add(e);
      }
    }
  }
  return out;
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
    const spec = isObject(np.spec) ? np.spec : {};
    const opts: Options = { allowInvalidLabelValues: false, existingCIDRs: new Set() };
    if (old) {
      opts.allowInvalidLabelValues = validateLabelSelector(isObject(old.spec) ? old.spec.podSelector : undefined, 'spec.podSelector').length > 0;
      opts.existingCIDRs = cidrsOf(old);
    }
    return validateNetworkPolicySpec(spec, opts);
  },
};

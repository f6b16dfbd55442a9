// networking.k8s.io NetworkPolicy validation as kube-apiserver runs it (ValidateNetworkPolicySpec, the label
// selector rules it uses), with the same field paths and messages: the lab's API server serves NetworkPolicy with
// it, and the controller holds MultiNetworkPolicy's spec, a NetworkPolicy spec, to the same rules.
import ipaddr from 'ipaddr.js';
import { cause, type StatusCause } from './field-errors.js';
import { portNameErrors, validateLabelValue, validateQualifiedName } from './names.js';

type JsonObject = Record<string, unknown>;

const isObject = (v: unknown): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);

export interface NetworkPolicyValidationOptions {
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

function validateIpBlock(b: JsonObject, f: string, opts: NetworkPolicyValidationOptions): StatusCause[] {
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

function validatePeer(peer: JsonObject, f: string, opts: NetworkPolicyValidationOptions): StatusCause[] {
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

export function validateNetworkPolicySpec(spec: JsonObject, opts: NetworkPolicyValidationOptions): StatusCause[] {
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

/**
 * ValidationOptionsForNetworking: what an update may keep of the old spec (a pod selector that was already
 * invalid, CIDRs that no longer parse); no old spec, a create, keeps nothing.
 */
export function networkPolicyValidationOptions(oldSpec?: unknown): NetworkPolicyValidationOptions {
  const spec = isObject(oldSpec) ? oldSpec : {};
  const existingCIDRs = new Set<string>();
  for (const [rules, peersKey] of [['ingress', 'from'], ['egress', 'to']] as const) {
    for (const rule of list(spec[rules])) {
      for (const peer of list(isObject(rule) ? rule[peersKey] : undefined)) {
        const b = isObject(peer) && isObject(peer.ipBlock) ? peer.ipBlock : undefined;
        if (!b) continue;
        if (typeof b.cidr === 'string') existingCIDRs.add(b.cidr);
        for (const e of list(b.except)) if (typeof e === 'string') existingCIDRs.add(e);
      }
    }
  }
  return { allowInvalidLabelValues: validateLabelSelector(spec.podSelector, 'spec.podSelector').length > 0, existingCIDRs };
}

import { cause, type StatusCause } from './errors.js';
import { deepEqual, validateName } from './meta.js';
import { portNameErrors } from './networkpolicy.js';
import type { ResourceClient } from './client.js';
import type { Strategy, StrategyContext } from './registry.js';
import { isObject, type JsonObject, type KubeObject } from './types.js';

// Services as kube-apiserver serves them: v1 defaulting (SetDefaults_Service), the Service registry's
// allocation of cluster IPs, node ports and health check node ports (pkg/registry/core/service/storage), and
// ValidateService / ValidateServiceUpdate with their field paths and messages. The lab is IPv4 single-stack.
// Allocations are read from the stored Services, so deleting a Service releases them.

export const NODE_PORT_MIN = 30000;
export const NODE_PORT_MAX = 32767;
const NODE_PORT_RANGE = `${NODE_PORT_MIN}-${NODE_PORT_MAX}`;
const MAX_AFFINITY_SECONDS = 86400;
const DEFAULT_AFFINITY_SECONDS = 10800;
const PORT_RANGE = 'must be between 1 and 65535, inclusive';

export interface ServiceNetwork {
  /** First address (as a 32-bit number) and size of the IPv4 service range. */
  base: number;
  size: number;
}

export function parseCidr4(cidr: string): ServiceNetwork {
  const m = /^(\d+)\.(\d+)\.(\d+)\.(\d+)\/(\d+)$/.exec(cidr);
  if (!m) throw new Error(`not an IPv4 CIDR: ${cidr}`);
  const ip = m.slice(1, 5).reduce((a, o) => a * 256 + Number(o), 0);
  const size = 2 ** (32 - Number(m[5]));
  return { base: ip - (ip % size), size };
}

export function ipToString(n: number): string {
  return [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join('.');
}

function ipToNumber(ip: string): number | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(ip);
  if (!m || m.slice(1).some((o) => Number(o) > 255)) return undefined;
  return m.slice(1, 5).reduce((a, o) => a * 256 + Number(o), 0);
}

function cidrString(net: ServiceNetwork): string {
  return `${ipToString(net.base)}/${32 - Math.log2(net.size)}`;
}

/** The address the `kubernetes` Service gets: the first of the range, as kube-apiserver reserves it. */
export function kubernetesServiceIP(net: ServiceNetwork): string {
  return ipToString(net.base + 1);
}

// ---- what a Service's type asks for (pkg/api/service/util.go, storage/alloc.go)

const ports = (spec: JsonObject): JsonObject[] => (Array.isArray(spec.ports) ? spec.ports.filter(isObject) : []);
const needsClusterIP = (spec: JsonObject): boolean => spec.type !== 'ExternalName';
const needsNodePorts = (spec: JsonObject): boolean => spec.type === 'NodePort' || spec.type === 'LoadBalancer';
const allocatesNodePorts = (spec: JsonObject): boolean => spec.type === 'NodePort' || (spec.type === 'LoadBalancer' && spec.allocateLoadBalancerNodePorts !== false);
const needsHealthCheck = (spec: JsonObject): boolean => spec.type === 'LoadBalancer' && spec.externalTrafficPolicy === 'Local';
const externallyAccessible = (spec: JsonObject): boolean =>
  needsNodePorts(spec) || (spec.type === 'ClusterIP' && Array.isArray(spec.externalIPs) && spec.externalIPs.length > 0);
const clusterIPs = (spec: JsonObject): string[] => (Array.isArray(spec.clusterIPs) ? spec.clusterIPs.map(String) : []);
const isHeadless = (spec: JsonObject): boolean => clusterIPs(spec).length === 1 && clusterIPs(spec)[0] === 'None';
const nodePortOf = (p: JsonObject): number => (typeof p.nodePort === 'number' ? p.nodePort : 0);
const unset = (v: unknown): boolean => v === undefined || v === null || v === '';

/** A Go `[]string` as `%#v` prints it, which is how kube shows a bad clusterIPs value. */
function goStrings(v: string[]): string {
  return `[]string{${v.map((s) => JSON.stringify(s)).join(', ')}}`;
}

function invalidList(field: string, v: string[], detail: string): StatusCause {
  return { reason: 'FieldValueInvalid', message: `Invalid value: ${goStrings(v)}: ${detail}`, field };
}

// ---- defaulting (pkg/apis/core/v1/defaults.go SetDefaults_Service)

function applyDefaults(spec: JsonObject): void {
  if (unset(spec.sessionAffinity)) spec.sessionAffinity = 'None';
  if (spec.sessionAffinity === 'ClientIP') {
    const cfg = spec.sessionAffinityConfig;
    const timeout = isObject(cfg) && isObject(cfg.clientIP) ? cfg.clientIP.timeoutSeconds : undefined;
    if (unset(timeout)) spec.sessionAffinityConfig = { clientIP: { timeoutSeconds: DEFAULT_AFFINITY_SECONDS } };
  }
  if (unset(spec.type)) spec.type = 'ClusterIP';
  for (const p of ports(spec)) {
    if (unset(p.protocol)) p.protocol = 'TCP';
    if (unset(p.targetPort) || p.targetPort === 0) p.targetPort = p.port;
  }
  if (externallyAccessible(spec) && unset(spec.externalTrafficPolicy)) spec.externalTrafficPolicy = 'Cluster';
  if (unset(spec.internalTrafficPolicy) && needsClusterIP(spec)) spec.internalTrafficPolicy = 'Cluster';
  if (spec.type === 'LoadBalancer' && unset(spec.allocateLoadBalancerNodePorts)) spec.allocateLoadBalancerNodePorts = true;
}

/**
 * normalizeClusterIPs: a client that only knows the singular clusterIP (old clients) gets the plural kept in step;
 * one that sets both is taken at its word (validation holds them to agreeing).
 */
function normalizeClusterIPs(spec: JsonObject, old: JsonObject | undefined): void {
  if (!needsClusterIP(spec)) return;
  const ips = clusterIPs(spec);
  if (!old) {
    if (!unset(spec.clusterIP) && ips.length === 0) spec.clusterIPs = [spec.clusterIP];
    return;
  }
  const samePlural = deepEqual(spec.clusterIPs, old.clusterIPs);
  if (unset(spec.clusterIP) && !unset(old.clusterIP) && samePlural) delete spec.clusterIPs;
  if (!unset(spec.clusterIP) && spec.clusterIP !== old.clusterIP && samePlural) spec.clusterIPs = [spec.clusterIP, ...ips.slice(1)];
}

// ---- updates (storage.patchAllocatedValues, strategy.dropTypeDependentFields)

/** What the client left out of an update but the Service already holds (kubectl replace, apply). */
function patchAllocatedValues(spec: JsonObject, old: JsonObject): void {
  if (needsClusterIP(old) && needsClusterIP(spec)) {
    if (unset(spec.clusterIP)) spec.clusterIP = old.clusterIP;
    if (clusterIPs(spec).length === 0 && clusterIPs(old).length > 0) spec.clusterIPs = [...clusterIPs(old)];
  }
  if (needsNodePorts(old) && needsNodePorts(spec)) {
    const inNew = new Set(ports(spec).map(nodePortOf));
    const used = new Set(ports(old).map(nodePortOf).filter((n) => n !== 0 && inNew.has(n)));
    // By port name: the client may have changed the port's other fields.
    const byName = new Map(ports(old).map((p) => [String(p.name ?? ''), nodePortOf(p)]));
    for (const p of ports(spec)) {
      const prev = byName.get(String(p.name ?? '')) ?? 0;
      if (nodePortOf(p) === 0 && prev !== 0 && !used.has(prev)) p.nodePort = prev;
    }
  }
  if (needsHealthCheck(old) && needsHealthCheck(spec) && unset(spec.healthCheckNodePort)) spec.healthCheckNodePort = old.healthCheckNodePort;
}

/** Fields the new type does not use are dropped when the client left them as they were. */
function dropTypeDependentFields(spec: JsonObject, old: JsonObject): void {
  if (needsClusterIP(old) && !needsClusterIP(spec)) {
    if (deepEqual(spec.clusterIP, old.clusterIP) && deepEqual(spec.clusterIPs, old.clusterIPs)) {
      delete spec.clusterIP;
      delete spec.clusterIPs;
    }
    if (deepEqual(spec.ipFamilies, old.ipFamilies)) delete spec.ipFamilies;
    if (deepEqual(spec.ipFamilyPolicy, old.ipFamilyPolicy)) delete spec.ipFamilyPolicy;
  }
  const oldNodePorts = new Set(ports(old).map(nodePortOf));
  if (needsNodePorts(old) && !needsNodePorts(spec) && ports(spec).every((p) => nodePortOf(p) === 0 || oldNodePorts.has(nodePortOf(p)))) {
    for (const p of ports(spec)) delete p.nodePort;
  }
  if (needsHealthCheck(old) && !needsHealthCheck(spec) && spec.healthCheckNodePort === old.healthCheckNodePort) delete spec.healthCheckNodePort;
  if (old.type === 'LoadBalancer' && spec.type !== 'LoadBalancer' && spec.allocateLoadBalancerNodePorts === old.allocateLoadBalancerNodePorts) delete spec.allocateLoadBalancerNodePorts;
  if (externallyAccessible(old) && !externallyAccessible(spec) && spec.externalTrafficPolicy === old.externalTrafficPolicy) delete spec.externalTrafficPolicy;
  if (needsClusterIP(old) && !needsClusterIP(spec) && spec.internalTrafficPolicy === old.internalTrafficPolicy) delete spec.internalTrafficPolicy;
}

// ---- allocation

interface Allocations {
  ips: Set<string>;
  nodePorts: Set<number>;
}

/** What every other Service holds (a Service's own values are never a conflict with itself). */
function allocations(ctx: StrategyContext, self: KubeObject): Allocations {
  const out: Allocations = { ips: new Set(), nodePorts: new Set() };
  for (const svc of ctx.list('', 'services')) {
    if (svc.metadata.uid === self.metadata.uid) continue;
    const spec = isObject(svc.spec) ? svc.spec : {};
    for (const ip of clusterIPs(spec)) out.ips.add(ip);
    if (typeof spec.clusterIP === 'string') out.ips.add(spec.clusterIP);
    for (const p of ports(spec)) if (nodePortOf(p)) out.nodePorts.add(nodePortOf(p));
    if (typeof spec.healthCheckNodePort === 'number') out.nodePorts.add(spec.healthCheckNodePort);
  }
  return out;
}

function freeNodePort(taken: Set<number>): number | undefined {
  for (let n = NODE_PORT_MIN; n <= NODE_PORT_MAX; n++) if (!taken.has(n)) return n;
  return undefined;
}

/** Fills in what the Service needs and the client did not ask for: a cluster IP, node ports, a health check port. */
function allocate(svc: KubeObject, net: ServiceNetwork, ctx: StrategyContext): void {
  const spec = svc.spec as JsonObject;
  const used = allocations(ctx, svc);
  if (needsClusterIP(spec)) {
    if (unset(spec.clusterIP) && clusterIPs(spec).length > 0) spec.clusterIP = clusterIPs(spec)[0];
    if (unset(spec.clusterIP)) {
      // The first address belongs to the `kubernetes` Service; the rest are handed out in order.
      for (let i = 2; i < net.size - 1; i++) {
        const ip = ipToString(net.base + i);
        if (!used.ips.has(ip)) {
          spec.clusterIP = ip;
          break;
        }
      }
      if (!unset(spec.clusterIP)) spec.clusterIPs = [spec.clusterIP];
    }
    if (unset(spec.ipFamilies)) spec.ipFamilies = ['IPv4'];
    if (unset(spec.ipFamilyPolicy)) spec.ipFamilyPolicy = 'SingleStack';
  }
  const taken = new Set([...used.nodePorts, ...ports(spec).map(nodePortOf), ...(typeof spec.healthCheckNodePort === 'number' ? [spec.healthCheckNodePort] : [])]);
  if (allocatesNodePorts(spec)) {
    for (const p of ports(spec)) {
      if (nodePortOf(p) !== 0) continue;
      const n = freeNodePort(taken);
      if (n === undefined) return;
      p.nodePort = n;
      taken.add(n);
    }
  }
  if (needsHealthCheck(spec) && unset(spec.healthCheckNodePort)) {
    const n = freeNodePort(taken);
    if (n !== undefined) spec.healthCheckNodePort = n;
  }
}

// ---- validation (pkg/apis/core/validation ValidateService, ValidateServiceUpdate; the allocators' refusals)

function validatePorts(spec: JsonObject, out: StatusCause[]): void {
  const list = ports(spec);
  const names = new Set<string>();
  list.forEach((p, i) => {
    const f = `spec.ports[${i}]`;
    const name = typeof p.name === 'string' ? p.name : '';
    if (list.length > 1 && name === '') out.push(cause.required(`${f}.name`));
    else if (name !== '') {
      out.push(...validateName(name, 'label', `${f}.name`));
      if (names.has(name)) out.push(cause.duplicate(`${f}.name`, name));
      names.add(name);
    }
    if (typeof p.port !== 'number' || !Number.isInteger(p.port) || p.port < 1 || p.port > 65535) out.push(cause.invalid(`${f}.port`, p.port ?? 0, PORT_RANGE));
    if (unset(p.protocol)) out.push(cause.required(`${f}.protocol`));
    else if (!['SCTP', 'TCP', 'UDP'].includes(p.protocol as string)) out.push(cause.notSupported(`${f}.protocol`, p.protocol, ['SCTP', 'TCP', 'UDP']));
    const tp = p.targetPort;
    if (typeof tp === 'number') {
      if (!Number.isInteger(tp) || tp < 1 || tp > 65535) out.push(cause.invalid(`${f}.targetPort`, tp, PORT_RANGE));
    } else if (typeof tp === 'string') {
      for (const msg of portNameErrors(tp)) out.push(cause.invalid(`${f}.targetPort`, tp, msg));
    } else out.push(cause.invalid(`${f}.targetPort`, 0, PORT_RANGE));
  });
  if (spec.type === 'ClusterIP') {
    list.forEach((p, i) => {
      if (nodePortOf(p) !== 0) out.push(cause.forbidden(`spec.ports[${i}].nodePort`, "may not be used when `type` is 'ClusterIP'"));
    });
  }
  const seenNodePorts = new Set<string>();
  const seenPorts = new Set<string>();
  list.forEach((p, i) => {
    if (nodePortOf(p) !== 0) {
      const key = `${String(p.protocol)}/${nodePortOf(p)}`;
      if (seenNodePorts.has(key)) out.push(cause.duplicate(`spec.ports[${i}].nodePort`, nodePortOf(p)));
      seenNodePorts.add(key);
    }
    const key = `${String(p.protocol)}/${String(p.port)}`;
    if (seenPorts.has(key)) {
      // kube prints the (protocol, port) key as the Go struct it is.
      const struct = `core.ServicePort{Name:"", Protocol:${JSON.stringify(String(p.protocol))}, AppProtocol:(*string)(nil), Port:${String(p.port)}, TargetPort:intstr.IntOrString{Type:0, IntVal:0, StrVal:""}, NodePort:0}`;
      out.push({ reason: 'FieldValueDuplicate', message: `Duplicate value: ${struct}`, field: `spec.ports[${i}]` });
    }
    seenPorts.add(key);
  });
}

function validateSessionAffinity(spec: JsonObject, out: StatusCause[]): void {
  const sa = spec.sessionAffinity;
  if (unset(sa)) out.push(cause.required('spec.sessionAffinity'));
  else if (sa !== 'ClientIP' && sa !== 'None') out.push(cause.notSupported('spec.sessionAffinity', sa, ['ClientIP', 'None']));
  const cfg = spec.sessionAffinityConfig;
  if (sa === 'None' && !unset(cfg)) out.push(cause.forbidden('spec.sessionAffinityConfig', 'must not be set when session affinity is None'));
  if (sa !== 'ClientIP') return;
  const detail = 'when session affinity type is ClientIP';
  if (!isObject(cfg)) return void out.push(cause.required('spec.sessionAffinityConfig', detail));
  if (!isObject(cfg.clientIP)) return void out.push(cause.required('spec.sessionAffinityConfig.clientIP', detail));
  const t = cfg.clientIP.timeoutSeconds;
  const f = 'spec.sessionAffinityConfig.clientIP.timeoutSeconds';
  if (unset(t)) out.push(cause.required(f, detail));
  else if (typeof t !== 'number' || !Number.isInteger(t) || t <= 0 || t > MAX_AFFINITY_SECONDS) out.push(cause.invalid(f, t, `must be greater than 0 and less than ${MAX_AFFINITY_SECONDS}`));
}

/** ValidateEndpointIP: what an address that traffic is sent to may not be. */
export function endpointIPErrors(ip: string): string[] {
  const n = ipToNumber(ip);
  if (n === undefined) return ['must be a valid IP address'];
  const out: string[] = [];
  if (n === 0) out.push(`may not be unspecified (${ip})`);
  if (ip.startsWith('127.')) out.push('may not be in the loopback range (127.0.0.0/8, ::1/128)');
  if (ip.startsWith('169.254.')) out.push('may not be in the link-local range (169.254.0.0/16, fe80::/10)');
  if (ip.startsWith('224.0.0.')) out.push('may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)');
  return out;
}

function validateClusterIPs(spec: JsonObject, out: StatusCause[]): void {
  const ips = clusterIPs(spec);
  if (!unset(spec.clusterIP)) {
    if (ips.length === 0) out.push(cause.required('spec.clusterIPs'));
    else if (ips[0] !== spec.clusterIP) out.push(invalidList('spec.clusterIPs', ips, 'first value must match `clusterIP`'));
  } else if (ips.length > 0) out.push(invalidList('spec.clusterIPs', ips, 'must be empty when `clusterIP` is not specified'));
  ips.forEach((ip, i) => {
    if (i === 0 && ip === 'None') {
      if (ips.length > 1) out.push(invalidList('spec.clusterIPs', ips, "'None' must be the first and only value"));
    } else if (ipToNumber(ip) === undefined) out.push(cause.invalid(`spec.clusterIPs[${i}]`, ip, 'must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)'));
  });
  if (ips.length > 1) out.push(invalidList('spec.clusterIPs', ips, 'may specify no more than one IP for each IP family'));
  const families = Array.isArray(spec.ipFamilies) ? spec.ipFamilies : [];
  families.forEach((fam, i) => {
    if (fam !== 'IPv4' && fam !== 'IPv6') out.push(cause.notSupported(`spec.ipFamilies[${i}]`, fam, ['IPv4', 'IPv6']));
    else if (fam === 'IPv6') out.push(cause.invalid(`spec.ipFamilies[${i}]`, fam, 'not configured on this cluster'));
  });
  const policy = spec.ipFamilyPolicy;
  if (!unset(policy) && !['PreferDualStack', 'RequireDualStack', 'SingleStack'].includes(policy as string)) {
    out.push(cause.notSupported('spec.ipFamilyPolicy', policy, ['PreferDualStack', 'RequireDualStack', 'SingleStack']));
  } else if (policy === 'RequireDualStack') out.push(cause.invalid('spec.ipFamilyPolicy', policy, 'this cluster is not configured for dual-stack services'));
}

function validateTrafficPolicies(spec: JsonObject, out: StatusCause[]): void {
  const etp = spec.externalTrafficPolicy;
  if (!externallyAccessible(spec)) {
    if (!unset(etp)) out.push(cause.invalid('spec.externalTrafficPolicy', etp, 'may only be set for externally-accessible services'));
  } else if (unset(etp)) out.push(cause.required('spec.externalTrafficPolicy'));
  else if (etp !== 'Cluster' && etp !== 'Local') out.push(cause.notSupported('spec.externalTrafficPolicy', etp, ['Cluster', 'Local']));
  const hc = spec.healthCheckNodePort;
  if (!needsHealthCheck(spec)) {
    if (!unset(hc) && hc !== 0) out.push(cause.invalid('spec.healthCheckNodePort', hc, "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'"));
  } else if (unset(hc) || hc === 0) out.push(cause.required('spec.healthCheckNodePort'));
  else if (typeof hc !== 'number' || hc < 1 || hc > 65535) out.push(cause.invalid('spec.healthCheckNodePort', hc, PORT_RANGE));
  const itp = spec.internalTrafficPolicy;
  if (!needsClusterIP(spec)) return;
  if (unset(itp)) out.push(cause.required('spec.internalTrafficPolicy'));
  else if (itp !== 'Cluster' && itp !== 'Local') out.push(cause.notSupported('spec.internalTrafficPolicy', itp, ['Cluster', 'Local']));
}

function validateServiceSpec(spec: JsonObject, old: JsonObject | undefined): StatusCause[] {
  const out: StatusCause[] = [];
  const types = ['ClusterIP', 'ExternalName', 'LoadBalancer', 'NodePort'];
  if (unset(spec.type)) out.push(cause.required('spec.type'));
  else if (!types.includes(spec.type as string)) out.push(cause.notSupported('spec.type', spec.type, types));
  if (ports(spec).length === 0 && !isHeadless(spec) && spec.type !== 'ExternalName') out.push(cause.required('spec.ports'));
  if (isHeadless(spec) && (spec.type === 'NodePort' || spec.type === 'LoadBalancer')) {
    out.push(cause.invalid('spec.clusterIPs[0]', 'None', `may not be set to 'None' for ${spec.type} services`));
  }
  if (spec.type === 'ExternalName') {
    if (clusterIPs(spec).length > 0 || !unset(spec.clusterIP)) out.push(cause.forbidden('spec.clusterIPs', 'may not be set for ExternalName services'));
    if (Array.isArray(spec.ipFamilies) && spec.ipFamilies.length > 0) out.push(cause.forbidden('spec.ipFamilies', 'may not be set for ExternalName services'));
    if (!unset(spec.ipFamilyPolicy)) out.push(cause.forbidden('spec.ipFamilyPolicy', 'may not be set for ExternalName services'));
    const name = typeof spec.externalName === 'string' ? spec.externalName.replace(/\.$/, '') : '';
    if (name === '') out.push(cause.required('spec.externalName'));
    else out.push(...validateName(name, 'subdomain', 'spec.externalName'));
  } else validateClusterIPs(spec, out);
  validatePorts(spec, out);
  validateSessionAffinity(spec, out);
  const oldExternal = new Set(old && Array.isArray(old.externalIPs) ? old.externalIPs : []);
  (Array.isArray(spec.externalIPs) ? spec.externalIPs : []).forEach((ip, i) => {
    if (oldExternal.has(ip)) return;
    const f = `spec.externalIPs[${i}]`;
    if (typeof ip !== 'string' || ipToNumber(ip) === undefined) out.push(cause.invalid(f, ip, 'must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)'));
    else for (const msg of endpointIPErrors(ip)) out.push(cause.invalid(f, ip, msg));
  });
  if (spec.type !== 'LoadBalancer' && !unset(spec.allocateLoadBalancerNodePorts)) {
    out.push(cause.forbidden('spec.allocateLoadBalancerNodePorts', "may only be used when `type` is 'LoadBalancer'"));
  }
  validateTrafficPolicies(spec, out);
  return out;
}

/** validateUpgradeDowngradeClusterIPs and the health check port: what an update may not change. */
function validateUpdate(spec: JsonObject, old: JsonObject): StatusCause[] {
  const out: StatusCause[] = [];
  const crossesExternalName = spec.type === 'ExternalName' || old.type === 'ExternalName';
  if (!crossesExternalName && !(isHeadless(old) && isHeadless(spec))) {
    const [was, now] = [clusterIPs(old), clusterIPs(spec)];
    if (now.length === 0 && was.length > 0) out.push(invalidList('spec.clusterIPs[0]', now, 'primary clusterIP can not be unset'));
    else if (was.length > 0 && now[0] !== was[0]) out.push(invalidList('spec.clusterIPs[0]', now, 'may not change once set'));
  }
  if (needsHealthCheck(old) && needsHealthCheck(spec) && old.healthCheckNodePort !== spec.healthCheckNodePort) {
    out.push(cause.invalid('spec.healthCheckNodePort', spec.healthCheckNodePort ?? 0, 'field is immutable'));
  }
  return out;
}

/** The allocators' refusals: an address or port outside its range, or held by another Service. */
function validateAllocations(svc: KubeObject, old: JsonObject | undefined, net: ServiceNetwork, ctx: StrategyContext): StatusCause[] {
  const spec = svc.spec as JsonObject;
  const out: StatusCause[] = [];
  const used = allocations(ctx, svc);
  const ips = clusterIPs(spec);
  const oldIps = old ? clusterIPs(old) : [];
  if (needsClusterIP(spec) && ips.length > 0 && ips[0] !== 'None' && ips[0] !== oldIps[0]) {
    const ip = ips[0]!;
    const n = ipToNumber(ip);
    if (n === undefined) return out;
    if (n < net.base || n >= net.base + net.size) {
      out.push(invalidList('spec.clusterIPs', ips, `failed to allocate IP ${ip}: the provided IP (${ip}) is not in the valid range. The range of valid IPs is ${cidrString(net)}`));
    } else if (used.ips.has(ip)) out.push(invalidList('spec.clusterIPs', ips, `failed to allocate IP ${ip}: provided IP is already allocated`));
  }
  if (needsNodePorts(spec)) {
    const held = new Set(old && needsNodePorts(old) ? ports(old).map(nodePortOf) : []);
    ports(spec).forEach((p, i) => {
      const n = nodePortOf(p);
      const f = `spec.ports[${i}].nodePort`;
      if (n === 0) {
        if (allocatesNodePorts(spec)) out.push(cause.invalid(f, 0, 'failed to allocate a nodePort: range is full'));
      } else if (n < NODE_PORT_MIN || n > NODE_PORT_MAX) {
        if (!held.has(n)) out.push(cause.invalid(f, n, `provided port is not in the valid range. The range of valid ports is ${NODE_PORT_RANGE}`));
      } else if (used.nodePorts.has(n) || (n === spec.healthCheckNodePort && !held.has(n))) out.push(cause.invalid(f, n, 'provided port is already allocated'));
    });
  }
  const hc = spec.healthCheckNodePort;
  if (needsHealthCheck(spec) && typeof hc === 'number' && hc !== 0 && hc !== old?.healthCheckNodePort) {
    const why = hc < NODE_PORT_MIN || hc > NODE_PORT_MAX ? `provided port is not in the valid range. The range of valid ports is ${NODE_PORT_RANGE}` : used.nodePorts.has(hc) ? 'provided port is already allocated' : undefined;
    if (why) out.push(cause.invalid('spec.healthCheckNodePort', hc, `failed to allocate requested HealthCheck NodePort ${hc}: ${why}`));
  }
  return out;
}

export function serviceStrategy(net: ServiceNetwork): Strategy {
  const specOf = (svc: KubeObject): JsonObject => {
    if (!isObject(svc.spec)) svc.spec = {};
    return svc.spec as JsonObject;
  };
  return {
    prepareForCreate(svc, ctx) {
      const spec = specOf(svc);
      applyDefaults(spec);
      normalizeClusterIPs(spec, undefined);
      allocate(svc, net, ctx);
      svc.status = { loadBalancer: {} };
    },
    prepareForUpdate(svc, old, ctx) {
      if (ctx.subresource === 'status') return;
      const spec = specOf(svc);
      const was = isObject(old.spec) ? old.spec : {};
      applyDefaults(spec);
      patchAllocatedValues(spec, was);
      dropTypeDependentFields(spec, was);
      normalizeClusterIPs(spec, was);
      allocate(svc, net, ctx);
    },
    validate(svc, old, ctx) {
      if (ctx.subresource === 'status') return [];
      const spec = specOf(svc);
      const was = old && isObject(old.spec) ? old.spec : undefined;
      const out = validateServiceSpec(spec, was);
      if (was) out.push(...validateUpdate(spec, was));
      // Allocation is only attempted for a Service that is otherwise valid, as the registry does.
      return out.length > 0 ? out : validateAllocations(svc, was, net, ctx);
    },
  };
}

// ---- the `kubernetes` Service (what kube-apiserver's own reconciler keeps in `default`)

/** Where clients inside the cluster reach the API server; absent when nothing outside loopback can. */
export interface ApiServerEndpoint {
  address: string;
  port: number;
}

type ResourceOf = (apiVersion: string, resource: string) => ResourceClient;

/**
 * Creates or repairs `default/kubernetes` (the range's first address, port 443 `https` to `targetPort`) and,
 * when the API server has an endpoint other hosts can reach, its EndpointSlice and Endpoints; without one
 * they are removed, since loopback is no endpoint.
 */
export function reconcileKubernetesService(resource: ResourceOf, net: ServiceNetwork, targetPort: number, endpoint: ApiServerEndpoint | undefined): void {
  const ns = 'default';
  const name = 'kubernetes';
  const labels = { component: 'apiserver', provider: 'kubernetes' };
  const ports = [{ name: 'https', port: 443, protocol: 'TCP', targetPort }];
  const services = resource('v1', 'services');
  const svc = services.tryGet(name, ns);
  if (!svc) {
    services.create({ metadata: { name, namespace: ns, labels }, spec: { type: 'ClusterIP', clusterIP: kubernetesServiceIP(net), ports, sessionAffinity: 'None' } }, { namespace: ns });
  } else if (!deepEqual((svc.spec as JsonObject | undefined)?.ports, ports)) {
    services.update({ ...svc, spec: { ...(svc.spec as JsonObject), ports } });
  }
  const slices = resource('discovery.k8s.io/v1', 'endpointslices');
  const endpoints = resource('v1', 'endpoints');
  if (!endpoint) {
    for (const client of [slices, endpoints]) if (client.tryGet(name, ns)) client.delete(name, { namespace: ns });
    return;
  }
  const port = { name: 'https', port: endpoint.port, protocol: 'TCP' };
  const slice = {
    metadata: { name, namespace: ns, labels: { 'kubernetes.io/service-name': name } },
    addressType: 'IPv4',
    endpoints: [{ addresses: [endpoint.address], conditions: { ready: true } }],
    ports: [port],
  };
  const legacy = {
    metadata: { name, namespace: ns, labels: { 'endpointslice.kubernetes.io/skip-mirror': 'true' } },
    subsets: [{ addresses: [{ ip: endpoint.address }], ports: [port] }],
  };
  for (const [client, want] of [[slices, slice], [endpoints, legacy]] as const) {
    const have = client.tryGet(name, ns);
    const { metadata: _m, ...body } = want;
    if (!have) client.create(want, { namespace: ns });
    else if (Object.entries(body).some(([k, v]) => !deepEqual(have[k], v)) || !deepEqual(have.metadata.labels, want.metadata.labels)) {
      client.update({ ...have, ...body, metadata: { ...have.metadata, labels: want.metadata.labels } });
    }
  }
}

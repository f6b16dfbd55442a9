import { cause, type StatusCause } from './errors.js';
import { deepEqual, validateName } from './meta.js';
import { patchMetaFor } from './patch-meta.js';
import type { ResourceType, Strategy } from './registry.js';
import { isObject, type JsonObject, type KubeObject } from './types.js';
import { crdStrategy } from './crd.js';
import { networkPolicyStrategy } from './networkpolicy.js';
import { endpointIPErrors, parseCidr4, serviceStrategy } from './service.js';

// The built-in kinds the lab serves, with the defaulting and validation a client would notice
// (pod phase and defaults, namespace finalizers, selector/template agreement ...); Services in service.ts.

type Def = Partial<ResourceType> & Pick<ResourceType, 'resource' | 'kind'> & { version?: string };

function def(d: Def): ResourceType {
  const version = d.version ?? 'v1';
  return {
    group: '',
    versions: [version],
    storageVersion: version,
    singular: d.kind.toLowerCase(),
    listKind: `${d.kind}List`,
    namespaced: true,
    shortNames: [],
    categories: [],
    subresources: [],
    hasGeneration: false,
    allowCreateOnUpdate: false,
    requireResourceVersionOnUpdate: false,
    returnDeletedObject: false,
    gracefulDelete: false,
    keepStatusOnCreate: false,
    nameRule: 'subdomain',
    patchMeta: patchMetaFor(d.kind),
    fields: {},
    strategy: {},
    ...d,
  };
}

const str = (v: unknown): string | undefined => (v === undefined || v === null ? undefined : typeof v === 'string' ? v : String(v));

function at(o: unknown, ...path: string[]): unknown {
  let cur = o;
  for (const p of path) cur = isObject(cur) ? cur[p] : undefined;
  return cur;
}

function obj(o: JsonObject, key: string): JsonObject {
  if (!isObject(o[key])) o[key] = {};
  return o[key] as JsonObject;
}

// ---- pods

function imagePullPolicy(image: unknown): string {
  if (typeof image !== 'string') return 'IfNotPresent';
  const afterSlash = image.slice(image.lastIndexOf('/') + 1);
  if (image.includes('@')) return 'IfNotPresent';
  const tag = afterSlash.includes(':') ? afterSlash.slice(afterSlash.indexOf(':') + 1) : '';
  return tag === '' || tag === 'latest' ? 'Always' : 'IfNotPresent';
}

function defaultContainers(list: unknown): void {
  if (!Array.isArray(list)) return;
  for (const c of list) {
    if (!isObject(c)) continue;
    c.imagePullPolicy ??= imagePullPolicy(c.image);
    c.terminationMessagePath ??= '/dev/termination-log';
    c.terminationMessagePolicy ??= 'File';
    c.resources ??= {};
    if (Array.isArray(c.ports)) for (const p of c.ports) if (isObject(p)) p.protocol ??= 'TCP';
  }
}

export function defaultPodSpec(spec: JsonObject): void {
  spec.restartPolicy ??= 'Always';
  spec.terminationGracePeriodSeconds ??= 30;
  spec.dnsPolicy ??= 'ClusterFirst';
  spec.schedulerName ??= 'default-scheduler';
  spec.securityContext ??= {};
  spec.enableServiceLinks ??= true;
  defaultContainers(spec.containers);
  defaultContainers(spec.initContainers);
}

function qosClass(spec: JsonObject): string {
  const cs = [...(Array.isArray(spec.containers) ? spec.containers : []), ...(Array.isArray(spec.initContainers) ? spec.initContainers : [])];
  let any = false;
  let guaranteed = cs.length > 0;
  for (const c of cs) {
    const req = at(c, 'resources', 'requests');
    const lim = at(c, 'resources', 'limits');
    if ((isObject(req) && Object.keys(req).length) || (isObject(lim) && Object.keys(lim).length)) any = true;
    for (const r of ['cpu', 'memory']) {
      const l = isObject(lim) ? lim[r] : undefined;
      const q = isObject(req) ? (req[r] ?? l) : l;
      if (l === undefined || q !== l) guaranteed = false;
    }
  }
  if (!any) return 'BestEffort';
  return guaranteed ? 'Guaranteed' : 'Burstable';
}

function validateContainers(list: unknown, field: string, required: boolean): StatusCause[] {
  const out: StatusCause[] = [];
  if (list === undefined) return required ? [cause.required(field)] : [];
  if (!Array.isArray(list)) return [cause.invalid(field, list, 'must be a list')];
  if (required && list.length === 0) return [cause.required(field)];
  const names = new Set<string>();
  list.forEach((c, i) => {
    const f = `${field}[${i}]`;
    if (!isObject(c)) return out.push(cause.invalid(f, c, 'must be an object'));
    if (typeof c.name !== 'string' || c.name === '') out.push(cause.required(`${f}.name`));
    else {
      out.push(...validateName(c.name, 'label', `${f}.name`));
      if (names.has(c.name)) out.push(cause.duplicate(`${f}.name`, c.name));
      names.add(c.name);
    }
    if (typeof c.image !== 'string' || c.image.trim() === '') out.push(cause.required(`${f}.image`));
    if (c.ports !== undefined) {
      if (!Array.isArray(c.ports)) out.push(cause.invalid(`${f}.ports`, c.ports, 'must be a list'));
      else
        c.ports.forEach((p, j) => {
          const n = isObject(p) ? p.containerPort : undefined;
          if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > 65535) {
            out.push(cause.invalid(`${f}.ports[${j}].containerPort`, n ?? 0, 'must be between 1 and 65535, inclusive'));
          }
          const proto = isObject(p) ? p.protocol : undefined;
          if (proto !== undefined && !['TCP', 'UDP', 'SCTP'].includes(proto as string)) {
            out.push(cause.notSupported(`${f}.ports[${j}].protocol`, proto, ['SCTP', 'TCP', 'UDP']));
          }
        });
    }
  });
  return out;
}

export function validatePodSpec(spec: unknown, field: string): StatusCause[] {
  if (!isObject(spec)) return [cause.required(field)];
  const out = [...validateContainers(spec.containers, `${field}.containers`, true), ...validateContainers(spec.initContainers, `${field}.initContainers`, false)];
  if (spec.restartPolicy !== undefined && !['Always', 'OnFailure', 'Never'].includes(spec.restartPolicy as string)) {
    out.push(cause.notSupported(`${field}.restartPolicy`, spec.restartPolicy, ['Always', 'OnFailure', 'Never']));
  }
  if (spec.nodeName !== undefined && (typeof spec.nodeName !== 'string' || (spec.nodeName !== '' && validateName(spec.nodeName, 'subdomain').length))) {
    out.push(cause.invalid(`${field}.nodeName`, spec.nodeName, 'must be a valid node name'));
  }
  const tgps = spec.terminationGracePeriodSeconds;
  if (tgps !== undefined && (typeof tgps !== 'number' || !Number.isInteger(tgps))) {
    out.push(cause.invalid(`${field}.terminationGracePeriodSeconds`, tgps, 'must be an integer'));
  }
  return out;
}

/** The parts of a pod spec an update may change; everything else is immutable once created. */
function mutablePodSpecView(spec: unknown): unknown {
  if (!isObject(spec)) return spec;
  const s = structuredClone(spec);
  for (const k of ['containers', 'initContainers'] as const) {
    if (Array.isArray(s[k])) for (const c of s[k] as unknown[]) if (isObject(c)) delete c.image;
  }
  delete s.activeDeadlineSeconds;
  delete s.tolerations;
  delete s.terminationGracePeriodSeconds;
  delete s.schedulingGates;
  return s;
}

const podStrategy: Strategy = {
  prepareForCreate(pod) {
    const spec = obj(pod, 'spec');
    defaultPodSpec(spec);
    pod.status = { phase: 'Pending', qosClass: qosClass(spec) };
  },
  prepareForUpdate(pod, _old, ctx) {
    if (ctx.subresource === 'status') return;
    defaultPodSpec(obj(pod, 'spec'));
  },
  validate(pod, old, ctx) {
    if (ctx.subresource === 'status') {
      const phase = at(pod, 'status', 'phase');
      const phases = ['Pending', 'Running', 'Succeeded', 'Failed', 'Unknown'];
      return phase !== undefined && !phases.includes(phase as string) ? [cause.notSupported('status.phase', phase, phases)] : [];
    }
    const out = validatePodSpec(pod.spec, 'spec');
    if (old && !deepEqual(mutablePodSpecView(pod.spec), mutablePodSpecView(old.spec))) {
      out.push(
        cause.forbidden(
          'spec',
          'pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)',
        ),
      );
    }
    return out;
  },
};

// ---- namespaces

const namespaceStrategy: Strategy = {
  prepareForCreate(ns) {
    ns.spec = { finalizers: ['kubernetes'] };
    ns.status = { phase: 'Active' };
    ns.metadata.labels = { ...(ns.metadata.labels ?? {}), 'kubernetes.io/metadata.name': ns.metadata.name! };
  },
  prepareForUpdate(ns, old, ctx) {
    ns.metadata.labels = { ...(ns.metadata.labels ?? {}), 'kubernetes.io/metadata.name': ns.metadata.name! };
    // Finalizers change only through the finalize subresource.
    if (ctx.subresource !== 'finalize') ns.spec = structuredClone(old.spec ?? {});
  },
};

// ---- secrets

const secretStrategy: Strategy = {
  prepareForCreate(s) {
    s.type ??= 'Opaque';
    foldStringData(s);
  },
  prepareForUpdate(s, old) {
    s.type ??= old.type;
    foldStringData(s);
  },
  validate(s, old) {
    const out: StatusCause[] = [];
    if (isObject(s.data)) {
      for (const [k, v] of Object.entries(s.data)) {
        if (typeof v !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(v)) out.push(cause.invalid(`data[${k}]`, '<secret contents redacted>', 'must be base64-encoded'));
      }
    }
    if (old && old.type !== s.type) out.push(cause.invalid('type', s.type, 'field is immutable'));
    return out;
  },
};

/** stringData is a write-only convenience: it is merged into data (base64) and never stored. */
function foldStringData(s: KubeObject): void {
  if (!isObject(s.stringData)) return;
  const data = obj(s, 'data');
  for (const [k, v] of Object.entries(s.stringData)) data[k] = Buffer.from(String(v), 'utf8').toString('base64');
  delete s.stringData;
}

// ---- workloads (stored only; no controllers)

function workloadStrategy(defaults: (spec: JsonObject) => void): Strategy {
  return {
    prepareForCreate(o) {
      const spec = obj(o, 'spec');
      defaults(spec);
      const tspec = at(spec, 'template', 'spec');
      if (isObject(tspec)) defaultPodSpec(tspec);
      o.status = {};
    },
    prepareForUpdate(o, _old, ctx) {
      if (ctx.subresource === 'status') return;
      const spec = obj(o, 'spec');
      defaults(spec);
      const tspec = at(spec, 'template', 'spec');
      if (isObject(tspec)) defaultPodSpec(tspec);
    },
    validate(o, old, ctx) {
      if (ctx.subresource === 'status') return [];
      const out: StatusCause[] = [];
      const sel = at(o, 'spec', 'selector');
      if (!isObject(sel)) out.push(cause.required('spec.selector'));
      const labels = at(o, 'spec', 'template', 'metadata', 'labels');
      const match = isObject(sel) && isObject(sel.matchLabels) ? sel.matchLabels : {};
      if (isObject(sel) && Object.entries(match).some(([k, v]) => !isObject(labels) || labels[k] !== v)) {
        out.push(cause.invalid('spec.template.metadata.labels', labels ?? {}, '`selector` does not match template `labels`'));
      }
      if (isObject(sel) && Object.keys(match).length === 0 && !Array.isArray(sel.matchExpressions)) {
        out.push(cause.invalid('spec.selector', sel, 'empty selector is invalid for deployment'));
      }
      out.push(...validatePodSpec(at(o, 'spec', 'template', 'spec'), 'spec.template.spec'));
      if (old && !deepEqual(at(old, 'spec', 'selector'), sel)) out.push(cause.invalid('spec.selector', sel ?? null, 'field is immutable'));
      return out;
    },
  };
}

const deploymentDefaults = (spec: JsonObject): void => {
  spec.replicas ??= 1;
  spec.revisionHistoryLimit ??= 10;
  spec.progressDeadlineSeconds ??= 600;
  if (!isObject(spec.strategy)) spec.strategy = { type: 'RollingUpdate' };
  const st = spec.strategy as JsonObject;
  st.type ??= 'RollingUpdate';
  if (st.type === 'RollingUpdate') st.rollingUpdate = { maxUnavailable: '25%', maxSurge: '25%', ...(isObject(st.rollingUpdate) ? st.rollingUpdate : {}) };
};

const daemonSetDefaults = (spec: JsonObject): void => {
  spec.revisionHistoryLimit ??= 10;
  if (!isObject(spec.updateStrategy)) spec.updateStrategy = { type: 'RollingUpdate' };
  const st = spec.updateStrategy as JsonObject;
  st.type ??= 'RollingUpdate';
  if (st.type === 'RollingUpdate') st.rollingUpdate = { maxUnavailable: 1, maxSurge: 0, ...(isObject(st.rollingUpdate) ? st.rollingUpdate : {}) };
};

// ---- the rest

/** discovery/v1 ValidateEndpointSlice: addresses that fit the address type (never loopback or link-local), and ports. */
const endpointSliceStrategy: Strategy = {
  validate(o) {
    const out: StatusCause[] = [];
    const types = ['IPv4', 'IPv6', 'FQDN'];
    if (!types.includes(o.addressType as string)) out.push(o.addressType === undefined ? cause.required('addressType') : cause.notSupported('addressType', o.addressType, types));
    if (o.endpoints !== undefined && o.endpoints !== null && !Array.isArray(o.endpoints)) out.push(cause.invalid('endpoints', o.endpoints, 'must be a list'));
    if (Array.isArray(o.endpoints)) {
      if (o.endpoints.length > 1000) out.push(cause.tooMany('endpoints', 1000));
      o.endpoints.forEach((e, i) => {
        const f = `endpoints[${i}].addresses`;
        if (!isObject(e) || !Array.isArray(e.addresses) || e.addresses.length === 0) return void out.push(cause.required(f, 'must contain at least 1 address'));
        if (e.addresses.length > 100) out.push(cause.tooMany(f, 100));
        if (o.addressType !== 'IPv4') return;
        e.addresses.forEach((a, j) => {
          const errs = typeof a === 'string' && /^\d{1,3}(\.\d{1,3}){3}$/.test(a) ? endpointIPErrors(a) : ['must be a valid IPv4 address'];
          for (const msg of errs) out.push(cause.invalid(`${f}[${j}]`, a, msg));
        });
      });
    }
    if (Array.isArray(o.ports)) {
      if (o.ports.length > 20000) out.push(cause.tooMany('ports', 20000));
      o.ports.forEach((p, i) => {
        if (!isObject(p)) return;
        const n = p.port;
        if (n !== undefined && n !== null && (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > 65535)) out.push(cause.invalid(`ports[${i}].port`, n, 'must be between 1 and 65535, inclusive'));
        if (p.protocol !== undefined && !['SCTP', 'TCP', 'UDP'].includes(p.protocol as string)) out.push(cause.notSupported(`ports[${i}].protocol`, p.protocol, ['SCTP', 'TCP', 'UDP']));
        if (typeof p.name === 'string' && p.name !== '') out.push(...validateName(p.name, 'label', `ports[${i}].name`));
      });
    }
    return out;
  },
};

const eventStrategy: Strategy = {
  validate(o) {
    const out: StatusCause[] = [];
    if (!isObject(o.involvedObject)) out.push(cause.required('involvedObject'));
    return out;
  },
};

const roleBindingStrategy: Strategy = {
  validate(o, old) {
    const out: StatusCause[] = [];
    const ref = o.roleRef;
    if (!isObject(ref) || !ref.kind || !ref.name) out.push(cause.required('roleRef'));
    if (old && !deepEqual(old.roleRef, ref)) out.push(cause.invalid('roleRef', ref ?? null, 'cannot change roleRef'));
    return out;
  },
};

const nodeFields = {
  'spec.unschedulable': (o: KubeObject) => str(at(o, 'spec', 'unschedulable') ?? false),
};

const podFields = {
  'spec.nodeName': (o: KubeObject) => str(at(o, 'spec', 'nodeName')),
  'spec.restartPolicy': (o: KubeObject) => str(at(o, 'spec', 'restartPolicy')),
  'spec.schedulerName': (o: KubeObject) => str(at(o, 'spec', 'schedulerName')),
  'spec.serviceAccountName': (o: KubeObject) => str(at(o, 'spec', 'serviceAccountName')),
  'spec.hostNetwork': (o: KubeObject) => str(at(o, 'spec', 'hostNetwork') ?? false),
  'status.phase': (o: KubeObject) => str(at(o, 'status', 'phase')),
  'status.podIP': (o: KubeObject) => str(at(o, 'status', 'podIP')),
  'status.nominatedNodeName': (o: KubeObject) => str(at(o, 'status', 'nominatedNodeName')),
};

const eventFields = Object.fromEntries([
  ...['kind', 'namespace', 'name', 'uid', 'apiVersion', 'resourceVersion', 'fieldPath'].map((f) => [`involvedObject.${f}`, (o: KubeObject) => str(at(o, 'involvedObject', f))]),
  ['reason', (o: KubeObject) => str(o.reason)],
  ['reportingComponent', (o: KubeObject) => str(o.reportingComponent)],
  ['source', (o: KubeObject) => str(at(o, 'source', 'component')) ?? str(o.reportingComponent)],
  ['type', (o: KubeObject) => str(o.type)],
]) as Record<string, (o: KubeObject) => string | undefined>;

export interface BuiltinOptions {
  serviceCIDR: string;
}

export function builtinResources(opts: BuiltinOptions): ResourceType[] {
  const net = parseCidr4(opts.serviceCIDR);
  const rbac = 'rbac.authorization.k8s.io';
  return [
    def({ resource: 'namespaces', kind: 'Namespace', namespaced: false, shortNames: ['ns'], subresources: ['status', 'finalize'], nameRule: 'label', returnDeletedObject: true, strategy: namespaceStrategy, fields: { 'status.phase': (o) => str(at(o, 'status', 'phase')) } }),
    def({ resource: 'nodes', kind: 'Node', namespaced: false, shortNames: ['no'], subresources: ['status'], keepStatusOnCreate: true, fields: nodeFields }),
    def({ resource: 'pods', kind: 'Pod', shortNames: ['po'], categories: ['all'], subresources: ['status', 'binding'], gracefulDelete: true, returnDeletedObject: true, strategy: podStrategy, fields: podFields }),
    def({ resource: 'services', kind: 'Service', shortNames: ['svc'], categories: ['all'], subresources: ['status'], nameRule: 'dns1035', returnDeletedObject: true, strategy: serviceStrategy(net), fields: { 'spec.clusterIP': (o) => str(at(o, 'spec', 'clusterIP')), 'spec.type': (o) => str(at(o, 'spec', 'type')) } }),
    def({ resource: 'endpoints', kind: 'Endpoints', singular: 'endpoints', shortNames: ['ep'], allowCreateOnUpdate: true }),
    def({ resource: 'events', kind: 'Event', shortNames: ['ev'], allowCreateOnUpdate: true, strategy: eventStrategy, fields: eventFields }),
    def({ resource: 'configmaps', kind: 'ConfigMap', shortNames: ['cm'] }),
    def({ resource: 'secrets', kind: 'Secret', strategy: secretStrategy, fields: { type: (o) => str(o.type) } }),
    def({ resource: 'serviceaccounts', kind: 'ServiceAccount', shortNames: ['sa'] }),
    def({ group: 'discovery.k8s.io', resource: 'endpointslices', kind: 'EndpointSlice', allowCreateOnUpdate: true, strategy: endpointSliceStrategy, fields: { addressType: (o) => str(o.addressType) } }),
    def({ group: 'networking.k8s.io', resource: 'networkpolicies', kind: 'NetworkPolicy', shortNames: ['netpol'], hasGeneration: true, strategy: networkPolicyStrategy }),
    def({ group: 'coordination.k8s.io', resource: 'leases', kind: 'Lease' }),
    def({ group: 'apps', resource: 'deployments', kind: 'Deployment', shortNames: ['deploy'], categories: ['all'], subresources: ['status'], hasGeneration: true, strategy: workloadStrategy(deploymentDefaults) }),
    def({ group: 'apps', resource: 'daemonsets', kind: 'DaemonSet', shortNames: ['ds'], categories: ['all'], subresources: ['status'], hasGeneration: true, strategy: workloadStrategy(daemonSetDefaults) }),
    def({ group: rbac, resource: 'roles', kind: 'Role', nameRule: 'path' }),
    def({ group: rbac, resource: 'clusterroles', kind: 'ClusterRole', namespaced: false, nameRule: 'path' }),
    def({ group: rbac, resource: 'rolebindings', kind: 'RoleBinding', nameRule: 'path', strategy: roleBindingStrategy }),
    def({ group: rbac, resource: 'clusterrolebindings', kind: 'ClusterRoleBinding', namespaced: false, nameRule: 'path', strategy: roleBindingStrategy }),
    def({ group: 'apiextensions.k8s.io', resource: 'customresourcedefinitions', kind: 'CustomResourceDefinition', namespaced: false, shortNames: ['crd', 'crds'], categories: ['api-extensions'], subresources: ['status'], hasGeneration: true, strategy: crdStrategy }),
  ];
}

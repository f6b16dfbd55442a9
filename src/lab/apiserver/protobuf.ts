import { errors } from './errors.js';
import { isObject, type JsonObject } from './types.js';

// Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`), decoded to JSON for the
// kinds kubectl's typed clients POST: `kubectl create namespace|configmap|secret|serviceaccount|
// service|deployment|role|rolebinding|clusterrole|clusterrolebinding` use protobuf, and client-go
// does not fall back to JSON on 415. Field numbers are those of kube's generated.proto files; fields
// not listed are skipped. Responses are always JSON, which client-go accepts.

type Scalar = 'string' | 'bytes' | 'int' | 'bool' | 'time' | 'quantity' | 'intstr';
type FieldType = Scalar | Schema | { map: 'string' | 'bytes' | 'quantity' };

interface Field {
  name: string;
  type: FieldType;
  repeated?: boolean;
  /** A pointer in Go: present means set, even when zero/empty (e.g. replicas: 0). */
  ptr?: boolean;
}

type Schema = { [no: number]: Field };

const f = (name: string, type: FieldType, opts: { repeated?: boolean; ptr?: boolean } = {}): Field => ({ name, type, ...opts });

const ownerReference: Schema = { 1: f('kind', 'string'), 3: f('name', 'string'), 4: f('uid', 'string'), 5: f('apiVersion', 'string'), 6: f('controller', 'bool', { ptr: true }), 7: f('blockOwnerDeletion', 'bool', { ptr: true }) };

const objectMeta: Schema = {
  1: f('name', 'string'),
  2: f('generateName', 'string'),
  3: f('namespace', 'string'),
  5: f('uid', 'string'),
  6: f('resourceVersion', 'string'),
  7: f('generation', 'int'),
  8: f('creationTimestamp', 'time'),
  9: f('deletionTimestamp', 'time'),
  10: f('deletionGracePeriodSeconds', 'int', { ptr: true }),
  11: f('labels', { map: 'string' }),
  12: f('annotations', { map: 'string' }),
  13: f('ownerReferences', ownerReference, { repeated: true }),
  14: f('finalizers', 'string', { repeated: true }),
};

const labelSelector: Schema = {
  1: f('matchLabels', { map: 'string' }),
  2: f('matchExpressions', { 1: f('key', 'string'), 2: f('operator', 'string'), 3: f('values', 'string', { repeated: true }) }, { repeated: true }),
};

const container: Schema = {
  1: f('name', 'string'),
  2: f('image', 'string'),
  3: f('command', 'string', { repeated: true }),
  4: f('args', 'string', { repeated: true }),
  5: f('workingDir', 'string'),
  6: f('ports', { 1: f('name', 'string'), 2: f('hostPort', 'int'), 3: f('containerPort', 'int'), 4: f('protocol', 'string'), 5: f('hostIP', 'string') }, { repeated: true }),
  7: f('env', { 1: f('name', 'string'), 2: f('value', 'string') }, { repeated: true }),
  8: f('resources', { 1: f('limits', { map: 'quantity' }), 2: f('requests', { map: 'quantity' }) }),
  9: f('volumeMounts', { 1: f('name', 'string'), 2: f('readOnly', 'bool'), 3: f('mountPath', 'string'), 4: f('subPath', 'string') }, { repeated: true }),
  13: f('terminationMessagePath', 'string'),
  14: f('imagePullPolicy', 'string'),
  16: f('stdin', 'bool'),
  17: f('stdinOnce', 'bool'),
  18: f('tty', 'bool'),
  20: f('terminationMessagePolicy', 'string'),
};

const podSpec: Schema = {
  2: f('containers', container, { repeated: true }),
  3: f('restartPolicy', 'string'),
  4: f('terminationGracePeriodSeconds', 'int', { ptr: true }),
  5: f('activeDeadlineSeconds', 'int', { ptr: true }),
  6: f('dnsPolicy', 'string'),
  7: f('nodeSelector', { map: 'string' }),
  8: f('serviceAccountName', 'string'),
  10: f('nodeName', 'string'),
  11: f('hostNetwork', 'bool'),
  19: f('schedulerName', 'string'),
  20: f('initContainers', container, { repeated: true }),
  22: f('tolerations', { 1: f('key', 'string'), 2: f('operator', 'string'), 3: f('value', 'string'), 4: f('effect', 'string'), 5: f('tolerationSeconds', 'int', { ptr: true }) }, { repeated: true }),
  24: f('priorityClassName', 'string'),
};

const podTemplate: Schema = { 1: f('metadata', objectMeta), 2: f('spec', podSpec) };

const servicePort: Schema = { 1: f('name', 'string'), 2: f('protocol', 'string'), 3: f('port', 'int'), 4: f('targetPort', 'intstr'), 5: f('nodePort', 'int'), 6: f('appProtocol', 'string', { ptr: true }) };

const serviceSpec: Schema = {
  1: f('ports', servicePort, { repeated: true }),
  2: f('selector', { map: 'string' }),
  3: f('clusterIP', 'string'),
  4: f('type', 'string'),
  5: f('externalIPs', 'string', { repeated: true }),
  7: f('sessionAffinity', 'string'),
  8: f('loadBalancerIP', 'string'),
  9: f('loadBalancerSourceRanges', 'string', { repeated: true }),
  10: f('externalName', 'string'),
  11: f('externalTrafficPolicy', 'string'),
  13: f('publishNotReadyAddresses', 'bool'),
  17: f('ipFamilyPolicy', 'string', { ptr: true }),
  18: f('clusterIPs', 'string', { repeated: true }),
  19: f('ipFamilies', 'string', { repeated: true }),
  20: f('allocateLoadBalancerNodePorts', 'bool', { ptr: true }),
  21: f('loadBalancerClass', 'string', { ptr: true }),
  22: f('internalTrafficPolicy', 'string', { ptr: true }),
};

const policyRule: Schema = {
  1: f('verbs', 'string', { repeated: true }),
  2: f('apiGroups', 'string', { repeated: true }),
  3: f('resources', 'string', { repeated: true }),
  4: f('resourceNames', 'string', { repeated: true }),
  5: f('nonResourceURLs', 'string', { repeated: true }),
};

const binding: Schema = {
  1: f('metadata', objectMeta),
  2: f('subjects', { 1: f('kind', 'string'), 2: f('apiGroup', 'string'), 3: f('name', 'string'), 4: f('namespace', 'string') }, { repeated: true }),
  3: f('roleRef', { 1: f('apiGroup', 'string'), 2: f('kind', 'string'), 3: f('name', 'string') }),
};

// authorization.k8s.io/v1 access reviews (`kubectl auth can-i` sends a SelfSubjectAccessReview).
const resourceAttributes: Schema = { 1: f('namespace', 'string'), 2: f('verb', 'string'), 3: f('group', 'string'), 4: f('version', 'string'), 5: f('resource', 'string'), 6: f('subresource', 'string'), 7: f('name', 'string') };
const reviewAttributes = { 1: f('resourceAttributes', resourceAttributes, { ptr: true }), 2: f('nonResourceAttributes', { 1: f('path', 'string'), 2: f('verb', 'string') }, { ptr: true }) };
const subjectAccessReview: Schema = { 1: f('metadata', objectMeta), 2: f('spec', { ...reviewAttributes, 3: f('user', 'string'), 4: f('groups', 'string', { repeated: true }), 6: f('uid', 'string') }) };

const KINDS: Record<string, Schema> = {
  'v1/Namespace': { 1: f('metadata', objectMeta), 2: f('spec', { 1: f('finalizers', 'string', { repeated: true }) }) },
  'v1/ConfigMap': { 1: f('metadata', objectMeta), 2: f('data', { map: 'string' }), 3: f('binaryData', { map: 'bytes' }), 4: f('immutable', 'bool', { ptr: true }) },
  'v1/Secret': { 1: f('metadata', objectMeta), 2: f('data', { map: 'bytes' }), 3: f('type', 'string'), 4: f('stringData', { map: 'string' }), 5: f('immutable', 'bool', { ptr: true }) },
  'v1/ServiceAccount': {
    1: f('metadata', objectMeta),
    2: f('secrets', { 1: f('kind', 'string'), 2: f('namespace', 'string'), 3: f('name', 'string') }, { repeated: true }),
    3: f('imagePullSecrets', { 1: f('name', 'string') }, { repeated: true }),
    4: f('automountServiceAccountToken', 'bool', { ptr: true }),
  },
  'v1/Service': { 1: f('metadata', objectMeta), 2: f('spec', serviceSpec) },
  'apps/v1/Deployment': {
    1: f('metadata', objectMeta),
    2: f('spec', {
      1: f('replicas', 'int', { ptr: true }),
      2: f('selector', labelSelector, { ptr: true }),
      3: f('template', podTemplate),
      4: f('strategy', { 1: f('type', 'string'), 2: f('rollingUpdate', { 1: f('maxUnavailable', 'intstr'), 2: f('maxSurge', 'intstr') }) }),
      5: f('minReadySeconds', 'int'),
      6: f('revisionHistoryLimit', 'int', { ptr: true }),
      7: f('paused', 'bool'),
      9: f('progressDeadlineSeconds', 'int', { ptr: true }),
    }),
  },
  'rbac.authorization.k8s.io/v1/Role': { 1: f('metadata', objectMeta), 2: f('rules', policyRule, { repeated: true }) },
  'rbac.authorization.k8s.io/v1/ClusterRole': {
    1: f('metadata', objectMeta),
    2: f('rules', policyRule, { repeated: true }),
    3: f('aggregationRule', { 1: f('clusterRoleSelectors', labelSelector, { repeated: true }) }, { ptr: true }),
  },
  'rbac.authorization.k8s.io/v1/RoleBinding': binding,
  'authorization.k8s.io/v1/SelfSubjectAccessReview': { 1: f('metadata', objectMeta), 2: f('spec', reviewAttributes) },
  'authorization.k8s.io/v1/SubjectAccessReview': subjectAccessReview,
  'authorization.k8s.io/v1/SelfSubjectRulesReview': { 1: f('metadata', objectMeta), 2: f('spec', { 1: f('namespace', 'string') }) },
  // `kubectl create token`.
  'authentication.k8s.io/v1/TokenRequest': { 1: f('metadata', objectMeta), 2: f('spec', { 1: f('audiences', 'string', { repeated: true }), 4: f('expirationSeconds', 'int', { ptr: true }) }) },
  'authorization.k8s.io/v1/LocalSubjectAccessReview': subjectAccessReview,
  'rbac.authorization.k8s.io/v1/ClusterRoleBinding': binding,
};

const MAGIC = Buffer.from([0x6b, 0x38, 0x73, 0x00]);

class Reader {
  pos = 0;
  constructor(readonly buf: Buffer) {}
  get done(): boolean {
    return this.pos >= this.buf.length;
  }
  varint(): bigint {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      if (this.pos >= this.buf.length) throw new Error('truncated varint');
      const b = this.buf[this.pos++]!;
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return result;
      shift += 7n;
    }
  }
  bytes(): Buffer {
    const n = Number(this.varint());
    if (this.pos + n > this.buf.length) throw new Error('truncated field');
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
  skip(wire: number): void {
    if (wire === 0) this.varint();
    else if (wire === 1) this.pos += 8;
    else if (wire === 2) this.bytes();
    else if (wire === 5) this.pos += 4;
    else throw new Error(`unsupported wire type ${wire}`);
  }
}

/** Decodes a message into JSON, keeping only what Go's `omitempty` JSON would show. */
function decodeMessage(buf: Buffer, schema: Schema): JsonObject {
  const r = new Reader(buf);
  const out: JsonObject = {};
  const set = new Set<string>();
  while (!r.done) {
    const tag = Number(r.varint());
    const no = tag >>> 3;
    const wire = tag & 7;
    const field = schema[no];
    if (!field) {
      r.skip(wire);
      continue;
    }
    const t = field.type;
    let value: unknown;
    if (typeof t === 'object' && 'map' in t) {
      const entry = new Reader(r.bytes());
      let key = '';
      let val: unknown = t.map === 'bytes' ? '' : '';
      while (!entry.done) {
        const et = Number(entry.varint());
        if (et >>> 3 === 1) key = entry.bytes().toString('utf8');
        else if (et >>> 3 === 2) {
          const raw = entry.bytes();
          val = t.map === 'string' ? raw.toString('utf8') : t.map === 'bytes' ? raw.toString('base64') : quantity(raw);
        } else entry.skip(et & 7);
      }
      const m = (isObject(out[field.name]) ? out[field.name] : (out[field.name] = {})) as JsonObject;
      m[key] = val;
      set.add(field.name);
      continue;
    }
    if (typeof t === 'object') value = decodeMessage(r.bytes(), t);
    else if (t === 'string') value = r.bytes().toString('utf8');
    else if (t === 'bytes') value = r.bytes().toString('base64');
    else if (t === 'int') value = Number(BigInt.asIntN(64, r.varint()));
    else if (t === 'bool') value = r.varint() !== 0n;
    else if (t === 'time') value = time(r.bytes());
    else if (t === 'quantity') value = quantity(r.bytes());
    else value = intOrString(r.bytes());
    if (field.repeated) {
      if (!Array.isArray(out[field.name])) out[field.name] = [];
      (out[field.name] as unknown[]).push(value);
    } else out[field.name] = value;
    if (field.ptr) set.add(field.name);
  }
  // Non-pointer zero values are what Go marshals for "unset"; drop them like omitempty does.
  for (const [k, v] of Object.entries(out)) {
    if (set.has(k)) continue;
    if (v === '' || v === 0 || v === false || v === undefined || (Array.isArray(v) && v.length === 0) || (isObject(v) && Object.keys(v).length === 0)) delete out[k];
  }
  return out;
}

function time(buf: Buffer): string | undefined {
  const r = new Reader(buf);
  let seconds = 0n;
  while (!r.done) {
    const tag = Number(r.varint());
    if (tag >>> 3 === 1) seconds = BigInt.asIntN(64, r.varint());
    else r.skip(tag & 7);
  }
  return seconds === 0n ? undefined : new Date(Number(seconds) * 1000).toISOString().replace('.000Z', 'Z');
}

function quantity(buf: Buffer): string {
  const r = new Reader(buf);
  let s = '';
  while (!r.done) {
    const tag = Number(r.varint());
    if (tag >>> 3 === 1) s = r.bytes().toString('utf8');
    else r.skip(tag & 7);
  }
  return s;
}

function intOrString(buf: Buffer): number | string {
  const r = new Reader(buf);
  let type = 0;
  let intVal = 0;
  let strVal = '';
  while (!r.done) {
    const tag = Number(r.varint());
    const no = tag >>> 3;
    if (no === 1) type = Number(r.varint());
    else if (no === 2) intVal = Number(BigInt.asIntN(32, r.varint()));
    else if (no === 3) strVal = r.bytes().toString('utf8');
    else r.skip(tag & 7);
  }
  return type === 1 ? strVal : intVal;
}

/** A protobuf-encoded kube object (with its `k8s\0` envelope) as JSON. */
export function decodeKubeProtobuf(body: Buffer): JsonObject {
  if (body.length < 4 || !body.subarray(0, 4).equals(MAGIC)) throw errors.badRequest('protobuf body without the k8s envelope');
  try {
    const env = new Reader(body.subarray(4));
    let apiVersion = '';
    let kind = '';
    let raw: Buffer | undefined;
    while (!env.done) {
      const tag = Number(env.varint());
      const no = tag >>> 3;
      if (no === 1) {
        const tm = new Reader(env.bytes());
        while (!tm.done) {
          const t = Number(tm.varint());
          if (t >>> 3 === 1) apiVersion = tm.bytes().toString('utf8');
          else if (t >>> 3 === 2) kind = tm.bytes().toString('utf8');
          else tm.skip(t & 7);
        }
      } else if (no === 2) raw = env.bytes();
      else env.skip(tag & 7);
    }
    const schema = KINDS[`${apiVersion}/${kind}`];
    if (!schema || !raw) {
      throw errors.unsupportedMediaType(`application/vnd.kubernetes.protobuf (${kind || 'unknown kind'})`, ['application/json', 'application/yaml']);
    }
    return { apiVersion, kind, ...decodeMessage(raw, schema) };
  } catch (e) {
    if (e instanceof Error && e.name === 'ApiError') throw e;
    throw errors.badRequest(`couldn't decode the protobuf request body: ${(e as Error).message}`);
  }
}

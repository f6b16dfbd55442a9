import { X509Certificate } from 'node:crypto';
import { evalJsonPath } from '../../../src/lab/apiserver/jsonpath.js';
import { humanDuration } from '../../../src/lab/apiserver/meta.js';
import { jsonPatch, mergePatch, strategicMergePatch } from '../../../src/lab/apiserver/patch.js';
import { patchMetaFor } from '../../../src/lab/apiserver/patch-meta.js';
import { compileSchema, prune, validateAgainst, applyDefaults } from '../../../src/lab/apiserver/schema.js';
import { parseFieldSelector, parseLabelSelector } from '../../../src/lab/apiserver/selectors.js';
import { decodeKubeProtobuf } from '../../../src/lab/apiserver/protobuf.js';
import { selfSignedCert } from '../../../src/lab/apiserver/tls.js';

describe('label selectors', () => {
  const l = { app: 'web', tier: 'front', n: '5' };
  it.each([
    ['', true],
    ['app=web', true],
    ['app==web,tier=front', true],
    ['app!=web', false],
    ['missing!=x', true],
    ['app in (db, web)', true],
    ['app notin (web)', false],
    ['missing notin (x)', true],
    ['tier', true],
    ['!tier', false],
    ['!missing', true],
    ['n>4', true],
    ['n<5', false],
    ['app=', false],
  ])('%s -> %s', (sel, want) => {
    expect(parseLabelSelector(sel).matches(l)).toBe(want);
  });
  it('rejects malformed selectors with 400', () => {
    for (const bad of ['a in b', 'a in (b', '=x', 'a b']) expect(() => parseLabelSelector(bad)).toThrow(expect.objectContaining({ code: 400 }));
  });
});

describe('field selectors', () => {
  it('matches =, == and != with escapes', () => {
    const s = parseFieldSelector('metadata.name==a\\,b,status.phase!=Running');
    expect(s.requirements).toEqual([
      { field: 'metadata.name', op: '=', value: 'a,b' },
      { field: 'status.phase', op: '!=', value: 'Running' },
    ]);
    expect(s.matches({ 'metadata.name': 'a,b', 'status.phase': 'Pending' })).toBe(true);
    expect(s.matches({ 'metadata.name': 'a,b', 'status.phase': 'Running' })).toBe(false);
    expect(() => parseFieldSelector('nonsense')).toThrow(expect.objectContaining({ code: 400 }));
  });
});

describe('patches', () => {
  it('merge patch follows RFC 7386', () => {
    expect(mergePatch({ a: 'b', c: { d: 'e', f: 'g' } }, { a: 'z', c: { f: null } })).toEqual({ a: 'z', c: { d: 'e' } });
    expect(mergePatch({ a: [1, 2] }, { a: [3] })).toEqual({ a: [3] });
    expect(mergePatch({ a: 1 }, 'x')).toBe('x');
  });

  it('JSON patch follows RFC 6902', () => {
    const doc = { a: { b: [1, 2] }, 'x/y': 1, 't~': 2 };
    expect(jsonPatch(doc, [
      { op: 'add', path: '/a/b/-', value: 3 },
      { op: 'add', path: '/a/b/0', value: 0 },
      { op: 'remove', path: '/x~1y' },
      { op: 'move', from: '/t~0', path: '/m' },
      { op: 'copy', from: '/m', path: '/n' },
      { op: 'test', path: '/a/b/3', value: 3 },
    ])).toEqual({ a: { b: [0, 1, 2, 3] }, m: 2, n: 2 });
    expect(() => jsonPatch(doc, [{ op: 'remove', path: '/nope' }])).toThrow(expect.objectContaining({ code: 422 }));
    expect(() => jsonPatch(doc, [{ op: 'bogus', path: '/a' }])).toThrow(expect.objectContaining({ code: 400 }));
    expect(() => jsonPatch(doc, { op: 'add' })).toThrow(expect.objectContaining({ code: 400 }));
  });

  it('strategic merge patch merges lists by key and honours directives', () => {
    const meta = patchMetaFor('Pod');
    const pod = {
      metadata: { finalizers: ['a'], ownerReferences: [{ uid: '1', name: 'x' }] },
      spec: {
        containers: [{ name: 'a', image: '1', ports: [{ containerPort: 80 }, { containerPort: 81 }] }],
        volumes: [{ name: 'v', emptyDir: {} }],
        tolerations: [{ key: 'k' }],
      },
      status: { conditions: [{ type: 'Ready', status: 'False' }, { type: 'PodScheduled', status: 'True' }] },
    };
    const out = strategicMergePatch(pod, {
      metadata: { finalizers: ['b', 'a'], ownerReferences: [{ uid: '2', name: 'y' }] },
      spec: {
        containers: [{ name: 'b', image: '2' }, { name: 'a', ports: [{ containerPort: 81, $patch: 'delete' }, { containerPort: 82 }] }],
        volumes: [{ name: 'v', $retainKeys: ['name', 'hostPath'], hostPath: { path: '/x' } }],
        tolerations: [{ key: 'other' }],
      },
      status: { conditions: [{ type: 'Ready', status: 'True' }] },
    }, meta) as typeof pod;
    expect(out.metadata.finalizers).toEqual(['a', 'b']);
    expect(out.metadata.ownerReferences.map((r) => r.uid)).toEqual(['1', '2']);
    expect(out.spec.containers).toEqual([
      { name: 'a', image: '1', ports: [{ containerPort: 80 }, { containerPort: 82 }] },
      { name: 'b', image: '2' },
    ]);
    expect(out.spec.volumes).toEqual([{ name: 'v', hostPath: { path: '/x' } }]);
    expect(out.spec.tolerations).toEqual([{ key: 'other' }]);
    expect(out.status.conditions).toEqual([{ type: 'Ready', status: 'True' }, { type: 'PodScheduled', status: 'True' }]);
    expect(strategicMergePatch({ spec: { a: { b: 1 } } }, { spec: { a: { $patch: 'replace', c: 2 } } }, meta)).toEqual({ spec: { a: { c: 2 } } });
    expect(strategicMergePatch({ spec: { a: { b: 1 }, z: 1 } }, { spec: { a: { $patch: 'delete' } } }, meta)).toEqual({ spec: { z: 1 } });
  });
});

describe('structural schemas', () => {
  const schema = {
    type: 'object',
    properties: {
      spec: {
        type: 'object',
        properties: {
          replicas: { type: 'integer', default: 1, minimum: 0, exclusiveMaximum: true, maximum: 10 },
          mode: { type: 'string', nullable: true, enum: ['a', 'b'] },
          port: { 'x-kubernetes-int-or-string': true },
          opaque: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
          nested: { type: 'object', properties: { keep: { type: 'string', default: 'yes' } } },
          list: { type: 'array', items: { type: 'object', properties: { a: { type: 'string' } } } },
        },
      },
    },
  };
  it('prunes unknown fields and reports their paths', () => {
    const obj = { apiVersion: 'x/v1', kind: 'X', metadata: { name: 'n' }, spec: { port: 1, opaque: { deep: { any: 1 } }, list: [{ a: 'x', b: 'y' }], extra: 1 }, top: 1 };
    expect(prune(obj, schema).sort()).toEqual(['spec.extra', 'spec.list[0].b', 'top']);
    expect(obj).toEqual({ apiVersion: 'x/v1', kind: 'X', metadata: { name: 'n' }, spec: { port: 1, opaque: { deep: { any: 1 } }, list: [{ a: 'x' }] } });
  });
  it('applies defaults to absent fields only', () => {
    const obj: Record<string, unknown> = { spec: { replicas: 3, nested: {} } };
    applyDefaults(obj, schema);
    expect(obj).toEqual({ spec: { replicas: 3, nested: { keep: 'yes' } } });
  });
  it('validates with kube-style causes', () => {
    const c = compileSchema(schema);
    expect(validateAgainst(c, { spec: { replicas: 10, mode: null, port: 'http' } })).toEqual([
      { reason: 'FieldValueInvalid', field: 'spec.replicas', message: 'Invalid value: 10: spec.replicas in body should be less than 10' },
    ]);
    const causes = validateAgainst(c, { spec: { replicas: 'x', mode: 'c', port: 1.5 } });
    expect(causes.map((x) => x.field).sort()).toEqual(['spec.mode', 'spec.port', 'spec.replicas']);
    expect(causes.find((x) => x.field === 'spec.replicas')?.message).toBe('Invalid value: "string": spec.replicas in body must be of type integer: "string"');
  });
});

describe('protobuf bodies', () => {
  const envelope = (apiVersion: string, kind: string, raw: Buffer): Buffer => {
    const str = (no: number, v: string | Buffer): Buffer => {
      const b = Buffer.isBuffer(v) ? v : Buffer.from(v);
      return Buffer.concat([Buffer.from([(no << 3) | 2, b.length]), b]);
    };
    return Buffer.concat([Buffer.from('k8s\0'), str(1, Buffer.concat([str(1, apiVersion), str(2, kind)])), str(2, raw)]);
  };
  it('decodes a ConfigMap, dropping Go zero values', () => {
    const field = (no: number, v: Buffer): Buffer => Buffer.concat([Buffer.from([(no << 3) | 2, v.length]), v]);
    const meta = Buffer.concat([field(1, Buffer.from('cm')), field(2, Buffer.from('')), field(8, Buffer.alloc(0))]);
    const entry = Buffer.concat([field(1, Buffer.from('k')), field(2, Buffer.from('v'))]);
    const obj = decodeKubeProtobuf(envelope('v1', 'ConfigMap', Buffer.concat([field(1, meta), field(2, entry)])));
    expect(obj).toEqual({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'cm' }, data: { k: 'v' } });
  });
  it('refuses kinds it has no schema for with 415, and junk with 400', () => {
    expect(() => decodeKubeProtobuf(envelope('v1', 'Pod', Buffer.alloc(0)))).toThrow(expect.objectContaining({ code: 415 }));
    expect(() => decodeKubeProtobuf(Buffer.from('nope'))).toThrow(expect.objectContaining({ code: 400 }));
    expect(() => decodeKubeProtobuf(Buffer.concat([Buffer.from('k8s\0'), Buffer.from([0x0a, 0x7f])]))).toThrow(expect.objectContaining({ code: 400 }));
  });
});

describe('helpers', () => {
  it('evaluates the JSONPath subset of printer columns', () => {
    const o = { status: { conditions: [{ type: 'A', status: 'False' }, { type: 'Ready', status: 'True' }] }, spec: { list: [{ n: 1 }, { n: 2 }], 'a.b': 'dotted' } };
    expect(evalJsonPath(o, '.status.conditions[?(@.type=="Ready")].status')).toEqual(['True']);
    expect(evalJsonPath(o, '.spec.list[*].n')).toEqual([1, 2]);
    expect(evalJsonPath(o, '.spec.list[-1].n')).toEqual([2]);
    expect(evalJsonPath(o, "{.spec['a.b']}")).toEqual(['dotted']);
    expect(evalJsonPath(o, '.spec.missing')).toEqual([]);
  });

  it('formats ages like kubectl', () => {
    const s = 1000;
    expect([0, 59 * s, 119 * s, 150 * s, 600 * s, 3 * 3600 * s + 60 * s, 30 * 3600 * s, 50 * 3600 * s, 400 * 86400 * s, 800 * 86400 * s].map(humanDuration)).toEqual(['0s', '59s', '119s', '2m30s', '10m', '3h1m', '30h', '2d2h', '400d', '2y70d']);
  });

  it('makes a self-signed CA/server certificate for 127.0.0.1', () => {
    const { cert } = selfSignedCert();
    const x = new X509Certificate(cert);
    expect(x.ca).toBe(true);
    expect(x.subjectAltName).toMatch(/IP Address:127\.0\.0\.1/);
    expect(x.subjectAltName).toMatch(/DNS:localhost/);
    expect(x.verify(x.publicKey)).toBe(true);
    expect(x.checkIP('127.0.0.1')).toBe('127.0.0.1');
    expect(Date.parse(x.validTo)).toBeGreaterThan(Date.now() + 365 * 86400_000);
  });
});

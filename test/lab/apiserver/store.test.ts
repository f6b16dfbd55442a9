import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiError, ApiServer, type WatchEvent } from '../../../src/lab/apiserver/index.js';
import { call, eventually, startServer, watchStream, type Json, type TestServer } from './helpers.js';

// The in-process store API the lab uses, persistence across restarts, and kind-specific behaviour.

describe('in-process store access', () => {
  let srv: TestServer;
  beforeAll(async () => {
    srv = await startServer();
  });
  afterAll(async () => {
    await srv?.stop();
  });

  it('creates, reads, patches, watches and deletes without HTTP, with the same errors', () => {
    const pods = srv.api.resource('v1', 'pods');
    const seen: WatchEvent[] = [];
    const handle = pods.watch({ namespace: 'default', resourceVersion: String(srv.api.store.resourceVersion) }, (ev) => seen.push(ev));
    const p = pods.create({ metadata: { name: 'inproc', namespace: 'default' }, spec: { containers: [{ name: 'c', image: 'x' }] } });
    expect(p).toMatchObject({ apiVersion: 'v1', kind: 'Pod', status: { phase: 'Pending' } });
    expect(pods.get('inproc', 'default').metadata.uid).toBe(p.metadata.uid);
    expect(pods.tryGet('nope', 'default')).toBeUndefined();
    expect(() => pods.create(p)).toThrow(ApiError);
    const patched = pods.patch('inproc', { status: { phase: 'Running', podIP: '10.1.0.5' } }, { namespace: 'default', subresource: 'status' });
    expect(patched.status).toMatchObject({ phase: 'Running', podIP: '10.1.0.5' });
    expect(pods.list({ namespace: 'default', fieldSelector: 'status.phase=Running' }).items).toHaveLength(1);
    expect(pods.delete('inproc', { namespace: 'default' }).deleted).toBe(true);
    handle.stop();
    expect(seen.map((e) => e.type)).toEqual(['ADDED', 'MODIFIED', 'DELETED']);
    // Lookup by kind, singular or short name works too.
    expect(srv.api.resource('v1', 'Pod').type.resource).toBe('pods');
    expect(srv.api.resource('apps/v1', 'deploy').type.kind).toBe('Deployment');
    expect(() => srv.api.resource('v1', 'gizmos').list()).toThrow(expect.objectContaining({ code: 404 }));
  });

  it('allocates service cluster IPs and node ports, and keeps them immutable', async () => {
    const svcs = srv.api.resource('v1', 'services');
    const a = svcs.create<Json>({ metadata: { name: 'a', namespace: 'default' }, spec: { selector: { app: 'a' }, ports: [{ port: 80 }] } });
    // 10.96.0.1 is the `kubernetes` Service's.
    expect(a.spec).toMatchObject({ type: 'ClusterIP', clusterIP: '10.96.0.2', clusterIPs: ['10.96.0.2'], ports: [{ port: 80, targetPort: 80, protocol: 'TCP' }] });
    const b = svcs.create<Json>({ metadata: { name: 'b', namespace: 'default' }, spec: { type: 'NodePort', ports: [{ port: 53, protocol: 'UDP', name: 'dns' }, { port: 54, name: 'x' }] } });
    expect(b.spec.clusterIP).toBe('10.96.0.3');
    expect((b.spec as Json).ports.map((p: Json) => p.nodePort)).toEqual([30000, 30001]);
    expect(() => svcs.create({ metadata: { name: 'c', namespace: 'default' }, spec: { clusterIP: '10.96.0.1', ports: [{ port: 1 }] } })).toThrow(/already allocated/);
    expect(() => svcs.create({ metadata: { name: 'd', namespace: 'default' }, spec: { clusterIP: '192.168.0.1', ports: [{ port: 1 }] } })).toThrow(/not in the valid range/);
    expect(() => svcs.patch('a', { spec: { clusterIP: '10.96.0.9' } }, { namespace: 'default' })).toThrow(/may not change/);
    expect(svcs.create<Json>({ metadata: { name: 'headless', namespace: 'default' }, spec: { clusterIP: 'None', selector: { a: 'b' } } }).spec.clusterIP).toBe('None');
    const t = (await call(srv.api, 'GET', '/api/v1/namespaces/default/services/b', undefined, { accept: 'application/json;as=Table;v=v1;g=meta.k8s.io' })).body;
    expect(t.rows[0].cells.slice(0, 5)).toEqual(['b', 'NodePort', '10.96.0.3', '<none>', '53:30000/UDP,54:30001/TCP']);
  });

  it('folds secret stringData into base64 data', () => {
    const s = srv.api.resource('v1', 'secrets').create({ metadata: { name: 's', namespace: 'default' }, stringData: { password: 'hunter2' } });
    expect(s).toMatchObject({ type: 'Opaque', data: { password: Buffer.from('hunter2').toString('base64') } });
    expect(s.stringData).toBeUndefined();
  });

  it('honours dryRun, YAML bodies, apply patches, PUT-creates and partial metadata', async () => {
    const path = '/api/v1/namespaces/default/configmaps';
    const dry = await call(srv.api, 'POST', `${path}?dryRun=All`, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'dry' } });
    expect(dry.status).toBe(201);
    expect((await call(srv.api, 'GET', `${path}/dry`)).status).toBe(404);
    const yaml = await call(srv.api, 'POST', path, 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-yaml\ndata:\n  a: "1"\n', { 'content-type': 'application/yaml' });
    expect(yaml.body.data).toEqual({ a: '1' });
    const applied = await call(srv.api, 'PATCH', `${path}/ssa?fieldManager=test`, 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\ndata:\n  a: "1"\n', { 'content-type': 'application/apply-patch+yaml' });
    expect(applied.status).toBe(201);
    const reapplied = await call(srv.api, 'PATCH', `${path}/ssa?fieldManager=test`, 'data:\n  b: "2"\n', { 'content-type': 'application/apply-patch+yaml' });
    expect(reapplied.body.data).toEqual({ a: '1', b: '2' });
    const ep = await call(srv.api, 'PUT', '/api/v1/namespaces/default/endpoints/made-by-put', { apiVersion: 'v1', kind: 'Endpoints', metadata: { name: 'made-by-put' }, subsets: [] });
    expect(ep.status).toBe(201);
    expect((await call(srv.api, 'PUT', `${path}/not-there`, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'not-there' } })).status).toBe(404);
    const partial = await call(srv.api, 'GET', path, undefined, { accept: 'application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io,application/json' });
    expect(partial.body.kind).toBe('PartialObjectMetadataList');
    expect(partial.body.items[0]).toEqual({ kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: expect.objectContaining({ name: expect.any(String) }) });
    expect((await call(srv.api, 'POST', `${path}/x`, {})).status).toBe(405);
    expect((await call(srv.api, 'GET', '/api/v1/namespaces/default/gizmos')).status).toBe(404);
    expect((await call(srv.api, 'GET', '/api/v1/namespaces/default/pods', undefined, { accept: 'application/vnd.kubernetes.protobuf' })).status).toBe(406);
    expect((await call(srv.api, 'POST', path, '{"broken', {})).status).toBe(400);
  });

  it('labels namespaces with their name', () => {
    const ns = srv.api.resource('v1', 'namespaces').create({ metadata: { name: 'labelled' } });
    expect(ns.metadata.labels).toEqual({ 'kubernetes.io/metadata.name': 'labelled' });
  });
});

describe('persistence', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'seine-apiserver-persist-'));
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('writes snapshots atomically and restores objects, CRDs, credentials and the resourceVersion sequence', async () => {
    const dataFile = join(dir, 'state', 'apiserver.json');
    const a = await ApiServer.start({ dataFile, persistDebounceMs: 10 });
    const crd = {
      apiVersion: 'apiextensions.k8s.io/v1',
      kind: 'CustomResourceDefinition',
      metadata: { name: 'things.example.com' },
      spec: { group: 'example.com', scope: 'Cluster', names: { plural: 'things', kind: 'Thing' }, versions: [{ name: 'v1', served: true, storage: true, schema: { openAPIV3Schema: { type: 'object', properties: { spec: { type: 'object', properties: { n: { type: 'integer' } } } } } } }] },
    };
    a.resource('apiextensions.k8s.io/v1', 'customresourcedefinitions').create(crd);
    a.resource('example.com/v1', 'things').create({ metadata: { name: 't1' }, spec: { n: 1 } });
    a.resource('v1', 'configmaps').create({ metadata: { name: 'c1', namespace: 'default' }, data: { k: 'v' } });
    await eventually(() => existsSync(dataFile) && readFileSync(dataFile, 'utf8').includes('"c1"'), 30_000, 'snapshot written');
    const rv = a.store.resourceVersion;
    const { token, tls } = a;
    const port = a.port;
    await a.close();
    expect(readdirSync(join(dir, 'state'))).toEqual(['apiserver.json']);
    const b = await ApiServer.start({ dataFile, port });
    try {
      expect(b.token).toBe(token);
      expect(b.tls.cert).toBe(tls.cert);
      expect(b.store.resourceVersion).toBe(rv);
      expect(b.resource('example.com/v1', 'things').get('t1').spec).toEqual({ n: 1 });
      expect(() => b.resource('example.com/v1', 'things').create({ metadata: { name: 't2' }, spec: { n: 'x' } })).toThrow(expect.objectContaining({ code: 422 }));
      expect((await call(b, 'GET', '/api/v1/namespaces/default/configmaps/c1')).body.data).toEqual({ k: 'v' });
      // A watch from before the restart: from the snapshot's resourceVersion it resumes; older is 410.
      const resumed = watchStream(b, `/api/v1/namespaces/default/configmaps?resourceVersion=${rv}`);
      const old = watchStream(b, `/api/v1/namespaces/default/configmaps?resourceVersion=${rv - 1}`);
      b.resource('v1', 'configmaps').create({ metadata: { name: 'c2', namespace: 'default' } });
      expect((await resumed.waitFor(1))[0]).toMatchObject({ type: 'ADDED', object: { metadata: { name: 'c2', resourceVersion: String(rv + 1) } } });
      expect((await old.waitFor(1))[0]).toMatchObject({ type: 'ERROR', object: { code: 410 } });
      resumed.close();
    } finally {
      await b.close();
    }
  });

  it('fails loudly on a file that is not a snapshot', async () => {
    const dataFile = join(dir, 'junk.json');
    await import('node:fs').then((fs) => fs.writeFileSync(dataFile, '{"hello":1}'));
    await expect(ApiServer.start({ dataFile })).rejects.toThrow(/not an API server snapshot/);
  });
});

import { call, eventually, sleep, startServer, watchStream, type Json, type TestServer } from './helpers.js';

// API semantics clients depend on, exercised over HTTP exactly as a client library would.

const cm = (name: string, extra: Json = {}): Json => ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, ...(extra.metadata ?? {}) }, data: extra.data ?? { k: 'v' } });
const pod = (name: string, extra: Json = {}): Json => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name, ...(extra.metadata ?? {}) },
  spec: { containers: [{ name: 'c', image: 'busybox:1' }], ...(extra.spec ?? {}) },
});
const CMS = '/api/v1/namespaces/default/configmaps';
const PODS = '/api/v1/namespaces/default/pods';

describe('API server conformance', () => {
  let srv: TestServer;
  beforeAll(async () => {
    srv = await startServer({ bookmarkIntervalMs: 200 });
  });
  afterAll(async () => {
    await srv?.stop();
  });
  const api = (): TestServer['api'] => srv.api;

  describe('authentication and discovery', () => {
    it('answers 401 with a Status without a token or with a wrong one; health checks are open', async () => {
      for (const headers of [{ authorization: '' }, { authorization: 'Bearer wrong' }, { authorization: 'Basic dGVzdA==' }]) {
        const r = await call(api(), 'GET', '/api/v1/namespaces', undefined, headers);
        expect(r.status).toBe(401);
        expect(r.body).toMatchObject({ kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'Unauthorized', code: 401 });
      }
      expect((await call(api(), 'GET', '/version', undefined, { authorization: '' })).status).toBe(401);
      expect((await call(api(), 'GET', '/readyz', undefined, { authorization: '' })).text).toBe('ok');
    });

    it('serves version, legacy and group discovery, and OpenAPI v3 with fieldValidation', async () => {
      expect((await call(api(), 'GET', '/version')).body).toMatchObject({ major: '1', minor: '32' });
      expect((await call(api(), 'GET', '/api')).body).toMatchObject({ kind: 'APIVersions', versions: ['v1'] });
      const core = (await call(api(), 'GET', '/api/v1')).body;
      const names = core.resources.map((r: Json) => r.name);
      expect(names).toEqual(expect.arrayContaining(['pods', 'pods/status', 'pods/binding', 'nodes', 'nodes/status', 'namespaces/finalize', 'services', 'endpoints', 'events', 'configmaps', 'secrets', 'serviceaccounts']));
      expect(core.resources.find((r: Json) => r.name === 'pods')).toMatchObject({ namespaced: true, kind: 'Pod', shortNames: ['po'] });
      const groups = (await call(api(), 'GET', '/apis')).body.groups.map((g: Json) => g.name);
      expect(groups).toEqual(expect.arrayContaining(['apps', 'discovery.k8s.io', 'networking.k8s.io', 'coordination.k8s.io', 'rbac.authorization.k8s.io', 'apiextensions.k8s.io']));
      expect((await call(api(), 'GET', '/apis/apps/v1')).body.resources.map((r: Json) => r.name)).toEqual(expect.arrayContaining(['deployments', 'daemonsets']));
      expect((await call(api(), 'GET', '/apis/nope.example/v1')).status).toBe(404);
      const root = (await call(api(), 'GET', '/openapi/v3')).body;
      const url = root.paths['api/v1'].serverRelativeURL as string;
      expect(url).toMatch(/^\/openapi\/v3\/api\/v1\?hash=/);
      const doc = (await call(api(), 'GET', url)).body;
      const patch = doc.paths['/api/v1/namespaces/{namespace}/pods/{name}'].patch;
      expect(patch['x-kubernetes-group-version-kind']).toEqual({ group: '', version: 'v1', kind: 'Pod' });
      expect(patch.parameters.map((p: Json) => p.name)).toContain('fieldValidation');
      // kubectl asks for protobuf v2 (to validate the items of a List): gnostic's Document, under a type Go can parse.
      const v2 = await call(api(), 'GET', '/openapi/v2', undefined, { accept: 'application/com.github.proto-openapi.spec.v2@v1.0+protobuf' });
      expect(v2.status).toBe(200);
      expect(v2.headers['content-type']).toBe('application/com.github.proto-openapi.spec.v2.v1.0+protobuf');
    });

    it('has default, kube-system and kube-public at start', async () => {
      const ns = (await call(api(), 'GET', '/api/v1/namespaces')).body.items.map((n: Json) => n.metadata.name);
      expect(ns).toEqual(expect.arrayContaining(['default', 'kube-system', 'kube-public']));
      const d = (await call(api(), 'GET', '/api/v1/namespaces/default')).body;
      expect(d).toMatchObject({ spec: { finalizers: ['kubernetes'] }, status: { phase: 'Active' } });
    });
  });

  describe('create, read, update', () => {
    it('creates with server-set metadata and a monotonic string resourceVersion', async () => {
      const a = await call(api(), 'POST', CMS, cm('meta-a'));
      const b = await call(api(), 'POST', CMS, cm('meta-b'));
      expect(a.status).toBe(201);
      expect(a.body.metadata).toMatchObject({ name: 'meta-a', namespace: 'default', uid: expect.stringMatching(/^[0-9a-f-]{36}$/), creationTimestamp: expect.stringMatching(/Z$/) });
      expect(typeof a.body.metadata.resourceVersion).toBe('string');
      expect(Number(b.body.metadata.resourceVersion)).toBeGreaterThan(Number(a.body.metadata.resourceVersion));
    });

    it('rejects a duplicate with 409 AlreadyExists and an unknown name with 404 NotFound', async () => {
      await call(api(), 'POST', CMS, cm('dup'));
      const r = await call(api(), 'POST', CMS, cm('dup'));
      expect(r.status).toBe(409);
      expect(r.body).toMatchObject({ kind: 'Status', reason: 'AlreadyExists', code: 409, message: 'configmaps "dup" already exists', details: { name: 'dup', kind: 'configmaps' } });
      const nf = await call(api(), 'GET', `${CMS}/absent`);
      expect(nf.status).toBe(404);
      expect(nf.body).toMatchObject({ reason: 'NotFound', code: 404, message: 'configmaps "absent" not found' });
    });

    it('generates names from generateName', async () => {
      const r = await call(api(), 'POST', CMS, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { generateName: 'gen-' } });
      expect(r.status).toBe(201);
      expect(r.body.metadata.name).toMatch(/^gen-[a-z0-9]{5}$/);
      expect(r.body.metadata.generateName).toBe('gen-');
    });

    it('refuses a namespaced object in a missing namespace (404) and bad names (422)', async () => {
      const r = await call(api(), 'POST', '/api/v1/namespaces/nowhere/configmaps', cm('x'));
      expect(r.status).toBe(404);
      expect(r.body).toMatchObject({ reason: 'NotFound', message: 'namespaces "nowhere" not found' });
      const bad = await call(api(), 'POST', CMS, cm('Bad_Name'));
      expect(bad.status).toBe(422);
      expect(bad.body).toMatchObject({ reason: 'Invalid', details: { causes: [expect.objectContaining({ field: 'metadata.name' })] } });
    });

    it('updates with 409 Conflict on a stale resourceVersion', async () => {
      const created = (await call(api(), 'POST', CMS, cm('upd'))).body;
      const first = await call(api(), 'PUT', `${CMS}/upd`, { ...created, data: { k: 'v2' } });
      expect(first.status).toBe(200);
      expect(first.body.data).toEqual({ k: 'v2' });
      const stale = await call(api(), 'PUT', `${CMS}/upd`, { ...created, data: { k: 'v3' } });
      expect(stale.status).toBe(409);
      expect(stale.body).toMatchObject({ reason: 'Conflict', code: 409, message: expect.stringContaining('the object has been modified') });
      // An update that changes nothing keeps the resourceVersion.
      const same = await call(api(), 'PUT', `${CMS}/upd`, first.body);
      expect(same.body.metadata.resourceVersion).toBe(first.body.metadata.resourceVersion);
    });

    it('bumps generation on spec changes only, and keeps status and spec apart', async () => {
      const dep = {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: 'gen' },
        spec: { selector: { matchLabels: { a: 'b' } }, template: { metadata: { labels: { a: 'b' } }, spec: { containers: [{ name: 'c', image: 'x:1' }] } } },
      };
      const path = '/apis/apps/v1/namespaces/default/deployments';
      const c = (await call(api(), 'POST', path, dep)).body;
      expect(c.metadata.generation).toBe(1);
      const labelled = (await call(api(), 'PATCH', `${path}/gen`, { metadata: { labels: { x: 'y' } } }, { 'content-type': 'application/merge-patch+json' })).body;
      expect(labelled.metadata.generation).toBe(1);
      const scaled = (await call(api(), 'PATCH', `${path}/gen`, { spec: { replicas: 5 }, status: { replicas: 9 } }, { 'content-type': 'application/merge-patch+json' })).body;
      expect(scaled.metadata.generation).toBe(2);
      expect(scaled.status.replicas).toBeUndefined();
      const st = (await call(api(), 'PATCH', `${path}/gen/status`, { spec: { replicas: 1 }, status: { replicas: 5 } }, { 'content-type': 'application/merge-patch+json' })).body;
      expect(st.status.replicas).toBe(5);
      expect(st.spec.replicas).toBe(5);
      expect(st.metadata.generation).toBe(2);
    });

    it('binds a pod to a node once', async () => {
      await call(api(), 'POST', PODS, pod('bindme'));
      const b = await call(api(), 'POST', `${PODS}/bindme/binding`, { apiVersion: 'v1', kind: 'Binding', metadata: { name: 'bindme' }, target: { kind: 'Node', name: 'n1' } });
      expect(b.status).toBe(201);
      const p = (await call(api(), 'GET', `${PODS}/bindme`)).body;
      expect(p.spec.nodeName).toBe('n1');
      expect(p.status.conditions).toContainEqual(expect.objectContaining({ type: 'PodScheduled', status: 'True' }));
      const again = await call(api(), 'POST', `${PODS}/bindme/binding`, { target: { kind: 'Node', name: 'n2' } });
      expect(again.status).toBe(409);
    });
  });

  describe('patch', () => {
    it('applies JSON merge patches (null deletes)', async () => {
      await call(api(), 'POST', CMS, cm('mp', { data: { a: '1', b: '2' } }));
      const r = await call(api(), 'PATCH', `${CMS}/mp`, { data: { a: null, c: '3' }, metadata: { labels: { l: 'x' } } }, { 'content-type': 'application/merge-patch+json' });
      expect(r.status).toBe(200);
      expect(r.body.data).toEqual({ b: '2', c: '3' });
      expect(r.body.metadata.labels).toEqual({ l: 'x' });
    });

    it('applies JSON patches, with test failures as 422 and a stale resourceVersion as 409', async () => {
      const c = (await call(api(), 'POST', CMS, cm('jp', { data: { a: '1' } }))).body;
      const ct = { 'content-type': 'application/json-patch+json' };
      const r = await call(api(), 'PATCH', `${CMS}/jp`, [
        { op: 'test', path: '/data/a', value: '1' },
        { op: 'add', path: '/data/b', value: '2' },
        { op: 'replace', path: '/data/a', value: '9' },
        { op: 'add', path: '/metadata/labels', value: { 'x/y': 'z' } },
      ], ct);
      expect(r.status).toBe(200);
      expect(r.body.data).toEqual({ a: '9', b: '2' });
      expect(r.body.metadata.labels).toEqual({ 'x/y': 'z' });
      const failed = await call(api(), 'PATCH', `${CMS}/jp`, [{ op: 'test', path: '/data/a', value: '1' }], ct);
      expect(failed.status).toBe(422);
      const stale = await call(api(), 'PATCH', `${CMS}/jp`, [{ op: 'replace', path: '/metadata/resourceVersion', value: c.metadata.resourceVersion }], ct);
      expect(stale.status).toBe(409);
      const unsupported = await call(api(), 'PATCH', `${CMS}/jp`, { data: {} }, { 'content-type': 'text/plain' });
      expect(unsupported.status).toBe(415);
    });

    it('applies strategic merge patches by merge key, with kubectl directives', async () => {
      const path = '/apis/apps/v1/namespaces/default/deployments';
      const dep = {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: 'smp', finalizers: ['a.example/x'] },
        spec: {
          selector: { matchLabels: { a: 'b' } },
          template: {
            metadata: { labels: { a: 'b' } },
            spec: {
              containers: [
                { name: 'a', image: 'img:1', env: [{ name: 'E1', value: '1' }, { name: 'E2', value: '2' }], ports: [{ containerPort: 80 }] },
                { name: 'b', image: 'img:1' },
              ],
            },
          },
        },
      };
      expect((await call(api(), 'POST', path, dep)).status).toBe(201);
      const ct = { 'content-type': 'application/strategic-merge-patch+json' };
      const r = await call(api(), 'PATCH', `${path}/smp`, {
        metadata: { finalizers: ['b.example/y'], labels: { new: 'yes' } },
        spec: {
          template: {
            spec: {
              containers: [{ name: 'a', image: 'img:2', env: [{ name: 'E2', $patch: 'delete' }, { name: 'E3', value: '3' }] }],
              '$setElementOrder/containers': [{ name: 'b' }, { name: 'a' }],
            },
          },
        },
      }, ct);
      expect(r.status).toBe(200);
      const cs = r.body.spec.template.spec.containers;
      expect(cs.map((c: Json) => c.name)).toEqual(['b', 'a']);
      const a = cs.find((c: Json) => c.name === 'a');
      expect(a.image).toBe('img:2');
      expect(a.env).toEqual([{ name: 'E1', value: '1' }, { name: 'E3', value: '3' }]);
      expect(a.ports).toEqual([{ containerPort: 80, protocol: 'TCP' }]);
      expect(r.body.metadata.finalizers).toEqual(['a.example/x', 'b.example/y']);
      expect(r.body.metadata.generation).toBe(2);
      // A replace directive swaps the whole list.
      const rep = await call(api(), 'PATCH', `${path}/smp`, { spec: { template: { spec: { containers: [{ $patch: 'replace' }, { name: 'z', image: 'z:1' }] } } } }, ct);
      expect(rep.body.spec.template.spec.containers.map((c: Json) => c.name)).toEqual(['z']);
      const del = await call(api(), 'PATCH', `${path}/smp`, { metadata: { '$deleteFromPrimitiveList/finalizers': ['a.example/x', 'b.example/y'] } }, ct);
      expect(del.body.metadata.finalizers).toBeUndefined();
      // Pods: only images may change after creation, whatever the patch type.
      await call(api(), 'POST', PODS, pod('smp-pod'));
      const img = await call(api(), 'PATCH', `${PODS}/smp-pod`, { spec: { containers: [{ name: 'c', image: 'busybox:2' }] } }, ct);
      expect(img.body.spec.containers[0].image).toBe('busybox:2');
      const forbidden = await call(api(), 'PATCH', `${PODS}/smp-pod`, { spec: { containers: [{ name: 'c', command: ['sh'] }] } }, ct);
      expect(forbidden.status).toBe(422);
      expect(forbidden.body.details.causes[0]).toMatchObject({ field: 'spec', reason: 'FieldValueForbidden' });
    });
  });

  describe('lists', () => {
    beforeAll(async () => {
      await call(api(), 'POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'sel' } });
      const labels: Array<Record<string, string>> = [{ app: 'web', tier: 'front' }, { app: 'web', tier: 'back' }, { app: 'db' }, {}];
      for (const [i, l] of labels.entries()) {
        await call(api(), 'POST', '/api/v1/namespaces/sel/pods', pod(`p${i}`, { metadata: { labels: l }, spec: i < 2 ? { nodeName: 'node-1' } : {} }));
      }
    });
    const names = async (q: string): Promise<string[]> => {
      const r = await call(api(), 'GET', `/api/v1/namespaces/sel/pods?${q}`);
      expect(r.status).toBe(200);
      return r.body.items.map((p: Json) => p.metadata.name);
    };

    it('filters by label selectors', async () => {
      const sel = (s: string): Promise<string[]> => names(`labelSelector=${encodeURIComponent(s)}`);
      expect(await sel('app=web')).toEqual(['p0', 'p1']);
      expect(await sel('app==db')).toEqual(['p2']);
      expect(await sel('app!=web')).toEqual(['p2', 'p3']);
      expect(await sel('app in (web, db),tier notin (back)')).toEqual(['p0', 'p2']);
      expect(await sel('tier')).toEqual(['p0', 'p1']);
      expect(await sel('!app')).toEqual(['p3']);
      expect((await call(api(), 'GET', `/api/v1/namespaces/sel/pods?labelSelector=${encodeURIComponent('a in b')}`)).status).toBe(400);
    });

    it('filters by field selectors', async () => {
      const sel = (s: string): Promise<string[]> => names(`fieldSelector=${encodeURIComponent(s)}`);
      expect(await sel('metadata.name=p1')).toEqual(['p1']);
      expect(await sel('spec.nodeName=node-1')).toEqual(['p0', 'p1']);
      expect(await sel('spec.nodeName=')).toEqual(['p2', 'p3']);
      expect(await sel('status.phase=Pending,metadata.name!=p0')).toEqual(['p1', 'p2', 'p3']);
      const all = await call(api(), 'GET', `/api/v1/pods?fieldSelector=${encodeURIComponent('metadata.namespace=sel')}`);
      expect(all.body.items).toHaveLength(4);
      const bad = await call(api(), 'GET', `/api/v1/namespaces/sel/pods?fieldSelector=spec.bogus%3Dx`);
      expect(bad.status).toBe(400);
      expect(bad.body.message).toMatch(/field label not supported: spec.bogus/);
      await call(api(), 'POST', '/api/v1/namespaces/sel/events', {
        apiVersion: 'v1', kind: 'Event', metadata: { name: 'e1' }, involvedObject: { kind: 'Pod', name: 'p1', namespace: 'sel' }, reason: 'Tested', type: 'Normal', message: 'm',
      });
      const ev = await call(api(), 'GET', `/api/v1/namespaces/sel/events?fieldSelector=${encodeURIComponent('involvedObject.kind=Pod,involvedObject.name=p1')}`);
      expect(ev.body.items.map((e: Json) => e.metadata.name)).toEqual(['e1']);
    });

    it('paginates with limit/continue over a consistent snapshot', async () => {
      await call(api(), 'POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'page' } });
      for (let i = 0; i < 7; i++) await call(api(), 'POST', '/api/v1/namespaces/page/configmaps', cm(`c${i}`));
      const path = '/api/v1/namespaces/page/configmaps';
      const first = (await call(api(), 'GET', `${path}?limit=3`)).body;
      expect(first.items.map((c: Json) => c.metadata.name)).toEqual(['c0', 'c1', 'c2']);
      expect(first.metadata.remainingItemCount).toBe(4);
      // Changes after the first page do not leak into later pages.
      await call(api(), 'DELETE', `${path}/c4`);
      await call(api(), 'POST', path, cm('c35'));
      const second = (await call(api(), 'GET', `${path}?limit=3&continue=${encodeURIComponent(first.metadata.continue)}`)).body;
      expect(second.items.map((c: Json) => c.metadata.name)).toEqual(['c3', 'c4', 'c5']);
      expect(second.metadata.resourceVersion).toBe(first.metadata.resourceVersion);
      const third = (await call(api(), 'GET', `${path}?limit=3&continue=${encodeURIComponent(second.metadata.continue)}`)).body;
      expect(third.items.map((c: Json) => c.metadata.name)).toEqual(['c6']);
      expect(third.metadata.continue).toBeUndefined();
      const fresh = (await call(api(), 'GET', path)).body.items.map((c: Json) => c.metadata.name);
      expect(fresh).toEqual(['c0', 'c1', 'c2', 'c3', 'c35', 'c5', 'c6']);
    });

    it('deletes a collection by selector', async () => {
      await call(api(), 'POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'dc' } });
      for (const [n, l] of [['a', 'x'], ['b', 'x'], ['c', 'y']]) await call(api(), 'POST', '/api/v1/namespaces/dc/configmaps', cm(n!, { metadata: { labels: { g: l } } }));
      const r = await call(api(), 'DELETE', '/api/v1/namespaces/dc/configmaps?labelSelector=g%3Dx');
      expect(r.status).toBe(200);
      expect(r.body.items.map((c: Json) => c.metadata.name)).toEqual(['a', 'b']);
      const left = (await call(api(), 'GET', '/api/v1/namespaces/dc/configmaps')).body.items.map((c: Json) => c.metadata.name);
      expect(left).toEqual(['c']);
    });

    it('serves Table output with pod columns and the object metadata', async () => {
      const r = await call(api(), 'GET', '/api/v1/namespaces/sel/pods?limit=2', undefined, { accept: 'application/json;as=Table;v=v1;g=meta.k8s.io,application/json' });
      expect(r.body.kind).toBe('Table');
      expect(r.body.columnDefinitions.map((c: Json) => c.name)).toEqual(['Name', 'Ready', 'Status', 'Restarts', 'Age', 'IP', 'Node', 'Nominated Node', 'Readiness Gates']);
      expect(r.body.rows[0].cells.slice(0, 4)).toEqual(['p0', '0/1', 'Pending', '0']);
      expect(r.body.rows[0].object).toMatchObject({ kind: 'PartialObjectMetadata', metadata: { name: 'p0', namespace: 'sel' } });
      expect(r.body.metadata.continue).toBeTruthy();
    });
  });

  describe('watch', () => {
    it('resumes from a resourceVersion with exactly the later events', async () => {
      await call(api(), 'POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'w1' } });
      const path = '/api/v1/namespaces/w1/configmaps';
      const a = (await call(api(), 'POST', path, cm('a'))).body;
      const b = (await call(api(), 'POST', path, cm('b'))).body;
      await call(api(), 'PATCH', `${path}/a`, { data: { k: 'changed' } }, { 'content-type': 'application/merge-patch+json' });
      await call(api(), 'DELETE', `${path}/b`);
      await call(api(), 'POST', '/api/v1/namespaces/default/configmaps', cm('elsewhere'));
      const w = watchStream(api(), `${path}?resourceVersion=${a.metadata.resourceVersion}`);
      const evs = await w.waitFor(3);
      expect(evs.map((e) => [e.type, e.object.metadata.name])).toEqual([['ADDED', 'b'], ['MODIFIED', 'a'], ['DELETED', 'b']]);
      expect(Number(evs[0]!.object.metadata.resourceVersion)).toBe(Number(b.metadata.resourceVersion));
      // Then live events.
      await call(api(), 'POST', path, cm('c'));
      const live = await w.waitFor(4);
      expect(live[3]).toMatchObject({ type: 'ADDED', object: { metadata: { name: 'c' } } });
      await sleep(100);
      expect(w.events).toHaveLength(4);
      w.close();
    });

    it('starts with the current state when no resourceVersion is given, and honours timeoutSeconds', async () => {
      const w = watchStream(api(), '/api/v1/namespaces/w1/configmaps?timeoutSeconds=1');
      const evs = await w.waitFor(2);
      expect(evs.map((e) => [e.type, e.object.metadata.name])).toEqual([['ADDED', 'a'], ['ADDED', 'c']]);
      await w.ended;
    });

    it('filters watches by label and field selectors, with ADDED/DELETED as objects enter and leave', async () => {
      const path = '/api/v1/namespaces/w1/configmaps';
      const rv = (await call(api(), 'GET', path)).body.metadata.resourceVersion;
      const w = watchStream(api(), `${path}?resourceVersion=${rv}&labelSelector=sel%3Dyes`);
      const f = watchStream(api(), `${path}?resourceVersion=${rv}&fieldSelector=metadata.name%3Dfs`);
      await call(api(), 'POST', path, cm('ls', { metadata: { labels: { sel: 'no' } } }));
      await call(api(), 'POST', path, cm('fs'));
      const merge = { 'content-type': 'application/merge-patch+json' };
      await call(api(), 'PATCH', `${path}/ls`, { metadata: { labels: { sel: 'yes' } } }, merge);
      await call(api(), 'PATCH', `${path}/ls`, { data: { x: 'y' } }, merge);
      await call(api(), 'PATCH', `${path}/ls`, { metadata: { labels: { sel: 'no' } } }, merge);
      await call(api(), 'DELETE', `${path}/fs`);
      const evs = await w.waitFor(3);
      expect(evs.map((e) => `${e.type}:${e.object.metadata.name}`)).toEqual(['ADDED:ls', 'MODIFIED:ls', 'DELETED:ls']);
      const fevs = await f.waitFor(2);
      expect(fevs.map((e) => `${e.type}:${e.object.metadata.name}`)).toEqual(['ADDED:fs', 'DELETED:fs']);
      w.close();
      f.close();
    });

    it('sends bookmarks when allowed, and marks the end of initial events', async () => {
      const w = watchStream(api(), '/api/v1/namespaces/w1/configmaps?allowWatchBookmarks=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&resourceVersion=');
      const evs = await w.waitFor(4, 3000);
      const initial = evs.findIndex((e) => e.type === 'BOOKMARK');
      expect(evs.slice(0, initial).every((e) => e.type === 'ADDED')).toBe(true);
      expect(evs[initial]!.object).toMatchObject({ kind: 'ConfigMap', apiVersion: 'v1', metadata: { annotations: { 'k8s.io/initial-events-end': 'true' } } });
      // Then periodic ones (interval 200 ms in this suite).
      const more = await w.waitFor(initial + 2, 3000);
      expect(more[initial + 1]!.type).toBe('BOOKMARK');
      expect(Number(more[initial + 1]!.object.metadata.resourceVersion)).toBeGreaterThan(0);
      const plain = watchStream(api(), '/api/v1/namespaces/w1/configmaps?resourceVersion=1');
      await sleep(500);
      expect(plain.events.some((e) => e.type === 'BOOKMARK')).toBe(false);
      plain.close();
      w.close();
    });

    it('serves Table watch events for kubectl get -w', async () => {
      const rv = (await call(api(), 'GET', '/api/v1/namespaces/w1/configmaps')).body.metadata.resourceVersion;
      const w = watchStream(api(), `/api/v1/namespaces/w1/configmaps?resourceVersion=${rv}`, { accept: 'application/json;as=Table;v=v1;g=meta.k8s.io' });
      await call(api(), 'POST', '/api/v1/namespaces/w1/configmaps', cm('tbl'));
      const [ev] = await w.waitFor(1);
      expect(ev).toMatchObject({ type: 'ADDED', object: { kind: 'Table', rows: [{ cells: ['tbl', 1, expect.any(String)] }] } });
      w.close();
    });
  });

  describe('deletion', () => {
    it('holds objects with finalizers until the last one is removed', async () => {
      const path = '/api/v1/namespaces/default/configmaps';
      const c = (await call(api(), 'POST', path, cm('fin', { metadata: { finalizers: ['example.com/hold', 'example.com/two'] } }))).body;
      const w = watchStream(api(), `${path}?resourceVersion=${c.metadata.resourceVersion}&fieldSelector=metadata.name%3Dfin`);
      const d = await call(api(), 'DELETE', `${path}/fin`);
      expect(d.status).toBe(200);
      expect(d.body.metadata.deletionTimestamp).toBeTruthy();
      expect((await call(api(), 'GET', `${path}/fin`)).status).toBe(200);
      // No new finalizers once deleting.
      const add = await call(api(), 'PATCH', `${path}/fin`, { metadata: { finalizers: ['example.com/hold', 'example.com/two', 'example.com/late'] } }, { 'content-type': 'application/merge-patch+json' });
      expect(add.status).toBe(422);
      await call(api(), 'PATCH', `${path}/fin`, [{ op: 'remove', path: '/metadata/finalizers/1' }], { 'content-type': 'application/json-patch+json' });
      expect((await call(api(), 'GET', `${path}/fin`)).status).toBe(200);
      await call(api(), 'PATCH', `${path}/fin`, { metadata: { finalizers: null } }, { 'content-type': 'application/merge-patch+json' });
      expect((await call(api(), 'GET', `${path}/fin`)).status).toBe(404);
      const evs = await w.waitFor(3);
      expect(evs.map((e) => e.type)).toEqual(['MODIFIED', 'MODIFIED', 'DELETED']);
      w.close();
    });

    it('deletes scheduled pods gracefully and unscheduled ones at once', async () => {
      await call(api(), 'POST', PODS, pod('graceful', { spec: { nodeName: 'n1', terminationGracePeriodSeconds: 45 } }));
      const d = await call(api(), 'DELETE', `${PODS}/graceful`);
      expect(d.status).toBe(200);
      expect(d.body.metadata.deletionGracePeriodSeconds).toBe(45);
      const ts = Date.parse(d.body.metadata.deletionTimestamp);
      expect(ts).toBeGreaterThan(Date.now() + 30_000);
      const listed = (await call(api(), 'GET', `${PODS}/graceful`, undefined, { accept: 'application/json;as=Table;v=v1;g=meta.k8s.io' })).body;
      expect(listed.rows[0].cells[2]).toBe('Terminating');
      // A longer grace period changes nothing; the kubelet's final delete (grace 0) removes it.
      expect((await call(api(), 'DELETE', `${PODS}/graceful`, { gracePeriodSeconds: 100 })).body.metadata.deletionGracePeriodSeconds).toBe(45);
      const bad = await call(api(), 'DELETE', `${PODS}/graceful`, { gracePeriodSeconds: 0, preconditions: { uid: 'not-the-uid' } });
      expect(bad.status).toBe(409);
      const fin = await call(api(), 'DELETE', `${PODS}/graceful?gracePeriodSeconds=0`, { preconditions: { uid: d.body.metadata.uid } });
      expect(fin.status).toBe(200);
      expect((await call(api(), 'GET', `${PODS}/graceful`)).status).toBe(404);
      await call(api(), 'POST', PODS, pod('unscheduled'));
      await call(api(), 'DELETE', `${PODS}/unscheduled`);
      expect((await call(api(), 'GET', `${PODS}/unscheduled`)).status).toBe(404);
    });

    it('cascades namespace deletion: Terminating, contents removed, then the namespace', async () => {
      await call(api(), 'POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'doomed' } });
      await call(api(), 'POST', '/api/v1/namespaces/doomed/configmaps', cm('plain'));
      await call(api(), 'POST', '/api/v1/namespaces/doomed/configmaps', cm('held', { metadata: { finalizers: ['example.com/hold'] } }));
      await call(api(), 'POST', '/api/v1/namespaces/doomed/pods', pod('p'));
      await call(api(), 'POST', '/apis/apps/v1/namespaces/doomed/deployments', {
        apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'd' },
        spec: { selector: { matchLabels: { a: 'b' } }, template: { metadata: { labels: { a: 'b' } }, spec: { containers: [{ name: 'c', image: 'x' }] } } },
      });
      const d = await call(api(), 'DELETE', '/api/v1/namespaces/doomed');
      expect(d.status).toBe(200);
      expect(d.body.status.phase).toBe('Terminating');
      const refused = await call(api(), 'POST', '/api/v1/namespaces/doomed/configmaps', cm('late'));
      expect(refused.status).toBe(403);
      expect(refused.body.message).toMatch(/being terminated/);
      await eventually(async () => (await call(api(), 'GET', '/api/v1/namespaces/doomed/pods')).body.items.length === 0, 30_000, 'pods gone');
      expect((await call(api(), 'GET', '/apis/apps/v1/namespaces/doomed/deployments')).body.items).toHaveLength(0);
      const left = (await call(api(), 'GET', '/api/v1/namespaces/doomed/configmaps')).body.items;
      expect(left.map((c: Json) => c.metadata.name)).toEqual(['held']);
      expect(left[0].metadata.deletionTimestamp).toBeTruthy();
      expect((await call(api(), 'GET', '/api/v1/namespaces/doomed')).body.status.phase).toBe('Terminating');
      await call(api(), 'PATCH', '/api/v1/namespaces/doomed/configmaps/held', { metadata: { finalizers: null } }, { 'content-type': 'application/merge-patch+json' });
      await eventually(async () => (await call(api(), 'GET', '/api/v1/namespaces/doomed')).status === 404, 30_000, 'namespace gone');
      expect((await call(api(), 'DELETE', '/api/v1/namespaces/kube-system')).status).toBe(403);
    });

    it('garbage-collects dependents by ownerReferences (background, orphan, foreground)', async () => {
      const path = '/api/v1/namespaces/default/configmaps';
      const mk = async (name: string, owner?: Json): Promise<Json> =>
        (await call(api(), 'POST', path, cm(name, owner ? { metadata: { ownerReferences: [{ apiVersion: 'v1', kind: 'ConfigMap', name: owner.metadata.name, uid: owner.metadata.uid, blockOwnerDeletion: true }] } } : {}))).body;
      const exists = async (n: string): Promise<boolean> => (await call(api(), 'GET', `${path}/${n}`)).status === 200;
      const bg = await mk('owner-bg');
      await mk('dep-bg', bg);
      await call(api(), 'DELETE', `${path}/owner-bg`, { propagationPolicy: 'Background' });
      await eventually(async () => !(await exists('dep-bg')), 30_000, 'background dependent deleted');
      const or = await mk('owner-or');
      await mk('dep-or', or);
      await call(api(), 'DELETE', `${path}/owner-or`, { propagationPolicy: 'Orphan' });
      await eventually(async () => !(await exists('owner-or')), 30_000, 'orphaning owner deleted');
      const orphan = (await call(api(), 'GET', `${path}/dep-or`)).body;
      expect(orphan.metadata.ownerReferences).toBeUndefined();
      const fg = await mk('owner-fg');
      await mk('dep-fg', fg);
      const d = await call(api(), 'DELETE', `${path}/owner-fg`, { propagationPolicy: 'Foreground' });
      expect(d.body.metadata.finalizers).toContain('foregroundDeletion');
      await eventually(async () => !(await exists('owner-fg')) && !(await exists('dep-fg')), 30_000, 'foreground deletion done');
    });
  });

  describe('resourceVersion window', () => {
    let small: TestServer;
    beforeAll(async () => {
      small = await startServer({ historySize: 3 });
    });
    afterAll(async () => {
      await small?.stop();
    });

    it('answers 410 Gone for a watch or continue older than the retained history', async () => {
      const a = small.api;
      const first = (await call(a, 'POST', CMS, cm('g0'))).body.metadata.resourceVersion;
      for (let i = 1; i < 6; i++) await call(a, 'POST', CMS, cm(`g${i}`));
      const page = (await call(a, 'GET', `${CMS}?limit=2`)).body;
      const w = watchStream(a, `${CMS}?resourceVersion=${first}`);
      const [ev] = await w.waitFor(1);
      expect(ev).toMatchObject({ type: 'ERROR', object: { kind: 'Status', code: 410, reason: 'Expired', message: expect.stringMatching(/too old resource version/) } });
      await w.ended;
      for (let i = 6; i < 10; i++) await call(a, 'POST', CMS, cm(`g${i}`));
      const expired = await call(a, 'GET', `${CMS}?limit=2&continue=${encodeURIComponent(page.metadata.continue)}`);
      expect(expired.status).toBe(410);
      expect(expired.body).toMatchObject({ kind: 'Status', reason: 'Expired', code: 410, metadata: { continue: expect.any(String) } });
      // The inconsistent continue token the Status carries still works.
      const rest = await call(a, 'GET', `${CMS}?limit=100&continue=${encodeURIComponent(expired.body.metadata.continue)}`);
      expect(rest.status).toBe(200);
      expect(rest.body.items[0].metadata.name).toBe('g2');
      // A recent resourceVersion is still fine.
      const recent = (await call(a, 'GET', CMS)).body.metadata.resourceVersion;
      const ok = watchStream(a, `${CMS}?resourceVersion=${recent}`);
      await call(a, 'POST', CMS, cm('g10'));
      expect((await ok.waitFor(1))[0]).toMatchObject({ type: 'ADDED' });
      ok.close();
    });
  });
});

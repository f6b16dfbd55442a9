import { call, eventually, startServer, watchStream, type Json, type TestServer } from './helpers.js';

// CustomResourceDefinitions: serving, schema validation, pruning/defaulting, status subresource,
// printer columns, versions, and cleanup on deletion.

const CRDS = '/apis/apiextensions.k8s.io/v1/customresourcedefinitions';

function widgetCrd(extra: Json = {}): Json {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: 'widgets.example.com' },
    spec: {
      group: 'example.com',
      scope: 'Namespaced',
      names: { plural: 'widgets', singular: 'widget', kind: 'Widget', shortNames: ['wd'], categories: ['all', 'gadgets'] },
      versions: [
        {
          name: 'v1',
          served: true,
          storage: true,
          subresources: { status: {} },
          selectableFields: [{ jsonPath: '.spec.color' }],
          additionalPrinterColumns: [
            { name: 'Size', type: 'integer', jsonPath: '.spec.size' },
            { name: 'Phase', type: 'string', jsonPath: '.status.phase', priority: 1 },
            { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
          ],
          schema: {
            openAPIV3Schema: {
              type: 'object',
              properties: {
                spec: {
                  type: 'object',
                  required: ['size'],
                  properties: {
                    size: { type: 'integer', minimum: 1, maximum: 10 },
                    color: { type: 'string', enum: ['red', 'blue'], default: 'red' },
                    name: { type: 'string', pattern: '^[a-z]+$', maxLength: 8 },
                    port: { 'x-kubernetes-int-or-string': true },
                    free: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
                    labels: { type: 'object', additionalProperties: { type: 'string' } },
                    template: { type: 'object', 'x-kubernetes-embedded-resource': true, 'x-kubernetes-preserve-unknown-fields': true },
                    items: { type: 'array', items: { type: 'object', required: ['id'], properties: { id: { type: 'integer' } } } },
                  },
                },
                status: { type: 'object', properties: { phase: { type: 'string' }, count: { type: 'integer' } } },
              },
            },
          },
        },
        {
          name: 'v1beta1',
          served: true,
          storage: false,
          schema: { openAPIV3Schema: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } },
        },
      ],
      ...extra,
    },
  };
}

const W = '/apis/example.com/v1/namespaces/default/widgets';
const widget = (name: string, spec: Json, extra: Json = {}): Json => ({ apiVersion: 'example.com/v1', kind: 'Widget', metadata: { name, ...(extra.metadata ?? {}) }, spec, ...extra.body });

describe('CustomResourceDefinitions', () => {
  let srv: TestServer;
  beforeAll(async () => {
    srv = await startServer();
  });
  afterAll(async () => {
    await srv?.stop();
  });
  const api = (): TestServer['api'] => srv.api;

  it('serves an applied CRD: status conditions, discovery with short names, categories and status', async () => {
    const r = await call(api(), 'POST', CRDS, widgetCrd());
    expect(r.status).toBe(201);
    expect(r.body.status.conditions.map((c: Json) => [c.type, c.status])).toEqual([['NamesAccepted', 'True'], ['Established', 'True']]);
    expect(r.body.status.acceptedNames).toMatchObject({ plural: 'widgets', kind: 'Widget', shortNames: ['wd'] });
    expect(r.body.status.storedVersions).toEqual(['v1']);
    const group = (await call(api(), 'GET', '/apis/example.com')).body;
    expect(group.preferredVersion.version).toBe('v1');
    expect(group.versions.map((v: Json) => v.version)).toEqual(['v1', 'v1beta1']);
    const res = (await call(api(), 'GET', '/apis/example.com/v1')).body.resources;
    expect(res.find((x: Json) => x.name === 'widgets')).toMatchObject({ namespaced: true, kind: 'Widget', singularName: 'widget', shortNames: ['wd'], categories: ['all', 'gadgets'] });
    expect(res.map((x: Json) => x.name)).toContain('widgets/status');
    const beta = (await call(api(), 'GET', '/apis/example.com/v1beta1')).body.resources.map((x: Json) => x.name);
    expect(beta).toEqual(['widgets']);
  });

  it('validates custom objects against the schema: 422 Invalid with causes naming the fields', async () => {
    const r = await call(api(), 'POST', W, widget('bad', { size: 0, color: 'green', name: 'UPPER', port: true, items: [{}], labels: { a: 1 } }));
    expect(r.status).toBe(422);
    expect(r.body).toMatchObject({ kind: 'Status', reason: 'Invalid', code: 422, details: { name: 'bad', group: 'example.com', kind: 'Widget' } });
    const fields = r.body.details.causes.map((c: Json) => c.field);
    expect(fields).toEqual(expect.arrayContaining(['spec.size', 'spec.color', 'spec.name', 'spec.port', 'spec.items[0].id', 'spec.labels.a']));
    expect(r.body.details.causes.find((c: Json) => c.field === 'spec.color')).toMatchObject({ reason: 'FieldValueNotSupported', message: 'Unsupported value: "green": supported values: "red", "blue"' });
    expect(r.body.message).toMatch(/^Widget.example.com "bad" is invalid: \[/);
    const missing = await call(api(), 'POST', W, widget('missing', {}));
    expect(missing.body.details.causes).toEqual([{ reason: 'FieldValueRequired', message: 'Required value', field: 'spec.size' }]);
    const embedded = await call(api(), 'POST', W, widget('emb', { size: 1, template: { metadata: {} } }));
    expect(embedded.body.details.causes.map((c: Json) => c.field)).toEqual(expect.arrayContaining(['spec.template.apiVersion', 'spec.template.kind']));
  });

  it('defaults, prunes unknown fields (warning, or 400 with fieldValidation=Strict) and keeps preserved ones', async () => {
    const r = await call(api(), 'POST', W, widget('w1', { size: 2, port: 'http', bogus: 1, free: { any: { thing: [1] } }, template: { apiVersion: 'v1', kind: 'Pod', spec: { x: 1 } } }, { body: { junk: true } }));
    expect(r.status).toBe(201);
    expect(r.body.spec).toEqual({ size: 2, color: 'red', port: 'http', free: { any: { thing: [1] } }, template: { apiVersion: 'v1', kind: 'Pod', spec: { x: 1 } } });
    expect(r.body.junk).toBeUndefined();
    expect(String(r.headers.warning)).toMatch(/unknown field \\"spec.bogus\\"/);
    const strict = await call(api(), 'POST', `${W}?fieldValidation=Strict`, widget('w-strict', { size: 1, bogus: 1 }));
    expect(strict.status).toBe(400);
    expect(strict.body.message).toMatch(/strict decoding error: unknown field "spec.bogus"/);
    expect((await call(api(), 'POST', `${W}?fieldValidation=Ignore`, widget('w-ignore', { size: 1, bogus: 1 }))).status).toBe(201);
  });

  it('keeps status and spec apart through the status subresource, bumping generation on spec only', async () => {
    const c = (await call(api(), 'POST', W, widget('st', { size: 1 }, { body: { status: { phase: 'dropped-on-create' } } }))).body;
    expect(c.status).toBeUndefined();
    expect(c.metadata.generation).toBe(1);
    const s1 = await call(api(), 'PUT', `${W}/st/status`, { ...c, spec: { size: 9 }, status: { phase: 'Ready', count: 1 } });
    expect(s1.status).toBe(200);
    expect(s1.body.spec.size).toBe(1);
    expect(s1.body.status).toEqual({ phase: 'Ready', count: 1 });
    expect(s1.body.metadata.generation).toBe(1);
    const m1 = await call(api(), 'PUT', `${W}/st`, { ...s1.body, spec: { size: 3 }, status: { phase: 'Ignored' } });
    expect(m1.body.spec.size).toBe(3);
    expect(m1.body.status.phase).toBe('Ready');
    expect(m1.body.metadata.generation).toBe(2);
    // Status is validated too.
    const bad = await call(api(), 'PATCH', `${W}/st/status`, { status: { count: 'many' } }, { 'content-type': 'application/merge-patch+json' });
    expect(bad.status).toBe(422);
    expect(bad.body.details.causes[0].field).toBe('status.count');
    // Custom resources require a resourceVersion on update and do not take strategic merge patches.
    const { resourceVersion: _rv, ...meta } = m1.body.metadata;
    expect((await call(api(), 'PUT', `${W}/st`, { ...m1.body, metadata: meta })).status).toBe(422);
    expect((await call(api(), 'PATCH', `${W}/st`, { spec: { size: 4 } }, { 'content-type': 'application/strategic-merge-patch+json' })).status).toBe(415);
    expect((await call(api(), 'PATCH', `${W}/st`, { spec: { size: 4 } }, { 'content-type': 'application/merge-patch+json' })).body.spec.size).toBe(4);
  });

  it('serves every served version, converting apiVersion, and selectable fields', async () => {
    await call(api(), 'POST', W, widget('blue', { size: 5, color: 'blue' }));
    const beta = await call(api(), 'GET', '/apis/example.com/v1beta1/namespaces/default/widgets/blue');
    expect(beta.body).toMatchObject({ apiVersion: 'example.com/v1beta1', kind: 'Widget', spec: { size: 5 } });
    const viaBeta = await call(api(), 'POST', '/apis/example.com/v1beta1/namespaces/default/widgets', { apiVersion: 'example.com/v1beta1', kind: 'Widget', metadata: { name: 'b1' }, spec: { anything: 'goes' } });
    expect(viaBeta.status).toBe(201);
    expect((await call(api(), 'GET', `${W}/b1`)).body.apiVersion).toBe('example.com/v1');
    const sel = await call(api(), 'GET', `${W}?fieldSelector=spec.color%3Dblue`);
    expect(sel.body.items.map((w: Json) => w.metadata.name)).toEqual(['blue']);
    expect((await call(api(), 'GET', `${W}?fieldSelector=spec.size%3D5`)).status).toBe(400);
  });

  it('prints additionalPrinterColumns in Table output', async () => {
    const t = (await call(api(), 'GET', `${W}?fieldSelector=metadata.name%3Dst`, undefined, { accept: 'application/json;as=Table;v=v1;g=meta.k8s.io' })).body;
    expect(t.columnDefinitions.map((c: Json) => [c.name, c.type, c.priority])).toEqual([['Name', 'string', 0], ['Size', 'integer', 0], ['Phase', 'string', 1], ['Age', 'date', 0]]);
    expect(t.rows[0].cells.slice(0, 3)).toEqual(['st', 4, 'Ready']);
    expect(t.rows[0].cells[3]).toMatch(/^\d+s$/);
  });

  it('serves cluster-scoped CRDs and refuses conflicting names', async () => {
    const crd = widgetCrd();
    crd.metadata.name = 'globals.example.com';
    crd.spec.scope = 'Cluster';
    crd.spec.names = { plural: 'globals', kind: 'Global' };
    crd.spec.versions = [{ name: 'v1', served: true, storage: true, schema: { openAPIV3Schema: { type: 'object', properties: { spec: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } } } } }];
    expect((await call(api(), 'POST', CRDS, crd)).status).toBe(201);
    const g = await call(api(), 'POST', '/apis/example.com/v1/globals', { apiVersion: 'example.com/v1', kind: 'Global', metadata: { name: 'g1' }, spec: { a: 1 } });
    expect(g.status).toBe(201);
    expect(g.body.metadata.namespace).toBeUndefined();
    expect((await call(api(), 'GET', '/apis/example.com/v1/namespaces/default/globals')).status).toBe(404);
    const clash = widgetCrd();
    clash.metadata.name = 'gizmos.example.com';
    clash.spec.names = { plural: 'gizmos', kind: 'Widget' };
    const c = await call(api(), 'POST', CRDS, clash);
    expect(c.status).toBe(201);
    expect(c.body.status.conditions.find((x: Json) => x.type === 'NamesAccepted')).toMatchObject({ status: 'False', reason: 'PluralConflict' });
    expect((await call(api(), 'GET', '/apis/example.com/v1/namespaces/default/gizmos')).status).toBe(404);
    const invalid = await call(api(), 'POST', CRDS, { ...widgetCrd(), metadata: { name: 'wrong.example.com' } });
    expect(invalid.status).toBe(422);
    expect(invalid.body.details.causes.map((x: Json) => x.field)).toContain('metadata.name');
  });

  it('on deletion removes its objects (waiting for their finalizers), then stops serving', async () => {
    await call(api(), 'POST', W, widget('held', { size: 1 }, { metadata: { finalizers: ['example.com/hold'] } }));
    const rv = (await call(api(), 'GET', W)).body.metadata.resourceVersion;
    const w = watchStream(api(), `${W}?resourceVersion=${rv}`);
    const d = await call(api(), 'DELETE', `${CRDS}/widgets.example.com`);
    expect(d.status).toBe(200);
    expect(d.body.metadata.deletionTimestamp).toBeTruthy();
    await eventually(async () => (await call(api(), 'GET', W)).body.items?.length === 1, 30_000, 'only the held widget left');
    expect((await call(api(), 'POST', W, widget('late', { size: 1 }))).status).toBe(405);
    const crd = (await call(api(), 'GET', `${CRDS}/widgets.example.com`)).body;
    expect(crd.status.conditions).toContainEqual(expect.objectContaining({ type: 'Terminating', status: 'True' }));
    await call(api(), 'PATCH', `${W}/held`, { metadata: { finalizers: null } }, { 'content-type': 'application/merge-patch+json' });
    await eventually(async () => (await call(api(), 'GET', `${CRDS}/widgets.example.com`)).status === 404, 30_000, 'CRD gone');
    expect((await call(api(), 'GET', W)).status).toBe(404);
    await w.ended;
    expect(w.events.filter((e) => e.type === 'DELETED').length).toBeGreaterThan(0);
    // The refused CRD gets the freed names.
    await eventually(async () => (await call(api(), 'GET', '/apis/example.com/v1')).body.resources.map((r: Json) => r.name).join() === 'gizmos,gizmos/status,globals', 30_000, 'gizmos accepted');
    await call(api(), 'DELETE', `${CRDS}/gizmos.example.com`);
    await eventually(async () => (await call(api(), 'GET', `${CRDS}/gizmos.example.com`)).status === 404, 30_000, 'gizmos gone');
    // Recreating the CRD starts empty.
    expect((await call(api(), 'POST', CRDS, widgetCrd())).status).toBe(201);
    expect((await call(api(), 'GET', W)).body.items).toEqual([]);
  });
});

import { createHash } from 'node:crypto';
import { apiVersionOf, hasSubresource, VERBS, type Registry, type ResourceType } from './registry.js';
import { inlineDefinition } from './networkpolicy.js';
import { openApiV2Definitions, v2Paths } from './openapi-v2.js';
import { TOKEN_REVIEW_GROUP, TOKEN_REVIEW_VERSION, tokenReviewDiscovery } from './tokenreview.js';
import type { JsonObject } from './types.js';
import { ACCESS_REVIEW_GROUP, ACCESS_REVIEW_VERSION, accessReviewDiscovery } from './accessreview.js';

// Discovery (/api, /apis, /apis/G/V ...) and the OpenAPI kubectl uses: v3 documents whose PATCH
// operations advertise `fieldValidation`, so kubectl leaves validation of single objects to the
// server, and the v2 document (openapi-v2.ts) it validates the items of a List with. Strategic merge
// is deliberately not advertised in OpenAPI, so kubectl computes apply patches from its compiled-in
// types, which know the merge keys.

export const KUBE_VERSION = { major: '1', minor: '32', gitVersion: 'v1.32.4-seine' };

export function versionInfo(): JsonObject {
  return {
    ...KUBE_VERSION,
    gitCommit: '0000000000000000000000000000000000000000',
    gitTreeState: 'clean',
    buildDate: '2025-01-01T00:00:00Z',
    goVersion: 'go1.23.0',
    compiler: 'gc',
    platform: 'linux/amd64',
  };
}

export function apiVersions(serverAddress: string): JsonObject {
  return { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress }] };
}

function groupEntry(name: string, versions: string[]): JsonObject {
  const vs = versions.map((v) => ({ groupVersion: `${name}/${v}`, version: v }));
  return { name, versions: vs, preferredVersion: vs[0] };
}

/** Resources served without storage (reviews), by group and version: discovery lists them beside the stored ones. */
const UNSTORED: Array<{ group: string; version: string; entry: JsonObject }> = [
  { group: TOKEN_REVIEW_GROUP, version: TOKEN_REVIEW_VERSION, entry: tokenReviewDiscovery },
  ...accessReviewDiscovery.map((entry) => ({ group: ACCESS_REVIEW_GROUP, version: ACCESS_REVIEW_VERSION, entry })),
];

function servedGroups(reg: Registry): Map<string, string[]> {
  const groups = reg.groups();
  for (const u of UNSTORED) {
    const vs = groups.get(u.group) ?? [];
    if (!vs.includes(u.version)) groups.set(u.group, [...vs, u.version]);
  }
  return groups;
}

export function apiGroupList(reg: Registry): JsonObject {
  const groups = [...servedGroups(reg)].sort(([a], [b]) => (a < b ? -1 : 1)).map(([g, vs]) => groupEntry(g, vs));
  return { kind: 'APIGroupList', apiVersion: 'v1', groups };
}

export function apiGroup(reg: Registry, group: string): JsonObject | undefined {
  const vs = servedGroups(reg).get(group);
  return vs ? { kind: 'APIGroup', apiVersion: 'v1', ...groupEntry(group, vs) } : undefined;
}

function storageVersionHash(rt: ResourceType): string {
  return createHash('sha256').update(`${rt.group}/${rt.storageVersion}/${rt.kind}`).digest().subarray(0, 8).toString('base64');
}

export function apiResourceList(reg: Registry, group: string, version: string): JsonObject | undefined {
  const types = reg.inGroupVersion(group, version);
  const unstored = UNSTORED.filter((u) => u.group === group && u.version === version).map((u) => u.entry);
  if (types.length === 0 && unstored.length === 0) return undefined;
  const resources: JsonObject[] = [...unstored];
  for (const rt of types) {
    resources.push({
      name: rt.resource,
      singularName: rt.singular,
      namespaced: rt.namespaced,
      kind: rt.kind,
      verbs: VERBS,
      ...(rt.shortNames.length ? { shortNames: rt.shortNames } : {}),
      ...(rt.categories.length ? { categories: rt.categories } : {}),
      storageVersionHash: storageVersionHash(rt),
    });
    if (hasSubresource(rt, version, 'status')) resources.push({ name: `${rt.resource}/status`, singularName: '', namespaced: rt.namespaced, kind: rt.kind, verbs: ['get', 'patch', 'update'] });
    if (hasSubresource(rt, version, 'binding')) resources.push({ name: `${rt.resource}/binding`, singularName: '', namespaced: rt.namespaced, kind: 'Binding', verbs: ['create'] });
    if (hasSubresource(rt, version, 'finalize')) resources.push({ name: `${rt.resource}/finalize`, singularName: '', namespaced: rt.namespaced, kind: rt.kind, verbs: ['update'] });
  }
  return { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: apiVersionOf(group, version), resources };
}

// ---- OpenAPI

function gvPath(group: string, version: string): string {
  return group ? `apis/${group}/${version}` : `api/${version}`;
}

const queryParam = (name: string, description: string): JsonObject => ({ name, in: 'query', description, schema: { type: 'string', uniqueItems: true } });

const WRITE_PARAMS = [
  queryParam('dryRun', 'When present, indicates that modifications should not be persisted.'),
  queryParam('fieldManager', 'fieldManager is a name associated with the actor or entity that is making these changes.'),
  queryParam('fieldValidation', 'fieldValidation instructs the server on how to handle objects in the request containing unknown or duplicate fields: Ignore, Warn or Strict.'),
];

function opId(verb: string, rt: ResourceType, version: string, namespaced: boolean): string {
  const g = (rt.group.split('.')[0] ?? '') || 'core';
  const cap = (s: string): string => s.charAt(0).toUpperCase() + s.slice(1);
  return `${verb}${cap(g)}${cap(version)}${namespaced ? 'Namespaced' : ''}${rt.kind}`;
}

function gvkExt(rt: ResourceType, version: string): JsonObject {
  return { 'x-kubernetes-group-version-kind': { group: rt.group, version, kind: rt.kind } };
}

function schemaName(rt: ResourceType, version: string): string {
  return `${rt.group || 'core'}.${version}.${rt.kind}`;
}

/** The published schema of a built-in kind, where the lab has one (inlined: v3 documents here carry no refs). */
function builtinSchema(rt: ResourceType, version: string): JsonObject | undefined {
  if (rt.group === 'networking.k8s.io' && version === 'v1' && rt.kind === 'NetworkPolicy') return inlineDefinition('io.k8s.api.networking.v1.NetworkPolicy');
  return undefined;
}

/** One group/version's OpenAPI v3 document. */
export function openApiV3Doc(reg: Registry, group: string, version: string): JsonObject | undefined {
  const types = reg.inGroupVersion(group, version);
  if (types.length === 0) return undefined;
  const paths: JsonObject = {};
  const schemas: JsonObject = {};
  const prefix = `/${gvPath(group, version)}`;
  for (const rt of types) {
    const ref = { $ref: `#/components/schemas/${schemaName(rt, version)}` };
    const body = (types: string[]): JsonObject => ({ content: Object.fromEntries(types.map((t) => [t, { schema: ref }])), required: true });
    const ok = { '200': { description: 'OK', content: { 'application/json': { schema: ref } } } };
    const item = rt.namespaced ? `${prefix}/namespaces/{namespace}/${rt.resource}/{name}` : `${prefix}/${rt.resource}/{name}`;
    const coll = rt.namespaced ? `${prefix}/namespaces/{namespace}/${rt.resource}` : `${prefix}/${rt.resource}`;
    const ext = gvkExt(rt, version);
    paths[item] = {
      get: { operationId: opId('read', rt, version, rt.namespaced), 'x-kubernetes-action': 'get', ...ext, responses: ok },
      put: { operationId: opId('replace', rt, version, rt.namespaced), 'x-kubernetes-action': 'put', ...ext, parameters: WRITE_PARAMS, requestBody: body(['application/json']), responses: ok },
      patch: {
        operationId: opId('patch', rt, version, rt.namespaced),
        'x-kubernetes-action': 'patch',
        ...ext,
        parameters: [...WRITE_PARAMS, queryParam('force', 'Force is going to "force" Apply requests.')],
        requestBody: body(['application/json-patch+json', 'application/merge-patch+json', 'application/apply-patch+yaml']),
        responses: ok,
      },
      delete: { operationId: opId('delete', rt, version, rt.namespaced), 'x-kubernetes-action': 'delete', ...ext, responses: ok },
    };
    paths[coll] = {
      get: { operationId: opId('list', rt, version, rt.namespaced), 'x-kubernetes-action': 'list', ...ext, responses: ok },
      post: { operationId: opId('create', rt, version, rt.namespaced), 'x-kubernetes-action': 'post', ...ext, parameters: WRITE_PARAMS, requestBody: body(['application/json']), responses: ok },
    };
    const crdSchema = rt.crd?.versions.get(version)?.schema?.schema ?? builtinSchema(rt, version);
    schemas[schemaName(rt, version)] = {
      ...(crdSchema ?? { type: 'object', 'x-kubernetes-preserve-unknown-fields': true }),
      'x-kubernetes-group-version-kind': [{ group: rt.group, version, kind: rt.kind }],
    };
  }
  return { openapi: '3.0.0', info: { title: 'Kubernetes', version: KUBE_VERSION.gitVersion }, paths, components: { schemas } };
}

function hash(doc: unknown): string {
  return createHash('sha512').update(JSON.stringify(doc)).digest('hex').toUpperCase().slice(0, 128);
}

/** The v3 index: every group/version with a content-hashed URL (the hash busts client caches). */
export function openApiV3Root(reg: Registry): JsonObject {
  const paths: JsonObject = {};
  const gvs: Array<[string, string]> = [['', 'v1'], ...[...reg.groups()].flatMap(([g, vs]) => vs.map((v): [string, string] => [g, v]))];
  for (const [g, v] of gvs) {
    const doc = openApiV3Doc(reg, g, v);
    if (doc) paths[gvPath(g, v)] = { serverRelativeURL: `/openapi/v3/${gvPath(g, v)}?hash=${hash(doc)}` };
  }
  return { paths };
}

/** The OpenAPI v2 (Swagger) document: the same operations, and the definitions kubectl validates with. */
export function openApiV2(reg: Registry): JsonObject {
  let paths: JsonObject = {};
  const gvs: Array<[string, string]> = [['', 'v1'], ...[...reg.groups()].flatMap(([g, vs]) => vs.map((v): [string, string] => [g, v]))];
  for (const [g, v] of gvs) {
    const doc = openApiV3Doc(reg, g, v);
    if (doc) paths = { ...paths, ...v2Paths(doc.paths as JsonObject) };
  }
  return { swagger: '2.0', info: { title: 'Kubernetes', version: KUBE_VERSION.gitVersion }, paths, definitions: openApiV2Definitions(reg) };
}

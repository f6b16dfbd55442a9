import type { StatusCause } from './errors.js';
import type { NameRule } from './meta.js';
import type { PatchMeta } from './patch.js';
import type { CompiledSchema } from './schema.js';
import type { KubeObject } from './types.js';

/** What a strategy hook may read of the store (other objects), and report back. */
export interface StrategyContext {
  /** The API version the request used (custom resources validate against that version's schema). */
  version: string;
  subresource?: string;
  warnings: string[];
  fieldValidation: 'Strict' | 'Warn' | 'Ignore';
  list(group: string, resource: string, namespace?: string): KubeObject[];
  get(group: string, resource: string, namespace: string | undefined, name: string): KubeObject | undefined;
}

/** Per-kind behaviour hooks, as kube's RESTCreateStrategy/RESTUpdateStrategy. */
export interface Strategy {
  /** Defaults and server-owned fields on create; runs after generic metadata is set. */
  prepareForCreate?(obj: KubeObject, ctx: StrategyContext): void;
  /** Fix-ups on update (status kept, immutable fields restored ...); runs after generic metadata. */
  prepareForUpdate?(obj: KubeObject, old: KubeObject, ctx: StrategyContext): void;
  validate?(obj: KubeObject, old: KubeObject | undefined, ctx: StrategyContext): StatusCause[];
}

export interface PrinterColumn {
  name: string;
  type: string;
  format?: string;
  description?: string;
  priority?: number;
  jsonPath: string;
}

/** A served version of a custom resource. */
export interface CrdVersion {
  name: string;
  schema?: CompiledSchema;
  status: boolean;
  printerColumns: PrinterColumn[];
  selectableFields: string[];
}

export interface ResourceType {
  group: string;
  /** Served versions, most preferred first. */
  versions: string[];
  storageVersion: string;
  resource: string;
  singular: string;
  kind: string;
  listKind: string;
  namespaced: boolean;
  shortNames: string[];
  categories: string[];
  /** Subresources of built-ins ('status', 'binding', 'finalize'); custom resources say per version. */
  subresources: string[];
  hasGeneration: boolean;
  allowCreateOnUpdate: boolean;
  requireResourceVersionOnUpdate: boolean;
  returnDeletedObject: boolean;
  /** Pods: delete sets deletionTimestamp + grace period and waits for the kubelet. */
  gracefulDelete: boolean;
  /** Whether status sent on create is kept (nodes) or reset (most kinds with a status subresource). */
  keepStatusOnCreate: boolean;
  nameRule: NameRule;
  /** Present for kinds that take strategic merge patches (built-ins). */
  patchMeta?: PatchMeta;
  /** Field selectors beyond metadata.name/metadata.namespace. */
  fields: Record<string, (o: KubeObject) => string | undefined>;
  strategy: Strategy;
  /** Set for custom resources: the CRD's name and per-version schema and columns. */
  crd?: { name: string; versions: Map<string, CrdVersion>; terminating: boolean };
}

export const VERBS = ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'];

/** `pods`, `deployments.apps`: the key of a resource in storage. */
export function grKey(group: string, resource: string): string {
  return group ? `${resource}.${group}` : resource;
}

export function apiVersionOf(group: string, version: string): string {
  return group ? `${group}/${version}` : version;
}

export function parseApiVersion(apiVersion: string): { group: string; version: string } {
  const i = apiVersion.indexOf('/');
  return i < 0 ? { group: '', version: apiVersion } : { group: apiVersion.slice(0, i), version: apiVersion.slice(i + 1) };
}

export function hasSubresource(rt: ResourceType, version: string, sub: string): boolean {
  if (rt.crd) return sub === 'status' && rt.crd.versions.get(version)?.status === true;
  return rt.subresources.includes(sub);
}

/** Kube's version ordering: GA > beta > alpha, higher numbers first, non-kube names last. */
export function compareKubeVersions(a: string, b: string): number {
  const rank = (v: string): [number, number, number, string] => {
    const m = /^v(\d+)(?:(alpha|beta)(\d+))?$/.exec(v);
    if (!m) return [3, 0, 0, v];
    const stage = m[2] === undefined ? 0 : m[2] === 'beta' ? 1 : 2;
    return [stage, -Number(m[1]), -Number(m[3] ?? 0), v];
  };
  const ra = rank(a);
  const rb = rank(b);
  for (let i = 0; i < 3; i++) if (ra[i] !== rb[i]) return (ra[i] as number) - (rb[i] as number);
  return ra[3] < rb[3] ? -1 : ra[3] > rb[3] ? 1 : 0;
}

/** The set of served resources; changes when CRDs come and go. */
export class Registry {
  private types = new Map<string, ResourceType>();
  /** Bumped on every change, so discovery documents can be re-hashed. */
  generation = 0;

  add(rt: ResourceType): void {
    this.types.set(grKey(rt.group, rt.resource), rt);
    this.generation++;
  }

  remove(group: string, resource: string): void {
    if (this.types.delete(grKey(group, resource))) this.generation++;
  }

  get(group: string, resource: string): ResourceType | undefined {
    return this.types.get(grKey(group, resource));
  }

  /** By storage key (`pods`, `deployments.apps`). */
  byKey(key: string): ResourceType | undefined {
    return this.types.get(key);
  }

  /** The resource if it is served at that group/version. */
  served(group: string, version: string, resource: string): ResourceType | undefined {
    const rt = this.get(group, resource);
    return rt && rt.versions.includes(version) ? rt : undefined;
  }

  all(): ResourceType[] {
    return [...this.types.values()];
  }

  byKind(group: string, version: string, kind: string): ResourceType | undefined {
    return this.all().find((rt) => rt.group === group && rt.kind === kind && rt.versions.includes(version));
  }

  /** Resolves what a user might type: plural, singular, kind or short name, in a group/version. */
  lookup(apiVersion: string, name: string): ResourceType | undefined {
    const { group, version } = parseApiVersion(apiVersion);
    const lower = name.toLowerCase();
    return this.all().find(
      (rt) =>
        rt.group === group &&
        rt.versions.includes(version) &&
        (rt.resource === lower || rt.singular === lower || rt.kind.toLowerCase() === lower || rt.shortNames.includes(lower)),
    );
  }

  /** group -> versions (preferred first), for discovery. */
  groups(): Map<string, string[]> {
    const m = new Map<string, Set<string>>();
    for (const rt of this.types.values()) {
      if (rt.group === '') continue;
      const s = m.get(rt.group) ?? new Set<string>();
      rt.versions.forEach((v) => s.add(v));
      m.set(rt.group, s);
    }
    return new Map([...m].map(([g, vs]) => [g, [...vs].sort(compareKubeVersions)]));
  }

  inGroupVersion(group: string, version: string): ResourceType[] {
    return this.all()
      .filter((rt) => rt.group === group && rt.versions.includes(version))
      .sort((a, b) => (a.resource < b.resource ? -1 : 1));
  }
}

export type { CompiledSchema };

import { randomUUID } from 'node:crypto';
import type { Logger } from '../../util/log.js';
import { builtinResources } from './builtins.js';
import { CRD_CLEANUP_FINALIZER, CRD_GROUP, CRD_RESOURCE, computeCrdStatus, convertCustomResource, crdServingChanged, isEstablished, resourceTypeForCrd } from './crd.js';
import { ApiError, cause, errors, successStatus, type Status, type StatusCause } from './errors.js';
import { clone, deepEqual, generatedName, timestamp, validateName, validateObjectMeta } from './meta.js';
import { jsonPatch, mergePatch, strategicMergePatch } from './patch.js';
import { apiVersionOf, grKey, hasSubresource, parseApiVersion, Registry, type ResourceType, type StrategyContext } from './registry.js';
import { parseFieldSelector, parseLabelSelector, type FieldSelector, type LabelSelector } from './selectors.js';
import {
  isObject,
  type DeleteOptions,
  type KubeList,
  type KubeObject,
  type ListOptions,
  type PatchType,
  type PropagationPolicy,
  type WatchEvent,
  type WatchOptions,
  type WriteOptions,
} from './types.js';

// The object store behind the API server: one cluster-wide resourceVersion sequence, a bounded
// event history for watch resumption and consistent paginated lists, finalizers, graceful pod
// deletion, and the few controllers an apiserver alone would leave undone in a lab (namespace
// lifecycle, garbage collection by ownerReferences, CRD establishment and cleanup).

export interface StoreOptions {
  /** Events kept for watch resumption and paginated lists; older resourceVersions get 410 Gone. */
  historySize?: number;
  /** Interval of watch bookmarks to watchers that asked for them. */
  bookmarkIntervalMs?: number;
  /** IPv4 range ClusterIPs are allocated from. */
  serviceCIDR?: string;
  log?: Logger;
}

type ChangeType = 'ADDED' | 'MODIFIED' | 'DELETED';

interface HistoryEvent {
  rv: number;
  gr: string;
  key: string;
  type: ChangeType;
  object: KubeObject;
  /** The object before the change (for MODIFIED/DELETED): lets lists be rebuilt as of an older rv. */
  prev?: KubeObject;
}

/** Receives a watch's events; `end` when the store closes the watch. */
export interface WatchSink {
  event(ev: WatchEvent): void;
  end(): void;
}

export interface WatchHandle {
  stop(): void;
}

interface Watcher {
  gr: string;
  version: string;
  namespace?: string;
  label: LabelSelector;
  field: FieldSelector;
  bookmarks: boolean;
  sink: WatchSink;
}

export interface DeleteResult {
  /** The object as it now is (pending deletion) or was (removed). */
  object: KubeObject;
  /** True when it is gone; false when deletion waits on finalizers or a grace period. */
  deleted: boolean;
}

/** A snapshot written to / read from a dataFile. */
export interface StoreSnapshot {
  version: 1;
  resourceVersion: number;
  objects: KubeObject[];
}

interface Located {
  rt: ResourceType;
  key: string;
  obj: KubeObject;
}

const CONTINUE_VERSION = 'meta.k8s.io/v1';
/** kube-apiserver's default --service-cluster-ip-range. */
export const DEFAULT_SERVICE_CIDR = '10.96.0.0/12';
const PROTECTED_NAMESPACES = new Set(['default', 'kube-system', 'kube-public']);
export const INITIAL_NAMESPACES = ['default', 'kube-system', 'kube-public', 'kube-node-lease'];

function objKey(namespace: string | undefined, name: string): string {
  return `${namespace ?? ''}/${name}`;
}

function gr(rt: ResourceType): { group: string; resource: string } {
  return { group: rt.group, resource: rt.resource };
}

function encodeContinue(rv: number, start: string): string {
  return Buffer.from(JSON.stringify({ v: CONTINUE_VERSION, rv, start })).toString('base64url');
}

function decodeContinue(token: string): { rv: number; start: string } {
  try {
    const t = JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as { v?: string; rv?: number; start?: string };
    if (t.v !== CONTINUE_VERSION || typeof t.rv !== 'number' || typeof t.start !== 'string') throw new Error('bad token');
    return { rv: t.rv, start: t.start };
  } catch {
    throw errors.badRequest('continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)');
  }
}

/** Empty metadata lists and maps are omitted, as Go's omitempty serialises them. */
function normalizeMeta(obj: KubeObject): void {
  const m = obj.metadata;
  for (const k of ['finalizers', 'ownerReferences', 'labels', 'annotations'] as const) {
    const v = m[k];
    if (v === null || (Array.isArray(v) && v.length === 0) || (isObject(v) && Object.keys(v).length === 0)) delete m[k];
  }
}

function parseRv(rv: string): number {
  if (!/^\d+$/.test(rv)) throw errors.badRequest(`invalid resource version: ${JSON.stringify(rv)}`);
  return Number(rv);
}

export class Store {
  readonly registry = new Registry();
  private rv = 0;
  private data = new Map<string, Map<string, KubeObject>>();
  private history: HistoryEvent[] = [];
  /** Events at or below this resourceVersion are gone from history. */
  private compactedRv = 0;
  private readonly historySize: number;
  private watchers = new Set<Watcher>();
  private bookmarkTimer: NodeJS.Timeout | undefined;
  private changeListeners: Array<() => void> = [];
  // Controller bookkeeping.
  private uidIndex = new Map<string, string>();
  private ownerIndex = new Map<string, Set<string>>();
  private goneOwners = new Set<string>();
  /** Locators of objects with a deletionTimestamp: the ones controllers still have work on. */
  private terminating = new Set<string>();
  private crdNamesFreed = false;
  private reconcileScheduled = false;
  private reconcileTimer: NodeJS.Immediate | undefined;
  private closed = false;
  private readonly log: Logger | undefined;

  constructor(opts: StoreOptions = {}) {
    this.historySize = Math.max(1, opts.historySize ?? 10_000);
    this.log = opts.log;
    for (const rt of builtinResources({ serviceCIDR: opts.serviceCIDR ?? DEFAULT_SERVICE_CIDR })) this.registry.add(rt);
    const every = opts.bookmarkIntervalMs ?? 60_000;
    this.bookmarkTimer = setInterval(() => this.sendBookmarks(), every);
    this.bookmarkTimer.unref();
  }

  /** The latest resourceVersion handed out. */
  get resourceVersion(): number {
    return this.rv;
  }

  /** Calls `fn` after every committed change (persistence hooks in here). */
  onChange(fn: () => void): void {
    this.changeListeners.push(fn);
  }

  /** Creates the namespaces every cluster starts with, when missing. */
  bootstrap(): void {
    const ns = this.registry.get('', 'namespaces')!;
    for (const name of INITIAL_NAMESPACES) {
      if (!this.lookup(ns, undefined, name)) this.create(ns, 'v1', undefined, { apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
    }
  }

  close(): void {
    this.closed = true;
    if (this.bookmarkTimer) clearInterval(this.bookmarkTimer);
    if (this.reconcileTimer) clearImmediate(this.reconcileTimer);
    this.closeWatches();
  }

  /** Ends every open watch, as an apiserver restart or watch timeout would. */
  closeWatches(): void {
    for (const w of [...this.watchers]) this.endWatcher(w);
  }

  // ---- snapshot / restore

  snapshot(): StoreSnapshot {
    const objects: KubeObject[] = [];
    for (const m of this.data.values()) for (const o of m.values()) objects.push(o);
    return { version: 1, resourceVersion: this.rv, objects };
  }

  /** Loads a snapshot into an empty store: CRDs first so their resources exist for their objects. */
  restore(s: StoreSnapshot): void {
    this.rv = s.resourceVersion;
    this.compactedRv = s.resourceVersion;
    const isCrd = (o: KubeObject): boolean => o.apiVersion === `${CRD_GROUP}/v1` && o.kind === 'CustomResourceDefinition';
    const ordered = [...s.objects.filter(isCrd), ...s.objects.filter((o) => !isCrd(o))];
    for (const o of ordered) {
      const { group, version } = parseApiVersion(o.apiVersion ?? '');
      const rt = this.registry.byKind(group, version, o.kind ?? '');
      if (!rt) {
        this.log?.warn({ apiVersion: o.apiVersion, kind: o.kind, name: o.metadata.name }, 'dropping stored object of a kind no longer served');
        continue;
      }
      this.put(rt, objKey(o.metadata.namespace, o.metadata.name!), o);
      if (isCrd(o)) this.syncCrd(o);
    }
    this.scheduleReconcile();
  }

  // ---- reads

  private bucket(rt: ResourceType): Map<string, KubeObject> {
    const k = grKey(rt.group, rt.resource);
    let m = this.data.get(k);
    if (!m) {
      m = new Map();
      this.data.set(k, m);
    }
    return m;
  }

  private lookup(rt: ResourceType, namespace: string | undefined, name: string): KubeObject | undefined {
    return this.data.get(grKey(rt.group, rt.resource))?.get(objKey(rt.namespaced ? namespace : undefined, name));
  }

  /** An object as served at `version` (a copy; custom resources of another version converted). */
  present(rt: ResourceType, version: string, obj: KubeObject): KubeObject {
    const { apiVersion: _a, kind: _k, ...rest } = clone(obj);
    const out = { apiVersion: apiVersionOf(rt.group, version), kind: rt.kind, ...rest } as KubeObject;
    if (rt.crd && obj.apiVersion !== out.apiVersion) convertCustomResource(rt, out, version);
    return out;
  }

  get(rt: ResourceType, version: string, namespace: string | undefined, name: string): KubeObject {
    const o = this.lookup(rt, namespace, name);
    if (!o) throw errors.notFound(gr(rt), name);
    return this.present(rt, version, o);
  }

  private fieldsOf(rt: ResourceType, o: KubeObject): Record<string, string | undefined> {
    const f: Record<string, string | undefined> = { 'metadata.name': o.metadata.name, 'metadata.namespace': o.metadata.namespace ?? '' };
    for (const [k, fn] of Object.entries(rt.fields)) f[k] = fn(o);
    return f;
  }

  private selectors(rt: ResourceType, labelSelector?: string, fieldSelector?: string): { label: LabelSelector; field: FieldSelector } {
    const label = parseLabelSelector(labelSelector);
    const field = parseFieldSelector(fieldSelector);
    for (const r of field.requirements) {
      if (r.field !== 'metadata.name' && r.field !== 'metadata.namespace' && !(r.field in rt.fields)) {
        throw errors.badRequest(`field label not supported: ${r.field}`);
      }
    }
    return { label, field };
  }

  private matches(rt: ResourceType, o: KubeObject, namespace: string | undefined, label: LabelSelector, field: FieldSelector): boolean {
    if (namespace !== undefined && rt.namespaced && o.metadata.namespace !== namespace) return false;
    return label.matches(o.metadata.labels) && field.matches(this.fieldsOf(rt, o));
  }

  /** The resource's objects as they were at `rv`, rebuilt from the retained history. */
  private stateAt(rt: ResourceType, rv: number): Map<string, KubeObject> {
    const k = grKey(rt.group, rt.resource);
    const m = new Map(this.data.get(k) ?? []);
    for (let i = this.history.length - 1; i >= 0 && this.history[i]!.rv > rv; i--) {
      const ev = this.history[i]!;
      if (ev.gr !== k) continue;
      if (ev.type === 'ADDED') m.delete(ev.key);
      else m.set(ev.key, ev.prev!);
    }
    return m;
  }

  list(rt: ResourceType, version: string, opts: ListOptions = {}): KubeList {
    const { label, field } = this.selectors(rt, opts.labelSelector, opts.fieldSelector);
    let at = this.rv;
    let start = '';
    if (opts.continue) {
      const t = decodeContinue(opts.continue);
      start = t.start;
      if (t.rv < this.compactedRv) {
        throw errors.gone(
          'The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.',
          { continue: encodeContinue(this.rv, start) },
        );
      }
      at = t.rv;
    } else if (opts.resourceVersion && opts.resourceVersion !== '0') {
      const want = parseRv(opts.resourceVersion);
      if (want > this.rv) throw errors.timeout(`Too large resource version: ${want}, current: ${this.rv}`, 1);
      if (opts.resourceVersionMatch === 'Exact') {
        if (want < this.compactedRv) throw errors.gone(`too old resource version: ${want} (${this.compactedRv + 1})`);
        at = want;
      }
    }
    const state = at === this.rv ? (this.data.get(grKey(rt.group, rt.resource)) ?? new Map<string, KubeObject>()) : this.stateAt(rt, at);
    const keys = [...state.keys()].filter((k) => k > start).sort();
    const limit = opts.limit && opts.limit > 0 ? opts.limit : undefined;
    const items: KubeObject[] = [];
    let lastKey = start;
    let cont: string | undefined;
    let remaining: number | undefined;
    for (let i = 0; i < keys.length; i++) {
      const o = state.get(keys[i]!)!;
      if (!this.matches(rt, o, opts.namespace, label, field)) continue;
      if (limit !== undefined && items.length === limit) {
        // The token names the last key returned; the next page starts after it.
        cont = encodeContinue(at, lastKey);
        // Counted only without selectors, as the apiserver does.
        if (!opts.labelSelector && !opts.fieldSelector) remaining = keys.slice(i).filter((k) => this.matches(rt, state.get(k)!, opts.namespace, label, field)).length;
        break;
      }
      items.push(this.present(rt, version, o));
      lastKey = keys[i]!;
    }
    return {
      apiVersion: apiVersionOf(rt.group, version),
      kind: rt.listKind,
      metadata: { resourceVersion: String(at), ...(cont ? { continue: cont } : {}), ...(remaining !== undefined ? { remainingItemCount: remaining } : {}) },
      items,
    };
  }

  // ---- watch

  /** Throws what watch() would for bad selectors or a malformed resourceVersion. */
  checkWatch(rt: ResourceType, opts: WatchOptions): void {
    this.selectors(rt, opts.labelSelector, opts.fieldSelector);
    if (opts.resourceVersion) parseRv(opts.resourceVersion);
  }

  watch(rt: ResourceType, version: string, opts: WatchOptions, sink: WatchSink): WatchHandle {
    const { label, field } = this.selectors(rt, opts.labelSelector, opts.fieldSelector);
    const w: Watcher = { gr: grKey(rt.group, rt.resource), version, namespace: opts.namespace, label, field, bookmarks: !!opts.allowWatchBookmarks, sink };
    const handle: WatchHandle = { stop: () => void this.watchers.delete(w) };
    const rvParam = opts.resourceVersion ?? '';
    const fromState = rvParam === '' || rvParam === '0';
    if (fromState) {
      if (opts.sendInitialEvents !== false) {
        const m = this.data.get(w.gr) ?? new Map<string, KubeObject>();
        for (const k of [...m.keys()].sort()) {
          const o = m.get(k)!;
          if (this.matches(rt, o, w.namespace, label, field)) sink.event({ type: 'ADDED', object: this.present(rt, version, o) });
        }
        if (opts.sendInitialEvents === true && w.bookmarks) sink.event(this.bookmark(rt, version, true));
      }
    } else {
      const from = parseRv(rvParam);
      if (from < this.compactedRv || from > this.rv) {
        // 410 tells clients to relist. A resourceVersion from the future (a server restarted from an
        // older snapshot) gets the same answer: waiting for it could never succeed.
        const message = from < this.compactedRv ? `too old resource version: ${from} (${this.compactedRv + 1})` : `too large resource version: ${from}, current: ${this.rv}`;
        sink.event({ type: 'ERROR', object: errors.gone(message).toStatus() as unknown as KubeObject });
        sink.end();
        return { stop: () => undefined };
      }
      for (const ev of this.history) {
        if (ev.rv <= from || ev.gr !== w.gr) continue;
        this.deliver(w, rt, ev);
      }
    }
    this.watchers.add(w);
    return handle;
  }

  /** A bookmark carries only the kind and the latest resourceVersion: everything before it was sent. */
  private bookmark(rt: ResourceType, version: string, initialEnd = false): WatchEvent {
    const metadata: KubeObject['metadata'] = { resourceVersion: String(this.rv) };
    if (initialEnd) metadata.annotations = { 'k8s.io/initial-events-end': 'true' };
    return { type: 'BOOKMARK', object: { kind: rt.kind, apiVersion: apiVersionOf(rt.group, version), metadata } };
  }

  /** Sends a bookmark now to every watcher that allows them (also run on the bookmark interval). */
  sendBookmarks(): void {
    for (const w of [...this.watchers]) {
      if (!w.bookmarks) continue;
      const rt = this.rtForGr(w.gr);
      if (!rt) continue;
      try {
        w.sink.event(this.bookmark(rt, w.version));
      } catch {
        this.endWatcher(w);
      }
    }
  }

  private rtForGr(k: string): ResourceType | undefined {
    return this.registry.byKey(k);
  }

  private endWatcher(w: Watcher): void {
    if (!this.watchers.delete(w)) return;
    try {
      w.sink.end();
    } catch (e) {
      this.log?.debug({ err: e }, 'watch sink end failed');
    }
  }

  /** Sends one change to a watcher, turning it into ADDED/DELETED when it enters/leaves the selection. */
  private deliver(w: Watcher, rt: ResourceType, ev: HistoryEvent): void {
    const now = this.matches(rt, ev.object, w.namespace, w.label, w.field);
    let type: ChangeType | undefined;
    if (ev.type === 'ADDED') type = now ? 'ADDED' : undefined;
    else if (ev.type === 'DELETED') type = now ? 'DELETED' : undefined;
    else {
      const before = ev.prev ? this.matches(rt, ev.prev, w.namespace, w.label, w.field) : false;
      type = now && before ? 'MODIFIED' : now ? 'ADDED' : before ? 'DELETED' : undefined;
    }
    if (!type) return;
    try {
      w.sink.event({ type, object: this.present(rt, w.version, ev.object) });
    } catch (e) {
      this.log?.debug({ err: e }, 'watch sink failed; closing it');
      this.endWatcher(w);
    }
  }

  // ---- commits

  private indexObject(locator: string, old: KubeObject | undefined, next: KubeObject | undefined): void {
    if (next?.metadata.deletionTimestamp) this.terminating.add(locator);
    else this.terminating.delete(locator);
    if (old?.metadata.uid) this.uidIndex.delete(old.metadata.uid);
    if (next?.metadata.uid) this.uidIndex.set(next.metadata.uid, locator);
    for (const r of old?.metadata.ownerReferences ?? []) this.ownerIndex.get(r.uid)?.delete(locator);
    for (const r of next?.metadata.ownerReferences ?? []) {
      if (!r?.uid) continue;
      let s = this.ownerIndex.get(r.uid);
      if (!s) this.ownerIndex.set(r.uid, (s = new Set()));
      s.add(locator);
    }
  }

  private put(rt: ResourceType, key: string, obj: KubeObject): void {
    const b = this.bucket(rt);
    const locator = `${grKey(rt.group, rt.resource)}|${key}`;
    this.indexObject(locator, b.get(key), obj);
    b.set(key, obj);
  }

  private commit(rt: ResourceType, type: ChangeType, obj: KubeObject, prev?: KubeObject): KubeObject {
    if (this.closed) throw errors.internal('the API server is shutting down');
    const key = objKey(obj.metadata.namespace, obj.metadata.name!);
    const rv = ++this.rv;
    obj.metadata.resourceVersion = String(rv);
    const b = this.bucket(rt);
    const locator = `${grKey(rt.group, rt.resource)}|${key}`;
    if (type === 'DELETED') {
      this.indexObject(locator, b.get(key), undefined);
      b.delete(key);
      if (obj.metadata.uid) this.goneOwners.add(obj.metadata.uid);
    } else this.put(rt, key, obj);
    const ev: HistoryEvent = { rv, gr: grKey(rt.group, rt.resource), key, type, object: obj, ...(prev ? { prev } : {}) };
    this.history.push(ev);
    while (this.history.length > this.historySize) this.compactedRv = this.history.shift()!.rv;
    for (const w of [...this.watchers]) if (w.gr === ev.gr) this.deliver(w, rt, ev);
    if (rt.group === CRD_GROUP && rt.resource === CRD_RESOURCE) this.syncCrd(type === 'DELETED' ? undefined : obj, obj.metadata.name!, prev);
    for (const fn of this.changeListeners) fn();
    if (this.goneOwners.size || this.terminating.size || this.crdNamesFreed) this.scheduleReconcile();
    return obj;
  }

  /** Removes an object for good (its DELETED event carries a fresh resourceVersion). */
  private remove(rt: ResourceType, obj: KubeObject): KubeObject {
    return this.commit(rt, 'DELETED', clone(obj), obj);
  }

  // ---- writes

  private ctx(version: string, subresource: string | undefined, opts: WriteOptions): StrategyContext {
    const warnings = opts.warnings ?? [];
    return {
      version,
      ...(subresource ? { subresource } : {}),
      warnings,
      fieldValidation: opts.fieldValidation ?? 'Warn',
      list: (group, resource, namespace) => {
        const rt = this.registry.get(group, resource);
        if (!rt) return [];
        return [...this.bucket(rt).values()].filter((o) => namespace === undefined || o.metadata.namespace === namespace);
      },
      get: (group, resource, namespace, name) => {
        const rt = this.registry.get(group, resource);
        return rt ? this.lookup(rt, namespace, name) : undefined;
      },
    };
  }

  private checkTypeMeta(rt: ResourceType, version: string, body: unknown): KubeObject {
    if (!isObject(body)) throw errors.badRequest('the request body must be a JSON object');
    const want = apiVersionOf(rt.group, version);
    if (body.apiVersion !== undefined && body.apiVersion !== want) {
      throw errors.badRequest(`the API version in the data (${String(body.apiVersion)}) does not match the expected API version (${want})`);
    }
    if (body.kind !== undefined && body.kind !== rt.kind) {
      throw errors.badRequest(`${String(body.kind)} in version "${version}" cannot be handled as a ${rt.kind}: the kind in the data does not match the expected kind`);
    }
    const obj = clone(body) as KubeObject;
    if (!isObject(obj.metadata)) obj.metadata = {};
    obj.apiVersion = apiVersionOf(rt.group, rt.storageVersion);
    obj.kind = rt.kind;
    return obj;
  }

  private requireNamespace(rt: ResourceType, namespace: string | undefined, obj: KubeObject): void {
    if (!rt.namespaced) {
      delete obj.metadata.namespace;
      return;
    }
    if (obj.metadata.namespace && namespace && obj.metadata.namespace !== namespace) {
      throw errors.badRequest('the namespace of the provided object does not match the namespace sent on the request');
    }
    const ns = namespace ?? obj.metadata.namespace;
    if (!ns) throw errors.badRequest('the namespace of the object must be set for a namespaced resource');
    obj.metadata.namespace = ns;
  }

  private invalid(rt: ResourceType, name: string, causes: StatusCause[]): ApiError {
    return errors.invalid(rt.group, rt.kind, name, causes);
  }

  create(rt: ResourceType, version: string, namespace: string | undefined, body: unknown, opts: WriteOptions = {}): KubeObject {
    const obj = this.checkTypeMeta(rt, version, body);
    this.requireNamespace(rt, namespace, obj);
    const m = obj.metadata;
    if (rt.crd?.terminating) throw new ApiError(405, 'MethodNotAllowed', `create not allowed while custom resource definition is terminating`);
    if (rt.namespaced) {
      const nsType = this.registry.get('', 'namespaces')!;
      const ns = this.lookup(nsType, undefined, m.namespace!);
      if (!ns) throw errors.notFound({ group: '', resource: 'namespaces' }, m.namespace!);
      if (ns.metadata.deletionTimestamp) {
        throw errors.forbidden(gr(rt), m.name ?? '', `unable to create new content in namespace ${m.namespace} because it is being terminated`, [
          { reason: 'NamespaceTerminating', message: `namespace ${m.namespace} is being terminated`, field: 'metadata.namespace' },
        ]);
      }
    }
    if (m.resourceVersion) throw errors.internal('resourceVersion should not be set on objects to be created');
    if (!m.name && !m.generateName) throw this.invalid(rt, '', [cause.required('metadata.name', 'name or generateName is required')]);
    const generate = !m.name;
    if (generate) m.name = generatedName(m.generateName!);
    m.uid = randomUUID();
    m.creationTimestamp = timestamp();
    if (rt.hasGeneration) m.generation = 1;
    else delete m.generation;
    delete m.deletionTimestamp;
    delete m.deletionGracePeriodSeconds;
    delete m.managedFields;
    delete m.selfLink;
    if (hasSubresource(rt, version, 'status') && !rt.keepStatusOnCreate) delete obj.status;
    const ctx = this.ctx(version, undefined, opts);
    rt.strategy.prepareForCreate?.(obj, ctx);
    normalizeMeta(obj);
    const causes = [...validateName(m.name!, rt.nameRule), ...validateObjectMeta(obj), ...(rt.strategy.validate?.(obj, undefined, ctx) ?? [])];
    if (causes.length) throw this.invalid(rt, m.name!, causes);
    if (rt.crd && version !== rt.storageVersion) convertCustomResource(rt, obj, rt.storageVersion);
    for (let attempt = 0; this.lookup(rt, m.namespace, m.name!); attempt++) {
      if (!generate || attempt >= 8) throw errors.alreadyExists(gr(rt), m.name!);
      m.name = generatedName(m.generateName!);
    }
    if (opts.dryRun) return this.present(rt, version, obj);
    return this.present(rt, version, this.commit(rt, 'ADDED', obj));
  }

  update(
    rt: ResourceType,
    version: string,
    namespace: string | undefined,
    name: string,
    body: unknown,
    opts: WriteOptions & { subresource?: string } = {},
  ): { object: KubeObject; created: boolean } {
    const obj = this.checkTypeMeta(rt, version, body);
    if (obj.metadata.name !== undefined && obj.metadata.name !== name) {
      throw errors.badRequest(`the name of the object (${String(obj.metadata.name)}) does not match the name on the URL (${name})`);
    }
    obj.metadata.name = name;
    this.requireNamespace(rt, namespace, obj);
    const old = this.lookup(rt, obj.metadata.namespace, name);
    if (!old) {
      if (rt.allowCreateOnUpdate && !opts.subresource) {
        delete obj.metadata.resourceVersion;
        return { object: this.create(rt, version, namespace, { ...obj, apiVersion: apiVersionOf(rt.group, version) }, opts), created: true };
      }
      throw errors.notFound(gr(rt), name);
    }
    const rv = obj.metadata.resourceVersion;
    if (rv) {
      if (rv !== old.metadata.resourceVersion) throw errors.staleResourceVersion(gr(rt), name);
    } else if (rt.requireResourceVersionOnUpdate) {
      throw this.invalid(rt, name, [cause.invalid('metadata.resourceVersion', '0x0', 'must be specified for an update')]);
    }
    return { object: this.applyUpdate(rt, version, old, obj, opts, opts.subresource), created: false };
  }

  patch(
    rt: ResourceType,
    version: string,
    namespace: string | undefined,
    name: string,
    type: PatchType,
    patch: unknown,
    opts: WriteOptions & { subresource?: string } = {},
  ): { object: KubeObject; created: boolean } {
    const ns = rt.namespaced ? namespace : undefined;
    const old = this.lookup(rt, ns, name);
    if (!old) {
      if (type === 'apply' && !opts.subresource) {
        if (!isObject(patch)) throw errors.badRequest('apply patch must be an object');
        const body = clone(patch) as KubeObject;
        body.metadata = { ...(isObject(body.metadata) ? body.metadata : {}), name };
        return { object: this.create(rt, version, ns, body, opts), created: true };
      }
      throw errors.notFound(gr(rt), name);
    }
    const current = this.present(rt, version, old);
    let patched: unknown;
    switch (type) {
      case 'json':
        patched = jsonPatch(current, patch);
        break;
      case 'merge':
      case 'apply':
        patched = mergePatch(current, patch);
        break;
      case 'strategic':
        if (!rt.patchMeta) {
          throw errors.unsupportedMediaType('application/strategic-merge-patch+json', ['application/json-patch+json', 'application/merge-patch+json', 'application/apply-patch+yaml']);
        }
        patched = strategicMergePatch(current, patch, rt.patchMeta);
        break;
    }
    const obj = this.checkTypeMeta(rt, version, patched);
    if (obj.metadata.name !== name) throw errors.badRequest(`the name of the object (${String(obj.metadata.name)}) does not match the name on the URL (${name})`);
    if (rt.namespaced && obj.metadata.namespace !== old.metadata.namespace) throw errors.badRequest('the namespace of the provided object does not match the namespace sent on the request');
    // A resourceVersion in the patch is a precondition.
    if (obj.metadata.resourceVersion !== old.metadata.resourceVersion) {
      if (obj.metadata.resourceVersion) throw errors.staleResourceVersion(gr(rt), name);
      obj.metadata.resourceVersion = old.metadata.resourceVersion;
    }
    return { object: this.applyUpdate(rt, version, old, obj, opts, opts.subresource), created: false };
  }

  /** The shared update path of PUT and PATCH, for the main resource or a subresource. */
  private applyUpdate(rt: ResourceType, version: string, old: KubeObject, incoming: KubeObject, opts: WriteOptions, subresource: string | undefined): KubeObject {
    let obj: KubeObject;
    if (subresource === 'status') {
      // The rest of the object as this version sees it: what only another version has is lost here, as in kube.
      obj = rt.crd ? this.present(rt, version, old) : clone(old);
      if (incoming.status === undefined) delete obj.status;
      else obj.status = clone(incoming.status);
    } else if (subresource === 'finalize') {
      obj = clone(old);
      const fin = isObject(incoming.spec) ? incoming.spec.finalizers : undefined;
      obj.spec = { ...(isObject(old.spec) ? old.spec : {}), finalizers: Array.isArray(fin) ? fin : [] };
    } else {
      obj = incoming;
      if (hasSubresource(rt, version, 'status')) {
        if (old.status === undefined) delete obj.status;
        else obj.status = clone(old.status);
      }
    }
    const m = obj.metadata;
    const om = old.metadata;
    for (const k of ['uid', 'creationTimestamp', 'deletionTimestamp', 'deletionGracePeriodSeconds', 'generation', 'namespace', 'name', 'resourceVersion'] as const) {
      if (om[k] === undefined) delete m[k];
      else (m as Record<string, unknown>)[k] = om[k];
    }
    delete m.managedFields;
    delete m.selfLink;
    const name = om.name!;
    if (om.deletionTimestamp) {
      const added = (m.finalizers ?? []).filter((f) => !(om.finalizers ?? []).includes(f));
      if (added.length) throw this.invalid(rt, name, [cause.forbidden('metadata.finalizers', 'no new finalizers can be added if the object is being deleted, found new finalizers ' + JSON.stringify(added))]);
    }
    const ctx = this.ctx(version, subresource, opts);
    rt.strategy.prepareForUpdate?.(obj, old, ctx);
    normalizeMeta(obj);
    const causes = [...validateObjectMeta(obj), ...(rt.strategy.validate?.(obj, old, ctx) ?? [])];
    if (causes.length) throw this.invalid(rt, name, causes);
    if (rt.crd && version !== rt.storageVersion) convertCustomResource(rt, obj, rt.storageVersion);
    if (rt.hasGeneration && this.specChanged(rt, version, old, obj)) m.generation = (om.generation ?? 0) + 1;
    // No-op writes change nothing, not even the resourceVersion.
    if (deepEqual(obj, old)) return this.present(rt, version, old);
    if (opts.dryRun) return this.present(rt, version, obj);
    if (this.deletionComplete(rt, obj)) return this.present(rt, version, this.commit(rt, 'DELETED', obj, old));
    return this.present(rt, version, this.commit(rt, 'MODIFIED', obj, old));
  }

  private specChanged(rt: ResourceType, version: string, a: KubeObject, b: KubeObject): boolean {
    const strip = (o: KubeObject): Record<string, unknown> => {
      const { metadata: _m, status, ...rest } = o;
      return hasSubresource(rt, version, 'status') ? rest : { ...rest, status };
    };
    return !deepEqual(strip(a), strip(b));
  }

  /** A deleting object whose last finalizer is gone (and grace period over) is removed for good. */
  private deletionComplete(rt: ResourceType, o: KubeObject): boolean {
    const m = o.metadata;
    if (!m.deletionTimestamp || (m.finalizers?.length ?? 0) > 0) return false;
    if (rt.gracefulDelete && (m.deletionGracePeriodSeconds ?? 0) > 0) return false;
    if (rt.group === '' && rt.resource === 'namespaces') {
      const fin = isObject(o.spec) ? o.spec.finalizers : undefined;
      if (Array.isArray(fin) && fin.length > 0) return false;
    }
    return true;
  }

  delete(rt: ResourceType, version: string, namespace: string | undefined, name: string, opts: DeleteOptions = {}): DeleteResult {
    const old = this.lookup(rt, namespace, name);
    if (!old) throw errors.notFound(gr(rt), name);
    const pre = opts.preconditions;
    if (pre?.uid && pre.uid !== old.metadata.uid) {
      throw errors.conflict(gr(rt), name, `Precondition failed: UID in precondition: ${pre.uid}, UID in object meta: ${old.metadata.uid}`);
    }
    if (pre?.resourceVersion && pre.resourceVersion !== old.metadata.resourceVersion) {
      throw errors.conflict(gr(rt), name, `Precondition failed: ResourceVersion in precondition: ${pre.resourceVersion}, ResourceVersion in object meta: ${old.metadata.resourceVersion}`);
    }
    const isNamespace = rt.group === '' && rt.resource === 'namespaces';
    if (isNamespace && PROTECTED_NAMESPACES.has(name)) throw errors.forbidden(gr(rt), name, 'this namespace may not be deleted');
    const policy: PropagationPolicy =
      opts.propagationPolicy ?? (opts.orphanDependents === true ? 'Orphan' : 'Background');
    if (!['Orphan', 'Background', 'Foreground'].includes(policy)) {
      throw this.invalid(rt, name, [cause.notSupported('propagationPolicy', policy, ['Foreground', 'Background', 'Orphan'])]);
    }
    const obj = clone(old);
    const m = obj.metadata;
    let grace = 0;
    if (rt.gracefulDelete) {
      const spec = isObject(obj.spec) ? obj.spec : {};
      grace = opts.gracePeriodSeconds ?? (typeof spec.terminationGracePeriodSeconds === 'number' ? spec.terminationGracePeriodSeconds : 30);
      const phase = isObject(obj.status) ? obj.status.phase : undefined;
      // Unscheduled pods have no kubelet to wait for, and finished pods nothing to stop.
      if (!spec.nodeName || phase === 'Succeeded' || phase === 'Failed') grace = 0;
      grace = Math.max(0, grace);
    }
    const finalizers = [...(m.finalizers ?? [])];
    if (policy === 'Foreground' && !finalizers.includes('foregroundDeletion') && !finalizers.includes('orphan')) finalizers.push('foregroundDeletion');
    if (policy === 'Orphan' && !finalizers.includes('orphan') && !finalizers.includes('foregroundDeletion')) finalizers.push('orphan');
    if (m.deletionTimestamp) {
      // Already going: only a shorter grace period changes anything.
      const current = m.deletionGracePeriodSeconds ?? 0;
      if (!rt.gracefulDelete || grace >= current) return { object: this.present(rt, version, old), deleted: false };
    }
    const pendingGrace = rt.gracefulDelete && grace > 0;
    const pendingNamespace = isNamespace && (((isObject(obj.spec) && Array.isArray(obj.spec.finalizers) ? obj.spec.finalizers : []) as unknown[]).length > 0);
    if (finalizers.length === 0 && !pendingGrace && !pendingNamespace) {
      if (opts.dryRun) return { object: this.present(rt, version, old), deleted: true };
      return { object: this.present(rt, version, this.remove(rt, old)), deleted: true };
    }
    m.deletionTimestamp = timestamp(Date.now() + grace * 1000);
    m.deletionGracePeriodSeconds = grace;
    if (finalizers.length) m.finalizers = finalizers;
    if (rt.hasGeneration) m.generation = (m.generation ?? 0) + 1;
    if (isNamespace) obj.status = { ...(isObject(obj.status) ? obj.status : {}), phase: 'Terminating' };
    if (rt.group === CRD_GROUP && rt.resource === CRD_RESOURCE) obj.status = computeCrdStatus(obj, this.ctx('v1', 'status', {}), obj.status);
    if (opts.dryRun) return { object: this.present(rt, version, obj), deleted: false };
    if (this.deletionComplete(rt, obj)) return { object: this.present(rt, version, this.commit(rt, 'DELETED', obj, old)), deleted: true };
    return { object: this.present(rt, version, this.commit(rt, 'MODIFIED', obj, old)), deleted: false };
  }

  deleteCollection(rt: ResourceType, version: string, opts: ListOptions & DeleteOptions = {}): KubeList {
    const { label, field } = this.selectors(rt, opts.labelSelector, opts.fieldSelector);
    const victims = [...this.bucket(rt).values()].filter((o) => this.matches(rt, o, opts.namespace, label, field));
    const items: KubeObject[] = [];
    for (const v of victims) {
      try {
        items.push(this.delete(rt, version, v.metadata.namespace, v.metadata.name!, opts).object);
      } catch (e) {
        if (!(e instanceof ApiError && e.code === 404)) throw e;
      }
    }
    return { apiVersion: apiVersionOf(rt.group, version), kind: rt.listKind, metadata: { resourceVersion: String(this.rv) }, items };
  }

  /** pods/binding: assigns a pod to a node, once, as the scheduler does. */
  bind(namespace: string, name: string, body: unknown): Status {
    const rt = this.registry.get('', 'pods')!;
    const pod = this.lookup(rt, namespace, name);
    if (!pod) throw errors.notFound(gr(rt), name);
    const target = isObject(body) && isObject(body.target) ? body.target : undefined;
    const node = target?.name;
    if (typeof node !== 'string' || node === '') throw errors.invalid('', 'Binding', name, [cause.required('target.name')]);
    if (target?.kind !== undefined && target.kind !== 'Node') throw errors.invalid('', 'Binding', name, [cause.notSupported('target.kind', target.kind, ['Node'])]);
    const bindUid = isObject(body) && isObject(body.metadata) ? body.metadata.uid : undefined;
    if (typeof bindUid === 'string' && bindUid !== '' && bindUid !== pod.metadata.uid) {
      throw errors.conflict(gr(rt), name, `Precondition failed: UID in precondition: ${bindUid}, UID in object meta: ${pod.metadata.uid}`);
    }
    if (pod.metadata.deletionTimestamp) throw errors.conflict(gr(rt), name, `pod ${name} is being deleted, cannot be assigned to a host`);
    const spec = isObject(pod.spec) ? pod.spec : {};
    if (spec.nodeName) throw errors.conflict(gr(rt), name, `pod ${name} is already assigned to node "${String(spec.nodeName)}"`);
    const next = clone(pod);
    (next.spec as Record<string, unknown>).nodeName = node;
    const bm = isObject(body) && isObject(body.metadata) ? body.metadata : {};
    if (isObject(bm.annotations)) next.metadata.annotations = { ...(next.metadata.annotations ?? {}), ...(bm.annotations as Record<string, string>) };
    const status = isObject(next.status) ? next.status : (next.status = {});
    const conds = (Array.isArray(status.conditions) ? status.conditions : []).filter((c) => !(isObject(c) && c.type === 'PodScheduled'));
    conds.push({ type: 'PodScheduled', status: 'True', lastProbeTime: null, lastTransitionTime: timestamp() });
    status.conditions = conds;
    this.commit(rt, 'MODIFIED', next, pod);
    return { ...successStatus(), code: 201 };
  }

  // ---- CRDs: establishing makes the resource served; removal stops serving it

  private syncCrd(crd: KubeObject | undefined, name = crd?.metadata.name ?? '', prev?: KubeObject): void {
    const existing = this.registry.all().find((rt) => rt.crd?.name === name);
    // Names a removed CRD held may now go to a CRD that was refused them.
    if (!crd) this.crdNamesFreed = true;
    if (!crd || !isEstablished(crd)) {
      if (existing) {
        this.registry.remove(existing.group, existing.resource);
        const k = grKey(existing.group, existing.resource);
        for (const w of [...this.watchers]) if (w.gr === k) this.endWatcher(w);
        if (!crd) this.data.delete(k);
      }
      return;
    }
    // Status-only changes leave the served type (and its compiled schemas) as they are.
    if (existing && !crdServingChanged(prev, crd)) return;
    const rt = resourceTypeForCrd(crd);
    if (existing && (existing.group !== rt.group || existing.resource !== rt.resource)) this.registry.remove(existing.group, existing.resource);
    this.registry.add(rt);
  }

  // ---- controllers

  private scheduleReconcile(): void {
    if (this.reconcileScheduled || this.closed) return;
    this.reconcileScheduled = true;
    this.reconcileTimer = setImmediate(() => {
      this.reconcileScheduled = false;
      this.reconcileTimer = undefined;
      try {
        this.reconcile();
      } catch (e) {
        this.log?.error({ err: e }, 'store reconcile failed');
      }
    });
  }

  private locate(locator: string): Located | undefined {
    const bar = locator.indexOf('|');
    const k = locator.slice(0, bar);
    const key = locator.slice(bar + 1);
    const rt = this.rtForGr(k);
    const obj = this.data.get(k)?.get(key);
    return rt && obj ? { rt, key, obj } : undefined;
  }

  private dependents(uid: string): Located[] {
    return [...(this.ownerIndex.get(uid) ?? [])].map((l) => this.locate(l)).filter((x): x is Located => x !== undefined);
  }

  /** Writes a controller's change, completing a deletion when nothing holds it any more. */
  private writeInternal(rt: ResourceType, old: KubeObject, next: KubeObject): void {
    if (deepEqual(old, next)) return;
    this.commit(rt, this.deletionComplete(rt, next) ? 'DELETED' : 'MODIFIED', next, old);
  }

  private dropOwnerRef(d: Located, uid: string): void {
    const next = clone(d.obj);
    const refs = (next.metadata.ownerReferences ?? []).filter((r) => r.uid !== uid);
    if (refs.length) next.metadata.ownerReferences = refs;
    else delete next.metadata.ownerReferences;
    this.writeInternal(d.rt, d.obj, next);
  }

  private dropFinalizer(l: Located, finalizer: string): void {
    const next = clone(l.obj);
    const fin = (next.metadata.finalizers ?? []).filter((f) => f !== finalizer);
    if (fin.length) next.metadata.finalizers = fin;
    else delete next.metadata.finalizers;
    this.writeInternal(l.rt, l.obj, next);
  }

  private deleteQuietly(l: Located, policy: PropagationPolicy): void {
    if (l.obj.metadata.deletionTimestamp) return;
    try {
      this.delete(l.rt, l.rt.storageVersion, l.obj.metadata.namespace, l.obj.metadata.name!, { propagationPolicy: policy });
    } catch (e) {
      if (!(e instanceof ApiError && e.code === 404)) this.log?.warn({ err: e, name: l.obj.metadata.name }, 'controller delete failed');
    }
  }

  private reconcile(): void {
    if (this.closed) return;
    if (this.crdNamesFreed) this.reconsiderCrdNames();
    // Garbage collection: dependents of removed owners go too, unless another owner remains.
    for (const uid of [...this.goneOwners]) {
      this.goneOwners.delete(uid);
      for (const d of this.dependents(uid)) {
        const live = (d.obj.metadata.ownerReferences ?? []).filter((r) => r.uid !== uid && this.uidIndex.has(r.uid));
        if (live.length) this.dropOwnerRef(d, uid);
        else this.deleteQuietly(d, 'Background');
      }
      if (!this.ownerIndex.get(uid)?.size) this.ownerIndex.delete(uid);
    }
    // Objects being deleted: orphan/foreground finalizers, namespaces and CRDs emptying themselves.
    for (const locator of [...this.terminating]) {
      const l = this.locate(locator);
      if (!l) {
        this.terminating.delete(locator);
        continue;
      }
      const { rt, obj } = l;
      const uid = obj.metadata.uid!;
      const fin = obj.metadata.finalizers ?? [];
      if (fin.includes('orphan')) {
        for (const d of this.dependents(uid)) this.dropOwnerRef(d, uid);
        const cur = this.locate(locator);
        if (cur) this.dropFinalizer(cur, 'orphan');
      } else if (fin.includes('foregroundDeletion')) {
        for (const d of this.dependents(uid)) this.deleteQuietly(d, 'Foreground');
        // Only dependents that block their owner's deletion are waited for.
        const blocking = this.dependents(uid).filter((d) => (d.obj.metadata.ownerReferences ?? []).some((r) => r.uid === uid && r.blockOwnerDeletion));
        const cur = this.locate(locator);
        if (blocking.length === 0 && cur) this.dropFinalizer(cur, 'foregroundDeletion');
      }
      const cur = this.locate(locator);
      if (!cur) continue;
      if (rt.group === '' && rt.resource === 'namespaces') this.reconcileNamespace(cur);
      else if (rt.group === CRD_GROUP && rt.resource === CRD_RESOURCE) this.reconcileCrdDeletion(cur);
    }
  }

  /** The CRD naming controller's second chance: refused CRDs are reconsidered when names free up. */
  private reconsiderCrdNames(): void {
    this.crdNamesFreed = false;
    const rt = this.registry.get(CRD_GROUP, CRD_RESOURCE)!;
    for (const crd of [...this.bucket(rt).values()]) {
      if (isEstablished(crd) || crd.metadata.deletionTimestamp) continue;
      const next = clone(crd);
      next.status = computeCrdStatus(next, this.ctx('v1', 'status', {}), crd.status);
      const changed = (c: KubeObject): unknown => (isObject(c.status) ? [c.status.acceptedNames, (c.status.conditions as unknown[] | undefined)?.map((x) => (isObject(x) ? x.status : x))] : undefined);
      if (!deepEqual(changed(next), changed(crd))) this.writeInternal(rt, crd, next);
    }
  }

  /** Namespace lifecycle: delete everything in it, then drop the `kubernetes` finalizer. */
  private reconcileNamespace(l: Located): void {
    const ns = l.obj.metadata.name!;
    const prefix = `${ns}/`;
    let remaining = 0;
    for (const rt of this.registry.all()) {
      if (!rt.namespaced) continue;
      for (const [key, obj] of [...this.bucket(rt)]) {
        if (!key.startsWith(prefix)) continue;
        this.deleteQuietly({ rt, key, obj }, 'Background');
        if (this.bucket(rt).has(key)) remaining++;
      }
    }
    const cur = this.locate(`namespaces|/${ns}`);
    if (!cur) return;
    const fin = isObject(cur.obj.spec) && Array.isArray(cur.obj.spec.finalizers) ? (cur.obj.spec.finalizers as string[]) : [];
    if (remaining === 0 && fin.includes('kubernetes')) {
      const next = clone(cur.obj);
      (next.spec as Record<string, unknown>).finalizers = fin.filter((f) => f !== 'kubernetes');
      this.writeInternal(cur.rt, cur.obj, next);
    }
  }

  /** CRD deletion: remove every custom object of it, then the cleanup finalizer. */
  private reconcileCrdDeletion(l: Located): void {
    if (!(l.obj.metadata.finalizers ?? []).includes(CRD_CLEANUP_FINALIZER)) return;
    const spec = isObject(l.obj.spec) ? l.obj.spec : {};
    const plural = isObject(spec.names) ? spec.names.plural : undefined;
    const k = grKey(String(spec.group ?? ''), String(plural ?? ''));
    const rt = this.rtForGr(k);
    const bucket = this.data.get(k);
    if (rt && bucket) for (const [key, obj] of [...bucket]) this.deleteQuietly({ rt, key, obj }, 'Background');
    if (!bucket || bucket.size === 0) {
      const cur = this.locate(`${grKey(CRD_GROUP, CRD_RESOURCE)}|${objKey(undefined, l.obj.metadata.name!)}`);
      if (cur) this.dropFinalizer(cur, CRD_CLEANUP_FINALIZER);
    }
  }
}

import { errors, isApiError } from './errors.js';
import { parseApiVersion, type ResourceType } from './registry.js';
import type { DeleteResult, Store, WatchHandle } from './store.js';
import type { DeleteOptions, KubeList, KubeObject, ListOptions, PatchType, WatchEvent, WatchOptions, WriteOptions } from './types.js';

/**
 * In-process access to one resource of the store, without HTTP: what a client library would do,
 * with the same semantics (validation, resourceVersions, watch events, finalizers). Errors are the
 * same `ApiError`s the HTTP layer turns into Status bodies.
 */
export class ResourceClient {
  constructor(
    private readonly store: Store,
    readonly apiVersion: string,
    /** Plural, singular, kind or short name (`pods`, `pod`, `Pod`, `po`). */
    readonly resource: string,
  ) {}

  /** The served type, looked up on each call: custom resources come and go with their CRDs. */
  get type(): ResourceType {
    const rt = this.store.registry.lookup(this.apiVersion, this.resource);
    if (!rt) throw errors.noRoute();
    return rt;
  }

  private get version(): string {
    return parseApiVersion(this.apiVersion).version;
  }

  create<T extends KubeObject = KubeObject>(obj: KubeObject, opts: WriteOptions & { namespace?: string } = {}): T {
    return this.store.create(this.type, this.version, opts.namespace ?? obj.metadata?.namespace, obj, opts) as T;
  }

  get<T extends KubeObject = KubeObject>(name: string, namespace?: string): T {
    return this.store.get(this.type, this.version, namespace, name) as T;
  }

  /** Like get, but undefined instead of NotFound. */
  tryGet<T extends KubeObject = KubeObject>(name: string, namespace?: string): T | undefined {
    try {
      return this.get<T>(name, namespace);
    } catch (e) {
      if (isApiError(e, 404)) return undefined;
      throw e;
    }
  }

  list<T extends KubeObject = KubeObject>(opts: ListOptions = {}): KubeList<T> {
    return this.store.list(this.type, this.version, opts) as KubeList<T>;
  }

  /** Watches like `?watch=true`: `onEvent` gets ADDED/MODIFIED/DELETED (and BOOKMARK/ERROR). */
  watch(opts: WatchOptions, onEvent: (ev: WatchEvent) => void, onEnd: () => void = () => undefined): WatchHandle {
    return this.store.watch(this.type, this.version, opts, { event: onEvent, end: onEnd });
  }

  /** PUT: the object's resourceVersion, if set, must be current. */
  update<T extends KubeObject = KubeObject>(obj: KubeObject, opts: WriteOptions & { subresource?: string } = {}): T {
    return this.store.update(this.type, this.version, obj.metadata.namespace, obj.metadata.name!, obj, opts).object as T;
  }

  updateStatus<T extends KubeObject = KubeObject>(obj: KubeObject, opts: WriteOptions = {}): T {
    return this.update<T>(obj, { ...opts, subresource: 'status' });
  }

  /** PATCH; `type` defaults to a JSON merge patch. */
  patch<T extends KubeObject = KubeObject>(
    name: string,
    patch: unknown,
    opts: WriteOptions & { namespace?: string; type?: PatchType; subresource?: string } = {},
  ): T {
    return this.store.patch(this.type, this.version, opts.namespace, name, opts.type ?? 'merge', patch, opts).object as T;
  }

  delete(name: string, opts: DeleteOptions & { namespace?: string } = {}): DeleteResult {
    return this.store.delete(this.type, this.version, opts.namespace, name, opts);
  }

  deleteCollection(opts: ListOptions & DeleteOptions = {}): KubeList {
    return this.store.deleteCollection(this.type, this.version, opts);
  }
}

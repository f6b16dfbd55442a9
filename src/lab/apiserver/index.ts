// The lab's embedded Kubernetes API server: start it with ApiServer.start(), talk to it over HTTP
// (kubectl, client-node) or in-process through api.resource(apiVersion, resource).
export { ApiServer, type ApiServerOptions } from './server.js';
export type { NodeProxyTarget } from './node-proxy.js';
export { ResourceClient } from './client.js';
export { Store, INITIAL_NAMESPACES, type StoreOptions, type StoreSnapshot, type WatchHandle, type WatchSink, type DeleteResult } from './store.js';
export { ApiError, isApiError, type Status, type StatusCause } from './errors.js';
export { parseLabelSelector, parseFieldSelector } from './selectors.js';
export type { ResourceType } from './registry.js';
export type {
  KubeObject,
  KubeList,
  ObjectMeta,
  OwnerReference,
  WatchEvent,
  WatchEventType,
  PatchType,
  DeleteOptions,
  ListOptions,
  WatchOptions,
  WriteOptions,
} from './types.js';

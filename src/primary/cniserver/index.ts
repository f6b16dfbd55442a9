export { decodeInvocation, K8S_ARG_KEYS, podFromArgs, replyVersion, type Decoded, type DecodeOptions } from './decode.js';
export { CniHandler, DEFAULT_REQUEST_TIMEOUT_MS, RequestTimeoutError, type CniHandlerOptions } from './handler.js';
export { RequestScheduler } from './scheduler.js';
export { CniServer, parseInvocation, type CniServerOptions } from './server.js';
export type { CniDriver, CniRequest, GcRequest, PodIdentity, StatusRequest } from './types.js';

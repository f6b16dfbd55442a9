// How an agent finds the policy controller and proves who it is. The leading controller publishes its address and
// its self-signed certificate in a ConfigMap (each new leader makes a new certificate and replaces it); the agent
// reads it before every connection, pins that certificate, and sends its own API credentials (the ServiceAccount
// token), which the controller checks through a TokenReview.
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import type { RequestOptions } from 'node:https';
import { isNotFound } from '../../k8s/api.js';

/** The ConfigMap the leading controller publishes, and its keys. */
export const ENDPOINT_CONFIGMAP = 'seine-controller-endpoint';
export const ENDPOINT_KEY = 'endpoint';
export const CA_KEY = 'ca.crt';
export const DEFAULT_ENDPOINT_NAMESPACE = 'kube-system';

export interface ControllerEndpoint {
  /** Base URL, https://host:port. */
  url: string;
  /** The controller's certificate (PEM), the only one trusted for `url`. */
  ca: string;
}

/** The endpoint a ConfigMap's data describes; undefined when a key is missing or unusable. */
export function parseEndpoint(data: Record<string, string> | undefined): ControllerEndpoint | undefined {
  const url = data?.[ENDPOINT_KEY]?.trim();
  const ca = data?.[CA_KEY];
  if (!url || !ca || !ca.includes('-----BEGIN CERTIFICATE-----')) return undefined;
  try {
    const u = new URL(url);
    if (u.protocol !== 'https:' || u.pathname !== '/' || u.search || u.hash) return undefined;
  } catch {
    return undefined;
  }
  return { url: url.replace(/\/+$/, ''), ca };
}

/**
 * Reads the controller's endpoint ConfigMap on each call: undefined while there is none (no leader yet) or it is
 * malformed; API errors other than not-found are thrown (the caller retries).
 */
export function controllerEndpointSource(kubeConfig: KubeConfig, opts: { namespace?: string } = {}): () => Promise<ControllerEndpoint | undefined> {
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const namespace = opts.namespace ?? DEFAULT_ENDPOINT_NAMESPACE;
  return async () => {
    try {
      const cm = await core.readNamespacedConfigMap({ name: ENDPOINT_CONFIGMAP, namespace });
      return parseEndpoint(cm.data);
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw e;
    }
  };
}

/**
 * The bearer token the kubeconfig's user sends to the API server, asked for on each call: in a pod it is the
 * projected ServiceAccount token, which the kubelet rotates (client-node re-reads the file). Undefined for a user
 * that authenticates otherwise (client certificates).
 */
export function bearerTokenSource(kubeConfig: KubeConfig): () => Promise<string | undefined> {
  return async () => {
    const opts: RequestOptions = { headers: {} };
    await kubeConfig.applyToHTTPSOptions(opts);
    const header = (opts.headers as Record<string, unknown> | undefined)?.Authorization;
    if (typeof header !== 'string' || !header.startsWith('Bearer ')) return undefined;
    const token = header.slice('Bearer '.length).trim();
    return token || undefined;
  };
}

// The controller's end of the policy channel as the leader runs it: a fresh self-signed certificate for the address
// agents reach it at, the share server over HTTPS with agents authenticated by TokenReview, and the endpoint and
// certificate published in a ConfigMap for agents to find and pin; users read where policies are realized there too
// (TokenReview and SubjectAccessReview for them). A new leader makes a new certificate and
// replaces the ConfigMap; agents re-read it before each connection.
import { CoreV1Api, type KubeConfig, type V1ConfigMap } from '@kubernetes/client-node';
import ipaddr from 'ipaddr.js';
import { apiMessage, isConflict, isNotFound } from '../../k8s/api.js';
import { AccessReviewer } from '../../k8s/access-review.js';
import { TokenAuthenticator } from '../../k8s/token-review.js';
import { selfSignedCert } from '../../util/certs.js';
import { logger, type Logger } from '../../util/log.js';
import type { PolicyController } from '../controller/controller.js';
import { PolicyApi } from '../controller/policy-api.js';
import { ShareServer } from '../controller/share-server.js';
import { CA_KEY, ENDPOINT_CONFIGMAP, ENDPOINT_KEY } from './discovery.js';

export interface PolicyChannelOptions {
  kubeConfig: KubeConfig;
  controller: PolicyController;
  /** Where the endpoint ConfigMap is published (the controller's namespace). */
  namespace: string;
  bindAddress: string;
  /** 0: any free port (the published endpoint names the one bound). */
  port: number;
  /** The address agents connect to; the certificate is made for it. */
  advertiseAddress: string;
  /** Users (as TokenReview names them) allowed to read shares. */
  agentUsers: string[];
  log?: Logger;
}

export interface PolicyChannel {
  port: number;
  /** Stops serving; the ConfigMap stays (the next leader replaces it). */
  close(): Promise<void>;
}

const PUBLISH_RETRY_MIN_MS = 500;
const PUBLISH_RETRY_MAX_MS = 10_000;

/** `https://host:port`, with IPv6 addresses in brackets. */
export function endpointUrl(host: string, port: number): string {
  return ipaddr.IPv6.isValid(host) ? `https://[${host}]:${port}` : `https://${host}:${port}`;
}

export async function startPolicyChannel(opts: PolicyChannelOptions): Promise<PolicyChannel> {
  const log = opts.log ?? logger('controller.policy-channel');
  const tls = selfSignedCert({
    commonName: 'seine-controller',
    ...(ipaddr.isValid(opts.advertiseAddress) ? { ips: [opts.advertiseAddress] } : { dnsNames: [opts.advertiseAddress] }),
  });
  const authenticator = new TokenAuthenticator({ kubeConfig: opts.kubeConfig });
  const access = new AccessReviewer({ kubeConfig: opts.kubeConfig });
  const { controller } = opts;
  const policies = new PolicyApi({
    realizations: (which) => controller.realizations(which),
    lastReport: (node) => controller.lastReport(node),
    created: (uid) => controller.created(uid),
    unenforced: (which) => controller.unenforced(which),
    ready: () => controller.isSynced,
    authenticate: (token) => authenticator.review(token),
    authorize: (user, what) => access.check(user, what),
    log,
  });
  const server = new ShareServer({
    policies,
    shares: controller.shares,
    tls,
    authenticate: (token) => authenticator.authenticate(token),
    agentUsers: opts.agentUsers,
    onChange: (listener) => controller.onChange(listener),
    onRealized: (node, policies) => controller.reportRealized(node, policies),
    ready: () => controller.isSynced,
    log,
  });
  const port = await server.listen(opts.bindAddress, opts.port);
  const url = endpointUrl(opts.advertiseAddress, port);
  const data = { [ENDPOINT_KEY]: url, [CA_KEY]: tls.cert };
  const core = opts.kubeConfig.makeApiClient(CoreV1Api);

  let closed = false;
  let retry: NodeJS.Timeout | undefined;
  // Until it is published agents cannot find this leader, so failures are retried (with backoff) until it is, or
  // until the channel closes.
  const publish = async (delayMs: number): Promise<void> => {
    if (closed) return;
    try {
      await publishEndpoint(core, opts.namespace, data);
      log.info({ endpoint: url, namespace: opts.namespace, configMap: ENDPOINT_CONFIGMAP }, 'policy channel published');
    } catch (e) {
      if (closed) return;
      log.warn({ err: apiMessage(e), retryInMs: delayMs }, 'cannot publish the policy channel endpoint; retrying');
      retry = setTimeout(() => void publish(Math.min(delayMs * 2, PUBLISH_RETRY_MAX_MS)), delayMs);
    }
  };
  await publish(PUBLISH_RETRY_MIN_MS);

  return {
    port,
    async close() {
      if (closed) return;
      closed = true;
      if (retry) clearTimeout(retry);
      await server.close();
    },
  };
}

/** Creates the endpoint ConfigMap, or replaces its data (and only its data) when it exists. */
async function publishEndpoint(core: CoreV1Api, namespace: string, data: Record<string, string>): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    let existing: V1ConfigMap | undefined;
    try {
      existing = await core.readNamespacedConfigMap({ name: ENDPOINT_CONFIGMAP, namespace });
    } catch (e) {
      if (!isNotFound(e)) throw e;
    }
    try {
      if (!existing) {
        await core.createNamespacedConfigMap({
          namespace,
          body: { metadata: { name: ENDPOINT_CONFIGMAP, namespace, labels: { 'app.kubernetes.io/name': 'seine', 'app.kubernetes.io/component': 'controller' } }, data },
        });
      } else {
        await core.replaceNamespacedConfigMap({ name: ENDPOINT_CONFIGMAP, namespace, body: { ...existing, data } });
      }
      return;
    } catch (e) {
      // Someone else wrote it in between (a create racing ours, or an update): read again.
      if (attempt < 5 && (isConflict(e) || (existing && isNotFound(e)))) continue;
      throw e;
    }
  }
}

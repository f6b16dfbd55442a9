import type { CoreV1Api, V1Pod } from '@kubernetes/client-node';
import { CniCode, CniError } from '../../cni/errors.js';
import type { CniResult } from '../../cni/types.js';
import { apiMessage, isNotFound } from '../../k8s/api.js';
import { logger } from '../../util/log.js';
import type { SecondaryNetworkManager } from '../../secondary/agent/manager.js';
import type { CniDriver, CniRequest, GcRequest, StatusRequest } from '../cniserver/index.js';
import type { PodNetworkDriver } from './driver.js';
import { sandboxIdentity } from '../../podif/sandbox.js';

/**
 * What a pod's CNI ADD realizes: the primary network first (eth0), then the secondary networks its annotation
 * asks for, in order. A failure anywhere rolls back everything added for the pod; DEL removes the secondary
 * interfaces first, then the primary one, attempting every step.
 */
export class PodDriver implements CniDriver {
  private readonly log = logger('poddriver');

  constructor(
    private readonly primary: PodNetworkDriver,
    private readonly secondary: SecondaryNetworkManager | undefined,
    private readonly core: CoreV1Api,
    /** A pod from the agent's informer cache, if it has it. */
    private readonly cachedPod: (namespace: string, name: string) => V1Pod | undefined,
  ) {}

  /** The pod the request names: the informer's copy when current, else the API's; undefined if it does not exist. */
  private async pod(req: CniRequest): Promise<V1Pod | undefined> {
    if (!req.pod) return undefined;
    const cached = this.cachedPod(req.pod.namespace, req.pod.name);
    if (cached && (!req.pod.uid || cached.metadata?.uid === req.pod.uid)) return cached;
    try {
      return await this.core.readNamespacedPod({ name: req.pod.name, namespace: req.pod.namespace });
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw new CniError(CniCode.TryAgainLater, `cannot read pod ${req.pod.namespace}/${req.pod.name}`, apiMessage(e));
    }
  }

  async add(req: CniRequest): Promise<CniResult> {
    // Only the pod network's own interface carries secondaries (a chained call for another ifname does not).
    // The pod is read first, so an unreadable API fails the ADD before anything is built.
    const pod = this.secondary && req.ifname === 'eth0' ? await this.pod(req) : undefined;
    const result = await this.primary.add(req);
    if (!this.secondary || !pod) return result;
    try {
      const netnsId = sandboxIdentity(req.netns);
      await this.secondary.attachPod({ pod, containerId: req.containerId, netns: req.netns, ...(netnsId ? { netnsId } : {}), cniPath: req.cniPath, primary: result });
    } catch (e) {
      await this.primary.del(req).catch((err: unknown) => this.log.error({ err: String(err) }, 'primary rollback failed'));
      throw e;
    }
    return result;
  }

  async del(req: CniRequest): Promise<void> {
    let secondaryError: unknown;
    if (this.secondary && req.ifname === 'eth0') {
      await this.secondary.detachPod(req.containerId).catch((e: unknown) => {
        secondaryError = e;
      });
    }
    await this.primary.del(req);
    if (secondaryError) throw secondaryError;
  }

  check(req: CniRequest): Promise<void> {
    return this.primary.check(req);
  }

  /**
   * CNI GC of the network the config names. Secondary interfaces belong to the network of their sandbox's
   * eth0 attachment (its ADD made them), or to the node's default network when that attachment is gone.
   */
  async gc(req: GcRequest): Promise<void> {
    const network = req.config.name;
    const valid = new Set(req.validAttachments.map((a) => a.containerID));
    const sandboxNetwork = new Map(this.primary.attachments().filter((i) => i.ifname === 'eth0').map((i) => [i.containerId, this.primary.networkOf(i)]));
    await this.primary.gc(req);
    await this.secondary?.gc((containerId) => !valid.has(containerId) && (sandboxNetwork.get(containerId) ?? this.primary.networkOf({})) === network);
  }

  status(_req: StatusRequest): Promise<void> {
    return this.primary.status();
  }
}

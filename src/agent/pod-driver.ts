import type { CoreV1Api, V1Pod } from '@kubernetes/client-node';
import { CniCode, CniError } from '../cni/errors.js';
import type { CniResult } from '../cni/types.js';
import { apiMessage, isNotFound } from '../k8s/api.js';
import { sandboxIdentity } from '../podif/sandbox.js';
import type { CniDriver, CniRequest, GcRequest, StatusRequest } from '../primary/cniserver/index.js';
import { logger } from '../util/log.js';
import type { NewSandbox, PodAttachmentHook, PodNetwork, PodSandbox, SandboxRef } from './feature.js';
import { attemptEach } from '../util/attempt.js';

/** The interface of a sandbox that the hooks act around: the pod network's own (a chained call for another one is not). */
const POD_IFNAME = 'eth0';

/** A sandbox as the records of the pod network and the hooks describe it; `pod` names it in logs. */
export interface RecordedSandbox extends SandboxRef {
  pod?: string;
}

export interface PodDriverOptions {
  network: PodNetwork;
  /** In feature order. */
  hooks: readonly PodAttachmentHook[];
  core: CoreV1Api;
  /** A pod from the agent's informer cache, if it has it. */
  cachedPod: (namespace: string, name: string) => V1Pod | undefined;
  /** CNI_PATH of sandboxes made by an earlier agent run (their ADD's is not recorded). */
  cniPath: string[];
}

/**
 * What a pod's CNI calls realize: the pod network's attachment first (eth0), then each hook in feature order
 * (the secondary networks the pod's annotation asks for, ...). A failure anywhere rolls back everything added
 * for the pod; DEL goes through the hooks in reverse order, then the pod network, attempting every step.
 */
export class PodDriver implements CniDriver {
  private readonly log = logger('poddriver');

  private readonly network: PodNetwork;
  private readonly hooks: readonly PodAttachmentHook[];

  constructor(private readonly o: PodDriverOptions) {
    this.network = o.network;
    this.hooks = o.hooks;
  }

  /** The pod the request names: the informer's copy when current, else the API's; undefined if it does not exist. */
  private async pod(req: CniRequest): Promise<V1Pod | undefined> {
    if (!req.pod) return undefined;
    const cached = this.o.cachedPod(req.pod.namespace, req.pod.name);
    if (cached && (!req.pod.uid || cached.metadata?.uid === req.pod.uid)) return cached;
    try {
      return await this.o.core.readNamespacedPod({ name: req.pod.name, namespace: req.pod.namespace });
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw new CniError(CniCode.TryAgainLater, `cannot read pod ${req.pod.namespace}/${req.pod.name}`, apiMessage(e));
    }
  }

  async add(req: CniRequest): Promise<CniResult> {
    const adding = this.hooks.filter((h) => h.afterAdd || h.alongsideAdd);
    // The pod is read first, so an unreadable API fails the ADD before anything is built.
    const pod = adding.length && req.ifname === POD_IFNAME ? await this.pod(req) : undefined;
    if (!pod) return this.network.add(req);
    const netnsId = sandboxIdentity(req.netns);
    const base: NewSandbox = { pod, containerId: req.containerId, netns: req.netns, ...(netnsId ? { netnsId } : {}), cniPath: req.cniPath };
    /** Hooks that made something, in the order they did. */
    const done: PodAttachmentHook[] = [];
    const alongside = async (): Promise<void> => {
      for (const hook of adding.filter((h) => h.alongsideAdd)) {
        await hook.alongsideAdd!(base);
        done.push(hook);
      }
    };
    const rollBack = async (primaryMade: boolean): Promise<void> => {
      for (const hook of [...new Set(done)].reverse()) await hook.beforeDel?.(req.containerId).catch((err: unknown) => this.log.error({ err: String(err) }, 'rollback failed'));
      if (primaryMade) await this.network.del(req).catch((err: unknown) => this.log.error({ err: String(err) }, 'primary rollback failed'));
    };
    // eth0 and the hooks' own interfaces side by side: each waits on processes, OVSDB and the API server.
    const [made, side] = await Promise.allSettled([this.network.add(req), alongside()]);
    if (made.status === 'rejected' || side.status === 'rejected') {
      await rollBack(made.status === 'fulfilled');
      throw made.status === 'rejected' ? made.reason : (side as PromiseRejectedResult).reason;
    }
    const sandbox: PodSandbox = { ...base, primary: made.value };
    try {
      for (const hook of adding.filter((h) => h.afterAdd)) {
        await hook.afterAdd!(sandbox);
        done.push(hook);
      }
    } catch (e) {
      await rollBack(true);
      throw e;
    }
    return made.value;
  }

  async del(req: CniRequest): Promise<void> {
    let hookError: unknown;
    if (req.ifname === POD_IFNAME) hookError = await this.hooksBeforeDel(req.containerId);
    await this.network.del(req);
    if (hookError) throw hookError;
  }

  /** Every hook's beforeDel, in reverse order, each attempted; the first failure is returned. */
  private hooksBeforeDel(containerId: string): Promise<unknown> {
    return attemptEach([...this.hooks].reverse(), async (hook) => hook.beforeDel?.(containerId));
  }

  check(req: CniRequest): Promise<void> {
    return this.network.check(req);
  }

  /**
   * CNI GC of the network the config names. What a hook made belongs to the network of its sandbox's eth0
   * attachment (its ADD made it), or to the node's default network when that attachment is gone.
   */
  async gc(req: GcRequest): Promise<void> {
    const network = req.config.name;
    const valid = new Set(req.validAttachments.map((a) => a.containerID));
    const sandboxNetwork = new Map(this.network.attachments().filter((a) => a.ifname === POD_IFNAME).map((a) => [a.containerId, a.network]));
    await this.network.gc(req);
    const collect = (containerId: string): boolean => !valid.has(containerId) && (sandboxNetwork.get(containerId) ?? this.network.defaultNetwork) === network;
    for (const hook of this.hooks) await hook.gc?.(collect);
  }

  status(req: StatusRequest): Promise<void> {
    return this.network.status(req);
  }

  /** Sandboxes from the records: the pod network's first (they record the namespace identity), then the hooks' others. */
  sandboxes(): Map<string, RecordedSandbox> {
    const out = new Map<string, RecordedSandbox>();
    for (const a of this.network.attachments()) {
      const known = out.get(a.containerId);
      if (!known || (!known.netnsId && a.netnsId)) {
        out.set(a.containerId, { containerId: a.containerId, netns: a.netns, ...(a.netnsId ? { netnsId: a.netnsId } : {}), podUid: a.podUid, pod: `${a.podNamespace}/${a.podName}` });
      }
    }
    for (const hook of this.hooks) for (const sb of hook.sandboxes?.() ?? []) if (!out.has(sb.containerId)) out.set(sb.containerId, sb);
    return out;
  }

  /** Everything of a sandbox whose DEL never came: the hooks' attachments, then the pod network's. Every step is attempted. */
  async releaseSandbox(containerId: string): Promise<void> {
    const hookError = await this.hooksBeforeDel(containerId);
    await this.network.releaseSandbox(containerId);
    if (hookError) throw hookError;
  }

  /** Chained mode: the pod network takes over running pods made before it came (a no-op otherwise). */
  async adoptRunning(pods: readonly V1Pod[], serialize: <T>(containerId: string, fn: () => Promise<T>) => Promise<T>): Promise<void> {
    await this.network.adopt?.(pods, serialize).catch((e: unknown) => this.log.error({ err: String(e) }, 'adopting running pods failed'));
  }

  /** The pod's running sandboxes on this node (its eth0 attachments), as the hooks see them. */
  runningSandboxes(pod: V1Pod): PodSandbox[] {
    return this.network
      .attachments()
      .filter((a) => a.podUid === pod.metadata?.uid && a.ifname === POD_IFNAME)
      .flatMap((a) => {
        const primary = this.network.resultOf(a.containerId, a.ifname, '1.0.0');
        return primary ? [{ pod, containerId: a.containerId, netns: a.netns, ...(a.netnsId ? { netnsId: a.netnsId } : {}), cniPath: this.o.cniPath, primary }] : [];
      });
  }
}

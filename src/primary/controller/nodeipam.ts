// Node pod-CIDR allocation for clusters whose kube-controller-manager does not allocate them
// (--allocate-node-cidrs=false): every Node gets the lowest free /N of the cluster CIDR in
// spec.podCIDR(s), which is immutable once set, so existing values are only ever observed.
import { CoreV1Api, type KubeConfig, type V1Node } from '@kubernetes/client-node';
import ipaddr from 'ipaddr.js';
import { isConflict, isNotFound, MERGE_PATCH } from '../../k8s/api.js';
import type { EventRecorder } from '../../k8s/events.js';
import { ResilientInformer } from '../../k8s/informer.js';
import { intToIpv4, ipv4ToInt, SubnetAllocator } from '../../ipam/subnets.js';
import { logger, type Logger } from '../../util/log.js';
import { WorkQueue } from './queue.js';

/** Event reasons on Nodes (the first two as kube-controller-manager's node IPAM uses them). */
export const NodeIpamReason = {
  /** The pool has no free subnet for a node. */
  CIDRNotAvailable: 'CIDRNotAvailable',
  /** Writing the node's podCIDR failed (retried). */
  CIDRAssignmentFailed: 'CIDRAssignmentFailed',
  /** A node's podCIDR is not (entirely) inside the cluster CIDR. */
  PodCIDROutsideClusterCIDR: 'PodCIDROutsideClusterCIDR',
  /** A node's podCIDR overlaps another node's. */
  PodCIDROverlap: 'PodCIDROverlap',
  /** A node's podCIDR is not an IPv4 CIDR. */
  InvalidPodCIDR: 'InvalidPodCIDR',
} as const;

export interface NodeIpamOptions {
  kubeConfig: KubeConfig;
  clusterCIDR: string;
  nodeCIDRMaskSize: number;
  events: EventRecorder;
  log?: Logger;
}

/** What a node holds: its podCIDR's range and the /N slots of the pool it takes up. */
interface Claim {
  uid: string;
  podCIDR: string;
  lo: number;
  hi: number;
  slots: number[];
}

type SyncResult = 'done' | 'conflict';

const nodeName = (n: V1Node): string => n.metadata?.name ?? '';
const podCidrOf = (n: V1Node): string | undefined => n.spec?.podCIDR || n.spec?.podCIDRs?.[0] || undefined;
const created = (n: V1Node): number => {
  const t = n.metadata?.creationTimestamp;
  return t ? new Date(t).getTime() : 0;
};

/**
 * The node IPAM controller. Single use: start() once (when this replica becomes leader), stop() when it stops
 * leading. Until the first list of Nodes is in, nothing is allocated: every existing podCIDR is occupied first.
 */
export class NodeIpamController {
  private readonly core: CoreV1Api;
  private readonly informer: ResilientInformer<V1Node>;
  private readonly subnets: SubnetAllocator;
  private readonly queue = new WorkQueue();
  private readonly log: Logger;
  private readonly clusterLo: number;
  private readonly clusterHi: number;
  private readonly slotSize: number;
  private readonly claims = new Map<string, Claim>();
  /** Slot index -> nodes whose podCIDR covers it (more than one only where podCIDRs overlap). */
  private readonly slotUsers = new Map<number, Set<string>>();
  /** Nodes waiting for a subnet to free up. */
  private readonly waiting = new Set<string>();
  /** Warnings already reported per node, so node updates do not repeat them. */
  private readonly warned = new Map<string, Set<string>>();
  private synced = false;
  private stopped = false;
  private syncedResolve: () => void = () => undefined;
  private readonly syncedPromise = new Promise<void>((r) => (this.syncedResolve = r));

  constructor(private readonly opts: NodeIpamOptions) {
    this.log = opts.log ?? logger('controller.nodeipam');
    this.core = opts.kubeConfig.makeApiClient(CoreV1Api);
    this.subnets = new SubnetAllocator(opts.clusterCIDR, opts.nodeCIDRMaskSize);
    const [net, len] = ipaddr.IPv4.parseCIDR(opts.clusterCIDR);
    this.clusterLo = ipv4ToInt(ipaddr.IPv4.networkAddressFromCIDR(`${net.toString()}/${len}`).toString());
    this.clusterHi = this.clusterLo + 2 ** (32 - len) - 1;
    this.slotSize = 2 ** (32 - opts.nodeCIDRMaskSize);
    this.informer = new ResilientInformer<V1Node>({
      kubeConfig: opts.kubeConfig,
      path: '/api/v1/nodes',
      name: 'nodes',
      list: async () => {
        const list = await this.core.listNode();
        // ListWatch adds the items right after this resolves, in the same microtask run.
        setImmediate(() => this.onListed());
        return list;
      },
    });
    const enqueue = (n: V1Node): void => this.queue.add(nodeName(n));
    this.informer.on('add', enqueue).on('update', enqueue).on('delete', enqueue);
  }

  /** Resolves once existing podCIDRs are occupied and allocation runs (or when stopped first). */
  async start(): Promise<void> {
    while (!this.stopped) {
      try {
        await this.informer.start();
        break;
      } catch (e) {
        // ResilientInformer retries watch failures itself, but not a start that throws.
        this.log.warn({ err: String(e) }, 'node informer did not start; retrying');
        await this.informer.stop();
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
    await this.syncedPromise;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.syncedResolve();
    await this.queue.stop();
    await this.informer.stop();
  }

  get isSynced(): boolean {
    return this.synced;
  }

  /** Node name -> podCIDR, for every node with one (diagnostics). */
  assignments(): Map<string, string> {
    return new Map([...this.claims].map(([n, c]) => [n, c.podCIDR]));
  }

  /** Subnets of the cluster CIDR not taken by any node. */
  get free(): number {
    return this.subnets.free;
  }

  private onListed(): void {
    if (this.synced || this.stopped) return;
    // Older nodes first: of two overlapping podCIDRs, the newer one is reported.
    const nodes = [...this.informer.list()].sort((a, b) => created(a) - created(b) || nodeName(a).localeCompare(nodeName(b)));
    for (const n of nodes) {
      const cidr = podCidrOf(n);
      if (cidr) this.observe(n, cidr);
    }
    this.synced = true;
    this.log.info({ nodes: nodes.length, occupied: this.claims.size, free: this.subnets.free, clusterCIDR: this.opts.clusterCIDR }, 'node IPAM synced');
    this.queue.start(
      (name) => this.sync(name),
      (name, err) => this.log.warn({ node: name, err: String(err) }, 'node sync failed; retrying'),
    );
    this.syncedResolve();
  }

  private async sync(name: string): Promise<void> {
    let node = this.informer.get(name);
    for (let attempt = 0; ; attempt++) {
      if (this.stopped) return;
      if (!node) {
        this.forget(name);
        this.queue.forget(name);
        return;
      }
      if ((await this.syncNode(node)) === 'done') {
        this.queue.forget(name);
        return;
      }
      // The cache was behind the server: decide on the current object.
      if (attempt >= 2) throw new Error(`node ${name} changed during every attempt`);
      node = await this.readNode(name);
    }
  }

  private async readNode(name: string): Promise<V1Node | undefined> {
    try {
      return await this.core.readNode({ name });
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw e;
    }
  }

  private async syncNode(node: V1Node): Promise<SyncResult> {
    const name = nodeName(node);
    const uid = node.metadata?.uid ?? '';
    const claim = this.claims.get(name);
    // A node deleted and created again under the same name starts afresh.
    if (claim && claim.uid !== uid) this.release(name);
    const podCIDR = podCidrOf(node);
    if (podCIDR) {
      this.observe(node, podCIDR);
      this.waiting.delete(name);
      return 'done';
    }
    // Assigned by us already; the cache has not seen the update yet (podCIDR cannot be unset).
    if (this.claims.has(name)) return 'done';
    if (this.subnets.free === 0) {
      if (!this.waiting.has(name)) this.log.warn({ node: name, clusterCIDR: this.opts.clusterCIDR }, 'no free pod CIDR for node');
      this.waiting.add(name);
      this.warn(node, NodeIpamReason.CIDRNotAvailable, `no free /${this.opts.nodeCIDRMaskSize} left in cluster CIDR ${this.opts.clusterCIDR}; the node gets one when another node is deleted`);
      return 'done';
    }
    const cidr = this.subnets.allocate();
    const lo = ipv4ToInt(cidr.split('/')[0]!);
    const slot = (lo - this.clusterLo) / this.slotSize;
    this.claims.set(name, { uid, podCIDR: cidr, lo, hi: lo + this.slotSize - 1, slots: [slot] });
    this.slotUsers.set(slot, new Set([name]));
    try {
      // The resourceVersion makes the patch conditional: it must not land on a node that got a podCIDR meanwhile.
      await this.core.patchNode({ name, body: { metadata: { resourceVersion: node.metadata?.resourceVersion }, spec: { podCIDR: cidr, podCIDRs: [cidr] } } }, MERGE_PATCH);
    } catch (e) {
      this.release(name);
      if (isConflict(e)) return 'conflict';
      if (isNotFound(e)) return 'done';
      this.warn(node, NodeIpamReason.CIDRAssignmentFailed, `could not assign pod CIDR ${cidr}: ${e instanceof Error ? e.message : String(e)}`);
      throw e;
    }
    this.waiting.delete(name);
    // A later problem is news again.
    this.warned.delete(name);
    this.log.info({ node: name, podCIDR: cidr, free: this.subnets.free }, 'assigned pod CIDR');
    return 'done';
  }

  /** Takes note of a podCIDR a node already has: occupies its slots, reports what is wrong with it. */
  private observe(node: V1Node, podCIDR: string): void {
    const name = nodeName(node);
    const uid = node.metadata?.uid ?? '';
    const prior = this.claims.get(name);
    if (prior && prior.uid === uid && prior.podCIDR === podCIDR) return;
    if (prior) this.release(name);
    let lo: number;
    let len: number;
    try {
      const [addr, l] = ipaddr.IPv4.parseCIDR(podCIDR);
      len = l;
      lo = ipv4ToInt(ipaddr.IPv4.networkAddressFromCIDR(`${addr.toString()}/${l}`).toString());
    } catch {
      this.warn(node, NodeIpamReason.InvalidPodCIDR, `podCIDR ${podCIDR} is not an IPv4 CIDR; Seine leaves it as it is`);
      return;
    }
    const hi = lo + 2 ** (32 - len) - 1;
    const others = [...this.claims].filter(([, c]) => c.lo <= hi && lo <= c.hi).map(([n, c]) => `${n} (${c.podCIDR})`);
    if (others.length) this.warn(node, NodeIpamReason.PodCIDROverlap, `podCIDR ${podCIDR} overlaps the podCIDR of ${others.join(', ')}; Seine leaves it as it is`);
    if (lo < this.clusterLo || hi > this.clusterHi) {
      this.warn(node, NodeIpamReason.PodCIDROutsideClusterCIDR, `podCIDR ${podCIDR} is not inside the cluster CIDR ${this.opts.clusterCIDR}; Seine leaves it as it is`);
    }
    // Whatever part lies in the pool is taken, whichever prefix length the node has.
    const slots: number[] = [];
    const from = Math.max(lo, this.clusterLo);
    const to = Math.min(hi, this.clusterHi);
    if (from <= to) {
      for (let s = Math.floor((from - this.clusterLo) / this.slotSize); s <= Math.floor((to - this.clusterLo) / this.slotSize); s++) {
        slots.push(s);
        let users = this.slotUsers.get(s);
        if (!users) {
          users = new Set();
          this.slotUsers.set(s, users);
          this.subnets.occupy(this.slotCidr(s));
        }
        users.add(name);
      }
    }
    this.claims.set(name, { uid, podCIDR, lo, hi, slots });
  }

  private slotCidr(slot: number): string {
    return `${intToIpv4(this.clusterLo + slot * this.slotSize)}/${this.opts.nodeCIDRMaskSize}`;
  }

  /** Drops a node's claim; slots nobody else uses go back to the pool and waiting nodes try again. */
  private release(name: string): void {
    const claim = this.claims.get(name);
    if (!claim) return;
    this.claims.delete(name);
    let freed = 0;
    for (const s of claim.slots) {
      const users = this.slotUsers.get(s);
      users?.delete(name);
      if (users && users.size === 0) {
        this.slotUsers.delete(s);
        this.subnets.release(this.slotCidr(s));
        freed++;
      }
    }
    if (freed) for (const w of this.waiting) if (w !== name) this.queue.add(w);
  }

  /** The node is gone. */
  private forget(name: string): void {
    if (this.claims.has(name)) this.log.info({ node: name, podCIDR: this.claims.get(name)!.podCIDR }, 'node deleted; released its pod CIDR');
    this.waiting.delete(name);
    this.warned.delete(name);
    this.release(name);
  }

  /** Records a Warning Event on the node, once per distinct problem. */
  private warn(node: V1Node, reason: string, message: string): void {
    const name = nodeName(node);
    let seen = this.warned.get(name);
    if (!seen) this.warned.set(name, (seen = new Set()));
    const key = `${reason}|${message}`;
    if (seen.has(key)) return;
    seen.add(key);
    if (reason !== NodeIpamReason.CIDRNotAvailable) this.log.warn({ node: name, reason }, message);
    void this.opts.events.record({ kind: 'Node', apiVersion: 'v1', name, uid: node.metadata?.uid }, 'Warning', reason, message);
  }
}

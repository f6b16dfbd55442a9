// Cluster-wide IPAM over IPPool objects: every allocation is recorded in the pool's status, written
// through the status subresource with the resourceVersion read as precondition. A 409 Conflict means
// another agent wrote first: re-read, re-apply, retry after a jittered backoff. So no address is ever
// given twice, whatever the number of agents.
//
// Within one allocator, operations on a pool are queued and committed in batches (group commit): the
// requests that arrive while a write is in flight go out together in the next write, so concurrent ADDs
// on one node cost one write, not one each (and do not conflict with each other).
import { CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import { apiMessage, apiStatus, isConflict, isNotFound } from '../../k8s/api.js';
import { logger } from '../../util/log.js';
import { IPPoolError } from './errors.js';
import { parseIpv4, PoolLayout, PoolSpecError } from './ranges.js';
import { IPPOOL_GROUP, IPPOOL_PLURAL, IPPOOL_VERSION, type IPPool, type IPPoolStatus, type PoolOwner, type StoredAllocation } from './types.js';

/** An allocation as callers use it: the address with what a CNI result needs. */
export interface PoolAllocation {
  pool: string;
  /** e.g. 10.10.0.2 */
  ip: string;
  /** With the subnet prefix, as in a CNI result: 10.10.0.2/24. */
  address: string;
  gateway: string;
  prefixLength: number;
  /** The pool's subnetInfo.vlan, when set. */
  vlan?: number;
  owner: PoolOwner;
  allocatedAt: string;
  requested: boolean;
}

export interface PoolUsage {
  pool: string;
  /** Addresses the pool can hand out. */
  total: number;
  /** Allocations recorded (including any left outside the ranges by a spec change). */
  used: number;
  /** Addresses that can still be handed out. */
  free: number;
}

/** The key of an attachment: what CNI DEL names. */
export type OwnerKey = Pick<PoolOwner, 'containerID' | 'interface'>;

/** What is alive, for gc(): an allocation survives when its container or its pod is listed. */
export interface LiveOwners {
  /** Existing pods; a recorded pod UID must match when both are known (a pod recreated under the same name is another pod). */
  pods?: Iterable<{ namespace: string; name: string; uid?: string }>;
  /** Existing sandboxes (e.g. CNI GC's valid attachments on one node; combine with `node`). */
  containerIDs?: Iterable<string>;
}

export interface GcOptions {
  /** Only these pools (default: all). */
  pools?: readonly string[];
  /** Only allocations recorded for this node (for an agent that knows its own containers only). */
  node?: string;
  /**
   * Allocations younger than this are kept (default 60 s): a pod created after the caller listed the
   * live pods, and addressed since, must not be collected.
   */
  minAgeMs?: number;
}

export interface IPPoolAllocatorOptions {
  kubeConfig: KubeConfig;
  /** Reads and writes per batch before giving up with code 11 (default 30). */
  maxAttempts?: number;
  /** First backoff after a conflict (default 10 ms); doubles per attempt up to backoffMaxMs (default 1 s), jittered 50..150 %. */
  backoffBaseMs?: number;
  backoffMaxMs?: number;
  /** Most operations in one write (default 256). */
  maxBatch?: number;
  now?: () => Date;
}

/** Counters for benchmarks and metrics. */
export interface AllocatorStats {
  reads: number;
  writes: number;
  conflicts: number;
  /** Writes that failed otherwise (not found, refused, unreachable). */
  failedWrites: number;
  /** Operations committed (several per write when batched). */
  operations: number;
}

interface Op {
  run: (s: PoolState) => unknown;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}

interface Queue {
  pending: Op[];
  running: boolean;
  /** The object as last written by us: the first try of a batch starts from it instead of reading. */
  last?: IPPool;
}

const ownerKey = (containerID: string, iface: string): string => `${containerID}\0${iface}`;

function checkOwner(o: PoolOwner): void {
  const bad: string[] = (['podNamespace', 'podName', 'containerID', 'interface'] as const).filter((k) => typeof o?.[k] !== 'string' || o[k] === '');
  for (const k of ['podUID', 'node'] as const) if (o?.[k] !== undefined && typeof o[k] !== 'string') bad.push(k);
  if (bad.length) throw new RangeError(`invalid IP pool owner: ${bad.join(', ')} missing or not a string`);
}

function ownerFields(o: PoolOwner): PoolOwner {
  return {
    podNamespace: o.podNamespace,
    podName: o.podName,
    ...(o.podUID !== undefined ? { podUID: o.podUID } : {}),
    containerID: o.containerID,
    interface: o.interface,
    ...(o.node !== undefined ? { node: o.node } : {}),
  };
}

function describeOwner(o: PoolOwner): string {
  return `pod ${o.podNamespace}/${o.podName} (container ${o.containerID}, interface ${o.interface}${o.node ? `, node ${o.node}` : ''})`;
}

/** A pool's allocations while a batch is applied to them; written back when `dirty`. */
class PoolState {
  dirty = false;
  private readonly byIp = new Map<number, StoredAllocation>();
  private readonly byOwner = new Map<string, StoredAllocation>();
  /** Entries that cannot be indexed (unparseable, duplicate): kept as they are, never handed out again. */
  private readonly odd: StoredAllocation[] = [];

  constructor(
    readonly pool: string,
    readonly layout: PoolLayout,
    status: IPPoolStatus | undefined,
    private readonly now: () => Date,
  ) {
    for (const a of status?.allocations ?? []) {
      const n = parseIpv4(a?.ip);
      if (n === undefined || this.byIp.has(n) || !a.owner) {
        this.odd.push(a);
        continue;
      }
      this.byIp.set(n, a);
      this.byOwner.set(ownerKey(a.owner.containerID, a.owner.interface), a);
    }
  }

  get size(): number {
    return this.byIp.size + this.odd.length;
  }

  taken(): ReadonlySet<number> {
    return new Set(this.byIp.keys());
  }

  entries(): StoredAllocation[] {
    return [...this.byIp.values(), ...this.odd];
  }

  view(a: StoredAllocation): PoolAllocation {
    return {
      pool: this.pool,
      ip: a.ip,
      address: `${a.ip}/${this.layout.prefixLength}`,
      gateway: this.layout.gateway,
      prefixLength: this.layout.prefixLength,
      ...(this.layout.vlan !== undefined ? { vlan: this.layout.vlan } : {}),
      owner: ownerFields(a.owner),
      allocatedAt: a.allocatedAt,
      requested: a.requested === true,
    };
  }

  heldBy(o: OwnerKey): StoredAllocation | undefined {
    return this.byOwner.get(ownerKey(o.containerID, o.interface));
  }

  private add(a: StoredAllocation): PoolAllocation {
    this.byIp.set(parseIpv4(a.ip)!, a);
    this.byOwner.set(ownerKey(a.owner.containerID, a.owner.interface), a);
    this.dirty = true;
    return this.view(a);
  }

  /** The address the owner holds, else the lowest free one. */
  allocateLowest(owner: PoolOwner): PoolAllocation {
    const held = this.heldBy(owner);
    if (held) return this.view(held);
    const ip = this.layout.lowestFree(this.taken());
    if (ip === undefined) {
      throw new IPPoolError('exhausted', `no free IP address in IP pool ${this.pool}`, `all ${this.layout.total} addresses of ${this.layout.describeRanges()} are allocated`, { pool: this.pool });
    }
    return this.add({ ip, owner: ownerFields(owner), allocatedAt: this.now().toISOString() });
  }

  /** A requested address, if the pool may hand it out and nobody else holds it. */
  reserve(ip: string, owner: PoolOwner): PoolAllocation {
    const fail = (problem: ConstructorParameters<typeof IPPoolError>[0], why: string): never => {
      throw new IPPoolError(problem, `requested IP address ${ip} is not available in IP pool ${this.pool}`, why, { pool: this.pool, ip });
    };
    switch (this.layout.classify(ip)) {
      case 'invalid':
        return fail('invalid-ip', 'not an IPv4 address');
      case 'outside':
        return fail('outside', `outside the pool's ranges ${this.layout.describeRanges()}`);
      case 'reserved':
        return fail('reserved', `the gateway, network or broadcast address of ${this.layout.subnet}`);
      case 'excluded':
        return fail('excluded', "listed in the pool's exclude");
      case 'ok':
        break;
    }
    const held = this.heldBy(owner);
    if (held?.ip === ip) return this.view(held);
    if (held) return fail('owner-has-other', `${describeOwner(owner)} already holds ${held.ip}`);
    const other = this.byIp.get(parseIpv4(ip)!);
    if (other) return fail('in-use', `held by ${describeOwner(other.owner)}`);
    return this.add({ ip, owner: ownerFields(owner), allocatedAt: this.now().toISOString(), requested: true });
  }

  /** Removes every allocation `match` selects; returns them. */
  removeWhere(match: (a: StoredAllocation) => boolean): PoolAllocation[] {
    const out: PoolAllocation[] = [];
    for (const [n, a] of this.byIp) {
      if (!match(a)) continue;
      this.byIp.delete(n);
      this.byOwner.delete(ownerKey(a.owner.containerID, a.owner.interface));
      out.push(this.view(a));
    }
    this.dirty ||= out.length > 0;
    return out;
  }

  toStatus(): IPPoolStatus {
    const allocations = [...this.byIp.entries()].sort((a, b) => a[0] - b[0]).map(([, a]) => a);
    return { allocations: [...allocations, ...this.odd], usage: { total: this.layout.total, used: this.size } };
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * IPAM for IPPools, one instance per process (agent). All methods are safe to call concurrently, from
 * any number of processes.
 */
export class IPPoolAllocator {
  private readonly api: CustomObjectsApi;
  private readonly queues = new Map<string, Queue>();
  private readonly now: () => Date;
  private readonly maxAttempts: number;
  private readonly baseMs: number;
  private readonly maxMs: number;
  private readonly maxBatch: number;
  private readonly log = logger('ippool');
  readonly stats: AllocatorStats = { reads: 0, writes: 0, conflicts: 0, failedWrites: 0, operations: 0 };

  constructor(opts: IPPoolAllocatorOptions) {
    this.api = opts.kubeConfig.makeApiClient(CustomObjectsApi);
    this.now = opts.now ?? (() => new Date());
    this.maxAttempts = opts.maxAttempts ?? 30;
    this.baseMs = opts.backoffBaseMs ?? 10;
    this.maxMs = opts.backoffMaxMs ?? 1000;
    this.maxBatch = opts.maxBatch ?? 256;
  }

  /**
   * An address for `owner` from the first of `pools` that has one (pools are tried in order). Idempotent:
   * an owner that already holds an address in one of the pools gets it back (a retried ADD). With `ip`
   * (a plain address or a CIDR from the networks annotation's "ips"), that address is reserved in the
   * pool whose ranges contain it, or the call fails saying why (outside, in use, excluded, ...).
   * Lowest free address first, skipping excluded addresses, the gateway and the subnet's network and
   * broadcast addresses. IPPoolError (code 11) when every pool is full.
   */
  async allocate(pools: readonly string[], owner: PoolOwner, opts: { ip?: string } = {}): Promise<PoolAllocation> {
    checkOwner(owner);
    if (pools.length === 0) throw new IPPoolError('not-found', 'no IP pool to allocate from');
    if (opts.ip !== undefined) return this.allocateRequested(pools, owner, opts.ip);
    if (pools.length > 1) {
      // The owner may hold an address of a later pool already (an earlier one was full at the first ADD).
      const held = await this.findHeld(pools, owner);
      if (held) return held;
    }
    for (const pool of pools) {
      try {
        return await this.submit(pool, (s) => s.allocateLowest(owner));
      } catch (e) {
        if (!(e instanceof IPPoolError && e.problem === 'exhausted')) throw e;
        if (pools.length === 1) throw e;
      }
    }
    throw new IPPoolError('exhausted', `no free IP address in IP pools ${pools.join(', ')}`, 'every pool is fully allocated');
  }

  /** Frees the address(es) of one attachment (CNI DEL); idempotent. Looks in `pools`, or in all pools. */
  async release(owner: OwnerKey, pools?: readonly string[]): Promise<PoolAllocation[]> {
    return this.removeEverywhere(pools, (a) => a.owner.containerID === owner.containerID && a.owner.interface === owner.interface);
  }

  /** Frees every address of a pod (by UID) or of a sandbox (by container id), e.g. when the pod is deleted. */
  async releaseAllOf(which: { podUID?: string; containerID?: string }, pools?: readonly string[]): Promise<PoolAllocation[]> {
    const { podUID, containerID } = which;
    if (!podUID && !containerID) throw new RangeError('releaseAllOf needs a podUID or a containerID');
    return this.removeEverywhere(pools, (a) => (podUID !== undefined && a.owner.podUID === podUID) || (containerID !== undefined && a.owner.containerID === containerID));
  }

  /**
   * Frees the allocations recorded for `node` whose attachment is not in `keep`: what an agent that knows
   * every attachment of its node (and allocates nothing meanwhile) finds unaccounted for. Returns them.
   */
  async releaseUnrecorded(node: string, keep: Iterable<OwnerKey>): Promise<PoolAllocation[]> {
    const kept = new Set<string>();
    for (const k of keep) kept.add(`${k.containerID}\0${k.interface}`);
    return this.removeEverywhere(undefined, (a) => a.owner.node === node && !kept.has(`${a.owner.containerID}\0${a.owner.interface}`));
  }

  /**
   * Removes allocations whose owner is gone: neither its container nor its pod is in `live`. Returns what
   * it removed. At least one of `live.pods` and `live.containerIDs` must be given (an empty list is fine):
   * an empty `live` would otherwise collect everything by mistake.
   */
  async gc(live: LiveOwners, opts: GcOptions = {}): Promise<PoolAllocation[]> {
    if (live.pods === undefined && live.containerIDs === undefined) throw new RangeError('gc needs the live pods or the live containers');
    const containers = new Set(live.containerIDs ?? []);
    const pods = new Map<string, string | undefined>();
    for (const p of live.pods ?? []) pods.set(`${p.namespace}/${p.name}`, p.uid);
    const minAge = opts.minAgeMs ?? 60_000;
    const cutoff = this.now().getTime() - minAge;
    const garbage = (a: StoredAllocation): boolean => {
      if (opts.node !== undefined && a.owner.node !== opts.node) return false;
      const at = Date.parse(a.allocatedAt);
      if (!Number.isNaN(at) && at > cutoff) return false;
      if (containers.has(a.owner.containerID)) return false;
      const key = `${a.owner.podNamespace}/${a.owner.podName}`;
      if (!pods.has(key)) return true;
      const uid = pods.get(key);
      return uid !== undefined && a.owner.podUID !== undefined && uid !== a.owner.podUID;
    };
    const freed = await this.removeEverywhere(opts.pools, garbage);
    if (freed.length) this.log.info({ freed: freed.map((a) => `${a.pool}:${a.ip}`) }, 'collected IP pool allocations of vanished pods');
    return freed;
  }

  /** Current usage of a pool, read from the API server. */
  async usage(pool: string): Promise<PoolUsage> {
    const s = await this.read(pool);
    return { pool, total: s.layout.total, used: s.size, free: s.layout.total - s.layout.countAllowed(s.taken()) };
  }

  /** A pool's allocations, lowest address first. */
  async allocations(pool: string): Promise<PoolAllocation[]> {
    const s = await this.read(pool);
    return s.toStatus().allocations!.filter((a) => parseIpv4(a.ip) !== undefined && a.owner).map((a) => s.view(a));
  }

  private async allocateRequested(pools: readonly string[], owner: PoolOwner, requested: string): Promise<PoolAllocation> {
    const slash = requested.indexOf('/');
    const ip = slash < 0 ? requested : requested.slice(0, slash);
    const prefix = slash < 0 ? undefined : requested.slice(slash + 1);
    if (parseIpv4(ip) === undefined || (prefix !== undefined && !/^\d{1,2}$/.test(prefix))) {
      throw new IPPoolError('invalid-ip', `requested IP address ${JSON.stringify(requested)} is not valid`, 'must be an IPv4 address or CIDR', { ip: requested });
    }
    const outside: string[] = [];
    for (const pool of pools) {
      const s = await this.read(pool);
      if (s.layout.classify(ip) === 'outside') {
        outside.push(`${pool} (${s.layout.describeRanges()})`);
        continue;
      }
      if (prefix !== undefined && Number(prefix) !== s.layout.prefixLength) {
        throw new IPPoolError('prefix-mismatch', `requested IP address ${requested} does not match IP pool ${pool}`, `the pool's subnet is ${s.layout.subnet}`, { pool, ip });
      }
      return this.submit(pool, (st) => st.reserve(ip, owner));
    }
    throw new IPPoolError('outside', `requested IP address ${ip} is not in IP pool${pools.length > 1 ? 's' : ''} ${pools.join(', ')}`, `ranges: ${outside.join('; ')}`, { ip });
  }

  private async findHeld(pools: readonly string[], owner: OwnerKey): Promise<PoolAllocation | undefined> {
    const states = await Promise.all(pools.map((p) => this.read(p)));
    for (const s of states) {
      const held = s.heldBy(owner);
      if (held) return s.view(held);
    }
    return undefined;
  }

  private async removeEverywhere(pools: readonly string[] | undefined, match: (a: StoredAllocation) => boolean): Promise<PoolAllocation[]> {
    let names: readonly string[];
    if (pools) names = pools;
    else {
      // Only pools with something to remove get a write.
      const all = await this.listPools();
      names = all.filter((p) => (p.status?.allocations ?? []).some((a) => a?.owner && match(a))).map((p) => p.metadata.name);
    }
    const results = await Promise.all(
      names.map((pool) =>
        this.submit(pool, (s) => s.removeWhere(match)).catch((e: unknown) => {
          // A pool deleted meanwhile holds nothing any more.
          if (e instanceof IPPoolError && e.problem === 'not-found') return [] as PoolAllocation[];
          throw e;
        }),
      ),
    );
    return results.flat();
  }

  private async listPools(): Promise<IPPool[]> {
    try {
      this.stats.reads++;
      const list = (await this.api.listClusterCustomObject({ group: IPPOOL_GROUP, version: IPPOOL_VERSION, plural: IPPOOL_PLURAL })) as { items?: IPPool[] };
      return list.items ?? [];
    } catch (e) {
      throw new IPPoolError('unavailable', 'cannot list IP pools', apiMessage(e), { cause: e });
    }
  }

  private async get(pool: string): Promise<IPPool> {
    this.stats.reads++;
    try {
      return (await this.api.getClusterCustomObject({ group: IPPOOL_GROUP, version: IPPOOL_VERSION, plural: IPPOOL_PLURAL, name: pool })) as IPPool;
    } catch (e) {
      if (isNotFound(e)) throw new IPPoolError('not-found', `IP pool ${pool} does not exist`, '', { pool, cause: e });
      throw e;
    }
  }

  private stateOf(obj: IPPool): PoolState {
    const name = obj.metadata.name;
    let layout: PoolLayout;
    try {
      layout = PoolLayout.parse(obj.spec);
    } catch (e) {
      if (e instanceof PoolSpecError) throw new IPPoolError('invalid-pool', `IP pool ${name} is invalid`, e.message, { pool: name });
      throw e;
    }
    return new PoolState(name, layout, obj.status, this.now);
  }

  private async read(pool: string): Promise<PoolState> {
    try {
      return this.stateOf(await this.get(pool));
    } catch (e) {
      if (e instanceof IPPoolError) throw e;
      throw new IPPoolError('unavailable', `cannot read IP pool ${pool}`, apiMessage(e), { pool, cause: e });
    }
  }

  private submit<T>(pool: string, run: (s: PoolState) => T): Promise<T> {
    let q = this.queues.get(pool);
    if (!q) {
      q = { pending: [], running: false };
      this.queues.set(pool, q);
    }
    const queue = q;
    return new Promise<T>((resolve, reject) => {
      queue.pending.push({ run, resolve: resolve as (v: unknown) => void, reject });
      if (!queue.running) void this.drain(pool, queue);
    });
  }

  private async drain(pool: string, q: Queue): Promise<void> {
    q.running = true;
    try {
      while (q.pending.length) await this.commit(pool, q, q.pending.splice(0, this.maxBatch));
    } finally {
      q.running = false;
      if (!q.pending.length && !q.last) this.queues.delete(pool);
    }
  }

  private backoff(attempt: number): Promise<void> {
    const d = Math.min(this.maxMs, this.baseMs * 2 ** attempt);
    return sleep(d * (0.5 + Math.random()));
  }

  /** Applies a batch to the current pool state and writes it, until a write goes through. */
  private async commit(pool: string, q: Queue, batch: Op[]): Promise<void> {
    const failAll = (e: unknown): void => batch.forEach((op) => op.reject(e));
    let lastError: unknown;
    let cached = q.last !== undefined;
    for (let attempt = 0; attempt < this.maxAttempts; attempt++) {
      let obj: IPPool;
      let state: PoolState;
      try {
        obj = cached && q.last ? q.last : await this.get(pool);
        state = this.stateOf(obj);
      } catch (e) {
        q.last = undefined;
        if (e instanceof IPPoolError) return failAll(e);
        lastError = e;
        await this.backoff(attempt);
        continue;
      }
      const outcomes = batch.map((op) => {
        try {
          return { ok: true as const, value: op.run(state) };
        } catch (e) {
          return { ok: false as const, error: e };
        }
      });
      const settle = (): void => {
        this.stats.operations += batch.length;
        outcomes.forEach((o, i) => (o.ok ? batch[i]!.resolve(o.value) : batch[i]!.reject(o.error)));
      };
      if (!state.dirty) {
        // An answer that writes nothing must come from a fresh read: the cached object may be stale.
        if (cached) {
          cached = false;
          continue;
        }
        return settle();
      }
      try {
        this.stats.writes++;
        q.last = (await this.api.replaceClusterCustomObjectStatus({
          group: IPPOOL_GROUP,
          version: IPPOOL_VERSION,
          plural: IPPOOL_PLURAL,
          name: pool,
          body: { ...obj, status: state.toStatus() },
        })) as IPPool;
        return settle();
      } catch (e) {
        q.last = undefined;
        cached = false;
        if (isConflict(e)) {
          this.stats.conflicts++;
          await this.backoff(attempt);
          continue;
        }
        this.stats.failedWrites++;
        if (isNotFound(e)) return failAll(new IPPoolError('not-found', `IP pool ${pool} does not exist`, '', { pool, cause: e }));
        const status = apiStatus(e);
        // Other client errors (a status the schema refuses, forbidden) do not go away by retrying.
        if (status !== undefined && status >= 400 && status < 500 && status !== 429) {
          return failAll(new IPPoolError('unavailable', `cannot update IP pool ${pool}`, apiMessage(e), { pool, cause: e }));
        }
        lastError = e;
        await this.backoff(attempt);
      }
    }
    this.log.warn({ pool, attempts: this.maxAttempts, err: lastError === undefined ? undefined : apiMessage(lastError) }, 'giving up on IP pool update');
    failAll(
      new IPPoolError('unavailable', `cannot update IP pool ${pool}`, lastError === undefined ? `still conflicting after ${this.maxAttempts} attempts` : apiMessage(lastError), {
        pool,
        cause: lastError,
      }),
    );
  }
}

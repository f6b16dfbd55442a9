// Cluster-wide IPAM over IPPool objects: every allocation is recorded in the pool's status, the single
// record. Each node allocates from blocks of the pool claimed for it (status.blocks), and writes a batch
// as a JSON Patch that tests only what the batch relied on (state.ts): the version of the blocks it
// allocated in, the pool's shared version when it claimed a block or went outside every block, the
// entries it removed. Agents of different nodes so write side by side without refusing each other; a
// refused test means another writer got there first: re-read, re-apply, retry after a jittered backoff.
// So no address is ever given twice, whatever the number of agents.
//
// Within one allocator, operations on a pool are queued and committed in batches (group commit): the
// requests that arrive while a write is in flight go out together in the next write, so concurrent ADDs
// on one node cost one write, not one each. status.usage follows in a write of its own, off the ADD path.
import { CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import { apiMessage, apiStatus, isConflict, isNotFound, MERGE_PATCH } from '../../k8s/api.js';
import { logger } from '../../util/log.js';
import { IPPoolError } from './errors.js';
import { parseIpv4, PoolLayout, PoolSpecError } from './ranges.js';
import { PoolState, type OwnerKey, type PoolAllocation } from './state.js';
import { IPPOOL_GROUP, IPPOOL_PLURAL, IPPOOL_VERSION, type IPPool, type PoolOwner, type StoredAllocation } from './types.js';

export type { OwnerKey, PoolAllocation } from './state.js';

export interface PoolUsage {
  pool: string;
  /** Addresses the pool can hand out. */
  total: number;
  /** Allocations recorded (including any left outside the ranges by a spec change). */
  used: number;
  /** Addresses that can still be handed out. */
  free: number;
}

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
  /** Writes refused because another writer came first (409 Conflict, or a failed JSON Patch test). */
  conflicts: number;
  /** Writes that failed otherwise (not found, refused, unreachable). */
  failedWrites: number;
  /** Operations committed (several per write when batched). */
  operations: number;
  /** Writes of status.usage alone, after allocation writes (off the ADD path). */
  usageWrites: number;
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

function checkOwner(o: PoolOwner): void {
  const bad: string[] = (['podNamespace', 'podName', 'containerID', 'interface'] as const).filter((k) => typeof o?.[k] !== 'string' || o[k] === '');
  for (const k of ['podUID', 'node'] as const) if (o?.[k] !== undefined && typeof o[k] !== 'string') bad.push(k);
  if (bad.length) throw new RangeError(`invalid IP pool owner: ${bad.join(', ')} missing or not a string`);
}

/** The server refused a JSON Patch because one of its tests failed (or a tested path is gone): another writer came first. */
function isRefusedTest(e: unknown): boolean {
  return apiStatus(e) === 422 && /test failed|error in test|missing path|missing value|invalid index|out of bounds/i.test(apiMessage(e));
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
  readonly stats: AllocatorStats = { reads: 0, writes: 0, conflicts: 0, failedWrites: 0, operations: 0, usageWrites: 0 };
  /** Per pool, the usage write in flight and the newest object written since it started. */
  private readonly usageSyncs = new Map<string, { latest: IPPool; total: number }>();
  private readonly pendingSyncs = new Set<Promise<void>>();

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
   * Lowest free address of the owner's node's blocks first (see PoolState.allocateLowest), skipping excluded
   * addresses, the gateway and the subnet's network and broadcast addresses. IPPoolError (code 11) when
   * every pool is full.
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

  /** Resolves once the usage writes started so far are done (tests, orderly shutdown). */
  async settled(): Promise<void> {
    while (this.pendingSyncs.size) await Promise.allSettled([...this.pendingSyncs]);
  }

  /**
   * Brings status.usage in line with the allocations of `obj`, just written, with its resourceVersion as
   * precondition. Refused means someone wrote after it: that writer brings usage in line in turn (or wrote
   * the whole status, usage included), so the last write is always followed by a right usage.
   */
  private syncUsage(pool: string, q: Queue, obj: IPPool, total: number): void {
    const running = this.usageSyncs.get(pool);
    if (running) {
      running.latest = obj;
      running.total = total;
      return;
    }
    const sync = { latest: obj, total };
    const wanted = (o: IPPool): { total: number; used: number } | undefined => {
      const usage = { total: sync.total, used: o.status?.allocations?.length ?? 0 };
      return o.status?.usage?.total === usage.total && o.status.usage.used === usage.used ? undefined : usage;
    };
    if (!wanted(obj)) return;
    this.usageSyncs.set(pool, sync);
    const done = (async () => {
      for (;;) {
        const base = sync.latest;
        const usage = wanted(base);
        if (!usage) break;
        try {
          this.stats.usageWrites++;
          const written = (await this.api.patchClusterCustomObjectStatus(
            { group: IPPOOL_GROUP, version: IPPOOL_VERSION, plural: IPPOOL_PLURAL, name: pool, body: { metadata: { resourceVersion: base.metadata.resourceVersion }, status: { usage } } },
            MERGE_PATCH,
          )) as IPPool;
          if (q.last === base) q.last = written;
        } catch (e) {
          if (!isConflict(e) && !isNotFound(e)) this.log.debug({ pool, err: apiMessage(e) }, 'IP pool usage not written');
        }
        // Go again only for a newer object of ours: a refusal otherwise means a later writer takes over.
        if (sync.latest === base) break;
      }
    })().finally(() => {
      this.usageSyncs.delete(pool);
      this.pendingSyncs.delete(done);
    });
    this.pendingSyncs.add(done);
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
        const target = { group: IPPOOL_GROUP, version: IPPOOL_VERSION, plural: IPPOOL_PLURAL, name: pool };
        // A status without blocks yet is written whole, once, with the resourceVersion read as precondition.
        q.last = (
          state.needsWholeWrite
            ? await this.api.replaceClusterCustomObjectStatus({ ...target, body: { ...obj, status: state.toStatus() } })
            : await this.api.patchClusterCustomObjectStatus({ ...target, body: state.toPatch() })
        ) as IPPool;
        settle();
        this.syncUsage(pool, q, q.last, state.layout.total);
        return;
      } catch (e) {
        q.last = undefined;
        cached = false;
        if (isConflict(e) || isRefusedTest(e)) {
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

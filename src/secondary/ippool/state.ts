// A pool's allocations and blocks while one batch of operations runs on them, and the write that records the
// batch: a JSON Patch that tests exactly what the batch relied on (the blocks it allocated in, the shared
// version when it claimed a block or allocated outside every block, each entry it removed) and appends
// the rest. Writes of different nodes touch different blocks, so they do not refuse each other. A pool
// whose status predates blocks is written whole once, with its resourceVersion as precondition.
import { intToIpv4 } from '../../ipam/subnets.js';
import { IPPoolError } from './errors.js';
import { parseIpv4, type Interval, type PoolLayout } from './ranges.js';
import type { IPPoolStatus, PoolOwner, StoredAllocation, StoredBlock } from './types.js';

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

/** The key of an attachment: what CNI DEL names. */
export type OwnerKey = Pick<PoolOwner, 'containerID' | 'interface'>;

/** A JSON Patch operation (RFC 6902), as the status subresource takes them. */
export type PatchOp = { op: 'test' | 'add' | 'replace'; path: string; value: unknown } | { op: 'remove'; path: string };

/**
 * Addresses per block: about an eighth of the pool, a power of two from 4 to 64 (a /24 pool has blocks of
 * 16, a /22 of 64), so a small pool still has a block for several nodes.
 */
export function blockSize(total: number): number {
  const size = 2 ** Math.floor(Math.log2(Math.max(1, total / 8)));
  return Math.min(64, Math.max(4, size));
}

const ownerKey = (containerID: string, iface: string): string => `${containerID}\0${iface}`;

export function ownerFields(o: PoolOwner): PoolOwner {
  return {
    podNamespace: o.podNamespace,
    podName: o.podName,
    ...(o.podUID !== undefined ? { podUID: o.podUID } : {}),
    containerID: o.containerID,
    interface: o.interface,
    ...(o.node !== undefined ? { node: o.node } : {}),
  };
}

export function describeOwner(o: PoolOwner): string {
  return `pod ${o.podNamespace}/${o.podName} (container ${o.containerID}, interface ${o.interface}${o.node ? `, node ${o.node}` : ''})`;
}

interface Entry {
  a: StoredAllocation;
  /** Where it is in the status read (absent for an entry of this batch). */
  index?: number;
}

interface Block {
  lo: number;
  hi: number;
  node: string;
  version: number;
  /** As read: what a write tests (absent for a block claimed by this batch). */
  stored?: StoredBlock;
  index?: number;
  /** This batch took it over from another node. */
  takenOver: boolean;
}

/** A pool's allocations while a batch is applied to them. */
export class PoolState {
  private readonly byIp = new Map<number, Entry>();
  private readonly byOwner = new Map<string, Entry>();
  /** Entries that cannot be indexed (unparseable, duplicate): kept as they are, never handed out again. */
  private readonly odd: StoredAllocation[] = [];
  private readonly blocks: Block[] = [];
  /** Entries of the status read that this batch removes. */
  private readonly removed: Entry[] = [];
  private readonly added = new Set<Entry>();
  /** Status fields the patch path relies on are missing: the write replaces the whole status. */
  readonly needsWholeWrite: boolean;
  private readonly poolVersion: number;

  constructor(
    readonly pool: string,
    readonly layout: PoolLayout,
    status: IPPoolStatus | undefined,
    private readonly now: () => Date,
  ) {
    (status?.allocations ?? []).forEach((a, index) => {
      const n = parseIpv4(a?.ip);
      if (n === undefined || this.byIp.has(n) || !a.owner) {
        this.odd.push(a);
        return;
      }
      const e: Entry = { a, index };
      this.byIp.set(n, e);
      this.byOwner.set(ownerKey(a.owner.containerID, a.owner.interface), e);
    });
    (status?.blocks ?? []).forEach((b, index) => {
      const lo = parseIpv4(b?.start);
      const hi = parseIpv4(b?.end);
      // A malformed entry is left alone and covers nothing.
      if (lo === undefined || hi === undefined || lo > hi || typeof b.node !== 'string' || !Number.isInteger(b.version)) return;
      this.blocks.push({ lo, hi, node: b.node, version: b.version, stored: b, index, takenOver: false });
    });
    this.needsWholeWrite = !Number.isInteger(status?.poolVersion) || !Array.isArray(status?.allocations) || !Array.isArray(status?.blocks);
    this.poolVersion = Number.isInteger(status?.poolVersion) ? status!.poolVersion! : 0;
  }

  get dirty(): boolean {
    return this.added.size > 0 || this.removed.length > 0 || this.blocks.some((b) => b.takenOver || b.index === undefined);
  }

  /** Blocks of the status read that the write tests and bumps: the batch allocated in them, or took them over. */
  private touchedBlocks(): Set<Block> {
    const out = new Set(this.blocks.filter((b) => b.takenOver));
    for (const e of this.added) {
      const b = this.blockOf(parseIpv4(e.a.ip)!);
      if (b?.index !== undefined) out.add(b);
    }
    return out;
  }

  /** The write tests and bumps poolVersion: the batch claimed a block, or allocated outside every block. */
  private get sharedTouched(): boolean {
    return this.blocks.some((b) => b.index === undefined) || [...this.added].some((e) => this.blockOf(parseIpv4(e.a.ip)!) === undefined);
  }

  get size(): number {
    return this.byIp.size + this.odd.length;
  }

  taken(): ReadonlySet<number> {
    return new Set(this.byIp.keys());
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
    return this.byOwner.get(ownerKey(o.containerID, o.interface))?.a;
  }

  /**
   * The address the owner holds; else the lowest free one of its node's blocks; else one of a block it
   * claims for its node (or takes over from another node, when empty); else, with every address in some
   * block, the lowest free one of the pool (in another node's block: borrowed).
   */
  allocateLowest(owner: PoolOwner): PoolAllocation {
    const held = this.heldBy(owner);
    if (held) return this.view(held);
    const node = owner.node;
    if (node !== undefined) {
      const own = this.blocks.filter((b) => b.node === node).sort((x, y) => x.lo - y.lo);
      for (const b of own) {
        const n = this.freeIn(b);
        if (n !== undefined) return this.add(n, owner);
      }
      const b = this.claim(node) ?? this.takeOver(node);
      if (b) return this.add(this.freeIn(b)!, owner);
    }
    const taken = this.taken();
    const ip = this.layout.lowestFree(taken);
    if (ip === undefined) {
      throw new IPPoolError('exhausted', `no free IP address in IP pool ${this.pool}`, `all ${this.layout.total} addresses of ${this.layout.describeRanges()} are allocated`, { pool: this.pool });
    }
    return this.add(parseIpv4(ip)!, owner);
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
    const n = parseIpv4(ip)!;
    const other = this.byIp.get(n);
    if (other) return fail('in-use', `held by ${describeOwner(other.a.owner)}`);
    return this.add(n, owner, true);
  }

  /** Removes every allocation `match` selects; returns them. */
  removeWhere(match: (a: StoredAllocation) => boolean): PoolAllocation[] {
    const out: PoolAllocation[] = [];
    for (const [n, e] of this.byIp) {
      if (!match(e.a)) continue;
      this.byIp.delete(n);
      this.byOwner.delete(ownerKey(e.a.owner.containerID, e.a.owner.interface));
      if (!this.added.delete(e)) this.removed.push(e);
      out.push(this.view(e.a));
    }
    return out;
  }

  /** The whole status, for a pool written whole (allocations lowest address first). */
  toStatus(): IPPoolStatus {
    const touched = this.touchedBlocks();
    const allocations = [...this.byIp.entries()].sort((a, b) => a[0] - b[0]).map(([, e]) => e.a);
    return {
      allocations: [...allocations, ...this.odd],
      blocks: this.blocks.map((b) => this.storedBlock(b, touched)),
      poolVersion: this.poolVersion + (this.sharedTouched ? 1 : 0),
      usage: { total: this.layout.total, used: this.size },
    };
  }

  /**
   * The batch as a JSON Patch against the status read. Its tests fail (and the server refuses the whole
   * patch) when another writer changed what the batch relied on; nothing else written meanwhile matters.
   */
  toPatch(): PatchOp[] {
    const ops: PatchOp[] = [];
    // Highest index first, so each removal leaves the indices of the next ones as they were read.
    for (const e of [...this.removed].sort((x, y) => y.index! - x.index!)) {
      const path = `/status/allocations/${e.index!}`;
      ops.push({ op: 'test', path, value: e.a }, { op: 'remove', path });
    }
    const touched = this.touchedBlocks();
    for (const b of this.blocks) {
      if (!touched.has(b)) continue;
      const path = `/status/blocks/${b.index!}`;
      ops.push({ op: 'test', path, value: b.stored }, { op: 'replace', path, value: this.storedBlock(b, touched) });
    }
    if (this.sharedTouched) ops.push({ op: 'test', path: '/status/poolVersion', value: this.poolVersion }, { op: 'replace', path: '/status/poolVersion', value: this.poolVersion + 1 });
    for (const b of this.blocks) if (b.index === undefined) ops.push({ op: 'add', path: '/status/blocks/-', value: this.storedBlock(b, touched) });
    for (const e of this.added) ops.push({ op: 'add', path: '/status/allocations/-', value: e.a });
    return ops;
  }

  private storedBlock(b: Block, touched: ReadonlySet<Block>): StoredBlock {
    const version = touched.has(b) ? b.version + 1 : b.version;
    return { start: intToIpv4(b.lo), end: intToIpv4(b.hi), node: b.node, version };
  }

  private blockOf(n: number): Block | undefined {
    return this.blocks.find((b) => n >= b.lo && n <= b.hi);
  }

  private freeIn(b: Block): number | undefined {
    for (let n = b.lo; n <= b.hi; n++) if (this.layout.allows(n) && !this.byIp.has(n)) return n;
    return undefined;
  }

  /** A new block for `node`: the lowest run of addresses outside every block with a free one in it. */
  private claim(node: string): Block | undefined {
    const covered = this.blocks.map((b): Interval => [b.lo, b.hi]).sort((x, y) => x[0] - y[0]);
    const run = this.layout.firstUncoveredRun(blockSize(this.layout.total), covered, (n) => !this.byIp.has(n));
    if (!run) return undefined;
    const b: Block = { lo: run[0], hi: run[1], node, version: 0, takenOver: false };
    this.blocks.push(b);
    return b;
  }

  /** Another node's block that holds no allocation (its node is gone, or its pods are), now `node`'s. */
  private takeOver(node: string): Block | undefined {
    const used = new Set<Block>();
    for (const n of this.byIp.keys()) {
      const b = this.blockOf(n);
      if (b) used.add(b);
    }
    const b = this.blocks.filter((x) => x.node !== node && !used.has(x) && this.freeIn(x) !== undefined).sort((x, y) => x.lo - y.lo)[0];
    if (!b) return undefined;
    b.node = node;
    b.takenOver = true;
    return b;
  }

  private add(n: number, owner: PoolOwner, requested = false): PoolAllocation {
    const a: StoredAllocation = { ip: intToIpv4(n), owner: ownerFields(owner), allocatedAt: this.now().toISOString(), ...(requested ? { requested: true } : {}) };
    const e: Entry = { a };
    this.byIp.set(n, e);
    this.byOwner.set(ownerKey(owner.containerID, owner.interface), e);
    this.added.add(e);
    return this.view(a);
  }
}

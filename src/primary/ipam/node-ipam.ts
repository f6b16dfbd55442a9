// Node-local IPAM over Node.spec.podCIDR: the agent's single source of truth for pod addresses,
// persisted so that an agent restart neither forgets nor double-assigns an address.
import { join } from 'node:path';
import { canonicalIp, PodCidr, type IpFamily } from './cidr.js';
import { IpamAddressError, IpamExhaustedError, IpamStateError } from './errors.js';
import { JsonFile } from './store.js';

/** Who holds an address: one interface of one container (the CNI attachment), plus the pod for humans. */
export interface IpamOwner {
  containerId: string;
  ifname: string;
  podNamespace: string;
  podName: string;
  podUid?: string;
  /** The CNI network (conflist `name`) the attachment belongs to; absent on allocations made before it was recorded. */
  network?: string;
}

/** The key of an allocation (what GC's valid-attachments lists). */
export type IpamOwnerKey = Pick<IpamOwner, 'containerId' | 'ifname'>;

export interface IpamAllocation extends IpamOwner {
  /** Canonical address, e.g. 10.244.1.5. */
  ip: string;
  /** With the pod CIDR's prefix, as a CNI result wants it: 10.244.1.5/24. */
  address: string;
  gateway: string;
  prefixLength: number;
  family: IpFamily;
  /** Given by reserve() (requested address) rather than allocate(). */
  static: boolean;
  /** ISO time of allocation. */
  allocatedAt: string;
}

export interface NodeIpamOptions {
  /** Node.spec.podCIDR, e.g. 10.244.1.0/24. */
  podCIDR: string;
  /** Directory of the state file (created if missing). */
  stateDir: string;
  /** Default `ipam-ipv4.json` / `ipam-ipv6.json`, so that a second family can get its own pool. */
  fileName?: string;
  /** Clock for allocatedAt (tests). */
  now?: () => Date;
}

export const STATE_KIND = 'seine-node-ipam';
export const STATE_VERSION = 1;

interface StoredAllocation extends IpamOwner {
  ip: string;
  static: boolean;
  allocatedAt: string;
}

interface StateFile {
  kind: typeof STATE_KIND;
  version: typeof STATE_VERSION;
  cidr: string;
  /** Last address handed out by allocate(): the next search starts after it. */
  cursor?: string;
  allocations: StoredAllocation[];
}

/** In memory: the offset too, for ordering without re-parsing. */
interface Entry extends StoredAllocation {
  off: bigint;
}

function byOffset(x: Entry, y: Entry): number {
  return x.off < y.off ? -1 : x.off > y.off ? 1 : 0;
}

function stored(e: Entry): StoredAllocation {
  return { ...ownerFields(e), ip: e.ip, static: e.static, allocatedAt: e.allocatedAt };
}

function ownerKey(containerId: string, ifname: string): string {
  return `${containerId}\0${ifname}`;
}

function checkOwner(owner: IpamOwner): void {
  const bad: string[] = (['containerId', 'ifname'] as const).filter((k) => typeof owner[k] !== 'string' || owner[k] === '');
  bad.push(...(['podNamespace', 'podName'] as const).filter((k) => typeof owner[k] !== 'string'));
  if (owner.podUid !== undefined && typeof owner.podUid !== 'string') bad.push('podUid');
  if (owner.network !== undefined && typeof owner.network !== 'string') bad.push('network');
  if (bad.length) throw new RangeError(`invalid IPAM owner: ${bad.join(', ')} missing or not a string`);
}

function ownerFields(o: IpamOwner): IpamOwner {
  return {
    containerId: o.containerId,
    ifname: o.ifname,
    podNamespace: o.podNamespace,
    podName: o.podName,
    ...(o.podUid !== undefined ? { podUid: o.podUid } : {}),
    ...(o.network !== undefined ? { network: o.network } : {}),
  };
}

export class NodeIpam {
  private readonly byIp = new Map<string, Entry>();
  private readonly byOwner = new Map<string, Entry>();
  private cursor: bigint | undefined;
  /** Every change runs after the previous one has been persisted. */
  private chain: Promise<unknown> = Promise.resolve();
  private readonly now: () => Date;

  private constructor(
    readonly pool: PodCidr,
    private readonly file: JsonFile,
    now: (() => Date) | undefined,
  ) {
    this.now = now ?? (() => new Date());
  }

  /**
   * Opens the pool, loading the state file when there is one. An unreadable, malformed or inconsistent
   * file, or one written for another pod CIDR, is an IpamStateError: the addresses it records may be in
   * use, so it is never silently dropped.
   */
  static async open(opts: NodeIpamOptions): Promise<NodeIpam> {
    const pool = PodCidr.parse(opts.podCIDR);
    const file = new JsonFile(join(opts.stateDir, opts.fileName ?? `ipam-ipv${pool.family}.json`));
    await file.prepare();
    const ipam = new NodeIpam(pool, file, opts.now);
    let text: string | undefined;
    try {
      text = await file.read();
    } catch (e) {
      throw new IpamStateError(file.path, `cannot be read: ${(e as Error).message}`, { cause: e });
    }
    if (text !== undefined) ipam.load(text);
    return ipam;
  }

  get statePath(): string {
    return this.file.path;
  }

  get podCIDR(): string {
    return this.pool.cidr;
  }

  get gateway(): string {
    return this.pool.gateway;
  }

  /** Usable pod addresses in all (bigint: an IPv6 /64 does not fit a number). */
  get capacity(): bigint {
    return this.pool.usable;
  }

  get size(): number {
    return this.byIp.size;
  }

  private load(text: string): void {
    const path = this.file.path;
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch (e) {
      throw new IpamStateError(path, `not valid JSON (${(e as Error).message}); move it aside only once no pod uses its addresses`, { cause: e });
    }
    const s = raw as Partial<StateFile> | null;
    if (typeof s !== 'object' || s === null || Array.isArray(s) || s.kind !== STATE_KIND) throw new IpamStateError(path, `not a ${STATE_KIND} state file`);
    if (s.version !== STATE_VERSION) throw new IpamStateError(path, `unsupported version ${JSON.stringify(s.version)} (this agent reads ${STATE_VERSION})`);
    if (s.cidr !== this.pool.cidr) {
      throw new IpamStateError(path, `records pod CIDR ${JSON.stringify(s.cidr)}, but the node's is ${this.pool.cidr}; pods addressed from the old CIDR must be removed first`);
    }
    if (!Array.isArray(s.allocations)) throw new IpamStateError(path, 'allocations: must be an array');
    const problems: string[] = [];
    for (const [i, a] of (s.allocations as unknown[]).entries()) {
      const why = this.loadEntry(a);
      if (why) problems.push(`allocations[${i}]: ${why}`);
    }
    if (s.cursor !== undefined) {
      const off = typeof s.cursor === 'string' ? this.pool.offsetOf(s.cursor) : undefined;
      if (off === undefined) problems.push(`cursor: ${JSON.stringify(s.cursor)} is not an address of ${this.pool.cidr}`);
      else this.cursor = off;
    }
    if (problems.length) throw new IpamStateError(path, problems.join('; '));
  }

  /** Adds one stored allocation; returns what is wrong with it instead when it is unusable. */
  private loadEntry(raw: unknown): string | undefined {
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return 'must be an object';
    const a = raw as StoredAllocation;
    try {
      checkOwner(a);
    } catch (e) {
      return (e as Error).message;
    }
    if (typeof a.static !== 'boolean' || typeof a.allocatedAt !== 'string') return 'static or allocatedAt missing';
    const off = typeof a.ip === 'string' ? this.pool.offsetOf(a.ip) : undefined;
    if (off === undefined || !this.pool.isUsable(off)) return `${JSON.stringify(a.ip)} is not a usable address of ${this.pool.cidr}`;
    const ip = this.pool.addressAt(off);
    if (this.byIp.has(ip)) return `${ip} is allocated twice`;
    const key = ownerKey(a.containerId, a.ifname);
    if (this.byOwner.has(key)) return `${a.containerId}/${a.ifname} holds two addresses`;
    const entry: Entry = { ...ownerFields(a), ip, static: a.static, allocatedAt: a.allocatedAt, off };
    this.byIp.set(ip, entry);
    this.byOwner.set(key, entry);
    return undefined;
  }

  private view(a: StoredAllocation): IpamAllocation {
    return {
      ...ownerFields(a),
      ip: a.ip,
      address: `${a.ip}/${this.pool.prefixLength}`,
      gateway: this.pool.gateway,
      prefixLength: this.pool.prefixLength,
      family: this.pool.family,
      static: a.static,
      allocatedAt: a.allocatedAt,
    };
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.chain.then(fn, fn);
    this.chain = next.catch(() => undefined);
    return next;
  }

  private persist(): Promise<void> {
    const state: StateFile = {
      kind: STATE_KIND,
      version: STATE_VERSION,
      cidr: this.pool.cidr,
      ...(this.cursor !== undefined ? { cursor: this.pool.addressAt(this.cursor) } : {}),
      allocations: [...this.byIp.values()].sort(byOffset).map(stored),
    };
    return this.file.write(state);
  }

  /** Adds entries in memory, persists, and takes them back out if persisting failed. */
  private async commitAdd(entry: Entry, cursor: bigint | undefined): Promise<IpamAllocation> {
    const oldCursor = this.cursor;
    const key = ownerKey(entry.containerId, entry.ifname);
    this.byIp.set(entry.ip, entry);
    this.byOwner.set(key, entry);
    this.cursor = cursor;
    try {
      await this.persist();
    } catch (e) {
      this.byIp.delete(entry.ip);
      this.byOwner.delete(key);
      this.cursor = oldCursor;
      throw e;
    }
    return this.view(entry);
  }

  private async commitRemove(entries: Entry[]): Promise<IpamAllocation[]> {
    if (!entries.length) return [];
    for (const e of entries) {
      this.byIp.delete(e.ip);
      this.byOwner.delete(ownerKey(e.containerId, e.ifname));
    }
    try {
      await this.persist();
    } catch (err) {
      for (const e of entries) {
        this.byIp.set(e.ip, e);
        this.byOwner.set(ownerKey(e.containerId, e.ifname), e);
      }
      throw err;
    }
    return entries.map((e) => this.view(e));
  }

  /** The next free offset after the cursor, wrapping once (host-local's round robin). */
  private nextFree(): bigint | undefined {
    const { firstUsable, lastUsable } = this.pool;
    if (BigInt(this.byIp.size) >= this.pool.usable) return undefined;
    let off = this.cursor !== undefined && this.cursor >= firstUsable && this.cursor < lastUsable ? this.cursor + 1n : firstUsable;
    // At most size+1 steps: fewer addresses are taken than exist, so a free one is met.
    for (;;) {
      if (!this.byIp.has(this.pool.addressAt(off))) return off;
      off = off >= lastUsable ? firstUsable : off + 1n;
    }
  }

  /**
   * An address for `owner`: the one it already holds (idempotent, e.g. a retried ADD), else the lowest
   * free one after the last handed out, so a just-released address is not reused at once (old conntrack
   * entries of a deleted pod must not hit a new one). IpamExhaustedError when none is left.
   */
  allocate(owner: IpamOwner): Promise<IpamAllocation> {
    return this.serial(async () => {
      checkOwner(owner);
      const held = this.byOwner.get(ownerKey(owner.containerId, owner.ifname));
      if (held) return this.view(held);
      const off = this.nextFree();
      if (off === undefined) throw new IpamExhaustedError(this.pool.cidr, this.byIp.size);
      const entry: Entry = { ...ownerFields(owner), ip: this.pool.addressAt(off), static: false, allocatedAt: this.now().toISOString(), off };
      return this.commitAdd(entry, off);
    });
  }

  /**
   * A specific address for `owner` (a requested static IP). Idempotent for the same owner; refused
   * (IpamAddressError) when outside the pod CIDR, the network/gateway/broadcast address, held by another
   * owner, or when the owner already holds a different address. Does not move the round-robin cursor.
   */
  reserve(ip: string, owner: IpamOwner): Promise<IpamAllocation> {
    return this.serial(async () => {
      checkOwner(owner);
      const parsed = canonicalIp(ip);
      if (!parsed) throw new IpamAddressError('invalid', ip, `${JSON.stringify(ip)} is not an IP address`);
      const off = this.pool.offsetOf(parsed.ip);
      if (off === undefined) throw new IpamAddressError('outside', parsed.ip, `not in pod CIDR ${this.pool.cidr}`);
      if (!this.pool.isUsable(off)) throw new IpamAddressError('reserved', parsed.ip, `the network, gateway or broadcast address of ${this.pool.cidr}`);
      const key = ownerKey(owner.containerId, owner.ifname);
      const mine = this.byOwner.get(key);
      if (mine?.ip === parsed.ip) return this.view(mine);
      if (mine) throw new IpamAddressError('owner-has-other', parsed.ip, `${owner.containerId}/${owner.ifname} already holds ${mine.ip}`);
      const other = this.byIp.get(parsed.ip);
      if (other) throw new IpamAddressError('in-use', parsed.ip, `held by pod ${other.podNamespace}/${other.podName} (container ${other.containerId}, ${other.ifname})`);
      const entry: Entry = { ...ownerFields(owner), ip: parsed.ip, static: true, allocatedAt: this.now().toISOString(), off };
      return this.commitAdd(entry, this.cursor);
    });
  }

  /** Frees the address of one attachment; returns it, or undefined when it held none (idempotent DEL). */
  release(containerId: string, ifname: string): Promise<IpamAllocation | undefined> {
    return this.serial(async () => {
      const held = this.byOwner.get(ownerKey(containerId, ifname));
      return held ? (await this.commitRemove([held]))[0] : undefined;
    });
  }

  /**
   * Frees every allocation whose attachment is not in `validOwners` (leaks after an agent restart, a
   * missed DEL, CNI GC) in one write; returns what it freed. With `only`, allocations it rejects are kept
   * whatever `validOwners` says (CNI GC of one network leaves the others' alone).
   */
  reconcile(validOwners: Iterable<IpamOwnerKey>, only?: (owner: IpamOwner) => boolean): Promise<IpamAllocation[]> {
    const keep = new Set<string>();
    for (const o of validOwners) keep.add(ownerKey(o.containerId, o.ifname));
    return this.serial(() => this.commitRemove([...this.byOwner.entries()].filter(([k, a]) => !keep.has(k) && (!only || only(ownerFields(a)))).map(([, a]) => a)));
  }

  /** Current allocations, lowest address first (copies). */
  allocations(): IpamAllocation[] {
    return [...this.byIp.values()].sort(byOffset).map((a) => this.view(a));
  }

  /** The allocation of one attachment, if any. */
  get(containerId: string, ifname: string): IpamAllocation | undefined {
    const a = this.byOwner.get(ownerKey(containerId, ifname));
    return a ? this.view(a) : undefined;
  }

  /** The allocation holding `ip`, if any. */
  holderOf(ip: string): IpamAllocation | undefined {
    const c = canonicalIp(ip);
    const a = c ? this.byIp.get(c.ip) : undefined;
    return a ? this.view(a) : undefined;
  }
}

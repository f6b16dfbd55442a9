// The cloud stand-ins' address bookkeeping (what ipamd or azure-vnet-ipam keep for a real node): pools of
// addresses and who holds which, in one JSON file per node that concurrent plugin processes share under a lock.
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { JsonFile } from '../../primary/ipam/store.js';
import { intToIpv4 } from '../../ipam/subnets.js';
import { cidrRange } from '../../ipam/ipv4-set.js';
import { sleep } from '../../util/wait.js';

/** A pool: the usable addresses of `cidr` (network and broadcast address left out), with what the cloud knows of it. */
export interface AddressPool<T> {
  cidr: string;
  tag: T;
}

export interface Assignment<T> {
  address: string;
  /** The pool's tag, copied, so a release needs no pool lookup. */
  tag: T;
  /** Who holds it (pod namespace/name), for people reading the file. */
  owner?: string;
}

interface StoreState<T> {
  pools: AddressPool<T>[];
  assignments: Record<string, Assignment<T>>;
}

/** A plugin gives up on the lock after this long: every holder is a short CNI call. */
const LOCK_TIMEOUT_MS = 60_000;

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Runs `fn` holding `${path}.lock`, a file created exclusively that names its holder's pid; a lock whose
 * holder died (a plugin killed mid-call) is taken over.
 */
export async function withFileLock<R>(path: string, fn: () => Promise<R>): Promise<R> {
  const lock = `${path}.lock`;
  mkdirSync(dirname(lock), { recursive: true });
  const deadline = Date.now() + LOCK_TIMEOUT_MS;
  for (;;) {
    try {
      const fd = openSync(lock, 'wx', 0o600);
      writeSync(fd, String(process.pid));
      closeSync(fd);
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      let holder = Number.NaN;
      try {
        holder = Number.parseInt(readFileSync(lock, 'utf8'), 10);
      } catch {
        /* released between our open and read: try again */
      }
      // An empty file is a holder between its open and its write; only a named, dead holder is stale.
      if (Number.isInteger(holder) && holder > 0 && !processAlive(holder)) rmSync(lock, { force: true });
      else if (Date.now() > deadline) throw new Error(`lock ${lock} still held by pid ${holder} after ${LOCK_TIMEOUT_MS / 1000} s`, { cause: e });
      else await sleep(10 + Math.random() * 20);
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(lock, { force: true });
  }
}

/** Thrown when every pool is full. */
export class PoolExhaustedError extends Error {}

/**
 * Addresses of a node's pools, assigned by key (the attachment: container id and interface). Assigning a key
 * twice returns its address again; a new key gets the lowest free address of the pool with the fewest
 * assignments (ties: the first pool), so the pods spread over a node's interfaces.
 */
export class AddressStore<T> {
  private readonly file: JsonFile;

  constructor(readonly path: string) {
    this.file = new JsonFile(path);
  }

  /** Creates (or replaces) the store with its pools and no assignments. */
  async initialize(pools: AddressPool<T>[]): Promise<void> {
    await this.file.prepare();
    await withFileLock(this.path, () => this.file.write({ pools, assignments: {} } satisfies StoreState<T>));
  }

  private async load(): Promise<StoreState<T>> {
    const text = await this.file.read();
    if (text === undefined) throw new Error(`no address store at ${this.path} (the node was not provisioned)`);
    return JSON.parse(text) as StoreState<T>;
  }

  private async update<R>(fn: (s: StoreState<T>) => R): Promise<R> {
    return withFileLock(this.path, async () => {
      const state = await this.load();
      const before = JSON.stringify(state);
      const r = fn(state);
      if (JSON.stringify(state) !== before) await this.file.write(state);
      return r;
    });
  }

  assign(key: string, owner?: string): Promise<Assignment<T>> {
    return this.update((s) => {
      const held = s.assignments[key];
      if (held) return held;
      const used = new Set(Object.values(s.assignments).map((a) => a.address));
      const byLoad = s.pools
        .map((pool) => ({ pool, load: Object.values(s.assignments).filter((a) => JSON.stringify(a.tag) === JSON.stringify(pool.tag)).length }))
        .sort((a, b) => a.load - b.load);
      for (const { pool } of byLoad) {
        const [first, last] = cidrRange(pool.cidr);
        for (let n = first + 1; n < last; n++) {
          const address = intToIpv4(n);
          if (used.has(address)) continue;
          const a: Assignment<T> = { address, tag: pool.tag, ...(owner ? { owner } : {}) };
          s.assignments[key] = a;
          return a;
        }
      }
      throw new PoolExhaustedError(`no free address in ${s.pools.map((p) => p.cidr).join(', ')} (${used.size} assigned)`);
    });
  }

  /** The key's assignment, if any. */
  async lookup(key: string): Promise<Assignment<T> | undefined> {
    return (await this.load()).assignments[key];
  }

  /** Releases the key's address; returns what it held (undefined when nothing: a repeated release). */
  release(key: string): Promise<Assignment<T> | undefined> {
    return this.update((s) => {
      const held = s.assignments[key];
      delete s.assignments[key];
      return held;
    });
  }

  async assignments(): Promise<Record<string, Assignment<T>>> {
    return (await this.load()).assignments;
  }
}

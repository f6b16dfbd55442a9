/**
 * `seine install-cni` in chained mode: Seine runs after the cloud's CNI (AWS VPC CNI, Azure CNI), which owns pod
 * addresses and routes. A long-lived container of the agent DaemonSet.
 *
 * - The primary is the lexically first `.conflist`/`.conf`/`.json` of the CNI conf dir that is not Seine's
 *   (Seine's are `05-seine.conflist`, the primary-mode `10-seine.conflist` and `.seine-tmp-*` files), as a
 *   runtime would pick it. Its file is only read, never written: a cloud agent rewrites it when it restarts and an
 *   edit in place would be lost.
 * - Seine writes `05-seine.conflist` (it sorts first, so the runtime takes it): the primary's list, its name,
 *   version and other top-level keys, with Seine's plugin appended (`deriveChainedConfList`). Written by
 *   tmp+rename, and only when the bytes differ, so a runtime never reads a part and "no change" writes nothing.
 * - Until the primary is complete, valid JSON that a runtime accepts (a cloud agent may be mid-write), it retries
 *   every second and logs what is wrong. `start()` resolves on the first good write; with `waitMs` it gives up
 *   after that long with an error naming the directory and every file found and why it is not usable.
 * - It then watches the directory (fs.watch, debounced) and polls every 5 s as a safety net (fs.watch misses
 *   events on some bind mounts), re-deriving on any change. Its own temporary files are ignored and its own
 *   writes cause no rewrite, as the content is then the same.
 * - When the primary disappears or turns invalid after a good derivation, Seine's last good file stays (pods
 *   keep getting policy), a warning says what is wrong, and the list is re-derived when the primary is back. While
 *   it is missing, a file sorting after it (e.g. `99-loopback.conf`, which the runtime never used) is not taken as
 *   the primary; one sorting before it is.
 * - A primary that already runs the `seine` plugin is reported and not chained after.
 * - Switching a node from primary mode, the first good write removes the primary-mode `10-seine.conflist`;
 *   `uninstall()` removes `05-seine.conflist` and its temporary files, and nothing else.
 */
import { watch, type Dirent, type FSWatcher } from 'node:fs';
import { mkdir, readdir, rm } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import { installPlugin, isSeineConf, readIfExists, TMP_PREFIX, writeAtomic, CONFLIST_NAME as PRIMARY_MODE_CONFLIST_NAME, type PluginInstallOptions } from '../../primary/installcni/index.js';
import { logger, type Logger } from '../../util/log.js';
import { CHAINED_CONFLIST_NAME, choosePrimary, isNetworkConfName, type ConfDirEntry, type PrimaryChoice } from './conflist.js';

export interface ChainedCniOptions {
  confDir: string;
  /** The agent's CNI socket (absolute), written into Seine's plugin entry. */
  socket: string;
  /** Installs the `seine` plugin first, as primary mode does; without it the plugin is someone else's concern. */
  plugin?: Omit<PluginInstallOptions, 'log'>;
  /** Quiet time after a directory event before re-deriving (a writer's events come in bursts). */
  debounceMs?: number;
  /** Re-derivation interval without events, the safety net for missed events. */
  pollMs?: number;
  /** Retry interval while the primary is missing or not usable. */
  retryMs?: number;
  log?: Logger;
}

export interface ChainedCniStatus {
  confPath: string;
  /** The primary (path) of the last good derivation. */
  primary?: string;
  /** Its plugin types, in order. */
  primaryTypes: string[];
  /** When Seine's file was last written. */
  writtenAt?: Date;
  /** What is wrong now (undefined after a good derivation). Seine's last good file, if any, stays meanwhile. */
  lastError?: string;
  /** The conf dir's files at the last derivation and what each is. */
  files: PrimaryChoice['files'];
}

export class ChainedCniError extends Error {}

const DEFAULT_DEBOUNCE_MS = 200;
const DEFAULT_POLL_MS = 5_000;
const DEFAULT_RETRY_MS = 1_000;
/** How often the same problem is logged again while it lasts. */
const REPEAT_WARNING_MS = 10_000;

const describeFiles = (files: PrimaryChoice['files']): string => (files.length ? files.map((f) => `${f.name} (${f.why})`).join(', ') : 'no files');

/** The dir's entries; a missing dir has none. */
async function entriesIfExists(dir: string): Promise<Dirent[]> {
  try {
    return await readdir(dir, { withFileTypes: true });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
}

/** Removes conf dir file `name` if it is Seine's (runs the `seine` plugin), and the temporary files of its writes. */
export async function removeSeineConf(confDir: string, name: string): Promise<string[]> {
  const removed: string[] = [];
  for (const { name: n } of await entriesIfExists(confDir)) {
    const path = join(confDir, n);
    const ours = n === name ? isSeineConf((await readIfExists(path))?.toString('utf8') ?? '') : n.startsWith(`${TMP_PREFIX}${name}-`);
    if (!ours) continue;
    await rm(path, { force: true });
    removed.push(path);
  }
  return removed;
}

/** The conf dir's files with the text of those that may be network configs; files gone meanwhile are left out. */
async function readConfDir(confDir: string): Promise<ConfDirEntry[]> {
  const entries: ConfDirEntry[] = [];
  for (const d of await entriesIfExists(confDir)) {
    if (d.isDirectory()) continue;
    if (d.name.startsWith(TMP_PREFIX) || !isNetworkConfName(d.name)) {
      entries.push({ name: d.name });
      continue;
    }
    const data = await readIfExists(join(confDir, d.name));
    if (data !== undefined) entries.push({ name: d.name, text: data.toString('utf8') });
  }
  return entries;
}

type Trigger = 'start' | 'event' | 'own-file' | 'poll';

/** Keeps `05-seine.conflist` derived from the cloud CNI's conflist; see the module comment. */
export class ChainedCniInstaller {
  readonly confPath: string;
  private readonly log: Logger;
  private readonly debounceMs: number;
  private readonly pollMs: number;
  private readonly retryMs: number;
  private running = false;
  private watcher: FSWatcher | undefined;
  private debounceTimer: NodeJS.Timeout | undefined;
  private nextCheck: NodeJS.Timeout | undefined;
  private syncing: Promise<void> | undefined;
  private pendingTrigger: Trigger | undefined;
  private current: ChainedCniStatus;
  private lastGoodPrimary: string | undefined;
  private warned: { problem: string; at: number } | undefined;
  private firstGood: { resolve: () => void; reject: (e: Error) => void } | undefined;

  constructor(private readonly opts: ChainedCniOptions) {
    this.log = opts.log ?? logger('install-cni', { mode: 'chained' });
    this.debounceMs = opts.debounceMs ?? DEFAULT_DEBOUNCE_MS;
    this.pollMs = opts.pollMs ?? DEFAULT_POLL_MS;
    this.retryMs = opts.retryMs ?? DEFAULT_RETRY_MS;
    this.confPath = join(opts.confDir, CHAINED_CONFLIST_NAME);
    this.current = { confPath: this.confPath, primaryTypes: [], files: [] };
  }

  get status(): ChainedCniStatus {
    return { ...this.current, primaryTypes: [...this.current.primaryTypes], files: this.current.files.map((f) => ({ ...f })) };
  }

  /**
   * Installs the plugin (if asked), derives and writes the list, and keeps it derived until `stop()`. Resolves on
   * the first good write; rejects (and stops) after `waitMs` without one, or when stopped or aborted first.
   */
  async start(opts: { waitMs?: number; signal?: AbortSignal } = {}): Promise<ChainedCniStatus> {
    if (this.running) throw new ChainedCniError('already started');
    if (!isAbsolute(this.opts.socket)) throw new ChainedCniError(`the CNI socket must be an absolute path (got ${JSON.stringify(this.opts.socket)})`);
    if (this.opts.plugin) await installPlugin({ ...this.opts.plugin, log: this.log });
    await mkdir(this.opts.confDir, { recursive: true });
    // Leftovers of an interrupted write of ours (nothing of ours is in flight yet).
    for (const n of await readdir(this.opts.confDir)) if (n.startsWith(`${TMP_PREFIX}${CHAINED_CONFLIST_NAME}-`)) await rm(join(this.opts.confDir, n), { force: true });
    this.running = true;
    const good = new Promise<void>((resolve, reject) => (this.firstGood = { resolve, reject }));
    this.startWatching();
    this.trigger('start');

    const cleanups: Array<() => void> = [];
    if (opts.waitMs !== undefined) {
      const waitMs = opts.waitMs;
      const t = setTimeout(() => {
        const s = this.current;
        this.firstGood?.reject(new ChainedCniError(`no usable primary network configuration in ${this.opts.confDir} after ${Math.round(waitMs / 1000)} s: ${s.lastError ?? 'not derived yet'}; found: ${describeFiles(s.files)}`));
      }, waitMs);
      cleanups.push(() => clearTimeout(t));
    }
    if (opts.signal) {
      const signal = opts.signal;
      const onAbort = (): void => this.firstGood?.reject(new ChainedCniError(`stopped while waiting for a usable primary network configuration in ${this.opts.confDir}`));
      if (signal.aborted) onAbort();
      signal.addEventListener('abort', onAbort, { once: true });
      cleanups.push(() => signal.removeEventListener('abort', onAbort));
    }
    try {
      await good;
    } catch (e) {
      await this.stop();
      throw e;
    } finally {
      for (const c of cleanups) c();
      this.firstGood = undefined;
    }
    return this.status;
  }

  /** Stops watching; Seine's file stays (a rolling update must not leave new pods without Seine). */
  async stop(): Promise<void> {
    this.running = false;
    clearTimeout(this.debounceTimer);
    clearTimeout(this.nextCheck);
    this.watcher?.close();
    this.watcher = undefined;
    this.firstGood?.reject(new ChainedCniError(`stopped while waiting for a usable primary network configuration in ${this.opts.confDir}`));
    await this.syncing;
  }

  /** Stops, then removes `05-seine.conflist` and its temporary files; the cloud's files stay as they are. */
  async uninstall(): Promise<string[]> {
    await this.stop();
    const removed = await removeSeineConf(this.opts.confDir, CHAINED_CONFLIST_NAME);
    this.log.info({ confDir: this.opts.confDir, removed }, 'Seine chained CNI uninstalled');
    return removed;
  }

  private startWatching(): void {
    if (this.watcher || !this.running) return;
    try {
      this.watcher = watch(this.opts.confDir, { persistent: true }, (_event, filename) => {
        const name = filename?.toString();
        if (name?.startsWith(TMP_PREFIX)) return;
        this.trigger(name === CHAINED_CONFLIST_NAME ? 'own-file' : 'event');
      });
      this.watcher.on('error', (e) => {
        this.log.warn({ err: e, confDir: this.opts.confDir }, 'watching the CNI conf dir failed; polling until it can be watched again');
        this.watcher?.close();
        this.watcher = undefined;
      });
    } catch (e) {
      this.log.warn({ err: e, confDir: this.opts.confDir }, 'cannot watch the CNI conf dir; polling');
    }
  }

  private trigger(why: Trigger): void {
    if (!this.running) return;
    clearTimeout(this.debounceTimer);
    this.debounceTimer = setTimeout(() => this.runSync(why), why === 'start' || why === 'poll' ? 0 : this.debounceMs);
  }

  /** One derivation at a time; a trigger during one runs another after it. */
  private runSync(why: Trigger): void {
    if (!this.running) return;
    if (this.syncing) {
      this.pendingTrigger = this.pendingTrigger === 'event' || this.pendingTrigger === 'start' ? this.pendingTrigger : why;
      return;
    }
    clearTimeout(this.nextCheck);
    this.syncing = this.sync(why)
      .catch((e: unknown) => this.fail(`${this.opts.confDir}: ${e instanceof Error ? e.message : String(e)}`, []))
      .finally(() => {
        this.syncing = undefined;
        if (!this.running) return;
        const pending = this.pendingTrigger;
        this.pendingTrigger = undefined;
        if (pending) return this.runSync(pending);
        this.startWatching();
        this.nextCheck = setTimeout(() => this.runSync('poll'), this.current.lastError === undefined ? this.pollMs : this.retryMs);
      });
  }

  private async sync(why: Trigger): Promise<void> {
    const choice = choosePrimary(await readConfDir(this.opts.confDir), this.opts.socket, this.lastGoodPrimary);
    const derived = choice.derived;
    if (!derived) return this.fail(choice.problem ?? 'no primary', choice.files);

    const existing = (await readIfExists(this.confPath))?.toString('utf8');
    const changed = existing !== derived.text;
    if (changed) await writeAtomic(this.confPath, derived.text, 0o644);
    const primary = join(this.opts.confDir, derived.primary);
    const recovered = this.current.lastError !== undefined;
    this.lastGoodPrimary = derived.primary;
    this.warned = undefined;
    this.current = { confPath: this.confPath, primary, primaryTypes: derived.primaryTypes, files: choice.files, ...(changed ? { writtenAt: new Date() } : this.current.writtenAt ? { writtenAt: this.current.writtenAt } : {}) };
    const fields = { confPath: this.confPath, primary, primaryTypes: derived.primaryTypes, changed, trigger: why };
    if (changed || recovered || why === 'start' || why === 'event') this.log.info(fields, `derived ${CHAINED_CONFLIST_NAME}`);
    else this.log.debug(fields, `derived ${CHAINED_CONFLIST_NAME}`);

    if (this.firstGood) {
      // Now that the chained list is in place, the node keeps only that one of Seine's files.
      const removed = await removeSeineConf(this.opts.confDir, PRIMARY_MODE_CONFLIST_NAME);
      if (removed.length) this.log.info({ removed }, 'removed the primary-mode conflist');
      this.firstGood.resolve();
    }
  }

  private fail(problem: string, files: PrimaryChoice['files']): void {
    this.current = { ...this.current, lastError: problem, files };
    const now = Date.now();
    if (this.warned?.problem === problem && now - this.warned.at < REPEAT_WARNING_MS) return;
    const still = this.warned?.problem === problem;
    this.warned = { problem, at: now };
    const keeping = this.lastGoodPrimary === undefined ? `no ${CHAINED_CONFLIST_NAME} written yet, waiting` : `keeping ${CHAINED_CONFLIST_NAME} as derived from ${this.lastGoodPrimary}`;
    this.log.warn({ confDir: this.opts.confDir, problem, files: describeFiles(files) }, `${still ? 'still ' : ''}no usable primary network configuration (${keeping}): ${problem}`);
  }
}

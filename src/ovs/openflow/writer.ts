import { CommandError } from '../../host/exec.js';
import type { OvsDaemons } from '../daemons.js';
import { logger, type Logger } from '../../util/log.js';
import { decodeCookie, ownerSelector, renderSelector, roundSelector, type CookieSelector } from './cookie.js';
import {
  parseDumpFlows,
  parseDumpGroups,
  parseGroupStats,
  parseOfctlFailure,
  type GroupStats,
  type InstalledFlow,
  type InstalledGroup,
  type OfctlFailure,
} from './dump.js';
import {
  addFlow,
  deleteFlow,
  deleteFlows,
  deleteGroup,
  isNonStrict,
  modifyFlow,
  renderChange,
  setGroup,
  type BundleLine,
  type Change,
  type Flow,
  type FlowFilter,
  type FlowKey,
} from './flow.js';
import { renderGroup, type Group } from './group.js';
import { renderMatch, type Match } from './match.js';
import { canonicalFlows, canonicalGroups, Ofctl, type Exec } from './ofctl.js';
import { canonicalInput, InstalledCache, planChanges, planFlows, planGroups, planIncremental, renderDesired, type RenderedFlow, type ScopeState } from './sync.js';
import { ConnectionError, OpenFlowError, sharedConnection, type OfConnection } from './wire/connection.js';
import { UnencodableError } from './wire/fields.js';
import { encodeChangeMessages, type AggregateStats } from './wire/messages.js';

export interface FlowWriterOptions {
  /** ovs-ofctl switch target, e.g. `OvsDaemons.bridgeMgmt(bridge)`. */
  target: string;
  /** Bridge name, for logs and errors (defaults to the target). */
  bridge?: string;
  env?: NodeJS.ProcessEnv;
  /** Coalesced bundles are cut at this many lines; a single submit() is never split. Default 2000. */
  maxBatchLines?: number;
  /** How long the first change of a batch waits for company; 0 (default) waits one event-loop turn. */
  batchWindowMs?: number;
  exec?: Exec;
  timeoutMs?: number;
  /**
   * The persistent OpenFlow connection bundles go through. Default: the shared connection to a `unix:`
   * target, unless `exec` is given (the caller wants ovs-ofctl) or SEINE_OPENFLOW=ofctl. `false`: ovs-ofctl only.
   */
  connection?: OfConnection | false;
  /**
   * Makes the switch push datapath counters into its flow and group stats (they lag by up to a
   * second otherwise); used by dumps asked for `fresh` counters. forBridge wires revalidator/wait.
   */
  settleStats?: () => Promise<void>;
}

/** A bundle the switch (or ovs-ofctl) refused; nothing of it was applied. */
export class BundleError extends Error {
  constructor(
    readonly bridge: string,
    /** OpenFlow error code or ovs-ofctl's complaint. */
    readonly reason: string,
    /** The line that failed, its 0-based position in the bundle, and the change it came from. */
    readonly failed: { index: number; text: string; change?: Change } | undefined,
    readonly lines: number,
    readonly stderr: string,
    readonly argv: readonly string[],
  ) {
    const where = failed ? ` at line ${failed.index + 1} "${failed.text}"` : '';
    super(`bundle of ${lines} change(s) to ${bridge} failed${where}: ${reason}${stderr.trim() ? `\n${stderr.trim()}` : ''}`);
    this.name = 'BundleError';
  }
}

export interface SyncRequest {
  /** The flows this sync owns: everything installed under this selector and not desired is deleted. */
  cookie: CookieSelector;
  flows: Flow[];
  /** Groups carry no cookie: `owns` says which group ids belong to this sync. */
  groups?: { desired: Group[]; owns: (id: number) => boolean };
}

export interface SyncResult {
  added: number;
  /** Flows whose actions, cookie or timeouts changed. */
  modified: number;
  deleted: number;
  groupsAdded: number;
  groupsModified: number;
  groupsDeleted: number;
  /** The changes of the bundle, in order (applied unless dryRun). */
  changes: Change[];
}

export interface WriterStats {
  /** Bundles sent (over the OpenFlow connection, or one ovs-ofctl spawn each). */
  bundles: number;
  /** Of those, bundles sent by ovs-ofctl (a change the wire encoder cannot express, or no connection). */
  ofctlBundles: number;
  /** Changes carried by successful bundles. */
  changes: number;
  failedBundles: number;
}

interface Unit {
  changes: Change[];
  lines: BundleLine[];
  nonStrict: boolean;
  resolve: () => void;
  reject: (e: unknown) => void;
}

const installedCaches = new Map<string, InstalledCache>();

/** Group texts by object, as renderDesired caches flows: unchanged groups handed in again are not rendered again. */
const groupTexts = new WeakMap<Group, string>();
function renderedGroupText(g: Group): string {
  let t = groupTexts.get(g);
  if (t === undefined) groupTexts.set(g, (t = renderGroup(g)));
  return t;
}

/** One installed-state cache per switch target, shared by the writers of this process. */
function installedCacheOf(target: string): InstalledCache {
  let c = installedCaches.get(target);
  if (!c) installedCaches.set(target, (c = new InstalledCache()));
  return c;
}

/** Makes every writer's next sync read the switch (after ovs-vswitchd lost its flows, say). */
export function forgetInstalledFlows(): void {
  for (const c of installedCaches.values()) c.clear();
}

/** A bundle's OpenFlow messages and, for each, the index of the change it encodes. */
interface Encoded {
  frames: ((xid: number) => Buffer)[];
  from: number[];
}

// Serialises everything that writes to one switch target, across writer instances.
const tails = new Map<string, Promise<void>>();

async function withTargetLock<T>(target: string, fn: () => Promise<T>): Promise<T> {
  const prev = tails.get(target) ?? Promise.resolve();
  let release!: () => void;
  const mine = new Promise<void>((r) => (release = r));
  const tail = prev.then(() => mine);
  tails.set(target, tail);
  await prev;
  try {
    return await fn();
  } finally {
    release();
    if (tails.get(target) === tail) tails.delete(target);
  }
}

/**
 * With our arguments ovs-ofctl 3.1 gives the bundle's first message this xid and numbers the rest in
 * order. Only a hint: it is used when the reported table/priority or group id agree with that line.
 */
const FIRST_BUNDLE_XID = 2;

/** Index of the bundle line a failure points at, when it can be told apart from the others. */
export function locateFailure(f: OfctlFailure, lines: readonly BundleLine[]): number | undefined {
  if (f.inputLine !== undefined) return f.inputLine >= 1 && f.inputLine <= lines.length ? f.inputLine - 1 : undefined;
  if (!f.kind) return undefined;
  const candidates: number[] = [];
  lines.forEach((l, i) => {
    if (l.kind !== f.kind || (f.op !== undefined && l.op !== f.op)) return;
    if (f.kind === 'group' && l.groupId !== f.groupId) return;
    if (f.kind === 'flow' && l.priority !== undefined && (l.table !== f.table || l.priority !== f.priority)) return;
    candidates.push(i);
  });
  const hint = f.xid !== undefined ? f.xid - FIRST_BUNDLE_XID : -1;
  if (candidates.includes(hint)) return hint;
  return candidates.length === 1 ? candidates[0] : undefined;
}

/** Refuses a unit whose non-strict flow delete/modify follows flow adds: OVS would apply it wrongly (see takeBatch). */
function checkNonStrictOrder(changes: readonly Change[]): void {
  let added = false;
  for (const c of changes) {
    if (isNonStrict(c) && added) {
      throw new RangeError('a non-strict flow delete/modify must come before the flow adds of its bundle (OVS misses flows added earlier in a bundle)');
    }
    if (c.kind === 'flow' && (c.op === 'add' || c.op === 'modify_strict')) added = true;
  }
}

function renderFilterForDump(f: { table?: number; cookie?: CookieSelector; match?: Match }): string {
  return [f.table === undefined ? '' : `table=${f.table}`, f.cookie ? `cookie=${renderSelector(f.cookie)}` : '', renderMatch(f.match)]
    .filter(Boolean)
    .join(',');
}

/**
 * Writes flows and groups to one bridge through `ovs-ofctl bundle`, so every write is atomic.
 *
 * Each submit() is one atomic unit. Units submitted in the same event-loop turn (or within
 * batchWindowMs), or while an earlier bundle is in flight, are coalesced into one bundle: one
 * ovs-ofctl spawn. When a coalesced bundle fails, the unit that caused it is rejected and the others,
 * which were not applied either, go again without it, so each caller learns the fate of its own
 * change. All writers to the same target take turns.
 */
export class FlowWriter {
  readonly ofctl: Ofctl;
  readonly bridge: string;
  readonly stats: WriterStats = { bundles: 0, ofctlBundles: 0, changes: 0, failedBundles: 0 };
  /** Set while bundles go over a persistent OpenFlow connection. */
  readonly wire?: OfConnection;
  /**
   * What each sync scope last installed, so that the next sync needs no dump (see InstalledCache). Kept
   * only with a persistent connection, whose loss tells that the switch may have lost its flows.
   */
  private readonly installed: InstalledCache;
  private readonly maxBatchLines: number;
  private readonly batchWindowMs: number;
  private readonly log: Logger;
  private queue: Unit[] = [];
  private scheduled = false;
  private draining?: Promise<void>;
  private readonly pending = new Set<Promise<void>>();
  private readonly settleStats?: () => Promise<void>;

  constructor(opts: FlowWriterOptions) {
    this.ofctl = new Ofctl(opts.target, { env: opts.env, exec: opts.exec, timeoutMs: opts.timeoutMs });
    this.bridge = opts.bridge ?? opts.target;
    this.maxBatchLines = opts.maxBatchLines ?? 2000;
    this.batchWindowMs = opts.batchWindowMs ?? 0;
    this.log = logger('openflow', { bridge: this.bridge });
    this.settleStats = opts.settleStats;
    const socket = opts.target.startsWith('unix:') ? opts.target.slice('unix:'.length) : undefined;
    const wanted = opts.connection ?? (opts.exec || process.env.SEINE_OPENFLOW === 'ofctl' || !socket ? false : sharedConnection(socket, this.bridge));
    this.installed = wanted ? installedCacheOf(opts.target) : new InstalledCache(0);
    if (wanted) {
      this.wire = wanted;
      // The switch may have restarted without its flows: what was installed is unknown again.
      wanted.onDisconnect(() => this.installed.clear());
    }
  }

  /** A writer for a bridge of a Seine-run OVS instance. */
  static forBridge(ovs: OvsDaemons, bridge: string, opts: Omit<FlowWriterOptions, 'target' | 'env' | 'bridge'> = {}): FlowWriter {
    return new FlowWriter({
      settleStats: async () => void (await ovs.appctl('ovs-vswitchd', ['revalidator/wait'])),
      ...opts,
      target: ovs.bridgeMgmt(bridge),
      env: ovs.env,
      bridge,
    });
  }

  /** ovs-ofctl processes spawned by this writer (bundles, dumps, canonicalisation). */
  get spawns(): number {
    return this.ofctl.spawns;
  }

  /**
   * Applies the changes atomically, possibly in one bundle with other callers' changes. Resolves once
   * the switch committed them; rejects with BundleError (nothing applied) or a RangeError for a change
   * that cannot be rendered (nothing sent).
   */
  submit(changes: Change | readonly Change[]): Promise<void> {
    const list = Array.isArray(changes) ? [...(changes as readonly Change[])] : [changes as Change];
    let lines: BundleLine[];
    try {
      lines = list.map(renderChange);
      checkNonStrictOrder(list);
    } catch (e) {
      return Promise.reject(e);
    }
    if (!lines.length) return Promise.resolve();
    this.installed.forgetChanges(list);
    let resolve!: () => void;
    let reject!: (e: unknown) => void;
    const p = new Promise<void>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    this.queue.push({ changes: list, lines, nonStrict: list.some(isNonStrict), resolve, reject });
    const settled = p.then(
      () => undefined,
      () => undefined,
    );
    this.pending.add(settled);
    void settled.then(() => this.pending.delete(settled));
    this.schedule();
    return p;
  }

  add(flow: Flow): Promise<void> {
    return this.submit(addFlow(flow));
  }

  modify(flow: Flow): Promise<void> {
    return this.submit(modifyFlow(flow));
  }

  /** Strictly deletes the flow with this table, priority and match (and cookie, when given). */
  delete(flow: FlowKey): Promise<void> {
    return this.submit(deleteFlow(flow));
  }

  /** Deletes every flow the filter selects (non-strict). */
  deleteWhere(filter: FlowFilter): Promise<void> {
    return this.submit(deleteFlows(filter));
  }

  setGroup(group: Group): Promise<void> {
    return this.submit(setGroup(group));
  }

  deleteGroup(id: number): Promise<void> {
    return this.submit(deleteGroup(id));
  }

  /** Resolves when everything submitted so far has been sent and settled (whatever its fate). */
  async flush(): Promise<void> {
    await Promise.all([...this.pending]);
  }

  private schedule(): void {
    if (this.scheduled || this.draining) return;
    this.scheduled = true;
    const go = (): void => {
      this.scheduled = false;
      this.draining = this.drain()
        .catch((e: unknown) => this.log.error({ err: e }, 'flow writer queue failed'))
        .finally(() => {
          this.draining = undefined;
          if (this.queue.length) this.schedule();
        });
    };
    if (this.batchWindowMs > 0) setTimeout(go, this.batchWindowMs);
    else setImmediate(go);
  }

  private async drain(): Promise<void> {
    while (this.queue.length) {
      const batch = this.takeBatch();
      await withTargetLock(this.ofctl.target, () => this.sendUnits(batch));
    }
  }

  private takeBatch(): Unit[] {
    const batch = [this.queue.shift()!];
    let n = batch[0]!.lines.length;
    // A non-strict delete/modify never joins earlier changes: in OVS 3.1 such an operation inside a
    // bundle misses flows added earlier in the same bundle (seen: add A, add B, delete table → B stays).
    while (this.queue.length && !this.queue[0]!.nonStrict && n + this.queue[0]!.lines.length <= this.maxBatchLines) {
      const u = this.queue.shift()!;
      batch.push(u);
      n += u.lines.length;
    }
    return batch;
  }

  private async sendUnits(batch: Unit[]): Promise<void> {
    const lines = batch.flatMap((u) => u.lines);
    const changes = batch.flatMap((u) => u.changes);
    try {
      await this.sendLines(lines, changes);
      for (const u of batch) u.resolve();
      return;
    } catch (e) {
      if (batch.length === 1 || !(e instanceof BundleError)) {
        for (const u of batch) u.reject(e);
        return;
      }
      const at = e.failed?.index;
      let culprit: Unit | undefined;
      if (at !== undefined) {
        let offset = 0;
        culprit = batch.find((u) => (offset += u.lines.length) > at);
      }
      if (culprit) {
        culprit.reject(this.describeFor(culprit, e));
        await this.sendUnits(batch.filter((u) => u !== culprit));
      } else {
        // The failure cannot be pinned on one unit: each goes alone and meets its own fate.
        for (const u of batch) await this.sendUnits([u]);
      }
    }
  }

  /** The error as the culprit's own bundle would have reported it (positions relative to its changes). */
  private describeFor(u: Unit, e: BundleError): BundleError {
    const index = u.lines.findIndex((l) => l.text === e.failed?.text);
    const failed = index >= 0 ? { index, text: u.lines[index]!.text, change: u.changes[index] } : undefined;
    return new BundleError(this.bridge, e.reason, failed, u.lines.length, e.stderr, e.argv);
  }

  /** Sends lines as one bundle (caller holds the target lock); throws BundleError on refusal. */
  private async sendLines(lines: readonly BundleLine[], changes: readonly Change[]): Promise<void> {
    const frames = this.wire ? this.encode(changes) : undefined;
    if (frames) return this.sendWire(frames, lines, changes);
    return this.sendOfctl(lines, changes);
  }

  /**
   * Each change as OpenFlow messages (xid patched in at send time) with, per message, the change it comes from;
   * undefined when one cannot be.
   */
  private encode(changes: readonly Change[]): Encoded | undefined {
    try {
      const frames: ((xid: number) => Buffer)[] = [];
      const from: number[] = [];
      changes.forEach((c, i) => {
        for (const msg of encodeChangeMessages(c)) {
          frames.push((xid: number) => {
            msg.writeUInt32BE(xid >>> 0, 4);
            return msg;
          });
          from.push(i);
        }
      });
      return { frames, from };
    } catch (e) {
      // Raw actions, `extra` match fields, canonical lines read back from the switch, oversized messages:
      // ovs-ofctl speaks those. Invalid changes were refused earlier, by renderChange.
      if (e instanceof UnencodableError || e instanceof RangeError) {
        this.log.debug({ reason: e.message }, 'bundle sent by ovs-ofctl');
        return undefined;
      }
      throw e;
    }
  }

  private async sendWire({ frames, from }: Encoded, lines: readonly BundleLine[], changes: readonly Change[]): Promise<void> {
    const t0 = performance.now();
    this.stats.bundles++;
    try {
      await this.wire!.bundle(frames);
    } catch (e) {
      this.stats.failedBundles++;
      if (e instanceof ConnectionError) this.installed.clear();
      if (!(e instanceof OpenFlowError)) throw e;
      const index = e.index === undefined ? undefined : from[e.index];
      const failed = index === undefined ? undefined : { index, text: lines[index]!.text, change: changes[index] };
      const err = new BundleError(this.bridge, e.message, failed, lines.length, '', ['openflow', this.wire!.path]);
      this.log.warn({ lines: lines.length, reason: err.reason, line: failed?.text }, 'flow bundle refused');
      throw err;
    }
    this.stats.changes += lines.length;
    this.log.debug({ lines: lines.length, ms: Math.round(performance.now() - t0), via: 'openflow' }, 'flow bundle committed');
  }

  private async sendOfctl(lines: readonly BundleLine[], changes: readonly Change[]): Promise<void> {
    const t0 = performance.now();
    this.stats.bundles++;
    this.stats.ofctlBundles++;
    try {
      await this.ofctl.bundle(lines.map((l) => l.text));
    } catch (e) {
      this.stats.failedBundles++;
      if (!(e instanceof CommandError)) throw e;
      const failure = parseOfctlFailure(e.stderr);
      let index = failure ? locateFailure(failure, lines) : undefined;
      if (index === undefined && failure && !failure.kind && failure.inputLine === undefined) {
        // A refusal naming no line (e.g. a flow OpenFlow 1.5 cannot express): find it offline.
        const suspects = lines.flatMap((l, i) => (l.kind === 'flow' && (l.op === 'add' || l.op === 'modify_strict') ? [i] : []));
        const bad = await this.ofctl.findRefused(suspects.map((i) => lines[i]!.text.replace(/^flow \S+ /, '')));
        if (bad) {
          index = suspects[bad.index];
          failure.reason = bad.reason;
        }
      }
      const failed = index === undefined ? undefined : { index, text: lines[index]!.text, change: changes[index] };
      const err = new BundleError(this.bridge, failure?.reason ?? e.message, failed, lines.length, e.stderr, e.argv);
      this.log.warn({ lines: lines.length, reason: err.reason, line: failed?.text }, 'flow bundle refused');
      throw err;
    }
    this.stats.changes += lines.length;
    this.log.debug({ lines: lines.length, ms: Math.round(performance.now() - t0) }, 'flow bundle committed');
  }

  /** Sends changes as one bundle of their own, outside the coalescing queue (caller holds the lock). */
  private async sendNow(changes: Change[]): Promise<void> {
    await this.sendLines(changes.map(renderChange), changes);
  }

  private async beforeRead(fresh: boolean | undefined): Promise<void> {
    await this.flush();
    if (fresh) {
      if (!this.settleStats) throw new Error('fresh counters need the settleStats option');
      await this.settleStats();
    }
  }

  /**
   * Installed flows, optionally restricted by table, cookie selector and match (a superset match).
   * `fresh` first has the switch fold in datapath counters, so n_packets is exact.
   */
  async dumpFlows(filter: { table?: number; cookie?: CookieSelector; match?: Match } = {}, opts: { fresh?: boolean } = {}): Promise<InstalledFlow[]> {
    await this.beforeRead(opts.fresh);
    const f = renderFilterForDump(filter);
    return parseDumpFlows(await this.ofctl.dumpFlows(f || undefined));
  }

  /** How many flows a filter selects, with their counters: one aggregate request (or ovs-ofctl dump-aggregate). */
  async countFlows(filter: { table?: number; cookie?: CookieSelector; match?: Match } = {}): Promise<AggregateStats> {
    await this.flush();
    if (this.wire) return this.wire.aggregate(filter);
    const f = renderFilterForDump(filter);
    const text = await this.ofctl.run(['dump-aggregate', this.ofctl.target, ...(f ? [f] : [])]);
    const pick = (k: string): string => new RegExp(`(?:^|\\s)${k}=(\\d+)`).exec(text)?.[1] ?? '0';
    return { flows: Number(pick('flow_count')), packets: BigInt(pick('packet_count')), bytes: BigInt(pick('byte_count')) };
  }

  async dumpGroups(groupId?: number): Promise<InstalledGroup[]> {
    await this.flush();
    return parseDumpGroups(await this.ofctl.dumpGroups(groupId));
  }

  /** Packet and byte counters of groups and their buckets. */
  async groupStats(groupId?: number, opts: { fresh?: boolean } = {}): Promise<GroupStats[]> {
    await this.beforeRead(opts.fresh);
    return parseGroupStats(await this.ofctl.dumpGroupStats(groupId));
  }

  /**
   * Makes the flows under `req.cookie` (and the groups `req.groups.owns`) exactly the desired ones in
   * one atomic bundle: adds what is missing, deletes what is stale, changes what differs in actions,
   * cookie or timeouts, and leaves everything else alone. Flows are compared in OVS's canonical
   * spelling, so re-syncing an unchanged state sends nothing. A desired flow whose table, priority
   * and match equal a flow outside the scope replaces that flow (OpenFlow keeps one per match).
   */
  async sync(req: SyncRequest, opts: { dryRun?: boolean; verify?: boolean } = {}): Promise<SyncResult> {
    const groups = req.groups;
    for (const g of groups?.desired ?? []) {
      if (!groups!.owns(g.id)) throw new RangeError(`desired group ${g.id} is outside the groups this sync owns`);
    }
    const rendered = renderDesired(req.cookie, req.flows);
    const renderedGroups = groups ? new Map(groups.desired.map((g) => [g.id, { group: g, text: renderedGroupText(g) }])) : undefined;
    if (!opts.verify && !opts.dryRun && this.installed.get(req.cookie, !!groups)) {
      await this.flush();
      const incremental = await withTargetLock(this.ofctl.target, async () => {
        // Looked up again under the lock: a failure of the bundle before may have just forgotten it.
        const state = this.installed.get(req.cookie, !!groups);
        if (!state) return undefined;
        const t0 = performance.now();
        const plan = planIncremental(state, rendered, renderedGroups);
        await this.apply(req.cookie, plan.changes, rendered, renderedGroups, false);
        const result: SyncResult = {
          added: plan.flows.add,
          modified: plan.flows.modified,
          deleted: plan.flows.deleted,
          groupsAdded: plan.groups.add,
          groupsModified: plan.groups.modified,
          groupsDeleted: plan.groups.deleted,
          changes: plan.changes,
        };
        this.logSync(req, result, false, t0, 'installed state');
        return result;
      });
      if (incremental) return incremental;
    }
    // Validate, render and canonicalise (offline) before touching the switch.
    const t0 = performance.now();
    const groupTexts = new Map([...(renderedGroups ?? [])].map(([id, g]) => [id, g.text]));
    const canon = await canonicalFlows(this.ofctl, req.flows.map(canonicalInput));
    await this.flush();
    return withTargetLock(this.ofctl.target, async () => {
      const [flowText, groupText] = await Promise.all([
        this.ofctl.dumpFlows(`cookie=${renderSelector(req.cookie)}`),
        groups ? this.ofctl.dumpGroups() : Promise.resolve(''),
      ]);
      const flowPlan = planFlows(req.cookie, req.flows, canon, parseDumpFlows(flowText));
      const installedGroups = groups ? parseDumpGroups(groupText).filter((g) => groups.owns(g.id)) : [];
      const both = installedGroups.filter((g) => groupTexts.has(g.id)).map((g) => g.id);
      const canonTexts = await canonicalGroups(
        this.ofctl,
        both.map((id) => groupTexts.get(id)!),
      );
      const groupPlan = planGroups(groups?.desired ?? [], new Map(both.map((id, i) => [id, canonTexts[i]!])), installedGroups);
      const changes = planChanges(flowPlan, groupPlan);
      if (!opts.dryRun) await this.apply(req.cookie, changes, rendered, renderedGroups, true);
      const result: SyncResult = {
        added: flowPlan.add.length,
        modified: flowPlan.modify.length + flowPlan.replace.length,
        deleted: flowPlan.remove.length,
        groupsAdded: groupPlan.add.length,
        groupsModified: groupPlan.modify.length,
        groupsDeleted: groupPlan.remove.length,
        changes,
      };
      this.logSync(req, result, !!opts.dryRun, t0, 'switch');
      return result;
    });
  }

  /** Sends a sync's changes and records the scope as installed; a failure leaves the scope unknown. */
  private async apply(scope: CookieSelector, changes: Change[], flows: Map<string, RenderedFlow>, groups: ScopeState['groups'], verified: boolean): Promise<void> {
    try {
      if (changes.length) await this.sendNow(changes);
    } catch (e) {
      this.installed.forget(scope);
      throw e;
    } finally {
      // Scopes nested in this one, or holding it, no longer know what is installed.
      if (changes.length) this.installed.forgetOthersOverlapping(scope, changes.some((c) => c.kind === 'group'));
    }
    this.installed.set(scope, flows, groups, verified);
  }

  private logSync(req: SyncRequest, result: SyncResult, dryRun: boolean, t0: number, against: 'switch' | 'installed state'): void {
    const { added, modified, deleted, groupsAdded, groupsModified, groupsDeleted } = result;
    // A periodic sync that finds nothing to do is not news.
    this.log[result.changes.length ? 'info' : 'debug'](
      { added, modified, deleted, groupsAdded, groupsModified, groupsDeleted, scope: renderSelector(req.cookie), against, dryRun, ms: Math.round(performance.now() - t0) },
      'flow sync',
    );
  }

  /**
   * Restart protocol: deletes every flow of `owner` whose round is not `round`, in one bundle.
   * Returns how many flows that removed.
   */
  async deleteOlderRounds(owner: number, round: number): Promise<number> {
    roundSelector(owner, round); // validates
    await this.flush();
    this.installed.clear();
    return withTargetLock(this.ofctl.target, async () => {
      const installed = parseDumpFlows(await this.ofctl.dumpFlows(`cookie=${renderSelector(ownerSelector(owner))}`));
      const stale = installed.filter((f) => decodeCookie(f.cookie).round !== round);
      const rounds = [...new Set(stale.map((f) => decodeCookie(f.cookie).round))];
      if (!rounds.length) return 0;
      await this.sendNow(rounds.map((r) => deleteFlows({ cookie: roundSelector(owner, r) })));
      this.log.info({ owner, round, rounds, flows: stale.length }, 'deleted flows of older rounds');
      return stale.length;
    });
  }
}

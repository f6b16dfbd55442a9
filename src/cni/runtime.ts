// Runtime side of CNI (libcni's CNIConfig): runs a network configuration list's plugins for ADD, DEL,
// CHECK, GC and STATUS with a result cache, as containerd does for a pod sandbox.
import { logger, type Logger } from '../util/log.js';
import { buildCniArgs, parseCniArgs, validateContainerId, validateIfName, validateNetworkName, type CniArgsInput } from './args.js';
import { ResultCache, type AttachmentKey, type CachedAttachment } from './cache.js';
import { parseConfList } from './conf.js';
import { CniCode, CniError } from './errors.js';
import { findPlugin, invokeAdd, invokeNoResult, PluginError, pluginVersionInfo, type ExecOptions } from './invoke.js';
import { convertResult, parseResult } from './result.js';
import type { CniCommand, CniResult, GcAttachment, NetConfList, PluginConf, VersionResult } from './types.js';
import { compareVersions, pickVersion, SUPPORTED_VERSIONS, versionAtLeast } from './version.js';

export interface RuntimeOptions {
  /** Plugin directories, searched in order (CNI_PATH). */
  cniPath: readonly string[];
  /** Result cache root (libcni's /var/lib/cni); entries go under `<cacheDir>/results`. */
  cacheDir: string;
  /** Run plugins inside this network namespace (`nsenter --net=PATH`): a lab node is a netns. */
  pluginNetns?: string;
  /** Per plugin execution. Default 60 s. */
  timeoutMs?: number;
  /** Extra environment for every plugin. */
  env?: Readonly<Record<string, string>>;
  log?: Logger;
}

/** One attachment's arguments (libcni's RuntimeConf). */
export interface RuntimeConf {
  containerId: string;
  /** Pod netns path. May be omitted (or gone) on DEL; DEL then falls back to the cached one. */
  netns?: string;
  ifname: string;
  /** CNI_ARGS; `IgnoreUnknown=1` is put first. On DEL/GC the cached ADD's are used when absent. */
  args?: CniArgsInput;
  /** Capability arguments (portMappings, ips, mac, bandwidth, ...), passed as `runtimeConfig` to plugins declaring them. */
  capabilityArgs?: Readonly<Record<string, unknown>>;
}

export interface AddOptions {
  /**
   * What a failed ADD leaves: 'del' (default) runs DEL of the whole list, every plugin in reverse,
   * best effort, as containerd tears down a sandbox whose network setup failed, so nothing stays
   * half-made; 'leave' returns at once as libcni itself does (the caller must DEL).
   */
  onFailure?: 'del' | 'leave';
}

/** A list operation that failed; `errors` holds each failure (GC collects several). */
export class NetworkError extends Error {
  constructor(
    readonly network: string,
    readonly operation: CniCommand,
    readonly errors: readonly Error[],
    /** For ADD: whether the clean-up DEL ran, and how it failed if it did. */
    readonly cleanup?: { ran: boolean; errors: readonly Error[] },
  ) {
    const tail = cleanup?.ran ? (cleanup.errors.length ? `; clean-up DEL failed: ${cleanup.errors.map((e) => e.message).join('; ')}` : '; cleaned up by DEL') : '';
    super(`network "${network}" ${operation} failed: ${errors.map((e) => e.message).join('; ')}${tail}`, { cause: errors[0] });
    this.name = 'NetworkError';
  }

  /** The first plugin failure, if a plugin (rather than e.g. the cache) failed. */
  get pluginError(): PluginError | undefined {
    return this.errors.find((e): e is PluginError => e instanceof PluginError);
  }

  /** As a CNI error for a caller that is itself a plugin (delegation): the plugin's own error when there is one. */
  toCniError(): CniError {
    const first = this.errors[0];
    if (first instanceof PluginError) return first.toCniError();
    if (first instanceof CniError) return first;
    return new CniError(CniCode.Internal, this.message);
  }
}

/** Config for one plugin: the list's name and version, prevResult, and its capabilities' runtimeConfig. */
export function pluginConfig(list: NetConfList, plugin: PluginConf, prevResult?: CniResult, capabilityArgs?: Readonly<Record<string, unknown>>): Record<string, unknown> {
  const conf: Record<string, unknown> = { ...structuredClone(plugin), name: list.name, cniVersion: list.cniVersion };
  if (prevResult) conf.prevResult = prevResult;
  const runtimeConfig: Record<string, unknown> = {};
  for (const [cap, enabled] of Object.entries(plugin.capabilities ?? {})) {
    if (enabled && capabilityArgs && Object.hasOwn(capabilityArgs, cap)) runtimeConfig[cap] = capabilityArgs[cap];
  }
  if (Object.keys(runtimeConfig).length) conf.runtimeConfig = runtimeConfig;
  return conf;
}

export class CniRuntime {
  readonly cache: ResultCache;
  private readonly log: Logger;
  /** Operations on one attachment run one at a time (the spec forbids parallel ones). */
  private readonly locks = new Map<string, Promise<unknown>>();

  constructor(readonly opts: RuntimeOptions) {
    this.cache = new ResultCache(opts.cacheDir);
    this.log = opts.log ?? logger('cni');
  }

  private get exec(): ExecOptions {
    return { cniPath: this.opts.cniPath, pluginNetns: this.opts.pluginNetns, timeoutMs: this.opts.timeoutMs, env: this.opts.env };
  }

  private async serial<T>(key: AttachmentKey, fn: () => Promise<T>): Promise<T> {
    const id = `${key.network}\0${key.containerId}\0${key.ifname}`;
    const prev = this.locks.get(id) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const tail = next.catch(() => undefined);
    this.locks.set(id, tail);
    try {
      return await next;
    } finally {
      if (this.locks.get(id) === tail) this.locks.delete(id);
    }
  }

  private keyOf(list: NetConfList, rt: RuntimeConf): AttachmentKey {
    validateNetworkName(list.name);
    validateContainerId(rt.containerId);
    validateIfName(rt.ifname);
    return { network: list.name, containerId: rt.containerId, ifname: rt.ifname };
  }

  private request(rt: RuntimeConf, argsInput: CniArgsInput | undefined) {
    return {
      containerId: rt.containerId,
      ifname: rt.ifname,
      args: buildCniArgs(argsInput ?? []),
      ...(rt.netns ? { netns: rt.netns } : {}),
    };
  }

  /**
   * ADD: runs the plugins in order, each getting the previous one's result, caches the final result
   * and returns it (in the list's version). Throws NetworkError; see AddOptions for what a failure leaves.
   */
  async addNetworkList(list: NetConfList, rt: RuntimeConf, opts: AddOptions = {}): Promise<CniResult> {
    const key = this.keyOf(list, rt);
    if (!rt.netns) throw new CniError(CniCode.InvalidEnvironment, 'ADD needs the container netns path');
    return this.serial(key, async () => {
      const req = this.request(rt, rt.args);
      let result: CniResult | undefined;
      try {
        for (const plugin of list.plugins) {
          this.log.debug({ network: list.name, plugin: plugin.type, containerId: rt.containerId }, 'CNI ADD');
          result = await invokeAdd(plugin.type, { ...req, config: pluginConfig(list, plugin, result, rt.capabilityArgs) }, list.cniVersion, this.exec);
        }
        await this.cache.write({
          containerId: rt.containerId,
          ifName: rt.ifname,
          networkName: list.name,
          config: Buffer.from(JSON.stringify(list)).toString('base64'),
          netns: rt.netns,
          cniArgs: parseCniArgs(req.args),
          ...(rt.capabilityArgs ? { capabilityArgs: { ...rt.capabilityArgs } } : {}),
          result: result!,
        });
        return result!;
      } catch (e) {
        const err = e as Error;
        if ((opts.onFailure ?? 'del') === 'leave') throw new NetworkError(list.name, 'ADD', [err]);
        this.log.warn({ network: list.name, containerId: rt.containerId, err: err.message }, 'CNI ADD failed; deleting the attachment');
        const cleanupErrors = await this.delPlugins(list, req, undefined, rt.capabilityArgs, 'best-effort');
        await this.cache.remove(key).catch(() => undefined);
        throw new NetworkError(list.name, 'ADD', [err], { ran: true, errors: cleanupErrors });
      }
    });
  }

  /** DEL of each plugin in reverse; stops at the first failure unless best effort. Returns the failures. */
  private async delPlugins(list: NetConfList, req: ReturnType<CniRuntime['request']>, prevResult: CniResult | undefined, capabilityArgs: Readonly<Record<string, unknown>> | undefined, mode: 'stop' | 'best-effort'): Promise<Error[]> {
    const errors: Error[] = [];
    for (const plugin of [...list.plugins].reverse()) {
      try {
        this.log.debug({ network: list.name, plugin: plugin.type, containerId: req.containerId }, 'CNI DEL');
        await invokeNoResult(plugin.type, { ...req, command: 'DEL', config: pluginConfig(list, plugin, prevResult, capabilityArgs) }, this.exec);
      } catch (e) {
        errors.push(e as Error);
        if (mode === 'stop') break;
      }
    }
    return errors;
  }

  /** The cached entry, or undefined when there is none or it is unreadable (then it is removed). */
  private async cachedEntry(key: AttachmentKey): Promise<CachedAttachment | undefined> {
    try {
      return await this.cache.read(key);
    } catch (e) {
      this.log.warn({ key, err: (e as Error).message }, 'discarding unreadable CNI cache entry');
      await this.cache.remove(key);
      return undefined;
    }
  }

  private cachedResultOf(entry: CachedAttachment | undefined, version: string): CniResult | undefined {
    if (!entry?.result) return undefined;
    try {
      return parseResult(entry.result, { toVersion: version });
    } catch (e) {
      this.log.warn({ err: (e as Error).message }, 'cached CNI result unusable; going on without it');
      return undefined;
    }
  }

  /**
   * DEL: runs the plugins in reverse with the cached ADD result as prevResult (0.4.0+), then drops the
   * cache entry. Works without a cache entry and with a netns that is gone (plugins must cope). Stops
   * at the first failing plugin, keeping the cache entry for a retry, as libcni does.
   */
  async delNetworkList(list: NetConfList, rt: RuntimeConf): Promise<void> {
    const key = this.keyOf(list, rt);
    await this.serial(key, async () => {
      const entry = await this.cachedEntry(key);
      const prevResult = versionAtLeast(list.cniVersion, '0.4.0') ? this.cachedResultOf(entry, list.cniVersion) : undefined;
      const req = this.request({ ...rt, netns: rt.netns ?? entry?.netns }, rt.args ?? entry?.cniArgs);
      const errors = await this.delPlugins(list, req, prevResult, rt.capabilityArgs ?? entry?.capabilityArgs, 'stop');
      if (errors.length) throw new NetworkError(list.name, 'DEL', errors);
      await this.cache.remove(key);
    });
  }

  /** CHECK (0.4.0+): each plugin in order with the cached result; a no-op when the list disables it. */
  async checkNetworkList(list: NetConfList, rt: RuntimeConf): Promise<void> {
    const key = this.keyOf(list, rt);
    if (!versionAtLeast(list.cniVersion, '0.4.0')) {
      throw new CniError(CniCode.IncompatibleVersion, `configuration version "${list.cniVersion}" does not support the CHECK command`);
    }
    if (list.disableCheck) return;
    await this.serial(key, async () => {
      const entry = await this.cachedEntry(key);
      const prevResult = this.cachedResultOf(entry, list.cniVersion);
      if (!prevResult) {
        throw new NetworkError(list.name, 'CHECK', [new CniError(CniCode.UnknownContainer, `no cached ADD result for container ${rt.containerId} ifname ${rt.ifname}`)]);
      }
      const req = this.request({ ...rt, netns: rt.netns ?? entry?.netns }, rt.args ?? entry?.cniArgs);
      for (const plugin of list.plugins) {
        try {
          await invokeNoResult(plugin.type, { ...req, command: 'CHECK', config: pluginConfig(list, plugin, prevResult, rt.capabilityArgs ?? entry?.capabilityArgs) }, this.exec);
        } catch (e) {
          throw new NetworkError(list.name, 'CHECK', [e as Error]);
        }
      }
    });
  }

  /**
   * GC (as libcni): DEL of every cached attachment of this network not in `valid` (with its cached
   * arguments), then, for 1.1.0+ lists, GC of each plugin with `cni.dev/valid-attachments`. Goes on
   * past failures and throws them together. Nothing happens when the list sets disableGC.
   */
  async gcNetworkList(list: NetConfList, valid: readonly GcAttachment[]): Promise<void> {
    if (list.disableGC) return;
    const keep = new Set(valid.map((a) => `${a.containerID}\0${a.ifname}`));
    const errors: Error[] = [];
    for (const entry of await this.cache.list()) {
      if (entry.networkName !== list.name || keep.has(`${entry.containerId}\0${entry.ifName}`)) continue;
      try {
        await this.delNetworkList(list, { containerId: entry.containerId, ifname: entry.ifName, netns: entry.netns, args: entry.cniArgs, capabilityArgs: entry.capabilityArgs });
      } catch (e) {
        errors.push(new Error(`stale attachment ${entry.containerId}/${entry.ifName}: ${(e as Error).message}`, { cause: e }));
      }
    }
    if (versionAtLeast(list.cniVersion, '1.1.0')) {
      const attachments = valid.map((a) => ({ containerID: a.containerID, ifname: a.ifname }));
      for (const plugin of list.plugins) {
        // libcni also sends the key's pre-release spelling, which some plugins still read.
        const config = { ...pluginConfig(list, plugin), 'cni.dev/valid-attachments': attachments, 'cni.dev/attachments': attachments };
        try {
          await invokeNoResult(plugin.type, { command: 'GC', config }, this.exec);
        } catch (e) {
          errors.push(e as Error);
        }
      }
    }
    if (errors.length) throw new NetworkError(list.name, 'GC', errors);
  }

  /** STATUS (1.1.0+; earlier lists are taken as ready): the first plugin that is not ready throws. */
  async statusNetworkList(list: NetConfList): Promise<void> {
    if (!versionAtLeast(list.cniVersion, '1.1.0')) return;
    for (const plugin of list.plugins) {
      try {
        await invokeNoResult(plugin.type, { command: 'STATUS', config: pluginConfig(list, plugin) }, this.exec);
      } catch (e) {
        throw new NetworkError(list.name, 'STATUS', [e as Error]);
      }
    }
  }

  /** VERSION of one plugin. */
  version(pluginType: string): Promise<VersionResult> {
    return pluginVersionInfo(pluginType, this.exec);
  }

  /**
   * Checks that every plugin exists and supports the list's version (libcni ValidateNetworkList);
   * returns the capabilities the list declares. Throws NetworkError listing every problem.
   */
  async validateNetworkList(list: NetConfList): Promise<string[]> {
    const errors: Error[] = [];
    const caps = new Set<string>();
    for (const plugin of list.plugins) {
      try {
        const info = await this.version(plugin.type);
        if (!info.supportedVersions.includes(list.cniVersion)) {
          errors.push(new Error(`plugin type="${plugin.type}" does not support config version "${list.cniVersion}" (supports ${info.supportedVersions.join(', ')})`));
        }
      } catch (e) {
        errors.push(e as Error);
      }
      for (const [cap, on] of Object.entries(plugin.capabilities ?? {})) if (on) caps.add(cap);
    }
    if (errors.length) throw new NetworkError(list.name, 'VERSION', errors);
    return [...caps].sort();
  }

  /**
   * The list at the highest version offered by `cniVersion`/`cniVersions` that this runtime and every
   * plugin (asked with VERSION) support: spec 1.1 negotiation, which libcni leaves to the admin. Code 1
   * when there is none.
   */
  async negotiateVersion(list: NetConfList): Promise<NetConfList> {
    let common: string[] = [...SUPPORTED_VERSIONS];
    for (const type of new Set(list.plugins.map((p) => p.type))) {
      const info = await this.version(type);
      common = common.filter((v) => info.supportedVersions.includes(v));
    }
    const best = pickVersion(list.cniVersion, list.cniVersions, common);
    if (!best) {
      const offered = [...new Set([...(list.cniVersions ?? []), list.cniVersion])];
      throw new CniError(CniCode.IncompatibleVersion, `network "${list.name}" has no version every plugin supports`, `offers ${JSON.stringify(offered)}, common to runtime and plugins: ${JSON.stringify(common.sort(compareVersions))}`);
    }
    // Without cniVersions, so that re-loading keeps the negotiated version.
    const { cniVersions: _offered, ...rest } = list;
    return parseConfList({ ...rest, cniVersion: best });
  }

  /** The cached ADD result of an attachment, in the list's version, or undefined. */
  async cachedResult(list: NetConfList, rt: Pick<RuntimeConf, 'containerId' | 'ifname'>): Promise<CniResult | undefined> {
    const entry = await this.cache.read({ network: list.name, containerId: rt.containerId, ifname: rt.ifname });
    return entry?.result ? convertResult(entry.result, list.cniVersion) : undefined;
  }

  /** Cached attachments (every network), optionally of one container. */
  cachedAttachments(containerId?: string): Promise<CachedAttachment[]> {
    return this.cache.list(containerId);
  }

  /** Whether a plugin executable is present in CNI_PATH (e.g. before writing a conflist that needs it). */
  async hasPlugin(type: string): Promise<boolean> {
    try {
      await findPlugin(type, this.opts.cniPath);
      return true;
    } catch {
      return false;
    }
  }
}


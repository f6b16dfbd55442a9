// What the DaemonSet's install-cni init container does on every node (and the lab does for its nodes):
// puts the `seine` plugin into the CNI bin dir, then the conflist into the CNI conf dir, each atomically,
// so a container runtime never sees a half-written file or a conflist whose plugin is missing. On a node the
// plugin is a copy of the static seine-cni binary: the host needs neither Node.js nor anything else of Seine.
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, lstat, mkdir, readdir, readFile, readlink, rename, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { basename, dirname, extname, isAbsolute, join, resolve } from 'node:path';
import { CONF_EXTENSIONS, parseConfList } from '../../cni/conf.js';
import { SUPPORTED_VERSIONS } from '../../cni/version.js';
import { logger, type Logger } from '../../util/log.js';

/** The conflist's file name: early in the order, as the runtime takes the lexically first one. */
export const CONFLIST_NAME = '10-seine.conflist';
export const NETWORK_NAME = 'seine';
/** The plugin's `type`, and its file name in the bin dir. */
export const PLUGIN_TYPE = 'seine';
/** Where earlier versions put the plugin's Node.js bundle in the bin dir: removed on install. */
export const BUNDLE_DIR = 'seine-cni.d';
/** How the temporary files of Seine's atomic writes begin (never a network config: a runtime skips them). */
export const TMP_PREFIX = '.seine-tmp-';

/** Where and how the `seine` plugin is installed (the same in primary and chained mode). */
export interface PluginInstallOptions {
  binDir: string;
  /** The seine-cni plugin binary (a build's `dist/bin/seine-cni`, SEINE_CNI_BINARY). */
  pluginSource: string;
  /**
   * Symlink the plugin to pluginSource (the lab, where the build is on the host) instead of copying it (a node,
   * whose host has nothing of Seine).
   */
  link?: boolean;
  log?: Logger;
}

export interface InstallCniOptions extends PluginInstallOptions {
  confDir: string;
  /** The agent's CNI socket (absolute), written into the conflist for seine-cni. */
  socket: string;
  /** Chain the portmap plugin for hostPort; the runtime must find it in its CNI path. */
  chainPortmap?: boolean;
}

export interface InstallCniResult {
  confPath: string;
  pluginPath: string;
  conflist: SeineConfList;
  /** False when the conflist was already exactly in place. */
  confChanged: boolean;
  /** False when the plugin was already exactly in place. */
  pluginChanged: boolean;
  /** Seine conflists from earlier installs, and leftovers of interrupted ones, that were removed. */
  removed: string[];
}

export interface SeineConfList {
  cniVersion: string;
  cniVersions?: string[];
  name: string;
  plugins: Array<Record<string, unknown> & { type: string }>;
}

/** The install cannot proceed (e.g. a foreign conflist of the same name). */
export class InstallCniError extends Error {}

/**
 * What a runtime whose libcni predates `cniVersions` (libcni 1.1: containerd 1.6/1.7, podman 4) runs the
 * list in: it reads only `cniVersion` and cannot parse a 1.1.0 result.
 */
export const CONFLIST_VERSION = '1.0.0';

export function seineConfList(socket: string, chainPortmap: boolean): SeineConfList {
  return {
    cniVersion: CONFLIST_VERSION,
    // Runtimes that read `cniVersions` (spec 1.1) take the newest they know: 1.1.0 brings STATUS and GC.
    // Not with portmap: the reference plugins in use stop at 1.0.0.
    ...(chainPortmap ? {} : { cniVersions: [...SUPPORTED_VERSIONS] }),
    name: NETWORK_NAME,
    plugins: [{ type: PLUGIN_TYPE, cniSocket: socket }, ...(chainPortmap ? [{ type: 'portmap', capabilities: { portMappings: true } }] : [])],
  };
}

/** Whether a network config file's text is one Seine wrote: it runs the `seine` plugin. */
export function isSeineConf(text: string): boolean {
  let o: unknown;
  try {
    o = JSON.parse(text);
  } catch {
    return false;
  }
  if (typeof o !== 'object' || o === null) return false;
  const c = o as { type?: unknown; plugins?: unknown };
  if (c.type === PLUGIN_TYPE) return true;
  return Array.isArray(c.plugins) && c.plugins.some((p) => typeof p === 'object' && p !== null && (p as { type?: unknown }).type === PLUGIN_TYPE);
}

const tmpName = (dir: string, name: string): string => join(dir, `${TMP_PREFIX}${name}-${process.pid}-${randomBytes(4).toString('hex')}`);

/** Writes a file by rename, so readers see the old or the new content, never a part. */
export async function writeAtomic(path: string, data: string | Buffer, mode: number): Promise<void> {
  const tmp = tmpName(dirname(path), basename(path));
  try {
    await writeFile(tmp, data, { mode, flush: true });
    await chmod(tmp, mode);
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}

export async function readIfExists(path: string): Promise<Buffer | undefined> {
  try {
    return await readFile(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

async function symlinkAtomic(target: string, path: string): Promise<boolean> {
  try {
    const st = await lstat(path);
    if (st.isSymbolicLink() && (await readlink(path)) === target) return false;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  const tmp = tmpName(dirname(path), 'link');
  await symlink(target, tmp);
  try {
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
  return true;
}

/**
 * A copy of the plugin binary, written beside the plugin and renamed over it: a runtime executing `seine`
 * meanwhile runs the old file or the new one, never a part. Left alone when already the same.
 */
async function installCopy(pluginSource: string, pluginPath: string): Promise<boolean> {
  const data = await readFile(pluginSource);
  const current = await lstat(pluginPath).catch(() => undefined);
  if (current?.isFile() && (current.mode & 0o111) !== 0 && (await readFile(pluginPath)).equals(data)) return false;
  await writeAtomic(pluginPath, data, 0o755);
  return true;
}

/**
 * Installs (or confirms) the `seine` plugin in the bin dir: a symlink to the source (`link`) or a copy of it.
 * Idempotent; throws before writing anything when the source is not an executable file.
 */
export async function installPlugin(opts: PluginInstallOptions): Promise<{ pluginPath: string; pluginChanged: boolean }> {
  const log = opts.log ?? logger('install-cni');
  const pluginPath = join(opts.binDir, PLUGIN_TYPE);
  const pluginSource = resolve(opts.pluginSource);
  const st = await stat(pluginSource).catch(() => undefined);
  if (!st?.isFile() || (st.mode & 0o111) === 0) throw new InstallCniError(`plugin source ${pluginSource} is not an executable file`);

  await mkdir(opts.binDir, { recursive: true });
  const pluginChanged = opts.link ? await symlinkAtomic(pluginSource, pluginPath) : await installCopy(pluginSource, pluginPath);
  // Only now that `seine` no longer runs from it: an earlier version's launcher did.
  const bundle = join(opts.binDir, BUNDLE_DIR);
  if (existsSync(bundle)) {
    await rm(bundle, { recursive: true, force: true });
    log.info({ dir: bundle }, 'removed the seine-cni bundle of an earlier version');
  }
  for (const e of await readdir(opts.binDir)) if (e.startsWith(TMP_PREFIX)) await rm(join(opts.binDir, e), { recursive: true, force: true });
  return { pluginPath, pluginChanged };
}

/**
 * Installs (or confirms) the plugin and the conflist. Idempotent: run again with the same options it changes
 * nothing. Refuses to replace a conflist of the same name that is not Seine's.
 */
export async function installCni(opts: InstallCniOptions): Promise<InstallCniResult> {
  const log = opts.log ?? logger('install-cni');
  if (!isAbsolute(opts.socket)) throw new InstallCniError(`the CNI socket must be an absolute path (got ${JSON.stringify(opts.socket)})`);
  const conflist = seineConfList(opts.socket, opts.chainPortmap ?? false);
  // The same check the runtime side makes, before anything is written.
  parseConfList(conflist);
  const confPath = join(opts.confDir, CONFLIST_NAME);
  const text = `${JSON.stringify(conflist, null, 2)}\n`;

  const existing = await readIfExists(confPath);
  if (existing !== undefined && !isSeineConf(existing.toString('utf8'))) {
    throw new InstallCniError(`${confPath} exists and is not Seine's (it does not run the '${PLUGIN_TYPE}' plugin); remove it or move it away`);
  }
  const { pluginPath, pluginChanged } = await installPlugin({ ...opts, log });
  await mkdir(opts.confDir, { recursive: true });

  const confChanged = existing?.toString('utf8') !== text;
  if (confChanged) await writeAtomic(confPath, text, 0o644);

  const removed: string[] = [];
  for (const e of await readdir(opts.confDir, { withFileTypes: true })) {
    const path = join(opts.confDir, e.name);
    if (path === confPath || e.isDirectory()) continue;
    if (e.name.startsWith(TMP_PREFIX)) {
      await rm(path, { force: true });
      removed.push(path);
    } else if (CONF_EXTENSIONS.includes(extname(e.name)) && isSeineConf((await readIfExists(path))?.toString('utf8') ?? '')) {
      await rm(path, { force: true });
      removed.push(path);
    }
  }
  log.info({ confPath, pluginPath, confChanged, pluginChanged, removed, link: opts.link ?? false }, 'Seine CNI installed');
  return { confPath, pluginPath, conflist, confChanged, pluginChanged, removed };
}

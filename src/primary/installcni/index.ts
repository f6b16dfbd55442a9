// What the DaemonSet's install-cni init container does on every node (and the lab does for its nodes):
// puts the `seine` plugin into the CNI bin dir, then the conflist into the CNI conf dir, each atomically,
// so a container runtime never sees a half-written file or a conflist whose plugin is missing.
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { chmod, copyFile, lstat, mkdir, readdir, readFile, readlink, realpath, rename, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { isBuiltin } from 'node:module';
import { basename, dirname, extname, isAbsolute, join, relative, resolve } from 'node:path';
import { CONF_EXTENSIONS, parseConfList } from '../../cni/conf.js';
import { SUPPORTED_VERSIONS } from '../../cni/version.js';
import { shellQuote } from '../../host/exec.js';
import { logger, type Logger } from '../../util/log.js';

/** The conflist's file name: early in the order, as the runtime takes the lexically first one. */
export const CONFLIST_NAME = '10-seine.conflist';
export const NETWORK_NAME = 'seine';
/** The plugin's `type`, and its file name in the bin dir. */
export const PLUGIN_TYPE = 'seine';
/** Directory in the bin dir holding self-contained copies (Node.js and the shim's modules). */
export const BUNDLE_DIR = 'seine-cni.d';
/** How the temporary files of Seine's atomic writes begin (never a network config: a runtime skips them). */
export const TMP_PREFIX = '.seine-tmp-';

/** Where and how the `seine` plugin is installed (the same in primary and chained mode). */
export interface PluginInstallOptions {
  binDir: string;
  /** `bin/seine-cni` of a built Seine tree. */
  pluginSource: string;
  /**
   * Symlink the plugin to pluginSource (the lab, where the tree is on the host) instead of installing a
   * self-contained copy (a node, where the host has neither Node.js nor Seine).
   */
  link?: boolean;
  /** The Node.js binary a copy runs with; default the running one. */
  nodeBinary?: string;
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

const STATIC_IMPORT = /(?:^|[\s;])(?:import|export)\s*(?:[^'"`;]*?\sfrom\s*)?['"]([^'"]+)['"]/g;
const DYNAMIC_IMPORT = /\bimport\(\s*['"]([^'"]+)['"]\s*\)/g;
const URL_IMPORT = /new URL\(\s*['"]([^'"]+)['"]\s*,\s*import\.meta\.url\s*\)/g;

/**
 * The files the launcher loads, found by following its relative imports (static, dynamic and
 * `new URL(..., import.meta.url)`) through the built modules. Only Node built-ins may be imported besides:
 * a package import would be missing on the node.
 */
export async function moduleClosure(entry: string, root: string): Promise<string[]> {
  const seen = new Set<string>();
  const todo = [entry];
  while (todo.length) {
    const file = todo.pop()!;
    if (seen.has(file)) continue;
    if (!existsSync(file)) throw new InstallCniError(`${file} is missing (is Seine built?)`);
    seen.add(file);
    const text = await readFile(file, 'utf8');
    for (const re of [STATIC_IMPORT, DYNAMIC_IMPORT, URL_IMPORT]) {
      for (const m of text.matchAll(re)) {
        const spec = m[1]!;
        if (spec.startsWith('./') || spec.startsWith('../')) {
          const target = resolve(dirname(file), spec);
          if (relative(root, target).startsWith('..')) throw new InstallCniError(`${file} imports ${spec}, outside ${root}`);
          todo.push(target);
        } else if (!isBuiltin(spec)) {
          throw new InstallCniError(`${file} imports '${spec}', which a self-contained plugin cannot carry (only node built-ins and relative modules)`);
        }
      }
    }
  }
  return [...seen].sort();
}

async function hashFile(path: string, h: ReturnType<typeof createHash>): Promise<void> {
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
}


/**
 * A self-contained copy: `<binDir>/seine-cni.d/<content hash>/` holds Node.js, the launcher and the modules it
 * loads in the tree's layout; `<binDir>/seine` is a shell script that runs it. A new version lands in a new
 * directory before the script is switched over, so a plugin run in progress keeps its files.
 */
async function installCopy(opts: PluginInstallOptions, pluginPath: string, log: Logger): Promise<boolean> {
  const entry = await realpath(opts.pluginSource);
  const root = dirname(dirname(entry));
  const files = await moduleClosure(entry, root);
  const node = await realpath(opts.nodeBinary ?? process.execPath);
  const h = createHash('sha256');
  for (const f of files) {
    h.update(`${relative(root, f)}\0`);
    await hashFile(f, h);
  }
  h.update('node\0');
  await hashFile(node, h);
  const bundles = join(opts.binDir, BUNDLE_DIR);
  const id = h.digest('hex').slice(0, 16);
  const dir = join(bundles, id);
  let changed = false;
  if (!existsSync(join(dir, '.complete'))) {
    await mkdir(bundles, { recursive: true });
    const tmp = tmpName(bundles, id);
    try {
      for (const f of files) {
        const to = join(tmp, relative(root, f));
        await mkdir(dirname(to), { recursive: true });
        await copyFile(f, to);
      }
      await copyFile(node, join(tmp, 'node'));
      await chmod(join(tmp, 'node'), 0o755);
      // The modules are ES modules, as in the tree whose package.json says so.
      await writeFile(join(tmp, 'package.json'), '{"type":"module"}\n');
      await writeFile(join(tmp, '.complete'), `${new Date().toISOString()}\n`);
      await rm(dir, { recursive: true, force: true });
      await rename(tmp, dir);
    } catch (e) {
      await rm(tmp, { recursive: true, force: true });
      throw e;
    }
    changed = true;
    log.info({ dir, files: files.length }, 'installed the seine-cni bundle');
  }
  const script = join(dir, relative(root, entry));
  // The plugin talks only to a unix socket; with NODE_EXTRA_CA_CERTS set, Node would parse that CA bundle on
  // every start (about 50 ms per CNI call).
  const launcher = [
    '#!/bin/sh',
    '# Seine CNI plugin, installed by seine install-cni: seine-cni run by its own Node.js.',
    'unset NODE_EXTRA_CA_CERTS',
    `exec ${shellQuote(join(dir, 'node'))} ${shellQuote(script)} "$@"`,
    '',
  ].join('\n');
  const current = await lstat(pluginPath).catch(() => undefined);
  const same = current?.isFile() && (await readIfExists(pluginPath))?.toString() === launcher && (current.mode & 0o111) !== 0;
  if (!same) {
    await writeAtomic(pluginPath, launcher, 0o755);
    changed = true;
  }
  // Older versions go once the launcher points at the new one.
  for (const e of await readdir(bundles)) if (e !== id) await rm(join(bundles, e), { recursive: true, force: true });
  return changed;
}

/**
 * Installs (or confirms) the `seine` plugin in the bin dir: a symlink to the source (`link`) or a
 * self-contained copy. Idempotent; throws before writing anything when the source is not an executable file.
 */
export async function installPlugin(opts: PluginInstallOptions): Promise<{ pluginPath: string; pluginChanged: boolean }> {
  const log = opts.log ?? logger('install-cni');
  const pluginPath = join(opts.binDir, PLUGIN_TYPE);
  const pluginSource = resolve(opts.pluginSource);
  const st = await stat(pluginSource).catch(() => undefined);
  if (!st?.isFile() || (st.mode & 0o111) === 0) throw new InstallCniError(`plugin source ${pluginSource} is not an executable file`);

  await mkdir(opts.binDir, { recursive: true });
  let pluginChanged: boolean;
  if (opts.link) {
    pluginChanged = await symlinkAtomic(pluginSource, pluginPath);
    await rm(join(opts.binDir, BUNDLE_DIR), { recursive: true, force: true });
  } else {
    pluginChanged = await installCopy(opts, pluginPath, log);
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

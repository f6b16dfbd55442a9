// Loading network configuration lists: from objects, files, and a config directory as containerd
// picks the node's default network.
import { readdir, readFile } from 'node:fs/promises';
import { extname, join } from 'node:path';
import { CniCode, CniError } from './errors.js';
import { conflistProblems, parseJson, validateNetConf } from './schema/validate.js';
import type { NetConf, NetConfList, PluginConf } from './types.js';
import { pickVersion, SUPPORTED_VERSIONS } from './version.js';

export interface ConfOptions {
  /** Versions the caller can run; the list's version is the highest it shares with these. */
  supportedVersions?: readonly string[];
}

function toBool(v: unknown): boolean {
  return typeof v === 'string' ? v.toLowerCase() === 'true' : v === true;
}

function decode(source: string | Buffer | object, what: string): unknown {
  if (typeof source === 'string' || Buffer.isBuffer(source)) return parseJson(source.toString(), what);
  return source;
}

/**
 * A validated conflist from JSON text or an object. Invalid JSON is code 6, an invalid list code 7
 * (with readable paths, e.g. "plugins[1].type: is required"), no usable version code 1. The result's
 * `cniVersion` is the one in effect: the highest of `cniVersion`/`cniVersions` that is supported.
 */
export function parseConfList(source: string | Buffer | object, opts: ConfOptions = {}): NetConfList {
  const raw = decode(source, 'network configuration list');
  const problems = conflistProblems(raw);
  const list = raw as NetConfList;
  if (!problems.length && list.cniVersion === undefined && list.cniVersions === undefined) problems.push('cniVersion: is required (or cniVersions)');
  if (problems.length) throw new CniError(CniCode.InvalidNetworkConfig, 'invalid network configuration list', problems.join('; '));
  const supported = opts.supportedVersions ?? SUPPORTED_VERSIONS;
  const version = pickVersion(list.cniVersion, list.cniVersions, supported);
  if (!version) {
    const offered = [...(list.cniVersions ?? []), ...(list.cniVersion ? [list.cniVersion] : [])];
    throw new CniError(CniCode.IncompatibleVersion, `network "${list.name}" has no supported CNI version`, `offers ${JSON.stringify(offered)}, supported are ${JSON.stringify(supported)}`);
  }
  const copy = structuredClone(list);
  return { ...copy, cniVersion: version, disableCheck: toBool(list.disableCheck), disableGC: toBool(list.disableGC), plugins: copy.plugins };
}

/** A single-plugin network config (`.conf`) as a one-plugin list, as libcni up-converts it. */
export function confListFromConf(source: string | Buffer | object, opts: ConfOptions = {}): NetConfList {
  const conf: NetConf = validateNetConf(decode(source, 'network configuration'));
  const plugin: PluginConf = structuredClone(conf);
  return parseConfList({ cniVersion: conf.cniVersion, ...(conf.cniVersions ? { cniVersions: conf.cniVersions } : {}), name: conf.name, plugins: [plugin] }, opts);
}

function withPath(e: unknown, path: string): unknown {
  return e instanceof CniError ? new CniError(e.code, `${e.msg} in ${path}`, e.details, { cause: e }) : e;
}

/** A list from a file: `.conflist` as a list, anything else (`.conf`, `.json`) as one plugin. */
export async function loadConfListFile(path: string, opts: ConfOptions = {}): Promise<NetConfList> {
  const text = await readFile(path, 'utf8');
  try {
    return extname(path) === '.conflist' ? parseConfList(text, opts) : confListFromConf(text, opts);
  } catch (e) {
    throw withPath(e, path);
  }
}

export const CONF_EXTENSIONS: readonly string[] = ['.conf', '.conflist', '.json'];

/** Config files in `dir` with one of `extensions`, sorted by name; a missing dir has none. */
export async function confFiles(dir: string, extensions: readonly string[] = CONF_EXTENSIONS): Promise<string[]> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  return entries
    .filter((d) => !d.isDirectory() && extensions.includes(extname(d.name)))
    .map((d) => d.name)
    .sort()
    .map((n) => join(dir, n));
}

export class NoNetworkConfigError extends Error {
  constructor(
    readonly dir: string,
    readonly skipped: ReadonlyArray<{ path: string; error: Error }> = [],
  ) {
    const why = skipped.length ? `; skipped: ${skipped.map((s) => s.error.message).join('; ')}` : '';
    super(`no network configuration found in ${dir}${why}`);
    this.name = 'NoNetworkConfigError';
  }
}

export interface DefaultConfOptions extends ConfOptions {
  /** What an unloadable file does: 'fail' (containerd) or 'skip' to the next (CRI-O). Default 'fail'. */
  onInvalid?: 'fail' | 'skip';
  extensions?: readonly string[];
}

export interface LoadedConfList {
  path: string;
  list: NetConfList;
  /** Files passed over as invalid (only with onInvalid 'skip'). */
  skipped: Array<{ path: string; error: Error }>;
}

/**
 * The node's network as a container runtime picks it: the lexically first `.conf`/`.conflist`/`.json`
 * in `dir`, a `.conf` up-converted to a one-plugin list. NoNetworkConfigError when there is none.
 */
export async function loadDefaultConfList(dir: string, opts: DefaultConfOptions = {}): Promise<LoadedConfList> {
  const skipped: Array<{ path: string; error: Error }> = [];
  for (const path of await confFiles(dir, opts.extensions)) {
    try {
      return { path, list: await loadConfListFile(path, opts), skipped };
    } catch (e) {
      if ((opts.onInvalid ?? 'fail') === 'fail') throw e;
      skipped.push({ path, error: e as Error });
    }
  }
  throw new NoNetworkConfigError(dir, skipped);
}

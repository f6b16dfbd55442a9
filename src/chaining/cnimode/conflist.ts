// Chained mode's conflist, derived from the cloud CNI's ("the primary") without touching the primary's file: the
// primary's list with Seine's plugin appended, under the primary's own name and version. Pure: the installer
// reads and writes the files.
import { extname } from 'node:path';
import { CONF_EXTENSIONS, confListFromConf, parseConfList } from '../../cni/conf.js';
import { CniError } from '../../cni/errors.js';
import { CONFLIST_NAME as PRIMARY_MODE_CONFLIST_NAME, isSeineConf, PLUGIN_TYPE, TMP_PREFIX } from '../../primary/installcni/index.js';

/** Chained mode's conflist: sorts before the clouds' `10-aws.conflist` / `10-azure.conflist`, so runtimes take it. */
export const CHAINED_CONFLIST_NAME = '05-seine.conflist';

/** A file of the CNI conf dir: its name and, for network config files, its text (undefined: unreadable). */
export interface ConfDirEntry {
  name: string;
  text?: string;
}

/** The derived list, ready to write. */
export interface ChainedConfList {
  /** The primary's file name. */
  primary: string;
  /** The primary's plugin types, in order (e.g. aws-cni, egress-cni, portmap). */
  primaryTypes: string[];
  list: Record<string, unknown> & { plugins: Array<Record<string, unknown>> };
  /** The file's text: the same input gives the same bytes, so an unchanged primary writes nothing. */
  text: string;
}

/** Why a file cannot be chained after; `file` is its name in the conf dir. */
export class PrimaryConfError extends Error {
  constructor(
    readonly file: string,
    readonly reason: string,
  ) {
    super(`${file}: ${reason}`);
    this.name = 'PrimaryConfError';
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function describeCniError(e: unknown): string {
  return e instanceof CniError ? e.message : e instanceof Error ? e.message : String(e);
}

/**
 * Whether a conf dir entry is a file Seine writes, and so never the primary: its temporary files, and its
 * conflists of either mode (by name and content: a file of that name that does not run Seine is someone else's).
 */
export function seineFileKind(entry: ConfDirEntry): 'temporary' | 'chained' | 'primary-mode' | undefined {
  if (entry.name.startsWith(TMP_PREFIX)) return 'temporary';
  const ours = entry.text !== undefined && isSeineConf(entry.text);
  if (entry.name === CHAINED_CONFLIST_NAME && ours) return 'chained';
  if (entry.name === PRIMARY_MODE_CONFLIST_NAME && ours) return 'primary-mode';
  return undefined;
}

export const isNetworkConfName = (name: string): boolean => CONF_EXTENSIONS.includes(extname(name));

/**
 * Seine's chained conflist after `primary` (a `.conflist`, or a single-plugin `.conf`/`.json` turned into a list
 * with its `name`/`cniVersion`/`cniVersions` lifted, as libcni does). The list keeps the primary's `name` (libcni
 * keys its result cache by it: pods made before Seine are deleted and collected under the same name), its
 * `cniVersion`, `disableCheck` and every other top-level key, and ends with Seine's plugin. Throws
 * PrimaryConfError, saying what is wrong, for invalid JSON (e.g. a file being written), a config the runtime
 * would refuse, or a primary that already runs Seine.
 */
export function deriveChainedConfList(primary: ConfDirEntry, socket: string): ChainedConfList {
  const fail = (reason: string): never => {
    throw new PrimaryConfError(primary.name, reason);
  };
  if (primary.text === undefined) fail('unreadable');
  const text = primary.text!;
  if (text.trim() === '') fail('empty (still being written?)');
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    fail(`not valid JSON (${(e as Error).message}; still being written?)`);
  }
  if (!isObject(raw)) fail('not a JSON object');
  const conf = raw as Record<string, unknown>;
  const asList = extname(primary.name) === '.conflist';
  // The runtime's own check of the primary first, so its problems are named as the primary's.
  try {
    if (asList) parseConfList(conf);
    else confListFromConf(conf);
  } catch (e) {
    fail(`not a valid network configuration${asList ? ' list' : ''}: ${describeCniError(e)}`);
  }
  let list: Record<string, unknown> & { plugins: Array<Record<string, unknown>> };
  if (asList) {
    list = { ...conf, plugins: conf.plugins as Array<Record<string, unknown>> };
  } else {
    const { name, cniVersion, cniVersions, ...plugin } = conf;
    list = { ...(cniVersion !== undefined ? { cniVersion } : {}), ...(cniVersions !== undefined ? { cniVersions } : {}), name, plugins: [plugin] };
  }
  const primaryTypes = list.plugins.map((p) => String(p.type));
  if (primaryTypes.includes(PLUGIN_TYPE)) fail(`already runs the '${PLUGIN_TYPE}' plugin (${primaryTypes.join(', ')}): it is not a cloud CNI's list for Seine to chain after`);
  list = { ...list, plugins: [...list.plugins, { type: PLUGIN_TYPE, cniSocket: socket }] };
  try {
    parseConfList(list);
  } catch (e) {
    fail(`the list derived from it is not valid: ${describeCniError(e)}`);
  }
  return { primary: primary.name, primaryTypes, list, text: `${JSON.stringify(list, null, 2)}\n` };
}

/** What the installer makes of the conf dir: the primary it chains after, and why the other files are not. */
export interface PrimaryChoice {
  /** The derived list, when the primary is usable. */
  derived?: ChainedConfList;
  /** The primary's name, usable or not (undefined: there is no candidate). */
  primary?: string;
  /** Why the primary, or the dir, is not usable (undefined when `derived` is set). */
  problem?: string;
  /** Every file looked at and what it is, for messages ("05-seine.conflist: Seine's chained conflist"). */
  files: Array<{ name: string; why: string }>;
}

/**
 * Picks the primary as a container runtime picks the node's network, passing over Seine's own files: the
 * lexically first `.conflist`/`.conf`/`.json`. `previous` is the primary of the last good derivation: while it is
 * missing (a cloud agent rewriting it) a file sorting after it is not taken, as the runtime never used that
 * one (e.g. `99-loopback.conf`); a file sorting before it is a new primary.
 */
export function choosePrimary(entries: readonly ConfDirEntry[], socket: string, previous?: string): PrimaryChoice {
  const files: PrimaryChoice['files'] = [];
  const sorted = [...entries].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  let choice: Omit<PrimaryChoice, 'files'> | undefined;
  for (const e of sorted) {
    const kind = seineFileKind(e);
    if (kind) {
      files.push({ name: e.name, why: kind === 'temporary' ? "Seine's temporary file" : kind === 'chained' ? "Seine's chained conflist" : "Seine's primary-mode conflist" });
      continue;
    }
    if (!isNetworkConfName(e.name)) {
      files.push({ name: e.name, why: `not a network configuration (only ${CONF_EXTENSIONS.join(', ')} are)` });
      continue;
    }
    if (choice) {
      files.push({ name: e.name, why: `sorts after the primary ${choice.primary!}` });
      continue;
    }
    if (previous !== undefined && e.name > previous) {
      choice = { primary: previous, problem: `${previous}: gone (the primary ${CHAINED_CONFLIST_NAME} was derived from; ${e.name} sorts after it and is not taken in its place)` };
      files.push({ name: e.name, why: `sorts after ${previous}, the primary ${CHAINED_CONFLIST_NAME} was derived from` });
      continue;
    }
    if (e.name === CHAINED_CONFLIST_NAME) {
      choice = { primary: e.name, problem: `${e.name}: has the name of Seine's list but does not run the '${PLUGIN_TYPE}' plugin; remove it or move it away` };
      files.push({ name: e.name, why: "not Seine's, under the name of Seine's list" });
      continue;
    }
    if (e.name < CHAINED_CONFLIST_NAME) {
      choice = { primary: e.name, problem: `${e.name}: sorts before ${CHAINED_CONFLIST_NAME}, so the runtime would keep using it and not Seine's list; rename it to sort after ${CHAINED_CONFLIST_NAME}` };
      files.push({ name: e.name, why: 'sorts before Seine\'s list' });
      continue;
    }
    try {
      choice = { primary: e.name, derived: deriveChainedConfList(e, socket) };
      files.push({ name: e.name, why: 'the primary' });
    } catch (err) {
      if (!(err instanceof PrimaryConfError)) throw err;
      choice = { primary: e.name, problem: err.message };
      files.push({ name: e.name, why: err.reason });
    }
  }
  if (!choice && previous !== undefined) choice = { primary: previous, problem: `${previous}: gone (the primary ${CHAINED_CONFLIST_NAME} was derived from)` };
  return { ...(choice ?? { problem: 'no network configuration file of the cloud CNI' }), files };
}

/**
 * What a chained conflist (Seine's `05-seine.conflist`) chains after: its network name and the plugin types that
 * run before Seine's (e.g. `aws-cni` on EKS, `azure-vnet` on AKS). Undefined when the text is not a valid list
 * ending with Seine's plugin after at least one other (Seine's primary-mode list chains after nothing).
 */
export function chainedAfter(text: string): { name: string; cniVersion?: string; primaryTypes: string[] } | undefined {
  let list;
  try {
    list = parseConfList(text);
  } catch {
    return undefined;
  }
  const types = list.plugins.map((p) => p.type);
  if (types.length < 2 || types.indexOf(PLUGIN_TYPE) !== types.length - 1) return undefined;
  const raw = JSON.parse(text) as { cniVersion?: unknown };
  return { name: list.name, ...(typeof raw.cniVersion === 'string' ? { cniVersion: raw.cniVersion } : {}), primaryTypes: types.slice(0, -1) };
}

// A NetworkAttachmentDefinition's spec.config: Seine's own network ({"type": "seine", ...}), or any
// other CNI config or conflist, which is delegated to those plugins.
import { confFiles, confListFromConf, loadConfListFile, parseConfList } from '../../cni/conf.js';
import { CniCode, CniError } from '../../cni/errors.js';
import type { IpamConf, NetConfList, PluginConf } from '../../cni/types.js';
import { check, isDnsLabel, isDnsSubdomain } from '../annotations/validation.js';
import { defaultBridge, OVERLAY_BRIDGE_PREFIX, RESERVED_BRIDGES, VLAN_BRIDGE } from './bridges.js';
import { NadConfigError } from './errors.js';
import { validateOverlayRules, validateSeineBase, validateSeineIpam, validateStaticIpam, validateVlanRules } from './schema.js';
import type { NadNetwork, NadRef, NetworkAttachmentDefinition, SegmentNetwork, SeineIpam, SeineNadNetwork, SeineNetwork, StaticIpam } from './types.js';

export const SEINE_PLUGIN = 'seine';

export interface NadParseOptions {
  /** Bridges no secondary network may use (default: the primary network's br-int and br-phy). */
  reservedBridges?: readonly string[];
}

const refText = (ref: NadRef): string => `${ref.namespace}/${ref.name}`;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Keys a function port refuses, with the reason: it has no addresses, and it takes its bridge, VLAN and MTU
 * from the network it is bound to, so steered frames stay in that network and fit it.
 */
const NOT_FOR_FUNCTION: Readonly<Record<string, string>> = {
  ipam: 'a function port has no addresses: it carries only the traffic a service chain steers into it (the pod has its own interfaces for the rest)',
  vlan: 'a function port is in the network it is bound to; it has no VLAN of its own',
  vni: 'a function port is in the network it is bound to; it has no VNI of its own',
  bridge: "a function port goes on the bridge of the network it is bound to (`network`, else the pod network's)",
  uplink: 'a function port has no uplink',
  mtu: 'a function port takes the MTU of the network it is bound to, so that steered frames fit',
};

/** Problems of a function network's config (the base schema already passed). */
function functionProblems(conf: Record<string, unknown>, ref: NadRef, at: (s: string) => string): string[] {
  const problems = Object.keys(NOT_FOR_FUNCTION)
    .filter((k) => conf[k] !== undefined)
    .map((k) => `${at(k)}: not allowed for networkType function (${NOT_FOR_FUNCTION[k]})`);
  const network = conf.network as string | undefined;
  if (network) {
    const bound = parseBoundNetwork(network);
    if (!bound) {
      problems.push(`${at('network')}: ${JSON.stringify(network)} is not "<namespace>/<name>" of a NetworkAttachmentDefinition (namespace: RFC 1123 label, name: RFC 1123 subdomain)`);
    } else if (refText(bound) === refText(ref)) {
      problems.push(`${at('network')}: ${network} is this NetworkAttachmentDefinition; name the Seine VLAN or overlay network the port belongs to`);
    }
  }
  return problems;
}

/** "<namespace>/<name>" of a NAD, or undefined when it is not one. */
function parseBoundNetwork(text: string): NadRef | undefined {
  const [namespace, name, ...rest] = text.split('/');
  if (rest.length || name === undefined || !isDnsLabel(namespace!) || !isDnsSubdomain(name)) return undefined;
  return { namespace: namespace!, name };
}

/** Problems of a VLAN or overlay network's config (the base schema already passed). */
function segmentProblems(conf: Record<string, unknown>, prefix: string, at: (s: string) => string, opts: NadParseOptions): string[] {
  const type = conf.networkType as SegmentNetwork['networkType'];
  const problems = check(type === 'vlan' ? validateVlanRules : validateOverlayRules, conf, prefix, `not allowed for networkType ${type}`);
  const ipam = conf.ipam as IpamConf | undefined;
  const ipamPrefix = at('ipam');
  if (ipam?.type === 'seine') problems.push(...check(validateSeineIpam, ipam, ipamPrefix));
  else if (ipam?.type === 'static') problems.push(...check(validateStaticIpam, ipam, ipamPrefix));
  const bridge = conf.bridge as string | undefined;
  if (bridge !== undefined) {
    if ((opts.reservedBridges ?? RESERVED_BRIDGES).includes(bridge)) problems.push(`${at('bridge')}: ${bridge} is the primary network's bridge`);
    // Keep the default names of the two network types apart, so defaults never collide with choices.
    else if (type === 'vlan' && bridge.startsWith(OVERLAY_BRIDGE_PREFIX)) problems.push(`${at('bridge')}: ${bridge} is a name reserved for overlay networks (${OVERLAY_BRIDGE_PREFIX}<vni>)`);
    else if (type === 'overlay' && bridge === VLAN_BRIDGE) problems.push(`${at('bridge')}: ${bridge} is the default bridge of VLAN networks`);
  }
  return problems;
}

/** A VLAN or overlay network from its valid config, defaults applied. */
function segmentNetwork(conf: Record<string, unknown>): SegmentNetwork {
  const networkType = conf.networkType as SegmentNetwork['networkType'];
  const ipamConf = conf.ipam as IpamConf;
  let ipam: SeineIpam;
  if (ipamConf.type === 'seine') ipam = { type: 'seine', ippools: [...(ipamConf.ippools as string[])] };
  else if (ipamConf.type === 'static') {
    ipam = {
      type: 'static',
      addresses: structuredClone((ipamConf.addresses as StaticIpam['addresses'] | undefined) ?? []),
      routes: structuredClone((ipamConf.routes as StaticIpam['routes'] | undefined) ?? []),
      ...(ipamConf.dns ? { dns: structuredClone(ipamConf.dns as StaticIpam['dns']) } : {}),
    };
  } else ipam = { type: 'delegated', plugin: ipamConf.type, conf: structuredClone(ipamConf) };
  const vni = conf.vni as number | undefined;
  return {
    networkType,
    ...(networkType === 'vlan' ? { vlan: conf.vlan as number } : { vni }),
    ...(conf.mtu !== undefined ? { mtu: conf.mtu as number } : {}),
    bridge: (conf.bridge as string | undefined) ?? defaultBridge({ networkType, ...(vni !== undefined ? { vni } : {}) }),
    ...(conf.uplink !== undefined ? { uplink: conf.uplink as string } : {}),
    ipam,
  };
}

/** Seine's plugin entry, validated and resolved; throws NadConfigError naming each problem under `prefix`. */
function seineNetwork(conf: Record<string, unknown>, ref: NadRef, prefix: string, opts: NadParseOptions): SeineNetwork {
  const at = (s: string): string => (prefix ? `${prefix}.${s}` : s);
  let problems = check(validateSeineBase, conf, prefix);
  if (!problems.length) problems = conf.networkType === 'function' ? functionProblems(conf, ref, at) : segmentProblems(conf, prefix, at, opts);
  if (problems.length) throw new NadConfigError(refText(ref), problems);
  if (conf.networkType !== 'function') return segmentNetwork(conf);
  const bound = conf.network ? parseBoundNetwork(conf.network as string) : undefined;
  return bound ? { networkType: 'function', network: bound } : { networkType: 'function' };
}

/** Classifies a loaded list: Seine's own when its first plugin is Seine's, delegated otherwise. */
function fromList(list: NetConfList, ref: NadRef, isList: boolean, opts: NadParseOptions): NadNetwork {
  const misplaced = list.plugins.findIndex((p, i) => i > 0 && p.type === SEINE_PLUGIN);
  if (misplaced > 0) {
    throw new NadConfigError(refText(ref), [`plugins[${misplaced}]: a ${SEINE_PLUGIN} plugin must come first in the list (it creates the interface that later plugins work on)`]);
  }
  if (list.plugins[0]!.type !== SEINE_PLUGIN) return { kind: 'delegated', ref: { ...ref }, name: list.name, list };
  const network = seineNetwork(list.plugins[0] as PluginConf & Record<string, unknown>, ref, isList ? 'plugins[0]' : '', opts);
  const out: SeineNadNetwork = { kind: 'seine', ref: { ...ref }, name: list.name, list, network };
  return out;
}

function rethrow(e: unknown, ref: NadRef): never {
  if (e instanceof NadConfigError) throw e;
  if (e instanceof CniError) throw new NadConfigError(refText(ref), e.details ? e.details.split('; ') : [e.msg], { code: e.code, what: e.msg, cause: e });
  throw e;
}

/**
 * Parses and validates a NAD's spec.config. Absent or empty: the node's file of that name is meant
 * (kind 'node-file', see loadNodeNetworkConfig). A config without `name` takes the NAD's name (spec
 * rule). Seine's own config is checked against its schema (network type, VLAN/VNI, MTU, bridge, uplink,
 * IPAM; for function ports the keys they refuse); anything else is checked as a generic CNI config or conflist. NadConfigError names every problem.
 */
export function parseNadConfig(config: string | undefined, ref: NadRef, opts: NadParseOptions = {}): NadNetwork {
  if (config === undefined || config.trim() === '') return { kind: 'node-file', ref: { ...ref }, name: ref.name };
  let raw: unknown;
  try {
    raw = JSON.parse(config);
  } catch (e) {
    throw new NadConfigError(refText(ref), [`not valid JSON (${(e as Error).message})`], { code: CniCode.DecodeFailure, cause: e });
  }
  if (!isObject(raw)) throw new NadConfigError(refText(ref), ['must be a JSON object (a CNI config or conflist)']);
  const withName = { ...raw, name: raw.name ?? ref.name };
  const isList = raw.plugins !== undefined;
  let list: NetConfList;
  try {
    list = isList ? parseConfList(withName) : confListFromConf(withName);
  } catch (e) {
    // Seine's own schema explains a bad Seine config better than the generic one.
    if (!isList && raw.type === SEINE_PLUGIN) seineNetwork(withName, ref, '', opts);
    rethrow(e, ref);
  }
  return fromList(list, ref, isList, opts);
}

/** parseNadConfig for a NAD object as read from the API. */
export function parseNad(nad: NetworkAttachmentDefinition, opts: NadParseOptions = {}): NadNetwork {
  const ref = { namespace: nad.metadata.namespace ?? 'default', name: nad.metadata.name ?? '' };
  const config = nad.spec?.config;
  if (config !== undefined && typeof config !== 'string') throw new NadConfigError(refText(ref), ['spec.config: must be a string']);
  return parseNadConfig(config, ref, opts);
}

/**
 * For a NAD without spec.config: the CNI configuration in `confDir` whose network name is the NAD's
 * (files in the runtime's order; unreadable or invalid files are passed over). NadConfigError when
 * there is none: the spec says the attachment then fails.
 */
export async function loadNodeNetworkConfig(confDir: string, ref: NadRef, opts: NadParseOptions = {}): Promise<NadNetwork> {
  const skipped: string[] = [];
  for (const path of await confFiles(confDir)) {
    let list: NetConfList;
    try {
      list = await loadConfListFile(path);
    } catch (e) {
      skipped.push((e as Error).message);
      continue;
    }
    if (list.name !== ref.name) continue;
    try {
      return fromList(list, ref, !/\.conf$|\.json$/.test(path), opts);
    } catch (e) {
      if (e instanceof NadConfigError) throw new NadConfigError(e.nad, e.problems.map((p) => `${path}: ${p}`), { cause: e });
      throw e;
    }
  }
  throw new NadConfigError(refText(ref), [`no CNI configuration named ${JSON.stringify(ref.name)} in ${confDir}${skipped.length ? ` (skipped invalid files: ${skipped.join('; ')})` : ''}`], {
    what: 'no spec.config and no node configuration',
  });
}

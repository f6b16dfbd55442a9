// The pod annotation k8s.v1.cni.cncf.io/network-status: what each network attachment gave the pod,
// built from CNI results.
import type { CniDns, CniResult } from '../../cni/types.js';
import { NetworkStatusError } from './errors.js';
import { networkRef, type NetworkSelection } from './networks.js';
import { ajv, check } from './validation.js';

/** `device-info` (spec 4.1.2.1.1): type, version, and one block named by type. */
export interface DeviceInfo {
  type: string;
  version: string;
  pci?: Record<string, string>;
  vdpa?: Record<string, string>;
  'vhost-user'?: Record<string, string>;
  memif?: Record<string, string>;
}

/** One element of the status annotation (keys as the spec spells them). */
export interface NetworkStatus {
  /** ns/name of the NAD, or the default network's name (its conflist name, e.g. "seine"). */
  name: string;
  interface?: string;
  /** Addresses without prefix. */
  ips?: string[];
  mac?: string;
  /** Only the default network's element: true. */
  default?: boolean;
  dns?: CniDns;
  /** Gateways of the pod's default route, on the element that carries it. */
  'default-route'?: string[];
  'device-info'?: DeviceInfo;
}

export interface DefaultNetworkOutcome {
  /** The default network's name, e.g. "seine". */
  name: string;
  /** Default eth0. */
  interface?: string;
  result: CniResult;
  deviceInfo?: DeviceInfo;
}

export interface AttachmentOutcome {
  selection: NetworkSelection;
  result: CniResult;
  deviceInfo?: DeviceInfo;
}

/** The interface the result gives the pod: the one named `ifname` in a sandbox, else the last in a sandbox (Multus's rule). */
function podInterface(result: CniResult, ifname: string): number | undefined {
  const ifs = result.interfaces ?? [];
  const named = ifs.findIndex((i) => i.name === ifname && i.sandbox);
  if (named >= 0) return named;
  for (let i = ifs.length - 1; i >= 0; i--) if (ifs[i]!.sandbox) return i;
  const byName = ifs.findIndex((i) => i.name === ifname);
  return byName >= 0 ? byName : undefined;
}

function isDefaultDst(dst: string): boolean {
  return dst === '0.0.0.0/0' || dst === '::/0';
}

function entry(name: string, ifname: string, result: CniResult, deviceInfo: DeviceInfo | undefined): NetworkStatus {
  const idx = podInterface(result, ifname);
  const iface = idx === undefined ? undefined : result.interfaces![idx]!;
  const ips = (result.ips ?? []).filter((ip) => ip.interface === undefined || ip.interface === idx).map((ip) => ip.address.slice(0, ip.address.lastIndexOf('/')));
  const s: NetworkStatus = { name, interface: iface?.name ?? ifname };
  if (ips.length) s.ips = ips;
  if (iface?.mac) s.mac = iface.mac;
  const dns = result.dns;
  if (dns && Object.values(dns).some((v) => (Array.isArray(v) ? v.length : v))) s.dns = structuredClone(dns);
  if (deviceInfo) s['device-info'] = structuredClone(deviceInfo);
  return s;
}

/**
 * The status annotation's elements: the default network first (`default: true`), then one per
 * attachment in order. `default-route` goes on the element whose selection carries `default-route`;
 * when none does, on the default network's element (the gateways of its result's default routes).
 */
export function buildNetworkStatus(defaultNetwork: DefaultNetworkOutcome, attachments: readonly AttachmentOutcome[]): NetworkStatus[] {
  const first = entry(defaultNetwork.name, defaultNetwork.interface ?? 'eth0', defaultNetwork.result, defaultNetwork.deviceInfo);
  first.default = true;
  const rest = attachments.map((a) => {
    const s = entry(networkRef(a.selection), a.selection.interface, a.result, a.deviceInfo);
    if (a.selection.defaultRoute?.length) s['default-route'] = [...a.selection.defaultRoute];
    return s;
  });
  if (!attachments.some((a) => a.selection.defaultRoute?.length)) {
    const gws = (defaultNetwork.result.routes ?? []).filter((r) => isDefaultDst(r.dst) && r.gw).map((r) => r.gw!);
    if (gws.length) first['default-route'] = gws;
  }
  return [first, ...rest];
}

/** The annotation's value. */
export function serializeNetworkStatus(status: readonly NetworkStatus[]): string {
  return JSON.stringify(status);
}

const statusSchema = {
  type: 'array',
  items: {
    type: 'object',
    required: ['name'],
    properties: {
      name: { type: 'string', minLength: 1 },
      interface: { type: 'string' },
      ips: { type: 'array', items: { type: 'string', format: 'ip' } },
      mac: { type: 'string' },
      default: { type: 'boolean' },
      dns: { type: 'object' },
      'default-route': { type: 'array', items: { type: 'string', format: 'ip' } },
      'device-info': { type: 'object', required: ['type', 'version'], properties: { type: { type: 'string' }, version: { type: 'string' } } },
    },
  },
} as const;

const validateStatus = ajv.compile(statusSchema);

/** Reads the annotation back (e.g. to see what a pod is attached to now); an absent or empty value is []. */
export function parseNetworkStatus(value: string | undefined): NetworkStatus[] {
  if (value === undefined || value.trim() === '') return [];
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch (e) {
    throw new NetworkStatusError(`not valid JSON (${(e as Error).message})`);
  }
  const problems = check(validateStatus, parsed);
  if (problems.length) throw new NetworkStatusError(problems.join('; '));
  return parsed as NetworkStatus[];
}

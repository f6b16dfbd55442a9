// Types only: erased at build, so importing this costs nothing at run time.

export type CniCommand = 'ADD' | 'DEL' | 'CHECK' | 'VERSION' | 'GC' | 'STATUS';

export const CNI_COMMANDS: readonly CniCommand[] = ['ADD', 'DEL', 'CHECK', 'VERSION', 'GC', 'STATUS'];

export interface CniDns {
  nameservers?: string[];
  domain?: string;
  search?: string[];
  options?: string[];
}

export interface CniInterface {
  name: string;
  mac?: string;
  /** 1.1.0 */
  mtu?: number;
  /** Netns path (or hypervisor id) for container interfaces; absent for host interfaces. */
  sandbox?: string;
  /** 1.1.0 */
  socketPath?: string;
  /** 1.1.0 */
  pciID?: string;
}

export interface CniIpConfig {
  /** CIDR, e.g. 10.1.0.5/24. */
  address: string;
  gateway?: string;
  /** Index into `interfaces`. */
  interface?: number;
  /** Only in 0.3.x/0.4.0 results. */
  version?: '4' | '6';
}

export interface CniRoute {
  dst: string;
  gw?: string;
  /** The remaining fields are 1.1.0. */
  mtu?: number;
  advmss?: number;
  priority?: number;
  table?: number;
  scope?: number;
}

/** An ADD result (spec 0.3.0 … 1.1.0 shape). */
export interface CniResult {
  cniVersion: string;
  interfaces?: CniInterface[];
  ips?: CniIpConfig[];
  routes?: CniRoute[];
  dns?: CniDns;
}

export interface VersionResult {
  cniVersion: string;
  supportedVersions: string[];
}

/** One entry of `cni.dev/valid-attachments` (GC). */
export interface GcAttachment {
  containerID: string;
  ifname: string;
}

export interface IpamConf {
  type: string;
  [key: string]: unknown;
}

/** A plugin's entry in a conflist: `name` and `cniVersion` are injected by the runtime. */
export interface PluginConf {
  type: string;
  capabilities?: Record<string, boolean>;
  ipam?: IpamConf;
  dns?: CniDns;
  args?: Record<string, unknown>;
  [key: string]: unknown;
}

/** The network configuration a plugin receives on stdin. */
export interface NetConf extends PluginConf {
  cniVersion: string;
  cniVersions?: string[];
  name: string;
  runtimeConfig?: Record<string, unknown>;
  prevResult?: CniResult;
  'cni.dev/valid-attachments'?: GcAttachment[];
}

export interface NetConfList {
  /** The version in effect: after loading, the one picked from `cniVersion`/`cniVersions`. */
  cniVersion: string;
  cniVersions?: string[];
  name: string;
  disableCheck?: boolean;
  disableGC?: boolean;
  plugins: PluginConf[];
  [key: string]: unknown;
}

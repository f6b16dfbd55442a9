import type { CniDns, CniRoute, IpamConf, NetConfList } from '../../cni/types.js';

export interface NadRef {
  namespace: string;
  name: string;
}

/** A NetworkAttachmentDefinition as read from the API (only what matters here). */
export interface NetworkAttachmentDefinition {
  metadata: { name?: string; namespace?: string };
  spec?: { config?: string };
}

export interface StaticAddress {
  /** With prefix, e.g. 10.1.1.5/24. */
  address: string;
  gateway?: string;
}

/** Cluster-wide pools (IPPool objects), tried in order. */
export interface PoolIpam {
  type: 'seine';
  ippools: string[];
}

/** Addresses from the networks annotation's `ips`, else from `addresses`. */
export interface StaticIpam {
  type: 'static';
  addresses: StaticAddress[];
  routes: CniRoute[];
  dns?: CniDns;
}

/** Any other IPAM plugin (host-local, dhcp, whereabouts, ...), executed as CNI does. */
export interface DelegatedIpam {
  type: 'delegated';
  plugin: string;
  conf: IpamConf;
}

export type SeineIpam = PoolIpam | StaticIpam | DelegatedIpam;

/** Seine's own VLAN or overlay network (a segment on its own bridge), resolved: defaults applied. */
export interface SegmentNetwork {
  networkType: 'vlan' | 'overlay';
  /** VLAN id, 1..4094 (vlan networks). */
  vlan?: number;
  /** VXLAN network identifier, 1..16777215 (overlay networks). */
  vni?: number;
  /** Pod interface MTU; absent: the agent's default (the uplink's for VLAN, minus encapsulation for overlay). */
  mtu?: number;
  /** The OVS bridge (see bridges.ts for defaults). */
  bridge: string;
  /** The NAD's uplink for a VLAN bridge, if it names one (nodes may override it). */
  uplink?: string;
  ipam: SeineIpam;
}

/**
 * CNF ports for service chains (`networkType: function`): interfaces that carry only what a chain steers into
 * them, on the bridge of the network they are bound to. No addresses, no routes, no flows of their own; that
 * network's MTU.
 */
export interface FunctionNetwork {
  networkType: 'function';
  /** The Seine VLAN or overlay NAD whose bridge (and VLAN or VNI) the port joins; absent: the pod network. */
  network?: NadRef;
}

export type SeineNetwork = SegmentNetwork | FunctionNetwork;

interface NadNetworkBase {
  ref: NadRef;
  /** The CNI network name: the config's `name`, else the NAD's name. */
  name: string;
}

/** The NAD selects Seine's own plugin (first plugin of the list; later ones are chained after it). */
export interface SeineNadNetwork extends NadNetworkBase {
  kind: 'seine';
  /** The list as a runtime would run it (a single config becomes a one-plugin list). */
  list: NetConfList;
  network: SeineNetwork;
}

/** Any other plugin or list: executed as CNI plugins, Seine only passes the attachment through. */
export interface DelegatedNadNetwork extends NadNetworkBase {
  kind: 'delegated';
  list: NetConfList;
}

/** No spec.config: the node's CNI configuration file of network `name` is used (see loadNodeNetworkConfig). */
export interface NodeFileNadNetwork extends NadNetworkBase {
  kind: 'node-file';
}

export type NadNetwork = SeineNadNetwork | DelegatedNadNetwork | NodeFileNadNetwork;

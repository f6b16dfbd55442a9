import type { CniRoute } from '../../cni/types.js';

/**
 * The secondary-network data plane on one node: Seine's own VLAN and overlay networks, each on its own OVS
 * bridge, separate from the primary `br-int`. The agent decides what to attach (from NADs and the pod
 * annotation) and calls this; this owns bridges, ports, uplinks, tunnels and flows.
 */
export interface SecondaryDatapath {
  /** Converges a network's bridge: VLAN trunk bridge with its uplink, or the overlay bridge of a VNI. Idempotent. */
  ensureNetwork(net: NetworkRealization): Promise<void>;
  /** Creates the pod interface (veth, addresses, routes, MAC, MTU) and its port on the network's bridge. */
  attach(att: SecondaryAttachment): Promise<AttachedInterface>;
  /** Removes a pod interface's port and veth; already gone is fine. */
  detach(hostIfname: string): Promise<void>;
  /** The nodes (underlay IPs) that have pods on an overlay VNI besides this one: tunnels and flooding follow. */
  setOverlayPeers(vni: number, peerNodeIps: readonly string[]): Promise<void>;
  /** Every secondary attachment found on this node's bridges (from OVSDB external_ids), for restarts. */
  attachments(): AttachedInterface[];
  /** Puts flows and addresses back after ovs-vswitchd lost them (it restarted). */
  restore(): Promise<void>;
  /** VNIs with at least one local attachment (published for peers). */
  localVnis(): number[];
}

export interface NetworkRealization {
  /**
   * `function`: a CNF's port for steered traffic only (service chains). Unbound, it goes on an existing bridge
   * the caller names (the pod network's), with no flows: the chain feature owns what enters and leaves it.
   * Bound (`boundTo`), it joins that Seine VLAN or overlay network's bridge but takes no part in its switching.
   */
  networkType: 'vlan' | 'overlay' | 'function';
  bridge: string;
  /** VLAN networks: the trunk uplink on this node, if any (without one, the bridge is node-local). */
  uplink?: string;
  vlan?: number;
  vni?: number;
  /**
   * Function ports only: the VLAN or overlay network the port is bound to, as that network's own attachments
   * realize it (same `bridge`); the port is an access port of its VLAN, or a port of its VNI's bridge.
   */
  boundTo?: NetworkRealization;
}

export interface SecondaryAttachment {
  network: NetworkRealization;
  /** Pod netns path. */
  netns: string;
  /** Interface name in the pod (net1, ...). */
  ifname: string;
  /** Host-side veth and OVS port name (<= 15 chars). */
  hostIfname: string;
  mac: string;
  mtu: number;
  /** Addresses with prefix (may be empty: L2-only attachment). */
  addresses: string[];
  /** Routes to add in the pod via this interface (e.g. a default route when `default-route` is asked). */
  routes: CniRoute[];
  /**
   * Recorded on the OVS port: container id, pod, NAD, interface, IPAM owner... (the store after a restart).
   * A function port needs the pod identity keys of POD_EXT (functionPorts() reads them back).
   */
  externalIds: Record<string, string>;
}

export interface AttachedInterface {
  hostIfname: string;
  ofport: number;
  bridge: string;
  externalIds: Record<string, string>;
}

/** A secondary bridge's ports, as Traceflow needs them to say where a packet goes. */
export interface BridgePorts {
  kind: 'trunk' | 'overlay';
  /** A trunk bridge's uplink to the other nodes. */
  uplink?: { name: string; ofport: number };
  /** An overlay bridge's tunnels, by the peer node's IP. */
  tunnels: Array<{ name: string; ofport: number; remoteIp: string }>;
  /** The service chains' tunnel of the bridge (its key and remote from the flows), when a chain runs on it. */
  chainTunnel?: { name: string; ofport: number };
  /** Pod ports (function ports left out): the pod as namespace/name, its interface's name and MAC, an access port's VLAN. */
  pods: Array<{ name: string; ofport: number; mac: string; vlan?: number; pod: string; ifname: string }>;
}

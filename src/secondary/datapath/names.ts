import { createHash } from 'node:crypto';
import ipaddr from 'ipaddr.js';

/**
 * UDP port of the secondary overlay's VXLAN tunnels. The primary network's flow-based VXLAN port
 * (remote_ip=flow, key=flow) owns 4789 on the same ovs-vswitchd; a second VXLAN port with a fixed key on
 * 4789 would compete with it for incoming packets, so the overlay takes its own port. 4790 is the
 * IANA port of VXLAN-GPE: packet analysers decode it as such, which is cosmetic here.
 */
export const OVERLAY_VXLAN_PORT = 4790;

/** Port / bridge external_ids written by the secondary datapath. */
export const EXT = {
  owner: 'seine-owner',
  bridge: 'seine-bridge',
  networkType: 'seine-network-type',
  vlan: 'seine-vlan',
  vni: 'seine-vni',
  netns: 'seine-netns',
  ifname: 'seine-ifname',
  mac: 'seine-mac',
  mtu: 'seine-mtu',
  addresses: 'seine-addresses',
  peer: 'seine-peer',
  /** Function ports: "ns/name" of the NAD of the VLAN or overlay network they are bound to; absent or "": the pod network. */
  functionNetwork: 'seine-function-network',
} as const;

/**
 * Pod identity keys on a pod's OVS port, the same on the primary network's ports and on the secondary
 * attachments' (the agent writes them); function ports must carry them so a chain finds its CNF's ports.
 */
export const POD_EXT = {
  containerId: 'container-id',
  podNamespace: 'pod-namespace',
  podName: 'pod-name',
  podUid: 'pod-uid',
} as const;

/** seine-owner values: pod ports (the attachments), tunnel ports, VLAN uplinks, and the bridges themselves. */
export const OWNER = {
  pod: 'secondary',
  tunnel: 'secondary-tunnel',
  uplink: 'secondary-uplink',
  bridge: 'secondary',
} as const;

export const MAX_VNI = 0xffffff;

/**
 * The tunnel port to `peer` on the bridge of `vni`: `v` + the VNI as 6 hex digits + the peer's IPv4
 * address as 8 hex digits (e.g. `v001389c0a84d02` for VNI 5001 to 192.168.77.2), exactly 15 characters.
 * The mapping is one-to-one, so names never collide, and OVSDB's Port and Interface names are unique
 * across all bridges, which is why the VNI is part of it. An IPv6 peer takes 8 hex digits of a hash
 * instead; the caller checks that two peers of one VNI do not meet there.
 */
export function tunnelPortName(vni: number, peer: string): string {
  if (!Number.isInteger(vni) || vni < 1 || vni > MAX_VNI) throw new RangeError(`VNI ${vni} outside 1..${MAX_VNI}`);
  const addr = ipaddr.parse(peer);
  const host =
    addr.kind() === 'ipv4'
      ? Buffer.from(addr.toByteArray()).toString('hex')
      : createHash('sha256').update(addr.toNormalizedString()).digest('hex').slice(0, 8);
  return `v${vni.toString(16).padStart(6, '0')}${host}`;
}

// The secondary network a chain lives on, as its NetworkAttachmentDefinition says; shared by the agents (where to
// realize the chain) and the controller (whether it can be realized at all).
import { parseNad, type NetworkAttachmentDefinition } from '../../secondary/nad/index.js';
import { segmentZone } from '../datapath/layout.js';

/** A Seine VLAN or overlay network as its chains need it. */
export interface ChainNetwork {
  /** "namespace/name" of the NAD. */
  network: string;
  bridge: string;
  /** The network's conntrack zone on every node (segmentZone). */
  zone: number;
}

/** The network of a NAD, or why chains cannot live there (only Seine's own VLAN and overlay networks can carry them). */
export function chainNetworkOf(nad: NetworkAttachmentDefinition): ChainNetwork | { problem: string } {
  const ref = `${nad.metadata.namespace}/${nad.metadata.name}`;
  let parsed;
  try {
    parsed = parseNad(nad);
  } catch (e) {
    return { problem: `${ref} has an invalid config: ${(e as Error).message}` };
  }
  if (parsed.kind !== 'seine' || parsed.network.networkType === 'function') return { problem: `${ref} is not a Seine VLAN or overlay network` };
  const n = parsed.network;
  const zone = n.networkType === 'vlan' ? segmentZone({ networkType: 'vlan', vlan: n.vlan! }) : segmentZone({ networkType: 'overlay', vni: n.vni! });
  return { network: ref, bridge: n.bridge, zone };
}


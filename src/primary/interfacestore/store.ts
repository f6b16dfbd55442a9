import type { InspectedInterface } from '../../agent/feature.js';
import type { PortRow, Vswitch } from '../../ovs/ovsdb/index.js';

/** A pod interface attached to the integration bridge. */
export interface PodInterface {
  containerId: string;
  ifname: string;
  podNamespace: string;
  podName: string;
  podUid: string;
  ip: string;
  mac: string;
  netns: string;
  /** Host-side veth, also the OVS port name. */
  portName: string;
  ofport: number;
  /** The CNI network (conflist `name`) of the ADD; absent on ports made before it was recorded. */
  network?: string;
  /** Identity of the namespace at `netns` when attached (see sandboxIdentity): a namespace re-made there differs. */
  netnsId?: string;
  /** Chained mode: the MAC of the link's host end, which the pod knows as its next hop's (its neighbour entry). */
  peerMac?: string;
}

/** external_ids keys on a pod's OVS port: they are the interface store after a restart. */
export const EXT = {
  owner: 'seine-owner',
  containerId: 'container-id',
  podNamespace: 'pod-namespace',
  podName: 'pod-name',
  podUid: 'pod-uid',
  ip: 'ip',
  mac: 'mac',
  netns: 'netns',
  ifname: 'ifname',
  network: 'cni-network',
  netnsId: 'netns-id',
  peerMac: 'peer-mac',
} as const;

export const PRIMARY_OWNER = 'primary';
/** Owner of the pods' ports in chained mode: links the primary CNI made, taken over by Seine. */
export const CHAINED_OWNER = 'chained';

/** Whether a port is a pod's link of the pod network (made by Seine, or taken over in chained mode). */
export function isPodNetworkPort(externalIds: Readonly<Record<string, string>>): boolean {
  return externalIds[EXT.owner] === PRIMARY_OWNER || externalIds[EXT.owner] === CHAINED_OWNER;
}

export function portExternalIds(itf: Omit<PodInterface, 'portName' | 'ofport'>, owner = PRIMARY_OWNER): Record<string, string> {
  return {
    [EXT.owner]: owner,
    [EXT.containerId]: itf.containerId,
    [EXT.podNamespace]: itf.podNamespace,
    [EXT.podName]: itf.podName,
    [EXT.podUid]: itf.podUid,
    [EXT.ip]: itf.ip,
    [EXT.mac]: itf.mac,
    [EXT.netns]: itf.netns,
    [EXT.ifname]: itf.ifname,
    ...(itf.network ? { [EXT.network]: itf.network } : {}),
    ...(itf.netnsId ? { [EXT.netnsId]: itf.netnsId } : {}),
    ...(itf.peerMac ? { [EXT.peerMac]: itf.peerMac } : {}),
  };
}

/** A pod's interface on the pod network as the agent's read-only API shows it (`network`: of an ADD that recorded none). */
export function inspectedInterface(itf: PodInterface, bridge: string, network: string): InspectedInterface {
  return {
    containerId: itf.containerId,
    netns: itf.netns,
    podNamespace: itf.podNamespace,
    podName: itf.podName,
    podUid: itf.podUid,
    ifname: itf.ifname,
    kind: 'pod-network',
    network: itf.network ?? network,
    ips: [itf.ip],
    ...(itf.mac ? { mac: itf.mac } : {}),
    bridge,
    port: itf.portName,
    ofport: itf.ofport,
  };
}

const key = (containerId: string, ifname: string): string => `${containerId}/${ifname}`;

/**
 * What is attached to the integration bridge, keyed by container and interface. Kept in memory for the hot
 * path and rebuilt from OVSDB external_ids when the agent starts, so a restarted agent knows every pod.
 */
export class InterfaceStore {
  private readonly byContainer = new Map<string, PodInterface>();

  add(itf: PodInterface): void {
    this.byContainer.set(key(itf.containerId, itf.ifname), itf);
  }

  remove(containerId: string, ifname: string): PodInterface | undefined {
    const k = key(containerId, ifname);
    const itf = this.byContainer.get(k);
    this.byContainer.delete(k);
    return itf;
  }

  get(containerId: string, ifname: string): PodInterface | undefined {
    return this.byContainer.get(key(containerId, ifname));
  }

  byPod(namespace: string, name: string): PodInterface[] {
    return this.list().filter((i) => i.podNamespace === namespace && i.podName === name);
  }

  list(): PodInterface[] {
    return [...this.byContainer.values()];
  }

  get size(): number {
    return this.byContainer.size;
  }

  /**
   * Loads every pod port of `bridge` that `owner` made from the OVSDB cache (each with its external_ids). Ports
   * without a usable ofport are returned apart.
   */
  static fromOvsdb(vswitch: Vswitch, bridge: string, owner = PRIMARY_OWNER): { store: InterfaceStore; broken: PortRow[]; externalIds: Map<string, Readonly<Record<string, string>>> } {
    const store = new InterfaceStore();
    const broken: PortRow[] = [];
    const externalIds = new Map<string, Readonly<Record<string, string>>>();
    const br = vswitch.cache.bridge(bridge);
    const portUuids = new Set(br?.ports ?? []);
    for (const port of vswitch.findPorts({ [EXT.owner]: owner })) {
      if (!portUuids.has(port.uuid)) continue;
      const iface = port.interfaces.map((u) => vswitch.cache.ifaceByUuid(u)).find((i) => i !== undefined);
      const x = port.externalIds;
      if (!iface || iface.ofport === undefined || iface.ofport < 0 || !x[EXT.containerId] || !x[EXT.ip]) {
        broken.push(port);
        continue;
      }
      store.add({
        containerId: x[EXT.containerId]!,
        ifname: x[EXT.ifname] ?? 'eth0',
        podNamespace: x[EXT.podNamespace] ?? '',
        podName: x[EXT.podName] ?? '',
        podUid: x[EXT.podUid] ?? '',
        ip: x[EXT.ip]!,
        mac: x[EXT.mac] ?? '',
        netns: x[EXT.netns] ?? '',
        portName: port.name,
        ofport: iface.ofport,
        ...(x[EXT.network] ? { network: x[EXT.network] } : {}),
        ...(x[EXT.netnsId] ? { netnsId: x[EXT.netnsId] } : {}),
        ...(x[EXT.peerMac] ? { peerMac: x[EXT.peerMac] } : {}),
      });
      externalIds.set(port.name, x);
    }
    return { store, broken, externalIds };
  }
}

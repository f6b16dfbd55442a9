import type { Vswitch } from '../../ovs/ovsdb/index.js';
import { EXT, OWNER, POD_EXT } from './names.js';
import type { SecondaryAttachment } from './types.js';

/**
 * A CNF's port for steered traffic (a `networkType: function` attachment), as the chain feature needs it:
 * where to send frames (ofport), what comes back on it (MAC), and where the interface lives (netns, ifname).
 */
export interface FunctionPort {
  ofport: number;
  /** Host end of the veth, also the OVS port's name. */
  hostIfname: string;
  podNamespace: string;
  podName: string;
  podUid: string;
  /** Interface name inside the pod (e.g. in0). */
  ifname: string;
  /** MAC of the pod end, lowercase. */
  mac: string;
  netns: string;
  containerId: string;
  /** "ns/name" of the VLAN or overlay NAD the port is bound to; "" for the pod network. */
  network: string;
}

/**
 * The function ports on `bridge`, from the Vswitch cache alone (no API call), ordered by pod and interface.
 * A port OVS has not numbered (just added, or its device is gone) is left out: nothing can be sent to it.
 */
export function functionPorts(vswitch: Pick<Vswitch, 'cache'>, bridge: string): FunctionPort[] {
  const out: FunctionPort[] = [];
  for (const p of vswitch.cache.portsOf(bridge)) {
    const x = p.externalIds;
    if (x[EXT.owner] !== OWNER.pod || x[EXT.networkType] !== 'function') continue;
    const ofport = vswitch.cache.iface(p.name)?.ofport;
    if (ofport === undefined || ofport <= 0) continue;
    out.push({
      ofport,
      hostIfname: p.name,
      podNamespace: x[POD_EXT.podNamespace] ?? '',
      podName: x[POD_EXT.podName] ?? '',
      podUid: x[POD_EXT.podUid] ?? '',
      ifname: x[EXT.ifname] ?? '',
      mac: x[EXT.mac] ?? '',
      netns: x[EXT.netns] ?? '',
      containerId: x[POD_EXT.containerId] ?? '',
      network: x[EXT.functionNetwork] ?? '',
    });
  }
  const key = (f: FunctionPort): string => `${f.podNamespace}/${f.podName}/${f.ifname}`;
  return out.sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
}

/**
 * What a function attachment must be, checked before anything is made: no addresses or routes (it carries
 * steered frames only, the pod's own traffic uses its other interfaces), the pod identity on its port, and
 * the bound network's NAD recorded exactly when it is bound to one.
 */
export function checkFunctionAttachment(att: Pick<SecondaryAttachment, 'network' | 'hostIfname' | 'addresses' | 'routes' | 'externalIds'>): void {
  const bad = (what: string): never => {
    throw new RangeError(`function attachment ${att.hostIfname}: ${what}`);
  };
  if (att.addresses.length) bad(`has addresses (${att.addresses.join(', ')}); a function port carries steered traffic only`);
  if (att.routes.length) bad('has routes; a function port carries steered traffic only');
  // A pod's uid may be unknown to the caller (recorded empty); the rest names the pod and its sandbox.
  const missing = Object.values(POD_EXT).filter((k) => att.externalIds[k] === undefined || (k !== POD_EXT.podUid && !att.externalIds[k]));
  if (missing.length) bad(`external_ids lack the pod identity (${missing.join(', ')})`);
  const recorded = att.externalIds[EXT.functionNetwork] ?? '';
  if (att.network.boundTo && !recorded) bad(`is bound to a ${att.network.boundTo.networkType} network but external_ids lack its NAD (${EXT.functionNetwork})`);
  if (!att.network.boundTo && recorded) bad(`records ${EXT.functionNetwork}=${recorded} but is not bound to a network`);
}

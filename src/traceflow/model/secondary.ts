// A trace on a secondary network: its packet and network resolved from the NAD and the pods' network-status. The
// source is the pod's interface on the network, the destination a pod's address and MAC on it, or an address given;
// the MAC of an address given is that of the pod whose interface on the network has it (none: the source's ARP
// request would go unanswered, which the source's agent reports). Only Seine's VLAN and overlay networks are traced:
// their bridges are the ones Seine's flows observe.
import type { V1Pod } from '@kubernetes/client-node';
import ipaddr from 'ipaddr.js';
import { NETWORK_STATUS_ANNOTATION, parseNetworkStatus, type NetworkStatus } from '../../secondary/annotations/index.js';
import { parseNad, type NetworkAttachmentDefinition } from '../../secondary/nad/index.js';
import type { TracePacket, TraceflowSpec, TraceNetwork } from '../api/types.js';
import { isFailure, resolvePacket, type TraceFailure } from './packet.js';

export interface SecondaryTraceFailure {
  reason: TraceFailure['reason'] | 'NetworkNotFound' | 'NetworkNotTraceable' | 'SourceNotAttached' | 'DestinationNotAttached';
  message: string;
}

/** The objects a secondary trace names, as the caller found them. */
export interface SecondaryTraceObjects {
  source?: V1Pod;
  destinationPod?: V1Pod;
  nad?: NetworkAttachmentDefinition;
  /** Every pod, for an address given: whose interface on the network has it. */
  pods?: readonly V1Pod[];
}

/** The NAD a spec's network names: `namespace/name`, or a name in the source's namespace. */
export function networkRef(spec: TraceflowSpec): { namespace: string; name: string } {
  const n = spec.network!;
  const slash = n.indexOf('/');
  return slash < 0 ? { namespace: spec.source.namespace, name: n } : { namespace: n.slice(0, slash), name: n.slice(slash + 1) };
}

/** A pod's network-status; none when it has none or it cannot be read. */
function statusOf(pod: V1Pod): NetworkStatus[] {
  try {
    return parseNetworkStatus(pod.metadata?.annotations?.[NETWORK_STATUS_ANNOTATION]);
  } catch {
    return [];
  }
}

/** A pod's network-status element for the network (its first IPv4 address), if it is attached. */
function attachment(pod: V1Pod, network: string): (NetworkStatus & { ipv4: string }) | undefined {
  for (const s of statusOf(pod)) {
    if (s.name !== network) continue;
    const ipv4 = (s.ips ?? []).find((ip) => ipaddr.IPv4.isValidFourPartDecimal(ip));
    if (ipv4) return { ...s, ipv4 };
  }
  return undefined;
}

const podName = (p: V1Pod): string => `${p.metadata?.namespace}/${p.metadata?.name}`;

export function resolveSecondaryPacket(spec: TraceflowSpec, found: SecondaryTraceObjects, random: () => number = Math.random): { packet: TracePacket; network: TraceNetwork } | SecondaryTraceFailure {
  const ref = networkRef(spec);
  const name = `${ref.namespace}/${ref.name}`;
  if (!found.nad) return { reason: 'NetworkNotFound', message: `NetworkAttachmentDefinition ${name} not found` };
  let parsed;
  try {
    parsed = parseNad(found.nad);
  } catch (e) {
    return { reason: 'NetworkNotTraceable', message: `NetworkAttachmentDefinition ${name} is not valid: ${e instanceof Error ? e.message : String(e)}` };
  }
  if (parsed.kind !== 'seine' || parsed.network.networkType === 'function') {
    return { reason: 'NetworkNotTraceable', message: `${name} is not a Seine VLAN or overlay network: only those have bridges Seine observes` };
  }
  const segment = parsed.network;

  // The pod network's checks of the source (found, running, not host network) and its headers and their defaults;
  // the destination is resolved on the network below.
  const { network: _pod, ...onPodNetwork } = spec;
  const base = resolvePacket({ ...onPodNetwork, destination: { ip: spec.destination.ip ?? '0.0.0.0' } }, found.source ? { source: found.source } : {}, random);
  if (isFailure(base)) return base;
  const src = attachment(found.source!, name);
  if (!src?.interface || !src.mac) return { reason: 'SourceNotAttached', message: `pod ${podName(found.source!)} has no interface with an IPv4 address on ${name} (its network-status)` };

  let destinationIP: string;
  let owner: V1Pod | undefined;
  let destinationMAC: string | undefined;
  if (spec.destination.pod !== undefined) {
    if (!found.destinationPod) return { reason: 'DestinationNotFound', message: `pod ${spec.destination.namespace ?? spec.source.namespace}/${spec.destination.pod} not found` };
    const dst = attachment(found.destinationPod, name);
    if (!dst) return { reason: 'DestinationNotAttached', message: `pod ${podName(found.destinationPod!)} has no interface with an IPv4 address on ${name} (its network-status)` };
    destinationIP = dst.ipv4;
    destinationMAC = dst.mac;
    owner = found.destinationPod;
  } else {
    destinationIP = spec.destination.ip!;
    for (const p of found.pods ?? []) {
      const holder = statusOf(p).find((s) => s.name === name && s.ips?.includes(destinationIP));
      if (holder) {
        owner = p;
        destinationMAC = holder.mac;
        break;
      }
    }
  }
  const packet: TracePacket = {
    ...base,
    sourceIP: src.ipv4,
    destinationIP,
    sourceMAC: src.mac.toLowerCase(),
    ...(destinationMAC ? { destinationMAC: destinationMAC.toLowerCase() } : {}),
  };
  const network: TraceNetwork = {
    name,
    type: segment.networkType,
    bridge: segment.bridge,
    ...(segment.vlan !== undefined ? { vlan: segment.vlan } : {}),
    ...(segment.vni !== undefined ? { vni: segment.vni } : {}),
    interface: src.interface,
    ...(owner?.spec?.nodeName ? { destinationNode: owner.spec.nodeName } : {}),
  };
  return { packet, network };
}

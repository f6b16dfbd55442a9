// The packet a trace injects, resolved from its spec and the objects it names: the source pod's address, the
// destination's (a pod's IP, a Service's ClusterIP and port, or the address given), and the headers with their
// defaults; for live traffic, what the pod's packet must match (only the ports asked for). What cannot be
// resolved is a failure with a reason for the status.
import type { V1Pod, V1Service } from '@kubernetes/client-node';
import ipaddr from 'ipaddr.js';
import { DEFAULT_DESTINATION_PORT, DEFAULT_TTL, TCP_SYN, type TracePacket, type TraceflowSpec } from '../api/types.js';

export interface TraceFailure {
  reason: 'SourceNotFound' | 'SourceNotRunning' | 'SourceHostNetwork' | 'DestinationNotFound' | 'DestinationHasNoAddress' | 'ServiceHasNoClusterIP' | 'ServiceHasNoPort';
  message: string;
}

/** The objects the spec names, as the caller found them (undefined: not found). */
export interface TraceObjects {
  source?: V1Pod;
  destinationPod?: V1Pod;
  service?: V1Service;
}

/** The first IPv4 address of a pod on the pod network. */
function podIPv4(pod: V1Pod): string | undefined {
  const ips = [...(pod.status?.podIPs ?? []).map((p) => p.ip), pod.status?.podIP].filter((ip): ip is string => !!ip);
  return ips.find((ip) => ipaddr.IPv4.isValidFourPartDecimal(ip));
}

/** Ephemeral source ports (Linux's default range), for a trace that names none. */
export function pickSourcePort(random: () => number = Math.random): number {
  return 32768 + Math.floor(random() * (60999 - 32768 + 1));
}

export function resolvePacket(spec: TraceflowSpec, found: TraceObjects, random: () => number = Math.random): TracePacket | TraceFailure {
  const src = spec.source;
  const dst = spec.destination;
  const dstNamespace = dst.namespace ?? src.namespace;
  if (!found.source) return { reason: 'SourceNotFound', message: `pod ${src.namespace}/${src.pod} not found` };
  if (found.source.spec?.hostNetwork) return { reason: 'SourceHostNetwork', message: `pod ${src.namespace}/${src.pod} uses the node's network: it has no port on the pod network to inject at` };
  const sourceIP = found.source.status?.phase === 'Running' ? podIPv4(found.source) : undefined;
  if (!sourceIP) return { reason: 'SourceNotRunning', message: `pod ${src.namespace}/${src.pod} is not running with an IPv4 address` };

  const protocol = spec.packet?.protocol ?? 'TCP';
  let destinationIP: string;
  let servicePort: number | undefined;
  if (dst.pod !== undefined) {
    if (!found.destinationPod) return { reason: 'DestinationNotFound', message: `pod ${dstNamespace}/${dst.pod} not found` };
    const ip = podIPv4(found.destinationPod);
    if (!ip) return { reason: 'DestinationHasNoAddress', message: `pod ${dstNamespace}/${dst.pod} has no IPv4 address (not running yet?)` };
    destinationIP = ip;
  } else if (dst.service !== undefined) {
    const svc = found.service;
    if (!svc) return { reason: 'DestinationNotFound', message: `Service ${dstNamespace}/${dst.service} not found` };
    const ip = svc.spec?.clusterIP;
    if (!ip || ip === 'None' || !ipaddr.IPv4.isValidFourPartDecimal(ip)) return { reason: 'ServiceHasNoClusterIP', message: `Service ${dstNamespace}/${dst.service} has no IPv4 ClusterIP (headless or another family)` };
    destinationIP = ip;
    if (protocol !== 'ICMP') {
      servicePort = (svc.spec?.ports ?? []).find((p) => (p.protocol ?? 'TCP') === protocol)?.port;
      if (spec.packet?.destinationPort === undefined && servicePort === undefined) return { reason: 'ServiceHasNoPort', message: `Service ${dstNamespace}/${dst.service} has no ${protocol} port` };
    }
  } else {
    destinationIP = dst.ip!;
  }

  const ttl = spec.packet?.ttl ?? DEFAULT_TTL;
  if (protocol === 'ICMP') return { sourceIP, destinationIP, protocol, ttl };
  if (spec.liveTraffic) {
    // What a real packet must match: the ports asked for, any other.
    const { sourcePort, destinationPort } = spec.packet ?? {};
    return { sourceIP, destinationIP, protocol, ...(sourcePort !== undefined ? { sourcePort } : {}), ...(destinationPort !== undefined ? { destinationPort } : {}), ttl };
  }
  return {
    sourceIP,
    destinationIP,
    protocol,
    sourcePort: spec.packet?.sourcePort ?? pickSourcePort(random),
    destinationPort: spec.packet?.destinationPort ?? servicePort ?? DEFAULT_DESTINATION_PORT,
    ...(protocol === 'TCP' ? { tcpFlags: spec.packet?.tcpFlags ?? TCP_SYN } : {}),
    ttl,
  };
}

export function isFailure(r: TracePacket | TraceFailure): r is TraceFailure {
  return 'reason' in r;
}

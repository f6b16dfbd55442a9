import ipaddr from 'ipaddr.js';
import { checkIfname, UnsafeArgumentError } from '../../host/ip.js';

/** Routes into OVS for Services carry this protocol number (the pod network's routes use 117 and delete unknown 117s). */
export const SERVICE_ROUTE_PROTO = 118;
/** The nftables table (family ip) the Service proxy owns; the pod network's table `seine` is another. */
export const NFT_SERVICES_TABLE = 'seine-services';
/** Next hop of every route into OVS for Services (a permanent neighbour = the gateway's MAC). */
export const SERVICE_GATEWAY_VIRTUAL_IP = '169.254.0.253';
/**
 * Chained mode: connections of outside clients that OVS sent back toward the network (their endpoint is on another
 * node) carry this connection mark, and their replies this packet mark, which routes them back into OVS.
 */
export const RETURN_MARK = 0x200000;
/** The route table of those replies: into OVS. */
export const RETURN_TABLE = 119;
/** Rule priorities: marked packets from the gateway use the main table (no loop), other marked ones RETURN_TABLE. */
export const RETURN_RULE_PRIORITIES = { fromGateway: 110, marked: 111 } as const;
/** Node-port traffic is DNATed to this address (same port) and routed into OVS, which matches it. */
export { NODEPORT_VIRTUAL_IP } from '../../primary/pipeline/tables.js';

export type L4Protocol = 'TCP' | 'UDP' | 'SCTP';
export const L4_PROTOCOLS: readonly L4Protocol[] = ['TCP', 'UDP', 'SCTP'];

/** An address, protocol and port (a ClusterIP or external address frontend). */
export interface AddressPort {
  ip: string;
  protocol: L4Protocol;
  port: number;
}

export interface NodePortRule {
  protocol: L4Protocol;
  port: number;
  /** externalTrafficPolicy Cluster: traffic from outside is masqueraded to the gateway IP too. */
  masquerade: boolean;
  /** No endpoint at all: connections are rejected instead of DNATed. */
  reject: boolean;
}

/** What the node's kernel does for Services; ServiceHostNetwork.sync converges the node to it. */
export interface HostServicesState {
  /** The gateway interface into OVS (`seine-gw0`). */
  gatewayIf: string;
  /** The gateway's address: source of the node's Service traffic, and what masquerading translates to. */
  gatewayIp: string;
  gatewayMac: string;
  /** Routed into OVS. */
  serviceCidr: string;
  /** LoadBalancer ingress IPs and externalIPs: routed into OVS like the service CIDR (/32 routes). */
  externalAddresses: string[];
  /** Service address + port with no endpoint: connections are rejected (TCP RST, ICMP port unreachable for UDP and SCTP). */
  rejects: AddressPort[];
  /**
   * Node ports. Traffic to any local address of the node (not loopback) on this port, from outside, from pods
   * (arriving on the gateway) or from the node itself, is DNATed to NODEPORT_VIRTUAL_IP:port; `reject` = no
   * endpoint (reject instead); `masquerade` = externalTrafficPolicy Cluster: masqueraded to the gateway IP on its
   * way into OVS (replies from an endpoint on another node must come back here). Traffic from pods and from the
   * node itself is always masqueraded.
   */
  nodePorts: NodePortRule[];
  /**
   * External addresses + ports of externalTrafficPolicy Cluster Services: connections to them are masqueraded to
   * the gateway IP on their way into OVS.
   */
  masqueradeExternal: AddressPort[];
  /**
   * Chained mode: the gateway holds the node's own IP and the primary CNI routes pods. A reply to the node's own
   * address could never come back into OVS, so nothing is masqueraded on its way in and the node's own Service
   * traffic is not taken (the cloud's kube-proxy keeps it). Instead, a connection of a client that is not one of
   * this node's pods, which OVS sends back toward another node's endpoint, is masqueraded on its way out, and its
   * replies are routed back into OVS (RETURN_MARK).
   */
  chained?: boolean;
}

/** A state that cannot be realized as given; thrown by sync before anything on the node changes. */
export class HostServicesStateError extends Error {
  constructor(
    /** The field at fault, e.g. `nodePorts[3].port`. */
    readonly field: string,
    readonly value: unknown,
    reason: string,
  ) {
    super(`${field} ${JSON.stringify(value)} ${reason}`);
    this.name = 'HostServicesStateError';
  }
}

const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;

function ipv4(field: string, value: unknown): string {
  if (typeof value !== 'string' || !ipaddr.IPv4.isValidFourPartDecimal(value)) throw new HostServicesStateError(field, value, 'is not an IPv4 address');
  return ipaddr.IPv4.parse(value).toString();
}

function protocol(field: string, value: unknown): L4Protocol {
  if (!L4_PROTOCOLS.includes(value as L4Protocol)) throw new HostServicesStateError(field, value, `is not one of ${L4_PROTOCOLS.join(', ')}`);
  return value as L4Protocol;
}

function port(field: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > 65535) throw new HostServicesStateError(field, value, 'is not a port (1..65535)');
  return value;
}

function flag(field: string, value: unknown): boolean {
  if (typeof value !== 'boolean') throw new HostServicesStateError(field, value, 'is not a boolean');
  return value;
}

function list(field: string, value: unknown): unknown[] {
  if (!Array.isArray(value)) throw new HostServicesStateError(field, value, 'is not a list');
  return value;
}

function addressPorts(field: string, value: unknown): AddressPort[] {
  const byKey = new Map<string, AddressPort>();
  list(field, value).forEach((e, i) => {
    const item = (e ?? {}) as Partial<AddressPort>;
    const ap = { ip: ipv4(`${field}[${i}].ip`, item.ip), protocol: protocol(`${field}[${i}].protocol`, item.protocol), port: port(`${field}[${i}].port`, item.port) };
    byKey.set(`${ap.ip}/${ap.protocol}/${ap.port}`, ap);
  });
  return [...byKey.values()];
}

function cidr(field: string, value: unknown): string {
  let normal: string;
  try {
    const [addr, bits] = ipaddr.IPv4.parseCIDR(value as string);
    normal = `${ipaddr.IPv4.networkAddressFromCIDR(`${addr.toString()}/${bits}`).toString()}/${bits}`;
    if (normal !== `${addr.toString()}/${bits}`) throw new HostServicesStateError(field, value, 'has host bits set');
  } catch (e) {
    if (e instanceof HostServicesStateError) throw e;
    throw new HostServicesStateError(field, value, 'is not an IPv4 CIDR');
  }
  return normal;
}

/**
 * Checks every field (anything that reaches an nft script or an ip batch is a plain address, port, protocol or
 * interface name) and returns the state with addresses in one spelling and duplicates dropped. A node port
 * listed twice with different flags is refused: it would be both DNATed and rejected.
 */
export function normalizeHostServicesState(state: HostServicesState): HostServicesState {
  let gatewayIf: string;
  try {
    gatewayIf = checkIfname(state.gatewayIf, 'gatewayIf');
  } catch (e) {
    if (e instanceof UnsafeArgumentError) throw new HostServicesStateError('gatewayIf', state.gatewayIf, e.reason);
    throw e;
  }
  if (typeof state.gatewayMac !== 'string' || !MAC_RE.test(state.gatewayMac)) throw new HostServicesStateError('gatewayMac', state.gatewayMac, 'is not a MAC address');
  const serviceCidr = cidr('serviceCidr', state.serviceCidr);
  const externalAddresses = [...new Set(list('externalAddresses', state.externalAddresses).map((a, i) => ipv4(`externalAddresses[${i}]`, a)))];
  const nodePorts = new Map<string, NodePortRule>();
  list('nodePorts', state.nodePorts).forEach((e, i) => {
    const item = (e ?? {}) as Partial<NodePortRule>;
    const f = `nodePorts[${i}]`;
    const np = { protocol: protocol(`${f}.protocol`, item.protocol), port: port(`${f}.port`, item.port), masquerade: flag(`${f}.masquerade`, item.masquerade), reject: flag(`${f}.reject`, item.reject) };
    const k = `${np.protocol}/${np.port}`;
    const prev = nodePorts.get(k);
    if (prev && (prev.masquerade !== np.masquerade || prev.reject !== np.reject)) throw new HostServicesStateError(f, item, `conflicts with another entry for ${k}`);
    nodePorts.set(k, np);
  });
  return {
    gatewayIf,
    gatewayIp: ipv4('gatewayIp', state.gatewayIp),
    gatewayMac: state.gatewayMac.toLowerCase(),
    serviceCidr,
    externalAddresses,
    rejects: addressPorts('rejects', state.rejects),
    nodePorts: [...nodePorts.values()],
    masqueradeExternal: addressPorts('masqueradeExternal', state.masqueradeExternal),
    ...(state.chained !== undefined ? { chained: flag('chained', state.chained) } : {}),
  };
}

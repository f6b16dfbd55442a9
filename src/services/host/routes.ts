// Routes and the neighbour that send Service traffic into OVS: computed from what is installed, so a sync
// touches only what differs and never takes down a route that stays.
import { IpBatch, type Route } from '../../host/ip.js';
import { NODEPORT_VIRTUAL_IP, SERVICE_GATEWAY_VIRTUAL_IP, SERVICE_ROUTE_PROTO, type HostServicesState } from './state.js';

/** What `ip -json neigh show` reports of one entry (fields read here). */
export interface Neighbour {
  dst: string;
  dev: string;
  lladdr?: string;
  state?: string[];
}

const PROTO = String(SERVICE_ROUTE_PROTO);

/** `ip -json` prints a host route without its /32. */
const prefix = (dst: string): string => (dst.includes('/') ? dst : `${dst}/32`);

export const isServiceRoute = (r: Route): boolean => r.protocol === PROTO;

/** Destinations routed into OVS: the service CIDR, the node-port virtual IP, every external address. */
export function serviceRouteDestinations(state: HostServicesState): string[] {
  // Chained, the node's own traffic to Services is not taken (state.chained): no route for the service CIDR.
  return [...new Set([...(state.chained ? [] : [state.serviceCidr]), `${NODEPORT_VIRTUAL_IP}/32`, ...state.externalAddresses.map((a) => `${a}/32`)])];
}

/**
 * The ip batch that converges the node's proto-118 routes and the gateway neighbour to `state` (normalized),
 * from the installed `routes` (main table) and the `neighbours` of SERVICE_GATEWAY_VIRTUAL_IP. Empty when
 * nothing differs.
 */
export function serviceRoutesBatch(state: HostServicesState, routes: readonly Route[], neighbours: readonly Neighbour[]): IpBatch {
  const batch = new IpBatch();
  for (const n of neighbours) if (n.dev !== state.gatewayIf) batch.command('neigh', 'del', SERVICE_GATEWAY_VIRTUAL_IP, 'dev', n.dev);
  const neighbour = neighbours.find((n) => n.dev === state.gatewayIf);
  if (!neighbour || neighbour.lladdr?.toLowerCase() !== state.gatewayMac || !neighbour.state?.includes('PERMANENT')) {
    batch.replaceNeigh(SERVICE_GATEWAY_VIRTUAL_IP, state.gatewayMac, state.gatewayIf);
  }
  const installed = new Map(routes.filter(isServiceRoute).map((r) => [prefix(r.dst), r]));
  const desired = serviceRouteDestinations(state);
  for (const dst of desired) {
    const have = installed.get(dst);
    if (have && have.gateway === SERVICE_GATEWAY_VIRTUAL_IP && have.dev === state.gatewayIf && have.prefsrc === state.gatewayIp) continue;
    batch.command('route', 'replace', dst, 'via', SERVICE_GATEWAY_VIRTUAL_IP, 'dev', state.gatewayIf, 'onlink', 'proto', PROTO, 'src', state.gatewayIp);
  }
  const wanted = new Set(desired);
  for (const dst of installed.keys()) if (!wanted.has(dst)) batch.command('route', 'del', dst, 'proto', PROTO);
  return batch;
}

/** Deletes every proto-118 route and every neighbour entry of SERVICE_GATEWAY_VIRTUAL_IP. */
export function serviceRoutesRemoval(routes: readonly Route[], neighbours: readonly Neighbour[]): IpBatch {
  const batch = new IpBatch();
  for (const r of routes.filter(isServiceRoute)) batch.command('route', 'del', prefix(r.dst), 'proto', PROTO);
  for (const n of neighbours) batch.command('neigh', 'del', SERVICE_GATEWAY_VIRTUAL_IP, 'dev', n.dev);
  return batch;
}

import type { Route } from '../../src/host/ip.js';
import {
  normalizeHostServicesState,
  NODEPORT_VIRTUAL_IP,
  SERVICE_GATEWAY_VIRTUAL_IP,
  serviceRoutesBatch,
  serviceRoutesRemoval,
  type HostServicesState,
  type Neighbour,
} from '../../src/services/host/index.js';

const state: HostServicesState = normalizeHostServicesState({
  gatewayIf: 'seine-gw0',
  gatewayIp: '10.10.0.1',
  gatewayMac: '0a:00:00:00:00:01',
  serviceCidr: '10.96.0.0/16',
  externalAddresses: ['198.51.100.7'],
  rejects: [],
  nodePorts: [],
  masqueradeExternal: [],
});

/** A route as `ip -json route show` prints it (host routes without /32). */
const installed = (dst: string, over: Partial<Route> = {}): Route => ({ dst, gateway: SERVICE_GATEWAY_VIRTUAL_IP, dev: 'seine-gw0', protocol: '118', prefsrc: '10.10.0.1', flags: ['onlink'], ...over });
const neighbour: Neighbour = { dst: SERVICE_GATEWAY_VIRTUAL_IP, dev: 'seine-gw0', lladdr: '0a:00:00:00:00:01', state: ['PERMANENT'] };
const replace = (dst: string): string => `route replace ${dst} via ${SERVICE_GATEWAY_VIRTUAL_IP} dev seine-gw0 onlink proto 118 src 10.10.0.1`;

describe('Service routes into OVS', () => {
  it('installs the neighbour and a route per destination on a bare node', () => {
    expect(serviceRoutesBatch(state, [], []).lines).toEqual([
      `neigh replace ${SERVICE_GATEWAY_VIRTUAL_IP} lladdr 0a:00:00:00:00:01 dev seine-gw0 nud permanent`,
      replace('10.96.0.0/16'),
      replace(`${NODEPORT_VIRTUAL_IP}/32`),
      replace('198.51.100.7/32'),
    ]);
  });

  it('changes nothing when everything is in place', () => {
    const routes = [installed('10.96.0.0/16'), installed(NODEPORT_VIRTUAL_IP), installed('198.51.100.7'), installed('10.10.0.0/24', { protocol: 'kernel', gateway: undefined })];
    expect(serviceRoutesBatch(state, routes, [neighbour]).empty).toBe(true);
  });

  it('replaces what differs, deletes stale proto-118 routes and foreign neighbours, and leaves other protocols alone', () => {
    const routes = [
      installed('10.96.0.0/16', { prefsrc: '10.10.0.9' }),
      installed(NODEPORT_VIRTUAL_IP, { dev: 'old-gw' }),
      installed('198.51.100.7'),
      installed('198.51.100.99'),
      installed('10.244.1.0/24', { protocol: '117' }),
    ];
    const lines = serviceRoutesBatch(state, routes, [{ ...neighbour, dev: 'old-gw' }, { ...neighbour, state: ['STALE'] }]).lines;
    expect(lines).toEqual([
      `neigh del ${SERVICE_GATEWAY_VIRTUAL_IP} dev old-gw`,
      `neigh replace ${SERVICE_GATEWAY_VIRTUAL_IP} lladdr 0a:00:00:00:00:01 dev seine-gw0 nud permanent`,
      replace('10.96.0.0/16'),
      replace(`${NODEPORT_VIRTUAL_IP}/32`),
      'route del 198.51.100.99/32 proto 118',
    ]);
  });

  it('removal deletes every proto-118 route and every neighbour of the virtual gateway', () => {
    const routes = [installed('10.96.0.0/16'), installed('198.51.100.7'), installed('10.244.1.0/24', { protocol: '117' })];
    expect(serviceRoutesRemoval(routes, [neighbour]).lines).toEqual(['route del 10.96.0.0/16 proto 118', 'route del 198.51.100.7/32 proto 118', `neigh del ${SERVICE_GATEWAY_VIRTUAL_IP} dev seine-gw0`]);
  });
});

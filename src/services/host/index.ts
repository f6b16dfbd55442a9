export {
  SERVICE_ROUTE_PROTO,
  NFT_SERVICES_TABLE,
  SERVICE_GATEWAY_VIRTUAL_IP,
  NODEPORT_VIRTUAL_IP,
  L4_PROTOCOLS,
  HostServicesStateError,
  normalizeHostServicesState,
  type L4Protocol,
  type AddressPort,
  type NodePortRule,
  type HostServicesState,
} from './state.js';
export { servicesRuleset, servicesRulesetRemoval, NFT_SETS } from './nft.js';
export { serviceRoutesBatch, serviceRoutesRemoval, serviceRouteDestinations, isServiceRoute, type Neighbour } from './routes.js';
export { ServiceHostNetwork, returnRoutingRemoval } from './network.js';
export { parseUdpFlows, staleNodePortFlows, deleteUntranslatedCommand, type UdpFlow } from './conntrack.js';

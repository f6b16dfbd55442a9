// NetworkAttachmentDefinitions: their spec.config parsed and validated, Seine's bridge and uplink rules,
// and the capability check between a pod's request and a network.
export {
  BRIDGE_NAME_PATTERN,
  bridgeConflicts,
  defaultBridge,
  NODE_UPLINKS_ANNOTATION,
  OVERLAY_BRIDGE_PREFIX,
  overlayBridgeName,
  parseNodeUplinksAnnotation,
  parseUplinkMap,
  RESERVED_BRIDGES,
  resolveUplink,
  VLAN_BRIDGE,
  type UplinkSource,
  type UplinkSources,
} from './bridges.js';
export { checkCapabilities, supportedCapabilities, unsupportedRequests } from './capabilities.js';
export { loadNodeNetworkConfig, parseNad, parseNadConfig, SEINE_PLUGIN, type NadParseOptions } from './config.js';
export { CapabilityError, NadConfigError } from './errors.js';
export type {
  DelegatedIpam,
  DelegatedNadNetwork,
  FunctionNetwork,
  NadNetwork,
  NadRef,
  NetworkAttachmentDefinition,
  NodeFileNadNetwork,
  PoolIpam,
  SegmentNetwork,
  SeineIpam,
  SeineNadNetwork,
  SeineNetwork,
  StaticAddress,
  StaticIpam,
} from './types.js';

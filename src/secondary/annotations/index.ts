// Pod annotations of the multi-network spec: the networks a pod asks for, and the status of what it got.
export { diffAttachments, keepInterfaceNames, requestFingerprint, type AttachedSelection, type AttachmentDiff } from './diff.js';
export { NETWORK_STATUS_ANNOTATION, NETWORKS_ANNOTATION, NetworksAnnotationError, NetworkStatusError, type AnnotationProblem } from './errors.js';
export {
  assignInterfaceNames,
  attachmentKey,
  capabilityArgs,
  networkRef,
  parseNetworksAnnotation,
  type Bandwidth,
  type NetworkSelection,
  type NetworkSelectionRequest,
  type ParseOptions,
  type PortMapping,
} from './networks.js';
export { buildNetworkStatus, parseNetworkStatus, serializeNetworkStatus, type AttachmentOutcome, type DefaultNetworkOutcome, type DeviceInfo, type NetworkStatus } from './status.js';
export { isCidr, isDnsLabel, isDnsSubdomain, isInfinibandGuid, isInterfaceName, isIp, normalizeMac } from './validation.js';

// The spec's rule: an attachment that requests a capability (ips, mac, ...) that no plugin of its
// network supports fails.
import { capabilityArgs, networkRef, type NetworkSelectionRequest } from '../annotations/index.js';
import { CapabilityError } from './errors.js';
import type { DelegatedNadNetwork, SeineNadNetwork } from './types.js';

/**
 * CNI capabilities a network supports: whatever its plugins declare (`capabilities: {"ips": true}`), and
 * for Seine's own network `mac` always and `ips` with seine or static IPAM (a function port has no IPAM).
 */
export function supportedCapabilities(net: SeineNadNetwork | DelegatedNadNetwork): Set<string> {
  const caps = new Set<string>();
  for (const p of net.list.plugins) {
    for (const [k, on] of Object.entries(p.capabilities ?? {})) if (on === true) caps.add(k);
  }
  if (net.kind === 'seine') {
    caps.add('mac');
    if (net.network.networkType !== 'function' && net.network.ipam.type !== 'delegated') caps.add('ips');
  }
  return caps;
}

/** The capabilities the selection requests that the network lacks, in a stable order. */
export function unsupportedRequests(net: SeineNadNetwork | DelegatedNadNetwork, selection: NetworkSelectionRequest): string[] {
  const caps = supportedCapabilities(net);
  return Object.keys(capabilityArgs(selection)).filter((c) => !caps.has(c));
}

/** Throws CapabilityError when the selection asks for something the network cannot do. */
export function checkCapabilities(net: SeineNadNetwork | DelegatedNadNetwork, selection: NetworkSelectionRequest): void {
  const missing = unsupportedRequests(net, selection);
  if (missing.length) throw new CapabilityError(networkRef(selection), missing);
}

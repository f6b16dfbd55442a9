// Which OVS bridge a Seine secondary network lives on, and which physical interface a VLAN bridge uses.
//
// - VLAN networks share one trunk bridge per physical network, default `br-vlan`: pod ports are access
//   ports tagged with the network's VLAN, the uplink carries them all tagged. A NAD names another bridge
//   (`bridge`) for another physical network (another trunk NIC).
// - Overlay networks get a bridge per segment, `br-ovl-<vni>` (at most 15 characters for VNI 16777215):
//   the VNI is the segment, so NADs with one VNI share a bridge, and segments never meet inside OVS.
// - The uplink of a VLAN bridge is configured per node, since NIC names differ between machines. In order:
//   the node annotation `seine.dev/secondary-uplinks` (JSON object, bridge -> interface), then the NAD's
//   `uplink` (a cluster-wide default for that network), then the agent config's map (bridge -> interface).
//   With none, the bridge has no uplink: pods on one node reach each other only.
import { ajv, check, isInterfaceName } from '../annotations/validation.js';
import type { SegmentNetwork, SeineNetwork } from './types.js';

export const VLAN_BRIDGE = 'br-vlan';
export const OVERLAY_BRIDGE_PREFIX = 'br-ovl-';
/** The primary network's bridges: never a secondary network's. */
export const RESERVED_BRIDGES: readonly string[] = ['br-int', 'br-phy'];
export const NODE_UPLINKS_ANNOTATION = 'seine.dev/secondary-uplinks';
/** OVS bridge names become kernel interface names (the bridge's internal port). */
export const BRIDGE_NAME_PATTERN = '^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$';

export function overlayBridgeName(vni: number): string {
  return `${OVERLAY_BRIDGE_PREFIX}${vni}`;
}

/** The bridge a network uses when its NAD names none. */
export function defaultBridge(n: { networkType: 'vlan' | 'overlay'; vni?: number }): string {
  return n.networkType === 'vlan' ? VLAN_BRIDGE : overlayBridgeName(n.vni!);
}

const validateUplinks = ajv.compile({
  type: 'object',
  propertyNames: { type: 'string', pattern: BRIDGE_NAME_PATTERN },
  additionalProperties: { type: 'string', format: 'ifname' },
});

/** A bridge -> uplink map (agent config or node annotation); throws naming each bad entry. */
export function parseUplinkMap(value: unknown, what: string): Map<string, string> {
  const problems = check(validateUplinks, value);
  if (problems.length) throw new Error(`${what}: ${problems.join('; ')} (expected {"<bridge>": "<interface>"})`);
  return new Map(Object.entries(value as Record<string, string>));
}

/** The node annotation's value; absent or empty means no entries. */
export function parseNodeUplinksAnnotation(value: string | undefined): Map<string, string> {
  if (value === undefined || value.trim() === '') return new Map();
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch (e) {
    throw new Error(`node annotation ${NODE_UPLINKS_ANNOTATION}: not valid JSON (${(e as Error).message})`, { cause: e });
  }
  return parseUplinkMap(parsed, `node annotation ${NODE_UPLINKS_ANNOTATION}`);
}

export interface UplinkSources {
  /** From the node annotation. */
  node?: ReadonlyMap<string, string>;
  /** The NAD's `uplink`. */
  nad?: string;
  /** From the agent config. */
  agent?: ReadonlyMap<string, string>;
}

export type UplinkSource = 'node' | 'nad' | 'agent';

/** The uplink of a VLAN bridge on one node and where it was configured; undefined when none is. */
export function resolveUplink(bridge: string, sources: UplinkSources): { uplink: string; source: UplinkSource } | undefined {
  const fromNode = sources.node?.get(bridge);
  if (fromNode) return { uplink: fromNode, source: 'node' };
  if (sources.nad && isInterfaceName(sources.nad)) return { uplink: sources.nad, source: 'nad' };
  const fromAgent = sources.agent?.get(bridge);
  if (fromAgent) return { uplink: fromAgent, source: 'agent' };
  return undefined;
}

/**
 * Contradictions between networks sharing bridges (one message per problem): a bridge used by VLAN and
 * overlay networks, an overlay bridge with two VNIs, a VLAN bridge whose NADs name different uplinks.
 * A node cannot realize such networks side by side; the agent reports them instead.
 */
export function bridgeConflicts(networks: ReadonlyArray<{ nad: string; network: SeineNetwork }>): string[] {
  const byBridge = new Map<string, Array<{ nad: string; network: SegmentNetwork }>>();
  for (const { nad, network } of networks) {
    // Function ports have no bridge of their own.
    if (network.networkType !== 'function') byBridge.set(network.bridge, [...(byBridge.get(network.bridge) ?? []), { nad, network }]);
  }
  const out: string[] = [];
  for (const [bridge, users] of byBridge) {
    const vlan = users.filter((u) => u.network.networkType === 'vlan');
    const overlay = users.filter((u) => u.network.networkType === 'overlay');
    if (vlan.length && overlay.length) out.push(`bridge ${bridge} is used by VLAN network ${vlan[0]!.nad} and overlay network ${overlay[0]!.nad}`);
    const vnis = [...new Set(overlay.map((u) => u.network.vni))];
    if (vnis.length > 1) out.push(`bridge ${bridge} is used by overlay networks with VNIs ${vnis.join(', ')} (${overlay.map((u) => u.nad).join(', ')})`);
    const uplinks = [...new Set(vlan.flatMap((u) => (u.network.uplink ? [u.network.uplink] : [])))];
    if (uplinks.length > 1) out.push(`bridge ${bridge} is given different uplinks ${uplinks.join(', ')} by ${vlan.filter((u) => u.network.uplink).map((u) => u.nad).join(', ')}`);
  }
  return out;
}
